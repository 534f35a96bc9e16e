//! The `ocsp` role: an RFC 6960 responder for the site's CAs at `/ocsp` (POST) and `/ocsp/{request}` (GET).
//!
//! Answers for the CA that issues end-entity certificates, from the certificate inventory
//! (good, revoked with time and reason, unknown for serials it never issued), and for the root
//! about its own issuing CA when the root signed it directly and the site holds the root key.
//! A request about any other issuer, or about two issuers at once, is `unauthorized`; one that
//! does not parse is `malformedRequest`; a store that does not answer gives `tryLater`.
//!
//! thisUpdate is the time of the answer (the inventory is read live); nextUpdate follows the
//! CA's published CRLs (the earliest nextUpdate of its latest full and delta CRL still ahead),
//! and is absent while the CA has no current CRL, meaning newer status is always available.

use crate::ServeError;
use crate::config::{OcspSigner as SignerMode, RoleConfig};
use crate::roles::{BodyError, httpdate, media_type, read_body};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use fleetpki_ca::keys::KeyRole;
use fleetpki_ca::responder::OcspSigner;
use fleetpki_ca::site::CaCert;
use fleetpki_ca::{Actor, Site};
use fleetpki_model::UnixTime;
use fleetpki_model::template::HashAlg;
use fleetpki_store::StoreError;
use fleetpki_x509::key::PrivateKey;
use fleetpki_x509::ocsp::{self, CertId, CertStatus, ErrorStatus, OcspRequest, SingleResponse};
use fleetpki_x509::serial;
use std::sync::{Arc, RwLock};
use tokio::sync::{Mutex, OnceCell};

/// A delegated signing certificate lives two days and is renewed when less than one is left:
/// it cannot be revoked (nocheck), so a short life is its only limit.
const SIGNER_LIFETIME: i64 = 2 * 86_400;
const SIGNER_RENEW_BEFORE: i64 = 86_400;
/// Each id costs a store lookup: bound the work one request can ask for.
const MAX_IDS: usize = 32;

const OCSP_RESPONSE: &str = "application/ocsp-response";

struct Responder {
    site: Arc<Site>,
    max_body_bytes: usize,
    delegated: Option<Delegated>,
    /// Loaded on the first question about the issuing CA, so a responder that is never asked
    /// never decrypts the root key.
    root_key: OnceCell<PrivateKey>,
}

/// The current delegated signer; renewals are serialised so that a burst of requests at
/// renewal time issues one certificate, not one each.
struct Delegated {
    current: RwLock<Arc<OcspSigner>>,
    renewing: Mutex<()>,
}

fn actor() -> Actor {
    Actor::new("site", "ocsp role")
}

pub(crate) async fn router<S>(rc: &RoleConfig, site: Arc<Site>) -> Result<Router<S>, ServeError> {
    let role = rc.role.name();
    let failed = |source| ServeError::Role { role, source };
    // Fail at start, not on the first request, when the key that signs cannot be opened
    // (e.g. a passphrase-protected site without its passphrase).
    site.issuer_key().map_err(failed)?;
    let delegated = match rc.signer {
        SignerMode::Ca => None,
        SignerMode::Delegated => {
            let signer = site
                .issue_ocsp_signer(SIGNER_LIFETIME, &actor())
                .await
                .map_err(failed)?;
            tracing::info!(serial = %signer.serial, "ocsp: delegated signing certificate issued");
            Some(Delegated {
                current: RwLock::new(Arc::new(signer)),
                renewing: Mutex::new(()),
            })
        }
    };
    let state = Arc::new(Responder {
        site,
        max_body_bytes: rc.max_body_bytes,
        delegated,
        root_key: OnceCell::new(),
    });
    Ok(Router::new()
        .route("/ocsp", post(by_post))
        .route("/ocsp/", post(by_post))
        .route("/ocsp/{*request}", get(by_get))
        .with_state(state))
}

