//! The policy document: what the management point tells one client (SPEC §4, §5): which
//! templates to autoenroll, how to select its client certificate, and when to run.

use crate::PolicyError;
use crate::attribute::attribute_oid;
use fleetpki_model::UnixTime;
use fleetpki_model::template::Template;
use serde::{Deserialize, Serialize};

/// Agent cycle by default: hourly, like Configuration Manager's client policy polling.
pub const DEFAULT_INTERVAL_SECS: i64 = 3_600;
/// Spread by default: up to half an hour, so a fleet updated at once does not arrive at once
/// (seed 003).
pub const DEFAULT_JITTER_SECS: i64 = 1_800;
/// Site-managed certificates renew this many days before expiry by default (SPEC §1).
pub const DEFAULT_SITE_MANAGED_RENEWAL_DAYS: i64 = 42;
/// The store the agent selects its client certificate from by default (SPEC §5).
pub const DEFAULT_STORE: &str = "personal";
/// The shortest cycle a policy may ask for; shorter only loads the site.
pub const MIN_INTERVAL_SECS: i64 = 60;

/// The policy for one client, as the management point signs it. Field order is the canonical
/// serialization order (see [`crate::canonical_bytes`]): do not reorder fields, and append new
/// ones with `#[serde(default)]` so older documents still read.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The site's three-character code.
    pub site_code: String,
    /// Monotonic, at least 1; agents refuse a lower one than they hold ([`crate::check_not_older`]).
    pub version: i64,
    pub issued_at: UnixTime,
    /// The client (computer name or FQDN) this policy was made for.
    pub client: String,
    /// Templates this client may autoenroll.
    pub templates: Vec<PolicyTemplate>,
    /// How the agent picks its client authentication certificate.
    pub selection: SelectionCriteria,
    /// Candidates must chain to one of these issuers: SHA-256 fingerprints (lower hex) of issuer
    /// certificates. Empty: any issuer the agent trusts.
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Stores the candidates come from (`personal`, `trusted-people`, ...); default `personal`.
    #[serde(default = "default_stores")]
    pub stores: Vec<String>,
    /// What to do when more than one certificate still matches.
    #[serde(default)]
    pub multiple_match: MultipleMatch,
    #[serde(default)]
    pub schedule: Schedule,
    /// Site-managed certificates renew this many days before expiry (default 42).
    #[serde(default = "default_site_managed_renewal_days")]
    pub site_managed_renewal_days: i64,
    /// The fallback status point's URL, where the agent reports what it cannot tell the
    /// management point (selection failed, policy signature invalid, ...).
    #[serde(default)]
    pub fallback_status_point: Option<String>,
}

fn default_stores() -> Vec<String> {
    vec![DEFAULT_STORE.to_string()]
}

fn default_site_managed_renewal_days() -> i64 {
    DEFAULT_SITE_MANAGED_RENEWAL_DAYS
}

/// A template as the agent needs it: enough to decide enroll / renew / re-enroll and to make
/// a fitting key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PolicyTemplate {
    pub name: String,
    pub display_name: String,
    /// A major version newer than a held certificate's means re-enroll (SPEC §3).
    pub major: u32,
    pub minor: u32,
    pub validity_secs: i64,
    /// Renew when the remaining lifetime falls to this (or at 80 %, whichever is later).
    pub renewal_period_secs: i64,
    /// As the template's `KeyRule` Display: `ecdsa:256-384`, `rsa:2048-4096`, `ed25519`.
    pub key_algorithms: Vec<String>,
    pub exportable: bool,
}

impl PolicyTemplate {
    /// The agent's view of a CA template.
    pub fn from_template(t: &Template) -> Self {
        Self {
            name: t.name.clone(),
            display_name: t.display_name.clone(),
            major: t.version.major,
            minor: t.version.minor,
            validity_secs: t.validity,
            renewal_period_secs: t.renewal_period,
            key_algorithms: t.key_algorithms.iter().map(|k| k.to_string()).collect(),
            exportable: t.exportable,
        }
    }
}

/// Client certificate selection criteria (seed 000). JSON: `"default"`,
/// `{"subject_contains":"..."}`, `{"subject_attribute":{"oid":"2.5.4.11","value":"..."}}`,
/// `{"san_match":"..."}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SelectionCriteria {
    /// Subject or SAN contains the computer's name or FQDN.
    #[default]
    Default,
    /// The subject (as a string) contains this text.
    SubjectContains(String),
    /// A subject attribute (dotted OID, see [`crate::attribute_oid`]) equals `value`;
    /// OID 2.5.29.17 selects on the first SAN value.
    SubjectAttribute { oid: String, value: String },
    /// The first SAN value matches this text.
    SanMatch(String),
}

