//! The management point remembers whom a site-issued client certificate was issued to, and
//! still honours what can change: a client blocked after its check-ins is refused on its next
//! request, over the same keep-alive connection as well as a new one.

mod common;

use common::{BASE_URL, connect, request, site_with_pc1};
use fleetpki_ca::Actor;
use fleetpki_model::site::ClientStatus;
use fleetpki_server::{Role, ServeConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_client_is_refused_after_cached_check_ins() {
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

    let mut kept = connect(&site, &url, &leaf, &key).await;
    let (status, body) = request(&mut kept, "POST", "/mp/register", r#"{"name":"PC1"}"#).await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..3 {
        let (status, body) = request(&mut kept, "GET", "/mp/policy", "").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"payload\""), "{body}");
    }

    site.client_decide("PC1", ClientStatus::Blocked, &Actor::new("test", "test"))
        .await
        .expect("block");
    let (status, body) = request(&mut kept, "GET", "/mp/policy", "").await;
    assert_eq!(status, 403, "same connection: {body}");
    assert!(body.contains("blocked"), "{body}");
    let mut fresh = connect(&site, &url, &leaf, &key).await;
    let (status, body) = request(&mut fresh, "GET", "/mp/policy", "").await;
    assert_eq!(status, 403, "new connection: {body}");

    site.client_decide("PC1", ClientStatus::Approved, &Actor::new("test", "test"))
        .await
        .expect("approve");
    let (status, body) = request(&mut fresh, "GET", "/mp/policy", "").await;
    assert_eq!(status, 200, "approved again: {body}");
    drop((kept, fresh));
    running.shutdown().await;
}
