//! `fleetpki serve` on 127.0.0.1, talked to as clients would: curl for the CDP and AIA URLs,
//! openssl fetching the CRL itself from the URL in the certificate, `openssl ocsp` asking the
//! OCSP responder at the URL certificates carry, and curl posting to the fallback status point.

mod common;
use common::server::{Server, free_port};
use common::{Site, openssl_csr, s};
use fleetpki_testkit as kit;
use std::process::{Command, Stdio};

/// `ROLE listening on URL` lines: every role.
const ROLES: usize = 5;

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
    let (site, base, serial) = site_with_leaf();
    let leaf = site.path("pc.pem");
    let listen = base.trim_start_matches("http://");

    let server = Server::start(
        &site,
        &format!("[roles.crl]\nlisten = \"{listen}\"\n"),
        ROLES,
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
    assert!(m.contains("fleetpki_pending_requests 0"), "{m}");
    assert!(m.contains("fleetpki_store_up 1"), "{m}");
    assert!(
        m.contains("# TYPE fleetpki_issuance_seconds histogram"),
        "{m}"
    );

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
    // Type errors and unknown keys come from deserialization: they too name the dotted key.
    std::fs::write(&cfg, "[roles.crl]\nmax_body_bytes = \"big\"\n").expect("write");
    let err = site.fails(&["serve", "--config", s(&cfg)]);
    assert!(
        err.contains("roles.crl.max_body_bytes: invalid type: string \"big\"")
            && err.contains("(line 2)"),
        "{err}"
    );
    std::fs::write(&cfg, "[tls]\nrenew_before_dys = 30\n").expect("write");
    let err = site.fails(&["serve", "--config", s(&cfg)]);
    assert!(
        err.contains("tls.renew_before_dys: unknown field `renew_before_dys`"),
        "{err}"
    );
}

/// `--log-format json`: every stderr line is a JSON object, one per request with its role,
/// method, path, status, latency and peer; stdout still carries only the listening lines.
#[test]
fn json_request_log_on_stderr() {
    let port = free_port();
    let site = Site::empty();
    site.ok(&["init", "--site-code", "PS1"]);
    let config = format!(
        "[roles.crl]\nlisten = \"127.0.0.1:{port}\"\n[roles.api]\nenabled = false\n[roles.management-point]\nenabled = false\n[roles.ocsp]\nenabled = false\n[roles.fallback-status-point]\nenabled = false\n"
    );
    let server = Server::start_with(
        &site,
        &config,
        1,
        &["--log-format", "json"],
        &[],
        Stdio::piped(),
    );
    let base = server.url("crl").to_string();
    let (code, _) = curl(&format!("{base}/ca/root.crt"), &site.path("root.crt"));
    assert_eq!(code, "200");
    let (status, rest, stderr) = server.stop_and_read();
    assert!(status.success(), "SIGTERM is a clean shutdown: {stderr}");
    assert_eq!(rest, "", "stdout carries only the listening lines");

    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 1, "one event per request: {stderr}");
    let r = requests[0];
    assert_eq!(r["level"], "INFO", "{r}");
    assert_eq!(r["target"], "fleetpki_server::request", "{r}");
    assert_eq!(r["role"], "crl", "{r}");
    assert_eq!(r["method"], "GET", "{r}");
    assert_eq!(r["path"], "/ca/root.crt", "{r}");
    assert_eq!(r["status"], 200, "{r}");
    let latency = r["latency_ms"].as_f64().expect("latency_ms is a number");
    assert!((0.0..10_000.0).contains(&latency), "{r}");
    let peer = r["peer"].as_str().expect("peer");
    assert!(peer.starts_with("127.0.0.1:"), "{r}");
    assert!(
        events
            .iter()
            .any(|e| e["message"] == "listening" && e["url"] == base.as_str()),
        "{stderr}"
    );

    // RUST_LOG decides the level: at warn, no request events (and text is the default format).
    let server = Server::start_with(
        &site,
        &config,
        1,
        &[],
        &[("RUST_LOG", "warn")],
        Stdio::piped(),
    );
    let (code, _) = curl(&format!("{base}/ca/root.crt"), &site.path("root.crt"));
    assert_eq!(code, "200");
    let (status, _, stderr) = server.stop_and_read();
    assert!(status.success());
    assert!(!stderr.contains("request"), "{stderr}");
}

