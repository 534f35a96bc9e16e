use super::*;
use crate::store::fixtures::{TestCa, p256};
use fleetpki_testkit::{openssl, tool, tools_required};
use fleetpki_x509::key::KeyType;
use std::path::Path;

struct Fixture {
    ca: TestCa,
    key: PrivateKey,
    leaf: Vec<u8>,
}

fn fixture() -> Fixture {
    let ca = TestCa::new("P12 Test Root");
    let key = p256();
    let leaf = ca.leaf("pc1.example.test", &key);
    Fixture { ca, key, leaf }
}

#[test]
fn round_trip_modern_and_legacy() {
    let f = fixture();
    for legacy in [false, true] {
        let p12 = export(
            &f.leaf,
            &f.key,
            std::slice::from_ref(&f.ca.der),
            "s3cret",
            Some("my laptop"),
            legacy,
        )
        .unwrap();
        let back = import(&p12, "s3cret").unwrap();
        assert_eq!(back.cert_der, f.leaf);
        assert_eq!(*back.key.to_pkcs8_der(), *f.key.to_pkcs8_der());
        assert_eq!(back.chain, vec![f.ca.der.clone()]);
        assert_eq!(back.friendly_name.as_deref(), Some("my laptop"));
    }
}

#[test]
fn round_trip_rsa_and_default_friendly_name() {
    let ca = TestCa::new("P12 Test Root");
    let key = PrivateKey::generate(KeyType::Rsa2048).unwrap();
    let leaf = ca.leaf("rsa.example.test", &key);
    let p12 = export(&leaf, &key, &[], "pw", None, false).unwrap();
    let back = import(&p12, "pw").unwrap();
    assert_eq!(back.cert_der, leaf);
    assert_eq!(back.key.public_key_der(), key.public_key_der());
    assert!(back.chain.is_empty());
    assert_eq!(back.friendly_name.as_deref(), Some("CN=rsa.example.test"));
}

#[test]
fn wrong_password_garbage_and_mismatch_are_clear_errors() {
    let f = fixture();
    for legacy in [false, true] {
        let p12 = export(&f.leaf, &f.key, &[], "right", None, legacy).unwrap();
        for wrong in ["wrong", "", "right "] {
            let e = import(&p12, wrong).unwrap_err();
            assert_eq!(e.field(), "password", "{e}");
            assert!(e.to_string().contains("does not open"), "{e}");
        }
        // Truncated or flipped files: an error, never a panic.
        for cut in [1, 10, p12.len() / 2, p12.len() - 1] {
            assert!(import(&p12[..cut], "right").is_err());
        }
        let mut flipped = p12.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x01;
        assert!(import(&flipped, "right").is_err());
    }
    let e = import(b"hello", "pw").unwrap_err();
    assert_eq!(e.field(), "pkcs12");
    assert!(e.to_string().contains("not a PKCS#12"), "{e}");
    let e = export(&f.leaf, &p256(), &[], "pw", None, false).unwrap_err();
    assert_eq!(e.field(), "key");
    let e = export(&f.leaf, &f.key, &[], "", None, false).unwrap_err();
    assert_eq!(e.field(), "password");
    let e = export(&f.leaf, &f.key, &[b"junk".to_vec()], "pw", None, false).unwrap_err();
    assert_eq!(e.field(), "chain[0]");
}

#[test]
fn a_huge_mac_iteration_count_is_refused_before_any_work() {
    // PFX v3, empty authSafe placeholder, MacData with iterations = 2^40.
    let mac_data = [
        0x30, 0x1b, // MacData
        0x30, 0x0d, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
        0x00, // DigestInfo(sha1, empty)
        0x04, 0x02, 0x00, 0x00, // salt
        0x02, 0x06, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // iterations
    ];
    let auth_safe = [0x30, 0x00];
    let mut body = vec![0x02, 0x01, 0x03];
    body.extend_from_slice(&auth_safe);
    body.extend_from_slice(&mac_data);
    let mut pfx = vec![0x30, body.len() as u8];
    pfx.extend_from_slice(&body);
    let e = import(&pfx, "pw").unwrap_err();
    assert!(e.to_string().contains("MAC iteration count"), "{e}");
}

