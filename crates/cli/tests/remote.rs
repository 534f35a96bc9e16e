//! `fleetpki --server URL`: the administrative commands sent to a running `fleetpki serve`'s
//! admin API over HTTPS print what the same commands print locally and have the same effect
//! (read back with local commands); role refusals, bad credentials and an untrusted server
//! certificate are clear errors that change nothing; local-only commands refuse `--server`.

mod common;
use common::server::Server;
use common::{Site, bin, openssl_csr, s};
use fleetpki_testkit as kit;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;

/// `fleetpki api-token new`: writes the token (stdout) to `NAME.token` in the site dir and
/// returns the `[api.tokens.NAME]` lines it printed for the serve config.
fn api_token(site: &Site, name: &str, role: &str) -> String {
    let (bearer, config) = common::api_token(site, name, role);
    std::fs::write(site.path(&format!("{name}.token")), bearer + "\n").expect("token file");
    config
}

/// The api role alone, with a site-issued server certificate for `localhost`, and three
/// tokens: `tmpl` (ca-admin), `ops` (cert-manager), `audit` (auditor).
struct Remote {
    site: Site,
    _server: Server,
    url: String,
}

impl Remote {
    fn start() -> Remote {
        let site = common::admin_site();
        let tokens = [
            api_token(&site, "tmpl", "ca-admin"),
            api_token(&site, "ops", "cert-manager"),
            api_token(&site, "audit", "auditor"),
        ]
        .concat();
        let config = format!(
            "[tls]\nintranet_fqdn = \"localhost\"\n\
             [roles.crl]\nenabled = false\n[roles.management-point]\nenabled = false\n\
             [roles.ocsp]\nenabled = false\n[roles.fallback-status-point]\nenabled = false\n\
             [roles.api]\n{tokens}"
        );
        let server = Server::start(&site, &config, 1);
        // The certificate names localhost, not the address the role reports.
        let url = format!("https://localhost:{}", server.port("api"));
        Remote {
            site,
            _server: server,
            url,
        }
    }

    /// `fleetpki --server URL --api-token-file NAME.token ARGS` (trusting the site root in
    /// --dir by default).
    fn run(&self, token: &str, args: &[&str]) -> Output {
        let file = self.site.path(&format!("{token}.token"));
        let mut all = vec!["--server", &self.url, "--api-token-file", s(&file)];
        all.extend(args);
        self.site.run(&all)
    }

    fn ok(&self, token: &str, args: &[&str]) -> String {
        let o = self.run(token, args);
        assert!(
            o.status.success(),
            "fleetpki --server {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf8")
    }

    /// Fails with exit code 1 and nothing on stdout; returns stderr.
    fn fails(&self, token: &str, args: &[&str]) -> String {
        refused(self.run(token, args), args)
    }

    fn json(&self, token: &str, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(token, &a)).expect("json output")
    }

    /// The same listing through the API and locally: the same bytes, table and JSON.
    fn same_listing(&self, token: &str, args: &[&str]) -> Value {
        assert_eq!(self.ok(token, args), self.site.ok(args), "{args:?}");
        let remote = self.json(token, args);
        assert_eq!(remote, self.site.json(args), "{args:?} --json");
        remote
    }
}

fn refused(o: Output, args: &[&str]) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "{args:?} should fail with 1:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stdout.is_empty(), "{args:?} printed output: {o:?}");
    String::from_utf8(o.stderr).expect("utf8")
}

fn csr(site: &Site, stem: &str, principal: &str) -> PathBuf {
    openssl_csr(
        site.dir.path(),
        stem,
        "ec:P-256",
        &format!("/CN={principal}"),
        &[],
    )
}

/// The number at the start of `request N: …`.
fn request_id(out: &str) -> String {
    out.strip_prefix("request ")
        .and_then(|r| r.split_once(':'))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("no request id in {out}"))
}

