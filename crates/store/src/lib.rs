//! fleetpki's storage: one [`Store`] trait, implemented for SQLite (the embedded default, WAL)
//! and PostgreSQL, with every write going through [`Store::apply`] as one transaction and
//! concurrent writers batched by [`GroupCommitter`].

mod acme;
mod db;
mod error;
mod group_commit;
mod postgres;
mod sql;
mod sqlite;

pub use error::StoreError;
pub use group_commit::GroupCommitter;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use fleetpki_model::UnixTime;
use fleetpki_model::acme::{AcmeAccount, AcmeAuthz, AcmeOrder, EabKey};
use fleetpki_model::audit::{AuditEntry, AuditEvent};
use fleetpki_model::directory::{Group, Principal};
use fleetpki_model::record::{
    CertFilter, CertificateRecord, CrlRecord, NewRequest, RequestRecord, RequestStatus, Revocation,
};
use fleetpki_model::site::{
    ClientRecord, ClientStatus, EnrollToken, NewStatusMessage, StatusFilter, StatusMessage,
};
use fleetpki_model::template::Template;
use std::sync::Arc;

/// What happens to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Stays pending (the template requires approval).
    Pending,
    /// Issued: the certificate is stored with the request. Its `request_id` is filled in by the store.
    Issue(Box<CertificateRecord>),
    /// Denied with a reason.
    Deny(String),
}

/// One state change. Every change carries the audit events that record it, written in the same
/// transaction, so the log never misses a change and never records one that did not commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Inserts or replaces a template by name and appends the new version to its history.
    /// Templates (with their grants) are the site's policy: this also raises the policy version.
    PutTemplate {
        template: Template,
        audit: AuditEvent,
    },
    /// Inserts or replaces a principal.
    PutPrincipal {
        principal: Principal,
        audit: AuditEvent,
    },
    /// Inserts a group; `Conflict` if it exists.
    PutGroup { group: Group, audit: AuditEvent },
    /// Adds `principal` to `group`; `NotFound` if either is missing; adding twice is a no-op.
    AddMember {
        group: String,
        principal: String,
        audit: AuditEvent,
    },
    /// Stores a new request with its first decision. Returns [`Applied::Request`].
    /// `Issue`/`Deny` here set `decided_at = submitted_at` and leave `decided_by` empty (the
    /// template's policy decided, not a person). Audit events whose `object` is empty get the
    /// new request id, which the caller cannot know beforehand. `Conflict` if the issued
    /// certificate's serial is already stored.
    SubmitRequest {
        request: NewRequest,
        decision: Decision,
        audit: Vec<AuditEvent>,
    },
    /// Decides a pending request (approve → `Issue`, deny → `Deny`). `NotFound` if unknown,
    /// `Conflict` if it is not pending, if the decision is `Pending`, or if the serial is taken.
    DecideRequest {
        id: i64,
        decided_by: String,
        at: UnixTime,
        decision: Decision,
        audit: Vec<AuditEvent>,
    },
    /// Stores a certificate issued without a request of ours (e.g. the site's own role certificates).
    /// `Conflict` if the serial is already stored; `NotFound` if it names a request that is not.
    PutCertificate {
        certificate: Box<CertificateRecord>,
        audit: AuditEvent,
    },
    /// Revokes a certificate. `NotFound` if the serial is unknown, `Conflict` if already revoked.
    Revoke {
        serial: String,
        revocation: Revocation,
        audit: AuditEvent,
    },
    /// Records a published CRL. `Conflict` unless its number is greater than every CRL number
    /// (full or delta) already stored for the same issuer: CRL numbers are monotonic per issuer.
    PublishCrl { crl: CrlRecord, audit: AuditEvent },
    /// An event with no other state change (key use, a failed attempt worth keeping).
    Audit(AuditEvent),
    /// Raises the policy version without another change (e.g. after group memberships changed
    /// who holds a grant, or to make every client fetch policy again).
    BumpPolicy { audit: AuditEvent },
    /// Stores a client's state message (fallback status point). Telemetry from unauthenticated
    /// senders, so it carries no audit event and leaves the audit chain alone. NUL characters,
    /// which PostgreSQL cannot store in text, are replaced with U+FFFD in every field so that
    /// both backends keep the same message.
    RecordStatus { message: NewStatusMessage },
    /// Registers a client with the management point. Registering a name again with the same
    /// `identity_sha256` is a no-op (the stored record, including its status, is kept and no
    /// audit event is written: clients re-register freely). `Conflict` if the name is
    /// registered with a different identity, or the identity under another name.
    RegisterClient {
        client: ClientRecord,
        audit: AuditEvent,
    },
    /// Approves or blocks a registered client (also un-blocks, or re-approves). `NotFound` if
    /// the client is unknown, `Conflict` if `status` is `Pending` (a decision must decide).
    DecideClient {
        name: String,
        status: ClientStatus,
        by: String,
        at: UnixTime,
        audit: AuditEvent,
    },
    /// Stores a new enrollment token. `Conflict` if its id exists.
    CreateToken {
        token: EnrollToken,
        audit: AuditEvent,
    },
    /// Uses up an enrollment token: put it in the same `apply` as the change it authorises (the
    /// `SubmitRequest`), so that a refused token refuses the issuance and a failed issuance
    /// leaves the token unused. `NotFound` if no token has this id; otherwise `Conflict` when
    /// the secret's hash does not match (checked first, so that a caller without the secret
    /// learns nothing of the token's state), when it was already used, or when `at` is at or
    /// past its expiry.
    ConsumeToken {
        id: String,
        secret_sha256: String,
        at: UnixTime,
        audit: AuditEvent,
    },
    /// Creates an ACME account. `Conflict` if its id, its key (thumbprint) or its EAB key id
    /// is already taken, `NotFound` if it names an EAB key that does not exist.
    AcmeNewAccount {
        account: AcmeAccount,
        audit: AuditEvent,
    },
    /// Replaces an ACME account's key, status and contact (its id, principal and EAB key id
    /// stay). `NotFound` if unknown, `Conflict` if the new key is another account's.
    AcmeUpdateAccount {
        account: AcmeAccount,
        audit: AuditEvent,
    },
    /// Stores an external account binding key. `Conflict` if its kid exists.
    AcmeCreateEab { key: EabKey, audit: AuditEvent },
    /// Inserts or replaces an ACME order and the given authorizations. Protocol state: no
    /// audit event (what is audited is the issuance the order leads to, and the accounts).
    /// `NotFound` if the account does not exist.
    AcmePutOrder {
        order: AcmeOrder,
        authorizations: Vec<AcmeAuthz>,
    },
    /// Inserts or replaces an ACME authorization (a challenge's outcome). `NotFound` if the
    /// account does not exist.
    AcmePutAuthz { authz: AcmeAuthz },
}

