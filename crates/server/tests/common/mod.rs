//! Shared by the HTTPS tests: a site with computer PC1 (group G, Workstation published and
//! granted) and PC1's certificate, a mutual-TLS client, and one HTTP/1.1 request at a time on
//! a kept connection.
#![allow(dead_code)] // each test file uses its part

use fleetpki_ca::issuance::Submitted;
use fleetpki_ca::{Actor, CaSource, InitOptions, Site};
use fleetpki_model::directory::{Principal, PrincipalKind};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{csr, name};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub const BASE_URL: &str = "http://pki.fleet.test";

pub async fn site_with_pc1(dir: &std::path::Path) -> (Arc<Site>, Vec<u8>, PrivateKey) {
    let actor = Actor::new("test", "test");
    let opts = InitOptions {
        site_code: "PS1".into(),
        name: None,
        base_url: Some(BASE_URL.into()),
        database: None,
        passphrase: None,
        ca: CaSource::Generate {
            key_type: KeyType::EcdsaP256,
            two_tier: true,
        },
    };
    let site = Site::init(dir, opts, &actor).await.expect("init");
    site.directory_add_group("G", &actor).await.expect("group");
    site.directory_add(
        Principal {
            name: "PC1".into(),
            kind: PrincipalKind::Computer,
            dns: Some("pc1.fleet.test".into()),
            email: None,
            upn: None,
            disabled: false,
        },
        &["G".to_string()],
        &actor,
    )
    .await
    .expect("computer");
    site.template_grant("Workstation", "G", true, true, true, &actor)
        .await
        .expect("grant");
    site.template_publish("Workstation", true, &actor)
        .await
        .expect("publish");
    let key = PrivateKey::generate(KeyType::EcdsaP256).expect("key");
    let request =
        csr::build(&key, &name::build(&[("CN", "PC1")]).expect("name"), &[]).expect("csr");
    let Submitted::Issued { certificate, .. } = site
        .submit("Workstation", "PC1", &request, &actor)
        .await
        .expect("submit")
    else {
        panic!("PC1's certificate was not issued at once");
    };
    (Arc::new(site), certificate.der, key)
}

/// A mutual-TLS client config for PC1 (its certificate sent with the issuing CA), trusting the
/// site root; rustls' default session resumption stays on.
pub fn client_config(site: &Site, leaf: &[u8], key: &PrivateKey) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(site.root.der.clone()))
        .expect("root");
    let chain = vec![
        CertificateDer::from(leaf.to_vec()),
        CertificateDer::from(site.issuing.as_ref().expect("issuing").der.clone()),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_pkcs8_der().to_vec()));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS connection to `url` (https://127.0.0.1:PORT) for the server name pki.fleet.test.
pub async fn connect_with(
    config: Arc<rustls::ClientConfig>,
    url: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(url.trim_start_matches("https://")).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("pki.fleet.test").expect("name"), tcp)
        .await
}

pub async fn connect(
    site: &Site,
    url: &str,
    leaf: &[u8],
    key: &PrivateKey,
) -> TlsStream<TcpStream> {
    connect_with(client_config(site, leaf, key), url)
        .await
        .expect("handshake")
}

/// One HTTP/1.1 request on `tls`; the status and body of its answer (Content-Length framed).
pub async fn request(
    tls: &mut TlsStream<TcpStream>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: pki.fleet.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = tls.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed before a full answer");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some((head, rest)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .expect("content-length");
        if rest.len() >= length {
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("status");
            return (status, rest[..length].to_string());
        }
    }
}
