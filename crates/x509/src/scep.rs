//! SCEP (RFC 8894) messages: a client's pkiMessage (CMS SignedData around an EnvelopedData)
//! checked and opened, and the CertRep and certificates-only answers built in DER.
//!
//! `cms` supplies the types only (its builder does not compile with the version p12-keystore
//! pins): signing, verification and the envelope's crypto are aws-lc-rs, 3DES (for clients
//! that still use it) the RustCrypto `des` + `cbc` crates.

use crate::X509Error;
use crate::alg::{self, Hash, SigAlg};
use crate::key::{PrivateKey, Signer};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use cms::revocation::{RevocationInfoChoice, RevocationInfoChoices};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{ObjectIdentifier as Oid, OctetString, PrintableString, SetOfVec};
use der::{Any, Decode, Encode, Sequence, Tag, Tagged};
use fleetpki_model::template::HashAlg;
use spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::crl::CertificateList;
use x509_cert::name::Name;

const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
const ID_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
const MESSAGE_TYPE: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.2");
const PKI_STATUS: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.3");
const FAIL_INFO: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.4");
const SENDER_NONCE: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.5");
const RECIPIENT_NONCE: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.6");
const TRANSACTION_ID: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.7");
const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
const MD5: Oid = Oid::new_unwrap("1.2.840.113549.2.5");
const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
const DES_EDE3_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.7");
const DES_CBC: Oid = Oid::new_unwrap("1.3.14.3.2.7");

/// The longest nonce or transaction ID accepted (RFC 8894 nonces are 16 bytes).
const MAX_ATTR_LEN: usize = 128;

/// A pkiMessage's type (RFC 8894 3.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    CertRep,
    RenewalReq,
    PkcsReq,
    CertPoll,
    GetCert,
    GetCrl,
}

impl MessageType {
    pub fn code(self) -> &'static str {
        match self {
            Self::CertRep => "3",
            Self::RenewalReq => "17",
            Self::PkcsReq => "19",
            Self::CertPoll => "20",
            Self::GetCert => "21",
            Self::GetCrl => "22",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        [
            Self::CertRep,
            Self::RenewalReq,
            Self::PkcsReq,
            Self::CertPoll,
            Self::GetCert,
            Self::GetCrl,
        ]
        .into_iter()
        .find(|t| t.code() == code)
    }
}

/// Why a request failed, as the CertRep's failInfo says it (RFC 8894 3.2.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    BadAlg,
    BadMessageCheck,
    BadRequest,
    BadTime,
    BadCertId,
}

impl FailInfo {
    pub fn code(self) -> &'static str {
        match self {
            Self::BadAlg => "0",
            Self::BadMessageCheck => "1",
            Self::BadRequest => "2",
            Self::BadTime => "3",
            Self::BadCertId => "4",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::BadAlg => "badAlg",
            Self::BadMessageCheck => "badMessageCheck",
            Self::BadRequest => "badRequest",
            Self::BadTime => "badTime",
            Self::BadCertId => "badCertId",
        }
    }
}

/// What a CertRep answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// SUCCESS: the DER to put, encrypted, in the envelope (a certificates-only SignedData).
    Success(Vec<u8>),
    Pending,
    Failure(FailInfo),
}

/// What a reply needs from the request: its transaction ID (echoed exactly as sent) and nonce.
#[derive(Debug, Clone)]
pub struct Header {
    pub message_type: Option<MessageType>,
    /// The transactionID as text (for lookups and logs).
    pub transaction_id: String,
    transaction_id_value: Any,
    pub sender_nonce: Vec<u8>,
}

/// A pkiMessage whose signature verified.
#[derive(Debug, Clone)]
pub struct PkiMessage {
    pub header: Header,
    pub message_type: MessageType,
    /// The certificate that signed it (self-signed for PKCSReq, the current one for renewal).
    /// Parsed without RFC 5280's 20-octet serial limit: clients' self-signed certificates
    /// (certmonger's) carry longer serials.
    pub signer: RawCert,
    pub signer_der: Vec<u8>,
    /// The signed content: a ContentInfo holding the EnvelopedData.
    pub envelope: Vec<u8>,
    /// The message was signed over a SHA-1 digest (legacy clients; the endpoint decides).
    pub sha1_signature: bool,
}

/// Why a pkiMessage was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ScepError {
    /// Not a pkiMessage at all (or without the attributes a CertRep must echo): no CertRep can
    /// be built; the answer is an HTTP error.
    #[error("{0}")]
    Malformed(String),
    /// Well-formed enough to answer with a CertRep FAILURE carrying `info`.
    #[error("{}: {why}", info.name())]
    Fail {
        header: Box<Header>,
        info: FailInfo,
        why: String,
    },
}

/// The content-encryption algorithm of an envelope; the CertRep answers with the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCipher {
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    DesEde3Cbc,
    /// Single DES: only read from (and answered to) the legacy clients that send nothing else,
    /// such as micromdm's scepclient as Debian ships it; never offered.
    DesCbc,
}

impl ContentCipher {
    fn from_oid(oid: &Oid) -> Option<Self> {
        match *oid {
            AES128_CBC => Some(Self::Aes128Cbc),
            AES192_CBC => Some(Self::Aes192Cbc),
            AES256_CBC => Some(Self::Aes256Cbc),
            DES_EDE3_CBC => Some(Self::DesEde3Cbc),
            DES_CBC => Some(Self::DesCbc),
            _ => None,
        }
    }

    fn oid(self) -> Oid {
        match self {
            Self::Aes128Cbc => AES128_CBC,
            Self::Aes192Cbc => AES192_CBC,
            Self::Aes256Cbc => AES256_CBC,
            Self::DesEde3Cbc => DES_EDE3_CBC,
            Self::DesCbc => DES_CBC,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Self::DesCbc => 8,
            Self::Aes128Cbc => 16,
            Self::Aes192Cbc | Self::DesEde3Cbc => 24,
            Self::Aes256Cbc => 32,
        }
    }

    fn iv_len(self) -> usize {
        match self {
            Self::DesEde3Cbc | Self::DesCbc => 8,
            _ => 16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128Cbc => "aes128-CBC",
            Self::Aes192Cbc => "aes192-CBC",
            Self::Aes256Cbc => "aes256-CBC",
            Self::DesEde3Cbc => "des-ede3-cbc",
            Self::DesCbc => "des-cbc",
        }
    }

