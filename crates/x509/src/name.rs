//! Distinguished names: building them from (attribute, value) pairs with the string types
//! RFC 5280 requires, and rendering them as RFC 4514 strings for people.

use crate::X509Error;
use der::asn1::{Any, ObjectIdentifier as Oid};
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

/// How an attribute's value is encoded, and the RFC 5280 upper bound on its length.
#[derive(Clone, Copy)]
enum Kind {
    Utf8,
    Printable,
    Ia5,
    Country,
}

struct Attr {
    /// The short name shown by [`to_string`]; `aliases` are also accepted by [`build`].
    name: &'static str,
    aliases: &'static [&'static str],
    oid: Oid,
    kind: Kind,
    max: usize,
}

const fn attr(
    name: &'static str,
    aliases: &'static [&'static str],
    oid: &str,
    kind: Kind,
    max: usize,
) -> Attr {
    Attr {
        name,
        aliases,
        oid: Oid::new_unwrap(oid),
        kind,
        max,
    }
}

/// Upper bounds from RFC 5280 Appendix A (ub-*); 0 = no bound.
const ATTRS: &[Attr] = &[
    attr("CN", &["commonName"], "2.5.4.3", Kind::Utf8, 64),
    attr("SN", &["surname"], "2.5.4.4", Kind::Utf8, 0),
    attr(
        "SERIALNUMBER",
        &["serialNumber"],
        "2.5.4.5",
        Kind::Printable,
        64,
    ),
    attr("C", &["countryName"], "2.5.4.6", Kind::Country, 2),
    attr("L", &["localityName"], "2.5.4.7", Kind::Utf8, 128),
    attr(
        "ST",
        &["S", "stateOrProvinceName"],
        "2.5.4.8",
        Kind::Utf8,
        128,
    ),
    attr("STREET", &["streetAddress"], "2.5.4.9", Kind::Utf8, 128),
    attr("O", &["organizationName"], "2.5.4.10", Kind::Utf8, 64),
    attr(
        "OU",
        &["organizationalUnitName"],
        "2.5.4.11",
        Kind::Utf8,
        64,
    ),
    attr("T", &["title"], "2.5.4.12", Kind::Utf8, 64),
    attr("GN", &["G", "givenName"], "2.5.4.42", Kind::Utf8, 0),
    attr("I", &["initials"], "2.5.4.43", Kind::Utf8, 0),
    attr(
        "DC",
        &["domainComponent"],
        "0.9.2342.19200300.100.1.25",
        Kind::Ia5,
        63,
    ),
    attr(
        "UID",
        &["userId"],
        "0.9.2342.19200300.100.1.1",
        Kind::Utf8,
        0,
    ),
    attr(
        "E",
        &["emailAddress", "email", "E-mail"],
        "1.2.840.113549.1.9.1",
        Kind::Ia5,
        255,
    ),
];

const CN: Oid = Oid::new_unwrap("2.5.4.3");

fn lookup(key: &str) -> Option<&'static Attr> {
    ATTRS.iter().find(|a| {
        a.name.eq_ignore_ascii_case(key) || a.aliases.iter().any(|x| x.eq_ignore_ascii_case(key))
    })
}

/// Builds a Name from (attribute, value) pairs, attributes by short name: CN, O, OU, C, L, ST,
/// DC, E/emailAddress, SERIALNUMBER (and SN, STREET, T, GN, I, UID). UTF8String except C and
/// SERIALNUMBER (PrintableString) and DC/E (IA5String), as RFC 5280 requires. Error field
/// "subject".
///
/// The pairs are in RFC 4514 order, most specific first, as [`to_string`] prints them:
/// `[("CN", "pc1"), ("O", "Contoso")]` displays as `CN=pc1,O=Contoso` (and is encoded O first).
pub fn build(pairs: &[(&str, &str)]) -> Result<Name, X509Error> {
    let mut rdns = RdnSequence::default();
    for (key, value) in pairs.iter().rev() {
        let atv = atv(key, value)?;
        let rdn = RelativeDistinguishedName::try_from(vec![atv])
            .map_err(|e| X509Error::internal("subject", format!("cannot build an RDN: {e}")))?;
        rdns.push(rdn);
    }
    // `Name` has no public constructor from an RDN sequence; both share one encoding.
    let der = rdns
        .to_der()
        .map_err(|e| X509Error::internal("subject", format!("cannot encode the name: {e}")))?;
    Name::from_der(&der)
        .map_err(|e| X509Error::internal("subject", format!("cannot decode the name: {e}")))
}

