//! Revocation and CRLs: revoke by serial with an RFC 5280 reason, publish full and delta CRLs
//! with monotonic numbers.

use crate::error::{CaError, not_found, refuse};
use crate::keys::KeyRole;
use crate::site::Site;
use crate::{Actor, audit_event, key_use_event};
use fleetpki_model::audit::Outcome;
use fleetpki_model::duration::parse_duration;
use fleetpki_model::record::{CrlRecord, Revocation, RevocationReason};
use fleetpki_store::{Change, StoreError};
use fleetpki_x509::crl::{self, CrlEntry, CrlParams};
use fleetpki_x509::serial;

impl Site {
    /// Revokes the certificate with `serial` (hex, any case, colons allowed).
    pub async fn revoke(
        &self,
        serial_text: &str,
        reason: RevocationReason,
        actor: &Actor,
    ) -> Result<Revocation, CaError> {
        let serial = serial::to_hex(&serial::from_hex(serial_text)?);
        let revocation = Revocation {
            at: fleetpki_model::now(),
            reason,
        };
        let audit = audit_event(
            actor,
            "cert.revoke",
            &serial,
            Outcome::Success,
            format!("reason {}", reason.name()),
        );
        match self
            .store
            .apply(vec![Change::Revoke {
                serial: serial.clone(),
                revocation: revocation.clone(),
                audit,
            }])
            .await
        {
            Ok(_) => Ok(revocation),
            Err(StoreError::NotFound { .. }) => Err(not_found(
                "serial",
                format!("no certificate with serial {serial} was issued by this site"),
            )),
            Err(StoreError::Conflict { .. }) => Err(refuse(
                "serial",
                format!("certificate {serial} is already revoked"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Signs and records the next CRL of `issuer` (`None`: the issuing CA): a full CRL, or a
    /// delta over the latest full one. `next_update` overrides the configured lifetime.
    pub async fn publish_crl(
        &self,
        issuer: Option<KeyRole>,
        delta: bool,
        next_update: Option<&str>,
        actor: &Actor,
    ) -> Result<CrlRecord, CaError> {
        let role = issuer.unwrap_or(self.issuer().role);
        let ca = match role {
            KeyRole::Root => &self.root,
            KeyRole::Issuing => self.issuing.as_ref().ok_or_else(|| {
                refuse(
                    "--issuer",
                    "this site has no issuing CA (it was created one-tier)",
                )
            })?,
            KeyRole::SiteSigning | KeyRole::SiteSystem | KeyRole::ScepRa => {
                return Err(refuse(
                    "--issuer",
                    "only the root and issuing CAs sign CRLs",
                ));
            }
        };
        let lifetime_text = next_update.unwrap_or(if delta {
            &self.config.crl.delta_next_update
        } else {
            &self.config.crl.next_update
        });
        let lifetime = parse_duration("--next-update", lifetime_text)?;
        let now = fleetpki_model::now();
        let issues_leaves = role == self.issuer().role;

        let (base_number, since) = if delta {
            let base = self
                .store
                .latest_crl(role.name(), false)
                .await?
                .ok_or_else(|| {
                    refuse(
                        "--delta",
                        "a delta CRL needs a full CRL to build on: publish a full CRL first",
                    )
                })?;
            (Some(base.number), Some(base.this_update))
        } else {
            (None, None)
        };
        // Only the CA that issues end-entity certificates has revocations recorded today.
        let revoked = if issues_leaves {
            self.store.revocations(since).await?
        } else {
            vec![]
        };
        let entries = revoked
            .into_iter()
            .map(|(s, r)| {
                Ok(CrlEntry {
                    serial: serial::from_hex(&s)?,
                    revoked_at: r.at,
                    reason: r.reason,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let count = entries.len();
        let number = self.store.max_crl_number(role.name()).await? + 1;
        let params = CrlParams {
            number,
            this_update: now,
            next_update: now + lifetime,
            entries,
            delta_base: base_number,
        };
        let key = if role == self.issuer().role {
            None
        } else {
            Some(self.load_key(role)?)
        };
        let signer_key = match &key {
            Some(k) => k,
            None => self.issuer_key()?,
        };
        let der = crl::sign(
            &params,
            &ca.cert,
            &signer_key.signer(fleetpki_model::template::HashAlg::Sha256),
        )?;
        let record = CrlRecord {
            issuer: role.name().to_string(),
            number,
            base_number,
            this_update: now,
            next_update: now + lifetime,
            der,
        };
        let kind = if delta { "delta" } else { "full" };
        let audit = audit_event(
            actor,
            "crl.publish",
            &format!("{} #{number}", role.name()),
            Outcome::Success,
            format!(
                "{kind} CRL, {count} entries, next update {}",
                fleetpki_model::fmt_time(now + lifetime)
            ),
        );
        let key_use = key_use_event(actor, ca, format!("{kind} CRL #{number}"));
        self.store
            .apply(vec![
                Change::PublishCrl {
                    crl: record.clone(),
                    audit,
                },
                Change::Audit(key_use),
            ])
            .await?;
        Ok(record)
    }
}