/// One request with curl: (status code, response headers, body).
fn http(
    site: &Site,
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, String, Vec<u8>) {
    let (req, hdr, out) = (
        site.path("req.bin"),
        site.path("resp.hdr"),
        site.path("resp.bin"),
    );
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "-X",
        method,
        "-D",
        s(&hdr),
        "-o",
        s(&out),
        "-w",
        "%{http_code}",
    ]);
    // `Content-Type:` with no value makes curl send none (it would say form-urlencoded).
    c.args([
        "-H",
        &format!("Content-Type: {}", content_type.unwrap_or("")),
    ]);
    if let Some(b) = body {
        std::fs::write(&req, b).expect("request body");
        c.args(["--data-binary", &format!("@{}", s(&req))]);
    }
    let o = c.arg(url).output().expect("curl");
    let code = String::from_utf8_lossy(&o.stdout)
        .parse()
        .unwrap_or_else(|_| panic!("curl {url}: {}", String::from_utf8_lossy(&o.stderr)));
    let headers = std::fs::read_to_string(&hdr).unwrap_or_default();
    (code, headers, std::fs::read(&out).unwrap_or_default())
}

/// `openssl ocsp -url URL -CAfile root.pem` with `args` naming the issuer and certificates;
/// returns stdout and stderr together.
fn openssl_ocsp(site: &Site, url: &str, args: &[&str]) -> String {
    let root = site.path("ca/root.pem");
    let mut all = vec!["ocsp", "-url", url, "-CAfile", s(&root), "-resp_text"];
    all.extend_from_slice(args);
    kit::openssl(&all).expect("openssl ocsp").combined()
}

fn lint_ocsp(der: &[u8]) {
    if kit::tool(kit::LINT_OCSP_RESPONSE).is_none() {
        return;
    }
    let findings = kit::pkilint_ocsp(der).expect("lint_ocsp_response");
    assert!(findings.is_empty(), "pkilint: {findings:#?}");
}

/// A two-tier site whose base URL is a free loopback port, with one issued Workstation
/// certificate at `pc.pem`; returns the site, the base URL and the certificate's serial.
fn site_with_leaf() -> (Site, String, String) {
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
    site.issue("Workstation", "PC1", &csr, "pc.pem");
    let serial = site.json(&["cert", "list"])[0]["serial"]
        .as_str()
        .expect("serial")
        .to_string();
    (site, base, serial)
}

