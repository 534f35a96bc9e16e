//! What the rules look at: [`CertFacts`], read from a parsed certificate (or filled in by the
//! CA for a planned one), and the name helpers the rules share.

use crate::ProfileError;
use der::asn1::{AnyRef, ObjectIdentifier as Oid};
use der::{Decode, Sequence, Tagged};
use fleetpki_model::UnixTime;
use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::template::KeyInfo;
use fleetpki_x509::X509Error;
use fleetpki_x509::cert;
use x509_cert::Certificate;
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use x509_cert::name::Name;
use x509_cert::spki::AlgorithmIdentifierOwned;

const CN: Oid = Oid::new_unwrap("2.5.4.3");

/// Everything the rules read from a certificate. Built by [`CertFacts::from_certificate`] for a
/// certificate file, or by the CA for the certificate it is about to sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    /// RFC 4514 text, most specific RDN first: "CN=pc1.fleet.test,O=Contoso".
    pub subject: String,
    /// Every CN value of the subject.
    pub common_names: Vec<String>,
    /// In certificate order: "DNS:x", "email:x", "UPN:x", "IP:x", "URI:x".
    pub sans: Vec<String>,
    /// Dotted OIDs.
    pub ekus: Vec<String>,
    /// Empty = no keyUsage extension.
    pub key_usage: Vec<KeyUsageBit>,
    pub key: KeyInfo,
    pub is_ca: bool,
    /// `None` = unknown (a planned certificate).
    pub self_signed: Option<bool>,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    /// As `fleetpki_x509::cert::CertInfo` names it: "ecdsa-with-SHA256", "sha1WithRSAEncryption".
    pub signature_algorithm: String,
}

impl CertFacts {
    /// Reads the facts from a certificate; a certificate the X.509 layer cannot summarise (an
    /// unsupported key type, a malformed extension) is an error on field `certificate`.
    pub fn from_certificate(c: &Certificate) -> Result<Self, ProfileError> {
        let info = cert::info(c)?;
        let tbs = c.tbs_certificate();
        let signature_algorithm = if info.signature_algorithm == "RSASSA-PSS" {
            // The PSS hash lives in the parameters; without it the SHA-2 rule cannot decide.
            pss_name(c.signature_algorithm())
        } else {
            info.signature_algorithm.clone()
        };
        Ok(Self {
            subject: info.subject.clone(),
            common_names: common_names(tbs.subject()),
            sans: info.sans.clone(),
            ekus: info.ekus.clone(),
            key_usage: info.key_usage.clone(),
            key: info.key,
            is_ca: info.is_ca,
            self_signed: Some(self_signed(c, info.ski.as_deref())),
            not_before: info.not_before,
            not_after: info.not_after,
            signature_algorithm,
        })
    }

    /// Every value in the subject, each `&`-joined part on its own (seed 002 joins the intranet
    /// and internet names with `&`), CNs included even when the subject text lacks them (the
    /// CA fills `common_names` from a planned name).
    pub(crate) fn subject_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let values = rdn_values(&self.subject)
            .into_iter()
            .map(|(_, v)| v)
            .chain(self.common_names.iter().cloned());
        for v in values {
            for part in v.split('&').map(str::trim).filter(|p| !p.is_empty()) {
                if !out.iter().any(|o| o == part) {
                    out.push(part.to_string());
                }
            }
        }
        out
    }

    /// The DNS names of the SAN, in order.
    pub(crate) fn san_dns(&self) -> Vec<&str> {
        self.sans
            .iter()
            .filter_map(|s| s.strip_prefix("DNS:"))
            .collect()
    }

    /// "CN=x,O=y" or "(empty)", for findings.
    pub(crate) fn subject_text(&self) -> String {
        if self.subject.trim().is_empty() {
            "(empty)".to_string()
        } else {
            self.subject.clone()
        }
    }

    /// "DNS:a, DNS:b" or "none", for findings.
    pub(crate) fn san_text(&self) -> String {
        if self.sans.is_empty() {
            "none".to_string()
        } else {
            self.sans.join(", ")
        }
    }
}

