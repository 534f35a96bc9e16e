//! The storage contract: one suite of cases, each run against SQLite (a temporary file) and
//! PostgreSQL (a fresh database on the server named by `FLEETPKI_TEST_POSTGRES_URL`).

use fleetpki_model::acme::{
    AccountStatus, AcmeAccount, AcmeAuthz, AcmeChallenge, AcmeOrder, AuthzStatus, ChallengeStatus,
    EabKey, OrderStatus,
};
use fleetpki_model::audit::{AuditEvent, Outcome, verify_chain};
use fleetpki_model::directory::{Group, Principal, PrincipalKind};
use fleetpki_model::record::{
    CertFilter, CertificateRecord, CrlRecord, NewRequest, RequestStatus, Revocation,
    RevocationReason,
};
use fleetpki_model::site::{
    ClientRecord, ClientStatus, EnrollToken, NewStatusMessage, StatusFilter, StatusMessage,
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
    issuances_together,
    decide_request,
    put_certificate,
    revoke,
    crl_numbers,
    failed_batch_rolls_back,
    audit_chain,
    certificate_filters,
    counts,
    group_commit_concurrent,
    group_commit_isolates_failure,
    status_messages,
    status_filters,
    clients,
    client_decisions,
    enroll_tokens,
    token_authorises_issuance,
    token_used_once_under_concurrency,
    policy_version,
    acme_state,
    requests_by_submitter,
    scep_transactions;
    url: two_stores_one_chain,
    site_state_shared,
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

fn status_msg(received_at: i64, client: &str, kind: &str) -> NewStatusMessage {
    NewStatusMessage {
        received_at,
        source: "192.0.2.7:40112".into(),
        client: client.into(),
        kind: kind.into(),
        body: format!(r#"{{"client":"{client}","kind":"{kind}","at":{received_at}}}"#),
    }
}

/// A 64-hex-digit stand-in for a SHA-256, distinct per `n`.
fn digest(n: u64) -> String {
    format!("{n:064x}")
}

fn client_rec(name: &str, identity: u64, status: ClientStatus) -> ClientRecord {
    let decided = status != ClientStatus::Pending;
    ClientRecord {
        name: name.into(),
        identity_sha256: digest(identity),
        identity_der: identity.to_be_bytes().to_vec(),
        status,
        registered_at: 1_700_000_000,
        decided_at: decided.then_some(1_700_000_000),
        decided_by: decided.then(|| "site".to_string()),
    }
}

/// A token for PC1 whose secret hashes to `secret_of(id)`.
fn enroll_token(id: &str, expires_at: i64) -> EnrollToken {
    EnrollToken {
        id: id.into(),
        principal: "PC1".into(),
        template: Some("Web".into()),
        secret_sha256: secret_of(id),
        created_at: 1_700_000_000,
        expires_at,
        used_at: None,
        created_by: "admin".into(),
    }
}

/// The (stand-in) secret hash of token `id`.
fn secret_of(id: &str) -> String {
    let n = id
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    digest(n)
}

fn consume(id: &str, secret_sha256: &str, at: i64) -> Change {
    Change::ConsumeToken {
        id: id.into(),
        secret_sha256: secret_sha256.into(),
        at,
        audit: ev("token.consume", id),
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

/// PC`i`'s request, issued at once with certificate `serial`, as an enrollment submits it.
fn issued(i: usize, serial: &str) -> Change {
    Change::SubmitRequest {
        request: new_request(&format!("PC{i}")),
        decision: Decision::Issue(Box::new(cert(
            serial,
            "Web",
            &format!("PC{i}"),
            1_800_000_000,
        ))),
        audit: vec![ev("request.submit", ""), ev("cert.issue", serial)],
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

/// A `Conflict` on `what` `key` whose reason mentions `why`.
#[track_caller]
fn assert_conflict_why(e: StoreError, what: &str, key: &str, why: &str) {
    if let StoreError::Conflict { why: w, .. } = &e {
        assert!(w.contains(why), "expected a reason with `{why}`, got {e}");
    }
    assert_conflict(e, what, key);
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

/// Consecutive issuances in one transaction (a group commit of enrollments) are written in
/// multi-row inserts: each still gets its own request id, its certificate names it, its audit
/// events are chained in order, and a taken serial refuses the whole transaction.
async fn issuances_together(s: Arc<dyn Store>) {
    let s = s.as_ref();
    let issue = |i: usize| {
        let serial = format!("b{i:03x}");
        let change = issued(i, &serial);
        (serial, change)
    };
    // 70 issuances (more than one statement's worth of rows), then a change that takes the
    // last request's id (a SCEP transaction), then another run.
    let (serials, mut changes): (Vec<String>, Vec<Change>) = (0..70).map(issue).unzip();
    changes.push(Change::Audit(ev("key.use", "issuing")));
    let (more, tail): (Vec<String>, Vec<Change>) = (70..73).map(issue).unzip();
    changes.extend(tail);
    let out = s.apply(changes).await.expect("apply");
    assert_eq!(out.len(), 74);
    assert_eq!(out[70], Applied::Done);
    let ids: Vec<i64> = out
        .iter()
        .filter_map(|a| match a {
            Applied::Request { id } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 73);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    for (serial, id) in serials.iter().chain(&more).zip(&ids) {
        let r = s.request(*id).await.unwrap().expect("request");
        assert_eq!(
            (r.status, r.serial.as_deref(), r.decided_at),
            (
                RequestStatus::Issued,
                Some(serial.as_str()),
                Some(r.submitted_at)
            )
        );
        let c = s.certificate(serial).await.unwrap().expect("certificate");
        assert_eq!(c.request_id, Some(*id), "{serial}");
    }
    // The audit entries in the order given; each submit event names its request.
    let objects: Vec<String> = s
        .audit_entries(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.object)
        .collect();
    let mut expected = Vec::new();
    for (i, (serial, id)) in serials.iter().chain(&more).zip(&ids).enumerate() {
        if i == 70 {
            expected.push("issuing".to_string());
        }
        expected.extend([id.to_string(), serial.clone()]);
    }
    assert_eq!(objects, expected);
    assert_chain(s).await;

    // A serial already stored, or twice in the run: the whole transaction is refused, naming it.
    let requests = s.requests(None).await.unwrap().len();
    let (_, fresh) = issue(100);
    let (_, taken) = issue(5);
    assert_conflict(refused(s, vec![fresh, taken]).await, "certificate", "b005");
    let (_, first) = issue(101);
    let (_, again) = issue(101);
    assert_conflict(refused(s, vec![first, again]).await, "certificate", "b065");
    assert_eq!(s.requests(None).await.unwrap().len(), requests);

    // SCEP enrollments: each issuance with the transaction that names it (one a renewal's,
    // replacing the pair's earlier request); a pair recorded twice refuses the transaction.
    let scep = |tid: &str, replace: bool| Change::RecordScepTransaction {
        key_sha256: "key".into(),
        transaction_id: tid.into(),
        request_id: None,
        at: 1_700_000_000,
        replace,
    };
    let (_, a) = issue(200);
    let (_, b) = issue(201);
    let (_, c) = issue(202);
    let out = s
        .apply(vec![
            a,
            scep("t200", false),
            b,
            scep("t201", false),
            c,
            scep("t200", true),
        ])
        .await
        .expect("apply");
    let [
        Applied::Request { id: a },
        Applied::Done,
        Applied::Request { id: b },
        Applied::Done,
        Applied::Request { id: c },
        Applied::Done,
    ] = out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(s.scep_transaction("key", "t201").await.unwrap(), Some(b));
    assert_eq!(
        s.scep_transaction("key", "t200").await.unwrap(),
        Some(c),
        "replaced"
    );
    assert_ne!(a, c);
    let (_, d) = issue(203);
    let (_, e) = issue(204);
    let err = refused(s, vec![d, scep("t300", false), e, scep("t300", false)]).await;
    assert_conflict(err, "SCEP transaction", "t300");
    let (_, f) = issue(205);
    let err = refused(s, vec![f, scep("t201", false)]).await;
    assert_conflict(err, "SCEP transaction", "t201");
    assert_chain(s).await;
}

/// How a repeated EST request finds the one it repeats: by submitter, newest first.
async fn requests_by_submitter(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut by_token = new_request("PC1");
    by_token.submitted_by = "token:ab12".into();
    let first = request_id(s, submit(by_token.clone(), Decision::Pending)).await;
    request_id(s, submit(new_request("PC1"), Decision::Pending)).await;
    let mut again = by_token.clone();
    again.csr_der = vec![0x30, 0x03, 0x02, 0x01, 0x02];
    let second = request_id(s, submit(again.clone(), Decision::Pending)).await;
    let got = s.requests_submitted_by("token:ab12").await.unwrap();
    assert_eq!(
        got.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![second, first]
    );
    assert_eq!(got[0].csr_der, again.csr_der);
    assert_eq!(got[1].csr_der, by_token.csr_der);
    assert!(
        s.requests_submitted_by("token:none")
            .await
            .unwrap()
            .is_empty()
    );
    // The trait's default (a filter over every request) agrees with the SQL query.
    let held = Held {
        inner: store.clone(),
        sizes: Default::default(),
        gate: Default::default(),
    };
    assert_eq!(
        held.requests_submitted_by("token:ab12")
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![second, first]
    );
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
            Change::BumpPolicy {
                audit: ev("policy.bump", "site"),
            },
            Change::RecordStatus {
                message: status_msg(10, "PC1", "renewal-failed"),
            },
            Change::RegisterClient {
                client: client_rec("PC1", 1, ClientStatus::Pending),
                audit: ev("client.register", "PC1"),
            },
            Change::CreateToken {
                token: enroll_token("tok", 1_800_000_000),
                audit: ev("token.create", "tok"),
            },
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
    assert_eq!(s.policy_version().await.unwrap(), 0);
    assert!(
        s.status_messages(&StatusFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.client("PC1").await.unwrap(), None);
    assert_eq!(s.token("tok").await.unwrap(), None);

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
    assert_eq!(assert_chain(s).await, 40 * 3 + 14);
    // One transaction with more entries than one multi-row insert holds (the store writes
    // them in chunks): the order and the chain survive the chunk boundaries.
    let many: Vec<Change> = (0..75)
        .map(|i| Change::Audit(ev("api.call", &format!("bulk {i}"))))
        .collect();
    s.apply(many).await.unwrap();
    let last = assert_chain(s).await;
    assert_eq!(last, 40 * 3 + 14 + 75);
    let bulk = s.audit_entries(40 * 3 + 14, i64::MAX).await.unwrap();
    let objects: Vec<String> = bulk.iter().map(|e| e.event.object.clone()).collect();
    let want: Vec<String> = (0..75).map(|i| format!("bulk {i}")).collect();
    assert_eq!(objects, want);
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
    // Every filter is also counted: `count_certificates` agrees with `certificates`.
    let serials = |filter: CertFilter| async move {
        let listed = s
            .certificates(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.serial)
            .collect::<Vec<_>>();
        assert_eq!(
            s.count_certificates(&filter).await.unwrap(),
            listed.len() as i64,
            "count_certificates({filter:?})"
        );
        listed
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
    // Not yet expired: notAfter at or after the time (a certificate is valid through notAfter).
    assert_eq!(
        serials(CertFilter {
            unexpired_at: Some(1_000),
            ..Default::default()
        })
        .await,
        ["02", "03", "01", "04"]
    );
    assert_eq!(
        serials(CertFilter {
            unexpired_at: Some(1_001),
            ..Default::default()
        })
        .await,
        ["03", "01", "04"]
    );
    // Expiring within a window, without those already expired.
    assert_eq!(
        serials(CertFilter {
            unexpired_at: Some(2_000),
            expiring_before: Some(4_000),
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

/// The counts behind `/metrics`: computed by the database, equal to the length of the listings.
async fn counts(s: Arc<dyn Store>) {
    let s = s.as_ref();
    assert_eq!(s.count_requests(None).await.unwrap(), 0);
    assert_eq!(
        s.count_requests(Some(RequestStatus::Pending))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.count_certificates(&CertFilter::default()).await.unwrap(),
        0
    );

    let mut pending = Vec::new();
    for pc in ["PC1", "PC2", "PC3", "PC4"] {
        pending.push(request_id(s, submit(new_request(pc), Decision::Pending)).await);
    }
    request_id(
        s,
        submit(
            new_request("PC5"),
            Decision::Issue(Box::new(cert("0f01", "Web", "PC5", 5_000))),
        ),
    )
    .await;
    apply1(
        s,
        Change::DecideRequest {
            id: pending[0],
            decided_by: "approver".into(),
            at: 1_700_000_500,
            decision: Decision::Deny("no".into()),
            audit: vec![ev("request.decide", &pending[0].to_string())],
        },
    )
    .await;
    apply1(s, put_cert(cert("0f02", "Role", "site", 9_000))).await;

    let by_status = [
        (None, 5),
        (Some(RequestStatus::Pending), 3),
        (Some(RequestStatus::Issued), 1),
        (Some(RequestStatus::Denied), 1),
    ];
    for (status, n) in by_status {
        assert_eq!(s.count_requests(status).await.unwrap(), n, "{status:?}");
        assert_eq!(s.requests(status).await.unwrap().len() as i64, n);
    }
    let expiring = CertFilter {
        expiring_before: Some(6_000),
        unexpired_at: Some(4_000),
        ..Default::default()
    };
    assert_eq!(s.count_certificates(&expiring).await.unwrap(), 1);
    assert_eq!(
        s.count_certificates(&CertFilter::default()).await.unwrap(),
        2
    );
    // A refused change leaves the counts alone.
    refused(
        s,
        vec![
            submit(new_request("PC6"), Decision::Pending),
            put_cert(cert("0f01", "Web", "PC6", 1)),
        ],
    )
    .await;
    assert_eq!(
        s.count_requests(Some(RequestStatus::Pending))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        s.count_certificates(&CertFilter::default()).await.unwrap(),
        2
    );
}

async fn group_commit_concurrent(s: Arc<dyn Store>) {
    const N: usize = 200;
    let committer = GroupCommitter::new(s.clone(), 64);
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let committer = committer.clone();
            tokio::spawn(async move {
                let serial = format!("{i:06x}");
                let change = issued(i, &serial);
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
    async fn count_certificates(&self, f: &CertFilter) -> Result<i64, StoreError> {
        self.inner.count_certificates(f).await
    }
    async fn count_requests(&self, st: Option<RequestStatus>) -> Result<i64, StoreError> {
        self.inner.count_requests(st).await
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
    async fn status_messages(&self, f: &StatusFilter) -> Result<Vec<StatusMessage>, StoreError> {
        self.inner.status_messages(f).await
    }
    async fn client(&self, n: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.inner.client(n).await
    }
    async fn client_by_identity(&self, h: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.inner.client_by_identity(h).await
    }
    async fn clients(&self, st: Option<ClientStatus>) -> Result<Vec<ClientRecord>, StoreError> {
        self.inner.clients(st).await
    }
    async fn token(&self, id: &str) -> Result<Option<EnrollToken>, StoreError> {
        self.inner.token(id).await
    }
    async fn scep_transaction(&self, k: &str, t: &str) -> Result<Option<i64>, StoreError> {
        self.inner.scep_transaction(k, t).await
    }
    async fn policy_version(&self) -> Result<i64, StoreError> {
        self.inner.policy_version().await
    }
    async fn acme_account(&self, id: &str) -> Result<Option<AcmeAccount>, StoreError> {
        self.inner.acme_account(id).await
    }
    async fn acme_account_by_thumbprint(&self, t: &str) -> Result<Option<AcmeAccount>, StoreError> {
        self.inner.acme_account_by_thumbprint(t).await
    }
    async fn acme_eab_key(&self, kid: &str) -> Result<Option<EabKey>, StoreError> {
        self.inner.acme_eab_key(kid).await
    }
    async fn acme_order(&self, id: &str) -> Result<Option<AcmeOrder>, StoreError> {
        self.inner.acme_order(id).await
    }
    async fn acme_order_by_serial(&self, serial: &str) -> Result<Option<AcmeOrder>, StoreError> {
        self.inner.acme_order_by_serial(serial).await
    }
    async fn acme_orders_of(&self, a: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        self.inner.acme_orders_of(a, limit).await
    }
    async fn acme_authz(&self, id: &str) -> Result<Option<AcmeAuthz>, StoreError> {
        self.inner.acme_authz(id).await
    }
    async fn acme_valid_authz(
        &self,
        a: &str,
        i: &str,
        w: bool,
        at: i64,
    ) -> Result<Option<AcmeAuthz>, StoreError> {
        self.inner.acme_valid_authz(a, i, w, at).await
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

// ---- site roles -------------------------------------------------------------------------------

async fn status_messages(s: Arc<dyn Store>) {
    let s = s.as_ref();
    assert!(
        s.status_messages(&StatusFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let before = s.fingerprint().await.unwrap();
    let out = s
        .apply(vec![
            Change::RecordStatus {
                message: status_msg(100, "PC1", "renewal-failed"),
            },
            Change::RecordStatus {
                message: status_msg(200, "", "cert-selection-failed"),
            },
        ])
        .await
        .unwrap();
    assert_eq!(out, [Applied::Done, Applied::Done]);
    // Telemetry: stored (and part of the fingerprint), but not audited and not policy.
    assert_eq!(s.audit_head().await.unwrap(), None);
    assert_eq!(s.policy_version().await.unwrap(), 0);
    assert_ne!(s.fingerprint().await.unwrap(), before);
    let got = s.status_messages(&StatusFilter::default()).await.unwrap();
    assert_eq!(got.len(), 2);
    let m = status_msg(200, "", "cert-selection-failed");
    assert_eq!(
        got[0],
        StatusMessage {
            id: got[0].id,
            received_at: m.received_at,
            source: m.source,
            client: m.client,
            kind: m.kind,
            body: m.body,
        }
    );
    assert_eq!((got[1].received_at, got[1].client.as_str()), (100, "PC1"));
    assert!(got[1].id < got[0].id, "ids are assigned in order");

    // Kept as received: a large body, non-ASCII text, quotes and backslashes.
    let big = NewStatusMessage {
        body: format!(
            r#"{{"note":"Zürich ✓ \"q\" \\","pad":"{}"}}"#,
            "x".repeat(60_000)
        ),
        ..status_msg(300, "PC2", "renewal-failed")
    };
    apply1(
        s,
        Change::RecordStatus {
            message: big.clone(),
        },
    )
    .await;
    let latest = s
        .status_messages(&StatusFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].body, big.body);

    // NUL, which PostgreSQL text cannot hold, becomes U+FFFD on both backends.
    apply1(
        s,
        Change::RecordStatus {
            message: NewStatusMessage {
                received_at: 400,
                source: "192.0.2.8:1\0".into(),
                client: "P\0C".into(),
                kind: "k\0".into(),
                body: "{\"a\":\"\0\"}".into(),
            },
        },
    )
    .await;
    let latest = s
        .status_messages(&StatusFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let l = &latest[0];
    assert_eq!(
        (
            l.source.as_str(),
            l.client.as_str(),
            l.kind.as_str(),
            l.body.as_str()
        ),
        (
            "192.0.2.8:1\u{fffd}",
            "P\u{fffd}C",
            "k\u{fffd}",
            "{\"a\":\"\u{fffd}\"}"
        )
    );
    assert_eq!(s.audit_head().await.unwrap(), None);
}

async fn status_filters(s: Arc<dyn Store>) {
    let s = s.as_ref();
    // Inserted out of time order; two share a time (the later id is newer).
    let msgs = [
        (300, "PC1", "renewal-failed"),
        (100, "PC1", "cert-selection-failed"),
        (200, "PC2", "renewal-failed"),
        (300, "PC2", "policy-signature-invalid"),
        (50, "", "renewal-failed"),
    ];
    s.apply(
        msgs.iter()
            .map(|(at, c, k)| Change::RecordStatus {
                message: status_msg(*at, c, k),
            })
            .collect(),
    )
    .await
    .unwrap();
    let pick = |idx: &[usize]| -> Vec<(i64, String, String)> {
        idx.iter()
            .map(|&i| (msgs[i].0, msgs[i].1.to_string(), msgs[i].2.to_string()))
            .collect()
    };
    let list = |f: StatusFilter| async move {
        s.status_messages(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.received_at, m.client, m.kind))
            .collect::<Vec<_>>()
    };
    let all = StatusFilter::default();
    assert_eq!(
        list(all.clone()).await,
        pick(&[3, 0, 2, 1, 4]),
        "newest first"
    );
    let client = |c: &str| StatusFilter {
        client: Some(c.into()),
        ..Default::default()
    };
    assert_eq!(list(client("PC1")).await, pick(&[0, 1]));
    assert_eq!(list(client("")).await, pick(&[4]), "no claimed name");
    assert!(list(client("pc1")).await.is_empty(), "names are exact");
    let kind = StatusFilter {
        kind: Some("renewal-failed".into()),
        ..Default::default()
    };
    assert_eq!(list(kind.clone()).await, pick(&[0, 2, 4]));
    let since = |t: i64| StatusFilter {
        since: Some(t),
        ..Default::default()
    };
    assert_eq!(
        list(since(200)).await,
        pick(&[3, 0, 2]),
        "since is inclusive"
    );
    assert!(list(since(301)).await.is_empty());
    assert_eq!(
        list(StatusFilter {
            client: Some("PC2".into()),
            ..kind.clone()
        })
        .await,
        pick(&[2])
    );
    assert_eq!(
        list(StatusFilter {
            since: Some(101),
            ..client("PC1")
        })
        .await,
        pick(&[0])
    );
    assert_eq!(
        list(StatusFilter {
            limit: 2,
            ..all.clone()
        })
        .await,
        pick(&[3, 0])
    );
    assert_eq!(
        list(StatusFilter {
            limit: 2,
            ..kind.clone()
        })
        .await,
        pick(&[0, 2])
    );
    for limit in [0, -1, i64::MIN] {
        assert!(
            list(StatusFilter {
                limit,
                ..all.clone()
            })
            .await
            .is_empty(),
            "limit {limit}"
        );
    }
    // The default page is bounded.
    s.apply(
        (0..StatusFilter::DEFAULT_LIMIT + 5)
            .map(|i| Change::RecordStatus {
                message: status_msg(1_000 + i, "PC9", "renewal-failed"),
            })
            .collect(),
    )
    .await
    .unwrap();
    let page = s.status_messages(&all).await.unwrap();
    assert_eq!(page.len() as i64, StatusFilter::DEFAULT_LIMIT);
    assert_eq!(page[0].received_at, 1_000 + StatusFilter::DEFAULT_LIMIT + 4);
    assert_eq!(
        s.status_messages(&StatusFilter {
            limit: i64::MAX,
            ..all
        })
        .await
        .unwrap()
        .len() as i64,
        StatusFilter::DEFAULT_LIMIT + 10
    );
}

fn register(c: &ClientRecord) -> Change {
    Change::RegisterClient {
        client: c.clone(),
        audit: ev("client.register", &c.name),
    }
}

fn decide(name: &str, status: ClientStatus, at: i64) -> Change {
    Change::DecideClient {
        name: name.into(),
        status,
        by: "admin".into(),
        at,
        audit: ev("client.decide", name),
    }
}

async fn clients(s: Arc<dyn Store>) {
    let s = s.as_ref();
    assert_eq!(s.client("PC1").await.unwrap(), None);
    assert!(s.clients(None).await.unwrap().is_empty());
    let pc1 = client_rec("PC1", 1, ClientStatus::Pending);
    assert_eq!(apply1(s, register(&pc1)).await, Applied::Done);
    assert_eq!(s.client("PC1").await.unwrap(), Some(pc1.clone()));
    assert_eq!(
        s.client_by_identity(&digest(1)).await.unwrap(),
        Some(pc1.clone())
    );
    assert_eq!(assert_chain(s).await, 1);

    // Registering again with the same identity changes nothing, not even the status the
    // request asks for, and writes no audit entry.
    let fp = s.fingerprint().await.unwrap();
    let again = ClientRecord {
        status: ClientStatus::Approved,
        registered_at: 1_800_000_000,
        decided_at: Some(1),
        decided_by: Some("mallory".into()),
        ..pc1.clone()
    };
    assert_eq!(apply1(s, register(&again)).await, Applied::Done);
    assert_eq!(s.fingerprint().await.unwrap(), fp);
    assert_eq!(s.client("PC1").await.unwrap(), Some(pc1.clone()));

    // The name with another identity, or the identity under another name: refused.
    let e = refused(
        s,
        vec![register(&client_rec("PC1", 2, ClientStatus::Pending))],
    )
    .await;
    assert_conflict_why(e, "client", "PC1", "different identity");
    let e = refused(
        s,
        vec![register(&client_rec("PC2", 1, ClientStatus::Pending))],
    )
    .await;
    assert_conflict_why(e, "client", "PC2", "`PC1`");

    // An automatic approval (enhanced HTTP) is stored as given.
    let pc2 = client_rec("PC2", 2, ClientStatus::Approved);
    let pc3 = client_rec("pc3", 3, ClientStatus::Pending);
    assert_eq!(
        s.apply(vec![register(&pc3), register(&pc2)]).await.unwrap(),
        [Applied::Done, Applied::Done]
    );
    let names = |v: Vec<ClientRecord>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.clients(None).await.unwrap()),
        ["PC1", "PC2", "pc3"],
        "by name, byte-wise"
    );
    assert_eq!(
        names(s.clients(Some(ClientStatus::Pending)).await.unwrap()),
        ["PC1", "pc3"]
    );
    assert_eq!(
        s.clients(Some(ClientStatus::Approved)).await.unwrap(),
        std::slice::from_ref(&pc2)
    );
    assert!(
        s.clients(Some(ClientStatus::Blocked))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.client_by_identity(&digest(2)).await.unwrap(), Some(pc2));
    assert_eq!(s.client_by_identity(&digest(9)).await.unwrap(), None);
    assert_eq!(s.client("pc1").await.unwrap(), None, "names are exact");
    assert_eq!(assert_chain(s).await, 3);
}

async fn client_decisions(s: Arc<dyn Store>) {
    let s = s.as_ref();
    let pc1 = client_rec("PC1", 1, ClientStatus::Pending);
    apply1(s, register(&pc1)).await;
    let status = |name: &'static str| async move {
        let c = s.client(name).await.unwrap().expect("registered");
        (c.status, c.decided_at, c.decided_by)
    };
    assert_eq!(
        apply1(s, decide("PC1", ClientStatus::Approved, 1_700_000_500)).await,
        Applied::Done
    );
    assert_eq!(
        status("PC1").await,
        (
            ClientStatus::Approved,
            Some(1_700_000_500),
            Some("admin".into())
        )
    );
    apply1(s, decide("PC1", ClientStatus::Blocked, 1_700_000_600)).await;
    assert_eq!(
        status("PC1").await,
        (
            ClientStatus::Blocked,
            Some(1_700_000_600),
            Some("admin".into())
        )
    );
    assert_eq!(
        s.clients(Some(ClientStatus::Blocked)).await.unwrap().len(),
        1
    );
    // A blocked client that registers again stays blocked.
    apply1(s, register(&pc1)).await;
    assert_eq!(status("PC1").await.0, ClientStatus::Blocked);
    // Unblocking is a decision like any other.
    apply1(s, decide("PC1", ClientStatus::Approved, 1_700_000_700)).await;
    let c = s.client("PC1").await.unwrap().unwrap();
    assert_eq!(
        c,
        ClientRecord {
            status: ClientStatus::Approved,
            decided_at: Some(1_700_000_700),
            decided_by: Some("admin".into()),
            ..pc1.clone()
        },
        "a decision touches only the status and who decided when"
    );

    let e = refused(s, vec![decide("PCX", ClientStatus::Approved, 1)]).await;
    assert_not_found(e, "client", "PCX");
    let e = refused(s, vec![decide("PC1", ClientStatus::Pending, 1)]).await;
    assert_conflict_why(e, "client", "PC1", "pending");
    assert_eq!(assert_chain(s).await, 4);
}

fn acme_account(id: &str, thumbprint: &str, eab: Option<&str>) -> AcmeAccount {
    AcmeAccount {
        id: id.into(),
        jwk: format!("{{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"{thumbprint}\"}}"),
        thumbprint: thumbprint.into(),
        status: AccountStatus::Valid,
        contact: vec!["mailto:ops@fleet.test".into()],
        principal: eab.map(|_| "PC1".to_string()),
        eab_kid: eab.map(str::to_string),
        created_at: 1_700_000_000,
    }
}

fn acme_authz(id: &str, account: &str, name: &str, status: AuthzStatus, expires: i64) -> AcmeAuthz {
    AcmeAuthz {
        id: id.into(),
        account: account.into(),
        identifier: name.into(),
        wildcard: false,
        status,
        expires,
        challenges: vec![AcmeChallenge {
            kind: "http-01".into(),
            token: format!("tok-{id}"),
            status: ChallengeStatus::Pending,
            validated: None,
            error: None,
        }],
    }
}

/// ACME accounts (one per key, one per EAB key), key change, orders and authorizations with
/// their lookups.
async fn acme_state(s: Arc<dyn Store>) {
    let s = s.as_ref();
    let eab = EabKey {
        kid: "kid1".into(),
        principal: "PC1".into(),
        hmac_key: vec![7; 32],
        created_at: 1_700_000_000,
        created_by: "cli".into(),
    };
    apply1(
        s,
        Change::AcmeCreateEab {
            key: eab.clone(),
            audit: ev("acme.eab", "kid1"),
        },
    )
    .await;
    assert_eq!(s.acme_eab_key("kid1").await.unwrap(), Some(eab.clone()));
    let e = refused(
        s,
        vec![Change::AcmeCreateEab {
            key: eab,
            audit: ev("acme.eab", "kid1"),
        }],
    )
    .await;
    assert_conflict(e, "acme eab key", "kid1");

    let a1 = acme_account("a1", "tp1", Some("kid1"));
    apply1(
        s,
        Change::AcmeNewAccount {
            account: a1.clone(),
            audit: ev("acme.account", "a1"),
        },
    )
    .await;
    assert_eq!(s.acme_account("a1").await.unwrap(), Some(a1.clone()));
    assert_eq!(
        s.acme_account_by_thumbprint("tp1").await.unwrap(),
        Some(a1.clone())
    );
    for (account, what, key) in [
        (acme_account("a2", "tp1", None), "acme account", "a2"),
        (
            acme_account("a2", "tp2", Some("kid1")),
            "acme eab key",
            "kid1",
        ),
    ] {
        let e = refused(
            s,
            vec![Change::AcmeNewAccount {
                account,
                audit: ev("acme.account", "a2"),
            }],
        )
        .await;
        assert_conflict(e, what, key);
    }
    let e = refused(
        s,
        vec![Change::AcmeNewAccount {
            account: acme_account("a2", "tp2", Some("nokid")),
            audit: ev("acme.account", "a2"),
        }],
    )
    .await;
    assert_not_found(e, "acme eab key", "nokid");
    let a2 = acme_account("a2", "tp2", None);
    apply1(
        s,
        Change::AcmeNewAccount {
            account: a2.clone(),
            audit: ev("acme.account", "a2"),
        },
    )
    .await;
    // Key change: to a key of its own, never to another account's.
    let e = refused(
        s,
        vec![Change::AcmeUpdateAccount {
            account: AcmeAccount {
                thumbprint: "tp2".into(),
                ..a1.clone()
            },
            audit: ev("acme.key-change", "a1"),
        }],
    )
    .await;
    assert_conflict(e, "acme account", "a1");
    let moved = AcmeAccount {
        thumbprint: "tp3".into(),
        jwk: "{}".into(),
        status: AccountStatus::Deactivated,
        ..a1.clone()
    };
    apply1(
        s,
        Change::AcmeUpdateAccount {
            account: moved.clone(),
            audit: ev("acme.key-change", "a1"),
        },
    )
    .await;
    assert_eq!(s.acme_account_by_thumbprint("tp1").await.unwrap(), None);
    assert_eq!(
        s.acme_account_by_thumbprint("tp3").await.unwrap(),
        Some(moved)
    );

    let at = 1_700_000_000;
    let z1 = acme_authz("z1", "a2", "h1.fleet.test", AuthzStatus::Pending, at + 100);
    let mut order = AcmeOrder {
        id: "o1".into(),
        account: "a2".into(),
        status: OrderStatus::Pending,
        expires: at + 100,
        identifiers: vec!["h1.fleet.test".into()],
        authorizations: vec!["z1".into()],
        request_id: None,
        serial: None,
        error: None,
        created_at: at,
    };
    apply1(
        s,
        Change::AcmePutOrder {
            order: order.clone(),
            authorizations: vec![z1.clone()],
            only_if: None,
        },
    )
    .await;
    assert_eq!(s.acme_order("o1").await.unwrap(), Some(order.clone()));
    assert_eq!(s.acme_authz("z1").await.unwrap(), Some(z1.clone()));
    assert_eq!(
        s.acme_valid_authz("a2", "h1.fleet.test", false, at)
            .await
            .unwrap(),
        None
    );
    let valid = AcmeAuthz {
        status: AuthzStatus::Valid,
        ..z1
    };
    apply1(
        s,
        Change::AcmePutAuthz {
            authz: valid.clone(),
        },
    )
    .await;
    assert_eq!(
        s.acme_valid_authz("a2", "h1.fleet.test", false, at)
            .await
            .unwrap(),
        Some(valid.clone())
    );
    // Not another account's, not a wildcard's, not once expired.
    assert_eq!(
        s.acme_valid_authz("a1", "h1.fleet.test", false, at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.acme_valid_authz("a2", "h1.fleet.test", true, at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.acme_valid_authz("a2", "h1.fleet.test", false, at + 100)
            .await
            .unwrap(),
        None
    );
    order.status = OrderStatus::Valid;
    order.serial = Some("0a".into());
    // Only from the status the caller saw: a pending order is not finalized.
    let e = refused(
        s,
        vec![Change::AcmePutOrder {
            order: order.clone(),
            authorizations: vec![],
            only_if: Some(OrderStatus::Ready),
        }],
    )
    .await;
    assert_conflict(e, "acme order", "o1");
    apply1(
        s,
        Change::AcmePutOrder {
            order: order.clone(),
            authorizations: vec![],
            only_if: Some(OrderStatus::Pending),
        },
    )
    .await;
    assert_eq!(
        s.acme_order_by_serial("0a").await.unwrap(),
        Some(order.clone())
    );
    assert_eq!(
        s.acme_orders_of("a2", 10).await.unwrap(),
        vec!["o1".to_string()]
    );
    // Finalized already: a second finalization is refused, the stored order unchanged.
    let again = AcmeOrder {
        serial: Some("0b".into()),
        ..order.clone()
    };
    let e = refused(
        s,
        vec![Change::AcmePutOrder {
            order: again,
            authorizations: vec![],
            only_if: Some(OrderStatus::Pending),
        }],
    )
    .await;
    assert_conflict(e, "acme order", "o1");
    assert_eq!(s.acme_order("o1").await.unwrap(), Some(order.clone()));
    // An order of no account is not stored.
    let e = refused(
        s,
        vec![Change::AcmePutOrder {
            order: AcmeOrder {
                id: "o2".into(),
                account: "nobody".into(),
                ..order
            },
            authorizations: vec![],
            only_if: None,
        }],
    )
    .await;
    assert_not_found(e, "acme account", "nobody");
    assert_eq!(s.acme_order("o2").await.unwrap(), None);
    let e = refused(
        s,
        vec![Change::AcmePutAuthz {
            authz: acme_authz("z2", "nobody", "h2.fleet.test", AuthzStatus::Pending, at),
        }],
    )
    .await;
    assert_not_found(e, "acme account", "nobody");
    assert_chain(s).await;
}

async fn enroll_tokens(s: Arc<dyn Store>) {
    let s = s.as_ref();
    assert_eq!(s.token("t1").await.unwrap(), None);
    let expires = 1_700_100_000;
    let t1 = enroll_token("t1", expires);
    let t2 = EnrollToken {
        template: None,
        ..enroll_token("t2", expires)
    };
    let t3 = EnrollToken {
        secret_sha256: "ab".repeat(32),
        ..enroll_token("t3", expires)
    };
    for t in [&t1, &t2, &t3] {
        let change = Change::CreateToken {
            token: t.clone(),
            audit: ev("token.create", &t.id),
        };
        assert_eq!(apply1(s, change).await, Applied::Done);
        assert_eq!(s.token(&t.id).await.unwrap().as_ref(), Some(t));
    }
    let e = refused(
        s,
        vec![Change::CreateToken {
            token: enroll_token("t1", 1),
            audit: ev("token.create", "t1"),
        }],
    )
    .await;
    assert_conflict_why(e, "enrollment token", "t1", "already exists");

    let at = 1_700_000_100;
    let e = refused(s, vec![consume("nope", &secret_of("nope"), at)]).await;
    assert_not_found(e, "enrollment token", "nope");
    let e = refused(s, vec![consume("t1", &secret_of("t2"), at)]).await;
    assert_conflict_why(e, "enrollment token", "t1", "secret does not match");
    let e = refused(s, vec![consume("t1", "", at)]).await;
    assert_conflict_why(e, "enrollment token", "t1", "secret does not match");
    // Usable strictly before its expiry.
    for late in [expires, expires + 1, i64::MAX] {
        let e = refused(s, vec![consume("t1", &secret_of("t1"), late)]).await;
        assert_conflict_why(e, "enrollment token", "t1", "expired");
    }
    assert_eq!(s.token("t1").await.unwrap(), Some(t1.clone()));

    assert_eq!(
        apply1(s, consume("t1", &secret_of("t1"), expires - 1)).await,
        Applied::Done
    );
    assert_eq!(
        s.token("t1").await.unwrap(),
        Some(EnrollToken {
            used_at: Some(expires - 1),
            ..t1.clone()
        })
    );
    let e = refused(s, vec![consume("t1", &secret_of("t1"), expires - 1)]).await;
    assert_conflict_why(e, "enrollment token", "t1", "already used");
    // Used and expired: still "already used".
    let e = refused(s, vec![consume("t1", &secret_of("t1"), expires + 5)]).await;
    assert_conflict_why(e, "enrollment token", "t1", "already used");
    // Without the secret, nothing about the token's state is revealed.
    let e = refused(s, vec![consume("t1", &secret_of("t2"), at)]).await;
    assert_conflict_why(e, "enrollment token", "t1", "secret does not match");

    // The hex digest compares case-insensitively.
    apply1(s, consume("t3", &"AB".repeat(32), at)).await;
    assert_eq!(s.token("t3").await.unwrap().unwrap().used_at, Some(at));
    // Tokens are independent.
    assert_eq!(s.token("t2").await.unwrap(), Some(t2));
    assert_eq!(assert_chain(s).await, 5);
}

async fn token_authorises_issuance(s: Arc<dyn Store>) {
    let s = s.as_ref();
    for t in [
        enroll_token("t1", 1_800_000_000),
        enroll_token("t2", 1_800_000_000),
        enroll_token("old", 1_700_000_050),
    ] {
        let audit = ev("token.create", &t.id);
        apply1(s, Change::CreateToken { token: t, audit }).await;
    }
    let issue = |serial: &str| {
        submit(
            new_request("PC1"),
            Decision::Issue(Box::new(cert(serial, "Web", "PC1", 1_800_000_000))),
        )
    };
    let at = 1_700_000_100;
    let head = s.audit_head().await.unwrap();

    // A bad token refuses the issuance it was to authorise: nothing of the batch is stored.
    let e = refused(s, vec![issue("0a01"), consume("t1", &secret_of("old"), at)]).await;
    assert_conflict_why(e, "enrollment token", "t1", "secret does not match");
    let e = refused(
        s,
        vec![issue("0a01"), consume("old", &secret_of("old"), at)],
    )
    .await;
    assert_conflict_why(e, "enrollment token", "old", "expired");
    let e = refused(
        s,
        vec![issue("0a01"), consume("nope", &secret_of("nope"), at)],
    )
    .await;
    assert_not_found(e, "enrollment token", "nope");
    assert!(s.requests(None).await.unwrap().is_empty());
    assert_eq!(s.certificate("0a01").await.unwrap(), None);
    assert_eq!(s.audit_head().await.unwrap(), head);

    // A good one: issued and used up together.
    let out = s
        .apply(vec![issue("0a01"), consume("t1", &secret_of("t1"), at)])
        .await
        .unwrap();
    let Applied::Request { id } = out[0] else {
        panic!("expected a request id, got {:?}", out[0])
    };
    assert_eq!(out[1], Applied::Done);
    assert_eq!(
        s.request(id).await.unwrap().unwrap().serial.as_deref(),
        Some("0a01")
    );
    assert_eq!(s.token("t1").await.unwrap().unwrap().used_at, Some(at));

    // The same token again: refused, and no second request.
    let e = refused(
        s,
        vec![issue("0a02"), consume("t1", &secret_of("t1"), at + 1)],
    )
    .await;
    assert_conflict_why(e, "enrollment token", "t1", "already used");
    assert_eq!(s.requests(None).await.unwrap().len(), 1);

    // A failed issuance leaves the token unused, whatever the order in the batch.
    let e = refused(s, vec![consume("t2", &secret_of("t2"), at), issue("0a01")]).await;
    assert_conflict(e, "certificate", "0a01");
    assert_eq!(s.token("t2").await.unwrap().unwrap().used_at, None);
    assert_eq!(assert_chain(s).await, 3 + 2, "three tokens, one issuance");
}

async fn scep_transactions(s: Arc<dyn Store>) {
    let s = s.as_ref();
    let rec = |key: &str, tid: &str, id: Option<i64>| Change::RecordScepTransaction {
        key_sha256: key.into(),
        transaction_id: tid.into(),
        request_id: id,
        at: 1_700_000_000,
        replace: false,
    };
    // Recorded with the request the same batch submits.
    let out = s
        .apply(vec![
            submit(new_request("PC1"), Decision::Pending),
            rec("k1", "t1", None),
        ])
        .await
        .unwrap();
    let Applied::Request { id } = out[0] else {
        panic!("expected a request id, got {:?}", out[0])
    };
    assert_eq!(s.scep_transaction("k1", "t1").await.unwrap(), Some(id));
    // Another key with the same transaction ID is another transaction.
    assert_eq!(s.scep_transaction("k2", "t1").await.unwrap(), None);
    let head = s.audit_head().await.unwrap();
    // The same pair twice: refused with the request it came with.
    let e = refused(
        s,
        vec![
            submit(new_request("PC1"), Decision::Pending),
            rec("k1", "t1", None),
        ],
    )
    .await;
    assert_conflict(e, "SCEP transaction", "t1");
    // No request in the batch, or an unknown one: NotFound.
    let e = refused(s, vec![rec("k3", "t3", None)]).await;
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
    let e = refused(s, vec![rec("k3", "t3", Some(id + 100))]).await;
    assert_not_found(e, "request", &(id + 100).to_string());
    assert_eq!(s.requests(None).await.unwrap().len(), 1);
    assert_eq!(s.audit_head().await.unwrap(), head);
    assert_eq!(s.scep_transaction("k3", "t3").await.unwrap(), None);
    // A renewal replaces the pair's request.
    let out = s
        .apply(vec![
            submit(new_request("PC1"), Decision::Pending),
            Change::RecordScepTransaction {
                key_sha256: "k1".into(),
                transaction_id: "t1".into(),
                request_id: None,
                at: 1_700_000_001,
                replace: true,
            },
        ])
        .await
        .unwrap();
    let Applied::Request { id: renewed } = out[0] else {
        panic!("expected a request id, got {:?}", out[0])
    };
    assert_ne!(renewed, id);
    assert_eq!(s.scep_transaction("k1", "t1").await.unwrap(), Some(renewed));
}

async fn token_used_once_under_concurrency(s: Arc<dyn Store>) {
    const N: usize = 8;
    for id in ["direct", "grouped"] {
        let audit = ev("token.create", id);
        let token = enroll_token(id, 1_800_000_000);
        apply1(s.as_ref(), Change::CreateToken { token, audit }).await;
    }
    let batch = |id: &str, i: usize| {
        vec![
            submit(
                new_request(&format!("PC{i}")),
                Decision::Issue(Box::new(cert(
                    &format!("{id}{i:02x}"),
                    "Web",
                    "PC1",
                    1_800_000_000,
                ))),
            ),
            consume(id, &secret_of(id), 1_700_000_100 + i as i64),
        ]
    };
    // Straight to the store, and through the group committer (whose failed batch is retried
    // caller by caller): either way exactly one caller gets the token.
    let committer = GroupCommitter::new(s.clone(), 64);
    for id in ["direct", "grouped"] {
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let (s, committer, changes) = (s.clone(), committer.clone(), batch(id, i));
                tokio::spawn(async move {
                    if id == "direct" {
                        s.apply(changes).await
                    } else {
                        committer.apply(changes).await
                    }
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(out) => {
                    assert!(matches!(out[0], Applied::Request { .. }));
                    won += 1;
                }
                Err(e) => assert_conflict_why(e, "enrollment token", id, "already used"),
            }
        }
        assert_eq!(won, 1, "{id}: exactly one issuance uses the token");
        assert!(s.token(id).await.unwrap().unwrap().used_at.is_some());
    }
    assert_eq!(s.requests(None).await.unwrap().len(), 2);
    assert_eq!(assert_chain(s.as_ref()).await, 2 + 2 * 2);
}

async fn policy_version(s: Arc<dyn Store>) {
    let s = s.as_ref();
    let version = || async { s.policy_version().await.unwrap() };
    let put_template = |name: &str| Change::PutTemplate {
        template: template(name),
        audit: ev("template.set", name),
    };
    let bump = || Change::BumpPolicy {
        audit: ev("policy.bump", "site"),
    };
    assert_eq!(version().await, 0);
    apply1(s, put_template("Web")).await;
    assert_eq!(version().await, 1);
    apply1(s, put_template("Web")).await;
    assert_eq!(
        version().await,
        2,
        "every put counts, even an identical one"
    );
    assert_eq!(apply1(s, bump()).await, Applied::Done);
    assert_eq!(version().await, 3);
    s.apply(vec![put_template("Work"), bump(), put_template("Web")])
        .await
        .unwrap();
    assert_eq!(version().await, 6);
    assert_eq!(assert_chain(s).await, 6, "a bump is audited");

    // Nothing else moves it.
    apply1(
        s,
        Change::CreateToken {
            token: enroll_token("t1", 1_800_000_000),
            audit: ev("token.create", "t1"),
        },
    )
    .await;
    // The directory shapes policy: a principal's entry and its groups move the version.
    apply1(
        s,
        Change::PutPrincipal {
            principal: principal("PC1"),
            audit: ev("principal.add", "PC1"),
        },
    )
    .await;
    assert_eq!(version().await, 7);
    let others = vec![Change::PutGroup {
        group: Group { name: "G".into() },
        audit: ev("group.add", "G"),
    }];
    for change in others {
        apply1(s, change).await;
        assert_eq!(version().await, 7, "an empty group moves nothing");
    }
    apply1(
        s,
        Change::AddMember {
            group: "G".into(),
            principal: "PC1".into(),
            audit: ev("group.add-member", "G"),
        },
    )
    .await;
    assert_eq!(version().await, 8);
    let others = vec![
        submit(
            new_request("PC1"),
            Decision::Issue(Box::new(cert("01", "Web", "PC1", 1_800_000_000))),
        ),
        submit(new_request("PC1"), Decision::Pending),
        Change::DecideRequest {
            id: 2,
            decided_by: "admin".into(),
            at: 1_700_000_200,
            decision: Decision::Deny("no".into()),
            audit: vec![ev("request.deny", "2")],
        },
        put_cert(cert("02", "Web", "PC1", 1_800_000_000)),
        Change::Revoke {
            serial: "02".into(),
            revocation: Revocation {
                at: 1_700_000_300,
                reason: RevocationReason::Superseded,
            },
            audit: ev("cert.revoke", "02"),
        },
        Change::PublishCrl {
            crl: crl("issuing", 1, None),
            audit: ev("crl.publish", "1"),
        },
        Change::Audit(ev("key.use", "issuing")),
        Change::RecordStatus {
            message: status_msg(1, "PC1", "renewal-failed"),
        },
        register(&client_rec("PC1", 1, ClientStatus::Pending)),
        decide("PC1", ClientStatus::Approved, 1_700_000_400),
        consume("t1", &secret_of("t1"), 1_700_000_500),
    ];
    for change in others {
        let what = format!("{change:?}");
        apply1(s, change).await;
        assert_eq!(version().await, 8, "moved by {what}");
    }

    // A refused batch moves nothing.
    let e = refused(
        s,
        vec![
            put_template("Other"),
            bump(),
            put_cert(cert("01", "Web", "PC1", 1)),
        ],
    )
    .await;
    assert_conflict(e, "certificate", "01");
    assert_eq!(version().await, 8);
    apply1(s, bump()).await;
    assert_eq!(version().await, 9);
}

async fn site_state_shared(a: Arc<dyn Store>, url: String) {
    let b = fleetpki_store::open(&url)
        .await
        .expect("open the same database again");
    let pc1 = client_rec("PC1", 1, ClientStatus::Pending);
    a.apply(vec![
        Change::RecordStatus {
            message: status_msg(1, "PC1", "renewal-failed"),
        },
        register(&pc1),
        Change::CreateToken {
            token: enroll_token("t1", 1_800_000_000),
            audit: ev("token.create", "t1"),
        },
    ])
    .await
    .unwrap();
    assert_eq!(b.client("PC1").await.unwrap(), Some(pc1));
    assert_eq!(
        b.status_messages(&StatusFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    // What one process created, another uses up, and the first sees it used.
    apply1(b.as_ref(), consume("t1", &secret_of("t1"), 1_700_000_100)).await;
    assert_eq!(
        a.token("t1").await.unwrap().unwrap().used_at,
        Some(1_700_000_100)
    );
    let e = refused(
        a.as_ref(),
        vec![consume("t1", &secret_of("t1"), 1_700_000_101)],
    )
    .await;
    assert_conflict_why(e, "enrollment token", "t1", "already used");

    // Concurrent bumps from both processes: none is lost.
    const PER_STORE: usize = 20;
    let mut tasks = Vec::new();
    for store in [a.clone(), b.clone()] {
        for _ in 0..PER_STORE {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .apply(vec![Change::BumpPolicy {
                        audit: ev("policy.bump", "site"),
                    }])
                    .await
            }));
        }
    }
    for t in tasks {
        t.await.expect("task").expect("bump");
    }
    assert_eq!(a.policy_version().await.unwrap(), 2 * PER_STORE as i64);
    assert_eq!(b.policy_version().await.unwrap(), 2 * PER_STORE as i64);
    assert_eq!(
        a.fingerprint().await.unwrap(),
        b.fingerprint().await.unwrap()
    );
    assert_eq!(assert_chain(a.as_ref()).await, 3 + 2 * PER_STORE as i64);
}

// ---- SQLite only ----------------------------------------------------------------------------

/// Commits leave their pages in the WAL (no checkpoint inside a commit); the store's own
/// checkpointer copies them into the database file shortly after, while the store is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_checkpoints_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.db");
    let s = fleetpki_store::SqliteStore::open(&path).await.unwrap();
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let changes: Vec<Change> = (0..400)
        .map(|i| Change::Audit(ev("key.use", &format!("{i:0200}"))))
        .collect();
    s.apply(changes).await.unwrap();
    // A deadline for the checkpointer to have run at all (it waits 100 ms after a commit),
    // not a measurement.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while size() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file is still {before} bytes: no checkpoint ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(s.audit_entries(0, 1000).await.unwrap().len(), 400);
    assert_chain(&s).await;
}

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

/// A database made before the site-role tables (only migration 0001) keeps its data when the
/// store opens it and applies 0002; the policy version starts at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upgrades_from_0001() {
    let dir = tempfile::tempdir().unwrap();
    let only_0001 = dir.path().join("migrations");
    std::fs::create_dir(&only_0001).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/migrations/sqlite/0001_initial.sql"
        ),
        only_0001.join("0001_initial.sql"),
    )
    .unwrap();
    let path = dir.path().join("old.db");
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::migrate::Migrator::new(only_0001.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO groups (name) VALUES ('G')")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let s = fleetpki_store::SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        s.group("G").await.unwrap(),
        Some(Group { name: "G".into() })
    );
    assert_eq!(s.policy_version().await.unwrap(), 0);
    assert!(s.clients(None).await.unwrap().is_empty());
    s.apply(vec![
        Change::BumpPolicy {
            audit: ev("policy.bump", "site"),
        },
        register(&client_rec("PC1", 1, ClientStatus::Pending)),
    ])
    .await
    .unwrap();
    assert_eq!(s.policy_version().await.unwrap(), 1);
    assert_eq!(assert_chain(&s).await, 2);
}
