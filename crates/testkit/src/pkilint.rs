//! Runs pkilint's linters (`lint_pkix_cert`, `lint_pkix_signer_signee_cert_chain`,
//! `lint_crl`, `lint_ocsp_response`) and parses their JSON reports.
//!
//! Every linter is run with `-s WARNING -f JSON`, which prints one line like
//!
//! ```text
//! {"results": [{"node_path": "certificate.tbsCertificate.extensions.0.extnValue.subjectAltName.0.dNSName",
//!               "validator": "GeneralNameDnsNameSyntaxValidator",
//!               "finding_descriptions": [{"severity": "ERROR",
//!                                         "code": "pkix.invalid_domain_name_syntax",
//!                                         "message": "Invalid domain name syntax: \"localhost\""}]}]}
//! ```
//!
//! (`message` may be `null`) and exits with the number of findings at or above the threshold,
//! capped at 255. A document pkilint can't load prints nothing on stdout, an error on stderr,
//! and exits 1; that case is an error here, as is any output that doesn't parse.

use std::fmt;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::tools::resolve;

/// The RFC 5280 certificate linter.
pub const LINT_PKIX_CERT: &str = "lint_pkix_cert";
/// The issuer/subject certificate pair linter.
pub const LINT_PKIX_CHAIN: &str = "lint_pkix_signer_signee_cert_chain";
/// The CRL linter.
pub const LINT_CRL: &str = "lint_crl";
/// The OCSP response linter.
pub const LINT_OCSP_RESPONSE: &str = "lint_ocsp_response";

/// Severities kept, most severe first (pkilint's order: FATAL, ERROR, WARNING, NOTICE, INFO, DEBUG).
const KEPT_SEVERITIES: [&str; 3] = ["FATAL", "ERROR", "WARNING"];
const ALL_SEVERITIES: [&str; 6] = ["FATAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"];

/// One pkilint finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `FATAL`, `ERROR` or `WARNING` (lower severities are filtered out).
    pub severity: String,
    /// Stable finding code, e.g. `pkix.invalid_domain_name_syntax`.
    pub code: String,
    /// Human-readable detail; empty when pkilint gives none (`null`).
    pub message: String,
    /// Where in the document, e.g. `certificate.tbsCertificate.extensions.0.extnValue.keyUsage`.
    pub node_path: String,
    /// The pkilint validator class that reported it, e.g. `SpkiKeyUsageConsistencyValidator`.
    pub validator: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} at {}", self.severity, self.code, self.node_path)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        write!(f, " ({})", self.validator)
    }
}

/// Lints a certificate (PEM; DER held in a `str` is not possible, use PEM) against the RFC 5280
/// profile: `lint_pkix_cert lint -s WARNING -f JSON <file>`. Returns the findings at WARNING or
/// above; an empty list means clean.
pub fn pkilint_cert(cert_pem: &str) -> anyhow::Result<Vec<Finding>> {
    run(LINT_PKIX_CERT, &[], &[("cert.pem", cert_pem.as_bytes())])
}

/// Lints an issuer/subject pair (name chaining, key identifiers, signature, validity
/// nesting): `lint_pkix_signer_signee_cert_chain lint -s WARNING -f JSON issuer.pem subject.pem`.
pub fn pkilint_chain(issuer_pem: &str, subject_pem: &str) -> anyhow::Result<Vec<Finding>> {
    run(
        LINT_PKIX_CHAIN,
        &[],
        &[
            ("issuer.pem", issuer_pem.as_bytes()),
            ("subject.pem", subject_pem.as_bytes()),
        ],
    )
}

/// Lints a CRL (DER or PEM) against the PKIX profile:
/// `lint_crl lint -t CRL -p PKIX -s WARNING -f JSON <file>`.
pub fn pkilint_crl(crl: &[u8]) -> anyhow::Result<Vec<Finding>> {
    run(LINT_CRL, &["-t", "CRL", "-p", "PKIX"], &[("ca.crl", crl)])
}

/// Lints a DER OCSP response: `lint_ocsp_response lint -s WARNING -f JSON resp.der`.
pub fn pkilint_ocsp(resp_der: &[u8]) -> anyhow::Result<Vec<Finding>> {
    run(LINT_OCSP_RESPONSE, &[], &[("resp.der", resp_der)])
}

