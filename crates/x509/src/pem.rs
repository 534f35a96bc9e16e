//! PEM armour: encoding one DER blob, and reading every block with a wanted label out of a
//! file that may also hold other blocks, text around them, CRLF line ends or odd line widths.

use crate::X509Error;
use der::pem::{self, LineEnding};

/// Encodes `der` as PEM with `label` (e.g. `CERTIFICATE`), 64-column lines, LF line ends.
pub fn encode(label: &str, der: &[u8]) -> String {
    // RFC 7468 labels are printable ASCII without '-'; a caller's odd label is cleaned rather
    // than turned into an error for what is a constant at every call site.
    let clean: String = label
        .chars()
        .filter(|c| (c.is_ascii_graphic() && *c != '-') || *c == ' ')
        .collect();
    pem::encode_string(clean.trim(), LineEnding::LF, der).unwrap_or_default()
}

/// Accepts PEM (any number of blocks with `label`) or a single raw DER blob; `field` names the
/// input in errors ("csr", "certificate", ...).
pub fn decode_all(field: &str, input: &[u8], label: &str) -> Result<Vec<Vec<u8>>, X509Error> {
    Ok(decode_labels(field, input, &[label])?
        .into_iter()
        .map(|(_, der)| der)
        .collect())
}

/// Like [`decode_all`], accepting any of `labels`; returns each block's label with its DER
/// (`""` for raw DER input).
pub fn decode_labels(
    field: &str,
    input: &[u8],
    labels: &[&str],
) -> Result<Vec<(String, Vec<u8>)>, X509Error> {
    let start = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(input.len());
    let body = &input[start..];
    if body.is_empty() {
        return Err(X509Error::malformed(field, "the input is empty"));
    }
    // Every DER structure this crate reads is a SEQUENCE; PEM starts with text.
    if body[0] == 0x30 {
        return Ok(vec![(String::new(), body.to_vec())]);
    }
    let text = std::str::from_utf8(body).map_err(|_| {
        X509Error::malformed(
            field,
            format!("neither PEM (-----BEGIN {}-----) nor DER", labels.join("/")),
        )
    })?;
    let blocks = blocks(field, text)?;
    if blocks.is_empty() {
        return Err(X509Error::malformed(
            field,
            format!("neither PEM (-----BEGIN {}-----) nor DER", labels.join("/")),
        ));
    }
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for b in blocks {
        if !labels.contains(&b.label) {
            seen.push(b.label);
            continue;
        }
        if b.has_headers {
            return Err(X509Error::refused(
                field,
                "PEM with RFC 1421 headers (legacy OpenSSL encryption) is not supported; convert it with `openssl pkcs8 -topk8`",
            ));
        }
        out.push((
            b.label.to_string(),
            decode_block(field, b.label, &b.base64)?,
        ));
    }
    if out.is_empty() {
        return Err(X509Error::malformed(
            field,
            format!(
                "expected a PEM block labelled {}, found {}",
                labels.join(" or "),
                seen.join(", ")
            ),
        ));
    }
    Ok(out)
}

struct Block<'a> {
    label: &'a str,
    base64: String,
    has_headers: bool,
}

/// Splits text into BEGIN/END blocks, ignoring text between them (e.g. `openssl x509 -text`).
fn blocks<'a>(field: &str, text: &'a str) -> Result<Vec<Block<'a>>, X509Error> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut base64 = String::new();
        let mut has_headers = false;
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if l.contains(':') {
                has_headers = true;
            } else if !has_headers || !l.is_empty() {
                base64.extend(l.chars().filter(|c| !c.is_whitespace()));
            }
        }
        if !closed {
            return Err(X509Error::malformed(
                field,
                format!("PEM block {label} has no `{end}` line"),
            ));
        }
        out.push(Block {
            label,
            base64,
            has_headers,
        });
    }
    Ok(out)
}

/// Re-wraps the body at 64 columns so the strict RFC 7468 decoder accepts any line width.
fn decode_block(field: &str, label: &str, base64: &str) -> Result<Vec<u8>, X509Error> {
    let mut canonical = format!("-----BEGIN {label}-----\n");
    let bytes = base64.as_bytes();
    for chunk in bytes.chunks(64) {
        canonical.push_str(&String::from_utf8_lossy(chunk));
        canonical.push('\n');
    }
    canonical.push_str(&format!("-----END {label}-----\n"));
    let (_, der) = pem::decode_vec(canonical.as_bytes()).map_err(|e| {
        X509Error::malformed(field, format!("PEM block {label} is not valid base64: {e}"))
    })?;
    if der.is_empty() {
        return Err(X509Error::malformed(
            field,
            format!("PEM block {label} is empty"),
        ));
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_mixed_files() {
        let a = encode("CERTIFICATE", &[0x30, 0x03, 0x02, 0x01, 0x05]);
        assert!(a.starts_with("-----BEGIN CERTIFICATE-----\n"));
        let b = encode("CERTIFICATE", &[0x30, 0x03, 0x02, 0x01, 0x07]);
        let key = encode("PRIVATE KEY", &[0x30, 0x00]);
        let file = format!(
            "Subject: CN=x\r\n{}\r\nnoise\n{key}{}",
            a.replace('\n', "\r\n"),
            b
        );
        let got = decode_all("chain", file.as_bytes(), "CERTIFICATE").unwrap();
        assert_eq!(
            got,
            vec![
                vec![0x30, 0x03, 0x02, 0x01, 0x05],
                vec![0x30, 0x03, 0x02, 0x01, 0x07]
            ]
        );
    }

    #[test]
    fn raw_der_passes_through() {
        let got = decode_all("csr", b"\x30\x03\x02\x01\x05", "CERTIFICATE REQUEST").unwrap();
        assert_eq!(got, vec![vec![0x30, 0x03, 0x02, 0x01, 0x05]]);
    }

    #[test]
    fn long_lines_are_accepted() {
        let der: Vec<u8> = (0..200u8).collect();
        let pem = encode("X509 CRL", &der);
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let one_line = format!("-----BEGIN X509 CRL-----\n{body}\n-----END X509 CRL-----\n");
        assert_eq!(
            decode_all("crl", one_line.as_bytes(), "X509 CRL").unwrap(),
            vec![der]
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = decode_all("certificate", b"hello", "CERTIFICATE").unwrap_err();
        assert_eq!(e.field(), "certificate");
        let e = decode_all("certificate", b"", "CERTIFICATE").unwrap_err();
        assert_eq!(e.field(), "certificate");
        let e = decode_all(
            "csr",
            encode("CERTIFICATE", b"\x30\x00").as_bytes(),
            "CERTIFICATE REQUEST",
        )
        .unwrap_err();
        assert_eq!(e.field(), "csr");
        assert!(e.rule().contains("found CERTIFICATE"), "{e}");
        let e = decode_all(
            "c",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            "CERTIFICATE",
        )
        .unwrap_err();
        assert_eq!(e.field(), "c");
        let e = decode_all("c", b"-----BEGIN CERTIFICATE-----\nMAA=\n", "CERTIFICATE").unwrap_err();
        assert!(e.rule().contains("no `-----END"), "{e}");
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMAA=\n-----END RSA PRIVATE KEY-----\n";
        let e = decode_all("key", legacy.as_bytes(), "RSA PRIVATE KEY").unwrap_err();
        assert!(e.rule().contains("pkcs8"), "{e}");
    }
}
