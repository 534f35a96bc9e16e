//! The site's own TLS server certificate in enhanced HTTP: issued from the site CA for the
//! roles' names, kept under `tls/` (key in custody like the CA keys), renewed by site
//! maintenance a configurable number of days before it expires.

use crate::error::{CaError, refuse};
use crate::keys::KeyRole;
use crate::{Actor, Site, audit_event};
use der::Encode;
use fleetpki_model::UnixTime;
use fleetpki_model::audit::Outcome;
use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::template::HashAlg;
use fleetpki_x509::cert::{self, CertParams, San};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{name, pem, serial};
use std::net::IpAddr;
use std::path::PathBuf;

/// How long a site-system certificate is valid (and at most the issuing CA's remaining life).
pub const VALIDITY_SECS: i64 = 365 * 86_400;
/// The template name recorded with site-system certificates in the inventory.
pub const TEMPLATE: &str = "site-system";
/// The principal recorded with them.
pub const PRINCIPAL: &str = "site";
const EKU_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";

/// A TLS server identity: certificate chain (leaf first, DER) and its private key.
pub struct ServerIdentity {
    pub chain: Vec<Vec<u8>>,
    pub key: PrivateKey,
    pub not_after: UnixTime,
    pub serial: String,
}

/// What [`Site::site_system_identity`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The stored certificate still fits and is not due.
    Kept,
    /// A new certificate was issued: none was stored, the names changed, or it was due.
    Issued,
}

impl Site {
    fn site_system_cert_path(&self) -> PathBuf {
        self.dir.join("tls").join("site-system.crt.pem")
    }

    /// The site-system certificate for `names` (DNS names or IP addresses; the first is the
    /// subject CN). Issues a new one when none is stored, its names differ, or fewer than
    /// `renew_before_secs` remain; the new certificate is recorded in the inventory with its
    /// audit events before the files are replaced.
    pub async fn site_system_identity(
        &self,
        names: &[String],
        renew_before_secs: i64,
        now: UnixTime,
    ) -> Result<(ServerIdentity, Renewal), CaError> {
        let sans = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(San::Ip(ip)),
                Err(_) if is_dns_name(n) => Ok(San::Dns(n.to_ascii_lowercase())),
                Err(_) => Err(refuse(
                    "tls.names",
                    format!("`{n}` is neither a DNS name nor an IP address"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = names.first() else {
            return Err(refuse(
                "tls.names",
                "at least one name (the intranet FQDN) is needed",
            ));
        };
        if let Some(held) = self.stored_site_system()? {
            let wanted: Vec<String> = sans.iter().map(crate::issuance::san_text).collect();
            let mut have = held.1.clone();
            let mut want = wanted.clone();
            have.sort();
            want.sort();
            if have == want && held.0.not_after - now > renew_before_secs {
                return Ok((held.0, Renewal::Kept));
            }
        }
        let issuer = self.issuer();
        let key = PrivateKey::generate(KeyType::EcdsaP256)?;
        let not_after = (now + VALIDITY_SECS).min(issuer.info.not_after);
        if not_after <= now + renew_before_secs {
            return Err(refuse(
                "issuer",
                format!(
                    "the issuing CA {} expires too soon to issue a site-system certificate",
                    issuer.info.subject
                ),
            ));
        }
        let params = CertParams {
            serial: serial::random()?,
            subject: name::build(&[("CN", first.as_str())])?,
            sans: sans.clone(),
            spki_der: key.public_key_der(),
            not_before: (now - 300).max(issuer.info.not_before),
            not_after,
            key_usage: vec![KeyUsageBit::DigitalSignature],
            ekus: vec![EKU_SERVER_AUTH.to_string()],
            ca: None,
            urls: self.urls_for(issuer.role),
        };
        let signer = self.issuer_key()?.signer(HashAlg::Sha256);
        let der = cert::issue(&params, Some(&issuer.cert), &signer)?;
        let record = crate::issuance::site_role_record(&params, der.clone(), &key, TEMPLATE);
        let actor = Actor::new("site", "site maintenance");
        let audit = audit_event(
            &actor,
            "cert.issue",
            &record.serial,
            Outcome::Success,
            format!(
                "site-system TLS certificate {} {}",
                record.subject,
                record.sans.join(" ")
            ),
        );
        let serial_hex = record.serial.clone();
        let what = format!("certificate {serial_hex}");
        self.commit_site_role_certificate(record, audit, &actor, what)
            .await?;
        // `stored_site_system` detects a key that does not match and issues again.
        let path = self.site_system_cert_path();
        self.keep_site_role_credentials(KeyRole::SiteSystem, &key, &path, &der)?;
        let mut chain = vec![der];
        chain.extend(self.chain().iter().map(|c| c.der.clone()));
        Ok((
            ServerIdentity {
                chain,
                key,
                not_after,
                serial: serial_hex,
            },
            Renewal::Issued,
        ))
    }

    /// The stored site-system identity and its SAN texts, if complete and consistent.
    fn stored_site_system(&self) -> Result<Option<(ServerIdentity, Vec<String>)>, CaError> {
        let path = self.site_system_cert_path();
        let Ok(text) = std::fs::read(&path) else {
            return Ok(None);
        };
        let Ok(blocks) = pem::decode_labels("site-system certificate", &text, &["CERTIFICATE"])
        else {
            return Ok(None);
        };
        let Some((_, der)) = blocks.into_iter().next() else {
            return Ok(None);
        };
        let Ok(parsed) = cert::parse("site-system certificate", &der) else {
            return Ok(None);
        };
        let info = cert::info(&parsed)?;
        let Ok(key) = self.custody()?.load(KeyRole::SiteSystem) else {
            return Ok(None);
        };
        let spki = parsed
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| {
                refuse(
                    "site-system certificate",
                    format!("cannot encode its key: {e}"),
                )
            })?;
        if key.public_key_der() != spki {
            return Ok(None);
        }
        if cert::verify_signed_by(&parsed, &self.issuer().cert).is_err() {
            return Ok(None);
        }
        let mut chain = vec![der];
        chain.extend(self.chain().iter().map(|c| c.der.clone()));
        Ok(Some((
            ServerIdentity {
                chain,
                key,
                not_after: info.not_after,
                serial: info.serial_hex,
            },
            info.sans,
        )))
    }
}

fn is_dns_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}
