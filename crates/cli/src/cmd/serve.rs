//! `fleetpki serve`: runs the site's roles until interrupted; `fleetpki site`: site artefacts.

use super::{Backend, Ctx, write_output};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use fleetpki_server::ServeConfig;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct ServeArgs {
    /// Roles and listen addresses (TOML `[roles.NAME]` tables); default: every role on loopback.
    #[arg(long)]
    config: Option<PathBuf>,
}

pub async fn run(ctx: &Ctx, a: ServeArgs) -> Result<()> {
    let site = Arc::new(ctx.site().await?);
    let config = match &a.config {
        Some(p) => ServeConfig::load(p, &site.config.base_url)?,
        None => ServeConfig::defaults(&site.config.base_url)?,
    };
    let mut running = fleetpki_server::start(site, &config).await?;
    // Watch the signals before announcing: a script that reads the lines and at once sends
    // SIGTERM must get a graceful stop, not the default action.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    // An HTTPS URL names a host its certificate covers (`tls::identity::url_host`), so it
    // works when copied with the site root as the only trust anchor.
    // Scripts wait for these lines. A reader that stopped listening (closed pipe) must not
    // take the server down: write errors are ignored, the log has the same facts.
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    for (role, url) in &running.roles {
        let _ = writeln!(stdout, "{} listening on {url}", role.name());
        tracing::info!(role = role.name(), url = %url, "listening");
    }
    let _ = stdout.flush();
    drop(stdout);
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
        failed = running.wait() => {
            if let Some(Err(e)) = failed {
                anyhow::bail!("a listener stopped: {e}");
            }
        }
    }
    tracing::info!("shutting down: finishing requests in flight");
    running.shutdown().await;
    Ok(())
}

#[derive(Subcommand)]
pub enum SiteCmd {
    /// Write the site signing certificate (PEM): what agents are installed with.
    SigningCert {
        #[arg(long)]
        out: PathBuf,
    },
}

pub async fn site(ctx: &Ctx, c: SiteCmd) -> Result<()> {
    match c {
        SiteCmd::SigningCert { out } => {
            let (pem_text, sha256) = match ctx.backend().await? {
                Backend::Local { site, .. } => (
                    site.signing.pem(),
                    fleetpki_x509::cert::fingerprint(&site.signing.der),
                ),
                Backend::Remote(api) => {
                    let signing = super::ca::site_info(&api).await?.signing;
                    // The fingerprint printed is the one of the bytes written.
                    let der = fleetpki_x509::pem::decode_all(
                        "signing",
                        signing.certificate.as_bytes(),
                        "CERTIFICATE",
                    )
                    .map_err(|e| api.malformed("signing", e.to_string()))?;
                    match der.as_slice() {
                        [one] => (
                            signing.certificate.clone(),
                            fleetpki_x509::cert::fingerprint(one),
                        ),
                        _ => {
                            return Err(api
                                .malformed("signing", "expected one certificate")
                                .into());
                        }
                    }
                }
            };
            write_output("--out", &out, pem_text.as_bytes())?;
            println!(
                "wrote the site signing certificate to {} (SHA-256 {sha256})",
                out.display(),
            );
        }
    }
    Ok(())
}
