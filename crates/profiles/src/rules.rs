//! The vocabulary of profiles: rules (an id, a severity, the seed's words, and how to check
//! them), profiles (a seed 002 section with its rules), and the outcome types.

use serde::Serialize;

/// How much a failed rule matters: an `Error` makes the certificate non-compliant, a `Warning`
/// is worth knowing but does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of one rule on one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Fail,
    /// The rule needs context the caller did not give; the finding's advice names the option
    /// that supplies it.
    Unverified,
    /// The rule does not apply to this certificate or configuration.
    NotApplicable,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Unverified => "unverified",
            Self::NotApplicable => "not-applicable",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of the site system's names a rule looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fqdn {
    /// `Context::intranet_fqdn`.
    Intranet,
    /// `Context::internet_fqdn`.
    Internet,
    /// The failover cluster's FQDN, given as `Context::intranet_fqdn` (`--intranet-fqdn`).
    Cluster,
}

/// How a rule is checked. Each variant is evaluated by `check` on a certificate and, as far as
/// a template decides it, by `check_template`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Check {
    /// The EKU extension contains this dotted OID.
    Eku { oid: &'static str },
    /// An RSA key of at most this many bits; EC and Ed25519 keys pass (far smaller, and the
    /// seed's limits are RSA lengths).
    KeyMaxBits { bits: u32 },
    /// An RSA key of exactly one of these sizes; other families fail (the list is of RSA lengths).
    RsaKeySizes { sizes: &'static [u32] },
    /// The private key is exportable (`Context::key_exportable`).
    ExportableKey,
    /// Delivered as a PKCS#12 file holding the private key (`Context::format`).
    Pkcs12Export,
    /// Delivered as a DER file, not Base64/PEM (`Context::format`).
    DerEncoding,
    /// Site systems: the subject (CN, `&`-split) or SAN DNS holds this name when the site system
    /// is configured for it; not applicable when only the other name is configured.
    SiteSystemName { fqdn: Fqdn },
    /// The subject or SAN DNS holds this name, always required.
    NameInSubjectOrSan { fqdn: Fqdn },
    /// The subject itself (not the SAN) holds this name.
    NameInSubject { fqdn: Fqdn },
    /// A CN equals `Context::service_name`.
    CnServiceName,
    /// A non-empty subject holds `Context::computer_name`.
    SubjectComputerName,
    /// notAfter − notBefore of at least this many days.
    ValidityAtLeastDays { days: i64 },
    /// A subject or a SAN value is present (uniqueness across computers is not visible in one
    /// certificate).
    SubjectOrSanPresent,
    /// A non-empty subject.
    SubjectPresent,
    /// Several SAN values: only the first is used.
    FirstSanOnly,
    /// No SAN extension.
    NoSan,
    /// keyUsage digitalSignature + keyEncipherment (a0) for RSA keys; digitalSignature for EC
    /// and Ed25519 keys, with a warning that keyEncipherment does not apply to them.
    KeyUsageA0,
    /// basicConstraints CA:TRUE.
    CaBasicConstraints,
    /// keyUsage keyCertSign.
    CaKeyCertSign,
    /// Issuer = subject and signed by its own key.
    SelfSigned,
    /// A SHA-2 signature (SHA-256/384/512, or Ed25519), not SHA-1 or MD5.
    Sha2Signature,
    /// `Context::now` within notBefore..notAfter.
    WithinValidity,
}

/// One requirement of seed 002.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Stable, short, kebab-case: `eku-server-auth`, `key-max-2048`.
    pub id: &'static str,
    pub severity: Severity,
    /// The seed's words (SPEC §7 for the two rules every profile has).
    pub requirement: &'static str,
    pub check: Check,
}

/// One section of seed 002: a role's certificate and the rules it must meet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// `site-system-https`, … (SPEC §7).
    pub name: &'static str,
    /// The seed's section heading.
    pub title: &'static str,
    /// Which roles or computers use the certificate.
    pub applies_to: &'static str,
    pub rules: Vec<Rule>,
}

impl Profile {
    /// The rule with this id, if the profile has it.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}
