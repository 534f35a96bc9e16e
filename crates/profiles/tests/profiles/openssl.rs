//! Certificates made with `openssl req -x509` and `openssl x509 -req`, with the mistakes
//! administrators typically make, are caught by the named rule and nothing else.

use crate::support::failing;
use fleetpki_profiles::{Context, Severity, Status, check, profile, read_input};
use fleetpki_testkit::openssl;
use std::path::{Path, PathBuf};

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `-newkey rsa:2048`, or for "ec" a P-256 key.
fn newkey_args(newkey: &str) -> Vec<&str> {
    match newkey {
        "ec" => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        k => vec!["-newkey", k],
    }
}

fn run(args: &[&str]) {
    let o = openssl(args).expect("openssl is required for these tests");
    assert!(o.success(), "openssl {}: {}", args.join(" "), o.stderr);
}

/// `openssl req -x509` into `dir/stem.pem` (key `dir/stem.key`).
fn self_signed(dir: &Path, stem: &str, newkey: &str, subj: &str, extra: &[&str]) -> PathBuf {
    let newkey = newkey_args(newkey);
    let (out, key) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "365",
        "-subj",
        subj,
        "-keyout",
        path(&key),
        "-out",
        path(&out),
    ];
    args.extend_from_slice(&newkey);
    args.extend_from_slice(extra);
    run(&args);
    out
}

/// A CSR signed by `ca` with `openssl x509 -req` and the extensions in `ext` (one per line).
fn ca_signed(dir: &Path, ca: &Path, stem: &str, newkey: &str, subj: &str, ext: &str) -> PathBuf {
    let (csr, key, out, extfile) = (
        dir.join(format!("{stem}.csr")),
        dir.join(format!("{stem}.key")),
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.ext")),
    );
    let mut args = vec![
        "req",
        "-new",
        "-nodes",
        "-subj",
        subj,
        "-keyout",
        path(&key),
        "-out",
        path(&csr),
    ];
    args.extend_from_slice(&newkey_args(newkey));
    run(&args);
    std::fs::write(&extfile, ext).expect("write ext");
    let ca_key = ca.with_extension("key");
    run(&[
        "x509",
        "-req",
        "-in",
        path(&csr),
        "-CA",
        path(ca),
        "-CAkey",
        path(&ca_key),
        "-set_serial",
        "4660",
        "-days",
        "365",
        "-sha256",
        "-extfile",
        path(&extfile),
        "-out",
        path(&out),
    ]);
    out
}

fn now() -> i64 {
    fleetpki_model::now()
}

fn fails(file: &Path, p: &str, ctx: Context) -> (Vec<&'static str>, fleetpki_profiles::Report) {
    let bytes = std::fs::read(file).expect("read");
    let input = read_input(&bytes, None).expect("read_input");
    let ctx = Context {
        format: Some(input.format),
        key_exportable: input.key_exportable,
        now: now(),
        ..ctx
    };
    let r = check(profile(p).expect("profile"), &input.facts, &ctx);
    (failing(&r), r)
}

fn intranet(name: &str) -> Context {
    Context {
        intranet_fqdn: Some(name.to_string()),
        ..Context::default()
    }
}

#[test]
fn typical_mistakes_are_caught() {
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path();

    // Right names and EKU, but SHA-1.
    let sha1 = self_signed(
        dir,
        "sha1",
        "rsa:2048",
        "/CN=mp.fleet.test",
        &[
            "-sha1",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-addext",
            "subjectAltName=DNS:mp.fleet.test",
        ],
    );
    let (f, r) = fails(&sha1, "site-system-https", intranet("mp.fleet.test"));
    assert_eq!(f, ["sha2-signature"], "{:#?}", r.findings);
    let sha2 = r
        .findings
        .iter()
        .find(|f| f.rule == "sha2-signature")
        .expect("rule");
    assert_eq!(sha2.found, "sha1WithRSAEncryption (SHA-1)");
    assert!(
        sha2.requirement
            .contains("Windows doesn't trust certificates signed with SHA-1")
    );

    // No EKU at all.
    let no_eku = self_signed(
        dir,
        "noeku",
        "ec",
        "/CN=mp.fleet.test",
        &["-addext", "subjectAltName=DNS:mp.fleet.test"],
    );
    let (f, r) = fails(&no_eku, "site-system-https", intranet("mp.fleet.test"));
    assert_eq!(f, ["eku-server-auth"], "{:#?}", r.findings);

    // Neither FQDN in subject or SAN.
    let wrong = self_signed(
        dir,
        "wrong",
        "rsa:2048",
        "/CN=webserver",
        &["-addext", "extendedKeyUsage=serverAuth"],
    );
    let both = Context {
        internet_fqdn: Some("mp.contoso.com".into()),
        ..intranet("mp.fleet.test")
    };
    let (f, r) = fails(&wrong, "site-system-https", both);
    assert_eq!(f, ["intranet-fqdn", "internet-fqdn"], "{:#?}", r.findings);
    assert!(!r.compliant());
}

