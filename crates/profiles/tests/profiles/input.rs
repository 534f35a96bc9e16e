//! read_input: PEM, DER and PKCS#12 (modern AES and legacy 3DES/RC2, made by openssl), and
//! garbage that must be an error, never a panic.

use crate::support::{CA, Leaf, key};
use fleetpki_profiles::{InputFormat, ProfileError, read_input};
use fleetpki_testkit::openssl;
use fleetpki_x509::cert;
use fleetpki_x509::key::KeyType;
use std::path::Path;

fn leaf() -> (Vec<u8>, Leaf) {
    let l = Leaf::new().key(KeyType::Rsa2048).cn("dp1.fleet.test");
    (l.issue(), l)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `openssl pkcs12 -export` of the leaf (with the CA in the chain) using `extra` options; None
/// when this openssl cannot make it (a missing legacy provider).
fn pkcs12(dir: &Path, der: &[u8], extra: &[&str], stem: &str) -> Option<Vec<u8>> {
    let c = dir.join(format!("{stem}.pem"));
    let k = dir.join(format!("{stem}.key"));
    let ca = dir.join(format!("{stem}-ca.pem"));
    let out = dir.join(format!("{stem}.p12"));
    std::fs::write(&c, cert::to_pem(der)).expect("write cert");
    std::fs::write(&k, key(KeyType::Rsa2048).to_pkcs8_pem().as_bytes()).expect("write key");
    std::fs::write(&ca, cert::to_pem(&CA.der)).expect("write ca");
    let mut args = vec![
        "pkcs12",
        "-export",
        "-in",
        path(&c),
        "-inkey",
        path(&k),
        "-certfile",
        path(&ca),
        "-out",
        path(&out),
        "-passout",
        "pass:pw",
    ];
    args.extend_from_slice(extra);
    let o = openssl(&args).expect("openssl is required for these tests");
    if !o.success() {
        eprintln!("openssl pkcs12 {extra:?} failed: {}", o.stderr);
        return None;
    }
    Some(std::fs::read(&out).expect("read p12"))
}

#[test]
fn pem_and_der() {
    let (der, _) = leaf();
    let i = read_input(&der, None).expect("der");
    assert_eq!((i.format, i.key_exportable), (InputFormat::Der, None));
    assert_eq!(i.der, der);
    assert_eq!(i.facts.subject, "CN=dp1.fleet.test");
    assert_eq!(i.facts.self_signed, Some(false));

    let pem = cert::to_pem(&der);
    let i = read_input(pem.as_bytes(), None).expect("pem");
    assert_eq!((i.format, i.key_exportable), (InputFormat::Pem, None));
    assert_eq!(i.der, der);
    // A chain file: the first block (the leaf) is checked; text around the blocks is ignored.
    let chain = format!(
        "subject=CN=dp1\r\n{}{}",
        pem.replace('\n', "\r\n"),
        cert::to_pem(&CA.der)
    );
    let i = read_input(chain.as_bytes(), Some("ignored")).expect("chain");
    assert_eq!(i.der, der);
    // A CSR is not a certificate.
    let e = read_input(
        b"-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n",
        None,
    )
    .unwrap_err();
    assert_eq!(e.field(), "certificate");
    assert!(e.rule().contains("CERTIFICATE REQUEST"), "{e}");
}

#[test]
fn pkcs12_modern_and_legacy() {
    let d = tempfile::tempdir().expect("tmp");
    let (der, _) = leaf();
    let mut made = 0;
    for (stem, extra) in [
        ("aes", &[][..]),
        (
            "3des",
            &[
                "-certpbe",
                "PBE-SHA1-3DES",
                "-keypbe",
                "PBE-SHA1-3DES",
                "-macalg",
                "sha1",
            ][..],
        ),
        ("legacy", &["-legacy"][..]),
    ] {
        let Some(p12) = pkcs12(d.path(), &der, extra, stem) else {
            assert_eq!(stem, "legacy", "only the legacy provider may be missing");
            continue;
        };
        made += 1;
        let i = read_input(&p12, Some("pw")).unwrap_or_else(|e| panic!("{stem}: {e}"));
        assert_eq!(i.format, InputFormat::Pkcs12, "{stem}");
        assert_eq!(i.key_exportable, Some(true), "{stem}");
        assert_eq!(i.der, der, "{stem}: the leaf, not the CA certificate");

        let e = read_input(&p12, Some("wrong")).unwrap_err();
        assert!(matches!(e, ProfileError::Password { .. }), "{stem}: {e}");
        assert!(e.to_string().starts_with("--password: "), "{e}");
        let e = read_input(&p12, None).unwrap_err();
        assert_eq!(e.field(), "--password", "{stem}: {e}");
        assert!(
            e.rule().contains("pass its password with --password"),
            "{e}"
        );
    }
    assert!(made >= 2);
}

#[test]
fn pkcs12_without_the_key() {
    let d = tempfile::tempdir().expect("tmp");
    let (der, _) = leaf();
    let Some(p12) = pkcs12(d.path(), &der, &["-nokeys"], "nokeys") else {
        panic!("openssl pkcs12 -nokeys failed");
    };
    let i = read_input(&p12, Some("pw")).expect("read");
    assert_eq!(i.format, InputFormat::Pkcs12);
    assert_eq!(
        i.key_exportable, None,
        "a PKCS#12 without a key tells nothing"
    );
    assert_eq!(i.der, der, "the end-entity certificate, not the CA");
}

/// xorshift: deterministic noise without a dependency.
fn noise(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn garbage_is_an_error_never_a_panic() {
    let fixed: &[&[u8]] = &[
        b"",
        b"   \n",
        b"not a certificate",
        b"\x30",
        b"\x30\x00",
        b"\x30\x80\x00\x00",
        b"\x30\x84\xff\xff\xff\xff",
        b"\x30\x03\x02\x01\x03",
        b"\xff\xfe\x00\x01",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nMAA=\n",
        b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        b"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n",
    ];
    for g in fixed {
        let e = read_input(g, None).expect_err("garbage must be refused");
        assert!(matches!(e.field(), "certificate" | "--password"), "{e}");
    }

    // Truncations and bit flips of a real certificate and a real PKCS#12 file.
    let d = tempfile::tempdir().expect("tmp");
    let (der, _) = leaf();
    let p12 = pkcs12(d.path(), &der, &[], "fuzz").expect("p12");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    // PROFILES_FUZZ_ROUNDS=N multiplies the rounds for a longer local run.
    let k: usize = std::env::var("PROFILES_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for (what, good, tries) in [("der", &der, 600 * k), ("p12", &p12, 200 * k)] {
        for cut in (0..good.len()).step_by((good.len() / 60).max(1)) {
            assert!(
                read_input(&good[..cut], Some("pw")).is_err(),
                "{what} cut at {cut}"
            );
        }
        for _ in 0..tries {
            let mut bad = good.clone();
            for _ in 0..1 + noise(&mut seed) % 3 {
                let i = (noise(&mut seed) as usize) % bad.len();
                bad[i] ^= 1 << (noise(&mut seed) % 8);
            }
            // Either an error or (a flip in a signature or a value) a certificate: never a panic.
            let _ = read_input(&bad, Some("pw"));
        }
    }
}
