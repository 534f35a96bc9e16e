//! Runs the `openssl` command-line tool, mainly `openssl verify` as an independent
//! path-validation oracle.

use std::process::{Command, Stdio};

use anyhow::Context;

use crate::tools::resolve;

/// What a tool run produced. Output is decoded lossily as UTF-8: have openssl write binary
/// (DER) output to a file with `-out`, not to stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit status; -1 when the process was killed by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// stdout followed by stderr, handy in assertion messages and for matching openssl's
    /// verdicts, which it splits across both (`leaf.pem: OK` on stdout,
    /// `error 23 at 0 depth lookup: certificate revoked` on stderr).
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `openssl` with `args` (the caller supplies any file paths) and returns its output
/// whatever the exit status; errors only when openssl can't be run.
pub fn openssl(args: &[&str]) -> anyhow::Result<Output> {
    let program = resolve("openssl")?;
    let out = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} {}", program.display(), args.join(" ")))?;
    Ok(Output {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `openssl verify -no-CApath -no-CAstore -CAfile root [-untrusted untrusted]
/// [-crl_check -CRLfile crl] leaf`, with the PEMs written to a temp dir.
///
/// Only `root_pem` is trusted: `-no-CApath -no-CAstore` keep the system store out (with
/// `-CAfile` given, the default CA file is not loaded either). `-crl_check` checks the leaf's
/// revocation only, so `crl_pem` must hold the CRL of the leaf's issuer.
///
/// Returns `Ok` whatever the verdict: assert on [`Output::status`] (0 = verified) and on
/// [`Output::combined`] for the reason.
pub fn openssl_verify(
    root_pem: &str,
    untrusted_pem: Option<&str>,
    crl_pem: Option<&str>,
    leaf_pem: &str,
) -> anyhow::Result<Output> {
    let dir = tempfile::tempdir().context("creating a temp dir for openssl verify")?;
    let write = |name: &str, content: &str| -> anyhow::Result<String> {
        let path = dir.path().join(name);
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        path.to_str()
            .map(str::to_owned)
            .with_context(|| format!("temp path is not UTF-8: {}", path.display()))
    };
    let root = write("root.pem", root_pem)?;
    let leaf = write("leaf.pem", leaf_pem)?;
    let untrusted = untrusted_pem
        .map(|pem| write("untrusted.pem", pem))
        .transpose()?;
    let crl = crl_pem.map(|pem| write("crl.pem", pem)).transpose()?;

    let mut args = vec!["verify", "-no-CApath", "-no-CAstore", "-CAfile", &root];
    if let Some(untrusted) = &untrusted {
        args.extend(["-untrusted", untrusted]);
    }
    if let Some(crl) = &crl {
        args.extend(["-crl_check", "-CRLfile", crl]);
    }
    args.push(&leaf);
    openssl(&args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpki::TestPki;
    use crate::tools::tool;

    #[test]
    fn runs_openssl() {
        if tool("openssl").is_none() {
            return;
        }
        let out = openssl(&["version"]).expect("openssl version");
        assert!(out.success(), "{out:?}");
        assert!(out.stdout.starts_with("OpenSSL"), "{out:?}");
        let bad = openssl(&["x509", "-noout", "-in", "/nonexistent/cert.pem"]).expect("runs");
        assert!(!bad.success(), "{bad:?}");
        assert!(!bad.stderr.is_empty(), "{bad:?}");
    }

    #[test]
    fn verify_verdicts() {
        if tool("openssl").is_none() {
            return;
        }
        let pki = TestPki::new();

        let direct = openssl_verify(&pki.root_pem, None, None, &pki.bad_leaf_pem).expect("run");
        assert!(direct.success(), "{direct:?}");
        assert!(direct.stdout.contains(": OK"), "{direct:?}");

        let via_inter =
            openssl_verify(&pki.root_pem, Some(&pki.inter_pem), None, &pki.leaf_pem).expect("run");
        assert!(via_inter.success(), "{via_inter:?}");

        let no_inter = openssl_verify(&pki.root_pem, None, None, &pki.leaf_pem).expect("run");
        assert!(!no_inter.success(), "{no_inter:?}");
        assert!(
            no_inter
                .combined()
                .contains("unable to get local issuer certificate"),
            "{no_inter:?}"
        );

        let wrong_root =
            openssl_verify(&pki.other_root_pem, None, None, &pki.bad_leaf_pem).expect("run");
        assert!(!wrong_root.success(), "{wrong_root:?}");

        let revoked = openssl_verify(&pki.root_pem, None, Some(&pki.crl_pem), &pki.bad_leaf_pem)
            .expect("run");
        assert!(!revoked.success(), "{revoked:?}");
        assert!(
            revoked.combined().contains("certificate revoked"),
            "{revoked:?}"
        );
    }
}
