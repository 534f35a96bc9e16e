//! Unit tests of the metrics: counting, the histogram, handshake reasons, and an exposition-format
//! checker that every rendering goes through.

use super::*;
use rustls::pki_types::UnixTime;
use rustls::{
    AlertDescription, CertRevocationListError, CertificateError, ContentType, ExtendedKeyPurpose,
    HandshakeType, InvalidMessage, PeerIncompatible, PeerMisbehaved,
};
use std::collections::{BTreeSet, HashMap};
use std::io;

/// One sample: its metric name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Checks `text` against the Prometheus text format 0.0.4 as the server writes it, and returns
/// its samples: every line is a `# HELP`, a `# TYPE` or a sample; HELP and TYPE at most once
/// per family and before its samples; a family's samples contiguous; names and label names
/// well-formed, label values properly escaped, values numbers; counters ≥ 0; histograms with
/// increasing `le`, cumulative buckets ending in `+Inf` equal to `_count`, and a `_sum`.
fn check(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "the last line ends with a newline");
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: BTreeSet<String> = BTreeSet::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    for line in text.lines() {
        let fail = |why: &str| -> ! { panic!("{why}: `{line}`\n{text}") };
        if let Some(rest) = line.strip_prefix("# ") {
            let (kw, rest) = rest.split_once(' ').unwrap_or_else(|| fail("bare comment"));
            let (name, arg) = rest.split_once(' ').unwrap_or_else(|| fail("no text"));
            assert!(valid_name(name), "metric name `{name}`");
            assert!(!done.contains(name), "family `{name}` split: {line}");
            match kw {
                "HELP" => assert!(helps.insert(name.into()), "HELP twice: {line}"),
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg),
                        "type `{arg}`"
                    );
                    assert!(
                        types.insert(name.into(), arg.into()).is_none(),
                        "TYPE twice: {line}"
                    );
                    assert!(
                        !samples
                            .iter()
                            .any(|s: &Sample| family_of(&s.name, &types) == name),
                        "TYPE after samples: {line}"
                    );
                }
                _ => fail("unknown comment keyword"),
            }
            if current.as_deref() != Some(name) {
                done.extend(current.replace(name.into()));
            }
            continue;
        }
        let s = parse_sample(line).unwrap_or_else(|e| fail(&e));
        let fam = family_of(&s.name, &types);
        assert!(types.contains_key(&fam), "sample without a TYPE: {line}");
        assert_eq!(
            current.as_deref(),
            Some(fam.as_str()),
            "not contiguous: {line}"
        );
        if types[&fam] == "counter" {
            assert!(s.value >= 0.0, "negative counter: {line}");
        }
        samples.push(s);
    }
    for (fam, kind) in &types {
        if kind == "histogram" {
            check_histogram(fam, &samples);
        }
    }
    samples
}

fn check_histogram(fam: &str, samples: &[Sample]) {
    let bucket = format!("{fam}_bucket");
    let mut last_le = f64::NEG_INFINITY;
    let mut last_n = 0.0;
    let buckets: Vec<&Sample> = samples.iter().filter(|s| s.name == bucket).collect();
    assert!(!buckets.is_empty(), "{fam}: no buckets");
    for b in &buckets {
        let le = match b.labels.get("le").map(String::as_str) {
            Some("+Inf") => f64::INFINITY,
            Some(v) => v.parse().expect("le is a number"),
            None => panic!("{fam}: bucket without le"),
        };
        assert!(le > last_le, "{fam}: le not increasing");
        assert!(b.value >= last_n, "{fam}: buckets not cumulative");
        (last_le, last_n) = (le, b.value);
    }
    assert_eq!(last_le, f64::INFINITY, "{fam}: no +Inf bucket");
    let one = |suffix: &str| {
        let v: Vec<f64> = samples
            .iter()
            .filter(|s| s.name == format!("{fam}{suffix}"))
            .map(|s| s.value)
            .collect();
        assert_eq!(v.len(), 1, "{fam}{suffix} once");
        v[0]
    };
    assert_eq!(
        one("_count"),
        last_n,
        "{fam}: _count equals the +Inf bucket"
    );
    assert!(one("_sum") >= 0.0);
}

/// The family a sample belongs to: its name, or for a histogram's series the name without
/// `_bucket`/`_sum`/`_count`.
fn family_of(name: &str, types: &HashMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        let histogram = |base: &&str| types.get(*base).map(String::as_str) == Some("histogram");
        if let Some(base) = name.strip_suffix(suffix).filter(histogram) {
            return base.into();
        }
    }
    name.into()
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or("a sample is `name[{labels}] value`")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("metric name `{name}`"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
            if body[start..].starts_with('}') {
                rest = &body[start + 1..];
                break;
            }
            let eq = body[start..].find("=\"").ok_or("label without =\"")? + start;
            let key = &body[start..eq];
            if !valid_name(key) || key.contains(':') {
                return Err(format!("label name `{key}`"));
            }
            while chars.peek().is_some_and(|(i, _)| *i < eq + 2) {
                chars.next();
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")? {
                    (_, '"') => break,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, '\n') => return Err("raw newline in a label value".into()),
                    (_, c) => value.push(c),
                }
            }
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("label `{key}` twice"));
            }
            match chars.peek() {
                Some((_, ',')) => {
                    chars.next();
                }
                Some((_, '}')) => {}
                _ => return Err("labels are separated by commas".into()),
            }
        }
    }
    let value = rest.strip_prefix(' ').ok_or("one space before the value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .map_err(|_| format!("value `{v}` is not a number"))?,
    };
    Ok(Sample {
        name: name.into(),
        labels,
        value,
    })
}

