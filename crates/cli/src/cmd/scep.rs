//! `fleetpki scep`: one-time SCEP challenge passwords, as an NDES administrator hands them out.

use super::Ctx;
use anyhow::Result;
use clap::Subcommand;

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
    match c {
        ScepCmd::Challenge {
            principal,
            template,
            expires,
        } => {
            super::token::create_one_time(
                ctx,
                &principal,
                template.as_deref(),
                &expires,
                "one-time SCEP challenge",
            )
            .await
        }
    }
}
