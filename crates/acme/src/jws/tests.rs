use super::*;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::json;

fn e(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn p256() -> EcdsaKeyPair {
    EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()
}

fn ec_jwk(k: &EcdsaKeyPair) -> Value {
    let p = k.public_key().as_ref();
    let n = (p.len() - 1) / 2;
    let crv = if n == 32 { "P-256" } else { "P-384" };
    json!({"kty": "EC", "crv": crv, "x": e(&p[1..1 + n]), "y": e(&p[1 + n..])})
}

fn sign_ec(k: &EcdsaKeyPair, header: Value, payload: &[u8]) -> Value {
    let p = e(header.to_string().as_bytes());
    let pl = e(payload);
    let sig = k
        .sign(&SystemRandom::new(), format!("{p}.{pl}").as_bytes())
        .unwrap();
    json!({"protected": p, "payload": pl, "signature": e(sig.as_ref())})
}

fn header(k: &EcdsaKeyPair) -> Value {
    json!({"alg": "ES256", "nonce": "AAAA", "url": "https://ca/acme/new-account", "jwk": ec_jwk(k)})
}

#[test]
fn es256_and_ed25519_verify_and_tampering_fails() {
    let k = p256();
    let body = sign_ec(&k, header(&k), b"{}");
    let jws = Jws::from_value(&body, Purpose::Request).unwrap();
    let KeyRef::Jwk(jwk) = &jws.protected.key else {
        panic!("jwk")
    };
    jws.verify(jwk).unwrap();
    assert_eq!(jws.protected.url, "https://ca/acme/new-account");
    assert_eq!(jwk.thumbprint().len(), 43);
    // Another payload under the same signature.
    let mut t = body.clone();
    t["payload"] = json!(e(b"{\"a\":1}"));
    let jws = Jws::from_value(&t, Purpose::Request).unwrap();
    assert_eq!(jws.verify(jwk).unwrap_err().kind, ProblemType::Malformed);

    let ed = Ed25519KeyPair::generate().unwrap();
    let h = json!({"alg": "EdDSA", "nonce": "AAAA", "url": "u",
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": e(ed.public_key().as_ref())}});
    let p = e(h.to_string().as_bytes());
    let sig = ed.sign(format!("{p}.").as_bytes());
    let body = json!({"protected": p, "payload": "", "signature": e(sig.as_ref())});
    let jws = Jws::from_value(&body, Purpose::Request).unwrap();
    assert!(jws.is_post_as_get());
    let KeyRef::Jwk(jwk) = &jws.protected.key else {
        panic!("jwk")
    };
    jws.verify(jwk).unwrap();
    // An EC key cannot vouch for an EdDSA signature.
    assert!(
        jws.verify(&Jwk::parse("k", &ec_jwk(&p256())).unwrap())
            .is_err()
    );
}

/// RFC 7638 §3.1's example thumbprint.
#[test]
fn rfc7638_thumbprint() {
    let jwk = json!({"kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
    let k = Jwk::parse("jwk", &jwk).unwrap();
    assert_eq!(
        k.thumbprint(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn eab_mac() {
    let k = p256();
    let key = [9u8; 32];
    let h = json!({"alg": "HS256", "kid": "kid1", "url": "https://ca/acme/new-account"});
    let p = e(h.to_string().as_bytes());
    let pl = e(ec_jwk(&k).to_string().as_bytes());
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key),
        format!("{p}.{pl}").as_bytes(),
    );
    let body = json!({"protected": p, "payload": pl, "signature": e(tag.as_ref())});
    let jws = Jws::from_value(&body, Purpose::Eab).unwrap();
    assert_eq!(jws.protected.key, KeyRef::Kid("kid1".into()));
    jws.verify_mac(&key).unwrap();
    assert_eq!(
        jws.verify_mac(&[1u8; 32]).unwrap_err().kind,
        ProblemType::Unauthorized
    );
    // A MAC algorithm is refused on an ordinary request.
    let p = Jws::from_value(&body, Purpose::Request).unwrap_err();
    assert_eq!(p.kind, ProblemType::BadSignatureAlgorithm);
}

/// Each malformed message is refused with its ACME problem type.
#[test]
fn catalogue() {
    let k = p256();
    let good = sign_ec(&k, header(&k), b"{}");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let hdr = |f: &dyn Fn(&mut Value)| {
        let mut h = header(&k);
        f(&mut h);
        sign_ec(&k, h, b"{}")
    };
    let jwk = ec_jwk(&k);
    let cases: Vec<(&str, Value, ProblemType)> = vec![
        ("not an object", json!([1]), ProblemType::Malformed),
        (
            "general serialization",
            with(&|v| v["signatures"] = json!([])),
            ProblemType::Malformed,
        ),
        (
            "unprotected header",
            with(&|v| v["header"] = json!({})),
            ProblemType::Malformed,
        ),
        (
            "padding",
            with(&|v| v["signature"] = json!(format!("{}=", v["signature"].as_str().unwrap()))),
            ProblemType::Malformed,
        ),
        (
            "no protected",
            with(&|v| {
                v.as_object_mut().unwrap().remove("protected");
            }),
            ProblemType::Malformed,
        ),
        (
            "protected not json",
            with(&|v| v["protected"] = json!(e(b"nope"))),
            ProblemType::Malformed,
        ),
        (
            "alg none",
            hdr(&|h| h["alg"] = json!("none")),
            ProblemType::BadSignatureAlgorithm,
        ),
        (
            "alg HS256",
            hdr(&|h| h["alg"] = json!("HS256")),
            ProblemType::BadSignatureAlgorithm,
        ),
        (
            "no nonce",
            hdr(&|h| {
                h.as_object_mut().unwrap().remove("nonce");
            }),
            ProblemType::BadNonce,
        ),
        (
            "nonce not b64",
            hdr(&|h| h["nonce"] = json!("!!")),
            ProblemType::BadNonce,
        ),
        (
            "no url",
            hdr(&|h| {
                h.as_object_mut().unwrap().remove("url");
            }),
            ProblemType::Malformed,
        ),
        (
            "jwk and kid",
            hdr(&|h| h["kid"] = json!("x")),
            ProblemType::Malformed,
        ),
        (
            "neither",
            hdr(&|h| {
                h.as_object_mut().unwrap().remove("jwk");
            }),
            ProblemType::Malformed,
        ),
        (
            "crit",
            hdr(&|h| h["crit"] = json!(["b64"])),
            ProblemType::Malformed,
        ),
        (
            "private key",
            hdr(&|h| h["jwk"]["d"] = json!("AAAA")),
            ProblemType::BadPublicKey,
        ),
        (
            "P-521",
            hdr(&|h| h["jwk"]["crv"] = json!("P-521")),
            ProblemType::BadPublicKey,
        ),
        (
            "short x",
            hdr(&|h| h["jwk"]["x"] = json!("AAAA")),
            ProblemType::BadPublicKey,
        ),
        (
            "off curve",
            hdr(&|h| h["jwk"]["y"] = jwk["x"].clone()),
            ProblemType::BadPublicKey,
        ),
        (
            "small rsa",
            hdr(&|h| h["jwk"] = json!({"kty": "RSA", "n": e(&[0xc1; 128]), "e": "AQAB"})),
            ProblemType::BadPublicKey,
        ),
        (
            "kty oct",
            hdr(&|h| h["jwk"] = json!({"kty": "oct", "k": "AAAA"})),
            ProblemType::BadPublicKey,
        ),
    ];
    for (name, body, kind) in cases {
        let r = Jws::parse(body.to_string().as_bytes(), Purpose::Request);
        match r {
            Err(p) => assert_eq!(p.kind, kind, "{name}: {p}"),
            Ok(_) => panic!("{name}: accepted"),
        }
    }
    assert_eq!(
        Jws::parse(b"{", Purpose::Request).unwrap_err().kind,
        ProblemType::Malformed
    );
}
