//! The `scep` role (RFC 8894): `GET|POST /scep/NAME[/pkiclient.exe]?operation=…` for each
//! configured endpoint. GetCACaps, GetCACert (the RA certificate and the CA chain), and
//! PKIOperation: PKCSReq and RenewalReq go through the CA's issuance pipeline (template,
//! permissions, profile, audit) like every other enrollment; CertPoll, GetCert and GetCRL read
//! the store. Refusals answer with a signed CertRep FAILURE and its failInfo and store nothing;
//! a body that is no pkiMessage at all gets 400.

use crate::config::{RoleConfig, ScepEndpoint};
use crate::roles::{BodyError, read_body};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use der::{Decode, Encode};
use fleetpki_ca::issuance::Submitted;
use fleetpki_ca::scep::{ScepAuth, ScepRa, Transaction};
use fleetpki_ca::{Actor, CaError, Site};
use fleetpki_model::record::RequestStatus;
use fleetpki_store::StoreError;
use fleetpki_x509::scep::{
    self, ContentCipher, FailInfo, MessageType, PkiMessage, Ra, ScepError, Status,
};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// What GetCACaps announces. No SHA-1, no DES: 3DES is still read from old clients, but not
/// offered.
pub const CAPABILITIES: &str = "AES\nSHA-256\nSHA-512\nPOSTPKIOperation\nRenewal\nSCEPStandard\n";

pub(crate) struct ScepState {
    site: Arc<Site>,
    /// The server's, for the issuance latency.
    app: Arc<crate::AppState>,
    endpoints: Vec<ScepEndpoint>,
    ra: Arc<ScepRa>,
    max_body_bytes: usize,
}

pub(crate) fn router<S>(rc: &RoleConfig, app: Arc<crate::AppState>, ra: Arc<ScepRa>) -> Router<S> {
    let state = Arc::new(ScepState {
        site: app.site.clone(),
        app,
        endpoints: rc.scep_endpoints.clone(),
        ra,
        max_body_bytes: rc.max_body_bytes,
    });
    Router::new()
        .route("/scep/{endpoint}", get(operation).post(operation))
        .route(
            "/scep/{endpoint}/pkiclient.exe",
            get(operation).post(operation),
        )
        .with_state(state)
}

#[derive(Deserialize)]
struct Params {
    operation: Option<String>,
    message: Option<String>,
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.into(),
    )
        .into_response()
}

async fn operation(
    State(state): State<Arc<ScepState>>,
    Path(endpoint): Path<String>,
    Query(params): Query<Params>,
    method: Method,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(ep) = state.endpoints.iter().find(|e| e.name == endpoint) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("no SCEP endpoint `{endpoint}`"),
        );
    };
    match params.operation.as_deref() {
        Some("GetCACaps") => plain(StatusCode::OK, CAPABILITIES),
        Some("GetCACert") => {
            let mut certs: Vec<&[u8]> = vec![&state.ra.der];
            certs.extend(state.site.chain().iter().map(|c| c.der.as_slice()));
            match scep::certs_only(&certs, &[]) {
                Ok(der) => (
                    [(header::CONTENT_TYPE, "application/x-x509-ca-ra-cert")],
                    der,
                )
                    .into_response(),
                Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        Some("PKIOperation") => {
            let message = if method == Method::POST {
                match read_body(&headers, body, state.max_body_bytes).await {
                    Ok(b) => b,
                    Err(BodyError::TooLarge { limit }) => {
                        return plain(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("longer than {limit} bytes (roles.scep.max_body_bytes)"),
                        );
                    }
                    Err(BodyError::Read(e)) => {
                        return plain(StatusCode::BAD_REQUEST, format!("body: {e}"));
                    }
                }
            } else {
                let Some(m) = params.message.as_deref() else {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        "message: required with GET PKIOperation (base64 pkiMessage)",
                    );
                };
                if m.len() > state.max_body_bytes * 2 {
                    return plain(StatusCode::PAYLOAD_TOO_LARGE, "message: too long");
                }
                // Base64 in a query string: '+' may have become ' ' on the way.
                let cleaned: String = m
                    .chars()
                    .filter(|c| !c.is_ascii_whitespace() || *c == ' ')
                    .map(|c| if c == ' ' { '+' } else { c })
                    .collect();
                match base64::engine::general_purpose::STANDARD.decode(cleaned) {
                    Ok(b) => Bytes::from(b),
                    Err(e) => {
                        return plain(StatusCode::BAD_REQUEST, format!("message: not base64: {e}"));
                    }
                }
            };
            let actor = Actor::new(format!("scep/{}", ep.name), format!("scep {peer}"));
            pki_operation(&state, ep, &message, &actor).await
        }
        Some(other) => plain(
            StatusCode::BAD_REQUEST,
            format!("operation: `{other}` is not one of GetCACaps, GetCACert, PKIOperation"),
        ),
        None => plain(StatusCode::BAD_REQUEST, "operation: required"),
    }
}

