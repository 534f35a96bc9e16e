//! The `api` role over real HTTPS (HTTP/2, as curl negotiates it), with curl as the client,
//! loopback only: one-time token enrollment (lint-clean, single use, bound to its principal
//! and template, expiry, approval and polling), renewal over mutual TLS, role separation
//! (auditor, cert-manager, ca-admin; by API token or admin client certificate), bad input at
//! every endpoint that takes a body (a problem+json `FIELD: RULE`, the database unchanged), the
//! administration the CLI does (site, directory, templates, submit for a principal, clients,
//! CRLs, status messages, audit verification, ACME EAB keys) checked through the CLI, and
//! `/openapi.json` covering every route and passing openapi-spec-validator.

mod common;
use common::{Site, api_token, bin, openssl_csr, s};
use fleetpki_testkit as kit;
use serde_json::{Value, json};
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Every route of `roles::api::router()` with its methods. The test below also reads the
/// paths out of api.rs, so a new route cannot be missing here.
const ROUTES: &[(&str, &[&str])] = &[
    ("/openapi.json", &["get"]),
    ("/api/v1/ca/chain", &["get"]),
    ("/api/v1/ca/crl", &["get"]),
    ("/api/v1/site", &["get"]),
    ("/api/v1/enroll", &["post"]),
    ("/api/v1/renew", &["post"]),
    ("/api/v1/requests", &["get", "post"]),
    ("/api/v1/requests/{id}", &["get"]),
    ("/api/v1/requests/{id}/approve", &["post"]),
    ("/api/v1/requests/{id}/deny", &["post"]),
    ("/api/v1/certificates", &["get"]),
    ("/api/v1/certificates/{serial}", &["get"]),
    ("/api/v1/certificates/{serial}/revoke", &["post"]),
    ("/api/v1/crl/publish", &["post"]),
    ("/api/v1/tokens", &["post"]),
    ("/api/v1/templates", &["get"]),
    ("/api/v1/templates/{name}", &["get", "patch"]),
    ("/api/v1/templates/{name}/publish", &["post"]),
    ("/api/v1/templates/{name}/bump", &["post"]),
    ("/api/v1/templates/{name}/duplicate", &["post"]),
    ("/api/v1/templates/{name}/grant", &["post"]),
    ("/api/v1/templates/{name}/revoke-grant", &["post"]),
    ("/api/v1/templates/{name}/history", &["get"]),
    ("/api/v1/directory", &["get"]),
    ("/api/v1/directory/principals", &["post"]),
    ("/api/v1/directory/groups", &["post"]),
    ("/api/v1/directory/groups/{group}/members", &["post"]),
    ("/api/v1/directory/import", &["post"]),
    ("/api/v1/clients", &["get"]),
    ("/api/v1/clients/{name}/{decision}", &["post"]),
    ("/api/v1/audit", &["get"]),
    ("/api/v1/audit/verify", &["get"]),
    ("/api/v1/status", &["get"]),
    ("/api/v1/acme/eab", &["post"]),
];

/// The site every test starts from: two-tier (base URL http://pki.fleet.test: pkilint refuses
/// `localhost` in CDP and AIA URIs; the server certificate names `localhost` through
/// `[tls] intranet_fqdn`), PC1 in Workstations with Enroll on
/// Workstation and on "Approved Workstation" (which needs a cert-manager's approval), SRV1 in
/// Servers (no Enroll on either), ADM1 a workstation that is also in `cert-managers`.
fn site() -> Site {
    let site = common::admin_site();
    site.ok(&["directory", "add-group", "Servers"]);
    site.ok(&[
        "directory",
        "add-computer",
        "SRV1",
        "--dns",
        "srv1.fleet.test",
        "--group",
        "Servers",
    ]);
    site
}

/// The three admin API tokens every test configures.
struct Tokens {
    auditor: String,
    manager: String,
    admin: String,
    config: String,
}

fn tokens(site: &Site) -> Tokens {
    let (auditor, a) = api_token(site, "audit", "auditor");
    let (manager, m) = api_token(site, "ops", "cert-manager");
    let (admin, c) = api_token(site, "tmpl", "ca-admin");
    Tokens {
        auditor,
        manager,
        admin,
        config: format!("{a}{m}{c}"),
    }
}

/// `fleetpki token create`: the one-time enrollment token it prints.
fn enroll_token(site: &Site, principal: &str, template: Option<&str>) -> String {
    let mut args = vec![
        "token",
        "create",
        "--principal",
        principal,
        "--expires",
        "1h",
    ];
    if let Some(t) = template {
        args.extend(["--template", t]);
    }
    let t = site.ok(&args).trim().to_string();
    assert!(t.contains('.'), "{t}");
    t
}

/// Moves a token's expiry to its creation time: it has expired, without waiting.
fn expire_token(site: &Site, token: &str) {
    let id = token.split_once('.').expect("ID.SECRET").0.to_string();
    let url = site.db_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
        let r = sqlx::query("UPDATE enroll_tokens SET expires_at = created_at WHERE id = $1")
            .bind(&id)
            .execute(&mut c)
            .await
            .expect("expire");
        assert_eq!(r.rows_affected(), 1);
    });
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fresh P-256 key and CSR (openssl); returns the CSR PEM and the key's path.
fn csr(site: &Site, stem: &str) -> (String, PathBuf) {
    let p = openssl_csr(site.dir.path(), stem, "ec:P-256", "/CN=ignored", &[]);
    (read(&p), site.path(&format!("{stem}.key")))
}

/// How a request authenticates.
enum Auth<'a> {
    Anonymous,
    /// `Authorization: Bearer …` (API token `NAME:SECRET` or enrollment token `ID.SECRET`).
    Bearer(&'a str),
    /// A TLS client certificate and its key (PEM files).
    Cert(&'a Path, &'a Path),
    /// Any other `Authorization` header value.
    Header(&'a str),
}

/// An HTTP response as curl saw it.
struct Resp {
    status: u16,
    content_type: String,
    body: String,
}

impl fmt::Display for Resp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.content_type, self.body)
    }
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self}"))
    }

    /// A JSON answer with this status (the response in the message otherwise).
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{self}");
        assert_eq!(self.content_type, "application/json", "{self}");
        self.json()
    }

    /// A refusal: `status`, an RFC 9457 problem document whose `field` is `field` and whose
    /// `detail` reads `FIELD: RULE`. Returns the rule.
    fn problem(&self, status: u16, field: &str) -> String {
        assert_eq!(self.status, status, "{self}");
        assert_eq!(self.content_type, "application/problem+json", "{self}");
        let v = self.json();
        assert_eq!(v["status"], status, "{self}");
        assert_eq!(v["field"], field, "{self}");
        let detail = v["detail"].as_str().expect("detail");
        let rule = detail
            .strip_prefix(&format!("{field}: "))
            .unwrap_or_else(|| panic!("detail does not read `{field}: RULE`: {self}"));
        assert!(!rule.trim().is_empty(), "empty rule: {self}");
        rule.to_string()
    }
}

/// `fleetpki serve` with only the api role (`max_body_bytes = 4096`) and a site-issued server
/// certificate for `localhost`, called over HTTPS at `https://localhost:PORT` (resolved to
/// 127.0.0.1) with the site root as the only trust anchor.
struct Api {
    child: Child,
    port: u16,
    root: PathBuf,
}