#[test]
fn ocsp_answers_good_revoked_and_unknown_at_the_certificate_url() {
    let (site, base, serial) = site_with_leaf();
    // Only the CRL role's address is configured: OCSP shares its socket, as the URLs in the
    // certificates (both under the base URL) need.
    let port = base.rsplit(':').next().expect("port");
    let server = Server::start(
        &site,
        &format!("[roles.crl]\nlisten = \"127.0.0.1:{port}\"\n"),
        ROLES,
    );
    assert_eq!(server.url("ocsp"), base);
    let url = format!("{base}/ocsp");
    let (issuing, leaf) = (site.path("ca/issuing.pem"), site.path("pc.pem"));
    let resp = site.path("ocsp.der");
    let ask = |extra: &[&str]| {
        // Options first: openssl's digest options apply to the -cert options after them.
        let mut a = extra.to_vec();
        a.extend([
            "-issuer",
            s(&issuing),
            "-cert",
            s(&leaf),
            "-respout",
            s(&resp),
        ]);
        openssl_ocsp(&site, &url, &a)
    };

    // POST, as openssl sends it, with a nonce that must come back.
    let out = ask(&[]);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{}: good", s(&leaf))), "{out}");
    assert!(out.contains("OCSP Nonce"), "{out}");
    assert!(!out.contains("WARNING"), "{out}");
    assert!(
        out.contains("Next Update"),
        "site maintenance published the CRLs at start: nextUpdate follows them\n{out}"
    );
    lint_ocsp(&std::fs::read(&resp).expect("response"));

    site.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    let out = ask(&[]);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{}: revoked", s(&leaf))), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");
    lint_ocsp(&std::fs::read(&resp).expect("response"));

    // With a CRL published, nextUpdate follows it.
    site.ok(&["crl", "publish", "--out", s(&site.path("ca.crl"))]);
    let out = ask(&["-sha256"]);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{}: revoked", s(&leaf))), "{out}");
    let parsed = fleetpki_x509::ocsp::parse_response(&std::fs::read(&resp).expect("response"))
        .expect("parse");
    let next = parsed.responses[0].next_update.expect("nextUpdate");
    let week = fleetpki_model::now() + 7 * 86_400;
    assert!(
        (week - 120..=week + 5).contains(&next),
        "nextUpdate {next}, CRL {week}"
    );

    // GET, standard and URL-safe base64 (percent-encoded as a client must for + / =).
    let req = site.path("get-req.der");
    let o = kit::openssl(&[
        "ocsp",
        "-issuer",
        s(&issuing),
        "-cert",
        s(&leaf),
        "-no_nonce",
        "-reqout",
        s(&req),
    ])
    .expect("reqout");
    assert!(o.success(), "{}", o.combined());
    let req_der = std::fs::read(&req).expect("request");
    let b64 = kit::openssl(&["base64", "-A", "-in", s(&req)])
        .expect("base64")
        .stdout;
    let b64 = b64.trim();
    let encoded = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let url_safe = b64.replace('+', "-").replace('/', "_").replace('=', "");
    for path in [encoded, url_safe] {
        let (code, headers, body) = http(&site, "GET", &format!("{url}/{path}"), None, None);
        assert_eq!(code, 200, "{headers}");
        assert!(
            headers
                .to_ascii_lowercase()
                .contains("content-type: application/ocsp-response"),
            "{headers}"
        );
        // No nonce and a nextUpdate: cacheable (RFC 5019).
        assert!(headers.contains("max-age="), "{headers}");
        std::fs::write(&resp, &body).expect("write");
        let o = kit::openssl(&[
            "ocsp",
            "-respin",
            s(&resp),
            "-issuer",
            s(&issuing),
            "-cert",
            s(&leaf),
            "-no_nonce",
            "-CAfile",
            s(&site.path("ca/root.pem")),
        ])
        .expect("respin");
        let out = o.combined();
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(out.contains(&format!("{}: revoked", s(&leaf))), "{out}");
        lint_ocsp(&body);
    }
    // The same request by POST without a Content-Type is answered too.
    let (code, _, body) = http(&site, "POST", &url, None, Some(&req_der));
    assert_eq!(code, 200);
    assert_eq!(
        fleetpki_x509::ocsp::parse_response(&body)
            .expect("parse")
            .error,
        None
    );

    // A serial this CA never issued: unknown (a leading-zero-sensitive lookup would also fail
    // here, for half of all serials: this one has its top bit set).
    let out = openssl_ocsp(
        &site,
        &url,
        &["-issuer", s(&issuing), "-serial", "0x8a0102030405"],
    );
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("0x8a0102030405: unknown"), "{out}");

    // The root answers for the issuing CA it signed.
    let root = site.path("ca/root.pem");
    let out = openssl_ocsp(&site, &url, &["-issuer", s(&root), "-cert", s(&issuing)]);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{}: good", s(&issuing))), "{out}");

    // Another CA's certificate: unauthorized.
    let other_key = site.path("other.key");
    let other = site.path("other.pem");
    let o = kit::openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(&other_key),
        "-out",
        s(&other),
        "-subj",
        "/CN=Other CA",
        "-days",
        "2",
    ])
    .expect("other CA");
    assert!(o.success(), "{}", o.combined());
    let out = openssl_ocsp(&site, &url, &["-issuer", s(&other), "-serial", "0x01"]);
    assert!(out.contains("unauthorized"), "{out}");

    // Garbage: malformedRequest, as an OCSP response; a wrong Content-Type: 415.
    let (code, _, body) = http(
        &site,
        "POST",
        &url,
        Some("application/ocsp-request"),
        Some(b"\x30\x03junk"),
    );
    assert_eq!(code, 200);
    assert_eq!(
        fleetpki_x509::ocsp::parse_response(&body)
            .expect("parse")
            .error,
        Some(fleetpki_x509::ocsp::ErrorStatus::MalformedRequest)
    );
    let (code, _, body) = http(&site, "GET", &format!("{url}/not*base64"), None, None);
    assert_eq!(code, 200);
    assert_eq!(
        fleetpki_x509::ocsp::parse_response(&body)
            .expect("parse")
            .error,
        Some(fleetpki_x509::ocsp::ErrorStatus::MalformedRequest)
    );
    let (code, _, _) = http(&site, "POST", &url, Some("text/plain"), Some(&req_der));
    assert_eq!(code, 415);

    let (code, _, m) = http(&site, "GET", &format!("{base}/metrics"), None, None);
    assert_eq!(code, 200);
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.contains("fleetpki_http_requests_total{role=\"ocsp\",status=\"200\"}"),
        "{m}"
    );
    assert!(server.stop().success());
}

