//! The SCEP pkiMessage parser (what `POST /scep/NAME?operation=PKIOperation` reads before any
//! check): it must refuse, never panic, whatever the bytes; a message that parses is then
//! opened with a fixed RA key, as the server does next.
#![no_main]

use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::scep;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn ra() -> &'static (PrivateKey, x509_cert::Certificate) {
    static RA: OnceLock<(PrivateKey, x509_cert::Certificate)> = OnceLock::new();
    RA.get_or_init(|| {
        let key = PrivateKey::generate(KeyType::Rsa2048).expect("key");
        // Not `scep::client::self_signed`: a fixed issuer and serial let corpus entries name
        // this RA as their recipient, so they reach the key transport.
        let params = fleetpki_x509::cert::CertParams {
            serial: vec![1],
            subject: fleetpki_x509::name::build(&[("CN", "fuzz RA")]).expect("name"),
            sans: vec![],
            spki_der: key.public_key_der(),
            not_before: 1_700_000_000,
            not_after: 1_900_000_000,
            key_usage: vec![],
            ekus: vec![],
            ca: None,
            urls: Default::default(),
        };
        let der = fleetpki_x509::cert::issue(
            &params,
            None,
            &key.signer(fleetpki_model::template::HashAlg::Sha256),
        )
        .expect("cert");
        let cert = fleetpki_x509::cert::parse("ra", &der).expect("parse");
        (key, cert)
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = scep::parse(data) {
        let (key, cert) = ra();
        let _ = scep::open_envelope(&msg, key, cert);
    }
});
