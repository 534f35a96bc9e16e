//! The store itself, written once for both backends: the SQL, the semantics of each
//! [`Change`], the audit chain, the reads and the fingerprint.

use crate::acme::{self, account_cols};
use crate::db::{Arg, Db, Row, Tx, args};
use crate::{Applied, Change, Decision, Store, StoreError};
use async_trait::async_trait;
use fleetpki_model::UnixTime;
use fleetpki_model::acme::{AcmeAccount, AcmeAuthz, AcmeOrder, EabKey};
use fleetpki_model::audit::{AuditEntry, AuditEvent, Outcome, seal};
use fleetpki_model::directory::{Group, Principal};
use fleetpki_model::record::{
    CertFilter, CertificateRecord, CrlRecord, NewRequest, RequestRecord, RequestStatus, Revocation,
    RevocationReason,
};
use fleetpki_model::site::{
    ClientRecord, ClientStatus, EnrollToken, NewStatusMessage, StatusFilter, StatusMessage,
};
use fleetpki_model::template::{Template, Version};
use std::marker::PhantomData;

/// A store on one of the two backends; `B` only tells [`crate::SqliteStore`] and
/// [`crate::PostgresStore`] apart (each has its own constructor).
pub struct SqlStore<B> {
    pub(crate) db: Db,
    /// A background task of this store's (SQLite's WAL checkpointer), stopped with it.
    pub(crate) task: Option<tokio::task::AbortHandle>,
    backend: PhantomData<fn() -> B>,
}

impl<B> Drop for SqlStore<B> {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl<B> std::fmt::Debug for SqlStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("db", &self.db).finish()
    }
}

impl<B> SqlStore<B> {
    pub(crate) fn new(db: Db) -> Self {
        Self {
            db,
            task: None,
            backend: PhantomData,
        }
    }

    /// Closes the connections, waiting for them to finish. The store is unusable afterwards.
    pub async fn close(&self) {
        self.db.close().await;
    }
}

// Column lists, as macros so they can be `concat!`ed into static SQL.
macro_rules! request_cols {
    () => {
        "id, template, major, minor, principal, submitted_by, csr, status, submitted_at, decided_at, decided_by, reason, serial"
    };
}
macro_rules! cert_cols {
    () => {
        "serial, template, major, minor, principal, subject, sans, key, not_before, not_after, request_id, der, revoked_at, revocation_reason"
    };
}
macro_rules! crl_cols {
    () => {
        "issuer, number, base_number, this_update, next_update, der"
    };
}
macro_rules! status_cols {
    () => {
        "id, received_at, source, client, kind, body"
    };
}
macro_rules! client_cols {
    () => {
        "name, identity_sha256, identity_der, status, registered_at, decided_at, decided_by"
    };
}
macro_rules! token_cols {
    () => {
        "id, principal, template, secret_sha256, created_at, expires_at, used_at, created_by"
    };
}
macro_rules! audit_cols {
    () => {
        "seq, at, actor, source, action, object, outcome, details, prev_hash, hash"
    };
}

mod batch;

/// The audit chain's head while a transaction appends to it. Entries are sealed at once (each
/// hash needs the previous one) but written in multi-row inserts by [`Chain::flush`]: a batch of
/// issuances appends three entries each, and one statement per entry was most of its writes.
struct Chain {
    seq: i64,
    hash: String,
    unwritten: Vec<AuditEntry>,
}

impl Chain {
    fn append(&mut self, event: AuditEvent) {
        let e = seal(self.seq + 1, event, &self.hash);
        self.seq = e.seq;
        self.hash.clone_from(&e.hash);
        self.unwritten.push(e);
    }

    fn append_all(&mut self, events: Vec<AuditEvent>) {
        for e in events {
            self.append(e);
        }
    }

    /// Writes the entries appended since the last flush.
    async fn flush(&mut self, tx: &mut Tx) -> Result<(), StoreError> {
        let entries = std::mem::take(&mut self.unwritten);
        for rows in entries.chunks(batch::MAX_ROWS) {
            let args = rows.iter().flat_map(batch::audit_args).collect();
            tx.exec(batch::AUDIT.sql(rows.len()), args).await?;
        }
        Ok(())
    }
}

fn json<T: serde::Serialize>(what: &str, v: &T) -> Result<String, StoreError> {
    // Cannot fail for the model's types (no maps with non-string keys), but never panic.
    serde_json::to_string(v)
        .map_err(|e| StoreError::Corrupt(format!("{what} cannot be encoded as JSON: {e}")))
}

fn conflict(what: &'static str, key: impl ToString, why: impl Into<String>) -> StoreError {
    StoreError::Conflict {
        what,
        key: key.to_string(),
        why: why.into(),
    }
}

fn not_found(what: &'static str, key: impl ToString) -> StoreError {
    StoreError::NotFound {
        what,
        key: key.to_string(),
    }
}

async fn exists(tx: &mut Tx, sql: &'static str, key: &str) -> Result<bool, StoreError> {
    Ok(tx.fetch_optional(sql, args![key]).await?.is_some())
}

/// Inserts a certificate; `Conflict` if its serial is taken, `NotFound` if it names a request
/// that does not exist.
async fn insert_certificate(tx: &mut Tx, c: &CertificateRecord) -> Result<(), StoreError> {
    if let Some(id) = c.request_id
        && tx
            .fetch_optional("SELECT 1 FROM requests WHERE id = $1", args![id])
            .await?
            .is_none()
    {
        return Err(not_found("request", id));
    }
    insert_certificate_row(tx, c).await
}

/// The certificate's row; `Conflict` if its serial is taken.
async fn insert_certificate_row(tx: &mut Tx, c: &CertificateRecord) -> Result<(), StoreError> {
    batch::insert_certificates(tx, &[c]).await
}

/// Raises the policy version by one.
async fn bump_policy(tx: &mut Tx) -> Result<(), StoreError> {
    let n = tx
        .exec(
            "UPDATE site_meta SET policy_version = policy_version + 1 WHERE id = 1",
            vec![],
        )
        .await?;
    if n != 1 {
        return Err(StoreError::Corrupt(
            "the site_meta row (policy version) is missing".into(),
        ));
    }
    Ok(())
}