/// The value of the one sample named `name` with exactly these labels.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}: {samples:?}");
    found[0]
}

#[test]
fn empty_rendering_is_valid() {
    let text = Metrics::default().render(None);
    let samples = check(&text);
    assert_eq!(value(&samples, "fleetpki_store_up", &[]), 0.0);
    assert_eq!(value(&samples, "fleetpki_issuance_seconds_count", &[]), 0.0);
    assert_eq!(value(&samples, "fleetpki_issuance_seconds_sum", &[]), 0.0);
    assert!(!text.contains("fleetpki_pending_requests"), "{text}");
    assert!(
        !text.contains("fleetpki_certificates_expiring_42d"),
        "{text}"
    );
    // Families without samples still say what they are.
    assert!(text.contains("# TYPE fleetpki_tls_handshake_failures_total counter\n"));
}

#[test]
fn counters_and_gauges() {
    let m = Metrics::default();
    m.count("crl", StatusCode::OK);
    m.count("crl", StatusCode::OK);
    m.count("crl", StatusCode::NOT_FOUND);
    m.count("ocsp", StatusCode::OK);
    m.handshake_failed("mp", "unknown_issuer");
    m.handshake_failed("mp", "unknown_issuer");
    m.handshake_failed("mp", "timeout");
    let samples = check(&m.render(Some(StoreGauges {
        pending_requests: 3,
        expiring_certificates: 7,
    })));
    let requests = "fleetpki_http_requests_total";
    assert_eq!(
        value(&samples, requests, &[("role", "crl"), ("status", "200")]),
        2.0
    );
    assert_eq!(
        value(&samples, requests, &[("role", "crl"), ("status", "404")]),
        1.0
    );
    assert_eq!(
        value(&samples, requests, &[("role", "ocsp"), ("status", "200")]),
        1.0
    );
    let failures = "fleetpki_tls_handshake_failures_total";
    assert_eq!(
        value(
            &samples,
            failures,
            &[("role", "mp"), ("reason", "unknown_issuer")]
        ),
        2.0
    );
    assert_eq!(
        value(&samples, failures, &[("role", "mp"), ("reason", "timeout")]),
        1.0
    );
    assert_eq!(value(&samples, "fleetpki_store_up", &[]), 1.0);
    assert_eq!(value(&samples, "fleetpki_pending_requests", &[]), 3.0);
    assert_eq!(
        value(&samples, "fleetpki_certificates_expiring_42d", &[]),
        7.0
    );
}

#[test]
fn issuance_histogram() {
    let m = Metrics::default();
    let ms = Duration::from_millis;
    for d in [
        Duration::from_micros(500),
        ms(1), // on a bound: counted in it (`le` is "less than or equal")
        ms(1) + Duration::from_nanos(1),
        ms(30),
        ms(1_000),
        ms(2_000), // past every bound: +Inf only
    ] {
        m.observe_issuance(d);
    }
    let text = m.render(None);
    let samples = check(&text);
    let bucket = |le: &str| value(&samples, "fleetpki_issuance_seconds_bucket", &[("le", le)]);
    assert_eq!(bucket("0.001"), 2.0);
    assert_eq!(bucket("0.0025"), 3.0);
    assert_eq!(bucket("0.025"), 3.0);
    assert_eq!(bucket("0.05"), 4.0);
    assert_eq!(bucket("0.5"), 4.0);
    assert_eq!(bucket("1"), 5.0);
    assert_eq!(bucket("+Inf"), 6.0);
    assert_eq!(value(&samples, "fleetpki_issuance_seconds_count", &[]), 6.0);
    let sum = value(&samples, "fleetpki_issuance_seconds_sum", &[]);
    assert!((sum - 3.032_500_001).abs() < 1e-9, "{sum}");
    // One bucket per bound plus +Inf, in order.
    let les: Vec<&str> = samples
        .iter()
        .filter(|s| s.name == "fleetpki_issuance_seconds_bucket")
        .map(|s| s.labels["le"].as_str())
        .collect();
    let mut want: Vec<&str> = ISSUANCE_BUCKETS.iter().map(|(_, le)| *le).collect();
    want.push("+Inf");
    assert_eq!(les, want);
    // The labels and their bounds agree.
    for (us, le) in ISSUANCE_BUCKETS {
        assert_eq!(le.parse::<f64>().ok(), Some(us as f64 / 1e6), "{le}");
    }
}

