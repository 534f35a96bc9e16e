//! The flattened JWS (RFC 7515 §7.2.2) that carries every ACME POST: parsing with the rules of
//! RFC 8555 §6.2 (protected header only, `alg`/`nonce`/`url` and exactly one of `jwk`/`kid`),
//! signature verification with aws-lc-rs (ES256, ES384, RS256, EdDSA; HS256/384/512 for
//! external account binding only), and RFC 7638 JWK thumbprints.

use crate::problem::{Problem, ProblemType};
use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// Account key algorithms accepted, as listed in `badSignatureAlgorithm` problems.
pub const ACCOUNT_ALGS: [&str; 4] = ["ES256", "ES384", "RS256", "EdDSA"];
/// External account binding MAC algorithms.
pub const EAB_ALGS: [&str; 3] = ["HS256", "HS384", "HS512"];

/// Smallest RSA account key accepted.
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;

/// A JWS algorithm fleetpki knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Es256,
    Es384,
    Rs256,
    EdDsa,
    Hs256,
    Hs384,
    Hs512,
}

impl Alg {
    fn parse(s: &str) -> Option<Alg> {
        Some(match s {
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "RS256" => Alg::Rs256,
            "EdDSA" => Alg::EdDsa,
            "HS256" => Alg::Hs256,
            "HS384" => Alg::Hs384,
            "HS512" => Alg::Hs512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Rs256 => "RS256",
            Alg::EdDsa => "EdDSA",
            Alg::Hs256 => "HS256",
            Alg::Hs384 => "HS384",
            Alg::Hs512 => "HS512",
        }
    }

    fn is_mac(self) -> bool {
        matches!(self, Alg::Hs256 | Alg::Hs384 | Alg::Hs512)
    }
}

/// A public key as a JWK: EC P-256/P-384, RSA, or Ed25519.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jwk {
    P256 { x: Vec<u8>, y: Vec<u8> },
    P384 { x: Vec<u8>, y: Vec<u8> },
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ed25519 { x: Vec<u8> },
}

fn b64(field: &str, text: &str) -> Result<Vec<u8>, Problem> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| Problem::malformed(format!("{field}: not base64url without padding ({e})")))
}

fn b64_field(obj: &Map<String, Value>, field: &str, name: &str) -> Result<Vec<u8>, Problem> {
    match obj.get(name) {
        Some(Value::String(s)) => b64(&format!("{field}.{name}"), s),
        Some(_) => Err(Problem::malformed(format!(
            "{field}.{name}: must be a string"
        ))),
        None => Err(Problem::malformed(format!("{field}.{name}: missing"))),
    }
}

fn bad_key(field: &str, rule: impl std::fmt::Display) -> Problem {
    Problem::new(ProblemType::BadPublicKey, format!("{field}: {rule}"))
}

