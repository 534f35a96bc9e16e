//! What the `est_csr_body` fuzz target does with its input: the EST base64 PKCS#10 body parser
//! (`simpleenroll`, `simplereenroll`, `serverkeygen`) gives a request or a `FIELD: RULE`
//! error, never a panic; a body that parses re-encodes to one that parses to the same request.
//! Shared (by `#[path]`) with crates/x509/tests/fuzz_seeds.rs, which runs it over
//! fuzz/seeds/est_csr_body/.

use fleetpki_x509::est;

/// Whether the body parsed; panics when a property above does not hold.
pub fn run(data: &[u8]) -> bool {
    match est::parse_csr_body(data) {
        Ok(csr) => {
            let again = est::parse_csr_body(est::encode_base64(&csr.der).as_bytes())
                .expect("a parsed request re-encodes to a parseable body");
            assert_eq!(again.der, csr.der);
            true
        }
        Err(e) => {
            assert!(!e.field().is_empty() && !e.rule().is_empty());
            false
        }
    }
}
