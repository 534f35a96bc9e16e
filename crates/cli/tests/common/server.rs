//! A running `fleetpki serve`: started with a config file, its role URLs read from the
//! `ROLE listening on URL` lines, killed when dropped.

use super::{Site, bin, s};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};

pub struct Server {
    child: Child,
    urls: Vec<(String, String)>,
    /// The rest of stdout, after the `ROLE listening on URL` lines.
    stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `fleetpki serve --config FILE` with `config` and reads one `ROLE listening on URL`
    /// line per enabled role (`roles` of them).
    pub fn start(site: &Site, config: &str, roles: usize) -> Server {
        Self::start_with(site, config, roles, &[], &[], Stdio::inherit())
    }

    /// `start`, with global options before `serve`, environment variables, and stderr as given.
    pub fn start_with(
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

    /// Sends SIGTERM and returns at once (see [`Server::wait`]).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Its stderr, if it was piped and not taken yet.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Waits for it to exit.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }

    /// SIGTERM, then the exit status.
    pub fn stop(self) -> std::process::ExitStatus {
        self.stop_and_read().0
    }

    /// SIGTERM, then the exit status, the rest of stdout, and stderr if it was piped.
    pub fn stop_and_read(mut self) -> (std::process::ExitStatus, String, String) {
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

/// A port free at the time of asking (for a role that must listen where the base URL points).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}
