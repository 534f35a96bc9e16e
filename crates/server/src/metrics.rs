//! `/healthz` and `/metrics` (Prometheus text format), and the request counters behind them.

use crate::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use fleetpki_model::record::{CertFilter, RequestStatus};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// Requests answered, by role and status code.
#[derive(Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    handshake_failures: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Issuances answered over HTTP: count and total seconds.
    issuance: Mutex<(u64, f64)>,
}

impl Metrics {
    pub fn count(&self, role: &'static str, status: StatusCode) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((role, status.as_u16())).or_default() += 1;
        }
    }

    pub fn observe_issuance(&self, d: std::time::Duration) {
        if let Ok(mut h) = self.issuance.lock() {
            h.0 += 1;
            h.1 += d.as_secs_f64();
        }
    }

    pub fn handshake_failed(&self, role: &'static str, reason: &'static str) {
        if let Ok(mut m) = self.handshake_failures.lock() {
            *m.entry((role, reason)).or_default() += 1;
        }
    }
}

/// A short reason for a refused TLS handshake (the `reason` label).
pub(crate) fn handshake_reason(err: &std::io::Error) -> &'static str {
    use rustls::{CertificateError as C, Error as E};
    match err.get_ref().and_then(|e| e.downcast_ref::<E>()) {
        Some(E::NoCertificatesPresented) => "no_client_certificate",
        Some(E::InvalidCertificate(C::UnknownIssuer)) => "unknown_issuer",
        Some(E::InvalidCertificate(C::Expired | C::ExpiredContext { .. })) => "expired",
        Some(E::InvalidCertificate(C::Revoked)) => "revoked",
        Some(E::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. })) => {
            "bad_eku"
        }
        Some(E::InvalidCertificate(_)) => "bad_certificate",
        Some(_) => "protocol",
        None => "io",
    }
}

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// Healthy when the store answers.
async fn healthz(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    match s.site.store.audit_head().await {
        Ok(_) => (StatusCode::OK, "ok\n".to_string()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}\n"),
        ),
    }
}

async fn metrics(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP fleetpki_http_requests_total Requests answered, by role and status code.\n# TYPE fleetpki_http_requests_total counter"
    );
    if let Ok(m) = s.metrics.requests.lock() {
        for ((role, status), n) in m.iter() {
            let _ = writeln!(
                out,
                "fleetpki_http_requests_total{{role=\"{role}\",status=\"{status}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP fleetpki_tls_handshake_failures_total Refused TLS handshakes, by role and reason.\n# TYPE fleetpki_tls_handshake_failures_total counter"
    );
    if let Ok(m) = s.metrics.handshake_failures.lock() {
        for ((role, reason), n) in m.iter() {
            let _ = writeln!(
                out,
                "fleetpki_tls_handshake_failures_total{{role=\"{role}\",reason=\"{reason}\"}} {n}"
            );
        }
    }
    if let Ok(h) = s.metrics.issuance.lock() {
        let _ = writeln!(
            out,
            "# HELP fleetpki_issuance_seconds Time to answer an enrollment, certificate committed.\n# TYPE fleetpki_issuance_seconds summary\nfleetpki_issuance_seconds_sum {}\nfleetpki_issuance_seconds_count {}",
            h.1, h.0
        );
    }
    let store = &s.site.store;
    let pending = store
        .requests(Some(RequestStatus::Pending))
        .await
        .map(|r| r.len());
    let soon = fleetpki_model::now() + 42 * 86_400;
    let expiring = store
        .certificates(&CertFilter {
            expiring_before: Some(soon),
            ..CertFilter::default()
        })
        .await
        .map(|c| c.len());
    match (pending, expiring) {
        (Ok(p), Ok(e)) => {
            let _ = writeln!(
                out,
                "# HELP fleetpki_pending_requests Certificate requests waiting for approval.\n# TYPE fleetpki_pending_requests gauge\nfleetpki_pending_requests {p}"
            );
            let _ = writeln!(
                out,
                "# HELP fleetpki_certificates_expiring_42d Valid certificates expiring within 42 days.\n# TYPE fleetpki_certificates_expiring_42d gauge\nfleetpki_certificates_expiring_42d {e}"
            );
            (
                StatusCode::OK,
                [("content-type", "text/plain; version=0.0.4")],
                out,
            )
        }
        (Err(e), _) | (_, Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/plain; version=0.0.4")],
            format!("store unavailable: {e}\n"),
        ),
    }
}
