//! `fleetpki client`: clients registered with the management point; approve or block them.

use super::{Backend, Ctx};
use crate::remote::{query, seg};
use crate::{ListOpts, output};
use anyhow::{Result, bail};
use clap::Subcommand;
use fleetpki_model::fmt_time;
use fleetpki_model::site::ClientRecord;
use fleetpki_model::site::ClientStatus;
use serde_json::json;

#[derive(Subcommand)]
pub enum ClientCmd {
    /// List registered clients, by name.
    List {
        /// Only clients in this state: pending, approved or blocked.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Approve a registered client (also lifts a block).
    Approve { name: String },
    /// Block a client: the management point refuses it from its next request on.
    Block { name: String },
}

pub async fn run(ctx: &Ctx, c: ClientCmd) -> Result<()> {
    let b = ctx.backend().await?;
    match c {
        ClientCmd::List { status, opts } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => match ClientStatus::parse(s) {
                    Some(s) => Some(s),
                    None => bail!("--status: `{s}`: use pending, approved or blocked"),
                },
            };
            let clients: Vec<ClientRecord> = match &b {
                Backend::Local { site, .. } => site.clients(status).await?,
                Backend::Remote(api) => {
                    let q = query(&[("status", status.map(|s| s.name().to_string()))]);
                    api.get(&format!("/api/v1/clients{q}")).await?
                }
            };
            if opts.json {
                return output::json(&clients);
            }
            output::table(
                &[
                    "name",
                    "status",
                    "registered",
                    "decided by",
                    "identity (SHA-256)",
                ],
                clients
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            c.status.name().to_string(),
                            fmt_time(c.registered_at),
                            c.decided_by.clone().unwrap_or_default(),
                            c.identity_sha256.clone(),
                        ]
                    })
                    .collect(),
            );
        }
        ClientCmd::Approve { name } => {
            let c = decide(&b, &name, ClientStatus::Approved).await?;
            println!("client {} is {}", c.name, c.status.name());
        }
        ClientCmd::Block { name } => {
            let c = decide(&b, &name, ClientStatus::Blocked).await?;
            println!("client {} is {}", c.name, c.status.name());
        }
    }
    Ok(())
}

async fn decide(b: &Backend, name: &str, status: ClientStatus) -> Result<ClientRecord> {
    Ok(match b {
        Backend::Local { site, who } => site.client_decide(name, status, who).await?,
        Backend::Remote(api) => {
            let decision = match status {
                ClientStatus::Blocked => "block",
                _ => "approve",
            };
            api.post(
                &format!("/api/v1/clients/{}/{decision}", seg(name)),
                &json!({}),
            )
            .await?
        }
    })
}
