//! What the `scep_pki_message` fuzz target does with its input, step by step as
//! crates/server/src/roles/scep.rs does: parse the pkiMessage, open the envelope with the RA's
//! key, read the inner content its messageType calls for, and build the CertRep answer.
//! Shared (by `#[path]`) with crates/x509/tests/fuzz_seeds.rs, which runs it over
//! fuzz/seeds/scep_pki_message/, so the target and the seed check cannot drift apart.

use der::{Decode, Encode};
use fleetpki_x509::key::PrivateKey;
use fleetpki_x509::scep::{self, ContentCipher, FailInfo, MessageType, Ra, ScepError, Status};
use std::sync::OnceLock;
use x509_cert::Certificate;

/// A fixed RA key (fuzzing only: committed, so it protects nothing) so that corpus entries can
/// be encrypted to it and reach the code behind the key transport.
const RA_KEY_PEM: &str = include_str!("../ra/fuzzing-only-ra-key.pem");
const RA_CERT_PEM: &str = include_str!("../ra/fuzzing-only-ra-cert.pem");

pub struct FuzzRa {
    pub key: PrivateKey,
    pub cert: Certificate,
}

/// The committed fuzzing RA; a broken file is a bug of the fuzz set-up, so this panics.
pub fn ra() -> &'static FuzzRa {
    static RA: OnceLock<FuzzRa> = OnceLock::new();
    RA.get_or_init(|| {
        let key = PrivateKey::from_pem(RA_KEY_PEM, None).expect("fuzz/ra key");
        let der = fleetpki_x509::pem::decode_all("ra", RA_CERT_PEM.as_bytes(), "CERTIFICATE")
            .expect("fuzz/ra certificate PEM");
        let cert = fleetpki_x509::cert::parse("ra", der.first().expect("one certificate"))
            .expect("fuzz/ra certificate");
        FuzzRa { key, cert }
    })
}

/// How far an input got.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reached {
    /// The signature verified (`scep::parse` accepted it).
    pub message_type: Option<MessageType>,
    /// The envelope opened with the RA key.
    pub cipher: Option<ContentCipher>,
    /// The inner content parsed as what the messageType calls for.
    pub inner: bool,
    /// A CertRep was built (SUCCESS, PENDING or FAILURE).
    pub reply: bool,
}

pub fn run(data: &[u8]) -> Reached {
    let fuzz_ra = ra();
    let signer = Ra {
        cert: &fuzz_ra.cert,
        key: &fuzz_ra.key,
    };
    let mut reached = Reached::default();
    let failure = |header: &scep::Header, info: FailInfo| {
        scep::cert_rep(header, &Status::Failure(info), None, &signer).is_ok()
    };
    let msg = match scep::parse(data) {
        Ok(msg) => msg,
        Err(ScepError::Malformed(_)) => return reached,
        Err(ScepError::Fail { header, info, .. }) => {
            reached.reply = failure(&header, info);
            return reached;
        }
    };
    reached.message_type = Some(msg.message_type);
    let (inner, cipher) = match scep::open_envelope(&msg, &fuzz_ra.key, &fuzz_ra.cert) {
        Ok(opened) => opened,
        Err(ScepError::Malformed(_)) => return reached,
        Err(ScepError::Fail { header, info, .. }) => {
            reached.reply = failure(&header, info);
            return reached;
        }
    };
    reached.cipher = Some(cipher);
    let status = match msg.message_type {
        MessageType::PkcsReq | MessageType::RenewalReq => {
            match fleetpki_x509::csr::parse(&inner) {
                Ok(csr) => {
                    reached.inner = true;
                    let _ = csr.challenge_password();
                    let _ = csr.requested_extensions();
                    let _ = msg
                        .signer
                        .tbs_certificate()
                        .subject_public_key_info()
                        .to_der()
                        .map(|spki| spki == csr.spki_der);
                    // Stands in for the issued certificate: the answer's shape is the same.
                    match scep::certs_only(&[&msg.signer_der], &[]) {
                        Ok(certs) => Status::Success(certs),
                        Err(_) => Status::Failure(FailInfo::BadRequest),
                    }
                }
                Err(_) => Status::Failure(FailInfo::BadRequest),
            }
        }
        MessageType::CertPoll => match scep::IssuerAndSubject::from_der(&inner) {
            Ok(_) => {
                reached.inner = true;
                Status::Pending
            }
            Err(_) => Status::Failure(FailInfo::BadRequest),
        },
        MessageType::GetCert | MessageType::GetCrl => {
            match cms::cert::IssuerAndSerialNumber::from_der(&inner) {
                Ok(ias) => {
                    reached.inner = true;
                    let _ = fleetpki_x509::serial::to_hex(ias.serial_number.as_bytes());
                    match fuzz_ra
                        .cert
                        .to_der()
                        .ok()
                        .and_then(|ra_der| scep::certs_only(&[&ra_der], &[]).ok())
                    {
                        Some(certs) => Status::Success(certs),
                        None => Status::Failure(FailInfo::BadCertId),
                    }
                }
                Err(_) => Status::Failure(FailInfo::BadRequest),
            }
        }
        MessageType::CertRep => Status::Failure(FailInfo::BadRequest),
    };
    let recipient = matches!(status, Status::Success(_)).then_some((&msg.signer, cipher));
    reached.reply = match scep::cert_rep(&msg.header, &status, recipient, &signer) {
        Ok(_) => true,
        // As the server: a signer that cannot receive key transport is answered badAlg.
        Err(_) => failure(&msg.header, FailInfo::BadAlg),
    };
    reached
}

