//! The SQLite backend: opening (creating, tuning and migrating) a database file.

use crate::StoreError;
use crate::db::Db;
use crate::sql::SqlStore;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Duration;

/// Marks a [`SqlStore`] on SQLite.
#[derive(Debug)]
pub enum SqliteBackend {}

/// The embedded store: one SQLite file in WAL mode.
pub type SqliteStore = SqlStore<SqliteBackend>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Readers run concurrently under WAL; writers are serialized anyway (see [`Db::Sqlite`]).
const READERS: u32 = 4;

impl SqlStore<SqliteBackend> {
    /// Opens the database at `path`, creating the file if missing (its directory must exist)
    /// and applying pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The CA answers only after commit, so a commit must survive a power cut: FULL
            // syncs the WAL on every commit (NORMAL, the usual WAL choice, may lose the last ones).
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // No liveness ping before each use: a local file's connection cannot go stale, and the
        // ping was one more round trip to sqlx's connection thread per statement.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Self::new(Db::Sqlite { writer, reader }))
    }
}
