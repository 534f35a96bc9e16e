//! The ACME role's tables: accounts, EAB keys, orders and authorizations (SQL written once for
//! both backends, like the rest of the store).

use crate::StoreError;
use crate::db::{Db, Row, Tx, args};
use fleetpki_model::UnixTime;
use fleetpki_model::acme::{AcmeAccount, AcmeAuthz, AcmeOrder, EabKey, OrderStatus};

macro_rules! account_cols {
    () => {
        "id, thumbprint, jwk, status, contact, principal, eab_kid, created_at"
    };
}
pub(crate) use account_cols;

fn conflict(what: &'static str, key: &str, why: &str) -> StoreError {
    StoreError::Conflict {
        what,
        key: key.to_string(),
        why: why.to_string(),
    }
}

fn corrupt(what: &str, key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what} `{key}`: {e}"))
}

fn to_json<T: serde::Serialize>(what: &str, key: &str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| corrupt(what, key, e))
}

async fn account_exists(tx: &mut Tx, id: &str) -> Result<(), StoreError> {
    match tx
        .fetch_optional("SELECT 1 FROM acme_accounts WHERE id = $1", args![id])
        .await?
    {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound {
            what: "acme account",
            key: id.to_string(),
        }),
    }
}

async fn thumbprint_owner(tx: &mut Tx, thumbprint: &str) -> Result<Option<String>, StoreError> {
    tx.fetch_optional(
        "SELECT id FROM acme_accounts WHERE thumbprint = $1",
        args![thumbprint],
    )
    .await?
    .map(|r| r.get("id"))
    .transpose()
}

pub(crate) async fn new_account(tx: &mut Tx, a: &AcmeAccount) -> Result<(), StoreError> {
    if thumbprint_owner(tx, &a.thumbprint).await?.is_some() {
        return Err(conflict(
            "acme account",
            &a.id,
            "this key already belongs to an account",
        ));
    }
    if let Some(kid) = &a.eab_kid {
        if tx
            .fetch_optional("SELECT 1 FROM acme_eab_keys WHERE kid = $1", args![kid])
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound {
                what: "acme eab key",
                key: kid.clone(),
            });
        }
        if tx
            .fetch_optional("SELECT 1 FROM acme_accounts WHERE eab_kid = $1", args![kid])
            .await?
            .is_some()
        {
            return Err(conflict(
                "acme eab key",
                kid,
                "already bound to another account",
            ));
        }
    }
    let n = tx
        .exec(
            concat!(
                "INSERT INTO acme_accounts (",
                account_cols!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING"
            ),
            args![
                a.id.as_str(),
                a.thumbprint.as_str(),
                a.jwk.as_str(),
                a.status.name(),
                to_json("acme account", &a.id, &a.contact)?,
                a.principal.clone(),
                a.eab_kid.clone(),
                a.created_at,
            ],
        )
        .await?;
    if n == 0 {
        return Err(conflict("acme account", &a.id, "the id exists"));
    }
    Ok(())
}