/// For the `scep_envelope_content` target: mutations of a signed pkiMessage almost never get
/// past its signature, so that target fuzzes what is inside the envelope instead. `data`'s
/// first byte picks the message type and content cipher, the rest is the inner content (a
/// PKCS#10 request, IssuerAndSubject or IssuerAndSerialNumber); it is encrypted to the fuzzing
/// RA and signed like a client would (`scep::client::request`), then run as above.
pub fn run_content(data: &[u8]) -> Reached {
    let Some((&selector, inner)) = data.split_first() else {
        return Reached::default();
    };
    match wrap(selector, inner) {
        Some(msg) => run(&msg),
        None => Reached::default(),
    }
}

const TYPES: [MessageType; 5] = [
    MessageType::PkcsReq,
    MessageType::RenewalReq,
    MessageType::CertPoll,
    MessageType::GetCert,
    MessageType::GetCrl,
];
const CIPHERS: [ContentCipher; 5] = [
    ContentCipher::Aes128Cbc,
    ContentCipher::Aes192Cbc,
    ContentCipher::Aes256Cbc,
    ContentCipher::DesEde3Cbc,
    ContentCipher::DesCbc,
];

/// The selector byte for a message type and cipher (for seeds).
pub fn selector(message_type: MessageType, cipher: ContentCipher) -> Option<u8> {
    let t = TYPES.iter().position(|t| *t == message_type)?;
    let c = CIPHERS.iter().position(|c| *c == cipher)?;
    u8::try_from(t * CIPHERS.len() + c).ok()
}

/// The client's key and self-signed certificate: its key is the one a PKCSReq's CSR must
/// carry, so seeds sign their CSR with it.
pub fn client() -> &'static FuzzRa {
    static CLIENT: OnceLock<FuzzRa> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let key = PrivateKey::from_pem(CLIENT_KEY_PEM, None).expect("fuzz/ra client key");
        let subject = fleetpki_x509::name::build(&[("CN", "fuzz-seed.example")]).expect("name");
        let cert = scep::client::self_signed(&key, &subject).expect("client certificate");
        FuzzRa { key, cert }
    })
}

const CLIENT_KEY_PEM: &str = include_str!("../ra/fuzzing-only-client-key.pem");

fn wrap(selector: u8, inner: &[u8]) -> Option<Vec<u8>> {
    let i = usize::from(selector) % (TYPES.len() * CIPHERS.len());
    let (message_type, cipher) = (TYPES[i / CIPHERS.len()], CIPHERS[i % CIPHERS.len()]);
    let client = client();
    scep::client::request(
        message_type,
        "fuzz",
        &[0u8; 16],
        inner,
        &client.cert,
        &client.key,
        &ra().cert,
        cipher,
    )
    .ok()
}
