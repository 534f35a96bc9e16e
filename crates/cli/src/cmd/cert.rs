//! `fleetpki cert`: inventory and revocation.

use super::{Backend, Ctx};
use crate::remote::{ApiCert, query, seg};
use crate::{ListOpts, output};
use anyhow::Result;
use clap::Subcommand;
use fleetpki_model::duration::parse_duration;
use fleetpki_model::fmt_time;
use fleetpki_model::record::Revocation;
use fleetpki_model::record::{CertFilter, RevocationReason};
use fleetpki_model::template::Template;
use fleetpki_x509::pem;
use serde::Deserialize;
use serde_json::json;

#[derive(Subcommand)]
pub enum CertCmd {
    /// List issued certificates, soonest expiry first.
    List {
        #[arg(long)]
        template: Option<String>,
        #[arg(long)]
        principal: Option<String>,
        /// Only valid certificates expiring within this duration (e.g. 42d).
        #[arg(long)]
        expiring_within: Option<String>,
        #[arg(long)]
        revoked: bool,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Show one certificate.
    Show {
        serial: String,
        /// Print the certificate as PEM.
        #[arg(long)]
        pem: bool,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Revoke a certificate with an RFC 5280 reason.
    Revoke {
        serial: String,
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
}

pub async fn run(ctx: &Ctx, c: CertCmd) -> Result<()> {
    let b = ctx.backend().await?;
    match c {
        CertCmd::List {
            template,
            principal,
            expiring_within,
            revoked,
            opts,
        } => {
            let expiring_before = expiring_within
                .map(|d| parse_duration("--expiring-within", &d).map(|s| fleetpki_model::now() + s))
                .transpose()?;
            let certs = match &b {
                Backend::Local { site, .. } => {
                    let template = match template {
                        Some(t) => Some(site.find_template(&t).await?.name),
                        None => None,
                    };
                    site.certificates(&CertFilter {
                        template,
                        principal,
                        expiring_before,
                        revoked_only: revoked,
                        ..CertFilter::default()
                    })
                    .await?
                }
                Backend::Remote(api) => {
                    // By name or display name, as locally: the inventory filters by name.
                    let template = match template {
                        Some(t) => {
                            let found: Template =
                                api.get(&format!("/api/v1/templates/{}", seg(&t))).await?;
                            Some(found.name)
                        }
                        None => None,
                    };
                    let q = query(&[
                        ("template", template),
                        ("principal", principal),
                        ("expiring_before", expiring_before.map(|t| t.to_string())),
                        ("revoked", revoked.then(|| "true".to_string())),
                    ]);
                    let rows: Vec<ApiCert> = api.get(&format!("/api/v1/certificates{q}")).await?;
                    rows.into_iter()
                        .map(|c| c.record(api))
                        .collect::<Result<Vec<_>, _>>()?
                }
            };
            if opts.json {
                return output::json(&certs);
            }
            let rows = certs
                .iter()
                .map(|c| {
                    vec![
                        c.serial.clone(),
                        c.principal.clone(),
                        format!("{} v{}", c.template, c.template_version),
                        c.subject.clone(),
                        fmt_time(c.not_after),
                        c.revocation
                            .as_ref()
                            .map(|r| format!("revoked ({})", r.reason.name()))
                            .unwrap_or_else(|| "valid".into()),
                    ]
                })
                .collect();
            output::table(
                &[
                    "serial",
                    "principal",
                    "template",
                    "subject",
                    "not after",
                    "status",
                ],
                rows,
            );
        }
        CertCmd::Show {
            serial,
            pem: as_pem,
            opts,
        } => {
            let c = match &b {
                Backend::Local { site, .. } => site.certificate(&serial).await?,
                Backend::Remote(api) => api.certificate(&serial).await?,
            };
            if opts.json {
                return output::json(&c);
            }
            if as_pem {
                print!("{}", pem::encode("CERTIFICATE", &c.der));
                return Ok(());
            }
            output::fields(&[
                ("serial", c.serial.clone()),
                ("subject", c.subject.clone()),
                ("SAN", c.sans.join(", ")),
                ("principal", c.principal.clone()),
                (
                    "template",
                    format!("{} v{}", c.template, c.template_version),
                ),
                ("key", c.key.clone()),
                ("not before", fmt_time(c.not_before)),
                ("not after", fmt_time(c.not_after)),
                (
                    "request",
                    c.request_id
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into()),
                ),
                (
                    "status",
                    c.revocation
                        .as_ref()
                        .map(|r| format!("revoked {} ({})", fmt_time(r.at), r.reason.name()))
                        .unwrap_or_else(|| "valid".into()),
                ),
            ]);
        }
        CertCmd::Revoke { serial, reason } => {
            let reason = RevocationReason::parse("--reason", &reason)?;
            let r = match &b {
                Backend::Local { site, who } => site.revoke(&serial, reason, who).await?,
                Backend::Remote(api) => {
                    let r: Revoked = api
                        .post(
                            &format!("/api/v1/certificates/{}/revoke", seg(&serial)),
                            &json!({ "reason": reason.name() }),
                        )
                        .await?;
                    Revocation {
                        at: r.revoked_at,
                        reason: RevocationReason::parse("reason", &r.reason)
                            .map_err(|e| api.malformed("revocation", e.to_string()))?,
                    }
                }
            };
            println!(
                "revoked {serial} ({}) at {}; publish a CRL to tell relying parties: fleetpki crl publish",
                r.reason.name(),
                fmt_time(r.at)
            );
        }
    }
    Ok(())
}

/// The answer of `POST /api/v1/certificates/{serial}/revoke`.
#[derive(Deserialize)]
struct Revoked {
    revoked_at: i64,
    reason: String,
}
