//! Software keys: generation, PKCS#8 import and export (plain and passphrase-encrypted), the
//! [`Signer`] abstraction every X.509 structure is signed through, and SPKI inspection.

use crate::alg;
use crate::{X509Error, pem};
use aws_lc_rs::cipher::{
    AES_128, AES_192, AES_256, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey,
    PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use der::asn1::{Any, ObjectIdentifier as Oid, OctetStringRef};
use der::{Decode, Encode};
use fleetpki_model::template::{HashAlg, KeyFamily, KeyInfo};
use pkcs8::pkcs5::{self, pbes2};
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use spki::AlgorithmIdentifierOwned;
use std::num::NonZeroU32;
use zeroize::Zeroizing;

/// PBKDF2-HMAC-SHA256 rounds for keys we encrypt (OWASP 2023 figure; a CA key is opened rarely).
const PBKDF2_ITERATIONS: u32 = 600_000;
/// Above this an encrypted key is refused rather than ground through (denial of service).
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// The key types fleetpki generates and signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    Ed25519,
}

impl KeyType {
    pub const ALL: [KeyType; 6] = [
        Self::EcdsaP256,
        Self::EcdsaP384,
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
        Self::Ed25519,
    ];

    /// Parses "ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"
    /// (case-insensitive; "p256", "rsa2048" and the like are accepted too).
    pub fn parse(field: &str, s: &str) -> Result<Self, X509Error> {
        let norm: String = s
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect();
        let found = match norm.as_str() {
            "ecdsap256" | "p256" | "ecp256" | "ecdsa" => Some(Self::EcdsaP256),
            "ecdsap384" | "p384" | "ecp384" => Some(Self::EcdsaP384),
            "rsa2048" | "rsa" => Some(Self::Rsa2048),
            "rsa3072" => Some(Self::Rsa3072),
            "rsa4096" => Some(Self::Rsa4096),
            "ed25519" => Some(Self::Ed25519),
            _ => None,
        };
        found.ok_or_else(|| {
            X509Error::refused(
                field,
                format!(
                    "`{}` is not a key type; expected one of {}",
                    s.trim(),
                    Self::ALL
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
            Self::Ed25519 => "ed25519",
        }
    }

    pub fn info(self) -> KeyInfo {
        let (family, bits) = match self {
            Self::EcdsaP256 => (KeyFamily::Ecdsa, 256),
            Self::EcdsaP384 => (KeyFamily::Ecdsa, 384),
            Self::Rsa2048 => (KeyFamily::Rsa, 2048),
            Self::Rsa3072 => (KeyFamily::Rsa, 3072),
            Self::Rsa4096 => (KeyFamily::Rsa, 4096),
            Self::Ed25519 => (KeyFamily::Ed25519, 256),
        };
        KeyInfo { family, bits }
    }

    fn from_rsa_bits(field: &str, bits: usize) -> Result<Self, X509Error> {
        match bits {
            2048 => Ok(Self::Rsa2048),
            3072 => Ok(Self::Rsa3072),
            4096 => Ok(Self::Rsa4096),
            b => Err(X509Error::refused(
                field,
                format!("RSA-{b} keys are not supported; use 2048, 3072 or 4096 bits"),
            )),
        }
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A software private key. Keeps its PKCS#8 DER in a zeroizing buffer for export, the parsed
/// aws-lc key for signing, and its SubjectPublicKeyInfo.
pub struct PrivateKey {
    key_type: KeyType,
    inner: Inner,
    pkcs8: Zeroizing<Vec<u8>>,
    spki: Vec<u8>,
    /// RSA only: the key for PKCS#1 v1.5 decryption (CMS key transport, SCEP), built on first
    /// use. Parsing validates the key, which costs as much as a private-key operation: once,
    /// not per message.
    decrypting: std::sync::OnceLock<Option<aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey>>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("PrivateKey")
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

fn internal(what: &str) -> impl FnOnce(aws_lc_rs::error::Unspecified) -> X509Error + '_ {
    move |_| X509Error::internal("key", format!("aws-lc could not {what}"))
}

fn ecdsa_alg(kt: KeyType) -> &'static sig::EcdsaSigningAlgorithm {
    match kt {
        KeyType::EcdsaP384 => &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
        _ => &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
    }
}

impl PrivateKey {
    /// Generates a new key with the system random generator.
    pub fn generate(kt: KeyType) -> Result<Self, X509Error> {
        let (inner, pkcs8) = match kt {
            KeyType::EcdsaP256 | KeyType::EcdsaP384 => {
                let kp = EcdsaKeyPair::generate(ecdsa_alg(kt))
                    .map_err(internal("generate an ECDSA key"))?;
                let doc = kp.to_pkcs8v1().map_err(internal("encode an ECDSA key"))?;
                let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
                (Inner::Ecdsa(kp), pkcs8)
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let size = match kt {
                    KeyType::Rsa3072 => KeySize::Rsa3072,
                    KeyType::Rsa4096 => KeySize::Rsa4096,
                    _ => KeySize::Rsa2048,
                };
                let kp = RsaKeyPair::generate(size).map_err(internal("generate an RSA key"))?;
                let doc: Pkcs8V1Der<'_> = kp.as_der().map_err(internal("encode an RSA key"))?;
                let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
                (Inner::Rsa(kp), pkcs8)
            }
            KeyType::Ed25519 => {
                let kp = Ed25519KeyPair::generate().map_err(internal("generate an Ed25519 key"))?;
                // v1 (no public key inside) is what every consumer reads.
                let doc = kp.to_pkcs8v1().map_err(internal("encode an Ed25519 key"))?;
                let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
                (Inner::Ed25519(kp), pkcs8)
            }
        };
        Self::assemble(kt, inner, pkcs8)
    }

    fn assemble(
        key_type: KeyType,
        inner: Inner,
        pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<Self, X509Error> {
        let spki: Result<PublicKeyX509Der<'static>, _> = match &inner {
            Inner::Ecdsa(k) => k.public_key().as_der(),
            Inner::Rsa(k) => k.public_key().as_der(),
            Inner::Ed25519(k) => k.public_key().as_der(),
        };
        let spki = spki
            .map_err(internal("encode the public key"))?
            .as_ref()
            .to_vec();
        Ok(Self {
            key_type,
            inner,
            pkcs8,
            spki,
            decrypting: std::sync::OnceLock::new(),
        })
    }

    /// Reads a PKCS#8 PrivateKeyInfo (v1, or v2 for Ed25519): ECDSA P-256/P-384, RSA
    /// 2048/3072/4096, Ed25519. Errors go to field "key".
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, X509Error> {
        let info = PrivateKeyInfoRef::from_der(der)
            .map_err(|e| X509Error::der("key", "PKCS#8 private key", e))?;
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            X509Error::refused("key", format!("the private key is rejected: {e}"))
        };
        match info.algorithm.oid {
            alg::RSA_ENCRYPTION => {
                let kp = RsaKeyPair::from_pkcs8(der).map_err(rejected)?;
                let kt = KeyType::from_rsa_bits("key", kp.public_modulus_len() * 8)?;
                let doc: Pkcs8V1Der<'_> = kp.as_der().map_err(internal("encode an RSA key"))?;
                let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
                Self::assemble(kt, Inner::Rsa(kp), pkcs8)
            }
            alg::EC_PUBLIC_KEY => {
                let curve = info
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<Oid>().ok());
                let kt = match curve {
                    Some(alg::SECP256R1) => KeyType::EcdsaP256,
                    Some(alg::SECP384R1) => KeyType::EcdsaP384,
                    Some(alg::SECP521R1) => {
                        return Err(X509Error::refused(
                            "key",
                            "P-521 keys are not supported for signing; use P-256 or P-384",
                        ));
                    }
                    _ => {
                        return Err(X509Error::refused(
                            "key",
                            "the EC curve is not supported; use P-256 or P-384",
                        ));
                    }
                };
                let kp = EcdsaKeyPair::from_pkcs8(ecdsa_alg(kt), der).map_err(rejected)?;
                Self::from_ecdsa(kt, kp)
            }
            alg::ED25519 => {
                let kp = Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?;
                let doc = kp.to_pkcs8v1().map_err(internal("encode an Ed25519 key"))?;
                let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
                Self::assemble(KeyType::Ed25519, Inner::Ed25519(kp), pkcs8)
            }
            other => Err(X509Error::refused(
                "key",
                format!(
                    "private keys of algorithm {other} are not supported; use ECDSA P-256/P-384, RSA or Ed25519"
                ),
            )),
        }
    }

    fn from_ecdsa(kt: KeyType, kp: EcdsaKeyPair) -> Result<Self, X509Error> {
        let doc = kp.to_pkcs8v1().map_err(internal("encode an ECDSA key"))?;
        let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
        Self::assemble(kt, Inner::Ecdsa(kp), pkcs8)
    }

    /// PEM "PRIVATE KEY" (PKCS#8), also "EC PRIVATE KEY" (SEC1) and "RSA PRIVATE KEY" (PKCS#1)
    /// for importing external CA keys; "ENCRYPTED PRIVATE KEY" needs `passphrase`. Raw DER
    /// (PKCS#8, plain or encrypted) is accepted too.
    pub fn from_pem(text: &str, passphrase: Option<&[u8]>) -> Result<Self, X509Error> {
        let labels = [
            "PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "EC PRIVATE KEY",
            "RSA PRIVATE KEY",
        ];
        let blocks = pem::decode_labels("key", text.as_bytes(), &labels)?;
        let (label, der) = blocks
            .into_iter()
            .next()
            .ok_or_else(|| X509Error::malformed("key", "no private key found"))?;
        let der = Zeroizing::new(der);
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "ENCRYPTED PRIVATE KEY" => Self::from_encrypted_der(&der, passphrase),
            "EC PRIVATE KEY" => Self::from_sec1_der(&der),
            "RSA PRIVATE KEY" => {
                let kp = RsaKeyPair::from_der(&der).map_err(|e| {
                    X509Error::refused("key", format!("not a usable PKCS#1 RSA private key: {e}"))
                })?;
                let kt = KeyType::from_rsa_bits("key", kp.public_modulus_len() * 8)?;
                let doc: Pkcs8V1Der<'_> = kp.as_der().map_err(internal("encode an RSA key"))?;
                let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
                Self::assemble(kt, Inner::Rsa(kp), pkcs8)
            }
            // Raw DER: PKCS#8, or encrypted PKCS#8.
            _ if EncryptedPrivateKeyInfoRef::from_der(&der).is_ok()
                && PrivateKeyInfoRef::from_der(&der).is_err() =>
            {
                Self::from_encrypted_der(&der, passphrase)
            }
            _ => Self::from_pkcs8_der(&der),
        }
    }

    fn from_sec1_der(der: &[u8]) -> Result<Self, X509Error> {
        // SEC1 names its curve inside; aws-lc checks it against the algorithm we try.
        for kt in [KeyType::EcdsaP256, KeyType::EcdsaP384] {
            if let Ok(kp) = EcdsaKeyPair::from_private_key_der(ecdsa_alg(kt), der) {
                return Self::from_ecdsa(kt, kp);
            }
        }
        Err(X509Error::refused(
            "key",
            "not a usable SEC1 EC private key on P-256 or P-384",
        ))
    }

    fn from_encrypted_der(der: &[u8], passphrase: Option<&[u8]>) -> Result<Self, X509Error> {
        let passphrase = passphrase.ok_or_else(|| {
            X509Error::passphrase("the private key is encrypted; a passphrase is required")
        })?;
        let plain = decrypt_pkcs8(der, passphrase)?;
        // A wrong passphrase passes the padding check about once in 256 tries; the
        // PrivateKeyInfo parse catches it.
        match PrivateKeyInfoRef::from_der(&plain) {
            Ok(_) => Self::from_pkcs8_der(&plain),
            Err(_) => Err(wrong_passphrase()),
        }
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// PEM "PRIVATE KEY" (unencrypted PKCS#8).
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem::encode("PRIVATE KEY", &self.pkcs8))
    }

