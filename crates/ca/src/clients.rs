//! Clients registered with the management point: listing them, and the administrator's
//! approve / block decisions (enhanced HTTP registration).

use crate::error::{not_found, refuse};
use crate::{Actor, CaError, Site, audit_event};
use fleetpki_model::audit::Outcome;
use fleetpki_model::site::{ClientRecord, ClientStatus};
use fleetpki_store::Change;

impl Site {
    pub async fn clients(
        &self,
        status: Option<ClientStatus>,
    ) -> Result<Vec<ClientRecord>, CaError> {
        Ok(self.store.clients(status).await?)
    }

    /// Approves or blocks the client registered as `name`.
    pub async fn client_decide(
        &self,
        name: &str,
        status: ClientStatus,
        actor: &Actor,
    ) -> Result<ClientRecord, CaError> {
        if status == ClientStatus::Pending {
            return Err(refuse("status", "a decision approves or blocks"));
        }
        let current = self.store.client(name).await?.ok_or_else(|| {
            not_found(
                "client",
                format!("no client registered as `{name}` (fleetpki client list)"),
            )
        })?;
        if current.status == status {
            return Ok(current);
        }
        let now = fleetpki_model::now();
        let action = match status {
            ClientStatus::Approved => "client.approve",
            _ => "client.block",
        };
        self.committer
            .apply(vec![Change::DecideClient {
                name: name.to_string(),
                status,
                by: actor.name.clone(),
                at: now,
                audit: audit_event(
                    actor,
                    action,
                    name,
                    Outcome::Success,
                    format!(
                        "{} → {} (identity {})",
                        current.status.name(),
                        status.name(),
                        current.identity_sha256
                    ),
                ),
            }])
            .await?;
        self.store
            .client(name)
            .await?
            .ok_or_else(|| refuse("client", format!("`{name}` vanished")))
    }
}
