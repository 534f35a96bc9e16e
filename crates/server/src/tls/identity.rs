//! The HTTPS roles' server certificate: the administrator's PKI certificate (checked against the
//! `site-system-https` profile before use) or, in enhanced HTTP, the one the site issues itself;
//! held behind a swappable resolver so site maintenance can renew it without a restart.

use crate::config::{ServeConfig, TlsConfig, TlsMode};
use arc_swap::ArcSwap;
use fleetpki_ca::Site;
use fleetpki_ca::site_system::ServerIdentity;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// Why the server certificate could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{key}: {rule}")]
    Config { key: &'static str, rule: String },
    #[error(
        "tls.certificate: {path} does not meet the site-system-https profile:\n{findings}\ncheck it with `fleetpki check --profile site-system-https --intranet-fqdn {fqdn} {path}`"
    )]
    Profile {
        path: String,
        fqdn: String,
        findings: String,
    },
    #[error(transparent)]
    Ca(#[from] fleetpki_ca::CaError),
}

fn config_err(key: &'static str, rule: impl Into<String>) -> IdentityError {
    IdentityError::Config {
        key,
        rule: rule.into(),
    }
}

/// The current server certificate; `ResolvesServerCert` for every HTTPS listener.
#[derive(Debug)]
pub(crate) struct ServerCert {
    current: ArcSwap<CertifiedKey>,
}

impl ServerCert {
    pub fn new(key: CertifiedKey) -> Self {
        Self {
            current: ArcSwap::from_pointee(key),
        }
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    pub fn replace(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The names the site-issued certificate carries: the intranet FQDN, the internet FQDN, then
/// the address of every TLS role bound to a specific IP. `serve` prints `https://IP:PORT` for
/// those listeners, and a URL copied from that line must verify with the site root alone
/// (`curl --cacert root.pem`), as it would against any web server whose certificate names the
/// address it is reached at. An unspecified address (0.0.0.0, ::) names no host: nothing is
/// added for it, and its URL uses the intranet FQDN (see [`url_host`]).
pub(crate) fn names(config: &ServeConfig) -> Vec<String> {
    let tls = &config.tls;
    let mut names = vec![tls.intranet_fqdn.clone()];
    let ips = config
        .roles
        .iter()
        .filter(|r| r.role.is_tls() && !r.listen.ip().is_unspecified())
        .map(|r| r.listen.ip().to_string());
    for n in tls.internet_fqdn.iter().cloned().chain(ips) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// The host of the URL `serve` prints for a TLS listener bound to `ip`: the address itself
/// when the server certificate names it (an iPAddress SAN), else the intranet FQDN, which the
/// certificate always names (the `site-system-https` profile checks an administrator's
/// certificate for it; the site-issued one has it as its CN and first SAN). A URL whose host
/// the certificate does not cover fails hostname verification in every client, so the line
/// names the host clients must use; the caller logs the address bound beside it. Returns the
/// host (an IPv6 literal in brackets) and whether it is the address itself.
pub(crate) fn url_host(cert: &CertifiedKey, ip: IpAddr, tls: &TlsConfig) -> (String, bool) {
    let covered = !ip.is_unspecified() && cert.cert.first().is_some_and(|leaf| names_ip(leaf, ip));
    let host = if covered {
        ip.to_string()
    } else {
        tls.intranet_fqdn.clone()
    };
    let host = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host,
    };
    (host, covered)
}

/// Whether the certificate `der` carries `ip` as an iPAddress SAN.
fn names_ip(der: &[u8], ip: IpAddr) -> bool {
    let Ok(info) = fleetpki_x509::cert::parse("server certificate", der)
        .and_then(|c| fleetpki_x509::cert::info(&c))
    else {
        return false;
    };
    info.sans
        .iter()
        .filter_map(|s| s.strip_prefix("IP:"))
        .any(|s| s.parse::<IpAddr>() == Ok(ip))
}

/// A certified key from the site's own identity.
pub(crate) fn from_site_identity(
    id: &ServerIdentity,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, IdentityError> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key.to_pkcs8_der().to_vec()));
    let chain = id
        .chain
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        config_err(
            "tls",
            format!("the site-issued certificate is unusable: {e}"),
        )
    })
}