/// `t` with every NUL replaced by U+FFFD: PostgreSQL text cannot hold NUL, SQLite's can, and
/// both backends must keep the same message.
fn without_nul(t: String) -> String {
    if t.contains('\0') {
        t.replace('\0', "\u{fffd}")
    } else {
        t
    }
}

async fn record_status(tx: &mut Tx, m: NewStatusMessage) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO status_messages (received_at, source, client, kind, body) VALUES ($1, $2, $3, $4, $5)",
        args![
            m.received_at,
            without_nul(m.source),
            without_nul(m.client),
            without_nul(m.kind),
            without_nul(m.body),
        ],
    )
    .await?;
    Ok(())
}

/// Inserts a client. `Ok(false)` if the same name and identity are already registered (nothing
/// changes); `Conflict` if the name or the identity is taken by another registration.
async fn register_client(tx: &mut Tx, c: &ClientRecord) -> Result<bool, StoreError> {
    let by_name = tx
        .fetch_optional(
            "SELECT identity_sha256 FROM clients WHERE name = $1",
            args![c.name.as_str()],
        )
        .await?;
    if let Some(row) = by_name {
        let stored: String = row.get("identity_sha256")?;
        if stored == c.identity_sha256 {
            return Ok(false);
        }
        return Err(conflict(
            "client",
            &c.name,
            "already registered with a different identity",
        ));
    }
    let by_identity = tx
        .fetch_optional(
            "SELECT name FROM clients WHERE identity_sha256 = $1",
            args![c.identity_sha256.as_str()],
        )
        .await?;
    if let Some(row) = by_identity {
        let other: String = row.get("name")?;
        return Err(conflict(
            "client",
            &c.name,
            format!("this identity is already registered as client `{other}`"),
        ));
    }
    tx.exec(
        concat!(
            "INSERT INTO clients (",
            client_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ),
        args![
            c.name.as_str(),
            c.identity_sha256.as_str(),
            c.identity_der.as_slice(),
            c.status.name(),
            c.registered_at,
            c.decided_at,
            c.decided_by.clone(),
        ],
    )
    .await?;
    Ok(true)
}

