//! PKCS#10 certificate requests: parsing PEM or DER, verifying the self-signature over the
//! bytes as received, and extracting the subject, requested SANs and key.

use crate::alg;
use crate::cert::{San, enc_err, general_name};
use crate::key::{PrivateKey, Signer};
use crate::{X509Error, name, pem};
use der::asn1::{
    AnyRef, BitString, BitStringRef, ObjectIdentifier as Oid, OctetString, OctetStringRef,
    SetOfVec, Utf8StringRef,
};
use der::{Decode, Encode, Reader, Sequence, SliceReader, TagMode, TagNumber, Tagged};
use fleetpki_model::template::HashAlg;
use fleetpki_model::template::KeyInfo;
use spki::AlgorithmIdentifierRef;
use x509_cert::attr::Attribute;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};

const EXTENSION_REQUEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.14");
/// Microsoft's pre-standard extension request attribute, still sent by some Windows clients.
const MS_CERT_EXTENSIONS: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.1.14");
const CHALLENGE_PASSWORD: Oid = Oid::new_unwrap("1.2.840.113549.1.9.7");
const SAN: Oid = Oid::new_unwrap("2.5.29.17");
pub(crate) const UPN: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.20.2.3");

/// A parsed request whose signature has been verified.
#[derive(Clone, Debug)]
pub struct Csr {
    /// The request's DER (as received, PEM armour removed).
    pub der: Vec<u8>,
    pub subject: Name,
    /// RFC 4514 form of `subject`.
    pub subject_text: String,
    pub common_name: Option<String>,
    /// SAN dNSName entries from the extensionRequest attribute.
    pub dns_names: Vec<String>,
    /// Every other SAN entry, described ("IP 10.0.0.1", "email a@b", "URI ...", "UPN u@d",
    /// "otherName 1.3...").
    pub other_sans: Vec<String>,
    pub key: KeyInfo,
    pub spki_der: Vec<u8>,
    /// e.g. "ecdsa-with-SHA256".
    pub signature_algorithm: String,
}

/// The pieces of a request as borrowed slices of its DER.
struct Parts<'a> {
    info: &'a [u8],
    subject: Name,
    spki: &'a [u8],
    attributes: Vec<AttributeRef<'a>>,
    algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
}

fn split(der: &[u8]) -> Result<Parts<'_>, X509Error> {
    let bad = |e: der::Error| X509Error::der("csr", "PKCS#10 certification request", e);
    let mut outer = SliceReader::new(der).map_err(bad)?;
    let (info, algorithm, signature) = outer
        .sequence(|r| {
            // The signature covers CertificationRequestInfo exactly as sent: keep its bytes.
            let info = r.tlv_bytes()?;
            Ok::<_, der::Error>((
                info,
                AlgorithmIdentifierRef::decode(r)?,
                BitStringRef::decode(r)?,
            ))
        })
        .map_err(bad)?;
    outer.finish().map_err(bad)?;
    let mut inner = SliceReader::new(info).map_err(bad)?;
    let (version, subject, spki, attributes) = inner
        .sequence(|r| {
            let version = u8::decode(r)?;
            let subject = Name::decode(r)?;
            let spki = r.tlv_bytes()?;
            // attributes [0] IMPLICIT SET OF Attribute; some old encoders omit it entirely.
            let attributes = r
                .context_specific::<Vec<AttributeRef<'_>>>(TagNumber(0), TagMode::Implicit)?
                .unwrap_or_default();
            Ok::<_, der::Error>((version, subject, spki, attributes))
        })
        .map_err(bad)?;
    inner.finish().map_err(bad)?;
    if version != 0 {
        return Err(X509Error::malformed(
            "csr",
            format!("version {version} is not PKCS#10 v1 (0)"),
        ));
    }
    Ok(Parts {
        info,
        subject,
        spki,
        attributes,
        algorithm,
        signature,
    })
}

