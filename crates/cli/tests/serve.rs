//! `fleetpki serve` on 127.0.0.1, talked to as clients would: curl for the CDP and AIA URLs,
//! and openssl fetching the CRL itself from the URL in the certificate.

mod common;
use common::{Site, bin, openssl_csr, s};
use fleetpki_testkit as kit;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};

struct Server {
    child: Child,
    urls: Vec<(String, String)>,
    /// The rest of stdout, after the `ROLE listening on URL` lines.
    stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `fleetpki serve` and reads its `ROLE listening on URL` lines.
    fn start(site: &Site, config: &str, roles: usize) -> Server {
        Self::start_with(site, config, roles, &[], &[], Stdio::inherit())
    }

    /// `start`, with global options before `serve`, environment variables, and stderr as given.
    fn start_with(
        site: &Site,
        config: &str,
        roles: usize,
        global: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Server {
        let cfg = site.path("serve.toml");
        std::fs::write(&cfg, config).expect("config");
        let mut child = bin()
            .env("FLEETPKI_DIR", site.dir.path())
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .args(global)
            .args(["serve", "--config", s(&cfg)])
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut urls = Vec::new();
        let mut line = String::new();
        while urls.len() < roles {
            line.clear();
            if stdout.read_line(&mut line).expect("line") == 0 {
                break;
            }
            let (role, url) = line
                .trim_end()
                .split_once(" listening on ")
                .unwrap_or_else(|| panic!("unexpected line: {line}"));
            urls.push((role.to_string(), url.to_string()));
        }
        assert_eq!(
            urls.len(),
            roles,
            "serve stopped before announcing every role"
        );
        Server {
            child,
            urls,
            stdout,
        }
    }

    fn url(&self, role: &str) -> &str {
        &self
            .urls
            .iter()
            .find(|(r, _)| r == role)
            .unwrap_or_else(|| panic!("no {role}"))
            .1
    }

    /// SIGTERM, then the exit status.
    fn stop(self) -> std::process::ExitStatus {
        self.stop_and_read().0
    }

    /// SIGTERM, then the exit status, the rest of stdout, and stderr if it was piped.
    fn stop_and_read(mut self) -> (std::process::ExitStatus, String, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).expect("stderr");
        }
        let mut out = String::new();
        self.stdout.read_to_string(&mut out).expect("stdout");
        (self.child.wait().expect("wait"), out, err)
    }
}

impl Drop for Server {
    /// A failed assertion must not leave the server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

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
            "[roles.crl]\nlisten = \"127.0.0.1:{port}\"\n[roles.management-point]\nenabled = false\n[roles.api]\nenabled = false\n"
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
}

/// `--log-format json`: every stderr line is a JSON object, one per request with its role,
/// method, path, status, latency and peer; stdout still carries only the listening lines.
#[test]
fn json_request_log_on_stderr() {
    let port = free_port();
    let site = Site::empty();
    site.ok(&["init", "--site-code", "PS1"]);
    let config = format!(
        "[roles.crl]\nlisten = \"127.0.0.1:{port}\"\n[roles.api]\nenabled = false\n[roles.management-point]\nenabled = false\n"
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
