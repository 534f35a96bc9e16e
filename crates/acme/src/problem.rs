//! ACME problem types (RFC 8555 §6.7) and the RFC 7807 problem document they are sent in.

use serde::Serialize;

/// The ACME error types fleetpki answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    AccountDoesNotExist,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadPublicKey,
    BadRevocationReason,
    BadSignatureAlgorithm,
    Connection,
    Dns,
    ExternalAccountRequired,
    IncorrectResponse,
    InvalidContact,
    Malformed,
    OrderNotReady,
    RateLimited,
    RejectedIdentifier,
    ServerInternal,
    Unauthorized,
    UnsupportedContact,
    UnsupportedIdentifier,
}

impl ProblemType {
    /// The type's name after `urn:ietf:params:acme:error:`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AccountDoesNotExist => "accountDoesNotExist",
            Self::AlreadyRevoked => "alreadyRevoked",
            Self::BadCsr => "badCSR",
            Self::BadNonce => "badNonce",
            Self::BadPublicKey => "badPublicKey",
            Self::BadRevocationReason => "badRevocationReason",
            Self::BadSignatureAlgorithm => "badSignatureAlgorithm",
            Self::Connection => "connection",
            Self::Dns => "dns",
            Self::ExternalAccountRequired => "externalAccountRequired",
            Self::IncorrectResponse => "incorrectResponse",
            Self::InvalidContact => "invalidContact",
            Self::Malformed => "malformed",
            Self::OrderNotReady => "orderNotReady",
            Self::RateLimited => "rateLimited",
            Self::RejectedIdentifier => "rejectedIdentifier",
            Self::ServerInternal => "serverInternal",
            Self::Unauthorized => "unauthorized",
            Self::UnsupportedContact => "unsupportedContact",
            Self::UnsupportedIdentifier => "unsupportedIdentifier",
        }
    }

    /// The full URN.
    pub fn urn(self) -> String {
        format!("urn:ietf:params:acme:error:{}", self.name())
    }

    /// The HTTP status this type is sent with.
    pub fn status(self) -> u16 {
        match self {
            Self::AccountDoesNotExist => 400,
            Self::Unauthorized => 403,
            Self::OrderNotReady => 403,
            Self::RateLimited => 429,
            Self::ServerInternal => 500,
            _ => 400,
        }
    }

    /// The inverse of [`ProblemType::name`].
    pub fn parse(name: &str) -> Option<Self> {
        ALL.iter().copied().find(|t| t.name() == name)
    }
}

const ALL: [ProblemType; 20] = [
    ProblemType::AccountDoesNotExist,
    ProblemType::AlreadyRevoked,
    ProblemType::BadCsr,
    ProblemType::BadNonce,
    ProblemType::BadPublicKey,
    ProblemType::BadRevocationReason,
    ProblemType::BadSignatureAlgorithm,
    ProblemType::Connection,
    ProblemType::Dns,
    ProblemType::ExternalAccountRequired,
    ProblemType::IncorrectResponse,
    ProblemType::InvalidContact,
    ProblemType::Malformed,
    ProblemType::OrderNotReady,
    ProblemType::RateLimited,
    ProblemType::RejectedIdentifier,
    ProblemType::ServerInternal,
    ProblemType::Unauthorized,
    ProblemType::UnsupportedContact,
    ProblemType::UnsupportedIdentifier,
];

/// A refused ACME request: its type and a detail naming the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", kind.name())]
pub struct Problem {
    pub kind: ProblemType,
    pub detail: String,
    /// `badSignatureAlgorithm` lists the algorithms accepted.
    pub algorithms: Option<Vec<&'static str>>,
}

impl Problem {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            algorithms: None,
        }
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Malformed, detail)
    }

    /// The RFC 7807 document (`application/problem+json`).
    pub fn document(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct Doc<'a> {
            #[serde(rename = "type")]
            kind: String,
            detail: &'a str,
            status: u16,
            #[serde(skip_serializing_if = "Option::is_none")]
            algorithms: Option<&'a Vec<&'static str>>,
        }
        serde_json::to_value(Doc {
            kind: self.kind.urn(),
            detail: &self.detail,
            status: self.kind.status(),
            algorithms: self.algorithms.as_ref(),
        })
        .unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in ALL {
            assert_eq!(ProblemType::parse(t.name()), Some(t));
            assert!(t.urn().starts_with("urn:ietf:params:acme:error:"));
        }
        let d = Problem::new(ProblemType::BadNonce, "nonce: used before").document();
        assert_eq!(d["type"], "urn:ietf:params:acme:error:badNonce");
        assert_eq!(d["status"], 400);
        assert!(d.get("algorithms").is_none());
    }
}