#[test]
fn ocsp_delegated_signer_is_issued_recorded_and_verifies() {
    let (site, base, _) = site_with_leaf();
    let server = Server::start(
        &site,
        "[roles.ocsp]\nsigner = \"delegated\"\nlisten = \"127.0.0.1:0\"\n",
        ROLES,
    );
    let url = format!("{}/ocsp", server.url("ocsp"));
    assert_ne!(server.url("ocsp"), base);
    let (issuing, leaf) = (site.path("ca/issuing.pem"), site.path("pc.pem"));
    let resp = site.path("ocsp.der");
    let out = openssl_ocsp(
        &site,
        &url,
        &[
            "-issuer",
            s(&issuing),
            "-cert",
            s(&leaf),
            "-respout",
            s(&resp),
        ],
    );
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{}: good", s(&leaf))), "{out}");
    assert!(
        out.contains("OCSP Signing"),
        "the responder certificate is included\n{out}"
    );
    assert!(out.contains("OCSP No Check"), "{out}");
    let der = std::fs::read(&resp).expect("response");
    lint_ocsp(&der);

    // The responder's certificate: in the inventory, signed by the issuing CA, short-lived.
    let parsed = fleetpki_x509::ocsp::parse_response(&der).expect("parse");
    assert_eq!(parsed.certs.len(), 1);
    let certs = site.json(&["cert", "list"]);
    let signer = certs
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["template"] == "site:ocsp-signing")
        .unwrap_or_else(|| panic!("no OCSP signing certificate in {certs:#}"));
    let life = signer["not_after"].as_i64().expect("not_after")
        - signer["not_before"].as_i64().expect("not_before");
    assert!(life <= 2 * 86_400 + 60, "{signer:#}");
    let info = fleetpki_x509::cert::info(
        &fleetpki_x509::cert::parse("responder", &parsed.certs[0]).expect("cert"),
    )
    .expect("info");
    assert_eq!(info.serial_hex, signer["serial"].as_str().expect("serial"));
    let pem = fleetpki_x509::cert::to_pem(&parsed.certs[0]);
    if kit::tool(kit::LINT_PKIX_CERT).is_some() {
        let findings = kit::pkilint_cert(&pem).expect("lint cert");
        assert!(findings.is_empty(), "{findings:#?}");
    }
    // nextUpdate never outlives the responder certificate.
    site.ok(&["crl", "publish", "--out", s(&site.path("ca.crl"))]);
    let out = openssl_ocsp(
        &site,
        &url,
        &[
            "-issuer",
            s(&issuing),
            "-cert",
            s(&leaf),
            "-respout",
            s(&resp),
        ],
    );
    assert!(out.contains("Response verify OK"), "{out}");
    let parsed = fleetpki_x509::ocsp::parse_response(&std::fs::read(&resp).expect("response"))
        .expect("parse");
    assert_eq!(
        parsed.responses[0].next_update,
        signer["not_after"].as_i64()
    );
    assert!(server.stop().success());
}