impl SelectionCriteria {
    /// "subject attribute matches" by DN name (`OU`, `E-mail`, ...) or dotted OID.
    pub fn subject_attribute(name_or_oid: &str, value: &str) -> Result<Self, PolicyError> {
        Ok(Self::SubjectAttribute {
            oid: attribute_oid("selection.subject_attribute.oid", name_or_oid)?,
            value: value.to_string(),
        })
    }
}

/// When several certificates still match (seed 000).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MultipleMatch {
    /// Select none, fail, and report the candidates to the fallback status point.
    #[default]
    Fail,
    /// Select the one with the latest notAfter.
    LongestValidity,
}

/// The agent's cycle: run every `interval_secs`, each run delayed by a random 0..=`jitter_secs`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub interval_secs: i64,
    pub jitter_secs: i64,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            interval_secs: DEFAULT_INTERVAL_SECS,
            jitter_secs: DEFAULT_JITTER_SECS,
        }
    }
}

impl Policy {
    /// A policy with every default: no templates, default selection from `personal`, fail on
    /// several matches, hourly with half an hour of jitter, 42 days, no fallback status point.
    pub fn new(site_code: &str, version: i64, issued_at: UnixTime, client: &str) -> Self {
        Self {
            site_code: site_code.to_string(),
            version,
            issued_at,
            client: client.to_string(),
            templates: Vec::new(),
            selection: SelectionCriteria::Default,
            issuers: Vec::new(),
            stores: default_stores(),
            multiple_match: MultipleMatch::Fail,
            schedule: Schedule::default(),
            site_managed_renewal_days: DEFAULT_SITE_MANAGED_RENEWAL_DAYS,
            fallback_status_point: None,
        }
    }

    /// Checks every value; the first broken rule is returned, named by its field path
    /// (`templates[1].validity_secs`). [`crate::sign`] refuses to sign, and [`crate::verify`]
    /// to accept, a policy that fails this.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.site_code.len() != 3 || !self.site_code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(PolicyError::invalid(
                "site_code",
                format!(
                    "`{}` must be exactly three letters or digits",
                    self.site_code
                ),
            ));
        }
        if self.version < 1 {
            return Err(PolicyError::invalid(
                "version",
                format!("{} must be at least 1", self.version),
            ));
        }
        if self.issued_at < 0 {
            return Err(PolicyError::invalid("issued_at", "must not be before 1970"));
        }
        check_text("client", &self.client)?;
        for (i, t) in self.templates.iter().enumerate() {
            t.validate(&format!("templates[{i}]"))?;
            if self.templates[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&t.name))
            {
                return Err(PolicyError::invalid(
                    format!("templates[{i}].name"),
                    format!("template `{}` is listed twice", t.name),
                ));
            }
        }
        self.selection.validate()?;
        for (i, f) in self.issuers.iter().enumerate() {
            if f.len() != 64 || !f.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(PolicyError::invalid(
                    format!("issuers[{i}]"),
                    format!(
                        "`{f}` is not a SHA-256 certificate fingerprint (64 lower-case hex digits)"
                    ),
                ));
            }
        }
        if self.stores.is_empty() {
            return Err(PolicyError::invalid(
                "stores",
                "at least one store is needed (default `personal`)",
            ));
        }
        for (i, s) in self.stores.iter().enumerate() {
            // Store names become directory names on the agent: no paths.
            let ok = !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-');
            if !ok {
                return Err(PolicyError::invalid(
                    format!("stores[{i}]"),
                    format!(
                        "`{s}` is not a store name (lower-case letters, digits and `-`, e.g. personal)"
                    ),
                ));
            }
        }
        let s = &self.schedule;
        if s.interval_secs < MIN_INTERVAL_SECS {
            return Err(PolicyError::invalid(
                "schedule.interval_secs",
                format!(
                    "{} must be at least {MIN_INTERVAL_SECS} seconds",
                    s.interval_secs
                ),
            ));
        }
        if s.jitter_secs < 0 || s.jitter_secs > s.interval_secs {
            return Err(PolicyError::invalid(
                "schedule.jitter_secs",
                format!(
                    "{} must be between 0 and the interval ({} seconds)",
                    s.jitter_secs, s.interval_secs
                ),
            ));
        }
        if !(1..=3650).contains(&self.site_managed_renewal_days) {
            return Err(PolicyError::invalid(
                "site_managed_renewal_days",
                format!(
                    "{} must be between 1 and 3650 days",
                    self.site_managed_renewal_days
                ),
            ));
        }
        if let Some(url) = &self.fallback_status_point {
            check_url("fallback_status_point", url)?;
        }
        Ok(())
    }
}

