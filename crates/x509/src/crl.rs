//! Certificate revocation lists: signing full and delta v2 CRLs for an issuer, and reading and
//! verifying them back.

use crate::cert::{enc_err, from_time, is_key_of, issuer_key_id, to_time, verify_raw};
use crate::key::Signer;
use crate::{X509Error, pem};
use der::asn1::{BitString, BitStringRef, OctetString, Uint};
use der::oid::AssociatedOid;
use der::{Decode, Encode, Reader, SliceReader};
use fleetpki_model::UnixTime;
use fleetpki_model::record::RevocationReason;
use spki::AlgorithmIdentifierRef;
use x509_cert::Certificate;
use x509_cert::certificate::Rfc5280;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, BaseCrlNumber, CrlNumber, CrlReason};
use x509_cert::serial_number::SerialNumber;

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlEntry {
    /// DER INTEGER content, as stored for the certificate.
    pub serial: Vec<u8>,
    pub revoked_at: UnixTime,
    pub reason: RevocationReason,
}

/// What a CRL says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlParams {
    pub number: i64,
    pub this_update: UnixTime,
    pub next_update: UnixTime,
    pub entries: Vec<CrlEntry>,
    /// Some(n): a delta CRL over base CRL number n (critical DeltaCRLIndicator).
    pub delta_base: Option<i64>,
}

fn ext<T: Encode + AssociatedOid>(critical: bool, value: &T) -> Result<Extension, X509Error> {
    let der = value.to_der().map_err(enc_err("crl"))?;
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(der).map_err(enc_err("crl"))?,
    })
}

fn crl_number(field: &str, n: i64) -> Result<Uint, X509Error> {
    let n = u64::try_from(n)
        .map_err(|_| X509Error::refused(field, format!("{n}: CRL numbers are non-negative")))?;
    Uint::try_from(n).map_err(enc_err(field))
}

pub(crate) fn reason(r: RevocationReason) -> Option<CrlReason> {
    Some(match r {
        // RFC 5280 5.3.1: the reason code unspecified SHOULD be absent, not encoded.
        RevocationReason::Unspecified => return None,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::RemoveFromCrl => CrlReason::RemoveFromCRL,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => CrlReason::AaCompromise,
    })
}

/// v2 CRL signed by `issuer`: CRLNumber, AKI = the issuer's SKI (x509-cert's CrlBuilder would
/// copy the issuer certificate's own AKI, which names the issuer's issuer, so the TBS is built
/// here), reasonCode entry extension except for `unspecified`, UTCTime before 2050 and
/// GeneralizedTime after. An empty list omits revokedCertificates, as RFC 5280 requires.
pub fn sign(
    params: &CrlParams,
    issuer: &Certificate,
    signer: &dyn Signer,
) -> Result<Vec<u8>, X509Error> {
    if !is_key_of(issuer, &signer.public_key_der()) {
        return Err(X509Error::refused(
            "issuer",
            "the signing key is not the issuer certificate's key",
        ));
    }
    if params.next_update <= params.this_update {
        return Err(X509Error::refused(
            "crl.next_update",
            "nextUpdate must be later than thisUpdate",
        ));
    }
    let mut crl_extensions = vec![
        ext(
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(
                    OctetString::new(issuer_key_id(issuer)?).map_err(enc_err("crl"))?,
                ),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
        ext(false, &CrlNumber(crl_number("crl.number", params.number)?))?,
    ];
    if let Some(base) = params.delta_base {
        if base >= params.number {
            return Err(X509Error::refused(
                "crl.delta_base",
                "a delta CRL's base CRL number must be lower than its own number",
            ));
        }
        crl_extensions.push(ext(
            true,
            &BaseCrlNumber(crl_number("crl.delta_base", base)?),
        )?);
    }
    let mut revoked = Vec::with_capacity(params.entries.len());
    for e in &params.entries {
        let serial = SerialNumber::<Rfc5280>::new(&e.serial).map_err(|err| {
            X509Error::refused(
                "crl.entries.serial",
                format!("{}: {err}", crate::serial::to_hex(&e.serial)),
            )
        })?;
        let crl_entry_extensions = match reason(e.reason) {
            Some(r) => Some(vec![ext(false, &r)?]),
            None => None,
        };
        revoked.push(RevokedCert {
            serial_number: serial,
            revocation_date: to_time("crl.entries.revoked_at", e.revoked_at)?,
            crl_entry_extensions,
        });
    }
    let alg = signer.signature_algorithm();
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: alg.clone(),
        issuer: issuer.tbs_certificate().subject().clone(),
        this_update: to_time("crl.this_update", params.this_update)?,
        next_update: Some(to_time("crl.next_update", params.next_update)?),
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(crl_extensions),
    };
    let tbs_der = tbs.to_der().map_err(enc_err("crl"))?;
    let signature = BitString::from_bytes(&signer.sign(&tbs_der)?).map_err(enc_err("crl"))?;
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: alg,
        signature,
    }
    .to_der()
    .map_err(enc_err("crl"))
}

