//! fleetpki's domain model: the types every other crate speaks, and the rules on their values.
//!
//! Nothing here does I/O or cryptography beyond hashing the audit chain; the CA, the store and
//! the protocols all build on these types so that a template means the same thing everywhere.

pub mod acme;
pub mod audit;
pub mod config_file;
pub mod directory;
pub mod duration;
pub mod error;
pub mod oid;
pub mod record;
pub mod site;
pub mod template;

pub use error::FieldError;

/// Seconds since the Unix epoch, UTC. Every stored time uses this so both databases agree.
pub type UnixTime = i64;

/// The current time as [`UnixTime`].
pub fn now() -> UnixTime {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Formats a [`UnixTime`] as RFC 3339 (UTC) for people and JSON.
pub fn fmt_time(t: UnixTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}
