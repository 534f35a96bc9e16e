//! Certificates from every base template and a duplicated AMT template pass `openssl verify`
//! and pkilint's PKIX profile; revocation shows under `openssl verify -crl_check`.

mod common;
use common::{Site, openssl_csr, s};
use fleetpki_testkit as kit;

fn assert_lint_clean(what: &str, findings: Vec<kit::Finding>) {
    let lines: Vec<String> = findings
        .iter()
        .map(|f| format!("{} {} {} ({})", f.severity, f.code, f.message, f.node_path))
        .collect();
    assert!(
        lines.is_empty(),
        "{what}: pkilint findings:\n{}",
        lines.join("\n")
    );
}

fn verify_ok(site: &Site, leaf: &str, crl: Option<&str>) -> kit::Output {
    kit::openssl_verify(&site.root_pem(), Some(&site.issuing_pem()), crl, leaf)
        .expect("openssl verify")
}

#[test]
fn every_base_template_and_amt_issue_lint_clean_and_verify() {
    let site = Site::two_tier();
    site.enable("WebServer", "Servers");
    site.enable("Workstation", "Workstations");
    site.enable("ClientAuth", "Users");
    site.ok(&["template", "duplicate", "WebServer", "AMT Provisioning"]);
    site.ok(&[
        "template",
        "set",
        "AMT Provisioning",
        "--eku",
        "server-auth,2.16.840.1.113741.1.2.3",
        "--permitted-dns-suffixes",
        "fleet.test",
        "--key-algorithms",
        "rsa:2048-2048",
    ]);
    site.enable("AMT Provisioning", "Servers");

    let d = site.dir.path();
    let cases: Vec<(&str, &str, std::path::PathBuf, &str)> = vec![
        (
            "WebServer",
            "SRV1",
            openssl_csr(
                d,
                "web",
                "ec:P-256",
                "/CN=srv1.fleet.test",
                &[
                    "-addext",
                    "subjectAltName=DNS:srv1.fleet.test,DNS:srv1-alt.fleet.test",
                ],
            ),
            "1.3.6.1.5.5.7.3.1",
        ),
        (
            "WebServer",
            "SRV1",
            openssl_csr(d, "web-rsa", "rsa:2048", "/CN=srv1.fleet.test", &[]),
            "1.3.6.1.5.5.7.3.1",
        ),
        (
            "Workstation",
            "PC1",
            openssl_csr(d, "ws", "ec:P-256", "/CN=ignored", &[]),
            "1.3.6.1.5.5.7.3.2",
        ),
        (
            "Workstation",
            "PC1",
            openssl_csr(d, "ws-rsa", "rsa:3072", "/CN=ignored", &[]),
            "1.3.6.1.5.5.7.3.2",
        ),
        (
            "ClientAuth",
            "alice",
            openssl_csr(d, "user", "ec:P-384", "/CN=alice", &[]),
            "1.3.6.1.5.5.7.3.2",
        ),
        (
            "AMT Provisioning",
            "SRV1",
            openssl_csr(
                d,
                "amt",
                "rsa:2048",
                "/CN=amt.fleet.test/OU=Intel(R) Client Setup Certificate",
                &[],
            ),
            "2.16.840.1.113741.1.2.3",
        ),
    ];
    for (i, (template, principal, csr, eku)) in cases.iter().enumerate() {
        let out = site.issue(template, principal, csr, &format!("leaf{i}.pem"));
        let pem = std::fs::read_to_string(&out).expect("leaf");
        let v = verify_ok(&site, &pem, None);
        assert_eq!(
            v.status, 0,
            "{template}: openssl verify: {} {}",
            v.stdout, v.stderr
        );
        assert!(v.stdout.contains(": OK"), "{}", v.stdout);
        assert_lint_clean(template, kit::pkilint_cert(&pem).expect("pkilint"));
        assert_lint_clean(
            &format!("{template} chain"),
            kit::pkilint_chain(&site.issuing_pem(), &pem).expect("pkilint chain"),
        );
        let text = kit::openssl(&["x509", "-in", s(&out), "-noout", "-text"])
            .expect("x509")
            .stdout;
        let eku_text = if *eku == "2.16.840.1.113741.1.2.3" {
            "2.16.840.1.113741.1.2.3".to_string()
        } else if eku.ends_with(".1") {
            "TLS Web Server Authentication".into()
        } else {
            "TLS Web Client Authentication".into()
        };
        assert!(
            text.contains(&eku_text),
            "{template}: EKU {eku} missing:\n{text}"
        );
        assert!(
            text.contains("URI:http://pki.fleet.test/crl/issuing.crl"),
            "{template}: CDP missing"
        );
        assert!(
            text.contains("OCSP - URI:http://pki.fleet.test/ocsp"),
            "{template}: AIA OCSP missing"
        );
        assert!(
            text.contains("CA Issuers - URI:http://pki.fleet.test/ca/issuing.crt"),
            "{template}: AIA issuers missing"
        );
    }
    // The names of a from-directory template come from the directory, not the request.
    let text = kit::openssl(&[
        "x509",
        "-in",
        s(&site.path("leaf2.pem")),
        "-noout",
        "-subject",
        "-ext",
        "subjectAltName,keyUsage",
    ])
    .expect("x509")
    .stdout;
    assert!(
        text.contains("CN = pc1.fleet.test") && text.contains("DNS:pc1.fleet.test"),
        "{text}"
    );
    assert!(!text.contains("ignored"), "{text}");
    // Root → issuing CA pair is lint clean too.
    assert_lint_clean(
        "root→issuing",
        kit::pkilint_chain(&site.root_pem(), &site.issuing_pem()).expect("pkilint chain"),
    );
    assert_lint_clean(
        "root",
        kit::pkilint_cert(&site.root_pem()).expect("pkilint root"),
    );
    assert_lint_clean(
        "issuing",
        kit::pkilint_cert(&site.issuing_pem()).expect("pkilint issuing"),
    );
}

