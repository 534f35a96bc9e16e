//! The `management-point` role: client registration, the signed policy, the CA chain and the
//! CRL, for agents that authenticate with a client certificate (mutual TLS).

use crate::AppState;
use crate::config::Registration;
use crate::error::HttpError;
use crate::tls::Peer;
use axum::extract::{Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fleetpki_ca::Actor;
use fleetpki_model::audit::{AuditEvent, Outcome};
use fleetpki_model::site::{ClientRecord, ClientStatus};
use fleetpki_policy::{Policy, PolicyTemplate};
use fleetpki_store::Change;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/mp/register", post(register))
        .route("/mp/policy", get(policy))
        .route("/mp/chain", get(super::ca_chain))
        .route("/mp/crl", get(super::issuing_crl))
        .route("/mp/signing-cert", get(signing_cert))
        .route("/mp/enroll", post(enroll))
        .route("/mp/requests/{id}", get(poll))
}

/// Signed policies by client, for the policy version they were made at: check-ins between
/// policy changes cost a map lookup, not a signature and four queries.
#[derive(Default)]
pub(crate) struct PolicyCache {
    by_client: Mutex<HashMap<String, (i64, Arc<String>)>>,
}

/// Most clients a cache holds before it starts over (bounded memory, whatever the fleet size).
const CACHE_MAX: usize = 100_000;

/// The principal each site-issued client certificate was issued to, by the certificate's
/// SHA-256: what a check-in would otherwise read from the inventory every time. Exact, not a
/// time-bounded cache: an inventory record's certificate and principal never change and records
/// are never deleted. What can change is checked on every request all the same: revocation by
/// the handshake (CRLs), blocking by the registration lookup in [`identify`].
#[derive(Default)]
pub(crate) struct IssuedTo {
    by_sha256: Mutex<HashMap<String, String>>,
}

impl IssuedTo {
    fn get(&self, sha256: &str) -> Option<String> {
        self.by_sha256.lock().ok()?.get(sha256).cloned()
    }

    fn insert(&self, sha256: &str, principal: &str) {
        if let Ok(mut map) = self.by_sha256.lock() {
            if map.len() >= CACHE_MAX {
                map.clear();
            }
            map.insert(sha256.to_string(), principal.to_string());
        }
    }
}

/// Who a verified client certificate belongs to.
struct Client {
    /// The client's name: its registration name, or the principal its PKI certificate was
    /// issued to.
    name: String,
    /// The directory principal whose groups decide its templates.
    principal: String,
}

fn certificate(peer: &Peer) -> Result<&crate::tls::ClientCert, HttpError> {
    peer.cert.as_deref().ok_or_else(|| {
        HttpError::new(
            StatusCode::UNAUTHORIZED,
            "client certificate",
            "the management point needs a client certificate",
        )
    })
}

/// Maps the connection's certificate to a client the site knows and has not blocked.
async fn identify(state: &AppState, peer: &Peer) -> Result<Client, HttpError> {
    let cert = certificate(peer)?;
    still_trusted(state, cert)?;
    let registration = state.site.store.client_by_identity(&cert.sha256).await?;
    if let Some(r) = &registration {
        match r.status {
            ClientStatus::Approved => {}
            ClientStatus::Pending => {
                return Err(HttpError::forbidden(
                    "registration",
                    format!(
                        "client `{}` is waiting for approval (fleetpki client approve {})",
                        r.name, r.name
                    ),
                ));
            }
            ClientStatus::Blocked => {
                return Err(HttpError::forbidden(
                    "registration",
                    format!("client `{}` is blocked", r.name),
                ));
            }
        }
    }
    if cert.self_signed {
        let r = registration.ok_or_else(|| {
            HttpError::forbidden(
                "registration",
                "this identity certificate is not registered: POST /mp/register first",
            )
        })?;
        return Ok(Client {
            principal: r.name.clone(),
            name: r.name,
        });
    }
    // A PKI certificate: the site issued it (the handshake proved the chain), so the inventory
    // says to whom.
    let principal = match state.issued_to.get(&cert.sha256) {
        Some(p) => p,
        None => {
            let p = inventory_principal(state, cert).await?;
            state.issued_to.insert(&cert.sha256, &p);
            p
        }
    };
    Ok(Client {
        name: registration.map(|r| r.name).unwrap_or(principal.clone()),
        principal,
    })
}

