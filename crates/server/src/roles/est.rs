//! The `est` role (RFC 7030) at `/.well-known/est/` and `/.well-known/est/LABEL/`: `cacerts`,
//! `simpleenroll` (HTTP Basic with a one-time enrollment token, or a client certificate the
//! site issued), `simplereenroll` (mutual TLS with the current certificate: same template,
//! principal, subject and SANs), `csrattrs`, and `serverkeygen` for templates that allow key
//! export. Every request goes through the CA's submit pipeline, as the JSON API's do.

use crate::AppState;
use crate::config::EstConfig;
use crate::error::HttpError;
use crate::tls::Peer;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;
use fleetpki_ca::issuance::Submitted;
use fleetpki_ca::tokens::Presented;
use fleetpki_ca::{Actor, CaError};
use fleetpki_model::record::{CertificateRecord, RequestStatus};
use fleetpki_model::template::Template;
use fleetpki_x509::cert::San;
use fleetpki_x509::csr::Csr;
use fleetpki_x509::est;
use fleetpki_x509::key::{KeyType, PrivateKey};
use std::sync::Arc;
use std::time::Instant;
use zeroize::Zeroizing;

/// How long a client whose request waits for approval is asked to wait before asking again.
const RETRY_AFTER_SECS: u64 = 300;
/// Separates the key from the certificate in a `serverkeygen` answer; `-` never occurs in
/// base64, so it cannot occur in either part.
const BOUNDARY: &str = "fleetpki-est-serverkeygen";
const CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";

pub(crate) fn router(config: &EstConfig) -> Router<Arc<AppState>> {
    let config = Arc::new(config.clone());
    Router::new()
        .route("/.well-known/est/{*path}", any(dispatch))
        .layer(Extension(config))
}

/// The EST operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    CaCerts,
    SimpleEnroll,
    SimpleReenroll,
    CsrAttrs,
    ServerKeygen,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "cacerts" => Op::CaCerts,
            "simpleenroll" => Op::SimpleEnroll,
            "simplereenroll" => Op::SimpleReenroll,
            "csrattrs" => Op::CsrAttrs,
            "serverkeygen" => Op::ServerKeygen,
            _ => return None,
        })
    }

    fn method(self) -> Method {
        match self {
            Op::CaCerts | Op::CsrAttrs => Method::GET,
            _ => Method::POST,
        }
    }
}

