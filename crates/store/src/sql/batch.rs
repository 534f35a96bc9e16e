//! Multi-row inserts: a transaction's audit entries, and the requests and certificates of
//! consecutive issuances in a group commit, written a few statements at a time.
//!
//! Why: SQLite runs every statement on sqlx's connection thread, so each one is a round trip
//! between threads. A group commit of N enrollments wrote 2N + 4 statements one after the
//! other while holding the write lock; under load those round trips, not the fsync, set how
//! long a batch took and so the issuance rate (see `bench/issuance-http.sh`).

use crate::StoreError;
use crate::db::{Arg, Tx, args};
use fleetpki_model::UnixTime;
use fleetpki_model::audit::{AuditEntry, AuditEvent};
use fleetpki_model::record::{CertificateRecord, NewRequest, RequestStatus};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Rows per statement: at 14 parameters a row (certificates) this stays far below both
/// backends' parameter limits, and each shape is one prepared statement.
pub(crate) const MAX_ROWS: usize = 32;

/// `HEAD (…), (…) TAIL` for 1..=[`MAX_ROWS`] rows of `cols` placeholders each, built once.
pub(crate) struct MultiInsert {
    head: &'static str,
    cols: usize,
    tail: &'static str,
    built: OnceLock<Vec<String>>,
}

impl MultiInsert {
    const fn new(head: &'static str, cols: usize, tail: &'static str) -> Self {
        Self {
            head,
            cols,
            tail,
            built: OnceLock::new(),
        }
    }