impl Api {
    fn start(site: &Site, extra_config: &str) -> Api {
        let cfg = site.path("serve.toml");
        std::fs::write(
            &cfg,
            format!(
                "[tls]\nintranet_fqdn = \"localhost\"\n\
                 [roles.crl]\nenabled = false\n[roles.management-point]\nenabled = false\n\
                 [roles.ocsp]\nenabled = false\n[roles.fallback-status-point]\nenabled = false\n\
                 [roles.api]\nmax_body_bytes = 4096\n{extra_config}"
            ),
        )
        .expect("config");
        let mut child = bin()
            .env("FLEETPKI_DIR", site.dir.path())
            .args(["serve", "--config", s(&cfg)])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn serve");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).expect("line");
        let url = line
            .trim()
            .strip_prefix("api listening on https://127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected line: {line:?}"));
        let port = url.parse().expect("port");
        Api {
            child,
            port,
            root: site.path("ca/root.pem"),
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        auth: &Auth,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Resp {
        let url = format!("https://localhost:{}{path}", self.port);
        let resolve = format!("localhost:{}:127.0.0.1", self.port);
        let mut args: Vec<String> = [
            "-sS",
            "--cacert",
            s(&self.root),
            "--resolve",
            &resolve,
            "-X",
            method,
            "-H",
            "Expect:",
            "-w",
            "\n%{http_version} %{http_code} %{content_type}",
        ]
        .map(String::from)
        .to_vec();
        match auth {
            Auth::Anonymous => {}
            Auth::Bearer(t) => args.extend(["-H".into(), format!("Authorization: Bearer {t}")]),
            Auth::Header(h) => args.extend(["-H".into(), format!("Authorization: {h}")]),
            Auth::Cert(cert, key) => args.extend([
                "--cert".into(),
                s(cert).into(),
                "--key".into(),
                s(key).into(),
            ]),
        }
        if body.is_some() {
            args.extend(["--data-binary".into(), "@-".into()]);
            args.extend([
                "-H".into(),
                format!("Content-Type:{}", content_type.unwrap_or("")),
            ]);
        }
        args.push(url);
        let mut child = Command::new("curl")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("curl");
        {
            let mut stdin = child.stdin.take().expect("stdin");
            if let Some(b) = body {
                stdin.write_all(b).expect("send body");
            }
        }
        let o = child.wait_with_output().expect("curl");
        let out = String::from_utf8(o.stdout).expect("utf8");
        assert!(
            o.status.success(),
            "curl {args:?}: {}\n{out}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (body, w) = out.rsplit_once('\n').expect("-w line");
        let mut w = w.splitn(3, ' ');
        let (version, code, ctype) = (w.next(), w.next(), w.next().unwrap_or(""));
        // HTTP/2, as curl negotiates it: refusals must not be early answers it loses.
        assert_eq!(version, Some("2"), "{args:?}: {out}");
        let code = code.expect("status");
        Resp {
            status: code.parse().expect("status"),
            content_type: ctype.to_string(),
            body: body.to_string(),
        }
    }

    fn get(&self, path: &str, auth: &Auth) -> Resp {
        self.call("GET", path, auth, None, None)
    }

    /// POST (or `method`) with a JSON body.
    fn send(&self, method: &str, path: &str, auth: &Auth, body: &Value) -> Resp {
        self.call(
            method,
            path,
            auth,
            Some("application/json"),
            Some(body.to_string().as_bytes()),
        )
    }

    fn post(&self, path: &str, auth: &Auth, body: &Value) -> Resp {
        self.send("POST", path, auth, body)
    }
}

impl Drop for Api {
    /// A failed assertion must not leave the server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request_count(site: &Site) -> usize {
    site.json(&["request", "list"])
        .as_array()
        .expect("requests")
        .len()
}

/// The serial of a PEM certificate file (lower-case hex, as the inventory prints it).
fn serial_of(cert: &Path) -> String {
    let o = kit::openssl(&["x509", "-in", s(cert), "-noout", "-serial"]).expect("x509");
    assert!(o.success(), "{}", o.combined());
    o.stdout
        .trim()
        .strip_prefix("serial=")
        .expect("serial=")
        .to_ascii_lowercase()
}

fn issued(v: &Value) -> (String, String) {
    assert_eq!(v["status"], "issued", "{v}");
    (
        v["serial"].as_str().expect("serial").to_string(),
        v["certificate"].as_str().expect("certificate").to_string(),
    )
}

#[test]
fn token_enrollment_is_single_use_bound_and_lint_clean() {
    let site = site();
    let t = tokens(&site);
    let api = Api::start(&site, &t.config);

    // A token for PC1 and Workstation: 201 with the certificate and the chain.
    let token = enroll_token(&site, "PC1", Some("Workstation"));
    let (pem, _) = csr(&site, "pc1");
    let r = api.post(
        "/api/v1/enroll",
        &Auth::Bearer(&token),
        &json!({ "template": "Workstation", "csr": pem }),
    );
    let v = r.expect(201);
    let (serial, leaf) = issued(&v);
    let chain = v["chain"].as_str().expect("chain");
    assert!(chain.contains(site.issuing_pem().trim()), "{v}");
    for untrusted in [site.issuing_pem(), chain.to_string()] {
        let out = kit::openssl_verify(&site.root_pem(), Some(&untrusted), None, &leaf)
            .expect("openssl verify");
        assert!(out.success(), "openssl verify: {}", out.combined());
    }
    if kit::tool(kit::LINT_PKIX_CERT).is_some() {
        let findings = kit::pkilint_cert(&leaf).expect("pkilint");
        assert!(findings.is_empty(), "pkilint findings: {findings:#?}");
    }
    let shown = site.json(&["cert", "show", &serial]);
    assert_eq!(shown["principal"], "PC1", "{shown}");
    assert_eq!(shown["template"], "Workstation", "{shown}");

    // Replayed: 401, and nothing stored.
    let requests = request_count(&site);
    let before = site.fingerprint();
    let (pem2, _) = csr(&site, "pc1-again");
    let body = json!({ "template": "Workstation", "csr": pem2 });
    let rule = api
        .post("/api/v1/enroll", &Auth::Bearer(&token), &body)
        .problem(401, "token");
    assert_eq!(rule, "this one-time token has already been used");
    assert_eq!(site.fingerprint(), before, "a replay stores nothing");
    assert_eq!(request_count(&site), requests);

    // A token for another template is refused, and not used up by the refusal.
    let approval_token = enroll_token(&site, "PC1", Some("Approved Workstation"));
    let before = site.fingerprint();
    let rule = api
        .post("/api/v1/enroll", &Auth::Bearer(&approval_token), &body)
        .problem(403, "template");
    assert!(rule.contains("this token is for template"), "{rule}");
    assert_eq!(site.fingerprint(), before);

    // A token for a principal without Enroll on the template: 403 naming the principal.
    let srv_token = enroll_token(&site, "SRV1", None);
    let before = site.fingerprint();
    let rule = api
        .post("/api/v1/enroll", &Auth::Bearer(&srv_token), &body)
        .problem(403, "principal");
    assert!(rule.contains("holds no Enroll permission"), "{rule}");
    assert_eq!(site.fingerprint(), before);

    // An expired token (its expiry moved into the past in the database).
    let old = enroll_token(&site, "PC1", None);
    expire_token(&site, &old);
    let before = site.fingerprint();
    let rule = api
        .post("/api/v1/enroll", &Auth::Bearer(&old), &body)
        .problem(401, "token");
    assert!(rule.starts_with("expired at "), "{rule}");
    // A token nobody issued, and a malformed one.
    let forged = format!("{}.{}", old.split_once('.').unwrap().0, "00".repeat(24));
    api.post("/api/v1/enroll", &Auth::Bearer(&forged), &body)
        .problem(401, "token");
    api.post("/api/v1/enroll", &Auth::Bearer("no-dot-here"), &body)
        .problem(401, "token");
    api.post("/api/v1/enroll", &Auth::Anonymous, &body)
        .problem(401, "authorization");
    assert_eq!(site.fingerprint(), before);

    // Approval: 202 pending; the token's holder polls; a cert-manager approves; the poll
    // then returns the certificate.
    let (pem3, _) = csr(&site, "pc1-approval");
    let r = api.post(
        "/api/v1/enroll",
        &Auth::Bearer(&approval_token),
        &json!({ "template": "Approved Workstation", "csr": pem3 }),
    );
    let v = r.expect(202);
    assert_eq!(v["status"], "pending", "{v}");
    let id = v["request_id"].as_i64().expect("request_id");
    let poll = format!("/api/v1/requests/{id}");
    let v = api.get(&poll, &Auth::Bearer(&approval_token)).expect(200);
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(v["principal"], "PC1", "{v}");
    // Nobody else's token, and nobody anonymous, reads it.
    api.get(&poll, &Auth::Bearer(&srv_token))
        .problem(401, "authorization");
    api.get(&poll, &Auth::Anonymous)
        .problem(401, "authorization");

    let approved = api
        .post(
            &format!("{poll}/approve"),
            &Auth::Bearer(&t.manager),
            &json!({}),
        )
        .expect(201);
    let (approved_serial, approved_leaf) = issued(&approved);
    let v = api.get(&poll, &Auth::Bearer(&approval_token)).expect(200);
    let (polled_serial, polled_leaf) = issued(&v);
    assert_eq!(polled_serial, approved_serial);
    assert_eq!(polled_leaf, approved_leaf);
    let out = kit::openssl_verify(
        &site.root_pem(),
        Some(&site.issuing_pem()),
        None,
        &polled_leaf,
    )
    .expect("openssl verify");
    assert!(out.success(), "openssl verify: {}", out.combined());
    let shown = site.json(&["cert", "show", &polled_serial]);
    assert_eq!(shown["principal"], "PC1", "{shown}");
    // The token is spent: it polls, but does not enroll again.
    let (pem4, _) = csr(&site, "pc1-approval-again");
    api.post(
        "/api/v1/enroll",
        &Auth::Bearer(&approval_token),
        &json!({ "template": "Approved Workstation", "csr": pem4 }),
    )
    .problem(401, "token");
}

#[test]
fn renewal_over_mutual_tls_keeps_principal_and_template() {
    let site = site();
    let (manager, config) = api_token(&site, "ops", "cert-manager");
    let api = Api::start(&site, &config);
    let d = site.dir.path();
    let first = openssl_csr(d, "pc1", "ec:P-256", "/CN=ignored", &[]);
    let cert = site.issue("Workstation", "PC1", &first, "pc1.pem");
    let key = site.path("pc1.key");
    let old = site.json(&["cert", "show", &serial_of(&cert)]);

    let (pem, new_key) = csr(&site, "pc1-renewed");
    let body = json!({ "csr": pem });
    let v = api
        .post("/api/v1/renew", &Auth::Cert(&cert, &key), &body)
        .expect(201);
    let (serial, leaf) = issued(&v);
    assert_ne!(serial, old["serial"].as_str().expect("serial"));
    let new = site.json(&["cert", "show", &serial]);
    for field in ["principal", "template", "subject", "sans"] {
        assert_eq!(new[field], old[field], "{field}: {new} vs {old}");
    }
    assert_eq!(new["principal"], "PC1");
    assert_eq!(new["template"], "Workstation");
    // The new certificate carries the new key.
    let leaf_path = site.path("renewed.pem");
    std::fs::write(&leaf_path, &leaf).expect("write");
    let cert_key = kit::openssl(&["x509", "-in", s(&leaf_path), "-noout", "-pubkey"])
        .expect("x509")
        .stdout;
    let csr_key = kit::openssl(&["pkey", "-in", s(&new_key), "-pubout"])
        .expect("pkey")
        .stdout;
    assert_eq!(cert_key, csr_key);
    let out = kit::openssl_verify(&site.root_pem(), Some(&site.issuing_pem()), None, &leaf)
        .expect("openssl verify");
    assert!(out.success(), "openssl verify: {}", out.combined());

    // Without a client certificate (even with an admin token): 401, nothing stored.
    let before = site.fingerprint();
    let (pem, _) = csr(&site, "pc1-anonymous");
    let body = json!({ "csr": pem });
    for auth in [Auth::Anonymous, Auth::Bearer(&manager)] {
        let rule = api
            .post("/api/v1/renew", &auth, &body)
            .problem(401, "client certificate");
        assert!(rule.contains("current certificate"), "{rule}");
    }
    assert_eq!(site.fingerprint(), before);
}

#[test]
fn roles_are_separated() {
    let site = site();
    let t = tokens(&site);
    let d = site.dir.path();
    // PC1's certificates a, b, c (serials in that order).
    let mut serial_list = Vec::new();
    for stem in ["a", "b", "c"] {
        let c = openssl_csr(d, stem, "ec:P-256", "/CN=ignored", &[]);
        let out = site.issue("Workstation", "PC1", &c, &format!("{stem}.pem"));
        serial_list.push(serial_of(&out));
    }
    let adm_csr = openssl_csr(d, "adm1", "ec:P-256", "/CN=ignored", &[]);
    let adm_cert = site.issue("Workstation", "ADM1", &adm_csr, "adm1.pem");
    let adm_key = site.path("adm1.key");
    let pc_cert = site.path("a.pem");
    let pending_token = enroll_token(&site, "PC1", Some("Approved Workstation"));
    let api = Api::start(&site, &t.config);

    let (pem, _) = csr(&site, "pending");
    let pending = api
        .post(
            "/api/v1/enroll",
            &Auth::Bearer(&pending_token),
            &json!({ "template": "Approved Workstation", "csr": pem }),
        )
        .expect(202)["request_id"]
        .as_i64()
        .expect("id");

    let auditor = Auth::Bearer(&t.auditor);
    let manager = Auth::Bearer(&t.manager);
    let admin = Auth::Bearer(&t.admin);
    let revoke = |serial: &str| format!("/api/v1/certificates/{serial}/revoke");
    let reason = json!({ "reason": "keyCompromise" });
    let template = "/api/v1/templates/Approved%20Workstation";

    // Auditor: reads certificates, requests, templates and the audit log; changes nothing.
    let list = api.get("/api/v1/certificates", &auditor).expect(200);
    let listed: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["serial"].as_str().expect("serial"))
        .collect();
    for s in &serial_list {
        assert!(listed.contains(&s.as_str()), "{s} not in {list}");
    }
    let audit = api.get("/api/v1/audit?limit=1000", &auditor).expect(200);
    assert!(
        audit
            .as_array()
            .expect("audit")
            .iter()
            .any(|e| e.to_string().contains("cert.issue")),
        "{audit}"
    );
    api.get("/api/v1/requests?status=pending", &auditor)
        .expect(200);
    api.get(template, &auditor).expect(200);
    let before = site.fingerprint();
    for (method, path, body) in [
        ("POST", revoke(&serial_list[0]), reason.clone()),
        (
            "POST",
            format!("/api/v1/requests/{pending}/approve"),
            json!({}),
        ),
        ("POST", "/api/v1/crl/publish".to_string(), json!({})),
        ("PATCH", template.to_string(), json!({ "validity": "90d" })),
        ("POST", format!("{template}/bump"), json!({})),
        (
            "POST",
            "/api/v1/tokens".to_string(),
            json!({ "principal": "PC1" }),
        ),
    ] {
        let rule = api
            .send(method, &path, &auditor, &body)
            .problem(403, "authorization");
        assert!(
            rule.contains("`token:audit` does not hold the"),
            "{method} {path}: {rule}"
        );
    }
    assert_eq!(site.fingerprint(), before, "the auditor changed nothing");

    // Cert-manager: revokes (the inventory shows it) and publishes a CRL that lists it; may not
    // edit templates.
    let v = api
        .post(&revoke(&serial_list[0]), &manager, &reason)
        .expect(200);
    assert_eq!(v["reason"], "keyCompromise", "{v}");
    let shown = site.json(&["cert", "show", &serial_list[0]]);
    assert!(
        shown.to_string().contains("keyCompromise"),
        "cert show: {shown}"
    );
    let revoked = site.json(&["cert", "list", "--revoked"]);
    assert_eq!(revoked.as_array().expect("list").len(), 1, "{revoked}");
    assert_eq!(revoked[0]["serial"], serial_list[0].as_str());
    let crl = api
        .post("/api/v1/crl/publish", &manager, &json!({}))
        .expect(200);
    assert_eq!(crl["issuer"], "issuing", "{crl}");
    let crl_der = site.path("api.crl");
    let o = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--cacert",
            s(&api.root),
            "--resolve",
            &format!("localhost:{}:127.0.0.1", api.port),
            "-o",
            s(&crl_der),
            &format!("https://localhost:{}/api/v1/ca/crl", api.port),
        ])
        .output()
        .expect("curl");
    assert!(o.status.success(), "{o:?}");
    let crl_pem = kit::openssl(&["crl", "-in", s(&crl_der), "-inform", "DER"])
        .expect("crl")
        .stdout;
    let v = kit::openssl_verify(
        &site.root_pem(),
        Some(&site.issuing_pem()),
        Some(&crl_pem),
        &read(&pc_cert),
    )
    .expect("verify");
    assert!(
        v.combined().contains("certificate revoked"),
        "{}",
        v.combined()
    );
    let before = site.fingerprint();
    api.send("PATCH", template, &manager, &json!({ "validity": "90d" }))
        .problem(403, "authorization");
    assert_eq!(site.fingerprint(), before);

    // CA admin: edits and bumps templates; may not revoke or approve.
    let v = api
        .send(
            "PATCH",
            template,
            &admin,
            &json!({ "validity": "90d", "require_approval": true }),
        )
        .expect(200);
    assert_eq!(v["validity"], 90 * 86_400, "{v}");
    let minor = v["version"].clone();
    let v = api
        .post(&format!("{template}/bump"), &admin, &json!({}))
        .expect(200);
    assert_ne!(v["version"], minor, "{v}");
    let shown = site.json(&["template", "show", "Approved Workstation"]);
    assert_eq!(shown["version"], v["version"], "{shown}");
    let before = site.fingerprint();
    api.post(&revoke(&serial_list[1]), &admin, &reason)
        .problem(403, "authorization");
    api.post(
        &format!("/api/v1/requests/{pending}/approve"),
        &admin,
        &json!({}),
    )
    .problem(403, "authorization");
    assert_eq!(site.fingerprint(), before);

    // An admin client certificate: ADM1's Workstation certificate, ADM1 being in
    // cert-managers. PC1's certificate gives no role.
    let adm = Auth::Cert(&adm_cert, &adm_key);
    api.get("/api/v1/certificates", &adm).expect(200);
    let v = api
        .post(&revoke(&serial_list[1]), &adm, &reason)
        .expect(200);
    assert_eq!(v["serial"], serial_list[1].as_str(), "{v}");
    let audit = site.json(&["audit", "list"]);
    assert!(
        audit.to_string().contains("ADM1"),
        "the audit log names the admin: {audit}"
    );
    // PC1's certificates a and b are revoked by now: c.
    let (pc_c, pc_c_key) = (site.path("c.pem"), site.path("c.key"));
    let pc = Auth::Cert(&pc_c, &pc_c_key);
    let before = site.fingerprint();
    let rule = api
        .get("/api/v1/certificates", &pc)
        .problem(403, "authorization");
    assert!(rule.contains("`PC1` does not hold"), "{rule}");
    api.post(&revoke(&serial_list[2]), &pc, &reason)
        .problem(403, "authorization");

    // Wrong secret, unknown token, another scheme, nobody: 401.
    let (name, _) = t.manager.split_once(':').expect("NAME:SECRET");
    let wrong = format!("{name}:{}", "0".repeat(48));
    let basic = format!("Basic {}", "b3BzOnNlY3JldA==");
    for auth in [
        Auth::Bearer(&wrong),
        Auth::Bearer("nobody:secret"),
        Auth::Header(&basic),
        Auth::Anonymous,
    ] {
        api.get("/api/v1/certificates", &auth)
            .problem(401, "authorization");
        api.post(&revoke(&serial_list[2]), &auth, &reason)
            .problem(401, "authorization");
    }
    assert_eq!(site.fingerprint(), before);
}

