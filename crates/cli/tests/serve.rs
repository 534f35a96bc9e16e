//! `fleetpki serve` on 127.0.0.1, talked to as clients would: curl for the CDP and AIA URLs,
//! and openssl fetching the CRL itself from the URL in the certificate.

mod common;
use common::server::{Server, free_port};
use common::{Site, openssl_csr, s};
use fleetpki_testkit as kit;
use std::process::Command;

fn curl(url: &str, out: &std::path::Path) -> (String, String) {
    let o = Command::new("curl")
        .args([
            "-sS",
            "-o",
            s(out),
            "-w",
            "%{http_code} %{content_type}",
            url,
        ])
        .output()
        .expect("curl");
    let w = String::from_utf8_lossy(&o.stdout).to_string();
    let (code, ctype) = w.split_once(' ').unwrap_or((&w, ""));
    (code.to_string(), ctype.to_string())
}

#[test]
fn cdp_and_aia_serve_what_certificates_point_to() {
    let port = free_port();
    let site = Site::empty();
    let base = format!("http://127.0.0.1:{port}");
    site.ok(&[
        "init",
        "--site-code",
        "PS1",
        "--two-tier",
        "--base-url",
        &base,
    ]);
    site.add_pc1();
    site.enable("Workstation", "Workstations");
    let csr = openssl_csr(site.dir.path(), "pc", "ec:P-256", "/CN=pc1", &[]);
    let leaf = site.issue("Workstation", "PC1", &csr, "pc.pem");
    let serial = site.json(&["cert", "list"])[0]["serial"]
        .as_str()
        .expect("serial")
        .to_string();

    let server = Server::start(
        &site,
        &format!(
            "[roles.crl]\nlisten = \"127.0.0.1:{port}\"\n[roles.management-point]\nenabled = false\n"
        ),
        1,
    );
    assert_eq!(server.url("crl"), base);

    // Site maintenance published the full CRLs at start; no delta yet: a clear 404.
    let (code, _) = curl(&format!("{base}/crl/issuing.crl"), &site.path("first.crl"));
    assert_eq!(code, "200");
    let (code, _) = curl(
        &format!("{base}/crl/issuing-delta.crl"),
        &site.path("none.crl"),
    );
    assert_eq!(code, "404");

    site.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    site.ok(&["crl", "publish", "--out", s(&site.path("local.crl"))]);
    let got = site.path("served.crl");
    let (code, ctype) = curl(&format!("{base}/crl/issuing.crl"), &got);
    assert_eq!(
        (code.as_str(), ctype.as_str()),
        ("200", "application/pkix-crl")
    );
    let chain = site.path("chain.pem");
    site.chain_pem();
    let c = kit::openssl(&[
        "crl",
        "-in",
        s(&got),
        "-inform",
        "DER",
        "-noout",
        "-CAfile",
        s(&chain),
    ])
    .expect("crl");
    assert!(
        format!("{}{}", c.stdout, c.stderr).contains("verify OK"),
        "{} {}",
        c.stdout,
        c.stderr
    );

    // openssl follows the certificate's own CDP URL to the running server.
    let v = kit::openssl(&[
        "verify",
        "-no-CApath",
        "-no-CAstore",
        "-CAfile",
        s(&site.path("ca/root.pem")),
        "-untrusted",
        s(&site.path("ca/issuing.pem")),
        "-crl_check",
        "-crl_download",
        s(&leaf),
    ])
    .expect("verify");
    assert_ne!(
        v.status, 0,
        "revoked via the downloaded CRL: {} {}",
        v.stdout, v.stderr
    );
    assert!(
        format!("{}{}", v.stdout, v.stderr).contains("certificate revoked"),
        "{} {}",
        v.stdout,
        v.stderr
    );

    // AIA caIssuers: the issuing CA certificate, DER, equal to the site's.
    let got = site.path("issuing.crt");
    let (code, ctype) = curl(&format!("{base}/ca/issuing.crt"), &got);
    assert_eq!(
        (code.as_str(), ctype.as_str()),
        ("200", "application/pkix-cert")
    );
    let pem = kit::openssl(&["x509", "-in", s(&got), "-inform", "DER"])
        .expect("x509")
        .stdout;
    assert_eq!(pem.trim(), site.issuing_pem().trim());
    let (code, _) = curl(&format!("{base}/ca/evil.crt"), &site.path("x"));
    assert_eq!(code, "404");

    // Health and metrics on every listener.
    let (code, _) = curl(&format!("{}/healthz", server.url("crl")), &site.path("h"));
    assert_eq!(code, "200");
    let (code, ctype) = curl(&format!("{base}/metrics"), &site.path("m"));
    assert_eq!(code, "200");
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    let m = std::fs::read_to_string(site.path("m")).expect("metrics");
    assert!(
        m.contains("fleetpki_http_requests_total{role=\"crl\",status=\"200\"} 4"),
        "{m}"
    );
    assert!(m.contains("fleetpki_certificates_expiring_42d 0"), "{m}");

    assert!(server.stop().success(), "SIGTERM is a clean shutdown");
}

#[test]
fn bad_serve_config_names_the_key() {
    let site = Site::empty();
    site.ok(&["init", "--site-code", "PS1"]);
    let cfg = site.path("bad.toml");
    std::fs::write(&cfg, "[roles.crl]\nlisten = \"nowhere\"\n").expect("write");
    let err = site.fails(&["serve", "--config", s(&cfg)]);
    assert!(
        err.contains("roles.crl.listen: `nowhere` is not an address"),
        "{err}"
    );
    std::fs::write(&cfg, "[roles.ocsp-typo]\n").expect("write");
    let err = site.fails(&["serve", "--config", s(&cfg)]);
    assert!(err.contains("roles.ocsp-typo: unknown role"), "{err}");
}