impl Jwk {
    /// Reads a public JWK; `field` names it in errors (`protected.jwk`, …). Private members
    /// and unsupported key types or curves are refused.
    pub fn parse(field: &str, v: &Value) -> Result<Jwk, Problem> {
        let obj = v
            .as_object()
            .ok_or_else(|| Problem::malformed(format!("{field}: must be a JSON object")))?;
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            if obj.contains_key(private) {
                return Err(bad_key(
                    field,
                    format!("has the private member `{private}`: send the public key only"),
                ));
            }
        }
        let kty = obj
            .get("kty")
            .and_then(Value::as_str)
            .ok_or_else(|| Problem::malformed(format!("{field}.kty: missing or not a string")))?;
        let crv = || {
            obj.get("crv")
                .and_then(Value::as_str)
                .ok_or_else(|| Problem::malformed(format!("{field}.crv: missing or not a string")))
        };
        match kty {
            "EC" => {
                let crv = crv()?;
                let len = match crv {
                    "P-256" => 32,
                    "P-384" => 48,
                    other => {
                        return Err(bad_key(
                            &format!("{field}.crv"),
                            format!("`{other}` is not supported; use P-256 or P-384"),
                        ));
                    }
                };
                let x = b64_field(obj, field, "x")?;
                let y = b64_field(obj, field, "y")?;
                if x.len() != len || y.len() != len {
                    return Err(bad_key(
                        field,
                        format!("x and y must be {len} bytes each for {crv}"),
                    ));
                }
                let jwk = if len == 32 {
                    Jwk::P256 { x, y }
                } else {
                    Jwk::P384 { x, y }
                };
                // The point must be on the curve: aws-lc validates it when it parses the key.
                let alg: &'static dyn signature::VerificationAlgorithm = if len == 32 {
                    &signature::ECDSA_P256_SHA256_FIXED
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED
                };
                if signature::ParsedPublicKey::new(alg, jwk.point()).is_err() {
                    return Err(bad_key(field, "the point is not on the curve"));
                }
                Ok(jwk)
            }
            "RSA" => {
                let n = b64_field(obj, field, "n")?;
                let e = b64_field(obj, field, "e")?;
                let n_trim = strip_zeros(&n);
                let bits = n_trim.len() * 8;
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                    return Err(bad_key(
                        &format!("{field}.n"),
                        format!(
                            "an RSA modulus of {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted"
                        ),
                    ));
                }
                let e_trim = strip_zeros(&e);
                if e_trim.is_empty() || e_trim.len() > 4 || e_trim[e_trim.len() - 1] & 1 == 0 {
                    return Err(bad_key(
                        &format!("{field}.e"),
                        "not an odd exponent of at most 32 bits",
                    ));
                }
                Ok(Jwk::Rsa {
                    n: n_trim.to_vec(),
                    e: e_trim.to_vec(),
                })
            }
            "OKP" => {
                let crv = crv()?;
                if crv != "Ed25519" {
                    return Err(bad_key(
                        &format!("{field}.crv"),
                        format!("`{crv}` is not supported; use Ed25519"),
                    ));
                }
                let x = b64_field(obj, field, "x")?;
                if x.len() != 32 {
                    return Err(bad_key(field, "an Ed25519 key is 32 bytes"));
                }
                Ok(Jwk::Ed25519 { x })
            }
            other => Err(bad_key(
                &format!("{field}.kty"),
                format!("`{other}` is not supported; use EC, RSA or OKP"),
            )),
        }
    }

    /// The uncompressed EC point (EC keys only; empty otherwise).
    fn point(&self) -> Vec<u8> {
        match self {
            Jwk::P256 { x, y } | Jwk::P384 { x, y } => {
                let mut p = Vec::with_capacity(1 + x.len() + y.len());
                p.push(4);
                p.extend_from_slice(x);
                p.extend_from_slice(y);
                p
            }
            _ => Vec::new(),
        }
    }

    /// The canonical JSON of RFC 7638 (required members, sorted, no spaces): both the
    /// thumbprint's input and the form the store keeps.
    pub fn canonical_json(&self) -> String {
        let e = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match self {
            Jwk::P256 { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                e(x),
                e(y)
            ),
            Jwk::P384 { x, y } => format!(
                r#"{{"crv":"P-384","kty":"EC","x":"{}","y":"{}"}}"#,
                e(x),
                e(y)
            ),
            Jwk::Rsa { n, e: ex } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, e(ex), e(n))
            }
            Jwk::Ed25519 { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, e(x)),
        }
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url.
    pub fn thumbprint(&self) -> String {
        let d =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.canonical_json().as_bytes());
        URL_SAFE_NO_PAD.encode(d.as_ref())
    }

    /// The algorithm names this key may sign with.
    fn allows(&self, alg: Alg) -> bool {
        matches!(
            (self, alg),
            (Jwk::P256 { .. }, Alg::Es256)
                | (Jwk::P384 { .. }, Alg::Es384)
                | (Jwk::Rsa { .. }, Alg::Rs256)
                | (Jwk::Ed25519 { .. }, Alg::EdDsa)
        )
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// Which key the request is signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// `jwk`: newAccount, revocation by certificate key, key change's inner JWS.
    Jwk(Jwk),
    /// `kid`: the account URL (EAB: the EAB key id).
    Kid(String),
}

/// The protected header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    pub alg: Alg,
    pub nonce: Option<String>,
    pub url: String,
    pub key: KeyRef,
}

/// What a JWS is for: the header rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An ACME request: account key algorithm, `nonce`, and `jwk` or `kid`.
    Request,
    /// The `externalAccountBinding` of newAccount: a MAC algorithm, `kid`, no nonce.
    Eab,
    /// The inner JWS of a key change: the new key as `jwk`, no nonce.
    KeyChange,
}

/// A parsed (not yet verified) flattened JWS.
#[derive(Debug, Clone)]
pub struct Jws {
    pub protected: Protected,
    /// The payload's bytes; empty for POST-as-GET.
    pub payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn field_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, Problem> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Problem::malformed(format!("{field}: must be a string"))),
        None => Err(Problem::malformed(format!("{field}: missing"))),
    }
}

