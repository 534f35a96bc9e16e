//! The bad-input catalogue: one case per line. Each must fail with exit code 1 and an error
//! naming the field and the rule, and leave the database exactly as it was.

mod common;
use common::{Site, openssl_csr, s};

fn setup() -> Site {
    let site = Site::two_tier();
    site.ok(&["template", "duplicate", "WebServer", "Intranet Web"]);
    site.ok(&[
        "template",
        "set",
        "Intranet Web",
        "--permitted-dns-suffixes",
        "fleet.test",
        "--key-algorithms",
        "rsa:2048-2048,ecdsa:256-384",
    ]);
    site.enable("Intranet Web", "Servers");
    site.ok(&["template", "duplicate", "WebServer", "Draft"]);
    site
}

#[test]
fn catalogue() {
    let site = setup();
    let d = site.dir.path();
    let good = openssl_csr(d, "good", "ec:P-256", "/CN=srv1.fleet.test", &[]);
    let der = {
        let p = site.path("good.der");
        let o =
            fleetpki_testkit::openssl(&["req", "-in", s(&good), "-outform", "DER", "-out", s(&p)])
                .expect("openssl");
        assert_eq!(o.status, 0, "{}", o.stderr);
        std::fs::read(p).expect("der")
    };
    let write = |name: &str, bytes: &[u8]| {
        let p = site.path(name);
        std::fs::write(&p, bytes).expect("write");
        p
    };
    let malformed_pem = write("malformed.pem", b"-----BEGIN CERTIFICATE REQUEST-----\n!!!! not base64 !!!!\n-----END CERTIFICATE REQUEST-----\n");
    let truncated = write("truncated.der", &der[..der.len() / 2]);
    let mut tampered = der.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 0x01; // inside the signature value
    let bad_sig = write("badsig.der", &tampered);
    let sha1 = openssl_csr(d, "sha1", "rsa:2048", "/CN=srv1.fleet.test", &["-sha1"]);
    let rsa1024 = openssl_csr(d, "rsa1024", "rsa:1024", "/CN=srv1.fleet.test", &[]);
    let rsa4096 = openssl_csr(d, "rsa4096", "rsa:4096", "/CN=srv1.fleet.test", &[]);
    let ed25519 = openssl_csr(d, "ed", "ed25519", "/CN=srv1.fleet.test", &[]);
    let outside = openssl_csr(
        d,
        "outside",
        "ec:P-256",
        "/CN=srv1.fleet.test",
        &[
            "-addext",
            "subjectAltName=DNS:srv1.fleet.test,DNS:www.evil.example",
        ],
    );

    let submit = |template: &str, principal: &str, csr: &std::path::Path| -> Vec<String> {
        [
            "request",
            "submit",
            "--template",
            template,
            "--as",
            principal,
            "--csr",
            s(csr),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let argv = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    // (case, argv, field, words of the rule)
    let cases: Vec<(&str, Vec<String>, &str, &str)> = vec![
        (
            "malformed PEM",
            submit("Intranet Web", "SRV1", &malformed_pem),
            "csr",
            "",
        ),
        (
            "truncated DER",
            submit("Intranet Web", "SRV1", &truncated),
            "csr",
            "",
        ),
        (
            "signature does not verify",
            submit("Intranet Web", "SRV1", &bad_sig),
            "csr.signature",
            "verify",
        ),
        (
            "SHA-1 signed CSR",
            submit("Intranet Web", "SRV1", &sha1),
            "csr.signature_algorithm",
            "SHA-1",
        ),
        (
            "RSA-1024 under a 2048 minimum",
            submit("Intranet Web", "SRV1", &rsa1024),
            "csr.public_key",
            "below the minimum of 2048",
        ),
        (
            "RSA-4096 over a 2048 maximum",
            submit("Intranet Web", "SRV1", &rsa4096),
            "csr.public_key",
            "above the maximum of 2048",
        ),
        (
            "Ed25519 not allowed",
            submit("Intranet Web", "SRV1", &ed25519),
            "csr.public_key",
            "is not allowed by template",
        ),
        (
            "SAN outside permitted suffixes",
            submit("Intranet Web", "SRV1", &outside),
            "csr.subject_alt_name",
            "outside the permitted DNS suffixes",
        ),
        (
            "principal without Enroll",
            submit("Intranet Web", "PC1", &good),
            "principal",
            "holds no Enroll permission",
        ),
        (
            "unknown principal",
            submit("Intranet Web", "NOBODY", &good),
            "principal",
            "no principal named",
        ),
        (
            "unknown template",
            submit("No Such Template", "SRV1", &good),
            "template",
            "no template named",
        ),
        (
            "unpublished template",
            submit("Draft", "SRV1", &good),
            "template",
            "is not published",
        ),
        (
            "revoke unknown serial",
            argv(&["cert", "revoke", "0badc0ffee", "--reason", "keyCompromise"]),
            "serial",
            "no certificate with serial 0badc0ffee",
        ),
        (
            "revoke with a bad reason",
            argv(&["cert", "revoke", "0badc0ffee", "--reason", "bored"]),
            "--reason",
            "not an RFC 5280 reason",
        ),
        (
            "serial that is not hex",
            argv(&["cert", "show", "xyz"]),
            "serial",
            "",
        ),
        (
            "edit a base template",
            argv(&["template", "set", "WebServer", "--validity", "1y"]),
            "template",
            "never edited",
        ),
        (
            "bump a base template",
            argv(&["template", "bump", "Workstation"]),
            "template",
            "never edited",
        ),
        (
            "max below min",
            argv(&["template", "set", "Intranet Web", "--max-key-size", "1024"]),
            "template.key-algorithms",
            "above maximum",
        ),
        (
            "SHA-1 template hash",
            argv(&["template", "set", "Intranet Web", "--hash", "sha1"]),
            "template.hash",
            "refused",
        ),
        (
            "bad duration",
            argv(&["template", "set", "Intranet Web", "--validity", "forever"]),
            "template.validity",
            "not a duration",
        ),
        (
            "renewal longer than validity",
            argv(&["template", "set", "Intranet Web", "--validity", "30d"]),
            "template.renewal-period",
            "shorter than the validity",
        ),
        (
            "bad custom OID",
            argv(&["template", "set", "Intranet Web", "--eku", "1.2.x"]),
            "template.eku",
            "dotted OID",
        ),
        (
            "duplicate onto a taken name",
            argv(&["template", "duplicate", "WebServer", "Draft"]),
            "template.name",
            "already taken",
        ),
        (
            "grant to an unknown group",
            argv(&[
                "template", "grant", "Draft", "--group", "Ghosts", "--enroll",
            ]),
            "--group",
            "no group named",
        ),
        (
            "computer without FQDN",
            argv(&["directory", "add-computer", "PC9", "--dns", "pc9"]),
            "principal.dns",
            "fully qualified",
        ),
        (
            "duplicate computer",
            argv(&[
                "directory",
                "add-computer",
                "PC1",
                "--dns",
                "pc1.fleet.test",
            ]),
            "principal.name",
            "already exists",
        ),
        (
            "user with a bad e-mail",
            argv(&["directory", "add-user", "bob", "--email", "bob"]),
            "principal.email",
            "name@domain",
        ),
        (
            "approve an unknown request",
            argv(&["request", "approve", "999"]),
            "request",
            "no request with id 999",
        ),
        (
            "delta CRL before any full CRL",
            argv(&["crl", "publish", "--delta", "--out", "/dev/null"]),
            "--delta",
            "publish a full CRL first",
        ),
        (
            "init over an existing site",
            argv(&["init", "--site-code", "PS2"]),
            "--dir",
            "already holds a site",
        ),
    ];

    let before = site.fingerprint();
    for (case, args, field, rule) in &cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = site.fails(&refs);
        let prefix = format!("error: {field}: ");
        assert!(
            err.starts_with(&prefix),
            "{case}: expected `{prefix}…`, got: {err}"
        );
        assert!(
            err.contains(rule),
            "{case}: expected the rule to mention `{rule}`, got: {err}"
        );
        assert_eq!(site.fingerprint(), before, "{case}: the database changed");
    }
}

/// Runs `sql` on the site's SQLite database behind fleetpki's back.
fn tamper(site: &Site, sql: &'static str) {
    let url = site.db_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        sqlx::query(sql).execute(&mut c).await.expect("tamper");
    });
}

#[test]
fn edited_or_deleted_audit_entry_is_detected() {
    let site = setup();
    let ok = site.ok(&["audit", "verify"]);
    assert!(ok.contains("hash chain verified"), "{ok}");
    tamper(
        &site,
        "UPDATE audit SET details = 'nothing to see here' WHERE seq = 3",
    );
    let err = site.fails(&["audit", "verify"]);
    assert!(
        err.contains("entry 3: its hash does not match its contents"),
        "{err}"
    );

    let site = setup();
    tamper(&site, "DELETE FROM audit WHERE seq = 2");
    let err = site.fails(&["audit", "verify"]);
    assert!(err.contains("an entry was deleted"), "{err}");

    let site = setup();
    tamper(
        &site,
        "DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)",
    );
    let err = site.fails(&["audit", "verify"]);
    assert!(err.contains("deleted from the end"), "{err}");
}