/// Request bodies that are not PKCS#10 requests, PEM or DER.
fn garbage_csrs() -> Vec<(&'static str, String)> {
    vec![
        (
            "PEM with bad base64",
            "-----BEGIN CERTIFICATE REQUEST-----\n!!!! not base64 !!!!\n-----END CERTIFICATE REQUEST-----\n"
                .into(),
        ),
        (
            "PEM of garbage DER",
            // base64 of "this is not DER at all"
            "-----BEGIN CERTIFICATE REQUEST-----\ndGhpcyBpcyBub3QgREVSIGF0IGFsbA==\n-----END CERTIFICATE REQUEST-----\n"
                .into(),
        ),
        ("DER of the wrong structure", "0\u{5}\u{2}\u{1}\u{1}\u{5}\u{0}".into()),
        ("truncated DER", "0\u{7f}\u{2}\u{1}".into()),
        ("neither PEM nor DER", "hello".into()),
        ("empty", String::new()),
    ]
}

#[test]
fn bad_input_is_refused_by_field_and_changes_nothing() {
    let site = site();
    let t = tokens(&site);
    let d = site.dir.path();
    let first = openssl_csr(d, "pc1", "ec:P-256", "/CN=ignored", &[]);
    let cert = site.issue("Workstation", "PC1", &first, "pc1.pem");
    let key = site.path("pc1.key");
    let serial = serial_of(&cert);
    let other = openssl_csr(d, "pc1-revoked", "ec:P-256", "/CN=ignored", &[]);
    let revoked = serial_of(&site.issue("Workstation", "PC1", &other, "pc1-revoked.pem"));
    site.ok(&["cert", "revoke", &revoked]);
    let token = enroll_token(&site, "PC1", None);
    let used = enroll_token(&site, "PC1", None);
    let expired = enroll_token(&site, "PC1", None);
    expire_token(&site, &expired);
    let approval = enroll_token(&site, "PC1", Some("Approved Workstation"));
    let api = Api::start(&site, &t.config);

    let (good, _) = csr(&site, "good");
    api.post(
        "/api/v1/enroll",
        &Auth::Bearer(&used),
        &json!({ "template": "Workstation", "csr": good }),
    )
    .expect(201);
    let (pem, _) = csr(&site, "pending");
    let pending = api
        .post(
            "/api/v1/enroll",
            &Auth::Bearer(&approval),
            &json!({ "template": "Approved Workstation", "csr": pem }),
        )
        .expect(202)["request_id"]
        .as_i64()
        .expect("id");
    let issued_request = site
        .json(&["request", "list"])
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["status"] == "issued")
        .expect("an issued request")["id"]
        .as_i64()
        .expect("id");

    let before = site.fingerprint();
    let requests = request_count(&site);
    let tok = Auth::Bearer(&token);
    let mtls = Auth::Cert(&cert, &key);
    let manager = Auth::Bearer(&t.manager);
    let admin = Auth::Bearer(&t.admin);
    let template = "/api/v1/templates/Approved%20Workstation";

    // Every endpoint that takes a body: too large, not JSON, not declared JSON, JSON of the
    // wrong shape. Each is refused before anything else happens, naming the body.
    let endpoints: Vec<(&str, String, &Auth, Value)> = vec![
        (
            "POST",
            "/api/v1/enroll".into(),
            &tok,
            json!({ "template": "Workstation", "csr": good }),
        ),
        (
            "POST",
            "/api/v1/renew".into(),
            &mtls,
            json!({ "csr": good }),
        ),
        (
            "POST",
            format!("/api/v1/requests/{pending}/deny"),
            &manager,
            json!({ "reason": "not needed" }),
        ),
        (
            "POST",
            format!("/api/v1/certificates/{serial}/revoke"),
            &manager,
            json!({ "reason": "keyCompromise" }),
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            &manager,
            json!({ "principal": "PC1" }),
        ),
        (
            "PATCH",
            template.into(),
            &admin,
            json!({ "validity": "90d" }),
        ),
        (
            "POST",
            "/api/v1/directory/groups".into(),
            &admin,
            json!({ "name": "Printers" }),
        ),
        (
            "POST",
            "/api/v1/directory/principals".into(),
            &admin,
            json!({ "kind": "service", "name": "backup" }),
        ),
        (
            "POST",
            "/api/v1/directory/groups/Servers/members".into(),
            &admin,
            json!({ "principal": "PC1" }),
        ),
        (
            "POST",
            "/api/v1/requests".into(),
            &manager,
            json!({ "template": "Workstation", "principal": "PC1", "csr": good }),
        ),
        (
            "POST",
            "/api/v1/directory/import".into(),
            &admin,
            json!({ "groups": ["Labs"] }),
        ),
        (
            "POST",
            "/api/v1/templates/Workstation/duplicate".into(),
            &admin,
            json!({ "name": "Printer" }),
        ),
        (
            "POST",
            format!("{template}/grant"),
            &admin,
            json!({ "group": "Servers", "enroll": true }),
        ),
        (
            "POST",
            format!("{template}/revoke-grant"),
            &admin,
            json!({ "group": "Workstations" }),
        ),
        (
            "POST",
            "/api/v1/acme/eab".into(),
            &manager,
            json!({ "principal": "PC1" }),
        ),
    ];
    for (method, path, auth, body) in &endpoints {
        let call =
            |ctype: Option<&str>, body: &[u8]| api.call(method, path, auth, ctype, Some(body));
        let json_ct = Some("application/json");
        let padded = format!("{body}{}", " ".repeat(5000));
        let rule = call(json_ct, padded.as_bytes()).problem(413, "body");
        assert!(rule.contains("4096 bytes"), "{method} {path}: {rule}");
        call(json_ct, b"{,}").problem(400, "body");
        call(json_ct, b"not json at all").problem(400, "body");
        let body = body.to_string();
        for ctype in ["text/plain", "application/x-www-form-urlencoded", ""] {
            let rule = call(Some(ctype), body.as_bytes()).problem(415, "body");
            assert!(rule.contains("application/json"), "{method} {path}: {rule}");
        }
        call(json_ct, b"\"a string\"").problem(422, "body");
        assert_eq!(site.fingerprint(), before, "{method} {path}");
    }

    // /enroll: the CSR, the template, the token.
    for (what, garbage) in garbage_csrs() {
        let body = json!({ "template": "Workstation", "csr": garbage });
        let rule = api.post("/api/v1/enroll", &tok, &body).problem(400, "csr");
        assert!(!rule.is_empty(), "{what}");
        // The same CSR through renewal.
        api.post("/api/v1/renew", &mtls, &json!({ "csr": garbage }))
            .problem(400, "csr");
    }
    let rule = api
        .post(
            "/api/v1/enroll",
            &tok,
            &json!({ "template": "No Such Template", "csr": good }),
        )
        .problem(403, "template");
    assert!(
        rule.starts_with("no template named `No Such Template`"),
        "{rule}"
    );
    let body = json!({ "template": "Workstation", "csr": good });
    api.post("/api/v1/enroll", &tok, &json!({ "csr": good }))
        .problem(422, "body");
    api.post(
        "/api/v1/enroll",
        &tok,
        &json!({ "template": "Workstation", "csr": good, "principal": "ADM1" }),
    )
    .problem(422, "body");
    let rule = api
        .post("/api/v1/enroll", &Auth::Bearer(&used), &body)
        .problem(401, "token");
    assert!(rule.contains("already been used"), "{rule}");
    let rule = api
        .post("/api/v1/enroll", &Auth::Bearer(&expired), &body)
        .problem(401, "token");
    assert!(rule.starts_with("expired at"), "{rule}");
    assert_eq!(site.fingerprint(), before);

    // /requests/{id}/deny: the request and the reason.
    let deny =
        |id: &str, body: &Value| api.post(&format!("/api/v1/requests/{id}/deny"), &manager, body);
    let reason = json!({ "reason": "not needed" });
    let rule = deny("999999", &reason).problem(404, "request");
    assert!(rule.contains("999999"), "{rule}");
    deny("abc", &reason).problem(400, "id");
    deny(&issued_request.to_string(), &reason).problem(400, "request");
    for r in [json!(""), json!("   "), json!("x".repeat(1025))] {
        deny(&pending.to_string(), &json!({ "reason": r })).problem(400, "reason");
    }
    assert_eq!(site.fingerprint(), before);

    // /certificates/{serial}/revoke and /certificates/{serial}: the serial and the reason.
    let revoke = |serial: &str, body: &Value| {
        api.post(
            &format!("/api/v1/certificates/{serial}/revoke"),
            &manager,
            body,
        )
    };
    let reason = json!({ "reason": "keyCompromise" });
    let unknown = "0123456789abcdef0123456789abcdef";
    let rule = revoke(unknown, &reason).problem(404, "serial");
    assert!(rule.contains(unknown), "{rule}");
    let rule = api
        .get(&format!("/api/v1/certificates/{unknown}"), &manager)
        .problem(404, "serial");
    assert!(rule.contains(unknown), "{rule}");
    revoke("not-hex", &reason).problem(400, "serial");
    revoke(&serial, &json!({ "reason": "sorry" })).problem(400, "reason");
    revoke(&serial, &json!({ "reason": "" })).problem(400, "reason");
    let rule = revoke(&revoked, &reason).problem(400, "serial");
    assert!(rule.contains("already revoked"), "{rule}");
    assert_eq!(site.fingerprint(), before);

    // /tokens: the principal, the template, the lifetime.
    let token = |body: &Value| api.post("/api/v1/tokens", &manager, body);
    let rule = token(&json!({ "principal": "NOBODY" })).problem(400, "principal");
    assert!(rule.contains("NOBODY"), "{rule}");
    token(&json!({ "principal": "PC1", "template": "No Such Template" })).problem(403, "template");
    for secs in [0, 59, 30 * 86_400 + 1, -1] {
        token(&json!({ "principal": "PC1", "expires_in": secs })).problem(400, "expires_in");
    }
    token(&json!({ "principal": "PC1", "expires_in": "1h" })).problem(422, "body");
    assert_eq!(site.fingerprint(), before);

    // PATCH /templates/{name}: the template and each field's rule.
    let patch = |path: &str, body: &Value| api.send("PATCH", path, &admin, body);
    patch("/api/v1/templates/No%20Such", &json!({ "validity": "90d" })).problem(404, "template");
    let rule = patch(
        "/api/v1/templates/Workstation",
        &json!({ "validity": "90d" }),
    )
    .problem(403, "template");
    assert!(rule.contains("built-in"), "{rule}");
    patch(template, &json!({ "validity": "forever" })).problem(400, "template.validity");
    patch(template, &json!({ "colour": "red" })).problem(400, "template.colour");
    patch(template, &json!({ "key_usage": ["keyCertSign"] })).problem(400, "template.key-usage");
    patch(template, &json!({ "require_approval": "maybe" }))
        .problem(400, "template.require-approval");
    patch(template, &json!({})).problem(400, "body");

    // Query strings and path parameters of the read endpoints.
    for (path, field) in [
        ("/api/v1/certificates?bogus=1", "query"),
        ("/api/v1/certificates?expiring_before=soon", "query"),
        ("/api/v1/requests?status=maybe", "status"),
        ("/api/v1/audit?limit=abc", "query"),
        ("/api/v1/audit?limit=0", "limit"),
    ] {
        api.get(path, &manager).problem(400, field);
    }
    api.get("/api/v1/requests/abc", &manager).problem(400, "id");
    api.get("/api/v1/requests/999999", &manager)
        .problem(404, "request");
    api.post("/api/v1/requests/999999/approve", &manager, &json!({}))
        .problem(404, "request");
    api.post("/api/v1/requests/abc/approve", &manager, &json!({}))
        .problem(400, "id");
    assert_eq!(site.fingerprint(), before);
    assert_eq!(request_count(&site), requests);
}

