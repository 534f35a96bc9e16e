//! SCEP's side of the CA: the registration authority's RSA certificate (issued by the issuing
//! CA, key in custody like the other site keys) and SCEP's ways into the issuance pipeline
//! (static or one-time challenge, renewal by the current certificate), each recording the
//! client's transaction with the request in one transaction.

use crate::error::{CaError, refuse};
use crate::issuance::{Submitted, issue_event};
use crate::keys::KeyRole;
use crate::tokens::Presented;
use crate::{Actor, Site};
use der::Encode;
use fleetpki_model::UnixTime;
use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::record::CertificateRecord;
use fleetpki_model::template::HashAlg;
use fleetpki_store::{Change, StoreError};
use fleetpki_x509::cert::{self, CertParams};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{name, pem, serial};
use std::path::PathBuf;
use x509_cert::Certificate;

/// The inventory's `template` for the RA certificate (no administrator's template has a colon).
pub const RA_TEMPLATE: &str = "site:scep-ra";
/// How long an RA certificate is valid (at most the issuing CA's remaining life).
pub const RA_VALIDITY_SECS: i64 = 365 * 86_400;
/// A new RA certificate is issued when fewer days than this remain.
pub const RA_RENEW_BEFORE_SECS: i64 = 42 * 86_400;

/// The RA: its key (RSA-2048, for key transport) and certificate.
pub struct ScepRa {
    pub key: PrivateKey,
    pub cert: Certificate,
    pub der: Vec<u8>,
}

/// How a SCEP request proves it may enroll.
pub enum ScepAuth<'a> {
    /// The CSR's challengePassword: a one-time challenge (`ID.SECRET`) or the endpoint's
    /// static one, whose SHA-256 is given, enrolling as `principal`.
    Challenge {
        password: Option<&'a str>,
        static_sha256: Option<&'a str>,
        principal: Option<&'a str>,
    },
    /// RenewalReq: signed with a certificate this CA issued from the endpoint's template, still
    /// valid and not revoked; the new one is for that certificate's principal, with its names.
    Renewal { current_der: &'a [u8] },
}

/// The client's transaction: its key's SHA-256 and its transactionID.
pub struct Transaction<'a> {
    pub key_sha256: &'a str,
    pub transaction_id: &'a str,
    /// The pair is recorded for an earlier request this one renews (see
    /// `Change::RecordScepTransaction`).
    pub replace: bool,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

impl Site {
    fn scep_ra_path(&self) -> PathBuf {
        self.dir.join("ca").join("scep-ra.pem")
    }

    /// The RA identity: the stored one when its key matches, the issuing CA signed it and it
    /// is not due; otherwise a new RSA-2048 certificate (digitalSignature, keyEncipherment),
    /// recorded in the inventory with its audit events before its files are written.
    pub async fn scep_ra(&self, now: UnixTime) -> Result<ScepRa, CaError> {
        if let Some(ra) = self.stored_scep_ra(now)? {
            return Ok(ra);
        }
        let issuer = self.issuer();
        let not_after = (now + RA_VALIDITY_SECS).min(issuer.info.not_after);
        if not_after <= now + 86_400 {
            return Err(refuse(
                "issuer",
                format!(
                    "the issuing CA {} expires too soon to issue a SCEP RA certificate",
                    issuer.info.subject
                ),
            ));
        }
        let key = PrivateKey::generate(KeyType::Rsa2048)?;
        let code = &self.config.site_code;
        let params = CertParams {
            serial: serial::random()?,
            subject: name::build(&[
                ("CN", &format!("fleetpki {code} SCEP RA")),
                ("O", &self.config.name),
            ])?,
            sans: vec![],
            spki_der: key.public_key_der(),
            not_before: (now - 300).max(issuer.info.not_before),
            not_after,
            key_usage: vec![KeyUsageBit::DigitalSignature, KeyUsageBit::KeyEncipherment],
            ekus: vec![],
            ca: None,
            urls: self.urls_for(issuer.role),
        };
        let der = cert::issue(
            &params,
            Some(&issuer.cert),
            &self.issuer_key()?.signer(HashAlg::Sha256),
        )?;
        let record = crate::issuance::site_role_record(&params, der.clone(), &key, RA_TEMPLATE);
        let actor = Actor::new("site", "serve (scep role)");
        let audit = issue_event(&actor, &record, issuer);
        let what = format!("SCEP RA certificate {}", record.serial);
        self.commit_site_role_certificate(record, audit, &actor, what)
            .await?;
        self.keep_site_role_credentials(KeyRole::ScepRa, &key, &self.scep_ra_path(), &der)?;
        let cert = cert::parse("SCEP RA certificate", &der)?;
        Ok(ScepRa { key, cert, der })
    }

