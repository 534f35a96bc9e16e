//! The issuance context cache never outlives a change: what another process (the CLI writing the
//! database directly) changes in templates, principals or memberships decides the very next
//! submission of a long-running site.

mod common;

use common::{admin, computer, init_site};
use fleetpki_ca::issuance::Submitted;
use fleetpki_ca::{Actor, CaError, Site};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{csr, name};

async fn submit(site: &Site) -> Result<Submitted, CaError> {
    let key = PrivateKey::generate(KeyType::EcdsaP256).expect("key");
    let req = csr::build(&key, &name::build(&[("CN", "x")]).expect("name"), &[]).expect("csr");
    site.submit("Workstation", "PC1", &req, &Actor::new("PC1", "test"))
        .await
}

fn issued(r: Result<Submitted, CaError>, when: &str) {
    match r {
        Ok(Submitted::Issued { .. }) => {}
        other => panic!("{when}: expected an issued certificate, got {other:?}"),
    }
}

fn refused(r: Result<Submitted, CaError>, when: &str) {
    assert!(r.is_err(), "{when}: expected a refusal, got {r:?}");
}

#[tokio::test]
async fn changes_made_elsewhere_decide_the_next_submission() {
    let dir = tempfile::tempdir().expect("tmp");
    // `serving` stands for `fleetpki serve`; `cli` for another process on the same database.
    let serving = init_site(dir.path(), "CX1", false).await;
    for g in ["Workstations", "Servers"] {
        serving
            .directory_add_group(g, &admin())
            .await
            .expect("group");
    }
    serving
        .directory_add(
            computer("PC1", "pc1.fleet.test"),
            &["Workstations".into()],
            &admin(),
        )
        .await
        .expect("PC1");
    serving
        .template_grant("Workstation", "Workstations", false, true, false, &admin())
        .await
        .expect("grant");
    serving
        .template_publish("Workstation", true, &admin())
        .await
        .expect("publish");
    issued(submit(&serving).await, "granted");
    issued(submit(&serving).await, "granted, cached context");

    let cli = Site::open(dir.path(), None).await.expect("second handle");
    cli.template_revoke_grant("Workstation", "Workstations", false, true, false, &admin())
        .await
        .expect("revoke grant");
    refused(submit(&serving).await, "grant revoked elsewhere");

    // Granted to a group PC1 is not in yet: still refused; once it joins, issued.
    cli.template_grant("Workstation", "Servers", false, true, false, &admin())
        .await
        .expect("grant Servers");
    refused(submit(&serving).await, "granted to a group PC1 is not in");
    cli.directory_add_member("Servers", "PC1", &admin())
        .await
        .expect("join");
    issued(submit(&serving).await, "joined the granted group elsewhere");
}
