//! The HTTP roles, one module each; `router` picks a role's routes and counts its requests.

mod api;
mod cdp;
pub(crate) mod mp;

use crate::AppState;
use crate::config::{Role, RoleConfig};
use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use std::sync::Arc;

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
                let resp = next.run(req).await;
                state.metrics.count(role, resp.status());
                resp
            }
        }))
}
