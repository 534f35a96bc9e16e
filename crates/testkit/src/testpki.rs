//! A throwaway PKI made with the openssl CLI, for this crate's own tests.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::openssl::openssl;

const ROOT_CNF: &str = "\
[req]
distinguished_name = dn
x509_extensions = v3_ca
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
";

const INTER_EXT: &str = "\
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
";

const LEAF_EXT: &str = "\
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:host1.fleet.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
";

/// Two known faults: a single-label dNSName and keyEncipherment on an EC key.
const BAD_LEAF_EXT: &str = "\
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
";

pub(crate) struct TestPki {
    _dir: TempDir,
    pub root_pem: String,
    pub other_root_pem: String,
    pub inter_pem: String,
    /// Issued by `inter`: verifies with `-untrusted inter`; lints clean.
    pub leaf_pem: String,
    /// Issued by `root`, revoked in `crl_pem`; two pkilint errors.
    pub bad_leaf_pem: String,
    /// Root's CRL listing `bad_leaf`, with an AKI.
    pub crl_pem: String,
    pub crl_der: Vec<u8>,
    /// Root's CRL without any extension (so no AKI).
    pub crl_without_aki_pem: String,
    /// Root's OCSP response (revoked) for `bad_leaf`.
    pub ocsp_response_der: Vec<u8>,
}

struct Dir(PathBuf);

impl Dir {
    fn path(&self, name: &str) -> String {
        let path = self.0.join(name);
        path.to_str().expect("UTF-8 temp path").to_owned()
    }

    fn write(&self, name: &str, content: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, content).expect("write fixture file");
        path
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.0.join(name)).expect("read fixture file")
    }

    fn read_string(&self, name: &str) -> String {
        String::from_utf8(self.read(name)).expect("UTF-8 fixture file")
    }
}

fn run(args: &[&str]) {
    let out = openssl(args).expect("run openssl");
    assert!(out.success(), "openssl {}: {out:?}", args.join(" "));
}

fn ca_cnf(dir: &Path, with_aki: bool) -> String {
    let dir = dir.to_str().expect("UTF-8 temp path");
    let ext = if with_aki {
        "crl_extensions = crl_ext\n[crl_ext]\nauthorityKeyIdentifier = keyid:always\n"
    } else {
        ""
    };
    format!(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = {dir}/index.txt\nnew_certs_dir = {dir}\n\
         crlnumber = {dir}/crlnumber\ncertificate = {dir}/root.pem\nprivate_key = {dir}/root.key\n\
         default_md = sha256\ndefault_crl_days = 7\n{ext}"
    )
}

impl TestPki {
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = Dir(tmp.path().to_path_buf());
        let root_cnf = d.write("root.cnf", ROOT_CNF);
        for (name, cn) in [("root", "/CN=Test Root"), ("other", "/CN=Other Root")] {
            run(&[
                "req",
                "-x509",
                "-config",
                &root_cnf,
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &d.path(&format!("{name}.key")),
                "-out",
                &d.path(&format!("{name}.pem")),
                "-subj",
                cn,
                "-days",
                "30",
            ]);
        }
        let issue = |name: &str, cn: &str, ext: &str, ca: &str, serial: &str| {
            let csr = d.path(&format!("{name}.csr"));
            run(&[
                "req",
                "-new",
                "-config",
                &root_cnf,
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &d.path(&format!("{name}.key")),
                "-out",
                &csr,
                "-subj",
                cn,
            ]);
            let ext_file = d.write(&format!("{name}.ext"), ext);
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &d.path(&format!("{ca}.pem")),
                "-CAkey",
                &d.path(&format!("{ca}.key")),
                "-set_serial",
                serial,
                "-days",
                "30",
                "-sha256",
                "-extfile",
                &ext_file,
                "-out",
                &d.path(&format!("{name}.pem")),
            ]);
        };
        issue(
            "inter",
            "/CN=Test Intermediate",
            INTER_EXT,
            "root",
            "0x1000",
        );
        issue("leaf", "/CN=host1.fleet.test", LEAF_EXT, "inter", "0x2000");
        issue("bad", "/CN=localhost", BAD_LEAF_EXT, "root", "0x1001");

        // A CA database with `bad` revoked, then CRLs and an OCSP response from it.
        d.write("index.txt", "");
        d.write("crlnumber", "1000\n");
        let cnf = d.write("ca.cnf", &ca_cnf(tmp.path(), true));
        let cnf_no_aki = d.write("ca-no-aki.cnf", &ca_cnf(tmp.path(), false));
        run(&["ca", "-config", &cnf, "-revoke", &d.path("bad.pem")]);
        run(&["ca", "-config", &cnf, "-gencrl", "-out", &d.path("ca.crl")]);
        run(&[
            "crl",
            "-in",
            &d.path("ca.crl"),
            "-outform",
            "DER",
            "-out",
            &d.path("ca.crl.der"),
        ]);
        run(&[
            "ca",
            "-config",
            &cnf_no_aki,
            "-gencrl",
            "-out",
            &d.path("v1.crl"),
        ]);
        run(&[
            "ocsp",
            "-issuer",
            &d.path("root.pem"),
            "-cert",
            &d.path("bad.pem"),
            "-no_nonce",
            "-reqout",
            &d.path("req.der"),
        ]);
        run(&[
            "ocsp",
            "-index",
            &d.path("index.txt"),
            "-rsigner",
            &d.path("root.pem"),
            "-rkey",
            &d.path("root.key"),
            "-CA",
            &d.path("root.pem"),
            "-reqin",
            &d.path("req.der"),
            "-respout",
            &d.path("resp.der"),
            "-ndays",
            "1",
        ]);

        TestPki {
            root_pem: d.read_string("root.pem"),
            other_root_pem: d.read_string("other.pem"),
            inter_pem: d.read_string("inter.pem"),
            leaf_pem: d.read_string("leaf.pem"),
            bad_leaf_pem: d.read_string("bad.pem"),
            crl_pem: d.read_string("ca.crl"),
            crl_der: d.read("ca.crl.der"),
            crl_without_aki_pem: d.read_string("v1.crl"),
            ocsp_response_der: d.read("resp.der"),
            _dir: tmp,
        }
    }
}