/// A refusal as EST clients expect it: a problem document, and on 401 the
/// `WWW-Authenticate: Basic realm="…"` challenge (BouncyCastle checks the realm).
fn refusal(e: HttpError, realm: &str) -> Response {
    let unauthorized = e.status == StatusCode::UNAUTHORIZED;
    let mut resp = e.into_response();
    if unauthorized && let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// The challenge to a request that presented no credentials at all (RFC 7030 §3.2.3): 401,
/// `WWW-Authenticate`, and no body. BouncyCastle's client answers the challenge without
/// reading the first response's body, and fails (`Stream closed before limit fully read`)
/// when it had one.
fn challenge(realm: &str) -> Response {
    let mut resp = StatusCode::UNAUTHORIZED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// No `Authorization` header and no client certificate from this site.
const NO_CREDENTIALS: &str = "no credentials";

async fn dispatch(
    State(state): State<Arc<AppState>>,
    Extension(config): Extension<Arc<EstConfig>>,
    Extension(peer): Extension<Peer>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(&state, &config, &peer, &method, &path, &headers, &body).await {
        Ok(r) => r,
        Err(e) if e.status == StatusCode::UNAUTHORIZED && e.field == NO_CREDENTIALS => {
            challenge(&config.realm)
        }
        Err(e) => refusal(e, &config.realm),
    }
}

/// `[LABEL/]OPERATION` to the template it serves and the operation.
fn route(config: &EstConfig, path: &str) -> Result<(String, Op), HttpError> {
    let not_found = |rule: String| HttpError::new(StatusCode::NOT_FOUND, "path", rule);
    let parts: Vec<&str> = path.split('/').collect();
    let (label, op) = match parts.as_slice() {
        [op] => (None, *op),
        [label, op] => (Some(*label), *op),
        _ => {
            return Err(not_found(format!(
                "/.well-known/est/{path}: EST paths are /.well-known/est/[LABEL/]OPERATION"
            )));
        }
    };
    let op = Op::parse(op).ok_or_else(|| {
        not_found(format!(
            "`{op}` is not an EST operation this server offers: cacerts, simpleenroll, simplereenroll, csrattrs, serverkeygen"
        ))
    })?;
    let labels = || {
        config
            .labels
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let template =
        match label {
            None => config.default_template.clone().ok_or_else(|| {
                not_found(format!(
                    "no template is served at /.well-known/est/; use a label: {}",
                    labels()
                ))
            })?,
            Some(l) => config.labels.get(l).cloned().ok_or_else(|| {
                not_found(format!("no EST label `{l}`; labels are: {}", labels()))
            })?,
        };
    Ok((template, op))
}

async fn handle(
    state: &AppState,
    config: &EstConfig,
    peer: &Peer,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, HttpError> {
    let (template, op) = route(config, path)?;
    if *method != op.method() {
        let mut resp = HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
            format!("{path} takes {}", op.method()),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(op.method().as_str()) {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        return Ok(resp);
    }
    match op {
        Op::CaCerts => cacerts(state),
        Op::CsrAttrs => csrattrs(state, &template).await,
        Op::SimpleEnroll => {
            let who = authenticate(state, peer, headers).await?;
            let csr = request_body(headers, body)?;
            let started = Instant::now();
            let submitted = submit(state, peer, &template, &who, &csr.der).await?;
            state.metrics.observe_submitted(started, &submitted);
            Ok(enrolled(submitted))
        }
        Op::SimpleReenroll => {
            let current = current_certificate(state, peer).await?.ok_or_else(|| {
                HttpError::new(
                    StatusCode::UNAUTHORIZED,
                    NO_CREDENTIALS,
                    "re-enrollment needs the current certificate, from this site and not revoked, as the TLS client certificate (RFC 7030 §4.2.2)",
                )
            })?;
            let served = state.site.find_template(&template).await?;
            if current.template != served.name {
                return Err(HttpError::forbidden(
                    "template",
                    format!(
                        "this certificate was issued under `{}`; this EST path serves `{}`",
                        current.template, served.name
                    ),
                ));
            }
            let csr = request_body(headers, body)?;
            let actor = Actor::new(current.principal.clone(), format!("est {}", peer.addr));
            let started = Instant::now();
            let submitted =
                match earlier_request(state, &current.principal, &served.name, &csr.der).await? {
                    // The answer to a repeated request: nothing issued now.
                    Some(earlier) => earlier,
                    None => {
                        let s = state
                            .site
                            .submit_reenrollment(&current, &csr.der, &actor)
                            .await?;
                        state.metrics.observe_submitted(started, &s);
                        s
                    }
                };
            Ok(enrolled(submitted))
        }
        Op::ServerKeygen => {
            let who = authenticate(state, peer, headers).await?;
            let t = state.site.find_template(&template).await?;
            keygen_allowed(&t)?;
            let csr = request_body(headers, body)?;
            let started = Instant::now();
            let (key, request) = generated_request(&t, &csr)?;
            let submitted = submit(state, peer, &template, &who, &request).await?;
            state.metrics.observe_submitted(started, &submitted);
            match submitted {
                Submitted::Issued { certificate, .. } => serverkeygen_answer(&key, &certificate),
                Submitted::Pending { request_id } => Err(HttpError::new(
                    StatusCode::CONFLICT,
                    "template",
                    format!(
                        "`{}` began to require approval: request {request_id} is pending and the key generated for it was discarded; deny it and use simpleenroll",
                        t.name
                    ),
                )),
            }
        }
    }
}

/// Who is enrolling.
enum Who {
    /// A one-time enrollment token from HTTP Basic: `ID:SECRET`.
    Token { id: String, secret: String },
    /// A valid, unrevoked certificate this site issued, presented over TLS.
    Certificate(CertificateRecord),
}

/// HTTP Basic (a one-time token: its ID as user, its secret as password) or else a client
/// certificate from this site; neither: 401 (the caller adds the challenge).
async fn authenticate(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
) -> Result<Who, HttpError> {
    let unauthorized = |rule: &str| HttpError::new(StatusCode::UNAUTHORIZED, "authorization", rule);
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let basic_rule = "use HTTP Basic with a one-time enrollment token: its ID as the user, its secret as the password (fleetpki token create)";
        let text = value.to_str().map_err(|_| unauthorized(basic_rule))?;
        let (scheme, b64) = text
            .split_once(' ')
            .ok_or_else(|| unauthorized(basic_rule))?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(unauthorized(basic_rule));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| unauthorized(basic_rule))?;
        let pair = String::from_utf8(raw).map_err(|_| unauthorized(basic_rule))?;
        let (id, secret) = pair
            .split_once(':')
            .ok_or_else(|| unauthorized(basic_rule))?;
        if id.is_empty() || secret.is_empty() || id.len() > 64 || secret.len() > 128 {
            return Err(unauthorized("unknown token or wrong secret"));
        }
        return Ok(Who::Token {
            id: id.to_string(),
            secret: secret.to_string(),
        });
    }
    match current_certificate(state, peer).await? {
        Some(c) => Ok(Who::Certificate(c)),
        None => Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            NO_CREDENTIALS,
            "enroll with HTTP Basic (a one-time enrollment token: ID as user, secret as password) or a client certificate from this site",
        )),
    }
}

/// The inventory record of the connection's client certificate, when this site issued it and
/// has not revoked it (the handshake checked the chain, validity and the CRL already).
async fn current_certificate(
    state: &AppState,
    peer: &Peer,
) -> Result<Option<CertificateRecord>, HttpError> {
    let Some(cert) = peer.cert.as_deref().filter(|c| !c.self_signed) else {
        return Ok(None);
    };
    let parsed = fleetpki_x509::cert::parse("client certificate", &cert.der)
        .map_err(|e| HttpError::bad_request("client certificate", e.rule()))?;
    let info = fleetpki_x509::cert::info(&parsed)
        .map_err(|e| HttpError::bad_request("client certificate", e.rule()))?;
    Ok(state
        .site
        .store
        .certificate(&info.serial_hex)
        .await?
        .filter(|r| r.der == cert.der && r.revocation.is_none()))
}

/// The PKCS#10 request of an enrollment: `Content-Type: application/pkcs10` (415 otherwise),
/// base64 DER with any line breaks (400 naming what is wrong otherwise).
fn request_body(headers: &HeaderMap, body: &[u8]) -> Result<Csr, HttpError> {
    match super::media_type(headers).as_deref() {
        Some("application/pkcs10") => {}
        other => {
            return Err(HttpError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-type",
                format!(
                    "{}: EST takes `application/pkcs10` (a base64 PKCS#10 request)",
                    other.map_or("missing".to_string(), |t| format!("`{t}`"))
                ),
            ));
        }
    }
    est::parse_csr_body(body).map_err(|e| HttpError::bad_request(e.field(), e.rule()))
}

