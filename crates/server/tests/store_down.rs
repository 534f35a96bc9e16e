//! The roles when the database does not answer: OCSP says `tryLater`, the fallback status
//! point says 503 with Retry-After, health says 503; nothing panics and the server keeps going.

use async_trait::async_trait;
use fleetpki_ca::{Actor, CaSource, InitOptions, Site};
use fleetpki_model::UnixTime;
use fleetpki_model::acme::{AcmeAccount, AcmeAuthz, AcmeOrder, EabKey};
use fleetpki_model::audit::AuditEntry;
use fleetpki_model::directory::{Group, Principal};
use fleetpki_model::record::{
    CertFilter, CertificateRecord, CrlRecord, RequestRecord, RequestStatus, Revocation,
};
use fleetpki_model::site::{ClientRecord, ClientStatus, EnrollToken, StatusFilter, StatusMessage};
use fleetpki_model::template::Template;
use fleetpki_server::{Role, ServeConfig};
use fleetpki_store::{Applied, Change, GroupCommitter, Store, StoreError};
use fleetpki_x509::key::KeyType;
use fleetpki_x509::ocsp::{ErrorStatus, parse_response};
use std::io::{Read, Write};
use std::sync::Arc;

/// A store whose database is gone: every call fails as a closed pool does.
struct Down;

fn down<T>() -> Result<T, StoreError> {
    Err(StoreError::Database(sqlx::Error::PoolClosed))
}

#[async_trait]
impl Store for Down {
    async fn count_requests(&self, _: Option<RequestStatus>) -> Result<i64, StoreError> {
        down()
    }
    async fn count_certificates(&self, _: &CertFilter) -> Result<i64, StoreError> {
        down()
    }
    async fn apply(&self, _: Vec<Change>) -> Result<Vec<Applied>, StoreError> {
        down()
    }
    async fn template(&self, _: &str) -> Result<Option<Template>, StoreError> {
        down()
    }
    async fn templates(&self) -> Result<Vec<Template>, StoreError> {
        down()
    }
    async fn template_history(&self, _: &str) -> Result<Vec<Template>, StoreError> {
        down()
    }
    async fn principal(&self, _: &str) -> Result<Option<Principal>, StoreError> {
        down()
    }
    async fn principals(&self) -> Result<Vec<Principal>, StoreError> {
        down()
    }
    async fn group(&self, _: &str) -> Result<Option<Group>, StoreError> {
        down()
    }
    async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        down()
    }
    async fn members(&self, _: &str) -> Result<Vec<String>, StoreError> {
        down()
    }
    async fn groups_of(&self, _: &str) -> Result<Vec<String>, StoreError> {
        down()
    }
    async fn request(&self, _: i64) -> Result<Option<RequestRecord>, StoreError> {
        down()
    }
    async fn requests(&self, _: Option<RequestStatus>) -> Result<Vec<RequestRecord>, StoreError> {
        down()
    }
    async fn certificate(&self, _: &str) -> Result<Option<CertificateRecord>, StoreError> {
        down()
    }
    async fn certificates(&self, _: &CertFilter) -> Result<Vec<CertificateRecord>, StoreError> {
        down()
    }
    async fn revocations(
        &self,
        _: Option<UnixTime>,
    ) -> Result<Vec<(String, Revocation)>, StoreError> {
        down()
    }
    async fn latest_crl(&self, _: &str, _: bool) -> Result<Option<CrlRecord>, StoreError> {
        down()
    }
    async fn max_crl_number(&self, _: &str) -> Result<i64, StoreError> {
        down()
    }
    async fn status_messages(&self, _: &StatusFilter) -> Result<Vec<StatusMessage>, StoreError> {
        down()
    }
    async fn client(&self, _: &str) -> Result<Option<ClientRecord>, StoreError> {
        down()
    }
    async fn client_by_identity(&self, _: &str) -> Result<Option<ClientRecord>, StoreError> {
        down()
    }
    async fn clients(&self, _: Option<ClientStatus>) -> Result<Vec<ClientRecord>, StoreError> {
        down()
    }
    async fn token(&self, _: &str) -> Result<Option<EnrollToken>, StoreError> {
        down()
    }
    async fn policy_version(&self) -> Result<i64, StoreError> {
        down()
    }
    async fn acme_account(&self, _: &str) -> Result<Option<AcmeAccount>, StoreError> {
        down()
    }
    async fn acme_account_by_thumbprint(&self, _: &str) -> Result<Option<AcmeAccount>, StoreError> {
        down()
    }
    async fn acme_eab_key(&self, _: &str) -> Result<Option<EabKey>, StoreError> {
        down()
    }
    async fn acme_order(&self, _: &str) -> Result<Option<AcmeOrder>, StoreError> {
        down()
    }
    async fn acme_order_by_serial(&self, _: &str) -> Result<Option<AcmeOrder>, StoreError> {
        down()
    }
    async fn acme_orders_of(&self, _: &str, _: i64) -> Result<Vec<String>, StoreError> {
        down()
    }
    async fn acme_authz(&self, _: &str) -> Result<Option<AcmeAuthz>, StoreError> {
        down()
    }
    async fn acme_valid_authz(
        &self,
        _: &str,
        _: &str,
        _: bool,
        _: UnixTime,
    ) -> Result<Option<AcmeAuthz>, StoreError> {
        down()
    }
    async fn audit_entries(&self, _: i64, _: i64) -> Result<Vec<AuditEntry>, StoreError> {
        down()
    }
    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        down()
    }
    async fn fingerprint(&self) -> Result<String, StoreError> {
        down()
    }
}