    fn decrypt(self, key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        use aws_lc_rs::cipher::{
            AES_128, AES_192, AES_256, DecryptionContext, PaddedBlockDecryptingKey,
            UnboundCipherKey,
        };
        use aws_lc_rs::iv::FixedLength;
        {
            use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
            match self {
                Self::DesEde3Cbc => {
                    let dec = cbc::Decryptor::<des::TdesEde3>::new_from_slices(key, iv).ok()?;
                    return dec.decrypt_padded_vec::<Pkcs7>(data).ok();
                }
                Self::DesCbc => {
                    let dec = cbc::Decryptor::<des::Des>::new_from_slices(key, iv).ok()?;
                    return dec.decrypt_padded_vec::<Pkcs7>(data).ok();
                }
                _ => {}
            }
        }
        let algorithm = match self {
            Self::Aes128Cbc => &AES_128,
            Self::Aes192Cbc => &AES_192,
            _ => &AES_256,
        };
        let key = PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(algorithm, key).ok()?)
            .ok()?;
        let iv: [u8; 16] = iv.try_into().ok()?;
        let mut buf = data.to_vec();
        let out = key
            .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv)))
            .ok()?;
        Some(out.to_vec())
    }

    fn encrypt(self, key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, X509Error> {
        use aws_lc_rs::cipher::{
            AES_128, AES_192, AES_256, EncryptionContext, PaddedBlockEncryptingKey,
            UnboundCipherKey,
        };
        use aws_lc_rs::iv::FixedLength;
        let failed = |_| X509Error::internal("scep.envelope", "content encryption failed");
        {
            use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
            let bad = |_| X509Error::internal("scep.envelope", "bad DES key or IV");
            match self {
                Self::DesEde3Cbc => {
                    let enc =
                        cbc::Encryptor::<des::TdesEde3>::new_from_slices(key, iv).map_err(bad)?;
                    return Ok(enc.encrypt_padded_vec::<Pkcs7>(data));
                }
                Self::DesCbc => {
                    let enc = cbc::Encryptor::<des::Des>::new_from_slices(key, iv).map_err(bad)?;
                    return Ok(enc.encrypt_padded_vec::<Pkcs7>(data));
                }
                _ => {}
            }
        }
        let algorithm = match self {
            Self::Aes128Cbc => &AES_128,
            Self::Aes192Cbc => &AES_192,
            _ => &AES_256,
        };
        let key = PaddedBlockEncryptingKey::cbc_pkcs7(
            UnboundCipherKey::new(algorithm, key).map_err(failed)?,
        )
        .map_err(failed)?;
        let iv: [u8; 16] = iv
            .try_into()
            .map_err(|_| X509Error::internal("scep.envelope", "bad IV length"))?;
        let mut buf = data.to_vec();
        key.less_safe_encrypt(&mut buf, EncryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(failed)?;
        Ok(buf)
    }
}

/// CertPoll's content (RFC 8894 3.3.3).
#[derive(Debug, Clone, Sequence)]
pub struct IssuerAndSubject {
    pub issuer: Name,
    pub subject: Name,
}

fn random(n: usize) -> Result<Vec<u8>, X509Error> {
    let mut v = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut v)
        .map_err(|_| X509Error::internal("scep", "the system random generator failed"))?;
    Ok(v)
}

/// The digest of a request's SignerInfo.
#[derive(Clone, Copy)]
enum Digest {
    Sha1,
    Sha2(HashAlg),
}

impl Digest {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha2(h) => digest(h, data),
            #[allow(deprecated)]
            Self::Sha1 => {
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
                    .as_ref()
                    .to_vec()
            }
        }
    }
}

fn digest(hash: HashAlg, data: &[u8]) -> Vec<u8> {
    let alg = match hash {
        HashAlg::Sha256 => &aws_lc_rs::digest::SHA256,
        HashAlg::Sha384 => &aws_lc_rs::digest::SHA384,
        HashAlg::Sha512 => &aws_lc_rs::digest::SHA512,
    };
    aws_lc_rs::digest::digest(alg, data).as_ref().to_vec()
}

fn first_value<'a>(attrs: &'a SetOfVec<Attribute>, oid: &Oid) -> Option<&'a Any> {
    attrs
        .iter()
        .find(|a| a.oid == *oid)
        .and_then(|a| a.values.iter().next())
}

/// A string attribute's text (PrintableString, UTF8String or IA5String).
fn text(v: &Any) -> Option<String> {
    match v.tag() {
        Tag::PrintableString | Tag::Utf8String | Tag::Ia5String => {
            std::str::from_utf8(v.value()).ok().map(str::to_string)
        }
        _ => None,
    }
}

fn malformed(what: &str) -> impl FnOnce(der::Error) -> ScepError + '_ {
    move |e| ScepError::Malformed(format!("{what}: {e}"))
}