/// Equality of two hex digests, ignoring case, in time independent of where they differ.
fn same_digest(a: &str, b: &str) -> bool {
    let a = a.to_ascii_lowercase();
    let b = b.to_ascii_lowercase();
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

pub(crate) async fn record_scep_transaction(
    tx: &mut Tx,
    key_sha256: &str,
    transaction_id: &str,
    request_id: i64,
    at: UnixTime,
    replace: bool,
    request_known: bool,
) -> Result<(), StoreError> {
    // A request submitted earlier in this transaction exists: no need to look it up.
    if !request_known
        && tx
            .fetch_optional("SELECT 1 FROM requests WHERE id = $1", args![request_id])
            .await?
            .is_none()
    {
        return Err(not_found("request", request_id));
    }
    let n = if replace {
        tx.exec(
            "INSERT INTO scep_transactions (key_sha256, transaction_id, request_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (key_sha256, transaction_id) \
             DO UPDATE SET request_id = excluded.request_id, created_at = excluded.created_at",
            args![key_sha256, transaction_id, request_id, at],
        )
        .await?
    } else {
        tx.exec(
            "INSERT INTO scep_transactions (key_sha256, transaction_id, request_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (key_sha256, transaction_id) DO NOTHING",
            args![key_sha256, transaction_id, request_id, at],
        )
        .await?
    };
    if n == 0 {
        return Err(conflict(
            "SCEP transaction",
            transaction_id,
            "already recorded for this key",
        ));
    }
    Ok(())
}

async fn consume_token(
    tx: &mut Tx,
    id: &str,
    secret_sha256: &str,
    at: UnixTime,
) -> Result<(), StoreError> {
    let row = tx
        .fetch_optional(
            "SELECT secret_sha256, expires_at, used_at FROM enroll_tokens WHERE id = $1",
            args![id],
        )
        .await?
        .ok_or_else(|| not_found("enrollment token", id))?;
    let stored: String = row.get("secret_sha256")?;
    let expires_at: i64 = row.get("expires_at")?;
    let used_at: Option<i64> = row.get("used_at")?;
    // The secret first: without it, a caller learns nothing about the token's state.
    if !same_digest(&stored, secret_sha256) {
        return Err(conflict("enrollment token", id, "secret does not match"));
    }
    if let Some(used) = used_at {
        return Err(conflict(
            "enrollment token",
            id,
            format!("already used at {}", fleetpki_model::fmt_time(used)),
        ));
    }
    if at >= expires_at {
        return Err(conflict(
            "enrollment token",
            id,
            format!("expired at {}", fleetpki_model::fmt_time(expires_at)),
        ));
    }
    let n = tx
        .exec(
            "UPDATE enroll_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL",
            args![at, id],
        )
        .await?;
    if n != 1 {
        // Cannot happen while writers are serialized; never let a token be used twice anyway.
        return Err(conflict("enrollment token", id, "already used"));
    }
    Ok(())
}

/// Applies one change and appends its audit events.
/// Applies one change; `submitted` is the request this transaction inserted last, if any.
async fn apply_one(
    tx: &mut Tx,
    chain: &mut Chain,
    change: Change,
    submitted: Option<i64>,
) -> Result<Applied, StoreError> {
    match change {
        Change::PutTemplate { template: t, audit } => {
            let body = json("template", &t)?;
            let (major, minor) = (i64::from(t.version.major), i64::from(t.version.minor));
            tx.exec(
                "INSERT INTO templates (name, major, minor, body) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET major = excluded.major, minor = excluded.minor, body = excluded.body",
                args![t.name.as_str(), major, minor, body.as_str()],
            )
            .await?;
            // Stamped with the event's time: the store reads no clock, so a change is replayable.
            tx.exec(
                "INSERT INTO template_history (name, major, minor, body, stored_at) VALUES ($1, $2, $3, $4, $5)",
                args![t.name.as_str(), major, minor, body, audit.at],
            )
            .await?;
            bump_policy(tx).await?;
            chain.append(audit);
        }
        Change::PutPrincipal {
            principal: p,
            audit,
        } => {
            tx.exec(
                "INSERT INTO principals (name, kind, body) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, body = excluded.body",
                args![p.name.as_str(), p.kind.name(), json("principal", &p)?],
            )
            .await?;
            // A principal's entry (disabled, names) shapes its policy.
            bump_policy(tx).await?;
            chain.append(audit);
        }
        Change::PutGroup { group, audit } => {
            let n = tx
                .exec(
                    "INSERT INTO groups (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                    args![group.name.as_str()],
                )
                .await?;
            if n == 0 {
                return Err(conflict(
                    "group",
                    group.name,
                    "a group with this name already exists",
                ));
            }
            chain.append(audit);
        }
        Change::AddMember {
            group,
            principal,
            audit,
        } => {
            if !exists(tx, "SELECT 1 FROM groups WHERE name = $1", &group).await? {
                return Err(not_found("group", group));
            }
            if !exists(tx, "SELECT 1 FROM principals WHERE name = $1", &principal).await? {
                return Err(not_found("principal", principal));
            }
            tx.exec(
                "INSERT INTO memberships (group_name, principal) VALUES ($1, $2) ON CONFLICT (group_name, principal) DO NOTHING",
                args![group, principal],
            )
            .await?;
            // Group membership decides which templates a client's policy grants.
            bump_policy(tx).await?;
            chain.append(audit);
        }
        Change::SubmitRequest {
            request,
            decision,
            mut audit,
        } => {
            let id = submit_request(tx, request, decision).await?;
            // The caller cannot know the id before the insert: fill it in where the object is left empty.
            for e in audit.iter_mut().filter(|e| e.object.is_empty()) {
                e.object = id.to_string();
            }
            chain.append_all(audit);
            return Ok(Applied::Request { id });
        }
        Change::DecideRequest {
            id,
            decided_by,
            at,
            decision,
            audit,
        } => {
            let row = tx
                .fetch_optional("SELECT status FROM requests WHERE id = $1", args![id])
                .await?;
            let status: String = row.ok_or_else(|| not_found("request", id))?.get("status")?;
            if status != RequestStatus::Pending.name() {
                return Err(conflict(
                    "request",
                    id,
                    format!("it is already {status}; only a pending request can be decided"),
                ));
            }
            match decision {
                Decision::Pending => {
                    return Err(conflict(
                        "request",
                        id,
                        "a decision must issue or deny; it cannot leave the request pending",
                    ));
                }
                Decision::Issue(mut cert) => {
                    cert.request_id = Some(id);
                    insert_certificate_row(tx, &cert).await?;
                    tx.exec(
                        "UPDATE requests SET status = 'issued', decided_at = $1, decided_by = $2, serial = $3 WHERE id = $4",
                        args![at, decided_by, cert.serial, id],
                    )
                    .await?;
                }
                Decision::Deny(reason) => {
                    tx.exec(
                        "UPDATE requests SET status = 'denied', decided_at = $1, decided_by = $2, reason = $3 WHERE id = $4",
                        args![at, decided_by, reason, id],
                    )
                    .await?;
                }
            }
            chain.append_all(audit);
        }
        Change::PutCertificate { certificate, audit } => {
            insert_certificate(tx, &certificate).await?;
            chain.append(audit);
        }
        Change::Revoke {
            serial,
            revocation,
            audit,
        } => {
            let row = tx
                .fetch_optional(
                    "SELECT revoked_at FROM certificates WHERE serial = $1",
                    args![serial.as_str()],
                )
                .await?;
            let revoked_at: Option<i64> = row
                .ok_or_else(|| not_found("certificate", &serial))?
                .get("revoked_at")?;
            if let Some(at) = revoked_at {
                return Err(conflict(
                    "certificate",
                    serial,
                    format!("already revoked at {}", fleetpki_model::fmt_time(at)),
                ));
            }
            tx.exec(
                "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 WHERE serial = $3",
                args![revocation.at, i64::from(revocation.reason.code()), serial],
            )
            .await?;
            chain.append(audit);
        }
        Change::PublishCrl { crl, audit } => {
            let max: Option<i64> = tx
                .fetch_one(
                    "SELECT MAX(number) AS n FROM crls WHERE issuer = $1",
                    args![crl.issuer.as_str()],
                )
                .await?
                .get("n")?;
            if let Some(max) = max.filter(|m| crl.number <= *m) {
                return Err(conflict(
                    "CRL",
                    format!("{} #{}", crl.issuer, crl.number),
                    format!("CRL numbers must increase per issuer; the highest stored is {max}"),
                ));
            }
            tx.exec(
                concat!(
                    "INSERT INTO crls (",
                    crl_cols!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                args![
                    crl.issuer,
                    crl.number,
                    crl.base_number,
                    crl.this_update,
                    crl.next_update,
                    crl.der.as_slice()
                ],
            )
            .await?;
            chain.append(audit);
        }
        Change::Audit(event) => chain.append(event),
        Change::BumpPolicy { audit } => {
            bump_policy(tx).await?;
            chain.append(audit);
        }
        Change::RecordStatus { message } => record_status(tx, message).await?,
        Change::RegisterClient { client, audit } => {
            if register_client(tx, &client).await? {
                chain.append(audit);
            }
        }
        Change::DecideClient {
            name,
            status,
            by,
            at,
            audit,
        } => {
            if !exists(tx, "SELECT 1 FROM clients WHERE name = $1", &name).await? {
                return Err(not_found("client", name));
            }
            if status == ClientStatus::Pending {
                return Err(conflict(
                    "client",
                    name,
                    "a decision must approve or block; it cannot make the client pending",
                ));
            }
            tx.exec(
                "UPDATE clients SET status = $1, decided_at = $2, decided_by = $3 WHERE name = $4",
                args![status.name(), at, by, name],
            )
            .await?;
            chain.append(audit);
        }
        Change::CreateToken { token: t, audit } => {
            let n = tx
                .exec(
                    concat!(
                        "INSERT INTO enroll_tokens (",
                        token_cols!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING"
                    ),
                    args![
                        t.id.as_str(),
                        t.principal.as_str(),
                        t.template.clone(),
                        t.secret_sha256.as_str(),
                        t.created_at,
                        t.expires_at,
                        t.used_at,
                        t.created_by.as_str(),
                    ],
                )
                .await?;
            if n == 0 {
                return Err(conflict(
                    "enrollment token",
                    t.id,
                    "a token with this id already exists",
                ));
            }
            chain.append(audit);
        }
        Change::RecordScepTransaction {
            key_sha256,
            transaction_id,
            request_id,
            at,
            replace,
        } => {
            let id =
                request_id.ok_or_else(|| not_found("request", "(none submitted in this batch)"))?;
            let known = submitted == Some(id);
            record_scep_transaction(tx, &key_sha256, &transaction_id, id, at, replace, known)
                .await?;
        }
        Change::ConsumeToken {
            id,
            secret_sha256,
            at,
            audit,
        } => {
            consume_token(tx, &id, &secret_sha256, at).await?;
            chain.append(audit);
        }
        Change::AcmeNewAccount { account, audit } => {
            acme::new_account(tx, &account).await?;
            chain.append(audit);
        }
        Change::AcmeUpdateAccount { account, audit } => {
            acme::update_account(tx, &account).await?;
            chain.append(audit);
        }
        Change::AcmeCreateEab { key, audit } => {
            acme::create_eab(tx, &key).await?;
            chain.append(audit);
        }
        Change::AcmePutOrder {
            order,
            authorizations,
            only_if,
        } => {
            acme::put_order(tx, &order, only_if).await?;
            for a in &authorizations {
                acme::put_authz(tx, a).await?;
            }
        }
        Change::AcmePutAuthz { authz } => acme::put_authz(tx, &authz).await?,
    }
    Ok(Applied::Done)
}

/// A request issued as it is submitted: see [`batch::submit_issued`].
fn issued_at_submission(c: &Change) -> bool {
    matches!(
        c,
        Change::SubmitRequest {
            decision: Decision::Issue(_),
            ..
        }
    )
}

/// `c` as an issuance, with the SCEP transaction that follows it to name its request (taken
/// from `rest`), or `c` back if it is something else.
fn as_issued(
    c: Change,
    rest: &mut std::iter::Peekable<std::vec::IntoIter<Change>>,
) -> Result<batch::Issued, Box<Change>> {
    let Change::SubmitRequest {
        request,
        decision: Decision::Issue(certificate),
        audit,
    } = c
    else {
        return Err(Box::new(c));
    };
    let scep = rest
        .next_if(|n| {
            matches!(
                n,
                Change::RecordScepTransaction {
                    request_id: None,
                    ..
                }
            )
        })
        .and_then(|n| match n {
            Change::RecordScepTransaction {
                key_sha256,
                transaction_id,
                at,
                replace,
                ..
            } => Some(batch::ScepRecord {
                key_sha256,
                transaction_id,
                at,
                replace,
            }),
            _ => None,
        });
    Ok(batch::Issued {
        request,
        certificate,
        audit,
        scep,
    })
}

/// A request left pending or denied at submission (one issued at once goes through
/// [`batch::submit_issued`]).
async fn submit_request(tx: &mut Tx, r: NewRequest, decision: Decision) -> Result<i64, StoreError> {
    // A decision made at submission is the template's policy, not a person's: decided_by stays empty.
    let (status, decided_at, reason) = match decision {
        Decision::Pending => (RequestStatus::Pending, None, None),
        Decision::Deny(reason) => (RequestStatus::Denied, Some(r.submitted_at), Some(reason)),
        Decision::Issue(_) => {
            return Err(StoreError::Corrupt(
                "an issued request is stored by batch::submit_issued".into(),
            ));
        }
    };
    tx.fetch_one(
        batch::REQUESTS.sql(1),
        batch::request_args(&r, status, decided_at, reason, None),
    )
    .await?
    .get("id")
}

// ---- decoding rows --------------------------------------------------------------------------

fn version(row: &Row) -> Result<Version, StoreError> {
    let part = |col: &str| -> Result<u32, StoreError> {
        let v: i64 = row.get(col)?;
        u32::try_from(v).map_err(|_| {
            StoreError::Corrupt(format!(
                "template version part `{col}` is {v}, out of range"
            ))
        })
    };
    Ok(Version {
        major: part("major")?,
        minor: part("minor")?,
    })
}

fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    key: &str,
    body: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| {
        StoreError::Corrupt(format!("{what} `{key}`: stored JSON does not parse: {e}"))
    })
}