/// A connection outlives the CRL its handshake was checked against: once a newer CRL is loaded
/// (or the certificate's validity ends), its certificate is checked again before the request
/// is served, so a revoked client cannot keep fetching policy or enrolling over a connection it
/// opened earlier.
fn still_trusted(state: &AppState, cert: &crate::tls::ClientCert) -> Result<(), HttpError> {
    let Some(tls) = state.tls.as_ref() else {
        return Ok(());
    };
    if cert.self_signed {
        // A registration identity: no CRL lists it; the registration status decides.
        return Ok(());
    }
    tls.trust
        .recheck(
            &cert.der,
            &cert.intermediates,
            cert.generation,
            cert.window,
            rustls::pki_types::UnixTime::now(),
        )
        .map_err(|e| {
            HttpError::new(
                StatusCode::UNAUTHORIZED,
                "client certificate",
                format!(
                    "no longer accepted since this connection was opened ({e}); reconnect with a valid certificate"
                ),
            )
        })
}

/// The principal the inventory says this exact certificate was issued to.
async fn inventory_principal(
    state: &AppState,
    cert: &crate::tls::ClientCert,
) -> Result<String, HttpError> {
    let parsed = fleetpki_x509::cert::parse("client certificate", &cert.der)
        .map_err(|e| HttpError::bad_request("client certificate", e.to_string()))?;
    let info = fleetpki_x509::cert::info(&parsed)
        .map_err(|e| HttpError::bad_request("client certificate", e.to_string()))?;
    let record = state
        .site
        .store
        .certificate(&info.serial_hex)
        .await?
        .filter(|r| r.der == cert.der)
        .ok_or_else(|| {
            HttpError::forbidden(
                "client certificate",
                format!("serial {} is not in this site's inventory", info.serial_hex),
            )
        })?;
    Ok(record.principal)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    /// The computer's name (a directory principal's name, for templates to apply).
    name: String,
}

#[derive(Serialize)]
struct Registered {
    name: String,
    status: ClientStatus,
}

fn check_name(name: &str) -> Result<(), HttpError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(HttpError::bad_request(
            "name",
            "must be 1 to 64 letters, digits, '-', '.' or '_'",
        ))
    }
}

/// Registers the connection's identity under `name`: a self-signed identity waits for approval
/// (or is approved at once with `registration = "auto"`); a certificate from the site's PKI is
/// approved at once, under the principal it was issued to.
async fn register(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<Peer>,
    body: Result<Json<RegisterBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, HttpError> {
    // The rejection keeps its own status: 415 for a wrong content type, 413 past the role's
    // body limit, 422 for JSON of the wrong shape, 400 for malformed JSON.
    let Json(body) = body.map_err(|e| HttpError::new(e.status(), "body", e.body_text()))?;
    check_name(&body.name)?;
    let cert = certificate(&peer)?;
    let now = fleetpki_model::now();
    let (status, decided_by) = if !cert.self_signed {
        let client = identify(&state, &peer).await?;
        if client.principal != body.name {
            return Err(HttpError::forbidden(
                "name",
                format!(
                    "this certificate was issued to `{}`, not `{}`",
                    client.principal, body.name
                ),
            ));
        }
        (ClientStatus::Approved, Some("site".to_string()))
    } else if state.config.management_point.registration == Registration::Auto {
        (ClientStatus::Approved, Some("site".to_string()))
    } else {
        (ClientStatus::Pending, None)
    };
    let record = ClientRecord {
        name: body.name.clone(),
        identity_sha256: cert.sha256.clone(),
        identity_der: cert.der.clone(),
        status,
        registered_at: now,
        decided_at: decided_by.as_ref().map(|_| now),
        decided_by,
    };
    let actor = Actor::new(body.name.clone(), format!("management point {}", peer.addr));
    let audit = AuditEvent {
        at: now,
        actor: actor.name.clone(),
        source: actor.source.clone(),
        action: "client.register".into(),
        object: body.name.clone(),
        outcome: Outcome::Success,
        details: format!(
            "identity {} ({}), {}",
            cert.sha256,
            if cert.self_signed {
                "self-signed"
            } else {
                "PKI certificate"
            },
            status.name()
        ),
    };
    state
        .site
        .committer
        .apply(vec![Change::RegisterClient {
            client: record,
            audit,
        }])
        .await
        .map_err(HttpError::from)?;
    // Re-registration keeps the stored status: answer with what is stored.
    let stored = state
        .site
        .store
        .client(&body.name)
        .await?
        .ok_or_else(|| HttpError::unavailable("the registration was not stored"))?;
    let code = if stored.status == ClientStatus::Approved {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        code,
        Json(Registered {
            name: stored.name,
            status: stored.status,
        }),
    )
        .into_response())
}

