//! `fleetpki crl`: publish full and delta CRLs.

use super::{Ctx, actor, write_output};
use anyhow::Result;
use clap::Subcommand;
use fleetpki_ca::keys::KeyRole;
use fleetpki_model::fmt_time;
use fleetpki_x509::pem;
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
    let site = ctx.site().await?;
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
            let crl = site
                .publish_crl(role, delta, next_update.as_deref(), &actor())
                .await?;
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