#[test]
fn revoked_certificate_fails_crl_check_and_crls_lint_clean() {
    let site = Site::two_tier();
    site.enable("Workstation", "Workstations");
    let csr = openssl_csr(site.dir.path(), "pc", "ec:P-256", "/CN=pc1", &[]);
    let leaf = site.issue("Workstation", "PC1", &csr, "pc.pem");
    let leaf_pem = std::fs::read_to_string(&leaf).expect("leaf");
    let certs = site.json(&["cert", "list"]);
    let serial = certs[0]["serial"].as_str().expect("serial").to_string();

    // A CRL before revocation: the certificate is good.
    let crl0 = site.path("before.crl");
    site.ok(&["crl", "publish", "--out", s(&crl0)]);
    let v = verify_ok(
        &site,
        &leaf_pem,
        Some(&std::fs::read_to_string(&crl0).expect("crl")),
    );
    assert_eq!(v.status, 0, "{} {}", v.stdout, v.stderr);

    // Revoke (openssl prints serials in upper case: accept that form).
    site.ok(&[
        "cert",
        "revoke",
        &serial.to_uppercase(),
        "--reason",
        "keyCompromise",
    ]);
    let crl1 = site.path("after.crl");
    let out = site.ok(&["crl", "publish", "--out", s(&crl1)]);
    assert!(out.contains("#2"), "CRL numbers are monotonic: {out}");
    let crl_pem = std::fs::read_to_string(&crl1).expect("crl");
    let v = verify_ok(&site, &leaf_pem, Some(&crl_pem));
    assert_ne!(v.status, 0, "a revoked certificate must fail: {}", v.stdout);
    assert!(
        format!("{}{}", v.stdout, v.stderr).contains("certificate revoked"),
        "{} {}",
        v.stdout,
        v.stderr
    );

    // The CRL verifies under the chain, carries the reason, and is lint clean.
    let chain = site.path("chain.pem");
    site.chain_pem();
    let c = kit::openssl(&[
        "crl",
        "-in",
        s(&crl1),
        "-noout",
        "-text",
        "-CAfile",
        s(&chain),
    ])
    .expect("openssl crl");
    assert_eq!(c.status, 0, "{}", c.stderr);
    assert!(
        format!("{}{}", c.stdout, c.stderr).contains("verify OK"),
        "{} {}",
        c.stdout,
        c.stderr
    );
    assert!(c.stdout.contains("Key Compromise"), "{}", c.stdout);
    assert!(c.stdout.contains(&serial.to_uppercase()), "{}", c.stdout);
    let der = kit::openssl(&[
        "crl",
        "-in",
        s(&crl1),
        "-outform",
        "DER",
        "-out",
        s(&site.path("after.der")),
    ])
    .expect("der");
    assert_eq!(der.status, 0);
    assert_lint_clean(
        "full CRL",
        kit::pkilint_crl(&std::fs::read(site.path("after.der")).expect("der")).expect("lint_crl"),
    );

    // A delta CRL over it, and the root's CRL.
    let delta = site.path("delta.crl");
    let out = site.ok(&["crl", "publish", "--delta", "--der", "--out", s(&delta)]);
    assert!(out.contains("delta CRL over #2"), "{out}");
    let t = kit::openssl(&["crl", "-in", s(&delta), "-inform", "DER", "-noout", "-text"])
        .expect("delta")
        .stdout;
    assert!(t.contains("Delta CRL Indicator"), "{t}");
    let root_crl = site.path("root.crl");
    site.ok(&[
        "crl",
        "publish",
        "--issuer",
        "root",
        "--der",
        "--out",
        s(&root_crl),
    ]);
    assert_lint_clean(
        "root CRL",
        kit::pkilint_crl(&std::fs::read(&root_crl).expect("root crl")).expect("lint_crl"),
    );
    let r = kit::openssl(&[
        "crl",
        "-in",
        s(&root_crl),
        "-inform",
        "DER",
        "-noout",
        "-CAfile",
        s(&chain),
    ])
    .expect("root crl verify");
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("verify OK"),
        "{} {}",
        r.stdout,
        r.stderr
    );

    let shown = site.json(&["cert", "list", "--revoked"]);
    assert_eq!(shown.as_array().map(Vec::len), Some(1));
    assert_eq!(shown[0]["revocation"]["reason"], "keyCompromise");
}
