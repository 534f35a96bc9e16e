//! Many concurrent submissions through one site: every one answered with a stored certificate,
//! serials unique, the audit chain intact.

mod common;

use fleetpki_ca::Actor;
use fleetpki_ca::issuance::Submitted;
use fleetpki_model::record::CertFilter;
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{csr, name};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_are_all_committed() {
    let dir = tempfile::tempdir().expect("tmp");
    let admin = Actor::new("admin", "test");
    let site = Arc::new(common::init_site(dir.path(), "CC1", false).await);
    site.directory_add_group("Workstations", &admin)
        .await
        .expect("group");
    let n = 64;
    for i in 0..n {
        let p = common::computer(&format!("PC{i}"), &format!("pc{i}.fleet.test"));
        site.directory_add(p, &["Workstations".into()], &admin)
            .await
            .expect("computer");
    }
    site.template_grant("Workstation", "Workstations", false, true, false, &admin)
        .await
        .expect("grant");
    site.template_publish("Workstation", true, &admin)
        .await
        .expect("publish");

    let mut tasks = Vec::new();
    for i in 0..n {
        let site = site.clone();
        tasks.push(tokio::spawn(async move {
            let key = PrivateKey::generate(KeyType::EcdsaP256).expect("key");
            let req =
                csr::build(&key, &name::build(&[("CN", "x")]).expect("name"), &[]).expect("csr");
            let who = Actor::new(format!("PC{i}"), "test");
            match site
                .submit("Workstation", &format!("PC{i}"), &req, &who)
                .await
                .expect("submit")
            {
                Submitted::Issued { certificate, .. } => certificate.serial,
                Submitted::Pending { .. } => panic!("no approval configured"),
            }
        }));
    }
    let mut serials = Vec::new();
    for t in tasks {
        serials.push(t.await.expect("task"));
    }
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), n);
    // Each answer came after its commit: every serial is readable now.
    for s in &serials {
        assert!(
            site.store.certificate(s).await.expect("read").is_some(),
            "{s} answered but not stored"
        );
    }
    assert_eq!(
        site.certificates(&CertFilter::default())
            .await
            .expect("list")
            .len(),
        n
    );
    let report = site.audit_verify().await.expect("verify");
    assert_eq!(report.result, Ok(()));
}
