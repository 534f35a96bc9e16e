//! `fleetpki scep`: one-time SCEP challenge passwords, as an NDES administrator hands them out.

use super::{Ctx, actor};
use anyhow::Result;
use clap::Subcommand;
use fleetpki_model::duration::parse_duration;
use fleetpki_model::fmt_time;

#[derive(Subcommand)]
pub enum ScepCmd {
    /// Issue a one-time challenge password for a principal (shown once). A device enrolls
    /// once with it on any SCEP endpoint, under that endpoint's template, as the principal.
    Challenge {
        #[arg(long)]
        principal: String,
        /// Limit the challenge to one template.
        #[arg(long)]
        template: Option<String>,
        /// How long it stays usable (e.g. 1h, 7d).
        #[arg(long, default_value = "1d")]
        expires: String,
    },
}

pub async fn run(ctx: &Ctx, c: ScepCmd) -> Result<()> {
    let site = ctx.site().await?;
    match c {
        ScepCmd::Challenge {
            principal,
            template,
            expires,
        } => {
            let ttl = parse_duration("--expires", &expires)?;
            // The one-time enrollment token machinery: hashed at rest, used up in the
            // transaction that stores the request.
            let (token, text) = site
                .token_create(&principal, template.as_deref(), ttl, &actor())
                .await?;
            eprintln!(
                "one-time SCEP challenge for {}{}, usable until {}; it is shown only now:",
                token.principal,
                token
                    .template
                    .as_deref()
                    .map(|t| format!(" (template {t})"))
                    .unwrap_or_default(),
                fmt_time(token.expires_at)
            );
            println!("{text}");
        }
    }
    Ok(())
}
