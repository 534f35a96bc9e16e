//! Client certificate selection (SPEC §5, seed 000): which certificate the agent presents, and why.
//!
//! Pure: the caller loads the stores and hands over [`Candidate`]s; [`select`] returns a
//! [`Selection`] with one [`Verdict`] per candidate and the [`Outcome`]. A candidate is kept
//! when it comes from one of the policy's stores, parses, has the Client Authentication EKU,
//! is valid now, has a private key, chains (rustls-webpki path validation for client auth) to
//! a trusted root, has an issuer from the policy's issuer list when there is one, and meets the
//! policy's [`SelectionCriteria`]. Several kept: [`MultipleMatch::Fail`] selects none
//! ([`Selection::fallback_message`] names them for the fallback status point) and
//! [`MultipleMatch::LongestValidity`] takes the latest notAfter.

use der::asn1::ObjectIdentifier;
use der::{Encode, Tagged};
use fleetpki_model::{UnixTime, fmt_time};
use fleetpki_policy::{
    DN_ATTRIBUTES, MultipleMatch, Policy, SAN_OID, SelectionCriteria, attribute_oid,
};
use fleetpki_x509::cert::{self, CertInfo};
use rustls_pki_types::{CertificateDer, TrustAnchor};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;
use x509_cert::Certificate;

#[cfg(test)]
mod tests;

/// id-kp-clientAuth: required explicitly, because path validation accepts a certificate
/// without any EKU for client authentication.
pub const CLIENT_AUTH_EKU: &str = "1.3.6.1.5.5.7.3.2";

/// One certificate found in a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The store it was found in (`personal`, `trusted-people`, ...).
    pub store: String,
    /// Its file name in that store, to name it in explanations.
    pub file: String,
    /// The certificate, DER (a single PEM block is read too).
    pub der: Vec<u8>,
    /// Whether the store holds its private key.
    pub has_key: bool,
}

/// What selection is judged against.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The computer's name (`ws01`); the default criteria look for it.
    pub computer: &'a str,
    /// The computer's FQDN (`ws01.corp.example`), when known.
    pub fqdn: Option<&'a str>,
    pub now: UnixTime,
    /// Trusted root certificates (DER): the trust anchors.
    pub trusted_roots: &'a [Vec<u8>],
    /// Intermediate CA certificates (DER) available to build chains.
    pub intermediates: &'a [Vec<u8>],
    pub policy: &'a Policy,
}

/// Why a candidate was dropped; each names the property and the rule it broke.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DropReason {
    #[error("store: `{store}` is not one of the policy's stores ({allowed})")]
    OutsideStores { store: String, allowed: String },
    #[error("certificate: cannot be parsed: {error}")]
    Unparsable { error: String },
    #[error(
        "extendedKeyUsage: no Client Authentication (1.3.6.1.5.5.7.3.2); it has {}",
        list_or_none(.ekus)
    )]
    NoClientAuthEku { ekus: Vec<String> },
    #[error("notBefore: not yet valid, valid from {}", when(.not_before))]
    NotYetValid { not_before: UnixTime },
    #[error("notAfter: expired on {}", when(.not_after))]
    Expired { not_after: UnixTime },
    #[error("private key: the store holds no private key for this certificate")]
    NoPrivateKey,
    /// rustls-webpki's verdict. Not repeated when the leaf's own validity or EKU already
    /// failed, since path validation stops at that first.
    #[error("issuer: does not chain to a trusted root for client authentication: {error}")]
    UntrustedIssuer { error: String },
    #[error(
        "issuer: no certificate of its chain ({}) is in the policy's issuer list ({})",
        joined(.chain, " <- "),
        joined(.allowed, ", ")
    )]
    IssuerNotListed {
        /// `subject [sha256]` from the issuing CA up to the root.
        chain: Vec<String>,
        allowed: Vec<String>,
    },
    #[error("criteria: {detail}")]
    CriteriaNotMet { detail: String },
    #[error("duplicate: the same certificate as {of}, which is kept")]
    Duplicate { of: String },
}

fn when(t: &UnixTime) -> String {
    fmt_time(*t)
}

fn joined(items: &[String], sep: &str) -> String {
    items.join(sep)
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// One candidate's judgement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Position in the candidates given to [`select`].
    pub index: usize,
    pub store: String,
    pub file: String,
    /// None when the certificate does not parse.
    pub serial: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub not_before: Option<UnixTime>,
    pub not_after: Option<UnixTime>,
    /// Passed every check.
    pub kept: bool,
    /// The one presented.
    pub selected: bool,
    /// Every rule it broke (empty when kept).
    pub dropped: Vec<DropReason>,
    /// What it satisfied and how the multiple-match rule treated it.
    pub notes: Vec<String>,
}

