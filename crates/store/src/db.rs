//! The two sqlx backends behind one small interface (bind values, run a statement, read a
//! column), so that the store's logic and SQL are written once for SQLite and PostgreSQL.
//!
//! Every statement uses `$N` placeholders, which both sqlx drivers accept. The only dialect
//! differences that reach past this module are the schema (one migrations folder per backend)
//! and how a writing transaction takes the write lock ([`Db::begin`], [`Tx::audit_head`]).

use crate::StoreError;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Postgres, SqlSafeStr, SqlStr, Sqlite,
    Transaction, Type,
};
use std::sync::Arc;
use tokio::sync::Notify;

/// The statement as SQLite gets it: `$1, $2, …` become anonymous `?` when each placeholder
/// appears once and in order (as in all of the store's statements), so that sqlx binds by
/// position. With numbered placeholders it asks SQLite each parameter's name, a linear search
/// per parameter: quadratic in a multi-row insert's 320 parameters. Anything else is left as
/// it is (SQLite reads `$N` too).
fn for_sqlite(sql: SqlStr) -> SqlStr {
    match anonymous_placeholders(sql.as_str()) {
        Some(rewritten) => AssertSqlSafe(rewritten).into_sql_str(),
        None => sql,
    }
}

fn anonymous_placeholders(sql: &str) -> Option<String> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let (mut next, mut quoted, mut from, mut i) = (1u32, false, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'$' if !quoted => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits == 0 {
                    return None;
                }
                let n: u32 = sql[i + 1..i + 1 + digits].parse().ok()?;
                if n != next {
                    return None;
                }
                next += 1;
                out.push_str(&sql[from..i]);
                out.push('?');
                i += 1 + digits;
                from = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if next == 1 {
        return None;
    }
    out.push_str(&sql[from..]);
    Some(out)
}

/// One bound value. Nulls are typed because PostgreSQL checks a parameter's type against its
/// column even when the value is null.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Blob(Vec<u8>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Self {
        Arg::Blob(v.to_vec())
    }
}

/// `args![a, b, c]`: a statement's bind values, in placeholder order.
macro_rules! args {
    ($($v:expr),* $(,)?) => { vec![$($crate::db::Arg::from($v)),*] };
}
pub(crate) use args;

/// A value type both backends can decode.
pub(crate) trait Column:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}
impl<T> Column for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

fn bind<'q, DB: Database>(
    mut q: sqlx::query::Query<'q, DB, DB::Arguments>,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    Option<i64>: for<'t> Encode<'t, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + Type<DB>,
    Vec<u8>: for<'t> Encode<'t, DB> + Type<DB>,
{
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Blob(v) => q.bind(v),
        };
    }
    q
}

/// Runs `$body` with `$conn` bound to the backend's executor; the body is the same text for
/// both backends but is type-checked against each.
macro_rules! on_each {
    ($self:expr, $Sqlite:path, $Postgres:path, |$conn:ident| $body:expr) => {
        match $self {
            $Sqlite($conn) => $body,
            $Postgres($conn) => $body,
        }
    };
}

/// A row from either backend.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Row {
    /// Column `col` (a name or a position), decoded; a missing column or a value of the wrong
    /// type is `Corrupt`.
    pub(crate) fn get<T: Column, I>(&self, col: I) -> Result<T, StoreError>
    where
        I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + std::fmt::Display + Copy,
    {
        use sqlx::Row as _;
        on_each!(self, Row::Sqlite, Row::Postgres, |r| r.try_get::<T, _>(col))
            .map_err(|e| StoreError::Corrupt(format!("column `{col}`: {e}")))
    }
}

/// A connection pool of either backend.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    /// SQLite allows one writer at a time, so writes go through a one-connection pool (waiting
    /// in the pool's queue rather than in SQLite's busy loop) and reads through their own pool.
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
        /// Told of every commit, for the WAL checkpointer (see `sqlite::checkpoints`).
        committed: Arc<Notify>,
    },
    Postgres(PgPool),
}

/// The pool reads run on.
enum ReadPool<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

impl Db {
    /// `sql` in this backend's placeholder style (see [`for_sqlite`]).
    fn dialect(&self, sql: impl SqlSafeStr) -> SqlStr {
        match self {
            Db::Sqlite { .. } => for_sqlite(sql.into_sql_str()),
            Db::Postgres(_) => sql.into_sql_str(),
        }
    }

