//! Sign / verify tests over real keys and self-signed certificates shaped like the site
//! signing certificate, plus independent verification with the real `openssl`.

use crate::document::tests::sample;
use crate::*;
use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::template::HashAlg;
use fleetpki_x509::cert::{self, CertParams, IssuerUrls};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{name, serial};
use std::path::Path;

/// A key and a self-signed certificate as `Site::init` makes the site signing certificate:
/// end entity, digitalSignature only.
fn signing_pair(kt: KeyType) -> (PrivateKey, Vec<u8>) {
    let key = PrivateKey::generate(kt).expect("generate");
    let now = fleetpki_model::now();
    let params = CertParams {
        serial: serial::random().expect("serial"),
        subject: name::build(&[("CN", "fleetpki PS1 Site Signing"), ("O", "test")]).expect("name"),
        sans: vec![],
        spki_der: key.public_key_der(),
        not_before: now - 300,
        not_after: now + 86_400 * 365,
        key_usage: vec![KeyUsageBit::DigitalSignature],
        ekus: vec![],
        ca: None,
        urls: IssuerUrls::default(),
    };
    let der = cert::issue(&params, None, &key.signer(HashAlg::Sha256)).expect("issue");
    (key, der)
}

fn p256() -> (PrivateKey, Vec<u8>) {
    signing_pair(KeyType::EcdsaP256)
}

#[test]
fn round_trip_every_signing_key_type() {
    let cases = [
        (KeyType::EcdsaP256, "ecdsa-with-SHA256"),
        (KeyType::EcdsaP384, "ecdsa-with-SHA384"),
        (KeyType::Ed25519, "Ed25519"),
        (KeyType::Rsa2048, "sha256WithRSAEncryption"),
    ];
    for (kt, alg) in cases {
        let (key, cert_der) = signing_pair(kt);
        let policy = sample();
        let signed = sign(&policy, &key, &cert_der).expect("sign");
        assert_eq!(signed.algorithm, alg);
        assert_eq!(signed.signer_sha256, cert::fingerprint(&cert_der));
        assert_eq!(signed.payload, canonical_bytes(&policy).expect("bytes"));
        assert_eq!(verify(&signed, &cert_der).expect("verify"), policy, "{kt}");
        // Through the wire form, and with the pinned certificate as PEM.
        let back = SignedPolicy::from_json(&signed.to_json()).expect("from_json");
        assert_eq!(back, signed);
        let pem = cert::to_pem(&cert_der);
        assert_eq!(verify(&back, pem.as_bytes()).expect("verify pem"), policy);
    }
}