/// Runs openssl, or skips the test (returns None) when it is missing and not required.
fn openssl_or_skip() -> Option<()> {
    tool("openssl").map(|_| ())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

/// What an administrator runs to inspect an export: `openssl pkcs12 -info -in F -passin
/// pass:P -nokeys`, and with `-noenc` to see the key too. OpenSSL 3 reads both forms without
/// `-legacy` (3DES is in its default provider; only RC2 and RC4 need `-legacy`).
#[test]
fn openssl_reads_modern_and_legacy_exports() {
    if openssl_or_skip().is_none() {
        return;
    }
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            false,
            [
                "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 20480, PRF hmacWithSHA256",
                "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 20480, PRF hmacWithSHA256",
                "MAC: sha256, Iteration 20480",
            ],
        ),
        (
            true,
            [
                "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
                "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
                "MAC: sha1, Iteration 2048",
            ],
        ),
    ];
    for (legacy, expected) in cases {
        let p12 = export(
            &f.leaf,
            &f.key,
            std::slice::from_ref(&f.ca.der),
            "pa ss",
            Some("pc1"),
            legacy,
        )
        .unwrap();
        let file = write(dir.path(), &format!("export-{legacy}.p12"), &p12);
        let out = openssl(&[
            "pkcs12",
            "-info",
            "-in",
            &file,
            "-passin",
            "pass:pa ss",
            "-nokeys",
        ])
        .unwrap();
        assert!(out.success(), "legacy={legacy}: {out:?}");
        let all = out.combined();
        for line in expected {
            assert!(
                all.contains(line),
                "legacy={legacy}: missing `{line}` in {all}"
            );
        }
        assert!(all.contains("subject=CN = pc1.example.test"), "{all}");
        assert!(
            all.contains("subject=O = fleetpki tests, CN = P12 Test Root"),
            "{all}"
        );
        assert!(all.contains("friendlyName: CN=pc1.example.test"), "{all}");
        assert_eq!(
            all.matches("-----BEGIN CERTIFICATE-----").count(),
            2,
            "{all}"
        );

        // With the key, unencrypted, to a file: the same key comes out.
        let key_out = dir.path().join(format!("key-{legacy}.pem"));
        let key_out = key_out.to_str().unwrap();
        let out = openssl(&[
            "pkcs12",
            "-in",
            &file,
            "-passin",
            "pass:pa ss",
            "-nocerts",
            "-noenc",
            "-out",
            key_out,
        ])
        .unwrap();
        assert!(out.success(), "legacy={legacy}: {out:?}");
        let pem = std::fs::read_to_string(key_out).unwrap();
        assert!(pem.contains("friendlyName: pc1\n"), "{pem}");
        let k = PrivateKey::from_pem(&pem, None).unwrap();
        assert_eq!(k.public_key_der(), f.key.public_key_der());

        let out = openssl(&[
            "pkcs12",
            "-info",
            "-in",
            &file,
            "-passin",
            "pass:wrong",
            "-nokeys",
        ])
        .unwrap();
        assert!(!out.success(), "wrong password accepted: {out:?}");
        assert!(out.combined().contains("Mac verify error"), "{out:?}");
    }
}

