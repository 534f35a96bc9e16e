//! A site: its directory, configuration, store, CA certificates and keys; `init` and `open`.

use crate::config::{
    CONFIG_FILE, CrlConfig, KeyProtection, KeysConfig, SiteConfig, check_base_url, check_site_code,
};
use crate::error::{CaError, refuse};
use crate::keys::{KeyCustody, KeyRole, write_atomic};
use crate::{Actor, audit_event};
use fleetpki_model::audit::Outcome;
use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::template::{HashAlg, Template};
use fleetpki_store::{Change, GroupCommitter, Store};
use fleetpki_x509::cert::{self, CertInfo, CertParams, IssuerUrls};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{name, pem, serial};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use x509_cert::Certificate;
use zeroize::Zeroizing;

const YEAR: i64 = 365 * 86_400;
/// Back-dating of notBefore, so a client whose clock is a little behind accepts a fresh certificate.
pub const BACKDATE: i64 = 60;

/// A CA certificate the site holds, parsed once.
#[derive(Debug, Clone)]
pub struct CaCert {
    pub role: KeyRole,
    pub der: Vec<u8>,
    pub cert: Certificate,
    pub info: CertInfo,
}

impl CaCert {
    fn from_der(role: KeyRole, der: Vec<u8>) -> Result<Self, CaError> {
        let cert = cert::parse(role.name(), &der)?;
        let info = cert::info(&cert)?;
        Ok(Self {
            role,
            der,
            cert,
            info,
        })
    }

    fn load(role: KeyRole, path: &Path) -> Result<Self, CaError> {
        let bytes = std::fs::read(path).map_err(CaError::io(path))?;
        let der = pem::decode_all(role.name(), &bytes, "CERTIFICATE")?
            .into_iter()
            .next()
            .ok_or_else(|| {
                refuse(
                    role.name(),
                    format!("{} holds no certificate", path.display()),
                )
            })?;
        Self::from_der(role, der)
    }

    pub fn pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der)
    }
}

/// How `init` gets its CA: generated, or imported from an existing PKI.
pub enum CaSource {
    Generate {
        key_type: KeyType,
        two_tier: bool,
    },
    /// An existing CA certificate and key. A self-signed certificate becomes the site's root
    /// (with `two_tier`, an issuing CA is generated under it); any other certificate becomes the
    /// issuing CA and `chain` must hold its issuers up to a self-signed root.
    Import {
        cert: Vec<u8>,
        key_pem: Zeroizing<String>,
        key_passphrase: Option<Zeroizing<Vec<u8>>>,
        chain: Option<Vec<u8>>,
        two_tier: bool,
        key_type: KeyType,
    },
}

pub struct InitOptions {
    pub site_code: String,
    pub name: Option<String>,
    pub base_url: Option<String>,
    /// `None`: `sqlite:fleetpki.db` inside the site directory.
    pub database: Option<String>,
    /// `Some`: keys are encrypted under this passphrase; `None`: under a generated KEK file.
    pub passphrase: Option<Zeroizing<Vec<u8>>>,
    pub ca: CaSource,
}

/// An open site.
pub struct Site {
    pub dir: PathBuf,
    pub config: SiteConfig,
    pub store: Arc<dyn Store>,
    pub committer: GroupCommitter,
    pub root: CaCert,
    /// Certificates between the issuing CA and the root (imported PKIs only), issuer-first order.
    pub intermediates: Vec<CaCert>,
    pub issuing: Option<CaCert>,
    pub signing: CaCert,
    passphrase: Option<Zeroizing<Vec<u8>>>,
    issuer_key: OnceLock<PrivateKey>,
    pub(crate) contexts: crate::context::ContextCache,
}

fn ca_path(dir: &Path, file: &str) -> PathBuf {
    dir.join("ca").join(file)
}

