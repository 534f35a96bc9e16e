//! Certificates: issuing them with the RFC 5280 profile fleetpki uses (SKI/AKI, KU, EKU, BC,
//! SAN, CDP, AIA), parsing, summarising for display and checks, and verifying a signature.

use crate::alg;
use crate::csr::{UPN, describe_general_name};
use crate::key::Signer;
use crate::{X509Error, name, pem, serial};
use der::Sequence;
use der::asn1::{
    Any, AnyRef, BitStringRef, Ia5String, ObjectIdentifier as Oid, OctetString, Utf8StringRef,
};
use der::flagset::FlagSet;
use der::oid::AssociatedOid;
use der::referenced::OwnedToRef;
use der::{DateTime, Decode, Encode, Reader, SliceReader};
use fleetpki_model::UnixTime;
use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::template::KeyInfo;
use spki::AlgorithmIdentifierRef;
use std::net::IpAddr;
use x509_cert::Certificate;
use x509_cert::certificate::Version;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

const ID_AD_OCSP: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1");
const ID_AD_CA_ISSUERS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.2");

/// One subjectAltName entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    Dns(String),
    Email(String),
    /// Microsoft UPN: otherName 1.3.6.1.4.1.311.20.2.3 with a UTF8String.
    Upn(String),
    Ip(IpAddr),
}

/// Where relying parties find the issuer's CRL, OCSP responder and certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IssuerUrls {
    pub crl: Option<String>,
    pub ocsp: Option<String>,
    pub ca_issuers: Option<String>,
}

/// Everything a certificate says, decided by the CA layer.
#[derive(Clone, Debug)]
pub struct CertParams {
    /// DER INTEGER content, as [`serial::random`] returns it.
    pub serial: Vec<u8>,
    pub subject: Name,
    pub sans: Vec<San>,
    pub spki_der: Vec<u8>,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    pub key_usage: Vec<KeyUsageBit>,
    /// Dotted OIDs, custom ones included (2.16.840.1.113741.1.2.3).
    pub ekus: Vec<String>,
    /// None: end entity; Some(path_len): CA with basicConstraints CA:TRUE critical (+pathLen).
    pub ca: Option<Option<u8>>,
    /// CDP / AIA (caIssuers + OCSP) when Some; a root omits them.
    pub urls: IssuerUrls,
}

/// Converts Unix seconds to an X.509 Time: UTCTime before 2050, GeneralizedTime from 2050.
pub(crate) fn to_time(field: &str, t: UnixTime) -> Result<Time, X509Error> {
    let secs =
        u64::try_from(t).map_err(|_| X509Error::refused(field, format!("{t} is before 1970")))?;
    let dt = DateTime::from_unix_duration(std::time::Duration::from_secs(secs)).map_err(|e| {
        X509Error::refused(
            field,
            format!("{t} cannot be encoded as an X.509 time: {e}"),
        )
    })?;
    Ok(Time::from(dt))
}

pub(crate) fn from_time(t: &Time) -> UnixTime {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

pub(crate) fn enc_err(field: &str) -> impl Fn(der::Error) -> X509Error + '_ {
    move |e| X509Error::internal(field, format!("cannot encode: {e}"))
}

fn extension<T: Encode + AssociatedOid>(critical: bool, value: &T) -> Result<Extension, X509Error> {
    let der = value.to_der().map_err(enc_err("extensions"))?;
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(der).map_err(enc_err("extensions"))?,
    })
}

/// RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value.
fn key_id(subject_public_key: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        subject_public_key,
    )
    .as_ref()
    .to_vec()
}

/// The issuer's key identifier: its SKI extension, else computed from its key.
pub(crate) fn issuer_key_id(issuer: &Certificate) -> Result<Vec<u8>, X509Error> {
    let tbs = issuer.tbs_certificate();
    match tbs.get_extension::<SubjectKeyIdentifier>() {
        Ok(Some((_, ski))) => Ok(ski.0.as_bytes().to_vec()),
        Ok(None) => Ok(key_id(
            tbs.subject_public_key_info().subject_public_key.raw_bytes(),
        )),
        Err(e) => Err(X509Error::der("issuer", "subjectKeyIdentifier", e)),
    }
}