fn template_from(row: &Row) -> Result<Template, StoreError> {
    let name: String = row.get("name")?;
    from_json("template", &name, &row.get::<String, _>("body")?)
}

fn principal_from(row: &Row) -> Result<Principal, StoreError> {
    let name: String = row.get("name")?;
    from_json("principal", &name, &row.get::<String, _>("body")?)
}

fn request_from(row: &Row) -> Result<RequestRecord, StoreError> {
    let id: i64 = row.get("id")?;
    let status: String = row.get("status")?;
    Ok(RequestRecord {
        id,
        template: row.get("template")?,
        template_version: version(row)?,
        principal: row.get("principal")?,
        submitted_by: row.get("submitted_by")?,
        csr_der: row.get("csr")?,
        status: RequestStatus::parse(&status).ok_or_else(|| {
            StoreError::Corrupt(format!("request {id}: unknown status `{status}`"))
        })?,
        submitted_at: row.get("submitted_at")?,
        decided_at: row.get("decided_at")?,
        decided_by: row.get("decided_by")?,
        reason: row.get("reason")?,
        serial: row.get("serial")?,
    })
}

fn revocation_from(
    serial: &str,
    at: Option<i64>,
    code: Option<i64>,
) -> Result<Option<Revocation>, StoreError> {
    match (at, code) {
        (None, None) => Ok(None),
        (Some(at), Some(code)) => {
            let reason = u8::try_from(code)
                .ok()
                .and_then(RevocationReason::from_code)
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "certificate `{serial}`: unknown revocation reason code {code}"
                    ))
                })?;
            Ok(Some(Revocation { at, reason }))
        }
        _ => Err(StoreError::Corrupt(format!(
            "certificate `{serial}`: revocation time and reason must both be set or both be empty"
        ))),
    }
}

