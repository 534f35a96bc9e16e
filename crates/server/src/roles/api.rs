//! The `api` role: JSON enrollment (one-time token or client certificate), polling, renewal
//! over mutual TLS, and the administrative operations of the CLI, authorised by role
//! (`ca-admin`, `cert-manager`, `auditor`) through an admin client certificate or API token.

use super::enrollment::{issued_json, request_json, submitted};
use crate::AppState;
use crate::config::AdminRole;
use crate::error::HttpError;
use crate::tls::Peer;
use axum::extract::{Extension, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fleetpki_ca::directory::{DirectoryFile, Entry};
use fleetpki_ca::keys::KeyRole;
use fleetpki_ca::tokens::Presented;
use fleetpki_ca::{Actor, CaError};
use fleetpki_model::directory::{Principal, PrincipalKind};
use fleetpki_model::record::{CertFilter, CertificateRecord, RequestStatus, RevocationReason};
use fleetpki_model::site::{ClientStatus, StatusFilter};
use fleetpki_model::template::SETTABLE_FIELDS;
use fleetpki_x509::{pem, serial};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/api/v1/ca/chain", get(super::ca_chain))
        .route("/api/v1/ca/crl", get(super::issuing_crl))
        .route("/api/v1/site", get(site_info))
        .route("/api/v1/enroll", post(enroll))
        .route("/api/v1/renew", post(renew))
        .route("/api/v1/requests", get(list_requests).post(submit_request))
        .route("/api/v1/requests/{id}", get(get_request))
        .route("/api/v1/requests/{id}/approve", post(approve))
        .route("/api/v1/requests/{id}/deny", post(deny))
        .route("/api/v1/certificates", get(list_certificates))
        .route("/api/v1/certificates/{serial}", get(get_certificate))
        .route("/api/v1/certificates/{serial}/revoke", post(revoke))
        .route("/api/v1/crl/publish", post(publish_crl))
        .route("/api/v1/tokens", post(create_token))
        .route("/api/v1/templates", get(list_templates))
        .route(
            "/api/v1/templates/{name}",
            get(get_template).patch(set_template),
        )
        .route("/api/v1/templates/{name}/publish", post(publish_template))
        .route("/api/v1/templates/{name}/bump", post(bump_template))
        .route(
            "/api/v1/templates/{name}/duplicate",
            post(duplicate_template),
        )
        .route("/api/v1/templates/{name}/grant", post(grant_template))
        .route(
            "/api/v1/templates/{name}/revoke-grant",
            post(revoke_grant_template),
        )
        .route("/api/v1/templates/{name}/history", get(template_history))
        .route("/api/v1/directory", get(list_directory))
        .route("/api/v1/directory/principals", post(add_principal))
        .route("/api/v1/directory/groups", post(add_group))
        .route("/api/v1/directory/groups/{group}/members", post(add_member))
        .route("/api/v1/directory/import", post(import_directory))
        .route("/api/v1/clients", get(list_clients))
        .route("/api/v1/clients/{name}/{decision}", post(decide_client))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/audit/verify", get(audit_verify))
        .route("/api/v1/status", get(list_status))
        .route("/api/v1/acme/eab", post(create_eab))
}

// ---- who is calling ----

/// The authenticated caller of one request.
struct Caller {
    /// For the audit log: the principal, or `token:NAME`.
    name: String,
    /// The directory principal, when the caller presented a certificate the site issued.
    principal: Option<String>,
    /// The certificate it presented (PKI certificates only).
    certificate: Option<CertificateRecord>,
    roles: BTreeSet<AdminRole>,
    /// A one-time enrollment token from `Authorization: Bearer ID.SECRET`.
    enroll_token: Option<String>,
}

impl Caller {
    fn actor(&self, peer: &Peer) -> Actor {
        Actor::new(self.name.clone(), format!("api {}", peer.addr))
    }

    /// Holds one of `roles`, or else 401 (nobody) / 403 (somebody without the role).
    fn require(&self, roles: &[AdminRole]) -> Result<(), HttpError> {
        if roles.iter().any(|r| self.roles.contains(r)) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        if self.principal.is_none() && self.roles.is_empty() {
            return Err(HttpError::new(
                StatusCode::UNAUTHORIZED,
                "authorization",
                format!(
                    "needs the {} role: present an admin client certificate or `Authorization: Bearer NAME:SECRET`",
                    names.join(" or ")
                ),
            ));
        }
        Err(HttpError::forbidden(
            "authorization",
            format!(
                "`{}` does not hold the {} role",
                self.name,
                names.join(" or ")
            ),
        ))
    }
}

