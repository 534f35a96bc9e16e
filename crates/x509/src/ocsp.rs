//! OCSP (RFC 6960): reading requests, signing BasicOCSPResponses and error responses, and reading
//! responses back. The ASN.1 types are defined here with `der` derive over x509-cert types,
//! because `x509-ocsp` 0.2 would pull in a second `der` generation.

use crate::X509Error;
use crate::cert::{CertParams, enc_err, is_key_of, issue_with, verify_raw};
use crate::key::Signer;
use aws_lc_rs::digest;
use der::asn1::{
    AnyRef, BitString, BitStringRef, GeneralizedTime, Int, Null, ObjectIdentifier as Oid,
    OctetString,
};
use der::referenced::OwnedToRef;
use der::{Choice, Decode, Encode, Enumerated, Sequence};
use fleetpki_model::UnixTime;
use fleetpki_model::record::RevocationReason;
use spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef};
use x509_cert::Certificate;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::Name;

const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
const ID_PKIX_OCSP_BASIC: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_PKIX_OCSP_NONCE: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const ID_PKIX_OCSP_NOCHECK: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.5");
/// id-kp-OCSPSigning, dotted as [`CertParams::ekus`] holds it.
pub const ID_KP_OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";

/// RFC 9654: a nonce is 1 to 128 octets; anything else is a malformed request.
const MAX_NONCE: usize = 128;

const REQ: &str = "ocsp.request";
const RESP: &str = "ocsp.response";

// ---------------------------------------------------------------------------------------------
// RFC 6960 ASN.1 (the module uses EXPLICIT TAGS unless a field says IMPLICIT).

/// CertID ::= SEQUENCE { hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber }
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct CertIdAsn1 {
    hash_algorithm: AlgorithmIdentifierOwned,
    issuer_name_hash: OctetString,
    issuer_key_hash: OctetString,
    // Int, not SerialNumber: a client may ask about any integer, and we answer `unknown`.
    serial_number: Int,
}

/// OCSPRequest ::= SEQUENCE { tbsRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
#[derive(Sequence)]
struct OcspRequestAsn1<'a> {
    tbs_request: TbsRequest<'a>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    optional_signature: Option<RequestSignature<'a>>,
}

#[derive(Sequence)]
struct TbsRequest<'a> {
    // Version DEFAULT v1: read as optional so an explicitly encoded v1 (BER habit) still parses.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<u8>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    requestor_name: Option<AnyRef<'a>>,
    request_list: Vec<RequestAsn1>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    request_extensions: Option<Extensions>,
}

/// Signature ::= SEQUENCE { signatureAlgorithm, signature, certs [0] EXPLICIT ... OPTIONAL };
/// parsed for well-formedness only: we do not authenticate requesters.
#[derive(Sequence)]
struct RequestSignature<'a> {
    signature_algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    certs: Option<Vec<AnyRef<'a>>>,
}

#[derive(Sequence)]
struct RequestAsn1 {
    req_cert: CertIdAsn1,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    single_request_extensions: Option<Extensions>,
}

/// OCSPResponseStatus ::= ENUMERATED (4 is unused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enumerated)]
#[repr(u8)]
enum ResponseStatusAsn1 {
    Successful = 0,
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    SigRequired = 5,
    Unauthorized = 6,
}

#[derive(Sequence)]
struct OcspResponseAsn1 {
    response_status: ResponseStatusAsn1,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    response_bytes: Option<ResponseBytes>,
}

#[derive(Sequence)]
struct ResponseBytes {
    response_type: Oid,
    response: OctetString,
}

/// BasicOCSPResponse, with tbsResponseData as its exact bytes (what was, or is to be, signed).
#[derive(Sequence)]
struct BasicResponseAsn1<'a> {
    tbs_response_data: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    certs: Option<Vec<AnyRef<'a>>>,
}

#[derive(Sequence)]
struct ResponseData {
    // v1 is the DEFAULT and so never encoded; read as optional for lenient parsing.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<u8>,
    responder_id: ResponderId,
    produced_at: GeneralizedTime,
    responses: Vec<SingleResponseAsn1>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    response_extensions: Option<Extensions>,
}