#[test]
fn wire_form_has_the_documented_keys_in_order() {
    let (key, cert_der) = p256();
    let signed = sign(&sample(), &key, &cert_der).expect("sign");
    let json = signed.to_json();
    assert!(json.starts_with(r#"{"payload":""#), "{json}");
    let order: Vec<usize> = [
        "\"payload\"",
        "\"signature\"",
        "\"algorithm\"",
        "\"signer_sha256\"",
    ]
    .iter()
    .map(|k| json.find(k).expect("key present"))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{json}");
    assert!(!json.contains(char::is_whitespace), "{json}");
}

#[test]
fn tampered_payload_is_a_bad_signature() {
    let (key, cert_der) = p256();
    let mut signed = sign(&sample(), &key, &cert_der).expect("sign");
    // Raise the version: the attack a rollback or privilege change would need.
    let text = String::from_utf8(signed.payload.clone()).expect("utf8");
    signed.payload = text.replace("\"version\":3", "\"version\":9").into_bytes();
    assert_ne!(signed.payload, canonical_bytes(&sample()).expect("bytes"));
    let e = verify(&signed, &cert_der).unwrap_err();
    assert!(matches!(e, PolicyError::BadSignature { .. }), "{e}");
    assert_eq!(e.field(), "signature");
    // One flipped bit anywhere, too.
    let mut signed = sign(&sample(), &key, &cert_der).expect("sign");
    signed.payload[10] ^= 0x01;
    assert!(matches!(
        verify(&signed, &cert_der),
        Err(PolicyError::BadSignature { .. })
    ));
}

#[test]
fn tampered_signature_is_a_bad_signature() {
    let (key, cert_der) = p256();
    let good = sign(&sample(), &key, &cert_der).expect("sign");
    for i in [0, good.signature.len() / 2, good.signature.len() - 1] {
        let mut s = good.clone();
        s.signature[i] ^= 0x40;
        let e = verify(&s, &cert_der).unwrap_err();
        assert!(matches!(e, PolicyError::BadSignature { .. }), "{i}: {e}");
    }
    let mut s = good.clone();
    s.signature.truncate(10);
    assert!(matches!(
        verify(&s, &cert_der),
        Err(PolicyError::BadSignature { .. })
    ));
}

#[test]
fn empty_or_missing_signature_is_unsigned() {
    let (key, cert_der) = p256();
    let mut s = sign(&sample(), &key, &cert_der).expect("sign");
    s.signature.clear();
    let e = verify(&s, &cert_der).unwrap_err();
    assert_eq!(e, PolicyError::Unsigned);
    assert!(e.to_string().starts_with("signature: "), "{e}");
    let json = s.to_json();
    assert_eq!(
        SignedPolicy::from_json(&json).unwrap_err(),
        PolicyError::Unsigned
    );
    let no_sig = r#"{"payload":"e30=","algorithm":"ecdsa-with-SHA256","signer_sha256":"00"}"#;
    assert_eq!(
        SignedPolicy::from_json(no_sig).unwrap_err(),
        PolicyError::Unsigned
    );
    // A bare policy, as an attacker without the key would send it.
    let bare = String::from_utf8(canonical_bytes(&sample()).expect("bytes")).expect("utf8");
    assert_eq!(
        SignedPolicy::from_json(&bare).unwrap_err(),
        PolicyError::Unsigned
    );
}

#[test]
fn another_signing_certificate_is_a_signer_mismatch() {
    let (key, cert_der) = p256();
    let (other_key, other_cert) = p256();
    let signed = sign(&sample(), &key, &cert_der).expect("sign");
    match verify(&signed, &other_cert).unwrap_err() {
        PolicyError::SignerMismatch { pinned, got } => {
            assert_eq!(pinned, cert::fingerprint(&other_cert));
            assert_eq!(got, cert::fingerprint(&cert_der));
        }
        e => panic!("expected SignerMismatch, got {e}"),
    }
    // Signed by another key while claiming the pinned certificate: the signature fails.
    let mut forged = sign(&sample(), &other_key, &other_cert).expect("sign");
    forged.signer_sha256 = cert::fingerprint(&cert_der);
    assert!(matches!(
        verify(&forged, &cert_der),
        Err(PolicyError::BadSignature { .. })
    ));
    // A P-384 certificate pinned, P-256 document claiming it: refused on the algorithm.
    let (k384, c384) = signing_pair(KeyType::EcdsaP384);
    let mut s = sign(&sample(), &k384, &c384).expect("sign");
    s.algorithm = "ecdsa-with-SHA256".into();
    let e = verify(&s, &c384).unwrap_err();
    assert!(matches!(e, PolicyError::Refused { .. }), "{e}");
    assert_eq!(e.field(), "algorithm");
}

#[test]
fn malformed_inputs_name_what_failed() {
    let (key, cert_der) = p256();
    for bad in ["", "not json", "[1,2]", "{\"payload\":"] {
        let e = SignedPolicy::from_json(bad).unwrap_err();
        assert!(matches!(e, PolicyError::Malformed { .. }), "{bad}: {e}");
        assert_eq!(e.field(), "signed_policy", "{bad}");
    }
    let e = SignedPolicy::from_json(
        r#"{"payload":"%%%","signature":"AA==","algorithm":"a","signer_sha256":"b"}"#,
    )
    .unwrap_err();
    assert_eq!(e.field(), "payload", "{e}");
    let e = SignedPolicy::from_json(r#"{"payload":"e30=","signature":"AA==","algorithm":"a"}"#)
        .unwrap_err();
    assert_eq!(e.field(), "signer_sha256", "{e}");
    let huge = format!("\"{}\"", "A".repeat(MAX_SIGNED_POLICY_BYTES));
    assert_eq!(
        SignedPolicy::from_json(&huge).unwrap_err().field(),
        "signed_policy"
    );

    // Correctly signed bytes that are not a policy: malformed payload, after the signature.
    let sign_raw = |payload: &[u8]| {
        let mut s = sign(&sample(), &key, &cert_der).expect("sign");
        s.payload = payload.to_vec();
        s.signature = fleetpki_x509::key::Signer::sign(&key.signer(HashAlg::Sha256), payload)
            .expect("sign raw");
        s
    };
    for junk in [&b"{not json"[..], b"{}", b"[]", b"\xff\xfe"] {
        let e = verify(&sign_raw(junk), &cert_der).unwrap_err();
        assert!(matches!(e, PolicyError::Malformed { .. }), "{e}");
        assert_eq!(e.field(), "payload");
    }
    // Signed and well-formed but breaking a rule: refused on that rule.
    let mut p = sample();
    p.schedule.jitter_secs = -5;
    let bytes = serde_json::to_vec(&p).expect("json");
    let e = verify(&sign_raw(&bytes), &cert_der).unwrap_err();
    assert_eq!(e.field(), "schedule.jitter_secs", "{e}");

    // A pinned certificate that is not one.
    let s = sign(&sample(), &key, &cert_der).expect("sign");
    let e = verify(&s, b"garbage").unwrap_err();
    assert_eq!(e.field(), "pinned_signing_cert", "{e}");
}

#[test]
fn sign_refuses_invalid_policy_and_foreign_certificate() {
    let (key, cert_der) = p256();
    let (_, other_cert) = p256();
    let e = sign(&sample(), &key, &other_cert).unwrap_err();
    assert!(matches!(e, PolicyError::Refused { .. }), "{e}");
    assert_eq!(e.field(), "signing_cert");
    let mut p = sample();
    p.site_code = "TOOLONG".into();
    assert_eq!(sign(&p, &key, &cert_der).unwrap_err().field(), "site_code");
}

#[test]
fn rollback_is_refused() {
    let p = sample(); // version 3
    check_not_older(&p, 0).expect("fresh agent");
    check_not_older(&p, 2).expect("newer");
    check_not_older(&p, 3).expect("same again");
    let e = check_not_older(&p, 4).unwrap_err();
    assert_eq!(
        e,
        PolicyError::Rollback {
            held: 4,
            offered: 3
        }
    );
    assert_eq!(e.field(), "version");
    let text = e.to_string();
    assert!(
        text.contains("version 3") && text.contains("held version 4"),
        "{text}"
    );
}

#[test]
fn policy_is_bound_to_its_client() {
    let p = sample();
    check_client(&p, "WS01.corp.example").expect("case-insensitive");
    let e = check_client(&p, "ws02.corp.example").unwrap_err();
    assert_eq!(e.field(), "client");
}

#[test]
fn canonical_bytes_are_stable() {
    let p = sample();
    let a = canonical_bytes(&p).expect("bytes");
    assert_eq!(a, canonical_bytes(&p.clone()).expect("bytes"));
    let parsed: Policy = serde_json::from_slice(&a).expect("parse");
    assert_eq!(canonical_bytes(&parsed).expect("bytes"), a);
    // Signing twice: same payload (ECDSA signatures differ, the bytes signed do not).
    let (key, cert_der) = p256();
    let s1 = sign(&p, &key, &cert_der).expect("sign");
    let s2 = sign(&p, &key, &cert_der).expect("sign");
    assert_eq!(s1.payload, s2.payload);
    // The exact form, pinned so that a change is deliberate.
    let small = Policy::new("PS1", 1, 1_700_000_000, "ws01");
    assert_eq!(
        String::from_utf8(canonical_bytes(&small).expect("bytes")).expect("utf8"),
        concat!(
            r#"{"site_code":"PS1","version":1,"issued_at":1700000000,"client":"ws01","#,
            r#""templates":[],"selection":"default","issuers":[],"stores":["personal"],"#,
            r#""multiple_match":"fail","schedule":{"interval_secs":3600,"jitter_secs":1800},"#,
            r#""site_managed_renewal_days":42,"fallback_status_point":null}"#
        )
    );
}

// ---- independent verification with the real openssl -------------------------------------

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path.to_str().expect("utf-8 temp path").to_string()
}

fn openssl(args: &[&str]) -> fleetpki_testkit::Output {
    fleetpki_testkit::openssl(args).expect("openssl must be installed (/usr/bin/openssl)")
}

/// Writes the files of the crate docs' recipe and extracts the public key with openssl.
fn recipe_files(dir: &Path, signed: &SignedPolicy, cert_der: &[u8]) -> (String, String, String) {
    let signing = write(dir, "signing.pem", cert::to_pem(cert_der).as_bytes());
    let payload = write(dir, "payload.json", &signed.payload);
    let sig = write(dir, "sig.der", &signed.signature);
    let pubkey = openssl(&["x509", "-in", &signing, "-pubkey", "-noout"]);
    assert!(pubkey.success(), "{pubkey:?}");
    let pub_pem = write(dir, "pub.pem", pubkey.stdout.as_bytes());
    (payload, sig, pub_pem)
}

#[test]
fn openssl_verifies_p256_policy_and_catches_tampering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, cert_der) = p256();
    // Through the wire form, as an administrator would get it from the management point.
    let signed =
        SignedPolicy::from_json(&sign(&sample(), &key, &cert_der).expect("sign").to_json())
            .expect("from_json");
    let (payload, sig, pub_pem) = recipe_files(dir.path(), &signed, &cert_der);

    let ok = openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        &pub_pem,
        "-signature",
        &sig,
        &payload,
    ]);
    assert!(ok.success(), "{ok:?}");
    assert!(ok.stdout.contains("Verified OK"), "{ok:?}");

    let mut tampered = signed.payload.clone();
    let i = tampered.len() / 2;
    tampered[i] ^= 0x01;
    let bad_payload = write(dir.path(), "tampered.json", &tampered);
    let bad = openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        &pub_pem,
        "-signature",
        &sig,
        &bad_payload,
    ]);
    assert!(!bad.success(), "{bad:?}");
    assert!(bad.combined().contains("Verification failure"), "{bad:?}");

    // signer_sha256 is what openssl computes over the certificate's DER.
    let der_path = write(dir.path(), "signing.der", &cert_der);
    let fp = openssl(&["dgst", "-sha256", "-r", &der_path]);
    assert!(fp.success(), "{fp:?}");
    assert!(
        fp.stdout.starts_with(&signed.signer_sha256),
        "{fp:?} vs {}",
        signed.signer_sha256
    );
}

