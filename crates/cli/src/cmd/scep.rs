//! `fleetpki scep`: one-time SCEP challenge passwords, as an NDES administrator hands them out.

use super::Ctx;
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ScepCmd {
    /// Issue a one-time challenge password for a principal (shown once). A device enrolls
    /// once with it on any SCEP endpoint, under that endpoint's template, as the principal.
    Challenge(super::token::OneTimeArgs),
}

pub async fn run(ctx: &Ctx, c: ScepCmd) -> Result<()> {
    match c {
        ScepCmd::Challenge(a) => {
            super::token::create_one_time(ctx, &a, "one-time SCEP challenge").await
        }
    }
}
