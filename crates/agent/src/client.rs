//! How the agent talks to its site: the management point over mutual TLS (registration,
//! signed policy, enrollment and polling, chain, CRL) and the fallback status point.

use fleetpki_x509::key::PrivateKey;
use fleetpki_x509::pem;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why talking to the site failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer: refused connection, TLS handshake failure (e.g. the management point refused
    /// the client certificate), timeout.
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The site answered with an error; `detail` is its problem document's `FIELD: RULE`.
    #[error("{url}: HTTP {status}: {detail}")]
    Refused {
        url: String,
        status: u16,
        detail: String,
    },
    /// The answer was not what the protocol promises.
    #[error("{field}: {rule}")]
    Malformed { field: String, rule: String },
    /// The client could not be set up (bad pinned root, unusable key).
    #[error("{field}: {rule}")]
    Setup { field: String, rule: String },
}

impl ClientError {
    fn malformed(field: &str, rule: impl Into<String>) -> Self {
        Self::Malformed {
            field: field.into(),
            rule: rule.into(),
        }
    }

    fn setup(field: &str, rule: impl Into<String>) -> Self {
        Self::Setup {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How the server's certificate is checked.
pub enum ServerTrust<'a> {
    /// Against the pinned site root (DER).
    Pinned(&'a [u8]),
    /// Not at all: trust on first use, only to fetch what is then pinned. The caller logs it.
    FirstUse,
}

/// The certificate the agent presents, with its chain (leaf first) and key.
pub struct Presented<'a> {
    pub chain: Vec<Vec<u8>>,
    pub key: &'a PrivateKey,
}

/// What an enrollment or a poll came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Issued {
        request_id: i64,
        serial: String,
        certificate: Vec<u8>,
        chain: Vec<Vec<u8>>,
    },
    Pending {
        request_id: i64,
    },
    /// Denied or failed: the request is over and will not be issued.
    Refused {
        request_id: i64,
        status: String,
        reason: String,
    },
}

/// A registration's state at the management point.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Registration {
    pub name: String,
    pub status: String,
}

/// A state message for the fallback status point.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StatusMessage {
    pub client: String,
    pub kind: String,
    pub message: String,
    pub details: Value,
}

/// The management point, reached with one TLS identity (or none).
pub struct SiteClient {
    http: reqwest::Client,
    base: String,
    /// HTTP requests sent, answered or not: shared with whoever accounts for a cycle's traffic.
    requests: Arc<AtomicU64>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_config(
    trust: ServerTrust<'_>,
    presented: Option<Presented<'_>>,
) -> Result<ClientConfig, ClientError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::setup("tls", e.to_string()))?;
    let builder = match trust {
        ServerTrust::Pinned(root) => {
            let mut roots = RootCertStore::empty();
            roots
                .add(CertificateDer::from(root.to_vec()))
                .map_err(|e| {
                    ClientError::setup("root", format!("the pinned root is unusable: {e}"))
                })?;
            builder.with_root_certificates(roots)
        }
        ServerTrust::FirstUse => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(FirstUse(provider()))),
    };
    let mut config = match presented {
        Some(p) => {
            let chain = p.chain.into_iter().map(CertificateDer::from).collect();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(p.key.to_pkcs8_der().to_vec()));
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::setup("client certificate", e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl SiteClient {
    /// A client of the management point at `base` (`https://mp.example:8443`).
    pub fn new(
        base: &str,
        trust: ServerTrust<'_>,
        presented: Option<Presented<'_>>,
    ) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("https://") {
            return Err(ClientError::setup(
                "site",
                format!("`{base}` is not an https:// URL; the management point speaks TLS only"),
            ));
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(trust, presented)?)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::setup("http client", e.to_string()))?;
        Ok(Self {
            http,
            base,
            requests: Arc::default(),
        })
    }

    /// Counts this client's requests into `counter` (a cycle's several clients share one).
    pub fn counting(mut self, counter: Arc<AtomicU64>) -> Self {
        self.requests = counter;
        self
    }

    /// Requests sent through this client's counter so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: url.to_string(),
            reason: chain_text(&e),
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| text.chars().take(300).collect());
        Err(ClientError::Refused {
            url: url.to_string(),
            status,
            detail,
        })
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{path}", self.base);
        self.send(self.http.get(&url), &url).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{path}", self.base);
        self.send(self.http.post(&url).json(body), &url).await
    }

    /// Registers the presented identity under `name`.
    pub async fn register(&self, name: &str) -> Result<Registration, ClientError> {
        let resp = self
            .post_json("/mp/register", &serde_json::json!({ "name": name }))
            .await?;
        resp.json()
            .await
            .map_err(|e| ClientError::malformed("registration", e.to_string()))
    }

    /// The signed policy, exactly as sent (verification is the caller's: [`crate::trust`]).
    pub async fn policy(&self) -> Result<String, ClientError> {
        text(self.get("/mp/policy").await?, "policy").await
    }

    /// The site signing certificate (DER).
    pub async fn signing_cert(&self) -> Result<Vec<u8>, ClientError> {
        let body = text(self.get("/mp/signing-cert").await?, "signing certificate").await?;
        let mut blocks = pem::decode_all("signing certificate", body.as_bytes(), "CERTIFICATE")
            .map_err(|e| ClientError::malformed("signing certificate", e.to_string()))?;
        if blocks.len() != 1 {
            return Err(ClientError::malformed(
                "signing certificate",
                format!("expected one certificate, got {}", blocks.len()),
            ));
        }
        Ok(blocks.remove(0))
    }

    /// The CA chain (DER, as the site orders it).
    pub async fn chain(&self) -> Result<Vec<Vec<u8>>, ClientError> {
        let body = text(self.get("/mp/chain").await?, "chain").await?;
        pem::decode_all("chain", body.as_bytes(), "CERTIFICATE")
            .map_err(|e| ClientError::malformed("chain", e.to_string()))
    }

    /// The issuing CA's current full CRL (DER).
    pub async fn crl(&self) -> Result<Vec<u8>, ClientError> {
        let resp = self.get("/mp/crl").await?;
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| ClientError::malformed("crl", e.to_string()))
    }

    /// Enrolls under `template` with a PEM CSR.
    pub async fn enroll(&self, template: &str, csr_pem: &str) -> Result<Answer, ClientError> {
        let resp = self
            .post_json(
                "/mp/enroll",
                &serde_json::json!({ "template": template, "csr": csr_pem }),
            )
            .await?;
        answer(resp).await
    }

    /// Polls one of this client's requests.
    pub async fn poll(&self, request_id: i64) -> Result<Answer, ClientError> {
        answer(self.get(&format!("/mp/requests/{request_id}")).await?).await
    }
}