fn token_refusal(e: CaError) -> HttpError {
    let mut h = HttpError::from(e);
    if h.field == "token" {
        h.status = StatusCode::UNAUTHORIZED;
    }
    h
}

/// Submits `csr_der` under `template` for whoever `who` is, through the CA's pipeline (a
/// token is used up in the same transaction that stores the request). The same request sent
/// again (RFC 7030 §4.2.3: a client told to retry later repeats it) gets the state of the one
/// already stored instead of a second request or a used-token refusal.
async fn submit(
    state: &AppState,
    peer: &Peer,
    template: &str,
    who: &Who,
    csr_der: &[u8],
) -> Result<Submitted, HttpError> {
    match who {
        Who::Token { id, secret } => {
            let presented = Presented {
                id: id.as_str(),
                secret: secret.as_str(),
            };
            let actor = Actor::new(format!("token:{id}"), format!("est {}", peer.addr));
            // A token not yet used has made no request to repeat.
            let token = state
                .site
                .token_check(&presented)
                .await
                .map_err(token_refusal)?;
            if token.used_at.is_some()
                && let Some(earlier) =
                    earlier_request(state, &actor.name, template, csr_der).await?
            {
                return Ok(earlier);
            }
            state
                .site
                .submit_with_token(template, csr_der, &presented, &actor)
                .await
                .map_err(token_refusal)
        }
        Who::Certificate(c) => {
            if let Some(earlier) = earlier_request(state, &c.principal, template, csr_der).await? {
                return Ok(earlier);
            }
            let actor = Actor::new(c.principal.clone(), format!("est {}", peer.addr));
            Ok(state
                .site
                .submit(template, &c.principal, csr_der, &actor)
                .await?)
        }
    }
}