/// Parses PEM ("CERTIFICATE REQUEST" or "NEW CERTIFICATE REQUEST") or DER and verifies the
/// self-signature with aws-lc-rs: ECDSA P-256/P-384/P-521 with SHA-256/384/512, RSA PKCS#1 v1.5
/// and PSS with SHA-256/384/512, Ed25519. SHA-1/MD5 are refused on `csr.signature_algorithm`,
/// unsupported keys on `csr.public_key`, a bad signature on `csr.signature`, malformed input on
/// `csr`. Extensions other than SAN (KU, EKU, Microsoft template, ...) are tolerated.
pub fn parse(input: &[u8]) -> Result<Csr, X509Error> {
    let mut blocks = pem::decode_labels(
        "csr",
        input,
        &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
    )?;
    if blocks.len() != 1 {
        return Err(X509Error::malformed(
            "csr",
            format!("expected one certificate request, found {}", blocks.len()),
        ));
    }
    let (_, der) = blocks.remove(0);
    parse_der(der)
}

fn parse_der(der: Vec<u8>) -> Result<Csr, X509Error> {
    let p = split(&der)?;
    // Key before algorithm, so a DSA request is reported as an unsupported key.
    let key = alg::parse_spki("csr.public_key", p.spki)?;
    let sig_alg = alg::signature_alg("csr", &p.algorithm)?;
    let signature = p
        .signature
        .as_bytes()
        .ok_or_else(|| X509Error::malformed("csr", "the signature BIT STRING has unused bits"))?;
    alg::verify(
        "csr",
        &key,
        sig_alg,
        p.info,
        signature,
        "the signature does not verify against the request's public key",
    )?;

    let mut dns_names = Vec::new();
    let mut other_sans = Vec::new();
    for ext in extension_refs(&p.attributes)? {
        if ext.extn_id != SAN {
            continue;
        }
        let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
            .map_err(|e| X509Error::der("csr", "subjectAltName", e))?;
        for gn in san.0 {
            match gn {
                GeneralName::DnsName(d) => dns_names.push(d.to_string()),
                other => other_sans.push(describe_general_name(&other, " ")),
            }
        }
    }
    Ok(Csr {
        subject_text: name::to_string(&p.subject),
        common_name: name::common_name(&p.subject),
        dns_names,
        other_sans,
        key: key.info,
        spki_der: p.spki.to_vec(),
        signature_algorithm: alg::signature_alg_name(&p.algorithm.oid),
        subject: p.subject,
        der,
    })
}

/// An attribute with its SET of values left encoded: only two attributes are ever read.
#[derive(Sequence)]
struct AttributeRef<'a> {
    oid: Oid,
    values: AnyRef<'a>,
}

impl<'a> AttributeRef<'a> {
    fn values(&self) -> impl Iterator<Item = Result<AnyRef<'a>, der::Error>> + 'a {
        let mut r = SliceReader::new(self.values.value()).ok();
        std::iter::from_fn(move || {
            let reader = r.as_mut()?;
            if reader.is_finished() {
                return None;
            }
            let item = AnyRef::decode(reader);
            if item.is_err() {
                r = None;
            }
            Some(item)
        })
    }
}

/// An extension borrowed from the request; only SAN is decoded further.
#[derive(Sequence)]
struct ExtensionRef<'a> {
    extn_id: Oid,
    #[asn1(default = "Default::default")]
    critical: bool,
    extn_value: &'a OctetStringRef,
}

/// Every extension in the extensionRequest attributes (standard and Microsoft's).
fn extension_refs<'a>(attributes: &[AttributeRef<'a>]) -> Result<Vec<ExtensionRef<'a>>, X509Error> {
    let bad = |e: der::Error| X509Error::der("csr", "extension request", e);
    let mut out = Vec::new();
    for attr in attributes
        .iter()
        .filter(|a| a.oid == EXTENSION_REQUEST || a.oid == MS_CERT_EXTENSIONS)
    {
        for value in attr.values() {
            let exts: Vec<ExtensionRef<'a>> = value.map_err(bad)?.decode_as().map_err(bad)?;
            out.extend(exts);
        }
    }
    Ok(out)
}

