//! The site-system TLS certificate of enhanced HTTP: issued once, kept while not due, renewed
//! when due or when the names change, recorded in the inventory, valid for server auth.

mod common;

use fleetpki_ca::Site;
use fleetpki_ca::site_system::Renewal;
use fleetpki_ca::verify::Usage;
use fleetpki_model::record::CertFilter;

const DAY: i64 = 86_400;

async fn site(dir: &std::path::Path) -> Site {
    common::init_site(dir, "SS1", true).await
}

#[tokio::test]
async fn issued_kept_and_renewed_when_due() {
    let dir = tempfile::tempdir().expect("tmp");
    let site = site(dir.path()).await;
    let names = vec!["mp.fleet.test".to_string(), "127.0.0.1".to_string()];
    let now = fleetpki_model::now();

    let (first, r) = site
        .site_system_identity(&names, 42 * DAY, now)
        .await
        .expect("issue");
    assert_eq!(r, Renewal::Issued);
    assert_eq!(first.chain.len(), 3, "leaf, issuing, root");
    site.validate_path(&first.chain[0], Usage::ServerAuth, now)
        .expect("a server certificate under the site root");
    let info = fleetpki_x509::cert::info(
        &fleetpki_x509::cert::parse("leaf", &first.chain[0]).expect("parse"),
    )
    .expect("info");
    assert_eq!(info.sans, ["DNS:mp.fleet.test", "IP:127.0.0.1"]);
    assert_eq!(info.ekus, ["1.3.6.1.5.5.7.3.1"]);

    // Not due: the same certificate and key, from the files, on a reopened site too.
    let (same, r) = site
        .site_system_identity(&names, 42 * DAY, now + DAY)
        .await
        .expect("keep");
    assert_eq!((r, &same.serial), (Renewal::Kept, &first.serial));
    let reopened = Site::open(dir.path(), None).await.expect("open");
    let (same, r) = reopened
        .site_system_identity(&names, 42 * DAY, now + DAY)
        .await
        .expect("keep after reopen");
    assert_eq!((r, &same.serial), (Renewal::Kept, &first.serial));
    assert_eq!(same.key.public_key_der(), first.key.public_key_der());

    // Within the renewal window: a new certificate and a new key.
    let due = first.not_after - 41 * DAY;
    let (renewed, r) = site
        .site_system_identity(&names, 42 * DAY, due)
        .await
        .expect("renew");
    assert_eq!(r, Renewal::Issued);
    assert_ne!(renewed.serial, first.serial);
    assert_ne!(renewed.key.public_key_der(), first.key.public_key_der());

    // Other names: issued again at once.
    let (other, r) = site
        .site_system_identity(&["mp2.fleet.test".to_string()], 42 * DAY, now)
        .await
        .expect("names changed");
    assert_eq!(r, Renewal::Issued);
    assert_ne!(other.serial, renewed.serial);

    // Every one is in the inventory under the site-system template.
    let inventory = site
        .certificates(&CertFilter {
            template: Some("site-system".into()),
            ..CertFilter::default()
        })
        .await
        .expect("inventory");
    assert_eq!(inventory.len(), 3);
    assert!(site.audit_verify().await.expect("audit").result.is_ok());
}

#[tokio::test]
async fn bad_names_are_refused_by_field() {
    let dir = tempfile::tempdir().expect("tmp");
    let site = site(dir.path()).await;
    let now = fleetpki_model::now();
    for names in [
        vec![],
        vec!["not a name".to_string()],
        vec!["-x.test".to_string()],
    ] {
        let e = site
            .site_system_identity(&names, 42 * DAY, now)
            .await
            .err()
            .expect("refused");
        assert_eq!(e.field(), Some("tls.names"), "{names:?}: {e}");
    }
    assert!(
        site.certificates(&CertFilter::default())
            .await
            .expect("inventory")
            .is_empty(),
        "nothing stored"
    );
}
