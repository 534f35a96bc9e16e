//! `fleetpki acme`: administration of the ACME role (external account binding keys).

use super::{Ctx, actor};
use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum AcmeCmd {
    /// Make an external account binding key for a directory principal: prints the key id and
    /// the HMAC key (base64url, shown once) for the ACME client (`certbot --eab-kid K
    /// --eab-hmac-key H`, `lego --eab --kid K --hmac H`).
    Eab {
        #[arg(long)]
        principal: String,
    },
}

pub async fn run(ctx: &Ctx, c: AcmeCmd) -> Result<()> {
    let site = ctx.site().await?;
    match c {
        AcmeCmd::Eab { principal } => {
            let eab = site.acme_eab_create(&principal, &actor()).await?;
            let hmac = URL_SAFE_NO_PAD.encode(&eab.hmac_key);
            eprintln!(
                "external account binding for principal {}; the HMAC key is shown only now:",
                eab.principal
            );
            println!("kid: {}", eab.kid);
            println!("hmac_key: {hmac}");
        }
    }
    Ok(())
}
