//! `agent install`: creates the agent's directory, pins the site root and site signing
//! certificate (from files, a fingerprint, or — only when allowed — on first use), and makes
//! the self-signed identity it registers with.

use crate::client::{ServerTrust, SiteClient};
use crate::config::{AgentConfig, CONFIG_FILE, normalise_fingerprint};
use crate::engine::AgentError;
use crate::identity;
use crate::store::{AgentStore, CertMeta, Source, StoreName};
use crate::trust::{self, Pins};
use fleetpki_model::UnixTime;
use fleetpki_x509::cert::fingerprint;
use std::path::PathBuf;

/// How the site signing certificate is pinned.
pub enum SigningPin {
    /// The certificate itself (DER), from a file the administrator distributed.
    Certificate(Vec<u8>),
    /// Its SHA-256: fetched from the management point at install and checked.
    Fingerprint(String),
    /// Neither: trust on first use (requires `allow_tofu`).
    FirstUse,
}

pub struct InstallOptions {
    pub dir: PathBuf,
    pub site: String,
    pub name: String,
    pub fqdn: Option<String>,
    /// The root CA certificate (DER); None only with `allow_tofu`.
    pub root: Option<Vec<u8>>,
    pub signing: SigningPin,
    pub allow_tofu: bool,
    /// The fallback status point's URL (`http://fsp.example/status`), for state messages sent
    /// before the agent holds a verified policy that names one.
    pub status_url: Option<String>,
}

/// What install did, for the operator.
#[derive(Debug)]
pub struct Installed {
    pub config: AgentConfig,
    /// Loud notes: anything trusted on first use.
    pub warnings: Vec<String>,
}

fn invalid(field: &str, rule: impl Into<String>) -> AgentError {
    AgentError::Invalid {
        field: field.into(),
        rule: rule.into(),
    }
}

pub async fn install(o: InstallOptions, now: UnixTime) -> Result<Installed, AgentError> {
    if o.dir.join(CONFIG_FILE).exists() {
        return Err(invalid(
            "dir",
            format!(
                "{} already holds an agent; remove it or choose another --dir (pins are never replaced in place)",
                o.dir.display()
            ),
        ));
    }
    let mut warnings = Vec::new();
    let tofu_needed = o.root.is_none() || matches!(o.signing, SigningPin::FirstUse);
    if tofu_needed && !o.allow_tofu {
        return Err(invalid(
            if o.root.is_none() {
                "root"
            } else {
                "site-signing-cert"
            },
            "required: pass --root and --site-signing-cert or --site-signing-fingerprint (or allow trust on first use with --allow-tofu)",
        ));
    }
    // The identity first: the management point takes no connection without a client
    // certificate, and in enhanced HTTP this self-signed one is what it accepts.
    let id = identity::create(&o.name, now)?;
    let presented = || {
        Some(crate::client::Presented {
            chain: vec![id.der.clone()],
            key: &id.key,
        })
    };
    let root = match o.root {
        Some(r) => r,
        None => {
            let c = SiteClient::new(&o.site, ServerTrust::FirstUse, presented())?;
            let chain = c.chain().await?;
            let root = chain
                .into_iter()
                .find(|d| {
                    fleetpki_x509::cert::parse("chain", d)
                        .ok()
                        .and_then(|c| fleetpki_x509::cert::info(&c).ok())
                        .is_some_and(|i| i.subject == i.issuer && i.is_ca)
                })
                .ok_or_else(|| invalid("root", "the management point's chain holds no root CA"))?;
            warnings.push(format!(
                "TRUST ON FIRST USE: pinned the root CA the site presented, SHA-256 {}; verify it out of band",
                fingerprint(&root)
            ));
            root
        }
    };
    let signing = match o.signing {
        SigningPin::Certificate(d) => d,
        SigningPin::Fingerprint(f) => {
            let want =
                normalise_fingerprint(&f).map_err(|r| invalid("site-signing-fingerprint", r))?;
            let c = SiteClient::new(&o.site, ServerTrust::Pinned(&root), presented())?;
            let offered = c.signing_cert().await?;
            trust::check_offered("site signing certificate", &want, &offered)?;
            offered
        }
        SigningPin::FirstUse => {
            let c = SiteClient::new(&o.site, ServerTrust::Pinned(&root), presented())?;
            let offered = c.signing_cert().await?;
            warnings.push(format!(
                "TRUST ON FIRST USE: pinned the site signing certificate the site presented, SHA-256 {}; verify it out of band",
                fingerprint(&offered)
            ));
            offered
        }
    };
    let config = AgentConfig {
        site: o.site.trim_end_matches('/').to_string(),
        name: o.name,
        fqdn: o.fqdn,
        root_sha256: fingerprint(&root),
        signing_sha256: fingerprint(&signing),
        tofu: !warnings.is_empty(),
        status_url: o.status_url,
    };
    config
        .validate()
        .map_err(|(field, rule)| invalid(field, rule))?;
    std::fs::create_dir_all(&o.dir).map_err(crate::files::io(&o.dir))?;
    let store = AgentStore::open(&o.dir)?;
    trust::save_pins(
        &o.dir,
        &Pins {
            root: root.clone(),
            signing,
        },
    )?;
    store.put_trusted(
        StoreName::Root,
        &root,
        CertMeta {
            source: Source::Install,
            ..CertMeta::default()
        },
    )?;
    identity::save(&o.dir, &id)?;
    // The config last: its presence is what makes the directory an installed agent.
    config.save(&o.dir)?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(Installed { config, warnings })
}
