//! The acme role on loopback: certbot and lego obtain certificates through real http-01
//! (then certbot revokes and lego renews), the instant-acme crate binds an account by external
//! account binding, orders and changes its key, a minimal JWS client of our own covers the same
//! and the refusals, and a catalogue of malformed JWSs is answered with ACME problem types and
//! stores nothing.

mod common;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::server::{Server, free_port};
use common::{Site, openssl_csr, s};
use fleetpki_testkit as kit;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// A two-tier site whose `ACME Web` template (from WebServer) takes names under fleet.test and
/// grants Enroll to Servers (SRV1, WEB2).
fn acme_site() -> Site {
    let site = Site::two_tier();
    site.ok(&[
        "directory",
        "add-computer",
        "WEB2",
        "--dns",
        "web2.fleet.test",
        "--group",
        "Servers",
    ]);
    site.ok(&["template", "duplicate", "WebServer", "ACME Web"]);
    site.ok(&[
        "template",
        "set",
        "ACME Web",
        "--permitted-dns-suffixes",
        "fleet.test",
    ]);
    site.enable("ACME Web", "Servers");
    site
}

const OTHER_ROLES_OFF: &str = "[tls]\nintranet_fqdn = \"localhost\"\n\
    [roles.crl]\nenabled = false\n[roles.management-point]\nenabled = false\n\
    [roles.ocsp]\nenabled = false\n[roles.fallback-status-point]\nenabled = false\n\
    [roles.api]\nenabled = false\n";

/// `fleetpki serve` with only the acme role; http-01 goes to `http_port` on loopback for every
/// name under fleet.test.
fn start(site: &Site, http_port: u16, extra: &str) -> (Server, String) {
    let config = format!(
        "{OTHER_ROLES_OFF}[roles.acme]\ntemplate = \"ACME Web\"\nprincipal = \"SRV1\"\n\
         http01_port = {http_port}\nresolve = {{ \"*.fleet.test\" = \"127.0.0.1\" }}\n{extra}"
    );
    let server = Server::start(site, &config, 1);
    let dir = format!("https://localhost:{}/acme/directory", server.port("acme"));
    (server, dir)
}

/// Every certificate must verify against the site's root and pass pkilint's PKIX profile.
fn check_issued(site: &Site, leaf_pem: &str) {
    let v = kit::openssl_verify(&site.root_pem(), Some(&site.issuing_pem()), None, leaf_pem)
        .expect("openssl verify");
    assert!(v.success(), "openssl verify: {}", v.combined());
    if kit::tool(kit::LINT_PKIX_CERT).is_some() {
        let findings = kit::pkilint_cert(leaf_pem).expect("pkilint");
        assert!(findings.is_empty(), "pkilint findings: {findings:#?}");
    }
}

fn serial_of_pem(pem: &str) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("c.pem");
    std::fs::write(&p, pem).expect("write");
    let o = kit::openssl(&["x509", "-in", s(&p), "-noout", "-serial"]).expect("x509");
    assert!(o.success(), "{}", o.combined());
    o.stdout
        .trim()
        .strip_prefix("serial=")
        .expect("serial=")
        .to_ascii_lowercase()
}

/// The first PEM block of a file.
fn first_pem(text: &str) -> String {
    let end = "-----END CERTIFICATE-----";
    let i = text.find(end).expect("a certificate") + end.len();
    format!("{}\n", &text[..i])
}

fn run_tool(cmd: &mut Command, what: &str) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn certbot_obtains_then_revokes() {
    if kit::tool("certbot").is_none() {
        return;
    }
    let site = acme_site();
    let http = free_port();
    let (server, directory) = start(&site, http, "");
    let d = site.path("certbot");
    let dirs = |c: &mut Command| {
        c.env("REQUESTS_CA_BUNDLE", site.path("ca/root.pem"))
            .args(["--config-dir", &format!("{}/conf", d.display())])
            .args(["--work-dir", &format!("{}/work", d.display())])
            .args(["--logs-dir", &format!("{}/logs", d.display())]);
    };
    let mut c = Command::new("certbot");
    dirs(&mut c);
    c.args([
        "certonly",
        "--standalone",
        "--non-interactive",
        "--agree-tos",
        "-m",
        "ops@fleet.test",
        "--server",
        &directory,
        "--http-01-port",
        &http.to_string(),
        "--http-01-address",
        "127.0.0.1",
        "-d",
        "host1.fleet.test",
        "--key-type",
        "ecdsa",
    ]);
    run_tool(&mut c, "certbot certonly");
    let live = d.join("conf/live/host1.fleet.test");
    let cert = std::fs::read_to_string(live.join("cert.pem")).expect("cert.pem");
    check_issued(&site, &cert);
    let serial = serial_of_pem(&cert);
    let shown = site.json(&["cert", "show", &serial]);
    assert_eq!(shown["principal"], "SRV1", "{shown}");
    assert_eq!(shown["template"], "ACME Web", "{shown}");
    assert!(shown["revocation"].is_null(), "{shown}");
    // The chain certbot saved verifies too.
    let chain = std::fs::read_to_string(live.join("chain.pem")).expect("chain.pem");
    assert!(chain.contains("BEGIN CERTIFICATE"));

    let mut c = Command::new("certbot");
    dirs(&mut c);
    c.args([
        "revoke",
        "--non-interactive",
        "--server",
        &directory,
        "--cert-path",
        s(&live.join("cert.pem")),
        "--reason",
        "keycompromise",
        "--no-delete-after-revoke",
    ]);
    run_tool(&mut c, "certbot revoke");
    let shown = site.json(&["cert", "show", &serial]);
    assert_eq!(shown["revocation"]["reason"], "keyCompromise", "{shown}");
    server.stop();
}

