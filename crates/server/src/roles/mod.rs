//! The HTTP roles, one module each; `router` picks a role's routes, caps request bodies at the
//! role's `max_body_bytes`, counts and logs its requests.

mod acme;
mod api;
mod cdp;
mod enrollment;
mod est;
pub(crate) mod mp;
mod ocsp;
mod scep;
mod status;

use crate::config::{Role, RoleConfig};
use crate::error::HttpError;
use crate::{AppState, ServeError};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

pub(crate) use cdp::httpdate;

pub(crate) async fn router(
    rc: &RoleConfig,
    state: Arc<AppState>,
) -> Result<Router<Arc<AppState>>, ServeError> {
    let routes = match rc.role {
        Role::Api => api::router(),
        Role::Crl => cdp::router(),
        Role::ManagementPoint => mp::router(),
        Role::Ocsp => ocsp::router(rc, state.site.clone()).await?,
        Role::FallbackStatusPoint => status::router(rc, state.site.clone()),
        Role::Est => match &rc.est {
            Some(config) => {
                est_templates_exist(config, &state).await?;
                est::router(config)
            }
            None => Router::new(),
        },
        Role::Acme => {
            acme::check(rc, &state.site).await?;
            acme::router(rc)
        }
        Role::Scep => {
            let ra = state.scep_ra.clone().ok_or(ServeError::Role {
                role: "scep",
                source: fleetpki_ca::CaError::Field(fleetpki_model::FieldError::new(
                    "roles.scep",
                    "the RA certificate was not loaded",
                )),
            })?;
            scep::router(rc, state.clone(), ra)
        }
    };
    let role = rc.role.name();
    let max = rc.max_body_bytes;
    // Extractors stop reading a body at the cap (chunked or HTTP/2 bodies of unknown size).
    let routes = routes.layer(DefaultBodyLimit::max(max));
    // The HTTPS roles speak HTTP/2: their answers come after the whole request (see
    // `read_whole_body`). OCSP and the fallback status point read their bodies themselves
    // (after their own rate and content-type checks); the CRL role refuses an oversized
    // declared length at once.
    let routes = match rc.role {
        Role::Api | Role::ManagementPoint | Role::Est | Role::Acme => {
            routes.layer(middleware::from_fn(move |req: Request, next: Next| {
                read_whole_body(role, max, req, next)
            }))
        }
        Role::Crl => routes.layer(middleware::from_fn(move |req: Request, next: Next| {
            declared_length_within(role, max, req, next)
        })),
        Role::Ocsp | Role::FallbackStatusPoint | Role::Scep => routes,
    };
    Ok(
        routes.layer(middleware::from_fn(move |req: Request, next: Next| {
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
        })),
    )
}

/// Every template `[roles.est]` names exists (a store that is down is only logged: the role
/// answers 503 until it is back, like the others).
async fn est_templates_exist(
    config: &crate::config::EstConfig,
    state: &AppState,
) -> Result<(), ServeError> {
    let named = config
        .default_template
        .iter()
        .map(|t| ("roles.est.template".to_string(), t))
        .chain(
            config
                .labels
                .iter()
                .map(|(l, t)| (format!("roles.est.labels.{l}"), t)),
        );
    for (key, template) in named {
        match state.site.find_template(template).await {
            Ok(_) => {}
            Err(fleetpki_ca::CaError::Store(e)) => {
                tracing::warn!(error = %e, template, "cannot check the EST template now");
            }
            Err(e) => {
                return Err(ServeError::Config(crate::ConfigError {
                    key,
                    rule: e.to_string(),
                }));
            }
        }
    }
    Ok(())
}

/// The CA chain (PEM, issuing CA first): the management point's and the API's.
pub(crate) async fn ca_chain(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Response {
    (
        [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
        state.site.chain_pem(),
    )
        .into_response()
}

/// The issuing CA's latest full CRL (DER): the management point's and the API's.
pub(crate) async fn issuing_crl(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Result<Response, HttpError> {
    let issuer = state.site.issuer().role.name();
    let crl = state
        .site
        .store
        .latest_crl(issuer, false)
        .await?
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                "crl",
                "no CRL has been published yet (fleetpki crl publish)",
            )
        })?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-crl")], crl.der).into_response())
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

/// A body too large is still read (and dropped) up to this size before the refusal, for the
/// reason `read_whole_body` gives; past it the connection's client gets an early answer.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// Reads the request body to its end (keeping at most `limit` bytes) before the handler runs,
/// so that every answer, a refusal included, comes after the whole request. An answer sent
/// while the client is still sending ends the HTTP/2 stream with RST_STREAM(NO_ERROR), which
/// RFC 9113 allows, but curl 7.88 (Debian 12) then fails with "Stream error in the HTTP/2
/// framing layer" instead of showing the answer, and the problem document is lost.
async fn read_whole_body(role: &'static str, limit: usize, req: Request, next: Next) -> Response {
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
            format!("longer than {limit} bytes (roles.{role}.max_body_bytes)"),
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(kept))).await
}
