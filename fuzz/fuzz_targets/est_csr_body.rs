//! The EST base64 PKCS#10 body parser (`simpleenroll`, `simplereenroll`, `serverkeygen`):
//! any bytes give a request or a `FIELD: RULE` error, never a panic; a body that parses
//! re-encodes to one that parses to the same request.
#![no_main]

use fleetpki_x509::est;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match est::parse_csr_body(data) {
        Ok(csr) => {
            let again = est::parse_csr_body(est::encode_base64(&csr.der).as_bytes())
                .expect("a parsed request re-encodes to a parseable body");
            assert_eq!(again.der, csr.der);
        }
        Err(e) => assert!(!e.field().is_empty() && !e.rule().is_empty()),
    }
});
