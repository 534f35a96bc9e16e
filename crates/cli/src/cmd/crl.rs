//! `fleetpki crl`: publish full and delta CRLs.

use super::{Backend, Ctx, write_output};
use anyhow::Result;
use clap::Subcommand;
use fleetpki_ca::keys::KeyRole;
use fleetpki_model::fmt_time;
use fleetpki_model::record::CrlRecord;
use fleetpki_x509::pem;
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum CrlCmd {
    /// Sign and record the next CRL, and write it to a file.
    Publish {
        #[arg(long)]
        out: PathBuf,
        /// A delta CRL over the latest full CRL.
        #[arg(long)]
        delta: bool,
        /// Which CA's CRL: `issuing` (default: the CA that issues end-entity certificates) or `root`.
        #[arg(long)]
        issuer: Option<String>,
        /// nextUpdate − thisUpdate (default from fleetpki.toml: 7d full, 1d delta).
        #[arg(long)]
        next_update: Option<String>,
        /// Write DER instead of PEM.
        #[arg(long)]
        der: bool,
    },
}

pub async fn run(ctx: &Ctx, c: CrlCmd) -> Result<()> {
    let b = ctx.backend().await?;
    match c {
        CrlCmd::Publish {
            out,
            delta,
            issuer,
            next_update,
            der,
        } => {
            let role = match issuer.as_deref() {
                None => None,
                Some("root") => Some(KeyRole::Root),
                Some("issuing") => Some(KeyRole::Issuing),
                Some(other) => anyhow::bail!(
                    "--issuer: `{other}` is not a CA of this site; expected root or issuing"
                ),
            };
            let crl = match &b {
                Backend::Local { site, who } => {
                    site.publish_crl(role, delta, next_update.as_deref(), who)
                        .await?
                }
                Backend::Remote(api) => {
                    let body = json!({
                        "issuer": role.map(KeyRole::name), "delta": delta,
                        "next_update": next_update,
                    });
                    let p: Published = api.post("/api/v1/crl/publish", &body).await?;
                    let what = format!("CRL #{}", p.number);
                    let mut der = pem::decode_all(&what, p.crl.as_bytes(), "X509 CRL")
                        .map_err(|e| api.malformed(&what, e.to_string()))?;
                    CrlRecord {
                        der: der
                            .pop()
                            .ok_or_else(|| api.malformed(&what, "no CRL in the answer"))?,
                        issuer: p.issuer,
                        number: p.number,
                        base_number: p.base_number,
                        this_update: p.this_update,
                        next_update: p.next_update,
                    }
                }
            };
            let bytes = if der {
                crl.der.clone()
            } else {
                pem::encode("X509 CRL", &crl.der).into_bytes()
            };
            write_output("--out", &out, &bytes)?;
            let kind = match crl.base_number {
                Some(b) => format!("delta CRL over #{b}"),
                None => "full CRL".into(),
            };
            println!(
                "published {} {kind} #{} (next update {}) to {}",
                crl.issuer,
                crl.number,
                fmt_time(crl.next_update),
                out.display()
            );
        }
    }
    Ok(())
}

/// The answer of `POST /api/v1/crl/publish`.
#[derive(Deserialize)]
struct Published {
    issuer: String,
    number: i64,
    base_number: Option<i64>,
    this_update: i64,
    next_update: i64,
    crl: String,
}
