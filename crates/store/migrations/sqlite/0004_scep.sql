-- fleetpki schema 0004, SQLite flavour: SCEP transactions. Keep in step with
-- ../postgres/0004_scep.sql.

-- Which request a SCEP client's transaction made, so that CertPoll (and a repeated PKCSReq)
-- finds it after a restart. One transaction per requester key: a transactionID chosen by
-- another key is another transaction.
CREATE TABLE scep_transactions (
    key_sha256     TEXT    NOT NULL, -- SHA-256 of the requester's SubjectPublicKeyInfo, hex
    transaction_id TEXT    NOT NULL,
    request_id     INTEGER NOT NULL REFERENCES requests (id),
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (key_sha256, transaction_id)
);
