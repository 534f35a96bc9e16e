//! Shared harness for the CLI tests: a site in a temp dir, the real binary, openssl-made CSRs.
#![allow(dead_code)]

pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Site {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fleetpki"))
}

impl Site {
    /// An empty directory; call `init` yourself.
    pub fn empty() -> Self {
        Site {
            dir: tempfile::tempdir().expect("tempdir"),
            env: vec![],
        }
    }

    /// A two-tier ECDSA site (base URL http://pki.fleet.test: pkilint refuses `localhost` in
    /// CDP and AIA URIs) with a computer PC1 in group Workstations.
    pub fn two_tier_pc1() -> Self {
        let s = Self::empty();
        s.ok(&[
            "init",
            "--site-code",
            "PS1",
            "--two-tier",
            "--base-url",
            "http://pki.fleet.test",
        ]);
        s.add_pc1();
        s
    }

    /// [`Site::two_tier_pc1`] with a server SRV1 (group Servers) and a user alice (group Users).
    pub fn two_tier() -> Self {
        let s = Self::two_tier_pc1();
        for g in ["Servers", "Users"] {
            s.ok(&["directory", "add-group", g]);
        }
        s.ok(&[
            "directory",
            "add-computer",
            "SRV1",
            "--dns",
            "srv1.fleet.test",
            "--group",
            "Servers",
        ]);
        s.ok(&[
            "directory",
            "add-user",
            "alice",
            "--email",
            "alice@fleet.test",
            "--upn",
            "alice@fleet.test",
            "--group",
            "Users",
        ]);
        s
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut c = bin();
        c.env("FLEETPKI_DIR", self.dir.path())
            .env_remove("FLEETPKI_PASSPHRASE")
            .args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.output().expect("run fleetpki")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "fleetpki {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs and asserts failure with exit code 1; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "fleetpki {args:?} should fail with 1:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).expect("json output")
    }

    pub fn db_url(&self) -> String {
        format!("sqlite:{}", self.path("fleetpki.db").display())
    }

    /// Digest of every stored row.
    pub fn fingerprint(&self) -> String {
        let url = self.db_url();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            fleetpki_store::open(&url)
                .await
                .expect("open store")
                .fingerprint()
                .await
                .expect("fingerprint")
        })
    }

    /// Group Workstations with computer PC1 (pc1.fleet.test) in it, for sites made with `empty`.
    pub fn add_pc1(&self) {
        self.ok(&["directory", "add-group", "Workstations"]);
        self.ok(&[
            "directory",
            "add-computer",
            "PC1",
            "--dns",
            "pc1.fleet.test",
            "--group",
            "Workstations",
        ]);
    }

    /// Submits `csr` and writes the issued certificate to `out` (in the site dir); returns its path.
    pub fn issue(&self, template: &str, principal: &str, csr: &Path, out: &str) -> PathBuf {
        let path = self.path(out);
        self.ok(&[
            "request",
            "submit",
            "--template",
            template,
            "--as",
            principal,
            "--csr",
            s(csr),
            "--out",
            s(&path),
        ]);
        path
    }

    /// Publishes and grants Enroll on `template` to `group`.
    pub fn enable(&self, template: &str, group: &str) {
        self.ok(&["template", "grant", template, "--group", group, "--enroll"]);
        self.ok(&["template", "publish", template]);
    }

    pub fn chain_pem(&self) -> String {
        let out = self.path("chain.pem");
        self.ok(&["ca", "chain", "--out", out.to_str().expect("utf8")]);
        std::fs::read_to_string(out).expect("chain")
    }

    pub fn root_pem(&self) -> String {
        std::fs::read_to_string(self.path("ca/root.pem")).expect("root")
    }

    pub fn issuing_pem(&self) -> String {
        std::fs::read_to_string(self.path("ca/issuing.pem")).expect("issuing")
    }
}

/// Makes a key and CSR with openssl. `newkey` is e.g. `ec:P-256`, `rsa:2048`, `ed25519`;
/// `extra` adds arguments such as `-addext subjectAltName=DNS:x` or `-sha1`.
pub fn openssl_csr(dir: &Path, stem: &str, newkey: &str, subj: &str, extra: &[&str]) -> PathBuf {
    let key = dir.join(format!("{stem}.key"));
    let csr = dir.join(format!("{stem}.csr"));
    let mut args: Vec<String> = vec![
        "req".into(),
        "-new".into(),
        "-nodes".into(),
        "-keyout".into(),
        key.display().to_string(),
        "-out".into(),
        csr.display().to_string(),
        "-subj".into(),
        subj.into(),
    ];
    match newkey.split_once(':') {
        Some(("ec", curve)) => args.extend([
            "-newkey".into(),
            "ec".into(),
            "-pkeyopt".into(),
            format!("ec_paramgen_curve:{curve}"),
        ]),
        Some(("rsa", bits)) => args.extend(["-newkey".into(), format!("rsa:{bits}")]),
        _ => args.extend(["-newkey".into(), newkey.into()]),
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = fleetpki_testkit::openssl(&refs).expect("openssl");
    assert_eq!(o.status, 0, "openssl req {refs:?}: {}", o.stderr);
    csr
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// [`Site::two_tier_pc1`] as the admin API tests want it: ADM1, a workstation that is also in
/// `cert-managers`; Enroll for Workstations on Workstation and on "Approved Workstation" (a
/// duplicate that needs a cert-manager's approval).
pub fn admin_site() -> Site {
    let site = Site::two_tier_pc1();
    site.ok(&["directory", "add-group", "cert-managers"]);
    site.ok(&[
        "directory",
        "add-computer",
        "ADM1",
        "--dns",
        "adm1.fleet.test",
        "--group",
        "Workstations",
        "--group",
        "cert-managers",
    ]);
    site.enable("Workstation", "Workstations");
    site.ok(&[
        "template",
        "duplicate",
        "Workstation",
        "Approved Workstation",
    ]);
    site.ok(&[
        "template",
        "set",
        "Approved Workstation",
        "--require-approval",
        "true",
    ]);
    site.enable("Approved Workstation", "Workstations");
    site
}

/// `fleetpki api-token new`: the bearer text `NAME:SECRET` (stdout) and the
/// `[api.tokens.NAME]` lines it prints for the serve config (stderr).
pub fn api_token(site: &Site, name: &str, role: &str) -> (String, String) {
    let o = site.run(&["api-token", "new", "--name", name, "--role", role]);
    assert!(o.status.success(), "{o:?}");
    let bearer = String::from_utf8(o.stdout)
        .expect("utf8")
        .trim()
        .to_string();
    assert!(bearer.starts_with(&format!("{name}:")), "{bearer}");
    let err = String::from_utf8(o.stderr).expect("utf8");
    let config: Vec<&str> = err
        .lines()
        .skip_while(|l| !l.starts_with("[api.tokens."))
        .take(3)
        .collect();
    assert_eq!(config.len(), 3, "{err}");
    assert!(config[2].starts_with("sha256 = "), "{err}");
    (bearer, config.join("\n") + "\n")
}