    /// PKCS#8 DER (unencrypted).
    /// The RSA PKCS#1 v1.5 decryption key (CMS key transport); `None` for other key types.
    pub fn rsa_pkcs1_decrypting(&self) -> Option<&aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey> {
        use aws_lc_rs::rsa::{Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
        self.decrypting
            .get_or_init(|| match self.inner {
                Inner::Rsa(_) => PrivateDecryptingKey::from_pkcs8(&self.pkcs8)
                    .ok()
                    .and_then(|k| Pkcs1PrivateDecryptingKey::new(k).ok()),
                _ => None,
            })
            .as_ref()
    }

    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }

    /// PKCS#8 EncryptedPrivateKeyInfo PEM: PBES2 with PBKDF2-HMAC-SHA256 (600,000 iterations,
    /// random 16-byte salt) and AES-256-CBC; `openssl pkcs8 -in f -passin pass:X` decrypts it.
    pub fn to_encrypted_pem(&self, passphrase: &[u8]) -> Result<String, X509Error> {
        self.to_encrypted_pem_with(passphrase, PBKDF2_ITERATIONS)
    }

    fn to_encrypted_pem_with(
        &self,
        passphrase: &[u8],
        iterations: u32,
    ) -> Result<String, X509Error> {
        if passphrase.is_empty() {
            return Err(X509Error::passphrase(
                "an empty passphrase does not protect anything",
            ));
        }
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).map_err(internal("generate a salt"))?;
        aws_lc_rs::rand::fill(&mut iv).map_err(internal("generate an IV"))?;
        let rounds = NonZeroU32::new(iterations)
            .ok_or_else(|| X509Error::internal("key", "zero PBKDF2 iterations"))?;
        let mut k = Zeroizing::new([0u8; 32]);
        aws_lc_rs::pbkdf2::derive(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            &salt,
            passphrase,
            k.as_mut(),
        );
        let cipher =
            UnboundCipherKey::new(&AES_256, k.as_ref()).map_err(internal("load the AES key"))?;
        let cipher =
            PaddedBlockEncryptingKey::cbc_pkcs7(cipher).map_err(internal("set up AES-256-CBC"))?;
        let mut data = self.pkcs8.to_vec();
        cipher
            .less_safe_encrypt(&mut data, EncryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(internal("encrypt the key"))?;
        let enc = |e: pkcs5::Error| {
            X509Error::internal("key", format!("cannot encode PBES2 parameters: {e}"))
        };
        let kdf = pbes2::Pbkdf2Params::hmac_sha256(iterations, &salt).map_err(enc)?;
        let params = pbes2::Parameters {
            kdf: kdf.into(),
            encryption: pbes2::EncryptionScheme::Aes256Cbc { iv },
        };
        let info = EncryptedPrivateKeyInfoRef {
            encryption_algorithm: params.into(),
            encrypted_data: OctetStringRef::new(&data).map_err(|e| {
                X509Error::internal("key", format!("cannot encode the encrypted key: {e}"))
            })?,
        };
        let der = info.to_der().map_err(|e| {
            X509Error::internal("key", format!("cannot encode the encrypted key: {e}"))
        })?;
        Ok(pem::encode("ENCRYPTED PRIVATE KEY", &der))
    }

