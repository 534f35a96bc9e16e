//! `/healthz` and `/metrics` (Prometheus text exposition format 0.0.4), and the counters behind them.

use crate::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use fleetpki_model::record::{CertFilter, RequestStatus};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The window of the "expiring soon" gauge: six weeks, time enough to renew by hand.
const EXPIRING_WINDOW_DAYS: i64 = 42;

/// Upper bounds of the issuance histogram in microseconds, with their `le` labels: 1 ms to 1 s,
/// about 2.5× apart. Signing takes well under a millisecond; the batched commit (fsync) and
/// queueing behind other callers are what spread issuance over this range.
const ISSUANCE_BUCKETS: [(u64, &str); 10] = [
    (1_000, "0.001"),
    (2_500, "0.0025"),
    (5_000, "0.005"),
    (10_000, "0.01"),
    (25_000, "0.025"),
    (50_000, "0.05"),
    (100_000, "0.1"),
    (250_000, "0.25"),
    (500_000, "0.5"),
    (1_000_000, "1"),
];

/// The server's own counters. Every update is an atomic add or a map update under a lock held
/// for that update only (never across an await), so handlers never wait on a scrape for long.
#[derive(Default)]
pub(crate) struct Metrics {
    /// Requests answered, by role and status code.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Failed TLS handshakes, by role and reason.
    handshake_failures: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    issuance: Histogram,
}

/// What the store says at scrape time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreGauges {
    pub pending_requests: i64,
    pub expiring_certificates: i64,
}

/// A fixed-bucket histogram of durations, updated with atomics only.
struct Histogram {
    /// Observations per bucket, not cumulative; the last one is past every bound (`+Inf`).
    /// `_count` is their sum, so that it always equals the `+Inf` bucket in one scrape.
    counts: [AtomicU64; ISSUANCE_BUCKETS.len() + 1],
    /// Sum of the observations, in nanoseconds (u64 holds 584 years of them).
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [const { AtomicU64::new(0) }; ISSUANCE_BUCKETS.len() + 1],
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let ns = d.as_nanos();
        let i = ISSUANCE_BUCKETS
            .iter()
            .position(|(us, _)| ns <= u128::from(*us) * 1_000)
            .unwrap_or(ISSUANCE_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// A mutex whose holder panicked still holds valid counts: keep counting.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Counts a request `role` answered with `status`.
    pub(crate) fn count(&self, role: &'static str, status: StatusCode) {
        *lock(&self.requests)
            .entry((role, status.as_u16()))
            .or_default() += 1;
    }

    /// Records how long one certificate issuance took (request received to certificate committed).
    pub(crate) fn observe_issuance(&self, d: Duration) {
        self.issuance.observe(d);
    }

    /// [`Metrics::observe_issuance`] for a submission that issued; one left pending for
    /// approval issued nothing (its approval is timed instead).
    pub(crate) fn observe_submitted(
        &self,
        started: std::time::Instant,
        s: &fleetpki_ca::issuance::Submitted,
    ) {
        if matches!(s, fleetpki_ca::issuance::Submitted::Issued { .. }) {
            self.observe_issuance(started.elapsed());
        }
    }

    /// Counts a TLS handshake on `role`'s listener that failed for `reason`: a short snake_case
    /// word, usually [`handshake_reason`] of the accept error.
    pub(crate) fn handshake_failed(&self, role: &'static str, reason: &'static str) {
        *lock(&self.handshake_failures)
            .entry((role, reason))
            .or_default() += 1;
    }

    /// The whole exposition: the counters, and the store's gauges when it answered (`None`
    /// renders `fleetpki_store_up 0` and leaves them out, so a database outage does not hide
    /// the counters).
    pub(crate) fn render(&self, store: Option<StoreGauges>) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "fleetpki_http_requests_total",
            "counter",
            "Requests answered, by role and status code.",
        );
        // Copied out so the lock is not held while formatting.
        let requests = lock(&self.requests).clone();
        for ((role, status), n) in requests {
            let _ = writeln!(
                out,
                "fleetpki_http_requests_total{{role=\"{}\",status=\"{status}\"}} {n}",
                label(role)
            );
        }

        family(
            &mut out,
            "fleetpki_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed, by role and reason.",
        );
        let failures = lock(&self.handshake_failures).clone();
        for ((role, reason), n) in failures {
            let _ = writeln!(
                out,
                "fleetpki_tls_handshake_failures_total{{role=\"{}\",reason=\"{}\"}} {n}",
                label(role),
                label(reason)
            );
        }