/// Parses a pkiMessage and verifies its signature (RFC 8894 3.2): a SignedData with one
/// signer, the SCEP attributes, a SHA-2 digest, and a signature by the certificate it carries.
/// Refuses SHA-1 and MD5 (badAlg). Does not open the envelope: see [`open_envelope`].
pub fn parse(der_bytes: &[u8]) -> Result<PkiMessage, ScepError> {
    let ci = ContentInfo::from_der(der_bytes).map_err(malformed("pkiMessage"))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(ScepError::Malformed(format!(
            "pkiMessage: content type {} is not signedData",
            ci.content_type
        )));
    }
    let sd: LenientSignedData<'_> = ci
        .content
        .decode_as()
        .map_err(malformed("pkiMessage.signedData"))?;
    let mut infos = Vec::new();
    let mut reader = der::SliceReader::new(sd.signer_infos.value())
        .map_err(malformed("pkiMessage.signerInfos"))?;
    while !der::Reader::is_finished(&reader) {
        infos.push(
            LenientSignerInfo::decode(&mut reader).map_err(malformed("pkiMessage.signerInfos"))?,
        );
    }
    if sd.signer_infos.tag() != Tag::Set || infos.len() != 1 {
        return Err(ScepError::Malformed(
            "pkiMessage: exactly one SignerInfo is required".into(),
        ));
    }
    let si = &infos[0];
    let attrs = si.signed_attrs.as_ref().ok_or_else(|| {
        ScepError::Malformed("pkiMessage: the SignerInfo has no signed attributes".into())
    })?;
    let tid_value = first_value(attrs, &TRANSACTION_ID)
        .ok_or_else(|| ScepError::Malformed("pkiMessage: no transactionID".into()))?;
    let transaction_id = text(tid_value)
        .filter(|t| !t.is_empty() && t.len() <= MAX_ATTR_LEN)
        .ok_or_else(|| {
            ScepError::Malformed("pkiMessage: transactionID must be a string of 1-128 bytes".into())
        })?;
    let sender_nonce = first_value(attrs, &SENDER_NONCE)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .map(|o| o.as_bytes().to_vec())
        .filter(|n| !n.is_empty() && n.len() <= MAX_ATTR_LEN)
        .ok_or_else(|| {
            ScepError::Malformed("pkiMessage: senderNonce must be an OCTET STRING".into())
        })?;
    let type_text = first_value(attrs, &MESSAGE_TYPE).and_then(text);
    let message_type = type_text.as_deref().and_then(MessageType::from_code);
    let header = Header {
        message_type,
        transaction_id,
        transaction_id_value: tid_value.clone(),
        sender_nonce,
    };
    // From here on, every refusal can be answered with a CertRep.
    let fail = |info, why: String| ScepError::Fail {
        header: Box::new(header.clone()),
        info,
        why,
    };
    let signer = sd
        .certificates
        .iter()
        .flatten()
        .find(|c| sid_of(c).is_some_and(|sid| Ok(sid) == si.sid.to_der()))
        .cloned()
        .ok_or_else(|| {
            fail(
                FailInfo::BadCertId,
                "the signer's certificate is not in the message".into(),
            )
        })?;
    let signer_der = signer.to_der().map_err(|e| {
        fail(
            FailInfo::BadCertId,
            format!("the signer's certificate: {e}"),
        )
    })?;
    // SHA-1 is accepted for the pkiMessage's own signature only, from RSA signers: micromdm's
    // scepclient (Debian's) and other legacy clients sign with it whatever GetCACaps says.
    // The CSR inside and every certificate are held to SHA-2 by the CSR parser. MD5 is refused.
    let digest_alg = match si.digest_alg.oid {
        SHA256 => Digest::Sha2(HashAlg::Sha256),
        SHA384 => Digest::Sha2(HashAlg::Sha384),
        SHA512 => Digest::Sha2(HashAlg::Sha512),
        SHA1 => Digest::Sha1,
        MD5 => {
            return Err(fail(
                FailInfo::BadAlg,
                "MD5 digests are refused; use SHA-256".into(),
            ));
        }
        other => {
            return Err(fail(
                FailInfo::BadAlg,
                format!("digest {other} is not supported"),
            ));
        }
    };
    if first_value(attrs, &CONTENT_TYPE).and_then(|v| v.decode_as::<Oid>().ok()) != Some(ID_DATA)
        || sd.encap_content_info.econtent_type != ID_DATA
    {
        return Err(fail(
            FailInfo::BadRequest,
            "the signed content type must be id-data".into(),
        ));
    }
    let content = sd
        .encap_content_info
        .econtent
        .as_ref()
        .and_then(|c| c.decode_as::<OctetString>().ok())
        .map(|o| o.as_bytes().to_vec())
        .unwrap_or_default();
    let claimed = first_value(attrs, &MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .map(|o| o.as_bytes().to_vec());
    if claimed.as_deref() != Some(digest_alg.digest(&content).as_slice()) {
        return Err(fail(
            FailInfo::BadMessageCheck,
            "the messageDigest attribute does not match the content".into(),
        ));
    }
    let sha1_signature = matches!(digest_alg, Digest::Sha1);
    let signed = attrs
        .to_der()
        .map_err(|e| fail(FailInfo::BadRequest, format!("signed attributes: {e}")))?;
    let spki = signer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| fail(FailInfo::BadCertId, format!("the signer's key: {e}")))?;
    let key =
        alg::parse_spki("scep.signer", &spki).map_err(|e| fail(FailInfo::BadAlg, e.to_string()))?;
    let bad_sig = "the signature does not verify against the signer's certificate";
    match digest_alg {
        Digest::Sha2(hash) => {
            let sig_alg = signature_alg(&si.signature_algorithm, hash)
                .map_err(|why| fail(FailInfo::BadAlg, why))?;
            alg::verify(
                "scep",
                &key,
                sig_alg,
                &signed,
                si.signature.as_bytes(),
                bad_sig,
            )
            .map_err(|e| match e {
                X509Error::BadSignature { rule, .. } => fail(FailInfo::BadMessageCheck, rule),
                other => fail(FailInfo::BadAlg, other.to_string()),
            })?;
        }
        Digest::Sha1 => {
            if !(si.signature_algorithm.oid == alg::RSA_ENCRYPTION
                || si.signature_algorithm.oid == SHA1_WITH_RSA)
                || key.info.family != fleetpki_model::template::KeyFamily::Rsa
            {
                return Err(fail(
                    FailInfo::BadAlg,
                    "a SHA-1 pkiMessage signature is accepted from RSA keys only".into(),
                ));
            }
            #[allow(deprecated)]
            let alg = &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY;
            aws_lc_rs::signature::UnparsedPublicKey::new(alg, key.key_bits())
                .verify(&signed, si.signature.as_bytes())
                .map_err(|_| fail(FailInfo::BadMessageCheck, bad_sig.into()))?;
        }
    }
    let Some(message_type) = message_type else {
        return Err(fail(
            FailInfo::BadRequest,
            format!(
                "messageType {} is not one a server accepts",
                type_text.unwrap_or_else(|| "(missing)".into())
            ),
        ));
    };
    if message_type == MessageType::CertRep {
        return Err(fail(
            FailInfo::BadRequest,
            "a CertRep is a server's answer".into(),
        ));
    }
    Ok(PkiMessage {
        header,
        message_type,
        signer,
        signer_der,
        envelope: content,
        sha1_signature,
    })
}

/// The signature algorithm of a SignerInfo: rsaEncryption with the digest algorithm, or a
/// combined identifier whose hash must be that digest.
fn signature_alg(a: &AlgorithmIdentifierOwned, hash: HashAlg) -> Result<SigAlg, String> {
    let h = match hash {
        HashAlg::Sha256 => Hash::Sha256,
        HashAlg::Sha384 => Hash::Sha384,
        HashAlg::Sha512 => Hash::Sha512,
    };
    if a.oid == alg::RSA_ENCRYPTION {
        return Ok(SigAlg::RsaPkcs1(h));
    }
    let der = a.to_der().map_err(|e| e.to_string())?;
    let r = AlgorithmIdentifierRef::from_der(&der).map_err(|e| e.to_string())?;
    let got = alg::signature_alg("scep", &r).map_err(|e| e.to_string())?;
    match got {
        SigAlg::Ecdsa(x) | SigAlg::RsaPkcs1(x) | SigAlg::RsaPss(x) if x != h => {
            Err("the signature algorithm's hash differs from the digest algorithm".into())
        }
        other => Ok(other),
    }
}

/// A certificate parsed without RFC 5280's serial length limit.
pub type RawCert = x509_cert::certificate::CertificateInner<x509_cert::certificate::Raw>;

/// SignedData as clients send it: `cms`'s type but with certificates of any serial length and
/// SignerInfos whose sid is kept as sent.
#[derive(Sequence)]
struct LenientSignedData<'a> {
    version: u8,
    digest_algorithms: der::AnyRef<'a>,
    encap_content_info: EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    certificates: Option<Vec<RawCert>>,
    signer_infos: der::AnyRef<'a>,
}

#[derive(Sequence)]
struct LenientSignerInfo<'a> {
    version: u8,
    sid: der::AnyRef<'a>,
    digest_alg: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    signed_attrs: Option<SetOfVec<Attribute>>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: OctetString,
}

/// The DER of IssuerAndSerialNumber for `c`, serial as long as it is.
fn sid_of(c: &RawCert) -> Option<Vec<u8>> {
    let tbs = c.tbs_certificate();
    let mut body = tbs.issuer().to_der().ok()?;
    body.extend(tbs.serial_number().to_der().ok()?);
    der::asn1::AnyRef::new(Tag::Sequence, &body)
        .ok()?
        .to_der()
        .ok()
}

/// The DER of the certificate in `sd` that `sid` names.
fn signer_certificate(sd: &SignedData, sid: &SignerIdentifier) -> Option<Vec<u8>> {
    let certs = sd.certificates.as_ref()?;
    certs.0.iter().find_map(|c| {
        let CertificateChoices::Certificate(c) = c else {
            return None;
        };
        let tbs = c.tbs_certificate();
        let hit = match sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => {
                ias.issuer == *tbs.issuer() && ias.serial_number == *tbs.serial_number()
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => tbs
                .get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
                .ok()
                .flatten()
                .is_some_and(|(_, s)| s == *ski),
        };
        if hit { c.to_der().ok() } else { None }
    })
}

