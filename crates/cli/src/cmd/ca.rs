//! `fleetpki ca`: the site's CA certificates.

use super::{Ctx, write_output};
use crate::cmd::init::print_site;
use anyhow::Result;
use clap::Subcommand;
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
    let site = ctx.site().await?;
    match c {
        CaCmd::Chain { out } => {
            write_output("--out", &out, site.chain_pem().as_bytes())?;
            println!(
                "wrote {} certificate(s) to {}",
                site.chain().len(),
                out.display()
            );
        }
        CaCmd::Show => print_site(&site),
    }
    Ok(())
}