const READERS: [AdminRole; 3] = [
    AdminRole::CaAdmin,
    AdminRole::CertManager,
    AdminRole::Auditor,
];

/// The administrative roles an operation is open to: a handler names one set, once, in its
/// [`Admin`] argument.
trait RoleSet {
    const ROLES: &'static [AdminRole];
}

/// Reading: every administrative role.
struct Reader;
/// Templates and the directory.
struct CaAdmin;
/// Requests, revocation, CRLs, tokens, clients.
struct CertManager;
/// ACME external account binding keys: cert-managers and ca-admins.
struct EabIssuer;

impl RoleSet for Reader {
    const ROLES: &'static [AdminRole] = &READERS;
}
impl RoleSet for CaAdmin {
    const ROLES: &'static [AdminRole] = &[AdminRole::CaAdmin];
}
impl RoleSet for CertManager {
    const ROLES: &'static [AdminRole] = &[AdminRole::CertManager];
}
impl RoleSet for EabIssuer {
    const ROLES: &'static [AdminRole] = &[AdminRole::CertManager, AdminRole::CaAdmin];
}

/// The caller of an administrative operation, holding one of the roles of `R`. Extracted
/// before the handler runs, so a caller without the role gets the 401 or 403 of
/// [`Caller::require`] and the handler never sees the request. It comes first among a
/// handler's arguments: axum runs extractors in order, so that refusal precedes any about the
/// path, query or body (`Id`, `Params`, `Body`), as the API has always answered.
struct Admin<R> {
    caller: Caller,
    peer: Peer,
    roles: PhantomData<R>,
}

impl<R> Admin<R> {
    /// Who the audit log names for what this caller does.
    fn actor(&self) -> Actor {
        self.caller.actor(&self.peer)
    }
}

impl<R: RoleSet> FromRequestParts<Arc<AppState>> for Admin<R> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        let Extension(peer) = Extension::<Peer>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let caller = caller(state, &peer, &parts.headers)
            .await
            .map_err(IntoResponse::into_response)?;
        caller
            .require(R::ROLES)
            .map_err(IntoResponse::into_response)?;
        Ok(Admin {
            caller,
            peer,
            roles: PhantomData,
        })
    }
}

/// Lower-case hex SHA-256.
fn sha256_hex(bytes: &[u8]) -> String {
    fleetpki_x509::cert::fingerprint(bytes)
}

/// The caller, with the administrative roles its groups or API token give it.
async fn caller(state: &AppState, peer: &Peer, headers: &HeaderMap) -> Result<Caller, HttpError> {
    identify(state, peer, headers, true).await
}

/// The caller of an enrollment or renewal, which acts for the caller's own principal (or token)
/// and needs no administrative role: its groups are not read here (issuance reads them itself).
async fn enrollee(state: &AppState, peer: &Peer, headers: &HeaderMap) -> Result<Caller, HttpError> {
    identify(state, peer, headers, false).await
}

async fn identify(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    with_roles: bool,
) -> Result<Caller, HttpError> {
    let mut c = Caller {
        name: "anonymous".into(),
        principal: None,
        certificate: None,
        roles: BTreeSet::new(),
        enroll_token: None,
    };
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| HttpError::bad_request("authorization", "not ASCII"))?;
        let bearer = text.strip_prefix("Bearer ").ok_or_else(|| {
            HttpError::new(
                StatusCode::UNAUTHORIZED,
                "authorization",
                "use `Bearer NAME:SECRET` (API token) or `Bearer ID.SECRET` (enrollment token)",
            )
        })?;
        if let Some((name, secret)) = bearer.split_once(':') {
            let token = state
                .config
                .api
                .tokens
                .iter()
                .find(|t| t.name == name)
                .filter(|t| {
                    let got = sha256_hex(secret.as_bytes());
                    constant_time_eq(got.as_bytes(), t.sha256.as_bytes())
                })
                .ok_or_else(|| {
                    HttpError::new(
                        StatusCode::UNAUTHORIZED,
                        "authorization",
                        "unknown API token or wrong secret",
                    )
                })?;
            c.name = format!("token:{}", token.name);
            c.roles.insert(token.role);
        } else {
            c.enroll_token = Some(bearer.to_string());
        }
    }
    if let Some(cert) = peer.cert.as_deref().filter(|c| !c.self_signed) {
        let parsed = fleetpki_x509::cert::parse("client certificate", &cert.der)
            .map_err(|e| HttpError::bad_request("client certificate", e.to_string()))?;
        let info = fleetpki_x509::cert::info(&parsed)
            .map_err(|e| HttpError::bad_request("client certificate", e.to_string()))?;
        if let Some(record) = state
            .site
            .store
            .certificate(&info.serial_hex)
            .await?
            .filter(|r| r.der == cert.der && r.revocation.is_none())
        {
            if with_roles {
                let groups = state.site.store.groups_of(&record.principal).await?;
                for (role, group) in &state.config.api.groups {
                    if groups.contains(group) {
                        c.roles.insert(*role);
                    }
                }
            }
            if c.name == "anonymous" {
                c.name = record.principal.clone();
            }
            c.principal = Some(record.principal.clone());
            c.certificate = Some(record);
        }
    }
    Ok(c)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON request body; one that does not parse is a problem document naming `body`, with
