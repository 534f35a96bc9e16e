//! Algorithms: what a SubjectPublicKeyInfo holds, which signature algorithms are accepted
//! (SHA-2 family only; SHA-1 and MD5 are refused by name), and signature verification with
//! aws-lc-rs.

use crate::X509Error;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use der::asn1::{ObjectIdentifier as Oid, UintRef};
use der::{Decode, Sequence};
use fleetpki_model::template::{KeyFamily, KeyInfo};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

pub(crate) const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub(crate) const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
pub(crate) const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub(crate) const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
pub(crate) const SECP521R1: Oid = Oid::new_unwrap("1.3.132.0.35");

pub(crate) const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
pub(crate) const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
pub(crate) const ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
pub(crate) const RSA_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
pub(crate) const RSA_SHA384: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
pub(crate) const RSA_SHA512: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
const RSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");

/// Signature algorithms by OID: display name, and why it is refused when it is.
const SIG_NAMES: &[(&str, &str, Option<&str>)] = &[
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256", None),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384", None),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512", None),
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption", None),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption", None),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption", None),
    ("1.2.840.113549.1.1.10", "RSASSA-PSS", None),
    ("1.3.101.112", "Ed25519", None),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1", Some("SHA-1")),
    (
        "1.2.840.113549.1.1.5",
        "sha1WithRSAEncryption",
        Some("SHA-1"),
    ),
    ("1.3.14.3.2.29", "sha1WithRSASignature", Some("SHA-1")),
    ("1.2.840.10040.4.3", "dsa-with-SHA1", Some("SHA-1")),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption", Some("MD5")),
    ("1.2.840.113549.1.1.3", "md4WithRSAEncryption", Some("MD4")),
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption", Some("MD2")),
    ("1.2.840.10045.4.3.1", "ecdsa-with-SHA224", Some("SHA-224")),
    (
        "1.2.840.113549.1.1.14",
        "sha224WithRSAEncryption",
        Some("SHA-224"),
    ),
    ("2.16.840.1.101.3.4.3.2", "dsa-with-SHA256", Some("DSA")),
    ("1.3.101.113", "Ed448", Some("Ed448")),
];

/// A signature algorithm's conventional name (`ecdsa-with-SHA256`), or its dotted OID.
pub(crate) fn signature_alg_name(oid: &Oid) -> String {
    let dotted = oid.to_string();
    SIG_NAMES
        .iter()
        .find(|(o, _, _)| *o == dotted)
        .map(|(_, n, _)| (*n).to_string())
        .unwrap_or(dotted)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn len(self) -> u32 {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
    fn from_oid(oid: &Oid) -> Option<Self> {
        match *oid {
            SHA256 => Some(Self::Sha256),
            SHA384 => Some(Self::Sha384),
            SHA512 => Some(Self::Sha512),
            _ => None,
        }
    }
}

/// An accepted signature algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SigAlg {
    Ecdsa(Hash),
    RsaPkcs1(Hash),
    RsaPss(Hash),
    Ed25519,
}

impl SigAlg {
    fn describe(self) -> &'static str {
        match self {
            Self::Ecdsa(_) => "an ECDSA",
            Self::RsaPkcs1(_) => "an RSA PKCS#1 v1.5",
            Self::RsaPss(_) => "an RSASSA-PSS",
            Self::Ed25519 => "an Ed25519",
        }
    }
}