/// Opens the envelope with the RA's key: returns the inner DER (a PKCS#10 request, an
/// IssuerAndSubject or an IssuerAndSerialNumber) and the content cipher it used. Every
/// decryption failure (key transport or content) is the same badMessageCheck with the same
/// words, and a key transport failure goes on with a random key, so no answer tells whether
/// the RSA padding was right (Bleichenbacher; RFC 3218 2.3.2).
pub fn open_envelope(
    msg: &PkiMessage,
    ra_key: &PrivateKey,
    ra_cert: &Certificate,
) -> Result<(Vec<u8>, ContentCipher), ScepError> {
    let fail = |info, why: &str| ScepError::Fail {
        header: Box::new(msg.header.clone()),
        info,
        why: why.to_string(),
    };
    let ci = ContentInfo::from_der(&msg.envelope).map_err(|_| {
        fail(
            FailInfo::BadRequest,
            "the signed content is not a ContentInfo",
        )
    })?;
    if ci.content_type != ID_ENVELOPED_DATA {
        return Err(fail(
            FailInfo::BadRequest,
            "the signed content is not an EnvelopedData",
        ));
    }
    let ed: LenientEnveloped<'_> = ci
        .content
        .decode_as()
        .map_err(|_| fail(FailInfo::BadRequest, "the EnvelopedData does not parse"))?;
    let ra_tbs = ra_cert.tbs_certificate();
    let ktris: Vec<&KeyTransRecipientInfo> = ed
        .recip_infos
        .0
        .iter()
        .filter_map(|r| match r {
            RecipientInfo::Ktri(k) => Some(k),
            _ => None,
        })
        .collect();
    let ktri = ktris
        .iter()
        .find(|k| match &k.rid {
            RecipientIdentifier::IssuerAndSerialNumber(ias) => {
                ias.issuer == *ra_tbs.issuer() && ias.serial_number == *ra_tbs.serial_number()
            }
            RecipientIdentifier::SubjectKeyIdentifier(_) => false,
        })
        .or_else(|| {
            if ktris.len() == 1 {
                ktris.first()
            } else {
                None
            }
        })
        .ok_or_else(|| {
            fail(
                FailInfo::BadCertId,
                "the envelope is not encrypted to this server's RA certificate (GetCACert)",
            )
        })?;
    if ktri.key_enc_alg.oid != alg::RSA_ENCRYPTION {
        return Err(fail(
            FailInfo::BadAlg,
            "key transport must be rsaEncryption (PKCS#1 v1.5)",
        ));
    }
    let eci = &ed.encrypted_content;
    let content_enc_alg = &eci.content_enc_alg;
    let cipher = ContentCipher::from_oid(&content_enc_alg.oid).ok_or_else(|| {
        fail(
            FailInfo::BadAlg,
            "the content cipher must be AES-CBC (128, 192 or 256), or des-ede3-cbc / des-cbc from legacy clients",
        )
    })?;
    let iv = content_enc_alg
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<OctetString>().ok())
        .map(|o| o.as_bytes().to_vec())
        .filter(|iv| iv.len() == cipher.iv_len())
        .ok_or_else(|| {
            fail(
                FailInfo::BadAlg,
                "the content cipher's IV is missing or of the wrong length",
            )
        })?;
    let data = eci
        .encrypted_content
        .as_ref()
        .and_then(octets_of)
        .ok_or_else(|| {
            fail(
                FailInfo::BadRequest,
                "the envelope has no encrypted content",
            )
        })?;
    let cek = transport_key(ra_key, ktri.enc_key.as_bytes(), cipher.key_len())
        .map_err(|_| fail(FailInfo::BadMessageCheck, "the envelope does not decrypt"))?;
    let plain = cipher
        .decrypt(&cek, &iv, &data)
        .ok_or_else(|| fail(FailInfo::BadMessageCheck, "the envelope does not decrypt"))?;
    Ok((plain, cipher))
}

/// An EnvelopedData as clients send it: `cms`'s type but for the encrypted content, which Go's
/// and OpenSSL's encoders may send in BER's constructed form ([0] holding OCTET STRING
/// segments) instead of DER's primitive one.
#[derive(Sequence)]
struct LenientEnveloped<'a> {
    version: u8,
    recip_infos: RecipientInfos,
    encrypted_content: LenientEci<'a>,
}

#[derive(Sequence)]
struct LenientEci<'a> {
    content_type: Oid,
    content_enc_alg: AlgorithmIdentifierOwned,
    encrypted_content: Option<der::AnyRef<'a>>,
}

/// The bytes of `[0] IMPLICIT OCTET STRING`, primitive or constructed from OCTET STRINGs.
fn octets_of(v: &der::AnyRef<'_>) -> Option<Vec<u8>> {
    let tag = v.tag();
    if tag.class() != der::Class::ContextSpecific || tag.number() != der::TagNumber(0) {
        return None;
    }
    if !tag.is_constructed() {
        return Some(v.value().to_vec());
    }
    let mut out = Vec::new();
    let mut reader = der::SliceReader::new(v.value()).ok()?;
    while !der::Reader::is_finished(&reader) {
        let seg = <&der::asn1::OctetStringRef>::decode(&mut reader).ok()?;
        out.extend_from_slice(seg.as_bytes());
    }
    Some(out)
}

/// The content-encryption key from the key transport; a random key of the right length when
/// the RSA decryption fails or yields the wrong length (implicit rejection).
fn transport_key(ra_key: &PrivateKey, enc: &[u8], len: usize) -> Result<Vec<u8>, X509Error> {
    let fallback = random(len)?;
    let key = ra_key
        .rsa_pkcs1_decrypting()
        .ok_or_else(|| X509Error::internal("scep.ra_key", "the RA key is not an RSA key"))?;
    let mut out = vec![0u8; key.min_output_size().max(len)];
    match key.decrypt(enc, &mut out) {
        Ok(cek) if cek.len() == len => Ok(cek.to_vec()),
        _ => Ok(fallback),
    }
}

/// The issuer and serial number of a certificate, as CMS names it.
fn issuer_and_serial(c: &Certificate) -> IssuerAndSerialNumber {
    IssuerAndSerialNumber {
        issuer: c.tbs_certificate().issuer().clone(),
        serial_number: c.tbs_certificate().serial_number().clone(),
    }
}

fn enc(what: &'static str) -> impl FnOnce(der::Error) -> X509Error {
    move |e| X509Error::internal(what, format!("cannot encode: {e}"))
}

fn content_info(content_type: Oid, content: &impl Encode) -> Result<Vec<u8>, X509Error> {
    ContentInfo {
        content_type,
        content: Any::from_der(&content.to_der().map_err(enc("scep.content"))?)
            .map_err(enc("scep.content"))?,
    }
    .to_der()
    .map_err(enc("scep.content"))
}

