//! The crate's one error type: every failure names the input field and the rule it broke.

/// Why an X.509 operation failed. `Display` reads `FIELD: RULE`, the same shape as
/// `fleetpki_model::FieldError`, so the CA can pass it to administrators unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum X509Error {
    /// The input is not the PEM or DER it should be.
    #[error("{field}: {rule}")]
    Malformed { field: String, rule: String },
    /// Well-formed, but an algorithm, key or value this crate refuses or does not support.
    #[error("{field}: {rule}")]
    Refused { field: String, rule: String },
    /// A signature that does not verify.
    #[error("{field}: {rule}")]
    BadSignature { field: String, rule: String },
    /// An encrypted key that the given passphrase does not open (or no passphrase was given).
    #[error("{field}: {rule}")]
    Passphrase { field: String, rule: String },
    /// The crypto library or the encoder failed on values that should have been valid.
    #[error("{field}: {rule}")]
    Internal { field: String, rule: String },
}

impl X509Error {
    /// The input the error is about (`csr`, `csr.signature_algorithm`, `passphrase`, ...).
    pub fn field(&self) -> &str {
        match self {
            Self::Malformed { field, .. }
            | Self::Refused { field, .. }
            | Self::BadSignature { field, .. }
            | Self::Passphrase { field, .. }
            | Self::Internal { field, .. } => field,
        }
    }

    /// What was expected, in words an administrator can act on.
    pub fn rule(&self) -> String {
        match self {
            Self::Malformed { rule, .. }
            | Self::Refused { rule, .. }
            | Self::BadSignature { rule, .. }
            | Self::Passphrase { rule, .. }
            | Self::Internal { rule, .. } => rule.clone(),
        }
    }

    pub(crate) fn malformed(field: &str, rule: impl Into<String>) -> Self {
        Self::Malformed {
            field: field.to_string(),
            rule: rule.into(),
        }
    }

    pub(crate) fn refused(field: &str, rule: impl Into<String>) -> Self {
        Self::Refused {
            field: field.to_string(),
            rule: rule.into(),
        }
    }

    pub(crate) fn bad_signature(field: &str, rule: impl Into<String>) -> Self {
        Self::BadSignature {
            field: field.to_string(),
            rule: rule.into(),
        }
    }

    pub(crate) fn passphrase(rule: impl Into<String>) -> Self {
        Self::Passphrase {
            field: "passphrase".to_string(),
            rule: rule.into(),
        }
    }

    pub(crate) fn internal(field: &str, rule: impl Into<String>) -> Self {
        Self::Internal {
            field: field.to_string(),
            rule: rule.into(),
        }
    }

    /// A DER decoding failure of the input named `field`.
    pub(crate) fn der(field: &str, what: &str, e: der::Error) -> Self {
        Self::malformed(field, format!("not a valid DER {what}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_field_colon_rule() {
        let e = X509Error::bad_signature(
            "csr.signature",
            "the signature does not verify against the request's public key",
        );
        assert_eq!(
            e.to_string(),
            "csr.signature: the signature does not verify against the request's public key"
        );
        assert_eq!(e.field(), "csr.signature");
        assert_eq!(
            e.rule(),
            "the signature does not verify against the request's public key"
        );
        assert_eq!(X509Error::passphrase("wrong").field(), "passphrase");
    }
}
