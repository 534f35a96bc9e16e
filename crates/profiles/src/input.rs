//! Reading the certificate file an administrator hands to `fleetpki check`: PEM, DER or a
//! password-protected PKCS#12 (PFX), modern (PBES2/AES) or legacy (3DES/RC2).

use crate::{CertFacts, ProfileError};
use der::Decode;
use p12_keystore::Pkcs12Archive;
use p12_keystore::error::Error as P12Error;
use serde::Serialize;
use x509_cert::Certificate;
use zeroize::Zeroizing;

/// How the certificate was delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum InputFormat {
    Pem,
    Der,
    Pkcs12,
}

impl InputFormat {
    /// "PEM", "DER", "PKCS#12".
    pub fn name(self) -> &'static str {
        match self {
            Self::Pem => "PEM",
            Self::Der => "DER",
            Self::Pkcs12 => "PKCS#12",
        }
    }
}

impl std::fmt::Display for InputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A certificate file, read.
#[derive(Clone, Debug)]
pub struct Input {
    pub facts: CertFacts,
    pub format: InputFormat,
    /// `Some(true)` for a PKCS#12 file holding a private key (it was exported, so it is
    /// exportable); `None` for PEM/DER and for a PKCS#12 file with no key, which tell nothing.
    pub key_exportable: Option<bool>,
    /// The certificate's DER.
    pub der: Vec<u8>,
    /// The other certificates in the file (a PEM bundle's later blocks, a PKCS#12 file's CA
    /// certificates), in file order: what a server sends as its chain.
    pub chain: Vec<Vec<u8>>,
    /// The private key paired with the certificate, PKCS#8 DER (PKCS#12 input only).
    pub key_pkcs8: Option<KeyDer>,
}

/// PKCS#8 DER of a private key: zeroed on drop, never printed.
#[derive(Clone)]
pub struct KeyDer(pub Zeroizing<Vec<u8>>);

impl std::fmt::Debug for KeyDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDer(<redacted>)")
    }
}

/// Reads a certificate file: DER, PEM (the first CERTIFICATE block when there are several, the
/// leaf by convention), or PKCS#12 opened with `password` (an empty password is tried when none
/// is given). From a PKCS#12 file the certificate is the one paired with the private key (same
/// localKeyId), else the only or first end-entity certificate.
pub fn read_input(bytes: &[u8], password: Option<&str>) -> Result<Input, ProfileError> {
    if bytes.first() == Some(&0x30) {
        // DER: a certificate, or a PFX (whose SEQUENCE starts with INTEGER version 3).
        return match Certificate::from_der(bytes) {
            Ok(cert) => finish(&cert, bytes.to_vec(), InputFormat::Der, None),
            Err(_) if is_pfx(bytes) => read_pkcs12(bytes, password),
            Err(cert_err) => Err(ProfileError::certificate(format!(
                "neither a DER certificate nor a PKCS#12 file: {cert_err}"
            ))),
        };
    }
    let blocks = fleetpki_x509::pem::decode_labels(
        "certificate",
        bytes,
        &["CERTIFICATE", "X509 CERTIFICATE"],
    )?;
    let mut ders = blocks.into_iter().map(|(_, der)| der);
    let Some(der) = ders.next() else {
        return Err(ProfileError::certificate(
            "the file holds no CERTIFICATE block",
        ));
    };
    let cert = Certificate::from_der(&der).map_err(|e| {
        ProfileError::certificate(format!("the PEM block is not a valid certificate: {e}"))
    })?;
    let mut input = finish(&cert, der, InputFormat::Pem, None)?;
    input.chain = ders.collect();
    Ok(input)
}

fn finish(
    cert: &Certificate,
    der: Vec<u8>,
    format: InputFormat,
    key_exportable: Option<bool>,
) -> Result<Input, ProfileError> {
    Ok(Input {
        facts: CertFacts::from_certificate(cert)?,
        format,
        key_exportable,
        der,
        chain: Vec::new(),
        key_pkcs8: None,
    })
}

fn is_pfx(bytes: &[u8]) -> bool {
    fleetpki_x509::pfx::peek(bytes) != fleetpki_x509::pfx::Peek::NotPfx
}