/// Parses an RFC 4514 string (`CN=pc1.fleet.test,O=Contoso`) with the attributes [`build`]
/// knows; error field "subject".
pub fn parse(text: &str) -> Result<Name, X509Error> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    if text.trim().is_empty() {
        return build(&[]);
    }
    for part in split_unescaped(text, ',') {
        if split_unescaped(&part, '+').len() > 1 {
            return Err(X509Error::refused(
                "subject",
                format!("`{part}`: multi-valued RDNs are not supported"),
            ));
        }
        let (k, v) = part.split_once('=').ok_or_else(|| {
            X509Error::malformed("subject", format!("`{part}` is not ATTRIBUTE=value"))
        })?;
        pairs.push((k.trim().to_string(), unescape(v.trim_start())?));
    }
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    build(&refs)
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        if c == sep && !escaped {
            out.push(String::new());
            continue;
        }
        escaped = c == '\\' && !escaped;
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn unescape(v: &str) -> Result<String, X509Error> {
    let bad = || X509Error::malformed("subject", format!("`{v}` has a bad escape sequence"));
    let mut bytes = Vec::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let n = chars.next().ok_or_else(bad)?;
        if n.is_ascii_hexdigit() {
            let m = chars
                .next()
                .filter(char::is_ascii_hexdigit)
                .ok_or_else(bad)?;
            let hi = n.to_digit(16).ok_or_else(bad)?;
            let lo = m.to_digit(16).ok_or_else(bad)?;
            bytes.push((hi * 16 + lo) as u8);
        } else {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(n.encode_utf8(&mut buf).as_bytes());
        }
    }
    String::from_utf8(bytes).map_err(|_| bad())
}

fn atv(key: &str, value: &str) -> Result<AttributeTypeAndValue, X509Error> {
    let a = lookup(key.trim()).ok_or_else(|| {
        X509Error::refused(
            "subject",
            format!(
                "`{key}` is not a supported attribute; use one of {}",
                ATTRS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let value = value.trim();
    if value.is_empty() {
        return Err(X509Error::refused(
            "subject",
            format!("{} must not be empty", a.name),
        ));
    }
    let chars = value.chars().count();
    if a.max > 0 && chars > a.max {
        return Err(X509Error::refused(
            "subject",
            format!(
                "{} `{value}` is {chars} characters; RFC 5280 allows at most {}",
                a.name, a.max
            ),
        ));
    }
    let (tag, bytes) = match a.kind {
        Kind::Utf8 => (Tag::Utf8String, value.as_bytes().to_vec()),
        Kind::Printable if value.chars().all(is_printable) => {
            (Tag::PrintableString, value.as_bytes().to_vec())
        }
        Kind::Printable => {
            return Err(X509Error::refused(
                "subject",
                format!(
                    "{} `{value}` must be a PrintableString (letters, digits, space and '()+,-./:=?)",
                    a.name
                ),
            ));
        }
        Kind::Country if value.len() == 2 && value.chars().all(|c| c.is_ascii_alphabetic()) => (
            Tag::PrintableString,
            value.to_ascii_uppercase().into_bytes(),
        ),
        Kind::Country => {
            return Err(X509Error::refused(
                "subject",
                format!("C `{value}` must be a two-letter ISO 3166 country code"),
            ));
        }
        Kind::Ia5 if value.is_ascii() => (Tag::Ia5String, value.as_bytes().to_vec()),
        Kind::Ia5 => {
            return Err(X509Error::refused(
                "subject",
                format!("{} `{value}` must be ASCII", a.name),
            ));
        }
    };
    let value = Any::new(tag, bytes)
        .map_err(|e| X509Error::refused("subject", format!("{} `{value}`: {e}", a.name)))?;
    Ok(AttributeTypeAndValue { oid: a.oid, value })
}

fn is_printable(c: char) -> bool {
    c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c)
}

/// RFC 4514 string for display ("CN=pc1.fleet.test,O=Contoso"): most specific RDN first,
/// known attributes by short name, others as `OID=#hex`.
pub fn to_string(name: &Name) -> String {
    let mut out = String::new();
    for (i, rdn) in name
        .iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            push_atv(&mut out, atv);
        }
    }
    out
}

fn push_atv(out: &mut String, atv: &AttributeTypeAndValue) {
    let known = ATTRS.iter().find(|a| a.oid == atv.oid);
    match (known, value_text(&atv.value)) {
        (Some(a), Some(text)) => {
            out.push_str(a.name);
            out.push('=');
            escape_into(out, &text);
        }
        (None, Some(text)) => {
            out.push_str(&atv.oid.to_string());
            out.push('=');
            escape_into(out, &text);
        }
        (_, None) => {
            out.push_str(&atv.oid.to_string());
            out.push_str("=#");
            out.push_str(&hex::encode(atv.value.to_der().unwrap_or_default()));
        }
    }
}

fn escape_into(out: &mut String, v: &str) {
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        match c {
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i + 1 == n => out.push_str("\\ "),
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
}

/// The text of a directory string in any of the encodings found in the wild (Windows CSRs use
/// BMPString), or `None` for a non-string value.
pub fn value_text(v: &Any) -> Option<String> {
    text_of(v.tag(), v.value())
}

/// [`value_text`] for a tag and value bytes.
pub fn text_of(tag: Tag, b: &[u8]) -> Option<String> {
    match tag {
        Tag::Utf8String => std::str::from_utf8(b).ok().map(str::to_string),
        Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => b
            .is_ascii()
            .then(|| String::from_utf8_lossy(b).into_owned()),
        // T.61 in practice carries Latin-1.
        Tag::TeletexString => Some(b.iter().map(|&c| char::from(c)).collect()),
        Tag::BmpString if b.len().is_multiple_of(2) => {
            char::decode_utf16(b.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])))
                .collect::<Result<String, _>>()
                .ok()
        }
        _ => None,
    }
}