#[test]
fn openapi_document_covers_every_route() {
    // ROUTES is the router's list: every `.route("PATH"` in api.rs, in order.
    let src = include_str!("../../server/src/roles/api.rs");
    let in_router: Vec<&str> = src
        .split(".route(")
        .skip(1)
        .map(|rest| {
            rest.trim_start()
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .expect("a quoted path")
                .0
        })
        .collect();
    let listed: Vec<&str> = ROUTES.iter().map(|(p, _)| *p).collect();
    assert_eq!(in_router, listed, "api.rs router() and ROUTES differ");

    let site = Site::empty();
    site.ok(&[
        "init",
        "--site-code",
        "PS1",
        "--base-url",
        "http://pki.fleet.test",
    ]);
    let api = Api::start(&site, "");
    let doc = api.get("/openapi.json", &Auth::Anonymous).expect(200);
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3."), "OpenAPI {version}");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in ROUTES {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not in the document's paths"))
            .as_object()
            .expect("path item");
        let documented: Vec<&str> = item
            .keys()
            .map(String::as_str)
            .filter(|k| {
                [
                    "get", "put", "post", "delete", "options", "head", "patch", "trace",
                ]
                .contains(k)
            })
            .collect();
        let mut want = methods.to_vec();
        want.sort_unstable();
        let mut got = documented.clone();
        got.sort_unstable();
        assert_eq!(got, want, "{path}");
    }
    for path in paths.keys() {
        assert!(listed.contains(&path.as_str()), "{path} is not a route");
    }

    // A real validator, when installed (scripts/test.sh installs it).
    if let Some(validator) = kit::tool("openapi-spec-validator") {
        let file = site.path("openapi.json");
        std::fs::write(&file, doc.to_string()).expect("write");
        let o = Command::new(validator).arg(&file).output().expect("run");
        assert!(
            o.status.success(),
            "openapi-spec-validator: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Runs one SQL statement on the site's database (to tamper with it) and returns the rows
/// it changed.
fn sql(site: &Site, statement: &'static str) -> u64 {
    let url = site.db_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
        sqlx::query(statement)
            .execute(&mut c)
            .await
            .expect("sql")
            .rows_affected()
    })
}