#[derive(Choice)]
enum ResponderId {
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    ByName(Name),
    /// SHA-1 of the responder's subjectPublicKey BIT STRING contents.
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

#[derive(Sequence)]
struct SingleResponseAsn1 {
    cert_id: CertIdAsn1,
    cert_status: CertStatusAsn1,
    this_update: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    next_update: Option<GeneralizedTime>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    single_extensions: Option<Extensions>,
}

#[derive(Choice)]
enum CertStatusAsn1 {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

#[derive(Sequence)]
struct RevokedInfo {
    revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    revocation_reason: Option<CrlReason>,
}

// ---------------------------------------------------------------------------------------------
// Public API.

/// The hash a CertID was made with. SHA-1 is what OpenSSL and most clients send; it is only a
/// lookup key here, never a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertIdHash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl CertIdHash {
    fn oid(self) -> Oid {
        match self {
            Self::Sha1 => SHA1,
            Self::Sha256 => SHA256,
            Self::Sha384 => SHA384,
            Self::Sha512 => SHA512,
        }
    }

    fn from_oid(oid: &Oid) -> Option<Self> {
        match *oid {
            SHA1 => Some(Self::Sha1),
            SHA256 => Some(Self::Sha256),
            SHA384 => Some(Self::Sha384),
            SHA512 => Some(Self::Sha512),
            _ => None,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// One certificate asked about: hashes of its issuer's name and key, and its serial number.
/// Equality ignores how the hash AlgorithmIdentifier was encoded (NULL or absent parameters).
#[derive(Clone, Debug, Eq)]
pub struct CertId {
    pub hash: CertIdHash,
    pub issuer_name_hash: Vec<u8>,
    pub issuer_key_hash: Vec<u8>,
    /// DER INTEGER content bytes, as [`crate::serial`] uses them.
    pub serial: Vec<u8>,
    /// The hashAlgorithm as the client sent it (NULL or absent parameters), so the response
    /// echoes exactly the CertID that was asked; clients compare CertIDs byte for byte.
    alg: AlgorithmIdentifierOwned,
}

impl PartialEq for CertId {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.issuer_name_hash == other.issuer_name_hash
            && self.issuer_key_hash == other.issuer_key_hash
            && self.serial == other.serial
    }
}

impl CertId {
    /// The CertID a client would send for the certificate `serial` (DER INTEGER content) issued
    /// by `issuer`; the hash AlgorithmIdentifier has absent parameters (RFC 5754).
    pub fn new(hash: CertIdHash, issuer: &Certificate, serial: &[u8]) -> Result<Self, X509Error> {
        let (issuer_name_hash, issuer_key_hash) = issuer_hashes(hash, issuer)
            .ok_or_else(|| X509Error::internal("issuer", "cannot encode the issuer's name"))?;
        Ok(Self {
            hash,
            issuer_name_hash,
            issuer_key_hash,
            serial: serial.to_vec(),
            alg: AlgorithmIdentifierOwned {
                oid: hash.oid(),
                parameters: None,
            },
        })
    }

    /// Whether this id names a certificate issued by `issuer` (name hash over the issuer's DER
    /// subject, key hash over its subjectPublicKey BIT STRING contents, with this id's hash).
    pub fn matches_issuer(&self, issuer: &Certificate) -> bool {
        issuer_hashes(self.hash, issuer)
            .is_some_and(|(name, key)| name == self.issuer_name_hash && key == self.issuer_key_hash)
    }

    fn from_asn1(field: &str, c: CertIdAsn1) -> Result<Self, X509Error> {
        let hash = CertIdHash::from_oid(&c.hash_algorithm.oid).ok_or_else(|| {
            X509Error::refused(
                field,
                format!(
                    "the CertID hash algorithm {} is not supported; use SHA-1, SHA-256, SHA-384 or SHA-512",
                    c.hash_algorithm.oid
                ),
            )
        })?;
        // Digest identifiers carry NULL or nothing (RFC 5754 accepts both).
        if c.hash_algorithm
            .parameters
            .as_ref()
            .is_some_and(|p| !p.is_null())
        {
            return Err(X509Error::malformed(
                field,
                "the CertID hash algorithm must not carry parameters",
            ));
        }
        Ok(Self {
            hash,
            issuer_name_hash: c.issuer_name_hash.as_bytes().to_vec(),
            issuer_key_hash: c.issuer_key_hash.as_bytes().to_vec(),
            serial: c.serial_number.as_bytes().to_vec(),
            alg: c.hash_algorithm,
        })
    }

    fn to_asn1(&self) -> Result<CertIdAsn1, X509Error> {
        let field = "ocsp.responses.id";
        if !canonical_int(&self.serial) {
            return Err(X509Error::refused(
                field,
                "the serial must be minimal DER INTEGER content bytes",
            ));
        }
        // A caller that changed `hash` after parsing gets its own identifier, not a stale one.
        let alg = if self.alg.oid == self.hash.oid() {
            self.alg.clone()
        } else {
            AlgorithmIdentifierOwned {
                oid: self.hash.oid(),
                parameters: None,
            }
        };
        let octets = |b: &[u8]| OctetString::new(b).map_err(enc_err(field));
        Ok(CertIdAsn1 {
            hash_algorithm: alg,
            issuer_name_hash: octets(&self.issuer_name_hash)?,
            issuer_key_hash: octets(&self.issuer_key_hash)?,
            serial_number: Int::new(&self.serial).map_err(enc_err(field))?,
        })
    }
}

/// (name hash, key hash) of `issuer` under `hash`; None when its name will not encode.
fn issuer_hashes(hash: CertIdHash, issuer: &Certificate) -> Option<(Vec<u8>, Vec<u8>)> {
    let tbs = issuer.tbs_certificate();
    let name = tbs.subject().to_der().ok()?;
    let key = tbs.subject_public_key_info().subject_public_key.raw_bytes();
    Some((hash.digest(&name), hash.digest(key)))
}

/// DER INTEGER content: non-empty, no redundant leading 0x00 or 0xFF.
fn canonical_int(b: &[u8]) -> bool {
    !matches!(b, [] | [0x00, 0x00..=0x7f, ..] | [0xff, 0x80..=0xff, ..])
}

/// What a client asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcspRequest {
    pub ids: Vec<CertId>,
    /// The id-pkix-ocsp-nonce extension's extnValue contents (for RFC 9654 clients, such as
    /// OpenSSL, the DER OCTET STRING around the nonce), kept verbatim so it can be echoed.
    pub nonce: Option<Vec<u8>>,
}

/// Parses a DER OCSPRequest (signed requests: parse and ignore the signature). Errors: field
/// "ocsp.request".
pub fn parse_request(der: &[u8]) -> Result<OcspRequest, X509Error> {
    let req = OcspRequestAsn1::from_der(der).map_err(|e| X509Error::der(REQ, "OCSPRequest", e))?;
    let tbs = req.tbs_request;
    if tbs.version.is_some_and(|v| v != 0) {
        return Err(X509Error::refused(
            REQ,
            "only OCSP request version v1 is supported",
        ));
    }
    if tbs.request_list.is_empty() {
        return Err(X509Error::malformed(
            REQ,
            "the request lists no certificates",
        ));
    }
    let mut ids = Vec::with_capacity(tbs.request_list.len());
    for r in tbs.request_list {
        // Single-request extensions (e.g. the service locator) are advisory; refuse only what
        // RFC 6960 4.4 says to: a critical one we do not understand.
        if let Some(e) = r
            .single_request_extensions
            .iter()
            .flatten()
            .find(|e| e.critical)
        {
            return Err(unknown_critical(e));
        }
        ids.push(CertId::from_asn1(REQ, r.req_cert)?);
    }
    let mut nonce = None;
    for e in tbs.request_extensions.iter().flatten() {
        if e.extn_id != ID_PKIX_OCSP_NONCE {
            if e.critical {
                return Err(unknown_critical(e));
            }
            continue;
        }
        if nonce.is_some() {
            return Err(X509Error::malformed(REQ, "the request carries two nonces"));
        }
        let value = e.extn_value.as_bytes();
        // RFC 9654 wraps the nonce in an OCTET STRING; some old clients put raw bytes in
        // extnValue. Either way the value is echoed as it came, so only its size is checked.
        let len = OctetString::from_der(value).map_or(value.len(), |o| o.as_bytes().len());
        if !(1..=MAX_NONCE).contains(&len) {
            return Err(X509Error::malformed(
                REQ,
                format!("a nonce must be 1 to {MAX_NONCE} octets, this one is {len}"),
            ));
        }
        nonce = Some(value.to_vec());
    }
    // requestorName and optionalSignature were decoded (so they are well-formed) and are
    // otherwise ignored: a signed request is answered like an unsigned one.
    Ok(OcspRequest { ids, nonce })
}

fn unknown_critical(e: &Extension) -> X509Error {
    X509Error::refused(
        REQ,
        format!("the critical extension {} is not understood", e.extn_id),
    )
}

/// A certificate's status as the responder reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    /// `reason` None or `Unspecified` omits revocationReason (as RFC 5280 asks of CRLs).
    Revoked {
        at: UnixTime,
        reason: Option<RevocationReason>,
    },
    Unknown,
}

/// One answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleResponse {
    pub id: CertId,
    pub status: CertStatus,
    pub this_update: UnixTime,
    pub next_update: Option<UnixTime>,
}