/// Whether `spki_der` is the public key in `cert` (compared without re-encoding either).
pub(crate) fn is_key_of(cert: &Certificate, spki_der: &[u8]) -> bool {
    let Ok(theirs) = spki::SubjectPublicKeyInfoRef::from_der(spki_der) else {
        return false;
    };
    let ours = cert.tbs_certificate().subject_public_key_info();
    ours.algorithm.oid == theirs.algorithm.oid
        && ours.algorithm.parameters.as_ref().map(|p| p.owned_to_ref())
            == theirs.algorithm.parameters
        && ours.subject_public_key.raw_bytes() == theirs.subject_public_key.raw_bytes()
}

fn ia5(field: &str, what: &str, s: &str) -> Result<Ia5String, X509Error> {
    if s.is_empty() || !s.is_ascii() {
        return Err(X509Error::refused(
            field,
            format!("{what} `{s}` must be non-empty ASCII"),
        ));
    }
    Ia5String::new(s).map_err(|e| X509Error::refused(field, format!("{what} `{s}`: {e}")))
}

pub(crate) fn general_name(san: &San) -> Result<GeneralName, X509Error> {
    Ok(match san {
        San::Dns(d) => GeneralName::DnsName(ia5("sans", "DNS name", d)?),
        San::Email(e) => GeneralName::Rfc822Name(ia5("sans", "e-mail address", e)?),
        San::Upn(u) => {
            let s = Utf8StringRef::new(u)
                .map_err(|e| X509Error::refused("sans", format!("UPN `{u}`: {e}")))?;
            GeneralName::OtherName(OtherName {
                type_id: UPN,
                value: Any::encode_from(&s).map_err(enc_err("sans"))?,
            })
        }
        San::Ip(ip) => GeneralName::from(*ip),
    })
}

fn uri(field: &str, u: &str) -> Result<GeneralName, X509Error> {
    Ok(GeneralName::UniformResourceIdentifier(ia5(
        field, "URL", u,
    )?))
}

fn key_usages(bits: &[KeyUsageBit]) -> FlagSet<KeyUsages> {
    let mut set = FlagSet::<KeyUsages>::default();
    for b in bits {
        set |= match b {
            KeyUsageBit::DigitalSignature => KeyUsages::DigitalSignature,
            KeyUsageBit::NonRepudiation => KeyUsages::NonRepudiation,
            KeyUsageBit::KeyEncipherment => KeyUsages::KeyEncipherment,
            KeyUsageBit::DataEncipherment => KeyUsages::DataEncipherment,
            KeyUsageBit::KeyAgreement => KeyUsages::KeyAgreement,
            KeyUsageBit::KeyCertSign => KeyUsages::KeyCertSign,
            KeyUsageBit::CrlSign => KeyUsages::CRLSign,
        };
    }
    set
}

fn check_serial(s: &[u8]) -> Result<(), X509Error> {
    let positive = s.first().is_some_and(|b| b & 0x80 == 0) && s.iter().any(|b| *b != 0);
    if !positive || s.len() > 20 {
        return Err(X509Error::refused(
            "serial",
            "a serial number must be a positive integer of at most 20 octets",
        ));
    }
    Ok(())
}

/// RFC 5280 TBSCertificate, for encoding. x509-cert's `TbsCertificate` has no public
/// constructor, and its builder clones every part and encodes the certificate twice; here the
/// parts we already hold as DER (names, the SPKI) go in as they are, so issuing costs little
/// more than the signature.
#[derive(Sequence)]
struct TbsOut<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: Version,
    serial_number: SerialNumber,
    signature: AlgorithmIdentifierRef<'a>,
    issuer: AnyRef<'a>,
    validity: Validity,
    subject: AnyRef<'a>,
    subject_public_key_info: AnyRef<'a>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Vec<Extension>>,
}

fn any<'a>(field: &str, der: &'a [u8]) -> Result<AnyRef<'a>, X509Error> {
    AnyRef::from_der(der).map_err(|e| X509Error::der(field, "value", e))
}

/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }, with the TBS
/// as the exact bytes that were signed.
#[derive(Sequence)]
struct SignedOut<'a> {
    tbs: AnyRef<'a>,
    algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
}

/// Signs a certificate. `issuer` None = self-signed (issuer name = subject, AKI = own SKI).
/// SKI = SHA-1 of the subjectPublicKey bits (RFC 5280 method 1); AKI keyIdentifier = the
/// issuer's SKI. Empty subject ⇒ SAN critical. UTCTime before 2050, GeneralizedTime after. KU
/// critical; EKU non-critical, omitted if empty; basicConstraints critical CA:TRUE on CA
/// certificates, omitted on end entities.
pub fn issue(
    params: &CertParams,
    issuer: Option<&Certificate>,
    signer: &dyn Signer,
) -> Result<Vec<u8>, X509Error> {
    issue_with(params, issuer, signer, Vec::new())
}