fn certificate_from(row: &Row) -> Result<CertificateRecord, StoreError> {
    let serial: String = row.get("serial")?;
    let revocation = revocation_from(
        &serial,
        row.get("revoked_at")?,
        row.get("revocation_reason")?,
    )?;
    Ok(CertificateRecord {
        sans: from_json(
            "certificate SANs of",
            &serial,
            &row.get::<String, _>("sans")?,
        )?,
        template: row.get("template")?,
        template_version: version(row)?,
        principal: row.get("principal")?,
        subject: row.get("subject")?,
        key: row.get("key")?,
        not_before: row.get("not_before")?,
        not_after: row.get("not_after")?,
        request_id: row.get("request_id")?,
        der: row.get("der")?,
        revocation,
        serial,
    })
}

fn crl_from(row: &Row) -> Result<CrlRecord, StoreError> {
    Ok(CrlRecord {
        issuer: row.get("issuer")?,
        number: row.get("number")?,
        base_number: row.get("base_number")?,
        this_update: row.get("this_update")?,
        next_update: row.get("next_update")?,
        der: row.get("der")?,
    })
}

fn status_from(row: &Row) -> Result<StatusMessage, StoreError> {
    Ok(StatusMessage {
        id: row.get("id")?,
        received_at: row.get("received_at")?,
        source: row.get("source")?,
        client: row.get("client")?,
        kind: row.get("kind")?,
        body: row.get("body")?,
    })
}

fn client_from(row: &Row) -> Result<ClientRecord, StoreError> {
    let name: String = row.get("name")?;
    let status: String = row.get("status")?;
    Ok(ClientRecord {
        status: ClientStatus::parse(&status).ok_or_else(|| {
            StoreError::Corrupt(format!("client `{name}`: unknown status `{status}`"))
        })?,
        identity_sha256: row.get("identity_sha256")?,
        identity_der: row.get("identity_der")?,
        registered_at: row.get("registered_at")?,
        decided_at: row.get("decided_at")?,
        decided_by: row.get("decided_by")?,
        name,
    })
}

fn token_from(row: &Row) -> Result<EnrollToken, StoreError> {
    Ok(EnrollToken {
        id: row.get("id")?,
        principal: row.get("principal")?,
        template: row.get("template")?,
        secret_sha256: row.get("secret_sha256")?,
        created_at: row.get("created_at")?,
        expires_at: row.get("expires_at")?,
        used_at: row.get("used_at")?,
        created_by: row.get("created_by")?,
    })
}

fn entry_from(row: &Row) -> Result<AuditEntry, StoreError> {
    let seq: i64 = row.get("seq")?;
    let outcome: String = row.get("outcome")?;
    Ok(AuditEntry {
        seq,
        event: AuditEvent {
            at: row.get("at")?,
            actor: row.get("actor")?,
            source: row.get("source")?,
            action: row.get("action")?,
            object: row.get("object")?,
            outcome: Outcome::parse(&outcome).ok_or_else(|| {
                StoreError::Corrupt(format!("audit entry {seq}: unknown outcome `{outcome}`"))
            })?,
            details: row.get("details")?,
        },
        prev_hash: row.get("prev_hash")?,
        hash: row.get("hash")?,
    })
}

fn all<T>(rows: Vec<Row>, f: fn(&Row) -> Result<T, StoreError>) -> Result<Vec<T>, StoreError> {
    rows.iter().map(f).collect()
}

fn names(rows: Vec<Row>, col: &str) -> Result<Vec<String>, StoreError> {
    rows.iter().map(|r| r.get(col)).collect()
}

// ---- fingerprint ----------------------------------------------------------------------------

/// How a dumped column is read.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Blob,
}

use Kind::{Blob as B, Int as I, Text as T};

/// Every table, every column, in a fixed row order. A new table or column must be added here.
const DUMP: &[(&str, &[Kind])] = &[
    (
        "SELECT name, major, minor, body FROM templates ORDER BY name",
        &[T, I, I, T],
    ),
    (
        "SELECT id, name, major, minor, body, stored_at FROM template_history ORDER BY id",
        &[I, T, I, I, T, I],
    ),
    (
        "SELECT name, kind, body FROM principals ORDER BY name",
        &[T, T, T],
    ),
    ("SELECT name FROM groups ORDER BY name", &[T]),
    (
        "SELECT group_name, principal FROM memberships ORDER BY group_name, principal",
        &[T, T],
    ),
    (
        concat!("SELECT ", request_cols!(), " FROM requests ORDER BY id"),
        &[I, T, I, I, T, T, B, T, I, I, T, T, T],
    ),
    (
        concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates ORDER BY serial"
        ),
        &[T, T, I, I, T, T, T, T, I, I, I, B, I, I],
    ),
    (
        concat!("SELECT ", crl_cols!(), " FROM crls ORDER BY issuer, number"),
        &[T, I, I, I, I, B],
    ),
    (
        concat!("SELECT ", audit_cols!(), " FROM audit ORDER BY seq"),
        &[I, I, T, T, T, T, T, T, T, T],
    ),
    (
        "SELECT id, seq, hash FROM audit_head ORDER BY id",
        &[I, I, T],
    ),
    (
        concat!(
            "SELECT ",
            status_cols!(),
            " FROM status_messages ORDER BY id"
        ),
        &[I, I, T, T, T, T],
    ),
    (
        concat!("SELECT ", client_cols!(), " FROM clients ORDER BY name"),
        &[T, T, B, T, I, I, T],
    ),
    (
        concat!("SELECT ", token_cols!(), " FROM enroll_tokens ORDER BY id"),
        &[T, T, T, T, I, I, I, T],
    ),
    (
        "SELECT id, policy_version FROM site_meta ORDER BY id",
        &[I, I],
    ),
    (
        concat!(
            "SELECT ",
            account_cols!(),
            " FROM acme_accounts ORDER BY id"
        ),
        &[T, T, T, T, T, T, T, I],
    ),
    (
        "SELECT kid, principal, hmac_key, created_at, created_by FROM acme_eab_keys ORDER BY kid",
        &[T, T, B, I, T],
    ),
    (
        "SELECT id, account, status, serial, body FROM acme_orders ORDER BY id",
        &[T, T, T, T, T],
    ),
    (
        "SELECT id, account, identifier, status, expires, body FROM acme_authorizations ORDER BY id",
        &[T, T, T, T, I, T],
    ),
    (
        "SELECT key_sha256, transaction_id, request_id, created_at FROM scep_transactions ORDER BY key_sha256, transaction_id",
        &[T, T, I, I],
    ),
];

