//! A measurement, not a check: issuances (a request, its certificate and three audit entries,
//! as an enrollment commits them) per second with one transaction per issuance versus
//! [`GroupCommitter`] with 64 concurrent callers, on SQLite (and on PostgreSQL if
//! `FLEETPKI_BENCH_POSTGRES_URL` names a scratch database it may fill). Run with
//! `cargo test -p fleetpki-store --test throughput -- --ignored --nocapture`.

use fleetpki_model::audit::{AuditEvent, Outcome};
use fleetpki_model::record::{CertificateRecord, NewRequest};
use fleetpki_model::template::Version;
use fleetpki_store::{Change, Decision, GroupCommitter, Store};
use std::sync::Arc;
use std::time::Instant;

const ROWS: usize = 2_000;
const CALLERS: usize = 64;

/// What the CA commits for one enrollment: the request, issued at once, its certificate, and
/// three audit entries (submitted, issued, the CA key's use).
fn issue(tag: &str, i: usize) -> Vec<Change> {
    let serial = format!("{tag}{i:08x}");
    let certificate = CertificateRecord {
        serial: serial.clone(),
        template: "Web".into(),
        template_version: Version { major: 1, minor: 0 },
        principal: format!("PC{i}"),
        subject: format!("CN=PC{i}"),
        sans: vec![format!("dns:pc{i}.fleet.test")],
        key: "ECDSA P-256".into(),
        not_before: 1_700_000_000,
        not_after: 1_800_000_000,
        request_id: None,
        der: vec![0x30; 700],
        revocation: None,
    };
    let request = NewRequest {
        template: "Web".into(),
        template_version: Version { major: 1, minor: 0 },
        principal: format!("PC{i}"),
        submitted_by: format!("PC{i}"),
        csr_der: vec![0x30; 300],
        submitted_at: 1_700_000_000,
    };
    let event = |action: &str, object: &str| AuditEvent {
        at: 1_700_000_000,
        actor: format!("PC{i}"),
        source: "bench".into(),
        action: action.into(),
        object: object.into(),
        outcome: Outcome::Success,
        details: String::new(),
    };
    vec![Change::SubmitRequest {
        request,
        decision: Decision::Issue(Box::new(certificate)),
        audit: vec![
            event("request.submit", ""),
            event("cert.issue", &serial),
            event("key.use", "issuing"),
        ],
    }]
}

/// `CALLERS` tasks share `ROWS` issuances, each through `apply`; returns rows/s.
async fn concurrent<F, Fut>(apply: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|c| {
            let apply = apply.clone();
            tokio::spawn(async move {
                for i in (c..ROWS).step_by(CALLERS) {
                    apply(i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    ROWS as f64 / start.elapsed().as_secs_f64()
}

async fn measure(label: &str, store: Arc<dyn Store>) {
    let start = Instant::now();
    for i in 0..ROWS / 4 {
        store.apply(issue("s", i)).await.expect("apply");
    }
    let sequential = (ROWS / 4) as f64 / start.elapsed().as_secs_f64();

    let s = store.clone();
    let per_row = concurrent(move |i| {
        let s = s.clone();
        async move {
            s.apply(issue("c", i)).await.expect("apply");
        }
    })
    .await;

    let committer = GroupCommitter::new(store.clone(), CALLERS);
    let grouped = concurrent(move |i| {
        let c = committer.clone();
        async move {
            c.apply(issue("g", i)).await.expect("apply");
        }
    })
    .await;
    println!(
        "{label}: one transaction per row: {sequential:.0} rows/s sequential, {per_row:.0} rows/s with {CALLERS} callers; \
         GroupCommitter with {CALLERS} callers: {grouped:.0} rows/s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn group_commit_throughput() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = fleetpki_store::SqliteStore::open(&dir.path().join("bench.db"))
        .await
        .expect("open sqlite");
    measure("SQLite", Arc::new(sqlite)).await;
    if let Ok(url) = std::env::var("FLEETPKI_BENCH_POSTGRES_URL") {
        measure(
            "PostgreSQL",
            fleetpki_store::open(&url).await.expect("open postgres"),
        )
        .await;
    }
}
