//! The EST base64 PKCS#10 body parser; the properties checked are in ../exercise/est_csr_body.rs.
//! See fuzz/README.md.
#![no_main]

#[path = "../exercise/est_csr_body.rs"]
mod exercise;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exercise::run(data);
});
