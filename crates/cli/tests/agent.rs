//! The agent end to end: `fleetpki serve` on loopback and agents installed against it, showing
//! first enrollment, renewal at the computed time (not before), re-enrollment after a template
//! bump, replacement after revocation, a selection failure reported to the fallback status
//! point, a changed signing certificate refused, PKCS#12 export read by openssl and Python,
//! and a store that stays consistent when the agent is killed mid-renewal.

mod common;

use common::server::Server;
use common::{Site, bin, openssl_csr, s};
use fleetpki_agent::store::{self, AgentStore, StoreName};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SERVE: &str = "[roles.api]\nenabled = false\n[roles.ocsp]\nenabled = false\n[roles.crl]\nenabled = false\n[tls]\nintranet_fqdn = \"localhost\"\n[management_point]\nregistration = \"auto\"\n";
const DAY: i64 = 86_400;
/// A copy of the Workstation Authentication base template whose keys may be exported.
const TEMPLATE: &str = "Fleet-Workstation";

/// A two-tier site whose Workstations may autoenroll `Workstation` (exportable), serving its
/// management point and fallback status point.
fn site() -> (Site, Server) {
    let site = Site::two_tier();
    site.ok(&[
        "directory",
        "add-computer",
        "PC2",
        "--dns",
        "pc2.fleet.test",
        "--group",
        "Workstations",
    ]);
    site.ok(&["template", "duplicate", "Workstation", TEMPLATE]);
    site.ok(&["template", "set", TEMPLATE, "--exportable", "true"]);
    site.ok(&[
        "template",
        "grant",
        TEMPLATE,
        "--group",
        "Workstations",
        "--autoenroll",
    ]);
    site.ok(&["template", "publish", TEMPLATE]);
    site.ok(&[
        "site",
        "signing-cert",
        "--out",
        s(&site.path("smssign.pem")),
    ]);
    let server = Server::start(&site, SERVE, 2);
    (site, server)
}

