//! The HTTP roles, one module each; `router` picks a role's routes and counts its requests.

mod cdp;
mod ocsp;
mod status;

use crate::config::{Role, RoleConfig};
use crate::{AppState, ServeError};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::Arc;

pub(crate) use cdp::httpdate;

pub(crate) async fn router(
    rc: &RoleConfig,
    state: Arc<AppState>,
) -> Result<Router<Arc<AppState>>, ServeError> {
    let routes = match rc.role {
        Role::Crl => cdp::router(),
        Role::Ocsp => ocsp::router(rc, state.site.clone()).await?,
        Role::FallbackStatusPoint => status::router(rc, state.site.clone()),
    };
    let role = rc.role.name();
    Ok(
        routes.layer(middleware::from_fn(move |req: Request, next: Next| {
            let state = state.clone();
            async move {
                let resp = next.run(req).await;
                state.metrics.count(role, resp.status());
                resp
            }
        })),
    )
}

/// Why a request body was not read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than the role's `max_body_bytes` (413).
    TooLarge { limit: usize },
    /// The connection failed while reading it.
    Read(String),
}

/// Reads a body of at most `limit` bytes: refused from Content-Length before reading when it
/// says too much, and cut off while reading when it lied or was chunked.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge { limit })
        }
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

/// The media type of a Content-Type header, lower-cased, without parameters; None if absent.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).map(|v| {
        let t = v.to_str().unwrap_or("");
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}
