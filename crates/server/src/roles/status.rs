//! The `fallback-status-point` role: `POST /status` takes a client's state message and stores it.
//!
//! Unauthenticated by design (a client that cannot get or use its certificate must still be
//! able to say so), so every message is only what the sender claims, and the role defends
//! itself: at most `rate_per_minute` requests per source address (IPv6 by /64), at most
//! `max_body_bytes` per message, and a strict schema.
//!
//! ```json
//! { "client": "PC1.fleet.test", "kind": "selection-failed",
//!   "message": "client certificate selection failed: 3 candidates",
//!   "details": { "candidates": 3 } }
//! ```
//! - `client` (required): the name the client goes by, 1–255 characters, no control characters.
//! - `kind` (required): 1–64 characters of `a-z`, `0-9` and `-`, starting with a letter. The
//!   agent sends [`KNOWN_KINDS`]; other kinds are stored too, so newer agents are not refused.
//! - `message` (optional): free text up to 1024 characters; line breaks and tabs are the only
//!   control characters allowed.
//! - `details` (optional): a JSON object, bounded only by the body size.
//!
//! No other field is accepted. Answers: 204 stored; 400 `{"error","field"}` naming the field
//! and the rule; 413 too large; 415 not `application/json`; 429 with Retry-After; 503 when
//! the store is down. The source stored is the TCP peer address: a forwarding proxy's headers
//! are not trusted, since anyone can send them.

use crate::config::RoleConfig;
use crate::ratelimit::RateLimiter;
use crate::roles::{BodyError, media_type, read_body};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use fleetpki_ca::Site;
use fleetpki_model::site::NewStatusMessage;
use fleetpki_store::Change;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The kinds fleetpki's agent sends.
pub const KNOWN_KINDS: [&str; 6] = [
    "selection-failed",
    "enrollment-failed",
    "renewal-failed",
    "policy-invalid",
    "trust-changed",
    "registration-failed",
];

const MAX_CLIENT: usize = 255;
const MAX_KIND: usize = 64;
const MAX_MESSAGE: usize = 1024;

struct StatusPoint {
    site: Arc<Site>,
    max_body_bytes: usize,
    limiter: RateLimiter,
}

pub(crate) fn router<S>(rc: &RoleConfig, site: Arc<Site>) -> Router<S> {
    let state = Arc::new(StatusPoint {
        site,
        max_body_bytes: rc.max_body_bytes,
        limiter: RateLimiter::new(rc.rate_per_minute),
    });
    Router::new()
        .route("/status", post(receive))
        .with_state(state)
}

/// A state message that passed the schema; `client` and `kind` are what the store indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusReport {
    pub client: String,
    pub kind: String,
}

/// Why a message was refused: the field and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub(crate) struct InvalidMessage {
    pub field: &'static str,
    pub rule: String,
}

fn invalid(field: &'static str, rule: impl Into<String>) -> InvalidMessage {
    InvalidMessage {
        field,
        rule: rule.into(),
    }
}

/// The schema's fields, each still raw so the rules below can name the one at fault; serde
/// refuses unknown and repeated fields and anything that is not an object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    client: Option<Value>,
    kind: Option<Value>,
    message: Option<Value>,
    details: Option<Value>,
}

/// Checks a message body against the schema (see the module documentation).
pub(crate) fn validate(body: &[u8]) -> Result<StatusReport, InvalidMessage> {
    let raw: Raw = serde_json::from_slice(body).map_err(|e| {
        invalid(
            "body",
            format!("not a status message ({e}); expected a JSON object with client, kind and optionally message, details"),
        )
    })?;
    let client = required_string("client", raw.client)?;
    let n = client.chars().count();
    if n == 0 || n > MAX_CLIENT {
        return Err(invalid(
            "client",
            format!("must be 1 to {MAX_CLIENT} characters, not {n}"),
        ));
    }
    if client.chars().any(char::is_control) {
        return Err(invalid("client", "must not contain control characters"));
    }
    let kind = required_string("kind", raw.kind)?;
    let n = kind.chars().count();
    let token = kind.starts_with(|c: char| c.is_ascii_lowercase())
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if n > MAX_KIND || !token {
        return Err(invalid(
            "kind",
            format!(
                "must be 1 to {MAX_KIND} characters of a-z, 0-9 and -, starting with a letter, e.g. {}",
                KNOWN_KINDS.join(", ")
            ),
        ));
    }
    match raw.message {
        None => {}
        Some(Value::String(m)) => {
            let n = m.chars().count();
            if n > MAX_MESSAGE {
                return Err(invalid(
                    "message",
                    format!("must be at most {MAX_MESSAGE} characters, not {n}"),
                ));
            }
            if m.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                return Err(invalid(
                    "message",
                    "must not contain control characters other than line breaks and tabs",
                ));
            }
        }
        Some(_) => return Err(invalid("message", "must be a string")),
    }
    if raw.details.as_ref().is_some_and(|d| !d.is_object()) {
        return Err(invalid("details", "must be a JSON object"));
    }
    Ok(StatusReport { client, kind })
}

