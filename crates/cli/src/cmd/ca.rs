//! `fleetpki ca`: the site's CA certificates.

use super::{Backend, Ctx, write_output};
use crate::cmd::init::print_site;
use crate::output;
use crate::remote::Api;
use anyhow::Result;
use clap::Subcommand;
use fleetpki_ca::config::KeyProtection;
use fleetpki_x509::pem;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum CaCmd {
    /// Write the chain above end-entity certificates (issuing CA first, root last) as PEM.
    Chain {
        #[arg(long)]
        out: PathBuf,
    },
    /// Show the site and its CA certificates.
    Show,
}

pub async fn run(ctx: &Ctx, c: CaCmd) -> Result<()> {
    let b = ctx.backend().await?;
    match c {
        CaCmd::Chain { out } => {
            let (pem_text, count) = match &b {
                Backend::Local { site, .. } => (site.chain_pem(), site.chain().len()),
                Backend::Remote(api) => {
                    let text = api.get_text("/api/v1/ca/chain").await?;
                    let count = pem::decode_all("chain", text.as_bytes(), "CERTIFICATE")
                        .map_err(|e| api.malformed("/api/v1/ca/chain", e.to_string()))?
                        .len();
                    (text, count)
                }
            };
            write_output("--out", &out, pem_text.as_bytes())?;
            println!("wrote {count} certificate(s) to {}", out.display());
        }
        CaCmd::Show => match &b {
            Backend::Local { site, .. } => print_site(site),
            Backend::Remote(api) => print_remote(api, &site_info(api).await?),
        },
    }
    Ok(())
}

/// One certificate of `GET /api/v1/site`.
#[derive(Deserialize)]
pub struct SiteCert {
    pub subject: String,
    pub key: String,
    pub sha256: String,
    pub certificate: String,
}

/// `GET /api/v1/site`: the server keeps the database URL and the KEK file's path to itself.
#[derive(Deserialize)]
pub struct SiteInfo {
    site_code: String,
    name: String,
    base_url: String,
    key_protection: KeyProtection,
    root: SiteCert,
    issuing: Option<SiteCert>,
    pub signing: SiteCert,
}

pub async fn site_info(api: &Api) -> Result<SiteInfo> {
    Ok(api.get("/api/v1/site").await?)
}

/// `print_site`'s rows as the server gives them: the server's URL for the directory, no
/// database URL.
fn print_remote(api: &Api, s: &SiteInfo) {
    let mut rows = vec![
        ("site", format!("{} ({})", s.site_code, s.name)),
        ("server", api.server().to_string()),
        ("root CA", format!("{} [{}]", s.root.subject, s.root.key)),
    ];
    if let Some(i) = &s.issuing {
        rows.push(("issuing CA", format!("{} [{}]", i.subject, i.key)));
    }
    rows.push((
        "site signing",
        format!("{} SHA-256 {}", s.signing.subject, s.signing.sha256),
    ));
    rows.push((
        "key protection",
        match s.key_protection {
            KeyProtection::Passphrase => "encrypted under the operator's passphrase".to_string(),
            KeyProtection::KekFile => {
                "encrypted under the key-encryption key file on the server".to_string()
            }
        },
    ));
    rows.push(("base URL", s.base_url.clone()));
    output::fields(&rows);
}
