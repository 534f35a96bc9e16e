//! The acceptance linter: pkilint's RFC 5280 profile must find nothing (at WARNING and above) in
//! a root, an intermediate, end-entity certificates and CRLs we produce. pkilint is a Python
//! tool that `scripts/test.sh` installs; without it the test is skipped, unless CI or
//! FLEETPKI_REQUIRE_TOOLS is set, when a missing linter fails it.

use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::record::RevocationReason;
use fleetpki_model::template::HashAlg;
use fleetpki_x509::cert::{self, CertParams, IssuerUrls, San};
use fleetpki_x509::crl::{self, CrlEntry, CrlParams};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{name, pem, serial};
use std::path::Path;
use std::process::Command;

const DAY: i64 = 86_400;

fn lint(dir: &Path, tool: &str, args: &[&str], file: &str) -> String {
    let o = Command::new(tool)
        .args(args)
        .arg(file)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{tool} (pip install pkilint) could not be run: {e}"));
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // pkilint exits non-zero when it has findings.
    assert!(o.status.success(), "{tool} findings for {file}:\n{out}");
    out
}

/// pkilint prints nothing (text) or an empty result list (JSON) for a clean input.
fn assert_clean(what: &str, out: &str) {
    let t = out.trim();
    let clean = t.is_empty()
        || t == "[]"
        || t == "{}"
        || (t.contains("\"results\": []") && !t.contains("\"finding_descriptions\""));
    assert!(clean, "pkilint findings for {what}:\n{out}");
}

fn params(
    subject: &[(&str, &str)],
    spki: Vec<u8>,
    ku: Vec<KeyUsageBit>,
    ca: Option<Option<u8>>,
    urls: IssuerUrls,
) -> CertParams {
    let now = fleetpki_model::now();
    CertParams {
        serial: serial::random().unwrap(),
        subject: name::build(subject).unwrap(),
        sans: vec![],
        spki_der: spki,
        not_before: now - 3600,
        not_after: now + 365 * DAY,
        key_usage: ku,
        ekus: vec![],
        ca,
        urls,
    }
}

fn urls(tag: &str) -> IssuerUrls {
    IssuerUrls {
        crl: Some(format!("http://pki.fleet.test/{tag}.crl")),
        ocsp: Some("http://pki.fleet.test/ocsp".into()),
        ca_issuers: Some(format!("http://pki.fleet.test/{tag}.crt")),
    }
}