/// A DER OCSPResponse and, for a successful one, whether and until when a cache may keep it.
struct Answer {
    der: Vec<u8>,
    cacheable_until: Option<(UnixTime, UnixTime)>,
}

impl Answer {
    fn error(status: ErrorStatus) -> Self {
        Answer {
            der: ocsp::error_response(status),
            cacheable_until: None,
        }
    }

    /// HTTP 200 whatever the OCSP status (RFC 6960 A.1); caching headers as RFC 5019 6 has
    /// them, only for GET answers without a nonce (a nonce makes the answer single-use).
    fn into_response(self, get: bool) -> Response {
        let mut r = ([(header::CONTENT_TYPE, OCSP_RESPONSE)], self.der).into_response();
        let h = r.headers_mut();
        match self.cacheable_until {
            Some((produced, next)) if get => {
                let max_age = (next - fleetpki_model::now()).max(0);
                let cc = format!("max-age={max_age}, public, no-transform, must-revalidate");
                for (name, value) in [
                    (header::CACHE_CONTROL, cc),
                    (header::LAST_MODIFIED, httpdate(produced)),
                    (header::EXPIRES, httpdate(next)),
                ] {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        h.insert(name, v);
                    }
                }
            }
            _ => {
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
        }
        r
    }
}

async fn by_post(State(r): State<Arc<Responder>>, headers: HeaderMap, body: Body) -> Response {
    // Clients that send no Content-Type at all are common enough to accept.
    match media_type(&headers).as_deref() {
        None | Some("application/ocsp-request") => {}
        Some(other) => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type {other}: an OCSP request is application/ocsp-request\n"),
            )
                .into_response();
        }
    }
    let der = match read_body(&headers, body, r.max_body_bytes).await {
        Ok(b) => b,
        Err(BodyError::TooLarge { limit }) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("an OCSP request here is at most {limit} bytes\n"),
            )
                .into_response();
        }
        Err(BodyError::Read(e)) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}\n"),
            )
                .into_response();
        }
    };
    r.answer(&der).await.into_response(false)
}

/// RFC 6960 A.1: `GET {url}/{url-encoding of base64 of the DER request}`. The path is already
/// percent-decoded; both base64 alphabets are accepted, with or without padding.
async fn by_get(
    State(r): State<Arc<Responder>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(text)) = path else {
        return Answer::error(ErrorStatus::MalformedRequest).into_response(true);
    };
    // Base64 is 4/3 of the bytes it holds.
    if text.len() > r.max_body_bytes.saturating_mul(4) / 3 + 4 {
        return (
            StatusCode::URI_TOO_LONG,
            format!(
                "an OCSP request here is at most {} bytes; POST it\n",
                r.max_body_bytes
            ),
        )
            .into_response();
    }
    match decode_get(&text) {
        Some(der) => r.answer(&der).await.into_response(true),
        None => Answer::error(ErrorStatus::MalformedRequest).into_response(true),
    }
}

fn decode_get(text: &str) -> Option<Vec<u8>> {
    let standard: String = text
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    engine.decode(standard).ok()
}

/// Which CA a request is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// The CA that issues end-entity certificates (and so has an inventory).
    Issuer,
    /// The root, asked about the issuing CA it signed.
    Root,
}

/// Whether a delegated signer should be replaced: less than a renewal period left, unless the
/// issuing CA itself ends sooner (a new certificate could not outlive the old one).
fn needs_renewal(signer_not_after: UnixTime, issuer_not_after: UnixTime, now: UnixTime) -> bool {
    signer_not_after - now <= SIGNER_RENEW_BEFORE && signer_not_after < issuer_not_after
}

