//! Site lifecycle through the CLI: approval, passphrase-protected keys, imported CAs, template
//! versions, directory import, and the same flow on PostgreSQL.

mod common;
use common::{Site, openssl_csr, s};
use fleetpki_testkit as kit;
use std::os::unix::fs::PermissionsExt;

#[test]
fn approval_pending_approve_deny() {
    let site = Site::two_tier();
    site.ok(&["template", "duplicate", "Workstation", "Approved WS"]);
    site.ok(&[
        "template",
        "set",
        "Approved WS",
        "--require-approval",
        "true",
    ]);
    site.enable("Approved WS", "Workstations");
    let csr = openssl_csr(site.dir.path(), "pc", "ec:P-256", "/CN=pc1", &[]);
    let out = site.ok(&[
        "request",
        "submit",
        "--template",
        "Approved WS",
        "--as",
        "PC1",
        "--csr",
        s(&csr),
    ]);
    assert!(out.contains("request 1: pending approval"), "{out}");
    assert!(
        site.json(&["cert", "list"])
            .as_array()
            .expect("list")
            .is_empty()
    );
    let pending = site.json(&["request", "list", "--pending"]);
    assert_eq!(pending[0]["status"], "pending");
    let leaf = site.path("pc.pem");
    site.ok(&["request", "approve", "1", "--out", s(&leaf)]);
    let v = kit::openssl_verify(
        &site.root_pem(),
        Some(&site.issuing_pem()),
        None,
        &std::fs::read_to_string(&leaf).expect("leaf"),
    )
    .expect("verify");
    assert_eq!(v.status, 0, "{}", v.stdout);
    let err = site.fails(&["request", "approve", "1"]);
    assert!(err.contains("request 1 is issued, not pending"), "{err}");

    site.ok(&[
        "request",
        "submit",
        "--template",
        "Approved WS",
        "--as",
        "PC1",
        "--csr",
        s(&csr),
    ]);
    site.ok(&["request", "deny", "2", "--reason", "not a managed machine"]);
    let all = site.json(&["request", "list"]);
    assert_eq!(all[0]["status"], "denied");
    assert_eq!(all[0]["reason"], "not a managed machine");
    let audit = site.ok(&["audit", "list"]);
    for action in [
        "request.submit",
        "request.approve",
        "cert.issue",
        "request.deny",
    ] {
        assert!(audit.contains(action), "audit lacks {action}");
    }
    site.ok(&["audit", "verify"]);
}

#[test]
fn passphrase_protected_keys() {
    let mut site = Site::empty();
    site.env.push((
        "FLEETPKI_PASSPHRASE".into(),
        "correct horse battery staple".into(),
    ));
    site.ok(&["init", "--site-code", "PS1", "--two-tier"]);
    for k in ["root", "issuing", "site-signing"] {
        let p = site.path(&format!("keys/{k}.key.pem"));
        assert_eq!(
            std::fs::metadata(&p).expect("key").permissions().mode() & 0o777,
            0o600,
            "{k}"
        );
        let text = std::fs::read_to_string(&p).expect("key");
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{k} is not encrypted"
        );
        let o = kit::openssl(&[
            "pkcs8",
            "-in",
            s(&p),
            "-passin",
            "pass:correct horse battery staple",
            "-out",
            "/dev/null",
        ])
        .expect("openssl");
        assert_eq!(o.status, 0, "openssl cannot decrypt {k}: {}", o.stderr);
    }
    assert!(!site.path("secrets/kek").exists());
    site.add_pc1();
    site.enable("Workstation", "Workstations");
    let csr = openssl_csr(site.dir.path(), "pc", "ec:P-256", "/CN=pc1", &[]);
    let submit = [
        "request",
        "submit",
        "--template",
        "Workstation",
        "--as",
        "PC1",
        "--csr",
        s(&csr),
    ];
    site.ok(&submit);

    let before = site.fingerprint();
    site.env.clear();
    let err = site.fails(&submit);
    assert!(err.starts_with("error: FLEETPKI_PASSPHRASE: "), "{err}");
    site.env
        .push(("FLEETPKI_PASSPHRASE".into(), "wrong".into()));
    let err = site.fails(&submit);
    assert!(err.starts_with("error: passphrase: "), "{err}");
    assert_eq!(site.fingerprint(), before);
    // Reading needs no key.
    site.env.clear();
    site.ok(&["template", "list"]);
}

#[test]
fn unattended_site_keys_are_encrypted_under_a_kek() {
    let site = Site::empty();
    site.ok(&["init", "--site-code", "PS1"]);
    let kek = site.path("secrets/kek");
    assert_eq!(
        std::fs::metadata(&kek).expect("kek").permissions().mode() & 0o777,
        0o600
    );
    let key = std::fs::read_to_string(site.path("keys/root.key.pem")).expect("key");
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert!(!site.path("ca/issuing.pem").exists(), "one-tier by default");
}

