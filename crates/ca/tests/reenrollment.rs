//! Re-enrollment (EST simplereenroll): the same pipeline as a submission, for the holder of a
//! certificate, whose new certificate must keep the subject and SANs; a request that would
//! change them is refused and stores nothing.

mod common;

use fleetpki_ca::issuance::Submitted;
use fleetpki_ca::{Actor, Site};
use fleetpki_model::record::CertificateRecord;
use fleetpki_x509::cert::San;
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{csr, name};

fn admin() -> Actor {
    Actor::new("admin", "test")
}

/// A site where SRV1 (group Servers) may enroll under `Web` (supply in request, *.fleet.test).
async fn site(dir: &std::path::Path) -> Site {
    let site = common::init_site(dir, "RE1", false).await;
    site.directory_add_group("Servers", &admin()).await.unwrap();
    let srv1 = common::computer("SRV1", "srv1.fleet.test");
    site.directory_add(srv1, &["Servers".to_string()], &admin())
        .await
        .unwrap();
    site.template_duplicate("WebServer", "Web", &admin())
        .await
        .unwrap();
    site.template_set(
        "Web",
        &[("permitted-dns-suffixes".into(), "fleet.test".into())],
        &admin(),
    )
    .await
    .unwrap();
    site.template_grant("Web", "Servers", true, true, false, &admin())
        .await
        .unwrap();
    site.template_publish("Web", true, &admin()).await.unwrap();
    site
}

fn request(cn: &str, dns: &[&str]) -> Vec<u8> {
    let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let sans: Vec<San> = dns.iter().map(|d| San::Dns(d.to_string())).collect();
    csr::build(&key, &name::build(&[("CN", cn)]).unwrap(), &sans).unwrap()
}

fn issued(s: Submitted) -> CertificateRecord {
    match s {
        Submitted::Issued { certificate, .. } => *certificate,
        other => panic!("not issued: {other:?}"),
    }
}

#[tokio::test]
async fn reenrollment_keeps_subject_and_sans() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path()).await;
    let srv1 = Actor::new("SRV1", "test");
    let names = ["web.fleet.test", "www.fleet.test"];
    let first = issued(
        site.submit("Web", "SRV1", &request("web.fleet.test", &names), &srv1)
            .await
            .expect("submit"),
    );
    // Same names (SANs in another order), new key: a new certificate with the same names.
    let again = issued(
        site.submit_reenrollment(
            &first,
            &request("web.fleet.test", &["www.fleet.test", "web.fleet.test"]),
            &srv1,
        )
        .await
        .expect("reenroll"),
    );
    assert_ne!(again.serial, first.serial);
    assert_eq!(
        (&again.subject, &again.template),
        (&first.subject, &first.template)
    );
    let mut a = again.sans.clone();
    let mut b = first.sans.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b);

    let before = site.store.fingerprint().await.unwrap();
    for (cn, dns, field) in [
        ("other.fleet.test", &names[..], "csr.subject"),
        ("web.fleet.test", &["web.fleet.test"][..], "csr.san"),
        (
            "web.fleet.test",
            &["web.fleet.test", "www.fleet.test", "new.fleet.test"][..],
            "csr.san",
        ),
    ] {
        let e = site
            .submit_reenrollment(&first, &request(cn, dns), &srv1)
            .await
            .expect_err("a change of names");
        assert_eq!(e.field(), Some(field), "{e}");
        assert!(e.to_string().contains("re-enrollment keeps"), "{e}");
    }
    assert_eq!(site.store.fingerprint().await.unwrap(), before);
}