/// Feeds one value into the digest: a tag (null, int, text, blob), then a length-prefixed
/// encoding, so that no two different dumps hash the same input.
fn digest_value(
    ctx: &mut aws_lc_rs::digest::Context,
    row: &Row,
    i: usize,
    kind: Kind,
) -> Result<(), StoreError> {
    let bytes: Option<Vec<u8>> = match kind {
        Kind::Int => row
            .get::<Option<i64>, _>(i)?
            .map(|v| v.to_be_bytes().to_vec()),
        Kind::Text => row.get::<Option<String>, _>(i)?.map(String::into_bytes),
        Kind::Blob => row.get::<Option<Vec<u8>>, _>(i)?,
    };
    match bytes {
        None => ctx.update(b"N"),
        Some(b) => {
            ctx.update(match kind {
                Kind::Int => b"I",
                Kind::Text => b"T",
                Kind::Blob => b"B",
            });
            ctx.update(&(b.len() as u64).to_be_bytes());
            ctx.update(&b);
        }
    }
    Ok(())
}

/// `select` over the certificates matching `filter`, and its bound values: what `certificates`
/// lists and `count_certificates` counts, so the two cannot disagree. Built from fixed fragments
/// only (values are bound), so that each filter gets a plan that can use its index;
/// `($1 IS NULL OR …)` would defeat them.
fn cert_query(select: &str, filter: &CertFilter) -> (String, Vec<Arg>) {
    let mut sql = format!("{select} FROM certificates WHERE 1 = 1");
    let mut args: Vec<Arg> = Vec::new();
    let mut push = |fragment: &str, value: Arg| {
        args.push(value);
        sql.push_str(&fragment.replace("$?", &format!("${}", args.len())));
    };
    if let Some(t) = &filter.template {
        push(" AND template = $?", t.into());
    }
    if let Some(p) = &filter.principal {
        push(" AND principal = $?", p.into());
    }
    if let Some(before) = filter.expiring_before {
        push(" AND not_after < $? AND revoked_at IS NULL", before.into());
    }
    if let Some(at) = filter.unexpired_at {
        push(" AND not_after >= $?", at.into());
    }
    if filter.revoked_only {
        sql.push_str(" AND revoked_at IS NOT NULL");
    }
    (sql, args)
}

// ---- the trait ------------------------------------------------------------------------------