#[test]
fn lego_obtains_then_renews() {
    if kit::tool("lego").is_none() {
        return;
    }
    let site = acme_site();
    let http = free_port();
    let (server, directory) = start(&site, http, "");
    let path = site.path("lego");
    let lego = |cmd: &[&str]| {
        let mut c = Command::new("lego");
        c.env("LEGO_CA_CERTIFICATES", site.path("ca/root.pem"))
            .args([
                "--server",
                &directory,
                "--accept-tos",
                "--email",
                "ops@fleet.test",
            ])
            .args(["--path", s(&path), "--key-type", "ec256"])
            .args(["--domains", "host2.fleet.test", "--http"])
            .args(["--http.port", &format!("127.0.0.1:{http}")])
            .args(cmd);
        c
    };
    run_tool(&mut lego(&["run"]), "lego run");
    let crt = path.join("certificates/host2.fleet.test.crt");
    let first = first_pem(&std::fs::read_to_string(&crt).expect("crt"));
    check_issued(&site, &first);
    // Renew now (the certificate has far more than 30 days left: ask for renewal within 1000).
    run_tool(
        &mut lego(&["renew", "--days", "1000", "--no-random-sleep"]),
        "lego renew",
    );
    let renewed = first_pem(&std::fs::read_to_string(&crt).expect("crt"));
    assert_ne!(serial_of_pem(&renewed), serial_of_pem(&first), "renewed");
    check_issued(&site, &renewed);
    let shown = site.json(&["cert", "show", &serial_of_pem(&renewed)]);
    assert_eq!(shown["principal"], "SRV1", "{shown}");
    server.stop();
}

// ---- a minimal ACME client: ES256 JWS over curl -------------------------------------------

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// A problem document of this ACME type.
    #[track_caller]
    fn problem(&self, kind: &str) -> String {
        let ct = self.header("content-type").unwrap_or_default();
        assert_eq!(ct, "application/problem+json", "status {}", self.status);
        let v = self.json();
        assert_eq!(
            v["type"],
            format!("urn:ietf:params:acme:error:{kind}"),
            "{v}"
        );
        assert_eq!(v["status"], self.status, "{v}");
        v["detail"].as_str().expect("detail").to_string()
    }
}

fn curl(root: &Path, port: u16, method: &str, url: &str, body: Option<&[u8]>, ct: &str) -> Resp {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("body");
    let hdr = dir.path().join("headers");
    let mut c = Command::new("curl");
    c.args(["-sS", "--cacert", s(root)])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-D", s(&hdr), "-o", s(&out), "-X", method]);
    if method == "HEAD" {
        c.arg("-I");
    }
    if let Some(b) = body {
        let f = dir.path().join("req");
        std::fs::write(&f, b).expect("req");
        c.args(["-H", &format!("Content-Type: {ct}")])
            .args(["--data-binary", &format!("@{}", f.display())]);
    }
    c.arg(url);
    let o = c.output().expect("curl");
    assert!(
        o.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let head = std::fs::read_to_string(&hdr).expect("headers");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: std::fs::read(&out).unwrap_or_default(),
    }
}

fn p256() -> EcdsaKeyPair {
    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key")
}

fn jwk_of(k: &EcdsaKeyPair) -> Value {
    let p = k.public_key().as_ref();
    json!({"crv": "P-256", "kty": "EC", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
}

fn thumbprint(k: &EcdsaKeyPair) -> String {
    let j = jwk_of(k);
    let canon = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        j["x"].as_str().expect("x"),
        j["y"].as_str().expect("y")
    );
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canon.as_bytes()).as_ref())
}

fn sign(k: &EcdsaKeyPair, protected: &Value, payload: &str) -> Value {
    let p = b64(protected.to_string().as_bytes());
    let sig = k
        .sign(&SystemRandom::new(), format!("{p}.{payload}").as_bytes())
        .expect("sign");
    json!({"protected": p, "payload": payload, "signature": b64(sig.as_ref())})
}

struct Client {
    root: PathBuf,
    port: u16,
    dir: Value,
    key: EcdsaKeyPair,
    kid: Option<String>,
}

impl Client {
    fn new(site: &Site, server: &Server) -> Client {
        let port = server.port("acme");
        let root = site.path("ca/root.pem");
        let url = format!("https://localhost:{port}/acme/directory");
        let dir = curl(&root, port, "GET", &url, None, "").json();
        Client {
            root,
            port,
            dir,
            key: p256(),
            kid: None,
        }
    }

    fn url(&self, name: &str) -> String {
        self.dir[name]
            .as_str()
            .expect("directory entry")
            .to_string()
    }

    fn nonce(&self) -> String {
        let r = curl(
            &self.root,
            self.port,
            "HEAD",
            &self.url("newNonce"),
            None,
            "",
        );
        r.header("replay-nonce").expect("nonce").to_string()
    }

    fn raw(&self, url: &str, body: &[u8]) -> Resp {
        curl(
            &self.root,
            self.port,
            "POST",
            url,
            Some(body),
            "application/jose+json",
        )
    }

    fn protected(&self, url: &str, nonce: &str) -> Value {
        let mut h = json!({"alg": "ES256", "nonce": nonce, "url": url});
        match &self.kid {
            Some(kid) => h["kid"] = json!(kid),
            None => h["jwk"] = jwk_of(&self.key),
        }
        h
    }

    /// POSTs `payload` (None: POST-as-GET) signed by the account key.
    fn post(&self, url: &str, payload: Option<&Value>) -> Resp {
        let pl = payload
            .map(|p| b64(p.to_string().as_bytes()))
            .unwrap_or_default();
        let jws = sign(&self.key, &self.protected(url, &self.nonce()), &pl);
        self.raw(url, jws.to_string().as_bytes())
    }

