//! What the `acme_jws` fuzz target does with its input: the ACME JWS parser and verifier on an
//! arbitrary request body, for every purpose (request, EAB, key change), then whatever a parsed
//! JWS offers (signature with its own key, MAC with the key `fuzz`, payload).
//! Shared (by `#[path]`) with crates/acme/tests/fuzz_seeds.rs, which runs it over
//! fuzz/seeds/acme_jws/.

use fleetpki_acme::jws::{Jws, KeyRef, Purpose};

/// The EAB MAC key the target tries (seeds carrying a MAC made with it reach the MAC check).
pub const MAC_KEY: &[u8] = b"fuzz";

/// How far the input got for one purpose.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    pub parsed: bool,
    /// Signed (`jwk`) with the key it carries.
    pub own_key_verified: bool,
    pub mac_verified: bool,
    /// The payload is a JSON object.
    pub json: bool,
}

/// The outcome for `Purpose::Request`, `Purpose::Eab` and `Purpose::KeyChange`, in that order.
pub fn run(data: &[u8]) -> [Reached; 3] {
    let mut out = [Reached::default(); 3];
    for (i, purpose) in [Purpose::Request, Purpose::Eab, Purpose::KeyChange]
        .into_iter()
        .enumerate()
    {
        let Ok(jws) = Jws::parse(data, purpose) else {
            continue;
        };
        out[i].parsed = true;
        if let KeyRef::Jwk(key) = &jws.protected.key {
            out[i].own_key_verified = jws.verify(key).is_ok();
            let _ = key.thumbprint();
            let _ = key.canonical_json();
        }
        out[i].mac_verified = jws.verify_mac(MAC_KEY).is_ok();
        // Arbitrary bytes as a certificate's key: revocation by certificate key must refuse.
        let _ = jws.verify_with_certificate_key(data);
        out[i].json = jws.json().is_ok();
    }
    out
}
