//! Test fixtures: one test CA, cached keys, a certificate builder, and contexts.

use fleetpki_model::UnixTime;
use fleetpki_model::oid::{CLIENT_AUTH, KeyUsageBit, SERVER_AUTH};
use fleetpki_model::template::HashAlg;
use fleetpki_profiles::{CertFacts, Context, Report, Status};
use fleetpki_x509::cert::{self, CertParams, IssuerUrls, San};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{name, serial};
use std::sync::{LazyLock, OnceLock};
use x509_cert::Certificate;

pub const NOW: UnixTime = 1_767_225_600; // 2026-01-01
pub const DAY: i64 = 86_400;

/// Keys are cached per type: RSA-4096 generation is slow, and the rules look at sizes only.
pub fn key(kt: KeyType) -> &'static PrivateKey {
    static KEYS: [OnceLock<PrivateKey>; 6] = [const { OnceLock::new() }; 6];
    let i = KeyType::ALL
        .iter()
        .position(|k| *k == kt)
        .expect("known key type");
    KEYS[i].get_or_init(|| PrivateKey::generate(kt).expect("keygen"))
}

pub struct Ca {
    pub key: PrivateKey,
    pub cert: Certificate,
    pub der: Vec<u8>,
}

/// A self-signed ECDSA P-256 root that signs every test certificate.
pub static CA: LazyLock<Ca> = LazyLock::new(|| {
    let key = PrivateKey::generate(KeyType::EcdsaP256).expect("ca key");
    let p = CertParams {
        serial: serial::random().expect("serial"),
        subject: name::build(&[("CN", "Profiles Test Root"), ("O", "Contoso")]).expect("name"),
        sans: vec![],
        spki_der: key.public_key_der(),
        not_before: NOW - 365 * DAY,
        not_after: NOW + 10 * 365 * DAY,
        key_usage: vec![KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign],
        ekus: vec![],
        ca: Some(None),
        urls: IssuerUrls::default(),
    };
    let der = cert::issue(&p, None, &key.signer(HashAlg::Sha256)).expect("root");
    let cert = cert::parse("root", &der).expect("parse root");
    Ca { key, cert, der }
});

/// What to put in a test certificate; `Leaf::new()` is a typical client certificate.
#[derive(Clone)]
pub struct Leaf {
    pub key: KeyType,
    pub subject: Vec<(&'static str, String)>,
    pub sans: Vec<San>,
    pub ekus: Vec<&'static str>,
    pub ku: Vec<KeyUsageBit>,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    pub ca: Option<Option<u8>>,
    /// Signed by its own key instead of the test CA.
    pub self_signed: bool,
}

impl Leaf {
    pub fn new() -> Self {
        Self {
            key: KeyType::EcdsaP256,
            subject: vec![("CN", "pc1.fleet.test".to_string())],
            sans: vec![],
            ekus: vec![CLIENT_AUTH],
            ku: vec![KeyUsageBit::DigitalSignature, KeyUsageBit::KeyEncipherment],
            not_before: NOW - DAY,
            not_after: NOW + 365 * DAY,
            ca: None,
            self_signed: false,
        }
    }
    pub fn server(cn: &str) -> Self {
        Self::new().cn(cn).eku(&[SERVER_AUTH])
    }
    pub fn key(mut self, k: KeyType) -> Self {
        self.key = k;
        self
    }
    pub fn cn(mut self, cn: &str) -> Self {
        self.subject = vec![("CN", cn.to_string())];
        self
    }
    pub fn no_subject(mut self) -> Self {
        self.subject.clear();
        self
    }
    pub fn dns(mut self, names: &[&str]) -> Self {
        self.sans = names.iter().map(|n| San::Dns(n.to_string())).collect();
        self
    }
    pub fn eku(mut self, ekus: &[&'static str]) -> Self {
        self.ekus = ekus.to_vec();
        self
    }
    pub fn ku(mut self, ku: &[KeyUsageBit]) -> Self {
        self.ku = ku.to_vec();
        self
    }
    pub fn days(mut self, days: i64) -> Self {
        self.not_after = self.not_before + days * DAY;
        self
    }
    pub fn window(mut self, not_before: UnixTime, not_after: UnixTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }
    pub fn ca(mut self, self_signed: bool) -> Self {
        self.ca = Some(None);
        self.ekus.clear();
        self.ku = vec![KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign];
        self.self_signed = self_signed;
        self
    }
    pub fn self_signed(mut self) -> Self {
        self.self_signed = true;
        self
    }

    /// The certificate's DER.
    pub fn issue(&self) -> Vec<u8> {
        let k = key(self.key);
        let pairs: Vec<(&str, &str)> = self.subject.iter().map(|(a, v)| (*a, v.as_str())).collect();
        let p = CertParams {
            serial: serial::random().expect("serial"),
            subject: name::build(&pairs).expect("subject"),
            sans: self.sans.clone(),
            spki_der: k.public_key_der(),
            not_before: self.not_before,
            not_after: self.not_after,
            key_usage: self.ku.clone(),
            ekus: self.ekus.iter().map(|e| e.to_string()).collect(),
            ca: self.ca,
            urls: IssuerUrls::default(),
        };
        if self.self_signed {
            cert::issue(&p, None, &k.signer(HashAlg::Sha256)).expect("issue self-signed")
        } else {
            cert::issue(&p, Some(&CA.cert), &CA.key.signer(HashAlg::Sha256)).expect("issue")
        }
    }

    pub fn facts(&self) -> CertFacts {
        facts_of(&self.issue())
    }
}

pub fn facts_of(der: &[u8]) -> CertFacts {
    CertFacts::from_certificate(&cert::parse("test", der).expect("parse")).expect("facts")
}

/// A context at `NOW` with nothing else known.
pub fn ctx() -> Context {
    Context {
        now: NOW,
        ..Context::default()
    }
}

/// The ids of every failed rule (errors and warnings), in rule order.
pub fn failing(r: &Report) -> Vec<&'static str> {
    r.findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| f.rule)
        .collect()
}
