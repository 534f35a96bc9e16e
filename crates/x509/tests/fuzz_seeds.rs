//! The fuzz targets' seeds (fuzz/seeds/, outside the workspace) through the very code the
//! targets run (fuzz/exercise/, included here), so a target that stops compiling against the
//! crate, or a seed that stops reaching past decryption, fails the ordinary test run.
//!
//! `regenerate_scep_seeds` (ignored) rebuilds fuzz/seeds/scep_pki_message/ and
//! fuzz/seeds/scep_envelope_content/ against the committed fuzzing-only RA (fuzz/ra/): see
//! fuzz/README.md.

#[path = "../../../fuzz/exercise/est_csr_body.rs"]
mod est_target;
#[path = "../../../fuzz/exercise/scep_pki_message.rs"]
mod scep_target;

use der::Encode;
use fleetpki_x509::csr;
use fleetpki_x509::scep::{self, ContentCipher, MessageType};
use std::path::PathBuf;

fn seeds(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../fuzz/seeds/{target}"))
}

/// Every file of the seed directory, sorted, with its name.
fn seed_files(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = seeds(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (name, data)
        })
        .collect();
    out.sort();
    out
}

/// The SCEP seeds the generator writes: name, message type, content cipher.
const SCEP_SEEDS: &[(&str, MessageType, ContentCipher)] = &[
    (
        "pkcsreq-aes128.der",
        MessageType::PkcsReq,
        ContentCipher::Aes128Cbc,
    ),
    (
        "pkcsreq-aes256.der",
        MessageType::PkcsReq,
        ContentCipher::Aes256Cbc,
    ),
    (
        "pkcsreq-3des.der",
        MessageType::PkcsReq,
        ContentCipher::DesEde3Cbc,
    ),
    (
        "certpoll-aes256.der",
        MessageType::CertPoll,
        ContentCipher::Aes256Cbc,
    ),
    (
        "getcert-aes128.der",
        MessageType::GetCert,
        ContentCipher::Aes128Cbc,
    ),
];

#[test]
fn scep_seeds_reach_the_cert_rep() {
    let files = seed_files("scep_pki_message");
    for (name, mt, cipher) in SCEP_SEEDS {
        let (_, data) = files
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("seed {name} is missing (regenerate_scep_seeds)"));
        let reached = scep_target::run(data);
        assert_eq!(
            reached,
            scep_target::Reached {
                message_type: Some(*mt),
                cipher: Some(*cipher),
                inner: true,
                reply: true,
            },
            "{name}"
        );
    }
    // Whatever else is there (e.g. a saved crash) must at least not panic.
    for (_, data) in &files {
        scep_target::run(data);
    }
}

/// The `scep_envelope_content` seeds: a selector byte, then the inner content.
const CONTENT_SEEDS: &[(&str, MessageType, ContentCipher)] = &[
    (
        "pkcsreq-aes128.bin",
        MessageType::PkcsReq,
        ContentCipher::Aes128Cbc,
    ),
    (
        "renewalreq-aes192.bin",
        MessageType::RenewalReq,
        ContentCipher::Aes192Cbc,
    ),
    (
        "pkcsreq-des.bin",
        MessageType::PkcsReq,
        ContentCipher::DesCbc,
    ),
    (
        "certpoll-3des.bin",
        MessageType::CertPoll,
        ContentCipher::DesEde3Cbc,
    ),
    (
        "getcrl-aes256.bin",
        MessageType::GetCrl,
        ContentCipher::Aes256Cbc,
    ),
];

