//! The `acme` role (RFC 8555): directory, nonces, accounts (jwk and kid, external account
//! binding, key change), orders, authorizations, http-01 and dns-01 challenges, finalize through the CA's
//! ordinary submission pipeline, certificate download and revocation. Every error is an RFC 7807
//! problem document with an ACME error type.

mod cache;
mod dns;
mod nonce;
mod validate;

use crate::AppState;
use crate::config::{AcmeConfig, ConfigError, RoleConfig};
use crate::tls::Peer;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cache::{Accounts, CachedAccount, Issued, ReadyOrders, Templates, ValidAuthz};
use fleetpki_acme::jws::Purpose;
use fleetpki_acme::{Jwk, Jws, KeyRef, Problem, ProblemType};
use fleetpki_ca::issuance::Submitted;
use fleetpki_ca::{Actor, audit_event};
use fleetpki_model::acme::{
    AccountStatus, AcmeAccount, AcmeAuthz, AcmeChallenge, AcmeError, AcmeOrder, AuthzStatus,
    ChallengeStatus, OrderStatus,
};
use fleetpki_model::audit::Outcome;
use fleetpki_model::record::RevocationReason;
use fleetpki_model::template::{SubjectRule, check_dns_name, dns_within};
use fleetpki_model::{UnixTime, fmt_time};
use fleetpki_store::{Change, StoreError};
use nonce::Nonces;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// An order waits this long for its authorizations and finalization.
const ORDER_LIFETIME: i64 = 7 * 24 * 3600;
/// A pending authorization lives as long as its order.
const PENDING_AUTHZ_LIFETIME: i64 = ORDER_LIFETIME;
/// At most this many names in one order.
const MAX_IDENTIFIERS: usize = 100;
/// Unused nonces kept; older ones are refused (badNonce) and the client retries.
const NONCE_CAP: usize = 100_000;
/// Accounts kept in memory (see [`cache::ACCOUNT_TTL`]).
const ACCOUNT_CACHE_CAP: usize = 10_000;
/// Ready orders awaiting finalize, and issued certificates awaiting download, kept in memory;
/// beyond these the oldest are read from the store instead.
const RECENT_CAP: usize = 10_000;

pub(crate) fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

pub(crate) fn unb64(t: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(t).ok()
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b64(&b)
}

/// The role's own state beside [`AppState`].
pub(crate) struct Acme {
    cfg: AcmeConfig,
    nonces: Nonces,
    accounts: Accounts,
    valid_authz: ValidAuthz,
    templates: Templates,
    ready: ReadyOrders,
    issued: Issued,
}

/// Checks at start what the config names: a template that takes names from the request within
/// permitted DNS suffixes (what bounds the names anyone with an account can order), and the
/// default principal.
pub(crate) async fn check(rc: &RoleConfig, site: &fleetpki_ca::Site) -> Result<(), ConfigError> {
    let Some(cfg) = &rc.acme else {
        return Err(ConfigError {
            key: "roles.acme".into(),
            rule: "the role has no settings".into(),
        });
    };
    let unavailable = |key: &str, e: StoreError| ConfigError {
        key: key.into(),
        rule: format!("cannot be checked: {e}"),
    };
    let template = site
        .store
        .template(&cfg.template)
        .await
        .map_err(|e| unavailable("roles.acme.template", e))?
        .ok_or_else(|| ConfigError {
            key: "roles.acme.template".into(),
            rule: format!("no template named `{}`", cfg.template),
        })?;
    match &template.subject {
        SubjectRule::FromDirectory { .. } => {
            return Err(ConfigError {
                key: "roles.acme.template".into(),
                rule: format!(
                    "template `{}` builds names from the directory; ACME needs one whose names are supplied in the request",
                    cfg.template
                ),
            });
        }
        SubjectRule::SupplyInRequest {
            permitted_dns_suffixes,
        } if permitted_dns_suffixes.is_empty() => {
            return Err(ConfigError {
                key: "roles.acme.template".into(),
                rule: format!(
                    "template `{}` permits any DNS name; ACME needs permitted DNS suffixes to bound what can be ordered (fleetpki template set \"{}\" --permitted-dns-suffixes example.com)",
                    cfg.template, cfg.template
                ),
            });
        }
        SubjectRule::SupplyInRequest { .. } => {}
    }
    if let Some(p) = &cfg.principal
        && site
            .store
            .principal(p)
            .await
            .map_err(|e| unavailable("roles.acme.principal", e))?
            .is_none()
    {
        return Err(ConfigError {
            key: "roles.acme.principal".into(),
            rule: format!("no principal named `{p}` in the directory"),
        });
    }
    Ok(())
}

pub(crate) fn router(rc: &RoleConfig) -> Router<Arc<AppState>> {
    let cfg = rc.acme.clone().unwrap_or_else(|| AcmeConfig {
        template: String::new(),
        principal: None,
        http01_port: 80,
        resolve: Default::default(),
        dns_server: None,
        external_account_required: true,
        authz_reuse_secs: 0,
    });
    let acme = Arc::new(Acme {
        cfg,
        nonces: Nonces::new(NONCE_CAP),
        accounts: Accounts::new(cache::ACCOUNT_TTL, ACCOUNT_CACHE_CAP),
        valid_authz: ValidAuthz::new(cache::ACCOUNT_TTL, ACCOUNT_CACHE_CAP),
        templates: Templates::new(cache::ACCOUNT_TTL, 4),
        ready: ReadyOrders::new(RECENT_CAP),
        issued: Issued::new(RECENT_CAP),
    });
    Router::new()
        .route("/acme/directory", get(directory))
        .route("/acme/new-nonce", get(new_nonce).head(new_nonce))
        .route("/acme/new-account", post(new_account))
        .route("/acme/new-order", post(new_order))
        .route("/acme/acct/{id}", post(account))
        .route("/acme/acct/{id}/orders", post(account_orders))
        .route("/acme/order/{id}", post(order))
        .route("/acme/order/{id}/finalize", post(finalize))
        .route("/acme/authz/{id}", post(authz))
        .route("/acme/chall/{id}/{kind}", post(challenge))
        .route("/acme/cert/{serial}", post(certificate))
        .route("/acme/revoke-cert", post(revoke))
        .route("/acme/key-change", post(key_change))
        // After the routes: it applies to those registered before it.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(with_nonce))
        .layer(Extension(acme))
}

