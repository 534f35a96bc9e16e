//! The PostgreSQL backend: connecting to a server and migrating its schema.

use crate::StoreError;
use crate::db::Db;
use crate::sql::SqlStore;
use sqlx::postgres::PgPoolOptions;

/// Marks a [`SqlStore`] on PostgreSQL.
#[derive(Debug)]
pub enum PostgresBackend {}

/// The shared store for several CA processes: a PostgreSQL database.
pub type PostgresStore = SqlStore<PostgresBackend>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Writers are serialized on the audit head row, so more connections mostly serve reads.
const CONNECTIONS: u32 = 8;

impl SqlStore<PostgresBackend> {
    /// Connects to `url` (`postgres://user@host:port/db`) and applies pending migrations
    /// (sqlx holds an advisory lock, so processes starting together migrate once).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self::new(Db::Postgres(pool)))
    }
}