#[async_trait]
impl<B> Store for SqlStore<B> {
    async fn apply(&self, changes: Vec<Change>) -> Result<Vec<Applied>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        // Any `?` below drops `tx`, which rolls the whole batch back.
        let mut tx = self.db.begin().await?;
        let head = tx.audit_head().await?;
        let start: i64 = head.get("seq")?;
        let mut chain = Chain {
            seq: start,
            hash: head.get("hash")?,
            unwritten: Vec::new(),
        };
        let mut out = Vec::with_capacity(changes.len());
        let mut last_request = None;
        let mut changes = changes.into_iter().peekable();
        while let Some(change) = changes.next() {
            // An issuance and those right after it (a group commit of enrollments), each with
            // the SCEP transaction that names it, are inserted together.
            let change = match as_issued(change, &mut changes) {
                Ok(first) => {
                    let mut run = vec![first];
                    while let Some(next) = changes.next_if(issued_at_submission) {
                        match as_issued(next, &mut changes) {
                            Ok(i) => run.push(i),
                            Err(_) => {
                                return Err(StoreError::Corrupt(
                                    "a run of issuances held another change".into(),
                                ));
                            }
                        }
                    }
                    for done in batch::submit_issued(&mut tx, run).await? {
                        chain.append_all(done.audit);
                        last_request = Some(done.id);
                        out.push(Applied::Request { id: done.id });
                        if done.scep {
                            out.push(Applied::Done);
                        }
                    }
                    continue;
                }
                Err(other) => *other,
            };
            // A SCEP transaction without an id names the request submitted before it.
            let change = match change {
                Change::RecordScepTransaction {
                    key_sha256,
                    transaction_id,
                    request_id: None,
                    at,
                    replace,
                } => Change::RecordScepTransaction {
                    key_sha256,
                    transaction_id,
                    request_id: last_request,
                    at,
                    replace,
                },
                other => other,
            };
            let applied = apply_one(&mut tx, &mut chain, change, last_request).await?;
            if let Applied::Request { id } = applied {
                last_request = Some(id);
            }
            out.push(applied);
        }
        chain.flush(&mut tx).await?;
        if chain.seq != start {
            tx.exec(
                "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
                args![chain.seq, chain.hash],
            )
            .await?;
        }
        tx.commit().await?;
        self.db.committed();
        Ok(out)
    }

    async fn template(&self, name: &str) -> Result<Option<Template>, StoreError> {
        self.db
            .fetch_optional(
                "SELECT name, body FROM templates WHERE name = $1",
                args![name],
            )
            .await?
            .as_ref()
            .map(template_from)
            .transpose()
    }

    async fn templates(&self) -> Result<Vec<Template>, StoreError> {
        all(
            self.db
                .fetch_all("SELECT name, body FROM templates ORDER BY name", vec![])
                .await?,
            template_from,
        )
    }

    async fn template_history(&self, name: &str) -> Result<Vec<Template>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT name, body FROM template_history WHERE name = $1 ORDER BY id",
                args![name],
            )
            .await?;
        all(rows, template_from)
    }

    async fn principal(&self, name: &str) -> Result<Option<Principal>, StoreError> {
        self.db
            .fetch_optional(
                "SELECT name, body FROM principals WHERE name = $1",
                args![name],
            )
            .await?
            .as_ref()
            .map(principal_from)
            .transpose()
    }

    async fn principals(&self) -> Result<Vec<Principal>, StoreError> {
        all(
            self.db
                .fetch_all("SELECT name, body FROM principals ORDER BY name", vec![])
                .await?,
            principal_from,
        )
    }

    async fn group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        let row = self
            .db
            .fetch_optional("SELECT name FROM groups WHERE name = $1", args![name])
            .await?;
        row.map(|r| {
            Ok(Group {
                name: r.get("name")?,
            })
        })
        .transpose()
    }

    async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        let rows = self
            .db
            .fetch_all("SELECT name FROM groups ORDER BY name", vec![])
            .await?;
        Ok(names(rows, "name")?
            .into_iter()
            .map(|name| Group { name })
            .collect())
    }

    async fn members(&self, group: &str) -> Result<Vec<String>, StoreError> {
        names(
            self.db
                .fetch_all(
                    "SELECT principal FROM memberships WHERE group_name = $1 ORDER BY principal",
                    args![group],
                )
                .await?,
            "principal",
        )
    }

    async fn groups_of(&self, principal: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT group_name FROM memberships WHERE principal = $1 ORDER BY group_name",
                args![principal],
            )
            .await?;
        names(rows, "group_name")
    }

    async fn request(&self, id: i64) -> Result<Option<RequestRecord>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                concat!("SELECT ", request_cols!(), " FROM requests WHERE id = $1"),
                args![id],
            )
            .await?;
        row.as_ref().map(request_from).transpose()
    }

    async fn requests(
        &self,
        status: Option<RequestStatus>,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                concat!(
                    "SELECT ",
                    request_cols!(),
                    " FROM requests WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC"
                ),
                args![status.map(|s| s.name().to_string())],
            )
            .await?;
        all(rows, request_from)
    }

    async fn requests_submitted_by(
        &self,
        submitted_by: &str,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                concat!(
                    "SELECT ",
                    request_cols!(),
                    " FROM requests WHERE submitted_by = $1 ORDER BY id DESC"
                ),
                args![submitted_by],
            )
            .await?;
        all(rows, request_from)
    }

    async fn count_requests(&self, status: Option<RequestStatus>) -> Result<i64, StoreError> {
        // Two statements rather than `($1 IS NULL OR …)`, so the status count can use its index.
        let row = match status {
            Some(st) => {
                self.db
                    .fetch_one(
                        "SELECT COUNT(*) AS n FROM requests WHERE status = $1",
                        args![st.name()],
                    )
                    .await?
            }
            None => {
                self.db
                    .fetch_one("SELECT COUNT(*) AS n FROM requests", vec![])
                    .await?
            }
        };
        row.get("n")
    }

    async fn certificate(&self, serial: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                concat!(
                    "SELECT ",
                    cert_cols!(),
                    " FROM certificates WHERE serial = $1"
                ),
                args![serial],
            )
            .await?;
        row.as_ref().map(certificate_from).transpose()
    }

    async fn certificates(
        &self,
        filter: &CertFilter,
    ) -> Result<Vec<CertificateRecord>, StoreError> {
        let (mut sql, args) = cert_query(concat!("SELECT ", cert_cols!()), filter);
        sql.push_str(" ORDER BY not_after, serial");
        all(
            self.db.fetch_all(sqlx::AssertSqlSafe(sql), args).await?,
            certificate_from,
        )
    }

    async fn count_certificates(&self, filter: &CertFilter) -> Result<i64, StoreError> {
        let (sql, args) = cert_query("SELECT COUNT(*) AS n", filter);
        self.db
            .fetch_one(sqlx::AssertSqlSafe(sql), args)
            .await?
            .get("n")
    }

    async fn revocations(
        &self,
        since: Option<UnixTime>,
    ) -> Result<Vec<(String, Revocation)>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT serial, revoked_at, revocation_reason FROM certificates \
                 WHERE revoked_at IS NOT NULL AND ($1 IS NULL OR revoked_at >= $1) ORDER BY revoked_at, serial",
                args![since],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let serial: String = r.get("serial")?;
                let rev =
                    revocation_from(&serial, r.get("revoked_at")?, r.get("revocation_reason")?)?
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "certificate `{serial}`: listed as revoked without a revocation"
                            ))
                        })?;
                Ok((serial, rev))
            })
            .collect()
    }

    async fn latest_crl(&self, issuer: &str, delta: bool) -> Result<Option<CrlRecord>, StoreError> {
        let sql = if delta {
            concat!(
                "SELECT ",
                crl_cols!(),
                " FROM crls WHERE issuer = $1 AND base_number IS NOT NULL ORDER BY number DESC LIMIT 1"
            )
        } else {
            concat!(
                "SELECT ",
                crl_cols!(),
                " FROM crls WHERE issuer = $1 AND base_number IS NULL ORDER BY number DESC LIMIT 1"
            )
        };
        self.db
            .fetch_optional(sql, args![issuer])
            .await?
            .as_ref()
            .map(crl_from)
            .transpose()
    }

    async fn max_crl_number(&self, issuer: &str) -> Result<i64, StoreError> {
        let n: Option<i64> = self
            .db
            .fetch_one(
                "SELECT MAX(number) AS n FROM crls WHERE issuer = $1",
                args![issuer],
            )
            .await?
            .get("n")?;
        Ok(n.unwrap_or(0))
    }

    async fn status_messages(
        &self,
        filter: &StatusFilter,
    ) -> Result<Vec<StatusMessage>, StoreError> {
        // Fixed fragments with bound values, as in `certificates`, so each filter uses its index.
        let mut sql = String::from(concat!(
            "SELECT ",
            status_cols!(),
            " FROM status_messages WHERE 1 = 1"
        ));
        let mut args: Vec<Arg> = Vec::new();
        let mut push = |fragment: &str, value: Arg| {
            args.push(value);
            sql.push_str(&fragment.replace("$?", &format!("${}", args.len())));
        };
        if let Some(c) = &filter.client {
            push(" AND client = $?", c.into());
        }
        if let Some(k) = &filter.kind {
            push(" AND kind = $?", k.into());
        }
        if let Some(since) = filter.since {
            push(" AND received_at >= $?", since.into());
        }
        // PostgreSQL refuses a negative LIMIT; SQLite reads it as "no limit". Agree on "nothing".
        push(
            " ORDER BY received_at DESC, id DESC LIMIT $?",
            filter.limit.max(0).into(),
        );
        all(
            self.db.fetch_all(sqlx::AssertSqlSafe(sql), args).await?,
            status_from,
        )
    }

    async fn client(&self, name: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.db
            .fetch_optional(
                concat!("SELECT ", client_cols!(), " FROM clients WHERE name = $1"),
                args![name],
            )
            .await?
            .as_ref()
            .map(client_from)
            .transpose()
    }

    async fn client_by_identity(&self, sha256: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.db
            .fetch_optional(
                concat!(
                    "SELECT ",
                    client_cols!(),
                    " FROM clients WHERE identity_sha256 = $1"
                ),
                args![sha256],
            )
            .await?
            .as_ref()
            .map(client_from)
            .transpose()
    }

    async fn clients(&self, status: Option<ClientStatus>) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                concat!(
                    "SELECT ",
                    client_cols!(),
                    " FROM clients WHERE ($1 IS NULL OR status = $1) ORDER BY name"
                ),
                args![status.map(|s| s.name().to_string())],
            )
            .await?;
        all(rows, client_from)
    }

    async fn token(&self, id: &str) -> Result<Option<EnrollToken>, StoreError> {
        self.db
            .fetch_optional(
                concat!(
                    "SELECT ",
                    token_cols!(),
                    " FROM enroll_tokens WHERE id = $1"
                ),
                args![id],
            )
            .await?
            .as_ref()
            .map(token_from)
            .transpose()
    }

    async fn scep_transaction(
        &self,
        key_sha256: &str,
        transaction_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        self.db
            .fetch_optional(
                "SELECT request_id FROM scep_transactions WHERE key_sha256 = $1 AND transaction_id = $2",
                args![key_sha256, transaction_id],
            )
            .await?
            .map(|r| r.get("request_id"))
            .transpose()
    }

    async fn policy_version(&self) -> Result<i64, StoreError> {
        self.db
            .fetch_optional("SELECT policy_version FROM site_meta WHERE id = 1", vec![])
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt("the site_meta row (policy version) is missing".into())
            })?
            .get("policy_version")
    }

    async fn acme_account(&self, id: &str) -> Result<Option<AcmeAccount>, StoreError> {
        acme::account(
            &self.db,
            concat!(
                "SELECT ",
                account_cols!(),
                " FROM acme_accounts WHERE id = $1"
            ),
            id,
        )
        .await
    }

    async fn acme_account_by_thumbprint(
        &self,
        thumbprint: &str,
    ) -> Result<Option<AcmeAccount>, StoreError> {
        acme::account(
            &self.db,
            concat!(
                "SELECT ",
                account_cols!(),
                " FROM acme_accounts WHERE thumbprint = $1"
            ),
            thumbprint,
        )
        .await
    }

    async fn acme_eab_key(&self, kid: &str) -> Result<Option<EabKey>, StoreError> {
        acme::eab_key(&self.db, kid).await
    }

    async fn acme_order(&self, id: &str) -> Result<Option<AcmeOrder>, StoreError> {
        acme::order(
            &self.db,
            "SELECT id, body FROM acme_orders WHERE id = $1",
            id,
        )
        .await
    }

    async fn acme_order_by_serial(&self, serial: &str) -> Result<Option<AcmeOrder>, StoreError> {
        acme::order(
            &self.db,
            "SELECT id, body FROM acme_orders WHERE serial = $1",
            serial,
        )
        .await
    }

    async fn acme_orders_of(&self, account: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        acme::orders_of(&self.db, account, limit).await
    }

    async fn acme_authz(&self, id: &str) -> Result<Option<AcmeAuthz>, StoreError> {
        acme::authz(&self.db, id).await
    }

    async fn acme_valid_authz(
        &self,
        account: &str,
        identifier: &str,
        wildcard: bool,
        at: UnixTime,
    ) -> Result<Option<AcmeAuthz>, StoreError> {
        acme::valid_authz(&self.db, account, identifier, wildcard, at).await
    }

    async fn audit_entries(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        // PostgreSQL refuses a negative LIMIT; SQLite reads it as "no limit". Agree on "nothing".
        let rows = self
            .db
            .fetch_all(
                concat!(
                    "SELECT ",
                    audit_cols!(),
                    " FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                args![after, limit.max(0)],
            )
            .await?;
        all(rows, entry_from)
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let row = self
            .db
            .fetch_one("SELECT seq, hash FROM audit_head WHERE id = 1", vec![])
            .await?;
        let seq: i64 = row.get("seq")?;
        Ok((seq > 0)
            .then(|| row.get("hash"))
            .transpose()?
            .map(|hash| (seq, hash)))
    }

    async fn fingerprint(&self) -> Result<String, StoreError> {
        // Reads every row into memory: meant for tests and small stores.
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for (sql, kinds) in DUMP {
            ctx.update(&(sql.len() as u64).to_be_bytes());
            ctx.update(sql.as_bytes());
            for row in self.db.fetch_all(*sql, vec![]).await? {
                ctx.update(b"R");
                for (i, kind) in kinds.iter().enumerate() {
                    digest_value(&mut ctx, &row, i, *kind)?;
                }
            }
        }
        Ok(hex(ctx.finish().as_ref()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table and every column of the schema is in [`DUMP`], so `fingerprint` sees every
    /// change (SQLite's schema; the PostgreSQL one is kept in step with it).
    #[tokio::test]
    async fn dump_covers_the_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::SqliteStore::open(&dir.path().join("s.db"))
            .await
            .expect("open");
        let tables = store
            .db
            .fetch_all(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT IN ('sqlite_sequence', '_sqlx_migrations') ORDER BY name",
                vec![],
            )
            .await
            .expect("tables");
        let tables = names(tables, "name").expect("names");
        assert!(tables.len() >= 14, "{tables:?}");
        for table in tables {
            let dumps: Vec<_> = DUMP
                .iter()
                .filter(|(sql, _)| sql.contains(&format!(" FROM {table} ")))
                .collect();
            assert_eq!(dumps.len(), 1, "table `{table}` is dumped once");
            let columns = store
                .db
                .fetch_all(
                    sqlx::AssertSqlSafe(format!("SELECT name FROM pragma_table_info('{table}')")),
                    vec![],
                )
                .await
                .expect("columns");
            let columns = names(columns, "name").expect("names");
            let (sql, kinds) = dumps[0];
            assert_eq!(kinds.len(), columns.len(), "`{table}`: {sql}");
            let selected = sql
                .strip_prefix("SELECT ")
                .and_then(|s| s.split(" FROM ").next())
                .expect("a SELECT");
            let mut selected: Vec<&str> = selected.split(", ").collect();
            let mut columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            selected.sort_unstable();
            columns.sort_unstable();
            assert_eq!(selected, columns, "`{table}`");
        }
        store.close().await;
    }
}