/// Refuses a MAC iteration count that would take minutes to check (a crafted file).
fn check_iterations(bytes: &[u8]) -> Result<(), ProfileError> {
    use fleetpki_x509::pfx::{MAX_MAC_ITERATIONS, Peek};
    match fleetpki_x509::pfx::peek(bytes) {
        Peek::Pfx {
            mac_iterations: Some(n),
        } if n > MAX_MAC_ITERATIONS => Err(ProfileError::certificate(format!(
            "the PKCS#12 MAC iteration count is above {MAX_MAC_ITERATIONS}; re-export the file"
        ))),
        Peek::BadMac(rule) => Err(ProfileError::certificate(format!("PKCS#12: {rule}"))),
        _ => Ok(()),
    }
}

fn read_pkcs12(bytes: &[u8], password: Option<&str>) -> Result<Input, ProfileError> {
    check_iterations(bytes)?;
    let archive = Pkcs12Archive::from_pkcs12(bytes, password.unwrap_or("")).map_err(|e| {
        match (e, password) {
            (P12Error::MacError(_) | P12Error::UnpadError, None) => ProfileError::password(
                "the file is a password-protected PKCS#12 (PFX): pass its password with --password",
            ),
            (P12Error::MacError(_) | P12Error::UnpadError, Some(_)) => ProfileError::password(
                "the password does not open this PKCS#12 file (its integrity check failed)",
            ),
            (P12Error::UnsupportedEncryptionScheme, _) => ProfileError::certificate(
                "the PKCS#12 file uses an encryption scheme that is not supported; re-export it with AES-256 (openssl pkcs12 -export, the default) or 3DES",
            ),
            (P12Error::UnsupportedMacAlgorithm, _) => ProfileError::certificate(
                "the PKCS#12 file uses a MAC algorithm that is not supported; re-export it with SHA-256 (the openssl default)",
            ),
            (e, _) => ProfileError::certificate(format!("not a readable PKCS#12 file: {e}")),
        }
    })?;
    let paired = archive.certs.iter().find(|c| {
        c.local_key_id.as_deref().is_some_and(|id| {
            archive.keys.iter().any(|k| {
                k.local_key_id
                    .as_ref()
                    .is_some_and(|kid| kid.as_ref() == id)
            })
        })
    });
    let parsed: Vec<(Vec<u8>, Certificate)> = match paired {
        Some(bag) => vec![(bag.cert.as_der().to_vec(), parse_bag(bag.cert.as_der())?)],
        None => archive
            .certs
            .iter()
            .map(|b| Ok((b.cert.as_der().to_vec(), parse_bag(b.cert.as_der())?)))
            .collect::<Result<_, ProfileError>>()?,
    };
    let is_ca = |c: &Certificate| {
        c.tbs_certificate()
            .get_extension::<x509_cert::ext::pkix::BasicConstraints>()
            .ok()
            .flatten()
            .is_some_and(|(_, bc)| bc.ca)
    };
    let chosen = parsed
        .iter()
        .find(|(_, c)| !is_ca(c))
        .or_else(|| parsed.first());
    let Some((der, cert)) = chosen else {
        return Err(ProfileError::certificate(
            "the PKCS#12 file holds no certificate",
        ));
    };
    let key_exportable = (!archive.keys.is_empty()).then_some(true);
    let mut input = finish(cert, der.clone(), InputFormat::Pkcs12, key_exportable)?;
    // The key paired by localKeyId, else the only key in the file.
    let paired_key = paired
        .and_then(|bag| bag.local_key_id.as_deref())
        .and_then(|id| {
            archive.keys.iter().find(|k| {
                k.local_key_id
                    .as_ref()
                    .is_some_and(|kid| kid.as_ref() == id)
            })
        })
        .or(match archive.keys.as_slice() {
            [only] => Some(only),
            _ => None,
        });
    input.key_pkcs8 = paired_key.map(|k| KeyDer(Zeroizing::new(k.key.as_der().to_vec())));
    input.chain = archive
        .certs
        .iter()
        .map(|b| b.cert.as_der().to_vec())
        .filter(|d| d != der)
        .collect();
    Ok(input)
}

fn parse_bag(der: &[u8]) -> Result<Certificate, ProfileError> {
    Certificate::from_der(der).map_err(|e| {
        ProfileError::certificate(format!(
            "a certificate in the PKCS#12 file is not valid DER: {e}"
        ))
    })
}