impl Csr {
    /// The challengePassword attribute (SCEP), if present and a string.
    pub fn challenge_password(&self) -> Option<String> {
        let p = split(&self.der).ok()?;
        p.attributes
            .iter()
            .filter(|a| a.oid == CHALLENGE_PASSWORD)
            .flat_map(|a| a.values())
            .find_map(|v| v.ok().and_then(|v| name::text_of(v.tag(), v.value())))
    }

    /// Every extension the request asks for (SAN, KU, EKU, Microsoft template, ...), as sent.
    pub fn requested_extensions(&self) -> Result<Vec<Extension>, X509Error> {
        let p = split(&self.der)?;
        extension_refs(&p.attributes)?
            .into_iter()
            .map(|e| {
                Ok(Extension {
                    extn_id: e.extn_id,
                    critical: e.critical,
                    extn_value: OctetString::new(e.extn_value.as_bytes())
                        .map_err(enc_err("csr"))?,
                })
            })
            .collect()
    }
}

/// [`create`] with a software key and its natural hash (SHA-256 for RSA; P-256, P-384 and
/// Ed25519 imply theirs): the request DER.
pub fn build(key: &PrivateKey, subject: &Name, sans: &[San]) -> Result<Vec<u8>, X509Error> {
    create(subject, sans, &key.signer(HashAlg::Sha256))
}

/// Builds and signs a PKCS#10 request, as an agent sends it: `subject`, the `sans` in an
/// extensionRequest attribute (omitted when empty), signed with `signer`'s key.
pub fn create(subject: &Name, sans: &[San], signer: &dyn Signer) -> Result<Vec<u8>, X509Error> {
    create_with_challenge(subject, sans, None, signer)
}

/// [`create`] with a SCEP challengePassword attribute (RFC 2985 5.4.1; a PrintableString
/// when the text allows it, as most SCEP clients send it, else a UTF8String).
pub fn create_with_challenge(
    subject: &Name,
    sans: &[San],
    challenge: Option<&str>,
    signer: &dyn Signer,
) -> Result<Vec<u8>, X509Error> {
    let spki_der = signer.public_key_der();
    let public_key = spki::SubjectPublicKeyInfoOwned::from_der(&spki_der)
        .map_err(|e| X509Error::der("public_key", "SubjectPublicKeyInfo", e))?;
    let mut attributes = SetOfVec::new();
    if !sans.is_empty() {
        let names = sans
            .iter()
            .map(general_name)
            .collect::<Result<Vec<_>, _>>()?;
        let san = SubjectAltName(names).to_der().map_err(enc_err("csr"))?;
        let ext = Extension {
            extn_id: SAN,
            critical: subject.is_empty(),
            extn_value: OctetString::new(san).map_err(enc_err("csr"))?,
        };
        let attr = Attribute::try_from(ExtensionReq(vec![ext])).map_err(enc_err("csr"))?;
        attributes.insert(attr).map_err(enc_err("csr"))?;
    }
    if let Some(text) = challenge {
        let value = match der::asn1::PrintableStringRef::new(text) {
            Ok(p) => der::Any::encode_from(&p),
            Err(_) => der::Any::encode_from(&Utf8StringRef::new(text).map_err(enc_err("csr"))?),
        }
        .map_err(enc_err("csr"))?;
        let mut values = SetOfVec::new();
        values.insert(value).map_err(enc_err("csr"))?;
        let attr = Attribute {
            oid: CHALLENGE_PASSWORD,
            values,
        };
        attributes.insert(attr).map_err(enc_err("csr"))?;
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.clone(),
        public_key,
        attributes,
    };
    let info_der = info.to_der().map_err(enc_err("csr"))?;
    let signature = BitString::from_bytes(&signer.sign(&info_der)?).map_err(enc_err("csr"))?;
    CertReq {
        info,
        algorithm: signer.signature_algorithm(),
        signature,
    }
    .to_der()
    .map_err(enc_err("csr"))
}