fn openssl_ok(args: &[&str]) {
    let o = kit::openssl(args).expect("openssl");
    assert_eq!(o.status, 0, "openssl {args:?}: {}", o.stderr);
}

#[test]
fn imported_root_and_imported_issuing_ca() {
    let work = tempfile::tempdir().expect("tmp");
    let w = |n: &str| work.path().join(n).display().to_string();
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &w("root.key"),
        "-out",
        &w("root.pem"),
        "-subj",
        "/CN=Contoso Root",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    std::fs::write(w("ext.cnf"), "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n").expect("cnf");
    openssl_ok(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &w("inter.key"),
        "-out",
        &w("inter.csr"),
        "-subj",
        "/CN=Contoso Issuing",
    ]);
    openssl_ok(&[
        "x509",
        "-req",
        "-in",
        &w("inter.csr"),
        "-CA",
        &w("root.pem"),
        "-CAkey",
        &w("root.key"),
        "-CAcreateserial",
        "-out",
        &w("inter.pem"),
        "-days",
        "1825",
        "-extfile",
        &w("ext.cnf"),
    ]);

    // 1. An external root: the site issues directly under it.
    let site = Site::empty();
    site.ok(&[
        "init",
        "--site-code",
        "PS1",
        "--import-cert",
        &w("root.pem"),
        "--import-key",
        &w("root.key"),
    ]);
    site.add_pc1();
    site.enable("Workstation", "Workstations");
    let csr = openssl_csr(site.dir.path(), "pc", "ec:P-256", "/CN=pc1", &[]);
    let leaf = site.issue("Workstation", "PC1", &csr, "pc.pem");
    let root = std::fs::read_to_string(w("root.pem")).expect("root");
    let v = kit::openssl_verify(
        &root,
        None,
        None,
        &std::fs::read_to_string(&leaf).expect("leaf"),
    )
    .expect("verify");
    assert_eq!(v.status, 0, "{}", v.stdout);

    // 2. An external issuing CA with its chain.
    let site = Site::empty();
    let err = site.fails(&[
        "init",
        "--site-code",
        "PS1",
        "--import-cert",
        &w("inter.pem"),
        "--import-key",
        &w("inter.key"),
    ]);
    assert!(err.starts_with("error: --import-chain: "), "{err}");
    let err = site.fails(&[
        "init",
        "--site-code",
        "PS1",
        "--import-cert",
        &w("inter.pem"),
        "--import-key",
        &w("root.key"),
        "--import-chain",
        &w("root.pem"),
    ]);
    assert!(
        err.starts_with("error: --import-key: the key does not belong"),
        "{err}"
    );
    let site = Site::empty();
    site.ok(&[
        "init",
        "--site-code",
        "PS1",
        "--import-cert",
        &w("inter.pem"),
        "--import-key",
        &w("inter.key"),
        "--import-chain",
        &w("root.pem"),
    ]);
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
    site.enable("WebServer", "Servers");
    let csr = openssl_csr(
        site.dir.path(),
        "srv",
        "rsa:2048",
        "/CN=srv1.fleet.test",
        &[],
    );
    let leaf = site.issue("WebServer", "SRV1", &csr, "srv.pem");
    let inter = std::fs::read_to_string(w("inter.pem")).expect("inter");
    let v = kit::openssl_verify(
        &root,
        Some(&inter),
        None,
        &std::fs::read_to_string(&leaf).expect("leaf"),
    )
    .expect("verify");
    assert_eq!(v.status, 0, "{}", v.stdout);
    assert_eq!(site.chain_pem().matches("BEGIN CERTIFICATE").count(), 2);
}

