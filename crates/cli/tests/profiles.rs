//! Role requirement profiles (seed 002) end to end: `fleetpki check` on certificates made by
//! openssl with the usual mistakes, exit codes, and enforcement on templates and at issuance.

mod common;
use common::{Site, bin, openssl_csr, s};
use fleetpki_testkit as kit;
use std::path::Path;

fn check(args: &[&str]) -> (i32, String) {
    let o = bin().arg("check").args(args).output().expect("run");
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn check_json(args: &[&str]) -> (i32, serde_json::Value) {
    let mut a = args.to_vec();
    a.push("--json");
    let o = bin().arg("check").args(&a).output().expect("run");
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("json: {e}: {}", String::from_utf8_lossy(&o.stdout)));
    (o.status.code().unwrap_or(-1), v)
}

fn failing_rules(report: &serde_json::Value) -> Vec<String> {
    report["report"]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["status"] == "fail" && f["severity"] == "error")
        .map(|f| f["rule"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A self-signed certificate from `openssl req -x509`.
fn openssl_cert(dir: &Path, stem: &str, newkey: &[&str], subj: &str, extra: &[&str]) -> String {
    let out = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "365",
        "-subj",
        subj,
        "-keyout",
        s(&key),
        "-out",
        s(&out),
    ];
    args.extend_from_slice(newkey);
    args.extend_from_slice(extra);
    let o = kit::openssl(&args).expect("openssl");
    assert_eq!(o.status, 0, "{}", o.stderr);
    out.display().to_string()
}

#[test]
fn list_profiles_names_all_thirteen() {
    let (code, out) = check(&["--list-profiles"]);
    assert_eq!(code, 0);
    for p in [
        "site-system-https",
        "cloud-management-gateway",
        "sql-server",
        "sql-always-on",
        "site-system-monitoring",
        "ndes-policy-module",
        "distribution-point",
        "proxy-web-server",
        "windows-client",
        "task-sequence-media",
        "macos-client",
        "mobile-device",
        "root-ca",
    ] {
        assert!(out.contains(p), "{p} missing from --list-profiles");
    }
}

#[test]
fn typical_openssl_mistakes_are_caught() {
    let d = tempfile::tempdir().expect("tmp");
    let rsa = ["-newkey", "rsa:2048"];
    // SHA-1 signature.
    let sha1 = openssl_cert(
        d.path(),
        "sha1",
        &rsa,
        "/CN=mp.fleet.test",
        &[
            "-sha1",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-addext",
            "subjectAltName=DNS:mp.fleet.test",
        ],
    );
    let (code, r) = check_json(&[
        "--profile",
        "site-system-https",
        "--intranet-fqdn",
        "mp.fleet.test",
        &sha1,
    ]);
    assert_eq!(
        (code, failing_rules(&r)),
        (1, vec!["sha2-signature".to_string()])
    );
    // No EKU at all on a client certificate.
    let no_eku = openssl_cert(
        d.path(),
        "noeku",
        &rsa,
        "/CN=pc1.fleet.test",
        &[
            "-addext",
            "keyUsage=critical,digitalSignature,keyEncipherment",
        ],
    );
    let (code, r) = check_json(&[
        "--profile",
        "windows-client",
        "--computer-name",
        "PC1",
        &no_eku,
    ]);
    assert_eq!(
        (code, failing_rules(&r)),
        (1, vec!["eku-client-auth".to_string()])
    );
    // A web server certificate naming neither of the site system's FQDNs.
    let wrong = openssl_cert(
        d.path(),
        "wrong",
        &rsa,
        "/CN=www.other.test",
        &[
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-addext",
            "subjectAltName=DNS:www.other.test",
        ],
    );
    let (code, r) = check_json(&[
        "--profile",
        "site-system-https",
        "--intranet-fqdn",
        "mp.fleet.test",
        "--internet-fqdn",
        "mp.contoso.com",
        &wrong,
    ]);
    assert_eq!(code, 1);
    let mut f = failing_rules(&r);
    f.sort();
    assert_eq!(
        f,
        vec!["internet-fqdn".to_string(), "intranet-fqdn".to_string()]
    );
    // The same certificate against its right name passes; human output explains each rule.
    let (code, out) = check(&[
        "--profile",
        "site-system-https",
        "--intranet-fqdn",
        "www.other.test",
        &wrong,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("result: compliant"), "{out}");
    // Missing context is said, not guessed: compliant as far as checked, and --strict fails it.
    let (code, out) = check(&["--profile", "site-system-https", &wrong]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("unverified"), "{out}");
    let (code, _) = check(&["--profile", "site-system-https", "--strict", &wrong]);
    assert_eq!(code, 1);
    // A 4096-bit key on SQL Server.
    let big = openssl_cert(
        d.path(),
        "big",
        &["-newkey", "rsa:4096"],
        "/CN=sql1.fleet.test",
        &["-addext", "extendedKeyUsage=serverAuth"],
    );
    let (code, r) = check_json(&[
        "--profile",
        "sql-server",
        "--intranet-fqdn",
        "sql1.fleet.test",
        &big,
    ]);
    assert_eq!(
        (code, failing_rules(&r)),
        (1, vec!["key-max-2048".to_string()])
    );
}

#[test]
fn input_formats_and_exit_codes() {
    let d = tempfile::tempdir().expect("tmp");
    let pem = openssl_cert(
        d.path(),
        "m",
        &["-newkey", "rsa:2048"],
        "/CN=phone1",
        &["-addext", "extendedKeyUsage=clientAuth"],
    );
    let der = d.path().join("m.der");
    assert_eq!(
        kit::openssl(&["x509", "-in", &pem, "-outform", "DER", "-out", s(&der)])
            .expect("der")
            .status,
        0
    );
    let (code, r) = check_json(&["--profile", "mobile-device", &pem]);
    assert_eq!(
        (code, failing_rules(&r)),
        (1, vec!["der-encoding".to_string()]),
        "PEM is flagged for mobile devices"
    );
    let (code, r) = check_json(&["--profile", "mobile-device", s(&der)]);
    assert_eq!((code, failing_rules(&r)), (0, vec![]), "DER passes");

    // A PKCS#12 answers the exportable-key rule for a distribution point.
    let dp = openssl_cert(
        d.path(),
        "dp",
        &["-newkey", "rsa:2048"],
        "/CN=dp1.fleet.test",
        &["-addext", "extendedKeyUsage=clientAuth"],
    );
    let p12 = d.path().join("dp.p12");
    let o = kit::openssl(&[
        "pkcs12",
        "-export",
        "-in",
        &dp,
        "-inkey",
        s(&d.path().join("dp.key")),
        "-out",
        s(&p12),
        "-passout",
        "pass:pw",
    ])
    .expect("p12");
    assert_eq!(o.status, 0, "{}", o.stderr);
    let (code, r) = check_json(&[
        "--profile",
        "distribution-point",
        "--password",
        "pw",
        s(&p12),
    ]);
    assert_eq!((code, failing_rules(&r)), (0, vec![]), "{r}");
    let (code, _) = check(&[
        "--profile",
        "distribution-point",
        "--password",
        "wrong",
        s(&p12),
    ]);
    assert_eq!(code, 2, "a wrong password is unreadable input");

    let junk = d.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    let (code, out) = check(&["--profile", "windows-client", s(&junk)]);
    assert_eq!(code, 2, "{out}");
    let (code, out) = check(&["--profile", "no-such-profile", &pem]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("windows-client"),
        "the error lists the profiles: {out}"
    );
}

#[test]
fn templates_bound_to_profiles_refuse_impossible_settings() {
    let site = Site::two_tier();
    site.ok(&["template", "duplicate", "WebServer", "SQL Cert"]);
    let err = site.fails(&["template", "set", "SQL Cert", "--profile", "sql-server"]);
    assert!(err.starts_with("error: template.profile: "), "{err}");
    assert!(err.contains("key-max-2048"), "names the rule: {err}");
    site.ok(&[
        "template",
        "set",
        "SQL Cert",
        "--profile",
        "sql-server",
        "--max-key-size",
        "2048",
    ]);
    let before = site.fingerprint();
    let err = site.fails(&["template", "set", "SQL Cert", "--max-key-size", "4096"]);
    assert!(err.contains("key-max-2048"), "{err}");
    assert_eq!(site.fingerprint(), before, "a refused edit stores nothing");

    site.ok(&["template", "duplicate", "Workstation", "DP Cert"]);
    let err = site.fails(&[
        "template",
        "set",
        "DP Cert",
        "--profile",
        "distribution-point",
        "--max-key-size",
        "2048",
    ]);
    assert!(err.contains("exportable-key"), "{err}");
    site.ok(&[
        "template",
        "set",
        "DP Cert",
        "--profile",
        "distribution-point",
        "--max-key-size",
        "2048",
        "--exportable",
        "true",
    ]);
    let err = site.fails(&["template", "set", "DP Cert", "--exportable", "false"]);
    assert!(err.contains("exportable-key"), "{err}");
    let err = site.fails(&["template", "set", "DP Cert", "--profile", "no-such-profile"]);
    assert!(err.starts_with("error: template.profile: "), "{err}");
}

#[test]
fn issuance_refuses_a_certificate_that_would_fail_the_profile() {
    let site = Site::two_tier();
    site.ok(&["template", "duplicate", "WebServer", "MP Web"]);
    site.ok(&[
        "template",
        "set",
        "MP Web",
        "--permitted-dns-suffixes",
        "fleet.test",
        "--profile",
        "site-system-https",
    ]);
    site.enable("MP Web", "Servers");
    // SRV1's intranet FQDN is srv1.fleet.test; a request for another host name fails the profile.
    let other = openssl_csr(
        site.dir.path(),
        "other",
        "ec:P-256",
        "/CN=other.fleet.test",
        &[],
    );
    let before = site.fingerprint();
    let err = site.fails(&[
        "request",
        "submit",
        "--template",
        "MP Web",
        "--as",
        "SRV1",
        "--csr",
        s(&other),
    ]);
    assert!(err.starts_with("error: profile: "), "{err}");
    assert!(
        err.contains("intranet-fqdn") && err.contains("srv1.fleet.test"),
        "{err}"
    );
    assert_eq!(site.fingerprint(), before, "nothing stored, nothing signed");
    let good = openssl_csr(
        site.dir.path(),
        "good",
        "ec:P-256",
        "/CN=srv1.fleet.test",
        &[],
    );
    site.ok(&[
        "request",
        "submit",
        "--template",
        "MP Web",
        "--as",
        "SRV1",
        "--csr",
        s(&good),
    ]);
}

/// For each profile a template bound to it issues a certificate that passes its own profile
/// and pkilint.
#[test]
fn certificates_from_bound_templates_pass_their_profile_and_pkilint() {
    let site = Site::two_tier();
    site.ok(&[
        "directory",
        "add-user",
        "maccy",
        "--email",
        "maccy@fleet.test",
        "--group",
        "Users",
    ]);
    // (profile, base, edits, principal, CSR key, CSR subject, extra check args, check DER)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<&'a str>,
        &'a str,
        &'a str,
        &'a str,
        Vec<&'a str>,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "site-system-https",
            "WebServer",
            vec!["--permitted-dns-suffixes", "fleet.test"],
            "SRV1",
            "ec:P-256",
            "/CN=srv1.fleet.test",
            vec!["--intranet-fqdn", "srv1.fleet.test"],
            false,
        ),
        (
            "cloud-management-gateway",
            "WebServer",
            vec!["--key-algorithms", "rsa:2048-4096", "--exportable", "true"],
            "SRV1",
            "rsa:2048",
            "/CN=cmg.fleet.test",
            vec!["--service-name", "cmg.fleet.test"],
            false,
        ),
        (
            "sql-server",
            "WebServer",
            vec!["--max-key-size", "2048"],
            "SRV1",
            "rsa:2048",
            "/CN=srv1.fleet.test",
            vec!["--intranet-fqdn", "srv1.fleet.test"],
            false,
        ),
        (
            "sql-always-on",
            "WebServer",
            vec!["--max-key-size", "2048", "--exportable", "true"],
            "SRV1",
            "rsa:2048",
            "/CN=srv1.fleet.test",
            vec!["--intranet-fqdn", "srv1.fleet.test"],
            false,
        ),
        (
            "site-system-monitoring",
            "Workstation",
            vec!["--max-key-size", "2048"],
            "SRV1",
            "ec:P-256",
            "/CN=x",
            vec![],
            false,
        ),
        (
            "ndes-policy-module",
            "Workstation",
            vec!["--key-algorithms", "rsa:2048-2048"],
            "SRV1",
            "rsa:2048",
            "/CN=x",
            vec![],
            false,
        ),
        (
            "distribution-point",
            "Workstation",
            vec!["--max-key-size", "2048", "--exportable", "true"],
            "SRV1",
            "rsa:2048",
            "/CN=x",
            vec![],
            false,
        ),
        (
            "proxy-web-server",
            "WebServer",
            vec![
                "--eku",
                "server-auth,client-auth",
                "--permitted-dns-suffixes",
                "fleet.test",
            ],
            "SRV1",
            "ec:P-256",
            "/CN=srv1.fleet.test",
            vec!["--internet-fqdn", "srv1.fleet.test"],
            false,
        ),
        (
            "windows-client",
            "Workstation",
            vec!["--key-algorithms", "rsa:2048-4096"],
            "PC1",
            "rsa:2048",
            "/CN=x",
            vec!["--computer-name", "PC1"],
            false,
        ),
        (
            "task-sequence-media",
            "Workstation",
            vec!["--max-key-size", "2048", "--exportable", "true"],
            "PC1",
            "rsa:2048",
            "/CN=x",
            vec![],
            false,
        ),
        (
            "macos-client",
            "ClientAuth",
            vec!["--max-key-size", "2048"],
            "maccy",
            "rsa:2048",
            "/CN=x",
            vec![],
            false,
        ),
        (
            "mobile-device",
            "ClientAuth",
            vec!["--max-key-size", "2048"],
            "alice",
            "ec:P-256",
            "/CN=x",
            vec![],
            true,
        ),
    ];
    for (i, (profile, base, edits, principal, key, subj, ctx, der)) in cases.into_iter().enumerate()
    {
        let name = format!("T-{profile}");
        site.ok(&["template", "duplicate", base, &name]);
        let mut set = vec!["template", "set", &name, "--profile", profile];
        set.extend(edits.iter().copied());
        site.ok(&set);
        let group = match principal {
            "PC1" => "Workstations",
            "SRV1" => "Servers",
            _ => "Users",
        };
        site.enable(&name, group);
        let csr = openssl_csr(site.dir.path(), &format!("p{i}"), key, subj, &[]);
        let out = site.issue(&name, principal, &csr, &format!("p{i}.pem"));
        let mut file = out.display().to_string();
        if der {
            let d = site.path(&format!("p{i}.der"));
            assert_eq!(
                kit::openssl(&["x509", "-in", &file, "-outform", "DER", "-out", s(&d)])
                    .expect("der")
                    .status,
                0
            );
            file = d.display().to_string();
        }
        let mut args = vec!["--profile", profile];
        args.extend(ctx.iter().copied());
        args.push(&file);
        let (code, r) = check_json(&args);
        assert_eq!((code, failing_rules(&r)), (0, vec![]), "{profile}: {r:#}");
        let pem = std::fs::read_to_string(&out).expect("pem");
        let findings = kit::pkilint_cert(&pem).expect("pkilint");
        assert!(
            findings.is_empty(),
            "{profile}: pkilint: {:?}",
            findings.iter().map(|f| &f.code).collect::<Vec<_>>()
        );
    }
}
