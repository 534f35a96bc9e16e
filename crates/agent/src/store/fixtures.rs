//! Test certificates for the store and PKCS#12 tests: a CA and leaves it issues.

use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::template::HashAlg;
use fleetpki_x509::cert::{self, CertParams, IssuerUrls, San};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{name, serial};

pub(crate) const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
const DAY: i64 = 86_400;

/// A self-signed CA that issues test leaves.
pub(crate) struct TestCa {
    pub key: PrivateKey,
    pub der: Vec<u8>,
}

impl TestCa {
    pub fn new(cn: &str) -> Self {
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let now = fleetpki_model::now();
        let params = CertParams {
            serial: serial::random().unwrap(),
            subject: name::build(&[("CN", cn), ("O", "fleetpki tests")]).unwrap(),
            sans: vec![],
            spki_der: key.public_key_der(),
            not_before: now - DAY,
            not_after: now + 365 * DAY,
            key_usage: vec![KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign],
            ekus: vec![],
            ca: Some(None),
            urls: IssuerUrls::default(),
        };
        let der = cert::issue(&params, None, &key.signer(HashAlg::Sha256)).unwrap();
        Self { key, der }
    }

    /// A client-authentication leaf for `key`, valid from yesterday for 30 days.
    pub fn leaf(&self, cn: &str, key: &PrivateKey) -> Vec<u8> {
        let now = fleetpki_model::now();
        self.leaf_at(cn, key, now - DAY, now + 30 * DAY)
    }

    pub fn leaf_at(&self, cn: &str, key: &PrivateKey, not_before: i64, not_after: i64) -> Vec<u8> {
        let params = CertParams {
            serial: serial::random().unwrap(),
            subject: name::build(&[("CN", cn)]).unwrap(),
            sans: vec![San::Dns(cn.to_string())],
            spki_der: key.public_key_der(),
            not_before,
            not_after,
            key_usage: vec![KeyUsageBit::DigitalSignature],
            ekus: vec![CLIENT_AUTH.to_string()],
            ca: None,
            urls: IssuerUrls::default(),
        };
        let issuer = cert::parse("ca", &self.der).unwrap();
        cert::issue(&params, Some(&issuer), &self.key.signer(HashAlg::Sha256)).unwrap()
    }
}

pub(crate) fn p256() -> PrivateKey {
    PrivateKey::generate(KeyType::EcdsaP256).unwrap()
}
