//! `--server URL`: the admin API client (HTTPS over rustls with aws-lc-rs, an API token or an admin client certificate) and the API's answers turned back into the model records the local commands print.

use fleetpki_model::record::{
    CertificateRecord, RequestRecord, RequestStatus, Revocation, RevocationReason,
};
use fleetpki_model::template::Version;
use fleetpki_x509::pem;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

/// How long one API call (connect, handshake, request, answer) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest answer read (an audit page of 1000 entries is well under it).
const MAX_ANSWER: usize = 64 << 20;

/// Why a call to the admin API failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The options do not make a usable client (bad URL, unreadable or unusable file).
    #[error("{field}: {rule}")]
    Setup { field: String, rule: String },
    /// No connection to the server.
    #[error("{server}: cannot connect: {reason}")]
    Connect { server: String, reason: String },
    /// The TLS handshake failed (the server's certificate is not trusted, or it refused ours).
    #[error("{server}: TLS handshake failed: {reason}")]
    Tls { server: String, reason: String },
    /// The connection broke or the call took too long.
    #[error("{server}: {reason}")]
    Transport { server: String, reason: String },
    /// The server refused: its problem document's `FIELD: RULE`.
    #[error("{server}: HTTP {status}: {detail}")]
    Refused {
        server: String,
        status: u16,
        detail: String,
    },
    /// The answer is not what the API promises.
    #[error("{server}: unexpected answer: {what}: {rule}")]
    Malformed {
        server: String,
        what: String,
        rule: String,
    },
}

fn setup(field: &str, rule: impl Into<String>) -> RemoteError {
    RemoteError::Setup {
        field: field.into(),
        rule: rule.into(),
    }
}

/// The global options that select and reach a server.
pub struct Options {
    pub server: String,
    pub api_token_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// `--dir`: where the site's root certificate is looked for when `--ca-file` is not given.
    pub dir: PathBuf,
}

/// An admin API client: one TLS connection per call (a command makes one to three).
pub struct Api {
    /// The URL as given, without a trailing `/`, for messages.
    server: String,
    host: String,
    port: u16,
    name: ServerName<'static>,
    /// The `Host` header.
    authority: String,
    /// A path prefix in front of `/api/v1` (a reverse proxy's), without a trailing `/`.
    prefix: String,
    tls: TlsConnector,
    /// `NAME:SECRET`.
    token: Option<Zeroizing<String>>,
}

fn read(field: &str, path: &Path) -> Result<Vec<u8>, RemoteError> {
    std::fs::read(path).map_err(|e| setup(field, format!("cannot read {}: {e}", path.display())))
}

/// The API token: `--api-token-file`, else FLEETPKI_API_TOKEN; `NAME:SECRET` as `fleetpki
/// api-token new` prints it.
fn token(file: Option<&Path>) -> Result<Option<Zeroizing<String>>, RemoteError> {
    let (field, text) = match file {
        Some(p) => {
            let raw = Zeroizing::new(read("--api-token-file", p)?);
            let text = std::str::from_utf8(&raw)
                .map_err(|_| setup("--api-token-file", "is not UTF-8 text"))?;
            ("--api-token-file", Zeroizing::new(text.trim().to_string()))
        }
        None => match std::env::var("FLEETPKI_API_TOKEN") {
            Ok(v) if !v.trim().is_empty() => {
                ("FLEETPKI_API_TOKEN", Zeroizing::new(v.trim().to_string()))
            }
            _ => return Ok(None),
        },
    };
    let well_formed = text.split_once(':').is_some_and(|(name, secret)| {
        !name.is_empty() && !secret.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
    });
    if !well_formed {
        return Err(setup(
            field,
            "must hold NAME:SECRET, the line `fleetpki api-token new` prints",
        ));
    }
    Ok(Some(text))
}

