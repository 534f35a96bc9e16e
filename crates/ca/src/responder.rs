//! Delegated OCSP signing certificates: a fresh key kept only in memory, certified by the issuing CA for a short time.

use crate::Actor;
use crate::error::{CaError, refuse};
use crate::issuance::issue_event;
use crate::site::{BACKDATE, Site};
use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::template::HashAlg;
use fleetpki_x509::cert::{self, CertParams, IssuerUrls};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{name, ocsp, serial};
use x509_cert::Certificate;

/// The inventory's `template` for delegated OCSP signing certificates: they come from no
/// template, and the prefix keeps the name clear of every template an administrator can create.
pub const OCSP_SIGNER_TEMPLATE: &str = "site:ocsp-signing";
/// The inventory's `principal` for certificates the site issues to its own roles.
pub const SITE_PRINCIPAL: &str = "site";

/// A delegated responder: its key and certificate.
pub struct OcspSigner {
    pub key: PrivateKey,
    pub cert: Certificate,
    pub der: Vec<u8>,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
}

impl std::fmt::Debug for OcspSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspSigner")
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Site {
    /// Issues a delegated OCSP signing certificate (RFC 6960 4.2.2.2: id-kp-OCSPSigning and
    /// id-pkix-ocsp-nocheck) for a new ECDSA P-256 key, valid for `lifetime` seconds (never past
    /// the issuing CA), and records it in the inventory with its audit events before returning.
    /// The key never leaves memory: a restarted responder gets a new one.
    pub async fn issue_ocsp_signer(
        &self,
        lifetime: i64,
        actor: &Actor,
    ) -> Result<OcspSigner, CaError> {
        let issuer = self.issuer();
        let now = fleetpki_model::now();
        let not_before = (now - BACKDATE).max(issuer.info.not_before);
        let not_after = now.saturating_add(lifetime).min(issuer.info.not_after);
        if not_after <= now {
            return Err(refuse(
                "issuer",
                format!("the issuing CA {} has expired", issuer.info.subject),
            ));
        }
        let key = PrivateKey::generate(KeyType::EcdsaP256)?;
        let code = &self.config.site_code;
        let params = CertParams {
            serial: serial::random()?,
            subject: name::build(&[
                ("CN", &format!("fleetpki {code} OCSP Responder")),
                ("O", &self.config.name),
            ])?,
            sans: vec![],
            spki_der: key.public_key_der(),
            not_before,
            not_after,
            key_usage: vec![KeyUsageBit::DigitalSignature],
            ekus: vec![ocsp::ID_KP_OCSP_SIGNING.to_string()],
            ca: None,
            // No CDP or OCSP URL: nocheck says not to ask. caIssuers helps clients build the path.
            urls: IssuerUrls {
                crl: None,
                ocsp: None,
                ca_issuers: Some(self.config.ca_cert_url(issuer.role.name())),
            },
        };
        let der = ocsp::issue_responder(
            &params,
            &issuer.cert,
            &self.issuer_key()?.signer(HashAlg::Sha256),
        )?;
        let parsed = cert::parse("ocsp signer", &der)?;
        let record =
            crate::issuance::site_role_record(&params, der.clone(), &key, OCSP_SIGNER_TEMPLATE);
        let audit = issue_event(actor, &record, issuer);
        let serial = record.serial.clone();
        let what = format!("OCSP signing certificate {serial}");
        self.commit_site_role_certificate(record, audit, actor, what)
            .await?;
        Ok(OcspSigner {
            key,
            cert: parsed,
            der,
            serial,
            not_before,
            not_after,
        })
    }
}
