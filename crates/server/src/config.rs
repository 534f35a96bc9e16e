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
    /// OCSP responder (RFC 6960) at `/ocsp`, the URL certificates carry beside the CDP.
    Ocsp,
    /// Fallback status point: clients' state messages, unauthenticated, rate-limited.
    FallbackStatusPoint,
}

impl Role {
    /// In this order: the URL-bearing roles first (OCSP follows the CRL role's address).
    pub const ALL: [Role; 3] = [Role::Crl, Role::Ocsp, Role::FallbackStatusPoint];

    pub fn name(self) -> &'static str {
        match self {
            Role::Crl => "crl",
            Role::Ocsp => "ocsp",
            Role::FallbackStatusPoint => "fallback-status-point",
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
    signer: Option<String>,
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
            signer: None,
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
    /// Requests per minute accepted from one source address (the fallback status point).
    pub rate_per_minute: u32,
    /// What signs OCSP responses (the `ocsp` role only; `Ca` elsewhere).
    pub signer: OcspSigner,
}

/// Who signs the `ocsp` role's responses (`[roles.ocsp] signer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcspSigner {
    /// `ca`: the CA that issued the certificate asked about.
    #[default]
    Ca,
    /// `delegated`: a short-lived certificate with id-kp-OCSPSigning and id-pkix-ocsp-nocheck,
    /// issued by the issuing CA to a key held only in memory, renewed automatically.
    Delegated,
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
    /// `rate_per_minute`, and for `ocsp` `signer = "ca" | "delegated"`); roles it does not
    /// mention keep their defaults.
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
        // Certificates carry the CDP and OCSP URLs under the same base URL: unless told
        // otherwise, OCSP listens where the CRL role does (one socket).
        let mut crl_listen = None;
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
                None if role == Role::Ocsp => {
                    crl_listen.unwrap_or_else(|| default_listen(role, base_url))
                }
                None => default_listen(role, base_url),
            };
            if role == Role::Crl {
                crl_listen = Some(listen);
            }
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
            let signer = match (role, r.signer.as_deref()) {
                (_, None) => OcspSigner::Ca,
                (Role::Ocsp, Some("ca")) => OcspSigner::Ca,
                (Role::Ocsp, Some("delegated")) => OcspSigner::Delegated,
                (Role::Ocsp, Some(other)) => {
                    return Err(err(
                        key("signer"),
                        format!("`{other}` is not a signer; expected \"ca\" or \"delegated\""),
                    ));
                }
                (_, Some(_)) => {
                    return Err(err(key("signer"), "only the ocsp role has a signer"));
                }
            };
            roles.push(RoleConfig {
                role,
                listen,
                max_body_bytes,
                rate_per_minute,
                signer,
            });
        }
        Ok(ServeConfig { roles })
    }
}

fn default_listen(role: Role, base_url: &str) -> SocketAddr {
    let ephemeral = SocketAddr::from(([127, 0, 0, 1], 0));
    if !matches!(role, Role::Crl | Role::Ocsp) {
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
        let c = ServeConfig::parse(
            "[roles.crl]\nenabled = false\n[roles.ocsp]\nenabled = false\n[roles.fallback-status-point]\nenabled = false\n",
            "http://x.test",
        )
        .unwrap();
        assert!(c.roles.is_empty());
        for (text, key) in [
            ("[roles.ocsp]\nsigner = \"hsm\"\n", "roles.ocsp.signer"),
            ("[roles.crl]\nsigner = \"ca\"\n", "roles.crl.signer"),
            (
                "[roles.fallback-status-point]\nrate_per_minute = 0\n",
                "roles.fallback-status-point.rate_per_minute",
            ),
        ] {
            let e = ServeConfig::parse(text, "http://x.test").unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    fn role(c: &ServeConfig, r: Role) -> &RoleConfig {
        c.roles.iter().find(|rc| rc.role == r).unwrap()
    }

    #[test]
    fn ocsp_shares_the_crl_address_unless_told_otherwise() {
        let c = ServeConfig::defaults("http://localhost:8080");
        assert_eq!(c.roles.len(), 3);
        let crl = role(&c, Role::Crl).listen;
        assert_eq!(role(&c, Role::Ocsp).listen, crl);
        assert_eq!(role(&c, Role::Ocsp).signer, OcspSigner::Ca);
        assert_eq!(role(&c, Role::FallbackStatusPoint).listen.port(), 0);

        let c = ServeConfig::parse(
            "[roles.crl]\nlisten = \"127.0.0.1:9000\"\n[roles.ocsp]\nsigner = \"delegated\"\n",
            "http://localhost:8080",
        )
        .unwrap();
        assert_eq!(
            role(&c, Role::Ocsp).listen,
            "127.0.0.1:9000".parse().unwrap()
        );
        assert_eq!(role(&c, Role::Ocsp).signer, OcspSigner::Delegated);

        let c = ServeConfig::parse(
            "[roles.crl]\nenabled = false\n[roles.ocsp]\nlisten = \"127.0.0.1:9001\"\n",
            "http://localhost:8080",
        )
        .unwrap();
        assert_eq!(
            role(&c, Role::Ocsp).listen,
            "127.0.0.1:9001".parse().unwrap()
        );
        // No CRL role: OCSP still defaults to where the base URL points.
        let c =
            ServeConfig::parse("[roles.crl]\nenabled = false\n", "http://localhost:8080").unwrap();
        assert_eq!(
            role(&c, Role::Ocsp).listen,
            "127.0.0.1:8080".parse().unwrap()
        );
    }
}