#[test]
fn scep_content_seeds_reach_the_cert_rep() {
    let files = seed_files("scep_envelope_content");
    for (name, mt, cipher) in CONTENT_SEEDS {
        let (_, data) = files
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("seed {name} is missing (regenerate_scep_seeds)"));
        assert_eq!(
            scep_target::run_content(data),
            scep_target::Reached {
                message_type: Some(*mt),
                cipher: Some(*cipher),
                inner: true,
                reply: true,
            },
            "{name}"
        );
        // The same content under another message type does not parse as its inner content.
        let mut other = data.clone();
        other[0] = scep_target::selector(
            if matches!(mt, MessageType::CertPoll) {
                MessageType::PkcsReq
            } else {
                MessageType::CertPoll
            },
            *cipher,
        )
        .expect("selector");
        let got = scep_target::run_content(&other);
        assert!(
            got.cipher.is_some() && !got.inner && got.reply,
            "{name}: {got:?}"
        );
    }
    for (_, data) in &files {
        scep_target::run_content(data);
    }
}

#[test]
fn scep_target_refuses_noise_and_a_truncated_seed() {
    let none = scep_target::Reached::default();
    assert_eq!(scep_target::run(b""), none);
    assert_eq!(scep_target::run(b"\x30\x03\x02\x01\x00"), none);
    let files = seed_files("scep_pki_message");
    let (_, data) = files
        .iter()
        .find(|(n, _)| n == "pkcsreq-aes128.der")
        .expect("seed pkcsreq-aes128.der");
    assert_eq!(scep_target::run(&data[..data.len() / 2]), none);
}

#[test]
fn est_seeds_parse() {
    let files = seed_files("est_csr_body");
    assert!(files.len() >= 2, "est seeds: {files:?}");
    for (name, data) in &files {
        assert!(est_target::run(data), "{name} does not parse");
    }
    assert!(!est_target::run(b"not base64 at all!"));
}

/// Rebuilds fuzz/seeds/scep_pki_message/ and fuzz/seeds/scep_envelope_content/ (random
/// nonces, content keys and signer serial each time):
/// `cargo test -p fleetpki-x509 --test fuzz_seeds -- --ignored regenerate_scep_seeds`.
#[test]
#[ignore = "writes fuzz/seeds/scep_*/; run by hand"]
fn regenerate_scep_seeds() {
    let ra = scep_target::ra();
    let client = scep_target::client();
    let (key, signer) = (&client.key, &client.cert);
    let subject = signer.tbs_certificate().subject().clone();
    let request = csr::create_with_challenge(
        &subject,
        &[],
        Some("fuzz-challenge"),
        &key.signer(fleetpki_model::template::HashAlg::Sha256),
    )
    .expect("csr");
    let poll = scep::IssuerAndSubject {
        issuer: ra.cert.tbs_certificate().subject().clone(),
        subject: subject.clone(),
    }
    .to_der()
    .expect("IssuerAndSubject");
    let get_cert = cms::cert::IssuerAndSerialNumber {
        issuer: ra.cert.tbs_certificate().subject().clone(),
        serial_number: ra.cert.tbs_certificate().serial_number().clone(),
    }
    .to_der()
    .expect("IssuerAndSerialNumber");
    let dir = seeds("scep_pki_message");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (i, (file, mt, cipher)) in SCEP_SEEDS.iter().enumerate() {
        let inner = match mt {
            MessageType::PkcsReq => &request,
            MessageType::CertPoll => &poll,
            _ => &get_cert,
        };
        let der = scep::client::request(
            *mt,
            &format!("fuzz-seed-{i}"),
            &[i as u8; 16],
            inner,
            signer,
            key,
            &ra.cert,
            *cipher,
        )
        .expect("pkiMessage");
        // Only a seed that gets all the way through is worth keeping.
        assert!(scep_target::run(&der).reply, "{file}");
        std::fs::write(dir.join(file), der).expect("write seed");
    }
    let dir = seeds("scep_envelope_content");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (file, mt, cipher) in CONTENT_SEEDS {
        let inner = match mt {
            MessageType::PkcsReq | MessageType::RenewalReq => &request,
            MessageType::CertPoll => &poll,
            _ => &get_cert,
        };
        let mut data = vec![scep_target::selector(*mt, *cipher).expect("selector")];
        data.extend_from_slice(inner);
        assert!(scep_target::run_content(&data).inner, "{file}");
        std::fs::write(dir.join(file), data).expect("write seed");
    }
}
