//! EST (RFC 7030) encodings: the base64 PKCS#10 request body, base64 answers, certs-only CMS
//! (a degenerate RFC 5652 SignedData carrying certificates) and the CSR attributes a server
//! advertises for a template's keys.

use crate::X509Error;
use crate::csr::{self, Csr};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use der::asn1::{ObjectIdentifier as Oid, SetOfVec};
use der::{Any, Encode};
use fleetpki_model::template::{HashAlg, KeyFamily, KeyRule};
use x509_cert::attr::Attribute;

/// Standard alphabet; padding optional on input (some clients drop it), written on output.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes an EST body: base64 (RFC 7030 §4.2.1, RFC 8951: whatever
/// `Content-Transfer-Encoding` says), with line breaks and other whitespace anywhere. Errors
/// name `body` and say what was wrong: empty, PEM armour, a byte outside the alphabet (with
/// its offset), bad length or padding.
pub fn decode_body(body: &[u8]) -> Result<Vec<u8>, X509Error> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(X509Error::malformed(
            "body",
            "empty: EST wants the base64 DER of a PKCS#10 request",
        ));
    }
    if compact.starts_with(b"-----") {
        return Err(X509Error::malformed(
            "body",
            "PEM armour: send the base64 DER without the -----BEGIN/END----- lines (RFC 7030 §4.2.1)",
        ));
    }
    if let Some(pos) = body
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || b"+/=".contains(b) || b.is_ascii_whitespace()))
    {
        return Err(X509Error::malformed(
            "body",
            format!(
                "not base64: byte 0x{:02x} at offset {pos} is outside the base64 alphabet",
                body[pos]
            ),
        ));
    }
    B64.decode(&compact)
        .map_err(|e| X509Error::malformed("body", format!("not base64: {e}")))
}

/// Decodes an EST `simpleenroll`/`simplereenroll`/`serverkeygen` body and parses the PKCS#10
/// request in it, signature verified ([`csr::parse`]). Never panics, whatever the input.
pub fn parse_csr_body(body: &[u8]) -> Result<Csr, X509Error> {
    let der = decode_body(body)?;
    if der.first() != Some(&0x30) {
        return Err(X509Error::malformed(
            "body",
            "the base64 decodes to bytes that are not DER: a PKCS#10 request is a SEQUENCE (0x30)",
        ));
    }
    csr::parse(&der)
}