/// Every answer carries a fresh nonce, a link to the directory and no-store (RFC 8555 §6.5,
/// §7.1); errors too, so a client refused with badNonce can retry at once.
async fn with_nonce(
    Extension(acme): Extension<Arc<Acme>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let base = base_url(req.headers());
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&acme.nonces.issue()) {
        h.insert("replay-nonce", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("<{base}/acme/directory>;rel=\"index\"")) {
        h.append(header::LINK, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The problem document for `p`.
fn problem(p: Problem) -> Response {
    let status = StatusCode::from_u16(p.kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
    problem_with_status(p, status)
}

/// The problem document for `p` under an HTTP status other than its type's own.
fn problem_with_status(p: Problem, status: StatusCode) -> Response {
    let mut doc = p.document();
    doc["status"] = json!(status.as_u16());
    let mut resp = (status, Json(doc)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

fn store_problem(e: StoreError) -> Problem {
    tracing::error!(error = %e, "acme: store failed");
    Problem::new(ProblemType::ServerInternal, format!("store: {e}"))
}

/// `https://HOST` as the client addressed this server: the URLs in every answer, and what each
/// JWS `url` must match.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("https://{host}")
}

/// HTTP/2 carries the host as :authority, which hyper puts in the URI, not in Host.
fn base_of(headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    match uri.authority() {
        Some(a) if headers.get(header::HOST).is_none() => format!("https://{a}"),
        _ => base_url(headers),
    }
}

async fn not_found() -> Response {
    problem(Problem::malformed("url: no such ACME resource"))
}

/// The methods the resources in [`router`] answer: the directory and new-nonce are read with
/// GET (and HEAD); everything else is POST, including POST-as-GET (RFC 8555 §6.3).
fn allowed_methods(path: &str) -> &'static str {
    match path {
        "/acme/directory" | "/acme/new-nonce" => "GET, HEAD",
        _ => "POST",
    }
}

/// A wrong method on an existing resource: 405 as a problem document, since RFC 8555 §6.7
/// wants every error as one (axum adds the `Allow` header).
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let path = uri.path();
    let allowed = allowed_methods(path);
    problem_with_status(
        Problem::malformed(format!(
            "method {method} is not allowed on {path}; allowed: {allowed}"
        )),
        StatusCode::METHOD_NOT_ALLOWED,
    )
}

async fn directory(
    headers: HeaderMap,
    uri: axum::http::Uri,
    Extension(acme): Extension<Arc<Acme>>,
) -> Response {
    let b = base_of(&headers, &uri);
    Json(json!({
        "newNonce": format!("{b}/acme/new-nonce"),
        "newAccount": format!("{b}/acme/new-account"),
        "newOrder": format!("{b}/acme/new-order"),
        "revokeCert": format!("{b}/acme/revoke-cert"),
        "keyChange": format!("{b}/acme/key-change"),
        "meta": {
            "externalAccountRequired": acme.cfg.external_account_required,
        },
    }))
    .into_response()
}

async fn new_nonce(method: axum::http::Method) -> Response {
    // The nonce itself is added by `with_nonce`.
    if method == axum::http::Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// Who signed a request.
enum Signer {
    Account(Arc<CachedAccount>),
    Key(Jwk),
}

/// A verified request.
struct Authed {
    jws: Jws,
    signer: Signer,
    base: String,
}

impl Authed {
    fn account(&self) -> Result<&AcmeAccount, Problem> {
        match &self.signer {
            Signer::Account(a) => Ok(&a.account),
            Signer::Key(_) => Err(Problem::malformed(
                "protected.jwk: this resource needs the account URL as kid",
            )),
        }
    }
}

/// Parses and verifies a POST: media type, JWS shape, URL, nonce, then the signature with the
/// account's key (kid) or the embedded key (jwk, where `jwk_ok`).
async fn authenticate(
    state: &AppState,
    acme: &Acme,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    body: &[u8],
    jwk_ok: bool,
) -> Result<Authed, Problem> {
    let ct = super::media_type(headers);
    if ct.as_deref() != Some("application/jose+json") {
        return Err(Problem::malformed(format!(
            "content-type: `{}` is not application/jose+json",
            ct.unwrap_or_default()
        )));
    }
    let jws = Jws::parse(body, Purpose::Request)?;
    let base = base_of(headers, uri);
    let url = format!("{base}{}", uri.path());
    if jws.protected.url != url {
        return Err(Problem::new(
            ProblemType::Unauthorized,
            format!(
                "protected.url: `{}` is not the URL this request was sent to ({url})",
                jws.protected.url
            ),
        ));
    }
    let nonce = jws.protected.nonce.as_deref().unwrap_or_default();
    if !acme.nonces.consume(nonce) {
        return Err(Problem::new(
            ProblemType::BadNonce,
            "protected.nonce: not issued by this server, or already used",
        ));
    }
    let signer = match &jws.protected.key {
        KeyRef::Jwk(jwk) => {
            if !jwk_ok {
                return Err(Problem::malformed(
                    "protected.jwk: this resource needs the account URL as kid",
                ));
            }
            jws.verify(jwk)?;
            Signer::Key(jwk.clone())
        }
        KeyRef::Kid(kid) => {
            let id = kid
                .strip_prefix(&format!("{base}/acme/acct/"))
                .filter(|id| !id.is_empty() && !id.contains('/'))
                .ok_or_else(|| {
                    Problem::new(
                        ProblemType::AccountDoesNotExist,
                        format!("protected.kid: `{kid}` is not an account URL of this server"),
                    )
                })?;
            let cached = match acme.accounts.get(id, Instant::now()) {
                Ok(c) => c,
                Err(ticket) => {
                    let loaded = load_account(state, id).await?;
                    acme.accounts.put(ticket, id.to_string(), loaded)
                }
            };
            jws.verify(&cached.key)?;
            let account = &cached.account;
            if account.status != AccountStatus::Valid {
                return Err(Problem::new(
                    ProblemType::Unauthorized,
                    format!("account: `{}` is {}", account.id, account.status.name()),
                ));
            }
            Signer::Account(cached)
        }
    };
    Ok(Authed { jws, signer, base })
}

/// Account `id` from the store, its key parsed.
/// A POST that [`authenticate`] verified, extracted before the handler runs. `JWK`: whether an
/// embedded key may sign it (newAccount, revokeCert); elsewhere only an account's kid. A
/// refusal is answered with its problem document.
struct Signed<const JWK: bool>(Authed);

impl<const JWK: bool> FromRequest<Arc<AppState>> for Signed<JWK> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Response> {
        let acme = req
            .extensions()
            .get::<Arc<Acme>>()
            .cloned()
            .ok_or_else(|| {
                problem(Problem::new(
                    ProblemType::ServerInternal,
                    "the acme role's state is missing",
                ))
            })?;
        let (headers, uri) = (req.headers().clone(), req.uri().clone());
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        authenticate(state, &acme, &headers, &uri, &body, JWK)
            .await
            .map(Signed)
            .map_err(problem)
    }
}

async fn load_account(state: &AppState, id: &str) -> Result<CachedAccount, Problem> {
    let account = state
        .site
        .store
        .acme_account(id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| {
            Problem::new(
                ProblemType::AccountDoesNotExist,
                format!("protected.kid: no account `{id}`"),
            )
        })?;
    let jwk: Value = serde_json::from_str(&account.jwk)
        .map_err(|e| store_problem(StoreError::Corrupt(format!("acme account jwk: {e}"))))?;
    let key = Jwk::parse("account key", &jwk)?;
    Ok(CachedAccount { account, key })
}

fn actor(account: &str, peer: Option<&Peer>) -> Actor {
    Actor::new(
        format!("acme:{account}"),
        format!(
            "acme {}",
            peer.map(|p| p.addr.to_string())
                .unwrap_or_else(|| "-".into())
        ),
    )
}

fn created(location: String, body: Value) -> Response {
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn with_location(mut resp: Response, location: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn account_json(base: &str, a: &AcmeAccount) -> Value {
    let mut v = json!({
        "status": a.status.name(),
        "contact": a.contact,
        "orders": format!("{base}/acme/acct/{}/orders", a.id),
        "createdAt": fmt_time(a.created_at),
    });
    if let Some(kid) = &a.eab_kid {
        v["externalAccountBinding"] = json!({ "kid": kid });
    }
    v
}

/// `mailto:` contacts only, one address each, no header fields.
fn check_contact(v: Option<&Value>) -> Result<Option<Vec<String>>, Problem> {
    let Some(v) = v else { return Ok(None) };
    let list = v
        .as_array()
        .ok_or_else(|| Problem::malformed("payload.contact: must be an array of URLs"))?;
    let mut out = Vec::new();
    for c in list {
        let c = c
            .as_str()
            .ok_or_else(|| Problem::malformed("payload.contact: each entry must be a string"))?;
        let addr = c.strip_prefix("mailto:").ok_or_else(|| {
            Problem::new(
                ProblemType::UnsupportedContact,
                format!("payload.contact: `{c}`: only mailto: contacts are supported"),
            )
        })?;
        let ok = addr.len() <= 254
            && !addr.contains(['?', ',', ' ', '<', '>'])
            && addr
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
        if !ok {
            return Err(Problem::new(
                ProblemType::InvalidContact,
                format!("payload.contact: `{c}` is not one email address"),
            ));
        }
        out.push(c.to_string());
    }
    if out.len() > 10 {
        return Err(Problem::new(
            ProblemType::InvalidContact,
            "payload.contact: at most 10 addresses",
        ));
    }
    Ok(Some(out))
}

async fn new_account(
    State(state): State<Arc<AppState>>,
    Extension(acme): Extension<Arc<Acme>>,
    peer: Option<Extension<Peer>>,
    Signed(a): Signed<true>,
) -> Response {
    let peer = peer.map(|Extension(p)| p);
    new_account_inner(&state, &acme, peer.as_ref(), a)
        .await
        .unwrap_or_else(problem)
}

async fn new_account_inner(
    state: &AppState,
    acme: &Acme,
    peer: Option<&Peer>,
    a: Authed,
) -> Result<Response, Problem> {
    let Signer::Key(jwk) = &a.signer else {
        return Err(Problem::malformed(
            "protected.kid: newAccount is signed with the new account's key as jwk",
        ));
    };
    let payload = a.jws.json()?;
    let thumbprint = jwk.thumbprint();
    if let Some(existing) = state
        .site
        .store
        .acme_account_by_thumbprint(&thumbprint)
        .await
        .map_err(store_problem)?
    {
        let loc = format!("{}/acme/acct/{}", a.base, existing.id);
        return Ok(with_location(
            Json(account_json(&a.base, &existing)).into_response(),
            &loc,
        ));
    }
    if payload.get("onlyReturnExisting").and_then(Value::as_bool) == Some(true) {
        return Err(Problem::new(
            ProblemType::AccountDoesNotExist,
            "onlyReturnExisting: no account has this key",
        ));
    }
    let contact = check_contact(payload.get("contact"))?.unwrap_or_default();
    let id = random_id();
    let (principal, eab_kid) = match payload.get("externalAccountBinding") {
        Some(eab) => {
            let (kid, principal) = check_eab(state, eab, jwk, &a.jws.protected.url).await?;
            (Some(principal), Some(kid))
        }
        None if acme.cfg.external_account_required => {
            return Err(Problem::new(
                ProblemType::ExternalAccountRequired,
                "payload.externalAccountBinding: this server requires one (fleetpki acme eab --principal P)",
            ));
        }
        None => (None, None),
    };
    let account = AcmeAccount {
        id: id.clone(),
        jwk: jwk.canonical_json(),
        thumbprint: thumbprint.clone(),
        status: AccountStatus::Valid,
        contact,
        principal: principal.clone(),
        eab_kid: eab_kid.clone(),
        created_at: fleetpki_model::now(),
    };
    let who = actor(&id, peer);
    let details = match (&principal, &eab_kid) {
        (Some(p), Some(k)) => format!("key {thumbprint}, bound to principal {p} by EAB key {k}"),
        _ => format!("key {thumbprint}"),
    };
    let change = Change::AcmeNewAccount {
        account: account.clone(),
        audit: audit_event(&who, "acme.account.create", &id, Outcome::Success, details),
    };
    match state.site.committer.apply(vec![change]).await {
        Ok(_) => {}
        Err(StoreError::Conflict {
            what: "acme eab key",
            ..
        }) => {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                "payload.externalAccountBinding: this EAB key is already bound to an account",
            ));
        }
        Err(StoreError::Conflict { .. }) => {
            return Err(Problem::malformed(
                "protected.jwk: an account with this key was created meanwhile; retry",
            ));
        }
        Err(e) => return Err(store_problem(e)),
    }
    let loc = format!("{}/acme/acct/{id}", a.base);
    Ok(created(loc, account_json(&a.base, &account)))
}

/// Checks an external account binding (RFC 8555 §7.3.4): its MAC by the EAB key, its URL, and
/// that it binds this very account key. Returns the EAB key id and its principal.
async fn check_eab(
    state: &AppState,
    eab: &Value,
    jwk: &Jwk,
    url: &str,
) -> Result<(String, String), Problem> {
    let inner = Jws::from_value(eab, Purpose::Eab).map_err(|mut p| {
        p.detail = format!("payload.externalAccountBinding: {}", p.detail);
        p
    })?;
    let KeyRef::Kid(kid) = &inner.protected.key else {
        return Err(Problem::malformed(
            "payload.externalAccountBinding.protected.kid: missing",
        ));
    };
    if inner.protected.url != url {
        return Err(Problem::malformed(
            "payload.externalAccountBinding.protected.url: must be the newAccount URL",
        ));
    }
    let key = state
        .site
        .store
        .acme_eab_key(kid)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| {
            Problem::new(
                ProblemType::Unauthorized,
                format!("payload.externalAccountBinding.protected.kid: no EAB key `{kid}`"),
            )
        })?;
    inner.verify_mac(&key.hmac_key)?;
    let bound: Value = serde_json::from_slice(&inner.payload).map_err(|_| {
        Problem::malformed("payload.externalAccountBinding.payload: not the account key JWK")
    })?;
    if Jwk::parse("payload.externalAccountBinding.payload", &bound)? != *jwk {
        return Err(Problem::new(
            ProblemType::Unauthorized,
            "payload.externalAccountBinding.payload: binds another key than the one signing this request",
        ));
    }
    Ok((key.kid, key.principal))
}

async fn account(
    State(state): State<Arc<AppState>>,
    Extension(acme): Extension<Arc<Acme>>,
    peer: Option<Extension<Peer>>,
    Path(id): Path<String>,
    Signed(a): Signed<false>,
) -> Response {
    async {
        let acct = a.account()?;
        if acct.id != id {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                "url: not the account that signed the request",
            ));
        }
        if a.jws.is_post_as_get() {
            return Ok(Json(account_json(&a.base, acct)).into_response());
        }
        let payload = a.jws.json()?;
        let mut updated = acct.clone();
        if let Some(contact) = check_contact(payload.get("contact"))? {
            updated.contact = contact;
        }
        match payload.get("status").map(|s| s.as_str()) {
            None => {}
            Some(Some("deactivated")) => updated.status = AccountStatus::Deactivated,
            Some(_) => {
                return Err(Problem::malformed(
                    "payload.status: only \"deactivated\" may be requested",
                ));
            }
        }
        if updated != *acct {
            let who = actor(&acct.id, peer.as_ref().map(|Extension(p)| p));
            let change = Change::AcmeUpdateAccount {
                account: updated.clone(),
                audit: audit_event(
                    &who,
                    "acme.account.update",
                    &acct.id,
                    Outcome::Success,
                    format!(
                        "status {}, contact {:?}",
                        updated.status.name(),
                        updated.contact
                    ),
                ),
            };
            let applied = state.site.committer.apply(vec![change]).await;
            // Dropped whatever the outcome: a commit whose answer was lost may still have landed.
            acme.accounts.invalidate(&acct.id);
            applied.map_err(store_problem)?;
        }
        Ok(Json(account_json(&a.base, &updated)).into_response())
    }
    .await
    .unwrap_or_else(problem)
}