/// The serial of `issued serial S to …`.
fn issued_serial(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("issued serial "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no serial in {out}"))
        .to_string()
}

fn registered_clients(site: &Site, names: &[&str]) {
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
            .zip(1u8..)
            .map(|(name, i)| {
                let der = vec![i; 16];
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

/// Status messages as the fallback status point stores them, at fixed times.
fn recorded_status(site: &Site, messages: &[(i64, &str, &str)]) {
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
                    body: json!({ "client": client, "kind": kind, "message": format!("{kind} on {client}") })
                        .to_string(),
                },
            })
            .collect();
        store.apply(changes).await.expect("record status");
    });
}

/// Every command with an endpoint, through the API with the role it needs: listings print
/// the same table and JSON as locally, changes are seen by local commands afterwards.
#[test]
fn commands_over_the_api_match_local() {
    let r = Remote::start();
    let site = &r.site;

    // ca-admin: templates.
    r.same_listing("tmpl", &["template", "list"]);
    r.same_listing("tmpl", &["template", "show", "Approved Workstation"]);
    r.same_listing("tmpl", &["template", "history", "Approved Workstation"]);
    let out = r.ok(
        "tmpl",
        &["template", "duplicate", "Web Server", "Intranet Web"],
    );
    assert!(
        out.starts_with("created template `Intranet Web` v"),
        "{out}"
    );
    // The edits apply in the CLI's field order, not the JSON map's: `--subject directory`
    // before `--permitted-dns-suffixes` (which implies supply) ends as locally.
    site.ok(&["template", "duplicate", "Web Server", "Local Web"]);
    let set = |name: &'static str| {
        vec![
            "template",
            "set",
            name,
            "--permitted-dns-suffixes",
            "fleet.test",
            "--subject",
            "directory",
            "--validity",
            "90d",
        ]
    };
    assert_eq!(
        r.ok("tmpl", &set("Intranet Web")),
        "template `Intranet Web` is now v1.1\n"
    );
    site.ok(&set("Local Web"));
    let (remote_t, local_t) = (
        site.json(&["template", "show", "Intranet Web"]),
        site.json(&["template", "show", "Local Web"]),
    );
    assert_eq!(remote_t["validity"], 90 * 86_400, "{remote_t}");
    assert_eq!(remote_t["subject"], local_t["subject"]);
    assert!(
        remote_t["subject"].to_string().contains("fleet.test"),
        "{remote_t}"
    );
    assert_eq!(
        r.ok(
            "tmpl",
            &[
                "template",
                "grant",
                "Intranet Web",
                "--group",
                "Workstations",
                "--enroll"
            ]
        ),
        "template `Intranet Web`: Workstations [Read, Enroll]\n"
    );
    assert_eq!(
        r.ok("tmpl", &["template", "publish", "Intranet Web"]),
        "template `Intranet Web` v1.1 is published\n"
    );
    assert_eq!(
        r.ok("tmpl", &["template", "bump", "Intranet Web"]),
        "template `Intranet Web` is now v2.0: every holder re-enrolls\n"
    );
    let t = site.json(&["template", "show", "Intranet Web"]);
    assert_eq!(t["published"], true, "{t}");
    r.same_listing("tmpl", &["template", "list"]);

    // ca-admin: the directory.
    assert_eq!(
        r.ok("tmpl", &["directory", "add-group", "Kiosks"]),
        "added group Kiosks\n"
    );
    assert_eq!(
        r.ok(
            "tmpl",
            &[
                "directory",
                "add-computer",
                "PC2",
                "--dns",
                "pc2.fleet.test",
                "--group",
                "Kiosks"
            ]
        ),
        "added computer PC2\n"
    );
    assert_eq!(
        r.ok(
            "tmpl",
            &["directory", "add-user", "bob", "--email", "bob@fleet.test"]
        ),
        "added user bob\n"
    );
    assert_eq!(
        r.ok("tmpl", &["directory", "add-member", "Workstations", "PC2"]),
        "PC2 is a member of Workstations\n"
    );
    let csv = site.path("dir.csv");
    std::fs::write(
        &csv,
        "kind,name,dns,email,upn,groups\ncomputer,PC3,pc3.fleet.test,,,Kiosks;Labs\n",
    )
    .expect("csv");
    assert_eq!(
        r.ok("tmpl", &["directory", "import", s(&csv)]),
        "imported 1 principal(s), created 1 group(s)\n"
    );
    let d = r.same_listing("tmpl", &["directory", "list"]);
    let pc2 = d["principals"]
        .as_array()
        .expect("principals")
        .iter()
        .find(|p| p["name"] == "PC2")
        .unwrap_or_else(|| panic!("PC2 missing: {d}"));
    assert_eq!(pc2["groups"], json!(["Kiosks", "Workstations"]), "{d}");
    assert!(d["groups"].to_string().contains("Labs"), "{d}");

    // cert-manager: submit (pending), list, approve, revoke, CRL.
    let pc1_csr = csr(site, "pc1", "PC1");
    let out = r.ok(
        "ops",
        &[
            "request",
            "submit",
            "--template",
            "Approved Workstation",
            "--as",
            "PC1",
            "--csr",
            s(&pc1_csr),
        ],
    );
    assert!(out.contains("pending approval"), "{out}");
    let id = request_id(&out);
    let pending = r.same_listing("ops", &["request", "list", "--pending"]);
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    let cert_out = site.path("approved.pem");
    let out = r.ok("ops", &["request", "approve", &id, "--out", s(&cert_out)]);
    let serial = issued_serial(&out);
    assert!(out.contains(" to PC1: "), "{out}");
    assert!(
        std::fs::read_to_string(&cert_out)
            .expect("cert")
            .starts_with("-----BEGIN CERTIFICATE-----"),
    );
    // Issued now (no approval): the same lines as a local submission print.
    let srv_csr = csr(site, "pc1b", "PC1");
    let out = r.ok(
        "ops",
        &[
            "request",
            "submit",
            "--template",
            "Workstation",
            "--as",
            "PC1",
            "--csr",
            s(&srv_csr),
        ],
    );
    assert!(out.contains(": issued\nissued serial "), "{out}");
    let denied = r.ok(
        "ops",
        &[
            "request",
            "submit",
            "--template",
            "Approved Workstation",
            "--as",
            "PC1",
            "--csr",
            s(&pc1_csr),
        ],
    );
    let denied = request_id(&denied);
    assert_eq!(
        r.ok(
            "ops",
            &["request", "deny", &denied, "--reason", "not this one"]
        ),
        format!("request {denied}: denied\n")
    );
    r.same_listing("ops", &["request", "list"]);
    r.same_listing("ops", &["cert", "list"]);
    r.same_listing(
        "ops",
        &["cert", "list", "--template", "Approved Workstation"],
    );
    r.same_listing("ops", &["cert", "show", &serial]);
    assert_eq!(
        r.ok("ops", &["cert", "show", &serial, "--pem"]),
        site.ok(&["cert", "show", &serial, "--pem"])
    );
    let out = r.ok(
        "ops",
        &["cert", "revoke", &serial, "--reason", "keyCompromise"],
    );
    assert!(
        out.starts_with(&format!("revoked {serial} (keyCompromise) at ")),
        "{out}"
    );
    let c = site.json(&["cert", "show", &serial]);
    assert_eq!(c["revocation"]["reason"], "keyCompromise", "{c}");
    r.same_listing("ops", &["cert", "list", "--revoked"]);
    let crl = site.path("issuing.crl");
    let out = r.ok("ops", &["crl", "publish", "--out", s(&crl)]);
    assert!(out.starts_with("published issuing full CRL #"), "{out}");
    let o = kit::openssl(&["crl", "-in", s(&crl), "-noout", "-text"]).expect("openssl");
    assert!(o.success(), "{}", o.combined());
    assert!(
        o.stdout.to_ascii_lowercase().contains(&serial),
        "{serial} not in {}",
        o.stdout
    );
    let der_crl = site.path("root.crl");
    let out = r.ok(
        "ops",
        &[
            "crl",
            "publish",
            "--issuer",
            "root",
            "--der",
            "--out",
            s(&der_crl),
        ],
    );
    assert!(out.starts_with("published root full CRL #"), "{out}");
    let o =
        kit::openssl(&["crl", "-inform", "DER", "-in", s(&der_crl), "-noout"]).expect("openssl");
    assert!(o.success(), "{}", o.combined());

    // Clients and status messages (read by anyone with a role; decided by a cert-manager).
    registered_clients(site, &["PC7", "PC8"]);
    r.same_listing("tmpl", &["client", "list"]);
    assert_eq!(
        r.ok("ops", &["client", "approve", "PC7"]),
        "client PC7 is approved\n"
    );
    assert_eq!(
        r.ok("ops", &["client", "block", "PC8"]),
        "client PC8 is blocked\n"
    );
    r.same_listing("tmpl", &["client", "list", "--status", "blocked"]);
    let blocked = site.json(&["client", "list", "--status", "blocked"]);
    assert_eq!(blocked[0]["name"], "PC8", "{blocked}");
    assert_eq!(blocked[0]["decided_by"], "token:ops", "{blocked}");
    recorded_status(
        site,
        &[
            (1_000, "PC1", "renewal-failed"),
            (2_000, "PC2", "selection-failed"),
            (3_000, "PC1", "policy-invalid"),
        ],
    );
    let all = r.same_listing("tmpl", &["status", "list"]);
    assert_eq!(all.as_array().map(Vec::len), Some(3), "{all}");
    let some = r.same_listing(
        "audit",
        &[
            "status", "list", "--client", "PC1", "--since", "1500", "--limit", "5",
        ],
    );
    assert_eq!(some[0]["kind"], "policy-invalid", "{some}");
    assert_eq!(some.as_array().map(Vec::len), Some(1), "{some}");

    // One-time secrets: enrollment token, SCEP challenge, ACME EAB.
    let o = r.run(
        "ops",
        &["token", "create", "--principal", "PC1", "--expires", "1h"],
    );
    assert!(o.status.success(), "{o:?}");
    let token = String::from_utf8(o.stdout.clone()).expect("utf8");
    assert!(token.trim().contains('.'), "{token}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("one-time enrollment token for PC1"),
        "{o:?}"
    );
    let o = r.run(
        "ops",
        &[
            "scep",
            "challenge",
            "--principal",
            "PC1",
            "--template",
            "Workstation",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("one-time SCEP challenge for PC1 (template Workstation)"),
        "{o:?}"
    );
    let out = r.ok("ops", &["acme", "eab", "--principal", "PC1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.len() == 2 && lines[0].starts_with("kid: ") && lines[1].starts_with("hmac_key: "),
        "{out}"
    );

    // The site's certificates: the same bytes as locally.
    let (remote_chain, local_chain) = (site.path("r-chain.pem"), site.path("l-chain.pem"));
    let out = r.ok("audit", &["ca", "chain", "--out", s(&remote_chain)]);
    assert!(out.starts_with("wrote 2 certificate(s) to "), "{out}");
    site.ok(&["ca", "chain", "--out", s(&local_chain)]);
    assert_eq!(read(&remote_chain), read(&local_chain));
    let (remote_sig, local_sig) = (site.path("r-sig.pem"), site.path("l-sig.pem"));
    let remote_out = r.ok("audit", &["site", "signing-cert", "--out", s(&remote_sig)]);
    let local_out = site.ok(&["site", "signing-cert", "--out", s(&local_sig)]);
    assert_eq!(read(&remote_sig), read(&local_sig));
    assert_eq!(
        remote_out.rsplit_once(' ').map(|x| x.1),
        local_out.rsplit_once(' ').map(|x| x.1)
    );
    let show = r.ok("audit", &["ca", "show"]);
    assert!(show.contains(&format!("server: {}", r.url)), "{show}");
    assert!(show.contains("issuing CA: "), "{show}");

    // The audit log records the tokens as actors, and reads the same both ways.
    let audit = r.same_listing("audit", &["audit", "list"]);
    let actors = audit.to_string();
    for actor in ["token:tmpl", "token:ops"] {
        assert!(actors.contains(actor), "{actor} missing from the audit log");
    }
    assert_eq!(
        r.ok("audit", &["audit", "verify"]),
        site.ok(&["audit", "verify"])
    );
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Refusals: a role without the permission (403), bad or missing credentials, an untrusted
/// server certificate, a server error's problem detail; none changes the database.
#[test]
fn refusals_are_clear_and_change_nothing() {
    let r = Remote::start();
    let site = &r.site;
    let before = site.fingerprint();

    let e = r.fails("audit", &["directory", "add-group", "Kiosks"]);
    assert!(
        e.contains(&format!(
            "{}: HTTP 403: authorization: `token:audit` does not hold the ca-admin role",
            r.url
        )),
        "{e}"
    );
    let e = r.fails("tmpl", &["cert", "revoke", "01", "--reason", "superseded"]);
    assert!(e.contains("HTTP 403: authorization: "), "{e}");
    // A server-side rule, named by its field.
    let e = r.fails("tmpl", &["directory", "add-member", "Nope", "PC1"]);
    assert!(e.contains("HTTP 404: group: "), "{e}");
    let e = r.fails("tmpl", &["template", "show", "No Such Template"]);
    assert!(
        e.contains("HTTP 404: template: no template named `No Such Template`"),
        "{e}"
    );
    // The CLI's own checks come first, as locally.
    let e = r.fails("ops", &["cert", "revoke", "01", "--reason", "whim"]);
    assert!(e.starts_with("error: --reason: "), "{e}");

    // Credentials: a wrong secret, a file that is no token, none at all.
    let wrong = site.path("wrong.token");
    std::fs::write(&wrong, "tmpl:00\n").expect("write");
    let url = r.url.as_str();
    let args = |file: &Path| -> Vec<String> {
        [
            "--server",
            url,
            "--api-token-file",
            s(file),
            "template",
            "list",
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |a: &[String]| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        refused(site.run(&a), &a)
    };
    let e = run(&args(&wrong));
    assert!(
        e.contains("HTTP 401: authorization: unknown API token or wrong secret"),
        "{e}"
    );
    let not_token = site.path("not.token");
    std::fs::write(&not_token, "just-a-secret\n").expect("write");
    let e = run(&args(&not_token));
    assert!(e.contains("--api-token-file: must hold NAME:SECRET"), "{e}");
    let e = run(&args(&site.path("missing.token")));
    assert!(e.contains("--api-token-file: cannot read "), "{e}");
    let e = run(&[
        "--server".into(),
        url.into(),
        "template".into(),
        "list".into(),
    ]);
    assert!(e.contains("--server: needs credentials"), "{e}");
    // FLEETPKI_API_TOKEN holds the token when no file is named.
    let token = read(&site.path("tmpl.token"));
    let o = bin()
        .env("FLEETPKI_DIR", site.dir.path())
        .env("FLEETPKI_SERVER", url)
        .env("FLEETPKI_API_TOKEN", token.trim())
        .args(["template", "list"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        site.ok(&["template", "list"])
    );

    // The server's certificate checked against another site's root: a TLS error naming it.
    let other = Site::empty();
    other.ok(&["init", "--site-code", "XX1"]);
    let file = site.path("tmpl.token");
    let e = run(&[
        "--server".into(),
        url.into(),
        "--api-token-file".into(),
        s(&file).into(),
        "--ca-file".into(),
        s(&other.path("ca/root.pem")).into(),
        "template".into(),
        "list".into(),
    ]);
    assert!(e.contains(&format!("{url}: TLS handshake failed: ")), "{e}");
    assert!(e.contains("--ca-file"), "{e}");
    // Nothing is read from --dir but the default root: from an empty directory, with
    // --ca-file, the listing is the site's.
    let empty = tempfile::tempdir().expect("tempdir");
    let o = bin()
        .env("FLEETPKI_DIR", empty.path())
        .args(["--server", url, "--api-token-file", s(&file)])
        .args([
            "--ca-file",
            s(&site.path("ca/root.pem")),
            "template",
            "list",
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        site.ok(&["template", "list"])
    );
    // No --ca-file and no site root in --dir.
    let o = bin()
        .env("FLEETPKI_DIR", empty.path())
        .args([
            "--server",
            url,
            "--api-token-file",
            s(&file),
            "template",
            "list",
        ])
        .output()
        .expect("run");
    let e = refused(o, &["(no root)"]);
    assert!(e.contains("--ca-file: needed to trust "), "{e}");
    // An http:// URL.
    let e = run(&[
        "--server".into(),
        url.replace("https://", "http://"),
        "--api-token-file".into(),
        s(&file).into(),
        "template".into(),
        "list".into(),
    ]);
    assert!(e.contains("--server: ") && e.contains("https://"), "{e}");

    assert_eq!(site.fingerprint(), before, "a refusal changed the database");
}

/// An admin client certificate instead of a token: ADM1 (in cert-managers) reads and
/// approves; a write that needs ca-admin is refused.
#[test]
fn admin_client_certificate() {
    let r = Remote::start();
    let site = &r.site;
    let key_csr = csr(site, "adm1", "ADM1");
    let cert = site.issue("Workstation", "ADM1", &key_csr, "adm1.pem");
    let key = site.path("adm1.key");
    let with_cert = |args: &[&str]| {
        let mut all = vec![
            "--server",
            &r.url,
            "--client-cert",
            s(&cert),
            "--client-key",
            s(&key),
        ];
        all.extend(args);
        site.run(&all)
    };
    let o = with_cert(&["request", "list"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        site.ok(&["request", "list"])
    );
    let pending = r.ok(
        "ops",
        &[
            "request",
            "submit",
            "--template",
            "Approved Workstation",
            "--as",
            "PC1",
            "--csr",
            s(&csr(site, "pc1", "PC1")),
        ],
    );
    let id = request_id(&pending);
    let o = with_cert(&["request", "approve", &id]);
    assert!(o.status.success(), "{o:?}");
    let req = site.json(&["request", "list"]);
    let approved = req
        .as_array()
        .expect("requests")
        .iter()
        .find(|q| q["id"].as_i64().map(|n| n.to_string()).as_deref() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("{id} missing: {req}"));
    assert_eq!(approved["status"], "issued", "{req}");
    assert_eq!(approved["decided_by"], "ADM1", "{req}");
    let before = site.fingerprint();
    let e = refused(
        with_cert(&["directory", "add-group", "Kiosks"]),
        &["add-group"],
    );
    assert!(
        e.contains("HTTP 403: authorization: `ADM1` does not hold the ca-admin role"),
        "{e}"
    );
    // A key that is not the certificate's.
    let other_key = site.path("pc1.key");
    let o = site.run(&[
        "--server",
        &r.url,
        "--client-cert",
        s(&cert),
        "--client-key",
        s(&other_key),
        "request",
        "list",
    ]);
    let e = refused(o, &["mismatched key"]);
    assert!(e.contains("--client-key: "), "{e}");
    assert_eq!(site.fingerprint(), before);
}

/// Commands the admin API has no endpoint for refuse `--server` (flag or FLEETPKI_SERVER),
/// naming the command and why, before touching anything.
#[test]
fn local_only_commands_refuse_server() {
    let site = Site::empty();
    let server = "https://localhost:1";
    for (args, command) in [
        (vec!["init", "--site-code", "PS1"], "init"),
        (vec!["serve"], "serve"),
        (
            vec!["api-token", "new", "--name", "x", "--role", "auditor"],
            "api-token",
        ),
        (vec!["agent", "status"], "agent"),
        (vec!["check", "--list-profiles"], "check"),
        (vec!["simulate"], "simulate"),
    ] {
        let mut all = vec!["--server", server];
        all.extend(&args);
        let e = refused(site.run(&all), &all);
        assert!(
            e.contains(&format!("`fleetpki {command}` cannot run against a server")),
            "{e}"
        );
        let o = bin()
            .env("FLEETPKI_DIR", site.dir.path())
            .env("FLEETPKI_SERVER", server)
            .args(&args)
            .output()
            .expect("run");
        let e = refused(o, &args);
        assert!(e.contains(&format!("`fleetpki {command}`")), "{e}");
    }
    assert!(
        std::fs::read_dir(site.dir.path())
            .expect("dir")
            .next()
            .is_none(),
        "a refused command wrote to the site directory"
    );
    let e = refused(
        site.run(&[
            "--server",
            server,
            "--passphrase-file",
            "pw",
            "template",
            "list",
        ]),
        &["--passphrase-file"],
    );
    assert!(e.contains("--passphrase-file: not with --server"), "{e}");
    // Credentials without a server are a usage error.
    let o = site.run(&["--api-token-file", "x", "template", "list"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--server"),
        "{o:?}"
    );
}
