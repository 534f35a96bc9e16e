//! The HTTP roles, one module each; `router` picks a role's routes, caps request bodies at the
//! role's `max_body_bytes` and counts its requests.

mod cdp;
pub(crate) mod mp;

use crate::AppState;
use crate::config::{Role, RoleConfig};
use crate::error::HttpError;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub(crate) fn router(rc: &RoleConfig, state: Arc<AppState>) -> Router<Arc<AppState>> {
    let routes = match rc.role {
        Role::Crl => cdp::router(),
        Role::ManagementPoint => mp::router(),
    };
    let role = rc.role.name();
    let max = rc.max_body_bytes;
    routes
        // Extractors stop reading a body at the cap (chunked or HTTP/2 bodies of unknown size).
        .layer(DefaultBodyLimit::max(max))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            declared_length_within(role, max, req, next)
        }))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let state = state.clone();
            async move {
                let resp = next.run(req).await;
                state.metrics.count(role, resp.status());
                resp
            }
        }))
}

/// Refuses a request whose declared length exceeds the role's cap before any of its body is
/// read, so a client waiting for `100 Continue` never sends it and gets a clean 413 (a body of
/// undeclared length is stopped by `DefaultBodyLimit` as it is read).
async fn declared_length_within(
    role: &'static str,
    max: usize,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > max as u64 => HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            format!("{n} bytes exceeds the limit of {max} bytes (roles.{role}.max_body_bytes)"),
        )
        .into_response(),
        _ => next.run(req).await,
    }
}
