//! The storage contract: one suite of cases, each run against SQLite (a temporary file) and
//! PostgreSQL (a fresh database on the server named by `FLEETPKI_TEST_POSTGRES_URL`).

use fleetpki_model::audit::{AuditEvent, Outcome, verify_chain};
use fleetpki_model::directory::{Group, Principal, PrincipalKind};
use fleetpki_model::record::{
    CertFilter, CertificateRecord, CrlRecord, NewRequest, RequestStatus, Revocation,
    RevocationReason,
};
use fleetpki_model::template::{Template, Version};
use fleetpki_store::{Applied, Change, Decision, GroupCommitter, Store, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

// ---- harness --------------------------------------------------------------------------------

/// Runs `case` on a fresh SQLite file; `case` gets the store and the URL that opens it again.
async fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Store>, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    let store = fleetpki_store::open(&url).await.expect("open sqlite");
    case(store, url).await;
}

/// Runs `case` on a fresh PostgreSQL database, dropped afterwards even if the case panics.
async fn run_postgres<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Store>, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(admin) = std::env::var("FLEETPKI_TEST_POSTGRES_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "FLEETPKI_TEST_POSTGRES_URL is not set, and CI is: the PostgreSQL contract tests must run in CI. \
                 Run the tests through scripts/test.sh, which starts a PostgreSQL cluster and sets the variable."
            );
        }
        eprintln!(
            "notice: FLEETPKI_TEST_POSTGRES_URL is not set; PostgreSQL case skipped (scripts/test.sh runs it)"
        );
        return;
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "fleetpki_test_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let admin_pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("connect to FLEETPKI_TEST_POSTGRES_URL");
    // The name is made of digits and underscores only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin_pool)
        .await
        .expect("create test database");
    let url = database_url(&admin, &name);
    let store = fleetpki_store::open(&url).await.expect("open postgres");
    let outcome = tokio::spawn(case(store, url)).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&admin_pool)
    .await
    .expect("drop test database");
    admin_pool.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `admin` with its database replaced by `name`.
fn database_url(admin: &str, name: &str) -> String {
    let (base, query) = admin
        .split_once('?')
        .map(|(b, q)| (b, format!("?{q}")))
        .unwrap_or((admin, String::new()));
    let authority = base.find("://").map(|i| i + 3).unwrap_or(0);
    let end = base[authority..]
        .find('/')
        .map(|i| authority + i)
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..end])
}

/// One module per case with a `sqlite` and a `postgres` test. Cases listed after `url:` also
/// get the URL of their database, to open it a second time.
macro_rules! contract {
    ($($case:ident),* $(,)?; url: $($url_case:ident),* $(,)?) => {
        $(contract!(@one $case, |s, _url| super::$case(s));)*
        $(contract!(@one $url_case, super::$url_case);)*
    };
    (@one $name:ident, $case:expr) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::run_sqlite($case).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::run_postgres($case).await
            }
        }
    };
}

contract!(
    templates_and_history,
    directory,
    submit_request,
    decide_request,
    put_certificate,
    revoke,
    crl_numbers,
    failed_batch_rolls_back,
    audit_chain,
    certificate_filters,
    group_commit_concurrent,
    group_commit_isolates_failure;
    url: two_stores_one_chain,
);

// ---- fixtures -------------------------------------------------------------------------------

fn ev(action: &str, object: &str) -> AuditEvent {
    AuditEvent {
        at: 1_700_000_000,
        actor: "admin".into(),
        source: "cli".into(),
        action: action.into(),
        object: object.into(),
        outcome: Outcome::Success,
        details: format!("{action} {object}"),
    }
}

fn template(name: &str) -> Template {
    Template::bases()[0].duplicate(name).expect("template")
}

fn principal(name: &str) -> Principal {
    Principal {
        name: name.into(),
        kind: PrincipalKind::Computer,
        dns: Some(format!("{}.fleet.test", name.to_ascii_lowercase())),
        email: None,
        upn: None,
        disabled: false,
    }
}

fn new_request(principal: &str) -> NewRequest {
    NewRequest {
        template: "Web".into(),
        template_version: Version { major: 1, minor: 0 },
        principal: principal.into(),
        submitted_by: principal.into(),
        csr_der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
        submitted_at: 1_700_000_100,
    }
}

fn cert(serial: &str, template: &str, principal: &str, not_after: i64) -> CertificateRecord {
    CertificateRecord {
        serial: serial.into(),
        template: template.into(),
        template_version: Version { major: 1, minor: 0 },
        principal: principal.into(),
        subject: format!("CN={principal}"),
        sans: vec![format!("dns:{}.fleet.test", principal.to_ascii_lowercase())],
        key: "ECDSA P-256".into(),
        not_before: 1_700_000_000,
        not_after,
        request_id: None,
        der: serial.as_bytes().to_vec(),
        revocation: None,
    }
}

fn crl(issuer: &str, number: i64, base_number: Option<i64>) -> CrlRecord {
    CrlRecord {
        issuer: issuer.into(),
        number,
        base_number,
        this_update: 1_700_000_000 + number,
        next_update: 1_700_086_400,
        der: vec![number as u8; 4],
    }
}

