-- fleetpki schema 0003, PostgreSQL flavour: the ACME role's state. Keep in step with
-- ../sqlite/0003_acme.sql: the same tables, columns and constraints; only the types differ.
-- Orders and authorizations are stored whole as JSON (`body`, the model's types); the other
-- columns are what lookups need.

-- Accounts: one per key (thumbprint), each EAB key binds at most one.
CREATE TABLE acme_accounts (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    thumbprint TEXT COLLATE "C" NOT NULL UNIQUE,
    jwk        TEXT   NOT NULL,
    status     TEXT   NOT NULL CHECK (status IN ('valid', 'deactivated', 'revoked')),
    contact    TEXT   NOT NULL, -- JSON array of URLs
    principal  TEXT,
    eab_kid    TEXT COLLATE "C" UNIQUE,
    created_at BIGINT NOT NULL
);

-- External account binding keys (`fleetpki acme eab`).
CREATE TABLE acme_eab_keys (
    kid        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    principal  TEXT   NOT NULL,
    hmac_key   BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT   NOT NULL
);

CREATE TABLE acme_orders (
    id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    account TEXT COLLATE "C" NOT NULL REFERENCES acme_accounts (id),
    status  TEXT   NOT NULL,
    serial  TEXT COLLATE "C",
    body    TEXT   NOT NULL
);
CREATE INDEX acme_orders_account ON acme_orders (account, id);
CREATE INDEX acme_orders_serial ON acme_orders (serial);

CREATE TABLE acme_authorizations (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    account    TEXT COLLATE "C" NOT NULL REFERENCES acme_accounts (id),
    identifier TEXT COLLATE "C" NOT NULL,
    status     TEXT   NOT NULL,
    expires    BIGINT NOT NULL,
    body       TEXT   NOT NULL
);
CREATE INDEX acme_authorizations_reuse ON acme_authorizations (account, identifier, status, expires);