/// the status axum gives the rejection (400, 413, 415, 422).
struct Body<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| Body(v))
            .map_err(|e| HttpError::new(e.status(), "body", e.body_text()))
    }
}

fn token_error(e: CaError) -> HttpError {
    let mut h = HttpError::from(e);
    if h.field == "token" {
        h.status = StatusCode::UNAUTHORIZED;
    }
    h
}

/// A request id from the path: 400 naming `id` (a problem document, like every refusal).
struct Id(i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        Path::<i64>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| Id(id))
            .map_err(|e| HttpError::new(e.status(), "id", "must be a request number"))
    }
}

/// A query string; one that does not parse is a problem document naming `query`.
struct Params<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Params(v))
            .map_err(|e| HttpError::new(e.status(), "query", e.body_text()))
    }
}

/// The stored request `id`, or 404.
async fn known_request(
    state: &AppState,
    id: i64,
) -> Result<fleetpki_model::record::RequestRecord, HttpError> {
    state
        .site
        .store
        .request(id)
        .await?
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "request", format!("no request {id}")))
}

/// The certificate `text` names: 400 when it is not a serial number, 404 when this site issued
/// no certificate with it.
async fn known_certificate(state: &AppState, text: &str) -> Result<CertificateRecord, HttpError> {
    let hex = serial::to_hex(&serial::from_hex(text).map_err(CaError::from)?);
    state.site.store.certificate(&hex).await?.ok_or_else(|| {
        HttpError::new(
            StatusCode::NOT_FOUND,
            "serial",
            format!("no certificate with serial {hex} was issued by this site"),
        )
    })
}

/// A CA refusal that names a CLI flag (`--reason`), renamed to the JSON field (`reason`).
fn renamed(e: CaError, names: &[(&str, &str)]) -> HttpError {
    let mut h = HttpError::from(e);
    if let Some((_, to)) = names.iter().find(|(from, _)| h.field == *from) {
        h.field = to.to_string();
    }
    h
}

/// One of the site's certificates for `GET /api/v1/site`.
fn ca_json(c: &fleetpki_ca::site::CaCert) -> Value {
    json!({
        "subject": c.info.subject, "key": c.info.key.to_string(),
        "serial": c.info.serial_hex, "not_before": c.info.not_before,
        "not_after": c.info.not_after, "sha256": sha256_hex(&c.der),
        "certificate": pem::encode("CERTIFICATE", &c.der),
    })
}

/// `fleetpki ca show` and `fleetpki site signing-cert`: the site and its CA and signing
/// certificates. The database URL and the KEK file's path stay out: a URL may carry a password.
async fn site_info(
    State(state): State<Arc<AppState>>,
    _: Admin<Reader>,
) -> Result<Response, HttpError> {
    let site = &state.site;
    Ok(Json(json!({
        "site_code": site.config.site_code, "name": site.config.name,
        "base_url": site.config.base_url, "key_protection": site.config.keys.protection,
        "root": ca_json(&site.root), "issuing": site.issuing.as_ref().map(ca_json),
        "signing": ca_json(&site.signing),
    }))
    .into_response())
}

// ---- enrollment ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenewBody {
    csr: String,
}

/// Enroll: a CSR under a template, for the holder of a one-time token, or for the principal
/// whose certificate the connection presented. 201 with the certificate once it is committed,
/// 202 when the template needs approval.
async fn enroll(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    b: Result<Body<super::enrollment::EnrollBody>, HttpError>,
) -> Result<Response, HttpError> {
    let c = enrollee(&state, &peer, &headers).await?;
    let Body(b) = b?;
    let started = Instant::now();
    let result = if let Some(token) = &c.enroll_token {
        let presented = Presented::parse(token).map_err(token_error)?;
        let actor = Actor::new(
            format!("token:{}", presented.id),
            format!("api {}", peer.addr),
        );
        state
            .site
            .submit_with_token(&b.template, b.csr.as_bytes(), &presented, &actor)
            .await
            .map_err(token_error)?
    } else if let Some(principal) = &c.principal {
        state
            .site
            .submit(&b.template, principal, b.csr.as_bytes(), &c.actor(&peer))
            .await?
    } else {
        return Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "enroll with `Authorization: Bearer ID.SECRET` (a one-time token from `fleetpki token create`) or a client certificate from this site",
        ));
    };
    state.metrics.observe_submitted(started, &result);
    Ok(submitted(&state, result))
}