impl Responder {
    async fn answer(&self, der: &[u8]) -> Answer {
        let req = match ocsp::parse_request(der) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "ocsp: malformed request");
                return Answer::error(ErrorStatus::MalformedRequest);
            }
        };
        if req.ids.len() > MAX_IDS {
            tracing::debug!(
                ids = req.ids.len(),
                "ocsp: too many certificates in one request"
            );
            return Answer::error(ErrorStatus::MalformedRequest);
        }
        let Some(scope) = self.scope(&req) else {
            return Answer::error(ErrorStatus::Unauthorized);
        };
        match self.respond(scope, &req).await {
            Ok(a) => a,
            Err(status) => Answer::error(status),
        }
    }

    /// One scope for every id, or None: one response has one signer.
    fn scope(&self, req: &OcspRequest) -> Option<Scope> {
        let site = &self.site;
        let issuer = &site.issuer().cert;
        if req.ids.iter().all(|id| id.matches_issuer(issuer)) {
            return Some(Scope::Issuer);
        }
        // The root answers only for a certificate it signed itself and whose key we hold:
        // a generated two-tier site, not an imported chain with intermediates between.
        let root_signed_issuing = site.issuing.is_some() && site.intermediates.is_empty();
        if root_signed_issuing && req.ids.iter().all(|id| id.matches_issuer(&site.root.cert)) {
            return Some(Scope::Root);
        }
        None
    }

    async fn respond(&self, scope: Scope, req: &OcspRequest) -> Result<Answer, ErrorStatus> {
        let site = &self.site;
        let now = fleetpki_model::now();
        let ca = match scope {
            Scope::Issuer => site.issuer(),
            Scope::Root => &site.root,
        };
        let mut next_update = self.crl_schedule(ca, now).await.map_err(try_later)?;
        let mut singles = Vec::with_capacity(req.ids.len());
        for id in &req.ids {
            let status = match scope {
                Scope::Issuer => self.inventory_status(id).await.map_err(try_later)?,
                Scope::Root => match &site.issuing {
                    Some(i) if serial::to_hex(&id.serial) == i.info.serial_hex => CertStatus::Good,
                    _ => CertStatus::Unknown,
                },
            };
            singles.push(SingleResponse {
                id: id.clone(),
                status,
                this_update: now,
                next_update: None,
            });
        }
        let delegated = match (scope, &self.delegated) {
            (Scope::Issuer, Some(d)) => Some(self.delegated_signer(d, now).await?),
            _ => None,
        };
        // A response must not outlive the certificate that lets it be checked.
        if let Some(d) = &delegated {
            next_update = next_update.map(|n| n.min(d.not_after));
        }
        for s in &mut singles {
            s.next_update = next_update;
        }
        let signed = match (&delegated, scope) {
            (Some(d), _) => ocsp::sign_response(
                &singles,
                req.nonce.as_deref(),
                &d.cert,
                &d.key.signer(HashAlg::Sha256),
                now,
                std::slice::from_ref(&d.der),
            ),
            (None, Scope::Issuer) => {
                let key = site.issuer_key().map_err(internal)?;
                ocsp::sign_response(
                    &singles,
                    req.nonce.as_deref(),
                    &ca.cert,
                    &key.signer(HashAlg::Sha256),
                    now,
                    &[],
                )
            }
            (None, Scope::Root) => {
                let key = self.root_key().await?;
                ocsp::sign_response(
                    &singles,
                    req.nonce.as_deref(),
                    &ca.cert,
                    &key.signer(HashAlg::Sha256),
                    now,
                    &[],
                )
            }
        };
        let der = signed.map_err(internal)?;
        Ok(Answer {
            der,
            cacheable_until: match (req.nonce.is_some(), next_update) {
                (false, Some(n)) => Some((now, n)),
                _ => None,
            },
        })
    }

    /// Good or revoked from the inventory; unknown for a serial this CA never issued.
    async fn inventory_status(&self, id: &CertId) -> Result<CertStatus, StoreError> {
        // The CertID carries DER INTEGER content (a leading 00 when the top bit is set); the
        // inventory is keyed by the minimal hex form.
        let hex = serial::to_hex(&id.serial);
        Ok(match self.site.store.certificate(&hex).await? {
            None => CertStatus::Unknown,
            Some(c) => match c.revocation {
                None => CertStatus::Good,
                Some(r) => CertStatus::Revoked {
                    at: r.at,
                    reason: Some(r.reason),
                },
            },
        })
    }

    /// The earliest nextUpdate still ahead among `ca`'s latest full and delta CRLs.
    async fn crl_schedule(
        &self,
        ca: &CaCert,
        now: UnixTime,
    ) -> Result<Option<UnixTime>, StoreError> {
        let store = &self.site.store;
        let issuer = ca.role.name();
        let full = store.latest_crl(issuer, false).await?;
        let delta = store.latest_crl(issuer, true).await?;
        Ok([full, delta]
            .into_iter()
            .flatten()
            .map(|c| c.next_update)
            .filter(|n| *n > now)
            .min())
    }

    async fn root_key(&self) -> Result<&PrivateKey, ErrorStatus> {
        self.root_key
            .get_or_try_init(|| async {
                let site = self.site.clone();
                // Decrypting a key runs PBKDF2: keep it off the async workers.
                tokio::task::spawn_blocking(move || site.load_key(KeyRole::Root))
                    .await
                    .map_err(internal)?
                    .map_err(internal)
            })
            .await
    }

    /// The delegated signer, renewed first when its time is nearly up. If renewal fails (say
    /// the store is down) the current one serves while it is still valid.
    async fn delegated_signer(
        &self,
        d: &Delegated,
        now: UnixTime,
    ) -> Result<Arc<OcspSigner>, ErrorStatus> {
        let issuer_end = self.site.issuer().info.not_after;
        let current = || d.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        let cur = current();
        if !needs_renewal(cur.not_after, issuer_end, now) {
            return Ok(cur);
        }
        let _one_at_a_time = d.renewing.lock().await;
        let cur = current();
        if !needs_renewal(cur.not_after, issuer_end, now) {
            return Ok(cur);
        }
        match self.site.issue_ocsp_signer(SIGNER_LIFETIME, &actor()).await {
            Ok(new) => {
                tracing::info!(serial = %new.serial, "ocsp: delegated signing certificate renewed");
                let new = Arc::new(new);
                *d.current.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
                Ok(new)
            }
            Err(e) if cur.not_after > now => {
                tracing::warn!(error = %e, "ocsp: cannot renew the delegated signing certificate; using the current one");
                Ok(cur)
            }
            Err(e) => {
                tracing::error!(error = %e, "ocsp: the delegated signing certificate expired and cannot be renewed");
                Err(ErrorStatus::TryLater)
            }
        }
    }
}

