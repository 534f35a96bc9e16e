//! PKCS#12 (PFX) export and import of one certificate with its private key and chain.
//!
//! Export writes what `openssl pkcs12 -export` writes by default (PBES2: PBKDF2-HMAC-SHA256 +
//! AES-256-CBC for key and certificates, HMAC-SHA256 MAC), or with `legacy` the format older
//! Windows and the macOS Keychain import (pbeWithSHAAnd3-KeyTripleDES-CBC for key and
//! certificates, HMAC-SHA1 MAC). Both are written by `p12-keystore`; no cryptography here.
//! Whether a key may leave the machine at all is the store's decision
//! ([`crate::store::AgentStore::export_pkcs12`]).

use fleetpki_x509::cert;
use fleetpki_x509::key::PrivateKey;
use p12_keystore::error::Error as P12Error;
use p12_keystore::{
    Certificate as P12Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm,
    Pkcs12Archive, PrivateKey as P12PrivateKey, PrivateKeyChain,
};
use zeroize::Zeroizing;

/// PBKDF2 rounds of a modern export: 10 times OpenSSL 3's default of 2048; costs a few
/// milliseconds for each import, and the file may travel.
pub const MODERN_ITERATIONS: u32 = 20_480;
/// Rounds of a legacy export: OpenSSL's default, what the old importers were tested with.
pub const LEGACY_ITERATIONS: u32 = 2048;
/// Why an export or import failed; `Display` reads `FIELD: RULE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs12Error {
    /// The password is empty, or does not open the file.
    #[error("password: {rule}")]
    Password { rule: String },
    /// The input is not a PKCS#12 file fleetpki can read, or holds the wrong things.
    #[error("{field}: {rule}")]
    Malformed { field: String, rule: String },
    /// Well-formed, but refused (key does not match the certificate, unsupported scheme).
    #[error("{field}: {rule}")]
    Refused { field: String, rule: String },
}

impl Pkcs12Error {
    /// The input the error is about: `password`, `pkcs12`, `key`, `certificate`, ...
    pub fn field(&self) -> &str {
        match self {
            Self::Password { .. } => "password",
            Self::Malformed { field, .. } | Self::Refused { field, .. } => field,
        }
    }

    fn password(rule: impl Into<String>) -> Self {
        Self::Password { rule: rule.into() }
    }

    fn malformed(field: &str, rule: impl Into<String>) -> Self {
        Self::Malformed {
            field: field.to_string(),
            rule: rule.into(),
        }
    }

    fn refused(field: &str, rule: impl Into<String>) -> Self {
        Self::Refused {
            field: field.to_string(),
            rule: rule.into(),
        }
    }
}

/// What [`import`] found: the certificate that goes with the key, the key, and the other
/// certificates of the file (its chain, in file order).
#[derive(Debug)]
pub struct Imported {
    pub cert_der: Vec<u8>,
    pub key: PrivateKey,
    pub chain: Vec<Vec<u8>>,
    /// The key bag's friendlyName, when the file has one.
    pub friendly_name: Option<String>,
}

/// Writes `cert_der` with `key` and `chain` (issuer first, root last) as a PKCS#12 file
/// protected by `password`. `friendly_name` labels the key (Windows shows it); default: the
/// certificate's subject. `legacy`: 3DES + SHA-1 MAC instead of AES-256 + SHA-256 MAC.
pub fn export(
    cert_der: &[u8],
    key: &PrivateKey,
    chain: &[Vec<u8>],
    password: &str,
    friendly_name: Option<&str>,
    legacy: bool,
) -> Result<Vec<u8>, Pkcs12Error> {
    if password.is_empty() {
        return Err(Pkcs12Error::password(
            "an empty password does not protect the private key; supply one",
        ));
    }
    let parsed = cert::parse("certificate", cert_der)
        .map_err(|e| Pkcs12Error::malformed("certificate", e.rule()))?;
    let info = cert::info(&parsed).map_err(|e| Pkcs12Error::malformed("certificate", e.rule()))?;
    check_key_matches(&parsed, key)?;
    let der_of = |field: &str, c: &x509_cert::Certificate| {
        der::Encode::to_der(c).map_err(|e| Pkcs12Error::malformed(field, e.to_string()))
    };
    let mut certs = vec![p12_cert("certificate", &der_of("certificate", &parsed)?)?];
    for (i, c) in chain.iter().enumerate() {
        let field = format!("chain[{i}]");
        let parsed =
            cert::parse(&field, c).map_err(|e| Pkcs12Error::malformed(&field, e.rule()))?;
        certs.push(p12_cert(&field, &der_of(&field, &parsed)?)?);
    }
    let key_der = key.to_pkcs8_der();
    let p12_key = P12PrivateKey::from_der(&key_der)
        .map_err(|e| Pkcs12Error::refused("key", format!("not a PKCS#8 private key: {e}")))?;
    // localKeyID = SHA-1 of the certificate, as OpenSSL and Windows write it.
    let local_key_id = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        certs[0].as_der(),
    )
    .as_ref()
    .to_vec();
    let alias = friendly_name.map_or_else(|| info.subject.clone(), str::to_string);
    let mut store = KeyStore::new();
    store.add_entry(
        &alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, p12_key, certs)),
    );
    let (enc, mac, rounds) = if legacy {
        (
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
            LEGACY_ITERATIONS,
        )
    } else {
        (
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
            MODERN_ITERATIONS,
        )
    };
    store
        .writer(password)
        .encryption_algorithm(enc)
        .encryption_iterations(rounds)
        .mac_algorithm(mac)
        .mac_iterations(rounds)
        .write()
        .map_err(|e| match e {
            // BMPString: the friendly name and password must be in the Basic Multilingual Plane.
            P12Error::DerError(e) => Pkcs12Error::refused(
                "friendly_name",
                format!("cannot be written as a PKCS#12 BMPString: {e}"),
            ),
            e => Pkcs12Error::refused("pkcs12", format!("the file could not be written: {e}")),
        })
}

