//! `fleetpki audit`: list and verify the hash-chained log.

use super::{Backend, Ctx};
use crate::remote::query;
use crate::{ListOpts, output};
use anyhow::Result;
use clap::Subcommand;
use fleetpki_model::audit::AuditEntry;
use fleetpki_model::fmt_time;
use serde::Deserialize;

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
    let b = ctx.backend().await?;
    match c {
        AuditCmd::List { after, limit, opts } => {
            let entries: Vec<AuditEntry> = match &b {
                Backend::Local { site, .. } => site.audit_list(after, limit).await?,
                Backend::Remote(api) => {
                    let q = query(&[
                        ("after", Some(after.to_string())),
                        ("limit", Some(limit.to_string())),
                    ]);
                    api.get(&format!("/api/v1/audit{q}")).await?
                }
            };
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
            let (entries, broken) = match &b {
                Backend::Local { site, .. } => {
                    let report = site.audit_verify().await?;
                    (report.entries, report.result.err().map(|b| b.to_string()))
                }
                Backend::Remote(api) => {
                    let v: Verified = api.get("/api/v1/audit/verify").await?;
                    match (v.intact, v.r#break) {
                        (true, _) => (v.entries, None),
                        (false, Some(b)) => (v.entries, Some(b)),
                        (false, None) => (v.entries, Some("(the server gave no detail)".into())),
                    }
                }
            };
            match broken {
                None => println!("audit log intact: {entries} entries, hash chain verified"),
                Some(b) => anyhow::bail!("audit: the log has been tampered with: {b}"),
            }
        }
    }
    Ok(())
}

/// The answer of `GET /api/v1/audit/verify`.
#[derive(Deserialize)]
struct Verified {
    intact: bool,
    entries: usize,
    r#break: Option<String>,
}
