//! What the CA stores: requests, issued certificates, revocations and published CRLs.

use crate::FieldError;
use crate::UnixTime;
use crate::template::Version;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Issued,
    Denied,
}

impl RequestStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Issued => "issued",
            Self::Denied => "denied",
        }
    }
    pub fn parse(t: &str) -> Option<Self> {
        match t {
            "pending" => Some(Self::Pending),
            "issued" => Some(Self::Issued),
            "denied" => Some(Self::Denied),
            _ => None,
        }
    }
}

/// A certificate request as received; kept whatever its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub id: i64,
    pub template: String,
    pub template_version: Version,
    /// Whom the certificate is for.
    pub principal: String,
    /// Who submitted it (the principal itself, or an administrator on its behalf).
    pub submitted_by: String,
    #[serde(with = "hex_bytes")]
    pub csr_der: Vec<u8>,
    pub status: RequestStatus,
    pub submitted_at: UnixTime,
    pub decided_at: Option<UnixTime>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    /// The issued certificate's serial, once issued.
    pub serial: Option<String>,
}

/// A request not yet stored: the store assigns the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    pub template: String,
    pub template_version: Version,
    pub principal: String,
    pub submitted_by: String,
    pub csr_der: Vec<u8>,
    pub submitted_at: UnixTime,
}

/// RFC 5280 §5.3.1 CRLReason codes (7 is unused in the standard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    RemoveFromCrl,
    PrivilegeWithdrawn,
    AaCompromise,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 10] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::RemoveFromCrl,
        Self::PrivilegeWithdrawn,
        Self::AaCompromise,
    ];

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::RemoveFromCrl => 8,
            Self::PrivilegeWithdrawn => 9,
            Self::AaCompromise => 10,
        }
    }

    pub fn from_code(c: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == c)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::RemoveFromCrl => "removeFromCRL",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
            Self::AaCompromise => "aACompromise",
        }
    }

    /// By RFC 5280 name (case-insensitive) or code. `removeFromCRL` is for delta CRLs only and
    /// cannot be asked for.
    pub fn parse(field: &str, t: &str) -> Result<Self, FieldError> {
        let t = t.trim();
        let found = t.parse::<u8>().ok().and_then(Self::from_code).or_else(|| {
            Self::ALL
                .into_iter()
                .find(|r| r.name().eq_ignore_ascii_case(t))
        });
        match found {
            Some(Self::RemoveFromCrl) => Err(FieldError::new(
                field,
                "removeFromCRL is set by the CA when a hold is released; it cannot be a revocation reason",
            )),
            Some(r) => Ok(r),
            None => Err(FieldError::new(
                field,
                format!(
                    "`{t}` is not an RFC 5280 reason; expected one of {}",
                    Self::ALL
                        .iter()
                        .filter(|r| **r != Self::RemoveFromCrl)
                        .map(|r| r.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub at: UnixTime,
    pub reason: RevocationReason,
}

/// An issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// Lower-case hex of the serial's DER content bytes.
    pub serial: String,
    pub template: String,
    pub template_version: Version,
    pub principal: String,
    pub subject: String,
    pub sans: Vec<String>,
    pub key: String,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    pub request_id: Option<i64>,
    #[serde(with = "hex_bytes")]
    pub der: Vec<u8>,
    pub revocation: Option<Revocation>,
}

/// A published CRL (full, or delta over `base_number`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlRecord {
    /// Which CA signed it: `issuing` (or `root` in a one-tier site), or `root` for the root's CRL.
    pub issuer: String,
    pub number: i64,
    pub base_number: Option<i64>,
    pub this_update: UnixTime,
    pub next_update: UnixTime,
    #[serde(with = "hex_bytes")]
    pub der: Vec<u8>,
}

/// Certificate inventory filters; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFilter {
    pub template: Option<String>,
    pub principal: Option<String>,
    /// Only unrevoked certificates whose notAfter falls before this time.
    pub expiring_before: Option<UnixTime>,
    /// Only certificates not yet expired at this time (notAfter at or after it): with
    /// `expiring_before`, the certificates that will expire in a window, without those that
    /// already did (which would otherwise pile up forever in an "expiring soon" count).
    pub unexpired_at: Option<UnixTime>,
    pub revoked_only: bool,
}

/// Byte strings as lower-case hex in JSON.
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip() {
        for r in RevocationReason::ALL
            .into_iter()
            .filter(|r| *r != RevocationReason::RemoveFromCrl)
        {
            assert_eq!(RevocationReason::parse("reason", r.name()).unwrap(), r);
            assert_eq!(RevocationReason::from_code(r.code()), Some(r));
        }
        assert!(RevocationReason::parse("reason", "7").is_err());
        assert!(RevocationReason::parse("reason", "removeFromCRL").is_err());
        assert_eq!(
            RevocationReason::parse("reason", "keycompromise").unwrap(),
            RevocationReason::KeyCompromise
        );
    }
}