/// Classifies a signature AlgorithmIdentifier; `prefix` is `csr` or `certificate`, errors go to
/// `{prefix}.signature_algorithm`.
pub(crate) fn signature_alg(
    prefix: &str,
    alg: &AlgorithmIdentifierRef<'_>,
) -> Result<SigAlg, X509Error> {
    let field = format!("{prefix}.signature_algorithm");
    let name = signature_alg_name(&alg.oid);
    let got = match alg.oid {
        ECDSA_SHA256 => SigAlg::Ecdsa(Hash::Sha256),
        ECDSA_SHA384 => SigAlg::Ecdsa(Hash::Sha384),
        ECDSA_SHA512 => SigAlg::Ecdsa(Hash::Sha512),
        RSA_SHA256 => SigAlg::RsaPkcs1(Hash::Sha256),
        RSA_SHA384 => SigAlg::RsaPkcs1(Hash::Sha384),
        RSA_SHA512 => SigAlg::RsaPkcs1(Hash::Sha512),
        ED25519 => SigAlg::Ed25519,
        RSA_PSS => return pss(&field, alg),
        _ => {
            let dotted = alg.oid.to_string();
            let why = SIG_NAMES
                .iter()
                .find(|(o, _, _)| *o == dotted)
                .and_then(|(_, _, w)| *w);
            return Err(X509Error::refused(
                &field,
                match why {
                    Some(h @ ("SHA-1" | "MD5" | "MD4" | "MD2")) => format!(
                        "{name} is refused: {h} is broken; SHA-256, SHA-384 or SHA-512 signatures are required"
                    ),
                    _ => format!(
                        "{name} is not supported; SHA-256, SHA-384 or SHA-512 with ECDSA, RSA (PKCS#1 v1.5 or PSS) or Ed25519 is required"
                    ),
                },
            ));
        }
    };
    // ECDSA and Ed25519 identifiers carry no parameters; RSA PKCS#1 carries NULL (or, from some
    // encoders, nothing).
    let params_ok = match (&got, &alg.parameters) {
        (_, None) => true,
        (SigAlg::RsaPkcs1(_), Some(p)) => p.is_null(),
        _ => false,
    };
    if !params_ok {
        return Err(X509Error::malformed(
            &field,
            format!("{name} must not carry parameters"),
        ));
    }
    Ok(got)
}

/// RSASSA-PSS-params (RFC 4055); every field has a SHA-1 default, hence all optional.
#[derive(Sequence)]
struct PssParams<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierRef<'a>>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mgf: Option<AlgorithmIdentifierRef<'a>>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    salt_len: Option<u32>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    trailer: Option<u32>,
}

fn pss(field: &str, alg: &AlgorithmIdentifierRef<'_>) -> Result<SigAlg, X509Error> {
    let p: PssParams<'_> = alg
        .parameters
        .as_ref()
        .ok_or_else(|| {
            X509Error::refused(
                field,
                "RSASSA-PSS without parameters means SHA-1, which is refused",
            )
        })?
        .decode_as()
        .map_err(|e| {
            X509Error::malformed(
                field,
                format!("RSASSA-PSS parameters are not valid DER: {e}"),
            )
        })?;
    let sha1 = || {
        X509Error::refused(
            field,
            "RSASSA-PSS with SHA-1 is refused; SHA-256, SHA-384 or SHA-512 is required",
        )
    };
    let hash = p
        .hash
        .as_ref()
        .map(|h| Hash::from_oid(&h.oid))
        .ok_or_else(sha1)?
        .ok_or_else(sha1)?;
    let mgf_hash = p
        .mgf
        .as_ref()
        .filter(|m| m.oid == MGF1)
        .and_then(|m| m.parameters.as_ref())
        .and_then(|a| a.decode_as::<AlgorithmIdentifierRef<'_>>().ok())
        .and_then(|h| Hash::from_oid(&h.oid));
    if mgf_hash != Some(hash) {
        return Err(X509Error::refused(
            field,
            "RSASSA-PSS is accepted only with MGF1 over the same hash as the message",
        ));
    }
    // aws-lc-rs verifies PSS with the salt as long as the hash, the usual choice.
    if p.salt_len != Some(hash.len()) || p.trailer.is_some_and(|t| t != 1) {
        return Err(X509Error::refused(
            field,
            format!(
                "RSASSA-PSS is accepted only with a salt of {} bytes (the hash length)",
                hash.len()
            ),
        ));
    }
    Ok(SigAlg::RsaPss(hash))
}

/// PKCS#1 RSAPublicKey, read only for the modulus size.
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// A public key read from a SubjectPublicKeyInfo, with what verification needs.
pub(crate) struct PublicKey<'a> {
    pub info: KeyInfo,
    spki_der: &'a [u8],
    /// The subjectPublicKey BIT STRING contents (PKCS#1 key, EC point, Ed25519 key).
    key_bits: &'a [u8],
}