/// Enhanced HTTP: the site-issued certificate, issued or renewed now if due. Returns the key
/// and its expiry.
pub(crate) async fn site_issued(
    site: &Site,
    config: &ServeConfig,
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, ServerIdentity, bool), IdentityError> {
    let tls = &config.tls;
    let (id, outcome) = site
        .site_system_identity(
            &names(config),
            tls.renew_before_days * 86_400,
            fleetpki_model::now(),
        )
        .await?;
    let key = from_site_identity(&id, provider)?;
    Ok((
        key,
        id,
        outcome == fleetpki_ca::site_system::Renewal::Issued,
    ))
}

/// PKI mode: the administrator's certificate, checked against `site-system-https`.
pub(crate) fn load_pki(
    tls: &TlsConfig,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, IdentityError> {
    let TlsMode::Pki {
        certificate,
        key,
        password_file,
    } = &tls.mode
    else {
        return Err(config_err("tls.mode", "not pki"));
    };
    let bytes = read("tls.certificate", certificate)?;
    let password = match password_file {
        Some(p) => {
            let text = read("tls.password_file", p)?;
            Some(
                String::from_utf8(text)
                    .map_err(|_| config_err("tls.password_file", "is not UTF-8 text"))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            )
        }
        None => None,
    };
    let input = fleetpki_profiles::read_input(&bytes, password.as_deref())
        .map_err(|e| config_err("tls.certificate", e.to_string()))?;
    let profile = fleetpki_profiles::profile("site-system-https")
        .map_err(|e| config_err("tls.certificate", e.to_string()))?;
    let ctx = fleetpki_profiles::Context {
        intranet_fqdn: Some(tls.intranet_fqdn.clone()),
        internet_fqdn: tls.internet_fqdn.clone(),
        computer_name: None,
        service_name: None,
        format: Some(input.format),
        key_exportable: input.key_exportable,
        now: fleetpki_model::now(),
    };
    let report = fleetpki_profiles::check(profile, &input.facts, &ctx);
    let failures = report.failures();
    if !failures.is_empty() {
        return Err(IdentityError::Profile {
            path: certificate.display().to_string(),
            fqdn: tls.intranet_fqdn.clone(),
            findings: failures
                .iter()
                .map(|f| format!("  [{}] {}: {}", f.rule, f.found, f.advice))
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    let now = fleetpki_model::now();
    if input.facts.not_after < now {
        return Err(config_err(
            "tls.certificate",
            format!("{} has expired", certificate.display()),
        ));
    }
    let private = match (&input.key_pkcs8, key) {
        (_, Some(path)) => {
            let pem = read("tls.key", path)?;
            PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                config_err(
                    "tls.key",
                    format!("{}: no usable PEM private key: {e}", path.display()),
                )
            })?
        }
        (Some(k), None) => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.0.to_vec())),
        (None, None) => PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
            config_err(
                "tls.key",
                "the certificate file holds no private key: set tls.key to the key's PEM file",
            )
        })?,
    };
    let mut chain = vec![CertificateDer::from(input.der.clone())];
    chain.extend(input.chain.iter().map(|d| CertificateDer::from(d.clone())));
    let ck = CertifiedKey::from_der(chain, private, provider)
        .map_err(|e| config_err("tls.key", format!("cannot use the key: {e}")))?;
    ck.keys_match().map_err(|e| {
        config_err(
            "tls.key",
            format!("the private key does not belong to the certificate: {e}"),
        )
    })?;
    Ok(ck)
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(path).map_err(|e| config_err(key, format!("cannot read {}: {e}", path.display())))
}
