//! The one error shape for bad values: which field, which rule.

/// A value that breaks a rule. `field` names the input (`--csr`, `template.max-key-size`, …) and
/// `rule` says what was expected, in words an administrator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}
