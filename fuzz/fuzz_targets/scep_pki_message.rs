//! The SCEP pkiMessage path of `POST /scep/NAME?operation=PKIOperation`: parse, open the
//! envelope with a fixed (committed, fuzzing-only) RA key, read the inner request and build the
//! CertRep. Any bytes must be refused or answered, never panic. See fuzz/README.md.
#![no_main]

// Shared by both SCEP targets; each uses part of it.
#[allow(dead_code)]
#[path = "../exercise/scep_pki_message.rs"]
mod exercise;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exercise::run(data);
});
