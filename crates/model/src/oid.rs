//! Object identifiers the templates speak: extended key usages by name, and OID syntax checks.

use crate::FieldError;

/// Extended key usages with the names administrators know them by (ADCS "application policies").
pub const NAMED_EKUS: &[(&str, &str)] = &[
    ("server-auth", "1.3.6.1.5.5.7.3.1"),
    ("client-auth", "1.3.6.1.5.5.7.3.2"),
    ("code-signing", "1.3.6.1.5.5.7.3.3"),
    ("email-protection", "1.3.6.1.5.5.7.3.4"),
    ("time-stamping", "1.3.6.1.5.5.7.3.8"),
    ("ocsp-signing", "1.3.6.1.5.5.7.3.9"),
    ("amt-provisioning", "2.16.840.1.113741.1.2.3"),
    ("smartcard-logon", "1.3.6.1.4.1.311.20.2.2"),
];

pub const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
pub const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
pub const AMT_PROVISIONING: &str = "2.16.840.1.113741.1.2.3";

/// Resolves a name from [`NAMED_EKUS`] or checks a dotted OID, returning the dotted form.
pub fn parse_eku(field: &str, text: &str) -> Result<String, FieldError> {
    let t = text.trim();
    if let Some((_, oid)) = NAMED_EKUS.iter().find(|(n, _)| n.eq_ignore_ascii_case(t)) {
        return Ok((*oid).to_string());
    }
    check_dotted_oid(field, t)?;
    Ok(t.to_string())
}

/// The friendly name of an EKU OID, or the OID itself.
pub fn eku_name(oid: &str) -> &str {
    NAMED_EKUS
        .iter()
        .find(|(_, o)| *o == oid)
        .map(|(n, _)| *n)
        .unwrap_or(oid)
}

/// Dotted-decimal OID syntax per X.660: first arc 0–2, second < 40 under 0 and 1, at least two arcs.
pub fn check_dotted_oid(field: &str, t: &str) -> Result<(), FieldError> {
    let bad = || {
        FieldError::new(
            field,
            format!(
                "`{t}` is neither a known name ({}) nor a dotted OID such as 2.16.840.1.113741.1.2.3",
                NAMED_EKUS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    let arcs: Vec<&str> = t.split('.').collect();
    if arcs.len() < 2
        || arcs.iter().any(|a| {
            a.is_empty()
                || !a.bytes().all(|b| b.is_ascii_digit())
                || (a.len() > 1 && a.starts_with('0'))
        })
    {
        return Err(bad());
    }
    let first: u32 = arcs[0].parse().map_err(|_| bad())?;
    let second: u64 = arcs[1].parse().map_err(|_| bad())?;
    if first > 2 || (first < 2 && second >= 40) || arcs.iter().any(|a| a.parse::<u64>().is_err()) {
        return Err(bad());
    }
    Ok(())
}

/// Key usage bits (RFC 5280 §4.2.1.3), named as in RFC 5280 / OpenSSL.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum KeyUsageBit {
    DigitalSignature,
    NonRepudiation,
    KeyEncipherment,
    DataEncipherment,
    KeyAgreement,
    KeyCertSign,
    CrlSign,
}

impl KeyUsageBit {
    pub const ALL: [KeyUsageBit; 7] = [
        Self::DigitalSignature,
        Self::NonRepudiation,
        Self::KeyEncipherment,
        Self::DataEncipherment,
        Self::KeyAgreement,
        Self::KeyCertSign,
        Self::CrlSign,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::DigitalSignature => "digitalSignature",
            Self::NonRepudiation => "nonRepudiation",
            Self::KeyEncipherment => "keyEncipherment",
            Self::DataEncipherment => "dataEncipherment",
            Self::KeyAgreement => "keyAgreement",
            Self::KeyCertSign => "keyCertSign",
            Self::CrlSign => "cRLSign",
        }
    }

    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                FieldError::new(
                    field,
                    format!(
                        "`{}` is not a key usage; expected one of {}",
                        text.trim(),
                        Self::ALL
                            .iter()
                            .map(|b| b.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eku_names_and_custom_oids() {
        assert_eq!(parse_eku("eku", "client-auth").unwrap(), CLIENT_AUTH);
        assert_eq!(
            parse_eku("eku", AMT_PROVISIONING).unwrap(),
            AMT_PROVISIONING
        );
        assert_eq!(eku_name(AMT_PROVISIONING), "amt-provisioning");
        for bad in ["", "1", "3.1", "1.40", "1.2.", "1..2", "a.b", "1.02"] {
            assert!(parse_eku("eku", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_usage_round_trip() {
        for b in KeyUsageBit::ALL {
            assert_eq!(KeyUsageBit::parse("ku", b.name()).unwrap(), b);
        }
        assert!(KeyUsageBit::parse("ku", "sign").is_err());
    }
}