fn put_cert(c: CertificateRecord) -> Change {
    let audit = ev("cert.issue", &c.serial);
    Change::PutCertificate {
        certificate: Box::new(c),
        audit,
    }
}

fn submit(request: NewRequest, decision: Decision) -> Change {
    let audit = vec![ev("request.submit", "")];
    Change::SubmitRequest {
        request,
        decision,
        audit,
    }
}

async fn apply1(s: &dyn Store, c: Change) -> Applied {
    let mut out = s.apply(vec![c]).await.expect("apply");
    assert_eq!(out.len(), 1);
    out.remove(0)
}

async fn request_id(s: &dyn Store, c: Change) -> i64 {
    match apply1(s, c).await {
        Applied::Request { id } => id,
        other => panic!("expected a request id, got {other:?}"),
    }
}

/// Applies `changes`, which must fail, and checks that nothing changed.
async fn refused(s: &dyn Store, changes: Vec<Change>) -> StoreError {
    let before = s.fingerprint().await.expect("fingerprint");
    let err = s
        .apply(changes)
        .await
        .expect_err("the change must be refused");
    assert_eq!(
        s.fingerprint().await.expect("fingerprint"),
        before,
        "a refused apply changed the store: {err}"
    );
    err
}

#[track_caller]
fn assert_conflict(e: StoreError, what: &str, key: &str) {
    match e {
        StoreError::Conflict {
            what: w,
            key: ref k,
            ref why,
        } => {
            assert_eq!((w, k.as_str()), (what, key), "{e}");
            assert!(!why.is_empty());
        }
        other => panic!("expected a Conflict on {what} `{key}`, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found(e: StoreError, what: &str, key: &str) {
    match e {
        StoreError::NotFound { what: w, key: k } => assert_eq!((w, k.as_str()), (what, key)),
        other => panic!("expected NotFound {what} `{key}`, got {other:?}"),
    }
}

async fn assert_chain(s: &dyn Store) -> i64 {
    let entries = s.audit_entries(0, i64::MAX).await.expect("audit entries");
    let head = s.audit_head().await.expect("audit head");
    verify_chain(&entries, head.as_ref().map(|(seq, h)| (*seq, h.as_str())))
        .expect("the audit chain verifies");
    head.map(|(seq, _)| seq).unwrap_or(0)
}

// ---- cases ----------------------------------------------------------------------------------

async fn templates_and_history(s: Arc<dyn Store>) {
    let s = s.as_ref();
    assert_eq!(s.template("Web").await.unwrap(), None);
    assert!(s.template_history("Web").await.unwrap().is_empty());

    let mut web = template("Web");
    apply1(
        s,
        Change::PutTemplate {
            template: web.clone(),
            audit: ev("template.create", "Web"),
        },
    )
    .await;
    let v1 = web.clone();
    web.display_name = "Web v1.1".into();
    web.next_minor();
    let v2 = web.clone();
    web.next_major();
    web.published = true;
    let v3 = web.clone();
    // Two versions in one apply keep their order too.
    s.apply(vec![
        Change::PutTemplate {
            template: v2.clone(),
            audit: ev("template.set", "Web"),
        },
        Change::PutTemplate {
            template: v3.clone(),
            audit: ev("template.bump", "Web"),
        },
    ])
    .await
    .unwrap();
    apply1(
        s,
        Change::PutTemplate {
            template: template("Alpha"),
            audit: ev("template.create", "Alpha"),
        },
    )
    .await;

    assert_eq!(s.template("Web").await.unwrap(), Some(v3.clone()));
    assert_eq!(s.template_history("Web").await.unwrap(), vec![v1, v2, v3]);
    let names: Vec<String> = s
        .templates()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["Alpha", "Web"]);
    assert_eq!(s.template_history("Alpha").await.unwrap().len(), 1);
    assert_eq!(assert_chain(s).await, 4);
}

async fn directory(s: Arc<dyn Store>) {
    let s = s.as_ref();
    let mut pc = principal("PC2");
    s.apply(vec![
        Change::PutPrincipal {
            principal: pc.clone(),
            audit: ev("principal.add", "PC2"),
        },
        Change::PutPrincipal {
            principal: principal("PC1"),
            audit: ev("principal.add", "PC1"),
        },
        Change::PutGroup {
            group: Group {
                name: "Workstations".into(),
            },
            audit: ev("group.add", "Workstations"),
        },
        Change::PutGroup {
            group: Group {
                name: "Admins".into(),
            },
            audit: ev("group.add", "Admins"),
        },
    ])
    .await
    .unwrap();
    // Put replaces.
    pc.disabled = true;
    pc.email = Some("pc2@fleet.test".into());
    apply1(
        s,
        Change::PutPrincipal {
            principal: pc.clone(),
            audit: ev("principal.set", "PC2"),
        },
    )
    .await;
    assert_eq!(s.principal("PC2").await.unwrap(), Some(pc));
    assert_eq!(s.principal("PC9").await.unwrap(), None);
    let names: Vec<String> = s
        .principals()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["PC1", "PC2"]);

    let err = refused(
        s,
        vec![Change::PutGroup {
            group: Group {
                name: "Admins".into(),
            },
            audit: ev("group.add", "Admins"),
        }],
    )
    .await;
    assert_conflict(err, "group", "Admins");
    assert_eq!(
        s.group("Admins").await.unwrap(),
        Some(Group {
            name: "Admins".into()
        })
    );
    assert_eq!(s.group("Nobody").await.unwrap(), None);
    let groups: Vec<String> = s
        .groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(groups, ["Admins", "Workstations"]);

    let add = |g: &str, p: &str| Change::AddMember {
        group: g.into(),
        principal: p.into(),
        audit: ev("group.add-member", g),
    };
    s.apply(vec![
        add("Workstations", "PC2"),
        add("Workstations", "PC1"),
        add("Admins", "PC1"),
    ])
    .await
    .unwrap();
    let head = assert_chain(s).await;
    // Adding twice is a no-op on the membership (but is audited).
    apply1(s, add("Workstations", "PC1")).await;
    assert_eq!(assert_chain(s).await, head + 1);
    assert_eq!(s.members("Workstations").await.unwrap(), ["PC1", "PC2"]);
    assert_eq!(
        s.groups_of("PC1").await.unwrap(),
        ["Admins", "Workstations"]
    );
    assert!(s.members("Nobody").await.unwrap().is_empty());

    assert_not_found(
        refused(s, vec![add("Nobody", "PC1")]).await,
        "group",
        "Nobody",
    );
    assert_not_found(
        refused(s, vec![add("Admins", "PC9")]).await,
        "principal",
        "PC9",
    );
}

