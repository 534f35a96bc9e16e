//! `fleetpki client`: clients registered with the management point; approve or block them.

use super::{Ctx, actor};
use crate::{ListOpts, output};
use anyhow::{Result, bail};
use clap::Subcommand;
use fleetpki_model::fmt_time;
use fleetpki_model::site::ClientStatus;

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
    let site = ctx.site().await?;
    match c {
        ClientCmd::List { status, opts } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => match ClientStatus::parse(s) {
                    Some(s) => Some(s),
                    None => bail!("--status: `{s}`: use pending, approved or blocked"),
                },
            };
            let clients = site.clients(status).await?;
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
            let c = site
                .client_decide(&name, ClientStatus::Approved, &actor())
                .await?;
            println!("client {} is {}", c.name, c.status.name());
        }
        ClientCmd::Block { name } => {
            let c = site
                .client_decide(&name, ClientStatus::Blocked, &actor())
                .await?;
            println!("client {} is {}", c.name, c.status.name());
        }
    }
    Ok(())
}