fn run(
    linter: &str,
    extra_args: &[&str],
    inputs: &[(&str, &[u8])],
) -> anyhow::Result<Vec<Finding>> {
    let program = resolve(linter)?;
    let dir = tempfile::tempdir().context("creating a temp dir for pkilint input")?;
    let mut cmd = Command::new(&program);
    cmd.arg("lint")
        .args(extra_args)
        .args(["-s", "WARNING", "-f", "JSON"]);
    for (name, content) in inputs {
        let path = dir.path().join(name);
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        cmd.arg(path);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let Some(status) = out.status.code() else {
        bail!("{linter} was killed ({}); stderr: {stderr}", out.status);
    };
    parse_report(&stdout, status).with_context(|| {
        format!("{linter} exited {status}; stdout: {stdout:?}; stderr: {stderr:?}")
    })
}

/// Parses a pkilint `-f JSON` report and cross-checks it against the exit status (the number
/// of reported findings, capped at 255). Keeps findings at WARNING or above.
pub(crate) fn parse_report(stdout: &str, status: i32) -> anyhow::Result<Vec<Finding>> {
    let text = stdout.trim();
    if text.is_empty() {
        bail!("pkilint printed no report (it could not load the document?)");
    }
    let report: Value = serde_json::from_str(text).context("pkilint output is not JSON")?;
    let results = report
        .get("results")
        .and_then(Value::as_array)
        .context("pkilint report has no \"results\" array")?;

    let mut reported = 0usize;
    let mut findings = Vec::new();
    for (i, result) in results.iter().enumerate() {
        let node_path = str_field(result, "node_path").with_context(|| format!("results[{i}]"))?;
        let validator = str_field(result, "validator").with_context(|| format!("results[{i}]"))?;
        let descriptions = result
            .get("finding_descriptions")
            .and_then(Value::as_array)
            .with_context(|| format!("results[{i}] has no \"finding_descriptions\" array"))?;
        for (j, desc) in descriptions.iter().enumerate() {
            let ctx = || format!("results[{i}].finding_descriptions[{j}]");
            let severity = str_field(desc, "severity").with_context(ctx)?;
            let code = str_field(desc, "code").with_context(ctx)?;
            let message = match desc.get("message") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => bail!("{}: \"message\" is not a string: {other}", ctx()),
            };
            if !ALL_SEVERITIES.contains(&severity.as_str()) {
                bail!("{}: unknown severity {severity:?}", ctx());
            }
            reported += 1;
            if KEPT_SEVERITIES.contains(&severity.as_str()) {
                findings.push(Finding {
                    severity,
                    code,
                    message,
                    node_path: node_path.clone(),
                    validator: validator.clone(),
                });
            }
        }
    }

    let expected = reported.min(255);
    if usize::try_from(status).ok() != Some(expected) {
        bail!(
            "exit status {status} does not match the {reported} finding(s) in the report \
             (pkilint exits with the finding count)"
        );
    }
    Ok(findings)
}