async fn text(resp: reqwest::Response, field: &str) -> Result<String, ClientError> {
    resp.text()
        .await
        .map_err(|e| ClientError::malformed(field, e.to_string()))
}

async fn answer(resp: reqwest::Response) -> Result<Answer, ClientError> {
    let v: Value = resp
        .json()
        .await
        .map_err(|e| ClientError::malformed("answer", e.to_string()))?;
    parse_answer(&v)
}

/// Reads the site's enrollment answer (`status`: issued, pending, denied, failed).
pub fn parse_answer(v: &Value) -> Result<Answer, ClientError> {
    let request_id = v
        .get("request_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| ClientError::malformed("request_id", "missing or not a number"))?;
    let status = v
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::malformed("status", "missing"))?;
    match status {
        "issued" => {
            let cert_pem = v
                .get("certificate")
                .and_then(Value::as_str)
                .ok_or_else(|| ClientError::malformed("certificate", "missing"))?;
            let mut certs = pem::decode_all("certificate", cert_pem.as_bytes(), "CERTIFICATE")
                .map_err(|e| ClientError::malformed("certificate", e.to_string()))?;
            if certs.len() != 1 {
                return Err(ClientError::malformed(
                    "certificate",
                    "expected one certificate",
                ));
            }
            let chain = match v.get("chain").and_then(Value::as_str) {
                Some(c) => pem::decode_all("chain", c.as_bytes(), "CERTIFICATE")
                    .map_err(|e| ClientError::malformed("chain", e.to_string()))?,
                None => Vec::new(),
            };
            Ok(Answer::Issued {
                request_id,
                serial: v
                    .get("serial")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                certificate: certs.remove(0),
                chain,
            })
        }
        "pending" => Ok(Answer::Pending { request_id }),
        other => Ok(Answer::Refused {
            request_id,
            status: other.to_string(),
            reason: v
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("no reason given")
                .to_string(),
        }),
    }
}

/// Sends a state message to the fallback status point (plain HTTP is allowed there: a client
/// that cannot authenticate must still be heard).
pub async fn report(status_url: &str, message: &StatusMessage) -> Result<(), ClientError> {
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(ServerTrust::FirstUse, None)?)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ClientError::setup("http client", e.to_string()))?;
    let resp = http
        .post(status_url)
        .json(message)
        .send()
        .await
        .map_err(|e| ClientError::Unreachable {
            url: status_url.to_string(),
            reason: chain_text(&e),
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(ClientError::Refused {
            url: status_url.to_string(),
            status: resp.status().as_u16(),
            detail: resp.text().await.unwrap_or_default(),
        })
    }
}

/// An error with its causes, which is where reqwest keeps the TLS alert that says why.
fn chain_text(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Accepts any server certificate (signatures on the handshake still checked): trust on first
/// use, only ever to fetch the site's root and signing certificate before pinning them.
#[derive(Debug)]
struct FirstUse(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for FirstUse {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse() {
        let pending = serde_json::json!({"status": "pending", "request_id": 4});
        assert_eq!(
            parse_answer(&pending).unwrap(),
            Answer::Pending { request_id: 4 }
        );
        let denied = serde_json::json!({"status": "denied", "request_id": 5, "reason": "no"});
        assert!(
            matches!(parse_answer(&denied).unwrap(), Answer::Refused { status, .. } if status == "denied")
        );
        for bad in [
            serde_json::json!({"status": "issued"}),
            serde_json::json!({"request_id": 1}),
            serde_json::json!({"status": "issued", "request_id": 1, "certificate": "garbage"}),
        ] {
            assert!(
                matches!(parse_answer(&bad), Err(ClientError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn site_must_be_https() {
        let e = SiteClient::new("http://mp.example", ServerTrust::FirstUse, None)
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("site: "), "{e}");
    }
}
