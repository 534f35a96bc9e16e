//! fleetpki's site roles over HTTP. Roles that share a listen address share one socket (the
//! CRL and OCSP URLs in issued certificates both hang off the site's base URL); every listener
//! also answers `/healthz` and `/metrics`.

pub mod config;
mod metrics;
mod ratelimit;
mod roles;

pub use config::{ConfigError, OcspSigner, Role, RoleConfig, ServeConfig};

use axum::Router;
use fleetpki_ca::Site;
use metrics::Metrics;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
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
}

/// What every handler may reach.
pub(crate) struct AppState {
    pub site: Arc<Site>,
    pub metrics: Metrics,
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
    let state = Arc::new(AppState {
        site,
        metrics: Metrics::default(),
    });
    let mut by_addr: BTreeMap<SocketAddr, Vec<&RoleConfig>> = BTreeMap::new();
    for rc in &config.roles {
        by_addr.entry(rc.listen).or_default().push(rc);
    }
    let (tx, rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut urls = Vec::new();
    for (addr, roles) in by_addr {
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
        for rc in &roles {
            router = router.merge(roles::router(rc, state.clone()).await?);
            urls.push((rc.role, format!("http://{local}")));
        }
        let app = router.merge(metrics::router()).with_state(state.clone());
        let mut stop = rx.clone();
        tasks.spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
        });
    }
    urls.sort();
    Ok(Running {
        roles: urls,
        shutdown: tx,
        tasks,
    })
}