/// [`issue`] plus `extra` extensions, appended after the profile's own (for the few
/// certificates whose purpose needs one more, such as an OCSP responder's id-pkix-ocsp-nocheck).
pub(crate) fn issue_with(
    params: &CertParams,
    issuer: Option<&Certificate>,
    signer: &dyn Signer,
    extra: Vec<Extension>,
) -> Result<Vec<u8>, X509Error> {
    check_serial(&params.serial)?;
    // The subject key must be one we could verify with; this also rejects junk SPKI DER.
    let ski = key_id(alg::parse_spki("public_key", &params.spki_der)?.key_bits());
    let signer_spki = signer.public_key_der();
    let aki = match issuer {
        Some(ic) => {
            if !is_key_of(ic, &signer_spki) {
                return Err(X509Error::refused(
                    "issuer",
                    "the signing key is not the issuer certificate's key",
                ));
            }
            issuer_key_id(ic)?
        }
        None => {
            if params.spki_der != signer_spki {
                return Err(X509Error::refused(
                    "issuer",
                    "a self-signed certificate must be signed with its own key",
                ));
            }
            ski.clone()
        }
    };
    if params.subject.is_empty() && params.sans.is_empty() {
        return Err(X509Error::refused(
            "subject",
            "a certificate needs a subject name or at least one subject alternative name",
        ));
    }
    if params.not_after <= params.not_before {
        return Err(X509Error::refused(
            "validity",
            "notAfter must be later than notBefore",
        ));
    }
    let validity = Validity::new(
        to_time("not_before", params.not_before)?,
        to_time("not_after", params.not_after)?,
    );

    let mut exts = Vec::with_capacity(8);
    if let Some(path_len) = params.ca {
        exts.push(extension(
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: path_len,
            },
        )?);
    }
    if !params.key_usage.is_empty() {
        exts.push(extension(true, &KeyUsage(key_usages(&params.key_usage)))?);
    }
    if !params.ekus.is_empty() {
        let oids = params
            .ekus
            .iter()
            .map(|e| {
                Oid::new(e.trim())
                    .map_err(|_| X509Error::refused("ekus", format!("`{e}` is not a dotted OID")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        exts.push(extension(false, &ExtendedKeyUsage(oids))?);
    }
    exts.push(extension(
        false,
        &SubjectKeyIdentifier(OctetString::new(ski).map_err(enc_err("extensions"))?),
    )?);
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(aki).map_err(enc_err("extensions"))?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    exts.push(extension(false, &aki)?);
    if !params.sans.is_empty() {
        let names = params
            .sans
            .iter()
            .map(general_name)
            .collect::<Result<Vec<_>, _>>()?;
        // RFC 5280 4.2.1.6: critical exactly when the subject is empty.
        exts.push(extension(
            params.subject.is_empty(),
            &SubjectAltName(names),
        )?);
    }
    if let Some(crl) = &params.urls.crl {
        let dp = DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![uri("urls.crl", crl)?])),
            reasons: None,
            crl_issuer: None,
        };
        exts.push(extension(false, &CrlDistributionPoints(vec![dp]))?);
    }
    let mut access = Vec::new();
    if let Some(ocsp) = &params.urls.ocsp {
        access.push(AccessDescription {
            access_method: ID_AD_OCSP,
            access_location: uri("urls.ocsp", ocsp)?,
        });
    }
    if let Some(ca) = &params.urls.ca_issuers {
        access.push(AccessDescription {
            access_method: ID_AD_CA_ISSUERS,
            access_location: uri("urls.ca_issuers", ca)?,
        });
    }
    if !access.is_empty() {
        exts.push(extension(false, &AuthorityInfoAccessSyntax(access))?);
    }
    exts.extend(extra);

    let serial = SerialNumber::new(&params.serial)
        .map_err(|e| X509Error::refused("serial", format!("{e}")))?;
    let subject_der = params.subject.to_der().map_err(enc_err("subject"))?;
    let issuer_der = match issuer {
        Some(ic) => ic
            .tbs_certificate()
            .subject()
            .to_der()
            .map_err(enc_err("issuer"))?,
        None => subject_der.clone(),
    };
    let algorithm = signer.signature_algorithm();
    let tbs = TbsOut {
        version: Version::V3,
        serial_number: serial,
        signature: algorithm.owned_to_ref(),
        issuer: any("issuer", &issuer_der)?,
        validity,
        subject: any("subject", &subject_der)?,
        subject_public_key_info: any("public_key", &params.spki_der)?,
        extensions: Some(exts),
    };
    let tbs_der = tbs.to_der().map_err(enc_err("certificate"))?;
    let signature = signer.sign(&tbs_der)?;
    let cert = SignedOut {
        tbs: any("certificate", &tbs_der)?,
        algorithm: algorithm.owned_to_ref(),
        signature: BitStringRef::from_bytes(&signature).map_err(enc_err("certificate"))?,
    };
    cert.to_der().map_err(enc_err("certificate"))
}