/// Base64 with 64-character lines, as EST answers are sent (`Content-Transfer-Encoding:
/// base64`).
pub fn encode_base64(der: &[u8]) -> String {
    let text = B64.encode(der);
    let mut out = String::with_capacity(text.len() + text.len() / 64 + 1);
    for chunk in text.as_bytes().chunks(64) {
        // The alphabet is ASCII, so every chunk is a string.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// A certs-only CMS message (`application/pkcs7-mime; smime-type=certs-only`): SignedData with
/// no content and no signers, carrying `certs` (DER); the same builder as SCEP's GetCACert.
pub fn certs_only(certs: &[&[u8]]) -> Result<Vec<u8>, X509Error> {
    crate::scep::certs_only(certs, &[])
}

const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: Oid = Oid::new_unwrap("1.3.101.112");

fn ecdsa_with(hash: HashAlg) -> Oid {
    match hash {
        HashAlg::Sha256 => Oid::new_unwrap("1.2.840.10045.4.3.2"),
        HashAlg::Sha384 => Oid::new_unwrap("1.2.840.10045.4.3.3"),
        HashAlg::Sha512 => Oid::new_unwrap("1.2.840.10045.4.3.4"),
    }
}

fn rsa_with(hash: HashAlg) -> Oid {
    match hash {
        HashAlg::Sha256 => Oid::new_unwrap("1.2.840.113549.1.1.11"),
        HashAlg::Sha384 => Oid::new_unwrap("1.2.840.113549.1.1.12"),
        HashAlg::Sha512 => Oid::new_unwrap("1.2.840.113549.1.1.13"),
    }
}

/// The CsrAttrs (RFC 7030 §4.5.2, with the key attributes of RFC 9908) for a template's key
/// rules and hash: the signature algorithm to sign the request with, for each key family the
/// template accepts; `id-ecPublicKey` with the curves, `rsaEncryption` with the smallest
/// accepted modulus size; `id-Ed25519`. DER, to be sent base64.
pub fn csr_attrs(keys: &[KeyRule], hash: HashAlg) -> Result<Vec<u8>, X509Error> {
    let enc = |e: der::Error| X509Error::internal("csrattrs", e.to_string());
    let mut items: Vec<Any> = Vec::new();
    let oid = |o: &Oid| Any::encode_from(o).map_err(enc);
    let attribute = |o: Oid, values: Vec<Any>| -> Result<Any, X509Error> {
        let attr = Attribute {
            oid: o,
            values: SetOfVec::try_from(values).map_err(enc)?,
        };
        Any::encode_from(&attr).map_err(enc)
    };
    for rule in keys {
        match rule.family {
            KeyFamily::Ecdsa => {
                let curves: Vec<Any> = [(256, P256), (384, P384)]
                    .iter()
                    .filter(|(bits, _)| (rule.min_bits..=rule.max_bits).contains(bits))
                    .map(|(_, c)| oid(c))
                    .collect::<Result<_, _>>()?;
                if curves.is_empty() {
                    continue;
                }
                items.push(oid(&ecdsa_with(hash))?);
                items.push(attribute(EC_PUBLIC_KEY, curves)?);
            }
            KeyFamily::Rsa => {
                items.push(oid(&rsa_with(hash))?);
                let bits = Any::encode_from(&rule.min_bits.max(2048)).map_err(enc)?;
                items.push(attribute(RSA_ENCRYPTION, vec![bits])?);
            }
            KeyFamily::Ed25519 => items.push(oid(&ED25519)?),
        }
    }
    items.to_der().map_err(enc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyType, PrivateKey};
    use crate::name;
    use cms::content_info::ContentInfo;
    use der::{Decode, Encode};

    fn csr_der() -> Vec<u8> {
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let subject = name::build(&[("CN", "dev1")]).unwrap();
        csr::build(&key, &subject, &[]).unwrap()
    }

    #[test]
    fn base64_with_line_breaks_and_without_padding() {
        let der = csr_der();
        let wrapped = encode_base64(&der);
        assert!(wrapped.lines().all(|l| l.len() <= 64));
        assert_eq!(parse_csr_body(wrapped.as_bytes()).unwrap().der, der);
        let crlf = wrapped.replace('\n', "\r\n");
        assert_eq!(parse_csr_body(crlf.as_bytes()).unwrap().der, der);
        let unpadded = B64.encode(&der).trim_end_matches('=').to_string();
        assert_eq!(parse_csr_body(unpadded.as_bytes()).unwrap().der, der);
    }

    #[test]
    fn bad_bodies_name_what_is_wrong() {
        let der = csr_der();
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (b"".to_vec(), "body", "empty"),
            (b" \r\n".to_vec(), "body", "empty"),
            (
                crate::pem::encode("CERTIFICATE REQUEST", &der).into_bytes(),
                "body",
                "PEM armour",
            ),
            (der.clone(), "body", "outside the base64 alphabet"),
            (b"MIIB*xyz".to_vec(), "body", "byte 0x2a at offset 4"),
            (b"QUJD\nR".to_vec(), "body", "not base64"),
            (
                encode_base64(b"hello, not DER").into_bytes(),
                "body",
                "not DER",
            ),
            (
                encode_base64(&[0x30, 0x03, 0x02, 0x01]).into_bytes(),
                "csr",
                "",
            ),
        ];
        for (body, field, words) in cases {
            let e = parse_csr_body(&body).unwrap_err();
            assert_eq!(e.field(), field, "{e}");
            assert!(e.rule().contains(words), "{e}");
        }
        let mut tampered = der.clone();
        let pos = tampered.windows(4).position(|w| w == b"dev1").unwrap();
        tampered[pos] = b'x';
        let e = parse_csr_body(encode_base64(&tampered).as_bytes()).unwrap_err();
        assert_eq!(e.field(), "csr.signature");
    }

    #[test]
    fn certs_only_carries_every_certificate() {
        let (_, root, _, int) = crate::cert::tests::ca_pair();
        let (root, int) = (root.to_der().unwrap(), int.to_der().unwrap());
        let cms = certs_only(&[&int, &root]).unwrap();
        let ci = ContentInfo::from_der(&cms).unwrap();
        assert_eq!(ci.content_type, const_oid::db::rfc5911::ID_SIGNED_DATA);
        let sd: cms::signed_data::SignedData = ci.content.decode_as().unwrap();
        assert!(sd.signer_infos.0.is_empty());
        let mut got: Vec<Vec<u8>> = sd
            .certificates
            .unwrap()
            .0
            .iter()
            .map(|c| match c {
                cms::cert::CertificateChoices::Certificate(c) => c.to_der().unwrap(),
                _ => panic!("not a certificate"),
            })
            .collect();
        got.sort();
        let mut want = vec![int, root];
        want.sort();
        assert_eq!(got, want);
        assert!(certs_only(&[b"junk"]).is_err());
    }

    #[test]
    fn csr_attrs_follow_the_key_rules() {
        let rules = [
            KeyRule {
                family: KeyFamily::Ecdsa,
                min_bits: 256,
                max_bits: 256,
            },
            KeyRule {
                family: KeyFamily::Rsa,
                min_bits: 3072,
                max_bits: 4096,
            },
        ];
        let der = csr_attrs(&rules, HashAlg::Sha256).unwrap();
        let items: Vec<Any> = Vec::from_der(&der).unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(
            items[0].decode_as::<Oid>().unwrap(),
            ecdsa_with(HashAlg::Sha256)
        );
        let ec: Attribute = items[1].decode_as().unwrap();
        assert_eq!(ec.oid, EC_PUBLIC_KEY);
        assert_eq!(ec.values.len(), 1);
        assert_eq!(ec.values.get(0).unwrap().decode_as::<Oid>().unwrap(), P256);
        let rsa: Attribute = items[3].decode_as().unwrap();
        assert_eq!(rsa.oid, RSA_ENCRYPTION);
        assert_eq!(rsa.values.get(0).unwrap().decode_as::<u32>().unwrap(), 3072);
    }
}