    fn stored_scep_ra(&self, now: UnixTime) -> Result<Option<ScepRa>, CaError> {
        let Ok(text) = std::fs::read(self.scep_ra_path()) else {
            return Ok(None);
        };
        let Some((_, der)) = pem::decode_labels("SCEP RA certificate", &text, &["CERTIFICATE"])
            .ok()
            .and_then(|b| b.into_iter().next())
        else {
            return Ok(None);
        };
        let Ok(parsed) = cert::parse("SCEP RA certificate", &der) else {
            return Ok(None);
        };
        let info = cert::info(&parsed)?;
        if info.not_after - now <= RA_RENEW_BEFORE_SECS.min(RA_VALIDITY_SECS / 2) {
            return Ok(None);
        }
        let Ok(key) = self.custody()?.load(KeyRole::ScepRa) else {
            return Ok(None);
        };
        let spki = parsed
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| refuse("SCEP RA certificate", format!("cannot encode its key: {e}")))?;
        if key.public_key_der() != spki
            || cert::verify_signed_by(&parsed, &self.issuer().cert).is_err()
        {
            return Ok(None);
        }
        Ok(Some(ScepRa {
            key,
            cert: parsed,
            der,
        }))
    }

    /// A SCEP enrollment (PKCSReq or RenewalReq) for `template`: authorised as `auth` says,
    /// then the same pipeline as every other enrollment, the transaction recorded with the
    /// request. A refusal stores nothing.
    pub async fn scep_submit(
        &self,
        template: &str,
        csr_der: &[u8],
        auth: ScepAuth<'_>,
        tx: &Transaction<'_>,
        actor: &Actor,
    ) -> Result<Submitted, CaError> {
        let record = Change::RecordScepTransaction {
            key_sha256: tx.key_sha256.to_string(),
            transaction_id: tx.transaction_id.to_string(),
            request_id: None,
            at: fleetpki_model::now(),
            replace: tx.replace,
        };
        let bad_challenge = || refuse("challengePassword", "unknown or wrong challenge password");
        let result = match auth {
            ScepAuth::Challenge {
                password,
                static_sha256,
                principal,
            } => {
                let password = password.ok_or_else(|| {
                    refuse(
                        "challengePassword",
                        "the request carries no challenge password",
                    )
                })?;
                // A one-time challenge first: its ID names it.
                let one_time = match Presented::parse(password) {
                    Ok(p) => self.store.token(p.id).await?.map(|_| p),
                    Err(_) => None,
                };
                if let Some(presented) = one_time {
                    self.submit_with_token_and(template, csr_der, &presented, actor, vec![record])
                        .await
                } else {
                    let (Some(want), Some(principal)) = (static_sha256, principal) else {
                        return Err(bad_challenge());
                    };
                    let got = sha256_hex(password.as_bytes());
                    if aws_lc_rs::constant_time::verify_slices_are_equal(
                        want.as_bytes(),
                        got.as_bytes(),
                    )
                    .is_err()
                    {
                        return Err(bad_challenge());
                    }
                    self.submit_with(template, principal, csr_der, actor, vec![record])
                        .await
                }
            }
            ScepAuth::Renewal { current_der } => {
                // A renewal replaces the certificate it is signed with: same template, same
                // names (as EST's simplereenroll), for the principal it was issued to.
                let current = self.renewal_certificate(current_der).await?;
                if current.template != template {
                    return Err(refuse(
                        "signerCertificate",
                        format!(
                            "the signing certificate was issued from template `{}`; this endpoint renews `{template}` certificates only",
                            current.template
                        ),
                    ));
                }
                self.submit_checked(
                    template,
                    &current.principal,
                    csr_der,
                    actor,
                    |_| vec![record],
                    Some(&current),
                )
                .await
            }
        };
        result.map_err(|e| match e {
            // The same transaction recorded meanwhile by a concurrent request.
            CaError::Store(StoreError::Conflict { why, .. }) => refuse("transactionID", why),
            e => e,
        })
    }

    /// The inventory record of a certificate presented for renewal: issued by this CA's issuer
    /// (the signature checked), stored as received, not revoked, not expired.
    async fn renewal_certificate(&self, current_der: &[u8]) -> Result<CertificateRecord, CaError> {
        let bad = |why: &str| refuse("signerCertificate", why.to_string());
        cert::verify_der_signed_by(current_der, &self.issuer().cert)
            .map_err(|_| bad("renewal must be signed with a certificate this CA issued"))?;
        let parsed = cert::parse("signerCertificate", current_der)?;
        let info = cert::info(&parsed)?;
        let record = self
            .store
            .certificate(&info.serial_hex)
            .await?
            .filter(|r| r.der == current_der)
            .ok_or_else(|| bad("the signing certificate is not in this CA's inventory"))?;
        if record.revocation.is_some() {
            return Err(bad("the signing certificate is revoked"));
        }
        if record.not_after <= fleetpki_model::now() {
            return Err(bad("the signing certificate has expired"));
        }
        if record.template.starts_with("site:") || record.template == crate::site_system::TEMPLATE {
            return Err(bad("a site role's certificate cannot renew through SCEP"));
        }
        Ok(record)
    }
}