    /// The statement for `rows` rows (clamped to 1..=[`MAX_ROWS`]).
    pub(crate) fn sql(&'static self, rows: usize) -> &'static str {
        let all = self.built.get_or_init(|| {
            (1..=MAX_ROWS)
                .map(|n| {
                    let values: Vec<String> = (0..n)
                        .map(|r| {
                            let p: Vec<String> = (1..=self.cols)
                                .map(|c| format!("${}", r * self.cols + c))
                                .collect();
                            format!("({})", p.join(", "))
                        })
                        .collect();
                    format!("{}{}{}", self.head, values.join(", "), self.tail)
                })
                .collect()
        });
        &all[rows.clamp(1, MAX_ROWS) - 1]
    }
}

pub(crate) static AUDIT: MultiInsert = MultiInsert::new(
    concat!("INSERT INTO audit (", audit_cols!(), ") VALUES "),
    10,
    "",
);

/// `ON CONFLICT DO NOTHING` rather than a look-up first: one statement, and on PostgreSQL a
/// failed insert would abort the whole transaction. A serial missing from what it returns was
/// taken.
pub(crate) static CERTIFICATES: MultiInsert = MultiInsert::new(
    concat!("INSERT INTO certificates (", cert_cols!(), ") VALUES "),
    14,
    " ON CONFLICT (serial) DO NOTHING RETURNING serial",
);

/// `RETURNING serial` too: the order of a multi-row insert's RETURNING rows is not promised
/// (SQLite says so), so each id is matched to its request by the certificate's serial.
pub(crate) static REQUESTS: MultiInsert = MultiInsert::new(
    "INSERT INTO requests (template, major, minor, principal, submitted_by, csr, status, \
     submitted_at, decided_at, reason, serial) VALUES ",
    11,
    " RETURNING id, serial",
);

/// A replay's pair answered by the request it names (see `Change::RecordScepTransaction`);
/// a pair already recorded is a conflict.
pub(crate) static SCEP_TRANSACTIONS: MultiInsert = MultiInsert::new(
    "INSERT INTO scep_transactions (key_sha256, transaction_id, request_id, created_at) VALUES ",
    4,
    " ON CONFLICT (key_sha256, transaction_id) DO NOTHING RETURNING key_sha256, transaction_id",
);

pub(crate) fn audit_args(e: &AuditEntry) -> Vec<Arg> {
    args![
        e.seq,
        e.event.at,
        e.event.actor.as_str(),
        e.event.source.as_str(),
        e.event.action.as_str(),
        e.event.object.as_str(),
        e.event.outcome.name(),
        e.event.details.as_str(),
        e.prev_hash.as_str(),
        e.hash.as_str(),
    ]
}

pub(crate) fn certificate_args(c: &CertificateRecord) -> Result<Vec<Arg>, StoreError> {
    Ok(args![
        c.serial.as_str(),
        c.template.as_str(),
        i64::from(c.template_version.major),
        i64::from(c.template_version.minor),
        c.principal.as_str(),
        c.subject.as_str(),
        super::json("certificate SANs", &c.sans)?,
        c.key.as_str(),
        c.not_before,
        c.not_after,
        c.request_id,
        c.der.as_slice(),
        c.revocation.as_ref().map(|r| r.at),
        c.revocation.as_ref().map(|r| i64::from(r.reason.code())),
    ])
}

/// A request row; `decided_at`, `reason` and `serial` as its decision at submission says.
pub(crate) fn request_args(
    r: &NewRequest,
    status: RequestStatus,
    decided_at: Option<i64>,
    reason: Option<String>,
    serial: Option<&str>,
) -> Vec<Arg> {
    args![
        r.template.as_str(),
        i64::from(r.template_version.major),
        i64::from(r.template_version.minor),
        r.principal.as_str(),
        r.submitted_by.as_str(),
        r.csr_der.as_slice(),
        status.name(),
        r.submitted_at,
        decided_at,
        reason,
        serial.map(str::to_string),
    ]
}

/// Inserts certificate rows, [`MAX_ROWS`] a statement; `Conflict` if a serial is taken.
pub(crate) async fn insert_certificates(
    tx: &mut Tx,
    certs: &[&CertificateRecord],
) -> Result<(), StoreError> {
    for rows in certs.chunks(MAX_ROWS) {
        let mut args = Vec::with_capacity(rows.len() * 14);
        for c in rows {
            args.extend(certificate_args(c)?);
        }
        let inserted = tx.fetch_all(CERTIFICATES.sql(rows.len()), args).await?;
        if inserted.len() != rows.len() {
            let inserted = inserted
                .iter()
                .map(|r| r.get::<String, _>("serial"))
                .collect::<Result<Vec<_>, _>>()?;
            let taken = rows
                .iter()
                .find(|c| !inserted.contains(&c.serial))
                .map_or_else(String::new, |c| c.serial.clone());
            return Err(super::conflict(
                "certificate",
                taken,
                "a certificate with this serial is already stored",
            ));
        }
    }
    Ok(())
}

/// One request issued at submission, as a [`crate::Change::SubmitRequest`] carries it, and the
/// SCEP transaction right after it that names it, if any.
pub(crate) struct Issued {
    pub request: NewRequest,
    pub certificate: Box<CertificateRecord>,
    pub audit: Vec<AuditEvent>,
    pub scep: Option<ScepRecord>,
}

/// A `Change::RecordScepTransaction` for the request before it.
pub(crate) struct ScepRecord {
    pub key_sha256: String,
    pub transaction_id: String,
    pub at: UnixTime,
    pub replace: bool,
}

/// What [`submit_issued`] did for one [`Issued`]: the request's id, its audit events with an
/// empty object filled in with that id (for the caller to append to the chain, in order), and
/// whether a SCEP transaction was recorded.
pub(crate) struct Done {
    pub id: i64,
    pub audit: Vec<AuditEvent>,
    pub scep: bool,
}

/// Inserts requests issued at submission, their certificates and SCEP transactions: one
/// statement per table per [`MAX_ROWS`] (a renewal's SCEP record, which replaces an earlier
/// one, is written on its own). `Conflict` if a serial is taken or a SCEP pair recorded.
pub(crate) async fn submit_issued(tx: &mut Tx, run: Vec<Issued>) -> Result<Vec<Done>, StoreError> {
    let mut ids: HashMap<String, i64> = HashMap::with_capacity(run.len());
    for rows in run.chunks(MAX_ROWS) {
        let mut args = Vec::with_capacity(rows.len() * 11);
        for i in rows {
            args.extend(request_args(
                &i.request,
                RequestStatus::Issued,
                Some(i.request.submitted_at),
                None,
                Some(&i.certificate.serial),
            ));
        }
        for row in tx.fetch_all(REQUESTS.sql(rows.len()), args).await? {
            let serial: String = row.get("serial")?;
            if ids.insert(serial.clone(), row.get("id")?).is_some() {
                return Err(super::conflict(
                    "certificate",
                    serial,
                    "two certificates with this serial in one transaction",
                ));
            }
        }
    }
    let mut done = Vec::with_capacity(run.len());
    let mut certs = Vec::with_capacity(run.len());
    let mut sceps = Vec::new();
    for Issued {
        mut certificate,
        mut audit,
        scep,
        ..
    } in run
    {
        let id = *ids.get(&certificate.serial).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "the request for certificate {} was inserted but no id came back",
                certificate.serial
            ))
        })?;
        certificate.request_id = Some(id);
        // The caller cannot know the id before the insert: fill it in where the object is left empty.
        for e in audit.iter_mut().filter(|e| e.object.is_empty()) {
            e.object = id.to_string();
        }
        certs.push(certificate);
        done.push(Done {
            id,
            audit,
            scep: scep.is_some(),
        });
        sceps.extend(scep.map(|r| (id, r)));
    }
    let refs: Vec<&CertificateRecord> = certs.iter().map(|c| c.as_ref()).collect();
    insert_certificates(tx, &refs).await?;
    record_scep_transactions(tx, &sceps).await?;
    Ok(done)
}

