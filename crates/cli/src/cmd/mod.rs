//! One module per command group; `Ctx` carries the global options.

pub mod acme;
pub mod agent;
pub mod audit;
pub mod ca;
pub mod cert;
pub mod check;
pub mod client;
pub mod crl;
pub mod directory;
pub mod init;
pub mod quickstart;
pub mod request;
pub mod scep;
pub mod serve;
pub mod simulate;
pub mod status;
pub mod template;
pub mod token;

use crate::remote::{self, Api};
use anyhow::{Context, Result};
use fleetpki_ca::{Actor, Site};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

pub struct Ctx {
    pub dir: PathBuf,
    pub passphrase_file: Option<PathBuf>,
    /// `--server` and its credentials: commands go to the admin API instead of the database.
    pub remote: Option<remote::Options>,
}

/// Where a command does its work: the site opened here, or a running server's admin API.
pub enum Backend {
    Local { site: Box<Site>, who: Actor },
    Remote(Api),
}

impl Ctx {
    /// The operator's passphrase: `--passphrase-file`, else FLEETPKI_PASSPHRASE, else none.
    pub fn passphrase(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if let Some(p) = &self.passphrase_file {
            let raw = Zeroizing::new(
                std::fs::read(p).with_context(|| format!("--passphrase-file {}", p.display()))?,
            );
            let trimmed = raw.strip_suffix(b"\n").unwrap_or(&raw);
            let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
            anyhow::ensure!(
                !trimmed.is_empty(),
                "--passphrase-file: {} is empty",
                p.display()
            );
            return Ok(Some(Zeroizing::new(trimmed.to_vec())));
        }
        match std::env::var("FLEETPKI_PASSPHRASE") {
            Ok(v) if !v.is_empty() => Ok(Some(Zeroizing::new(v.into_bytes()))),
            _ => Ok(None),
        }
    }

    pub async fn site(&self) -> Result<Site> {
        Ok(Site::open(&self.dir, self.passphrase()?).await?)
    }

    /// The admin API with `--server`, else the site in `--dir`.
    pub async fn backend(&self) -> Result<Backend> {
        Ok(match &self.remote {
            Some(o) => Backend::Remote(Api::new(o)?),
            None => Backend::Local {
                site: Box::new(self.site().await?),
                who: actor(),
            },
        })
    }

    /// Refuses `--server` for a command the admin API has no endpoint for: it must never fall
    /// back to the database here without saying so.
    pub fn local_only(&self, command: &str, why: &str) -> Result<()> {
        match &self.remote {
            Some(o) => anyhow::bail!(
                "`fleetpki {command}` cannot run against a server (--server {}): {why}; run it without --server (and without FLEETPKI_SERVER) where the site lives",
                o.server
            ),
            None => Ok(()),
        }
    }
}

/// The person at the keyboard, for the audit log.
pub fn actor() -> Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "operator".into());
    Actor::new(user, "cli")
}

pub fn read_input(field: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{field}: cannot read {}", path.display()))
}

pub fn write_output(field: &str, path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("{field}: cannot write {}", path.display()))
}