/// Parses a certificate (DER; a single PEM block is accepted too); `field` names the input.
pub fn parse(field: &str, der: &[u8]) -> Result<Certificate, X509Error> {
    if der.first() == Some(&0x30) {
        return Certificate::from_der(der).map_err(|e| X509Error::der(field, "certificate", e));
    }
    let mut blocks = pem::decode_all(field, der, "CERTIFICATE")?;
    if blocks.len() != 1 {
        return Err(X509Error::malformed(
            field,
            format!("expected one certificate, found {}", blocks.len()),
        ));
    }
    let der = blocks.remove(0);
    Certificate::from_der(&der).map_err(|e| X509Error::der(field, "certificate", e))
}

/// Summary of a certificate for display and checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    pub serial_hex: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    /// "DNS:x", "email:y", "UPN:z", "IP:...", "URI:...", "otherName:OID".
    pub sans: Vec<String>,
    pub key: KeyInfo,
    pub is_ca: bool,
    /// Dotted OIDs.
    pub ekus: Vec<String>,
    pub key_usage: Vec<KeyUsageBit>,
    pub ski: Option<Vec<u8>>,
    /// e.g. "ecdsa-with-SHA256".
    pub signature_algorithm: String,
}

pub fn info(cert: &Certificate) -> Result<CertInfo, X509Error> {
    let tbs = cert.tbs_certificate();
    let bad = |what: &'static str| move |e: der::Error| X509Error::der("certificate", what, e);
    let spki = tbs
        .subject_public_key_info()
        .to_der()
        .map_err(enc_err("certificate"))?;
    let key = alg::parse_spki("certificate.public_key", &spki)?.info;
    let mut sans = Vec::new();
    for r in tbs.filter_extensions::<SubjectAltName>() {
        let (_, san) = r.map_err(bad("subjectAltName"))?;
        sans.extend(san.0.iter().map(|g| describe_general_name(g, ":")));
    }
    let is_ca = tbs
        .get_extension::<BasicConstraints>()
        .map_err(bad("basicConstraints"))?
        .is_some_and(|(_, bc)| bc.ca);
    let ekus = tbs
        .get_extension::<ExtendedKeyUsage>()
        .map_err(bad("extendedKeyUsage"))?
        .map(|(_, e)| e.0.iter().map(|o| o.to_string()).collect())
        .unwrap_or_default();
    let key_usage = match tbs.get_extension::<KeyUsage>().map_err(bad("keyUsage"))? {
        Some((_, ku)) => [
            (ku.digital_signature(), KeyUsageBit::DigitalSignature),
            (ku.non_repudiation(), KeyUsageBit::NonRepudiation),
            (ku.key_encipherment(), KeyUsageBit::KeyEncipherment),
            (ku.data_encipherment(), KeyUsageBit::DataEncipherment),
            (ku.key_agreement(), KeyUsageBit::KeyAgreement),
            (ku.key_cert_sign(), KeyUsageBit::KeyCertSign),
            (ku.crl_sign(), KeyUsageBit::CrlSign),
        ]
        .into_iter()
        .filter_map(|(on, b)| on.then_some(b))
        .collect(),
        None => Vec::new(),
    };
    let ski = tbs
        .get_extension::<SubjectKeyIdentifier>()
        .map_err(bad("subjectKeyIdentifier"))?
        .map(|(_, s)| s.0.as_bytes().to_vec());
    Ok(CertInfo {
        serial_hex: serial::to_hex(tbs.serial_number().as_bytes()),
        subject: name::to_string(tbs.subject()),
        issuer: name::to_string(tbs.issuer()),
        not_before: from_time(&tbs.validity().not_before),
        not_after: from_time(&tbs.validity().not_after),
        sans,
        key,
        is_ca,
        ekus,
        key_usage,
        ski,
        signature_algorithm: alg::signature_alg_name(&cert.signature_algorithm().oid),
    })
}

