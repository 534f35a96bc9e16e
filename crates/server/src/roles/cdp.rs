//! The `crl` role: the CRL distribution point and the CA certificates (AIA caIssuers), at the
//! URLs the site writes into every certificate (`/crl/{issuer}.crl`, `/ca/{issuer}.crt`).

use crate::AppState;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fleetpki_ca::keys::KeyRole;
use std::sync::Arc;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/crl/{file}", get(crl))
        .route("/ca/{file}", get(ca_cert))
}

fn not_found(what: String) -> Response {
    (StatusCode::NOT_FOUND, format!("{what}\n")).into_response()
}

/// `issuing.crl`, `root.crl`, or the delta: `issuing-delta.crl`.
async fn crl(State(s): State<Arc<AppState>>, Path(file): Path<String>) -> Response {
    let Some(stem) = file.strip_suffix(".crl") else {
        return not_found(format!(
            "{file}: CRLs are named ISSUER.crl or ISSUER-delta.crl"
        ));
    };
    let (issuer, delta) = match stem.strip_suffix("-delta") {
        Some(i) => (i, true),
        None => (stem, false),
    };
    if !matches!(issuer, "root" | "issuing") {
        return not_found(format!(
            "{file}: no CA named `{issuer}` here (root, issuing)"
        ));
    }
    match s.site.store.latest_crl(issuer, delta).await {
        Ok(Some(crl)) => {
            let expires = httpdate(crl.next_update);
            (
                [
                    (header::CONTENT_TYPE, "application/pkix-crl".to_string()),
                    (header::EXPIRES, expires),
                ],
                crl.der,
            )
                .into_response()
        }
        Ok(None) => not_found(format!(
            "{file}: no {} CRL has been published yet (fleetpki crl publish)",
            if delta { "delta" } else { "full" }
        )),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}\n"),
        )
            .into_response(),
    }
}

/// `root.crt` or `issuing.crt`, DER.
async fn ca_cert(State(s): State<Arc<AppState>>, Path(file): Path<String>) -> Response {
    let cert = match file.as_str() {
        "root.crt" => Some(&s.site.root),
        "issuing.crt" if s.site.issuer().role == KeyRole::Issuing => s.site.issuing.as_ref(),
        _ => None,
    };
    match cert {
        Some(c) => (
            [(header::CONTENT_TYPE, "application/pkix-cert")],
            c.der.clone(),
        )
            .into_response(),
        None => not_found(format!(
            "{file}: no such CA certificate here (root.crt{})",
            if s.site.issuing.is_some() {
                ", issuing.crt"
            } else {
                ""
            }
        )),
    }
}

/// RFC 9110 IMF-fixdate, e.g. `Sun, 22 Nov 2026 02:40:26 GMT`.
pub(crate) fn httpdate(t: fleetpki_model::UnixTime) -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates() {
        assert_eq!(super::httpdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            super::httpdate(1_795_315_226),
            "Sun, 22 Nov 2026 02:40:26 GMT"
        );
    }
}