async fn account_orders(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Signed(a): Signed<false>,
) -> Response {
    async {
        if a.account()?.id != id {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                "url: not the account that signed the request",
            ));
        }
        let ids = state
            .site
            .store
            .acme_orders_of(&id, 1000)
            .await
            .map_err(store_problem)?;
        let urls: Vec<String> = ids
            .iter()
            .map(|o| format!("{}/acme/order/{o}", a.base))
            .collect();
        Ok(Json(json!({ "orders": urls })).into_response())
    }
    .await
    .unwrap_or_else(problem)
}

/// The names an order may carry: DNS, no wildcard (the CA issues none), within the template's
/// permitted suffixes.
fn check_identifiers(
    payload: &Value,
    template: &fleetpki_model::template::Template,
) -> Result<Vec<String>, Problem> {
    let list = payload
        .get("identifiers")
        .and_then(Value::as_array)
        .ok_or_else(|| Problem::malformed("payload.identifiers: must be an array"))?;
    if list.is_empty() || list.len() > MAX_IDENTIFIERS {
        return Err(Problem::malformed(format!(
            "payload.identifiers: between 1 and {MAX_IDENTIFIERS} identifiers"
        )));
    }
    let suffixes = match &template.subject {
        // Checked at start too; a template changed since then to permit any name is refused
        // here rather than turning the endpoint into one that issues for anything.
        SubjectRule::SupplyInRequest {
            permitted_dns_suffixes,
        } if permitted_dns_suffixes.is_empty() => {
            return Err(Problem::new(
                ProblemType::ServerInternal,
                format!(
                    "template `{}` permits any DNS name; this ACME endpoint needs permitted DNS suffixes",
                    template.name
                ),
            ));
        }
        SubjectRule::SupplyInRequest {
            permitted_dns_suffixes,
        } => permitted_dns_suffixes,
        SubjectRule::FromDirectory { .. } => {
            return Err(Problem::new(
                ProblemType::ServerInternal,
                format!(
                    "template `{}` builds names from the directory; ACME needs one that takes them from the request",
                    template.name
                ),
            ));
        }
    };
    let mut names = Vec::new();
    for id in list {
        let kind = id.get("type").and_then(Value::as_str);
        let value = id.get("value").and_then(Value::as_str);
        let (Some(kind), Some(value)) = (kind, value) else {
            return Err(Problem::malformed(
                "payload.identifiers: each needs a type and a value (strings)",
            ));
        };
        if kind != "dns" {
            return Err(Problem::new(
                ProblemType::UnsupportedIdentifier,
                format!("payload.identifiers: type `{kind}` is not supported; only dns"),
            ));
        }
        let name = value.to_ascii_lowercase();
        if name.starts_with("*.") {
            return Err(Problem::new(
                ProblemType::RejectedIdentifier,
                format!(
                    "payload.identifiers: `{value}`: template `{}` issues no wildcard names",
                    template.name
                ),
            ));
        }
        check_dns_name("identifier", &name, false).map_err(|e| {
            Problem::new(
                ProblemType::RejectedIdentifier,
                format!("payload.identifiers: `{value}`: {}", e.rule),
            )
        })?;
        if !suffixes.iter().any(|s| dns_within(&name, s)) {
            return Err(Problem::new(
                ProblemType::RejectedIdentifier,
                format!(
                    "payload.identifiers: `{value}` is outside the permitted DNS suffixes of template `{}` ({})",
                    template.name,
                    suffixes.join(", ")
                ),
            ));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

async fn new_order(
    State(state): State<Arc<AppState>>,
    Extension(acme): Extension<Arc<Acme>>,
    Signed(a): Signed<false>,
) -> Response {
    async {
        let acct = a.account()?;
        principal_of(&acme, acct)?;
        let payload = a.jws.json()?;
        for k in ["notBefore", "notAfter"] {
            if payload.get(k).is_some() {
                return Err(Problem::malformed(format!(
                    "payload.{k}: not supported; the template sets the validity"
                )));
            }
        }
        let template = match acme.templates.get(&acme.cfg.template, Instant::now()) {
            Ok(t) => t,
            Err(ticket) => {
                let t = state
                    .site
                    .store
                    .template(&acme.cfg.template)
                    .await
                    .map_err(store_problem)?
                    .ok_or_else(|| {
                        Problem::new(
                            ProblemType::ServerInternal,
                            format!("roles.acme.template: no template `{}`", acme.cfg.template),
                        )
                    })?;
                acme.templates.put(ticket, acme.cfg.template.clone(), t)
            }
        };
        let names = check_identifiers(&payload, &template)?;
        let now = fleetpki_model::now();
        let mut ids = Vec::new();
        let mut fresh = Vec::new();
        let mut all_valid = true;
        for name in &names {
            let reuse = if acme.cfg.authz_reuse_secs > 0 {
                reusable_authz(&state, &acme, &acct.id, name, now).await?
            } else {
                None
            };
            match reuse {
                Some(z) => ids.push(z.id.clone()),
                None => {
                    all_valid = false;
                    let z = new_authz(&acme.cfg, &acct.id, name, now);
                    ids.push(z.id.clone());
                    fresh.push(z);
                }
            }
        }
        let order = AcmeOrder {
            id: random_id(),
            account: acct.id.clone(),
            status: if all_valid {
                OrderStatus::Ready
            } else {
                OrderStatus::Pending
            },
            expires: now + ORDER_LIFETIME,
            identifiers: names,
            authorizations: ids,
            request_id: None,
            serial: None,
            error: None,
            created_at: now,
        };
        state
            .site
            .committer
            .apply(vec![Change::AcmePutOrder {
                order: order.clone(),
                authorizations: fresh,
                only_if: None,
            }])
            .await
            .map_err(store_problem)?;
        let loc = format!("{}/acme/order/{}", a.base, order.id);
        let resp = created(loc, order_json(&a.base, &order));
        if order.status == OrderStatus::Ready {
            acme.ready.insert(order.id.clone(), order);
        }
        Ok(resp)
    }
    .await
    .unwrap_or_else(problem)
}

/// A valid authorization of `account` for `name` a new order may reuse (see `ValidAuthz`).
async fn reusable_authz(
    state: &AppState,
    acme: &Acme,
    account: &str,
    name: &str,
    now: UnixTime,
) -> Result<Option<Arc<AcmeAuthz>>, Problem> {
    let key = (account.to_string(), name.to_string());
    let usable = |z: &AcmeAuthz| z.status == AuthzStatus::Valid && z.expires > now;
    let ticket = match acme.valid_authz.get_if(&key, Instant::now(), usable) {
        Ok(z) => return Ok(Some(z)),
        // Missing, stale or expired since: read again (there may be a newer one).
        Err(t) => t,
    };
    let found = state
        .site
        .store
        .acme_valid_authz(account, name, false, now)
        .await
        .map_err(store_problem)?;
    Ok(found.map(|z| acme.valid_authz.put(ticket, key, z)))
}

fn new_authz(cfg: &AcmeConfig, account: &str, name: &str, now: UnixTime) -> AcmeAuthz {
    let challenge = |kind: &str| AcmeChallenge {
        kind: kind.to_string(),
        token: random_id(),
        status: ChallengeStatus::Pending,
        validated: None,
        error: None,
    };
    let mut challenges = vec![challenge("http-01")];
    if cfg.dns_server.is_some() {
        challenges.push(challenge("dns-01"));
    }
    AcmeAuthz {
        id: random_id(),
        account: account.to_string(),
        identifier: name.to_string(),
        wildcard: false,
        status: AuthzStatus::Pending,
        expires: now + PENDING_AUTHZ_LIFETIME,
        challenges,
    }
}

/// The directory principal an account's certificates are requested for.
fn principal_of(acme: &Acme, acct: &AcmeAccount) -> Result<String, Problem> {
    acct.principal
        .clone()
        .or_else(|| acme.cfg.principal.clone())
        .ok_or_else(|| {
            Problem::new(
                ProblemType::Unauthorized,
                "account: has no external account binding, and this endpoint has no default principal",
            )
        })
}

fn problem_json(e: &AcmeError) -> Value {
    Problem::new(
        ProblemType::parse(&e.kind).unwrap_or(ProblemType::ServerInternal),
        e.detail.clone(),
    )
    .document()
}

fn order_json(base: &str, o: &AcmeOrder) -> Value {
    let mut v = json!({
        "status": o.status.name(),
        "expires": fmt_time(o.expires),
        "identifiers": o.identifiers.iter().map(|n| json!({"type": "dns", "value": n})).collect::<Vec<_>>(),
        "authorizations": o.authorizations.iter().map(|z| format!("{base}/acme/authz/{z}")).collect::<Vec<_>>(),
        "finalize": format!("{base}/acme/order/{}/finalize", o.id),
    });
    if let Some(serial) = &o.serial {
        v["certificate"] = json!(format!("{base}/acme/cert/{serial}"));
    }
    if let Some(e) = &o.error {
        v["error"] = problem_json(e);
    }
    v
}

/// Loads an order of `account` and brings its status up to date: pending → ready once every
/// authorization is valid, → invalid if one failed or it expired; processing → valid or
/// invalid once its request waiting for approval is decided.
async fn current_order(state: &AppState, account: &str, id: &str) -> Result<AcmeOrder, Problem> {
    let mut o = state
        .site
        .store
        .acme_order(id)
        .await
        .map_err(store_problem)?
        .filter(|o| o.account == account)
        .ok_or_else(|| {
            Problem::new(
                ProblemType::Unauthorized,
                format!("order: `{id}` is not an order of this account"),
            )
        })?;
    let now = fleetpki_model::now();
    let before = o.clone();
    match o.status {
        OrderStatus::Pending => {
            if o.expires <= now {
                o.status = OrderStatus::Invalid;
                o.error = Some(AcmeError {
                    kind: "malformed".into(),
                    detail: "order: expired before its authorizations were completed".into(),
                });
            } else {
                let mut all = true;
                for z in &o.authorizations {
                    let az = state
                        .site
                        .store
                        .acme_authz(z)
                        .await
                        .map_err(store_problem)?;
                    match az.map(|a| (a.status, a.expires)) {
                        Some((AuthzStatus::Valid, exp)) if exp > now => {}
                        Some((AuthzStatus::Pending, _)) => all = false,
                        _ => {
                            o.status = OrderStatus::Invalid;
                            o.error = Some(AcmeError {
                                kind: "unauthorized".into(),
                                detail: format!("authorization {z} is not valid"),
                            });
                            all = false;
                            break;
                        }
                    }
                }
                if all {
                    o.status = OrderStatus::Ready;
                }
            }
        }
        OrderStatus::Processing => {
            if let Some(rid) = o.request_id {
                let req = state.site.store.request(rid).await.map_err(store_problem)?;
                if let Some(req) = req {
                    if let Some(serial) = req.serial {
                        o.status = OrderStatus::Valid;
                        o.serial = Some(serial);
                    } else if req.status != fleetpki_model::record::RequestStatus::Pending {
                        o.status = OrderStatus::Invalid;
                        o.error = Some(AcmeError {
                            kind: "unauthorized".into(),
                            detail: format!(
                                "request {rid} was {}: {}",
                                req.status.name(),
                                req.reason.unwrap_or_default()
                            ),
                        });
                    }
                }
            }
        }
        _ => {}
    }
    if o != before {
        state
            .site
            .committer
            .apply(vec![Change::AcmePutOrder {
                order: o.clone(),
                authorizations: vec![],
                only_if: None,
            }])
            .await
            .map_err(store_problem)?;
    }
    Ok(o)
}

async fn order(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Signed(a): Signed<false>,
) -> Response {
    async {
        let o = current_order(&state, &a.account()?.id, &id).await?;
        Ok(Json(order_json(&a.base, &o)).into_response())
    }
    .await
    .unwrap_or_else(problem)
}

/// The names a CSR asks for: its SAN DNS names and a CN, lower case, sorted, distinct.
fn csr_names(csr: &fleetpki_x509::csr::Csr) -> Vec<String> {
    let mut names: Vec<String> = csr
        .dns_names
        .iter()
        .chain(csr.common_name.iter())
        .map(|n| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A CA refusal as an ACME problem: a CSR at fault is badCSR, a permission refusal
/// unauthorized; the CA's own failures serverInternal.
fn ca_problem(e: fleetpki_ca::CaError) -> Problem {
    if let fleetpki_ca::CaError::Store(StoreError::Conflict {
        what: "acme order", ..
    }) = &e
    {
        return Problem::new(
            ProblemType::OrderNotReady,
            format!("order: finalized meanwhile ({e})"),
        );
    }
    match e.field().map(str::to_string) {
        Some(f) if f.starts_with("csr") => Problem::new(ProblemType::BadCsr, e.to_string()),
        Some(f) if f.starts_with("principal") || f == "template" => {
            Problem::new(ProblemType::Unauthorized, e.to_string())
        }
        Some(_) => Problem::malformed(e.to_string()),
        None => {
            tracing::error!(error = %e, "acme: issuance failed");
            Problem::new(ProblemType::ServerInternal, e.to_string())
        }
    }
}

async fn finalize(
    State(state): State<Arc<AppState>>,
    Extension(acme): Extension<Arc<Acme>>,
    peer: Option<Extension<Peer>>,
    Path(id): Path<String>,
    Signed(a): Signed<false>,
) -> Response {
    let started = std::time::Instant::now();
    async {
        let acct = a.account()?;
        let principal = principal_of(&acme, acct)?;
        let payload = a.jws.json()?;
        // An order this process just created ready is as good as read back (see `ReadyOrders`).
        let mut o = match acme.ready.take(&id) {
            Some(o) if o.account == acct.id => o,
            Some(o) => {
                // Not this account's: put it back for its owner, answer as a read would.
                acme.ready.insert(id.clone(), o);
                current_order(&state, &acct.id, &id).await?
            }
            None => current_order(&state, &acct.id, &id).await?,
        };
        if o.status != OrderStatus::Ready {
            return Err(Problem::new(
                ProblemType::OrderNotReady,
                format!("order: is {}, not ready", o.status.name()),
            ));
        }
        let der = payload
            .get("csr")
            .and_then(Value::as_str)
            .and_then(unb64)
            .ok_or_else(|| {
                Problem::new(
                    ProblemType::BadCsr,
                    "payload.csr: missing or not base64url DER",
                )
            })?;
        let csr = fleetpki_x509::csr::parse(&der)
            .map_err(|e| Problem::new(ProblemType::BadCsr, e.to_string()))?;
        if !csr.other_sans.is_empty() {
            return Err(Problem::new(
                ProblemType::BadCsr,
                format!(
                    "csr.subject_alt_name: only DNS names may be requested, not {}",
                    csr.other_sans.join(", ")
                ),
            ));
        }
        let names = csr_names(&csr);
        if names != o.identifiers {
            return Err(Problem::new(
                ProblemType::BadCsr,
                format!(
                    "csr: names [{}] are not the order's identifiers [{}]",
                    names.join(", "),
                    o.identifiers.join(", ")
                ),
            ));
        }
        let who = actor(&acct.id, peer.as_ref().map(|Extension(p)| p));
        let done = o.clone();
        let submitted = state
            .site
            .submit_then(
                &acme.cfg.template,
                &principal,
                &der,
                &who,
                move |cert| match cert {
                    Some(c) => vec![Change::AcmePutOrder {
                        order: AcmeOrder {
                            status: OrderStatus::Valid,
                            serial: Some(c.serial.clone()),
                            ..done
                        },
                        authorizations: vec![],
                        // Two finalizations of one order: the second is refused, not issued.
                        only_if: Some(OrderStatus::Ready),
                    }],
                    None => vec![],
                },
            )
            .await
            .map_err(ca_problem)?;
        match submitted {
            Submitted::Issued {
                request_id,
                certificate,
            } => {
                state.metrics.observe_issuance(started.elapsed());
                o.status = OrderStatus::Valid;
                o.request_id = Some(request_id);
                acme.issued.insert(
                    certificate.serial.clone(),
                    (acct.id.clone(), certificate.der),
                );
                o.serial = Some(certificate.serial);
            }
            Submitted::Pending { request_id } => {
                // Waiting for approval: the order shows processing until the request is decided.
                o.status = OrderStatus::Processing;
                o.request_id = Some(request_id);
                state
                    .site
                    .committer
                    .apply(vec![Change::AcmePutOrder {
                        order: o.clone(),
                        authorizations: vec![],
                        only_if: Some(OrderStatus::Ready),
                    }])
                    .await
                    .map_err(store_problem)?;
            }
        }
        let loc = format!("{}/acme/order/{}", a.base, o.id);
        let mut resp = Json(order_json(&a.base, &o)).into_response();
        if o.status == OrderStatus::Processing {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        Ok(with_location(resp, &loc))
    }
    .await
    .unwrap_or_else(problem)
}

fn challenge_json(base: &str, authz: &str, c: &AcmeChallenge) -> Value {
    let mut v = json!({
        "type": c.kind,
        "url": format!("{base}/acme/chall/{authz}/{}", c.kind),
        "status": c.status.name(),
        "token": c.token,
    });
    if let Some(t) = c.validated {
        v["validated"] = json!(fmt_time(t));
    }
    if let Some(e) = &c.error {
        v["error"] = problem_json(e);
    }
    v
}

fn authz_json(base: &str, z: &AcmeAuthz) -> Value {
    // A valid authorization lists only the challenge that validated it.
    let shown: Vec<Value> = z
        .challenges
        .iter()
        .filter(|c| z.status != AuthzStatus::Valid || c.status == ChallengeStatus::Valid)
        .map(|c| challenge_json(base, &z.id, c))
        .collect();
    json!({
        "identifier": {"type": "dns", "value": z.identifier},
        "status": z.status.name(),
        "expires": fmt_time(z.expires),
        "challenges": shown,
    })
}

async fn load_authz(state: &AppState, account: &str, id: &str) -> Result<AcmeAuthz, Problem> {
    let mut z = state
        .site
        .store
        .acme_authz(id)
        .await
        .map_err(store_problem)?
        .filter(|z| z.account == account)
        .ok_or_else(|| {
            Problem::new(
                ProblemType::Unauthorized,
                format!("authorization: `{id}` is not an authorization of this account"),
            )
        })?;
    if z.expires <= fleetpki_model::now()
        && matches!(z.status, AuthzStatus::Pending | AuthzStatus::Valid)
    {
        z.status = AuthzStatus::Expired;
    }
    Ok(z)
}

async fn authz(
    State(state): State<Arc<AppState>>,
    Extension(acme): Extension<Arc<Acme>>,
    Path(id): Path<String>,
    Signed(a): Signed<false>,
) -> Response {
    async {
        let acct = a.account()?;
        let mut z = load_authz(&state, &acct.id, &id).await?;
        if !a.jws.is_post_as_get() {
            let payload = a.jws.json()?;
            if payload.get("status").and_then(Value::as_str) != Some("deactivated") {
                return Err(Problem::malformed(
                    "payload.status: only \"deactivated\" may be requested",
                ));
            }
            if matches!(z.status, AuthzStatus::Pending | AuthzStatus::Valid) {
                z.status = AuthzStatus::Deactivated;
                let applied = state
                    .site
                    .committer
                    .apply(vec![Change::AcmePutAuthz { authz: z.clone() }])
                    .await;
                // No new order may reuse it from now on (whatever the outcome, see `account`).
                acme.valid_authz
                    .invalidate(&(z.account.clone(), z.identifier.clone()));
                applied.map_err(store_problem)?;
            }
        }
        Ok(Json(authz_json(&a.base, &z)).into_response())
    }
    .await
    .unwrap_or_else(problem)
}

/// Responding to a challenge validates it at once (the client's responder is up before it
/// posts): the answer shows the outcome, and polling the authorization shows it too.
async fn challenge(
    State(state): State<Arc<AppState>>,
    Extension(acme): Extension<Arc<Acme>>,
    Path((id, kind)): Path<(String, String)>,
    Signed(a): Signed<false>,
) -> Response {
    async {
        let acct = a.account()?;
        let mut z = load_authz(&state, &acct.id, &id).await?;
        let idx = z
            .challenges
            .iter()
            .position(|c| c.kind == kind)
            .ok_or_else(|| Problem::malformed(format!("url: authorization has no {kind} challenge")))?;
        let up = Link::Up(format!("{}/acme/authz/{}", a.base, z.id));
        if a.jws.is_post_as_get() || z.status != AuthzStatus::Pending || z.challenges[idx].status != ChallengeStatus::Pending {
            return Ok(up.add(Json(challenge_json(&a.base, &z.id, &z.challenges[idx])).into_response()));
        }
        let jwk: Value = serde_json::from_str(&acct.jwk)
            .map_err(|e| store_problem(StoreError::Corrupt(format!("acme account jwk: {e}"))))?;
        let thumbprint = Jwk::parse("account key", &jwk)?.thumbprint();
        let key_authorization = format!("{}.{thumbprint}", z.challenges[idx].token);
        let outcome = match kind.as_str() {
            "http-01" => {
                validate::http01(&acme.cfg, &z.identifier, &z.challenges[idx].token, &key_authorization).await
            }
            "dns-01" => match acme.cfg.dns_server {
                Some(server) => validate::dns01(server, &z.identifier, &key_authorization).await,
                None => Err(Problem::malformed("url: dns-01 is not offered")),
            },
            other => Err(Problem::malformed(format!("url: {other} is not offered"))),
        };
        let now = fleetpki_model::now();
        let c = &mut z.challenges[idx];
        match outcome {
            Ok(()) => {
                c.status = ChallengeStatus::Valid;
                c.validated = Some(now);
                z.status = AuthzStatus::Valid;
                z.expires = now + acme.cfg.authz_reuse_secs.max(3600);
            }
            Err(p) => {
                tracing::info!(authz = %z.id, name = %z.identifier, problem = %p, "acme: challenge failed");
                c.status = ChallengeStatus::Invalid;
                c.error = Some(AcmeError {
                    kind: p.kind.name().to_string(),
                    detail: p.detail,
                });
                z.status = AuthzStatus::Invalid;
            }
        }
        state
            .site
            .committer
            .apply(vec![Change::AcmePutAuthz { authz: z.clone() }])
            .await
            .map_err(store_problem)?;
        Ok(up.add(Json(challenge_json(&a.base, &z.id, &z.challenges[idx])).into_response()))
    }
    .await
    .unwrap_or_else(problem)
}

enum Link {
    Up(String),
}

impl Link {
    fn add(self, mut resp: Response) -> Response {
        let Link::Up(url) = self;
        if let Ok(v) = HeaderValue::from_str(&format!("<{url}>;rel=\"up\"")) {
            resp.headers_mut().append(header::LINK, v);
        }
        resp
    }
}

async fn certificate(
    State(state): State<Arc<AppState>>,
    Extension(acme): Extension<Arc<Acme>>,
    Path(serial): Path<String>,
    Signed(a): Signed<false>,
) -> Response {
    async {
        let acct = a.account()?;
        let der = match acme.issued.take(&serial) {
            // Just issued by finalize here and committed; whose it is cannot change.
            Some((owner, der)) if owner == acct.id => Some(der),
            other => {
                if let Some(entry) = other {
                    acme.issued.insert(serial.clone(), entry);
                }
                let owned = state
                    .site
                    .store
                    .acme_order_by_serial(&serial)
                    .await
                    .map_err(store_problem)?
                    .is_some_and(|o| o.account == acct.id);
                match owned {
                    true => state
                        .site
                        .store
                        .certificate(&serial)
                        .await
                        .map_err(store_problem)?
                        .map(|c| c.der),
                    false => None,
                }
            }
        }
        .ok_or_else(|| {
            Problem::new(
                ProblemType::Unauthorized,
                format!("certificate: `{serial}` was not issued to this account"),
            )
        })?;
        let pem = format!(
            "{}{}",
            fleetpki_x509::pem::encode("CERTIFICATE", &der),
            state.site.chain_pem()
        );
        Ok((
            [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
            pem,
        )
            .into_response())
    }
    .await
    .unwrap_or_else(problem)
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<Peer>>,
    Signed(a): Signed<true>,
) -> Response {
    async {
        let payload = a.jws.json()?;
        let der = payload
            .get("certificate")
            .and_then(Value::as_str)
            .and_then(unb64)
            .ok_or_else(|| {
                Problem::malformed("payload.certificate: missing or not base64url DER")
            })?;
        let parsed = fleetpki_x509::cert::parse("payload.certificate", &der)
            .map_err(|e| Problem::malformed(e.to_string()))?;
        let serial =
            fleetpki_x509::serial::to_hex(parsed.tbs_certificate().serial_number().as_bytes());
        let stored = state
            .site
            .store
            .certificate(&serial)
            .await
            .map_err(store_problem)?
            .filter(|c| c.der == der)
            .ok_or_else(|| {
                Problem::new(
                    ProblemType::Unauthorized,
                    "payload.certificate: not a certificate this CA issued",
                )
            })?;
        let reason = match payload.get("reason") {
            None => RevocationReason::Unspecified,
            Some(v) => v
                .as_u64()
                .and_then(|c| u8::try_from(c).ok())
                .and_then(RevocationReason::from_code)
                .filter(|r| !matches!(r, RevocationReason::RemoveFromCrl))
                .ok_or_else(|| {
                    Problem::new(
                        ProblemType::BadRevocationReason,
                        format!(
                            "payload.reason: {v} is not an RFC 5280 reason code this CA accepts"
                        ),
                    )
                })?,
        };
        let who = match &a.signer {
            Signer::Account(acct) => {
                let owns = state
                    .site
                    .store
                    .acme_order_by_serial(&serial)
                    .await
                    .map_err(store_problem)?
                    .is_some_and(|o| o.account == acct.account.id);
                if !owns {
                    return Err(Problem::new(
                        ProblemType::Unauthorized,
                        "payload.certificate: not issued to this account",
                    ));
                }
                acct.account.id.clone()
            }
            Signer::Key(_) => {
                // Signed with the certificate's own key: the same signature must verify with it.
                let spki = parsed
                    .tbs_certificate()
                    .subject_public_key_info()
                    .subject_public_key
                    .raw_bytes();
                a.jws.verify_with_certificate_key(spki)?;
                format!("certificate-key:{serial}")
            }
        };
        let who = actor(&who, peer.as_ref().map(|Extension(p)| p));
        match state.site.revoke(&stored.serial, reason, &who).await {
            Ok(_) => Ok(StatusCode::OK.into_response()),
            Err(e) if e.to_string().contains("already revoked") => Err(Problem::new(
                ProblemType::AlreadyRevoked,
                format!("certificate: {serial} is already revoked"),
            )),
            Err(e) => Err(ca_problem(e)),
        }
    }
    .await
    .unwrap_or_else(problem)
}

/// Key change (RFC 8555 §7.3.5): the outer JWS by the old key (kid), the inner by the new key
/// (jwk) over `{account, oldKey}`.
async fn key_change(
    State(state): State<Arc<AppState>>,
    Extension(acme): Extension<Arc<Acme>>,
    peer: Option<Extension<Peer>>,
    Signed(a): Signed<false>,
) -> Response {
    async {
        let acct = a.account()?;
        let inner = Jws::parse(&a.jws.payload, Purpose::KeyChange).map_err(|mut p| {
            p.detail = format!("payload: {}", p.detail);
            p
        })?;
        let KeyRef::Jwk(new_key) = &inner.protected.key else {
            return Err(Problem::malformed("payload.protected.jwk: missing"));
        };
        if inner.protected.url != a.jws.protected.url {
            return Err(Problem::malformed(
                "payload.protected.url: must equal the outer JWS's url",
            ));
        }
        inner.verify(new_key)?;
        let body = inner.json()?;
        let account_url = format!("{}/acme/acct/{}", a.base, acct.id);
        if body.get("account").and_then(Value::as_str) != Some(account_url.as_str()) {
            return Err(Problem::malformed(
                "payload.payload.account: must be the URL of the account signing the request",
            ));
        }
        let old = Jwk::parse(
            "payload.payload.oldKey",
            body.get("oldKey")
                .ok_or_else(|| Problem::malformed("payload.payload.oldKey: missing"))?,
        )?;
        let stored: Value = serde_json::from_str(&acct.jwk)
            .map_err(|e| store_problem(StoreError::Corrupt(format!("acme account jwk: {e}"))))?;
        if Jwk::parse("account key", &stored)? != old {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                "payload.payload.oldKey: is not the account's current key",
            ));
        }
        let thumbprint = new_key.thumbprint();
        if let Some(other) = state
            .site
            .store
            .acme_account_by_thumbprint(&thumbprint)
            .await
            .map_err(store_problem)?
        {
            let loc = format!("{}/acme/acct/{}", a.base, other.id);
            let mut resp = problem(Problem::malformed(
                "payload.protected.jwk: the new key already belongs to an account",
            ));
            *resp.status_mut() = StatusCode::CONFLICT;
            return Ok(with_location(resp, &loc));
        }
        let updated = AcmeAccount {
            jwk: new_key.canonical_json(),
            thumbprint: thumbprint.clone(),
            ..acct.clone()
        };
        let who = actor(&acct.id, peer.as_ref().map(|Extension(p)| p));
        let change = Change::AcmeUpdateAccount {
            account: updated.clone(),
            audit: audit_event(
                &who,
                "acme.account.key-change",
                &acct.id,
                Outcome::Success,
                format!("key {} replaced by {thumbprint}", acct.thumbprint),
            ),
        };
        let applied = state.site.committer.apply(vec![change]).await;
        // The old key must stop working here at once (and whatever the outcome, see `account`).
        acme.accounts.invalidate(&acct.id);
        applied.map_err(|e| match e {
            StoreError::Conflict { .. } => Problem::malformed(
                "payload.protected.jwk: the new key already belongs to an account",
            ),
            e => store_problem(e),
        })?;
        Ok(Json(account_json(&a.base, &updated)).into_response())
    }
    .await
    .unwrap_or_else(problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetpki_model::template::Template;

    fn web(suffixes: &[&str]) -> Template {
        let mut t = Template::bases()
            .into_iter()
            .find(|t| t.name == "WebServer")
            .expect("WebServer base template");
        t.subject = SubjectRule::SupplyInRequest {
            permitted_dns_suffixes: suffixes.iter().map(|s| s.to_string()).collect(),
        };
        t
    }

    fn order(name: &str) -> Value {
        serde_json::json!({ "identifiers": [{ "type": "dns", "value": name }] })
    }

    #[test]
    fn names_must_fall_within_the_permitted_suffixes() {
        let t = web(&["fleet.test"]);
        assert_eq!(
            check_identifiers(&order("Web1.Fleet.Test"), &t).expect("within"),
            vec!["web1.fleet.test".to_string()]
        );
        let outside = check_identifiers(&order("web1.example.com"), &t).expect_err("outside");
        assert_eq!(outside.kind, ProblemType::RejectedIdentifier);
        assert!(outside.detail.contains("fleet.test"), "{}", outside.detail);
    }

    #[test]
    fn a_template_permitting_any_name_orders_nothing() {
        let refused = check_identifiers(&order("web1.fleet.test"), &web(&[])).expect_err("any");
        assert_eq!(refused.kind, ProblemType::ServerInternal);
        assert!(
            refused.detail.contains("permitted DNS suffixes"),
            "{}",
            refused.detail
        );
    }
}