/// A minimal HTTP/1.1 exchange: (status, headers, body).
fn http(url: &str, method: &str, ctype: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("write");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, head, raw[split + 4..].to_vec())
}

async fn call(
    url: String,
    method: &'static str,
    ctype: &'static str,
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    tokio::task::spawn_blocking(move || http(&url, method, ctype, &body))
        .await
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_gives_try_later_and_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = InitOptions {
        site_code: "PS1".into(),
        name: None,
        base_url: Some("http://pki.fleet.test".into()),
        database: None,
        passphrase: None,
        ca: CaSource::Generate {
            key_type: KeyType::EcdsaP256,
            two_tier: true,
        },
    };
    let mut site = Site::init(dir.path(), opts, &Actor::new("test", "test"))
        .await
        .expect("init");
    let issuing = dir.path().join("ca/issuing.pem");
    let store: Arc<dyn Store> = Arc::new(Down);
    site.committer = GroupCommitter::new(store.clone(), 8);
    site.store = store;

    let running = fleetpki_server::start(
        Arc::new(site),
        &ServeConfig::parse(
            // The HTTPS roles need the store's CRLs to start (they fail closed).
            "[roles.api]\nenabled = false\n[roles.management-point]\nenabled = false\n",
            "http://pki.fleet.test",
        )
        .expect("config"),
    )
    .await
    .expect("start");

    // An OCSP request made by openssl, about a serial of the issuing CA.
    if fleetpki_testkit::tool("openssl").is_some() {
        let req = dir.path().join("req.der");
        let o = fleetpki_testkit::openssl(&[
            "ocsp",
            "-issuer",
            issuing.to_str().expect("utf8"),
            "-serial",
            "0x0102",
            "-reqout",
            req.to_str().expect("utf8"),
        ])
        .expect("openssl");
        assert!(o.success(), "{}", o.combined());
        let url = format!("{}/ocsp", running.url(Role::Ocsp).expect("ocsp"));
        let der = std::fs::read(&req).expect("request");
        let (code, _, body) = call(url, "POST", "application/ocsp-request", der).await;
        assert_eq!(code, 200);
        assert_eq!(
            parse_response(&body).expect("parse").error,
            Some(ErrorStatus::TryLater)
        );
    }

    let url = format!(
        "{}/status",
        running.url(Role::FallbackStatusPoint).expect("fsp")
    );
    let (code, head, body) = call(
        url,
        "POST",
        "application/json",
        br#"{"client":"PC1","kind":"renewal-failed"}"#.to_vec(),
    )
    .await;
    assert_eq!(code, 503, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 30"),
        "{head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("cannot store"));

    let url = format!("{}/healthz", running.url(Role::Crl).expect("crl"));
    let (code, _, _) = call(url, "GET", "text/plain", vec![]).await;
    assert_eq!(code, 503);
    running.shutdown().await;
}
