//! What is inside a SCEP pkiMessage's envelope (the PKCS#10 request and its challenge, a
//! CertPoll's IssuerAndSubject, a GetCert's IssuerAndSerialNumber): the first byte picks the
//! message type and content cipher, the rest is encrypted to the fuzzing-only RA and signed as
//! a client would, then goes through the same path as `scep_pki_message`. See fuzz/README.md.
#![no_main]

// Shared by both SCEP targets; each uses part of it.
#[allow(dead_code)]
#[path = "../exercise/scep_pki_message.rs"]
mod exercise;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exercise::run_content(data);
});
