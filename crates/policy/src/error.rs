//! The crate's one error type: every failure names the field and the rule it broke, so the
//! agent can log it and report it to the fallback status point unchanged.

use fleetpki_x509::X509Error;

/// Why a policy could not be built, signed, read or accepted. `Display` reads `FIELD: RULE`,
/// the shape of `fleetpki_model::FieldError` and `fleetpki_x509::X509Error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A policy value breaks a rule (also: an unknown selection attribute name).
    #[error("{field}: {rule}")]
    Invalid { field: String, rule: String },
    /// The signed form or its payload is not the JSON / base64 it should be.
    #[error("{field}: {rule}")]
    Malformed { field: String, rule: String },
    /// No signature at all: unsigned policy is refused.
    #[error("signature: the policy is unsigned (empty signature); unsigned policy is refused")]
    Unsigned,
    /// Signed by a certificate other than the pinned site signing certificate.
    #[error(
        "signer_sha256: the policy names signing certificate {got}, not the pinned site signing certificate {pinned}"
    )]
    SignerMismatch { pinned: String, got: String },
    /// The signature does not verify: the payload or the signature was altered.
    #[error("{field}: {rule}")]
    BadSignature { field: String, rule: String },
    /// An algorithm or key this crate does not sign or verify with, or a key that does not
    /// belong to the certificate.
    #[error("{field}: {rule}")]
    Refused { field: String, rule: String },
    /// The offered policy is older than the one the agent holds (rollback).
    #[error(
        "version: policy version {offered} is older than the held version {held}; refusing the rollback"
    )]
    Rollback { held: i64, offered: i64 },
    /// A certificate or key failure from the X.509 layer (already `FIELD: RULE`).
    #[error(transparent)]
    X509(#[from] X509Error),
}

impl PolicyError {
    /// The input the error is about (`signature`, `signer_sha256`, `payload`, `schedule.jitter_secs`, ...).
    pub fn field(&self) -> &str {
        match self {
            Self::Invalid { field, .. }
            | Self::Malformed { field, .. }
            | Self::BadSignature { field, .. }
            | Self::Refused { field, .. } => field,
            Self::Unsigned => "signature",
            Self::SignerMismatch { .. } => "signer_sha256",
            Self::Rollback { .. } => "version",
            Self::X509(e) => e.field(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            rule: rule.into(),
        }
    }

    pub(crate) fn malformed(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Malformed {
            field: field.into(),
            rule: rule.into(),
        }
    }

    pub(crate) fn refused(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Refused {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_field_colon_rule() {
        let e = PolicyError::invalid("schedule.interval_secs", "must be at least 60");
        assert_eq!(e.to_string(), "schedule.interval_secs: must be at least 60");
        assert_eq!(e.field(), "schedule.interval_secs");
        let r = PolicyError::Rollback {
            held: 7,
            offered: 5,
        };
        assert!(r.to_string().starts_with("version: "), "{r}");
        assert!(r.to_string().contains('7') && r.to_string().contains('5'));
        assert!(PolicyError::Unsigned.to_string().starts_with("signature: "));
        let m = PolicyError::SignerMismatch {
            pinned: "aa".into(),
            got: "bb".into(),
        };
        assert_eq!(m.field(), "signer_sha256");
        assert!(m.to_string().starts_with("signer_sha256: "));
    }
}