/// The client's policy, signed by the site signing certificate (see docs/POLICY.md).
async fn policy(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<Peer>,
) -> Result<Response, HttpError> {
    let client = identify(&state, &peer).await?;
    let version = state.policy_version.load(Ordering::Relaxed).max(0) + 1;
    let cache_key = format!("{}\u{0}{}", client.name, client.principal);
    if let Ok(cache) = state.policy_cache.by_client.lock()
        && let Some((v, doc)) = cache.get(&cache_key)
        && *v == version
    {
        return Ok(json_response(doc.as_str().to_string()));
    }
    let doc = Arc::new(sign_policy(&state, &client, version).await?);
    if let Ok(mut cache) = state.policy_cache.by_client.lock() {
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(cache_key, (version, doc.clone()));
    }
    Ok(json_response(doc.as_str().to_string()))
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn sign_policy(state: &AppState, client: &Client, version: i64) -> Result<String, HttpError> {
    let site = &state.site;
    let groups = site.store.groups_of(&client.principal).await?;
    let principal = site.store.principal(&client.principal).await?;
    let disabled = principal.as_ref().is_some_and(|p| p.disabled);
    let mut templates: Vec<PolicyTemplate> = if disabled {
        Vec::new()
    } else {
        site.store
            .templates()
            .await?
            .iter()
            .filter(|t| {
                t.published
                    && t.grants
                        .iter()
                        .any(|g| g.autoenroll && g.enroll && groups.contains(&g.group))
            })
            .map(PolicyTemplate::from_template)
            .collect()
    };
    templates.sort_by(|a, b| a.name.cmp(&b.name));
    let cfg = &state.config.policy;
    let mut policy = Policy::new(
        &site.config.site_code,
        version,
        fleetpki_model::now(),
        &client.name,
    );
    policy.templates = templates;
    policy.selection = cfg.selection.clone();
    policy.multiple_match = cfg.multiple_match;
    policy.issuers = cfg.issuers.clone();
    policy.schedule = cfg.schedule;
    policy.site_managed_renewal_days = state.config.tls.renew_before_days;
    policy.fallback_status_point = state
        .urls
        .get()
        .and_then(|u| u.get("fallback-status-point"))
        .map(|u| format!("{u}/status"));
    let key = state
        .signing_key
        .as_ref()
        .ok_or_else(|| HttpError::unavailable("the site signing key is not loaded"))?;
    let signed = fleetpki_policy::sign(&policy, key, &site.signing.der).map_err(|e| {
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.field().to_string(),
            e.to_string(),
        )
    })?;
    Ok(signed.to_json())
}

/// The site signing certificate (PEM). Agents are installed with it; one that was allowed
/// trust on first use fetches it here once and pins it.
async fn signing_cert(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        state.site.signing.pem(),
    )
        .into_response()
}

/// Autoenrollment for a registered client: a CSR under a template, for the principal the
/// connection's certificate identifies (its approved registration or the site certificate's
/// holder). The template's own permissions decide, exactly as for the API: 201 with the
/// certificate once committed, 202 when the template needs approval.
async fn enroll(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<Peer>,
    body: Result<Json<super::enrollment::EnrollBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, HttpError> {
    let client = identify(&state, &peer).await?;
    let Json(body) = body.map_err(|e| HttpError::new(e.status(), "body", e.body_text()))?;
    let actor = Actor::new(
        client.name.clone(),
        format!("management point {}", peer.addr),
    );
    let started = std::time::Instant::now();
    let result = state
        .site
        .submit(
            &body.template,
            &client.principal,
            body.csr.as_bytes(),
            &actor,
        )
        .await?;
    state.metrics.observe_submitted(started, &result);
    Ok(super::enrollment::submitted(&state, result))
}

/// A client polls one of its own requests; another principal's request is "not found" (no
/// telling which numbers exist).
async fn poll(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<Peer>,
    id: Result<axum::extract::Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, HttpError> {
    let client = identify(&state, &peer).await?;
    let id = id
        .map(|axum::extract::Path(id)| id)
        .map_err(|e| HttpError::new(e.status(), "id", "must be a request number"))?;
    let req = state
        .site
        .store
        .request(id)
        .await?
        .filter(|r| r.principal == client.principal)
        .ok_or_else(|| {
            HttpError::new(StatusCode::NOT_FOUND, "request", format!("no request {id}"))
        })?;
    Ok(Json(super::enrollment::request_json(&state, &req).await?).into_response())
}