fn str_field(value: &Value, key: &str) -> anyhow::Result<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("missing string field {key:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpki::TestPki;
    use crate::tools::tool;

    // Verbatim output of `lint_pkix_cert lint -s WARNING -f JSON` (pkilint 0.13.3) for an EC leaf
    // with SAN DNS:localhost and keyUsage keyEncipherment; it exited 2.
    const TWO_FINDINGS: &str = r#"{"results": [{"node_path": "certificate.tbsCertificate.extensions.0.extnValue.subjectAltName.0.dNSName", "validator": "GeneralNameDnsNameSyntaxValidator", "finding_descriptions": [{"severity": "ERROR", "code": "pkix.invalid_domain_name_syntax", "message": "Invalid domain name syntax: \"localhost\""}]}, {"node_path": "certificate.tbsCertificate.extensions.1.extnValue.keyUsage", "validator": "SpkiKeyUsageConsistencyValidator", "finding_descriptions": [{"severity": "ERROR", "code": "pkix.key_usage_value_prohibited_for_ec", "message": "Prohibited key usage value(s) present: keyEncipherment"}]}]}"#;

    #[test]
    fn parses_recorded_report() {
        let findings = parse_report(TWO_FINDINGS, 2).expect("parse");
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[0].severity, "ERROR");
        assert_eq!(findings[0].code, "pkix.invalid_domain_name_syntax");
        assert_eq!(
            findings[0].message,
            "Invalid domain name syntax: \"localhost\""
        );
        assert_eq!(
            findings[0].node_path,
            "certificate.tbsCertificate.extensions.0.extnValue.subjectAltName.0.dNSName"
        );
        assert_eq!(findings[0].validator, "GeneralNameDnsNameSyntaxValidator");
        assert_eq!(findings[1].code, "pkix.key_usage_value_prohibited_for_ec");
    }

    #[test]
    fn parses_clean_and_null_message_reports() {
        assert_eq!(
            parse_report("{\"results\": []}\n", 0).expect("parse"),
            vec![]
        );
        let null_msg = r#"{"results": [{"node_path": "certificateList", "validator": "AuthorityKeyIdentifierPresenceValidator", "finding_descriptions": [{"severity": "ERROR", "code": "pkix.authority_key_identifier_missing", "message": null}]}]}"#;
        let findings = parse_report(null_msg, 1).expect("parse");
        assert_eq!(findings[0].message, "");
        assert_eq!(findings[0].code, "pkix.authority_key_identifier_missing");
    }

    #[test]
    fn drops_findings_below_warning_but_counts_them() {
        let info = r#"{"results": [{"node_path": "n", "validator": "V", "finding_descriptions": [{"severity": "INFO", "code": "c", "message": null}, {"severity": "WARNING", "code": "w", "message": "m"}]}]}"#;
        let findings = parse_report(info, 2).expect("parse");
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, "w");
    }

    #[test]
    fn rejects_unusable_output() {
        // What pkilint does with a file it can't load: nothing on stdout, exit 1.
        assert!(parse_report("", 1).is_err());
        assert!(parse_report("Failed to load certificate", 1).is_err());
        assert!(parse_report("{\"results\": {}}", 0).is_err());
        assert!(parse_report("{\"other\": []}", 0).is_err());
        assert!(parse_report(r#"{"results": [{"node_path": "n"}]}"#, 0).is_err());
        let bad_sev = r#"{"results": [{"node_path": "n", "validator": "V", "finding_descriptions": [{"severity": "BAD", "code": "c", "message": null}]}]}"#;
        assert!(parse_report(bad_sev, 1).is_err());
        // Exit status must agree with the number of findings.
        assert!(parse_report(TWO_FINDINGS, 0).is_err());
        assert!(parse_report("{\"results\": []}", 2).is_err());
    }

    fn codes(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.code.as_str()).collect()
    }

    fn have(tools: &[&str]) -> bool {
        tools.iter().all(|t| tool(t).is_some())
    }

    #[test]
    fn real_cert_findings() {
        if !have(&["openssl", LINT_PKIX_CERT]) {
            return;
        }
        let pki = TestPki::new();
        for (name, pem) in [
            ("root", &pki.root_pem),
            ("intermediate", &pki.inter_pem),
            ("leaf", &pki.leaf_pem),
        ] {
            let findings = pkilint_cert(pem).expect("lint");
            assert!(findings.is_empty(), "{name} should be clean: {findings:#?}");
        }

        let leaf = pkilint_cert(&pki.bad_leaf_pem).expect("lint leaf");
        let codes = codes(&leaf);
        assert!(
            codes.contains(&"pkix.invalid_domain_name_syntax"),
            "{leaf:#?}"
        );
        assert!(
            codes.contains(&"pkix.key_usage_value_prohibited_for_ec"),
            "{leaf:#?}"
        );
        assert!(leaf.iter().all(|f| f.severity == "ERROR"), "{leaf:#?}");
        let san = leaf
            .iter()
            .find(|f| f.code == "pkix.invalid_domain_name_syntax")
            .expect("SAN finding");
        assert!(san.node_path.ends_with("subjectAltName.0.dNSName"), "{san}");
        assert!(san.message.contains("localhost"), "{san}");
    }

    #[test]
    fn real_cert_unloadable_is_error() {
        if !have(&[LINT_PKIX_CERT]) {
            return;
        }
        let err = pkilint_cert("not a certificate\n").expect_err("garbage must be an error");
        assert!(format!("{err:#}").contains("Failed to load"), "{err:#}");
    }

    #[test]
    fn real_chain_findings() {
        if !have(&["openssl", LINT_PKIX_CHAIN]) {
            return;
        }
        let pki = TestPki::new();
        for (issuer, subject) in [
            (&pki.root_pem, &pki.bad_leaf_pem),
            (&pki.root_pem, &pki.inter_pem),
            (&pki.inter_pem, &pki.leaf_pem),
        ] {
            let ok = pkilint_chain(issuer, subject).expect("lint chain");
            assert!(ok.is_empty(), "{ok:#?}");
        }
        // Wrong issuer: the leaf was not signed by the other root.
        let wrong = pkilint_chain(&pki.other_root_pem, &pki.bad_leaf_pem).expect("lint chain");
        assert!(
            codes(&wrong).contains(&"pkix.signature_verification_failed"),
            "{wrong:#?}"
        );
    }

    #[test]
    fn real_crl_findings() {
        if !have(&["openssl", LINT_CRL]) {
            return;
        }
        let pki = TestPki::new();
        let pem = pkilint_crl(pki.crl_pem.as_bytes()).expect("lint PEM CRL");
        assert!(pem.is_empty(), "{pem:#?}");
        let der = pkilint_crl(&pki.crl_der).expect("lint DER CRL");
        assert!(der.is_empty(), "{der:#?}");
        let no_aki = pkilint_crl(pki.crl_without_aki_pem.as_bytes()).expect("lint CRL");
        assert_eq!(codes(&no_aki), ["pkix.authority_key_identifier_missing"]);
    }

    #[test]
    fn real_ocsp_response() {
        if !have(&["openssl", LINT_OCSP_RESPONSE]) {
            return;
        }
        let pki = TestPki::new();
        let findings = pkilint_ocsp(&pki.ocsp_response_der).expect("lint OCSP response");
        assert!(findings.is_empty(), "{findings:#?}");
        assert!(pkilint_ocsp(b"garbage").is_err());
    }
}
