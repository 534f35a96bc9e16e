//! Certificate serial numbers: random generation (RFC 5280 / CA/B BR: at least 64 random bits)
//! and the hex form shown to people and stored in the database.

use crate::X509Error;

/// 128 random bits (aws-lc-rs rand) as a positive, minimally encoded DER INTEGER content
/// (prepend 0x00 when the top bit is set; never zero).
pub fn random() -> Result<Vec<u8>, X509Error> {
    loop {
        let mut raw = [0u8; 16];
        aws_lc_rs::rand::fill(&mut raw)
            .map_err(|_| X509Error::internal("serial", "the system random generator failed"))?;
        let value = strip_leading_zeros(&raw);
        // Zero is not a valid serial; the chance is 2^-128, but retrying costs nothing.
        if !value.is_empty() {
            return Ok(encode_positive(value));
        }
    }
}

/// Lower-case hex of the integer value without leading zero bytes (what `openssl x509 -serial`
/// shows, lower-cased).
pub fn to_hex(serial: &[u8]) -> String {
    let value = strip_leading_zeros(serial);
    if value.is_empty() {
        return "00".to_string();
    }
    hex::encode(value)
}

/// Accepts upper/lower hex, optional colons/spaces, optional leading zeros; returns DER content
/// bytes; error field "serial".
pub fn from_hex(s: &str) -> Result<Vec<u8>, X509Error> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let mut digits: String = t
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(X509Error::malformed(
            "serial",
            format!("`{s}` is not a hexadecimal serial number"),
        ));
    }
    if digits.len() % 2 == 1 {
        digits.insert(0, '0');
    }
    let bytes = hex::decode(&digits).map_err(|_| {
        X509Error::malformed(
            "serial",
            format!("`{s}` is not a hexadecimal serial number"),
        )
    })?;
    let value = strip_leading_zeros(&bytes);
    if value.is_empty() {
        return Err(X509Error::malformed(
            "serial",
            "a serial number cannot be zero",
        ));
    }
    // RFC 5280 4.1.2.2: at most 20 octets of content.
    let out = encode_positive(value);
    if out.len() > 20 {
        return Err(X509Error::malformed(
            "serial",
            format!("`{s}` is longer than the 20 octets RFC 5280 allows"),
        ));
    }
    Ok(out)
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[first..]
}

/// DER INTEGER content of a positive magnitude: a 0x00 keeps the sign bit clear.
fn encode_positive(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 1);
    if value.first().is_some_and(|b| b & 0x80 != 0) {
        out.push(0);
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_positive_minimal_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let s = random().unwrap();
            assert!(!s.is_empty() && s.len() <= 17);
            if s[0] == 0 {
                assert!(
                    s.len() > 1 && s[1] & 0x80 != 0,
                    "0x00 only before a set top bit"
                );
            } else {
                assert!(s[0] & 0x80 == 0, "top bit clear");
            }
            assert!(seen.insert(s));
        }
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(to_hex(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(from_hex("8F:01").unwrap(), vec![0x00, 0x8f, 0x01]);
        assert_eq!(from_hex("00 00 7f 01").unwrap(), vec![0x7f, 0x01]);
        assert_eq!(from_hex("abc").unwrap(), vec![0x0a, 0xbc]);
        for _ in 0..50 {
            let s = random().unwrap();
            assert_eq!(from_hex(&to_hex(&s)).unwrap(), s);
            assert_eq!(from_hex(&to_hex(&s).to_uppercase()).unwrap(), s);
        }
    }

    #[test]
    fn bad_hex_is_refused_with_field_serial() {
        for bad in ["", "xyz", "00", "0:0", &"ff".repeat(21)] {
            let e = from_hex(bad).unwrap_err();
            assert_eq!(e.field(), "serial", "{bad}");
        }
    }
}