/// Renew over mutual TLS: a new certificate under the same template for the same principal as
/// the (valid, unrevoked) certificate the connection presented.
async fn renew(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    b: Result<Body<RenewBody>, HttpError>,
) -> Result<Response, HttpError> {
    let c = enrollee(&state, &peer, &headers).await?;
    let current = c.certificate.as_ref().ok_or_else(|| {
        HttpError::new(
            StatusCode::UNAUTHORIZED,
            "client certificate",
            "renewal needs the current certificate, presented as the TLS client certificate",
        )
    })?;
    let Body(b) = b?;
    let started = Instant::now();
    let result = state
        .site
        .submit(
            &current.template,
            &current.principal,
            b.csr.as_bytes(),
            &c.actor(&peer),
        )
        .await?;
    state.metrics.observe_submitted(started, &result);
    Ok(submitted(&state, result))
}

/// A request's state: its owner (token or certificate of the same principal) or a reader.
async fn get_request(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    id: Result<Id, HttpError>,
) -> Result<Response, HttpError> {
    let c = caller(&state, &peer, &headers).await?;
    let Id(id) = id?;
    let req = known_request(&state, id).await?;
    let owner = match (&c.enroll_token, &c.principal) {
        (Some(t), _) => {
            let presented = Presented::parse(t).map_err(token_error)?;
            let token = state
                .site
                .token_check(&presented)
                .await
                .map_err(token_error)?;
            token.principal == req.principal
        }
        (None, Some(p)) => *p == req.principal,
        _ => false,
    };
    if !owner {
        c.require(&READERS)?;
    }
    Ok(Json(request_json(&state, &req).await?).into_response())
}

// ---- administration ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestQuery {
    status: Option<String>,
}

async fn list_requests(
    State(state): State<Arc<AppState>>,
    _: Admin<Reader>,
    Params(q): Params<RequestQuery>,
) -> Result<Response, HttpError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(RequestStatus::parse(s).ok_or_else(|| {
            HttpError::bad_request("status", format!("`{s}`: use pending, issued or denied"))
        })?),
    };
    let rows = state.site.store.requests(status).await?;
    let out: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "request_id": r.id, "status": r.status.name(), "template": r.template,
                "template_version": r.template_version.to_string(),
                "principal": r.principal, "submitted_by": r.submitted_by,
                "submitted_at": r.submitted_at, "decided_at": r.decided_at,
                "decided_by": r.decided_by, "reason": r.reason, "serial": r.serial,
                "csr": pem::encode("CERTIFICATE REQUEST", &r.csr_der),
            })
        })
        .collect();
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    /// Template name or display name.
    template: String,
    /// The directory principal the certificate is for.
    principal: String,
    /// PKCS#10, PEM.
    csr: String,
}

/// `fleetpki request submit --as PRINCIPAL`: a cert-manager submits for a principal, under
/// that principal's grants (as a one-time token it could create for it). 201 or 202, as
/// enrollment.
async fn submit_request(
    State(state): State<Arc<AppState>>,
    admin: Admin<CertManager>,
    Body(b): Body<SubmitBody>,
) -> Result<Response, HttpError> {
    let started = Instant::now();
    let result = state
        .site
        .submit(&b.template, &b.principal, b.csr.as_bytes(), &admin.actor())
        .await?;
    state.metrics.observe_submitted(started, &result);
    Ok(submitted(&state, result))
}