/// The state of the request `submitted_by` already made with exactly `csr_der` under
/// `template`, if there is one: pending (202 again), issued (the same certificate), or denied
/// (403 with the reason).
async fn earlier_request(
    state: &AppState,
    submitted_by: &str,
    template: &str,
    csr_der: &[u8],
) -> Result<Option<Submitted>, HttpError> {
    let template = state.site.find_template(template).await?.name;
    let Some(req) = state
        .site
        .store
        .requests_submitted_by(submitted_by)
        .await?
        .into_iter()
        .find(|r| r.csr_der == csr_der && r.template == template)
    else {
        return Ok(None);
    };
    match req.status {
        RequestStatus::Pending => Ok(Some(Submitted::Pending { request_id: req.id })),
        RequestStatus::Issued => {
            let cert = match &req.serial {
                Some(s) => state.site.store.certificate(s).await?,
                None => None,
            };
            Ok(cert.map(|c| Submitted::Issued {
                request_id: req.id,
                certificate: Box::new(c),
            }))
        }
        RequestStatus::Denied => Err(HttpError::forbidden(
            "request",
            format!(
                "request {} was denied: {}",
                req.id,
                req.reason.as_deref().unwrap_or("no reason given")
            ),
        )),
    }
}

fn base64_response(status: StatusCode, content_type: &str, der: &[u8]) -> Response {
    let mut resp = (status, est::encode_base64(der)).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    resp
}

/// 200 with the new certificate (certs-only CMS), or 202 + Retry-After while it waits for
/// approval.
fn enrolled(s: Submitted) -> Response {
    match s {
        Submitted::Issued { certificate, .. } => match est::certs_only(&[&certificate.der]) {
            Ok(cms) => base64_response(StatusCode::OK, CERTS_ONLY, &cms),
            Err(e) => HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.field(), e.rule())
                .into_response(),
        },
        Submitted::Pending { request_id } => (
            StatusCode::ACCEPTED,
            [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
            format!(
                "request {request_id} is waiting for a certificate manager's approval; send the same request again after {RETRY_AFTER_SECS} seconds\n"
            ),
        )
            .into_response(),
    }
}

/// The site's CA certificates, issuing CA first, as certs-only CMS.
fn cacerts(state: &AppState) -> Result<Response, HttpError> {
    let chain = state.site.chain();
    let ders: Vec<&[u8]> = chain.iter().map(|c| c.der.as_slice()).collect();
    let cms = est::certs_only(&ders)
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.field(), e.rule()))?;
    Ok(base64_response(
        StatusCode::OK,
        "application/pkcs7-mime; smime-type=certs-only",
        &cms,
    ))
}

/// What the template wants in a request: the signature algorithm and key for each key family
/// it accepts.
async fn csrattrs(state: &AppState, template: &str) -> Result<Response, HttpError> {
    let t = state.site.find_template(template).await?;
    let der = est::csr_attrs(&t.key_algorithms, t.hash)
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.field(), e.rule()))?;
    Ok(base64_response(
        StatusCode::OK,
        "application/csrattrs",
        &der,
    ))
}

