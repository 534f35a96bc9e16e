//! The issuance context cache never outlives a change: what another process (the CLI writing the
//! database directly) changes in templates, principals or memberships decides the very next
//! submission of a long-running site.

use fleetpki_ca::issuance::Submitted;
use fleetpki_ca::{Actor, CaError, CaSource, InitOptions, Site};
use fleetpki_model::directory::{Principal, PrincipalKind};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{csr, name};

fn admin() -> Actor {
    Actor::new("admin", "test")
}

fn pc1() -> Principal {
    Principal {
        name: "PC1".into(),
        kind: PrincipalKind::Computer,
        dns: Some("pc1.fleet.test".into()),
        email: None,
        upn: None,
        disabled: false,
    }
}

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
    let opts = InitOptions {
        site_code: "CX1".into(),
        name: None,
        base_url: None,
        database: None,
        passphrase: None,
        ca: CaSource::Generate {
            key_type: KeyType::EcdsaP256,
            two_tier: false,
        },
    };
    // `serving` stands for `fleetpki serve`; `cli` for another process on the same database.
    let serving = Site::init(dir.path(), opts, &admin()).await.expect("init");
    for g in ["Workstations", "Servers"] {
        serving
            .directory_add_group(g, &admin())
            .await
            .expect("group");
    }
    serving
        .directory_add(pc1(), &["Workstations".into()], &admin())
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
