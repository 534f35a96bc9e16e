//! The crate's one error type: unknown profile names and unreadable certificate files.

/// Why a profile could not be found or an input could not be read. `Display` reads
/// `FIELD: RULE` (`--profile: …`, `certificate: …`, `--password: …`), the shape every fleetpki
/// error has, so the CLI and the CA pass it on unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// `--profile NAME` names no profile; `known` lists the names there are.
    #[error("--profile: `{name}` is not a role profile; known profiles: {known}")]
    UnknownProfile { name: String, known: String },
    /// The input is not a certificate, or not one this crate can read.
    #[error("certificate: {rule}")]
    Certificate { rule: String },
    /// A PKCS#12 file whose password is missing or wrong.
    #[error("--password: {rule}")]
    Password { rule: String },
}

impl ProfileError {
    /// The input the error is about: `--profile`, `certificate` or `--password`.
    pub fn field(&self) -> &'static str {
        match self {
            Self::UnknownProfile { .. } => "--profile",
            Self::Certificate { .. } => "certificate",
            Self::Password { .. } => "--password",
        }
    }

    /// What was expected, in words an administrator can act on.
    pub fn rule(&self) -> String {
        match self {
            Self::UnknownProfile { name, known } => {
                format!("`{name}` is not a role profile; known profiles: {known}")
            }
            Self::Certificate { rule } | Self::Password { rule } => rule.clone(),
        }
    }

    pub(crate) fn certificate(rule: impl Into<String>) -> Self {
        Self::Certificate { rule: rule.into() }
    }

    pub(crate) fn password(rule: impl Into<String>) -> Self {
        Self::Password { rule: rule.into() }
    }
}

impl From<fleetpki_x509::X509Error> for ProfileError {
    fn from(e: fleetpki_x509::X509Error) -> Self {
        // The x509 layer names sub-fields (`certificate.public_key`); keep them in the rule.
        let rule = match e.field() {
            "certificate" => e.rule(),
            f => format!("{f}: {}", e.rule()),
        };
        Self::Certificate { rule }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_field_colon_rule() {
        let e = ProfileError::password("wrong");
        assert_eq!(e.to_string(), "--password: wrong");
        assert_eq!(e.field(), "--password");
        let e = ProfileError::UnknownProfile {
            name: "x".into(),
            known: "a, b".into(),
        };
        assert_eq!(e.to_string(), format!("{}: {}", e.field(), e.rule()));
    }
}