/// The most specific CN (the last one in encoded order), if any.
pub fn common_name(name: &Name) -> Option<String> {
    name.iter()
        .filter(|atv| atv.oid == CN)
        .filter_map(|atv| value_text(&atv.value))
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_orders_and_types() {
        let n = build(&[
            ("CN", "pc1.fleet.test"),
            ("OU", "IT"),
            ("O", "Contoso"),
            ("C", "us"),
            ("DC", "fleet"),
        ])
        .unwrap();
        assert_eq!(
            to_string(&n),
            "CN=pc1.fleet.test,OU=IT,O=Contoso,C=US,DC=fleet"
        );
        let tags: Vec<Tag> = n.iter().map(|a| a.value.tag()).collect();
        assert_eq!(
            tags,
            vec![
                Tag::Ia5String,
                Tag::PrintableString,
                Tag::Utf8String,
                Tag::Utf8String,
                Tag::Utf8String
            ]
        );
        assert_eq!(common_name(&n).as_deref(), Some("pc1.fleet.test"));
        // Matches x509-cert's own RFC 4514 parser, which encodes in the same order.
        let theirs: Name = "CN=pc1.fleet.test,OU=IT,O=Contoso,C=US,DC=fleet"
            .parse()
            .unwrap();
        assert_eq!(n.to_der().unwrap(), theirs.to_der().unwrap());
    }

    #[test]
    fn email_and_serial_types() {
        let n = build(&[("emailAddress", "a@b.test"), ("SERIALNUMBER", "ABC-123")]).unwrap();
        let tags: Vec<Tag> = n.iter().map(|a| a.value.tag()).collect();
        assert_eq!(tags, vec![Tag::PrintableString, Tag::Ia5String]);
        assert_eq!(to_string(&n), "E=a@b.test,SERIALNUMBER=ABC-123");
    }

    #[test]
    fn refusals_use_field_subject() {
        for pairs in [
            vec![("XX", "v")],
            vec![("C", "USA")],
            vec![("CN", "")],
            vec![("E", "é@x")],
            vec![("SERIALNUMBER", "a_b")],
        ] {
            let e = build(&pairs).unwrap_err();
            assert_eq!(e.field(), "subject", "{pairs:?}");
        }
        let long = "x".repeat(65);
        assert!(
            build(&[("CN", &long)])
                .unwrap_err()
                .rule()
                .contains("at most 64")
        );
    }

    #[test]
    fn escaping_and_parse_round_trip() {
        let n = build(&[("CN", " a,b+c\"d#"), ("O", "#Ünïcode;")]).unwrap();
        let s = to_string(&n);
        // build() trims surrounding spaces; everything else survives the round trip.
        assert_eq!(s, "CN=a\\,b\\+c\\\"d#,O=\\#Ünïcode\\;");
        assert_eq!(to_string(&parse(&s).unwrap()), s);
        assert_eq!(parse(&s).unwrap().to_der().unwrap(), n.to_der().unwrap());
        assert!(parse("").unwrap().is_empty());
        assert_eq!(
            parse("CN=x\\2cy")
                .map(|n| common_name(&n))
                .unwrap()
                .as_deref(),
            Some("x,y")
        );
        assert_eq!(parse("CN=a+O=b").unwrap_err().field(), "subject");
    }

    #[test]
    fn bmp_and_unknown_values_render() {
        let bmp: Vec<u8> = "Zoë".encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        let atv = AttributeTypeAndValue {
            oid: CN,
            value: Any::new(Tag::BmpString, bmp).unwrap(),
        };
        let other = AttributeTypeAndValue {
            oid: Oid::new_unwrap("1.2.3.4"),
            value: Any::new(Tag::Integer, vec![5]).unwrap(),
        };
        let mut seq = RdnSequence::default();
        seq.push(RelativeDistinguishedName::try_from(vec![other]).unwrap());
        seq.push(RelativeDistinguishedName::try_from(vec![atv]).unwrap());
        let n = Name::from_der(&seq.to_der().unwrap()).unwrap();
        assert_eq!(to_string(&n), "CN=Zoë,1.2.3.4=#020105");
        assert_eq!(common_name(&n).as_deref(), Some("Zoë"));
    }
}