/// A certificates-only SignedData (RFC 8894 3.4): GetCACert's answer and the content of a
/// successful CertRep; `crls` for GetCRL.
pub fn certs_only(certs: &[&[u8]], crls: &[&[u8]]) -> Result<Vec<u8>, X509Error> {
    let parse = |d: &&[u8]| {
        Certificate::from_der(d)
            .map(CertificateChoices::Certificate)
            .map_err(|e| X509Error::internal("scep.certificates", e.to_string()))
    };
    let set: Vec<CertificateChoices> = certs.iter().map(parse).collect::<Result<_, _>>()?;
    let crl_set: Vec<RevocationInfoChoice> = crls
        .iter()
        .map(|d| {
            CertificateList::from_der(d)
                .map(RevocationInfoChoice::Crl)
                .map_err(|e| X509Error::internal("scep.crls", e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: if set.is_empty() {
            None
        } else {
            Some(CertificateSet(
                SetOfVec::try_from(set).map_err(enc("scep.certificates"))?,
            ))
        },
        crls: if crl_set.is_empty() {
            None
        } else {
            Some(RevocationInfoChoices(
                SetOfVec::try_from(crl_set).map_err(enc("scep.crls"))?,
            ))
        },
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    content_info(ID_SIGNED_DATA, &sd)
}

fn attr(oid: Oid, value: Any) -> Result<Attribute, X509Error> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(enc("scep.attribute"))?;
    Ok(Attribute { oid, values })
}

fn printable(s: &str) -> Result<Any, X509Error> {
    let p = PrintableString::new(s).map_err(enc("scep.attribute"))?;
    Any::encode_from(&p).map_err(enc("scep.attribute"))
}

fn octets(b: &[u8]) -> Result<Any, X509Error> {
    let o = OctetString::new(b).map_err(enc("scep.attribute"))?;
    Any::encode_from(&o).map_err(enc("scep.attribute"))
}

/// The RA's signing identity for CertReps.
pub struct Ra<'a> {
    pub cert: &'a Certificate,
    pub key: &'a PrivateKey,
}

/// Builds a CertRep (RFC 8894 3.3.2) answering `header`, signed by the RA (SHA-256). A SUCCESS
/// content is encrypted with `cipher` to `recipient` (the request's signer, whose key must be
/// RSA); PENDING and FAILURE carry an empty content. Signed attributes are a DER SET OF, sorted.
pub fn cert_rep(
    header: &Header,
    status: &Status,
    recipient: Option<(&RawCert, ContentCipher)>,
    ra: &Ra<'_>,
) -> Result<Vec<u8>, X509Error> {
    let content = match status {
        Status::Success(inner) => {
            let (to, cipher) = recipient.ok_or_else(|| {
                X509Error::internal("scep.envelope", "a SUCCESS needs a recipient")
            })?;
            envelope(inner, to, cipher)?
        }
        _ => Vec::new(),
    };
    let (pki_status, fail) = match status {
        Status::Success(_) => ("0", None),
        Status::Failure(f) => ("2", Some(*f)),
        Status::Pending => ("3", None),
    };
    let mut attrs = vec![
        attr(
            CONTENT_TYPE,
            Any::encode_from(&ID_DATA).map_err(enc("scep.attribute"))?,
        )?,
        attr(MESSAGE_DIGEST, octets(&digest(HashAlg::Sha256, &content))?)?,
        attr(MESSAGE_TYPE, printable(MessageType::CertRep.code())?)?,
        attr(PKI_STATUS, printable(pki_status)?)?,
        attr(TRANSACTION_ID, header.transaction_id_value.clone())?,
        attr(SENDER_NONCE, octets(&random(16)?)?)?,
        attr(RECIPIENT_NONCE, octets(&header.sender_nonce)?)?,
    ];
    if let Some(f) = fail {
        attrs.push(attr(FAIL_INFO, printable(f.code())?)?);
    }
    signed(content, attrs, ra.cert, ra.key)
}

#[derive(Sequence)]
struct RawKtri<'a> {
    version: u8,
    rid: der::AnyRef<'a>,
    key_enc_alg: AlgorithmIdentifierOwned,
    enc_key: OctetString,
}

#[derive(Sequence)]
struct RawEnveloped<'a> {
    version: u8,
    recip_infos: der::AnyRef<'a>,
    encrypted_content: EncryptedContentInfo,
}

/// An EnvelopedData of `inner` for `to` (RSA key transport, PKCS#1 v1.5) with `cipher`.
fn envelope(inner: &[u8], to: &RawCert, cipher: ContentCipher) -> Result<Vec<u8>, X509Error> {
    use aws_lc_rs::rsa::{Pkcs1PublicEncryptingKey, PublicEncryptingKey};
    let cek = random(cipher.key_len())?;
    let iv = random(cipher.iv_len())?;
    let encrypted = cipher.encrypt(&cek, &iv, inner)?;
    let spki = to
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(enc("scep.recipient"))?;
    let public = PublicEncryptingKey::from_der(&spki)
        .ok()
        .and_then(|k| Pkcs1PublicEncryptingKey::new(k).ok())
        .ok_or_else(|| {
            X509Error::refused(
                "scep.recipient",
                "the requester's key must be RSA to receive an encrypted answer",
            )
        })?;
    let mut out = vec![0u8; public.ciphertext_size()];
    let enc_key = public
        .encrypt(&cek, &mut out)
        .map_err(|_| X509Error::internal("scep.recipient", "RSA key transport failed"))?
        .to_vec();
    // Built with a raw rid: the recipient's serial may exceed RFC 5280's 20 octets.
    let rid = sid_of(to)
        .ok_or_else(|| X509Error::internal("scep.recipient", "cannot encode the recipient"))?;
    let ktri = RawKtri {
        version: 0,
        rid: der::AnyRef::from_der(&rid).map_err(enc("scep.recipient"))?,
        key_enc_alg: AlgorithmIdentifierOwned {
            oid: alg::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        enc_key: OctetString::new(enc_key).map_err(enc("scep.recipient"))?,
    }
    .to_der()
    .map_err(enc("scep.recipient"))?;
    let ed = RawEnveloped {
        version: 0,
        recip_infos: der::AnyRef::new(Tag::Set, &ktri).map_err(enc("scep.recipient"))?,
        encrypted_content: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: cipher.oid(),
                parameters: Some(octets(&iv)?),
            },
            encrypted_content: Some(OctetString::new(encrypted).map_err(enc("scep.envelope"))?),
        },
    };
    content_info(ID_ENVELOPED_DATA, &ed)
}

/// The client's side, for tests, benches and fuzz seeds: a pkiMessage built the way RFC 8894
/// clients build them, and a CertRep read back.
pub mod client {
    use super::*;

