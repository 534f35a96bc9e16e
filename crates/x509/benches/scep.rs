//! The RA's side of one SCEP PKCSReq in process (pkiMessage parsed and its signature checked,
//! envelope opened with the RA key, CSR parsed and verified, CertRep encrypted to the requester
//! and signed by the RA; no store, no HTTP, the certificate answered is pre-built) against the
//! raw ceiling 1/(1/decrypt + 1/sign) of the two RSA-2048 private-key operations it cannot
//! avoid, both measured in this run.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeyPair, KeySize, Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use criterion::Criterion;
use fleetpki_model::template::HashAlg;
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::scep::{self, ContentCipher, MessageType, Ra, Status};
use std::hint::black_box;
use std::time::Instant;
use x509_cert::Certificate;

struct Fixture {
    ra_key: PrivateKey,
    ra_cert: Certificate,
    /// A PKCSReq as scepclient sends it: RSA-2048 self-signed signer, AES-128, challenge.
    request: Vec<u8>,
    /// What the CertRep carries (a degenerate SignedData holding the issued certificate).
    content: Vec<u8>,
}

fn fixture() -> Fixture {
    let subject = |cn| fleetpki_x509::name::build(&[("CN", cn)]).expect("name");
    let ra_key = PrivateKey::generate(KeyType::Rsa2048).expect("RA key");
    let ra_cert = scep::client::self_signed(&ra_key, &subject("RA")).expect("RA certificate");
    let key = PrivateKey::generate(KeyType::Rsa2048).expect("device key");
    let signer = scep::client::self_signed(&key, &subject("dev.fleet.test")).expect("signer");
    let csr = fleetpki_x509::csr::create_with_challenge(
        &subject("dev.fleet.test"),
        &[],
        Some("bench-Secret-1"),
        &key.signer(HashAlg::Sha256),
    )
    .expect("CSR");
    let request = scep::client::request(
        MessageType::PkcsReq,
        "bench-transaction",
        &[7; 16],
        &csr,
        &signer,
        &key,
        &ra_cert,
        ContentCipher::Aes128Cbc,
    )
    .expect("pkiMessage");
    let issued = der::Encode::to_der(&signer).expect("certificate");
    let content = scep::certs_only(&[&issued], &[]).expect("certs-only");
    Fixture {
        ra_key,
        ra_cert,
        request,
        content,
    }
}

/// What the `scep` role does with a PKCSReq, minus the store and the issuance itself.
fn serve_once(f: &Fixture) -> usize {
    let msg = scep::parse(&f.request).expect("parse");
    let (inner, cipher) = scep::open_envelope(&msg, &f.ra_key, &f.ra_cert).expect("envelope");
    let csr = fleetpki_x509::csr::parse(&inner).expect("CSR");
    assert!(csr.challenge_password().is_some());
    let ra = Ra {
        cert: &f.ra_cert,
        key: &f.ra_key,
    };
    scep::cert_rep(
        &msg.header,
        &Status::Success(f.content.clone()),
        Some((&msg.signer, cipher)),
        &ra,
    )
    .expect("CertRep")
    .len()
}

struct Raw {
    decrypting: Pkcs1PrivateDecryptingKey,
    ciphertext: Vec<u8>,
    signing: KeyPair,
    msg: Vec<u8>,
}

fn raw() -> Raw {
    let decrypting = PrivateDecryptingKey::generate(KeySize::Rsa2048).expect("keygen");
    let public = Pkcs1PublicEncryptingKey::new(decrypting.public_key()).expect("public key");
    let mut ciphertext = vec![0u8; public.ciphertext_size()];
    let len = public
        .encrypt(&[0x42; 16], &mut ciphertext)
        .expect("encrypt")
        .len();
    ciphertext.truncate(len);
    Raw {
        decrypting: Pkcs1PrivateDecryptingKey::new(decrypting).expect("PKCS#1 key"),
        ciphertext,
        signing: KeyPair::generate(KeySize::Rsa2048).expect("keygen"),
        msg: vec![0x5a; 200], // about the size of a CertRep's signed attributes
    }
}

fn raw_decrypt(r: &Raw) -> usize {
    let mut out = [0u8; 256];
    r.decrypting
        .decrypt(&r.ciphertext, &mut out)
        .expect("decrypt")
        .len()
}

fn raw_sign(r: &Raw, rng: &SystemRandom) -> usize {
    let mut sig = vec![0u8; r.signing.public_modulus_len()];
    r.signing
        .sign(&RSA_PKCS1_SHA256, rng, &r.msg, &mut sig)
        .expect("sign");
    sig.len()
}

/// Operations per second over `n` runs of `f`.
fn rate(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    f64::from(n) / t.elapsed().as_secs_f64()
}

fn main() {
    let f = fixture();
    let r = raw();
    let rng = SystemRandom::new();

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("raw RSA-2048 PKCS#1 decrypt (aws-lc-rs)", |b| {
        b.iter(|| black_box(raw_decrypt(&r)))
    });
    c.bench_function("raw RSA-2048 PKCS#1 SHA-256 sign (aws-lc-rs)", |b| {
        b.iter(|| black_box(raw_sign(&r, &rng)))
    });
    c.bench_function("SCEP PKCSReq, RA side in process", |b| {
        b.iter(|| black_box(serve_once(&f)))
    });
    c.final_summary();

    // The ratio, from interleaved rounds so that machine noise hits both sides alike.
    let (mut decrypt, mut sign, mut serve) = (0.0, 0.0, 0.0);
    let rounds = 5;
    for _ in 0..rounds {
        decrypt += rate(1000, || {
            black_box(raw_decrypt(&r));
        });
        sign += rate(1000, || {
            black_box(raw_sign(&r, &rng));
        });
        serve += rate(500, || {
            black_box(serve_once(&f));
        });
    }
    let (decrypt, sign, serve) = (
        decrypt / f64::from(rounds),
        sign / f64::from(rounds),
        serve / f64::from(rounds),
    );
    let ceiling = 1.0 / (1.0 / decrypt + 1.0 / sign);
    println!(
        "baseline: aws-lc-rs RSA-2048 decrypt {decrypt:.0}/s, sign {sign:.0}/s → ceiling 1/(1/decrypt+1/sign) = {ceiling:.0}/s"
    );
    println!(
        "fleetpki SCEP PKCSReq, RA side in process: {serve:.0}/s = {:.1} % of the ceiling ({:.3} ms against {:.3} ms per request)",
        100.0 * serve / ceiling,
        1000.0 / serve,
        1000.0 / ceiling
    );
}