/// Parses a CRL (DER, or PEM "X509 CRL"); `field` names the input.
pub fn parse(field: &str, input: &[u8]) -> Result<CertificateList, X509Error> {
    let mut blocks = pem::decode_all(field, input, "X509 CRL")?;
    if blocks.len() != 1 {
        return Err(X509Error::malformed(
            field,
            format!("expected one CRL, found {}", blocks.len()),
        ));
    }
    CertificateList::from_der(&blocks.remove(0)).map_err(|e| X509Error::der(field, "CRL", e))
}

/// A CRL's essentials for display and checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlInfo {
    pub number: Option<Vec<u8>>,
    pub this_update: UnixTime,
    pub next_update: Option<UnixTime>,
    /// Serial (DER content) and revocation time of every entry.
    pub revoked: Vec<(Vec<u8>, UnixTime)>,
    pub delta_base: Option<Vec<u8>>,
}

pub fn info(crl: &CertificateList) -> Result<CrlInfo, X509Error> {
    let tbs = &crl.tbs_cert_list;
    let find = |oid| {
        tbs.crl_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == oid)
    };
    let uint =
        |e: &Extension| Uint::from_der(e.extn_value.as_bytes()).map(|u| u.as_bytes().to_vec());
    let bad = |e: der::Error| X509Error::der("crl", "CRL extension", e);
    Ok(CrlInfo {
        number: find(CrlNumber::OID).map(uint).transpose().map_err(bad)?,
        this_update: from_time(&tbs.this_update),
        next_update: tbs.next_update.as_ref().map(from_time),
        revoked: tbs
            .revoked_certificates
            .iter()
            .flatten()
            .map(|r| {
                (
                    r.serial_number.as_bytes().to_vec(),
                    from_time(&r.revocation_date),
                )
            })
            .collect(),
        delta_base: find(BaseCrlNumber::OID)
            .map(uint)
            .transpose()
            .map_err(bad)?,
    })
}

