//! The HTTP roles, one module each; `router` picks a role's routes and counts its requests.

mod api;
mod cdp;
pub(crate) mod mp;

use crate::AppState;
use crate::config::{Role, RoleConfig};
use crate::error::HttpError;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::body::Body as _;
use std::pin::Pin;
use std::sync::Arc;

pub(crate) fn router(rc: &RoleConfig, state: Arc<AppState>) -> Router<Arc<AppState>> {
    let routes = match rc.role {
        Role::Api => {
            let limit = rc.max_body_bytes;
            api::router().layer(middleware::from_fn(move |req: Request, next: Next| {
                read_whole_body(limit, req, next)
            }))
        }
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

/// A body too large is still read (and dropped) up to this size before the refusal, for the
/// reason `read_whole_body` gives; past it the connection's client gets an early answer.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// Reads the request body to its end (keeping at most `limit` bytes) before the handler runs,
/// so that every answer, a refusal included, comes after the whole request. An answer sent
/// while the client is still sending ends the HTTP/2 stream with RST_STREAM(NO_ERROR), which
/// RFC 9113 allows, but curl 7.88 (Debian 12) then fails with "Stream error in the HTTP/2
/// framing layer" instead of showing the answer, and the problem document is lost.
async fn read_whole_body(limit: usize, req: Request, next: Next) -> Response {
    let (parts, mut body) = req.into_parts();
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                return HttpError::bad_request("body", format!("cannot be read: {e}"))
                    .into_response();
            }
        };
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total <= limit {
                kept.extend_from_slice(&data);
            } else if total > DRAIN_LIMIT {
                break;
            }
        }
    }
    if total > limit {
        return HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            format!("longer than {limit} bytes (roles.api.max_body_bytes)"),
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(kept))).await
}