    fn read_pool(&self) -> ReadPool<'_> {
        match self {
            Db::Sqlite { reader, .. } => ReadPool::Sqlite(reader),
            Db::Postgres(p) => ReadPool::Postgres(p),
        }
    }

    pub(crate) async fn fetch_all(
        &self,
        sql: impl SqlSafeStr,
        args: Vec<Arg>,
    ) -> Result<Vec<Row>, StoreError> {
        let sql = self.dialect(sql);
        Ok(on_each!(
            self.read_pool(),
            ReadPool::Sqlite,
            ReadPool::Postgres,
            |p| {
                bind(sqlx::query(sql), args)
                    .fetch_all(p)
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect()
            }
        ))
    }

    pub(crate) async fn fetch_optional(
        &self,
        sql: &'static str,
        args: Vec<Arg>,
    ) -> Result<Option<Row>, StoreError> {
        let sql = self.dialect(sql);
        Ok(on_each!(
            self.read_pool(),
            ReadPool::Sqlite,
            ReadPool::Postgres,
            |p| {
                bind(sqlx::query(sql), args)
                    .fetch_optional(p)
                    .await?
                    .map(Into::into)
            }
        ))
    }

    pub(crate) async fn fetch_one(
        &self,
        sql: impl SqlSafeStr,
        args: Vec<Arg>,
    ) -> Result<Row, StoreError> {
        let sql = self.dialect(sql);
        Ok(on_each!(
            self.read_pool(),
            ReadPool::Sqlite,
            ReadPool::Postgres,
            |p| { bind(sqlx::query(sql), args).fetch_one(p).await?.into() }
        ))
    }

    /// Starts a writing transaction that already holds the write lock, so that what it reads
    /// (the audit head, a request's status) cannot change before it commits. SQLite: `BEGIN
    /// IMMEDIATE` (a deferred transaction that reads first can fail to upgrade under WAL).
    /// PostgreSQL: the lock is the audit head row, taken by [`Tx::audit_head`].
    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Db::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Called after each commit of [`Store::apply`](crate::Store::apply).
    pub(crate) fn committed(&self) {
        if let Db::Sqlite { committed, .. } = self {
            committed.notify_one();
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Db::Sqlite { writer, reader, .. } => {
                writer.close().await;
                reader.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }
}

impl From<SqliteRow> for Row {
    fn from(r: SqliteRow) -> Self {
        Row::Sqlite(r)
    }
}
impl From<PgRow> for Row {
    fn from(r: PgRow) -> Self {
        Row::Postgres(r)
    }
}

/// A writing transaction. Dropped without [`Tx::commit`], it rolls back.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// `sql` in this backend's placeholder style (see [`for_sqlite`]).
    fn dialect(&self, sql: &'static str) -> SqlStr {
        match self {
            Tx::Sqlite(_) => for_sqlite(sql.into_sql_str()),
            Tx::Postgres(_) => sql.into_sql_str(),
        }
    }

    /// Runs a statement; returns the number of rows it changed.
    pub(crate) async fn exec(
        &mut self,
        sql: &'static str,
        args: Vec<Arg>,
    ) -> Result<u64, StoreError> {
        let sql = self.dialect(sql);
        Ok(on_each!(self, Tx::Sqlite, Tx::Postgres, |t| bind(
            sqlx::query(sql),
            args
        )
        .execute(&mut **t)
        .await?
        .rows_affected()))
    }

    pub(crate) async fn fetch_optional(
        &mut self,
        sql: &'static str,
        args: Vec<Arg>,
    ) -> Result<Option<Row>, StoreError> {
        let sql = self.dialect(sql);
        Ok(on_each!(self, Tx::Sqlite, Tx::Postgres, |t| bind(
            sqlx::query(sql),
            args
        )
        .fetch_optional(&mut **t)
        .await?
        .map(Into::into)))
    }

    pub(crate) async fn fetch_all(
        &mut self,
        sql: &'static str,
        args: Vec<Arg>,
    ) -> Result<Vec<Row>, StoreError> {
        let sql = self.dialect(sql);
        Ok(on_each!(self, Tx::Sqlite, Tx::Postgres, |t| bind(
            sqlx::query(sql),
            args
        )
        .fetch_all(&mut **t)
        .await?
        .into_iter()
        .map(Into::into)
        .collect()))
    }

    pub(crate) async fn fetch_one(
        &mut self,
        sql: &'static str,
        args: Vec<Arg>,
    ) -> Result<Row, StoreError> {
        let sql = self.dialect(sql);
        Ok(on_each!(self, Tx::Sqlite, Tx::Postgres, |t| bind(
            sqlx::query(sql),
            args
        )
        .fetch_one(&mut **t)
        .await?
        .into()))
    }

    /// Reads the audit head `(seq, hash)`. On PostgreSQL the row is locked until commit: every
    /// writer takes this lock first, so writers are serialized and the chain cannot fork.
    pub(crate) async fn audit_head(&mut self) -> Result<Row, StoreError> {
        let sql = match self {
            Tx::Sqlite(_) => "SELECT seq, hash FROM audit_head WHERE id = 1",
            Tx::Postgres(_) => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
        };
        self.fetch_one(sql, vec![]).await
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        on_each!(self, Tx::Sqlite, Tx::Postgres, |t| t.commit().await?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::anonymous_placeholders as anon;

    #[test]
    fn numbered_placeholders_in_order_become_anonymous() {
        assert_eq!(
            anon("INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)").as_deref(),
            Some("INSERT INTO t (a, b) VALUES (?, ?), (?, ?)")
        );
        assert_eq!(
            anon("UPDATE t SET s = 'issued', d = $1 WHERE id = $2").as_deref(),
            Some("UPDATE t SET s = 'issued', d = ? WHERE id = ?")
        );
        // Two digits.
        let many: Vec<String> = (1..=12).map(|n| format!("${n}")).collect();
        assert_eq!(
            anon(&format!("VALUES ({})", many.join(","))).as_deref(),
            Some(format!("VALUES ({})", ["?"; 12].join(",")).as_str())
        );
    }

    #[test]
    fn anything_else_is_left_alone() {
        assert_eq!(anon("SELECT 1"), None, "no placeholder");
        assert_eq!(anon("SELECT $2, $1"), None, "out of order");
        assert_eq!(anon("SELECT $1 WHERE a = $1"), None, "used twice");
        assert_eq!(anon("SELECT $a"), None, "named");
        assert_eq!(
            anon("SELECT '$1' || $1").as_deref(),
            Some("SELECT '$1' || ?")
        );
    }
}
