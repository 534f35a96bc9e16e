//! A look inside a PKCS#12 (PFX) file before opening it: is it one, and how many MAC
//! iterations would checking it cost (a crafted count can take minutes).

use der::asn1::AnyRef;
use der::{Decode, Sequence, Tag, Tagged};

/// Above this a MAC iteration count is refused rather than ground through: real files use
/// 2,048 (openssl, Windows) to a few hundred thousand.
pub const MAX_MAC_ITERATIONS: u64 = 10_000_000;

/// PFX ::= SEQUENCE { version INTEGER, authSafe ContentInfo, macData MacData OPTIONAL }
#[derive(Sequence)]
struct PfxPeek<'a> {
    version: AnyRef<'a>,
    auth_safe: AnyRef<'a>,
    mac_data: Option<AnyRef<'a>>,
}

/// MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }
#[derive(Sequence)]
struct MacPeek<'a> {
    mac: AnyRef<'a>,
    salt: AnyRef<'a>,
    iterations: Option<AnyRef<'a>>,
}

/// What the outer structure says.
#[derive(Debug, PartialEq, Eq)]
pub enum Peek {
    /// Not a PFX at all.
    NotPfx,
    /// A PFX; its MAC iteration count (None: no MAC, or the default of 1).
    Pfx { mac_iterations: Option<u64> },
    /// A PFX whose MacData cannot be read.
    BadMac(String),
}

pub fn peek(bytes: &[u8]) -> Peek {
    let Some(pfx) = PfxPeek::from_der(bytes)
        .ok()
        .filter(|p| p.version.tag() == Tag::Integer)
    else {
        return Peek::NotPfx;
    };
    let Some(mac) = pfx.mac_data else {
        return Peek::Pfx {
            mac_iterations: None,
        };
    };
    let mac = match mac.decode_as::<MacPeek<'_>>() {
        Ok(m) => m,
        Err(e) => return Peek::BadMac(format!("unreadable MacData: {e}")),
    };
    match mac.iterations.map(|i| i.decode_as::<u64>()) {
        Some(Ok(n)) => Peek::Pfx {
            mac_iterations: Some(n),
        },
        Some(Err(e)) => Peek::BadMac(format!("unreadable MAC iteration count: {e}")),
        None => Peek::Pfx {
            mac_iterations: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_a_pfx() {
        assert_eq!(peek(b"garbage"), Peek::NotPfx);
        assert_eq!(peek(&[0x30, 0x03, 0x04, 0x01, 0x00]), Peek::NotPfx);
    }
}
