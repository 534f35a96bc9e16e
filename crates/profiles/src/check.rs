//! Evaluating a profile on one certificate: the [`Context`] the caller knows, one [`Finding`]
//! per rule, and the [`Report`] that says whether the certificate is compliant.

use crate::facts::{CertFacts, names_host, rdn_values, same_host};
use crate::input::InputFormat;
use crate::rules::{Check, Fqdn, Profile, Rule, Severity, Status};
use fleetpki_model::oid::{KeyUsageBit, eku_name};
use fleetpki_model::template::KeyFamily;
use fleetpki_model::{UnixTime, fmt_time};
use serde::Serialize;

const DAY: i64 = 86_400;

/// What the caller knows that the certificate does not say.
#[derive(Default, Clone, Debug)]
pub struct Context {
    /// `--intranet-fqdn`; for sql-always-on, the cluster's FQDN.
    pub intranet_fqdn: Option<String>,
    /// `--internet-fqdn`.
    pub internet_fqdn: Option<String>,
    /// `--computer-name`.
    pub computer_name: Option<String>,
    /// `--service-name` (cloud management gateway).
    pub service_name: Option<String>,
    /// How the certificate was delivered; `None` at issuance (no file yet).
    pub format: Option<InputFormat>,
    /// `Some(true)` for a PKCS#12 file holding the key (it was exported); the CA passes
    /// `Some(template.exportable)`; `None` for a bare PEM/DER certificate.
    pub key_exportable: Option<bool>,
    pub now: UnixTime,
}

/// The outcome of one rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule id.
    pub rule: &'static str,
    /// Usually the rule's; a rule may lower it (an EC key on windows-client's a0 rule).
    pub severity: Severity,
    pub status: Status,
    /// What the certificate has, concretely: "RSA-4096", "EKU: client-auth only".
    pub found: String,
    /// The seed's words.
    pub requirement: &'static str,
    /// What the administrator does about it.
    pub advice: String,
}

/// Every rule's finding, in the profile's rule order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub profile: &'static str,
    pub findings: Vec<Finding>,
}

impl Report {
    /// No Error-severity rule failed (warnings and unverified rules do not count).
    pub fn compliant(&self) -> bool {
        self.failures().is_empty()
    }

    /// The failed Error-severity rules: what makes the certificate non-compliant.
    pub fn failures(&self) -> Vec<&Finding> {
        self.with(Status::Fail, Some(Severity::Error))
    }

    /// The failed Warning-severity rules.
    pub fn warnings(&self) -> Vec<&Finding> {
        self.with(Status::Fail, Some(Severity::Warning))
    }

    /// The rules that need context the caller did not give.
    pub fn unverified(&self) -> Vec<&Finding> {
        self.with(Status::Unverified, None)
    }

    fn with(&self, status: Status, severity: Option<Severity>) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.status == status && severity.is_none_or(|s| f.severity == s))
            .collect()
    }
}

/// Evaluates every rule of `profile` on `facts`: one finding per rule, in rule order.
pub fn check(profile: &Profile, facts: &CertFacts, ctx: &Context) -> Report {
    Report {
        profile: profile.name,
        findings: profile
            .rules
            .iter()
            .map(|r| evaluate(r, facts, ctx))
            .collect(),
    }
}

/// What one evaluation concluded; `severity` overrides the rule's when set.
struct Outcome {
    status: Status,
    found: String,
    advice: String,
    severity: Option<Severity>,
}

fn out(status: Status, found: impl Into<String>, advice: impl Into<String>) -> Outcome {
    Outcome {
        status,
        found: found.into(),
        advice: advice.into(),
        severity: None,
    }
}

fn pass(found: impl Into<String>) -> Outcome {
    out(Status::Pass, found, "")
}

