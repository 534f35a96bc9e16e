//! Enrollment over mutual TLS needs no administrative role, and the administrative endpoints
//! still take their roles from the caller's directory groups.

mod common;

use common::{BASE_URL, connect, request, site_with_pc1};
use fleetpki_ca::Actor;
use fleetpki_server::{Role, ServeConfig};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{csr, name, pem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_without_a_role_and_read_with_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (site, leaf, key) = site_with_pc1(dir.path()).await;
    let config = ServeConfig::parse(
        "[roles.management-point]\nenabled = false\n[roles.crl]\nenabled = false\n[roles.ocsp]\nenabled = false\n[roles.fallback-status-point]\nenabled = false\n",
        BASE_URL,
    )
    .expect("config");
    let running = fleetpki_server::start(site.clone(), &config)
        .await
        .expect("start");
    let url = running.url(Role::Api).expect("api").to_string();
    let mut tls = connect(&site, &url, &leaf, &key).await;

    let new_key = PrivateKey::generate(KeyType::EcdsaP256).expect("key");
    let der =
        csr::build(&new_key, &name::build(&[("CN", "PC1")]).expect("name"), &[]).expect("csr");
    let body = serde_json::json!({
        "template": "Workstation",
        "csr": pem::encode("CERTIFICATE REQUEST", &der),
    })
    .to_string();
    let (status, answer) = request(&mut tls, "POST", "/api/v1/enroll", &body).await;
    assert_eq!(status, 201, "{answer}");
    let issued: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(issued["status"], "issued", "{answer}");
    assert!(
        issued["certificate"]
            .as_str()
            .is_some_and(|c| c.contains("BEGIN CERTIFICATE"))
    );

    // PC1 holds no administrative role: listing certificates is for readers.
    let (status, answer) = request(&mut tls, "GET", "/api/v1/certificates", "").await;
    assert_eq!(status, 403, "{answer}");
    let actor = Actor::new("test", "test");
    site.directory_add_group("auditors", &actor)
        .await
        .expect("group");
    site.directory_add_member("auditors", "PC1", &actor)
        .await
        .expect("member");
    let (status, answer) = request(&mut tls, "GET", "/api/v1/certificates", "").await;
    assert_eq!(status, 200, "an auditor reads: {answer}");
    assert!(
        answer.contains(issued["serial"].as_str().expect("serial")),
        "{answer}"
    );
    drop(tls);
    running.shutdown().await;
}
