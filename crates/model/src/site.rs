//! What the site roles store: clients' state messages (fallback status point), registered
//! clients (management point) and one-time enrollment tokens (enrollment API).

use crate::UnixTime;
use serde::{Deserialize, Serialize};

/// A state message a client sent to the fallback status point. Telemetry, not audit: it comes
/// unauthenticated, so every field is only what the sender claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMessage {
    pub id: i64,
    pub received_at: UnixTime,
    /// The peer address it came from.
    pub source: String,
    /// The client name it claims to come from; may be empty.
    pub client: String,
    /// What it reports: `cert-selection-failed`, `renewal-failed`, `policy-signature-invalid`, …
    pub kind: String,
    /// The JSON text as received (size-capped by the server, not parsed by the store).
    pub body: String,
}

/// A status message not yet stored: the store assigns the id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewStatusMessage {
    pub received_at: UnixTime,
    pub source: String,
    pub client: String,
    pub kind: String,
    pub body: String,
}

/// Which status messages to list, newest first; `None` matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusFilter {
    pub client: Option<String>,
    pub kind: Option<String>,
    /// Only messages received at or after this time.
    pub since: Option<UnixTime>,
    /// At most this many messages (none if zero or negative).
    pub limit: i64,
}

impl StatusFilter {
    /// The default page size.
    pub const DEFAULT_LIMIT: i64 = 100;
}

impl Default for StatusFilter {
    /// Everything, at most [`StatusFilter::DEFAULT_LIMIT`] messages.
    fn default() -> Self {
        Self {
            client: None,
            kind: None,
            since: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// Where a registered client stands with the management point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    /// Registered, waiting for approval.
    Pending,
    Approved,
    Blocked,
}

impl ClientStatus {
    pub const ALL: [ClientStatus; 3] = [Self::Pending, Self::Approved, Self::Blocked];

    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Blocked => "blocked",
        }
    }

    pub fn parse(t: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == t)
    }
}

/// A client registered with the management point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub name: String,
    /// Lower-case hex SHA-256 of `identity_der`: the client's self-signed identity certificate
    /// (enhanced HTTP) or its PKI client certificate.
    pub identity_sha256: String,
    #[serde(with = "crate::record::hex_bytes")]
    pub identity_der: Vec<u8>,
    pub status: ClientStatus,
    pub registered_at: UnixTime,
    pub decided_at: Option<UnixTime>,
    /// The administrator who decided, or `site` for an automatic approval.
    pub decided_by: Option<String>,
}

/// A one-time enrollment token, issued by an administrator for a principal. Only the hash of
/// its secret is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollToken {
    /// The public id the holder presents with the secret.
    pub id: String,
    /// Whom it lets enroll.
    pub principal: String,
    /// The template it is limited to, if any.
    pub template: Option<String>,
    /// Lower-case hex SHA-256 of the secret.
    pub secret_sha256: String,
    pub created_at: UnixTime,
    /// Usable strictly before this time.
    pub expires_at: UnixTime,
    pub used_at: Option<UnixTime>,
    pub created_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_status_round_trips() {
        for s in ClientStatus::ALL {
            assert_eq!(ClientStatus::parse(s.name()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.name()));
        }
        assert_eq!(ClientStatus::parse("Approved"), None);
        assert_eq!(ClientStatus::parse(""), None);
    }

    #[test]
    fn client_record_serializes_der_as_hex() {
        let c = ClientRecord {
            name: "PC1".into(),
            identity_sha256: "ab".repeat(32),
            identity_der: vec![0x30, 0x00, 0xff],
            status: ClientStatus::Approved,
            registered_at: 1,
            decided_at: Some(2),
            decided_by: Some("site".into()),
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["identity_der"], "3000ff");
        assert_eq!(v["status"], "approved");
        assert_eq!(serde_json::from_value::<ClientRecord>(v).unwrap(), c);
    }

    #[test]
    fn status_filter_default_is_bounded() {
        let f = StatusFilter::default();
        assert_eq!(f.limit, StatusFilter::DEFAULT_LIMIT);
        assert!(f.client.is_none() && f.kind.is_none() && f.since.is_none());
    }
}