#[test]
fn pkilint_pkix_profile_is_clean() {
    if fleetpki_testkit::tool("lint_pkix_cert").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = fleetpki_model::now();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();

    for (root_kt, int_kt) in [
        (KeyType::EcdsaP384, KeyType::EcdsaP256),
        (KeyType::Rsa3072, KeyType::Rsa2048),
    ] {
        let tag = root_kt.name();
        let root_key = PrivateKey::generate(root_kt).unwrap();
        let mut rp = params(
            &[("CN", "Fleet Test Root"), ("O", "Contoso"), ("C", "US")],
            root_key.public_key_der(),
            vec![KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign],
            Some(None),
            IssuerUrls::default(),
        );
        rp.not_after = now + 20 * 365 * DAY;
        let root_der = cert::issue(&rp, None, &root_key.signer(HashAlg::Sha256)).unwrap();
        let root = cert::parse("root", &root_der).unwrap();
        files.push((format!("{tag}-root.pem"), root_der));

        let int_key = PrivateKey::generate(int_kt).unwrap();
        let ip = params(
            &[("CN", "Fleet Test Issuing CA"), ("O", "Contoso")],
            int_key.public_key_der(),
            vec![
                KeyUsageBit::KeyCertSign,
                KeyUsageBit::CrlSign,
                KeyUsageBit::DigitalSignature,
            ],
            Some(Some(0)),
            urls("root"),
        );
        let int_der = cert::issue(&ip, Some(&root), &root_key.signer(HashAlg::Sha256)).unwrap();
        let int = cert::parse("int", &int_der).unwrap();
        files.push((format!("{tag}-int.pem"), int_der));

        let leaf_key = PrivateKey::generate(int_kt).unwrap();
        // RSA leaves may carry keyEncipherment; pkilint flags it on EC keys (a CA-layer policy).
        let ku = if int_kt == KeyType::Rsa2048 {
            vec![KeyUsageBit::DigitalSignature, KeyUsageBit::KeyEncipherment]
        } else {
            vec![KeyUsageBit::DigitalSignature]
        };
        let mut lp = params(
            &[("CN", "pc1.fleet.test"), ("O", "Contoso")],
            leaf_key.public_key_der(),
            ku.clone(),
            None,
            urls("issuing"),
        );
        lp.sans = vec![
            San::Dns("pc1.fleet.test".into()),
            San::Upn("pc1$@fleet.test".into()),
            San::Ip("10.0.0.1".parse().unwrap()),
        ];
        lp.ekus = vec!["1.3.6.1.5.5.7.3.2".into(), "1.3.6.1.5.5.7.3.1".into()];
        let signer = int_key.signer(HashAlg::Sha256);
        files.push((
            format!("{tag}-leaf.pem"),
            cert::issue(&lp, Some(&int), &signer).unwrap(),
        ));

        let mut cn_only = params(
            &[("CN", "Authenticated Session User")],
            leaf_key.public_key_der(),
            ku.clone(),
            None,
            urls("issuing"),
        );
        cn_only.ekus = vec!["1.3.6.1.5.5.7.3.2".into()];
        files.push((
            format!("{tag}-cn-only.pem"),
            cert::issue(&cn_only, Some(&int), &signer).unwrap(),
        ));

        let mut san_only = params(
            &[],
            leaf_key.public_key_der(),
            ku.clone(),
            None,
            urls("issuing"),
        );
        san_only.sans = vec![San::Email("user@fleet.test".into())];
        san_only.ekus = vec!["1.3.6.1.5.5.7.3.2".into(), "2.16.840.1.113741.1.2.3".into()];
        files.push((
            format!("{tag}-san-only.pem"),
            cert::issue(&san_only, Some(&int), &signer).unwrap(),
        ));

        let crl_params = CrlParams {
            number: 12,
            this_update: now - 60,
            next_update: now + 7 * DAY,
            entries: vec![
                CrlEntry {
                    serial: serial::random().unwrap(),
                    revoked_at: now - 600,
                    reason: RevocationReason::KeyCompromise,
                },
                CrlEntry {
                    serial: serial::random().unwrap(),
                    revoked_at: now - 300,
                    reason: RevocationReason::Unspecified,
                },
                CrlEntry {
                    serial: serial::random().unwrap(),
                    revoked_at: now - 200,
                    reason: RevocationReason::Superseded,
                },
            ],
            delta_base: None,
        };
        let crl_der = crl::sign(&crl_params, &int, &signer).unwrap();
        std::fs::write(
            d.join(format!("{tag}-int.crl")),
            pem::encode("X509 CRL", &crl_der),
        )
        .unwrap();
        let empty = CrlParams {
            number: 1,
            this_update: now - 60,
            next_update: now + 7 * DAY,
            entries: vec![],
            delta_base: None,
        };
        let root_crl = crl::sign(&empty, &root, &root_key.signer(HashAlg::Sha256)).unwrap();
        std::fs::write(
            d.join(format!("{tag}-root.crl")),
            pem::encode("X509 CRL", &root_crl),
        )
        .unwrap();

        for crl_file in [format!("{tag}-int.crl"), format!("{tag}-root.crl")] {
            let out = lint(
                d,
                "lint_crl",
                &["lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING"],
                &crl_file,
            );
            assert_clean(&crl_file, &out);
        }
    }
    for (file, der) in &files {
        std::fs::write(d.join(file), cert::to_pem(der)).unwrap();
        let out = lint(
            d,
            "lint_pkix_cert",
            &["lint", "-s", "WARNING", "-f", "JSON"],
            file,
        );
        assert_clean(file, &out);
    }
}