    fn new_account(&mut self, eab: Option<(&str, &[u8])>) -> Resp {
        let url = self.url("newAccount");
        let mut payload =
            json!({"termsOfServiceAgreed": true, "contact": ["mailto:ops@fleet.test"]});
        if let Some((kid, key)) = eab {
            let p = b64(json!({"alg": "HS256", "kid": kid, "url": url})
                .to_string()
                .as_bytes());
            let pl = b64(jwk_of(&self.key).to_string().as_bytes());
            let tag = aws_lc_rs::hmac::sign(
                &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
                format!("{p}.{pl}").as_bytes(),
            );
            payload["externalAccountBinding"] =
                json!({"protected": p, "payload": pl, "signature": b64(tag.as_ref())});
        }
        let r = self.post(&url, Some(&payload));
        if r.status == 201 || r.status == 200 {
            self.kid = Some(r.header("location").expect("location").to_string());
        }
        r
    }

    /// Orders `names`, answers every http-01 challenge through `responder`, finalizes with a
    /// fresh P-256 CSR and downloads the chain. Returns the leaf PEM.
    fn issue(&self, site: &Site, responder: &Responder, names: &[&str]) -> String {
        let ids: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        let r = self.post(&self.url("newOrder"), Some(&json!({"identifiers": ids})));
        r.expect(201);
        let order_url = r.header("location").expect("location").to_string();
        let order = r.json();
        for z in order["authorizations"].as_array().expect("authzs") {
            let z = z.as_str().expect("url");
            let authz = self.post(z, None).json();
            if authz["status"] == "valid" {
                continue;
            }
            let ch = authz["challenges"]
                .as_array()
                .expect("challenges")
                .iter()
                .find(|c| c["type"] == "http-01")
                .expect("http-01")
                .clone();
            let token = ch["token"].as_str().expect("token");
            responder.put(token, &format!("{token}.{}", thumbprint(&self.key)));
            let r = self.post(ch["url"].as_str().expect("url"), Some(&json!({})));
            assert_eq!(
                r.json()["status"],
                "valid",
                "{}",
                String::from_utf8_lossy(&r.body)
            );
        }
        let order = self.post(&order_url, None).json();
        assert_eq!(order["status"], "ready", "{order}");
        let der = csr_der(site, names);
        let r = self.post(
            order["finalize"].as_str().expect("finalize"),
            Some(&json!({"csr": b64(&der)})),
        );
        r.expect(200);
        let order = r.json();
        assert_eq!(order["status"], "valid", "{order}");
        let r = self.post(order["certificate"].as_str().expect("certificate"), None);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/pem-certificate-chain")
        );
        let chain = String::from_utf8(r.body).expect("pem");
        assert_eq!(
            chain.matches("BEGIN CERTIFICATE").count(),
            3,
            "leaf, issuing CA, root"
        );
        first_pem(&chain)
    }
}

/// A fresh P-256 key and a DER CSR (made by openssl) naming `names` in CN and SAN.
fn csr_der(site: &Site, names: &[&str]) -> Vec<u8> {
    let dir = site.path("csr");
    std::fs::create_dir_all(&dir).expect("dir");
    let san = names
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let csr = openssl_csr(
        &dir,
        names[0],
        "ec:P-256",
        &format!("/CN={}", names[0]),
        &["-addext", &format!("subjectAltName={san}")],
    );
    let o = Command::new("openssl")
        .args(["req", "-in", s(&csr), "-outform", "DER"])
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// A tiny http-01 responder on loopback: answers `/.well-known/acme-challenge/TOKEN` with the
/// key authorization put for it, 404 otherwise.
struct Responder {
    port: u16,
    answers: Arc<Mutex<Vec<(String, String)>>>,
}

impl Responder {
    fn start() -> Responder {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let answers: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let a = answers.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut line = String::new();
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                // Drain the headers.
                let mut h = String::new();
                while r.read_line(&mut h).is_ok_and(|n| n > 2) {
                    h.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let token = path
                    .strip_prefix("/.well-known/acme-challenge/")
                    .unwrap_or("");
                let found = a
                    .lock()
                    .expect("lock")
                    .iter()
                    .find(|(t, _)| t == token)
                    .map(|(_, v)| v.clone());
                let resp = match found {
                    Some(v) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{v}",
                        v.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_string()
                    }
                };
                let _ = conn.write_all(resp.as_bytes());
                let mut rest = Vec::new();
                let _ = conn.shutdown(std::net::Shutdown::Write);
                let _ = conn.read_to_end(&mut rest);
            }
        });
        Responder { port, answers }
    }

    fn put(&self, token: &str, value: &str) {
        self.answers
            .lock()
            .expect("lock")
            .push((token.to_string(), value.to_string()));
    }
}

/// A DNS server on loopback answering TXT queries from a table (NXDOMAIN otherwise).
struct Dns {
    port: u16,
    records: Arc<Mutex<Vec<(String, String)>>>,
}

impl Dns {
    fn start() -> Dns {
        use hickory_proto::op::{Message, OpCode, ResponseCode};
        use hickory_proto::rr::rdata::TXT;
        use hickory_proto::rr::{RData, Record};
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = sock.local_addr().expect("addr").port();
        let records: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let table = records.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut resp = Message::response(q.metadata.id, OpCode::Query);
                resp.metadata.recursion_desired = q.metadata.recursion_desired;
                let mut found = false;
                for query in &q.queries {
                    let name = query.name().to_ascii().trim_end_matches('.').to_string();
                    for (_, v) in table
                        .lock()
                        .expect("lock")
                        .iter()
                        .filter(|(k, _)| *k == name)
                    {
                        found = true;
                        resp.add_answer(Record::from_rdata(
                            query.name().clone(),
                            60,
                            RData::TXT(TXT::new(vec![v.clone()])),
                        ));
                    }
                    resp.add_query(query.clone());
                }
                if !found {
                    resp.metadata.response_code = ResponseCode::NXDomain;
                }
                if let Ok(bytes) = resp.to_vec() {
                    let _ = sock.send_to(&bytes, from);
                }
            }
        });
        Dns { port, records }
    }

    fn put(&self, name: &str, value: &str) {
        self.records
            .lock()
            .expect("lock")
            .push((name.to_string(), value.to_string()));
    }
}