impl Site {
    /// Creates a site in `dir` (which must not hold one already).
    pub async fn init(dir: &Path, opts: InitOptions, actor: &Actor) -> Result<Site, CaError> {
        check_site_code(&opts.site_code)?;
        let code = opts.site_code.to_ascii_uppercase();
        let site_name = opts
            .name
            .clone()
            .unwrap_or_else(|| format!("fleetpki site {code}"));
        if site_name.trim().is_empty()
            || site_name.chars().count() > 64
            || site_name.chars().any(char::is_control)
        {
            return Err(refuse("--name", "must be 1–64 printable characters"));
        }
        let base_url = opts
            .base_url
            .clone()
            .unwrap_or_else(|| "http://localhost:8080".into());
        check_base_url(&base_url)?;
        if dir.join(CONFIG_FILE).exists() {
            return Err(refuse(
                "--dir",
                format!(
                    "{} already holds a site; refusing to overwrite it",
                    dir.display()
                ),
            ));
        }
        std::fs::create_dir_all(dir.join("ca")).map_err(CaError::io(dir))?;

        let (protection, kek_file) = match opts.passphrase {
            Some(_) => (KeyProtection::Passphrase, None),
            None => (KeyProtection::KekFile, Some("secrets/kek".to_string())),
        };
        let config = SiteConfig {
            site_code: code.clone(),
            name: site_name.clone(),
            base_url,
            database: opts
                .database
                .clone()
                .unwrap_or_else(|| "sqlite:fleetpki.db".into()),
            keys: KeysConfig {
                protection,
                kek_file,
            },
            crl: CrlConfig::default(),
        };
        config.validate()?;
        let secret = match &opts.passphrase {
            Some(p) => p.clone(),
            None => KeyCustody::create_kek(
                &config
                    .kek_path(dir)
                    .ok_or_else(|| refuse("keys.kek_file", "is not set"))?,
            )?,
        };
        let custody = KeyCustody::with_secret(dir, secret);
        let now = fleetpki_model::now();
        let mut events = Vec::new();

        let (root, intermediates, issuing) = match opts.ca {
            CaSource::Generate { key_type, two_tier } => {
                let root_key = PrivateKey::generate(key_type)?;
                let root = self_signed(
                    KeyRole::Root,
                    &root_key,
                    &[
                        ("CN", &format!("fleetpki {code} Root CA")),
                        ("O", &site_name),
                    ],
                    20 * YEAR,
                    now,
                )?;
                custody.store(KeyRole::Root, &root_key)?;
                events.push((
                    "ca.create",
                    "root".to_string(),
                    format!(
                        "generated {} root CA {}",
                        key_type.name(),
                        root.info.subject
                    ),
                ));
                let issuing = if two_tier {
                    Some(sub_ca(
                        &config, &code, &site_name, &root, &root_key, key_type, &custody, now,
                    )?)
                } else {
                    None
                };
                (root, vec![], issuing)
            }
            CaSource::Import {
                cert: cert_in,
                key_pem,
                key_passphrase,
                chain,
                two_tier,
                key_type,
            } => {
                let der = pem::decode_all("--import-cert", &cert_in, "CERTIFICATE")?
                    .into_iter()
                    .next()
                    .ok_or_else(|| refuse("--import-cert", "holds no certificate"))?;
                let key =
                    PrivateKey::from_pem(&key_pem, key_passphrase.as_ref().map(|p| p.as_slice()))?;
                let imported = CaCert::from_der(KeyRole::Root, der)?;
                check_importable(&imported, &key)?;
                if imported.info.subject == imported.info.issuer
                    && cert::verify_signed_by(&imported.cert, &imported.cert).is_ok()
                {
                    custody.store(KeyRole::Root, &key)?;
                    events.push((
                        "ca.import",
                        "root".to_string(),
                        format!("imported root CA {}", imported.info.subject),
                    ));
                    let issuing = if two_tier {
                        Some(sub_ca(
                            &config, &code, &site_name, &imported, &key, key_type, &custody, now,
                        )?)
                    } else {
                        None
                    };
                    (imported, vec![], issuing)
                } else {
                    let chain = chain.ok_or_else(|| {
                        refuse(
                            "--import-chain",
                            "the imported CA is not self-signed: supply its issuers up to the root",
                        )
                    })?;
                    let (root, intermediates) = import_chain(&imported, &chain)?;
                    let issuing = CaCert {
                        role: KeyRole::Issuing,
                        ..imported
                    };
                    custody.store(KeyRole::Issuing, &key)?;
                    events.push((
                        "ca.import",
                        "issuing".to_string(),
                        format!(
                            "imported issuing CA {} under {}",
                            issuing.info.subject, root.info.subject
                        ),
                    ));
                    (root, intermediates, Some(issuing))
                }
            }
        };

        let signing_key = PrivateKey::generate(KeyType::EcdsaP256)?;
        let signing = self_signed(
            KeyRole::SiteSigning,
            &signing_key,
            &[
                ("CN", &format!("Site Server Signing Certificate {code}")),
                ("O", &site_name),
            ],
            5 * YEAR,
            now,
        )?;
        custody.store(KeyRole::SiteSigning, &signing_key)?;
        events.push((
            "site.signing-cert",
            "site-signing".to_string(),
            format!(
                "created self-signed site signing certificate, SHA-256 {}",
                cert::fingerprint(&signing.der)
            ),
        ));

        write_atomic(&ca_path(dir, "root.pem"), root.pem().as_bytes(), 0o644)?;
        if let Some(i) = &issuing {
            write_atomic(&ca_path(dir, "issuing.pem"), i.pem().as_bytes(), 0o644)?;
        }
        if !intermediates.is_empty() {
            let text: String = intermediates.iter().map(CaCert::pem).collect();
            write_atomic(&ca_path(dir, "intermediates.pem"), text.as_bytes(), 0o644)?;
        }
        write_atomic(
            &ca_path(dir, "site-signing.pem"),
            signing.pem().as_bytes(),
            0o644,
        )?;
        let toml =
            toml::to_string_pretty(&config).map_err(|e| refuse(CONFIG_FILE, e.to_string()))?;
        write_atomic(&dir.join(CONFIG_FILE), toml.as_bytes(), 0o644)?;

        let store = fleetpki_store::open(&config.database_url(dir)).await?;
        let mut changes: Vec<Change> = vec![Change::Audit(audit_event(
            actor,
            "site.init",
            &code,
            Outcome::Success,
            format!("site {code} ({site_name}) created in {}", dir.display()),
        ))];
        for (action, object, details) in events {
            changes.push(Change::Audit(audit_event(
                actor,
                action,
                &object,
                Outcome::Success,
                details,
            )));
        }
        for t in Template::bases() {
            if store.template(&t.name).await?.is_none() {
                let audit = audit_event(
                    actor,
                    "template.create",
                    &t.name,
                    Outcome::Success,
                    format!(
                        "built-in base template {} version {}",
                        t.display_name, t.version
                    ),
                );
                changes.push(Change::PutTemplate { template: t, audit });
            }
        }
        store.apply(changes).await?;
        let passphrase = opts.passphrase;
        Ok(Self::assemble(
            dir,
            config,
            store,
            root,
            intermediates,
            issuing,
            signing,
            passphrase,
        ))
    }

