-- fleetpki schema, PostgreSQL flavour. Keep in step with ../sqlite/0001_initial.sql: the same
-- tables, columns and constraints; only the types differ. Times are i64 unix seconds.
-- Name-like keys use COLLATE "C" so they sort byte-wise, as in SQLite, whatever the locale.

CREATE TABLE templates (
    name  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    major BIGINT NOT NULL,
    minor BIGINT NOT NULL,
    body  TEXT   NOT NULL -- the whole Template as JSON
);

-- Every stored version, in the order it was stored (id).
CREATE TABLE template_history (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name      TEXT COLLATE "C" NOT NULL REFERENCES templates (name),
    major     BIGINT NOT NULL,
    minor     BIGINT NOT NULL,
    body      TEXT   NOT NULL,
    stored_at BIGINT NOT NULL
);
CREATE INDEX template_history_name ON template_history (name, id);

CREATE TABLE principals (
    name TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL -- the whole Principal as JSON
);

CREATE TABLE groups (
    name TEXT COLLATE "C" NOT NULL PRIMARY KEY
);

CREATE TABLE memberships (
    group_name TEXT COLLATE "C" NOT NULL REFERENCES groups (name),
    principal  TEXT COLLATE "C" NOT NULL REFERENCES principals (name),
    PRIMARY KEY (group_name, principal)
);
CREATE INDEX memberships_principal ON memberships (principal, group_name);

-- Requests name their template and principal by value, not by foreign key: a request is kept
-- whatever its outcome, including one for a principal or template that does not exist.
CREATE TABLE requests (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    template     TEXT   NOT NULL,
    major        BIGINT NOT NULL,
    minor        BIGINT NOT NULL,
    principal    TEXT   NOT NULL,
    submitted_by TEXT   NOT NULL,
    csr          BYTEA  NOT NULL,
    status       TEXT   NOT NULL CHECK (status IN ('pending', 'issued', 'denied')),
    submitted_at BIGINT NOT NULL,
    decided_at   BIGINT,
    decided_by   TEXT,
    reason       TEXT,
    serial       TEXT
);
CREATE INDEX requests_status ON requests (status, id);

CREATE TABLE certificates (
    serial            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    template          TEXT   NOT NULL,
    major             BIGINT NOT NULL,
    minor             BIGINT NOT NULL,
    principal         TEXT   NOT NULL,
    subject           TEXT   NOT NULL,
    sans              TEXT   NOT NULL, -- JSON array of strings
    key               TEXT   NOT NULL,
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    request_id        BIGINT REFERENCES requests (id),
    der               BYTEA  NOT NULL,
    revoked_at        BIGINT,
    revocation_reason BIGINT,
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
);
CREATE INDEX certificates_template ON certificates (template);
CREATE INDEX certificates_principal ON certificates (principal);
CREATE INDEX certificates_not_after ON certificates (not_after);
CREATE INDEX certificates_revoked_at ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE crls (
    issuer      TEXT COLLATE "C" NOT NULL,
    number      BIGINT NOT NULL,
    base_number BIGINT, -- set for a delta CRL
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    der         BYTEA  NOT NULL,
    UNIQUE (issuer, number)
);

CREATE TABLE audit (
    seq       BIGINT NOT NULL PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    source    TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    object    TEXT   NOT NULL,
    outcome   TEXT   NOT NULL,
    details   TEXT   NOT NULL,
    prev_hash TEXT   NOT NULL,
    hash      TEXT   NOT NULL
);

-- The chain's recorded head: one row, locked FOR UPDATE by every writing transaction so that
-- two processes can never fork the chain. seq 0 = empty.
CREATE TABLE audit_head (
    id   BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT   NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