#[test]
fn dns01_validates_against_the_configured_server() {
    let site = acme_site();
    let dns = Dns::start();
    let (server, _) = start(
        &site,
        free_port(),
        &format!("dns_server = \"127.0.0.1:{}\"\n", dns.port),
    );
    let mut c = Client::new(&site, &server);
    assert_eq!(c.new_account(None).status, 201);
    let order = |name: &str| {
        let r = c.post(
            &c.url("newOrder"),
            Some(&json!({"identifiers": [{"type": "dns", "value": name}]})),
        );
        r.expect(201);
        let z = r.json()["authorizations"][0]
            .as_str()
            .expect("authz")
            .to_string();
        let authz = c.post(&z, None).json();
        let ch = authz["challenges"]
            .as_array()
            .expect("challenges")
            .iter()
            .find(|c| c["type"] == "dns-01")
            .expect("dns-01 offered")
            .clone();
        (r.header("location").expect("location").to_string(), ch)
    };
    let digest = |token: &str| {
        let ka = format!("{token}.{}", thumbprint(&c.key));
        b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ka.as_bytes()).as_ref())
    };
    // The right TXT value validates the name.
    let (order_url, ch) = order("dns1.fleet.test");
    dns.put("_acme-challenge.dns1.fleet.test", "unrelated");
    dns.put(
        "_acme-challenge.dns1.fleet.test",
        &digest(ch["token"].as_str().expect("token")),
    );
    let r = c.post(ch["url"].as_str().expect("url"), Some(&json!({})));
    assert_eq!(
        r.json()["status"],
        "valid",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(c.post(&order_url, None).json()["status"], "ready");
    // A CSR naming another name than the order's is badCSR, and stores nothing.
    let csr = openssl_csr(
        &site.path(""),
        "other",
        "ec:P-256",
        "/CN=other.fleet.test",
        &["-addext", "subjectAltName=DNS:other.fleet.test"],
    );
    let der = Command::new("openssl")
        .args(["req", "-in", s(&csr), "-outform", "DER"])
        .output()
        .expect("openssl")
        .stdout;
    let before = site.fingerprint();
    let fin = c.post(&order_url, None).json()["finalize"]
        .as_str()
        .expect("finalize")
        .to_string();
    let detail = c
        .post(&fin, Some(&json!({"csr": b64(&der)})))
        .problem("badCSR");
    assert!(detail.contains("other.fleet.test"), "{detail}");
    c.post(&fin, Some(&json!({"csr": "!!"}))).problem("badCSR");
    assert_eq!(
        site.fingerprint(),
        before,
        "a refused finalize stores nothing"
    );
    // A wrong value, or none at all, fails the challenge and the order with it.
    let (order_url, ch) = order("dns2.fleet.test");
    dns.put("_acme-challenge.dns2.fleet.test", &digest("another-token"));
    let r = c.post(ch["url"].as_str().expect("url"), Some(&json!({})));
    let v = r.json();
    assert_eq!(v["status"], "invalid", "{v}");
    assert_eq!(
        v["error"]["type"], "urn:ietf:params:acme:error:incorrectResponse",
        "{v}"
    );
    let o = c.post(&order_url, None).json();
    assert_eq!(o["status"], "invalid", "{o}");
    let (_, ch) = order("dns3.fleet.test");
    let v = c
        .post(ch["url"].as_str().expect("url"), Some(&json!({})))
        .json();
    assert_eq!(v["status"], "invalid", "{v}");
    server.stop();
}

/// `fleetpki acme eab --principal P`: the key id and the HMAC key.
fn eab(site: &Site, principal: &str) -> (String, Vec<u8>) {
    let out = site.ok(&["acme", "eab", "--principal", principal]);
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")))
            .unwrap_or_else(|| panic!("no {k} in {out}"))
            .to_string()
    };
    let key = URL_SAFE_NO_PAD
        .decode(field("hmac_key"))
        .expect("base64url");
    (field("kid"), key)
}

