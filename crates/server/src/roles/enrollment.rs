//! Enrollment over JSON, shared by the API and the management point: the request body, and
//! the answers (an issued certificate with its chain (201), a pending request (202), a
//! request's status when polled).

use crate::AppState;
use crate::error::HttpError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fleetpki_ca::issuance::Submitted;
use fleetpki_model::record::{CertificateRecord, RequestRecord};
use fleetpki_x509::pem;
use serde::Deserialize;
use serde_json::{Value, json};

/// `POST …/enroll`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EnrollBody {
    /// Template name or display name (as the policy lists it).
    pub template: String,
    /// PKCS#10, PEM.
    pub csr: String,
}

pub(super) fn issued_json(state: &AppState, request_id: i64, c: &CertificateRecord) -> Value {
    json!({
        "status": "issued",
        "request_id": request_id,
        "serial": c.serial,
        "not_after": c.not_after,
        "certificate": pem::encode("CERTIFICATE", &c.der),
        "chain": state.site.chain_pem(),
    })
}

pub(super) fn submitted(state: &AppState, s: Submitted) -> Response {
    match s {
        Submitted::Issued {
            request_id,
            certificate,
        } => (
            StatusCode::CREATED,
            Json(issued_json(state, request_id, &certificate)),
        )
            .into_response(),
        Submitted::Pending { request_id } => (
            StatusCode::ACCEPTED,
            Json(json!({ "status": "pending", "request_id": request_id })),
        )
            .into_response(),
    }
}

/// A polled request: its status, and the certificate once issued.
pub(super) async fn request_json(
    state: &AppState,
    req: &RequestRecord,
) -> Result<Value, HttpError> {
    if let Some(serial) = &req.serial
        && let Some(cert) = state.site.store.certificate(serial).await?
    {
        return Ok(issued_json(state, req.id, &cert));
    }
    Ok(json!({
        "request_id": req.id,
        "status": req.status.name(),
        "template": req.template,
        "principal": req.principal,
        "submitted_at": req.submitted_at,
        "decided_at": req.decided_at,
        "reason": req.reason,
    }))
}