/// Verifies that the CRL DER was signed by `issuer`'s key (SHA-2 only, as for certificates).
pub fn verify_signed_by(crl_der: &[u8], issuer: &Certificate) -> Result<(), X509Error> {
    let bad = |e: der::Error| X509Error::der("crl", "CRL", e);
    let mut r = SliceReader::new(crl_der).map_err(bad)?;
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
    let sig = sig
        .as_bytes()
        .ok_or_else(|| X509Error::malformed("crl", "the signature BIT STRING has unused bits"))?;
    verify_raw(tbs, &alg, sig, issuer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::tests::{NOW, ca_pair};
    use fleetpki_model::template::HashAlg;
    use x509_cert::ext::pkix::SubjectKeyIdentifier;

    #[test]
    fn full_crl_names_the_issuers_own_key() {
        let (_, root, int_key, int) = ca_pair();
        let entries = vec![
            CrlEntry {
                serial: vec![0x01, 0x02],
                revoked_at: NOW - 10,
                reason: RevocationReason::KeyCompromise,
            },
            CrlEntry {
                serial: vec![0x00, 0x80],
                revoked_at: NOW - 5,
                reason: RevocationReason::Unspecified,
            },
        ];
        let p = CrlParams {
            number: 7,
            this_update: NOW,
            next_update: NOW + 86_400,
            entries,
            delta_base: None,
        };
        let der = sign(&p, &int, &int_key.signer(HashAlg::Sha256)).unwrap();
        verify_signed_by(&der, &int).unwrap();
        assert_eq!(
            verify_signed_by(&der, &root).unwrap_err().field(),
            "certificate.signature"
        );
        let crl = parse("crl", pem::encode("X509 CRL", &der).as_bytes()).unwrap();
        let tbs = &crl.tbs_cert_list;
        assert_eq!(tbs.version, x509_cert::Version::V2);
        let exts = tbs.crl_extensions.as_ref().unwrap();
        let aki = exts
            .iter()
            .find(|e| e.extn_id == AuthorityKeyIdentifier::OID)
            .unwrap();
        let aki = AuthorityKeyIdentifier::from_der(aki.extn_value.as_bytes()).unwrap();
        let ski = int
            .tbs_certificate()
            .get_extension::<SubjectKeyIdentifier>()
            .unwrap()
            .unwrap()
            .1;
        assert_eq!(
            aki.key_identifier.unwrap().as_bytes(),
            ski.0.as_bytes(),
            "AKI is the intermediate's SKI, not the root's"
        );
        let revoked = tbs.revoked_certificates.as_ref().unwrap();
        assert_eq!(revoked[0].crl_entry_extensions.as_ref().unwrap().len(), 1);
        assert!(
            revoked[1].crl_entry_extensions.is_none(),
            "unspecified is omitted"
        );
        let i = info(&crl).unwrap();
        assert_eq!(i.number, Some(vec![7]));
        assert_eq!(i.this_update, NOW);
        assert_eq!(i.next_update, Some(NOW + 86_400));
        assert_eq!(
            i.revoked,
            vec![(vec![0x01, 0x02], NOW - 10), (vec![0x00, 0x80], NOW - 5)]
        );
        assert_eq!(i.delta_base, None);
    }

    #[test]
    fn empty_and_delta() {
        let (root_key, root, _, _) = ca_pair();
        let p = CrlParams {
            number: 300,
            this_update: NOW,
            next_update: NOW + 3600,
            entries: vec![],
            delta_base: Some(299),
        };
        let der = sign(&p, &root, &root_key.signer(HashAlg::Sha256)).unwrap();
        let crl = parse("crl", &der).unwrap();
        assert!(crl.tbs_cert_list.revoked_certificates.is_none());
        let delta = crl
            .tbs_cert_list
            .crl_extensions
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.extn_id == BaseCrlNumber::OID)
            .unwrap();
        assert!(delta.critical);
        let i = info(&crl).unwrap();
        assert_eq!(i.number, Some(vec![0x01, 0x2c]));
        assert_eq!(i.delta_base, Some(vec![0x01, 0x2b]));
        verify_signed_by(&der, &root).unwrap();
    }

    #[test]
    fn refusals() {
        let (root_key, root, int_key, _) = ca_pair();
        let ok = CrlParams {
            number: 1,
            this_update: NOW,
            next_update: NOW + 3600,
            entries: vec![],
            delta_base: None,
        };
        assert_eq!(
            sign(&ok, &root, &int_key.signer(HashAlg::Sha256))
                .unwrap_err()
                .field(),
            "issuer"
        );
        let bad = CrlParams {
            number: -1,
            ..ok.clone()
        };
        assert_eq!(
            sign(&bad, &root, &root_key.signer(HashAlg::Sha256))
                .unwrap_err()
                .field(),
            "crl.number"
        );
        let bad = CrlParams {
            delta_base: Some(1),
            ..ok.clone()
        };
        assert_eq!(
            sign(&bad, &root, &root_key.signer(HashAlg::Sha256))
                .unwrap_err()
                .field(),
            "crl.delta_base"
        );
        let bad = CrlParams {
            next_update: NOW,
            ..ok
        };
        assert_eq!(
            sign(&bad, &root, &root_key.signer(HashAlg::Sha256))
                .unwrap_err()
                .field(),
            "crl.next_update"
        );
        assert_eq!(parse("crl", b"nope").unwrap_err().field(), "crl");
    }
}