/// Server-side key generation hands a private key over the network: only for templates that
/// allow export, and never for a request that would wait (the key would have to be kept).
fn keygen_allowed(t: &Template) -> Result<(), HttpError> {
    if !t.exportable {
        return Err(HttpError::forbidden(
            "template",
            format!(
                "`{}` does not allow private-key export, so this server generates no keys for it: generate the key on the device and use simpleenroll",
                t.name
            ),
        ));
    }
    if t.require_approval {
        return Err(HttpError::forbidden(
            "template",
            format!(
                "`{}` requires approval, and a generated key is never stored to wait for it: use simpleenroll",
                t.name
            ),
        ));
    }
    Ok(())
}

/// A fresh key of the first type the template accepts, and a request signed with it that
/// carries the client's subject and DNS names (the client's own key is not certified).
fn generated_request(t: &Template, csr: &Csr) -> Result<(PrivateKey, Vec<u8>), HttpError> {
    if !csr.other_sans.is_empty() {
        return Err(HttpError::bad_request(
            "csr.san",
            format!(
                "serverkeygen carries over DNS names only; the request also asks for {}",
                csr.other_sans.join(", ")
            ),
        ));
    }
    let kt = KeyType::ALL
        .into_iter()
        .find(|k| t.check_key(&k.info()).is_ok())
        .ok_or_else(|| {
            HttpError::forbidden(
                "template",
                format!("`{}` accepts no key type this server can generate", t.name),
            )
        })?;
    let internal = |e: fleetpki_x509::X509Error| {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.field(), e.rule())
    };
    let key = PrivateKey::generate(kt).map_err(internal)?;
    let sans: Vec<San> = csr.dns_names.iter().cloned().map(San::Dns).collect();
    let request =
        fleetpki_x509::csr::create(&csr.subject, &sans, &key.signer(t.hash)).map_err(internal)?;
    Ok((key, request))
}

/// RFC 7030 §4.4.2: `multipart/mixed` with the PKCS#8 key and the certificate, each base64.
fn serverkeygen_answer(key: &PrivateKey, cert: &CertificateRecord) -> Result<Response, HttpError> {
    let cms = est::certs_only(&[&cert.der])
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.field(), e.rule()))?;
    let pkcs8 = key.to_pkcs8_der();
    let body = Zeroizing::new(format!(
        "--{BOUNDARY}\r\nContent-Type: application/pkcs8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --{BOUNDARY}\r\nContent-Type: {CERTS_ONLY}\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --{BOUNDARY}--\r\n",
        Zeroizing::new(est::encode_base64(&pkcs8)).as_str(),
        est::encode_base64(&cms),
    ));
    let mut resp = (StatusCode::OK, body.as_bytes().to_vec()).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={BOUNDARY}")) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config() -> EstConfig {
        EstConfig {
            default_template: Some("Device".into()),
            labels: BTreeMap::from([("routers".to_string(), "Router".to_string())]),
            realm: "fleetpki".into(),
        }
    }

    #[test]
    fn paths_map_to_templates_and_operations() {
        let c = config();
        assert_eq!(
            route(&c, "simpleenroll").unwrap(),
            ("Device".to_string(), Op::SimpleEnroll)
        );
        assert_eq!(
            route(&c, "routers/cacerts").unwrap(),
            ("Router".to_string(), Op::CaCerts)
        );
        for bad in [
            "nope",
            "printers/cacerts",
            "a/b/cacerts",
            "routers/fullcmc",
            "",
        ] {
            assert_eq!(
                route(&c, bad).unwrap_err().status,
                StatusCode::NOT_FOUND,
                "{bad}"
            );
        }
        let only_labels = EstConfig {
            default_template: None,
            ..config()
        };
        let e = route(&only_labels, "cacerts").unwrap_err();
        assert!(e.rule.contains("routers"), "{}", e.rule);
    }

    #[test]
    fn unauthorized_answers_carry_the_basic_challenge() {
        let r = refusal(
            HttpError::new(StatusCode::UNAUTHORIZED, "authorization", "x"),
            "fleetpki",
        );
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"fleetpki\""
        );
        let r = refusal(HttpError::bad_request("body", "x"), "fleetpki");
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