/// Stores fallback status point messages as the role would (received at fixed times, so the
/// `since` filter does not depend on the clock).
fn record_status(site: &Site, messages: &[(i64, &str, &str)]) {
    let url = site.db_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let store = fleetpki_store::open(&url).await.expect("open store");
        let changes = messages
            .iter()
            .map(|(at, client, kind)| fleetpki_store::Change::RecordStatus {
                message: fleetpki_model::site::NewStatusMessage {
                    received_at: *at,
                    source: "127.0.0.1".into(),
                    client: client.to_string(),
                    kind: kind.to_string(),
                    body: json!({ "client": client, "kind": kind, "message": "m" }).to_string(),
                },
            })
            .collect();
        store.apply(changes).await.expect("record status");
    });
}

/// The directory, template, status, audit-verify and EAB endpoints: each refuses the roles it
/// does not name (403, nothing stored) and anybody without credentials (401); the roles it
/// names get their effect, read back through the CLI.
#[test]
fn directory_templates_status_audit_and_eab_by_role() {
    let site = site();
    let t = tokens(&site);
    let d = site.dir.path();
    let pc_csr = openssl_csr(d, "pc", "ec:P-256", "/CN=ignored", &[]);
    let pc_cert = site.issue("Workstation", "PC1", &pc_csr, "pc.pem");
    let pc_key = site.path("pc.key");
    record_status(
        &site,
        &[
            (1_000, "PC1", "selection-failed"),
            (2_000, "PC1", "renewal-failed"),
            (3_000, "SRV1", "renewal-failed"),
        ],
    );
    let api = Api::start(&site, &t.config);
    let auditor = Auth::Bearer(&t.auditor);
    let manager = Auth::Bearer(&t.manager);
    let admin = Auth::Bearer(&t.admin);
    let pc = Auth::Cert(&pc_cert, &pc_key);

    // Who may not: every write, for each role it does not name, and a certificate holder
    // with no admin role; nobody at all gets 401. Nothing is stored.
    let (pem, _) = csr(&site, "submitted");
    let writes: Vec<(&str, Value, Vec<&Auth>)> = vec![
        (
            "/api/v1/requests",
            json!({ "template": "Workstation", "principal": "PC1", "csr": pem }),
            vec![&auditor, &admin, &pc],
        ),
        (
            "/api/v1/directory/groups",
            json!({ "name": "Printers" }),
            vec![&auditor, &manager, &pc],
        ),
        (
            "/api/v1/directory/principals",
            json!({ "kind": "computer", "name": "PRN1", "dns": "prn1.fleet.test" }),
            vec![&auditor, &manager, &pc],
        ),
        (
            "/api/v1/directory/groups/Servers/members",
            json!({ "principal": "PC1" }),
            vec![&auditor, &manager, &pc],
        ),
        (
            "/api/v1/directory/import",
            json!({ "groups": ["Labs"] }),
            vec![&auditor, &manager, &pc],
        ),
        (
            "/api/v1/templates/Workstation/duplicate",
            json!({ "name": "Printer" }),
            vec![&auditor, &manager, &pc],
        ),
        (
            "/api/v1/templates/Approved%20Workstation/grant",
            json!({ "group": "Servers", "enroll": true }),
            vec![&auditor, &manager, &pc],
        ),
        (
            "/api/v1/templates/Approved%20Workstation/revoke-grant",
            json!({ "group": "Workstations" }),
            vec![&auditor, &manager, &pc],
        ),
        (
            "/api/v1/acme/eab",
            json!({ "principal": "PC1" }),
            vec![&auditor, &pc],
        ),
    ];
    let reads = [
        "/api/v1/site",
        "/api/v1/directory",
        "/api/v1/templates/Workstation/history",
        "/api/v1/status",
        "/api/v1/audit/verify",
    ];
    let before = site.fingerprint();
    for (path, body, refused) in &writes {
        for auth in refused {
            api.post(path, auth, body).problem(403, "authorization");
        }
        api.post(path, &Auth::Anonymous, body)
            .problem(401, "authorization");
    }
    for path in reads {
        let rule = api.get(path, &pc).problem(403, "authorization");
        assert!(rule.contains("`PC1` does not hold"), "{path}: {rule}");
        api.get(path, &Auth::Anonymous)
            .problem(401, "authorization");
    }
    assert_eq!(site.fingerprint(), before, "refused calls stored nothing");

    // Submit for a principal (cert-manager): issued under Workstation, pending under
    // "Approved Workstation"; the request list shows whom for and by whom.
    let v = api
        .post(
            "/api/v1/requests",
            &manager,
            &json!({ "template": "Workstation", "principal": "PC1", "csr": pem }),
        )
        .expect(201);
    let (serial, _) = issued(&v);
    let shown = site.json(&["cert", "show", &serial]);
    assert_eq!(shown["principal"], "PC1", "{shown}");
    let (pem2, _) = csr(&site, "submitted-pending");
    let id = api
        .post(
            "/api/v1/requests",
            &manager,
            &json!({ "template": "Approved Workstation", "principal": "PC1", "csr": pem2 }),
        )
        .expect(202)["request_id"]
        .as_i64()
        .expect("id");
    let req = site
        .json(&["request", "list"])
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["id"] == id)
        .expect("the pending request")
        .clone();
    assert_eq!(
        (&req["status"], &req["principal"], &req["submitted_by"]),
        (&json!("pending"), &json!("PC1"), &json!("token:ops")),
        "{req}"
    );

    // Directory (ca-admin): a group, a computer in it, a user and a service, a membership.
    let v = api
        .post(
            "/api/v1/directory/groups",
            &admin,
            &json!({ "name": "Printers" }),
        )
        .expect(201);
    assert_eq!(v["name"], "Printers", "{v}");
    let v = api
        .post(
            "/api/v1/directory/principals",
            &admin,
            &json!({ "kind": "computer", "name": "PRN1", "dns": "prn1.fleet.test",
                     "groups": ["Printers"] }),
        )
        .expect(201);
    assert_eq!(v["groups"], json!(["Printers"]), "{v}");
    api.post(
        "/api/v1/directory/principals",
        &admin,
        &json!({ "kind": "user", "name": "alice", "email": "alice@fleet.test",
                 "upn": "alice@corp.fleet.test" }),
    )
    .expect(201);
    api.post(
        "/api/v1/directory/principals",
        &admin,
        &json!({ "kind": "service", "name": "backup" }),
    )
    .expect(201);
    let v = api
        .post(
            "/api/v1/directory/groups/Printers/members",
            &admin,
            &json!({ "principal": "alice" }),
        )
        .expect(200);
    assert_eq!(v["principal"], "alice", "{v}");
    let dir = site.json(&["directory", "list"]);
    assert!(
        dir["groups"]
            .as_array()
            .expect("groups")
            .contains(&json!("Printers")),
        "{dir}"
    );
    let entry = |dir: &Value, name: &str| -> Value {
        dir["principals"]
            .as_array()
            .expect("principals")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {dir}"))
            .clone()
    };
    let prn = entry(&dir, "PRN1");
    assert_eq!(
        (&prn["kind"], &prn["dns"], &prn["groups"]),
        (
            &json!("computer"),
            &json!("prn1.fleet.test"),
            &json!(["Printers"])
        ),
        "{prn}"
    );
    let alice = entry(&dir, "alice");
    assert_eq!(alice["upn"], "alice@corp.fleet.test", "{alice}");
    assert_eq!(alice["groups"], json!(["Printers"]), "{alice}");
    assert_eq!(entry(&dir, "backup")["kind"], "service");
    // Every reader sees the same directory the CLI lists.
    for auth in [&auditor, &manager, &admin] {
        assert_eq!(api.get("/api/v1/directory", auth).expect(200), dir);
    }

    // Import (ca-admin): a new group, a new computer, PC1 updated and added to it.
    let v = api
        .post(
            "/api/v1/directory/import",
            &admin,
            &json!({ "groups": ["Labs"], "principals": [
                { "name": "LAB1", "kind": "computer", "dns": "lab1.fleet.test", "groups": ["Labs"] },
                { "name": "PC1", "kind": "computer", "dns": "pc1.fleet.test", "groups": ["Labs"] },
            ] }),
        )
        .expect(200);
    assert_eq!(v, json!({ "groups_created": 1, "principals": 2 }));
    let dir = site.json(&["directory", "list"]);
    assert_eq!(entry(&dir, "LAB1")["groups"], json!(["Labs"]), "{dir}");
    let pc1 = entry(&dir, "PC1")["groups"].to_string();
    assert!(
        pc1.contains("Labs") && pc1.contains("Workstations"),
        "{pc1}"
    );

    // Templates (ca-admin): duplicate, grant, publish, unpublish, revoke the grant, history.
    let base = "/api/v1/templates/Printer";
    let v = api
        .post(
            "/api/v1/templates/Workstation/duplicate",
            &admin,
            &json!({ "name": "Printer" }),
        )
        .expect(201);
    assert_eq!(
        (&v["name"], &v["published"]),
        (&json!("Printer"), &json!(false)),
        "{v}"
    );
    let v = api
        .post(
            &format!("{base}/grant"),
            &admin,
            &json!({ "group": "Printers", "enroll": true }),
        )
        .expect(200);
    assert_eq!(v["name"], "Printer", "{v}");
    let shown = site.json(&["template", "show", "Printer"]);
    let grant = shown["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .find(|g| g["group"] == "Printers")
        .unwrap_or_else(|| panic!("no Printers grant: {shown}"))
        .clone();
    assert_eq!(
        (&grant["read"], &grant["enroll"], &grant["autoenroll"]),
        (&json!(true), &json!(true), &json!(false)),
        "{grant}"
    );
    api.post(
        &format!("{base}/publish"),
        &admin,
        &json!({ "published": true }),
    )
    .expect(200);
    assert_eq!(
        site.json(&["template", "show", "Printer"])["published"],
        true
    );
    api.post(
        &format!("{base}/publish"),
        &admin,
        &json!({ "published": false }),
    )
    .expect(200);
    assert_eq!(
        site.json(&["template", "show", "Printer"])["published"],
        false
    );
    api.post(
        &format!("{base}/revoke-grant"),
        &admin,
        &json!({ "group": "Printers" }),
    )
    .expect(200);
    let shown = site.json(&["template", "show", "Printer"]);
    assert!(!shown["grants"].to_string().contains("Printers"), "{shown}");
    let history = site.json(&["template", "history", "Printer"]);
    assert!(history.as_array().expect("history").len() >= 2, "{history}");
    for auth in [&auditor, &manager, &admin] {
        assert_eq!(
            api.get(&format!("{base}/history"), auth).expect(200),
            history
        );
    }

    // The site (readers): its certificates as `ca chain` and `site signing-cert` write them;
    // the database URL (which may hold a password) is not shown.
    let signing = site.path("signing.pem");
    let said = site.ok(&["site", "signing-cert", "--out", s(&signing)]);
    let shown = site.ok(&["ca", "show"]);
    for auth in [&auditor, &manager, &admin] {
        let v = api.get("/api/v1/site", auth).expect(200);
        assert_eq!(v["signing"]["certificate"], read(&signing), "{v}");
        let fp = v["signing"]["sha256"].as_str().expect("sha256");
        assert!(said.contains(fp), "{said} / {fp}");
        assert_eq!(v["root"]["certificate"], site.root_pem(), "{v}");
        assert_eq!(v["issuing"]["certificate"], site.issuing_pem(), "{v}");
        assert_eq!(v["base_url"], "http://pki.fleet.test", "{v}");
        assert!(v.get("database").is_none(), "{v}");
        let code = v["site_code"].as_str().expect("site_code");
        assert!(shown.contains(code), "{shown}");
    }

    // Status messages (readers): the CLI's filters.
    let ids = |v: Value| -> Vec<(String, String)> {
        v.as_array()
            .expect("messages")
            .iter()
            .map(|m| {
                (
                    m["client"].as_str().expect("client").to_string(),
                    m["kind"].as_str().expect("kind").to_string(),
                )
            })
            .collect()
    };
    let pair = |c: &str, k: &str| (c.to_string(), k.to_string());
    let all = api.get("/api/v1/status", &auditor).expect(200);
    assert_eq!(
        ids(all.clone()),
        vec![
            pair("SRV1", "renewal-failed"),
            pair("PC1", "renewal-failed"),
            pair("PC1", "selection-failed"),
        ],
        "newest first: {all}"
    );
    assert_eq!(all, site.json(&["status", "list"]));
    assert_eq!(
        ids(api.get("/api/v1/status?client=PC1", &admin).expect(200)),
        vec![
            pair("PC1", "renewal-failed"),
            pair("PC1", "selection-failed")
        ]
    );
    assert_eq!(
        ids(api
            .get("/api/v1/status?kind=renewal-failed&since=1500", &manager)
            .expect(200)),
        vec![
            pair("SRV1", "renewal-failed"),
            pair("PC1", "renewal-failed")
        ]
    );
    assert_eq!(
        ids(api
            .get("/api/v1/status?client=PC1&since=1500&limit=1", &auditor)
            .expect(200)),
        vec![pair("PC1", "renewal-failed")]
    );

    // EAB (cert-manager or ca-admin): the key is shown once; the audit log records its kid.
    for auth in [&manager, &admin] {
        let v = api
            .post("/api/v1/acme/eab", auth, &json!({ "principal": "PC1" }))
            .expect(201);
        let kid = v["kid"].as_str().expect("kid");
        assert!(kid.starts_with("eab-"), "{v}");
        assert_eq!(v["principal"], "PC1", "{v}");
        use base64::Engine;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v["hmac_key"].as_str().expect("hmac_key"))
            .expect("base64url");
        assert_eq!(key.len(), 32, "{v}");
        let audit = site.json(&["audit", "list"]);
        assert!(
            audit.as_array().expect("audit").iter().any(|e| {
                e.to_string().contains("acme.eab.create") && e.to_string().contains(kid)
            }),
            "{audit}"
        );
    }

    // Audit verify (readers): intact, then not once an entry is edited behind the CA's back.
    let entries = site
        .json(&["audit", "list"])
        .as_array()
        .expect("audit")
        .len();
    for auth in [&auditor, &manager, &admin] {
        let v = api.get("/api/v1/audit/verify", auth).expect(200);
        assert_eq!(v["intact"], true, "{v}");
        assert_eq!(v["entries"], entries, "{v}");
    }
    assert_eq!(
        sql(&site, "UPDATE audit SET details = 'edited' WHERE seq = 2"),
        1
    );
    let v = api.get("/api/v1/audit/verify", &auditor).expect(200);
    assert_eq!(v["intact"], false, "{v}");
    assert!(v["break"].as_str().is_some_and(|b| !b.is_empty()), "{v}");
    site.fails(&["audit", "verify"]);
}