/// "IP 10.0.0.1", "email a@b", "URI x", "UPN u@d", "otherName 1.2.3", "dirName CN=x", with
/// `sep` between kind and value (" " for CSRs, ":" for certificates).
pub(crate) fn describe_general_name(gn: &GeneralName, sep: &str) -> String {
    match gn {
        GeneralName::DnsName(d) => format!("DNS{sep}{d}"),
        GeneralName::Rfc822Name(e) => format!("email{sep}{e}"),
        GeneralName::UniformResourceIdentifier(u) => format!("URI{sep}{u}"),
        GeneralName::IpAddress(ip) => {
            let b = ip.as_bytes();
            let text = match b.len() {
                4 => <[u8; 4]>::try_from(b)
                    .map(|a| std::net::IpAddr::from(a).to_string())
                    .ok(),
                16 => <[u8; 16]>::try_from(b)
                    .map(|a| std::net::IpAddr::from(a).to_string())
                    .ok(),
                _ => None,
            };
            format!(
                "IP{sep}{}",
                text.unwrap_or_else(|| format!("#{}", hex::encode(b)))
            )
        }
        GeneralName::OtherName(o) if o.type_id == UPN => match Utf8StringRef::try_from(&o.value) {
            Ok(s) => format!("UPN{sep}{}", s.as_str()),
            Err(_) => format!("otherName{sep}{}", o.type_id),
        },
        GeneralName::OtherName(o) => format!("otherName{sep}{}", o.type_id),
        GeneralName::DirectoryName(n) => format!("dirName{sep}{}", name::to_string(n)),
        GeneralName::RegisteredId(oid) => format!("registeredID{sep}{oid}"),
        GeneralName::EdiPartyName(_) => format!("ediPartyName{sep}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyType;
    use fleetpki_model::template::KeyFamily;

    fn request(kt: KeyType, hash: HashAlg, sans: &[San]) -> (PrivateKey, Vec<u8>) {
        let key = PrivateKey::generate(kt).unwrap();
        let subject = name::build(&[("CN", "pc1.fleet.test"), ("O", "Contoso")]).unwrap();
        let der = create(&subject, sans, &key.signer(hash)).unwrap();
        (key, der)
    }

    #[test]
    fn challenge_password_round_trips_printable_and_utf8() {
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let subject = name::build(&[("CN", "dev.fleet.test")]).unwrap();
        for (challenge, tag) in [
            ("static-Secret-1", der::Tag::PrintableString),
            ("sécret_1", der::Tag::Utf8String),
        ] {
            let der = create_with_challenge(
                &subject,
                &[San::Dns("dev.fleet.test".into())],
                Some(challenge),
                &key.signer(HashAlg::Sha256),
            )
            .unwrap();
            let csr = parse(&der).unwrap();
            assert_eq!(csr.challenge_password().as_deref(), Some(challenge));
            assert_eq!(csr.dns_names, vec!["dev.fleet.test"]);
            let attr = split(&der)
                .unwrap()
                .attributes
                .into_iter()
                .find(|a| a.oid == CHALLENGE_PASSWORD)
                .unwrap();
            let v = attr.values().next().unwrap().unwrap();
            assert_eq!(v.tag(), tag, "{challenge}");
        }
        let plain = create(&subject, &[], &key.signer(HashAlg::Sha256)).unwrap();
        assert_eq!(parse(&plain).unwrap().challenge_password(), None);
    }

    #[test]
    fn create_then_parse_every_key_type() {
        let sans = [
            San::Dns("pc1.fleet.test".into()),
            San::Ip("10.0.0.1".parse().unwrap()),
            San::Email("a@b.test".into()),
            San::Upn("pc1$@fleet.test".into()),
            San::Dns("alt.fleet.test".into()),
        ];
        for kt in KeyType::ALL {
            let (key, der) = request(kt, HashAlg::Sha256, &sans);
            let csr = parse(pem::encode("CERTIFICATE REQUEST", &der).as_bytes()).unwrap();
            assert_eq!(csr.der, der);
            assert_eq!(csr.subject_text, "CN=pc1.fleet.test,O=Contoso");
            assert_eq!(csr.common_name.as_deref(), Some("pc1.fleet.test"));
            assert_eq!(csr.dns_names, vec!["pc1.fleet.test", "alt.fleet.test"]);
            assert_eq!(
                csr.other_sans,
                vec!["IP 10.0.0.1", "email a@b.test", "UPN pc1$@fleet.test"]
            );
            assert_eq!(csr.key, kt.info());
            assert_eq!(csr.spki_der, key.public_key_der());
            let expected = match kt {
                KeyType::EcdsaP256 => "ecdsa-with-SHA256",
                KeyType::EcdsaP384 => "ecdsa-with-SHA384",
                KeyType::Ed25519 => "Ed25519",
                _ => "sha256WithRSAEncryption",
            };
            assert_eq!(csr.signature_algorithm, expected);
            assert_eq!(csr.requested_extensions().unwrap().len(), 1);
            assert_eq!(csr.challenge_password(), None);
        }
    }

    #[test]
    fn rsa_hashes_and_new_label_and_der() {
        let (_, der) = request(KeyType::Rsa2048, HashAlg::Sha512, &[]);
        let csr = parse(pem::encode("NEW CERTIFICATE REQUEST", &der).as_bytes()).unwrap();
        assert_eq!(csr.signature_algorithm, "sha512WithRSAEncryption");
        assert_eq!(
            csr.key,
            KeyInfo {
                family: KeyFamily::Rsa,
                bits: 2048
            }
        );
        assert!(csr.dns_names.is_empty() && csr.other_sans.is_empty());
        assert_eq!(parse(&der).unwrap().der, der);
    }

    #[test]
    fn tampered_request_fails_signature() {
        let (_, mut der) = request(
            KeyType::EcdsaP256,
            HashAlg::Sha256,
            &[San::Dns("a.test".into())],
        );
        // Flip a byte of the CN inside CertificationRequestInfo.
        let pos = der.windows(3).position(|w| w == b"pc1").unwrap();
        der[pos] = b'x';
        let e = parse(&der).unwrap_err();
        assert_eq!(e.field(), "csr.signature");
        assert_eq!(
            e.to_string(),
            "csr.signature: the signature does not verify against the request's public key"
        );
    }

    #[test]
    fn key_from_another_request_fails_signature() {
        // Ed25519 signatures have a fixed length, so the swap keeps the structure intact.
        let (_, a) = request(KeyType::Ed25519, HashAlg::Sha256, &[]);
        let (_, b) = request(KeyType::Ed25519, HashAlg::Sha256, &[]);
        let sig_b = split(&b).unwrap().signature.raw_bytes().to_vec();
        let mut mixed = a.clone();
        let start = mixed.len() - sig_b.len();
        mixed[start..].copy_from_slice(&sig_b);
        assert_eq!(parse(&mixed).unwrap_err().field(), "csr.signature");
    }

    #[test]
    fn malformed_input_is_field_csr() {
        for bad in [
            &b""[..],
            b"garbage",
            b"\x30\x03\x02\x01\x00",
            b"-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            assert_eq!(parse(bad).unwrap_err().field(), "csr", "{bad:?}");
        }
        let (_, der) = request(KeyType::EcdsaP256, HashAlg::Sha256, &[]);
        let two = format!(
            "{}{}",
            pem::encode("CERTIFICATE REQUEST", &der),
            pem::encode("CERTIFICATE REQUEST", &der)
        );
        assert_eq!(parse(two.as_bytes()).unwrap_err().field(), "csr");
        let mut trailing = der.clone();
        trailing.push(0);
        assert_eq!(parse(&trailing).unwrap_err().field(), "csr");
    }

    #[test]
    fn empty_subject_with_san() {
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let der = build(&key, &Name::default(), &[San::Dns("only.san.test".into())]).unwrap();
        let csr = parse(&der).unwrap();
        assert_eq!(csr.spki_der, key.public_key_der());
        assert_eq!(csr.subject_text, "");
        assert_eq!(csr.common_name, None);
        assert_eq!(csr.dns_names, vec!["only.san.test"]);
        assert!(csr.requested_extensions().unwrap()[0].critical);
    }
}