/// The outcome of one PKIOperation, before it is signed.
struct Outcome {
    status: Status,
    /// The content cipher the request used (a SUCCESS is encrypted with it).
    cipher: Option<ContentCipher>,
    /// This request issued the certificate it answers with (for the issuance latency).
    issued: bool,
}

fn failure(info: FailInfo) -> Outcome {
    Outcome {
        status: Status::Failure(info),
        cipher: None,
        issued: false,
    }
}

async fn pki_operation(
    state: &ScepState,
    ep: &ScepEndpoint,
    body: &[u8],
    actor: &Actor,
) -> Response {
    let started = std::time::Instant::now();
    let ra = Ra {
        cert: &state.ra.cert,
        key: &state.ra.key,
    };
    let (header, signer, outcome) = match scep::parse(body) {
        Err(ScepError::Malformed(why)) => {
            tracing::info!(endpoint = %ep.name, %why, "SCEP: not a pkiMessage");
            return plain(StatusCode::BAD_REQUEST, format!("pkiMessage: {why}"));
        }
        Err(ScepError::Fail { header, info, why }) => {
            tracing::info!(endpoint = %ep.name, transaction = %header.transaction_id, fail = info.name(), %why, "SCEP request refused");
            (*header, None, failure(info))
        }
        Ok(msg) => {
            let outcome = match handle(state, ep, &msg, actor).await {
                Ok(o) => {
                    if o.issued {
                        state.app.metrics.observe_issuance(started.elapsed());
                    }
                    o
                }
                Err(Refusal::Fail(info, why)) => {
                    tracing::info!(endpoint = %ep.name, transaction = %msg.header.transaction_id, fail = info.name(), %why, "SCEP request refused");
                    failure(info)
                }
                Err(Refusal::Server(why)) => {
                    tracing::warn!(endpoint = %ep.name, %why, "SCEP request failed");
                    return plain(StatusCode::SERVICE_UNAVAILABLE, why);
                }
            };
            (msg.header.clone(), Some(msg.signer), outcome)
        }
    };
    let recipient = match (&signer, outcome.cipher) {
        (Some(s), Some(c)) => Some((s, c)),
        _ => None,
    };
    match scep::cert_rep(&header, &outcome.status, recipient, &ra) {
        Ok(der) => ([(header::CONTENT_TYPE, "application/x-pki-message")], der).into_response(),
        Err(e) => {
            // The requester's key cannot receive key transport (checked before submitting,
            // so this is for CertPoll/GetCert from a non-RSA signer): answer badAlg.
            match scep::cert_rep(&header, &Status::Failure(FailInfo::BadAlg), None, &ra) {
                Ok(der) => {
                    tracing::info!(error = %e, "SCEP answer could not be encrypted");
                    ([(header::CONTENT_TYPE, "application/x-pki-message")], der).into_response()
                }
                Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
    }
}

enum Refusal {
    Fail(FailInfo, String),
    /// The store or the CA failed: not the client's fault, nothing to answer with a failInfo.
    Server(String),
}

impl From<ScepError> for Refusal {
    fn from(e: ScepError) -> Self {
        match e {
            ScepError::Malformed(why) => Refusal::Fail(FailInfo::BadRequest, why),
            ScepError::Fail { info, why, .. } => Refusal::Fail(info, why),
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Server(e.to_string())
    }
}

impl From<CaError> for Refusal {
    fn from(e: CaError) -> Self {
        match e {
            CaError::Store(s) => s.into(),
            CaError::Io { .. } => Refusal::Server(e.to_string()),
            other => Refusal::Fail(FailInfo::BadRequest, other.to_string()),
        }
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b))
}

fn signer_key_sha256(msg: &PkiMessage) -> Result<String, Refusal> {
    msg.signer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map(|d| sha256_hex(&d))
        .map_err(|e| Refusal::Fail(FailInfo::BadCertId, e.to_string()))
}

/// Key transport back to the requester needs an RSA key: refused before anything is stored.
fn require_rsa_signer(msg: &PkiMessage) -> Result<(), Refusal> {
    let oid = &msg
        .signer
        .tbs_certificate()
        .subject_public_key_info()
        .algorithm
        .oid;
    if oid.to_string() != "1.2.840.113549.1.1.1" {
        return Err(Refusal::Fail(
            FailInfo::BadAlg,
            "the signer's key must be RSA: the answer is encrypted to it".into(),
        ));
    }
    Ok(())
}

async fn handle(
    state: &ScepState,
    ep: &ScepEndpoint,
    msg: &PkiMessage,
    actor: &Actor,
) -> Result<Outcome, Refusal> {
    require_rsa_signer(msg)?;
    let legacy = |what: &str| {
        Refusal::Fail(
            FailInfo::BadAlg,
            format!(
                "{what} is refused on this endpoint (GetCACaps offers AES and SHA-256); for \
                 legacy clients set roles.scep.endpoints.{}.legacy_algorithms = true",
                ep.name
            ),
        )
    };
    if msg.sha1_signature && !ep.legacy_algorithms {
        return Err(legacy("a SHA-1 pkiMessage signature"));
    }
    let (inner, cipher) = scep::open_envelope(msg, &state.ra.key, &state.ra.cert)?;
    if matches!(cipher, ContentCipher::DesCbc | ContentCipher::DesEde3Cbc) {
        if !ep.legacy_algorithms {
            return Err(legacy(&format!("the {} content cipher", cipher.name())));
        }
        tracing::warn!(
            endpoint = %ep.name,
            transaction = %msg.header.transaction_id,
            cipher = cipher.name(),
            "SCEP client uses a legacy DES cipher; its answer is encrypted the same way"
        );
    }
    let key_sha256 = signer_key_sha256(msg)?;
    let site = &state.site;
    match msg.message_type {
        MessageType::PkcsReq | MessageType::RenewalReq => {
            // A repeated request of a known transaction is answered like a CertPoll, except a
            // renewal signed by the very certificate that transaction issued: clients that
            // derive the transactionID from the key (scepclient) reuse it for every renewal.
            let known = site
                .store
                .scep_transaction(&key_sha256, &msg.header.transaction_id)
                .await?;
            let mut replace = false;
            if let Some(id) = known {
                if msg.message_type == MessageType::RenewalReq
                    && renews_result_of(site, id, &msg.signer_der).await?
                {
                    replace = true;
                } else {
                    return request_outcome(site, id, cipher).await;
                }
            }
            let csr = fleetpki_x509::csr::parse(&inner)
                .map_err(|e| Refusal::Fail(FailInfo::BadRequest, e.to_string()))?;
            // PKCSReq proves possession with a self-signed certificate for the CSR's own key
            // (RFC 8894 2.3); a renewal is signed by the current certificate instead.
            if msg.message_type == MessageType::PkcsReq {
                let signer_spki = msg
                    .signer
                    .tbs_certificate()
                    .subject_public_key_info()
                    .to_der()
                    .map_err(|e| Refusal::Fail(FailInfo::BadCertId, e.to_string()))?;
                if signer_spki != csr.spki_der {
                    return Err(Refusal::Fail(
                        FailInfo::BadRequest,
                        "the PKCSReq is signed with another key than the CSR's".into(),
                    ));
                }
            }
            let auth = if msg.message_type == MessageType::RenewalReq {
                ScepAuth::Renewal {
                    current_der: &msg.signer_der,
                }
            } else {
                let password = csr.challenge_password();
                let (static_sha256, principal) = match &ep.static_challenge {
                    Some((h, p)) => (Some(h.as_str()), Some(p.as_str())),
                    None => (None, None),
                };
                let auth = ScepAuth::Challenge {
                    password: password.as_deref(),
                    static_sha256,
                    principal,
                };
                let tx = Transaction {
                    key_sha256: &key_sha256,
                    transaction_id: &msg.header.transaction_id,
                    replace,
                };
                return submit(site, ep, &inner, auth, &tx, cipher, actor).await;
            };
            let tx = Transaction {
                key_sha256: &key_sha256,
                transaction_id: &msg.header.transaction_id,
                replace,
            };
            submit(site, ep, &inner, auth, &tx, cipher, actor).await
        }
        MessageType::CertPoll => {
            scep::IssuerAndSubject::from_der(&inner).map_err(|e| {
                Refusal::Fail(FailInfo::BadRequest, format!("IssuerAndSubject: {e}"))
            })?;
            let id = site
                .store
                .scep_transaction(&key_sha256, &msg.header.transaction_id)
                .await?
                .ok_or_else(|| {
                    Refusal::Fail(
                        FailInfo::BadCertId,
                        "no transaction with this transactionID for this key".into(),
                    )
                })?;
            request_outcome(site, id, cipher).await
        }
        MessageType::GetCert | MessageType::GetCrl => {
            let ias = cms::cert::IssuerAndSerialNumber::from_der(&inner).map_err(|e| {
                Refusal::Fail(FailInfo::BadRequest, format!("IssuerAndSerialNumber: {e}"))
            })?;
            let serial = fleetpki_x509::serial::to_hex(ias.serial_number.as_bytes());
            let ours = site
                .chain()
                .into_iter()
                .find(|c| c.cert.tbs_certificate().subject() == &ias.issuer);
            let record = site.store.certificate(&serial).await?;
            let (Some(issuer), Some(record)) = (ours, record) else {
                return Err(Refusal::Fail(
                    FailInfo::BadCertId,
                    format!("no certificate {serial} from this CA"),
                ));
            };
            let content = if msg.message_type == MessageType::GetCert {
                scep::certs_only(&[&record.der], &[])
            } else {
                let crl = site
                    .store
                    .latest_crl(issuer.role.name(), false)
                    .await?
                    .ok_or_else(|| {
                        Refusal::Fail(FailInfo::BadCertId, "no CRL published yet".into())
                    })?;
                scep::certs_only(&[], &[&crl.der])
            }
            .map_err(|e| Refusal::Server(e.to_string()))?;
            Ok(Outcome {
                status: Status::Success(content),
                cipher: Some(cipher),
                issued: false,
            })
        }
        MessageType::CertRep => Err(Refusal::Fail(
            FailInfo::BadRequest,
            "a CertRep is a server's answer".into(),
        )),
    }
}

async fn submit(
    site: &Site,
    ep: &ScepEndpoint,
    csr_der: &[u8],
    auth: ScepAuth<'_>,
    tx: &Transaction<'_>,
    cipher: ContentCipher,
    actor: &Actor,
) -> Result<Outcome, Refusal> {
    match site
        .scep_submit(&ep.template, csr_der, auth, tx, actor)
        .await?
    {
        Submitted::Issued { certificate, .. } => Ok(Outcome {
            status: Status::Success(
                scep::certs_only(&[&certificate.der], &[])
                    .map_err(|e| Refusal::Server(e.to_string()))?,
            ),
            cipher: Some(cipher),
            issued: true,
        }),
        Submitted::Pending { .. } => Ok(Outcome {
            status: Status::Pending,
            cipher: None,
            issued: false,
        }),
    }
}

/// Whether the request `id` issued the certificate `signer_der`.
async fn renews_result_of(site: &Site, id: i64, signer_der: &[u8]) -> Result<bool, Refusal> {
    let req = site.store.request(id).await?;
    let Some(serial) = req.and_then(|r| r.serial) else {
        return Ok(false);
    };
    let cert = site.store.certificate(&serial).await?;
    Ok(cert.is_some_and(|c| c.der == signer_der))
}

/// Where a recorded transaction's request stands.
async fn request_outcome(site: &Site, id: i64, cipher: ContentCipher) -> Result<Outcome, Refusal> {
    let req =
        site.store.request(id).await?.ok_or_else(|| {
            Refusal::Server(format!("request {id} of a SCEP transaction is missing"))
        })?;
    match req.status {
        RequestStatus::Pending => Ok(Outcome {
            status: Status::Pending,
            cipher: None,
            issued: false,
        }),
        RequestStatus::Issued => {
            let serial = req.serial.as_deref().unwrap_or_default();
            let cert = site
                .store
                .certificate(serial)
                .await?
                .ok_or_else(|| Refusal::Server(format!("certificate {serial} is missing")))?;
            Ok(Outcome {
                status: Status::Success(
                    scep::certs_only(&[&cert.der], &[])
                        .map_err(|e| Refusal::Server(e.to_string()))?,
                ),
                cipher: Some(cipher),
                issued: false,
            })
        }
        _ => Err(Refusal::Fail(
            FailInfo::BadRequest,
            format!("request {id} was {}", req.status.name()),
        )),
    }
}