/// What a change produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done,
    Request { id: i64 },
}

/// The storage contract. Reads see only committed data; [`Store::apply`] is all-or-nothing.
#[async_trait]
pub trait Store: Send + Sync {
    /// Applies every change in one transaction, in order, and returns one [`Applied`] per change.
    /// Audit events are numbered and hash-chained inside that transaction.
    async fn apply(&self, changes: Vec<Change>) -> Result<Vec<Applied>, StoreError>;

    async fn template(&self, name: &str) -> Result<Option<Template>, StoreError>;
    async fn templates(&self) -> Result<Vec<Template>, StoreError>;
    /// Every stored version of a template, oldest first.
    async fn template_history(&self, name: &str) -> Result<Vec<Template>, StoreError>;

    async fn principal(&self, name: &str) -> Result<Option<Principal>, StoreError>;
    async fn principals(&self) -> Result<Vec<Principal>, StoreError>;
    async fn group(&self, name: &str) -> Result<Option<Group>, StoreError>;
    async fn groups(&self) -> Result<Vec<Group>, StoreError>;
    /// Principal names in a group, sorted.
    async fn members(&self, group: &str) -> Result<Vec<String>, StoreError>;
    /// Group names a principal belongs to, sorted.
    async fn groups_of(&self, principal: &str) -> Result<Vec<String>, StoreError>;

    async fn request(&self, id: i64) -> Result<Option<RequestRecord>, StoreError>;
    /// Requests, newest first, optionally only those with `status`.
    async fn requests(
        &self,
        status: Option<RequestStatus>,
    ) -> Result<Vec<RequestRecord>, StoreError>;

    /// Requests submitted by `submitted_by` (the actor name, e.g. `token:ID` for an enrollment
    /// token), newest first: how a repeated EST request finds the one it repeats.
    /// (The default filters [`Store::requests`]; the SQL stores ask the database.)
    async fn requests_submitted_by(
        &self,
        submitted_by: &str,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let mut all = self.requests(None).await?;
        all.retain(|r| r.submitted_by == submitted_by);
        Ok(all)
    }