    /// A pkiMessage of `message_type` carrying `inner` (a CSR, IssuerAndSubject or
    /// IssuerAndSerialNumber) encrypted with `cipher` to the RA, signed by `signer` (SHA-256).
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        message_type: MessageType,
        transaction_id: &str,
        sender_nonce: &[u8],
        inner: &[u8],
        signer_cert: &Certificate,
        signer_key: &PrivateKey,
        ra_cert: &Certificate,
        cipher: ContentCipher,
    ) -> Result<Vec<u8>, X509Error> {
        let ra = RawCert::from_der(&ra_cert.to_der().map_err(enc("scep.recipient"))?)
            .map_err(enc("scep.recipient"))?;
        let content = envelope(inner, &ra, cipher)?;
        let attrs = vec![
            attr(
                CONTENT_TYPE,
                Any::encode_from(&ID_DATA).map_err(enc("scep.attribute"))?,
            )?,
            attr(MESSAGE_DIGEST, octets(&digest(HashAlg::Sha256, &content))?)?,
            attr(MESSAGE_TYPE, printable(message_type.code())?)?,
            attr(TRANSACTION_ID, printable(transaction_id)?)?,
            attr(SENDER_NONCE, octets(sender_nonce)?)?,
        ];
        signed(content, attrs, signer_cert, signer_key)
    }

    /// The self-signed certificate a client signs its PKCSReq with (RFC 8894 2.3): `subject`,
    /// `key`'s public key, valid from an hour ago for a day, SHA-256.
    pub fn self_signed(key: &PrivateKey, subject: &Name) -> Result<Certificate, X509Error> {
        let now = fleetpki_model::now();
        let params = crate::cert::CertParams {
            serial: crate::serial::random()?,
            subject: subject.clone(),
            sans: vec![],
            spki_der: key.public_key_der(),
            not_before: now - 3600,
            not_after: now + 86_400,
            key_usage: vec![],
            ekus: vec![],
            ca: None,
            urls: Default::default(),
        };
        let der = crate::cert::issue(&params, None, &key.signer(HashAlg::Sha256))?;
        crate::cert::parse("scep.signer", &der)
    }

    /// What [`read_cert_rep`] finds: the status, the certificates and the envelope's cipher.
    pub type CertRepContent = (Status, Vec<Vec<u8>>, Option<ContentCipher>);

    /// A CertRep's status and, for SUCCESS, the certificates of its content, decrypted with
    /// the requester's key, and the cipher that content was encrypted with (None without
    /// content: PENDING, FAILURE). Checks the RA's signature and the nonce echo.
    pub fn read_cert_rep(
        der_bytes: &[u8],
        requester_key: &PrivateKey,
        expect_nonce: &[u8],
    ) -> Result<CertRepContent, String> {
        let msg = parse_any(der_bytes).map_err(|e| e.to_string())?;
        if msg.0 != Some(MessageType::CertRep) {
            return Err("not a CertRep".into());
        }
        let attrs = &msg.1;
        let nonce = first_value(attrs, &RECIPIENT_NONCE)
            .and_then(|v| v.decode_as::<OctetString>().ok())
            .map(|o| o.as_bytes().to_vec());
        if nonce.as_deref() != Some(expect_nonce) {
            return Err("recipientNonce does not echo the senderNonce".into());
        }
        let status = first_value(attrs, &PKI_STATUS).and_then(text);
        match status.as_deref() {
            Some("3") => Ok((Status::Pending, vec![], None)),
            Some("2") => {
                let code = first_value(attrs, &FAIL_INFO).and_then(text);
                let info = [
                    FailInfo::BadAlg,
                    FailInfo::BadMessageCheck,
                    FailInfo::BadRequest,
                    FailInfo::BadTime,
                    FailInfo::BadCertId,
                ]
                .into_iter()
                .find(|f| Some(f.code()) == code.as_deref())
                .ok_or("FAILURE without a known failInfo")?;
                Ok((Status::Failure(info), vec![], None))
            }
            Some("0") => {
                let ci = ContentInfo::from_der(&msg.2).map_err(|e| e.to_string())?;
                // Lenient like a request's envelope: Go's pkcs7 (micromdm's scepserver) sends
                // the encrypted content in BER's constructed form.
                let ed: LenientEnveloped<'_> = ci
                    .content
                    .decode_as()
                    .map_err(|e: der::Error| e.to_string())?;
                let Some(RecipientInfo::Ktri(k)) = ed.recip_infos.0.iter().next() else {
                    return Err("no key transport recipient".into());
                };
                let cipher = ContentCipher::from_oid(&ed.encrypted_content.content_enc_alg.oid)
                    .ok_or("unknown content cipher")?;
                let iv = ed
                    .encrypted_content
                    .content_enc_alg
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<OctetString>().ok())
                    .ok_or("no IV")?;
                let cek = transport_key(requester_key, k.enc_key.as_bytes(), cipher.key_len())
                    .map_err(|e| e.to_string())?;
                let data = ed
                    .encrypted_content
                    .encrypted_content
                    .as_ref()
                    .and_then(octets_of)
                    .ok_or("no content")?;
                let plain = cipher
                    .decrypt(&cek, iv.as_bytes(), &data)
                    .ok_or("the answer does not decrypt")?;
                let certs = certificates_of(&plain)?;
                Ok((Status::Success(plain), certs, Some(cipher)))
            }
            other => Err(format!("pkiStatus {other:?}")),
        }
    }

    /// The certificates (DER) of a certificates-only SignedData.
    pub fn certificates_of(der_bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let ci = ContentInfo::from_der(der_bytes).map_err(|e| e.to_string())?;
        let sd: SignedData = ci
            .content
            .decode_as()
            .map_err(|e: der::Error| e.to_string())?;
        Ok(sd
            .certificates
            .map(|c| {
                c.0.iter()
                    .filter_map(|c| match c {
                        CertificateChoices::Certificate(c) => c.to_der().ok(),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The CRLs (DER) of a degenerate SignedData (a GetCRL reply's content).
    pub fn crls_of(der_bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let ci = ContentInfo::from_der(der_bytes).map_err(|e| e.to_string())?;
        let sd: SignedData = ci
            .content
            .decode_as()
            .map_err(|e: der::Error| e.to_string())?;
        let Some(set) = sd.crls else {
            return Ok(vec![]);
        };
        set.0
            .iter()
            .filter_map(|c| match c {
                RevocationInfoChoice::Crl(crl) => Some(crl.to_der().map_err(|e| e.to_string())),
                _ => None,
            })
            .collect()
    }

    type Parsed = (Option<MessageType>, SetOfVec<Attribute>, Vec<u8>);

    /// Type, signed attributes and content of a SignedData whose RA signature verifies.
    fn parse_any(der_bytes: &[u8]) -> Result<Parsed, String> {
        let ci = ContentInfo::from_der(der_bytes).map_err(|e| e.to_string())?;
        let sd: SignedData = ci
            .content
            .decode_as()
            .map_err(|e: der::Error| e.to_string())?;
        let si = sd.signer_infos.0.iter().next().ok_or("no signer")?;
        let attrs = si.signed_attrs.clone().ok_or("no signed attributes")?;
        let signer = signer_certificate(&sd, &si.sid).ok_or("no signer certificate")?;
        let signer = Certificate::from_der(&signer).map_err(|e| e.to_string())?;
        let spki = signer
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| e.to_string())?;
        let key = alg::parse_spki("scep.ra", &spki).map_err(|e| e.to_string())?;
        let signed = attrs.to_der().map_err(|e| e.to_string())?;
        // The RA's digest as it says: SHA-2, or SHA-1 from an RSA RA (micromdm's scepserver
        // signs its CertReps with SHA-1 whatever the request used).
        let digest_alg = match si.digest_alg.oid {
            SHA256 => Digest::Sha2(HashAlg::Sha256),
            SHA384 => Digest::Sha2(HashAlg::Sha384),
            SHA512 => Digest::Sha2(HashAlg::Sha512),
            SHA1 => Digest::Sha1,
            other => return Err(format!("the RA's digest {other} is not supported")),
        };
        match digest_alg {
            Digest::Sha2(hash) => {
                let sig_alg = signature_alg(&si.signature_algorithm, hash)?;
                alg::verify(
                    "scep",
                    &key,
                    sig_alg,
                    &signed,
                    si.signature.as_bytes(),
                    "bad RA signature",
                )
                .map_err(|e| e.to_string())?;
            }
            Digest::Sha1 => {
                if !(si.signature_algorithm.oid == alg::RSA_ENCRYPTION
                    || si.signature_algorithm.oid == SHA1_WITH_RSA)
                    || key.info.family != fleetpki_model::template::KeyFamily::Rsa
                {
                    return Err("a SHA-1 RA signature is accepted from RSA keys only".into());
                }
                #[allow(deprecated)]
                let alg = &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY;
                aws_lc_rs::signature::UnparsedPublicKey::new(alg, key.key_bits())
                    .verify(&signed, si.signature.as_bytes())
                    .map_err(|_| "bad RA signature".to_string())?;
            }
        }
        let content = sd
            .encap_content_info
            .econtent
            .as_ref()
            .and_then(|c| c.decode_as::<OctetString>().ok())
            .map(|o| o.as_bytes().to_vec())
            .unwrap_or_default();
        let claimed = first_value(&attrs, &MESSAGE_DIGEST)
            .and_then(|v| v.decode_as::<OctetString>().ok())
            .map(|o| o.as_bytes().to_vec());
        if claimed.as_deref() != Some(digest_alg.digest(&content).as_slice()) {
            return Err("the messageDigest attribute does not match the content".into());
        }
        let t = first_value(&attrs, &MESSAGE_TYPE)
            .and_then(text)
            .and_then(|t| MessageType::from_code(&t));
        Ok((t, attrs, content))
    }
}

/// A SignedData over `content` with `attrs` (plus nothing else), signed with SHA-256.
fn signed(
    content: Vec<u8>,
    attrs: Vec<Attribute>,
    cert: &Certificate,
    key: &PrivateKey,
) -> Result<Vec<u8>, X509Error> {
    let signed_attrs = SetOfVec::try_from(attrs).map_err(enc("scep.attributes"))?;
    let to_sign = signed_attrs.to_der().map_err(enc("scep.attributes"))?;
    let signer = key.signer(HashAlg::Sha256);
    let signature = signer.sign(&to_sign)?;
    let sig_alg = match key.key_type() {
        crate::key::KeyType::Rsa2048
        | crate::key::KeyType::Rsa3072
        | crate::key::KeyType::Rsa4096 => AlgorithmIdentifierOwned {
            oid: alg::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        _ => signer.signature_algorithm(),
    };
    let sha256 = AlgorithmIdentifierOwned {
        oid: SHA256,
        parameters: None,
    };
    let si = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(issuer_and_serial(cert)),
        digest_alg: sha256.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: sig_alg,
        signature: OctetString::new(signature).map_err(enc("scep.signature"))?,
        unsigned_attrs: None,
    };
    let mut digests = SetOfVec::new();
    digests.insert(sha256).map_err(enc("scep.digests"))?;
    let mut certs = SetOfVec::new();
    certs
        .insert(CertificateChoices::Certificate(cert.clone()))
        .map_err(enc("scep.certificates"))?;
    let mut signers = SetOfVec::new();
    signers.insert(si).map_err(enc("scep.signer"))?;
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: digests,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: Some(
                Any::encode_from(&OctetString::new(content).map_err(enc("scep.content"))?)
                    .map_err(enc("scep.content"))?,
            ),
        },
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(signers),
    };
    content_info(ID_SIGNED_DATA, &sd)
}

#[cfg(test)]
mod tests {
    use super::client::{read_cert_rep, request};
    use super::*;
    use crate::key::KeyType;

    fn self_signed(cn: &str) -> (PrivateKey, Certificate) {
        let key = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        let subject = crate::name::build(&[("CN", cn)]).unwrap();
        let cert = super::client::self_signed(&key, &subject).unwrap();
        (key, cert)
    }

    #[test]
    fn request_round_trip_in_every_cipher() {
        let (ra_key, ra) = self_signed("RA");
        let (dev_key, dev) = self_signed("dev");
        for cipher in [
            ContentCipher::Aes128Cbc,
            ContentCipher::Aes192Cbc,
            ContentCipher::Aes256Cbc,
            ContentCipher::DesEde3Cbc,
            ContentCipher::DesCbc,
        ] {
            let nonce = [7u8; 16];
            let der = request(
                MessageType::PkcsReq,
                "tid-1",
                &nonce,
                b"inner",
                &dev,
                &dev_key,
                &ra,
                cipher,
            )
            .unwrap();
            let msg = parse(&der).unwrap();
            assert_eq!(msg.message_type, MessageType::PkcsReq);
            assert_eq!(msg.header.transaction_id, "tid-1");
            let (inner, used) = open_envelope(&msg, &ra_key, &ra).unwrap();
            assert_eq!((inner.as_slice(), used), (&b"inner"[..], cipher));
            let ra_id = Ra {
                cert: &ra,
                key: &ra_key,
            };
            let content = certs_only(&[&dev.to_der().unwrap()], &[]).unwrap();
            let rep = cert_rep(
                &msg.header,
                &Status::Success(content),
                Some((&msg.signer, used)),
                &ra_id,
            )
            .unwrap();
            let (status, certs, rep_cipher) = read_cert_rep(&rep, &dev_key, &nonce).unwrap();
            assert!(matches!(status, Status::Success(_)));
            assert_eq!(certs, vec![dev.to_der().unwrap()]);
            // The reply is encrypted the way the request was (RFC 8894 3.3.2).
            assert_eq!(rep_cipher, Some(cipher));
            let rep = cert_rep(
                &msg.header,
                &Status::Failure(FailInfo::BadRequest),
                None,
                &ra_id,
            )
            .unwrap();
            let (status, _, rep_cipher) = read_cert_rep(&rep, &dev_key, &nonce).unwrap();
            assert_eq!(status, Status::Failure(FailInfo::BadRequest));
            assert_eq!(rep_cipher, None);
        }
    }

    #[test]
    fn client_pkcs_req_with_challenge_csr_and_self_signed_signer() {
        let (ra_key, ra) = self_signed("RA");
        let key = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        let subject = crate::name::build(&[("CN", "dev.fleet.test")]).unwrap();
        let signer = super::client::self_signed(&key, &subject).unwrap();
        let tbs = signer.tbs_certificate();
        assert_eq!(tbs.subject(), &subject);
        assert_eq!(tbs.issuer(), &subject);
        crate::cert::verify_signed_by(&signer, &signer).unwrap();
        let csr = crate::csr::create_with_challenge(
            &subject,
            &[],
            Some("static-Secret-1"),
            &key.signer(HashAlg::Sha256),
        )
        .unwrap();
        let der = request(
            MessageType::PkcsReq,
            "tid-3",
            &[3; 16],
            &csr,
            &signer,
            &key,
            &ra,
            ContentCipher::Aes128Cbc,
        )
        .unwrap();
        let msg = parse(&der).unwrap();
        assert_eq!(msg.signer_der, signer.to_der().unwrap());
        let (inner, _) = open_envelope(&msg, &ra_key, &ra).unwrap();
        let csr = crate::csr::parse(&inner).unwrap();
        assert_eq!(csr.challenge_password().as_deref(), Some("static-Secret-1"));
        assert_eq!(csr.spki_der, key.public_key_der());
    }

    #[test]
    fn a_cert_rep_whose_content_was_swapped_is_refused() {
        let (ra_key, ra) = self_signed("RA");
        let (dev_key, dev) = self_signed("dev");
        let nonce = [9u8; 16];
        let der = request(
            MessageType::PkcsReq,
            "tid-4",
            &nonce,
            b"inner",
            &dev,
            &dev_key,
            &ra,
            ContentCipher::Aes128Cbc,
        )
        .unwrap();
        let msg = parse(&der).unwrap();
        let ra_id = Ra {
            cert: &ra,
            key: &ra_key,
        };
        let rep = |content: &[u8]| {
            let c = certs_only(&[content], &[]).unwrap();
            cert_rep(
                &msg.header,
                &Status::Success(c),
                Some((&msg.signer, ContentCipher::Aes128Cbc)),
                &ra_id,
            )
            .unwrap()
        };
        let a = rep(&dev.to_der().unwrap());
        let b = rep(&ra.to_der().unwrap());
        assert!(read_cert_rep(&a, &dev_key, &nonce).is_ok());
        // a's signed attributes and signature over b's envelope.
        let mut sd_a: SignedData = ContentInfo::from_der(&a)
            .unwrap()
            .content
            .decode_as()
            .unwrap();
        let sd_b: SignedData = ContentInfo::from_der(&b)
            .unwrap()
            .content
            .decode_as()
            .unwrap();
        sd_a.encap_content_info = sd_b.encap_content_info;
        let swapped = content_info(ID_SIGNED_DATA, &sd_a).unwrap();
        let err = read_cert_rep(&swapped, &dev_key, &nonce).unwrap_err();
        assert!(err.contains("messageDigest"), "{err}");
        // A signature that does not verify.
        let mut broken = a.clone();
        let n = broken.len();
        broken[n - 1] ^= 1;
        let err = read_cert_rep(&broken, &dev_key, &nonce).unwrap_err();
        assert!(err.contains("bad RA signature"), "{err}");
    }

    /// Go's pkcs7 (micromdm's scepserver) sends the CertRep's encrypted content in BER's
    /// constructed form: `[0]` holding OCTET STRING segments.
    #[test]
    fn a_cert_rep_with_constructed_encrypted_content_is_read() {
        let (ra_key, ra) = self_signed("RA");
        let (dev_key, dev) = self_signed("dev");
        let nonce = [5u8; 16];
        let der = request(
            MessageType::PkcsReq,
            "tid-5",
            &nonce,
            b"inner",
            &dev,
            &dev_key,
            &ra,
            ContentCipher::DesCbc,
        )
        .unwrap();
        let msg = parse(&der).unwrap();
        let dev_der = dev.to_der().unwrap();
        let inner = certs_only(&[&dev_der], &[]).unwrap();
        let env = envelope(&inner, &msg.signer, ContentCipher::DesCbc).unwrap();
        let ci = ContentInfo::from_der(&env).unwrap();
        let ed: LenientEnveloped<'_> = ci.content.decode_as().unwrap();
        let data = octets_of(ed.encrypted_content.encrypted_content.as_ref().unwrap()).unwrap();
        let (a, b) = data.split_at(data.len() / 2);
        let mut segments = OctetString::new(a).unwrap().to_der().unwrap();
        segments.extend(OctetString::new(b).unwrap().to_der().unwrap());
        let constructed = der::AnyRef::new(
            Tag::ContextSpecific {
                constructed: true,
                number: der::TagNumber(0),
            },
            &segments,
        )
        .unwrap();
        let ber = LenientEnveloped {
            version: ed.version,
            recip_infos: ed.recip_infos.clone(),
            encrypted_content: LenientEci {
                content_type: ed.encrypted_content.content_type,
                content_enc_alg: ed.encrypted_content.content_enc_alg.clone(),
                encrypted_content: Some(constructed),
            },
        };
        let content = content_info(ID_ENVELOPED_DATA, &ber).unwrap();
        assert!(
            ContentInfo::from_der(&content)
                .unwrap()
                .content
                .decode_as::<cms::enveloped_data::EnvelopedData>()
                .is_err(),
            "not DER any more"
        );
        let attrs = vec![
            attr(CONTENT_TYPE, Any::encode_from(&ID_DATA).unwrap()).unwrap(),
            attr(
                MESSAGE_DIGEST,
                octets(&digest(HashAlg::Sha256, &content)).unwrap(),
            )
            .unwrap(),
            attr(
                MESSAGE_TYPE,
                printable(MessageType::CertRep.code()).unwrap(),
            )
            .unwrap(),
            attr(PKI_STATUS, printable("0").unwrap()).unwrap(),
            attr(TRANSACTION_ID, printable("tid-5").unwrap()).unwrap(),
            attr(RECIPIENT_NONCE, octets(&nonce).unwrap()).unwrap(),
        ];
        let rep = signed(content, attrs, &ra, &ra_key).unwrap();
        let (status, certs, cipher) = read_cert_rep(&rep, &dev_key, &nonce).unwrap();
        assert!(matches!(status, Status::Success(_)));
        assert_eq!(certs, vec![dev_der]);
        assert_eq!(cipher, Some(ContentCipher::DesCbc));
    }

    #[test]
    fn tampering_is_refused_with_the_right_fail_info() {
        let (ra_key, ra) = self_signed("RA");
        let (dev_key, dev) = self_signed("dev");
        let der = request(
            MessageType::PkcsReq,
            "tid-2",
            &[1; 16],
            b"inner",
            &dev,
            &dev_key,
            &ra,
            ContentCipher::Aes256Cbc,
        )
        .unwrap();
        assert!(matches!(parse(b"garbage"), Err(ScepError::Malformed(_))));
        // Flip a byte of the signature (the last bytes of the message).
        let mut bad = der.clone();
        let n = bad.len();
        bad[n - 3] ^= 1;
        match parse(&bad) {
            Err(ScepError::Fail { info, .. }) => assert_eq!(info, FailInfo::BadMessageCheck),
            other => panic!("{other:?}"),
        }
        // An envelope for another RA: badCertId or a uniform decryption failure.
        let (other_key, other) = self_signed("other RA");
        let msg = parse(&der).unwrap();
        match open_envelope(&msg, &other_key, &other) {
            Err(ScepError::Fail { info, why, .. }) => {
                assert_eq!(info, FailInfo::BadMessageCheck);
                assert_eq!(why, "the envelope does not decrypt");
            }
            other => panic!("{other:?}"),
        }
        assert!(open_envelope(&msg, &ra_key, &ra).is_ok());
    }
}