/// Verifies that `child` was signed by `issuer`'s key (aws-lc-rs); refuses SHA-1/MD5 signature
/// algorithms (field "certificate.signature_algorithm"). Checks the signature only, not names
/// or validity. The TBS is re-encoded from the parsed form; for certificates from elsewhere
/// that may not be canonical DER, prefer [`verify_der_signed_by`].
pub fn verify_signed_by(child: &Certificate, issuer: &Certificate) -> Result<(), X509Error> {
    let tbs = child
        .tbs_certificate()
        .to_der()
        .map_err(enc_err("certificate"))?;
    let alg_der = child
        .signature_algorithm()
        .to_der()
        .map_err(enc_err("certificate"))?;
    let alg = AlgorithmIdentifierRef::from_der(&alg_der)
        .map_err(|e| X509Error::der("certificate", "AlgorithmIdentifier", e))?;
    if child.signature_algorithm() != child.tbs_certificate().signature() {
        return Err(X509Error::malformed(
            "certificate.signature_algorithm",
            "the outer and inner signature algorithms differ",
        ));
    }
    let sig = child.signature().as_bytes().ok_or_else(|| {
        X509Error::malformed("certificate", "the signature BIT STRING has unused bits")
    })?;
    verify_raw(&tbs, &alg, sig, issuer)
}

/// [`verify_signed_by`] over the certificate's DER as received (the signed bytes exactly).
pub fn verify_der_signed_by(child_der: &[u8], issuer: &Certificate) -> Result<(), X509Error> {
    let bad = |e: der::Error| X509Error::der("certificate", "certificate", e);
    let mut r = SliceReader::new(child_der).map_err(bad)?;
    let (tbs, alg, sig) = r
        .sequence(|r| {
            let tbs = r.tlv_bytes()?;
            Ok::<_, der::Error>((
                tbs,
                AlgorithmIdentifierRef::decode(r)?,
                BitStringRef::decode(r)?,
            ))
        })
        .map_err(bad)?;
    r.finish().map_err(bad)?;
    let sig = sig.as_bytes().ok_or_else(|| {
        X509Error::malformed("certificate", "the signature BIT STRING has unused bits")
    })?;
    verify_raw(tbs, &alg, sig, issuer)
}

pub(crate) fn verify_raw(
    tbs: &[u8],
    alg: &AlgorithmIdentifierRef<'_>,
    sig: &[u8],
    issuer: &Certificate,
) -> Result<(), X509Error> {
    let sig_alg = alg::signature_alg("certificate", alg)?;
    let issuer_spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(enc_err("issuer"))?;
    let key = alg::parse_spki("certificate.public_key", &issuer_spki)?;
    alg::verify(
        "certificate",
        &key,
        sig_alg,
        tbs,
        sig,
        "the signature does not verify against the issuer's public key",
    )
}

/// SHA-256 fingerprint of the DER, lower hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

