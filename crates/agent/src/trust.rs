//! What the agent trusts (SPEC §4 "Trust bootstrap"): the site root and the site signing
//! certificate, pinned at install by file or fingerprint (or, only when allowed, on first
//! use), and the checks every policy passes before the agent acts on it.

use crate::config::AgentConfig;
use crate::files::{self, FileError};
use fleetpki_policy::{Policy, PolicyError, SignedPolicy};
use fleetpki_x509::cert::fingerprint;
use fleetpki_x509::pem;
use std::path::Path;

/// Where pinned certificates live, apart from the general `root/` store.
pub const TRUST_DIR: &str = "trust";
const ROOT_FILE: &str = "root.pem";
const SIGNING_FILE: &str = "site-signing.pem";

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    File(#[from] FileError),
    /// A certificate the site offers is not the one pinned: refused, never re-pinned.
    #[error(
        "{what}: the site offers {offered}, but {pinned} is pinned; refusing the change (re-install the agent to trust a new one)"
    )]
    Changed {
        what: &'static str,
        pinned: String,
        offered: String,
    },
    /// A pinned file does not match the fingerprint in agent.toml (edited or corrupted).
    #[error("{path}: its SHA-256 is {found}, agent.toml pins {pinned}")]
    PinnedFileMismatch {
        path: String,
        pinned: String,
        found: String,
    },
    #[error("{field}: {rule}")]
    Invalid { field: String, rule: String },
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// The pinned certificates (DER).
#[derive(Clone, Debug)]
pub struct Pins {
    pub root: Vec<u8>,
    pub signing: Vec<u8>,
}

/// Reads one certificate from PEM or DER bytes.
pub fn one_certificate(field: &str, bytes: &[u8]) -> Result<Vec<u8>, TrustError> {
    let der = if bytes.starts_with(b"-----") || bytes.iter().take(64).all(|b| b.is_ascii()) {
        let mut blocks =
            pem::decode_all(field, bytes, "CERTIFICATE").map_err(|e| TrustError::Invalid {
                field: field.into(),
                rule: e.to_string(),
            })?;
        if blocks.len() != 1 {
            return Err(TrustError::Invalid {
                field: field.into(),
                rule: format!("expected one certificate, found {}", blocks.len()),
            });
        }
        blocks.remove(0)
    } else {
        bytes.to_vec()
    };
    fleetpki_x509::cert::parse(field, &der).map_err(|e| TrustError::Invalid {
        field: field.into(),
        rule: e.to_string(),
    })?;
    Ok(der)
}

/// Writes the pins' certificates under `dir/trust/`.
pub fn save_pins(dir: &Path, pins: &Pins) -> Result<(), TrustError> {
    let t = dir.join(TRUST_DIR);
    std::fs::create_dir_all(&t).map_err(files::io(&t))?;
    files::write_atomic(
        &t.join(ROOT_FILE),
        pem::encode("CERTIFICATE", &pins.root).as_bytes(),
        false,
    )?;
    files::write_atomic(
        &t.join(SIGNING_FILE),
        pem::encode("CERTIFICATE", &pins.signing).as_bytes(),
        false,
    )?;
    Ok(())
}

/// Reads the pinned certificates and checks them against agent.toml's fingerprints.
pub fn load_pins(dir: &Path, config: &AgentConfig) -> Result<Pins, TrustError> {
    let read = |file: &str, pinned: &str| -> Result<Vec<u8>, TrustError> {
        let path = dir.join(TRUST_DIR).join(file);
        let bytes = std::fs::read(&path).map_err(files::io(&path))?;
        let der = one_certificate(&path.display().to_string(), &bytes)?;
        let found = fingerprint(&der);
        if found != pinned {
            return Err(TrustError::PinnedFileMismatch {
                path: path.display().to_string(),
                pinned: pinned.to_string(),
                found,
            });
        }
        Ok(der)
    };
    Ok(Pins {
        root: read(ROOT_FILE, &config.root_sha256)?,
        signing: read(SIGNING_FILE, &config.signing_sha256)?,
    })
}

/// Refuses `offered` unless it is the pinned certificate.
pub fn check_offered(
    what: &'static str,
    pinned_sha256: &str,
    offered_der: &[u8],
) -> Result<(), TrustError> {
    let offered = fingerprint(offered_der);
    if offered == pinned_sha256 {
        Ok(())
    } else {
        Err(TrustError::Changed {
            what,
            pinned: pinned_sha256.to_string(),
            offered,
        })
    }
}

