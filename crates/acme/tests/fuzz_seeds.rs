//! The `acme_jws` fuzz target's seeds (fuzz/seeds/acme_jws/, outside the workspace) through
//! the very code the target runs (fuzz/exercise/acme_jws.rs, included here), so a target that
//! stops compiling against the crate, or a seed that stops verifying, fails the test run.
//!
//! `regenerate_acme_jws_seeds` (ignored) rebuilds the seeds: see fuzz/README.md.

#[path = "../../../fuzz/exercise/acme_jws.rs"]
mod jws_target;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jws_target::Reached;
use serde_json::{Value, json};
use std::path::PathBuf;

fn seeds() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/acme_jws")
}

const REQUEST: usize = 0;
const EAB: usize = 1;
const KEY_CHANGE: usize = 2;

/// Seed name, the purpose it is valid for and how far it gets there.
const SEEDS: &[(&str, usize, Reached)] = &[
    (
        "new-account-jwk.json",
        REQUEST,
        Reached {
            parsed: true,
            own_key_verified: true,
            mac_verified: false,
            json: true,
        },
    ),
    (
        "new-order-kid.json",
        REQUEST,
        Reached {
            parsed: true,
            own_key_verified: false,
            mac_verified: false,
            json: true,
        },
    ),
    (
        "post-as-get-kid.json",
        REQUEST,
        Reached {
            parsed: true,
            own_key_verified: false,
            mac_verified: false,
            json: false,
        },
    ),
    (
        "eab-hs256.json",
        EAB,
        Reached {
            parsed: true,
            own_key_verified: false,
            mac_verified: true,
            json: true,
        },
    ),
    (
        "key-change-inner.json",
        KEY_CHANGE,
        Reached {
            parsed: true,
            own_key_verified: true,
            mac_verified: false,
            json: true,
        },
    ),
];

#[test]
fn acme_jws_seeds_verify() {
    let dir = seeds();
    for (name, purpose, want) in SEEDS {
        let data = std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("seed {name}: {e} (regenerate_acme_jws_seeds)"));
        assert_eq!(jws_target::run(&data)[*purpose], *want, "{name}");
    }
    // Whatever else is there (e.g. a saved crash) must at least not panic.
    for entry in std::fs::read_dir(&dir).expect("seed dir") {
        let path = entry.expect("dir entry").path();
        jws_target::run(&std::fs::read(&path).expect("seed"));
    }
}

#[test]
fn acme_jws_target_refuses_a_tampered_seed() {
    let data = std::fs::read(seeds().join("new-account-jwk.json")).expect("seed");
    let mut v: Value = serde_json::from_slice(&data).expect("json");
    // Another (valid base64url) payload under the same signature.
    v["payload"] = json!(URL_SAFE_NO_PAD.encode(b"{\"onlyReturnExisting\":true}"));
    let got = jws_target::run(v.to_string().as_bytes())[REQUEST];
    assert!(got.parsed && got.json && !got.own_key_verified, "{got:?}");
    assert_eq!(jws_target::run(b"{}"), [Reached::default(); 3]);
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn jwk_of(k: &EcdsaKeyPair) -> Value {
    let p = k.public_key().as_ref();
    json!({"crv": "P-256", "kty": "EC", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
}

fn flattened(protected: &Value, payload: &[u8], sign: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let p = b64(protected.to_string().as_bytes());
    let payload = b64(payload);
    let sig = sign(format!("{p}.{payload}").as_bytes());
    serde_json::to_vec_pretty(&json!({"protected": p, "payload": payload, "signature": b64(&sig)}))
        .expect("json")
}

fn es256(k: &EcdsaKeyPair) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    move |input| {
        k.sign(&SystemRandom::new(), input)
            .expect("sign")
            .as_ref()
            .to_vec()
    }
}

/// Rebuilds fuzz/seeds/acme_jws/ (fresh keys each time):
/// `cargo test -p fleetpki-acme --test fuzz_seeds -- --ignored regenerate_acme_jws_seeds`.
#[test]
#[ignore = "writes fuzz/seeds/acme_jws/; run by hand"]
fn regenerate_acme_jws_seeds() {
    let account = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
    let new_key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
    let base = "https://127.0.0.1:8443/acme/fuzz";
    let kid = format!("{base}/acct/1");
    let nonce = b64(b"fuzz-seed-nonce-");
    let eab_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, jws_target::MAC_KEY);
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "new-account-jwk.json",
            flattened(
                &json!({"alg": "ES256", "jwk": jwk_of(&account), "nonce": nonce,
                        "url": format!("{base}/new-account")}),
                json!({"termsOfServiceAgreed": true, "contact": ["mailto:fuzz@example.com"]})
                    .to_string()
                    .as_bytes(),
                es256(&account),
            ),
        ),
        (
            "new-order-kid.json",
            flattened(
                &json!({"alg": "ES256", "kid": kid, "nonce": nonce,
                        "url": format!("{base}/new-order")}),
                json!({"identifiers": [{"type": "dns", "value": "fuzz.example"}]})
                    .to_string()
                    .as_bytes(),
                es256(&account),
            ),
        ),
        (
            "post-as-get-kid.json",
            flattened(
                &json!({"alg": "ES256", "kid": kid, "nonce": nonce,
                        "url": format!("{base}/order/1")}),
                b"",
                es256(&account),
            ),
        ),
        (
            "eab-hs256.json",
            flattened(
                &json!({"alg": "HS256", "kid": "fuzz-eab", "url": format!("{base}/new-account")}),
                jwk_of(&account).to_string().as_bytes(),
                |input| aws_lc_rs::hmac::sign(&eab_key, input).as_ref().to_vec(),
            ),
        ),
        (
            "key-change-inner.json",
            flattened(
                &json!({"alg": "ES256", "jwk": jwk_of(&new_key),
                        "url": format!("{base}/key-change")}),
                json!({"account": kid, "oldKey": jwk_of(&account)})
                    .to_string()
                    .as_bytes(),
                es256(&new_key),
            ),
        ),
    ];
    let dir = seeds();
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (name, data) in files {
        std::fs::write(dir.join(name), data).expect("write seed");
    }
}
