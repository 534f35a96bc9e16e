//! Storage errors: what was missing or in conflict, or what the database said.

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{what} `{key}` does not exist")]
    NotFound { what: &'static str, key: String },
    #[error("{what} `{key}`: {why}")]
    Conflict {
        what: &'static str,
        key: String,
        why: String,
    },
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the group committer has stopped")]
    CommitterGone,
}