#[test]
fn fallback_status_point_stores_good_messages_and_refuses_the_rest() {
    let site = Site::two_tier();
    let server = Server::start(
        &site,
        "[roles.fallback-status-point]\nrate_per_minute = 6\nmax_body_bytes = 512\n",
        ROLES,
    );
    let url = format!("{}/status", server.url("fallback-status-point"));
    let json = Some("application/json");
    let good = br#"{"client":"PC1","kind":"selection-failed","message":"client certificate selection failed: 3 candidates","details":{"candidates":3}}"#;

    // 1: stored.
    let (code, headers, _) = http(&site, "POST", &url, json, Some(good));
    assert_eq!(code, 204, "{headers}");
    let listed = site.json(&["status", "list", "--client", "PC1"]);
    let m = &listed[0];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    assert_eq!(m["kind"], "selection-failed");
    assert_eq!(m["source"], "127.0.0.1");
    assert_eq!(m["body"]["details"]["candidates"], 3);
    let table = site.ok(&["status", "list", "--kind", "selection-failed"]);
    assert!(
        table.contains("client certificate selection failed: 3 candidates"),
        "{table}"
    );
    assert_eq!(
        site.json(&["status", "list", "--client", "PC2"]),
        serde_json::json!([])
    );
    assert_eq!(
        site.json(&["status", "list", "--since", "1h"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let err = site.fails(&["status", "list", "--since", "last tuesday"]);
    assert!(
        err.contains("--since: `last tuesday` is not a time"),
        "{err}"
    );

    // 2–6: refused, each for its own reason; 7: over the rate. Nothing more is stored.
    let before = site.fingerprint();
    let field = |body: &[u8]| -> String {
        let v: serde_json::Value = serde_json::from_slice(body).expect("JSON error");
        v["field"].as_str().unwrap_or_default().to_string()
    };
    let big = format!(
        r#"{{"client":"PC1","kind":"renewal-failed","message":"{}"}}"#,
        "x".repeat(600)
    );
    let (code, _, body) = http(&site, "POST", &url, json, Some(big.as_bytes()));
    assert_eq!((code, field(&body).as_str()), (413, "body"));
    let (code, _, body) = http(&site, "POST", &url, Some("text/plain"), Some(good));
    assert_eq!((code, field(&body).as_str()), (415, "content-type"));
    let (code, _, body) = http(&site, "POST", &url, json, Some(b"{\"client\": \"PC1\", "));
    assert_eq!((code, field(&body).as_str()), (400, "body"));
    let (code, _, body) = http(&site, "POST", &url, json, Some(br#"{"client":"PC1"}"#));
    assert_eq!((code, field(&body).as_str()), (400, "kind"));
    let error = String::from_utf8_lossy(&body).to_string();
    assert!(error.contains("kind: is required"), "{error}");
    let (code, _, body) = http(
        &site,
        "POST",
        &url,
        json,
        Some(br#"{"client":"PC1","kind":"Not A Kind"}"#),
    );
    assert_eq!((code, field(&body).as_str()), (400, "kind"));
    let (code, headers, _) = http(&site, "POST", &url, json, Some(good));
    assert_eq!(code, 429, "{headers}");
    assert!(
        headers.to_ascii_lowercase().contains("retry-after: "),
        "{headers}"
    );
    assert_eq!(
        site.fingerprint(),
        before,
        "a refused message changed the database"
    );
    assert_eq!(
        site.json(&["status", "list"]).as_array().map(Vec::len),
        Some(1)
    );
    assert!(server.stop().success());
}

#[test]
fn ocsp_refuses_to_start_without_its_signing_key() {
    let mut site = Site::empty();
    site.env = vec![("FLEETPKI_PASSPHRASE".into(), "correct horse".into())];
    // Its own port: the CRL role listens where the base URL points.
    let base = format!("http://localhost:{}", free_port());
    site.ok(&["init", "--site-code", "PS1", "--base-url", &base]);
    site.env.clear();
    let cfg = site.path("serve.toml");
    std::fs::write(&cfg, "").expect("write");
    let err = site.fails(&["serve", "--config", s(&cfg)]);
    assert!(err.contains("FLEETPKI_PASSPHRASE"), "{err}");
    // Without the roles that sign (OCSP; the HTTPS roles' certificate and policy), nothing
    // needs a key: the others start.
    let server = Server::start(
        &site,
        "[roles.ocsp]\nenabled = false\n[roles.api]\nenabled = false\n[roles.management-point]\nenabled = false\n",
        ROLES - 3,
    );
    assert!(
        server
            .url("fallback-status-point")
            .starts_with("http://127.0.0.1:")
    );
    assert!(server.stop().success());
}

/// SIGTERM drains: a request whose body is still arriving when shutdown starts is read to the
/// end and answered, and then the server exits cleanly.
#[test]
fn shutdown_finishes_a_request_in_flight() {
    use std::io::{BufRead, BufReader, Read, Write};
    let site = Site::empty();
    site.ok(&["init", "--site-code", "PS1"]);
    let config = "[roles.crl]\nenabled = false\n[roles.api]\nenabled = false\n[roles.management-point]\nenabled = false\n[roles.ocsp]\nenabled = false\n";
    let mut server = Server::start_with(&site, config, 1, &[], &[], Stdio::piped());
    let port = server.port("fallback-status-point");
    let mut stderr = BufReader::new(server.take_stderr().expect("stderr"));

    let body = br#"{"client":"PC1","kind":"drain-test","message":"sent across a shutdown"}"#;
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        conn,
        "POST /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("head");
    conn.write_all(&body[..10]).expect("first part");
    conn.flush().expect("flush");

    server.terminate();
    // The shutdown has begun once serve says so; only then does the rest of the body go out.
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("stderr") > 0,
            "serve exited without announcing the shutdown"
        );
        if line.contains("shutting down") {
            break;
        }
    }
    conn.write_all(&body[10..]).expect("rest of the body");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 2"), "{answer}");
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    assert!(server.wait().success(), "clean exit after the drain");
    let _ = rest.join();
    let listed = site.ok(&["status", "list", "--kind", "drain-test"]);
    assert!(listed.contains("PC1"), "the message was stored: {listed}");
}

/// `curl --cacert ROOT URL/healthz` with the site root as the only trust anchor (no proxy, no
/// CA bundle from the environment) and `extra` options: (exit code, HTTP status, stderr).
fn healthz_over_https(site: &Site, url: &str, extra: &[&str]) -> (i32, String, String) {
    let mut c = Command::new("curl");
    for v in ["SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE"] {
        c.env_remove(v);
    }
    let o = c
        .args([
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "15",
            "-o",
            "/dev/null",
        ])
        .args([
            "-w",
            "%{http_code}",
            "--cacert",
            s(&site.path("ca/root.pem")),
        ])
        .args(extra)
        .arg(format!("{url}/healthz"))
        .output()
        .expect("curl");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Only the api role (HTTPS), on loopback, with this `[tls]` table.
fn api_only(tls: &str) -> String {
    format!(
        "[roles.crl]\nenabled = false\n[roles.management-point]\nenabled = false\n\
         [roles.ocsp]\nenabled = false\n[roles.fallback-status-point]\nenabled = false\n\
         [roles.api]\nlisten = \"127.0.0.1:0\"\n[tls]\n{tls}"
    )
}

/// The URL an HTTPS role prints works when copied: in enhanced HTTP the site-issued
/// certificate also names the address the role binds (an iPAddress SAN), so curl and
/// `openssl s_client -verify_ip` accept `https://127.0.0.1:PORT` with the site root alone,
/// and that certificate still meets site-system-https and pkilint's PKIX profile.
#[test]
fn printed_https_url_verifies_with_the_site_root_alone() {
    if kit::tool("curl").is_none() {
        return;
    }
    let site = Site::two_tier();
    let server = Server::start(&site, &api_only(""), 1);
    let url = server.url("api").to_string();
    let port = server.port("api");
    assert_eq!(url, format!("https://127.0.0.1:{port}"));
    let (exit, code, err) = healthz_over_https(&site, &url, &[]);
    assert_eq!((exit, code.as_str()), (0, "200"), "{url}: {err}");
    if let Some(openssl) = kit::tool("openssl") {
        let o = Command::new(openssl)
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-verify_ip", "127.0.0.1", "-verify_return_error", "-brief"])
            .args(["-CAfile", s(&site.path("ca/root.pem")), "-no-CApath"])
            .arg("-no-CAstore")
            .stdin(Stdio::null())
            .output()
            .expect("s_client");
        let out =
            String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("Verification: OK"), "{out}");
    }
    assert!(server.stop().success());

    // The certificate names the site's FQDN first, then the address; it meets the role
    // profile it is checked against and lints clean.
    let cert = site.path("tls/site-system.crt.pem");
    let pem = std::fs::read_to_string(&cert).expect("site-system certificate");
    let der = fleetpki_x509::pem::decode_labels("cert", pem.as_bytes(), &["CERTIFICATE"])
        .expect("pem")
        .remove(0)
        .1;
    let info = fleetpki_x509::cert::info(&fleetpki_x509::cert::parse("cert", &der).expect("parse"))
        .expect("info");
    assert_eq!(info.sans, ["DNS:pki.fleet.test", "IP:127.0.0.1"]);
    site.ok(&[
        "check",
        "--profile",
        "site-system-https",
        "--intranet-fqdn",
        "pki.fleet.test",
        s(&cert),
    ]);
    if kit::tool(kit::LINT_PKIX_CERT).is_some() {
        let findings = kit::pkilint_cert(&pem).expect("pkilint");
        assert!(findings.is_empty(), "pkilint: {findings:#?}");
    }
}

/// PKI mode with an administrator's certificate that names only the FQDN: the printed URL
/// names that FQDN (the address would fail hostname verification in every client), and it
/// verifies with the site root once the name resolves to the listener.
#[test]
fn printed_https_url_names_the_host_an_administrator_certificate_covers() {
    if kit::tool("curl").is_none() {
        return;
    }
    const HOST: &str = "mp.fleet.test";
    let site = Site::two_tier();
    site.enable("WebServer", "Servers");
    let csr = openssl_csr(
        site.dir.path(),
        "mp",
        "ec:P-256",
        &format!("/CN={HOST}"),
        &["-addext", &format!("subjectAltName=DNS:{HOST}")],
    );
    let leaf = site.issue("WebServer", "SRV1", &csr, "mp.pem");
    let chain = site.path("mp-chain.pem");
    std::fs::write(
        &chain,
        std::fs::read_to_string(&leaf).expect("leaf") + &site.issuing_pem(),
    )
    .expect("chain");
    let tls = format!(
        "mode = \"pki\"\ncertificate = \"{}\"\nkey = \"{}\"\nintranet_fqdn = \"{HOST}\"\n",
        s(&chain),
        s(&site.path("mp.key"))
    );
    let server = Server::start(&site, &api_only(&tls), 1);
    let port = server.port("api");
    let url = server.url("api");
    assert_eq!(url, format!("https://{HOST}:{port}"));
    let resolve = format!("{HOST}:{port}:127.0.0.1");
    let (exit, code, err) = healthz_over_https(&site, url, &["--resolve", &resolve]);
    assert_eq!((exit, code.as_str()), (0, "200"), "{url}: {err}");
    // What printing the address would have handed out: refused by hostname verification.
    let (exit, code, _) = healthz_over_https(&site, &format!("https://127.0.0.1:{port}"), &[]);
    assert_eq!((exit, code.as_str()), (60, "000"));
    assert!(server.stop().success());
}

/// The HTTPS listeners drain like the plain ones: a request to the API whose body is still
/// arriving when SIGTERM lands is read to the end, answered and stored, and the server exits
/// cleanly. The client is `openssl s_client` fed by hand. `Expect: 100-continue` makes the
/// server say when it has started reading the body (the request is in flight, not a
/// connection that is merely open), and the listener refusing connections shows the shutdown
/// has begun before the rest of the body goes out.
#[test]
fn tls_shutdown_finishes_a_request_in_flight() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    let Some(openssl) = kit::tool("openssl") else {
        return;
    };
    let site = Site::empty();
    site.ok(&["init", "--site-code", "PS1"]);
    let o = site.run(&["api-token", "new", "--name", "ops", "--role", "ca-admin"]);
    assert!(o.status.success(), "{o:?}");
    let bearer = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let token_config: String = String::from_utf8_lossy(&o.stderr)
        .lines()
        .skip_while(|l| !l.starts_with("[api.tokens."))
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    let config = api_only("") + &token_config;
    let mut server = Server::start_with(&site, &config, 1, &[], &[], Stdio::piped());
    let port = server.port("api");
    let mut stderr = BufReader::new(server.take_stderr().expect("stderr"));

    let mut client = Command::new(openssl)
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-verify_ip", "127.0.0.1", "-verify_return_error", "-quiet"])
        .args(["-CAfile", s(&site.path("ca/root.pem")), "-no-CApath"])
        .args(["-no-CAstore", "-alpn", "http/1.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("s_client");
    let mut to_server = client.stdin.take().expect("stdin");
    // What the server sends, as it arrives.
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut from_server = client.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from_server.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut received = String::new();
    let wait_for = |what: &str, received: &mut String| {
        while !received.contains(what) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => received.push_str(&String::from_utf8_lossy(&chunk)),
                Err(e) => panic!("no `{what}` from the server ({e}); got: {received}"),
            }
        }
    };

    let body = br#"{"name":"drain-test"}"#;
    write!(
        to_server,
        "POST /api/v1/directory/groups HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("head");
    to_server.flush().expect("flush");
    // The server is reading the body (the API role reads it whole before its handler runs):
    // the request is in flight.
    wait_for("100 Continue", &mut received);
    to_server.write_all(&body[..8]).expect("first part");
    to_server.flush().expect("flush");

    server.terminate();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("stderr") > 0,
            "serve exited without announcing the shutdown"
        );
        if line.contains("shutting down") {
            break;
        }
    }
    // The listener is closed once the shutdown has reached it; only then does the rest of the
    // body go out.
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the API still accepts connections"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    to_server.write_all(&body[8..]).expect("rest of the body");
    to_server.flush().expect("flush");
    wait_for("\r\n\r\n{", &mut received);
    let answer = received.split("100 Continue\r\n\r\n").nth(1).unwrap_or("");
    assert!(answer.starts_with("HTTP/1.1 201"), "{received}");
    drop(to_server);
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    assert!(server.wait().success(), "clean exit after the drain");
    let _ = rest.join();
    let _ = client.kill();
    let _ = client.wait();
    let listed = site.ok(&["directory", "list"]);
    assert!(
        listed.contains("drain-test"),
        "the group was stored: {listed}"
    );
}