impl Verdict {
    fn label(&self) -> String {
        format!("{}/{}", self.store, self.file)
    }
}

/// The result of selection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// `index` into the candidates.
    Selected {
        index: usize,
        serial: String,
        why: String,
    },
    /// No candidate passed every check.
    NoCandidate,
    /// Several passed and the policy says select none; the connection is not attempted.
    Ambiguous {
        indices: Vec<usize>,
        serials: Vec<String>,
    },
}

/// Every verdict and the outcome; [`Selection::explain`] renders it for `select --explain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Selection {
    pub outcome: Outcome,
    pub verdicts: Vec<Verdict>,
    /// The policy's rules as applied: criteria, stores, issuers, multiple-match rule.
    pub rules: Vec<String>,
    /// Problems with the context itself (a trusted root that is not a usable trust anchor).
    pub warnings: Vec<String>,
}

impl Selection {
    /// The selected candidate's index, if one was selected.
    pub fn selected(&self) -> Option<usize> {
        match self.outcome {
            Outcome::Selected { index, .. } => Some(index),
            _ => None,
        }
    }

    /// Human text for `select --explain`: the rules, every candidate with why it was kept or
    /// dropped, and the outcome.
    pub fn explain(&self) -> String {
        let mut out = String::from("Client certificate selection\n");
        for r in &self.rules {
            let _ = writeln!(out, "  {r}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
        let _ = writeln!(out, "Candidates: {}", self.verdicts.len());
        for v in &self.verdicts {
            let status = match (v.kept, v.selected) {
                (true, true) => "SELECTED",
                (true, false) => "KEPT",
                (false, _) => "DROPPED",
            };
            let _ = writeln!(out, "[{}] {} {status}", v.index + 1, v.label());
            if let Some(s) = &v.serial {
                let _ = writeln!(
                    out,
                    "    serial {s}, subject `{}`, issuer `{}`",
                    v.subject.as_deref().unwrap_or(""),
                    v.issuer.as_deref().unwrap_or("")
                );
            }
            if let (Some(nb), Some(na)) = (v.not_before, v.not_after) {
                let _ = writeln!(out, "    valid {} to {}", fmt_time(nb), fmt_time(na));
            }
            for d in &v.dropped {
                let _ = writeln!(out, "    - {d}");
            }
            for n in &v.notes {
                let _ = writeln!(out, "    + {n}");
            }
        }
        let _ = match &self.outcome {
            Outcome::Selected { index, serial, why } => writeln!(
                out,
                "Outcome: selected [{}] serial {serial}: {why}",
                index + 1
            ),
            Outcome::NoCandidate => writeln!(
                out,
                "Outcome: no certificate qualifies; the connection is not attempted"
            ),
            Outcome::Ambiguous { indices, serials } => writeln!(
                out,
                "Outcome: {} certificates match ({}) and the policy selects none; the connection is not attempted",
                serials.len(),
                indices
                    .iter()
                    .zip(serials)
                    .map(|(i, s)| format!("[{}] serial {s}", i + 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        out
    }

    /// The state message for the fallback status point when no certificate could be chosen
    /// (ambiguous or none), naming the candidates; None when one was selected.
    pub fn fallback_message(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Selected { .. } => None,
            Outcome::NoCandidate => Some(format!(
                "client certificate selection failed: none of {} certificate(s) qualifies{}",
                self.verdicts.len(),
                self.verdicts
                    .iter()
                    .map(|v| format!(
                        "; {} ({})",
                        v.label(),
                        v.dropped
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ))
                    .collect::<String>()
            )),
            Outcome::Ambiguous { indices, .. } => Some(format!(
                "client certificate selection failed: {} certificates match and the policy selects none: {}",
                indices.len(),
                indices
                    .iter()
                    .filter_map(|i| self.verdicts.get(*i))
                    .map(|v| format!(
                        "{} serial {} subject `{}` notAfter {}",
                        v.label(),
                        v.serial.as_deref().unwrap_or(""),
                        v.subject.as_deref().unwrap_or(""),
                        v.not_after.map(fmt_time).unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
}

/// A trust anchor and how to name it.
struct Anchor {
    anchor: TrustAnchor<'static>,
    fingerprint: String,
    subject: String,
}

/// Judges every candidate and applies the multiple-match rule. Never fails: a broken
/// candidate is a dropped verdict, a broken trusted root a warning.
pub fn select(candidates: &[Candidate], ctx: &Context) -> Selection {
    let policy = ctx.policy;
    let mut warnings = Vec::new();
    let anchors: Vec<Anchor> = ctx
        .trusted_roots
        .iter()
        .enumerate()
        .filter_map(|(i, der)| {
            let cd = CertificateDer::from(der.as_slice());
            match webpki::anchor_from_trusted_cert(&cd) {
                Ok(a) => Some(Anchor {
                    anchor: a.to_owned(),
                    fingerprint: cert::fingerprint(der),
                    subject: subject_of(der),
                }),
                Err(e) => {
                    warnings.push(format!(
                        "trusted root #{} is not a usable trust anchor: {e}",
                        i + 1
                    ));
                    None
                }
            }
        })
        .collect();
    let trust: Vec<TrustAnchor<'static>> = anchors.iter().map(|a| a.anchor.clone()).collect();
    let intermediates: Vec<CertificateDer<'_>> = ctx
        .intermediates
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let chains = Chains {
        anchors: &anchors,
        trust: &trust,
        intermediates: &intermediates,
    };

    let mut verdicts: Vec<Verdict> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| judge(i, c, ctx, &chains))
        .collect();

    // The same certificate in two stores is one candidate, not an ambiguity.
    let mut seen: Vec<(String, usize)> = Vec::new();
    for i in 0..verdicts.len() {
        if !verdicts[i].kept {
            continue;
        }
        let fp = cert::fingerprint(&candidates[i].der);
        match seen.iter().find(|(f, _)| *f == fp) {
            Some((_, first)) => {
                let of = verdicts[*first].label();
                let v = &mut verdicts[i];
                v.kept = false;
                v.notes.clear();
                v.dropped.push(DropReason::Duplicate { of });
            }
            None => seen.push((fp, i)),
        }
    }

    let kept: Vec<usize> = verdicts
        .iter()
        .filter(|v| v.kept)
        .map(|v| v.index)
        .collect();
    let outcome = decide(&kept, &mut verdicts, policy.multiple_match);
    Selection {
        outcome,
        verdicts,
        rules: rules(ctx),
        warnings,
    }
}

/// The policy's rules, stated for the explanation.
fn rules(ctx: &Context) -> Vec<String> {
    let p = ctx.policy;
    vec![
        format!("criteria: {}", describe_criteria(&p.selection, ctx)),
        format!("stores: {}", p.stores.join(", ")),
        if p.issuers.is_empty() {
            "issuers: any trusted root".to_string()
        } else {
            format!("issuers: {}", p.issuers.join(", "))
        },
        format!(
            "several matches: {}",
            match p.multiple_match {
                MultipleMatch::Fail => "select none and report them",
                MultipleMatch::LongestValidity => "the longest validity (latest notAfter) wins",
            }
        ),
        format!("at: {}", fmt_time(ctx.now)),
    ]
}

fn describe_criteria(c: &SelectionCriteria, ctx: &Context) -> String {
    match c {
        SelectionCriteria::Default => format!(
            "default: subject or a SAN contains the computer name `{}`{}",
            ctx.computer,
            ctx.fqdn
                .map(|f| format!(" or FQDN `{f}`"))
                .unwrap_or_default()
        ),
        SelectionCriteria::SubjectContains(s) => format!("subject contains `{s}`"),
        SelectionCriteria::SubjectAttribute { oid, value } => {
            format!(
                "subject attribute {} equals `{value}`",
                attribute_label(oid)
            )
        }
        SelectionCriteria::SanMatch(s) => format!("first SAN equals `{s}`"),
    }
}

/// `OU (2.5.4.11)` for an OID the table names, else the OID as given.
fn attribute_label(oid: &str) -> String {
    if oid == SAN_OID {
        return format!("first SAN ({SAN_OID})");
    }
    let names: Vec<&str> = DN_ATTRIBUTES
        .iter()
        .filter(|(_, o)| *o == oid)
        .map(|(n, _)| *n)
        .collect();
    if names.is_empty() {
        oid.to_string()
    } else {
        format!("{} ({oid})", names.join("/"))
    }
}

struct Chains<'a> {
    anchors: &'a [Anchor],
    trust: &'a [TrustAnchor<'static>],
    intermediates: &'a [CertificateDer<'a>],
}

fn judge(index: usize, c: &Candidate, ctx: &Context, chains: &Chains) -> Verdict {
    let policy = ctx.policy;
    let mut v = Verdict {
        index,
        store: c.store.clone(),
        file: c.file.clone(),
        serial: None,
        subject: None,
        issuer: None,
        not_before: None,
        not_after: None,
        kept: false,
        selected: false,
        dropped: Vec::new(),
        notes: Vec::new(),
    };
    if !policy
        .stores
        .iter()
        .any(|s| s.eq_ignore_ascii_case(&c.store))
    {
        v.dropped.push(DropReason::OutsideStores {
            store: c.store.clone(),
            allowed: policy.stores.join(", "),
        });
    }
    let parsed = cert::parse("candidate", &c.der).and_then(|x| cert::info(&x).map(|i| (x, i)));
    let (x, info) = match parsed {
        Ok(p) => p,
        Err(e) => {
            v.dropped.push(DropReason::Unparsable {
                error: e.to_string(),
            });
            return v;
        }
    };
    v.serial = Some(info.serial_hex.clone());
    v.subject = Some(info.subject.clone());
    v.issuer = Some(info.issuer.clone());
    v.not_before = Some(info.not_before);
    v.not_after = Some(info.not_after);

    let eku_ok = info.ekus.iter().any(|e| e == CLIENT_AUTH_EKU);
    if !eku_ok {
        v.dropped.push(DropReason::NoClientAuthEku {
            ekus: info.ekus.clone(),
        });
    }
    // Same boundaries as webpki: valid from notBefore through notAfter inclusive.
    let time_ok = if ctx.now < info.not_before {
        v.dropped.push(DropReason::NotYetValid {
            not_before: info.not_before,
        });
        false
    } else if ctx.now > info.not_after {
        v.dropped.push(DropReason::Expired {
            not_after: info.not_after,
        });
        false
    } else {
        true
    };
    if !c.has_key {
        v.dropped.push(DropReason::NoPrivateKey);
    }
    // webpki wants DER; a PEM candidate was parsed above, so re-encoding it is safe.
    let der: Cow<[u8]> = if c.der.first() == Some(&0x30) {
        Cow::Borrowed(c.der.as_slice())
    } else {
        match x.to_der() {
            Ok(d) => Cow::Owned(d),
            Err(e) => {
                v.dropped.push(DropReason::Unparsable {
                    error: format!("cannot re-encode: {e}"),
                });
                return v;
            }
        }
    };
    match chain_of(&der, ctx.now, chains) {
        Ok(chain) => {
            v.notes.push(format!(
                "chains to a trusted root: {}",
                chain
                    .iter()
                    .map(|(s, f)| format!("`{s}` [{f}]"))
                    .collect::<Vec<_>>()
                    .join(" <- ")
            ));
            if !policy.issuers.is_empty() {
                match chain
                    .iter()
                    .find(|(_, f)| policy.issuers.iter().any(|p| p.eq_ignore_ascii_case(f)))
                {
                    Some((s, _)) => v
                        .notes
                        .push(format!("issuer `{s}` is in the policy's issuer list")),
                    None => v.dropped.push(DropReason::IssuerNotListed {
                        chain: chain.iter().map(|(s, f)| format!("{s} [{f}]")).collect(),
                        allowed: policy.issuers.clone(),
                    }),
                }
            }
        }
        Err(e) => {
            // Already said in its own words above: the leaf's validity or its EKU.
            let repeated = match &e {
                webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => {
                    !time_ok
                }
                webpki::Error::RequiredEkuNotFoundContext(_) => !eku_ok,
                _ => false,
            };
            if !repeated {
                v.dropped.push(DropReason::UntrustedIssuer {
                    error: webpki_reason(&e),
                });
            }
        }
    }
    match matches(&policy.selection, &x, &info, ctx) {
        Ok(why) => v.notes.push(format!("criteria met: {why}")),
        Err(detail) => v.dropped.push(DropReason::CriteriaNotMet { detail }),
    }
    v.kept = v.dropped.is_empty();
    if !v.kept {
        v.notes.clear();
    }
    v
}

/// Validates the path for client authentication at `now`; returns the chain above the leaf as
/// (subject, SHA-256 fingerprint), issuing CA first, root last.
fn chain_of(
    der: &[u8],
    now: UnixTime,
    chains: &Chains,
) -> Result<Vec<(String, String)>, webpki::Error> {
    let leaf = CertificateDer::from(der);
    let ee = webpki::EndEntityCert::try_from(&leaf)?;
    let at = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now).unwrap_or(0),
    ));
    let path = ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        chains.trust,
        chains.intermediates,
        at,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )?;
    let mut out: Vec<(String, String)> = path
        .intermediate_certificates()
        .map(|c| {
            let d = c.der();
            (subject_of(&d), cert::fingerprint(&d))
        })
        .collect();
    if let Some(a) = chains.anchors.iter().find(|a| a.anchor == *path.anchor()) {
        out.push((a.subject.clone(), a.fingerprint.clone()));
    }
    Ok(out)
}

/// webpki's reasons read as Rust debug output; the common ones get words.
fn webpki_reason(e: &webpki::Error) -> String {
    match e {
        webpki::Error::UnknownIssuer => {
            "UnknownIssuer (no trusted root or known intermediate issued it)".to_string()
        }
        webpki::Error::InvalidSignatureForPublicKey => {
            "InvalidSignatureForPublicKey (a signature in the chain does not verify)".to_string()
        }
        webpki::Error::CaUsedAsEndEntity => {
            "CaUsedAsEndEntity (a CA certificate cannot be a client certificate)".to_string()
        }
        webpki::Error::CertExpired { .. } => {
            format!("{e} (a CA certificate in the chain has expired)")
        }
        webpki::Error::CertNotValidYet { .. } => {
            format!("{e} (a CA certificate in the chain is not yet valid)")
        }
        _ => e.to_string(),
    }
}

fn subject_of(der: &[u8]) -> String {
    cert::parse("certificate", der)
        .and_then(|c| cert::info(&c))
        .map(|i| i.subject)
        .unwrap_or_else(|_| "(unparsable certificate)".to_string())
}

/// Case-insensitive, Unicode-aware.
fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// A SAN as `info` describes it (`DNS:x`), without its type prefix.
fn san_value(s: &str) -> &str {
    s.split_once(':').map_or(s, |(_, v)| v)
}

/// Applies the criteria; Ok says what matched, Err what was compared with what.
fn matches(
    criteria: &SelectionCriteria,
    x: &Certificate,
    info: &CertInfo,
    ctx: &Context,
) -> Result<String, String> {
    let sans_text = || format!("[{}]", info.sans.join(", "));
    match criteria {
        SelectionCriteria::Default => {
            let names: Vec<&str> = [Some(ctx.computer), ctx.fqdn]
                .into_iter()
                .flatten()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect();
            if names.is_empty() {
                return Err("no computer name or FQDN to look for".to_string());
            }
            let subject = fold(&info.subject);
            for n in &names {
                let n_f = fold(n);
                if subject.contains(&n_f) {
                    return Ok(format!("subject `{}` contains `{n}`", info.subject));
                }
                if let Some(s) = info.sans.iter().find(|s| fold(san_value(s)).contains(&n_f)) {
                    return Ok(format!("SAN `{s}` contains `{n}`"));
                }
            }
            Err(format!(
                "neither the subject `{}` nor a SAN {} contains {}",
                info.subject,
                sans_text(),
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))
        }
        SelectionCriteria::SubjectContains(s) => {
            if fold(&info.subject).contains(&fold(s)) {
                Ok(format!("subject `{}` contains `{s}`", info.subject))
            } else {
                Err(format!("subject `{}` does not contain `{s}`", info.subject))
            }
        }
        SelectionCriteria::SubjectAttribute { oid, value } => {
            let oid =
                attribute_oid("selection.subject_attribute.oid", oid).map_err(|e| e.to_string())?;
            if oid == SAN_OID {
                return first_san(info, value);
            }
            let label = attribute_label(&oid);
            let want = ObjectIdentifier::new(&oid)
                .map_err(|e| format!("selection.subject_attribute.oid: `{oid}`: {e}"))?;
            let found: Vec<String> = x
                .tbs_certificate()
                .subject()
                .iter()
                .filter(|atv| atv.oid == want)
                .map(|atv| {
                    fleetpki_x509::name::text_of(atv.value.tag(), atv.value.value())
                        .unwrap_or_else(|| "(not a string)".to_string())
                })
                .collect();
            let want_v = fold(value);
            match found.iter().find(|f| fold(f) == want_v) {
                Some(f) => Ok(format!("subject {label} `{f}` equals `{value}`")),
                None if found.is_empty() => Err(format!(
                    "the subject `{}` has no {label} attribute to compare with `{value}`",
                    info.subject
                )),
                None => Err(format!(
                    "subject {label} is {}, not `{value}`",
                    found
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        SelectionCriteria::SanMatch(s) => first_san(info, s),
    }
}

/// Only the first SAN value counts (seed 002).
fn first_san(info: &CertInfo, want: &str) -> Result<String, String> {
    let Some(first) = info.sans.first() else {
        return Err(format!(
            "the certificate has no SAN to compare with `{want}`"
        ));
    };
    let want_f = fold(want);
    if fold(san_value(first)) == want_f {
        return Ok(format!("first SAN `{first}` equals `{want}`"));
    }
    let later = info
        .sans
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, s)| fold(san_value(s)) == want_f)
        .map(|(i, s)| {
            format!(
                " (SAN #{} `{s}` equals it, but only the first SAN counts)",
                i + 1
            )
        })
        .unwrap_or_default();
    Err(format!("first SAN `{first}` is not `{want}`{later}"))
}

/// Applies the multiple-match rule to the kept candidates.
fn decide(kept: &[usize], verdicts: &mut [Verdict], rule: MultipleMatch) -> Outcome {
    let serial = |v: &Verdict| v.serial.clone().unwrap_or_default();
    match kept {
        [] => Outcome::NoCandidate,
        [only] => {
            let v = &mut verdicts[*only];
            v.selected = true;
            let why = "the only certificate that passes every check".to_string();
            v.notes.push(format!("selected: {why}"));
            Outcome::Selected {
                index: *only,
                serial: serial(v),
                why,
            }
        }
        several => match rule {
            MultipleMatch::Fail => {
                for &i in several {
                    verdicts[i].notes.push(format!(
                        "not selected: {} certificates match and the policy selects none when several do",
                        several.len()
                    ));
                }
                Outcome::Ambiguous {
                    indices: several.to_vec(),
                    serials: several.iter().map(|&i| serial(&verdicts[i])).collect(),
                }
            }
            MultipleMatch::LongestValidity => longest(several, verdicts),
        },
    }
}

/// Latest notAfter; ties go to the later notBefore, then the larger serial, then the first
/// candidate, so the result does not depend on directory order unless the certificates are
/// indistinguishable.
fn longest(several: &[usize], verdicts: &mut [Verdict]) -> Outcome {
    type Key = (UnixTime, UnixTime, usize, String);
    let key = |v: &Verdict| -> Key {
        let s = v.serial.clone().unwrap_or_default();
        (
            v.not_after.unwrap_or(UnixTime::MIN),
            v.not_before.unwrap_or(UnixTime::MIN),
            s.len(),
            s,
        )
    };
    // max_by_key keeps the last of equal keys; iterate in reverse so the first wins.
    let Some(&win) = several.iter().rev().max_by_key(|&&i| key(&verdicts[i])) else {
        return Outcome::NoCandidate;
    };
    let wk = key(&verdicts[win]);
    let rivals: Vec<Key> = several
        .iter()
        .filter(|&&i| i != win)
        .map(|&i| key(&verdicts[i]))
        .collect();
    let tie = |n: usize| {
        rivals.iter().any(|k| match n {
            1 => k.0 == wk.0,
            2 => (k.0, k.1) == (wk.0, wk.1),
            _ => (k.0, k.1, k.2, &k.3) == (wk.0, wk.1, wk.2, &wk.3),
        })
    };
    let mut why = format!(
        "longest validity: notAfter {} is the latest of {} matching certificates",
        fmt_time(wk.0),
        several.len()
    );
    if tie(3) {
        why.push_str("; the others with the same dates and serial come later in the list");
    } else if tie(2) {
        why.push_str("; a tie on notAfter and notBefore, broken by the larger serial");
    } else if tie(1) {
        why.push_str(&format!(
            "; a tie on notAfter, broken by the later notBefore {}",
            fmt_time(wk.1)
        ));
    }
    let winner = verdicts[win].serial.clone().unwrap_or_default();
    for &i in several {
        if i == win {
            verdicts[i].selected = true;
            verdicts[i].notes.push(format!("selected: {why}"));
        } else {
            verdicts[i]
                .notes
                .push(format!("not selected: serial {winner} wins on validity"));
        }
    }
    Outcome::Selected {
        index: win,
        serial: winner,
        why,
    }
}
