//! The HTTPS accept loop: TLS handshake (with a deadline), then HTTP/1.1 or HTTP/2 on the
//! connection, each request carrying the peer's address and verified client certificate.

use super::verifier::self_signed_identity;
use crate::AppState;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// In-flight requests get this long to finish at shutdown (every listener, TLS or not).
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The client certificate a connection presented, verified by the listener's verifier.
#[derive(Debug)]
pub struct ClientCert {
    /// The end-entity certificate, DER.
    pub der: Vec<u8>,
    /// Lower-case hex SHA-256 of `der`.
    pub sha256: String,
    /// A self-signed identity (enhanced HTTP registration), not a certificate from the PKI.
    pub self_signed: bool,
    /// The intermediates the client sent with it, DER.
    pub intermediates: Vec<Vec<u8>>,
    /// The CRL generation read before the handshake (see `ClientTrust::generation`): the
    /// handshake was checked against it or a newer one.
    pub generation: u64,
    /// The leaf's validity (not before, not after; seconds), if readable.
    pub window: Option<(i64, i64)>,
}

/// Who is on the other end of a request; every HTTPS request carries one as an extension.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub cert: Option<Arc<ClientCert>>,
}

impl Peer {
    fn from_connection(addr: SocketAddr, conn: &rustls::ServerConnection, generation: u64) -> Peer {
        let cert = conn.peer_certificates().and_then(|chain| {
            let (leaf, intermediates) = chain.split_first()?;
            let der = leaf.as_ref().to_vec();
            // Parsed once for both: whether it is a registration identity, and its validity.
            let parsed = fleetpki_x509::cert::parse("client certificate", &der)
                .ok()
                .and_then(|c| fleetpki_x509::cert::info(&c).ok().map(|i| (c, i)));
            let self_signed = parsed
                .as_ref()
                .is_some_and(|(c, i)| self_signed_identity(c, i));
            let window = parsed.as_ref().map(|(_, i)| (i.not_before, i.not_after));
            Some(Arc::new(ClientCert {
                sha256: fleetpki_x509::cert::fingerprint(&der),
                self_signed,
                intermediates: intermediates.iter().map(|c| c.as_ref().to_vec()).collect(),
                generation,
                window,
                der,
            }))
        });
        Peer { addr, cert }
    }
}

/// Serves `app` over TLS on `listener` until `stop` turns true, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: Router,
    state: Arc<AppState>,
    role: &'static str,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                // Out of file descriptors and the like: wait rather than spin or die.
                Err(e) => {
                    tracing::warn!(role, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = crate::stopped(&mut stop) => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let state = state.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let generation = state.tls.as_ref().map_or(0, |t| t.trust.generation());
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    let reason = crate::metrics::handshake_reason(&e);
                    state.metrics.handshake_failed(role, reason);
                    tracing::info!(role, peer = %addr, reason, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    state.metrics.handshake_failed(role, "timeout");
                    return;
                }
            };
            let peer = Peer::from_connection(addr, tls.get_ref().1, generation);
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(peer.clone());
                req.extensions_mut().insert(ConnectInfo(addr));
                app.clone().oneshot(req)
            });
            let conn = builder
                .serve_connection(TokioIo::new(tls), svc)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(role, peer = %addr, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            role,
            "connections still open after the drain deadline; closing them"
        );
    }
    Ok(())
}
