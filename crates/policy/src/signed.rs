//! The signed form that travels: canonical payload bytes, a detached signature by the site
//! signing certificate's key, and its verification against the pinned certificate.

use crate::{Policy, PolicyError};
use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use der::Encode;
use fleetpki_model::template::{HashAlg, KeyFamily, KeyInfo};
use fleetpki_x509::cert;
use fleetpki_x509::key::{PrivateKey, Signer};
use serde::Deserialize;

/// A signed policy larger than this is refused before parsing: a policy lists a handful of
/// templates, so megabytes mean an attack or a bug.
pub const MAX_SIGNED_POLICY_BYTES: usize = 1 << 20;

/// A policy as it travels: the canonical JSON bytes of a [`Policy`] and a detached signature
/// over exactly those bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPolicy {
    /// The canonical JSON bytes of the [`Policy`] ([`canonical_bytes`]).
    pub payload: Vec<u8>,
    /// The X.509 signature value: ECDSA as a DER Ecdsa-Sig-Value, RSA PKCS#1 v1.5, or the
    /// 64-byte Ed25519 signature.
    pub signature: Vec<u8>,
    /// `ecdsa-with-SHA256` (P-256), `ecdsa-with-SHA384` (P-384), `sha256WithRSAEncryption`
    /// or `Ed25519`. Informational: the verifier derives the algorithm from the pinned key
    /// and refuses a document that claims another.
    pub algorithm: String,
    /// SHA-256 fingerprint (lower hex) of the signing certificate's DER.
    pub signer_sha256: String,
}

/// The JSON envelope; every field optional so that a missing one gets a precise error.
#[derive(Deserialize)]
struct Wire {
    payload: Option<String>,
    signature: Option<String>,
    algorithm: Option<String>,
    signer_sha256: Option<String>,
}

impl SignedPolicy {
    /// `{"payload":"BASE64","signature":"BASE64","algorithm":"...","signer_sha256":"HEX"}`:
    /// standard base64 with padding, keys always in this order, no whitespace.
    pub fn to_json(&self) -> String {
        // Built by hand so the key order does not depend on serde_json's `preserve_order`
        // feature; a `Value::String` prints (escapes) infallibly.
        let s = |v: &str| serde_json::Value::String(v.to_string()).to_string();
        format!(
            r#"{{"payload":{},"signature":{},"algorithm":{},"signer_sha256":{}}}"#,
            s(&B64.encode(&self.payload)),
            s(&B64.encode(&self.signature)),
            s(&self.algorithm),
            s(&self.signer_sha256),
        )
    }

    /// Reads [`SignedPolicy::to_json`]'s form. A missing or empty `signature` is
    /// [`PolicyError::Unsigned`]; anything else missing or undecodable is
    /// [`PolicyError::Malformed`] on that field. The payload is not parsed here: that
    /// happens only after [`verify`] checked the signature.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_SIGNED_POLICY_BYTES {
            return Err(PolicyError::malformed(
                "signed_policy",
                format!(
                    "{} bytes exceeds the {MAX_SIGNED_POLICY_BYTES}-byte limit",
                    text.len()
                ),
            ));
        }
        let w: Wire = serde_json::from_str(text).map_err(|e| {
            PolicyError::malformed(
                "signed_policy",
                format!("not the signed policy JSON object: {e}"),
            )
        })?;
        let signature = match w.signature.as_deref() {
            None | Some("") => return Err(PolicyError::Unsigned),
            Some(s) => b64("signature", s)?,
        };
        let required = |field: &str, v: Option<String>| {
            v.ok_or_else(|| PolicyError::malformed(field, "missing"))
        };
        let payload = b64("payload", &required("payload", w.payload)?)?;
        Ok(Self {
            payload,
            signature,
            algorithm: required("algorithm", w.algorithm)?,
            signer_sha256: required("signer_sha256", w.signer_sha256)?,
        })
    }
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, PolicyError> {
    B64.decode(s)
        .map_err(|e| PolicyError::malformed(field, format!("not standard base64: {e}")))
}

/// The canonical bytes of a policy: `serde_json` compact output (no whitespace), fields in
/// struct declaration order, enums as their snake_case names, strings in UTF-8 with serde_json's
/// escaping. [`Policy`] holds no maps and no floats, so nothing depends on hash order or float
/// formatting: the same policy always gives the same bytes.
pub fn canonical_bytes(policy: &Policy) -> Result<Vec<u8>, PolicyError> {
    serde_json::to_vec(policy)
        .map_err(|e| PolicyError::malformed("policy", format!("cannot serialize the policy: {e}")))
}

/// How one signing key type signs policy: the name that travels and the aws-lc verifier.
struct Scheme {
    name: &'static str,
    verifier: &'static dyn VerificationAlgorithm,
}

/// The one scheme per key type: what the site signing key produces through `Signer`.
fn scheme(field: &str, key: KeyInfo) -> Result<Scheme, PolicyError> {
    let (name, verifier): (&'static str, &'static dyn VerificationAlgorithm) = match (
        key.family, key.bits,
    ) {
        (KeyFamily::Ecdsa, 256) => ("ecdsa-with-SHA256", &sig::ECDSA_P256_SHA256_ASN1),
        (KeyFamily::Ecdsa, 384) => ("ecdsa-with-SHA384", &sig::ECDSA_P384_SHA384_ASN1),
        (KeyFamily::Rsa, b) if (2048..=8192).contains(&b) => {
            ("sha256WithRSAEncryption", &sig::RSA_PKCS1_2048_8192_SHA256)
        }
        (KeyFamily::Ed25519, _) => ("Ed25519", &sig::ED25519),
        _ => {
            return Err(PolicyError::refused(
                field,
                format!(
                    "a {key} key cannot sign policy; use ECDSA P-256 (the site default), P-384, RSA 2048+ or Ed25519"
                ),
            ));
        }
    };
    Ok(Scheme { name, verifier })
}

