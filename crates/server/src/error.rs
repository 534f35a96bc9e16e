//! HTTP errors as RFC 9457 problem documents that name the field and the rule.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A refused or failed request.
#[derive(Debug)]
pub(crate) struct HttpError {
    pub status: StatusCode,
    /// The input the error is about (`name`, `csr`, `client certificate`, ...).
    pub field: String,
    pub rule: String,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    /// `FIELD: RULE`, the same words the CLI prints.
    detail: String,
    field: &'a str,
}

impl HttpError {
    pub fn new(status: StatusCode, field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            status,
            field: field.into(),
            rule: rule.into(),
        }
    }

    pub fn bad_request(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, field, rule)
    }

    pub fn forbidden(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, field, rule)
    }

    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string())
    }
}

impl From<fleetpki_ca::CaError> for HttpError {
    /// A refusal keeps its field and rule (a name that matches nothing is 404, a permission
    /// refusal 403); anything else is the site's fault, not the caller's.
    fn from(e: fleetpki_ca::CaError) -> Self {
        match e.field() {
            Some(field) => {
                let text = e.to_string();
                let rule = text
                    .strip_prefix(&format!("{field}: "))
                    .map(str::to_string)
                    .unwrap_or(text);
                let status = if matches!(e, fleetpki_ca::CaError::NotFound(_)) {
                    StatusCode::NOT_FOUND
                } else if field == "principal" || field == "template" {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::BAD_REQUEST
                };
                HttpError::new(status, field, rule)
            }
            None => match e {
                fleetpki_ca::CaError::Store(s) => s.into(),
                e => {
                    tracing::error!(error = %e, "request failed");
                    HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "site", e.to_string())
                }
            },
        }
    }
}

impl From<fleetpki_store::StoreError> for HttpError {
    fn from(e: fleetpki_store::StoreError) -> Self {
        use fleetpki_store::StoreError as S;
        match e {
            S::NotFound { what, key } => HttpError::new(
                StatusCode::NOT_FOUND,
                what,
                format!("`{key}` does not exist"),
            ),
            S::Conflict { what, key, why } => {
                HttpError::new(StatusCode::CONFLICT, what, format!("`{key}`: {why}"))
            }
            e => {
                tracing::error!(error = %e, "store failed");
                HttpError::unavailable(e)
            }
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("error"),
            status: self.status.as_u16(),
            detail: format!("{}: {}", self.field, self.rule),
            field: &self.field,
        };
        let mut resp = (self.status, Json(body)).into_response();
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/problem+json"),
        );
        resp
    }
}
