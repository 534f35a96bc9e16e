//! The agent's configuration file (`agent.toml` in its directory): which site it belongs to,
//! the name it goes by, and the trust pins set at install.

use crate::files::{self, FileError};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const CONFIG_FILE: &str = "agent.toml";

/// `agent.toml`. Unknown keys are refused so a typo never goes unnoticed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The management point's base URL (`https://mp.example:8443`).
    pub site: String,
    /// The computer's name: its directory principal and registration name.
    pub name: String,
    /// The computer's FQDN, for the default selection criterion.
    #[serde(default)]
    pub fqdn: Option<String>,
    /// SHA-256 (lower hex) of the pinned root CA certificate.
    pub root_sha256: String,
    /// SHA-256 (lower hex) of the pinned site signing certificate.
    pub signing_sha256: String,
    /// Installed with trust on first use (recorded for `status`; pins hold all the same).
    #[serde(default)]
    pub tofu: bool,
    /// Where to send state messages when the policy names no fallback status point.
    #[serde(default)]
    pub status_url: Option<String>,
}

impl AgentConfig {
    pub fn load(dir: &Path) -> Result<Self, FileError> {
        let path = dir.join(CONFIG_FILE);
        let text = files::read_to_string(&path)?;
        let c: Self =
            fleetpki_model::config_file::from_toml(&text).map_err(|e| FileError::Invalid {
                path: path.display().to_string(),
                rule: e.to_string(),
            })?;
        c.validate().map_err(|(field, rule)| FileError::Invalid {
            path: path.display().to_string(),
            rule: format!("{field}: {rule}"),
        })?;
        Ok(c)
    }

    pub fn save(&self, dir: &Path) -> Result<(), FileError> {
        let text = toml::to_string(self).map_err(|e| FileError::Invalid {
            path: dir.join(CONFIG_FILE).display().to_string(),
            rule: e.to_string(),
        })?;
        files::write_atomic(&dir.join(CONFIG_FILE), text.as_bytes(), false)
    }

    /// Checks each field; the error names it.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.site.starts_with("https://") {
            return Err(("site", format!("`{}` must be an https:// URL", self.site)));
        }
        let name_ok = (1..=64).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !name_ok {
            return Err((
                "name",
                "must be 1 to 64 letters, digits, '-', '.' or '_'".into(),
            ));
        }
        for (field, v) in [
            ("root_sha256", &self.root_sha256),
            ("signing_sha256", &self.signing_sha256),
        ] {
            if !is_sha256_hex(v) {
                return Err((field, "must be 64 lower-case hex digits (a SHA-256)".into()));
            }
        }
        if let Some(u) = &self.status_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err((
                "status_url",
                format!("`{u}` must be an http:// or https:// URL"),
            ));
        }
        Ok(())
    }
}

/// 64 lower-case hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A fingerprint as people paste it (`AB:CD:…`, upper case, `sha256:` prefix) normalised to
/// lower hex, or an error naming the rule.
pub fn normalise_fingerprint(input: &str) -> Result<String, String> {
    let t = input.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    let hex: String = t
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if is_sha256_hex(&hex) {
        Ok(hex)
    } else {
        Err(format!(
            "`{input}` is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AgentConfig {
        AgentConfig {
            site: "https://mp.fleet.test:8443".into(),
            name: "PC0001".into(),
            fqdn: Some("pc0001.fleet.test".into()),
            root_sha256: "a".repeat(64),
            signing_sha256: "b".repeat(64),
            tofu: false,
            status_url: None,
        }
    }

    #[test]
    fn round_trip_and_field_errors() {
        let dir = tempfile::tempdir().unwrap();
        let c = config();
        c.save(dir.path()).unwrap();
        assert_eq!(AgentConfig::load(dir.path()).unwrap(), c);

        let bad = [
            (
                "site",
                AgentConfig {
                    site: "http://x".into(),
                    ..config()
                },
            ),
            (
                "name",
                AgentConfig {
                    name: "PC 1".into(),
                    ..config()
                },
            ),
            (
                "root_sha256",
                AgentConfig {
                    root_sha256: "xyz".into(),
                    ..config()
                },
            ),
            (
                "signing_sha256",
                AgentConfig {
                    signing_sha256: "A".repeat(64),
                    ..config()
                },
            ),
        ];
        for (field, c) in bad {
            assert_eq!(c.validate().unwrap_err().0, field);
        }
        std::fs::write(dir.path().join(CONFIG_FILE), "site = 1\n").unwrap();
        let e = AgentConfig::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("agent.toml") && e.contains("site"), "{e}");
        // Type errors and unknown keys name the key and its line.
        let good = toml::to_string(&config()).unwrap();
        for (extra, want) in [
            ("tofu = \"yes\"\n", "tofu (line {n}): invalid type"),
            (
                "stauts_url = \"https://x\"\n",
                "stauts_url (line {n}): unknown field `stauts_url`",
            ),
        ] {
            let text = format!("{}{extra}", good.replace("tofu = false\n", ""));
            std::fs::write(dir.path().join(CONFIG_FILE), &text).unwrap();
            let e = AgentConfig::load(dir.path()).unwrap_err().to_string();
            // The bad key is the last line.
            let want = want.replace("{n}", &text.lines().count().to_string());
            assert!(e.contains(&format!("agent.toml: {want}")), "{text}: {e}");
        }
    }

    #[test]
    fn fingerprints_normalise() {
        let colons = ["AB"; 32].join(":");
        assert_eq!(normalise_fingerprint(&colons).unwrap(), "ab".repeat(32));
        assert_eq!(
            normalise_fingerprint(&format!("sha256:{}", "0".repeat(64))).unwrap(),
            "0".repeat(64)
        );
        assert!(normalise_fingerprint("abc").is_err());
    }
}
