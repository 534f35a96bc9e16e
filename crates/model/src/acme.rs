//! ACME (RFC 8555) state the store keeps: accounts, external account binding keys, orders and
//! authorizations with their challenges.

use crate::UnixTime;
use serde::{Deserialize, Serialize};

/// An ACME account: a client's public key, possibly bound to a directory principal by EAB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAccount {
    pub id: String,
    /// The account key as a JWK (JSON text, public members only).
    pub jwk: String,
    /// RFC 7638 SHA-256 thumbprint of `jwk`, base64url: one account per key.
    pub thumbprint: String,
    pub status: AccountStatus,
    pub contact: Vec<String>,
    /// The directory principal certificates are requested for: the EAB key's principal, or
    /// none (the role's configured principal).
    pub principal: Option<String>,
    /// The EAB key id used to create it (each EAB key binds one account).
    pub eab_kid: Option<String>,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Valid,
    Deactivated,
    Revoked,
}

impl AccountStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Deactivated => "deactivated",
            Self::Revoked => "revoked",
        }
    }
}

/// An external account binding key (`fleetpki acme eab`): its MAC key ties a new account to
/// `principal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EabKey {
    pub kid: String,
    pub principal: String,
    /// The HMAC key. It must be stored whole: the server recomputes the client's MAC.
    pub hmac_key: Vec<u8>,
    pub created_at: UnixTime,
    pub created_by: String,
}

/// An RFC 8555 order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeOrder {
    pub id: String,
    pub account: String,
    pub status: OrderStatus,
    pub expires: UnixTime,
    /// DNS identifiers, lower case, sorted, distinct.
    pub identifiers: Vec<String>,
    /// Authorization ids, one per identifier, in the same order.
    pub authorizations: Vec<String>,
    /// The CA request finalize submitted (kept while it waits for approval).
    pub request_id: Option<i64>,
    /// The issued certificate's serial once valid.
    pub serial: Option<String>,
    pub error: Option<AcmeError>,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
}

impl OrderStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Processing => "processing",
            Self::Valid => "valid",
            Self::Invalid => "invalid",
        }
    }
}

/// An authorization of one account for one DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAuthz {
    pub id: String,
    pub account: String,
    /// The DNS name, lower case, without a `*.` prefix.
    pub identifier: String,
    pub wildcard: bool,
    pub status: AuthzStatus,
    pub expires: UnixTime,
    pub challenges: Vec<AcmeChallenge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthzStatus {
    Pending,
    Valid,
    Invalid,
    Deactivated,
    Expired,
    Revoked,
}

impl AuthzStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Deactivated => "deactivated",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeChallenge {
    /// `http-01` or `dns-01`; also the last segment of its URL.
    pub kind: String,
    pub token: String,
    pub status: ChallengeStatus,
    pub validated: Option<UnixTime>,
    pub error: Option<AcmeError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeStatus {
    Pending,
    Processing,
    Valid,
    Invalid,
}

impl ChallengeStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Valid => "valid",
            Self::Invalid => "invalid",
        }
    }
}

/// A stored problem: the ACME error type (without the `urn:ietf:params:acme:error:` prefix)
/// and its detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeError {
    pub kind: String,
    pub detail: String,
}