fn tls_config(o: &Options) -> Result<ClientConfig, RemoteError> {
    let (field, ca_path) = match &o.ca_file {
        Some(p) => ("--ca-file", p.clone()),
        None => {
            let root = o.dir.join("ca").join("root.pem");
            if !root.is_file() {
                return Err(setup(
                    "--ca-file",
                    format!(
                        "needed to trust {}'s TLS certificate: name the PEM root(s) that issued it (there is no site root at {})",
                        o.server,
                        root.display()
                    ),
                ));
            }
            ("--ca-file (default: the site root in --dir)", root)
        }
    };
    let pem_bytes = read(field, &ca_path)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem_bytes) {
        let cert = cert.map_err(|e| setup(field, format!("{}: {e}", ca_path.display())))?;
        roots
            .add(cert)
            .map_err(|e| setup(field, format!("{}: unusable root: {e}", ca_path.display())))?;
    }
    if roots.is_empty() {
        return Err(setup(
            field,
            format!("{} holds no PEM certificate", ca_path.display()),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup("tls", e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match (&o.client_cert, &o.client_key) {
        (Some(cert), Some(key)) => {
            let bytes = read("--client-cert", cert)?;
            let chain = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| setup("--client-cert", format!("{}: {e}", cert.display())))?;
            if chain.is_empty() {
                return Err(setup(
                    "--client-cert",
                    format!("{} holds no PEM certificate", cert.display()),
                ));
            }
            let key_bytes = Zeroizing::new(read("--client-key", key)?);
            let key_der = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
                setup(
                    "--client-key",
                    format!(
                        "{}: {e} (an unencrypted PEM key: PKCS#8, PKCS#1 or SEC1)",
                        key.display()
                    ),
                )
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| setup("--client-key", format!("does not fit --client-cert: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(setup("--client-cert", "needs --client-key")),
        (None, Some(_)) => return Err(setup("--client-key", "needs --client-cert")),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl Api {
    pub fn new(o: &Options) -> Result<Self, RemoteError> {
        let server = o.server.trim().trim_end_matches('/').to_string();
        let uri: Uri = server
            .parse()
            .map_err(|e| setup("--server", format!("`{server}` is not a URL: {e}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(setup(
                "--server",
                format!("`{server}`: use an https:// URL (the api role speaks TLS only)"),
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| setup("--server", format!("`{server}` names no host")))?;
        if authority.as_str().contains('@') {
            return Err(setup(
                "--server",
                "no user or password in the URL; use --api-token-file",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(443);
        let name = ServerName::try_from(host.clone())
            .map_err(|e| setup("--server", format!("`{host}`: {e}")))?;
        if uri.query().is_some() {
            return Err(setup("--server", "no query string in the server URL"));
        }
        let prefix = uri.path().trim_end_matches('/').to_string();
        let token = token(o.api_token_file.as_deref())?;
        if token.is_none() && o.client_cert.is_none() {
            return Err(setup(
                "--server",
                "needs credentials: --api-token-file FILE or FLEETPKI_API_TOKEN (NAME:SECRET from `fleetpki api-token new`), or --client-cert FILE --client-key FILE (an admin client certificate)",
            ));
        }
        let tls = TlsConnector::from(Arc::new(tls_config(o)?));
        Ok(Api {
            authority: authority.as_str().to_string(),
            server,
            host,
            port,
            name,
            prefix,
            tls,
            token,
        })
    }

    /// The server URL as given (no trailing `/`).
    pub fn server(&self) -> &str {
        &self.server
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        let body = self.call(Method::GET, path, None).await?;
        self.decode(path, &body)
    }

    /// GET of a text document (the PEM chain).
    pub async fn get_text(&self, path: &str) -> Result<String, RemoteError> {
        let body = self.call(Method::GET, path, None).await?;
        String::from_utf8(body.to_vec()).map_err(|_| self.malformed(path, "not UTF-8 text"))
    }

    /// POST (or PATCH) of a JSON body.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, RemoteError> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| self.malformed(path, format!("body: {e}")))?;
        let answer = self.call(method, path, Some(bytes)).await?;
        self.decode(path, &answer)
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, RemoteError> {
        self.send(Method::POST, path, body).await
    }

    fn decode<T: DeserializeOwned>(&self, path: &str, body: &[u8]) -> Result<T, RemoteError> {
        serde_json::from_slice(body).map_err(|e| self.malformed(path, e.to_string()))
    }

    pub fn malformed(&self, what: &str, rule: impl Into<String>) -> RemoteError {
        RemoteError::Malformed {
            server: self.server.clone(),
            what: what.into(),
            rule: rule.into(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, RemoteError> {
        let transport = |reason: String| RemoteError::Transport {
            server: self.server.clone(),
            reason,
        };
        match tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, body)).await {
            Ok(r) => r,
            Err(_) => Err(transport(format!(
                "no answer within {} s",
                CALL_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, RemoteError> {
        let server = || self.server.clone();
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| RemoteError::Connect {
                server: server(),
                reason: e.to_string(),
            })?;
        let tls = self
            .tls
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|e| RemoteError::Tls {
                server: server(),
                reason: tls_reason(&e),
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| RemoteError::Transport {
                server: server(),
                reason: e.to_string(),
            })?;
        // The connection is driven beside the request; it ends when the answer is read.
        let driver = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(HOST, &self.authority)
            .header(ACCEPT, "application/json");
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {}", t.as_str()));
        }
        let req = match body {
            Some(b) => req
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(b))),
            None => req.body(Full::new(Bytes::new())),
        }
        .map_err(|e| setup("request", e.to_string()))?;
        let transport = |e: hyper::Error| RemoteError::Transport {
            server: server(),
            reason: e.to_string(),
        };
        let resp = sender.send_request(req).await.map_err(transport)?;
        let status = resp.status();
        let answer = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| RemoteError::Transport {
                server: server(),
                reason: format!("reading the answer: {e}"),
            })?
            .to_bytes();
        drop(sender);
        driver.abort();
        if status.is_success() {
            return Ok(answer);
        }
        Err(self.refusal(status, &answer))
    }

    /// A refusal: the problem document's `FIELD: RULE`, else the status and a line of the body.
    fn refusal(&self, status: StatusCode, body: &[u8]) -> RemoteError {
        #[derive(serde::Deserialize)]
        struct Problem {
            detail: String,
        }
        let detail = match serde_json::from_slice::<Problem>(body) {
            Ok(p) => p.detail,
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
                let reason = status.canonical_reason().unwrap_or("error");
                if line.is_empty() {
                    reason.to_string()
                } else {
                    format!("{reason}: {}", line.chars().take(200).collect::<String>())
                }
            }
        };
        RemoteError::Refused {
            server: self.server.clone(),
            status: status.as_u16(),
            detail,
        }
    }
}

/// The TLS error with a hint for the usual causes.
fn tls_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("UnknownIssuer") {
        format!(
            "{text} (the server's certificate is not trusted: is --ca-file the root that issued it?)"
        )
    } else if text.contains("not valid for name") {
        format!("{text} (name the server in --server as its certificate does)")
    } else {
        text
    }
}

/// One path segment, percent-encoded (template names have spaces).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string built from the parameters that are set.
pub fn query(params: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", seg(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

// ---- the API's answers, as the model records the local commands print ----

/// `major.minor` as the API writes a template version.
fn version(api: &Api, what: &str, text: &str) -> Result<Version, RemoteError> {
    text.split_once('.')
        .and_then(|(a, b)| {
            Some(Version {
                major: a.parse().ok()?,
                minor: b.parse().ok()?,
            })
        })
        .ok_or_else(|| api.malformed(what, format!("`{text}` is not MAJOR.MINOR")))
}

fn one_der(api: &Api, what: &str, text: &str, label: &str) -> Result<Vec<u8>, RemoteError> {
    let mut all = pem::decode_all(what, text.as_bytes(), label)
        .map_err(|e| api.malformed(what, e.to_string()))?;
    match (all.pop(), all.is_empty()) {
        (Some(der), true) => Ok(der),
        _ => Err(api.malformed(what, format!("expected one {label}"))),
    }
}

/// A certificate as `GET /api/v1/certificates[/{serial}]` describes it.
#[derive(serde::Deserialize)]
pub struct ApiCert {
    serial: String,
    template: String,
    template_version: String,
    principal: String,
    subject: String,
    sans: Vec<String>,
    key: String,
    not_before: i64,
    not_after: i64,
    request_id: Option<i64>,
    revoked_at: Option<i64>,
    revocation_reason: Option<String>,
    certificate: String,
}

impl ApiCert {
    pub fn record(self, api: &Api) -> Result<CertificateRecord, RemoteError> {
        let what = format!("certificate {}", self.serial);
        let revocation = match (self.revoked_at, self.revocation_reason) {
            (Some(at), Some(r)) => Some(Revocation {
                at,
                reason: RevocationReason::parse("revocation_reason", &r)
                    .map_err(|e| api.malformed(&what, e.to_string()))?,
            }),
            (None, None) => None,
            _ => {
                return Err(api.malformed(&what, "revoked_at and revocation_reason come together"));
            }
        };
        Ok(CertificateRecord {
            template_version: version(api, &what, &self.template_version)?,
            der: one_der(api, &what, &self.certificate, "CERTIFICATE")?,
            serial: self.serial,
            template: self.template,
            principal: self.principal,
            subject: self.subject,
            sans: self.sans,
            key: self.key,
            not_before: self.not_before,
            not_after: self.not_after,
            request_id: self.request_id,
            revocation,
        })
    }
}

/// A request as `GET /api/v1/requests` lists it.
#[derive(serde::Deserialize)]
pub struct ApiRequest {
    request_id: i64,
    status: String,
    template: String,
    template_version: String,
    principal: String,
    submitted_by: String,
    submitted_at: i64,
    decided_at: Option<i64>,
    decided_by: Option<String>,
    reason: Option<String>,
    serial: Option<String>,
    csr: String,
}

impl ApiRequest {
    pub fn record(self, api: &Api) -> Result<RequestRecord, RemoteError> {
        let what = format!("request {}", self.request_id);
        Ok(RequestRecord {
            id: self.request_id,
            template_version: version(api, &what, &self.template_version)?,
            csr_der: one_der(api, &what, &self.csr, "CERTIFICATE REQUEST")?,
            status: RequestStatus::parse(&self.status)
                .ok_or_else(|| api.malformed(&what, format!("status `{}`", self.status)))?,
            template: self.template,
            principal: self.principal,
            submitted_by: self.submitted_by,
            submitted_at: self.submitted_at,
            decided_at: self.decided_at,
            decided_by: self.decided_by,
            reason: self.reason,
            serial: self.serial,
        })
    }
}

/// What a submission or an approval came to (201 issued, 202 pending).
#[derive(serde::Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ApiSubmitted {
    Issued { request_id: i64, serial: String },
    Pending { request_id: i64 },
}

impl Api {
    /// The inventory record of one certificate.
    pub async fn certificate(&self, serial: &str) -> Result<CertificateRecord, RemoteError> {
        let c: ApiCert = self
            .get(&format!("/api/v1/certificates/{}", seg(serial)))
            .await?;
        c.record(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_queries_are_encoded() {
        assert_eq!(seg("Approved Workstation"), "Approved%20Workstation");
        assert_eq!(seg("a/b?c#d%"), "a%2Fb%3Fc%23d%25");
        assert_eq!(seg("PC1.fleet-test_x~"), "PC1.fleet-test_x~");
        assert_eq!(query(&[("a", None)]), "");
        assert_eq!(
            query(&[
                ("status", Some("pending".into())),
                ("x", None),
                ("k", Some("a b".into()))
            ]),
            "?status=pending&k=a%20b"
        );
    }

    fn options(server: &str) -> Options {
        Options {
            server: server.into(),
            api_token_file: None,
            client_cert: None,
            client_key: None,
            ca_file: None,
            dir: PathBuf::from("/nonexistent"),
        }
    }

    fn setup_error(o: &Options) -> String {
        match Api::new(o) {
            Err(e @ RemoteError::Setup { .. }) => e.to_string(),
            Err(e) => panic!("not a setup error: {e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn bad_urls_and_missing_credentials_are_named() {
        assert!(setup_error(&options("http://h:1")).starts_with("--server: "));
        assert!(setup_error(&options("https://u:p@h:1")).starts_with("--server: "));
        assert!(setup_error(&options("https://h:1/?q")).starts_with("--server: "));
        let e = setup_error(&options("https://h:1"));
        assert!(e.contains("needs credentials"), "{e}");
    }
}
