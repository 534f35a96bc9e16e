//! `fleetpki request`: submit a CSR, list, approve, deny.

use super::{Backend, Ctx, read_input, write_output};
use crate::remote::{ApiRequest, ApiSubmitted, query};
use crate::{ListOpts, output};
use anyhow::Result;
use clap::Subcommand;
use fleetpki_ca::issuance::Submitted;
use fleetpki_model::fmt_time;
use fleetpki_model::record::{CertificateRecord, RequestStatus};
use fleetpki_x509::pem;
use serde_json::{Value, json};
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
    let b = ctx.backend().await?;
    match c {
        RequestCmd::Submit {
            template,
            principal,
            csr,
            out,
        } => {
            let bytes = read_input("--csr", &csr)?;
            let submitted = match &b {
                Backend::Local { site, who } => {
                    match site.submit(&template, &principal, &bytes, who).await? {
                        Submitted::Issued {
                            request_id,
                            certificate,
                        } => Outcome::Issued(request_id, certificate),
                        Submitted::Pending { request_id } => Outcome::Pending(request_id),
                    }
                }
                Backend::Remote(api) => {
                    let body = json!({
                        "template": template, "principal": principal, "csr": csr_pem(&bytes),
                    });
                    match api.post("/api/v1/requests", &body).await? {
                        ApiSubmitted::Issued { request_id, serial } => {
                            Outcome::Issued(request_id, Box::new(api.certificate(&serial).await?))
                        }
                        ApiSubmitted::Pending { request_id } => Outcome::Pending(request_id),
                    }
                }
            };
            match submitted {
                Outcome::Issued(request_id, certificate) => {
                    println!("request {request_id}: issued");
                    deliver(&certificate, out.as_ref())?;
                }
                Outcome::Pending(request_id) => {
                    println!(
                        "request {request_id}: pending approval by a CA manager (fleetpki request approve {request_id})"
                    );
                }
            }
        }
        RequestCmd::List { pending, opts } => {
            let status = pending.then_some(RequestStatus::Pending);
            let reqs = match &b {
                Backend::Local { site, .. } => site.store.requests(status).await?,
                Backend::Remote(api) => {
                    let q = query(&[("status", status.map(|s| s.name().to_string()))]);
                    let rows: Vec<ApiRequest> = api.get(&format!("/api/v1/requests{q}")).await?;
                    rows.into_iter()
                        .map(|r| r.record(api))
                        .collect::<Result<Vec<_>, _>>()?
                }
            };
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
            let c = match &b {
                Backend::Local { site, who } => site.approve(id, who).await?,
                Backend::Remote(api) => {
                    match api
                        .post(&format!("/api/v1/requests/{id}/approve"), &json!({}))
                        .await?
                    {
                        ApiSubmitted::Issued { serial, .. } => api.certificate(&serial).await?,
                        ApiSubmitted::Pending { .. } => {
                            return Err(api
                                .malformed(&format!("request {id}"), "still pending after approval")
                                .into());
                        }
                    }
                }
            };
            deliver(&c, out.as_ref())?;
        }
        RequestCmd::Deny { id, reason } => {
            match &b {
                Backend::Local { site, who } => site.deny(id, &reason, who).await?,
                Backend::Remote(api) => {
                    let _: Value = api
                        .post(
                            &format!("/api/v1/requests/{id}/deny"),
                            &json!({ "reason": reason }),
                        )
                        .await?;
                }
            }
            println!("request {id}: denied");
        }
    }
    Ok(())
}

/// What a submission came to, from either backend.
enum Outcome {
    Issued(i64, Box<CertificateRecord>),
    Pending(i64),
}

/// The API takes the CSR as PEM; `--csr` may be DER.
fn csr_pem(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => text.to_string(),
        _ => pem::encode("CERTIFICATE REQUEST", bytes),
    }
}
