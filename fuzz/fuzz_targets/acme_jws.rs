//! The ACME JWS parser and verifier on arbitrary request bodies: every purpose (request, EAB,
//! key change), then whatever a parsed JWS offers (signature with its own key, MAC, payload).
#![no_main]

use fleetpki_acme::jws::{Jws, KeyRef, Purpose};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for purpose in [Purpose::Request, Purpose::Eab, Purpose::KeyChange] {
        let Ok(jws) = Jws::parse(data, purpose) else {
            continue;
        };
        if let KeyRef::Jwk(key) = &jws.protected.key {
            let _ = jws.verify(key);
            let _ = key.thumbprint();
            let _ = key.canonical_json();
        }
        let _ = jws.verify_mac(b"fuzz");
        let _ = jws.verify_with_certificate_key(data);
        let _ = jws.json();
    }
});
