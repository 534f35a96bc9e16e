//! `fleetpki acme`: administration of the ACME role (external account binding keys).

use super::{Backend, Ctx};
use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Subcommand;
use serde::Deserialize;
use serde_json::json;

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
    match c {
        AcmeCmd::Eab { principal } => {
            let eab: Eab = match ctx.backend().await? {
                Backend::Local { site, who } => {
                    let eab = site.acme_eab_create(&principal, &who).await?;
                    Eab {
                        hmac_key: URL_SAFE_NO_PAD.encode(&eab.hmac_key),
                        kid: eab.kid,
                        principal: eab.principal,
                    }
                }
                Backend::Remote(api) => {
                    let eab: Eab = api
                        .post("/api/v1/acme/eab", &json!({ "principal": principal }))
                        .await?;
                    if URL_SAFE_NO_PAD.decode(eab.hmac_key.as_bytes()).is_err() {
                        return Err(api.malformed("hmac_key", "not base64url").into());
                    }
                    eab
                }
            };
            eprintln!(
                "external account binding for principal {}; the HMAC key is shown only now:",
                eab.principal
            );
            println!("kid: {}", eab.kid);
            println!("hmac_key: {}", eab.hmac_key);
        }
    }
    Ok(())
}

/// An EAB key as made here or as `POST /api/v1/acme/eab` answers (HMAC key base64url).
#[derive(Deserialize)]
struct Eab {
    kid: String,
    principal: String,
    hmac_key: String,
}