fn p12_cert(field: &str, der: &[u8]) -> Result<P12Certificate, Pkcs12Error> {
    P12Certificate::from_der(der).map_err(|e| Pkcs12Error::malformed(field, e.to_string()))
}

fn check_key_matches(cert: &x509_cert::Certificate, key: &PrivateKey) -> Result<(), Pkcs12Error> {
    let spki = der::Encode::to_der(cert.tbs_certificate().subject_public_key_info())
        .map_err(|e| Pkcs12Error::malformed("certificate", e.to_string()))?;
    if spki != key.public_key_der() {
        return Err(Pkcs12Error::refused(
            "key",
            "the private key does not belong to the certificate (public keys differ)",
        ));
    }
    Ok(())
}

/// Refuses what is not a PFX at all, and a MAC iteration count that would take minutes.
fn peek(bytes: &[u8]) -> Result<(), Pkcs12Error> {
    use fleetpki_x509::pfx::{MAX_MAC_ITERATIONS, Peek};
    match fleetpki_x509::pfx::peek(bytes) {
        Peek::NotPfx => Err(Pkcs12Error::malformed("pkcs12", "not a PKCS#12 (PFX) file")),
        Peek::BadMac(rule) => Err(Pkcs12Error::malformed("pkcs12", rule)),
        Peek::Pfx {
            mac_iterations: Some(n),
        } if n > MAX_MAC_ITERATIONS => Err(Pkcs12Error::refused(
            "pkcs12",
            format!(
                "the MAC iteration count {n} is above {MAX_MAC_ITERATIONS}; re-export the file"
            ),
        )),
        Peek::Pfx { .. } => Ok(()),
    }
}

/// Reads a PKCS#12 file holding exactly one private key: modern (PBES2/AES) or legacy
/// (3DES, RC2) encryption, any SHA-1/SHA-2 MAC. The certificate is the one whose public key is
/// the key's; every other certificate is returned as `chain`.
pub fn import(bytes: &[u8], password: &str) -> Result<Imported, Pkcs12Error> {
    peek(bytes)?;
    let archive = Pkcs12Archive::from_pkcs12(bytes, password).map_err(|e| match e {
        P12Error::MacError(_) | P12Error::UnpadError => {
            Pkcs12Error::password("the password does not open this PKCS#12 file (integrity check failed)")
        }
        P12Error::UnsupportedEncryptionScheme => Pkcs12Error::refused(
            "pkcs12",
            "the file's encryption scheme is not supported; re-export it with AES-256 (the openssl default) or 3DES",
        ),
        P12Error::UnsupportedMacAlgorithm => Pkcs12Error::refused(
            "pkcs12",
            "the file's MAC algorithm is not supported; re-export it with SHA-256 (the openssl default)",
        ),
        e => Pkcs12Error::malformed("pkcs12", format!("not a readable PKCS#12 file: {e}")),
    })?;
    let bag = match archive.keys.as_slice() {
        [one] => one,
        [] => {
            return Err(Pkcs12Error::malformed(
                "pkcs12",
                "the file holds no private key; import a certificate alone into root/ or trusted-people/ instead",
            ));
        }
        many => {
            return Err(Pkcs12Error::refused(
                "pkcs12",
                format!(
                    "the file holds {} private keys; fleetpki imports one certificate with its key per file",
                    many.len()
                ),
            ));
        }
    };
    let key_der = Zeroizing::new(bag.key.as_der().to_vec());
    let key =
        PrivateKey::from_pkcs8_der(&key_der).map_err(|e| Pkcs12Error::refused("key", e.rule()))?;
    let spki = key.public_key_der();
    let mut leaf = None;
    let mut chain = Vec::new();
    for (i, c) in archive.certs.iter().enumerate() {
        let der = c.cert.as_der().to_vec();
        let field = format!("certificate[{i}]");
        let parsed =
            cert::parse(&field, &der).map_err(|e| Pkcs12Error::malformed(&field, e.rule()))?;
        let cert_spki = der::Encode::to_der(parsed.tbs_certificate().subject_public_key_info())
            .map_err(|e| Pkcs12Error::malformed(&field, e.to_string()))?;
        if leaf.is_none() && cert_spki == spki {
            leaf = Some(der);
        } else {
            chain.push(der);
        }
    }
    let cert_der = leaf.ok_or_else(|| {
        Pkcs12Error::malformed(
            "pkcs12",
            "no certificate in the file belongs to its private key",
        )
    })?;
    Ok(Imported {
        cert_der,
        key,
        chain,
        friendly_name: bag.friendly_name.clone(),
    })
}

#[cfg(test)]
mod tests;
