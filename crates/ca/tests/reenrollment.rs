//! Re-enrollment (EST simplereenroll): the same pipeline as a submission, for the holder of a
//! certificate, whose new certificate must keep the subject and SANs; a request that would
//! change them is refused and stores nothing. A SCEP RenewalReq is one too.

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

/// A SCEP RenewalReq renews the certificate it is signed with: one from the endpoint's template,
/// with the same names; anything else is refused and records no transaction.
#[tokio::test]
async fn scep_renewal_keeps_template_and_names() {
    use fleetpki_ca::scep::{ScepAuth, Transaction};
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path()).await;
    site.template_duplicate("Web", "Other Web", &admin())
        .await
        .unwrap();
    site.template_grant("Other Web", "Servers", true, true, false, &admin())
        .await
        .unwrap();
    site.template_publish("Other Web", true, &admin())
        .await
        .unwrap();
    let srv1 = Actor::new("SRV1", "test");
    let names = ["web.fleet.test"];
    let web = issued(
        site.submit("Web", "SRV1", &request("web.fleet.test", &names), &srv1)
            .await
            .expect("submit"),
    );
    let other = issued(
        site.submit(
            "Other Web",
            "SRV1",
            &request("web.fleet.test", &names),
            &srv1,
        )
        .await
        .expect("submit"),
    );
    let renew = |current: &CertificateRecord, csr: Vec<u8>, tid: &'static str| {
        let site = &site;
        let srv1 = &srv1;
        let der = current.der.clone();
        async move {
            let tx = Transaction {
                key_sha256: "k",
                transaction_id: tid,
                replace: false,
            };
            site.scep_submit(
                "Web",
                &csr,
                ScepAuth::Renewal { current_der: &der },
                &tx,
                srv1,
            )
            .await
        }
    };

    let err = renew(&other, request("web.fleet.test", &names), "t1")
        .await
        .expect_err("another template's certificate");
    assert!(err.to_string().contains("Other Web"), "{err}");
    let err = renew(&web, request("web.fleet.test", &["www.fleet.test"]), "t2")
        .await
        .expect_err("other names");
    assert!(err.to_string().contains("csr.san"), "{err}");
    for tid in ["t1", "t2"] {
        assert_eq!(site.store.scep_transaction("k", tid).await.unwrap(), None);
    }

    let renewed = issued(
        renew(&web, request("web.fleet.test", &names), "t3")
            .await
            .expect("renewal"),
    );
    assert_ne!(renewed.serial, web.serial);
    assert_eq!(
        (&renewed.subject, &renewed.sans, &renewed.template),
        (&web.subject, &web.sans, &web.template)
    );
    assert!(
        site.store
            .scep_transaction("k", "t3")
            .await
            .unwrap()
            .is_some()
    );
}