#[test]
fn eab_binds_a_principal_and_key_change_moves_the_account() {
    let site = acme_site();
    let responder = Responder::start();
    let (server, _) = start(&site, responder.port, "external_account_required = true\n");
    let mut c = Client::new(&site, &server);
    assert_eq!(c.dir["meta"]["externalAccountRequired"], true);

    // Without a binding: refused, nothing stored.
    let before = site.fingerprint();
    c.new_account(None).problem("externalAccountRequired");
    // A binding under a key id that does not exist, or with the wrong MAC key.
    let (kid, key) = eab(&site, "WEB2");
    let before_bad = site.fingerprint();
    c.new_account(Some(("eab-nope", &key)))
        .problem("unauthorized");
    c.new_account(Some((&kid, &[0u8; 32])))
        .problem("unauthorized");
    assert_eq!(
        site.fingerprint(),
        before_bad,
        "refused bindings store nothing"
    );
    assert_ne!(before, before_bad, "the EAB key itself is stored");

    let r = c.new_account(Some((&kid, &key)));
    r.expect(201);
    assert_eq!(r.json()["externalAccountBinding"]["kid"], kid.as_str());
    // The same EAB key cannot bind a second account.
    let mut other = Client::new(&site, &server);
    other
        .new_account(Some((&kid, &key)))
        .problem("unauthorized");

    // Certificates of the bound account are requested for WEB2, not the role's default SRV1.
    let leaf = c.issue(&site, &responder, &["www.fleet.test", "web2.fleet.test"]);
    check_issued(&site, &leaf);
    let shown = site.json(&["cert", "show", &serial_of_pem(&leaf)]);
    assert_eq!(shown["principal"], "WEB2", "{shown}");

    // Key change: the inner JWS by the new key over {account, oldKey}, the outer by the old.
    let new_key = p256();
    let url = c.url("keyChange");
    let kid_url = c.kid.clone().expect("kid");
    let inner = sign(
        &new_key,
        &json!({"alg": "ES256", "jwk": jwk_of(&new_key), "url": url}),
        &b64(json!({"account": kid_url, "oldKey": jwk_of(&c.key)})
            .to_string()
            .as_bytes()),
    );
    // An inner JWS naming another account is refused.
    let wrong = sign(
        &new_key,
        &json!({"alg": "ES256", "jwk": jwk_of(&new_key), "url": url}),
        &b64(
            json!({"account": "https://localhost/acme/acct/x", "oldKey": jwk_of(&c.key)})
                .to_string()
                .as_bytes(),
        ),
    );
    c.post(&url, Some(&wrong)).problem("malformed");
    let r = c.post(&url, Some(&inner));
    r.expect(200);
    // The old key no longer signs for the account; the new one does, and orders reuse the
    // authorizations already validated.
    c.post(&kid_url, None).problem("malformed");
    c.key = new_key;
    let r = c.post(&kid_url, None);
    r.expect(200);
    let leaf = c.issue(&site, &responder, &["www.fleet.test"]);
    check_issued(&site, &leaf);
    // newAccount with the new key finds the same account.
    let mut again = Client::new(&site, &server);
    again.key = p256();
    std::mem::swap(&mut again.key, &mut c.key);
    let r = again.post(
        &again.url("newAccount"),
        Some(&json!({"onlyReturnExisting": true})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("location"), Some(kid_url.as_str()));

    // Revocation by the account: the certificate shows revoked; twice is alreadyRevoked.
    let der = pem_der(&leaf);
    let payload = json!({"certificate": b64(&der), "reason": 4});
    let r = again.post(&again.url("revokeCert"), Some(&payload));
    // `again` signs with jwk (no kid): the certificate's key is not the account's: refused.
    r.problem("unauthorized");
    std::mem::swap(&mut again.key, &mut c.key);
    let r = c.post(&c.url("revokeCert"), Some(&payload));
    r.expect(200);
    c.post(&c.url("revokeCert"), Some(&payload))
        .problem("alreadyRevoked");
    let shown = site.json(&["cert", "show", &serial_of_pem(&leaf)]);
    assert_eq!(shown["revocation"]["reason"], "superseded", "{shown}");
    server.stop();
}

// ---- the same through a maintained third-party client: instant-acme ----------------------

/// The ACME problem type (without its URN prefix) of an instant-acme error; returns the detail.
#[track_caller]
fn crate_problem(e: instant_acme::Error, kind: &str) -> String {
    let instant_acme::Error::Api(p) = e else {
        panic!("not an ACME problem document: {e}")
    };
    let want = format!("urn:ietf:params:acme:error:{kind}");
    assert_eq!(p.r#type.as_deref(), Some(want.as_str()), "{p}");
    p.detail.unwrap_or_default()
}

/// The account as the server stored it, by its URL (`…/acme/acct/ID`).
fn stored_account(site: &Site, url: &str) -> fleetpki_model::acme::AcmeAccount {
    let id = url.rsplit_once("/acme/acct/").expect("account URL").1;
    let db = site.db_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        fleetpki_store::open(&db)
            .await
            .expect("open store")
            .acme_account(id)
            .await
            .expect("read account")
    })
    .unwrap_or_else(|| panic!("no stored account {id}"))
}

/// Orders `names` through instant-acme, serves each pending http-01 key authorization the crate
/// computes, finalizes with an openssl CSR and downloads the chain. No polling: this server
/// validates and issues within the request, so `ready` and `valid` are expected at once.
async fn crate_issue(
    account: &instant_acme::Account,
    site: &Site,
    responder: &Responder,
    names: &[&str],
) -> Result<String, instant_acme::Error> {
    use instant_acme::{AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus};
    let ids: Vec<Identifier> = names
        .iter()
        .map(|n| Identifier::Dns(n.to_string()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&ids)).await?;
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let mut ch = authz
            .challenge(ChallengeType::Http01)
            .expect("http-01 offered");
        responder.put(&ch.token, ch.key_authorization().as_str());
        ch.set_ready().await?;
    }
    let status = order.refresh().await?.status;
    assert_eq!(status, OrderStatus::Ready);
    order.finalize_csr(&csr_der(site, names)).await?;
    assert_eq!(order.state().status, OrderStatus::Valid);
    Ok(order
        .certificate()
        .await?
        .expect("a valid order has its chain"))
}

/// Checks a downloaded chain (leaf, issuing CA, root): the CAs are the site's, the leaf verifies
/// against the root through the downloaded intermediate, passes `check_issued`, names exactly
/// `names`, and was issued for `principal`. Returns the leaf PEM.
fn check_chain(site: &Site, chain: &str, names: &[&str], principal: &str) -> String {
    let end = "-----END CERTIFICATE-----";
    let certs: Vec<String> = chain
        .split_inclusive(end)
        .filter(|b| b.contains("BEGIN CERTIFICATE"))
        .map(|b| format!("{}\n", b.trim_start()))
        .collect();
    assert_eq!(certs.len(), 3, "leaf, issuing CA, root: {chain}");
    assert_eq!(pem_der(&certs[1]), pem_der(&site.issuing_pem()));
    assert_eq!(pem_der(&certs[2]), pem_der(&site.root_pem()));
    let leaf = certs[0].clone();
    let v = kit::openssl_verify(&site.root_pem(), Some(&certs[1]), None, &leaf).expect("verify");
    assert!(v.success(), "openssl verify: {}", v.combined());
    check_issued(site, &leaf);
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("leaf.pem");
    std::fs::write(&p, &leaf).expect("write");
    let o =
        kit::openssl(&["x509", "-in", s(&p), "-noout", "-ext", "subjectAltName"]).expect("x509");
    assert!(o.success(), "{}", o.combined());
    let mut sans: Vec<&str> = o
        .stdout
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter_map(|t| t.strip_prefix("DNS:"))
        .collect();
    sans.sort_unstable();
    let mut want = names.to_vec();
    want.sort_unstable();
    assert_eq!(sans, want, "{}", o.stdout);
    let shown = site.json(&["cert", "show", &serial_of_pem(&leaf)]);
    assert_eq!(shown["principal"], principal, "{shown}");
    assert_eq!(shown["template"], "ACME Web", "{shown}");
    leaf
}