fn evaluate(rule: &Rule, f: &CertFacts, ctx: &Context) -> Finding {
    let o = match rule.check {
        Check::Eku { oid } => eku(f, oid),
        Check::KeyMaxBits { bits } => key_max(f, bits),
        Check::RsaKeySizes { sizes } => rsa_sizes(f, sizes),
        Check::ExportableKey => exportable(ctx),
        Check::Pkcs12Export => pkcs12(ctx),
        Check::DerEncoding => der_encoding(ctx),
        Check::SiteSystemName { fqdn } => site_system_name(f, ctx, fqdn),
        Check::NameInSubjectOrSan { fqdn } => name_required(f, ctx, fqdn, true),
        Check::NameInSubject { fqdn } => name_required(f, ctx, fqdn, false),
        Check::CnServiceName => cn_service_name(f, ctx),
        Check::SubjectComputerName => subject_computer_name(f, ctx),
        Check::ValidityAtLeastDays { days } => validity_at_least(f, days),
        Check::SubjectOrSanPresent => subject_or_san(f),
        Check::SubjectPresent => subject_present(f),
        Check::FirstSanOnly => first_san_only(f),
        Check::NoSan => no_san(f),
        Check::KeyUsageA0 => key_usage_a0(f),
        Check::CaBasicConstraints => ca_basic_constraints(f),
        Check::CaKeyCertSign => ca_key_cert_sign(f),
        Check::SelfSigned => self_signed(f),
        Check::Sha2Signature => sha2(f, rule.severity),
        Check::WithinValidity => within_validity(f, ctx.now),
    };
    Finding {
        rule: rule.id,
        severity: o.severity.unwrap_or(rule.severity),
        status: o.status,
        found: o.found,
        requirement: rule.requirement,
        advice: o.advice,
    }
}

/// "server-auth, 2.16.840.1.113741.1.2.3"
fn eku_names(ekus: &[String]) -> String {
    ekus.iter()
        .map(|e| eku_name(e))
        .collect::<Vec<_>>()
        .join(", ")
}

fn eku(f: &CertFacts, oid: &str) -> Outcome {
    let name = eku_name(oid);
    if f.ekus.iter().any(|e| e == oid) {
        return pass(format!("EKU: {}", eku_names(&f.ekus)));
    }
    let found = match f.ekus.len() {
        0 => "no Extended Key Usage extension".to_string(),
        1 => format!("EKU: {} only", eku_names(&f.ekus)),
        _ => format!("EKU: {}", eku_names(&f.ekus)),
    };
    let openssl = match name {
        "server-auth" => "serverAuth",
        "client-auth" => "clientAuth",
        _ => oid,
    };
    out(
        Status::Fail,
        found,
        format!(
            "re-issue with {name} ({oid}) in the Extended Key Usage: on a fleetpki template `template set NAME --eku …,{name}`; with openssl `-addext extendedKeyUsage={openssl}` (plus any other purposes the certificate needs)"
        ),
    )
}

fn key_max(f: &CertFacts, max: u32) -> Outcome {
    match f.key.family {
        KeyFamily::Rsa if f.key.bits <= max => pass(f.key.to_string()),
        KeyFamily::Rsa => out(
            Status::Fail,
            format!("{} (more than {max} bits)", f.key),
            format!(
                "re-issue with an RSA key of at most {max} bits (openssl `-newkey rsa:{max}`) or an ECDSA P-256 key; on a fleetpki template `template set NAME --max-key-size {max}`"
            ),
        ),
        _ => pass(format!(
            "{} (not RSA: the seed's limit counts RSA bits, and a {}-bit {} key is far below it)",
            f.key,
            f.key.bits,
            family_word(f.key.family)
        )),
    }
}

fn family_word(f: KeyFamily) -> &'static str {
    match f {
        KeyFamily::Rsa => "RSA",
        KeyFamily::Ecdsa => "EC",
        KeyFamily::Ed25519 => "Ed25519",
    }
}