/// Every check a policy passes before use: signed by the pinned site signing certificate,
/// untampered, made for this client, and not older than the one held.
pub fn verify_policy(
    pins: &Pins,
    signed_json: &str,
    client: &str,
    held_version: i64,
) -> Result<Policy, TrustError> {
    let signed = SignedPolicy::from_json(signed_json)?;
    let policy = fleetpki_policy::verify(&signed, &pins.signing)?;
    fleetpki_policy::check_client(&policy, client)?;
    fleetpki_policy::check_not_older(&policy, held_version)?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    const NOW: i64 = 1_800_000_000;

    fn signed(signer: &identity::Identity, version: i64, client: &str) -> String {
        let policy = Policy::new("PS1", version, NOW, client);
        fleetpki_policy::sign(&policy, &signer.key, &signer.der)
            .unwrap()
            .to_json()
    }

    fn pins(signer: &identity::Identity) -> Pins {
        Pins {
            root: signer.der.clone(),
            signing: signer.der.clone(),
        }
    }

    #[test]
    fn policy_checks() {
        let site = identity::create("PS1 site signing", NOW).unwrap();
        let other = identity::create("impostor", NOW).unwrap();
        let p = pins(&site);
        // Good: verifies, right client, same or newer version.
        assert_eq!(
            verify_policy(&p, &signed(&site, 5, "PC1"), "pc1", 5)
                .unwrap()
                .version,
            5
        );
        assert_eq!(
            verify_policy(&p, &signed(&site, 6, "PC1"), "PC1", 5)
                .unwrap()
                .version,
            6
        );

        let refused = |json: &str, held: i64| verify_policy(&p, json, "PC1", held).unwrap_err();
        // Rolled back.
        let e = refused(&signed(&site, 4, "PC1"), 5);
        assert!(
            matches!(
                e,
                TrustError::Policy(PolicyError::Rollback {
                    held: 5,
                    offered: 4
                })
            ),
            "{e}"
        );
        // Another client's policy replayed.
        let e = refused(&signed(&site, 5, "PC2"), 0);
        assert!(e.to_string().contains("client"), "{e}");
        // Signed by someone else.
        let e = refused(&signed(&other, 5, "PC1"), 0);
        assert!(
            matches!(e, TrustError::Policy(PolicyError::SignerMismatch { .. })),
            "{e}"
        );

        // Tampered: one payload byte changed, signature kept.
        let mut v: serde_json::Value = serde_json::from_str(&signed(&site, 5, "PC1")).unwrap();
        let mut payload = STANDARD.decode(v["payload"].as_str().unwrap()).unwrap();
        let at = payload.iter().position(|b| *b == b'5').unwrap();
        payload[at] = b'9';
        v["payload"] = STANDARD.encode(&payload).into();
        let e = refused(&v.to_string(), 0);
        assert!(
            matches!(e, TrustError::Policy(PolicyError::BadSignature { .. })),
            "{e}"
        );

        // Unsigned.
        v["signature"] = "".into();
        let e = refused(&v.to_string(), 0);
        assert!(
            matches!(e, TrustError::Policy(PolicyError::Unsigned))
                || e.to_string().contains("signature"),
            "{e}"
        );
        // Not even JSON.
        assert!(matches!(refused("garbage", 0), TrustError::Policy(_)));
    }

    #[test]
    fn pins_are_checked_against_the_config() {
        let site = identity::create("PS1 site signing", NOW).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = pins(&site);
        save_pins(dir.path(), &p).unwrap();
        let mut config = AgentConfig {
            site: "https://mp.test".into(),
            name: "PC1".into(),
            fqdn: None,
            root_sha256: fingerprint(&site.der),
            signing_sha256: fingerprint(&site.der),
            tofu: false,
            status_url: None,
        };
        assert_eq!(load_pins(dir.path(), &config).unwrap().signing, site.der);
        config.signing_sha256 = "0".repeat(64);
        assert!(matches!(
            load_pins(dir.path(), &config),
            Err(TrustError::PinnedFileMismatch { .. })
        ));
        let other = identity::create("new signer", NOW).unwrap();
        let e = check_offered(
            "site signing certificate",
            &fingerprint(&site.der),
            &other.der,
        )
        .unwrap_err();
        assert!(e.to_string().contains("refusing the change"), "{e}");
        check_offered(
            "site signing certificate",
            &fingerprint(&site.der),
            &site.der,
        )
        .unwrap();
    }
}