impl Jws {
    /// Parses an HTTP body (`application/jose+json`).
    pub fn parse(body: &[u8], purpose: Purpose) -> Result<Jws, Problem> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| Problem::malformed(format!("body: not JSON ({e})")))?;
        Self::from_value(&v, purpose)
    }

    /// Parses a JWS given as a JSON value (the EAB and key change inner JWSs are nested).
    pub fn from_value(v: &Value, purpose: Purpose) -> Result<Jws, Problem> {
        let obj = v
            .as_object()
            .ok_or_else(|| Problem::malformed("body: a flattened JWS must be a JSON object"))?;
        if obj.contains_key("signatures") {
            return Err(Problem::malformed(
                "signatures: the general JWS serialization is not allowed; use the flattened one",
            ));
        }
        if obj.contains_key("header") {
            return Err(Problem::malformed(
                "header: an unprotected header is not allowed (RFC 8555 §6.2)",
            ));
        }
        if let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "protected" | "payload" | "signature"))
        {
            return Err(Problem::malformed(format!(
                "{k}: not a member of a flattened JWS"
            )));
        }
        let protected_b64 = field_str(obj, "protected")?;
        let payload_b64 = field_str(obj, "payload")?;
        let signature = b64("signature", field_str(obj, "signature")?)?;
        let header: Value = serde_json::from_slice(&b64("protected", protected_b64)?)
            .map_err(|e| Problem::malformed(format!("protected: not JSON ({e})")))?;
        let header = header
            .as_object()
            .ok_or_else(|| Problem::malformed("protected: must be a JSON object"))?;
        let protected = parse_header(header, purpose)?;
        let payload = b64("payload", payload_b64)?;
        let mut signing_input = Vec::with_capacity(protected_b64.len() + 1 + payload_b64.len());
        signing_input.extend_from_slice(protected_b64.as_bytes());
        signing_input.push(b'.');
        signing_input.extend_from_slice(payload_b64.as_bytes());
        Ok(Jws {
            protected,
            payload,
            signing_input,
            signature,
        })
    }

    /// Verifies the signature with `key` (which must fit the header's `alg`).
    pub fn verify(&self, key: &Jwk) -> Result<(), Problem> {
        let alg = self.protected.alg;
        if !key.allows(alg) {
            return Err(Problem::malformed(format!(
                "protected.alg: {} does not fit the account key's type",
                alg.name()
            )));
        }
        let ok = match key {
            Jwk::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    &self.signing_input,
                    &self.signature,
                )
                .is_ok(),
            Jwk::Ed25519 { x } => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(&self.signing_input, &self.signature)
                .is_ok(),
            Jwk::P256 { .. } => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, key.point())
                    .verify(&self.signing_input, &self.signature)
                    .is_ok()
            }
            Jwk::P384 { .. } => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, key.point())
                    .verify(&self.signing_input, &self.signature)
                    .is_ok()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Problem::malformed(
                "signature: does not verify with the key",
            ))
        }
    }

    /// Verifies the signature with a certificate's public key: `spki_key` is the content of
    /// its subjectPublicKey BIT STRING (EC point, RSAPublicKey DER, or Ed25519 key).
    pub fn verify_with_certificate_key(&self, spki_key: &[u8]) -> Result<(), Problem> {
        let alg: &'static dyn signature::VerificationAlgorithm = match self.protected.alg {
            Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Alg::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::EdDsa => &signature::ED25519,
            other => {
                return Err(Problem::malformed(format!(
                    "protected.alg: {} cannot sign with a certificate key",
                    other.name()
                )));
            }
        };
        UnparsedPublicKey::new(alg, spki_key)
            .verify(&self.signing_input, &self.signature)
            .map_err(|_| {
                Problem::new(
                    ProblemType::Unauthorized,
                    "signature: not made with the key of the certificate",
                )
            })
    }

    /// Verifies an EAB MAC with the EAB key.
    pub fn verify_mac(&self, key: &[u8]) -> Result<(), Problem> {
        let alg = match self.protected.alg {
            Alg::Hs256 => aws_lc_rs::hmac::HMAC_SHA256,
            Alg::Hs384 => aws_lc_rs::hmac::HMAC_SHA384,
            Alg::Hs512 => aws_lc_rs::hmac::HMAC_SHA512,
            other => {
                return Err(Problem::malformed(format!(
                    "externalAccountBinding.protected.alg: {} is not a MAC algorithm",
                    other.name()
                )));
            }
        };
        aws_lc_rs::hmac::verify(
            &aws_lc_rs::hmac::Key::new(alg, key),
            &self.signing_input,
            &self.signature,
        )
        .map_err(|_| {
            Problem::new(
                ProblemType::Unauthorized,
                "externalAccountBinding.signature: the MAC does not verify with the EAB key",
            )
        })
    }

    /// The payload as JSON; an empty payload (POST-as-GET) is refused.
    pub fn json(&self) -> Result<Value, Problem> {
        if self.payload.is_empty() {
            return Err(Problem::malformed("payload: empty, expected a JSON object"));
        }
        let v: Value = serde_json::from_slice(&self.payload)
            .map_err(|e| Problem::malformed(format!("payload: not JSON ({e})")))?;
        if !v.is_object() {
            return Err(Problem::malformed("payload: must be a JSON object"));
        }
        Ok(v)
    }

    /// Whether this is a POST-as-GET (empty payload).
    pub fn is_post_as_get(&self) -> bool {
        self.payload.is_empty()
    }
}