/// instant-acme (a maintained third-party client, over HTTPS trusting only the site's root)
/// against a server that requires external account binding: a wrong MAC is refused and stores
/// nothing; the right one binds the account to the EAB key's principal (WEB2, not the role's
/// SRV1); it orders through http-01 and downloads a chain; it rolls its account key over, after
/// which the new key orders (with a fresh http-01 under the new thumbprint) and the old key is
/// refused.
#[test]
fn instant_acme_binds_by_eab_issues_and_changes_its_key() {
    use instant_acme::{Account, ExternalAccountKey, Identifier, Key, NewAccount, NewOrder};
    use rustls_pki_types::PrivateKeyDer;

    let site = acme_site();
    let responder = Responder::start();
    let (server, directory) = start(&site, responder.port, "external_account_required = true\n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let root = site.path("ca/root.pem");
    let builder = || Account::builder_with_root(&root).expect("root store");
    let new_account = NewAccount {
        contact: &["mailto:ops@fleet.test"],
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (kid, hmac) = eab(&site, "WEB2");

    // Without a binding, or with a MAC by another key under the right key id: refused, and
    // nothing stored (so the EAB key is still unbound for the right MAC below).
    let before = site.fingerprint();
    let err = rt
        .block_on(builder().create(&new_account, directory.clone(), None))
        .err()
        .expect("no binding refused");
    crate_problem(err, "externalAccountRequired");
    let wrong = ExternalAccountKey::new(kid.clone(), &[7u8; 32]);
    let err = rt
        .block_on(builder().create(&new_account, directory.clone(), Some(&wrong)))
        .err()
        .expect("a wrong EAB MAC is refused");
    let detail = crate_problem(err, "unauthorized");
    assert!(detail.contains("MAC"), "{detail}");
    assert_eq!(site.fingerprint(), before, "refused bindings store nothing");

    // The right MAC: the stored account is bound to WEB2 by this key id, under the crate's key.
    let right = ExternalAccountKey::new(kid.clone(), &hmac);
    let (mut account, old_creds) = rt
        .block_on(builder().create(&new_account, directory.clone(), Some(&right)))
        .expect("account with EAB");
    let stored = stored_account(&site, account.id());
    assert_eq!(stored.principal.as_deref(), Some("WEB2"));
    assert_eq!(stored.eab_kid.as_deref(), Some(kid.as_str()));
    assert_eq!(stored.thumbprint, account.key_thumbprint());

    // Issuance for the bound principal.
    let names = ["crate1.fleet.test", "web2.fleet.test"];
    let chain = rt
        .block_on(crate_issue(&account, &site, &responder, &names))
        .expect("issuance");
    check_chain(&site, &chain, &names, "WEB2");

    // Key change (RFC 8555 §7.3.5) by the crate: the server now holds the new key, and the
    // account keeps its binding.
    let old_thumbprint = account.key_thumbprint().to_string();
    let old_pkcs8 = old_creds.private_key().clone_key();
    let new_creds = rt.block_on(account.update_key()).expect("key change");
    assert_ne!(account.key_thumbprint(), old_thumbprint);
    let stored = stored_account(&site, account.id());
    assert_eq!(stored.thumbprint, account.key_thumbprint());
    assert_eq!(stored.principal.as_deref(), Some("WEB2"));
    assert_eq!(stored.eab_kid.as_deref(), Some(kid.as_str()));

    // (a) The new key orders a name not validated before: its http-01 answer carries the new
    // key's thumbprint, so the server validated against the new key too.
    let chain = rt
        .block_on(crate_issue(
            &account,
            &site,
            &responder,
            &["crate2.fleet.test"],
        ))
        .expect("issuance with the new key");
    check_chain(&site, &chain, &["crate2.fleet.test"], "WEB2");

    // (b) The old key, under the same account URL, no longer signs for the account.
    let old = rt
        .block_on(builder().from_credentials(old_creds))
        .expect("restore the old credentials");
    assert_eq!(old.id(), account.id());
    let order = [Identifier::Dns("crate3.fleet.test".into())];
    let before = site.fingerprint();
    let err = rt
        .block_on(old.new_order(&NewOrder::new(&order)))
        .err()
        .expect("the old key is refused");
    let detail = crate_problem(err, "malformed");
    assert!(detail.contains("signature"), "{detail}");
    assert_eq!(site.fingerprint(), before, "a refused order stores nothing");
    // Looking the account up by key (newAccount with onlyReturnExisting): the old key finds
    // none, the new key finds this account.
    let old_key = Key::from_pkcs8_der(old_pkcs8.clone_key()).expect("old key");
    let err = rt
        .block_on(builder().from_key(
            (old_key, PrivateKeyDer::Pkcs8(old_pkcs8)),
            directory.clone(),
        ))
        .err()
        .expect("no account for the old key");
    crate_problem(err, "accountDoesNotExist");
    let new_pkcs8 = new_creds.private_key().clone_key();
    let new_key = Key::from_pkcs8_der(new_pkcs8.clone_key()).expect("new key");
    let (found, _) = rt
        .block_on(builder().from_key(
            (new_key, PrivateKeyDer::Pkcs8(new_pkcs8)),
            directory.clone(),
        ))
        .expect("the new key finds the account");
    assert_eq!(found.id(), account.id());
    // The crate's pooled HTTP/2 connections run on `rt`, idle outside `block_on`, so they
    // would not answer the server's GOAWAY and its stop would wait out the drain deadline:
    // close them (their tasks end with the runtime) first.
    drop((account, old, found));
    drop(rt);
    server.stop();
}

/// What this server changes takes effect on the next request, though it keeps accounts and
/// reusable authorizations in memory: a deactivated authorization is not reused, a deactivated
/// account signs nothing more.
#[test]
fn deactivations_take_effect_at_once() {
    let site = acme_site();
    let responder = Responder::start();
    let (server, _) = start(&site, responder.port, "");
    let mut c = Client::new(&site, &server);
    let r = c.new_account(None);
    r.expect(201);
    let leaf = c.issue(&site, &responder, &["d.fleet.test"]);
    check_issued(&site, &leaf);
    let order = json!({"identifiers": [{"type": "dns", "value": "d.fleet.test"}]});
    // Reused: the next order is ready at once, on the same authorization.
    let r = c.post(&c.url("newOrder"), Some(&order));
    r.expect(201);
    let o = r.json();
    assert_eq!(o["status"], "ready", "{o}");
    let authz = o["authorizations"][0].as_str().expect("authz").to_string();
    let r = c.post(&authz, Some(&json!({"status": "deactivated"})));
    r.expect(200);
    assert_eq!(r.json()["status"], "deactivated");
    let r = c.post(&c.url("newOrder"), Some(&order));
    r.expect(201);
    let o = r.json();
    assert_eq!(
        o["status"], "pending",
        "a deactivated authorization is not reused: {o}"
    );
    assert_ne!(o["authorizations"][0], authz.as_str(), "{o}");

    let kid = c.kid.clone().expect("kid");
    let r = c.post(&kid, Some(&json!({"status": "deactivated"})));
    r.expect(200);
    assert_eq!(r.json()["status"], "deactivated");
    let detail = c
        .post(&c.url("newOrder"), Some(&order))
        .problem("unauthorized");
    assert!(detail.contains("deactivated"), "{detail}");
    c.post(&kid, None).problem("unauthorized");
    server.stop();
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("pem")
}

#[test]
fn orders_outside_the_suffixes_and_malformed_requests_are_refused() {
    let site = acme_site();
    let responder = Responder::start();
    let (server, _) = start(&site, responder.port, "");
    let mut c = Client::new(&site, &server);
    let r = c.new_account(None);
    r.expect(201);
    let url = c.url("newOrder");
    let before = site.fingerprint();
    for (name, kind) in [
        ("www.example.com", "rejectedIdentifier"),
        ("fleet.test.evil.com", "rejectedIdentifier"),
        ("*.fleet.test", "rejectedIdentifier"),
        ("localhost", "rejectedIdentifier"),
    ] {
        let r = c.post(
            &url,
            Some(&json!({"identifiers": [{"type": "dns", "value": name}]})),
        );
        let detail = r.problem(kind);
        assert!(detail.contains("identifiers"), "{detail}");
    }
    c.post(
        &url,
        Some(&json!({"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})),
    )
    .problem("unsupportedIdentifier");
    c.post(&url, Some(&json!({"identifiers": []})))
        .problem("malformed");
    assert_eq!(site.fingerprint(), before, "refused orders store nothing");

    // The JWS catalogue.
    let nonce = c.nonce();
    let good = |payload: &Value, nonce: &str| {
        sign(
            &c.key,
            &c.protected(&url, nonce),
            &b64(payload.to_string().as_bytes()),
        )
    };
    let order = json!({"identifiers": [{"type": "dns", "value": "a.fleet.test"}]});
    let replayed = good(&order, &nonce);
    // The first use of the nonce orders (stored); keep the fingerprint after it.
    let r = c.raw(&url, replayed.to_string().as_bytes());
    r.expect(201);
    let before = site.fingerprint();
    c.raw(&url, replayed.to_string().as_bytes())
        .problem("badNonce");
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not json", b"{".to_vec(), "malformed"),
        ("empty", b"".to_vec(), "malformed"),
        (
            "made-up nonce",
            good(&order, "AAAAAAAAAAAAAAAAAAAAAA")
                .to_string()
                .into_bytes(),
            "badNonce",
        ),
    ];
    let wrong_url = c.protected("https://localhost:1/acme/new-order", &c.nonce());
    let tampered = {
        let mut v = good(&order, &c.nonce());
        v["payload"] = json!(b64(
            b"{\"identifiers\":[{\"type\":\"dns\",\"value\":\"b.fleet.test\"}]}"
        ));
        v
    };
    cases.push((
        "tampered payload",
        tampered.to_string().into_bytes(),
        "malformed",
    ));
    cases.push((
        "wrong url",
        sign(&c.key, &wrong_url, "").to_string().into_bytes(),
        "unauthorized",
    ));
    let mut none = c.protected(&url, &c.nonce());
    none["alg"] = json!("none");
    cases.push((
        "alg none",
        sign(&c.key, &none, "").to_string().into_bytes(),
        "badSignatureAlgorithm",
    ));
    let mut unknown = c.protected(&url, &c.nonce());
    unknown["kid"] = json!(format!("https://localhost:{}/acme/acct/nobody", c.port));
    cases.push((
        "unknown kid",
        sign(&c.key, &unknown, "e30").to_string().into_bytes(),
        "accountDoesNotExist",
    ));
    let mut both = c.protected(&url, &c.nonce());
    both["jwk"] = jwk_of(&c.key);
    cases.push((
        "jwk and kid",
        sign(&c.key, &both, "e30").to_string().into_bytes(),
        "malformed",
    ));
    let mut general = good(&order, &c.nonce());
    general["signatures"] = json!([]);
    cases.push((
        "general serialization",
        general.to_string().into_bytes(),
        "malformed",
    ));
    for (name, body, kind) in &cases {
        let r = c.raw(&url, body);
        let detail = r.problem(kind);
        assert!(!detail.is_empty(), "{name}");
        assert!(
            r.header("replay-nonce").is_some(),
            "{name}: a fresh nonce with every error"
        );
    }
    // The wrong media type.
    let r = curl(
        &c.root,
        c.port,
        "POST",
        &url,
        Some(good(&order, &c.nonce()).to_string().as_bytes()),
        "application/json",
    );
    r.problem("malformed");
    // A wrong method on an existing resource: 405, still a problem document with a nonce, and
    // its detail names the methods the Allow header lists.
    for (method, path) in [
        ("GET", "/acme/new-order"),
        ("PUT", "/acme/new-account"),
        ("DELETE", "/acme/revoke-cert"),
        ("POST", "/acme/directory"),
    ] {
        let url = format!("https://localhost:{}{path}", c.port);
        let r = curl(&c.root, c.port, method, &url, None, "");
        r.expect(405);
        let detail = r.problem("malformed");
        assert!(
            detail.contains(&format!("method {method} is not allowed on {path}")),
            "{detail}"
        );
        let allow = r.header("allow").expect("Allow header");
        let allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
        assert_eq!(
            allowed.contains(&"POST"),
            path != "/acme/directory",
            "{path}: {allow}"
        );
        for m in allowed {
            assert!(detail.contains(m), "{path}: {detail} (Allow: {allow})");
        }
        assert!(r.header("replay-nonce").is_some(), "{method} {path}");
    }
    assert_eq!(site.fingerprint(), before, "refused requests store nothing");
    // Finalizing an order that is not ready.
    let order_url = r_location(&c, &order);
    let o = c.post(&order_url, None).json();
    let r = c.post(
        o["finalize"].as_str().expect("finalize"),
        Some(&json!({"csr": "AAAA"})),
    );
    r.problem("orderNotReady");
    server.stop();
}

/// Creates an order and returns its URL.
fn r_location(c: &Client, order: &Value) -> String {
    let r = c.post(&c.url("newOrder"), Some(order));
    assert_eq!(r.status, 201);
    r.header("location").expect("location").to_string()
}

#[test]
fn config_errors_name_the_key() {
    let site = acme_site();
    for (extra, key) in [
        (
            "template = \"Workstation\"\nprincipal = \"SRV1\"\n",
            "roles.acme.template",
        ),
        (
            "template = \"Nope\"\nprincipal = \"SRV1\"\n",
            "roles.acme.template",
        ),
        (
            "template = \"ACME Web\"\nprincipal = \"NOBODY\"\n",
            "roles.acme.principal",
        ),
        ("template = \"ACME Web\"\n", "roles.acme.principal"),
        // WebServer takes any DNS name: nothing would bound what an account can order.
        (
            "template = \"WebServer\"\nprincipal = \"SRV1\"\n",
            "permitted DNS suffixes",
        ),
    ] {
        let cfg = site.path("bad.toml");
        std::fs::write(&cfg, format!("{OTHER_ROLES_OFF}[roles.acme]\n{extra}")).expect("cfg");
        let err = site.fails(&["serve", "--config", s(&cfg)]);
        assert!(err.contains(key), "{extra}: {err}");
    }
}

/// POSTs `payload` to `url` in a JWS carrying `key` itself as `jwk` (not an account's kid).
fn post_with_jwk(c: &Client, key: &EcdsaKeyPair, url: &str, payload: &Value) -> Resp {
    let protected = json!({"alg": "ES256", "nonce": c.nonce(), "url": url, "jwk": jwk_of(key)});
    let jws = sign(key, &protected, &b64(payload.to_string().as_bytes()));
    c.raw(url, jws.to_string().as_bytes())
}

/// revokeCert signed with the certificate's own key (RFC 8555 §7.6), not the account's: only
/// that key, or the ordering account, may revoke; another account or an unrelated key is
/// refused as unauthorized and revokes nothing.
#[test]
fn revocation_by_the_certificates_own_key() {
    let site = acme_site();
    let responder = Responder::start();
    let (server, _) = start(&site, responder.port, "");
    let mut c = Client::new(&site, &server);
    c.new_account(None).expect(201);
    let leaf = c.issue(&site, &responder, &["rk.fleet.test"]);
    let serial = serial_of_pem(&leaf);
    let revoke_url = c.url("revokeCert");
    let payload = json!({"certificate": b64(&pem_der(&leaf)), "reason": 1});
    let not_revoked = |why: &str| {
        let shown = site.json(&["cert", "show", &serial]);
        assert!(shown["revocation"].is_null(), "{why}: {shown}");
    };

    // A key that is neither the account's nor the certificate's.
    let stranger = p256();
    let detail = post_with_jwk(&c, &stranger, &revoke_url, &payload).problem("unauthorized");
    assert!(detail.contains("key of the certificate"), "{detail}");
    not_revoked("an unrelated key");
    // Another account, by its kid: it did not order the certificate.
    let mut other = Client::new(&site, &server);
    other.new_account(None).expect(201);
    let detail = other
        .post(&revoke_url, Some(&payload))
        .problem("unauthorized");
    assert!(detail.contains("not issued to this account"), "{detail}");
    not_revoked("another account");

    // The certificate's key: the P-256 key `csr_der` made with openssl for the CSR.
    let key_pem = site.path("csr").join("rk.fleet.test.key");
    let o = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
        .arg(&key_pem)
        .output()
        .expect("openssl pkcs8");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cert_key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &o.stdout).expect("pkcs8");
    post_with_jwk(&c, &cert_key, &revoke_url, &payload).expect(200);
    let shown = site.json(&["cert", "show", &serial]);
    assert_eq!(shown["revocation"]["reason"], "keyCompromise", "{shown}");
    // Once is enough.
    post_with_jwk(&c, &cert_key, &revoke_url, &payload).problem("alreadyRevoked");
    server.stop();
}