#[test]
fn openssl_verifies_p384_and_ed25519_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, cert_der) = signing_pair(KeyType::EcdsaP384);
    let signed = sign(&sample(), &key, &cert_der).expect("sign");
    let (payload, sig, pub_pem) = recipe_files(dir.path(), &signed, &cert_der);
    let ok = openssl(&[
        "dgst",
        "-sha384",
        "-verify",
        &pub_pem,
        "-signature",
        &sig,
        &payload,
    ]);
    assert!(ok.success() && ok.stdout.contains("Verified OK"), "{ok:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let (key, cert_der) = signing_pair(KeyType::Ed25519);
    let signed = sign(&sample(), &key, &cert_der).expect("sign");
    let (payload, sig, pub_pem) = recipe_files(dir.path(), &signed, &cert_der);
    let args = |p: &str| -> Vec<String> {
        [
            "pkeyutl", "-verify", "-pubin", "-inkey", &pub_pem, "-rawin", "-in", p, "-sigfile",
            &sig,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |p: &str| {
        let a = args(p);
        openssl(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let ok = run(&payload);
    assert!(
        ok.success() && ok.combined().contains("Signature Verified Successfully"),
        "{ok:?}"
    );
    let mut tampered = signed.payload.clone();
    tampered[0] ^= 0x01;
    let bad = run(&write(dir.path(), "tampered.json", &tampered));
    assert!(!bad.success(), "{bad:?}");
}