    /// SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.spki.clone()
    }

    /// A signer over this key. `hash` matters for RSA only: P-256 signs ECDSA-SHA256, P-384
    /// ECDSA-SHA384, Ed25519 pure EdDSA.
    pub fn signer(&self, hash: HashAlg) -> KeySigner<'_> {
        KeySigner { key: self, hash }
    }
}

fn wrong_passphrase() -> X509Error {
    X509Error::passphrase("the passphrase does not open the encrypted private key")
}

/// Decrypts a PBES2 (PBKDF2 + AES-CBC) EncryptedPrivateKeyInfo: what we write and what
/// `openssl pkcs8 -topk8 -v2 aes-256-cbc` and `openssl genpkey -aes256` write.
fn decrypt_pkcs8(der: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, X509Error> {
    let info = EncryptedPrivateKeyInfoRef::from_der(der)
        .map_err(|e| X509Error::der("key", "PKCS#8 EncryptedPrivateKeyInfo", e))?;
    let unsupported = |what: &str| {
        X509Error::refused(
            "key",
            format!(
                "{what} is not supported; re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc`"
            ),
        )
    };
    let params = match &info.encryption_algorithm {
        pkcs5::EncryptionScheme::Pbes2(p) => p,
        _ => return Err(unsupported("PBES1 key encryption")),
    };
    let kdf = match &params.kdf {
        pbes2::Kdf::Pbkdf2(k) => k,
        _ => return Err(unsupported("scrypt key derivation")),
    };
    let prf = match kdf.prf {
        pbes2::Pbkdf2Prf::HmacWithSha1 => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA1,
        pbes2::Pbkdf2Prf::HmacWithSha256 => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        pbes2::Pbkdf2Prf::HmacWithSha384 => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA384,
        pbes2::Pbkdf2Prf::HmacWithSha512 => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA512,
        _ => return Err(unsupported("this PBKDF2 hash")),
    };
    let (cipher_alg, key_len, iv) = match params.encryption {
        pbes2::EncryptionScheme::Aes128Cbc { iv } => (&AES_128, 16, iv),
        pbes2::EncryptionScheme::Aes192Cbc { iv } => (&AES_192, 24, iv),
        pbes2::EncryptionScheme::Aes256Cbc { iv } => (&AES_256, 32, iv),
        _ => return Err(unsupported("this key encryption cipher")),
    };
    if kdf.key_length.is_some_and(|l| usize::from(l) != key_len) {
        return Err(X509Error::malformed(
            "key",
            "the PBKDF2 key length does not match the cipher",
        ));
    }
    let rounds = NonZeroU32::new(kdf.iteration_count)
        .filter(|n| n.get() <= MAX_PBKDF2_ITERATIONS)
        .ok_or_else(|| {
            X509Error::refused(
                "key",
                format!(
                    "PBKDF2 iteration count {} is out of range",
                    kdf.iteration_count
                ),
            )
        })?;
    let mut k = Zeroizing::new(vec![0u8; key_len]);
    aws_lc_rs::pbkdf2::derive(prf, rounds, kdf.salt.as_ref(), passphrase, k.as_mut_slice());
    let cipher = UnboundCipherKey::new(cipher_alg, &k).map_err(internal("load the AES key"))?;
    let cipher = PaddedBlockDecryptingKey::cbc_pkcs7(cipher).map_err(internal("set up AES-CBC"))?;
    let mut buf = Zeroizing::new(info.encrypted_data.as_bytes().to_vec());
    let plain_len = cipher
        .decrypt(
            buf.as_mut_slice(),
            DecryptionContext::Iv128(FixedLength::from(iv)),
        )
        .map_err(|_| wrong_passphrase())?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

/// Anything that can sign X.509 structures: a software key today, a PKCS#11 token later.
pub trait Signer: Send + Sync {
    /// The AlgorithmIdentifier placed in the signed structure, e.g. ecdsa-with-SHA256 (no
    /// parameters), sha256WithRSAEncryption (NULL parameters), Ed25519.
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned;
    /// The signer's SubjectPublicKeyInfo DER.
    fn public_key_der(&self) -> Vec<u8>;
    /// The X.509 signature value over `message` (ECDSA as a DER Ecdsa-Sig-Value).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, X509Error>;
}

/// [`Signer`] over a [`PrivateKey`].
pub struct KeySigner<'a> {
    key: &'a PrivateKey,
    hash: HashAlg,
}

impl KeySigner<'_> {
    pub fn key_type(&self) -> KeyType {
        self.key.key_type
    }
}

