//! `fleetpki request`: submit a CSR, list, approve, deny.

use super::{Ctx, actor, read_input, write_output};
use crate::{ListOpts, output};
use anyhow::Result;
use clap::Subcommand;
use fleetpki_ca::issuance::Submitted;
use fleetpki_model::fmt_time;
use fleetpki_model::record::{CertificateRecord, RequestStatus};
use fleetpki_x509::pem;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum RequestCmd {
    /// Submit a PKCS#10 request (PEM or DER) for a principal.
    Submit {
        #[arg(long)]
        template: String,
        /// The principal the certificate is for.
        #[arg(long = "as")]
        principal: String,
        #[arg(long)]
        csr: PathBuf,
        /// Where to write the certificate (PEM) if it is issued now.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List requests, newest first.
    List {
        #[arg(long)]
        pending: bool,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Approve a pending request and issue its certificate.
    Approve {
        id: i64,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Deny a pending request.
    Deny {
        id: i64,
        #[arg(long)]
        reason: String,
    },
}

fn deliver(c: &CertificateRecord, out: Option<&PathBuf>) -> Result<()> {
    println!(
        "issued serial {} to {}: {} {} valid until {}",
        c.serial,
        c.principal,
        c.subject,
        c.sans.join(" "),
        fmt_time(c.not_after)
    );
    if let Some(out) = out {
        write_output("--out", out, pem::encode("CERTIFICATE", &c.der).as_bytes())?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, c: RequestCmd) -> Result<()> {
    let site = ctx.site().await?;
    let who = actor();
    match c {
        RequestCmd::Submit {
            template,
            principal,
            csr,
            out,
        } => {
            let bytes = read_input("--csr", &csr)?;
            match site.submit(&template, &principal, &bytes, &who).await? {
                Submitted::Issued {
                    request_id,
                    certificate,
                } => {
                    println!("request {request_id}: issued");
                    deliver(&certificate, out.as_ref())?;
                }
                Submitted::Pending { request_id } => {
                    println!(
                        "request {request_id}: pending approval by a CA manager (fleetpki request approve {request_id})"
                    );
                }
            }
        }
        RequestCmd::List { pending, opts } => {
            let reqs = site
                .store
                .requests(pending.then_some(RequestStatus::Pending))
                .await?;
            if opts.json {
                return output::json(&reqs);
            }
            let rows = reqs
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.status.name().into(),
                        format!("{} v{}", r.template, r.template_version),
                        r.principal.clone(),
                        r.submitted_by.clone(),
                        fmt_time(r.submitted_at),
                        r.serial
                            .clone()
                            .or_else(|| r.reason.clone())
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "id",
                    "status",
                    "template",
                    "for",
                    "by",
                    "submitted",
                    "serial / reason",
                ],
                rows,
            );
        }
        RequestCmd::Approve { id, out } => {
            let c = site.approve(id, &who).await?;
            deliver(&c, out.as_ref())?;
        }
        RequestCmd::Deny { id, reason } => {
            site.deny(id, &reason, &who).await?;
            println!("request {id}: denied");
        }
    }
    Ok(())
}