#[test]
fn ca_signed_client_certificates() {
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path();
    let ca = self_signed(
        dir,
        "ca",
        "rsa:2048",
        "/CN=Contoso Root/O=Contoso",
        &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    );
    let (f, r) = fails(&ca, "root-ca", Context::default());
    assert!(f.is_empty(), "{:#?}", r.findings);

    // A client certificate without keyUsage: windows-client needs a0.
    let no_ku = ca_signed(
        dir,
        &ca,
        "noku",
        "rsa:2048",
        "/CN=PC1",
        "extendedKeyUsage=clientAuth\n",
    );
    let pc1 = Context {
        computer_name: Some("pc1".into()),
        ..Context::default()
    };
    let (f, r) = fails(&no_ku, "windows-client", pc1.clone());
    assert_eq!(
        f,
        ["ku-digital-signature-key-encipherment"],
        "{:#?}",
        r.findings
    );
    let (f, r) = fails(&ca, "root-ca", Context::default());
    assert!(f.is_empty(), "{:#?}", r.findings);
    // The issued certificate is not a root.
    let (f, _) = fails(&no_ku, "root-ca", Context::default());
    assert_eq!(
        f,
        ["ca-basic-constraints", "ca-key-cert-sign", "self-signed"]
    );

    // A 1024-bit RSA key: fine for the NDES policy module, too small for nothing else here.
    let ndes = ca_signed(
        dir,
        &ca,
        "ndes",
        "rsa:1024",
        "/CN=ndes1.fleet.test",
        "extendedKeyUsage=clientAuth\n",
    );
    let (f, r) = fails(&ndes, "ndes-policy-module", Context::default());
    assert!(f.is_empty(), "{:#?}", r.findings);
    let ec = ca_signed(
        dir,
        &ca,
        "ndes-ec",
        "ec",
        "/CN=ndes1.fleet.test",
        "extendedKeyUsage=clientAuth\n",
    );
    let (f, _) = fails(&ec, "ndes-policy-module", Context::default());
    assert_eq!(f, ["key-rsa-1024-or-2048"]);

    // A good Windows client certificate.
    let good = ca_signed(
        dir,
        &ca,
        "good",
        "rsa:2048",
        "/CN=pc1.fleet.test",
        "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nsubjectAltName=DNS:pc1.fleet.test\n",
    );
    let (f, r) = fails(&good, "windows-client", pc1);
    assert!(f.is_empty(), "{:#?}", r.findings);
}

#[test]
fn pss_and_sha1_roots() {
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path();
    let pss = self_signed(
        dir,
        "pss",
        "rsa:2048",
        "/CN=mp.fleet.test",
        &[
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
    );
    let (f, r) = fails(&pss, "site-system-https", intranet("mp.fleet.test"));
    assert!(f.is_empty(), "{:#?}", r.findings);
    assert_eq!(
        r.findings
            .iter()
            .find(|f| f.rule == "sha2-signature")
            .expect("rule")
            .found,
        "RSASSA-PSS (SHA-256)"
    );

    // A SHA-1 root still chains (nobody checks a root's self-signature): a warning.
    let root = self_signed(
        dir,
        "oldroot",
        "rsa:2048",
        "/CN=Old Root",
        &["-sha1", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    );
    let (f, r) = fails(&root, "root-ca", Context::default());
    assert_eq!(f, ["sha2-signature"]);
    assert!(r.compliant());
    let w = r.warnings();
    assert_eq!(
        (w[0].severity, w[0].status),
        (Severity::Warning, Status::Fail)
    );
    assert!(
        r.findings
            .iter()
            .any(|f| f.rule == "self-signed" && f.status == Status::Pass)
    );
}
