-- fleetpki schema, SQLite flavour. Keep in step with ../postgres/0001_initial.sql: the same
-- tables, columns and constraints; only the types differ. Times are i64 unix seconds.

CREATE TABLE templates (
    name  TEXT    NOT NULL PRIMARY KEY,
    major INTEGER NOT NULL,
    minor INTEGER NOT NULL,
    body  TEXT    NOT NULL -- the whole Template as JSON
);

-- Every stored version, in the order it was stored (id).
CREATE TABLE template_history (
    id        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    name      TEXT    NOT NULL REFERENCES templates (name),
    major     INTEGER NOT NULL,
    minor     INTEGER NOT NULL,
    body      TEXT    NOT NULL,
    stored_at INTEGER NOT NULL
);
CREATE INDEX template_history_name ON template_history (name, id);

CREATE TABLE principals (
    name TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL -- the whole Principal as JSON
);

CREATE TABLE groups (
    name TEXT NOT NULL PRIMARY KEY
);

CREATE TABLE memberships (
    group_name TEXT NOT NULL REFERENCES groups (name),
    principal  TEXT NOT NULL REFERENCES principals (name),
    PRIMARY KEY (group_name, principal)
);
CREATE INDEX memberships_principal ON memberships (principal, group_name);

-- Requests name their template and principal by value, not by foreign key: a request is kept
-- whatever its outcome, including one for a principal or template that does not exist.
CREATE TABLE requests (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    template     TEXT    NOT NULL,
    major        INTEGER NOT NULL,
    minor        INTEGER NOT NULL,
    principal    TEXT    NOT NULL,
    submitted_by TEXT    NOT NULL,
    csr          BLOB    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'issued', 'denied')),
    submitted_at INTEGER NOT NULL,
    decided_at   INTEGER,
    decided_by   TEXT,
    reason       TEXT,
    serial       TEXT
);
CREATE INDEX requests_status ON requests (status, id);

CREATE TABLE certificates (
    serial            TEXT    NOT NULL PRIMARY KEY,
    template          TEXT    NOT NULL,
    major             INTEGER NOT NULL,
    minor             INTEGER NOT NULL,
    principal         TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    sans              TEXT    NOT NULL, -- JSON array of strings
    key               TEXT    NOT NULL,
    not_before        INTEGER NOT NULL,
    not_after         INTEGER NOT NULL,
    request_id        INTEGER REFERENCES requests (id),
    der               BLOB    NOT NULL,
    revoked_at        INTEGER,
    revocation_reason INTEGER,
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
);
CREATE INDEX certificates_template ON certificates (template);
CREATE INDEX certificates_principal ON certificates (principal);
CREATE INDEX certificates_not_after ON certificates (not_after);
CREATE INDEX certificates_revoked_at ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE crls (
    issuer      TEXT    NOT NULL,
    number      INTEGER NOT NULL,
    base_number INTEGER, -- set for a delta CRL
    this_update INTEGER NOT NULL,
    next_update INTEGER NOT NULL,
    der         BLOB    NOT NULL,
    UNIQUE (issuer, number)
);

CREATE TABLE audit (
    seq       INTEGER NOT NULL PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    source    TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    object    TEXT    NOT NULL,
    outcome   TEXT    NOT NULL,
    details   TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);

-- The chain's recorded head: one row, updated in the transaction that appends. seq 0 = empty.
CREATE TABLE audit_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
