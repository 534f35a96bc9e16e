//! `fleetpki serve` configuration: which roles run, where each listens, and their limits.
//! Validated at start; every error names the key it is about.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

/// A site role served over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// CRL distribution point and CA certificates (AIA caIssuers).
    Crl,
}

impl Role {
    pub const ALL: [Role; 1] = [Role::Crl];

    pub fn name(self) -> &'static str {
        match self {
            Role::Crl => "crl",
        }
    }

    fn parse(key: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == key)
    }
}

/// A configuration error: the key and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {rule}")]
pub struct ConfigError {
    pub key: String,
    pub rule: String,
}

fn err(key: impl Into<String>, rule: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        rule: rule.into(),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    roles: BTreeMap<String, RawRole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(default = "enabled")]
    enabled: bool,
    listen: Option<String>,
    max_body_bytes: Option<usize>,
    rate_per_minute: Option<u32>,
}

fn enabled() -> bool {
    true
}

/// A role the file does not mention runs with its defaults.
impl Default for RawRole {
    fn default() -> Self {
        RawRole {
            enabled: true,
            listen: None,
            max_body_bytes: None,
            rate_per_minute: None,
        }
    }
}

/// One role's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleConfig {
    pub role: Role,
    pub listen: SocketAddr,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Requests per minute accepted from one source address (unauthenticated roles).
    pub rate_per_minute: u32,
}

/// The validated configuration: the enabled roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub roles: Vec<RoleConfig>,
}

impl ServeConfig {
    /// Every role on loopback: the CRL role where the site's base URL points when that is a
    /// loopback address (so the CDP and AIA URLs in issued certificates work), the others on
    /// ephemeral ports.
    pub fn defaults(base_url: &str) -> ServeConfig {
        Self::build(RawConfig::default(), base_url).unwrap_or(ServeConfig { roles: vec![] })
    }

    /// Reads a TOML file of `[roles.NAME]` tables (`enabled`, `listen`, `max_body_bytes`,
    /// `rate_per_minute`); roles it does not mention keep their defaults.
    pub fn load(path: &Path, base_url: &str) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("--config", format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text, base_url).map_err(|e| ConfigError {
            key: format!("{}: {}", path.display(), e.key),
            rule: e.rule,
        })
    }

    pub fn parse(text: &str, base_url: &str) -> Result<ServeConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .map(|s| format!("line {}", text[..s.start].matches('\n').count() + 1))
                .unwrap_or_else(|| "config".into());
            err(key, e.message().to_string())
        })?;
        Self::build(raw, base_url)
    }

    fn build(mut raw: RawConfig, base_url: &str) -> Result<ServeConfig, ConfigError> {
        if let Some(unknown) = raw.roles.keys().find(|k| Role::parse(k).is_none()) {
            return Err(err(
                format!("roles.{unknown}"),
                format!(
                    "unknown role; roles are {}",
                    Role::ALL.map(Role::name).join(", ")
                ),
            ));
        }
        let mut roles = Vec::new();
        for role in Role::ALL {
            let r = raw.roles.remove(role.name()).unwrap_or_default();
            if !r.enabled {
                continue;
            }
            let key = |k: &str| format!("roles.{}.{k}", role.name());
            let listen = match r.listen {
                Some(text) => text.parse::<SocketAddr>().map_err(|_| {
                    err(
                        key("listen"),
                        format!("`{text}` is not an address:port such as 127.0.0.1:8080"),
                    )
                })?,
                None => default_listen(role, base_url),
            };
            let max_body_bytes = r.max_body_bytes.unwrap_or(16 * 1024);
            if !(256..=1024 * 1024).contains(&max_body_bytes) {
                return Err(err(
                    key("max_body_bytes"),
                    "must lie between 256 and 1048576",
                ));
            }
            let rate_per_minute = r.rate_per_minute.unwrap_or(60);
            if rate_per_minute == 0 {
                return Err(err(key("rate_per_minute"), "must be at least 1"));
            }
            roles.push(RoleConfig {
                role,
                listen,
                max_body_bytes,
                rate_per_minute,
            });
        }
        Ok(ServeConfig { roles })
    }
}

fn default_listen(role: Role, base_url: &str) -> SocketAddr {
    let ephemeral = SocketAddr::from(([127, 0, 0, 1], 0));
    if role != Role::Crl {
        return ephemeral;
    }
    // http://localhost:8080 → 127.0.0.1:8080; anything not on loopback stays ephemeral.
    let host_port = base_url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(base_url);
    let host_port = host_port.split('/').next().unwrap_or(host_port);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().unwrap_or(80)),
        None => (host_port, 80),
    };
    match host {
        "localhost" | "127.0.0.1" => SocketAddr::from(([127, 0, 0, 1], port)),
        _ => ephemeral,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_base_url_on_loopback() {
        let c = ServeConfig::defaults("http://localhost:8080");
        assert_eq!(c.roles[0].listen, "127.0.0.1:8080".parse().unwrap());
        let c = ServeConfig::defaults("http://pki.fleet.test");
        assert_eq!(c.roles[0].listen.port(), 0);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[roles.crl]\nlisten = \"nowhere\"\n", "roles.crl.listen"),
            ("[roles.ocsp-typo]\n", "roles.ocsp-typo"),
            (
                "[roles.crl]\nmax_body_bytes = 1\n",
                "roles.crl.max_body_bytes",
            ),
            ("[roles.crl]\nlisen = \"127.0.0.1:1\"\n", "line 2"),
        ];
        for (text, key) in cases {
            let e = ServeConfig::parse(text, "http://localhost:8080").unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
        let c = ServeConfig::parse("[roles.crl]\nenabled = false\n", "http://x.test").unwrap();
        assert!(c.roles.is_empty());
    }
}
