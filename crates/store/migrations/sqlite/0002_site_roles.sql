-- fleetpki schema 0002, SQLite flavour: what the site roles store. Keep in step with
-- ../postgres/0002_site_roles.sql: the same tables, columns and constraints; only the types differ.

-- State messages from clients (fallback status point): telemetry, unauthenticated, not audited.
CREATE TABLE status_messages (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    source      TEXT    NOT NULL, -- peer address
    client      TEXT    NOT NULL, -- claimed client name, may be empty
    kind        TEXT    NOT NULL,
    body        TEXT    NOT NULL  -- JSON text as received
);
CREATE INDEX status_messages_received ON status_messages (received_at, id);
CREATE INDEX status_messages_client ON status_messages (client, received_at, id);
CREATE INDEX status_messages_kind ON status_messages (kind, received_at, id);

-- Clients registered with the management point; one identity belongs to one client.
CREATE TABLE clients (
    name            TEXT    NOT NULL PRIMARY KEY,
    identity_sha256 TEXT    NOT NULL UNIQUE,
    identity_der    BLOB    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'blocked')),
    registered_at   INTEGER NOT NULL,
    decided_at      INTEGER,
    decided_by      TEXT
);
CREATE INDEX clients_status ON clients (status, name);

-- One-time enrollment tokens; only the secret's hash is stored.
CREATE TABLE enroll_tokens (
    id            TEXT    NOT NULL PRIMARY KEY,
    principal     TEXT    NOT NULL,
    template      TEXT,
    secret_sha256 TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER,
    created_by    TEXT    NOT NULL
);

-- Site-wide counters: one row. policy_version rises with every policy change (template put,
-- explicit bump) so that clients can refuse a rolled-back policy.
CREATE TABLE site_meta (
    id             INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    policy_version INTEGER NOT NULL CHECK (policy_version >= 0)
);
INSERT INTO site_meta (id, policy_version) VALUES (1, 0);
