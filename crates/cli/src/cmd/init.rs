//! `fleetpki init`: create a site, generating its CA or importing an existing one.

use super::{Ctx, actor, read_input};
use crate::output;
use anyhow::{Context, Result};
use clap::Args;
use fleetpki_ca::{CaSource, InitOptions, Site};
use fleetpki_x509::cert;
use fleetpki_x509::key::KeyType;
use std::path::PathBuf;
use zeroize::Zeroizing;

#[derive(Args)]
pub struct InitArgs {
    /// Three letters or digits naming the site (e.g. PS1).
    #[arg(long)]
    site_code: String,
    /// A display name for the site.
    #[arg(long)]
    name: Option<String>,
    /// Key type of the CA keys: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, ed25519.
    #[arg(long, default_value = "ecdsa-p256")]
    key_type: String,
    /// Create an issuing CA under the root; the root then signs only the issuing CA and its CRL.
    #[arg(long)]
    two_tier: bool,
    /// Where clients reach the site's CRL, CA certificates and OCSP (written into every certificate).
    #[arg(long)]
    base_url: Option<String>,
    /// Database URL: postgres://… (default: SQLite in the site directory).
    #[arg(long)]
    db: Option<String>,
    /// Import an existing CA certificate (PEM or DER) instead of generating a root.
    #[arg(long, requires = "import_key")]
    import_cert: Option<PathBuf>,
    /// The imported CA's private key (PEM: PKCS#8, encrypted PKCS#8, SEC1 or PKCS#1).
    #[arg(long, requires = "import_cert")]
    import_key: Option<PathBuf>,
    /// Passphrase file for an encrypted --import-key.
    #[arg(long)]
    import_key_passphrase_file: Option<PathBuf>,
    /// The imported CA's issuers up to a self-signed root (PEM), when it is not itself a root.
    #[arg(long)]
    import_chain: Option<PathBuf>,
}

pub async fn run(ctx: &Ctx, a: InitArgs) -> Result<()> {
    let key_type = KeyType::parse("--key-type", &a.key_type)?;
    let ca = match (&a.import_cert, &a.import_key) {
        (Some(c), Some(k)) => CaSource::Import {
            cert: read_input("--import-cert", c)?,
            key_pem: Zeroizing::new(
                String::from_utf8(read_input("--import-key", k)?)
                    .context("--import-key: not a PEM text file")?,
            ),
            key_passphrase: match &a.import_key_passphrase_file {
                Some(p) => Some(Zeroizing::new(
                    read_input("--import-key-passphrase-file", p)?
                        .trim_ascii_end()
                        .to_vec(),
                )),
                None => None,
            },
            chain: a
                .import_chain
                .as_ref()
                .map(|p| read_input("--import-chain", p))
                .transpose()?,
            two_tier: a.two_tier,
            key_type,
        },
        _ => CaSource::Generate {
            key_type,
            two_tier: a.two_tier,
        },
    };
    let opts = InitOptions {
        site_code: a.site_code,
        name: a.name,
        base_url: a.base_url,
        database: a.db,
        passphrase: ctx.passphrase()?,
        ca,
    };
    let site = Site::init(&ctx.dir, opts, &actor()).await?;
    print_site(&site);
    Ok(())
}

pub fn print_site(site: &Site) {
    let mut rows = vec![
        (
            "site",
            format!("{} ({})", site.config.site_code, site.config.name),
        ),
        ("directory", site.dir.display().to_string()),
        (
            "root CA",
            format!("{} [{}]", site.root.info.subject, site.root.info.key),
        ),
    ];
    if let Some(i) = &site.issuing {
        rows.push(("issuing CA", format!("{} [{}]", i.info.subject, i.info.key)));
    }
    rows.push((
        "site signing",
        format!(
            "{} SHA-256 {}",
            site.signing.info.subject,
            cert::fingerprint(&site.signing.der)
        ),
    ));
    rows.push((
        "key protection",
        match site.config.keys.protection {
            fleetpki_ca::config::KeyProtection::Passphrase => {
                "encrypted under the operator's passphrase".to_string()
            }
            fleetpki_ca::config::KeyProtection::KekFile => format!(
                "encrypted under the key-encryption key in {}",
                site.config.keys.kek_file.as_deref().unwrap_or("?")
            ),
        },
    ));
    rows.push(("database", site.config.database.clone()));
    rows.push(("base URL", site.config.base_url.clone()));
    output::fields(&rows);
}