/// PEM "CERTIFICATE".
pub fn to_pem(der: &[u8]) -> String {
    pem::encode("CERTIFICATE", der)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::key::{KeyType, PrivateKey};
    use fleetpki_model::template::{HashAlg, KeyFamily};
    use x509_cert::ext::pkix::AuthorityKeyIdentifier;

    pub(crate) const NOW: UnixTime = 1_767_225_600; // 2026-01-01

    pub(crate) fn params(subject: Name, spki_der: Vec<u8>, ca: Option<Option<u8>>) -> CertParams {
        CertParams {
            serial: serial::random().unwrap(),
            subject,
            sans: vec![],
            spki_der,
            not_before: NOW - 3600,
            not_after: NOW + 86_400 * 365,
            key_usage: if ca.is_some() {
                vec![KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign]
            } else {
                vec![KeyUsageBit::DigitalSignature]
            },
            ekus: vec![],
            ca,
            urls: IssuerUrls::default(),
        }
    }

    /// A root and an intermediate with their keys.
    pub(crate) fn ca_pair() -> (PrivateKey, Certificate, PrivateKey, Certificate) {
        let root_key = PrivateKey::generate(KeyType::EcdsaP384).unwrap();
        let root_p = params(
            name::build(&[("CN", "Test Root"), ("O", "Contoso")]).unwrap(),
            root_key.public_key_der(),
            Some(None),
        );
        let root = Certificate::from_der(
            &issue(&root_p, None, &root_key.signer(HashAlg::Sha256)).unwrap(),
        )
        .unwrap();
        let int_key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let mut int_p = params(
            name::build(&[("CN", "Test Issuing CA")]).unwrap(),
            int_key.public_key_der(),
            Some(Some(0)),
        );
        int_p.urls = IssuerUrls {
            crl: Some("http://pki.test/root.crl".into()),
            ocsp: None,
            ca_issuers: Some("http://pki.test/root.crt".into()),
        };
        let int = Certificate::from_der(
            &issue(&int_p, Some(&root), &root_key.signer(HashAlg::Sha256)).unwrap(),
        )
        .unwrap();
        (root_key, root, int_key, int)
    }

    #[test]
    fn chain_links_by_key_identifiers() {
        let (_, root, _, int) = ca_pair();
        let ri = info(&root).unwrap();
        let ii = info(&int).unwrap();
        assert!(ri.is_ca && ii.is_ca);
        assert_eq!(ri.subject, "CN=Test Root,O=Contoso");
        assert_eq!(ri.issuer, ri.subject);
        assert_eq!(ii.issuer, ri.subject);
        assert_eq!(
            ri.key,
            KeyInfo {
                family: KeyFamily::Ecdsa,
                bits: 384
            }
        );
        assert_eq!(ri.signature_algorithm, "ecdsa-with-SHA384");
        assert_eq!(
            ri.key_usage,
            vec![KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign]
        );
        assert_eq!(ri.not_before, NOW - 3600);
        let aki = |c: &Certificate| {
            c.tbs_certificate()
                .get_extension::<AuthorityKeyIdentifier>()
                .unwrap()
                .unwrap()
                .1
                .key_identifier
                .unwrap()
                .as_bytes()
                .to_vec()
        };
        assert_eq!(aki(&root), ri.ski.clone().unwrap());
        assert_eq!(aki(&int), ri.ski.clone().unwrap());
        assert_eq!(ri.ski.unwrap().len(), 20);
        let bc = int
            .tbs_certificate()
            .get_extension::<BasicConstraints>()
            .unwrap()
            .unwrap();
        assert!(bc.0, "basicConstraints critical");
        assert_eq!(bc.1.path_len_constraint, Some(0));
        verify_signed_by(&root, &root).unwrap();
        verify_signed_by(&int, &root).unwrap();
        verify_der_signed_by(&int.to_der().unwrap(), &root).unwrap();
        let e = verify_signed_by(&root, &int).unwrap_err();
        assert_eq!(e.field(), "certificate.signature");
    }

    #[test]
    fn end_entity_profile() {
        let (_, _, int_key, int) = ca_pair();
        let leaf_key = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        let mut p = params(
            name::build(&[("CN", "pc1.fleet.test")]).unwrap(),
            leaf_key.public_key_der(),
            None,
        );
        p.sans = vec![
            San::Dns("pc1.fleet.test".into()),
            San::Upn("pc1$@fleet.test".into()),
            San::Ip("::1".parse().unwrap()),
            San::Email("a@b.test".into()),
        ];
        p.ekus = vec!["1.3.6.1.5.5.7.3.2".into(), "2.16.840.1.113741.1.2.3".into()];
        p.key_usage = vec![KeyUsageBit::DigitalSignature, KeyUsageBit::KeyEncipherment];
        p.urls = IssuerUrls {
            crl: Some("http://pki.test/int.crl".into()),
            ocsp: Some("http://pki.test/ocsp".into()),
            ca_issuers: Some("http://pki.test/int.crt".into()),
        };
        p.not_after = 2_556_144_000; // 2051-01-01: GeneralizedTime
        let der = issue(&p, Some(&int), &int_key.signer(HashAlg::Sha256)).unwrap();
        let cert = parse("leaf", &der).unwrap();
        let i = info(&cert).unwrap();
        assert!(!i.is_ca);
        assert_eq!(
            i.sans,
            vec![
                "DNS:pc1.fleet.test",
                "UPN:pc1$@fleet.test",
                "IP:::1",
                "email:a@b.test"
            ]
        );
        assert_eq!(i.ekus, p.ekus);
        assert_eq!(i.key_usage, p.key_usage);
        assert_eq!(
            i.key,
            KeyInfo {
                family: KeyFamily::Rsa,
                bits: 2048
            }
        );
        assert_eq!(i.serial_hex, serial::to_hex(&p.serial));
        assert_eq!(i.not_after, 2_556_144_000);
        assert!(matches!(
            cert.tbs_certificate().validity().not_after,
            Time::GeneralTime(_)
        ));
        assert!(matches!(
            cert.tbs_certificate().validity().not_before,
            Time::UtcTime(_)
        ));
        assert!(
            cert.tbs_certificate()
                .get_extension::<BasicConstraints>()
                .unwrap()
                .is_none()
        );
        let (crit, _) = cert
            .tbs_certificate()
            .get_extension::<SubjectAltName>()
            .unwrap()
            .unwrap();
        assert!(!crit);
        let (crit, _) = cert
            .tbs_certificate()
            .get_extension::<KeyUsage>()
            .unwrap()
            .unwrap();
        assert!(crit);
        verify_signed_by(&cert, &int).unwrap();
        assert_eq!(fingerprint(&der).len(), 64);
    }

    #[test]
    fn empty_subject_makes_san_critical() {
        let (_, _, int_key, int) = ca_pair();
        let k = PrivateKey::generate(KeyType::Ed25519).unwrap();
        let mut p = params(Name::default(), k.public_key_der(), None);
        p.sans = vec![San::Email("user@fleet.test".into())];
        let cert = Certificate::from_der(
            &issue(&p, Some(&int), &int_key.signer(HashAlg::Sha256)).unwrap(),
        )
        .unwrap();
        let (crit, _) = cert
            .tbs_certificate()
            .get_extension::<SubjectAltName>()
            .unwrap()
            .unwrap();
        assert!(crit);
        assert_eq!(info(&cert).unwrap().subject, "");
        p.sans.clear();
        assert_eq!(
            issue(&p, Some(&int), &int_key.signer(HashAlg::Sha256))
                .unwrap_err()
                .field(),
            "subject"
        );
    }

    #[test]
    fn refusals() {
        let (root_key, root, int_key, int) = ca_pair();
        let k = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let p = params(
            name::build(&[("CN", "x")]).unwrap(),
            k.public_key_der(),
            None,
        );
        // Signed with a key that is not the issuer's.
        assert_eq!(
            issue(&p, Some(&int), &root_key.signer(HashAlg::Sha256))
                .unwrap_err()
                .field(),
            "issuer"
        );
        // Self-signed with a foreign key.
        assert_eq!(
            issue(&p, None, &int_key.signer(HashAlg::Sha256))
                .unwrap_err()
                .field(),
            "issuer"
        );
        let mut bad = p.clone();
        bad.serial = vec![0x80, 1];
        assert_eq!(
            issue(&bad, Some(&root), &root_key.signer(HashAlg::Sha256))
                .unwrap_err()
                .field(),
            "serial"
        );
        let mut bad = p.clone();
        bad.ekus = vec!["client-auth".into()];
        assert_eq!(
            issue(&bad, Some(&root), &root_key.signer(HashAlg::Sha256))
                .unwrap_err()
                .field(),
            "ekus"
        );
        let mut bad = p.clone();
        bad.not_after = bad.not_before;
        assert_eq!(
            issue(&bad, Some(&root), &root_key.signer(HashAlg::Sha256))
                .unwrap_err()
                .field(),
            "validity"
        );
        let mut bad = p.clone();
        bad.sans = vec![San::Dns("bücher.test".into())];
        assert_eq!(
            issue(&bad, Some(&root), &root_key.signer(HashAlg::Sha256))
                .unwrap_err()
                .field(),
            "sans"
        );
        let mut bad = p;
        bad.spki_der = vec![0x30, 0x00];
        assert_eq!(
            issue(&bad, Some(&root), &root_key.signer(HashAlg::Sha256))
                .unwrap_err()
                .field(),
            "public_key"
        );
        assert_eq!(parse("upload", b"junk").unwrap_err().field(), "upload");
        assert_eq!(parse("upload", b"\x30\x00").unwrap_err().field(), "upload");
    }
}