/// "2048 or 4096 bits"
fn sizes_text(sizes: &[u32]) -> String {
    let s: Vec<String> = sizes.iter().map(u32::to_string).collect();
    format!("{} bits", s.join(" or "))
}

fn rsa_sizes(f: &CertFacts, sizes: &[u32]) -> Outcome {
    let allowed = sizes_text(sizes);
    let lo = sizes.iter().min().copied().unwrap_or(2048);
    let hi = sizes.iter().max().copied().unwrap_or(2048);
    let advice = format!(
        "re-issue with an RSA key of {allowed} (openssl `-newkey rsa:{hi}`); on a fleetpki template `template set NAME --key-algorithms rsa:{lo}-{hi}`"
    );
    match f.key.family {
        KeyFamily::Rsa if sizes.contains(&f.key.bits) => pass(f.key.to_string()),
        KeyFamily::Rsa => out(
            Status::Fail,
            format!("{} (supported: RSA {allowed})", f.key),
            advice,
        ),
        _ => out(
            Status::Fail,
            format!(
                "{} (the seed's supported lengths are RSA key lengths: {allowed})",
                f.key
            ),
            advice,
        ),
    }
}

fn exportable(ctx: &Context) -> Outcome {
    match ctx.key_exportable {
        Some(true) if ctx.format == Some(InputFormat::Pkcs12) => {
            pass("private key exported in the PKCS#12 file")
        }
        Some(true) => pass("private key exportable"),
        Some(false) => out(
            Status::Fail,
            "private key not exportable",
            "re-issue from a template that allows export (`template set NAME --exportable true`), then export the certificate with its key as PKCS#12",
        ),
        None => out(
            Status::Unverified,
            "a certificate alone does not tell whether its private key is exportable",
            "check the PKCS#12 file instead (pass the .pfx with --password), or the template's export setting (`--exportable true`)",
        ),
    }
}

const PKCS12_HOW: &str = "openssl pkcs12 -export -in cert.pem -inkey key.pem -out cert.pfx";

fn pkcs12(ctx: &Context) -> Outcome {
    match (ctx.format, ctx.key_exportable) {
        (Some(InputFormat::Pkcs12), Some(true)) => pass("PKCS#12 file with the private key"),
        (Some(InputFormat::Pkcs12), _) => out(
            Status::Fail,
            "PKCS#12 file without the private key",
            format!("export again including the private key and a password (`{PKCS12_HOW}`)"),
        ),
        (Some(fmt), _) => out(
            Status::Unverified,
            format!(
                "a {} certificate file, which holds no private key",
                fmt.name()
            ),
            format!(
                "export the certificate with its private key as PKCS#12 (.pfx) with a password (`{PKCS12_HOW}`) and check that file with --password"
            ),
        ),
        (None, _) => out(
            Status::Unverified,
            "not exported yet (a certificate being issued)",
            format!(
                "when installing it, export the certificate with its private key as PKCS#12 (.pfx) with a password (`{PKCS12_HOW}`)"
            ),
        ),
    }
}

fn der_encoding(ctx: &Context) -> Outcome {
    match ctx.format {
        Some(InputFormat::Der) => pass("DER file"),
        Some(InputFormat::Pem) => out(
            Status::Fail,
            "PEM (Base64) file",
            "convert it to DER: `openssl x509 -in cert.pem -outform DER -out cert.cer`",
        ),
        Some(InputFormat::Pkcs12) => out(
            Status::Fail,
            "PKCS#12 file",
            "extract the certificate as DER: `openssl pkcs12 -in cert.pfx -clcerts -nokeys | openssl x509 -outform DER -out cert.cer`",
        ),
        None => out(
            Status::Unverified,
            "no file yet (a certificate being issued)",
            "deliver the certificate to the device as DER (.cer), not Base64/PEM",
        ),
    }
}

