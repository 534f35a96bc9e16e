//! The embedded directory (AD's stand-in): computers, users and services, and the groups that
//! templates grant permissions to.

use crate::FieldError;
use crate::template::{check_dns_name, check_name};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    Computer,
    User,
    Service,
}

impl PrincipalKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Computer => "computer",
            Self::User => "user",
            Self::Service => "service",
        }
    }
    pub fn parse(field: &str, t: &str) -> Result<Self, FieldError> {
        match t.trim().to_ascii_lowercase().as_str() {
            "computer" => Ok(Self::Computer),
            "user" => Ok(Self::User),
            "service" => Ok(Self::Service),
            _ => Err(FieldError::new(
                field,
                format!("`{t}` is not a principal kind; expected computer, user or service"),
            )),
        }
    }
}

/// A computer, user or service account. Group membership lives in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub name: String,
    pub kind: PrincipalKind,
    /// Computers and services: the FQDN.
    #[serde(default)]
    pub dns: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub upn: Option<String>,
    #[serde(default)]
    pub disabled: bool,
}

impl Principal {
    /// Checks every field; a computer needs its FQDN.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_name("principal.name", &self.name)?;
        if let Some(d) = &self.dns {
            check_dns_name("principal.dns", d, false)?;
        } else if self.kind == PrincipalKind::Computer {
            return Err(FieldError::new(
                "principal.dns",
                "a computer needs its DNS name (FQDN), e.g. --dns pc1.fleet.test",
            ));
        }
        if let Some(e) = &self.email {
            check_mailbox("principal.email", e)?;
        }
        if let Some(u) = &self.upn {
            check_mailbox("principal.upn", u)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
}

impl Group {
    pub fn validate(&self) -> Result<(), FieldError> {
        check_name("group.name", &self.name)
    }
}

/// `local@domain.tld` with an ASCII local part and a fully qualified domain.
pub fn check_mailbox(field: &str, v: &str) -> Result<(), FieldError> {
    let bad = || {
        FieldError::new(
            field,
            format!("`{v}` is not an address of the form name@domain.example"),
        )
    };
    let (local, domain) = v.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || !local.bytes().all(|b| b.is_ascii_graphic() && b != b'@')
    {
        return Err(bad());
    }
    check_dns_name(field, domain, false).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computer_needs_fqdn() {
        let mut p = Principal {
            name: "PC1".into(),
            kind: PrincipalKind::Computer,
            dns: None,
            email: None,
            upn: None,
            disabled: false,
        };
        assert_eq!(p.validate().unwrap_err().field, "principal.dns");
        p.dns = Some("pc1.fleet.test".into());
        p.validate().unwrap();
        p.email = Some("nobody".into());
        assert_eq!(p.validate().unwrap_err().field, "principal.email");
    }
}