async fn approve(
    State(state): State<Arc<AppState>>,
    admin: Admin<CertManager>,
    Id(id): Id,
) -> Result<Response, HttpError> {
    known_request(&state, id).await?;
    let started = Instant::now();
    let cert = state.site.approve(id, &admin.actor()).await?;
    state.metrics.observe_issuance(started.elapsed());
    Ok((StatusCode::CREATED, Json(issued_json(&state, id, &cert))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

async fn deny(
    State(state): State<Arc<AppState>>,
    admin: Admin<CertManager>,
    Id(id): Id,
    Body(b): Body<ReasonBody>,
) -> Result<Response, HttpError> {
    known_request(&state, id).await?;
    state
        .site
        .deny(id, &b.reason, &admin.actor())
        .await
        .map_err(|e| renamed(e, &[("--reason", "reason")]))?;
    Ok(Json(json!({ "request_id": id, "status": "denied" })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertQuery {
    template: Option<String>,
    principal: Option<String>,
    expiring_before: Option<i64>,
    #[serde(default)]
    revoked: bool,
}

fn cert_json(c: &CertificateRecord) -> Value {
    json!({
        "serial": c.serial, "template": c.template,
        "template_version": c.template_version.to_string(), "principal": c.principal,
        "subject": c.subject, "sans": c.sans, "key": c.key, "not_before": c.not_before,
        "not_after": c.not_after, "request_id": c.request_id,
        "revoked_at": c.revocation.as_ref().map(|r| r.at),
        "revocation_reason": c.revocation.as_ref().map(|r| r.reason.name()),
        "certificate": pem::encode("CERTIFICATE", &c.der),
    })
}

async fn list_certificates(
    State(state): State<Arc<AppState>>,
    _: Admin<Reader>,
    Params(q): Params<CertQuery>,
) -> Result<Response, HttpError> {
    let rows = state
        .site
        .certificates(&CertFilter {
            template: q.template,
            principal: q.principal,
            expiring_before: q.expiring_before,
            revoked_only: q.revoked,
            unexpired_at: None,
        })
        .await?;
    Ok(Json(rows.iter().map(cert_json).collect::<Vec<_>>()).into_response())
}

async fn get_certificate(
    State(state): State<Arc<AppState>>,
    _: Admin<Reader>,
    Path(serial): Path<String>,
) -> Result<Response, HttpError> {
    let c = known_certificate(&state, &serial).await?;
    Ok(Json(cert_json(&c)).into_response())
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    admin: Admin<CertManager>,
    Path(serial): Path<String>,
    Body(b): Body<ReasonBody>,
) -> Result<Response, HttpError> {
    let reason = RevocationReason::parse("reason", &b.reason)
        .map_err(|e| HttpError::bad_request("reason", e.rule))?;
    known_certificate(&state, &serial).await?;
    let r = state.site.revoke(&serial, reason, &admin.actor()).await?;
    Ok(
        Json(json!({ "serial": serial, "revoked_at": r.at, "reason": r.reason.name() }))
            .into_response(),
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CrlBody {
    /// `root` or `issuing` (default: the CA that issues end-entity certificates).
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    delta: bool,
    /// nextUpdate − thisUpdate as `fleetpki crl publish --next-update` takes it (e.g. 7d);
    /// default from the site config.
    #[serde(default)]
    next_update: Option<String>,
}

async fn publish_crl(
    State(state): State<Arc<AppState>>,
    admin: Admin<CertManager>,
    Body(b): Body<CrlBody>,
) -> Result<Response, HttpError> {
    let issuer = match b.issuer.as_deref() {
        None => None,
        Some("root") => Some(KeyRole::Root),
        Some("issuing") => Some(KeyRole::Issuing),
        Some(o) => {
            return Err(HttpError::bad_request(
                "issuer",
                format!("`{o}`: use root or issuing"),
            ));
        }
    };
    let crl = state
        .site
        .publish_crl(issuer, b.delta, b.next_update.as_deref(), &admin.actor())
        .await
        .map_err(|e| {
            renamed(
                e,
                &[
                    ("--next-update", "next_update"),
                    ("--delta", "delta"),
                    ("--issuer", "issuer"),
                ],
            )
        })?;
    Ok(Json(json!({
        "issuer": crl.issuer, "number": crl.number, "base_number": crl.base_number,
        "this_update": crl.this_update, "next_update": crl.next_update,
        "crl": pem::encode("X509 CRL", &crl.der),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    principal: String,
    template: Option<String>,
    /// Seconds (default one day).
    expires_in: Option<i64>,
}

async fn create_token(
    State(state): State<Arc<AppState>>,
    admin: Admin<CertManager>,
    Body(b): Body<TokenBody>,
) -> Result<Response, HttpError> {
    let (token, text) = state
        .site
        .token_create(
            &b.principal,
            b.template.as_deref(),
            b.expires_in.unwrap_or(86_400),
            &admin.actor(),
        )
        .await
        .map_err(|e| {
            renamed(
                e,
                &[("--principal", "principal"), ("--expires", "expires_in")],
            )
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": text, "id": token.id, "principal": token.principal,
            "template": token.template, "expires_at": token.expires_at,
        })),
    )
        .into_response())
}

async fn list_templates(
    State(state): State<Arc<AppState>>,
    _: Admin<Reader>,
) -> Result<Response, HttpError> {
    Ok(Json(state.site.store.templates().await?).into_response())
}

async fn get_template(
    State(state): State<Arc<AppState>>,
    _: Admin<Reader>,
    Path(name): Path<String>,
) -> Result<Response, HttpError> {
    Ok(Json(state.site.find_template(&name).await?).into_response())
}

/// `{"validity": "1y", "require_approval": "true", ...}`: the fields `fleetpki template set`
/// takes (`require-approval` or `require_approval`), with the same rules.
async fn set_template(
    State(state): State<Arc<AppState>>,
    admin: Admin<CaAdmin>,
    Path(name): Path<String>,
    Body(b): Body<std::collections::BTreeMap<String, Value>>,
) -> Result<Response, HttpError> {
    let mut edits = b
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            (k.replace('_', "-"), text)
        })
        .collect::<Vec<_>>();
    if edits.is_empty() {
        return Err(HttpError::bad_request(
            "body",
            "name at least one template field to change",
        ));
    }
    // The CLI's order, not the map's alphabetical one: `subject` must apply before
    // `permitted-dns-suffixes` and `subject-from-directory`, which imply a subject rule.
    edits.sort_by_key(|(k, _)| {
        SETTABLE_FIELDS
            .iter()
            .position(|(f, _)| f == k)
            .unwrap_or(usize::MAX)
    });
    let t = state
        .site
        .template_set(&name, &edits, &admin.actor())
        .await?;
    Ok(Json(t).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    published: bool,
}

async fn publish_template(
    State(state): State<Arc<AppState>>,
    admin: Admin<CaAdmin>,
    Path(name): Path<String>,
    Body(b): Body<PublishBody>,
) -> Result<Response, HttpError> {
    let t = state
        .site
        .template_publish(&name, b.published, &admin.actor())
        .await?;
    Ok(Json(t).into_response())
}

async fn bump_template(
    State(state): State<Arc<AppState>>,
    admin: Admin<CaAdmin>,
    Path(name): Path<String>,
) -> Result<Response, HttpError> {
    Ok(Json(state.site.template_bump(&name, &admin.actor()).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientQuery {
    status: Option<String>,
}

async fn list_clients(
    State(state): State<Arc<AppState>>,
    _: Admin<Reader>,
    Params(q): Params<ClientQuery>,
) -> Result<Response, HttpError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(ClientStatus::parse(s).ok_or_else(|| {
            HttpError::bad_request("status", format!("`{s}`: use pending, approved or blocked"))
        })?),
    };
    Ok(Json(state.site.clients(status).await?).into_response())
}

async fn decide_client(
    State(state): State<Arc<AppState>>,
    admin: Admin<CertManager>,
    Path((name, decision)): Path<(String, String)>,
) -> Result<Response, HttpError> {
    let status = match decision.as_str() {
        "approve" => ClientStatus::Approved,
        "block" => ClientStatus::Blocked,
        other => {
            return Err(HttpError::new(
                StatusCode::NOT_FOUND,
                "decision",
                format!("`{other}`: use approve or block"),
            ));
        }
    };
    let r = state
        .site
        .client_decide(&name, status, &admin.actor())
        .await?;
    Ok(Json(r).into_response())
}

/// `{"name": "NEW"}`: `fleetpki template duplicate NAME NEW` (the copy is unpublished).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DuplicateBody {
    name: String,
}

async fn duplicate_template(
    State(state): State<Arc<AppState>>,
    admin: Admin<CaAdmin>,
    Path(name): Path<String>,
    Body(b): Body<DuplicateBody>,
) -> Result<Response, HttpError> {
    let t = state
        .site
        .template_duplicate(&name, &b.name, &admin.actor())
        .await
        .map_err(|e| renamed(e, &[("template.name", "name")]))?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

/// The flags of `fleetpki template grant` / `revoke-grant`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    group: String,
    #[serde(default)]
    read: bool,
    #[serde(default)]
    enroll: bool,
    #[serde(default)]
    autoenroll: bool,
}

/// The CLI's refusals name `--group` or the command; the API names the JSON field.
const GRANT_FIELDS: [(&str, &str); 2] = [("--group", "group"), ("template grant", "body")];

async fn grant_template(
    State(state): State<Arc<AppState>>,
    admin: Admin<CaAdmin>,
    Path(name): Path<String>,
    Body(b): Body<GrantBody>,
) -> Result<Response, HttpError> {
    if !(b.read || b.enroll || b.autoenroll) {
        return Err(HttpError::bad_request(
            "body",
            "set at least one of read, enroll, autoenroll to true",
        ));
    }
    let t = state
        .site
        .template_grant(
            &name,
            &b.group,
            b.read,
            b.enroll,
            b.autoenroll,
            &admin.actor(),
        )
        .await
        .map_err(|e| renamed(e, &GRANT_FIELDS))?;
    Ok(Json(t).into_response())
}

/// Removes the named permissions, or all of the group's when none is set (as the CLI).
async fn revoke_grant_template(
    State(state): State<Arc<AppState>>,
    admin: Admin<CaAdmin>,
    Path(name): Path<String>,
    Body(b): Body<GrantBody>,
) -> Result<Response, HttpError> {
    let t = state
        .site
        .template_revoke_grant(
            &name,
            &b.group,
            b.read,
            b.enroll,
            b.autoenroll,
            &admin.actor(),
        )
        .await
        .map_err(|e| renamed(e, &GRANT_FIELDS))?;
    Ok(Json(t).into_response())
}

/// Every stored version of a template, oldest first (`fleetpki template history`).
async fn template_history(
    State(state): State<Arc<AppState>>,
    _: Admin<Reader>,
    Path(name): Path<String>,
) -> Result<Response, HttpError> {
    let t = state.site.find_template(&name).await?;
    Ok(Json(state.site.store.template_history(&t.name).await?).into_response())
}

async fn list_directory(
    State(state): State<Arc<AppState>>,
    _: Admin<Reader>,
) -> Result<Response, HttpError> {
    Ok(Json(state.site.directory_list().await?).into_response())
}

/// `fleetpki directory add-computer / add-user / add-service` in one body, by `kind`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalBody {
    kind: String,
    name: String,
    dns: Option<String>,
    email: Option<String>,
    upn: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// A body field's name and whether the caller gave it.
type Given<'a> = (&'a str, bool);

impl PrincipalBody {
    /// The principal, with the fields each CLI command takes: a computer needs `dns`, a user
    /// `email` (and may have `upn`), a service may have `dns`.
    fn principal(self) -> Result<(Principal, Vec<String>), HttpError> {
        let kind = PrincipalKind::parse("kind", &self.kind)
            .map_err(|e| HttpError::bad_request("kind", e.rule))?;
        let (needs, refuses): (&[Given], &[Given]) = match kind {
            PrincipalKind::Computer => (
                &[("dns", self.dns.is_some())],
                &[("email", self.email.is_some()), ("upn", self.upn.is_some())],
            ),
            PrincipalKind::User => (
                &[("email", self.email.is_some())],
                &[("dns", self.dns.is_some())],
            ),
            PrincipalKind::Service => (
                &[],
                &[("email", self.email.is_some()), ("upn", self.upn.is_some())],
            ),
        };
        if let Some((f, _)) = needs.iter().find(|(_, given)| !given) {
            return Err(HttpError::bad_request(
                *f,
                format!("a {} needs it", kind.name()),
            ));
        }
        if let Some((f, _)) = refuses.iter().find(|(_, given)| *given) {
            return Err(HttpError::bad_request(
                *f,
                format!("a {} takes none", kind.name()),
            ));
        }
        let p = Principal {
            name: self.name,
            kind,
            dns: self.dns,
            email: self.email,
            upn: self.upn,
            disabled: false,
        };
        Ok((p, self.groups))
    }
}

async fn add_principal(
    State(state): State<Arc<AppState>>,
    admin: Admin<CaAdmin>,
    Body(b): Body<PrincipalBody>,
) -> Result<Response, HttpError> {
    let (p, groups) = b.principal()?;
    state
        .site
        .directory_add(p.clone(), &groups, &admin.actor())
        .await
        .map_err(|e| {
            renamed(
                e,
                &[
                    ("principal.name", "name"),
                    ("principal.dns", "dns"),
                    ("principal.email", "email"),
                    ("principal.upn", "upn"),
                    ("--group", "groups"),
                ],
            )
        })?;
    let groups = state.site.store.groups_of(&p.name).await?;
    let entry = Entry {
        principal: p,
        groups,
    };
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    name: String,
}

async fn add_group(
    State(state): State<Arc<AppState>>,
    admin: Admin<CaAdmin>,
    Body(b): Body<GroupBody>,
) -> Result<Response, HttpError> {
    state
        .site
        .directory_add_group(&b.name, &admin.actor())
        .await
        .map_err(|e| renamed(e, &[("group.name", "name")]))?;
    Ok((StatusCode::CREATED, Json(json!({ "name": b.name }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    principal: String,
}

async fn add_member(
    State(state): State<Arc<AppState>>,
    admin: Admin<CaAdmin>,
    Path(group): Path<String>,
    Body(b): Body<MemberBody>,
) -> Result<Response, HttpError> {
    state
        .site
        .directory_add_member(&group, &b.principal, &admin.actor())
        .await
        .map_err(|e| {
            let mut h = HttpError::from(e);
            // The group is the path (404 when absent); the principal is the body (400, not
            // the 403 an enrollment for an unknown principal gets).
            h.status = match h.field.as_str() {
                "group" => StatusCode::NOT_FOUND,
                "principal" => StatusCode::BAD_REQUEST,
                _ => h.status,
            };
            h
        })?;
    Ok(Json(json!({ "group": group, "principal": b.principal })).into_response())
}

/// `fleetpki directory import` of JSON (the shape `GET /api/v1/directory` returns): groups
/// and principals, all or nothing; existing principals are updated.
async fn import_directory(
    State(state): State<Arc<AppState>>,
    admin: Admin<CaAdmin>,
    Body(b): Body<DirectoryFile>,
) -> Result<Response, HttpError> {
    let file = b;
    let (groups, principals) = state
        .site
        .directory_import(file, "body", &admin.actor())
        .await?;
    Ok(Json(json!({ "groups_created": groups, "principals": principals })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

async fn audit(
    State(state): State<Arc<AppState>>,
    _: Admin<Reader>,
    Params(q): Params<AuditQuery>,
) -> Result<Response, HttpError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(HttpError::bad_request(
            "limit",
            "must lie between 1 and 1000",
        ));
    }
    Ok(Json(state.site.audit_list(q.after.unwrap_or(0), limit).await?).into_response())
}

/// The hash chain recomputed (`fleetpki audit verify`): 200 either way, `intact` says which.
async fn audit_verify(
    State(state): State<Arc<AppState>>,
    _: Admin<Reader>,
) -> Result<Response, HttpError> {
    let report = state.site.audit_verify().await?;
    let v = match report.result {
        Ok(()) => json!({ "intact": true, "entries": report.entries }),
        Err(b) => json!({ "intact": false, "entries": report.entries, "break": b.to_string() }),
    };
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EabBody {
    principal: String,
}

/// `fleetpki acme eab --principal P`: the HMAC key (base64url, unpadded) is shown only here.
async fn create_eab(
    State(state): State<Arc<AppState>>,
    admin: Admin<EabIssuer>,
    Body(b): Body<EabBody>,
) -> Result<Response, HttpError> {
    let eab = state
        .site
        .acme_eab_create(&b.principal, &admin.actor())
        .await
        .map_err(|e| {
            // An unknown principal is bad input here, not a refused enrollment.
            let mut h = HttpError::from(e);
            if h.field == "principal" {
                h.status = StatusCode::BAD_REQUEST;
            }
            h
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "kid": eab.kid, "principal": eab.principal,
            "hmac_key": URL_SAFE_NO_PAD.encode(&eab.hmac_key), "created_at": eab.created_at,
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    client: Option<String>,
    kind: Option<String>,
    /// Unix seconds: only messages received at or after it.
    since: Option<i64>,
    limit: Option<i64>,
}

/// The fallback status point's messages, newest first (`fleetpki status list --json`).
async fn list_status(
    State(state): State<Arc<AppState>>,
    _: Admin<Reader>,
    Params(q): Params<StatusQuery>,
) -> Result<Response, HttpError> {
    let limit = q.limit.unwrap_or(StatusFilter::DEFAULT_LIMIT);
    if !(1..=1000).contains(&limit) {
        return Err(HttpError::bad_request(
            "limit",
            "must lie between 1 and 1000",
        ));
    }
    let messages = state
        .site
        .store
        .status_messages(&StatusFilter {
            client: q.client,
            kind: q.kind,
            since: q.since,
            limit,
        })
        .await?;
    let out: Vec<Value> = messages
        .iter()
        .map(|m| {
            // The server stores only bodies that parsed; keep the text if one somehow does not.
            let body: Value =
                serde_json::from_str(&m.body).unwrap_or_else(|_| m.body.clone().into());
            json!({
                "id": m.id, "received_at": m.received_at, "source": m.source,
                "client": m.client, "kind": m.kind, "body": body,
            })
        })
        .collect();
    Ok(Json(out).into_response())
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}