/// The directory, template, status and EAB endpoints refuse bad input by field (unknown
/// template, group or principal; a missing field or one of the wrong type; a value against
/// the rule) and store nothing.
#[test]
fn directory_template_status_and_eab_input_is_checked() {
    let site = site();
    let t = tokens(&site);
    let api = Api::start(&site, &t.config);
    let admin = Auth::Bearer(&t.admin);
    let manager = Auth::Bearer(&t.manager);
    let before = site.fingerprint();
    let post = |path: &str, auth: &Auth, body: Value| api.post(path, auth, &body);

    // Groups.
    let groups = "/api/v1/directory/groups";
    post(groups, &admin, json!({ "name": "" })).problem(400, "name");
    let rule = post(groups, &admin, json!({ "name": "Servers" })).problem(400, "name");
    assert!(rule.contains("already exists"), "{rule}");
    post(groups, &admin, json!({})).problem(422, "body");
    post(groups, &admin, json!({ "name": 5 })).problem(422, "body");

    // Principals: each kind's fields, the directory's rules, the groups.
    let principals = "/api/v1/directory/principals";
    let rule = post(
        principals,
        &admin,
        json!({ "kind": "printer", "name": "PRN1", "dns": "prn1.fleet.test" }),
    )
    .problem(400, "kind");
    assert!(rule.contains("computer, user or service"), "{rule}");
    post(
        principals,
        &admin,
        json!({ "kind": "computer", "name": "PRN1" }),
    )
    .problem(400, "dns");
    post(
        principals,
        &admin,
        json!({ "kind": "computer", "name": "PRN1", "dns": "prn1.fleet.test",
                "email": "prn1@fleet.test" }),
    )
    .problem(400, "email");
    post(
        principals,
        &admin,
        json!({ "kind": "user", "name": "alice" }),
    )
    .problem(400, "email");
    post(
        principals,
        &admin,
        json!({ "kind": "user", "name": "alice", "email": "alice@fleet.test", "dns": "a.fleet.test" }),
    )
    .problem(400, "dns");
    post(
        principals,
        &admin,
        json!({ "kind": "user", "name": "alice", "email": "nobody" }),
    )
    .problem(400, "email");
    post(
        principals,
        &admin,
        json!({ "kind": "computer", "name": "PRN1", "dns": "not a name!" }),
    )
    .problem(400, "dns");
    let rule = post(
        principals,
        &admin,
        json!({ "kind": "computer", "name": "PC1", "dns": "pc1b.fleet.test" }),
    )
    .problem(400, "name");
    assert!(rule.contains("already exists"), "{rule}");
    let rule = post(
        principals,
        &admin,
        json!({ "kind": "computer", "name": "PRN1", "dns": "prn1.fleet.test",
                "groups": ["Servers", "No Such"] }),
    )
    .problem(400, "groups");
    assert!(rule.contains("No Such"), "{rule}");
    for body in [
        json!({ "kind": "computer", "dns": "prn1.fleet.test" }),
        json!({ "kind": "computer", "name": "PRN1", "dns": "prn1.fleet.test", "groups": "Servers" }),
        json!({ "kind": "computer", "name": 7, "dns": "prn1.fleet.test" }),
        json!({ "kind": "computer", "name": "PRN1", "dns": "prn1.fleet.test", "colour": "red" }),
    ] {
        post(principals, &admin, body).problem(422, "body");
    }

    // Membership: the group (path) and the principal (body).
    let rule = post(
        "/api/v1/directory/groups/No%20Such/members",
        &admin,
        json!({ "principal": "PC1" }),
    )
    .problem(404, "group");
    assert!(rule.contains("No Such"), "{rule}");
    let members = "/api/v1/directory/groups/Servers/members";
    let rule = post(members, &admin, json!({ "principal": "NOBODY" })).problem(400, "principal");
    assert!(rule.contains("NOBODY"), "{rule}");
    post(members, &admin, json!({})).problem(422, "body");
    assert_eq!(site.fingerprint(), before);

    // Submit for a principal: the principal, its grants, the template, the CSR.
    let (good, _) = csr(&site, "good");
    let submit = |template: &str, principal: &str, csr: &str| {
        post(
            "/api/v1/requests",
            &manager,
            json!({ "template": template, "principal": principal, "csr": csr }),
        )
    };
    let rule = submit("Workstation", "NOBODY", &good).problem(403, "principal");
    assert!(rule.contains("NOBODY"), "{rule}");
    let rule = submit("Workstation", "SRV1", &good).problem(403, "principal");
    assert!(rule.contains("no Enroll permission"), "{rule}");
    submit("No Such", "PC1", &good).problem(403, "template");
    for (what, garbage) in garbage_csrs() {
        let rule = submit("Workstation", "PC1", &garbage).problem(400, "csr");
        assert!(!rule.is_empty(), "{what}");
    }
    post(
        "/api/v1/requests",
        &manager,
        json!({ "template": "Workstation", "principal": "PC1" }),
    )
    .problem(422, "body");
    post(
        "/api/v1/requests",
        &manager,
        json!({ "template": "Workstation", "principal": ["PC1"], "csr": good }),
    )
    .problem(422, "body");
    assert_eq!(site.fingerprint(), before);

    // Import: all or nothing, the refusal naming the entry and its field.
    let import = "/api/v1/directory/import";
    let lab = |name: &str, dns: &str| json!({ "name": name, "kind": "computer", "dns": dns });
    post(
        import,
        &admin,
        json!({ "groups": ["Labs"], "principals": [lab("LAB1", "lab1.fleet.test"), lab("LAB2", "not a name!")] }),
    )
    .problem(400, "body entry 2 (LAB2): principal.dns");
    let rule = post(
        import,
        &admin,
        json!({ "principals": [lab("LAB1", "lab1.fleet.test"), lab("LAB1", "lab2.fleet.test")] }),
    )
    .problem(400, "body entry 2");
    assert!(rule.contains("appears twice"), "{rule}");
    post(
        import,
        &admin,
        json!({ "groups": ["Labs"], "colour": "red" }),
    )
    .problem(422, "body");
    post(import, &admin, json!({ "groups": "Labs" })).problem(422, "body");
    post(
        import,
        &admin,
        json!({ "principals": [{ "name": "LAB1" }] }),
    )
    .problem(422, "body");
    assert_eq!(site.fingerprint(), before);

    // Duplicate: the base and the new name.
    let rule = post(
        "/api/v1/templates/No%20Such/duplicate",
        &admin,
        json!({ "name": "Printer" }),
    )
    .problem(404, "template");
    assert!(rule.contains("No Such"), "{rule}");
    let dup = "/api/v1/templates/Workstation/duplicate";
    let rule = post(dup, &admin, json!({ "name": "Approved Workstation" })).problem(400, "name");
    assert!(rule.contains("already taken"), "{rule}");
    post(dup, &admin, json!({})).problem(422, "body");
    post(dup, &admin, json!({ "name": ["Printer"] })).problem(422, "body");

    // Grant and revoke-grant: the template, the group, the permissions.
    let grant = "/api/v1/templates/Approved%20Workstation/grant";
    let revoke = "/api/v1/templates/Approved%20Workstation/revoke-grant";
    post(
        "/api/v1/templates/No%20Such/grant",
        &admin,
        json!({ "group": "Servers", "enroll": true }),
    )
    .problem(404, "template");
    let rule =
        post(grant, &admin, json!({ "group": "No Such", "enroll": true })).problem(400, "group");
    assert!(rule.contains("No Such"), "{rule}");
    let rule = post(grant, &admin, json!({ "group": "Servers" })).problem(400, "body");
    assert!(rule.contains("read, enroll, autoenroll"), "{rule}");
    post(
        grant,
        &admin,
        json!({ "group": "Servers", "enroll": "yes" }),
    )
    .problem(422, "body");
    post(grant, &admin, json!({ "enroll": true })).problem(422, "body");
    post(
        "/api/v1/templates/No%20Such/revoke-grant",
        &admin,
        json!({ "group": "Workstations" }),
    )
    .problem(404, "template");
    let rule = post(revoke, &admin, json!({ "group": "Servers" })).problem(400, "group");
    assert!(rule.contains("grants nothing"), "{rule}");
    post(
        revoke,
        &admin,
        json!({ "group": "Workstations", "read": 1 }),
    )
    .problem(422, "body");
    api.get("/api/v1/templates/No%20Such/history", &admin)
        .problem(404, "template");
    assert_eq!(site.fingerprint(), before);

    // Status filters.
    for (path, field) in [
        ("/api/v1/status?since=yesterday", "query"),
        ("/api/v1/status?limit=0", "limit"),
        ("/api/v1/status?limit=1001", "limit"),
        ("/api/v1/status?bogus=1", "query"),
    ] {
        api.get(path, &manager).problem(400, field);
    }

    // EAB: the principal.
    let rule = post(
        "/api/v1/acme/eab",
        &manager,
        json!({ "principal": "NOBODY" }),
    )
    .problem(400, "principal");
    assert!(rule.contains("NOBODY"), "{rule}");
    post("/api/v1/acme/eab", &manager, json!({})).problem(422, "body");
    post("/api/v1/acme/eab", &manager, json!({ "principal": 1 })).problem(422, "body");
    assert_eq!(site.fingerprint(), before);
}