/// Files written by `openssl pkcs12 -export`: the default (AES-256), 3DES with a SHA-1 MAC,
/// and `-legacy` (RC2-40 certificates, 3DES key) import.
#[test]
fn openssl_exports_import() {
    if openssl_or_skip().is_none() {
        return;
    }
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "cert.pem", cert::to_pem(&f.leaf).as_bytes());
    let ca = write(dir.path(), "ca.pem", cert::to_pem(&f.ca.der).as_bytes());
    let key = write(dir.path(), "key.pem", f.key.to_pkcs8_pem().as_bytes());
    let variants: [&[&str]; 3] = [
        &[],
        &[
            "-certpbe",
            "PBE-SHA1-3DES",
            "-keypbe",
            "PBE-SHA1-3DES",
            "-macalg",
            "sha1",
        ],
        &["-legacy"],
    ];
    for (i, extra) in variants.iter().enumerate() {
        let out_file = dir.path().join(format!("o{i}.p12"));
        let out_file = out_file.to_str().unwrap();
        let mut args = vec![
            "pkcs12",
            "-export",
            "-in",
            &cert,
            "-inkey",
            &key,
            "-certfile",
            &ca,
            "-passout",
            "pass:pw",
            "-out",
            out_file,
        ];
        args.extend_from_slice(extra);
        let out = openssl(&args).unwrap();
        if !out.success() && extra.contains(&"-legacy") && !tools_required() {
            // The legacy provider is not installed everywhere; RC2 needs it.
            eprintln!("SKIP: openssl -legacy unavailable: {}", out.stderr);
            continue;
        }
        assert!(out.success(), "{extra:?}: {out:?}");
        let bytes = std::fs::read(out_file).unwrap();
        let back = import(&bytes, "pw").unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        assert_eq!(back.cert_der, f.leaf, "{extra:?}");
        assert_eq!(back.key.public_key_der(), f.key.public_key_der());
        assert_eq!(back.chain, vec![f.ca.der.clone()]);
        assert_eq!(import(&bytes, "wrong").unwrap_err().field(), "password");
    }
}

const PY_LOAD: &str = r#"
import sys
from cryptography.hazmat.primitives.serialization import pkcs12, Encoding, PublicFormat
data = open(sys.argv[1], "rb").read()
key, cert, extra = pkcs12.load_key_and_certificates(data, sys.argv[2].encode())
pub = lambda k: k.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
assert pub(key.public_key()) == pub(cert.public_key()), "key does not match certificate"
print("subject", cert.subject.rfc4514_string())
print("serial", format(cert.serial_number, "x"))
print("extra", len(extra), *[c.subject.rfc4514_string() for c in extra])
try:
    pkcs12.load_key_and_certificates(data, b"wrong")
    print("wrong password accepted")
except ValueError:
    print("wrong password refused")
"#;

/// Python `cryptography` (what many admin scripts use) loads both forms.
#[test]
fn python_cryptography_reads_modern_and_legacy_exports() {
    if tool("python3").is_none() {
        return;
    }
    let probe = std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .unwrap();
    if !probe.status.success() {
        assert!(
            !tools_required(),
            "python3 cannot import cryptography; scripts/test.sh installs it"
        );
        eprintln!("SKIP: python3 has no `cryptography` module");
        return;
    }
    let f = fixture();
    let info = cert::info(&cert::parse("c", &f.leaf).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for legacy in [false, true] {
        let p12 = export(
            &f.leaf,
            &f.key,
            std::slice::from_ref(&f.ca.der),
            "pw",
            None,
            legacy,
        )
        .unwrap();
        let file = write(dir.path(), &format!("e-{legacy}.p12"), &p12);
        let out = std::process::Command::new("python3")
            .args(["-c", PY_LOAD, &file, "pw"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "legacy={legacy}: {stdout}{stderr}");
        assert!(stdout.contains("subject CN=pc1.example.test"), "{stdout}");
        assert!(
            stdout.contains(&format!(
                "serial {}",
                info.serial_hex.trim_start_matches('0')
            )),
            "{stdout}"
        );
        assert!(
            stdout.contains("extra 1 CN=P12 Test Root,O=fleetpki tests"),
            "{stdout}"
        );
        assert!(stdout.contains("wrong password refused"), "{stdout}");
    }
}