fn gtime(field: &str, t: UnixTime) -> Result<GeneralizedTime, X509Error> {
    let secs =
        u64::try_from(t).map_err(|_| X509Error::refused(field, format!("{t} is before 1970")))?;
    GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map_err(|e| X509Error::refused(field, format!("{t} is not a GeneralizedTime: {e}")))
}

fn from_gtime(t: &GeneralizedTime) -> UnixTime {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// A successful BasicOCSPResponse: ResponderID byKey (SHA-1 of the responder's public key),
/// producedAt, one SingleResponse per id in request order, the nonce echoed when given, signed
/// by `signer` whose certificate is `responder`; `certs` (DER) are added to the response's certs
/// field (a delegated responder includes its own certificate).
pub fn sign_response(
    responses: &[SingleResponse],
    nonce: Option<&[u8]>,
    responder: &Certificate,
    signer: &dyn Signer,
    produced_at: UnixTime,
    certs: &[Vec<u8>],
) -> Result<Vec<u8>, X509Error> {
    if !is_key_of(responder, &signer.public_key_der()) {
        return Err(X509Error::refused(
            "ocsp.responder",
            "the signing key is not the responder certificate's key",
        ));
    }
    if responses.is_empty() {
        return Err(X509Error::refused(
            "ocsp.responses",
            "a response answers at least one certificate",
        ));
    }
    let mut singles = Vec::with_capacity(responses.len());
    for r in responses {
        if r.next_update.is_some_and(|n| n < r.this_update) {
            return Err(X509Error::refused(
                "ocsp.next_update",
                "nextUpdate must not be earlier than thisUpdate",
            ));
        }
        let cert_status = match &r.status {
            CertStatus::Good => CertStatusAsn1::Good(Null),
            CertStatus::Unknown => CertStatusAsn1::Unknown(Null),
            CertStatus::Revoked { at, reason } => CertStatusAsn1::Revoked(RevokedInfo {
                revocation_time: gtime("ocsp.revoked_at", *at)?,
                revocation_reason: reason.and_then(crate::crl::reason),
            }),
        };
        singles.push(SingleResponseAsn1 {
            cert_id: r.id.to_asn1()?,
            cert_status,
            this_update: gtime("ocsp.this_update", r.this_update)?,
            next_update: r
                .next_update
                .map(|t| gtime("ocsp.next_update", t))
                .transpose()?,
            single_extensions: None,
        });
    }
    let response_extensions = match nonce {
        None => None,
        Some([]) => return Err(X509Error::refused("ocsp.nonce", "a nonce cannot be empty")),
        Some(n) => Some(vec![Extension {
            extn_id: ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(n).map_err(enc_err("ocsp.nonce"))?,
        }]),
    };
    let key_bits = responder
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    let key_hash = CertIdHash::Sha1.digest(key_bits);
    let data = ResponseData {
        version: None,
        responder_id: ResponderId::ByKey(OctetString::new(key_hash).map_err(enc_err(RESP))?),
        produced_at: gtime("ocsp.produced_at", produced_at)?,
        responses: singles,
        response_extensions,
    };
    let tbs_der = data.to_der().map_err(enc_err(RESP))?;
    let signature = signer.sign(&tbs_der)?;
    let certs = certs
        .iter()
        .map(|c| {
            Certificate::from_der(c).map_err(|e| X509Error::der("ocsp.certs", "certificate", e))?;
            AnyRef::from_der(c).map_err(|e| X509Error::der("ocsp.certs", "certificate", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let basic = BasicResponseAsn1 {
        tbs_response_data: AnyRef::from_der(&tbs_der).map_err(enc_err(RESP))?,
        signature_algorithm: signer.signature_algorithm(),
        signature: BitString::from_bytes(&signature).map_err(enc_err(RESP))?,
        certs: (!certs.is_empty()).then_some(certs),
    };
    OcspResponseAsn1 {
        response_status: ResponseStatusAsn1::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: ID_PKIX_OCSP_BASIC,
            response: OctetString::new(basic.to_der().map_err(enc_err(RESP))?)
                .map_err(enc_err(RESP))?,
        }),
    }
    .to_der()
    .map_err(enc_err(RESP))
}

/// A delegated responder's certificate (RFC 6960 4.2.2.2), signed by `signer` for `issuer`,
/// the CA it answers for: an end entity whose EKU holds id-kp-OCSPSigning, with
/// id-pkix-ocsp-nocheck (4.2.2.2.1) so that clients do not ask about the responder itself.
/// With no way to revoke it, keep its life short and renew it often.
pub fn issue_responder(
    params: &CertParams,
    issuer: &Certificate,
    signer: &dyn Signer,
) -> Result<Vec<u8>, X509Error> {
    if params.ca.is_some() {
        return Err(X509Error::refused(
            "ocsp.responder",
            "a delegated responder certificate must not be a CA",
        ));
    }
    if !params.ekus.iter().any(|e| e.trim() == ID_KP_OCSP_SIGNING) {
        return Err(X509Error::refused(
            "ocsp.responder",
            "a delegated responder certificate needs the id-kp-OCSPSigning EKU",
        ));
    }
    let nocheck = Extension {
        extn_id: ID_PKIX_OCSP_NOCHECK,
        critical: false,
        // RFC 6960: the extension's value is NULL.
        extn_value: OctetString::new(Null.to_der().map_err(enc_err("ocsp.responder"))?)
            .map_err(enc_err("ocsp.responder"))?,
    };
    issue_with(params, Some(issuer), signer, vec![nocheck])
}

/// The unsuccessful OCSPResponseStatus values (RFC 6960 4.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorStatus {
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    SigRequired = 5,
    Unauthorized = 6,
}

impl ErrorStatus {
    fn asn1(self) -> ResponseStatusAsn1 {
        match self {
            Self::MalformedRequest => ResponseStatusAsn1::MalformedRequest,
            Self::InternalError => ResponseStatusAsn1::InternalError,
            Self::TryLater => ResponseStatusAsn1::TryLater,
            Self::SigRequired => ResponseStatusAsn1::SigRequired,
            Self::Unauthorized => ResponseStatusAsn1::Unauthorized,
        }
    }
}

/// An OCSPResponse with only a responseStatus (no responseBytes).
pub fn error_response(status: ErrorStatus) -> Vec<u8> {
    let resp = OcspResponseAsn1 {
        response_status: status.asn1(),
        response_bytes: None,
    };
    // SEQUENCE { ENUMERATED } from a fixed set of values: encoding cannot fail.
    resp.to_der()
        .expect("a status-only OCSPResponse always encodes")
}

/// A response read back by [`parse_response`].
#[derive(Clone, Debug)]
pub struct ParsedResponse {
    /// None when the responseStatus is `successful`; the other fields are empty otherwise.
    pub error: Option<ErrorStatus>,
    /// ResponderID byKey (None when the responder is named byName).
    pub responder_key_hash: Option<Vec<u8>>,
    pub produced_at: Option<UnixTime>,
    pub responses: Vec<SingleResponse>,
    /// The nonce extension's extnValue contents, as [`OcspRequest::nonce`].
    pub nonce: Option<Vec<u8>>,
    /// The certs field, DER.
    pub certs: Vec<Vec<u8>>,
    signed: Option<Signed>,
}

#[derive(Clone, Debug)]
struct Signed {
    tbs: Vec<u8>,
    alg: AlgorithmIdentifierOwned,
    signature: Vec<u8>,
}

impl ParsedResponse {
    /// Verifies the BasicOCSPResponse signature against `signer`'s key (SHA-2 only, as for
    /// certificates). Says nothing about whether `signer` may answer for the certificates.
    pub fn verify_signed_by(&self, signer: &Certificate) -> Result<(), X509Error> {
        let s = self.signed.as_ref().ok_or_else(|| {
            X509Error::malformed(RESP, "an unsuccessful response carries no signature")
        })?;
        verify_raw(&s.tbs, &s.alg.owned_to_ref(), &s.signature, signer)
    }
}

/// For tests and clients: parses an OCSPResponse (status, per-id status, nonce). Errors: field
/// "ocsp.response".
pub fn parse_response(der: &[u8]) -> Result<ParsedResponse, X509Error> {
    let bad = |what: &'static str| move |e: der::Error| X509Error::der(RESP, what, e);
    let resp = OcspResponseAsn1::from_der(der).map_err(bad("OCSPResponse"))?;
    let error = match resp.response_status {
        ResponseStatusAsn1::Successful => None,
        ResponseStatusAsn1::MalformedRequest => Some(ErrorStatus::MalformedRequest),
        ResponseStatusAsn1::InternalError => Some(ErrorStatus::InternalError),
        ResponseStatusAsn1::TryLater => Some(ErrorStatus::TryLater),
        ResponseStatusAsn1::SigRequired => Some(ErrorStatus::SigRequired),
        ResponseStatusAsn1::Unauthorized => Some(ErrorStatus::Unauthorized),
    };
    let mut out = ParsedResponse {
        error,
        responder_key_hash: None,
        produced_at: None,
        responses: Vec::new(),
        nonce: None,
        certs: Vec::new(),
        signed: None,
    };
    let bytes = match (error, resp.response_bytes) {
        (Some(_), None) => return Ok(out),
        (Some(_), Some(_)) => {
            return Err(X509Error::malformed(
                RESP,
                "an unsuccessful response must not carry responseBytes",
            ));
        }
        (None, None) => {
            return Err(X509Error::malformed(
                RESP,
                "a successful response must carry responseBytes",
            ));
        }
        (None, Some(b)) => b,
    };
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(X509Error::refused(
            RESP,
            format!(
                "the response type {} is not id-pkix-ocsp-basic",
                bytes.response_type
            ),
        ));
    }
    let basic =
        BasicResponseAsn1::from_der(bytes.response.as_bytes()).map_err(bad("BasicOCSPResponse"))?;
    let data: ResponseData = basic
        .tbs_response_data
        .decode_as()
        .map_err(bad("ResponseData"))?;
    if data.version.is_some_and(|v| v != 0) {
        return Err(X509Error::refused(
            RESP,
            "only OCSP response version v1 is supported",
        ));
    }
    out.responder_key_hash = match &data.responder_id {
        ResponderId::ByKey(k) => Some(k.as_bytes().to_vec()),
        ResponderId::ByName(_) => None,
    };
    out.produced_at = Some(from_gtime(&data.produced_at));
    for s in data.responses {
        let status = match s.cert_status {
            CertStatusAsn1::Good(_) => CertStatus::Good,
            CertStatusAsn1::Unknown(_) => CertStatus::Unknown,
            CertStatusAsn1::Revoked(r) => CertStatus::Revoked {
                at: from_gtime(&r.revocation_time),
                reason: r
                    .revocation_reason
                    .and_then(|c| RevocationReason::from_code(c as u8)),
            },
        };
        out.responses.push(SingleResponse {
            id: CertId::from_asn1(RESP, s.cert_id)?,
            status,
            this_update: from_gtime(&s.this_update),
            next_update: s.next_update.as_ref().map(from_gtime),
        });
    }
    out.nonce = data
        .response_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
        .map(|e| e.extn_value.as_bytes().to_vec());
    for c in basic.certs.iter().flatten() {
        out.certs.push(c.to_der().map_err(bad("certificate"))?);
    }
    let signature = basic
        .signature
        .as_bytes()
        .ok_or_else(|| X509Error::malformed(RESP, "the signature BIT STRING has unused bits"))?;
    out.signed = Some(Signed {
        tbs: basic
            .tbs_response_data
            .to_der()
            .map_err(bad("ResponseData"))?,
        alg: basic.signature_algorithm,
        signature: signature.to_vec(),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::tests::{NOW, ca_pair};
    use der::asn1::Any;
    use fleetpki_model::template::HashAlg;

    fn request(ids: &[CertId], nonce: Option<&[u8]>) -> Vec<u8> {
        let exts = nonce.map(|n| {
            vec![Extension {
                extn_id: ID_PKIX_OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(n).unwrap(),
            }]
        });
        OcspRequestAsn1 {
            tbs_request: TbsRequest {
                version: None,
                requestor_name: None,
                request_list: ids
                    .iter()
                    .map(|i| RequestAsn1 {
                        req_cert: i.to_asn1().unwrap(),
                        single_request_extensions: None,
                    })
                    .collect(),
                request_extensions: exts,
            },
            optional_signature: None,
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn request_round_trip_and_issuer_match() {
        let (_, root, _, int) = ca_pair();
        for h in [
            CertIdHash::Sha1,
            CertIdHash::Sha256,
            CertIdHash::Sha384,
            CertIdHash::Sha512,
        ] {
            let id = CertId::new(h, &int, &[0x00, 0x8f, 0x01]).unwrap();
            assert!(id.matches_issuer(&int));
            assert!(!id.matches_issuer(&root));
            let nonce = OctetString::new([7u8; 16]).unwrap().to_der().unwrap();
            let req = parse_request(&request(std::slice::from_ref(&id), Some(&nonce))).unwrap();
            assert_eq!(req.ids, vec![id]);
            assert_eq!(req.nonce, Some(nonce));
        }
    }

    #[test]
    fn response_echoes_the_hash_identifier_as_sent() {
        let (_, _, int_key, int) = ca_pair();
        // OpenSSL's form: SHA-1 with NULL parameters; ours: absent. Both must come back as sent.
        let mut with_null = CertId::new(CertIdHash::Sha1, &int, &[9]).unwrap();
        with_null.alg.parameters = Some(Any::null());
        let absent = CertId::new(CertIdHash::Sha1, &int, &[9]).unwrap();
        assert_eq!(
            with_null, absent,
            "equality ignores the parameters encoding"
        );
        for id in [with_null, absent] {
            let req = parse_request(&request(std::slice::from_ref(&id), None)).unwrap();
            assert_eq!(req.ids[0].alg, id.alg);
            let single = SingleResponse {
                id: req.ids[0].clone(),
                status: CertStatus::Good,
                this_update: NOW,
                next_update: None,
            };
            let der = sign_response(
                &[single],
                None,
                &int,
                &int_key.signer(HashAlg::Sha256),
                NOW,
                &[],
            )
            .unwrap();
            let back = &parse_response(&der).unwrap().responses[0].id;
            assert_eq!(back.alg, id.alg);
            assert_eq!(back.to_asn1().unwrap(), id.to_asn1().unwrap());
        }
    }

    #[test]
    fn response_round_trip() {
        let (_, _, int_key, int) = ca_pair();
        let ids: Vec<_> = (1u8..=3)
            .map(|s| CertId::new(CertIdHash::Sha256, &int, &[s]).unwrap())
            .collect();
        let singles = vec![
            SingleResponse {
                id: ids[0].clone(),
                status: CertStatus::Good,
                this_update: NOW,
                next_update: Some(NOW + 3600),
            },
            SingleResponse {
                id: ids[1].clone(),
                status: CertStatus::Revoked {
                    at: NOW - 60,
                    reason: Some(RevocationReason::KeyCompromise),
                },
                this_update: NOW,
                next_update: None,
            },
            SingleResponse {
                id: ids[2].clone(),
                status: CertStatus::Unknown,
                this_update: NOW,
                next_update: None,
            },
        ];
        let signer = int_key.signer(HashAlg::Sha256);
        let der = sign_response(&singles, Some(b"\x04\x01\x05"), &int, &signer, NOW, &[]).unwrap();
        let p = parse_response(&der).unwrap();
        assert_eq!(p.error, None);
        assert_eq!(p.responses, singles);
        assert_eq!(p.nonce.as_deref(), Some(&b"\x04\x01\x05"[..]));
        assert_eq!(p.produced_at, Some(NOW));
        assert!(p.certs.is_empty());
        let key = int
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes();
        assert_eq!(p.responder_key_hash, Some(CertIdHash::Sha1.digest(key)));
        p.verify_signed_by(&int).unwrap();
    }

    #[test]
    fn responder_certificates_carry_nocheck_and_the_eku() {
        use crate::cert::tests::params;
        use crate::key::{KeyType, PrivateKey};
        let (_, root, int_key, int) = ca_pair();
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let mut p = params(
            crate::name::build(&[("CN", "Responder")]).unwrap(),
            key.public_key_der(),
            None,
        );
        let signer = int_key.signer(HashAlg::Sha256);
        assert_eq!(
            issue_responder(&p, &int, &signer).unwrap_err().field(),
            "ocsp.responder",
            "no OCSPSigning EKU"
        );
        p.ekus = vec![ID_KP_OCSP_SIGNING.into()];
        let der = issue_responder(&p, &int, &signer).unwrap();
        let cert = Certificate::from_der(&der).unwrap();
        crate::cert::verify_signed_by(&cert, &int).unwrap();
        assert!(crate::cert::verify_signed_by(&cert, &root).is_err());
        let exts = cert.tbs_certificate().extensions().unwrap();
        let nocheck = exts
            .iter()
            .find(|e| e.extn_id == ID_PKIX_OCSP_NOCHECK)
            .expect("nocheck");
        assert!(!nocheck.critical);
        assert_eq!(nocheck.extn_value.as_bytes(), [0x05, 0x00]);
        let info = crate::cert::info(&cert).unwrap();
        assert_eq!(info.ekus, vec![ID_KP_OCSP_SIGNING.to_string()]);
        assert!(!info.is_ca);
        let mut ca = p.clone();
        ca.ca = Some(None);
        assert!(issue_responder(&ca, &int, &signer).is_err());
    }

    #[test]
    fn error_responses_round_trip() {
        for s in [
            ErrorStatus::MalformedRequest,
            ErrorStatus::InternalError,
            ErrorStatus::TryLater,
            ErrorStatus::SigRequired,
            ErrorStatus::Unauthorized,
        ] {
            let der = error_response(s);
            assert_eq!(der, [0x30, 0x03, 0x0a, 0x01, s as u8]);
            let p = parse_response(&der).unwrap();
            assert_eq!(p.error, Some(s));
            assert!(p.verify_signed_by(&ca_pair().3).is_err());
        }
    }

    #[test]
    fn refusals() {
        let (root_key, _, int_key, int) = ca_pair();
        let id = CertId::new(CertIdHash::Sha1, &int, &[1]).unwrap();
        let good = SingleResponse {
            id: id.clone(),
            status: CertStatus::Good,
            this_update: NOW,
            next_update: None,
        };
        let s = int_key.signer(HashAlg::Sha256);
        let err = |r: Result<Vec<u8>, X509Error>| r.unwrap_err().field().to_string();
        assert_eq!(
            err(sign_response(
                std::slice::from_ref(&good),
                None,
                &int,
                &root_key.signer(HashAlg::Sha256),
                NOW,
                &[]
            )),
            "ocsp.responder"
        );
        assert_eq!(
            err(sign_response(&[], None, &int, &s, NOW, &[])),
            "ocsp.responses"
        );
        let mut bad = good.clone();
        bad.next_update = Some(NOW - 1);
        assert_eq!(
            err(sign_response(&[bad], None, &int, &s, NOW, &[])),
            "ocsp.next_update"
        );
        let mut bad = good.clone();
        bad.id.serial = vec![0x00, 0x01];
        assert_eq!(
            err(sign_response(&[bad], None, &int, &s, NOW, &[])),
            "ocsp.responses.id"
        );
        assert_eq!(
            err(sign_response(
                std::slice::from_ref(&good),
                Some(b""),
                &int,
                &s,
                NOW,
                &[]
            )),
            "ocsp.nonce"
        );
        assert_eq!(
            err(sign_response(
                std::slice::from_ref(&good),
                None,
                &int,
                &s,
                NOW,
                &[b"junk".to_vec()]
            )),
            "ocsp.certs"
        );
        // Requests: no ids, oversized nonce, unknown critical extension, unknown hash.
        assert_eq!(parse_request(&request(&[], None)).unwrap_err().field(), REQ);
        let long = OctetString::new(vec![1u8; 129]).unwrap().to_der().unwrap();
        assert!(parse_request(&request(std::slice::from_ref(&id), Some(&long))).is_err());
        assert!(parse_request(&request(std::slice::from_ref(&id), Some(b""))).is_err());
        let md5 = AlgorithmIdentifierOwned {
            oid: Oid::new_unwrap("1.2.840.113549.2.5"),
            parameters: Some(Any::null()),
        };
        let der = OcspRequestAsn1 {
            tbs_request: TbsRequest {
                version: None,
                requestor_name: None,
                request_list: vec![RequestAsn1 {
                    req_cert: CertIdAsn1 {
                        hash_algorithm: md5,
                        ..id.to_asn1().unwrap()
                    },
                    single_request_extensions: None,
                }],
                request_extensions: Some(vec![]),
            },
            optional_signature: None,
        }
        .to_der()
        .unwrap();
        assert_eq!(parse_request(&der).unwrap_err().field(), REQ);
        let critical = OcspRequestAsn1 {
            tbs_request: TbsRequest {
                version: None,
                requestor_name: None,
                request_list: vec![RequestAsn1 {
                    req_cert: id.to_asn1().unwrap(),
                    single_request_extensions: None,
                }],
                request_extensions: Some(vec![Extension {
                    extn_id: Oid::new_unwrap("1.2.3.4"),
                    critical: true,
                    extn_value: OctetString::new(vec![5]).unwrap(),
                }]),
            },
            optional_signature: None,
        }
        .to_der()
        .unwrap();
        assert_eq!(parse_request(&critical).unwrap_err().field(), REQ);
    }

    #[test]
    fn truncations_never_panic() {
        let (_, _, int_key, int) = ca_pair();
        let id = CertId::new(CertIdHash::Sha256, &int, &[0x42]).unwrap();
        let req = request(std::slice::from_ref(&id), Some(b"\x04\x02ab"));
        for n in 0..req.len() {
            assert!(parse_request(&req[..n]).is_err());
        }
        let resp = sign_response(
            &[SingleResponse {
                id,
                status: CertStatus::Good,
                this_update: NOW,
                next_update: None,
            }],
            None,
            &int,
            &int_key.signer(HashAlg::Sha256),
            NOW,
            &[],
        )
        .unwrap();
        for n in 0..resp.len() {
            assert!(parse_response(&resp[..n]).is_err());
        }
    }
}