/// Registers clients as the management point would (pending, fixed identities).
fn register_clients(site: &Site, names: &[&str]) {
    use fleetpki_model::audit::{AuditEvent, Outcome};
    use fleetpki_model::site::{ClientRecord, ClientStatus};
    let url = site.db_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let store = fleetpki_store::open(&url).await.expect("open store");
        let changes = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let der = vec![i as u8 + 1; 16];
                fleetpki_store::Change::RegisterClient {
                    client: ClientRecord {
                        name: name.to_string(),
                        identity_sha256: fleetpki_x509::cert::fingerprint(&der),
                        identity_der: der,
                        status: ClientStatus::Pending,
                        registered_at: 1_000,
                        decided_at: None,
                        decided_by: None,
                    },
                    audit: AuditEvent {
                        at: 1_000,
                        actor: name.to_string(),
                        source: "test".into(),
                        action: "client.register".into(),
                        object: name.to_string(),
                        outcome: Outcome::Success,
                        details: String::new(),
                    },
                }
            })
            .collect();
        store.apply(changes).await.expect("register");
    });
}

/// The CLI's options on existing endpoints: `client list --status` and `crl publish
/// --next-update`, whose CRL the response now carries.
#[test]
fn client_status_filter_and_crl_lifetime() {
    let site = site();
    let t = tokens(&site);
    register_clients(&site, &["PC7", "PC8"]);
    let api = Api::start(&site, &t.config);
    let manager = Auth::Bearer(&t.manager);
    let auditor = Auth::Bearer(&t.auditor);

    api.post("/api/v1/clients/PC7/approve", &manager, &json!({}))
        .expect(200);
    let names = |q: &str| -> Vec<String> {
        api.get(&format!("/api/v1/clients{q}"), &auditor)
            .expect(200)
            .as_array()
            .expect("clients")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_string())
            .collect()
    };
    assert_eq!(names(""), ["PC7", "PC8"]);
    assert_eq!(names("?status=approved"), ["PC7"]);
    assert_eq!(names("?status=pending"), ["PC8"]);
    assert!(names("?status=blocked").is_empty());
    assert_eq!(
        site.json(&["client", "list", "--status", "approved"])[0]["name"],
        "PC7"
    );
    let before = site.fingerprint();
    api.get("/api/v1/clients?status=maybe", &auditor)
        .problem(400, "status");
    api.get("/api/v1/clients?colour=red", &auditor)
        .problem(400, "query");

    // CRL lifetime and issuer: refusals name the JSON field and publish nothing.
    let publish = |body: Value| api.post("/api/v1/crl/publish", &manager, &body);
    publish(json!({ "next_update": "forever" })).problem(400, "next_update");
    publish(json!({ "next_update": 7 })).problem(422, "body");
    publish(json!({ "issuer": "signing" })).problem(400, "issuer");
    assert_eq!(site.fingerprint(), before);
    let v = publish(json!({ "next_update": "2d" })).expect(200);
    let lifetime = v["next_update"].as_i64().expect("next_update")
        - v["this_update"].as_i64().expect("this_update");
    assert_eq!(lifetime, 2 * 86_400, "{v}");
    let crl = site.path("published.crl");
    std::fs::write(&crl, v["crl"].as_str().expect("crl")).expect("write");
    let o = kit::openssl(&["crl", "-in", s(&crl), "-noout", "-crlnumber"]).expect("crl");
    assert!(o.success(), "{}", o.combined());
    // `crlNumber=0x02` (or without the 0x, by openssl version).
    let hex = o
        .stdout
        .trim()
        .strip_prefix("crlNumber=")
        .map(|h| h.trim_start_matches("0x"))
        .unwrap_or_else(|| panic!("{}", o.stdout));
    assert_eq!(
        i64::from_str_radix(hex, 16).ok(),
        v["number"].as_i64(),
        "{v}"
    );
}
