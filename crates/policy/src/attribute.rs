//! Subject attributes for client certificate selection by DN name or OID (SPEC §5 table,
//! seed 000): the names Configuration Manager accepts, resolved to dotted OIDs.

use crate::PolicyError;

/// DN attribute names (compared case-insensitively) and their OIDs, as in SPEC §5.
pub const DN_ATTRIBUTES: &[(&str, &str)] = &[
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("E", "1.2.840.113549.1.9.1"),
    ("E-mail", "1.2.840.113549.1.9.1"),
    ("CN", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("S", "2.5.4.8"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("T", "2.5.4.12"),
    ("Title", "2.5.4.12"),
    ("G", "2.5.4.42"),
    ("GN", "2.5.4.42"),
    ("GivenName", "2.5.4.42"),
    ("I", "2.5.4.43"),
    ("Initials", "2.5.4.43"),
];

/// The subject alternative name extension: selectable by OID only (the table has no DN name
/// for it); only its first value counts (seed 002).
pub const SAN_OID: &str = "2.5.29.17";

/// Resolves a DN attribute name from [`DN_ATTRIBUTES`] (case-insensitive) or a dotted OID to
/// the dotted OID. Anything else is an error on `field` listing the accepted names.
pub fn attribute_oid(field: &str, name_or_oid: &str) -> Result<String, PolicyError> {
    let t = name_or_oid.trim();
    if let Some((_, oid)) = DN_ATTRIBUTES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(t))
    {
        return Ok((*oid).to_string());
    }
    // Digits first: a dotted OID; the model's syntax check applies (its message speaks of
    // EKUs, so only its verdict is used).
    if t.starts_with(|c: char| c.is_ascii_digit())
        && fleetpki_model::oid::check_dotted_oid(field, t).is_ok()
    {
        return Ok(t.to_string());
    }
    Err(PolicyError::invalid(
        field,
        format!(
            "`{t}` is neither a DN attribute ({}) nor a dotted OID such as 2.5.4.3",
            DN_ATTRIBUTES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_alias_resolves() {
        let expected = [
            ("DC", "0.9.2342.19200300.100.1.25"),
            ("E", "1.2.840.113549.1.9.1"),
            ("E-mail", "1.2.840.113549.1.9.1"),
            ("CN", "2.5.4.3"),
            ("SN", "2.5.4.4"),
            ("SERIALNUMBER", "2.5.4.5"),
            ("C", "2.5.4.6"),
            ("L", "2.5.4.7"),
            ("S", "2.5.4.8"),
            ("ST", "2.5.4.8"),
            ("STREET", "2.5.4.9"),
            ("O", "2.5.4.10"),
            ("OU", "2.5.4.11"),
            ("T", "2.5.4.12"),
            ("Title", "2.5.4.12"),
            ("G", "2.5.4.42"),
            ("GN", "2.5.4.42"),
            ("GivenName", "2.5.4.42"),
            ("I", "2.5.4.43"),
            ("Initials", "2.5.4.43"),
        ];
        for (name, oid) in expected {
            assert_eq!(attribute_oid("f", name).unwrap(), oid, "{name}");
            assert_eq!(
                attribute_oid("f", &name.to_ascii_lowercase()).unwrap(),
                oid,
                "{name} lower"
            );
            assert_eq!(
                attribute_oid("f", &format!(" {} ", name.to_ascii_uppercase())).unwrap(),
                oid,
                "{name} upper, padded"
            );
        }
        assert_eq!(attribute_oid("f", "givenname").unwrap(), "2.5.4.42");
        assert_eq!(
            attribute_oid("f", "e-MAIL").unwrap(),
            "1.2.840.113549.1.9.1"
        );
    }

    #[test]
    fn dotted_oids_pass_through() {
        for oid in [
            "2.5.4.3",
            SAN_OID,
            "0.9.2342.19200300.100.1.25",
            "1.3.6.1.4.1.311.20.2.3",
        ] {
            assert_eq!(attribute_oid("f", oid).unwrap(), oid);
        }
    }

    #[test]
    fn unknown_names_and_bad_oids_name_the_field() {
        for bad in [
            "",
            "X",
            "CommonName",
            "E_mail",
            "2.5..4",
            "3.1",
            "1.40",
            "2.5.4.x",
        ] {
            let e = attribute_oid("selection.attribute", bad).unwrap_err();
            assert_eq!(e.field(), "selection.attribute", "{bad}");
            assert!(matches!(e, PolicyError::Invalid { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("CN"), "{e}");
        }
    }
}