pub(crate) async fn update_account(tx: &mut Tx, a: &AcmeAccount) -> Result<(), StoreError> {
    account_exists(tx, &a.id).await?;
    if let Some(owner) = thumbprint_owner(tx, &a.thumbprint).await?
        && owner != a.id
    {
        return Err(conflict(
            "acme account",
            &a.id,
            "the new key already belongs to another account",
        ));
    }
    tx.exec(
        "UPDATE acme_accounts SET thumbprint = $1, jwk = $2, status = $3, contact = $4 WHERE id = $5",
        args![
            a.thumbprint.as_str(),
            a.jwk.as_str(),
            a.status.name(),
            to_json("acme account", &a.id, &a.contact)?,
            a.id.as_str(),
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn create_eab(tx: &mut Tx, k: &EabKey) -> Result<(), StoreError> {
    let n = tx
        .exec(
            "INSERT INTO acme_eab_keys (kid, principal, hmac_key, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kid) DO NOTHING",
            args![
                k.kid.as_str(),
                k.principal.as_str(),
                k.hmac_key.as_slice(),
                k.created_at,
                k.created_by.as_str(),
            ],
        )
        .await?;
    if n == 0 {
        return Err(conflict("acme eab key", &k.kid, "the kid exists"));
    }
    Ok(())
}

/// Stores an order: one statement on the hot paths (newOrder, finalize), since every issuance
/// goes through both and the committer runs them one after another.
pub(crate) async fn put_order(
    tx: &mut Tx,
    o: &AcmeOrder,
    only_if: Option<OrderStatus>,
) -> Result<(), StoreError> {
    let body = to_json("acme order", &o.id, o)?;
    let Some(want) = only_if else {
        // Inserted (or replaced) only while its account exists: 0 rows means there is none.
        let n = tx
            .exec(
                "INSERT INTO acme_orders (id, account, status, serial, body) \
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM acme_accounts WHERE id = $2) \
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, serial = excluded.serial, \
                 body = excluded.body",
                args![
                    o.id.as_str(),
                    o.account.as_str(),
                    o.status.name(),
                    o.serial.clone(),
                    body,
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "acme account",
                key: o.account.clone(),
            });
        }
        return Ok(());
    };
    // Changed only while it still has the status the caller saw (two finalizations of one
    // order: the second changes nothing); the order's account is fixed when it is inserted.
    let n = tx
        .exec(
            "UPDATE acme_orders SET status = $1, serial = $2, body = $3 \
             WHERE id = $4 AND account = $5 AND status = $6",
            args![
                o.status.name(),
                o.serial.clone(),
                body,
                o.id.as_str(),
                o.account.as_str(),
                want.name(),
            ],
        )
        .await?;
    if n == 0 {
        let now: Option<String> = tx
            .fetch_optional(
                "SELECT status FROM acme_orders WHERE id = $1",
                args![o.id.as_str()],
            )
            .await?
            .map(|r| r.get("status"))
            .transpose()?;
        return Err(StoreError::Conflict {
            what: "acme order",
            key: o.id.clone(),
            why: format!(
                "is {}, not {}",
                now.as_deref().unwrap_or("missing"),
                want.name()
            ),
        });
    }
    Ok(())
}

pub(crate) async fn put_authz(tx: &mut Tx, a: &AcmeAuthz) -> Result<(), StoreError> {
    account_exists(tx, &a.account).await?;
    tx.exec(
        "INSERT INTO acme_authorizations (id, account, identifier, status, expires, body) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, expires = excluded.expires, \
         body = excluded.body",
        args![
            a.id.as_str(),
            a.account.as_str(),
            a.identifier.as_str(),
            a.status.name(),
            a.expires,
            to_json("acme authorization", &a.id, a)?,
        ],
    )
    .await?;
    Ok(())
}

pub(crate) fn account_from(row: &Row) -> Result<AcmeAccount, StoreError> {
    let id: String = row.get("id")?;
    let status: String = row.get("status")?;
    let contact: String = row.get("contact")?;
    Ok(AcmeAccount {
        thumbprint: row.get("thumbprint")?,
        jwk: row.get("jwk")?,
        status: serde_json::from_value(serde_json::Value::String(status))
            .map_err(|e| corrupt("acme account", &id, e))?,
        contact: serde_json::from_str(&contact).map_err(|e| corrupt("acme account", &id, e))?,
        principal: row.get("principal")?,
        eab_kid: row.get("eab_kid")?,
        created_at: row.get("created_at")?,
        id,
    })
}

fn body<T: serde::de::DeserializeOwned>(what: &str, row: &Row) -> Result<T, StoreError> {
    let id: String = row.get("id")?;
    let body: String = row.get("body")?;
    serde_json::from_str(&body).map_err(|e| corrupt(what, &id, e))
}

pub(crate) async fn account(
    db: &Db,
    sql: &'static str,
    key: &str,
) -> Result<Option<AcmeAccount>, StoreError> {
    db.fetch_optional(sql, args![key])
        .await?
        .as_ref()
        .map(account_from)
        .transpose()
}

pub(crate) async fn eab_key(db: &Db, kid: &str) -> Result<Option<EabKey>, StoreError> {
    db.fetch_optional(
        "SELECT kid, principal, hmac_key, created_at, created_by FROM acme_eab_keys WHERE kid = $1",
        args![kid],
    )
    .await?
    .map(|r| {
        Ok(EabKey {
            kid: r.get("kid")?,
            principal: r.get("principal")?,
            hmac_key: r.get("hmac_key")?,
            created_at: r.get("created_at")?,
            created_by: r.get("created_by")?,
        })
    })
    .transpose()
}

pub(crate) async fn order(
    db: &Db,
    sql: &'static str,
    key: &str,
) -> Result<Option<AcmeOrder>, StoreError> {
    db.fetch_optional(sql, args![key])
        .await?
        .as_ref()
        .map(|r| body("acme order", r))
        .transpose()
}

pub(crate) async fn orders_of(
    db: &Db,
    account: &str,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    db.fetch_all(
        "SELECT id FROM acme_orders WHERE account = $1 ORDER BY id LIMIT $2",
        args![account, limit.max(0)],
    )
    .await?
    .iter()
    .map(|r| r.get("id"))
    .collect()
}

pub(crate) async fn authz(db: &Db, id: &str) -> Result<Option<AcmeAuthz>, StoreError> {
    db.fetch_optional(
        "SELECT id, body FROM acme_authorizations WHERE id = $1",
        args![id],
    )
    .await?
    .as_ref()
    .map(|r| body("acme authorization", r))
    .transpose()
}

pub(crate) async fn valid_authz(
    db: &Db,
    account: &str,
    identifier: &str,
    wildcard: bool,
    at: UnixTime,
) -> Result<Option<AcmeAuthz>, StoreError> {
    let rows = db
        .fetch_all(
            "SELECT id, body FROM acme_authorizations WHERE account = $1 AND identifier = $2 \
             AND status = 'valid' AND expires > $3 ORDER BY expires DESC LIMIT 4",
            args![account, identifier, at],
        )
        .await?;
    for r in &rows {
        let a: AcmeAuthz = body("acme authorization", r)?;
        if a.wildcard == wildcard {
            return Ok(Some(a));
        }
    }
    Ok(None)
}
