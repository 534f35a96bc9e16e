//! ACME administration: external account binding keys that tie ACME accounts to directory
//! principals (`fleetpki acme eab`).

use crate::error::{CaError, refuse};
use crate::site::Site;
use crate::{Actor, audit_event};
use fleetpki_model::acme::EabKey;
use fleetpki_model::audit::Outcome;
use fleetpki_store::Change;

impl Site {
    /// Makes an EAB key for `principal` (who must be in the directory): a random key id and a
    /// 256-bit HMAC key, stored and audited. The ACME account created with it requests
    /// certificates as `principal`; each key binds one account.
    pub async fn acme_eab_create(&self, principal: &str, actor: &Actor) -> Result<EabKey, CaError> {
        if self.store.principal(principal).await?.is_none() {
            return Err(refuse(
                "principal",
                format!("no principal named `{principal}` in the directory"),
            ));
        }
        let mut id = [0u8; 12];
        let mut key = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| refuse("random", "the RNG failed"))?;
        aws_lc_rs::rand::fill(&mut key).map_err(|_| refuse("random", "the RNG failed"))?;
        let eab = EabKey {
            kid: format!("eab-{}", hex::encode(id)),
            principal: principal.to_string(),
            hmac_key: key,
            created_at: fleetpki_model::now(),
            created_by: actor.name.clone(),
        };
        let audit = audit_event(
            actor,
            "acme.eab.create",
            &eab.kid,
            Outcome::Success,
            format!("binds an ACME account to principal {principal}"),
        );
        self.store
            .apply(vec![Change::AcmeCreateEab {
                key: eab.clone(),
                audit,
            }])
            .await?;
        Ok(eab)
    }
}
