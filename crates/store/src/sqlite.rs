//! The SQLite backend: opening (creating, tuning and migrating) a database file.

use crate::StoreError;
use crate::db::Db;
use crate::sql::SqlStore;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

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
            .busy_timeout(BUSY_TIMEOUT)
            // Checkpoints run beside the writer (`checkpoints`), not inside the commit that
            // crosses 1,000 WAL pages: that commit, and every issuance waiting on it, paid for
            // copying the pages into the database file and its fsync.
            .pragma("wal_autocheckpoint", "0");
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
        let committed = Arc::new(Notify::new());
        let task = tokio::spawn(checkpoints(reader.clone(), committed.clone())).abort_handle();
        let mut store = Self::new(Db::Sqlite {
            writer,
            reader,
            committed,
        });
        store.task = Some(task);
        Ok(store)
    }
}

/// How long after a commit the checkpointer waits for more: under load, one checkpoint per
/// this many milliseconds' worth of commits.
const CHECKPOINT_DELAY: Duration = Duration::from_millis(100);

/// Copies committed WAL frames into the database file after commits, on a reader connection:
/// a PASSIVE checkpoint takes no write lock, so commits go on meanwhile, and the writer starts
/// the WAL over once everything in it is checkpointed. Ends when the store is dropped (its
/// task is aborted) or closed. Another process on the same file (the CLI) checkpoints when it
/// closes the database, as SQLite does for the last connection.
async fn checkpoints(reader: sqlx::SqlitePool, committed: Arc<Notify>) {
    loop {
        committed.notified().await;
        tokio::time::sleep(CHECKPOINT_DELAY).await;
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&reader)
            .await
        {
            Ok(_) => {}
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => tracing::warn!(error = %e, "SQLite WAL checkpoint failed"),
        }
    }
}