impl Signer for KeySigner<'_> {
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        let (oid, null) = match (&self.key.inner, self.key.key_type, self.hash) {
            (Inner::Ecdsa(_), KeyType::EcdsaP384, _) => (alg::ECDSA_SHA384, false),
            (Inner::Ecdsa(_), _, _) => (alg::ECDSA_SHA256, false),
            (Inner::Rsa(_), _, HashAlg::Sha256) => (alg::RSA_SHA256, true),
            (Inner::Rsa(_), _, HashAlg::Sha384) => (alg::RSA_SHA384, true),
            (Inner::Rsa(_), _, HashAlg::Sha512) => (alg::RSA_SHA512, true),
            (Inner::Ed25519(_), _, _) => (alg::ED25519, false),
        };
        AlgorithmIdentifierOwned {
            oid,
            parameters: null.then(Any::null),
        }
    }

    fn public_key_der(&self) -> Vec<u8> {
        self.key.spki.clone()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, X509Error> {
        let rng = SystemRandom::new();
        match &self.key.inner {
            Inner::Ecdsa(k) => Ok(k
                .sign(&rng, message)
                .map_err(internal("sign with ECDSA"))?
                .as_ref()
                .to_vec()),
            Inner::Rsa(k) => {
                let padding: &'static dyn sig::RsaEncoding = match self.hash {
                    HashAlg::Sha256 => &sig::RSA_PKCS1_SHA256,
                    HashAlg::Sha384 => &sig::RSA_PKCS1_SHA384,
                    HashAlg::Sha512 => &sig::RSA_PKCS1_SHA512,
                };
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign(padding, &rng, message, &mut out)
                    .map_err(internal("sign with RSA"))?;
                Ok(out)
            }
            Inner::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// Parses a SubjectPublicKeyInfo: family and size (RSA modulus bits; EC 256/384/521; Ed25519
/// 256). Errors go to field "public_key".
pub fn spki_info(spki_der: &[u8]) -> Result<KeyInfo, X509Error> {
    spki_info_for("public_key", spki_der)
}

/// [`spki_info`] with errors on the caller's `field`.
pub fn spki_info_for(field: &str, spki_der: &[u8]) -> Result<KeyInfo, X509Error> {
    Ok(alg::parse_spki(field, spki_der)?.info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rsa_key_decrypts_what_its_public_key_encrypted_and_other_keys_do_not() {
        use aws_lc_rs::rsa::{Pkcs1PublicEncryptingKey, PublicEncryptingKey};
        let rsa = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        let public = PublicEncryptingKey::from_der(&rsa.public_key_der()).unwrap();
        let public = Pkcs1PublicEncryptingKey::new(public).unwrap();
        let mut sealed = vec![0u8; public.ciphertext_size()];
        let sealed = public
            .encrypt(b"sixteen byte key", &mut sealed)
            .unwrap()
            .to_vec();
        let key = rsa.rsa_pkcs1_decrypting().expect("an RSA key decrypts");
        let mut out = vec![0u8; key.min_output_size()];
        assert_eq!(key.decrypt(&sealed, &mut out).unwrap(), b"sixteen byte key");
        // Built once: the same key object on the next call.
        assert!(std::ptr::eq(key, rsa.rsa_pkcs1_decrypting().unwrap()));
        let ec = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        assert!(ec.rsa_pkcs1_decrypting().is_none());
    }

    fn verify(k: &PrivateKey, hash: HashAlg) {
        let s = k.signer(hash);
        let msg = b"fleetpki";
        let sigv = s.sign(msg).unwrap();
        let alg_der = s.signature_algorithm().to_der().unwrap();
        let alg_ref = spki::AlgorithmIdentifierRef::from_der(&alg_der).unwrap();
        let sa = alg::signature_alg("t", &alg_ref).unwrap();
        let spki = s.public_key_der();
        let pk = alg::parse_spki("t", &spki).unwrap();
        assert_eq!(pk.info, k.key_type().info());
        alg::verify("t", &pk, sa, msg, &sigv, "bad").unwrap();
        assert!(alg::verify("t", &pk, sa, b"other", &sigv, "bad").is_err());
    }

    #[test]
    fn generate_sign_verify_every_type() {
        for kt in KeyType::ALL {
            let k = PrivateKey::generate(kt).unwrap();
            assert_eq!(k.key_type(), kt);
            assert_eq!(spki_info(&k.public_key_der()).unwrap(), kt.info());
            verify(&k, HashAlg::Sha256);
            if matches!(kt, KeyType::Rsa2048) {
                verify(&k, HashAlg::Sha384);
                verify(&k, HashAlg::Sha512);
            }
            let back = PrivateKey::from_pem(&k.to_pkcs8_pem(), None).unwrap();
            assert_eq!(back.public_key_der(), k.public_key_der());
            assert_eq!(back.to_pkcs8_der(), k.to_pkcs8_der());
        }
    }

    #[test]
    fn key_type_names_round_trip() {
        for kt in KeyType::ALL {
            assert_eq!(KeyType::parse("key_type", kt.name()).unwrap(), kt);
        }
        assert_eq!(KeyType::parse("k", "RSA-3072").unwrap(), KeyType::Rsa3072);
        assert_eq!(KeyType::parse("k", "dsa").unwrap_err().field(), "k");
    }

    #[test]
    fn encrypted_round_trip_and_wrong_passphrase() {
        let k = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let pem = k.to_encrypted_pem_with(b"s3cret", 1000).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let back = PrivateKey::from_pem(&pem, Some(b"s3cret")).unwrap();
        assert_eq!(back.public_key_der(), k.public_key_der());
        for wrong in [&b"nope"[..], b"s3cre", b"s3cret "] {
            let e = PrivateKey::from_pem(&pem, Some(wrong)).unwrap_err();
            assert_eq!(e.field(), "passphrase", "{e}");
        }
        assert_eq!(
            PrivateKey::from_pem(&pem, None).unwrap_err().field(),
            "passphrase"
        );
        assert_eq!(k.to_encrypted_pem(b"").unwrap_err().field(), "passphrase");
    }

    #[test]
    fn garbage_is_malformed_key() {
        assert_eq!(
            PrivateKey::from_pem("hello", None).unwrap_err().field(),
            "key"
        );
        assert_eq!(
            PrivateKey::from_pkcs8_der(&[0x30, 0x03, 0x02, 0x01, 0x00])
                .unwrap_err()
                .field(),
            "key"
        );
        let e = spki_info(&[0x30, 0x00]).unwrap_err();
        assert_eq!(e.field(), "public_key");
    }
}
