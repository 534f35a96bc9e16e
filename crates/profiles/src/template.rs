//! Static check of a certificate template against a profile: the settings that would let a
//! non-compliant certificate through, found before any certificate is issued.

use crate::check::Finding;
use crate::rules::{Check, Fqdn, Profile, Rule, Severity, Status};
use fleetpki_model::duration::format_duration;
use fleetpki_model::oid::{KeyUsageBit, eku_name};
use fleetpki_model::template::{KeyFamily, KeyRule, SubjectRule, Template};

const DAY: i64 = 86_400;

/// Every way `t` would let a certificate that fails an Error-severity rule of `profile`
/// through, as far as the template alone tells (the CA checks each certificate at issuance
/// too). Empty = OK. Warning-severity rules are left to issuance: they do not make a
/// certificate non-compliant. `root-ca` gives one finding: it applies to CA certificates, which
/// no template issues.
pub fn check_template(profile: &Profile, t: &Template) -> Vec<Finding> {
    if let Some(r) = profile
        .rules
        .iter()
        .find(|r| matches!(r.check, Check::CaBasicConstraints))
    {
        return vec![finding(
            r,
            format!("template `{}` issues end-entity certificates", t.name),
            format!(
                "`{}` applies to CA certificates, not templates: check the root itself with `fleetpki check --profile {} ROOT.pem`, and bind the template to the profile of the role its certificates serve",
                profile.name, profile.name
            ),
        )];
    }
    profile
        .rules
        .iter()
        .filter(|r| r.severity == Severity::Error)
        .filter_map(|r| problem(r, t).map(|(found, advice)| finding(r, found, advice)))
        .collect()
}

fn finding(rule: &Rule, found: String, advice: String) -> Finding {
    Finding {
        rule: rule.id,
        severity: rule.severity,
        status: Status::Fail,
        found,
        requirement: rule.requirement,
        advice,
    }
}

