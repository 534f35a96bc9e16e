//! The site's configuration file, `fleetpki.toml`: what `init` wrote and what every command reads.

use crate::error::{CaError, refuse};
use fleetpki_model::duration::parse_duration;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "fleetpki.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Three characters, letters and digits (the seeds' site code).
    pub site_code: String,
    pub name: String,
    /// Where the site's CRL, CA certificates and OCSP responder are reached; used in CDP and AIA.
    pub base_url: String,
    /// `sqlite:fleetpki.db` (relative to the site directory) or `postgres://…`.
    pub database: String,
    pub keys: KeysConfig,
    #[serde(default)]
    pub crl: CrlConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// `passphrase`: CA keys are encrypted under a passphrase the operator supplies
    /// (FLEETPKI_PASSPHRASE or --passphrase-file). `kek-file`: under a random key-encryption
    /// key kept in `kek_file`, so an unattended site still never stores a plain key.
    pub protection: KeyProtection,
    #[serde(default)]
    pub kek_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyProtection {
    Passphrase,
    KekFile,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlConfig {
    /// How long a full CRL is good for (nextUpdate − thisUpdate).
    pub next_update: String,
    /// How long a delta CRL is good for.
    pub delta_next_update: String,
}

impl Default for CrlConfig {
    fn default() -> Self {
        Self {
            next_update: "7d".into(),
            delta_next_update: "1d".into(),
        }
    }
}

impl SiteConfig {
    pub fn load(dir: &Path) -> Result<Self, CaError> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                refuse("--dir", format!("{} holds no site ({CONFIG_FILE} is missing): run `fleetpki --dir {} init --site-code XYZ` first", dir.display(), dir.display()))
            } else {
                CaError::io(&path)(e)
            }
        })?;
        Self::parse(&text)
    }

    /// Reads the text of a `fleetpki.toml` and validates it; errors name the dotted key.
    pub fn parse(text: &str) -> Result<Self, CaError> {
        let cfg: SiteConfig = fleetpki_model::config_file::from_toml(text)
            .map_err(|e| refuse(&format!("{CONFIG_FILE}: {}", e.key_or_line()), e.rule()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), CaError> {
        check_site_code(&self.site_code)?;
        check_base_url(&self.base_url)?;
        parse_duration("crl.next_update", &self.crl.next_update)?;
        parse_duration("crl.delta_next_update", &self.crl.delta_next_update)?;
        if self.keys.protection == KeyProtection::KekFile && self.keys.kek_file.is_none() {
            return Err(refuse(
                "keys.kek_file",
                "is required when keys.protection = \"kek-file\"",
            ));
        }
        Ok(())
    }

    /// The database URL with a relative SQLite path resolved against the site directory.
    pub fn database_url(&self, dir: &Path) -> String {
        match self.database.strip_prefix("sqlite:") {
            Some(p) if !Path::new(p).is_absolute() => format!("sqlite:{}", dir.join(p).display()),
            _ => self.database.clone(),
        }
    }

    pub fn kek_path(&self, dir: &Path) -> Option<PathBuf> {
        self.keys.kek_file.as_ref().map(|p| dir.join(p))
    }

    /// CDP URL of the CRL that `issuer` signs.
    pub fn crl_url(&self, issuer: &str) -> String {
        format!("{}/crl/{issuer}.crl", self.base_url)
    }
    /// AIA caIssuers URL of `issuer`'s certificate.
    pub fn ca_cert_url(&self, issuer: &str) -> String {
        format!("{}/ca/{issuer}.crt", self.base_url)
    }
    pub fn ocsp_url(&self) -> String {
        format!("{}/ocsp", self.base_url)
    }
}

/// Three letters or digits, not a reserved device name (the seeds' rule for site codes).
pub fn check_site_code(code: &str) -> Result<(), CaError> {
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(refuse(
            "--site-code",
            format!("`{code}` must be exactly three letters or digits, e.g. PS1"),
        ));
    }
    if ["AUX", "CON", "NUL", "PRN", "SMS"].contains(&code.to_ascii_uppercase().as_str()) {
        return Err(refuse(
            "--site-code",
            format!("`{code}` is reserved; choose another three-character code"),
        ));
    }
    Ok(())
}

/// An http(s) URL with a host and no trailing slash, query or fragment.
pub fn check_base_url(url: &str) -> Result<(), CaError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let ok = match rest {
        Some(r) => {
            !r.is_empty()
                && !r.starts_with('/')
                && !url.ends_with('/')
                && !url.contains(['?', '#', ' '])
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(refuse(
            "--base-url",
            format!(
                "`{url}` must be an http:// or https:// URL with a host and no trailing slash, e.g. http://pki.fleet.test"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_codes() {
        check_site_code("PS1").unwrap();
        for bad in ["PS", "PS12", "P-1", "SMS", "con"] {
            assert!(check_site_code(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_errors_name_the_key() {
        let good = "site_code = \"PS1\"\nname = \"x\"\nbase_url = \"http://pki.fleet.test\"\ndatabase = \"sqlite:fleetpki.db\"\n[keys]\nprotection = \"passphrase\"\n";
        SiteConfig::parse(good).unwrap();
        for (extra, field) in [
            ("[crl]\nnext_update = 7\n", "fleetpki.toml: crl.next_update"),
            (
                "[crl]\nnext_update = \"7d\"\ndelta_next_update = \"1d\"\nfull = true\n",
                "fleetpki.toml: crl.full",
            ),
            (
                "kek_file = \"kek\"\nprotektion = 1\n",
                "fleetpki.toml: keys.protektion",
            ),
            ("kek_file = 5\n", "fleetpki.toml: keys.kek_file"),
        ] {
            let text = format!("{good}{extra}");
            match SiteConfig::parse(&text) {
                Err(CaError::Field(e)) => assert_eq!(e.field, field, "{text}: {e}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        match SiteConfig::parse("site_code = \"PS1\"\n[keys]\nprotection = \"plain\"\n") {
            Err(CaError::Field(e)) => {
                assert_eq!(e.field, "fleetpki.toml: keys.protection", "{e}");
                assert!(
                    e.rule.contains("unknown variant `plain`") && e.rule.ends_with("(line 3)"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn base_urls() {
        check_base_url("http://pki.fleet.test").unwrap();
        check_base_url("https://127.0.0.1:8443").unwrap();
        for bad in [
            "pki.fleet.test",
            "http://",
            "http://x/",
            "ftp://x",
            "http://x?y",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
    }
}