impl PublicKey<'_> {
    /// The subjectPublicKey BIT STRING contents.
    pub(crate) fn key_bits(&self) -> &[u8] {
        self.key_bits
    }
}

/// Reads a SubjectPublicKeyInfo; malformed or unsupported keys are errors on `field`.
pub(crate) fn parse_spki<'a>(field: &str, spki_der: &'a [u8]) -> Result<PublicKey<'a>, X509Error> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| X509Error::der(field, "SubjectPublicKeyInfo", e))?;
    let key_bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| X509Error::malformed(field, "the public key BIT STRING has unused bits"))?;
    let info = match spki.algorithm.oid {
        RSA_ENCRYPTION => {
            let k = RsaPublicKey::from_der(key_bits)
                .map_err(|e| X509Error::der(field, "RSA public key", e))?;
            let m = k.modulus.as_bytes();
            let top = m.first().copied().unwrap_or(0);
            let bits = (m.len() as u32).saturating_sub(1) * 8 + (8 - top.leading_zeros());
            KeyInfo {
                family: KeyFamily::Rsa,
                bits,
            }
        }
        EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<Oid>().ok())
                .ok_or_else(|| X509Error::refused(field, "EC keys must name their curve (namedCurve); explicit parameters are not supported"))?;
            let bits = match curve {
                SECP256R1 => 256,
                SECP384R1 => 384,
                SECP521R1 => 521,
                other => {
                    return Err(X509Error::refused(
                        field,
                        format!("the EC curve {other} is not supported; use P-256 or P-384"),
                    ));
                }
            };
            KeyInfo {
                family: KeyFamily::Ecdsa,
                bits,
            }
        }
        ED25519 => {
            if key_bits.len() != 32 {
                return Err(X509Error::malformed(
                    field,
                    "an Ed25519 public key is 32 bytes",
                ));
            }
            KeyInfo {
                family: KeyFamily::Ed25519,
                bits: 256,
            }
        }
        other => {
            let name = match other.to_string().as_str() {
                "1.2.840.10040.4.1" => "DSA".to_string(),
                "1.3.101.113" => "Ed448".to_string(),
                "1.3.101.110" | "1.3.101.111" => "X25519/X448 (key agreement only)".to_string(),
                "1.2.840.113549.1.1.10" => "RSASSA-PSS-restricted RSA".to_string(),
                dotted => format!("the key algorithm {dotted}"),
            };
            return Err(X509Error::refused(
                field,
                format!("{name} keys are not supported; use ECDSA (P-256, P-384), RSA or Ed25519"),
            ));
        }
    };
    Ok(PublicKey {
        info,
        spki_der,
        key_bits,
    })
}