/// (what the template allows, what to change) when `rule` can fail under `t`.
fn problem(rule: &Rule, t: &Template) -> Option<(String, String)> {
    let set = |args: &str| format!("`template set \"{}\" {args}`", t.name);
    let dir = |t: &Template| match t.subject {
        SubjectRule::FromDirectory {
            cn,
            dns,
            upn,
            email,
        } => Some((cn, dns, upn, email)),
        SubjectRule::SupplyInRequest { .. } => None,
    };
    match rule.check {
        Check::Eku { oid } => {
            if t.ekus.iter().any(|e| e == oid) {
                return None;
            }
            let mut names: Vec<&str> = t.ekus.iter().map(|e| eku_name(e)).collect();
            let have = names.join(", ");
            names.push(eku_name(oid));
            Some((
                format!("template EKU: {have}"),
                format!(
                    "add {}: {}",
                    eku_name(oid),
                    set(&format!("--eku {}", names.join(",")))
                ),
            ))
        }
        Check::KeyMaxBits { bits } => {
            let over: Vec<&KeyRule> = rsa_rules(t).filter(|r| r.max_bits > bits).collect();
            if over.is_empty() {
                return None;
            }
            let fix = if over.iter().any(|r| r.min_bits > bits) {
                set(&format!(
                    "--key-algorithms {}",
                    with_rsa(t, 2048.min(bits), bits)
                ))
            } else {
                set(&format!("--max-key-size {bits}"))
            };
            Some((
                format!(
                    "template allows {} (RSA keys above {bits} bits)",
                    list(&over)
                ),
                fix,
            ))
        }
        Check::RsaKeySizes { sizes } => {
            let lo = sizes.iter().min().copied().unwrap_or(2048);
            let hi = sizes.iter().max().copied().unwrap_or(2048);
            let mut bad: Vec<String> = Vec::new();
            for r in &t.key_algorithms {
                match r.family {
                    KeyFamily::Rsa if r.min_bits < lo || r.max_bits > hi => {
                        bad.push(format!("{r} (outside RSA {lo}-{hi})"))
                    }
                    KeyFamily::Rsa => {}
                    _ => bad.push(format!("{r} (not RSA)")),
                }
            }
            if rsa_rules(t).next().is_none() {
                bad.push("no RSA key".to_string());
            }
            if bad.is_empty() {
                return None;
            }
            Some((
                format!("template allows {}", bad.join(", ")),
                set(&format!("--key-algorithms rsa:{lo}-{hi}")),
            ))
        }
        Check::ExportableKey => (!t.exportable).then(|| {
            (
                "template does not allow private-key export".to_string(),
                set("--exportable true"),
            )
        }),
        Check::ValidityAtLeastDays { days } => (t.validity < days.saturating_mul(DAY)).then(|| {
            (
                format!("template validity {}", format_duration(t.validity)),
                set(&format!(
                    "--validity {}",
                    format_duration(days.saturating_mul(DAY))
                )),
            )
        }),
        Check::KeyUsageA0 => {
            let ds = t.key_usage.contains(&KeyUsageBit::DigitalSignature);
            let ke = t.key_usage.contains(&KeyUsageBit::KeyEncipherment);
            let rsa = rsa_rules(t).next().is_some();
            if ds && (ke || !rsa) {
                return None;
            }
            let ku: Vec<&str> = t.key_usage.iter().map(|b| b.name()).collect();
            let want = if rsa {
                "digitalSignature,keyEncipherment"
            } else {
                "digitalSignature"
            };
            Some((
                format!(
                    "template key usage: {}{}",
                    ku.join(", "),
                    if rsa { " (RSA keys allowed)" } else { "" }
                ),
                set(&format!("--key-usage {want}")),
            ))
        }
        Check::SubjectPresent | Check::NameInSubject { .. } => match dir(t) {
            Some((false, ..)) => Some((
                format!("subject rule: {} (no CN, so an empty subject)", t.subject),
                set("--subject-from-directory cn"),
            )),
            _ => None,
        },
        // The internet name is needed only where the site system takes internet connections,
        // which the template does not know; the intranet name (or computer name) always.
        Check::SiteSystemName {
            fqdn: Fqdn::Internet,
        } => None,
        Check::SiteSystemName { .. } | Check::NameInSubjectOrSan { .. } => match dir(t) {
            Some((false, false, ..)) => Some((
                format!(
                    "subject rule: {} (no DNS name in subject or SAN)",
                    t.subject
                ),
                set("--subject-from-directory cn,dns"),
            )),
            _ => None,
        },
        Check::CnServiceName => match dir(t) {
            Some((false, ..)) => Some((
                format!("subject rule: {} (no CN)", t.subject),
                set("--subject supply"),
            )),
            _ => None,
        },
        Check::NoSan => match dir(t) {
            Some((_, false, false, false)) => None,
            Some(_) => Some((
                format!("subject rule: {} (puts names in the SAN)", t.subject),
                set("--subject-from-directory cn"),
            )),
            None => Some((
                format!(
                    "subject rule: {} (the requested names go in the SAN)",
                    t.subject
                ),
                set("--subject-from-directory cn"),
            )),
        },
        // Decided by the certificate file, the signer or the moment, not by the template.
        Check::Pkcs12Export
        | Check::DerEncoding
        | Check::SubjectComputerName
        | Check::SubjectOrSanPresent
        | Check::FirstSanOnly
        | Check::CaBasicConstraints
        | Check::CaKeyCertSign
        | Check::SelfSigned
        | Check::Sha2Signature
        | Check::WithinValidity => None,
    }
}

fn rsa_rules(t: &Template) -> impl Iterator<Item = &KeyRule> {
    t.key_algorithms
        .iter()
        .filter(|r| r.family == KeyFamily::Rsa)
}

fn list(rules: &[&KeyRule]) -> String {
    rules
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The template's key list with its RSA rule replaced by `rsa:min-max`.
fn with_rsa(t: &Template, min: u32, max: u32) -> String {
    let mut out: Vec<String> = t
        .key_algorithms
        .iter()
        .filter(|r| r.family != KeyFamily::Rsa)
        .map(|r| r.to_string())
        .collect();
    out.push(format!("rsa:{min}-{max}"));
    out.join(",")
}
