//! `fleetpki audit`: list and verify the hash-chained log.

use super::Ctx;
use crate::{ListOpts, output};
use anyhow::Result;
use clap::Subcommand;
use fleetpki_model::fmt_time;

#[derive(Subcommand)]
pub enum AuditCmd {
    /// List entries in order.
    List {
        /// Start after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 1000)]
        limit: i64,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Recompute the hash chain; exits non-zero if any entry was edited, inserted or deleted.
    Verify,
}

pub async fn run(ctx: &Ctx, c: AuditCmd) -> Result<()> {
    let site = ctx.site().await?;
    match c {
        AuditCmd::List { after, limit, opts } => {
            let entries = site.audit_list(after, limit).await?;
            if opts.json {
                return output::json(&entries);
            }
            let rows = entries
                .iter()
                .map(|e| {
                    let ev = &e.event;
                    vec![
                        e.seq.to_string(),
                        fmt_time(ev.at),
                        format!("{} ({})", ev.actor, ev.source),
                        ev.action.clone(),
                        ev.object.clone(),
                        ev.outcome.name().into(),
                        ev.details.clone(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "seq", "time", "actor", "action", "object", "outcome", "details",
                ],
                rows,
            );
        }
        AuditCmd::Verify => {
            let report = site.audit_verify().await?;
            match report.result {
                Ok(()) => println!(
                    "audit log intact: {} entries, hash chain verified",
                    report.entries
                ),
                Err(b) => anyhow::bail!("audit: the log has been tampered with: {b}"),
            }
        }
    }
    Ok(())
}