async fn submit_request(s: Arc<dyn Store>) {
    let s = s.as_ref();
    let pending = request_id(s, submit(new_request("PC1"), Decision::Pending)).await;
    let mut issued_cert = cert("0a01", "Web", "PC2", 1_800_000_000);
    let issued = request_id(
        s,
        submit(
            new_request("PC2"),
            Decision::Issue(Box::new(issued_cert.clone())),
        ),
    )
    .await;
    let denied = request_id(
        s,
        submit(
            new_request("PC3"),
            Decision::Deny("not in an enrolling group".into()),
        ),
    )
    .await;
    assert!(pending < issued && issued < denied);

    let r = s.request(pending).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.decided_at, r.serial, r.reason),
        (RequestStatus::Pending, None, None, None)
    );
    assert_eq!(r.csr_der, new_request("PC1").csr_der);
    assert_eq!(
        (
            r.template.as_str(),
            r.principal.as_str(),
            r.template_version
        ),
        ("Web", "PC1", Version { major: 1, minor: 0 })
    );

    let r = s.request(issued).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.serial.as_deref(), r.decided_at),
        (RequestStatus::Issued, Some("0a01"), Some(r.submitted_at))
    );
    issued_cert.request_id = Some(issued);
    assert_eq!(s.certificate("0a01").await.unwrap(), Some(issued_cert));

    let r = s.request(denied).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.reason.as_deref(), r.serial),
        (
            RequestStatus::Denied,
            Some("not in an enrolling group"),
            None
        )
    );
    assert_eq!(s.request(denied + 1000).await.unwrap(), None);

    let all: Vec<i64> = s
        .requests(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(all, [denied, issued, pending], "newest first");
    let only: Vec<i64> = s
        .requests(Some(RequestStatus::Pending))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(only, [pending]);

    // An audit event with an empty object names the new request.
    let entries = s.audit_entries(0, 100).await.unwrap();
    let objects: Vec<String> = entries.iter().map(|e| e.event.object.clone()).collect();
    assert_eq!(
        objects,
        [pending.to_string(), issued.to_string(), denied.to_string()]
    );

    // A duplicate serial refuses the whole submission: no request, no certificate.
    let err = refused(
        s,
        vec![submit(
            new_request("PC4"),
            Decision::Issue(Box::new(cert("0a01", "Web", "PC4", 1))),
        )],
    )
    .await;
    assert_conflict(err, "certificate", "0a01");
    assert_eq!(s.requests(None).await.unwrap().len(), 3);
    assert_chain(s).await;
}