/// The pinned certificate's signature scheme and raw public key (the SPKI BIT STRING
/// contents: EC point, PKCS#1 RSAPublicKey or Ed25519 key, the forms aws-lc verifies with).
fn pinned_key(field: &str, cert_der: &[u8]) -> Result<(Scheme, Vec<u8>, Vec<u8>), PolicyError> {
    let c = cert::parse(field, cert_der)?;
    let info = cert::info(&c)?;
    let spki = c.tbs_certificate().subject_public_key_info();
    let key_bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| PolicyError::malformed(field, "the public key BIT STRING has unused bits"))?
        .to_vec();
    let spki_der = spki
        .to_der()
        .map_err(|e| PolicyError::malformed(field, format!("cannot encode the public key: {e}")))?;
    Ok((scheme(field, info.key)?, key_bits, spki_der))
}

/// DER of a certificate given as DER or one PEM block: the fingerprint is over DER.
fn cert_der(field: &str, cert: &[u8]) -> Result<Vec<u8>, PolicyError> {
    let blocks = fleetpki_x509::pem::decode_all(field, cert, "CERTIFICATE")?;
    match <[Vec<u8>; 1]>::try_from(blocks) {
        Ok([der]) => Ok(der),
        Err(b) => Err(PolicyError::malformed(
            field,
            format!("expected one certificate, found {}", b.len()),
        )),
    }
}

/// Signs `policy` (validated first) with the site signing key. `signing_cert_der` is the site
/// signing certificate (DER, or one PEM block); its public key must be `key`'s.
pub fn sign(
    policy: &Policy,
    key: &PrivateKey,
    signing_cert_der: &[u8],
) -> Result<SignedPolicy, PolicyError> {
    policy.validate()?;
    let der = cert_der("signing_cert", signing_cert_der)?;
    let (scheme, _, spki_der) = pinned_key("signing_cert", &der)?;
    if spki_der != key.public_key_der() {
        return Err(PolicyError::refused(
            "signing_cert",
            "the certificate's public key is not the signing key's; pass the site signing certificate with its key",
        ));
    }
    let payload = canonical_bytes(policy)?;
    // Hash is used by RSA only; P-256/P-384/Ed25519 keys fix their own, matching `scheme`.
    let signature = key.signer(HashAlg::Sha256).sign(&payload)?;
    Ok(SignedPolicy {
        payload,
        signature,
        algorithm: scheme.name.to_string(),
        signer_sha256: cert::fingerprint(&der),
    })
}

/// Verifies `signed` against the PINNED site signing certificate (DER, or one PEM block) and
/// returns the policy. In order: the signature is present ([`PolicyError::Unsigned`]);
/// `signer_sha256` is the pinned certificate's fingerprint ([`PolicyError::SignerMismatch`]);
/// `algorithm` is the pinned key's ([`PolicyError::Refused`]); the signature verifies over the
/// payload bytes with the pinned public key ([`PolicyError::BadSignature`]: tampered); the
/// payload parses ([`PolicyError::Malformed`]) and validates ([`PolicyError::Invalid`]).
/// Nothing in the document chooses the key or the algorithm.
pub fn verify(
    signed: &SignedPolicy,
    pinned_signing_cert_der: &[u8],
) -> Result<Policy, PolicyError> {
    let field = "pinned_signing_cert";
    let der = cert_der(field, pinned_signing_cert_der)?;
    let (scheme, key_bits, _) = pinned_key(field, &der)?;
    if signed.signature.is_empty() {
        return Err(PolicyError::Unsigned);
    }
    let pinned = cert::fingerprint(&der);
    if !signed.signer_sha256.eq_ignore_ascii_case(&pinned) {
        return Err(PolicyError::SignerMismatch {
            pinned,
            got: signed.signer_sha256.clone(),
        });
    }
    if signed.algorithm != scheme.name {
        return Err(PolicyError::refused(
            "algorithm",
            format!(
                "`{}` is not the pinned site signing key's algorithm ({})",
                signed.algorithm, scheme.name
            ),
        ));
    }
    UnparsedPublicKey::new(scheme.verifier, &key_bits)
        .verify(&signed.payload, &signed.signature)
        .map_err(|_| PolicyError::BadSignature {
            field: "signature".into(),
            rule: "the signature does not verify with the pinned site signing certificate: the policy or its signature was altered".into(),
        })?;
    let policy: Policy = serde_json::from_slice(&signed.payload).map_err(|e| {
        PolicyError::malformed(
            "payload",
            format!("the signed payload is not a policy: {e}"),
        )
    })?;
    policy.validate()?;
    Ok(policy)
}

/// Agent-side rollback check: `Ok` when `new.version >= held_version` (the same version may be
/// fetched again); an agent that holds no policy passes 0.
pub fn check_not_older(new: &Policy, held_version: i64) -> Result<(), PolicyError> {
    if new.version < held_version {
        return Err(PolicyError::Rollback {
            held: held_version,
            offered: new.version,
        });
    }
    Ok(())
}

/// Agent-side check that the policy was made for this client (computer names and FQDNs compare
/// case-insensitively), so one client's policy cannot be replayed to another.
pub fn check_client(policy: &Policy, client: &str) -> Result<(), PolicyError> {
    if !policy.client.eq_ignore_ascii_case(client.trim()) {
        return Err(PolicyError::invalid(
            "client",
            format!(
                "the policy was made for `{}`, not for `{}`",
                policy.client,
                client.trim()
            ),
        ));
    }
    Ok(())
}
