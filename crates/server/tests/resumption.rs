//! Every connection to an HTTPS role is a full handshake: a client whose certificate was
//! revoked cannot come back by resuming a TLS session made before (a resumed session would skip
//! the client certificate and CRL checks).

mod common;

use common::{BASE_URL, client_config, connect_with, request, site_with_pc1};
use fleetpki_ca::Actor;
use fleetpki_ca::keys::KeyRole;
use fleetpki_model::record::RevocationReason;
use fleetpki_server::{Role, ServeConfig};
use rustls::HandshakeKind;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A check-in on a new connection: the status, or why there was none.
async fn check_in(config: Arc<rustls::ClientConfig>, url: &str) -> Result<u16, String> {
    let mut tls = connect_with(config, url).await.map_err(|e| e.to_string())?;
    tls.write_all(b"GET /mp/policy HTTP/1.1\r\nHost: pki.fleet.test\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_client_cannot_resume_its_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (site, leaf, key) = site_with_pc1(dir.path()).await;
    let config = ServeConfig::parse(
        "[roles.api]\nenabled = false\n[roles.crl]\nenabled = false\n[roles.ocsp]\nenabled = false\n[roles.fallback-status-point]\nenabled = false\n",
        BASE_URL,
    )
    .expect("config");
    let running = fleetpki_server::start(site.clone(), &config)
        .await
        .expect("start");
    let url = running.url(Role::ManagementPoint).expect("mp").to_string();

    // PC1 checks in twice with one client config, which keeps any session the server offers.
    let pc1 = client_config(&site, &leaf, &key);
    for _ in 0..2 {
        let mut tls = connect_with(pc1.clone(), &url).await.expect("handshake");
        let (status, body) = request(&mut tls, "GET", "/mp/policy", "").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(tls.get_ref().1.handshake_kind(), Some(HandshakeKind::Full));
    }

    // PC1's certificate is revoked and a CRL published; the server picks it up within
    // crl_poll_seconds: a client without a session is refused from then on.
    let actor = Actor::new("test", "test");
    let parsed = fleetpki_x509::cert::parse("pc1", &leaf).expect("parse");
    let serial = fleetpki_x509::cert::info(&parsed).expect("info").serial_hex;
    site.revoke(&serial, RevocationReason::KeyCompromise, &actor)
        .await
        .expect("revoke");
    site.publish_crl(Some(KeyRole::Issuing), false, None, &actor)
        .await
        .expect("crl");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let fresh = client_config(&site, &leaf, &key);
        if check_in(fresh, &url).await != Ok(200) {
            break;
        }
        assert!(Instant::now() < deadline, "the new CRL was not loaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // With the config that holds PC1's earlier sessions, if any: refused all the same.
    let got = check_in(pc1, &url).await;
    assert!(got != Ok(200), "a revoked client got its policy: {got:?}");
    running.shutdown().await;
}