async fn decide_request(s: Arc<dyn Store>) {
    let s = s.as_ref();
    let a = request_id(s, submit(new_request("PC1"), Decision::Pending)).await;
    let b = request_id(s, submit(new_request("PC2"), Decision::Pending)).await;
    let c = request_id(s, submit(new_request("PC3"), Decision::Pending)).await;
    apply1(s, put_cert(cert("dup", "Web", "X", 1_800_000_000))).await;
    let decide = |id: i64, decision: Decision| Change::DecideRequest {
        id,
        decided_by: "approver".into(),
        at: 1_700_000_500,
        decision,
        audit: vec![ev("request.decide", &id.to_string())],
    };

    apply1(
        s,
        decide(
            a,
            Decision::Issue(Box::new(cert("0b01", "Web", "PC1", 1_800_000_000))),
        ),
    )
    .await;
    let r = s.request(a).await.unwrap().unwrap();
    assert_eq!(
        (
            r.status,
            r.decided_at,
            r.decided_by.as_deref(),
            r.serial.as_deref()
        ),
        (
            RequestStatus::Issued,
            Some(1_700_000_500),
            Some("approver"),
            Some("0b01")
        )
    );
    assert_eq!(
        s.certificate("0b01").await.unwrap().unwrap().request_id,
        Some(a)
    );

    apply1(s, decide(b, Decision::Deny("no".into()))).await;
    let r = s.request(b).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.reason.as_deref(), r.decided_by.as_deref()),
        (RequestStatus::Denied, Some("no"), Some("approver"))
    );

    // Only a pending request can be decided.
    assert_conflict(
        refused(s, vec![decide(a, Decision::Deny("late".into()))]).await,
        "request",
        &a.to_string(),
    );
    assert_conflict(
        refused(s, vec![decide(b, Decision::Deny("again".into()))]).await,
        "request",
        &b.to_string(),
    );
    assert_conflict(
        refused(s, vec![decide(c, Decision::Pending)]).await,
        "request",
        &c.to_string(),
    );
    assert_not_found(
        refused(s, vec![decide(c + 1000, Decision::Deny("x".into()))]).await,
        "request",
        &(c + 1000).to_string(),
    );
    // Approving with a serial already used fails and leaves the request pending.
    let err = refused(
        s,
        vec![decide(
            c,
            Decision::Issue(Box::new(cert("dup", "Web", "PC3", 1))),
        )],
    )
    .await;
    assert_conflict(err, "certificate", "dup");
    assert_eq!(
        s.request(c).await.unwrap().unwrap().status,
        RequestStatus::Pending
    );
    assert_eq!(
        s.requests(Some(RequestStatus::Pending))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_chain(s).await;
}