/// Verifies `signature` over `message` with `key` and `alg`. Errors go to `{prefix}.public_key`,
/// `{prefix}.signature_algorithm` and `{prefix}.signature` (whose rule is `bad_rule`).
pub(crate) fn verify(
    prefix: &str,
    key: &PublicKey<'_>,
    alg: SigAlg,
    message: &[u8],
    signature: &[u8],
    bad_rule: &str,
) -> Result<(), X509Error> {
    use Hash::*;
    let bits = key.info.bits;
    let (algorithm, key_bytes): (&'static dyn VerificationAlgorithm, &[u8]) =
        match (key.info.family, alg) {
            // SPKI is the form aws-lc parses first for EC keys.
            (KeyFamily::Ecdsa, SigAlg::Ecdsa(h)) => {
                let a: &'static sig::EcdsaVerificationAlgorithm = match (bits, h) {
                    (256, Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
                    (256, Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
                    (256, Sha512) => &sig::ECDSA_P256_SHA512_ASN1,
                    (384, Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
                    (384, Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
                    (384, Sha512) => &sig::ECDSA_P384_SHA512_ASN1,
                    (_, Sha256) => &sig::ECDSA_P521_SHA256_ASN1,
                    (_, Sha384) => &sig::ECDSA_P521_SHA384_ASN1,
                    (_, Sha512) => &sig::ECDSA_P521_SHA512_ASN1,
                };
                (a, key.spki_der)
            }
            // PKCS#1 RSAPublicKey is the form aws-lc parses first for RSA keys.
            (KeyFamily::Rsa, SigAlg::RsaPkcs1(h)) => {
                let a: &'static sig::RsaParameters = match (bits >= 2048, h) {
                    (true, Sha256) => &sig::RSA_PKCS1_2048_8192_SHA256,
                    (true, Sha384) => &sig::RSA_PKCS1_2048_8192_SHA384,
                    (true, Sha512) => &sig::RSA_PKCS1_2048_8192_SHA512,
                    // Seed 002 still has roles with 1024-bit keys; the template decides, not the parser.
                    (false, Sha256) if bits >= 1024 => {
                        &sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
                    }
                    (false, Sha512) if bits >= 1024 => {
                        &sig::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY
                    }
                    _ => return Err(rsa_too_small(prefix, bits)),
                };
                (a, key.key_bits)
            }
            (KeyFamily::Rsa, SigAlg::RsaPss(h)) => {
                if bits < 2048 {
                    return Err(rsa_too_small(prefix, bits));
                }
                let a: &'static sig::RsaParameters = match h {
                    Sha256 => &sig::RSA_PSS_2048_8192_SHA256,
                    Sha384 => &sig::RSA_PSS_2048_8192_SHA384,
                    Sha512 => &sig::RSA_PSS_2048_8192_SHA512,
                };
                (a, key.key_bits)
            }
            (KeyFamily::Ed25519, SigAlg::Ed25519) => (&sig::ED25519, key.key_bits),
            (_, alg) => {
                return Err(X509Error::refused(
                    &format!("{prefix}.signature_algorithm"),
                    format!(
                        "{} signature cannot come from a {} key",
                        alg.describe(),
                        key.info
                    ),
                ));
            }
        };
    // One parse per verification: the key is used once.
    let parsed = ParsedPublicKey::new(algorithm, key_bytes).map_err(|e| {
        X509Error::refused(
            &format!("{prefix}.public_key"),
            format!("the {} public key is invalid: {e}", key.info),
        )
    })?;
    parsed
        .verify_sig(message, signature)
        .map_err(|_| X509Error::bad_signature(&format!("{prefix}.signature"), bad_rule))
}

fn rsa_too_small(prefix: &str, bits: u32) -> X509Error {
    X509Error::refused(
        &format!("{prefix}.public_key"),
        format!(
            "an RSA-{bits} key is too small to verify (1024 bits with SHA-256/512, 2048 bits otherwise)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::AnyRef;

    #[test]
    fn names_and_refusals() {
        assert_eq!(signature_alg_name(&ECDSA_SHA256), "ecdsa-with-SHA256");
        assert_eq!(signature_alg_name(&Oid::new_unwrap("1.2.3")), "1.2.3");
        let sha1 = AlgorithmIdentifierRef {
            oid: Oid::new_unwrap("1.2.840.113549.1.1.5"),
            parameters: Some(AnyRef::NULL),
        };
        let e = signature_alg("csr", &sha1).unwrap_err();
        assert_eq!(e.field(), "csr.signature_algorithm");
        assert!(
            e.rule().contains("SHA-1 is broken") && e.rule().contains("SHA-256"),
            "{e}"
        );
        let md5 = AlgorithmIdentifierRef {
            oid: Oid::new_unwrap("1.2.840.113549.1.1.4"),
            parameters: None,
        };
        assert!(
            signature_alg("certificate", &md5)
                .unwrap_err()
                .rule()
                .contains("MD5")
        );
        let ok = AlgorithmIdentifierRef {
            oid: RSA_SHA384,
            parameters: Some(AnyRef::NULL),
        };
        assert_eq!(
            signature_alg("csr", &ok).unwrap(),
            SigAlg::RsaPkcs1(Hash::Sha384)
        );
        let bad_params = AlgorithmIdentifierRef {
            oid: ECDSA_SHA256,
            parameters: Some(AnyRef::NULL),
        };
        assert!(signature_alg("csr", &bad_params).is_err());
    }
}
