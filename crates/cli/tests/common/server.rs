//! A running `fleetpki serve`: started with a config file, its role URLs read from the
//! `ROLE listening on URL` lines, killed when dropped.

use super::{Site, bin, s};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Server {
    child: Child,
    urls: Vec<(String, String)>,
}

impl Server {
    /// Starts `fleetpki serve --config FILE` with `config` and reads one `ROLE listening on URL`
    /// line per enabled role (`roles` of them).
    pub fn start(site: &Site, config: &str, roles: usize) -> Server {
        let cfg = site.path("serve.toml");
        std::fs::write(&cfg, config).expect("config");
        let mut child = bin()
            .env("FLEETPKI_DIR", site.dir.path())
            .args(["serve", "--config", s(&cfg)])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn serve");
        let out = child.stdout.take().expect("stdout");
        let mut urls = Vec::new();
        for line in BufReader::new(out).lines().take(roles) {
            let line = line.expect("line");
            let (role, url) = line
                .split_once(" listening on ")
                .unwrap_or_else(|| panic!("unexpected line: {line}"));
            urls.push((role.to_string(), url.to_string()));
        }
        assert_eq!(
            urls.len(),
            roles,
            "serve stopped before announcing every role"
        );
        Server { child, urls }
    }

    pub fn url(&self, role: &str) -> &str {
        &self
            .urls
            .iter()
            .find(|(r, _)| r == role)
            .unwrap_or_else(|| panic!("no {role}"))
            .1
    }

    /// The port a role listens on.
    pub fn port(&self, role: &str) -> u16 {
        let url = self.url(role);
        url.rsplit_once(':')
            .and_then(|(_, p)| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no port in {url}"))
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    /// A failed assertion must not leave the server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free at the time of asking (for a role that must listen where the base URL points).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}
