//! The agent's self-signed identity certificate: what it registers with at the management
//! point in enhanced HTTP before it holds a certificate from the site (SPEC §4).

use crate::files::{self, FileError};
use fleetpki_model::UnixTime;
use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::template::HashAlg;
use fleetpki_x509::cert::{CertParams, IssuerUrls};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{X509Error, name, pem, serial};
use std::path::Path;

pub const IDENTITY_DIR: &str = "identity";
const CERT_FILE: &str = "identity.pem";
const KEY_FILE: &str = "identity.key";
/// Client Authentication.
pub const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
/// Long enough to outlive the machine's first certificates; replaced by re-installing.
const LIFETIME_SECS: i64 = 5 * 365 * 86_400;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    X509(#[from] X509Error),
}

/// The identity certificate (DER) and its key.
pub struct Identity {
    pub der: Vec<u8>,
    pub key: PrivateKey,
}

/// Makes a P-256 self-signed client-authentication certificate for `cn`.
pub fn create(cn: &str, now: UnixTime) -> Result<Identity, IdentityError> {
    let key = PrivateKey::generate(KeyType::EcdsaP256)?;
    let params = CertParams {
        serial: serial::random()?,
        subject: name::build(&[("CN", cn)])?,
        sans: Vec::new(),
        spki_der: key.public_key_der(),
        not_before: now - 300,
        not_after: now + LIFETIME_SECS,
        key_usage: vec![KeyUsageBit::DigitalSignature],
        ekus: vec![CLIENT_AUTH.to_string()],
        ca: None,
        urls: IssuerUrls::default(),
    };
    let der = fleetpki_x509::cert::issue(&params, None, &key.signer(HashAlg::Sha256))?;
    Ok(Identity { der, key })
}

/// Writes the identity under `dir/identity/` (key 0600).
pub fn save(dir: &Path, id: &Identity) -> Result<(), IdentityError> {
    let d = dir.join(IDENTITY_DIR);
    std::fs::create_dir_all(&d).map_err(files::io(&d))?;
    files::write_atomic(&d.join(KEY_FILE), id.key.to_pkcs8_pem().as_bytes(), true)?;
    files::write_atomic(
        &d.join(CERT_FILE),
        pem::encode("CERTIFICATE", &id.der).as_bytes(),
        false,
    )?;
    Ok(())
}

pub fn load(dir: &Path) -> Result<Identity, IdentityError> {
    let d = dir.join(IDENTITY_DIR);
    let cert_path = d.join(CERT_FILE);
    let text = files::read_to_string(&cert_path)?;
    let mut blocks = pem::decode_all(
        &cert_path.display().to_string(),
        text.as_bytes(),
        "CERTIFICATE",
    )?;
    let der = if blocks.len() == 1 {
        blocks.remove(0)
    } else {
        return Err(FileError::Invalid {
            path: cert_path.display().to_string(),
            rule: "expected one certificate".into(),
        }
        .into());
    };
    let key_text = files::read_to_string(&d.join(KEY_FILE))?;
    let key = PrivateKey::from_pem(&key_text, None)?;
    Ok(Identity { der, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_self_signed_client_auth_and_round_trips() {
        let now = 1_800_000_000;
        let id = create("PC0001", now).unwrap();
        let parsed = fleetpki_x509::cert::parse("identity", &id.der).unwrap();
        let info = fleetpki_x509::cert::info(&parsed).unwrap();
        assert_eq!(info.subject, info.issuer);
        assert_eq!(info.ekus, vec![CLIENT_AUTH.to_string()]);
        assert!(!info.is_ca);
        fleetpki_x509::cert::verify_der_signed_by(&id.der, &parsed).unwrap();
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &id).unwrap();
        let back = load(dir.path()).unwrap();
        assert_eq!(back.der, id.der);
        assert_eq!(back.key.public_key_der(), id.key.public_key_der());
    }
}
