//! Shared by the x509 interop tests: running the openssl CLI in a test's directory.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub struct Run {
    pub ok: bool,
    pub out: String,
}

/// Runs openssl in `dir`; panics (fails the test) when the binary cannot be started.
pub fn openssl(dir: &Path, args: &[&str]) -> Run {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("the openssl CLI is required for these tests and could not be run: {e}")
        });
    Run {
        ok: o.status.success(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

/// Runs openssl and asserts it succeeded; returns its output.
pub fn must(dir: &Path, args: &[&str]) -> String {
    let r = openssl(dir, args);
    assert!(r.ok, "openssl {} failed:\n{}", args.join(" "), r.out);
    r.out
}