/// One unlabelled sample of the server's `/metrics` (served on every listener; read from the
/// fallback status point's, plain HTTP).
fn metric(server: &Server, name: &str) -> f64 {
    let url = format!("{}/metrics", server.url("fallback-status-point"));
    let o = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--noproxy", "*", &url])
        .output()
        .expect("curl");
    assert!(o.status.success(), "{url}: {o:?}");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

fn mp_url(server: &Server) -> String {
    server
        .url("management-point")
        .replace("127.0.0.1", "localhost")
}

struct Agent {
    dir: tempfile::TempDir,
}

impl Agent {
    fn install(site: &Site, server: &Server, name: &str, extra: &[&str]) -> Agent {
        let a = Agent {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let url = mp_url(server);
        let root = site.path("ca/root.pem");
        let fqdn = format!("{}.fleet.test", name.to_lowercase());
        let signing = site.path("smssign.pem");
        let fsp = format!("{}/status", server.url("fallback-status-point"));
        let mut args = vec![
            "agent",
            "install",
            "--site",
            &url,
            "--root",
            s(&root),
            "--name",
            name,
            "--fqdn",
            &fqdn,
            "--fallback-status-point",
            &fsp,
        ];
        if extra.is_empty() {
            args.extend(["--site-signing-cert", s(&signing)]);
        } else {
            args.extend(extra);
        }
        a.ok(&args);
        a
    }

    fn run(&self, args: &[&str]) -> Output {
        bin()
            .env("FLEETPKI_DIR", self.dir.path())
            .env("FLEETPKI_P12_PASSWORD", "correct horse")
            .env_remove("RUST_LOG")
            .args(args)
            .output()
            .expect("run fleetpki")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "fleetpki {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Cycles until one logs `wanted` (the site notices store changes within its poll
    /// interval, one second by default); that cycle's log lines. Cycles in between only keep.
    fn cycle_until(&self, wanted: &str) -> String {
        for _ in 0..40 {
            let log = self.cycle(None);
            if log.contains(wanted) {
                return log;
            }
            assert!(
                !log.contains("action=enroll") && !log.contains("action=renew"),
                "acted before `{wanted}`:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!("no cycle logged `{wanted}` within 10 s");
    }

    /// One cycle (optionally as of a given time); its log lines.
    fn cycle(&self, as_of: Option<i64>) -> String {
        let at = as_of.map(|t| t.to_string());
        let mut args = vec!["agent", "run", "--once"];
        if let Some(t) = &at {
            args.extend(["--as-of", t.as_str()]);
        }
        self.ok(&args)
    }

    fn store(&self) -> AgentStore {
        AgentStore::open(self.dir.path()).expect("store")
    }

    fn personal(&self) -> Vec<store::Entry> {
        self.store()
            .list(StoreName::Personal)
            .expect("list")
            .entries
    }

    fn archive(&self) -> Vec<store::Entry> {
        self.store().list(StoreName::Archive).expect("list").entries
    }

    fn state_pending_empty(&self) -> bool {
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.path("state.json")).unwrap())
                .unwrap();
        state["pending"].as_object().is_some_and(|p| p.is_empty())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// `due_at` from a `next_due=` field of the log line for `action`.
fn next_due(log: &str, action: &str) -> i64 {
    let line = log
        .lines()
        .find(|l| l.contains(&format!("action={action} ")))
        .unwrap_or_else(|| panic!("no {action} line in:\n{log}"));
    let stamp = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("next_due="))
        .unwrap_or_else(|| panic!("no next_due in {line}"));
    time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
        .expect("rfc3339")
        .unix_timestamp()
}

fn openssl_verify(site: &Site, cert: &Path) {
    let out = Command::new("openssl")
        .args([
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            s(&site.path("ca/root.pem")),
            "-untrusted",
            s(&site.path("ca/issuing.pem")),
            s(cert),
        ])
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn autoenrollment_lifecycle() {
    let (site, server) = site();
    let pc1 = Agent::install(&site, &server, "PC1", &[]);

    // First cycle: registers its self-signed identity (auto-approved), verifies the policy,
    // enrolls for Workstation.
    let log = pc1.cycle(None);
    assert!(log.contains("action=register"), "{log}");
    assert!(log.contains("action=policy"), "{log}");
    assert!(
        log.contains(&format!("action=enroll template=\"{TEMPLATE}\"")),
        "{log}"
    );
    let first = pc1.personal();
    assert_eq!(first.len(), 1, "{log}");
    let cert = &first[0];
    assert_eq!(cert.meta.template.as_deref(), Some(TEMPLATE));
    let pem_path = pc1.path("first.pem");
    std::fs::write(&pem_path, fleetpki_x509::cert::to_pem(&cert.der)).unwrap();
    openssl_verify(&site, &pem_path);
    // The certificate now authenticates the agent, and selection explains it.
    let explain = pc1.ok(&["agent", "select", "--explain"]);
    assert!(explain.contains(&cert.info.serial_hex), "{explain}");

    // Renewal: a 1-year Workstation certificate with a 6-week renewal period is due 6 weeks
    // before expiry; not a second before.
    let log = pc1.cycle(None);
    let due = next_due(&log, "keep");
    assert_eq!(due, cert.info.not_after - 42 * DAY, "{log}");
    let log = pc1.cycle(Some(due - 1));
    assert!(log.contains("action=keep"), "{log}");
    assert_eq!(pc1.personal().len(), 1);
    let log = pc1.cycle(Some(due));
    assert!(log.contains("action=renew"), "{log}");
    assert!(log.contains("renewal due since"), "{log}");
    let renewed = pc1.personal();
    assert_eq!(renewed.len(), 1);
    assert_ne!(renewed[0].info.serial_hex, cert.info.serial_hex);
    let archived = pc1.archive();
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0].info.serial_hex, cert.info.serial_hex);

    // Re-enrollment after `template bump` (major version).
    site.ok(&["template", "bump", TEMPLATE]);
    pc1.cycle_until("major version");
    let bumped = pc1.personal();
    assert_eq!(bumped.len(), 1);
    assert_ne!(bumped[0].info.serial_hex, renewed[0].info.serial_hex);
    assert_eq!(pc1.archive().len(), 2);

    // Replacement after revocation: archived as revoked, a new one enrolled.
    let serial = bumped[0].info.serial_hex.clone();
    site.ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    site.ok(&["crl", "publish", "--out", s(&site.path("issuing.crl"))]);
    let log = pc1.cycle(None);
    assert!(
        log.contains(&format!(
            "action=archive template=\"{TEMPLATE}\" serial={serial} reason=\"revoked"
        )),
        "{log}"
    );
    let replaced = pc1.personal();
    assert_eq!(replaced.len(), 1);
    assert_ne!(replaced[0].info.serial_hex, serial);
    let revoked = pc1
        .archive()
        .into_iter()
        .find(|e| e.info.serial_hex == serial)
        .expect("revoked one archived");
    assert_eq!(
        revoked.archived.as_ref().map(|a| a.reason),
        Some(store::ArchiveReason::Revoked)
    );
    assert!(store::check(pc1.dir.path()).is_empty());

    // Past expiry the agent re-enrolls rather than giving up.
    let expired_at = replaced[0].info.not_after + DAY;
    let log = pc1.cycle(Some(expired_at));
    assert!(
        log.contains("the certificate expired; re-enrolling"),
        "{log}"
    );
    let fresh = pc1.personal();
    assert_eq!(fresh.len(), 1);
    assert_ne!(fresh[0].info.serial_hex, replaced[0].info.serial_hex);
    let replaced = fresh;

    // The maintenance log holds every decision, one line each.
    let maintenance = std::fs::read_to_string(pc1.path("certificate-maintenance.log")).unwrap();
    for action in ["register", "enroll", "keep", "renew", "archive"] {
        assert!(
            maintenance.contains(&format!("action={action}")),
            "{action}: {maintenance}"
        );
    }

    // PKCS#12 export, modern and legacy, read by openssl and Python cryptography.
    let serial = replaced[0].info.serial_hex.clone();
    for (legacy, file) in [(false, "modern.p12"), (true, "legacy.p12")] {
        let out = pc1.path(file);
        let mut args = vec!["agent", "export", serial.as_str(), "--out", s(&out)];
        if legacy {
            args.push("--legacy");
        }
        pc1.ok(&args);
        let mut info = vec![
            "pkcs12",
            "-info",
            "-in",
            s(&out),
            "-passin",
            "pass:correct horse",
            "-noenc",
        ];
        if legacy {
            info.push("-legacy");
        }
        let o = Command::new("openssl")
            .args(&info)
            .output()
            .expect("openssl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "openssl pkcs12 -info {file}: {text}");
        assert!(
            text.contains("BEGIN CERTIFICATE") && text.contains("PRIVATE KEY"),
            "{text}"
        );
        if legacy {
            assert!(
                text.contains("3DES")
                    || text.contains("des-ede3")
                    || text.contains("pbeWithSHA1And3-KeyTripleDES-CBC"),
                "{text}"
            );
        } else {
            assert!(
                text.contains("AES-256-CBC") || text.contains("aes-256-cbc"),
                "{text}"
            );
        }
        let py = Command::new("python3")
            .args([
                "-c",
                "import sys; from cryptography.hazmat.primitives.serialization import pkcs12; k, c, extra = pkcs12.load_key_and_certificates(open(sys.argv[1],'rb').read(), b'correct horse'); print(c.serial_number, k is not None)",
                s(&out),
            ])
            .output()
            .expect("python3");
        let said = String::from_utf8_lossy(&py.stdout);
        assert!(
            py.status.success(),
            "python cryptography {file}: {}",
            String::from_utf8_lossy(&py.stderr)
        );
        assert_eq!(
            said.trim(),
            format!("{} True", u128::from_str_radix(&serial, 16).unwrap()),
            "{file}"
        );
    }
    drop(server);
}

#[test]
fn two_matching_certificates_fail_selection_and_are_reported() {
    let (site, server) = site();
    let pc2 = Agent::install(&site, &server, "PC2", &[]);
    assert!(pc2.cycle(None).contains("action=enroll"));

    // A second Workstation certificate for PC2, issued out of band and imported as PKCS#12.
    let csr = openssl_csr(site.dir.path(), "pc2b", "ec:P-256", "/CN=PC2", &[]);
    let cert = site.issue(TEMPLATE, "PC2", &csr, "pc2b.pem");
    let p12 = site.path("pc2b.p12");
    let pw = site.path("pw.txt");
    std::fs::write(&pw, "correct horse\n").unwrap();
    let o = Command::new("openssl")
        .args([
            "pkcs12",
            "-export",
            "-in",
            s(&cert),
            "-inkey",
            s(&site.path("pc2b.key")),
            "-out",
            s(&p12),
            "-passout",
            "pass:correct horse",
        ])
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    pc2.ok(&["agent", "import", s(&p12), "--password-file", s(&pw)]);
    assert_eq!(pc2.personal().len(), 2);

    // Two candidates match the default criterion: none is selected, the management point is
    // not contacted, and the fallback status point hears about it.
    let out = pc2.run(&["agent", "select", "--explain"]);
    assert_eq!(out.status.code(), Some(2));
    let out = pc2.run(&["agent", "run", "--once"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("action=selection-failed"), "{log}");
    let reported = site.json(&[
        "status",
        "list",
        "--client",
        "PC2",
        "--kind",
        "selection-failed",
    ]);
    let rows = reported.as_array().expect("array");
    assert_eq!(rows.len(), 1, "{reported}");
    let text = rows[0].to_string();
    for e in pc2.personal() {
        assert!(
            text.contains(&e.info.serial_hex),
            "{text} names {}",
            e.info.serial_hex
        );
    }
    drop(server);
}

#[test]
fn a_changed_signing_certificate_is_refused() {
    let (site, server) = site();
    // An agent pinned to another site signing certificate: what it sees when the site's
    // signing certificate changes after install.
    let other = Site::two_tier();
    other.ok(&[
        "site",
        "signing-cert",
        "--out",
        s(&other.path("smssign.pem")),
    ]);
    let pc1 = Agent::install(
        &site,
        &server,
        "PC1",
        &["--site-signing-cert", s(&other.path("smssign.pem"))],
    );
    let out = pc1.run(&["agent", "run", "--once"]);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("action=policy-refused"), "{log}");
    assert!(log.contains("signer") || log.contains("pinned"), "{log}");
    assert!(
        pc1.personal().is_empty(),
        "nothing enrolled under a refused policy"
    );
    let reported = site.json(&[
        "status",
        "list",
        "--client",
        "PC1",
        "--kind",
        "trust-changed",
    ]);
    assert_eq!(reported.as_array().map(Vec::len), Some(1), "{reported}");

    // Install by fingerprint checks what the site offers against it.
    let wrong = "ab".repeat(32);
    let a = tempfile::tempdir().unwrap();
    let out = bin()
        .env("FLEETPKI_DIR", a.path())
        .args([
            "agent",
            "install",
            "--site",
            &mp_url(&server),
            "--root",
            s(&site.path("ca/root.pem")),
            "--name",
            "PC1",
            "--site-signing-fingerprint",
            &wrong,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing the change"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without pins and without --allow-tofu, install refuses.
    let out = bin()
        .env("FLEETPKI_DIR", a.path())
        .args([
            "agent",
            "install",
            "--site",
            &mp_url(&server),
            "--name",
            "PC1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-tofu"));
    // With it, both are pinned, loudly.
    let out = bin()
        .env("FLEETPKI_DIR", a.path())
        .args([
            "agent",
            "install",
            "--site",
            &mp_url(&server),
            "--name",
            "PC1",
            "--allow-tofu",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("TRUST ON FIRST USE"));
    drop(server);
}

/// Kills the agent at varied points while it replaces its certificate (as of a time when the
/// current one has expired, so every cycle enrolls and archives): after every kill the store
/// is consistent and holds a certificate valid now, with its key.
#[test]
fn killed_mid_renewal_the_store_stays_consistent() {
    let (site, server) = site();
    let pc1 = Agent::install(&site, &server, "PC1", &[]);
    assert!(pc1.cycle(None).contains("action=enroll"));
    let later = (fleetpki_model::now() + 400 * DAY).to_string();
    let mut kills = 0;
    let mut i = 0u64;
    while kills < 20 && i < 200 {
        i += 1;
        let mut child = bin()
            .env("FLEETPKI_DIR", pc1.dir.path())
            .env_remove("RUST_LOG")
            .args(["agent", "run", "--once", "--as-of", &later])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn agent");
        // Spread the kill points over a cycle's life (start-up, TLS, enrollment, store
        // writes); whatever the point, the assertions below must hold.
        std::thread::sleep(std::time::Duration::from_millis((i * 37) % 150));
        if child.try_wait().expect("wait").is_none() {
            kills += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let problems = store::check(pc1.dir.path());
        assert!(problems.is_empty(), "after kill {i}: {problems:?}");
        let now = fleetpki_model::now();
        let valid: Vec<_> = pc1
            .personal()
            .into_iter()
            .filter(|e| e.has_key && e.info.not_before <= now && now < e.info.not_after)
            .collect();
        assert!(
            !valid.is_empty(),
            "after kill {i}: no valid certificate with its key"
        );
        for e in &valid {
            pc1.store().key(e).expect("key readable");
        }
    }
    assert!(
        kills >= 20,
        "only {kills} of {i} runs were killed mid-cycle"
    );
    // And the agent carries on afterwards: an interrupted replacement is finished (the older
    // certificate archived), so selection is not left ambiguous.
    pc1.cycle(None);
    assert!(store::check(pc1.dir.path()).is_empty());
    assert_eq!(pc1.personal().len(), 1);
    pc1.ok(&["agent", "select"]);
    drop(server);
}

/// One process maintains an agent at a time: while `agent run` (the daemon) holds the
/// directory, a second `run --once` and an `import` are refused naming the holder's pid and
/// change nothing; readers still work; once the daemon stops, maintenance works again.
#[test]
fn a_second_agent_process_on_one_directory_is_refused() {
    use std::io::BufRead;
    let (site, server) = site();
    let pc1 = Agent::install(&site, &server, "PC1", &[]);
    let mut daemon = bin()
        .env("FLEETPKI_DIR", pc1.dir.path())
        .env_remove("RUST_LOG")
        .args(["agent", "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn agent daemon");
    // The daemon prints `next cycle at` after its first cycle: it holds the lock by then.
    let stdout = std::io::BufReader::new(daemon.stdout.take().expect("stdout"));
    let mut seen = String::new();
    for line in stdout.lines() {
        let line = line.expect("line");
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("next cycle at") {
            break;
        }
    }
    assert!(seen.contains("action=enroll"), "{seen}");
    let before = pc1.personal();
    let pid = daemon.id().to_string();
    for args in [
        &["agent", "run", "--once"][..],
        &["agent", "import", s(&site.path("ca/root.pem"))],
    ] {
        let out = pc1.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran beside the daemon");
        assert!(
            err.contains("another fleetpki agent process") && err.contains(&pid),
            "{args:?}: {err}"
        );
    }
    assert_eq!(pc1.personal().len(), before.len());
    assert!(pc1.ok(&["agent", "status"]).contains("PC1"));
    pc1.ok(&["agent", "select"]);
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(pc1.cycle(None).contains("action=keep"));
    drop(server);
}

/// The README's first command: the demo site, its roles, and a demo agent that registers,
/// verifies its policy, autoenrolls and explains its selection, then serves until stopped.
#[test]
fn quickstart_runs_the_whole_loop() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let mut child = bin()
        .env_remove("RUST_LOG")
        .args(["quickstart", "--demo-dir", s(&demo)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn quickstart");
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    for line in stdout.lines() {
        let line = line.expect("line");
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("Serving until Ctrl-C") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    for wanted in [
        "management-point",
        "action=register",
        "action=policy",
        "action=enroll template=\"Workstation\"",
        "action=keep",
        "SELECTED",
        "Serving until Ctrl-C",
    ] {
        assert!(seen.contains(wanted), "`{wanted}` missing from:\n{seen}");
    }
    let agent = demo.join("agent-pc0001");
    assert!(store::check(&agent).is_empty());
    assert_eq!(
        AgentStore::open(&agent)
            .unwrap()
            .list(StoreName::Personal)
            .unwrap()
            .entries
            .len(),
        1
    );
}

/// A template that needs approval: the agent's request waits, is polled each cycle, and the
/// certificate is installed once an administrator approves; status and list show it.
#[test]
fn pending_requests_are_polled_until_approved() {
    let (site, server) = site();
    site.ok(&["template", "set", TEMPLATE, "--require-approval", "true"]);
    let pc1 = Agent::install(&site, &server, "PC1", &[]);
    assert_eq!(metric(&server, "fleetpki_pending_requests"), 0.0);
    let log = pc1.cycle_until("action=requested");
    assert!(log.contains("waits for approval"), "{log}");
    assert!(pc1.personal().is_empty());
    assert_eq!(metric(&server, "fleetpki_pending_requests"), 1.0);
    assert_eq!(metric(&server, "fleetpki_issuance_seconds_count"), 0.0);
    let log = pc1.cycle(None);
    assert!(log.contains("action=pending"), "{log}");
    let status = pc1.ok(&["agent", "status"]);
    assert!(status.contains("request"), "{status}");

    let requests = site.json(&["request", "list"]);
    let id = requests
        .as_array()
        .and_then(|r| r.iter().find(|r| r["status"] == "pending"))
        .and_then(|r| r["id"].as_i64())
        .unwrap_or_else(|| panic!("no pending request in {requests}"));
    site.ok(&["request", "approve", &id.to_string()]);
    assert_eq!(metric(&server, "fleetpki_pending_requests"), 0.0);
    let log = pc1.cycle(None);
    assert!(log.contains("action=enroll"), "{log}");
    assert_eq!(pc1.personal().len(), 1);
    assert!(pc1.state_pending_empty());
    let list = pc1.ok(&["agent", "list"]);
    assert!(list.contains(&pc1.personal()[0].info.serial_hex), "{list}");
    drop(server);
}

#[test]
fn three_agents_with_minute_lifetimes_renew_at_the_computed_time() {
    let (site, server) = site();
    site.ok(&[
        "directory",
        "add-computer",
        "PC3",
        "--dns",
        "pc3.fleet.test",
        "--group",
        "Workstations",
    ]);
    // Ten minutes of validity, a five-minute renewal period: the renewal period is more than
    // 20 % of the lifetime, so the 80 % point decides.
    site.ok(&[
        "template",
        "set",
        TEMPLATE,
        "--validity",
        "10m",
        "--renewal-period",
        "5m",
    ]);
    site.ok(&["template", "publish", TEMPLATE]);
    let agents: Vec<Agent> = ["PC1", "PC2", "PC3"]
        .iter()
        .map(|name| Agent::install(&site, &server, name, &[]))
        .collect();

    for agent in &agents {
        let log = agent.cycle_until(&format!("action=enroll template=\"{TEMPLATE}\""));
        let first = agent.personal();
        assert_eq!(first.len(), 1, "{log}");
        let info = &first[0].info;
        // The site backdates not_before by a minute for clock skew; validity runs from issue.
        assert!(
            info.not_after - info.not_before <= 11 * 60,
            "minute lifetime: {info:?}"
        );
        let lifetime = info.not_after - info.not_before;
        let eighty = info.not_before + lifetime * 4 / 5;

        let log = agent.cycle(None);
        assert_eq!(next_due(&log, "keep"), eighty, "{log}");
        assert!(log.contains("80% of its lifetime"), "{log}");
        let log = agent.cycle(Some(eighty - 1));
        assert!(log.contains("action=keep"), "{log}");
        assert_eq!(agent.personal()[0].info.serial_hex, info.serial_hex);
        let log = agent.cycle(Some(eighty));
        assert!(log.contains("action=renew"), "{log}");
        let renewed = agent.personal();
        assert_eq!(renewed.len(), 1);
        assert_ne!(renewed[0].info.serial_hex, info.serial_hex);
        assert_eq!(agent.archive().len(), 1);
        assert!(store::check(agent.dir.path()).is_empty());
    }
    // Six issuances over the management point (three enrollments, three renewals), timed;
    // and six ten-minute certificates, every one within 42 days of its end.
    assert_eq!(metric(&server, "fleetpki_issuance_seconds_count"), 6.0);
    assert!(metric(&server, "fleetpki_issuance_seconds_sum") > 0.0);
    assert_eq!(metric(&server, "fleetpki_certificates_expiring_42d"), 6.0);
    // Three distinct certificates, one per machine.
    let serials: std::collections::BTreeSet<String> = agents
        .iter()
        .map(|a| a.personal()[0].info.serial_hex.clone())
        .collect();
    assert_eq!(serials.len(), 3);
    drop(server);
}