    /// Opens an existing site. The passphrase is needed only once a CA key must sign.
    pub async fn open(dir: &Path, passphrase: Option<Zeroizing<Vec<u8>>>) -> Result<Site, CaError> {
        let config = SiteConfig::load(dir)?;
        let root = CaCert::load(KeyRole::Root, &ca_path(dir, "root.pem"))?;
        let issuing_path = ca_path(dir, "issuing.pem");
        let issuing = if issuing_path.exists() {
            Some(CaCert::load(KeyRole::Issuing, &issuing_path)?)
        } else {
            None
        };
        let inter_path = ca_path(dir, "intermediates.pem");
        let intermediates = if inter_path.exists() {
            let bytes = std::fs::read(&inter_path).map_err(CaError::io(&inter_path))?;
            pem::decode_all("intermediates.pem", &bytes, "CERTIFICATE")?
                .into_iter()
                .map(|d| CaCert::from_der(KeyRole::Root, d))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![]
        };
        let signing = CaCert::load(KeyRole::SiteSigning, &ca_path(dir, "site-signing.pem"))?;
        let store = fleetpki_store::open(&config.database_url(dir)).await?;
        Ok(Self::assemble(
            dir,
            config,
            store,
            root,
            intermediates,
            issuing,
            signing,
            passphrase,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        dir: &Path,
        config: SiteConfig,
        store: Arc<dyn Store>,
        root: CaCert,
        intermediates: Vec<CaCert>,
        issuing: Option<CaCert>,
        signing: CaCert,
        passphrase: Option<Zeroizing<Vec<u8>>>,
    ) -> Site {
        let committer = GroupCommitter::new(store.clone(), 256);
        Site {
            dir: dir.to_path_buf(),
            config,
            store,
            committer,
            root,
            intermediates,
            issuing,
            signing,
            passphrase,
            issuer_key: OnceLock::new(),
            contexts: Default::default(),
        }
    }

    /// The CA that signs end-entity certificates: the issuing CA, or the root in a one-tier site.
    pub fn issuer(&self) -> &CaCert {
        self.issuing.as_ref().unwrap_or(&self.root)
    }

    /// The issuer's name in URLs (`issuing` or `root`).
    pub fn issuer_id(&self) -> &'static str {
        self.issuer().role.name()
    }

    /// The chain above an end-entity certificate, issuer first, root last.
    pub fn chain(&self) -> Vec<&CaCert> {
        let mut out: Vec<&CaCert> = self.issuing.iter().collect();
        out.extend(self.intermediates.iter());
        out.push(&self.root);
        out
    }

    pub fn chain_pem(&self) -> String {
        self.chain().into_iter().map(CaCert::pem).collect()
    }

    /// CDP / AIA URLs that certificates signed by `issuer` carry.
    pub fn urls_for(&self, issuer: KeyRole) -> IssuerUrls {
        IssuerUrls {
            crl: Some(self.config.crl_url(issuer.name())),
            ocsp: Some(self.config.ocsp_url()),
            ca_issuers: Some(self.config.ca_cert_url(issuer.name())),
        }
    }

    pub(crate) fn custody(&self) -> Result<KeyCustody, CaError> {
        KeyCustody::open(&self.dir, &self.config, self.passphrase.clone())
    }

    /// The issuing CA's key, decrypted on first use and kept for the life of the process.
    pub fn issuer_key(&self) -> Result<&PrivateKey, CaError> {
        if let Some(k) = self.issuer_key.get() {
            return Ok(k);
        }
        let key = self.custody()?.load(self.issuer().role)?;
        Ok(self.issuer_key.get_or_init(|| key))
    }

    /// Loads another of the site's keys (root, site signing) for a one-off signature.
    pub fn load_key(&self, role: KeyRole) -> Result<PrivateKey, CaError> {
        self.custody()?.load(role)
    }
}

/// A self-signed certificate: the root CA (`KeyRole::Root`) or the site signing certificate,
/// which is never a CA and only signs policy.
fn self_signed(
    role: KeyRole,
    key: &PrivateKey,
    subject: &[(&str, &str)],
    validity: i64,
    now: i64,
) -> Result<CaCert, CaError> {
    let is_ca = role == KeyRole::Root;
    let params = CertParams {
        serial: serial::random()?,
        subject: name::build(subject)?,
        sans: vec![],
        spki_der: key.public_key_der(),
        not_before: now - BACKDATE,
        not_after: now + validity,
        key_usage: if is_ca {
            vec![
                KeyUsageBit::DigitalSignature,
                KeyUsageBit::KeyCertSign,
                KeyUsageBit::CrlSign,
            ]
        } else {
            vec![KeyUsageBit::DigitalSignature]
        },
        ekus: vec![],
        ca: is_ca.then_some(None),
        urls: IssuerUrls {
            crl: None,
            ocsp: None,
            ca_issuers: None,
        },
    };
    let der = cert::issue(&params, None, &key.signer(HashAlg::Sha256))?;
    CaCert::from_der(role, der)
}

#[allow(clippy::too_many_arguments)]
fn sub_ca(
    config: &SiteConfig,
    code: &str,
    site_name: &str,
    root: &CaCert,
    root_key: &PrivateKey,
    key_type: KeyType,
    custody: &KeyCustody,
    now: i64,
) -> Result<CaCert, CaError> {
    let key = PrivateKey::generate(key_type)?;
    let not_after = (now + 10 * YEAR).min(root.info.not_after);
    let params = CertParams {
        serial: serial::random()?,
        subject: name::build(&[
            ("CN", &format!("fleetpki {code} Issuing CA")),
            ("O", site_name),
        ])?,
        sans: vec![],
        spki_der: key.public_key_der(),
        not_before: (now - BACKDATE).max(root.info.not_before),
        not_after,
        key_usage: vec![
            KeyUsageBit::DigitalSignature,
            KeyUsageBit::KeyCertSign,
            KeyUsageBit::CrlSign,
        ],
        ekus: vec![],
        ca: Some(Some(0)),
        urls: IssuerUrls {
            crl: Some(config.crl_url("root")),
            ocsp: None,
            ca_issuers: Some(config.ca_cert_url("root")),
        },
    };
    let der = cert::issue(&params, Some(&root.cert), &root_key.signer(HashAlg::Sha256))?;
    custody.store(KeyRole::Issuing, &key)?;
    CaCert::from_der(KeyRole::Issuing, der)
}

/// An imported CA certificate must be a CA that may sign certificates, be within validity,
/// and match the imported key.
fn check_importable(ca: &CaCert, key: &PrivateKey) -> Result<(), CaError> {
    if !ca.info.is_ca {
        return Err(refuse(
            "--import-cert",
            format!(
                "{} is not a CA certificate (basicConstraints CA:TRUE is missing)",
                ca.info.subject
            ),
        ));
    }
    if !ca.info.key_usage.is_empty() && !ca.info.key_usage.contains(&KeyUsageBit::KeyCertSign) {
        return Err(refuse(
            "--import-cert",
            format!(
                "{} may not sign certificates (keyUsage lacks keyCertSign)",
                ca.info.subject
            ),
        ));
    }
    let now = fleetpki_model::now();
    if ca.info.not_after <= now || ca.info.not_before > now {
        return Err(refuse(
            "--import-cert",
            format!("{} is not within its validity period", ca.info.subject),
        ));
    }
    if key.public_key_der()
        != ca
            .cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der_vec()?
    {
        return Err(refuse(
            "--import-key",
            format!("the key does not belong to {}", ca.info.subject),
        ));
    }
    Ok(())
}

/// Orders `chain` from the imported CA's issuer up to a self-signed root, verifying each link.
fn import_chain(ca: &CaCert, chain: &[u8]) -> Result<(CaCert, Vec<CaCert>), CaError> {
    let mut pool = pem::decode_all("--import-chain", chain, "CERTIFICATE")?
        .into_iter()
        .map(|d| CaCert::from_der(KeyRole::Root, d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut path: Vec<CaCert> = Vec::new();
    let mut child = ca.clone();
    for _ in 0..8 {
        let pos = pool
            .iter()
            .position(|c| {
                c.info.subject == child.info.issuer
                    && cert::verify_signed_by(&child.cert, &c.cert).is_ok()
            })
            .ok_or_else(|| {
                refuse(
                    "--import-chain",
                    format!("no certificate in the chain signed {}", child.info.subject),
                )
            })?;
        let parent = pool.swap_remove(pos);
        if !parent.info.is_ca {
            return Err(refuse(
                "--import-chain",
                format!("{} is not a CA certificate", parent.info.subject),
            ));
        }
        if parent.info.subject == parent.info.issuer {
            cert::verify_signed_by(&parent.cert, &parent.cert)?;
            return Ok((parent, path));
        }
        child = parent.clone();
        path.push(parent);
    }
    Err(refuse(
        "--import-chain",
        "does not reach a self-signed root within 8 certificates",
    ))
}

/// `der` for a value that must encode: a failure here is a bug in our own types.
trait ToDerVec {
    fn to_der_vec(&self) -> Result<Vec<u8>, CaError>;
}

impl<T: der::Encode> ToDerVec for T {
    fn to_der_vec(&self) -> Result<Vec<u8>, CaError> {
        self.to_der()
            .map_err(|e| refuse("certificate", format!("cannot be encoded: {e}")))
    }
}