fn norm_host(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `a` and `b` are the same name, ignoring case and a trailing dot.
pub(crate) fn same_host(a: &str, b: &str) -> bool {
    let (a, b) = (norm_host(a), norm_host(b));
    !a.is_empty() && a == b
}

/// Whether a DNS-like `value` names `host`: equal ignoring case and a trailing dot, or a
/// one-label wildcard (`*.fleet.test` names `mp.fleet.test`) as TLS clients match it.
pub(crate) fn names_host(value: &str, host: &str) -> bool {
    let (v, h) = (norm_host(value), norm_host(host));
    if h.is_empty() {
        return false;
    }
    if v == h {
        return true;
    }
    match (v.strip_prefix("*."), h.split_once('.')) {
        (Some(suffix), Some((label, rest))) => !label.is_empty() && rest == suffix,
        _ => false,
    }
}

/// The CN values of a name, most specific first (as RFC 4514 text lists them).
fn common_names(name: &Name) -> Vec<String> {
    let mut out: Vec<String> = name
        .iter()
        .filter(|atv| atv.oid == CN)
        .filter_map(|atv| fleetpki_x509::name::text_of(atv.value.tag(), atv.value.value()))
        .collect();
    out.reverse();
    out
}

/// Issuer name = subject name and the signature verifies with the certificate's own key. A
/// signature algorithm the X.509 layer refuses (SHA-1) cannot be verified, so then the key
/// identifiers decide: an AKI that differs from the SKI names another key.
fn self_signed(c: &Certificate, ski: Option<&[u8]>) -> bool {
    let tbs = c.tbs_certificate();
    if tbs.issuer() != tbs.subject() {
        return false;
    }
    match cert::verify_signed_by(c, c) {
        Ok(()) => true,
        Err(X509Error::BadSignature { .. }) => false,
        Err(_) => {
            let aki = tbs
                .get_extension::<AuthorityKeyIdentifier>()
                .ok()
                .flatten()
                .and_then(|(_, a)| a.key_identifier)
                .map(|k| k.as_bytes().to_vec());
            match (aki, ski) {
                (Some(a), Some(s)) => a == s,
                _ => true,
            }
        }
    }
}

/// RSASSA-PSS-params (RFC 4055): every field optional, the hash defaulting to SHA-1.
#[derive(Sequence)]
struct PssParams<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mgf: Option<AnyRef<'a>>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    salt_len: Option<AnyRef<'a>>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    trailer: Option<AnyRef<'a>>,
}

/// "RSASSA-PSS (SHA-256)"; absent parameters or hash mean SHA-1 (RFC 4055 defaults).
fn pss_name(alg: &AlgorithmIdentifierOwned) -> String {
    let Some(params) = alg.parameters.as_ref() else {
        return "RSASSA-PSS (SHA-1)".to_string();
    };
    let Ok(der) = der::Encode::to_der(params) else {
        return "RSASSA-PSS".to_string();
    };
    let hash = match PssParams::from_der(&der) {
        Ok(p) => p.hash.map(|h| h.oid.to_string()),
        Err(_) => return "RSASSA-PSS".to_string(),
    };
    let name = match hash.as_deref() {
        None | Some("1.3.14.3.2.26") => "SHA-1",
        Some("2.16.840.1.101.3.4.2.4") => "SHA-224",
        Some("2.16.840.1.101.3.4.2.1") => "SHA-256",
        Some("2.16.840.1.101.3.4.2.2") => "SHA-384",
        Some("2.16.840.1.101.3.4.2.3") => "SHA-512",
        Some(other) => return format!("RSASSA-PSS ({other})"),
    };
    format!("RSASSA-PSS ({name})")
}

/// Splits RFC 4514 text into (attribute, value) pairs, undoing `\,` and `\2c` escapes. Values
/// in `#hex` form (non-string attributes) are skipped: no rule compares them.
pub(crate) fn rdn_values(text: &str) -> Vec<(String, String)> {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                // Keep the escape for the value decoder; just never split on an escaped char.
                cur.push('\\');
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' | '+' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .filter_map(|p| {
            let (attr, raw) = p.split_once('=')?;
            let raw = raw.trim();
            if raw.starts_with('#') {
                return None;
            }
            Some((attr.trim().to_string(), unescape(raw)))
        })
        .collect()
}

fn unescape(raw: &str) -> String {
    let mut bytes: Vec<u8> = Vec::with_capacity(raw.len());
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(v) => {
                    bytes.push(v);
                    i += 3;
                }
                None => {
                    bytes.push(b[i + 1]);
                    i += 2;
                }
            }
        } else {
            bytes.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4514_values_unescape() {
        let v = rdn_values(r"CN=a\,b+UID=x,O=Contoso\2c Ltd,2.5.4.99=#0403616263");
        assert_eq!(
            v,
            vec![
                ("CN".to_string(), "a,b".to_string()),
                ("UID".to_string(), "x".to_string()),
                ("O".to_string(), "Contoso, Ltd".to_string()),
            ]
        );
        assert!(rdn_values("").is_empty());
        assert!(rdn_values(r"CN=trailing\").len() == 1);
    }

    #[test]
    fn host_matching() {
        assert!(names_host("MP.Fleet.Test.", "mp.fleet.test"));
        assert!(names_host("*.fleet.test", "mp.fleet.test"));
        assert!(!names_host("*.fleet.test", "a.mp.fleet.test"));
        assert!(!names_host("*.fleet.test", "fleet.test"));
        assert!(!names_host("mp.fleet.test", ""));
        assert!(!names_host("xmp.fleet.test", "mp.fleet.test"));
    }
}