fn parse_header(h: &Map<String, Value>, purpose: Purpose) -> Result<Protected, Problem> {
    let alg_text =
        field_str(h, "alg").map_err(|p| Problem::malformed(format!("protected.{}", p.detail)))?;
    if h.contains_key("crit") {
        return Err(Problem::malformed(
            "protected.crit: no critical header parameters are understood",
        ));
    }
    let alg = Alg::parse(alg_text);
    let (allowed, mac): (&[&'static str], bool) = match purpose {
        Purpose::Eab => (&EAB_ALGS, true),
        _ => (&ACCOUNT_ALGS, false),
    };
    let alg = match alg {
        Some(a) if a.is_mac() == mac => a,
        _ => {
            let mut p = Problem::new(
                ProblemType::BadSignatureAlgorithm,
                format!(
                    "protected.alg: `{alg_text}` is not accepted here; use one of {}",
                    allowed.join(", ")
                ),
            );
            p.algorithms = Some(allowed.to_vec());
            return Err(p);
        }
    };
    let url = field_str(h, "url")
        .map_err(|p| Problem::malformed(format!("protected.{}", p.detail)))?
        .to_string();
    let nonce = match (h.get("nonce"), purpose) {
        (None, Purpose::Request) => {
            return Err(Problem::new(
                ProblemType::BadNonce,
                "protected.nonce: missing",
            ));
        }
        (Some(Value::String(n)), Purpose::Request) => {
            if n.is_empty() || b64("protected.nonce", n).is_err() {
                return Err(Problem::new(
                    ProblemType::BadNonce,
                    "protected.nonce: not a base64url nonce",
                ));
            }
            Some(n.clone())
        }
        (Some(_), Purpose::Request) => {
            return Err(Problem::new(
                ProblemType::BadNonce,
                "protected.nonce: must be a string",
            ));
        }
        (None, _) => None,
        (Some(_), _) => {
            return Err(Problem::malformed(
                "protected.nonce: a nested JWS must not carry a nonce",
            ));
        }
    };
    let key = match (h.get("jwk"), h.get("kid")) {
        (Some(_), Some(_)) => {
            return Err(Problem::malformed(
                "protected: has both jwk and kid; exactly one is allowed",
            ));
        }
        (None, None) => {
            return Err(Problem::malformed("protected: needs jwk or kid"));
        }
        (Some(jwk), None) => {
            if purpose == Purpose::Eab {
                return Err(Problem::malformed(
                    "externalAccountBinding.protected.jwk: the EAB JWS names its key by kid",
                ));
            }
            KeyRef::Jwk(Jwk::parse("protected.jwk", jwk)?)
        }
        (None, Some(kid)) => {
            if purpose == Purpose::KeyChange {
                return Err(Problem::malformed(
                    "payload.protected.kid: the key change's inner JWS carries the new key as jwk",
                ));
            }
            match kid {
                Value::String(k) if !k.is_empty() => KeyRef::Kid(k.clone()),
                _ => {
                    return Err(Problem::malformed(
                        "protected.kid: must be a non-empty string",
                    ));
                }
            }
        }
    };
    Ok(Protected {
        alg,
        nonce,
        url,
        key,
    })
}

#[cfg(test)]
mod tests;