        family(
            &mut out,
            "fleetpki_issuance_seconds",
            "histogram",
            "Certificate issuance latency, from request received to certificate committed.",
        );
        let counts: Vec<u64> = self
            .issuance
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let mut cumulative = 0u64;
        for ((_, le), n) in ISSUANCE_BUCKETS.iter().zip(&counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "fleetpki_issuance_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let total: u64 = counts.iter().sum();
        let sum = self.issuance.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "fleetpki_issuance_seconds_bucket{{le=\"+Inf\"}} {total}\n\
             fleetpki_issuance_seconds_sum {sum}\n\
             fleetpki_issuance_seconds_count {total}"
        );

        family(
            &mut out,
            "fleetpki_store_up",
            "gauge",
            "Whether the store answered this scrape (1) or not (0).",
        );
        let _ = writeln!(out, "fleetpki_store_up {}", u8::from(store.is_some()));
        if let Some(g) = store {
            family(
                &mut out,
                "fleetpki_pending_requests",
                "gauge",
                "Certificate requests waiting for approval.",
            );
            let _ = writeln!(out, "fleetpki_pending_requests {}", g.pending_requests);
            family(
                &mut out,
                "fleetpki_certificates_expiring_42d",
                "gauge",
                "Unrevoked certificates, not yet expired, that expire within 42 days.",
            );
            let _ = writeln!(
                out,
                "fleetpki_certificates_expiring_42d {}",
                g.expiring_certificates
            );
        }
        out
    }
}

/// A family's `# HELP` and `# TYPE` lines (once per family, before its samples).
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value escaped for the text format (`\`, `"` and newlines). Values are chosen by code
/// today, but a wrong one must not break the whole exposition.
fn label(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(v);
    }
    let mut s = String::with_capacity(v.len() + 2);
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    Cow::Owned(s)
}

/// The reason label for a failed TLS accept. tokio-rustls reports rustls errors as
/// `io::Error::new(InvalidData, rustls::Error)`, and the socket's own errors as they are.
pub(crate) fn handshake_reason(err: &std::io::Error) -> &'static str {
    use rustls::{CertificateError as C, Error as E};
    use std::io::ErrorKind as K;
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<E>()) else {
        return match err.kind() {
            K::TimedOut => "timeout",
            // The client hung up mid-handshake (port scanners, load balancer probes).
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                "closed"
            }
            // rustls's own framing errors that carry no rustls::Error (e.g. an oversized record).
            K::InvalidData => "protocol",
            _ => "io",
        };
    };
    match tls {
        E::NoCertificatesPresented => "no_client_certificate",
        E::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "unknown_issuer",
            C::Expired | C::ExpiredContext { .. } => "expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "not_yet_valid",
            C::Revoked => "revoked",
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => "bad_eku",
            // Our CRL, not the client, is at fault: worth telling apart.
            C::UnknownRevocationStatus => "revocation_unknown",
            C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => "crl_expired",
            _ => "bad_certificate",
        },
        E::InvalidCertRevocationList(_) => "bad_crl",
        // No common protocol version, cipher suite, group or signature scheme.
        E::PeerIncompatible(_) | E::NoApplicationProtocol => "incompatible",
        // The client refused us (e.g. it does not trust the server certificate).
        E::AlertReceived(_) => "peer_alert",
        E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. }
        | E::InvalidMessage(_)
        | E::PeerMisbehaved(_)
        | E::PeerSentOversizedRecord
        | E::DecryptError
        | E::InvalidEncryptedClientHello(_) => "protocol",
        _ => "other",
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

/// The gauges from two `COUNT` queries: no row is loaded, however many there are.
async fn store_gauges(s: &AppState) -> Option<StoreGauges> {
    let store = &s.site.store;
    let now = fleetpki_model::now();
    let expiring = CertFilter {
        expiring_before: Some(now + EXPIRING_WINDOW_DAYS * 86_400),
        unexpired_at: Some(now),
        ..CertFilter::default()
    };
    let (pending, expiring) = tokio::join!(
        store.count_requests(Some(RequestStatus::Pending)),
        store.count_certificates(&expiring)
    );
    match (pending, expiring) {
        (Ok(pending_requests), Ok(expiring_certificates)) => Some(StoreGauges {
            pending_requests,
            expiring_certificates,
        }),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "metrics: the store did not answer");
            None
        }
    }
}

async fn metrics(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    let gauges = store_gauges(&s).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(gauges),
    )
}

#[cfg(test)]
mod tests;