impl PolicyTemplate {
    fn validate(&self, at: &str) -> Result<(), PolicyError> {
        check_text(&format!("{at}.name"), &self.name)?;
        if self.validity_secs <= 0 {
            return Err(PolicyError::invalid(
                format!("{at}.validity_secs"),
                format!("{} must be positive", self.validity_secs),
            ));
        }
        if self.renewal_period_secs < 0 {
            return Err(PolicyError::invalid(
                format!("{at}.renewal_period_secs"),
                format!("{} must not be negative", self.renewal_period_secs),
            ));
        }
        if self.key_algorithms.is_empty() {
            return Err(PolicyError::invalid(
                format!("{at}.key_algorithms"),
                "at least one key algorithm is needed",
            ));
        }
        for (i, k) in self.key_algorithms.iter().enumerate() {
            check_key_rule(&format!("{at}.key_algorithms[{i}]"), k)?;
        }
        Ok(())
    }
}

impl SelectionCriteria {
    fn validate(&self) -> Result<(), PolicyError> {
        match self {
            Self::Default => Ok(()),
            Self::SubjectContains(s) => check_text("selection.subject_contains", s),
            Self::SanMatch(s) => check_text("selection.san_match", s),
            Self::SubjectAttribute { oid, value } => {
                let field = "selection.subject_attribute.oid";
                // Stored canonical: a dotted OID, not a name, so agents need no table.
                if attribute_oid(field, oid)? != *oid {
                    return Err(PolicyError::invalid(
                        field,
                        format!(
                            "`{oid}` must be stored as its dotted OID; use SelectionCriteria::subject_attribute"
                        ),
                    ));
                }
                check_text("selection.subject_attribute.value", value)
            }
        }
    }
}

/// Non-empty, no surrounding blanks, no control characters.
fn check_text(field: &str, s: &str) -> Result<(), PolicyError> {
    if s.is_empty() || s.trim() != s || s.chars().any(char::is_control) {
        return Err(PolicyError::invalid(
            field,
            format!(
                "`{s}` must be non-empty text without surrounding blanks or control characters"
            ),
        ));
    }
    Ok(())
}

