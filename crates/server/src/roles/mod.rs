//! The HTTP roles, one module each; `router` picks a role's routes, counts and logs its requests.

mod api;
mod cdp;
pub(crate) mod mp;

use crate::AppState;
use crate::config::{Role, RoleConfig};
use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub(crate) fn router(rc: &RoleConfig, state: Arc<AppState>) -> Router<Arc<AppState>> {
    let routes = match rc.role {
        Role::Api => api::router(),
        Role::Crl => cdp::router(),
        Role::ManagementPoint => mp::router(),
    };
    let role = rc.role.name();
    routes
        .layer(axum::extract::DefaultBodyLimit::max(rc.max_body_bytes))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let state = state.clone();
            async move {
                let started = Instant::now();
                let method = req.method().clone();
                // The path only: a query string may carry a client's secrets (enrollment tokens).
                let path = req.uri().path().to_owned();
                let peer = req
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(a)| *a);
                let resp = next.run(req).await;
                let status = resp.status();
                state.metrics.count(role, status);
                // One event per request, on its own target so it can be filtered apart.
                tracing::info!(
                    target: "fleetpki_server::request",
                    role,
                    method = %method,
                    path = %path,
                    status = status.as_u16(),
                    // Whole microseconds, so the number prints without float noise.
                    latency_ms = started.elapsed().as_micros() as f64 / 1e3,
                    peer = %peer.map_or_else(|| "-".to_string(), |a| a.to_string()),
                    "request"
                );
                resp
            }
        }))
}
