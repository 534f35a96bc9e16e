//! The CA's error: every refusal names the field and the rule, whatever layer it came from.

use fleetpki_model::FieldError;
use fleetpki_store::StoreError;
use fleetpki_x509::X509Error;
use std::path::PathBuf;

/// A CA operation that did not happen, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// Bad input or a policy refusal: `field: rule`.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// A named thing (template, principal, group, certificate) that does not exist:
    /// `field: rule`, as for a refusal.
    #[error(transparent)]
    NotFound(FieldError),
    #[error(transparent)]
    X509(#[from] X509Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CaError {
    /// The field a refusal is about, when there is one (for JSON errors and tests).
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Field(f) | Self::NotFound(f) => Some(&f.field),
            Self::X509(x) => Some(x.field()),
            _ => None,
        }
    }

    /// For a name the caller gave as a reference (in a request body, not as the thing acted
    /// on): that it matches nothing is a refusal of the field, not a missing resource.
    pub fn referenced(self) -> CaError {
        match self {
            Self::NotFound(f) => Self::Field(f),
            e => e,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CaError {
        let path = path.into();
        move |source| CaError::Io { path, source }
    }
}

/// Shorthand for a refusal.
pub(crate) fn refuse(field: &str, rule: impl Into<String>) -> CaError {
    CaError::Field(FieldError::new(field, rule))
}

/// Shorthand for a name that matches nothing (HTTP answers 404, where a refusal is 400/403).
pub(crate) fn not_found(field: &str, rule: impl Into<String>) -> CaError {
    CaError::NotFound(FieldError::new(field, rule))
}
