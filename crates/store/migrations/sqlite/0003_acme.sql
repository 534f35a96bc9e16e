-- fleetpki schema 0003, SQLite flavour: the ACME role's state. Keep in step with
-- ../postgres/0003_acme.sql: the same tables, columns and constraints; only the types differ.
-- Orders and authorizations are stored whole as JSON (`body`, the model's types); the other
-- columns are what lookups need.

-- Accounts: one per key (thumbprint), each EAB key binds at most one.
CREATE TABLE acme_accounts (
    id         TEXT    NOT NULL PRIMARY KEY,
    thumbprint TEXT    NOT NULL UNIQUE,
    jwk        TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('valid', 'deactivated', 'revoked')),
    contact    TEXT    NOT NULL, -- JSON array of URLs
    principal  TEXT,
    eab_kid    TEXT    UNIQUE,
    created_at INTEGER NOT NULL
);

-- External account binding keys (`fleetpki acme eab`).
CREATE TABLE acme_eab_keys (
    kid        TEXT    NOT NULL PRIMARY KEY,
    principal  TEXT    NOT NULL,
    hmac_key   BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL
);

CREATE TABLE acme_orders (
    id      TEXT    NOT NULL PRIMARY KEY,
    account TEXT    NOT NULL REFERENCES acme_accounts (id),
    status  TEXT    NOT NULL,
    serial  TEXT,
    body    TEXT    NOT NULL
);
CREATE INDEX acme_orders_account ON acme_orders (account, id);
CREATE INDEX acme_orders_serial ON acme_orders (serial);

CREATE TABLE acme_authorizations (
    id         TEXT    NOT NULL PRIMARY KEY,
    account    TEXT    NOT NULL REFERENCES acme_accounts (id),
    identifier TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    expires    INTEGER NOT NULL,
    body       TEXT    NOT NULL
);
CREATE INDEX acme_authorizations_reuse ON acme_authorizations (account, identifier, status, expires);