/// `rsa:MIN-MAX`, `ecdsa:MIN-MAX` or `ed25519`, as `KeyRule` displays.
fn check_key_rule(field: &str, s: &str) -> Result<(), PolicyError> {
    let bits = |r: &str| -> Option<(u32, u32)> {
        let (a, b) = r.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let ok = match s.split_once(':') {
        None => s == "ed25519",
        Some(("rsa" | "ecdsa", r)) => bits(r).is_some_and(|(a, b)| a > 0 && a <= b),
        Some(_) => false,
    };
    if !ok {
        return Err(PolicyError::invalid(
            field,
            format!("`{s}` is not a key rule such as ecdsa:256-384, rsa:2048-4096 or ed25519"),
        ));
    }
    Ok(())
}

/// An http(s) URL with a host; plain HTTP is allowed because the fallback status point serves
/// clients that cannot authenticate (SPEC §1).
fn check_url(field: &str, url: &str) -> Result<(), PolicyError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let ok = rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && !r.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if !ok {
        return Err(PolicyError::invalid(
            field,
            format!("`{url}` is not an http:// or https:// URL with a host"),
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Policy {
        let mut p = Policy::new("PS1", 3, 1_700_000_000, "ws01.corp.example");
        p.templates = vec![
            PolicyTemplate {
                name: "fleet-workstation".into(),
                display_name: "Fleet Workstation Authentication".into(),
                major: 2,
                minor: 1,
                validity_secs: 365 * 86_400,
                renewal_period_secs: 42 * 86_400,
                key_algorithms: vec!["ecdsa:256-384".into(), "rsa:2048-4096".into()],
                exportable: false,
            },
            PolicyTemplate {
                name: "fleet-user".into(),
                display_name: "Fleet User — Ünïcode".into(),
                major: 1,
                minor: 0,
                validity_secs: 90 * 86_400,
                renewal_period_secs: 14 * 86_400,
                key_algorithms: vec!["ed25519".into()],
                exportable: true,
            },
        ];
        p.selection = SelectionCriteria::subject_attribute("OU", "Workstations").unwrap();
        p.issuers = vec!["ab".repeat(32)];
        p.multiple_match = MultipleMatch::LongestValidity;
        p.fallback_status_point = Some("http://fsp.corp.example/state".into());
        p
    }

    #[test]
    fn defaults_validate() {
        let p = Policy::new("PS1", 1, 0, "ws01");
        p.validate().unwrap();
        assert_eq!(p.stores, vec!["personal"]);
        assert_eq!(p.site_managed_renewal_days, 42);
        assert_eq!(p.multiple_match, MultipleMatch::Fail);
        assert_eq!(p.selection, SelectionCriteria::Default);
        sample().validate().unwrap();
    }

    #[test]
    fn missing_optional_fields_take_defaults() {
        let json = r#"{"site_code":"PS1","version":1,"issued_at":5,"client":"ws01",
            "templates":[],"selection":"default"}"#;
        let p: Policy = serde_json::from_str(json).unwrap();
        assert_eq!(p, Policy::new("PS1", 1, 5, "ws01"));
    }

    #[test]
    fn selection_json_shapes() {
        let cases = [
            (SelectionCriteria::Default, r#""default""#),
            (
                SelectionCriteria::SubjectContains("ws01".into()),
                r#"{"subject_contains":"ws01"}"#,
            ),
            (
                SelectionCriteria::subject_attribute("e-mail", "a@b").unwrap(),
                r#"{"subject_attribute":{"oid":"1.2.840.113549.1.9.1","value":"a@b"}}"#,
            ),
            (
                SelectionCriteria::SanMatch("ws01".into()),
                r#"{"san_match":"ws01"}"#,
            ),
        ];
        for (c, json) in cases {
            assert_eq!(serde_json::to_string(&c).unwrap(), json);
            assert_eq!(serde_json::from_str::<SelectionCriteria>(json).unwrap(), c);
        }
        assert_eq!(
            serde_json::to_string(&MultipleMatch::LongestValidity).unwrap(),
            r#""longest_validity""#
        );
    }

    #[test]
    fn broken_rules_name_their_field() {
        type Edit = fn(&mut Policy);
        let cases: &[(&str, Edit)] = &[
            ("site_code", |p| p.site_code = "PS".into()),
            ("version", |p| p.version = 0),
            ("issued_at", |p| p.issued_at = -1),
            ("client", |p| p.client = " ws01".into()),
            ("templates[0].validity_secs", |p| {
                p.templates[0].validity_secs = 0
            }),
            ("templates[1].renewal_period_secs", |p| {
                p.templates[1].renewal_period_secs = -1
            }),
            ("templates[0].key_algorithms[1]", |p| {
                p.templates[0].key_algorithms[1] = "dsa:1024-2048".into()
            }),
            ("templates[1].key_algorithms", |p| {
                p.templates[1].key_algorithms.clear()
            }),
            ("templates[1].name", |p| {
                p.templates[1].name = "FLEET-workstation".into()
            }),
            ("selection.subject_attribute.oid", |p| {
                p.selection = SelectionCriteria::SubjectAttribute {
                    oid: "OU".into(),
                    value: "x".into(),
                }
            }),
            ("selection.subject_contains", |p| {
                p.selection = SelectionCriteria::SubjectContains(String::new())
            }),
            ("issuers[0]", |p| p.issuers[0] = "AB".repeat(32)),
            ("stores", |p| p.stores.clear()),
            ("stores[0]", |p| p.stores[0] = "../etc".into()),
            ("schedule.interval_secs", |p| p.schedule.interval_secs = 59),
            ("schedule.jitter_secs", |p| {
                p.schedule.jitter_secs = p.schedule.interval_secs + 1
            }),
            ("site_managed_renewal_days", |p| {
                p.site_managed_renewal_days = 0
            }),
            ("fallback_status_point", |p| {
                p.fallback_status_point = Some("ftp://fsp".into())
            }),
        ];
        for (field, edit) in cases {
            let mut p = sample();
            edit(&mut p);
            let e = p.validate().unwrap_err();
            assert_eq!(e.field(), *field, "{e}");
            assert!(e.to_string().starts_with(&format!("{field}: ")), "{e}");
        }
    }

    #[test]
    fn from_template_copies_what_the_agent_needs() {
        let bases = Template::bases();
        let t = bases
            .iter()
            .find(|t| t.name.to_ascii_lowercase().contains("workstation"))
            .unwrap_or(&bases[0]);
        let pt = PolicyTemplate::from_template(t);
        assert_eq!(pt.name, t.name);
        assert_eq!((pt.major, pt.minor), (t.version.major, t.version.minor));
        assert_eq!(pt.validity_secs, t.validity);
        assert_eq!(pt.renewal_period_secs, t.renewal_period);
        assert_eq!(pt.key_algorithms.len(), t.key_algorithms.len());
        pt.validate("templates[0]").unwrap();
    }
}
