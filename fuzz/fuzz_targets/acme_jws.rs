//! The ACME JWS parser and verifier on arbitrary request bodies; what is exercised is in
//! ../exercise/acme_jws.rs. See fuzz/README.md.
#![no_main]

#[path = "../exercise/acme_jws.rs"]
mod exercise;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exercise::run(data);
});