#[test]
fn template_versions_and_directory_import() {
    let site = Site::two_tier();
    site.ok(&["template", "duplicate", "Workstation", "Fleet WS"]);
    site.ok(&[
        "template",
        "set",
        "Fleet WS",
        "--validity",
        "90d",
        "--renewal-period",
        "2w",
    ]);
    site.ok(&["template", "bump", "Fleet WS"]);
    let t = site.json(&["template", "show", "Fleet WS"]);
    assert_eq!(t["version"]["major"], 2);
    assert_eq!(t["version"]["minor"], 0);
    let versions: Vec<String> = site
        .json(&["template", "history", "Fleet WS"])
        .as_array()
        .expect("history")
        .iter()
        .map(|v| format!("{}.{}", v["version"]["major"], v["version"]["minor"]))
        .collect();
    assert_eq!(versions, ["1.0", "1.1", "2.0"]);
    // Display names find templates too.
    site.ok(&["template", "show", "workstation authentication"]);

    let json = site.path("dir.json");
    std::fs::write(&json, r#"{"groups":["Kiosks"],"principals":[{"name":"K1","kind":"computer","dns":"k1.fleet.test","groups":["Kiosks"]}]}"#).expect("json");
    let out = site.ok(&["directory", "import", s(&json)]);
    assert!(
        out.contains("imported 1 principal(s), created 1 group(s)"),
        "{out}"
    );
    let csv = site.path("dir.csv");
    std::fs::write(&csv, "kind,name,dns,email,upn,groups\ncomputer,K2,k2.fleet.test,,,Kiosks;Labs\nuser,bob,,bob@fleet.test,,Users\n").expect("csv");
    site.ok(&["directory", "import", s(&csv)]);
    let list = site.json(&["directory", "list"]);
    let k2 = list["principals"]
        .as_array()
        .expect("principals")
        .iter()
        .find(|p| p["name"] == "K2")
        .expect("K2")
        .clone();
    assert_eq!(k2["groups"], serde_json::json!(["Kiosks", "Labs"]));
    let bad = site.path("bad.csv");
    std::fs::write(
        &bad,
        "kind,name,dns,email,upn,groups\ncomputer,K3,,,,Kiosks\n",
    )
    .expect("csv");
    let before = site.fingerprint();
    let err = site.fails(&["directory", "import", s(&bad)]);
    assert!(err.contains("entry 1 (K3): principal.dns"), "{err}");
    assert_eq!(site.fingerprint(), before, "a failed import stores nothing");
}

#[test]
fn site_on_postgresql() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let db = format!("fleetpki_cli_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&admin).await.expect("postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
            .execute(&mut c)
            .await
            .expect("drop");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut c)
            .await
            .expect("create");
    });
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{db}"),
        None => panic!("bad FLEETPKI_TEST_POSTGRES_URL"),
    };
    let site = Site::empty();
    site.ok(&["init", "--site-code", "PG1", "--two-tier", "--db", &url]);
    assert!(!site.path("fleetpki.db").exists());
    site.add_pc1();
    site.enable("Workstation", "Workstations");
    let csr = openssl_csr(site.dir.path(), "pc", "ec:P-256", "/CN=pc1", &[]);
    site.issue("Workstation", "PC1", &csr, "pc.pem");
    let serial = site.json(&["cert", "list"])[0]["serial"]
        .as_str()
        .expect("serial")
        .to_string();
    site.ok(&["cert", "revoke", &serial]);
    site.ok(&["crl", "publish", "--out", s(&site.path("ca.crl"))]);
    assert!(
        site.ok(&["audit", "verify"])
            .contains("hash chain verified")
    );
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&admin).await.expect("postgres");
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&mut c)
        .await;
    });
}

/// The test PostgreSQL's admin URL; missing is a failure under CI and a skip elsewhere.
fn postgres_admin_url() -> Option<String> {
    match std::env::var("FLEETPKI_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if kit::tools_required() => {
            panic!("FLEETPKI_TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh")
        }
        _ => {
            eprintln!(
                "skipping: FLEETPKI_TEST_POSTGRES_URL is not set (scripts/test.sh starts PostgreSQL)"
            );
            None
        }
    }
}

#[test]
fn validity_never_exceeds_the_issuer_and_inventory_filters() {
    let site = Site::two_tier();
    site.ok(&["template", "duplicate", "Workstation", "Long WS"]);
    site.ok(&["template", "set", "Long WS", "--validity", "30y"]);
    site.enable("Long WS", "Workstations");
    site.enable("Workstation", "Workstations");
    let csr = openssl_csr(site.dir.path(), "pc", "ec:P-256", "/CN=pc1", &[]);
    let long = site.issue("Long WS", "PC1", &csr, "long.pem");
    site.ok(&[
        "request",
        "submit",
        "--template",
        "Workstation",
        "--as",
        "PC1",
        "--csr",
        s(&csr),
    ]);
    let end = |p: &str| {
        kit::openssl(&["x509", "-in", p, "-noout", "-enddate"])
            .expect("enddate")
            .stdout
    };
    assert_eq!(
        end(s(&long)),
        end(s(&site.path("ca/issuing.pem"))),
        "a 30-year template is cut to the issuing CA's notAfter"
    );

    let count = |args: &[&str]| site.json(args).as_array().map(Vec::len).expect("array");
    assert_eq!(count(&["cert", "list"]), 2);
    assert_eq!(
        count(&["cert", "list", "--expiring-within", "400d"]),
        1,
        "only the one-year certificate"
    );
    assert_eq!(count(&["cert", "list", "--template", "Long WS"]), 1);
    assert_eq!(count(&["cert", "list", "--principal", "PC1"]), 2);
    assert_eq!(count(&["cert", "list", "--principal", "SRV1"]), 0);
    assert_eq!(count(&["cert", "list", "--revoked"]), 0);

    let audit = site.json(&["audit", "list"]);
    let key_uses = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["action"] == "key.use")
        .count();
    assert_eq!(
        key_uses, 2,
        "each signature by the issuing CA is audited as a key use"
    );
}
