//! fleetpki's site roles over HTTP. Roles that share a listen address share one socket (the
//! CRL and OCSP URLs in issued certificates both hang off the site's base URL); every listener
//! also answers `/healthz` and `/metrics`.

pub mod config;
mod error;
mod maintenance;
mod metrics;
mod ratelimit;
mod roles;
pub mod tls;

pub use config::{ConfigError, OcspSigner, Role, RoleConfig, ScepEndpoint, ServeConfig, TlsMode};

use axum::Router;
use fleetpki_ca::Site;
use fleetpki_ca::keys::KeyRole;
use fleetpki_x509::key::PrivateKey;
use metrics::Metrics;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("roles.{role}.listen: cannot listen on {addr}: {source}")]
    Bind {
        role: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A role could not be set up (e.g. the OCSP responder's signing key does not open).
    #[error("roles.{role}: {source}")]
    Role {
        role: &'static str,
        source: fleetpki_ca::CaError,
    },
    #[error(transparent)]
    Identity(#[from] tls::IdentityError),
    #[error(transparent)]
    Trust(#[from] tls::TrustError),
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Ca(#[from] fleetpki_ca::CaError),
}

/// TLS material shared by the HTTPS listeners and renewed by site maintenance.
pub(crate) struct TlsState {
    pub provider: Arc<rustls::crypto::CryptoProvider>,
    pub trust: Arc<tls::verifier::ClientTrust>,
    pub cert: Arc<tls::identity::ServerCert>,
}

/// What every handler may reach.
pub(crate) struct AppState {
    pub site: Arc<Site>,
    pub metrics: Metrics,
    pub config: ServeConfig,
    pub tls: Option<TlsState>,
    /// The store's policy version, refreshed by site maintenance.
    pub policy_version: AtomicI64,
    /// The site signing key, decrypted once at start (management point only).
    pub signing_key: Option<PrivateKey>,
    /// Every role's URL, known once all are bound.
    pub urls: OnceLock<BTreeMap<&'static str, String>>,
    pub policy_cache: roles::mp::PolicyCache,
    /// Whom each site-issued client certificate was issued to (the management point's lookup).
    pub issued_to: roles::mp::IssuedTo,
    /// The SCEP registration authority (the `scep` role only).
    pub scep_ra: Option<Arc<fleetpki_ca::scep::ScepRa>>,
}

/// A running server: the URL of each role, and the means to stop it.
pub struct Running {
    pub roles: Vec<(Role, String)>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<std::io::Result<()>>,
}

impl Running {
    /// The URL a role listens on.
    pub fn url(&self, role: Role) -> Option<&str> {
        self.roles
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, u)| u.as_str())
    }

    /// Stops accepting, lets in-flight requests finish, and waits for every listener.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until a listener fails (they run until shutdown otherwise).
    pub async fn wait(&mut self) -> Option<std::io::Result<()>> {
        self.tasks
            .join_next()
            .await
            .map(|r| r.unwrap_or_else(|e| Err(std::io::Error::other(e))))
    }
}

/// Binds every enabled role and starts serving.
pub async fn start(site: Arc<Site>, config: &ServeConfig) -> Result<Running, ServeError> {
    // Site maintenance's first pass: no role serves, or checks against, a missing CRL.
    // A store that is down now is reported by /healthz and retried hourly; it does not stop
    // the roles that can still answer (OCSP tryLater, 503s).
    if let Err(e) = maintenance::ensure_crls(&site).await {
        tracing::warn!(error = %e, "site maintenance could not publish the CRLs");
    }
    let tls_state = if config.roles.iter().any(|r| r.role.is_tls()) {
        Some(tls_state(&site, config).await?)
    } else {
        None
    };
    let signing_key = if config.roles.iter().any(|r| r.role == Role::ManagementPoint) {
        Some(site.load_key(KeyRole::SiteSigning)?)
    } else {
        None
    };
    let scep_ra = if config.roles.iter().any(|r| r.role == Role::Scep) {
        let ra = site
            .scep_ra(fleetpki_model::now())
            .await
            .map_err(|source| ServeError::Role {
                role: "scep",
                source,
            })?;
        Some(Arc::new(ra))
    } else {
        None
    };
    let policy_version = site.store.policy_version().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the policy version; site maintenance retries");
        0
    });
    let state = Arc::new(AppState {
        site,
        metrics: Metrics::default(),
        config: config.clone(),
        tls: tls_state,
        policy_version: AtomicI64::new(policy_version),
        signing_key,
        urls: OnceLock::new(),
        policy_cache: Default::default(),
        issued_to: Default::default(),
        scep_ra,
    });
    // Roles on one fixed address share its socket (CRL and OCSP under the site's base URL);
    // each role on an ephemeral port gets its own.
    let mut by_addr: BTreeMap<(bool, SocketAddr, usize), Vec<&RoleConfig>> = BTreeMap::new();
    for (i, rc) in config.roles.iter().enumerate() {
        let unique = if rc.listen.port() == 0 { i + 1 } else { 0 };
        by_addr
            .entry((rc.role.is_tls(), rc.listen, unique))
            .or_default()
            .push(rc);
    }
    let (tx, rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut urls = Vec::new();
    for ((is_tls, addr, _), roles) in by_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind {
                role: roles[0].role.name(),
                addr,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| ServeError::Bind {
            role: roles[0].role.name(),
            addr,
            source,
        })?;
        let mut router: Router<Arc<AppState>> = Router::new();
        let url = match (is_tls, &state.tls) {
            (true, Some(t)) => {
                let (host, names_addr) =
                    tls::identity::url_host(&t.cert.current(), local.ip(), &config.tls);
                if !names_addr {
                    tracing::info!(
                        role = roles[0].role.name(),
                        addr = %local,
                        host,
                        "the server certificate does not name the address bound: the URL names the host it does"
                    );
                }
                format!("https://{host}:{}", local.port())
            }
            _ => format!("{}://{local}", if is_tls { "https" } else { "http" }),
        };
        for rc in &roles {
            router = router.merge(roles::router(rc, state.clone()).await?);
            urls.push((rc.role, url.clone()));
        }
        let app = router.merge(metrics::router()).with_state(state.clone());
        let stop = rx.clone();
        if let (true, Some(t)) = (is_tls, &state.tls) {
            let mandatory = roles.iter().all(|r| r.role.requires_client_certificate());
            let server_config = tls::server_config(
                t.provider.clone(),
                t.trust.verifier(mandatory),
                t.cert.clone(),
            )?;
            let role = roles[0].role.name();
            tasks.spawn(tls::accept::serve(
                listener,
                Arc::new(server_config),
                app,
                state.clone(),
                role,
                stop,
            ));
        } else {
            let (mut stop, mut deadline) = (stop.clone(), stop);
            let role = roles[0].role.name();
            tasks.spawn(async move {
                let serve = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move { stopped(&mut stop).await });
                // The same drain deadline as the TLS listeners: a client that never finishes
                // its request must not hold the shutdown forever.
                tokio::select! {
                    r = serve => r,
                    _ = async {
                        stopped(&mut deadline).await;
                        tokio::time::sleep(tls::accept::DRAIN_TIMEOUT).await;
                    } => {
                        tracing::warn!(role, "connections still open after the drain deadline; closing them");
                        Ok(())
                    }
                }
            });
        }
    }
    urls.sort();
    let _ = state
        .urls
        .set(urls.iter().map(|(r, u)| (r.name(), u.clone())).collect());
    let maint = state.clone();
    let stop = rx.clone();
    tasks.spawn(async move {
        maintenance::run(maint, stop).await;
        Ok(())
    });
    Ok(Running {
        roles: urls,
        shutdown: tx,
        tasks,
    })
}

/// Site maintenance's first pass (CRLs present, server certificate issued or loaded) and the
/// TLS material built from it.
async fn tls_state(site: &Arc<Site>, config: &ServeConfig) -> Result<TlsState, ServeError> {
    let provider = tls::provider();
    let key = match &config.tls.mode {
        TlsMode::EnhancedHttp => {
            let (key, id, issued) = tls::identity::site_issued(site, config, &provider).await?;
            if issued {
                tracing::info!(
                    serial = id.serial,
                    "site maintenance issued the site-system certificate"
                );
            }
            key
        }
        TlsMode::Pki { .. } => tls::identity::load_pki(&config.tls, &provider)?,
    };
    let crls = if config.tls.check_crl {
        maintenance::crls(site).await?.0
    } else {
        Vec::new()
    };
    let trust = tls::verifier::ClientTrust::new(
        provider.clone(),
        &site.root.der,
        site.issuing.as_ref().map(|c| c.der.as_slice()),
        crls,
        config.tls.mode == TlsMode::EnhancedHttp,
    )?;
    Ok(TlsState {
        provider,
        trust: Arc::new(trust),
        cert: Arc::new(tls::identity::ServerCert::new(key)),
    })
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
