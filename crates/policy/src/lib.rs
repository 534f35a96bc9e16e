//! fleetpki client policy: the document the management point hands each agent (SPEC §4, §5),
//! signed with the site signing certificate, and the agent's checks before it acts on one.
//!
//! # The document
//!
//! A [`Policy`] names the site, a monotonic `version`, the client it was made for, the
//! templates that client may autoenroll ([`PolicyTemplate`]), how it selects its client
//! certificate ([`SelectionCriteria`] by DN name or OID through [`attribute_oid`], optional
//! issuer list, stores, [`MultipleMatch`]), its cycle ([`Schedule`], with jitter), the
//! site-managed renewal window (default 42 days) and the fallback status point.
//!
//! # Canonical bytes
//!
//! The signed payload is [`canonical_bytes`]: compact `serde_json` output (no whitespace) of
//! the [`Policy`], fields in struct declaration order, enums as snake_case names. The document
//! holds no maps and no floats, so the same policy always serializes to the same bytes. The
//! signature covers the payload bytes exactly as they travel; the verifier parses only those
//! verified bytes and never re-serializes before checking.
//!
//! # The signed form
//!
//! [`sign`] produces a [`SignedPolicy`]: the payload, a detached signature by the site signing
//! key (the X.509 signature value: DER `Ecdsa-Sig-Value` for the default P-256 key, algorithm
//! `ecdsa-with-SHA256`), and the SHA-256 fingerprint of the signing certificate's DER. On the
//! wire ([`SignedPolicy::to_json`]):
//!
//! ```json
//! {"payload":"BASE64","signature":"BASE64","algorithm":"ecdsa-with-SHA256","signer_sha256":"HEX"}
//! ```
//!
//! [`verify`] takes the **pinned** site signing certificate (SPEC §4 trust bootstrap), never
//! one from the document: it refuses an empty signature ([`PolicyError::Unsigned`]), a
//! different signer ([`PolicyError::SignerMismatch`]), an algorithm other than the pinned key's,
//! a signature that does not verify ([`PolicyError::BadSignature`]: tampered payload or
//! signature), and a payload that does not parse or validate. The agent then calls
//! [`check_not_older`] with the version it holds (rollback) and [`check_client`].
//!
//! # Independent verification with openssl
//!
//! Nothing here is fleetpki-specific cryptography: the signature is plain ECDSA over SHA-256 of
//! the payload bytes, so `openssl` verifies a policy on its own. With `payload.json` holding the
//! decoded `payload` bytes, `sig.der` the decoded `signature` bytes and `signing.pem` the site
//! signing certificate:
//!
//! ```sh
//! openssl x509 -in signing.pem -pubkey -noout > pub.pem
//! openssl dgst -sha256 -verify pub.pem -signature sig.der payload.json   # Verified OK
//! openssl x509 -in signing.pem -outform DER | openssl dgst -sha256       # = signer_sha256
//! ```
//!
//! One changed byte in `payload.json` makes `openssl dgst` print `Verification failure` and
//! exit non-zero. (A P-384 signing key verifies with `-sha384`; an Ed25519 key with
//! `openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in payload.json -sigfile sig.der`.)
//! The crate's tests run exactly these commands.

mod attribute;
mod document;
mod error;
mod signed;
#[cfg(test)]
mod tests;

pub use attribute::{DN_ATTRIBUTES, SAN_OID, attribute_oid};
pub use document::{
    DEFAULT_INTERVAL_SECS, DEFAULT_JITTER_SECS, DEFAULT_SITE_MANAGED_RENEWAL_DAYS, DEFAULT_STORE,
    MIN_INTERVAL_SECS, MultipleMatch, Policy, PolicyTemplate, Schedule, SelectionCriteria,
};
pub use error::PolicyError;
pub use signed::{
    MAX_SIGNED_POLICY_BYTES, SignedPolicy, canonical_bytes, check_client, check_not_older, sign,
    verify,
};