#[test]
fn counting_from_many_threads_loses_nothing() {
    let m = Arc::new(Metrics::default());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..1_000u64 {
                    m.count("crl", StatusCode::OK);
                    m.handshake_failed("mp", "expired");
                    m.observe_issuance(Duration::from_micros(i * 3));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let samples = check(&m.render(None));
    assert_eq!(
        value(
            &samples,
            "fleetpki_http_requests_total",
            &[("role", "crl"), ("status", "200")]
        ),
        8_000.0
    );
    assert_eq!(
        value(
            &samples,
            "fleetpki_tls_handshake_failures_total",
            &[("role", "mp"), ("reason", "expired")]
        ),
        8_000.0
    );
    assert_eq!(
        value(&samples, "fleetpki_issuance_seconds_count", &[]),
        8_000.0
    );
}

#[test]
fn label_values_are_escaped() {
    let m = Metrics::default();
    m.handshake_failed("a\"b", "c\\d\ne");
    let samples = check(&m.render(None));
    assert_eq!(
        value(
            &samples,
            "fleetpki_tls_handshake_failures_total",
            &[("role", "a\"b"), ("reason", "c\\d\ne")]
        ),
        1.0
    );
}

/// The checker itself refuses what it should.
#[test]
fn checker_refuses_bad_expositions() {
    let bad = [
        "x 1\n",                                      // no TYPE
        "# TYPE x counter\n# TYPE x counter\nx 1\n",  // TYPE twice
        "# TYPE x counter\nx{a=\"1\" 1\n",            // unterminated labels
        "# TYPE x counter\nx{a=\"\\q\"} 1\n",         // bad escape
        "# TYPE x counter\nx one\n",                  // not a number
        "# TYPE x counter\nx -1\n",                   // negative counter
        "# TYPE x gauge\n# TYPE y gauge\ny 1\nx 1\n", // not contiguous
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0\nh_count 1\n",
    ];
    for text in bad {
        let refused = std::panic::catch_unwind(|| check(text)).is_err();
        assert!(refused, "accepted:\n{text}");
    }
}

/// The error tokio-rustls returns from `accept` when rustls fails the handshake.
fn tls(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn cert(e: CertificateError) -> io::Error {
    tls(rustls::Error::InvalidCertificate(e))
}

#[test]
fn handshake_reasons() {
    let t = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
    let cases: Vec<(io::Error, &str)> = vec![
        (
            tls(rustls::Error::NoCertificatesPresented),
            "no_client_certificate",
        ),
        (cert(CertificateError::UnknownIssuer), "unknown_issuer"),
        (cert(CertificateError::Expired), "expired"),
        (
            cert(CertificateError::ExpiredContext {
                time: t,
                not_after: t,
            }),
            "expired",
        ),
        (cert(CertificateError::NotValidYet), "not_yet_valid"),
        (cert(CertificateError::Revoked), "revoked"),
        (cert(CertificateError::InvalidPurpose), "bad_eku"),
        (
            cert(CertificateError::InvalidPurposeContext {
                required: ExtendedKeyPurpose::ClientAuth,
                presented: vec![ExtendedKeyPurpose::ServerAuth],
            }),
            "bad_eku",
        ),
        (
            cert(CertificateError::UnknownRevocationStatus),
            "revocation_unknown",
        ),
        (cert(CertificateError::ExpiredRevocationList), "crl_expired"),
        (cert(CertificateError::BadSignature), "bad_certificate"),
        (cert(CertificateError::BadEncoding), "bad_certificate"),
        (
            tls(rustls::Error::InvalidCertRevocationList(
                CertRevocationListError::BadSignature,
            )),
            "bad_crl",
        ),
        (
            tls(rustls::Error::PeerIncompatible(
                PeerIncompatible::NoCipherSuitesInCommon,
            )),
            "incompatible",
        ),
        (
            tls(rustls::Error::AlertReceived(AlertDescription::UnknownCA)),
            "peer_alert",
        ),
        (
            tls(rustls::Error::InappropriateHandshakeMessage {
                expect_types: vec![HandshakeType::Certificate],
                got_type: HandshakeType::ClientKeyExchange,
            }),
            "protocol",
        ),
        (
            tls(rustls::Error::InappropriateMessage {
                expect_types: vec![ContentType::Handshake],
                got_type: ContentType::ApplicationData,
            }),
            "protocol",
        ),
        // Plain HTTP sent to a TLS port.
        (
            tls(rustls::Error::InvalidMessage(
                InvalidMessage::InvalidContentType,
            )),
            "protocol",
        ),
        (
            tls(rustls::Error::PeerMisbehaved(
                PeerMisbehaved::DuplicateClientHelloExtensions,
            )),
            "protocol",
        ),
        (tls(rustls::Error::General("x".into())), "other"),
        // The socket's own errors, as tokio-rustls passes them on.
        (io::Error::from(io::ErrorKind::TimedOut), "timeout"),
        (
            io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof"),
            "closed",
        ),
        (io::Error::from(io::ErrorKind::ConnectionReset), "closed"),
        (
            io::Error::new(io::ErrorKind::InvalidData, "message buffer full"),
            "protocol",
        ),
        (io::Error::other("something else"), "io"),
    ];
    for (err, want) in cases {
        assert_eq!(handshake_reason(&err), want, "{err:?}");
    }
}