fn try_later(e: StoreError) -> ErrorStatus {
    tracing::warn!(error = %e, "ocsp: store unavailable");
    ErrorStatus::TryLater
}

fn internal(e: impl std::fmt::Display) -> ErrorStatus {
    tracing::error!(error = %e, "ocsp: cannot sign a response");
    ErrorStatus::InternalError
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_requests_decode_in_either_alphabet() {
        let der = [0x30, 0xfb, 0xff, 0x3e, 0x00];
        let std = base64::engine::general_purpose::STANDARD.encode(der);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(der);
        assert!(std.contains('+') || std.contains('/'), "{std}");
        assert_ne!(std, url);
        assert_eq!(decode_get(&std).as_deref(), Some(&der[..]));
        assert_eq!(decode_get(&url).as_deref(), Some(&der[..]));
        assert_eq!(decode_get("not base64!"), None);
    }

    #[test]
    fn renewal_window() {
        let day = 86_400;
        let issuer_end = 100 * day;
        assert!(!needs_renewal(10 * day, issuer_end, 8 * day));
        assert!(needs_renewal(10 * day, issuer_end, 9 * day));
        assert!(needs_renewal(10 * day, issuer_end, 11 * day), "expired");
        // Already as long as the issuing CA allows: renewing would not help.
        assert!(!needs_renewal(issuer_end, issuer_end, issuer_end - 60));
    }
}