    /// How many requests [`Store::requests`] would return, counted by the database (for
    /// metrics: no row is loaded).
    async fn count_requests(&self, status: Option<RequestStatus>) -> Result<i64, StoreError>;

    async fn certificate(&self, serial: &str) -> Result<Option<CertificateRecord>, StoreError>;
    /// Certificates matching `filter`, by notAfter ascending.
    async fn certificates(&self, filter: &CertFilter)
    -> Result<Vec<CertificateRecord>, StoreError>;
    /// How many certificates [`Store::certificates`] would return for `filter`, counted by the
    /// database (for metrics: no row, and so no DER, is loaded).
    async fn count_certificates(&self, filter: &CertFilter) -> Result<i64, StoreError>;
    /// `(serial, revocation)` of every revoked certificate, or only those revoked at or after `since`.
    async fn revocations(
        &self,
        since: Option<UnixTime>,
    ) -> Result<Vec<(String, Revocation)>, StoreError>;

    /// The CRL with the highest number for `issuer`, full or delta as asked.
    async fn latest_crl(&self, issuer: &str, delta: bool) -> Result<Option<CrlRecord>, StoreError>;
    /// The highest CRL number (full or delta) stored for `issuer`, 0 if none.
    async fn max_crl_number(&self, issuer: &str) -> Result<i64, StoreError>;

    /// Status messages matching `filter`, newest (by `received_at`, then id) first.
    async fn status_messages(
        &self,
        filter: &StatusFilter,
    ) -> Result<Vec<StatusMessage>, StoreError>;

    async fn client(&self, name: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// The client registered with this identity (lower-case hex SHA-256), if any.
    async fn client_by_identity(&self, sha256: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// Registered clients by name, optionally only those with `status`.
    async fn clients(&self, status: Option<ClientStatus>) -> Result<Vec<ClientRecord>, StoreError>;

    async fn token(&self, id: &str) -> Result<Option<EnrollToken>, StoreError>;

    /// The policy version: 0 before any policy change, then raised by every `PutTemplate`,
    /// `PutPrincipal`, `AddMember` (the directory decides what a client's policy grants) and
    /// `BumpPolicy`. It never decreases, so clients can refuse a policy older than one they saw.
    async fn policy_version(&self) -> Result<i64, StoreError>;

    async fn acme_account(&self, id: &str) -> Result<Option<AcmeAccount>, StoreError>;
    /// The account holding this key (RFC 7638 thumbprint, base64url).
    async fn acme_account_by_thumbprint(
        &self,
        thumbprint: &str,
    ) -> Result<Option<AcmeAccount>, StoreError>;
    async fn acme_eab_key(&self, kid: &str) -> Result<Option<EabKey>, StoreError>;
    async fn acme_order(&self, id: &str) -> Result<Option<AcmeOrder>, StoreError>;
    /// The order whose certificate has this serial.
    async fn acme_order_by_serial(&self, serial: &str) -> Result<Option<AcmeOrder>, StoreError>;
    /// An account's order ids, by id, at most `limit`.
    async fn acme_orders_of(&self, account: &str, limit: i64) -> Result<Vec<String>, StoreError>;
    async fn acme_authz(&self, id: &str) -> Result<Option<AcmeAuthz>, StoreError>;
    /// A valid authorization of `account` for `identifier` (with this wildcard flag) that is
    /// still valid at `at`: new orders for the same name reuse it.
    async fn acme_valid_authz(
        &self,
        account: &str,
        identifier: &str,
        wildcard: bool,
        at: UnixTime,
    ) -> Result<Option<AcmeAuthz>, StoreError>;

    /// Audit entries with `seq > after`, in order, at most `limit`.
    async fn audit_entries(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError>;
    /// The recorded head of the chain: the last entry's `(seq, hash)`.
    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError>;

    /// A digest of every stored row, for tests that assert a refused request changed nothing.
    async fn fingerprint(&self) -> Result<String, StoreError>;
}

/// Opens (creating and migrating as needed) the store at `url`: `sqlite:PATH` / a bare path for
/// SQLite, `postgres://…` / `postgresql://…` for PostgreSQL.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        Ok(Arc::new(
            SqliteStore::open(std::path::Path::new(path)).await?,
        ))
    }
}
