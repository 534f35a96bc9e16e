//! Enforcement of role requirement profiles (seed 002): a template bound to a profile may not be
//! edited into one that lets non-compliant certificates through, and the CA refuses to sign a
//! certificate that would fail its template's profile.

use crate::error::{CaError, refuse};
use fleetpki_model::UnixTime;
use fleetpki_model::directory::{Principal, PrincipalKind};
use fleetpki_model::template::{HashAlg, KeyFamily, KeyInfo, Template};
use fleetpki_profiles::{CertFacts, Context, Finding};
use fleetpki_x509::cert::CertParams;
use fleetpki_x509::name;

/// Refuses a template whose settings would let certificates fail its profile.
pub(crate) fn enforce_template(t: &Template) -> Result<(), CaError> {
    let Some(name) = &t.profile else {
        return Ok(());
    };
    let profile =
        fleetpki_profiles::profile(name).map_err(|e| refuse("template.profile", e.to_string()))?;
    let findings = fleetpki_profiles::check_template(profile, t);
    if findings.is_empty() {
        return Ok(());
    }
    Err(refuse(
        "template.profile",
        format!(
            "template `{}` is bound to profile `{}` and would let non-compliant certificates through:\n{}",
            t.name,
            profile.name,
            explain(&findings.iter().collect::<Vec<_>>())
        ),
    ))
}

/// Checks the certificate the CA is about to sign against the template's profile. The context
/// comes from the directory: the principal's FQDN is its intranet FQDN, its name the computer name.
pub(crate) fn enforce_issuance(
    t: &Template,
    principal: &Principal,
    params: &CertParams,
    issuer_key: &KeyInfo,
    now: UnixTime,
) -> Result<(), CaError> {
    let Some(name) = &t.profile else {
        return Ok(());
    };
    let profile =
        fleetpki_profiles::profile(name).map_err(|e| refuse("template.profile", e.to_string()))?;
    let facts = CertFacts {
        subject: name::to_string(&params.subject),
        common_names: name::common_name(&params.subject).into_iter().collect(),
        sans: params.sans.iter().map(crate::issuance::san_text).collect(),
        ekus: params.ekus.clone(),
        key_usage: params.key_usage.clone(),
        key: fleetpki_x509::key::spki_info(&params.spki_der)?,
        is_ca: params.ca.is_some(),
        self_signed: Some(false),
        not_before: params.not_before,
        not_after: params.not_after,
        signature_algorithm: signature_name(issuer_key, t.hash).to_string(),
    };
    let ctx = Context {
        intranet_fqdn: principal.dns.clone(),
        internet_fqdn: None,
        computer_name: (principal.kind == PrincipalKind::Computer).then(|| principal.name.clone()),
        service_name: None,
        format: None,
        key_exportable: Some(t.exportable),
        now,
    };
    let report = fleetpki_profiles::check(profile, &facts, &ctx);
    if report.compliant() {
        return Ok(());
    }
    Err(refuse(
        "profile",
        format!(
            "the certificate for `{}` would fail profile `{}` of template `{}`, so it was not issued:\n{}",
            principal.name,
            profile.name,
            t.name,
            explain(&report.failures())
        ),
    ))
}

/// One line per failed rule: id, what was found, the seed's requirement, what to do.
fn explain(findings: &[&Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "  - {}: found {}; the seed requires: \"{}\"; {}",
                f.rule, f.found, f.requirement, f.advice
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The signature algorithm the issuing CA's key produces with the template's hash.
fn signature_name(key: &KeyInfo, hash: HashAlg) -> &'static str {
    match (key.family, key.bits, hash) {
        (KeyFamily::Ecdsa, 256, _) => "ecdsa-with-SHA256",
        (KeyFamily::Ecdsa, _, _) => "ecdsa-with-SHA384",
        (KeyFamily::Ed25519, _, _) => "Ed25519",
        (_, _, HashAlg::Sha256) => "sha256WithRSAEncryption",
        (_, _, HashAlg::Sha384) => "sha384WithRSAEncryption",
        (_, _, HashAlg::Sha512) => "sha512WithRSAEncryption",
    }
}