/// `null` counts as absent.
fn required_string(field: &'static str, v: Option<Value>) -> Result<String, InvalidMessage> {
    match v {
        Some(Value::String(s)) => Ok(s),
        None => Err(invalid(field, "is required")),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn refuse(status: StatusCode, field: Option<&str>, error: String) -> Response {
    let mut body = json!({ "error": error });
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    (status, axum::Json(body)).into_response()
}

async fn receive(
    State(s): State<Arc<StatusPoint>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let source = peer.ip().to_canonical();
    // First, before any work: a flood costs one map lookup per request.
    if let Err(l) = s.limiter.check(source, Instant::now()) {
        let mut r = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            format!(
                "too many status messages from {source}: retry after {} s",
                l.retry_after
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, l.retry_after.into());
        return r;
    }
    if media_type(&headers).as_deref() != Some("application/json") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("content-type"),
            "must be application/json".into(),
        );
    }
    let bytes = match read_body(&headers, body, s.max_body_bytes).await {
        Ok(b) => b,
        Err(BodyError::TooLarge { limit }) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("body"),
                format!("a status message is at most {limit} bytes"),
            );
        }
        Err(BodyError::Read(e)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                Some("body"),
                format!("cannot be read: {e}"),
            );
        }
    };
    let report = match validate(&bytes) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, Some(e.field), e.to_string()),
    };
    // Valid JSON is valid UTF-8; stored as received, so an administrator sees what was sent.
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            Some("body"),
            "must be UTF-8".into(),
        );
    };
    let message = NewStatusMessage {
        received_at: fleetpki_model::now(),
        source: source.to_string(),
        client: report.client,
        kind: report.kind,
        body: text.to_string(),
    };
    match s
        .site
        .committer
        .apply(vec![Change::RecordStatus { message }])
        .await
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "fallback status point: cannot store a message");
            let mut r = refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the site cannot store messages now; try again later".into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(body: &str) -> &'static str {
        validate(body.as_bytes()).unwrap_err().field
    }

    #[test]
    fn good_messages() {
        let r = validate(
            br#"{"client":"PC1.fleet.test","kind":"selection-failed","message":"client certificate selection failed: 3 candidates\n","details":{"candidates":3}}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            StatusReport {
                client: "PC1.fleet.test".into(),
                kind: "selection-failed".into()
            }
        );
        // Optional fields may be absent or null; unknown kinds are kept.
        validate(br#"{"client":"PC1","kind":"custom-2","message":null}"#).unwrap();
        validate(
            format!(
                r#"{{"client":"{}","kind":"{}"}}"#,
                "c".repeat(255),
                "k".repeat(64)
            )
            .as_bytes(),
        )
        .unwrap();
        validate(
            format!(
                r#"{{"client":"PC1","kind":"x","message":"{}"}}"#,
                "é".repeat(1024)
            )
            .as_bytes(),
        )
        .unwrap();
    }

    #[test]
    fn each_refusal_names_its_field() {
        let cases = [
            ("not json", "body"),
            ("[1,2]", "body"),
            (r#"{"client":"a","kind":"b","extra":1}"#, "body"),
            (r#"{"client":"a","client":"b","kind":"c"}"#, "body"),
            (r#"{"kind":"renewal-failed"}"#, "client"),
            (r#"{"client":null,"kind":"renewal-failed"}"#, "client"),
            (r#"{"client":7,"kind":"renewal-failed"}"#, "client"),
            (r#"{"client":"","kind":"renewal-failed"}"#, "client"),
            (r#"{"client":"a\u0007b","kind":"renewal-failed"}"#, "client"),
            (r#"{"client":"PC1"}"#, "kind"),
            (r#"{"client":"PC1","kind":""}"#, "kind"),
            (r#"{"client":"PC1","kind":"Renewal"}"#, "kind"),
            (r#"{"client":"PC1","kind":"1st"}"#, "kind"),
            (r#"{"client":"PC1","kind":"a b"}"#, "kind"),
            (r#"{"client":"PC1","kind":"a","message":5}"#, "message"),
            (
                r#"{"client":"PC1","kind":"a","message":"x\u0000y"}"#,
                "message",
            ),
            (r#"{"client":"PC1","kind":"a","details":[1]}"#, "details"),
        ];
        for (body, want) in cases {
            assert_eq!(field(body), want, "{body}");
        }
        let long = format!(r#"{{"client":"{}","kind":"a"}}"#, "c".repeat(256));
        assert_eq!(field(&long), "client");
        let long = format!(r#"{{"client":"PC1","kind":"{}"}}"#, "k".repeat(65));
        assert_eq!(field(&long), "kind");
        let long = format!(
            r#"{{"client":"PC1","kind":"a","message":"{}"}}"#,
            "m".repeat(1025)
        );
        let e = validate(long.as_bytes()).unwrap_err();
        assert_eq!(e.field, "message");
        assert!(
            e.to_string().contains("at most 1024 characters, not 1025"),
            "{e}"
        );
        // Unknown fields are named in the rule.
        let e = validate(br#"{"client":"a","kind":"b","extra":1}"#).unwrap_err();
        assert!(e.rule.contains("unknown field `extra`"), "{e}");
    }
}