/// Where the subject or SAN names `host`, e.g. "subject (mp.fleet.test)" or "SAN DNS:mp.fleet.test".
fn locate(f: &CertFacts, host: &str) -> Option<String> {
    if let Some(v) = f.subject_names().into_iter().find(|v| names_host(v, host)) {
        return Some(format!("subject ({v})"));
    }
    f.san_dns()
        .into_iter()
        .find(|d| names_host(d, host))
        .map(|d| format!("SAN DNS:{d}"))
}

fn names_where(f: &CertFacts) -> String {
    format!("subject {}; SAN: {}", f.subject_text(), f.san_text())
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The site-system hint about names for both intranet and internet connections.
const BOTH_NAMES: &str = "; for a site system that takes both intranet and internet connections put both names in, as SAN DNS names or as CN=INTRANET-FQDN&INTERNET-FQDN";

fn site_system_name(f: &CertFacts, ctx: &Context, fqdn: Fqdn) -> Outcome {
    let intranet = given(&ctx.intranet_fqdn);
    let internet = given(&ctx.internet_fqdn);
    let computer = given(&ctx.computer_name);
    let nothing = || {
        out(
            Status::Unverified,
            format!(
                "no site system name given to compare with ({})",
                names_where(f)
            ),
            "pass --intranet-fqdn and/or --internet-fqdn, as the site system accepts intranet and/or internet connections",
        )
    };
    match fqdn {
        Fqdn::Internet => match internet {
            Some(name) => name_in(f, "internet FQDN", name, BOTH_NAMES),
            None if intranet.is_some() || computer.is_some() => out(
                Status::NotApplicable,
                "no --internet-fqdn: the site system is taken to accept intranet connections only",
                "",
            ),
            None => nothing(),
        },
        _ => {
            if let Some(name) = intranet {
                // The seed allows the computer's name instead of the (recommended) intranet FQDN.
                let by_computer = match computer {
                    Some(c) if locate(f, name).is_none() => locate(f, c).map(|at| (c, at)),
                    _ => None,
                };
                if let Some((c, at)) = by_computer {
                    return pass(format!(
                        "computer name {c} in {at} (the seed accepts it instead of the intranet FQDN {name}, which it recommends)"
                    ));
                }
                name_in(f, "intranet FQDN", name, BOTH_NAMES)
            } else if let Some(c) = computer {
                name_in(f, "computer name", c, BOTH_NAMES)
            } else if internet.is_some() {
                out(
                    Status::NotApplicable,
                    "no --intranet-fqdn: the site system is taken to accept internet connections only",
                    "a software update point that accepts internet clients only still needs both names: pass --intranet-fqdn for it",
                )
            } else {
                nothing()
            }
        }
    }
}

/// Pass when `name` is in the subject or the SAN DNS names; `hint` ends the advice.
fn name_in(f: &CertFacts, what: &str, name: &str, hint: &str) -> Outcome {
    match locate(f, name) {
        Some(at) => pass(format!("{what} {name} in {at}")),
        None => out(
            Status::Fail,
            format!(
                "{what} {name} is not in the subject or SAN ({})",
                names_where(f)
            ),
            format!("re-issue with {name} as the CN or as a SAN DNS name{hint}"),
        ),
    }
}

fn name_required(f: &CertFacts, ctx: &Context, fqdn: Fqdn, in_san: bool) -> Outcome {
    let (value, what, option) = match fqdn {
        Fqdn::Internet => (
            given(&ctx.internet_fqdn),
            "internet FQDN",
            "--internet-fqdn",
        ),
        Fqdn::Intranet => (
            given(&ctx.intranet_fqdn),
            "intranet FQDN",
            "--intranet-fqdn",
        ),
        Fqdn::Cluster => (
            given(&ctx.intranet_fqdn),
            "cluster FQDN (--intranet-fqdn)",
            "--intranet-fqdn (the cluster's intranet FQDN)",
        ),
    };
    let Some(name) = value else {
        return out(
            Status::Unverified,
            format!("no {what} given to compare with ({})", names_where(f)),
            format!("pass {option}"),
        );
    };
    if in_san {
        return name_in(f, what, name, "");
    }
    // The subject itself, exactly: a SAN (or a wildcard) does not satisfy "Subject Name".
    if f.subject_names().iter().any(|v| same_host(v, name)) {
        return pass(format!("{what} {name} in subject {}", f.subject_text()));
    }
    let in_san_only = if f.san_dns().iter().any(|d| same_host(d, name)) {
        " (it is in the SAN, but the seed requires the Subject Name)"
    } else {
        ""
    };
    out(
        Status::Fail,
        format!(
            "{what} {name} is not in the subject {}{in_san_only}",
            f.subject_text()
        ),
        format!("re-issue with CN={name} in the subject"),
    )
}

fn cn_service_name(f: &CertFacts, ctx: &Context) -> Outcome {
    let mut cns: Vec<String> = rdn_values(&f.subject)
        .into_iter()
        .filter(|(a, _)| a.eq_ignore_ascii_case("CN"))
        .map(|(_, v)| v)
        .collect();
    for c in &f.common_names {
        if !cns.contains(c) {
            cns.push(c.clone());
        }
    }
    let cn_text = if cns.is_empty() {
        "no CN".to_string()
    } else {
        format!("CN={}", cns.join(", CN="))
    };
    let Some(service) = given(&ctx.service_name) else {
        return out(
            Status::Unverified,
            format!("{cn_text}; no service name given to compare with"),
            "pass --service-name with the CMG's service name (e.g. contoso-cmg.cloudapp.net, or your own domain's name for it)",
        );
    };
    if cns.iter().any(|c| same_host(c, service)) {
        pass(cn_text)
    } else {
        out(
            Status::Fail,
            format!("{cn_text}, not the service name {service}"),
            format!("re-issue with CN={service} (the CMG's service name) as the Common Name"),
        )
    }
}

fn subject_computer_name(f: &CertFacts, ctx: &Context) -> Outcome {
    if f.subject.trim().is_empty() && f.common_names.is_empty() {
        return out(
            Status::NotApplicable,
            "no Subject Name (the rule applies only if the Subject Name is used)",
            "",
        );
    }
    let Some(name) = given(&ctx.computer_name) else {
        return out(
            Status::Unverified,
            format!("subject {}; no computer name given", f.subject_text()),
            "pass --computer-name with the client's computer name",
        );
    };
    let matches = |v: &str| {
        same_host(v, name)
            || (!name.contains('.')
                && v.split('.')
                    .next()
                    .is_some_and(|l| l.eq_ignore_ascii_case(name)))
    };
    match f.subject_names().into_iter().find(|v| matches(v)) {
        Some(v) => pass(format!("computer name {name} in subject ({v})")),
        None => out(
            Status::Fail,
            format!(
                "subject {} does not hold the computer name {name}",
                f.subject_text()
            ),
            format!(
                "re-issue with CN={name} (or the computer's FQDN) in the subject, or configure an alternative client certificate selection criterion on the site (a subject attribute or SAN match)"
            ),
        ),
    }
}

fn validity_at_least(f: &CertFacts, days: i64) -> Outcome {
    let secs = f.not_after.saturating_sub(f.not_before);
    let found = format!(
        "validity {} days ({} to {})",
        secs / DAY,
        fmt_time(f.not_before),
        fmt_time(f.not_after)
    );
    if secs >= days.saturating_mul(DAY) {
        pass(found)
    } else {
        out(
            Status::Fail,
            found,
            format!(
                "re-issue with a validity of at least {days} days (fleetpki `template set NAME --validity 2y`; openssl `-days {days}`)"
            ),
        )
    }
}

const UNIQUE_CAVEAT: &str = "one certificate cannot show that its name is unique: make sure no other computer's certificate carries the same subject or first SAN value";

fn subject_or_san(f: &CertFacts) -> Outcome {
    if f.subject.trim().is_empty() && f.common_names.is_empty() && f.sans.is_empty() {
        return out(
            Status::Fail,
            "empty subject and no SAN",
            "re-issue with the computer's FQDN as the CN or as a SAN DNS name",
        );
    }
    out(Status::Pass, names_where(f), UNIQUE_CAVEAT)
}

fn subject_present(f: &CertFacts) -> Outcome {
    if f.subject.trim().is_empty() && f.common_names.is_empty() {
        return out(
            Status::Fail,
            "empty subject",
            "re-issue with a unique subject, e.g. CN=the computer's FQDN",
        );
    }
    out(
        Status::Pass,
        format!("subject {}", f.subject_text()),
        "one certificate cannot show that its subject is unique: make sure no other computer's certificate carries the same subject",
    )
}

fn first_san_only(f: &CertFacts) -> Outcome {
    match f.sans.as_slice() {
        [] => out(Status::NotApplicable, "no SAN", ""),
        [one] => pass(format!("SAN: {one}")),
        [first, ..] => out(
            Status::Fail,
            format!(
                "SAN: {} — only the first, {first}, is used",
                f.sans.join(", ")
            ),
            "put the value certificate selection should match first, or issue the certificate with one SAN value",
        ),
    }
}

fn no_san(f: &CertFacts) -> Outcome {
    if f.sans.is_empty() {
        return pass("no Subject Alternative Name");
    }
    out(
        Status::Fail,
        format!("SAN: {}", f.sans.join(", ")),
        "re-issue without a Subject Alternative Name (fleetpki `template set NAME --subject-from-directory cn`; with openssl leave out subjectAltName)",
    )
}

fn ku_text(ku: &[KeyUsageBit]) -> String {
    if ku.is_empty() {
        "no Key Usage extension".to_string()
    } else {
        format!(
            "Key Usage: {}",
            ku.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
        )
    }
}

fn key_usage_a0(f: &CertFacts) -> Outcome {
    let ds = f.key_usage.contains(&KeyUsageBit::DigitalSignature);
    let ke = f.key_usage.contains(&KeyUsageBit::KeyEncipherment);
    let fix = "re-issue with keyUsage digitalSignature, keyEncipherment (fleetpki `template set NAME --key-usage digitalSignature,keyEncipherment`; openssl `-addext keyUsage=critical,digitalSignature,keyEncipherment`)";
    match (f.key.family, ds, ke) {
        (KeyFamily::Rsa, true, true) => pass(ku_text(&f.key_usage)),
        (KeyFamily::Rsa, _, _) => out(Status::Fail, ku_text(&f.key_usage), fix),
        (_, false, _) => out(
            Status::Fail,
            format!("{} key, {}", f.key, ku_text(&f.key_usage)),
            "re-issue with keyUsage digitalSignature (fleetpki `template set NAME --key-usage digitalSignature`)",
        ),
        (_, true, ke) => Outcome {
            status: Status::Fail,
            found: format!("{} key, {}", f.key, ku_text(&f.key_usage)),
            advice: if ke {
                "keyEncipherment is asserted on a key that cannot encrypt (RFC 5480 forbids it for ECDSA keys); re-issue with digitalSignature only, or use RSA with a0".to_string()
            } else {
                "keyEncipherment does not apply to an EC key: the seed's a0 assumes RSA. digitalSignature is what TLS client authentication with this key needs; make sure the site systems accept ECDSA client certificates (CNG v3), or issue RSA with a0".to_string()
            },
            severity: Some(Severity::Warning),
        },
    }
}

fn ca_basic_constraints(f: &CertFacts) -> Outcome {
    if f.is_ca {
        pass("basicConstraints CA:TRUE")
    } else {
        out(
            Status::Fail,
            "no basicConstraints CA:TRUE (an end-entity certificate)",
            "give the root CA's own certificate (basicConstraints CA:TRUE), not a certificate it issued",
        )
    }
}

fn ca_key_cert_sign(f: &CertFacts) -> Outcome {
    if f.key_usage.contains(&KeyUsageBit::KeyCertSign) {
        pass(ku_text(&f.key_usage))
    } else {
        out(
            Status::Fail,
            ku_text(&f.key_usage),
            "a CA certificate needs keyUsage keyCertSign (and cRLSign); re-create the root with `-addext keyUsage=critical,keyCertSign,cRLSign`",
        )
    }
}

fn self_signed(f: &CertFacts) -> Outcome {
    match f.self_signed {
        Some(true) => pass("self-signed (issuer = subject, signed by its own key)"),
        Some(false) => out(
            Status::Fail,
            "issued by another CA (not self-signed)",
            "give the root of the chain: the self-signed certificate at its top (an intermediate CA certificate is not a root)",
        ),
        None => out(
            Status::Unverified,
            "unknown for a certificate not yet signed",
            "check the certificate file itself",
        ),
    }
}

enum HashClass {
    Sha2,
    Broken(&'static str),
    Unknown,
}

fn classify(alg: &str) -> HashClass {
    let n: String = alg
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    if ["sha224", "sha256", "sha384", "sha512"]
        .iter()
        .any(|h| n.contains(h))
        || n == "ed25519"
    {
        HashClass::Sha2
    } else if n.contains("sha1") {
        HashClass::Broken("SHA-1")
    } else if n.contains("md5") {
        HashClass::Broken("MD5")
    } else if n.contains("md4") || n.contains("md2") {
        HashClass::Broken("MD2/MD4")
    } else {
        HashClass::Unknown
    }
}

fn sha2(f: &CertFacts, severity: Severity) -> Outcome {
    let alg = &f.signature_algorithm;
    let fix = if severity == Severity::Warning {
        "nobody verifies a root's signature on itself, so this root still works; replace it with a SHA-2-signed root when you next renew it"
    } else {
        "re-issue signed with SHA-256 or stronger (openssl `-sha256`; fleetpki templates sign with SHA-2 only)"
    };
    match classify(alg) {
        HashClass::Sha2 => pass(alg.clone()),
        HashClass::Broken(h) => out(Status::Fail, format!("{alg} ({h})"), fix),
        HashClass::Unknown => out(
            Status::Fail,
            format!("{alg} (not a SHA-2 signature algorithm)"),
            fix,
        ),
    }
}

fn within_validity(f: &CertFacts, now: UnixTime) -> Outcome {
    let window = format!(
        "valid from {} to {}",
        fmt_time(f.not_before),
        fmt_time(f.not_after)
    );
    if now < f.not_before {
        out(
            Status::Fail,
            format!("not yet valid: {window}"),
            "wait until notBefore, or check this machine's clock",
        )
    } else if now > f.not_after {
        out(
            Status::Fail,
            format!("expired: {window}"),
            "renew the certificate",
        )
    } else {
        pass(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_classes() {
        for ok in [
            "sha256WithRSAEncryption",
            "ecdsa-with-SHA384",
            "Ed25519",
            "RSASSA-PSS (SHA-512)",
        ] {
            assert!(matches!(classify(ok), HashClass::Sha2), "{ok}");
        }
        for bad in [
            "sha1WithRSAEncryption",
            "ecdsa-with-SHA1",
            "RSASSA-PSS (SHA-1)",
        ] {
            assert!(matches!(classify(bad), HashClass::Broken("SHA-1")), "{bad}");
        }
        assert!(matches!(
            classify("md5WithRSAEncryption"),
            HashClass::Broken("MD5")
        ));
        assert!(matches!(classify("1.2.3.4"), HashClass::Unknown));
        assert!(matches!(classify("Ed448"), HashClass::Unknown));
    }
}