async fn put_certificate(s: Arc<dyn Store>) {
    let s = s.as_ref();
    let mut revoked = cert("0c02", "Role", "site", 1_800_000_000);
    revoked.revocation = Some(Revocation {
        at: 1_700_000_001,
        reason: RevocationReason::Superseded,
    });
    s.apply(vec![
        put_cert(cert("0c01", "Role", "site", 1_800_000_000)),
        put_cert(revoked.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.certificate("0c01").await.unwrap(),
        Some(cert("0c01", "Role", "site", 1_800_000_000))
    );
    assert_eq!(s.certificate("0c02").await.unwrap(), Some(revoked));
    assert_eq!(s.certificate("0c03").await.unwrap(), None);

    assert_conflict(
        refused(s, vec![put_cert(cert("0c01", "Other", "x", 1))]).await,
        "certificate",
        "0c01",
    );
    let mut orphan = cert("0c04", "Role", "site", 1);
    orphan.request_id = Some(999_999);
    assert_not_found(
        refused(s, vec![put_cert(orphan)]).await,
        "request",
        "999999",
    );
    // A request id that exists is kept.
    let id = request_id(s, submit(new_request("PC1"), Decision::Pending)).await;
    let mut linked = cert("0c05", "Role", "PC1", 1);
    linked.request_id = Some(id);
    apply1(s, put_cert(linked.clone())).await;
    assert_eq!(s.certificate("0c05").await.unwrap(), Some(linked));
}

async fn revoke(s: Arc<dyn Store>) {
    let s = s.as_ref();
    s.apply(
        (1..=3)
            .map(|i| put_cert(cert(&format!("0d0{i}"), "Web", "PC1", 1_800_000_000)))
            .collect(),
    )
    .await
    .unwrap();
    let rev = |serial: &str, at: i64, reason| Change::Revoke {
        serial: serial.into(),
        revocation: Revocation { at, reason },
        audit: ev("cert.revoke", serial),
    };
    s.apply(vec![
        rev("0d01", 100, RevocationReason::KeyCompromise),
        rev("0d03", 300, RevocationReason::CertificateHold),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.certificate("0d01").await.unwrap().unwrap().revocation,
        Some(Revocation {
            at: 100,
            reason: RevocationReason::KeyCompromise
        })
    );
    assert_eq!(
        s.certificate("0d02").await.unwrap().unwrap().revocation,
        None
    );
    let all = s.revocations(None).await.unwrap();
    assert_eq!(
        all,
        [
            (
                "0d01".to_string(),
                Revocation {
                    at: 100,
                    reason: RevocationReason::KeyCompromise
                }
            ),
            (
                "0d03".to_string(),
                Revocation {
                    at: 300,
                    reason: RevocationReason::CertificateHold
                }
            ),
        ]
    );
    assert_eq!(s.revocations(Some(300)).await.unwrap(), all[1..]);
    assert!(s.revocations(Some(301)).await.unwrap().is_empty());

    assert_conflict(
        refused(s, vec![rev("0d01", 400, RevocationReason::Superseded)]).await,
        "certificate",
        "0d01",
    );
    assert_not_found(
        refused(s, vec![rev("ffff", 400, RevocationReason::Superseded)]).await,
        "certificate",
        "ffff",
    );
    assert_chain(s).await;
}

async fn crl_numbers(s: Arc<dyn Store>) {
    let s = s.as_ref();
    let publish = |c: CrlRecord| {
        let audit = ev("crl.publish", &format!("{} {}", c.issuer, c.number));
        Change::PublishCrl { crl: c, audit }
    };
    assert_eq!(s.max_crl_number("issuing").await.unwrap(), 0);
    assert_eq!(s.latest_crl("issuing", false).await.unwrap(), None);
    s.apply(vec![
        publish(crl("issuing", 1, None)),
        publish(crl("issuing", 2, Some(1))),
        publish(crl("issuing", 3, None)),
    ])
    .await
    .unwrap();
    apply1(s, publish(crl("issuing", 4, Some(3)))).await;
    // Numbers are per issuer.
    apply1(s, publish(crl("root", 1, None))).await;

    assert_eq!(s.max_crl_number("issuing").await.unwrap(), 4);
    assert_eq!(s.max_crl_number("root").await.unwrap(), 1);
    assert_eq!(
        s.latest_crl("issuing", false).await.unwrap(),
        Some(crl("issuing", 3, None))
    );
    assert_eq!(
        s.latest_crl("issuing", true).await.unwrap(),
        Some(crl("issuing", 4, Some(3)))
    );
    assert_eq!(s.latest_crl("root", true).await.unwrap(), None);

    // Not greater than every number (full or delta) for the issuer: refused.
    for n in [4, 3, 1] {
        assert_conflict(
            refused(s, vec![publish(crl("issuing", n, None))]).await,
            "CRL",
            &format!("issuing #{n}"),
        );
    }
    assert_conflict(
        refused(s, vec![publish(crl("root", 1, None))]).await,
        "CRL",
        "root #1",
    );
    // Within one batch, too.
    let err = refused(
        s,
        vec![
            publish(crl("root", 7, None)),
            publish(crl("root", 6, Some(1))),
        ],
    )
    .await;
    assert_conflict(err, "CRL", "root #6");
    apply1(s, publish(crl("issuing", 10, None))).await;
    assert_eq!(s.max_crl_number("issuing").await.unwrap(), 10);
}

async fn failed_batch_rolls_back(s: Arc<dyn Store>) {
    let s = s.as_ref();
    apply1(s, put_cert(cert("0e01", "Web", "PC1", 1_800_000_000))).await;
    let head = s.audit_head().await.unwrap();
    let before = s.fingerprint().await.unwrap();
    // Every kind of write, then a change that fails: none of it may be visible.
    let err = s
        .apply(vec![
            Change::PutTemplate {
                template: template("Web"),
                audit: ev("template.create", "Web"),
            },
            Change::PutPrincipal {
                principal: principal("PC1"),
                audit: ev("principal.add", "PC1"),
            },
            Change::PutGroup {
                group: Group { name: "G".into() },
                audit: ev("group.add", "G"),
            },
            Change::AddMember {
                group: "G".into(),
                principal: "PC1".into(),
                audit: ev("group.add-member", "G"),
            },
            submit(
                new_request("PC1"),
                Decision::Issue(Box::new(cert("0e02", "Web", "PC1", 1))),
            ),
            Change::Revoke {
                serial: "0e01".into(),
                revocation: Revocation {
                    at: 5,
                    reason: RevocationReason::Unspecified,
                },
                audit: ev("cert.revoke", "0e01"),
            },
            Change::PublishCrl {
                crl: crl("issuing", 1, None),
                audit: ev("crl.publish", "1"),
            },
            Change::Audit(ev("key.use", "issuing")),
            put_cert(cert("0e01", "Web", "PC1", 1)),
        ])
        .await
        .expect_err("the last change conflicts");
    assert_conflict(err, "certificate", "0e01");
    assert_eq!(s.fingerprint().await.unwrap(), before);
    assert_eq!(s.audit_head().await.unwrap(), head);
    assert_eq!(s.template("Web").await.unwrap(), None);
    assert_eq!(
        s.certificate("0e01").await.unwrap().unwrap().revocation,
        None
    );
    assert!(s.requests(None).await.unwrap().is_empty());

    // The store is still usable, and the chain continues from the old head.
    apply1(s, Change::Audit(ev("key.use", "issuing"))).await;
    assert_eq!(assert_chain(s).await, 2);
    assert_ne!(s.fingerprint().await.unwrap(), before);
    // An empty apply changes nothing.
    let fp = s.fingerprint().await.unwrap();
    assert!(s.apply(vec![]).await.unwrap().is_empty());
    assert_eq!(s.fingerprint().await.unwrap(), fp);
}

async fn audit_chain(s: Arc<dyn Store>) {
    let s = s.as_ref();
    assert_eq!(s.audit_head().await.unwrap(), None);
    assert_chain(s).await;
    for i in 0..40 {
        let mut events = vec![ev("request.submit", ""), ev("key.use", "issuing")];
        if i % 3 == 0 {
            events.push(ev("cert.issue", &format!("{i:04x}")));
        }
        let change = Change::SubmitRequest {
            request: new_request(&format!("PC{i}")),
            decision: Decision::Issue(Box::new(cert(
                &format!("{i:04x}"),
                "Web",
                "PC",
                1_800_000_000 + i,
            ))),
            audit: events,
        };
        s.apply(vec![change, Change::Audit(ev("api.call", &i.to_string()))])
            .await
            .unwrap();
    }
    let last = assert_chain(s).await;
    assert_eq!(last, 40 * 3 + 14);
    // Paging returns the same entries as one read.
    let whole = s.audit_entries(0, i64::MAX).await.unwrap();
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = s.audit_entries(after, 7).await.unwrap();
        let Some(tail) = page.last() else { break };
        after = tail.seq;
        paged.extend(page);
    }
    assert_eq!(paged, whole);
    assert_eq!(s.audit_entries(last - 2, 100).await.unwrap().len(), 2);
    assert!(s.audit_entries(0, -1).await.unwrap().is_empty());
    assert!(s.audit_entries(0, 0).await.unwrap().is_empty());
    let head = s.audit_head().await.unwrap().unwrap();
    assert_eq!(
        (head.0, head.1.as_str()),
        (last, whole[whole.len() - 1].hash.as_str())
    );
    assert_eq!(
        whole[0].event,
        AuditEvent {
            object: whole[0].event.object.clone(),
            ..ev("request.submit", "")
        }
    );
}

async fn certificate_filters(s: Arc<dyn Store>) {
    let s = s.as_ref();
    let certs = [
        cert("01", "Web", "PC1", 3_000),
        cert("02", "Web", "PC2", 1_000),
        cert("03", "Workstation", "PC1", 2_000),
        cert("04", "Workstation", "PC2", 4_000),
        cert("05", "Web", "PC1", 500),
    ];
    s.apply(certs.iter().cloned().map(put_cert).collect())
        .await
        .unwrap();
    apply1(
        s,
        Change::Revoke {
            serial: "05".into(),
            revocation: Revocation {
                at: 10,
                reason: RevocationReason::KeyCompromise,
            },
            audit: ev("cert.revoke", "05"),
        },
    )
    .await;
    let serials = |filter: CertFilter| async move {
        s.certificates(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.serial)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        serials(CertFilter::default()).await,
        ["05", "02", "03", "01", "04"],
        "by notAfter"
    );
    assert_eq!(
        serials(CertFilter {
            template: Some("Web".into()),
            ..Default::default()
        })
        .await,
        ["05", "02", "01"]
    );
    assert_eq!(
        serials(CertFilter {
            principal: Some("PC2".into()),
            ..Default::default()
        })
        .await,
        ["02", "04"]
    );
    assert_eq!(
        serials(CertFilter {
            template: Some("Web".into()),
            principal: Some("PC1".into()),
            ..Default::default()
        })
        .await,
        ["05", "01"]
    );
    // Expiring: unrevoked only, strictly before.
    assert_eq!(
        serials(CertFilter {
            expiring_before: Some(3_000),
            ..Default::default()
        })
        .await,
        ["02", "03"]
    );
    assert_eq!(
        serials(CertFilter {
            expiring_before: Some(3_001),
            principal: Some("PC1".into()),
            ..Default::default()
        })
        .await,
        ["03", "01"]
    );
    assert_eq!(
        serials(CertFilter {
            revoked_only: true,
            ..Default::default()
        })
        .await,
        ["05"]
    );
    assert!(
        serials(CertFilter {
            revoked_only: true,
            expiring_before: Some(10_000),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert!(
        serials(CertFilter {
            template: Some("Nope".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    let full = s
        .certificates(&CertFilter {
            principal: Some("PC2".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(full, [certs[1].clone(), certs[3].clone()]);
}

async fn group_commit_concurrent(s: Arc<dyn Store>) {
    const N: usize = 200;
    let committer = GroupCommitter::new(s.clone(), 64);
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let committer = committer.clone();
            tokio::spawn(async move {
                let serial = format!("{i:06x}");
                let change = Change::SubmitRequest {
                    request: new_request(&format!("PC{i}")),
                    decision: Decision::Issue(Box::new(cert(
                        &serial,
                        "Web",
                        &format!("PC{i}"),
                        1_800_000_000,
                    ))),
                    audit: vec![ev("request.submit", ""), ev("cert.issue", &serial)],
                };
                let out = committer
                    .apply(vec![change, Change::Audit(ev("key.use", "issuing"))])
                    .await
                    .expect("issuance");
                assert_eq!(out.len(), 2);
                let Applied::Request { id } = out[0] else {
                    panic!("expected a request id, got {:?}", out[0])
                };
                assert_eq!(out[1], Applied::Done);
                (i, id)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        let (i, id) = t.await.expect("task");
        let r = s
            .request(id)
            .await
            .unwrap()
            .expect("the caller's request id is its own");
        assert_eq!(r.principal, format!("PC{i}"));
        assert_eq!(r.serial, Some(format!("{i:06x}")));
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), N);
    assert_eq!(
        s.certificates(&CertFilter::default()).await.unwrap().len(),
        N
    );
    assert_eq!(assert_chain(s.as_ref()).await, 3 * N as i64);
}

/// Wraps a store: records the size of every `apply`, and holds the first one until released, so
/// that the callers arriving meanwhile are sure to share the next batch.
struct Held {
    inner: Arc<dyn Store>,
    sizes: std::sync::Mutex<Vec<usize>>,
    gate: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

#[async_trait::async_trait]
impl Store for Held {
    async fn apply(&self, changes: Vec<Change>) -> Result<Vec<Applied>, StoreError> {
        self.sizes.lock().unwrap().push(changes.len());
        if let Some(gate) = self.gate.lock().await.take() {
            let _ = gate.await;
        }
        self.inner.apply(changes).await
    }
    async fn template(&self, n: &str) -> Result<Option<Template>, StoreError> {
        self.inner.template(n).await
    }
    async fn templates(&self) -> Result<Vec<Template>, StoreError> {
        self.inner.templates().await
    }
    async fn template_history(&self, n: &str) -> Result<Vec<Template>, StoreError> {
        self.inner.template_history(n).await
    }
    async fn principal(&self, n: &str) -> Result<Option<Principal>, StoreError> {
        self.inner.principal(n).await
    }
    async fn principals(&self) -> Result<Vec<Principal>, StoreError> {
        self.inner.principals().await
    }
    async fn group(&self, n: &str) -> Result<Option<Group>, StoreError> {
        self.inner.group(n).await
    }
    async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        self.inner.groups().await
    }
    async fn members(&self, g: &str) -> Result<Vec<String>, StoreError> {
        self.inner.members(g).await
    }
    async fn groups_of(&self, p: &str) -> Result<Vec<String>, StoreError> {
        self.inner.groups_of(p).await
    }
    async fn request(
        &self,
        id: i64,
    ) -> Result<Option<fleetpki_model::record::RequestRecord>, StoreError> {
        self.inner.request(id).await
    }
    async fn requests(
        &self,
        st: Option<RequestStatus>,
    ) -> Result<Vec<fleetpki_model::record::RequestRecord>, StoreError> {
        self.inner.requests(st).await
    }
    async fn certificate(&self, serial: &str) -> Result<Option<CertificateRecord>, StoreError> {
        self.inner.certificate(serial).await
    }
    async fn certificates(&self, f: &CertFilter) -> Result<Vec<CertificateRecord>, StoreError> {
        self.inner.certificates(f).await
    }
    async fn revocations(
        &self,
        since: Option<i64>,
    ) -> Result<Vec<(String, Revocation)>, StoreError> {
        self.inner.revocations(since).await
    }
    async fn latest_crl(&self, issuer: &str, delta: bool) -> Result<Option<CrlRecord>, StoreError> {
        self.inner.latest_crl(issuer, delta).await
    }
    async fn max_crl_number(&self, issuer: &str) -> Result<i64, StoreError> {
        self.inner.max_crl_number(issuer).await
    }
    async fn audit_entries(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<fleetpki_model::audit::AuditEntry>, StoreError> {
        self.inner.audit_entries(after, limit).await
    }
    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.inner.audit_head().await
    }
    async fn fingerprint(&self) -> Result<String, StoreError> {
        self.inner.fingerprint().await
    }
}

async fn group_commit_isolates_failure(s: Arc<dyn Store>) {
    apply1(s.as_ref(), put_cert(cert("dup", "Web", "X", 1_800_000_000))).await;
    let (release, gate) = tokio::sync::oneshot::channel();
    let held = Arc::new(Held {
        inner: s.clone(),
        sizes: Default::default(),
        gate: tokio::sync::Mutex::new(Some(gate)),
    });
    let committer = GroupCommitter::new(held.clone(), 64);

    // The first caller is held inside the store; the next ones queue behind it.
    let first = tokio::spawn({
        let c = committer.clone();
        async move { c.apply(vec![Change::Audit(ev("key.use", "first"))]).await }
    });
    while held.sizes.lock().unwrap().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let serials = ["f1", "f2", "dup", "f4", "f5", "f6"];
    let callers: Vec<_> = serials
        .iter()
        .map(|serial| {
            let c = committer.clone();
            let change = put_cert(cert(serial, "Web", "PC1", 1_800_000_000));
            tokio::spawn(async move {
                c.apply(vec![change, Change::Audit(ev("key.use", "issuing"))])
                    .await
            })
        })
        .collect();
    // One more caller goes away while waiting: that must not disturb the batch.
    let dropped = tokio::spawn({
        let c = committer.clone();
        async move {
            c.apply(vec![put_cert(cert("f7", "Web", "PC1", 1_800_000_000))])
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    dropped.abort();
    release.send(()).expect("release");

    assert_eq!(first.await.unwrap().unwrap(), [Applied::Done]);
    for (serial, caller) in serials.iter().zip(callers) {
        let answer = caller.await.unwrap();
        if *serial == "dup" {
            assert_conflict(
                answer.expect_err("the duplicate fails"),
                "certificate",
                "dup",
            );
        } else {
            assert_eq!(
                answer.expect("the others succeed"),
                [Applied::Done, Applied::Done]
            );
            assert!(s.certificate(serial).await.unwrap().is_some());
        }
    }
    // A committer still works after a failed batch. Batches run one after another, so once this
    // is answered the abandoned caller's batch is done too.
    assert_eq!(
        committer
            .apply(vec![Change::Audit(ev("key.use", "after"))])
            .await
            .unwrap(),
        [Applied::Done]
    );
    // The queued callers shared one (failed) batch, then each was applied on its own.
    let sizes = held.sizes.lock().unwrap().clone();
    assert_eq!(sizes[0], 1);
    assert_eq!(
        sizes[1],
        2 * serials.len() + 1,
        "one batch for everyone queued: {sizes:?}"
    );
    assert_eq!(sizes.len(), 2 + serials.len() + 1 + 1, "{sizes:?}");
    // The abandoned caller's change was still applied: the committer owns it once queued.
    assert!(s.certificate("f7").await.unwrap().is_some());
    assert_chain(s.as_ref()).await;
}

/// Two stores on one database (as two CA processes would be) writing at the same time: every
/// change lands, and the audit chain does not fork.
async fn two_stores_one_chain(a: Arc<dyn Store>, url: String) {
    let b = fleetpki_store::open(&url)
        .await
        .expect("open the same database again");
    const PER_STORE: usize = 40;
    let mut tasks = Vec::new();
    for (name, store) in [("a", a.clone()), ("b", b.clone())] {
        for i in 0..PER_STORE {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let serial = format!("{name}{i:04x}");
                store
                    .apply(vec![
                        put_cert(cert(&serial, "Web", name, 1_800_000_000)),
                        Change::Audit(ev("key.use", name)),
                    ])
                    .await
            }));
        }
    }
    for t in tasks {
        t.await.expect("task").expect("apply");
    }
    assert_eq!(assert_chain(a.as_ref()).await, 2 * 2 * PER_STORE as i64);
    assert_eq!(
        a.fingerprint().await.unwrap(),
        b.fingerprint().await.unwrap()
    );
    assert_eq!(
        b.certificates(&CertFilter::default()).await.unwrap().len(),
        2 * PER_STORE
    );
}

// ---- SQLite only ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.db");
    let url = format!("sqlite:{}", path.display());
    let fp = {
        let s = fleetpki_store::SqliteStore::open(&path).await.unwrap();
        s.apply(vec![
            Change::PutTemplate {
                template: template("Web"),
                audit: ev("template.create", "Web"),
            },
            Change::PutPrincipal {
                principal: principal("PC1"),
                audit: ev("principal.add", "PC1"),
            },
            Change::PutGroup {
                group: Group { name: "G".into() },
                audit: ev("group.add", "G"),
            },
            Change::AddMember {
                group: "G".into(),
                principal: "PC1".into(),
                audit: ev("group.add-member", "G"),
            },
            submit(
                new_request("PC1"),
                Decision::Issue(Box::new(cert("01", "Web", "PC1", 5))),
            ),
            Change::PublishCrl {
                crl: crl("issuing", 1, None),
                audit: ev("crl.publish", "1"),
            },
        ])
        .await
        .unwrap();
        let fp = s.fingerprint().await.unwrap();
        s.close().await;
        fp
    };
    // Reopened through `open`, with the `sqlite:` prefix, and migrations are not re-run.
    let s = fleetpki_store::open(&url).await.unwrap();
    assert_eq!(s.fingerprint().await.unwrap(), fp);
    assert_eq!(s.template("Web").await.unwrap(), Some(template("Web")));
    assert_eq!(s.members("G").await.unwrap(), ["PC1"]);
    assert_eq!(
        s.certificate("01").await.unwrap().unwrap().request_id,
        Some(1)
    );
    assert_eq!(s.max_crl_number("issuing").await.unwrap(), 1);
    assert_eq!(assert_chain(s.as_ref()).await, 6);
    // And it keeps going from where it was.
    apply1(s.as_ref(), Change::Audit(ev("key.use", "issuing"))).await;
    assert_eq!(assert_chain(s.as_ref()).await, 7);
}

#[test]
fn database_url_replaces_the_database() {
    assert_eq!(
        database_url("postgres://postgres@127.0.0.1:55432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:55432/t1"
    );
    assert_eq!(
        database_url("postgres://u:p@h/db?sslmode=disable", "t1"),
        "postgres://u:p@h/t1?sslmode=disable"
    );
    assert_eq!(
        database_url("postgresql://h:5432", "t1"),
        "postgresql://h:5432/t1"
    );
}