/// In order: the new pairs in multi-row inserts, a renewal's replacing pair on its own once the
/// pairs before it are written.
async fn record_scep_transactions(
    tx: &mut Tx,
    records: &[(i64, ScepRecord)],
) -> Result<(), StoreError> {
    let mut from = 0;
    for (i, (id, r)) in records.iter().enumerate() {
        if r.replace {
            insert_scep_transactions(tx, &records[from..i]).await?;
            super::record_scep_transaction(
                tx,
                &r.key_sha256,
                &r.transaction_id,
                *id,
                r.at,
                true,
                true,
            )
            .await?;
            from = i + 1;
        }
    }
    insert_scep_transactions(tx, &records[from..]).await
}

/// New pairs, [`MAX_ROWS`] a statement; `Conflict` if one is recorded already.
async fn insert_scep_transactions(
    tx: &mut Tx,
    records: &[(i64, ScepRecord)],
) -> Result<(), StoreError> {
    for rows in records.chunks(MAX_ROWS) {
        let mut args = Vec::with_capacity(rows.len() * 4);
        for (id, r) in rows {
            args.extend(args![
                r.key_sha256.as_str(),
                r.transaction_id.as_str(),
                *id,
                r.at
            ]);
        }
        let recorded = tx
            .fetch_all(SCEP_TRANSACTIONS.sql(rows.len()), args)
            .await?;
        if recorded.len() != rows.len() {
            let recorded = recorded
                .iter()
                .map(|r| Ok((r.get("key_sha256")?, r.get("transaction_id")?)))
                .collect::<Result<Vec<(String, String)>, StoreError>>()?;
            // A pair already stored is missing from what came back; a pair twice in these
            // rows came back once.
            let pair = |r: &ScepRecord| (r.key_sha256.clone(), r.transaction_id.clone());
            let taken = rows
                .iter()
                .find(|(_, r)| !recorded.contains(&pair(r)))
                .or_else(|| {
                    let twice =
                        |i: usize| rows[..i].iter().any(|(_, e)| pair(e) == pair(&rows[i].1));
                    (0..rows.len()).find(|&i| twice(i)).map(|i| &rows[i])
                })
                .map_or_else(String::new, |(_, r)| r.transaction_id.clone());
            return Err(super::conflict(
                "SCEP transaction",
                taken,
                "already recorded for this key",
            ));
        }
    }
    Ok(())
}
