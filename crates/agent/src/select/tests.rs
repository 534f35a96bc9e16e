use super::*;
use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::template::HashAlg;
use fleetpki_x509::cert::{CertParams, IssuerUrls, San};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::name;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

const NOW: UnixTime = 1_767_225_600; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400;
const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";

/// A root and an issuing CA under it.
struct Pki {
    root_der: Vec<u8>,
    int_key: PrivateKey,
    int: Certificate,
    int_der: Vec<u8>,
}

fn make_pki(label: &str) -> Pki {
    let root_key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let root_p = CertParams {
        serial: vec![1],
        subject: name::build(&[("CN", &format!("{label} Root")), ("O", "Contoso")]).unwrap(),
        sans: vec![],
        spki_der: root_key.public_key_der(),
        not_before: NOW - 3_650 * DAY,
        not_after: NOW + 3_650 * DAY,
        key_usage: vec![KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign],
        ekus: vec![],
        ca: Some(None),
        urls: IssuerUrls::default(),
    };
    let root_der = cert::issue(&root_p, None, &root_key.signer(HashAlg::Sha256)).unwrap();
    let root = cert::parse("root", &root_der).unwrap();
    let int_key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let int_p = CertParams {
        serial: vec![2],
        subject: name::build(&[("CN", &format!("{label} Issuing CA")), ("O", "Contoso")]).unwrap(),
        spki_der: int_key.public_key_der(),
        ca: Some(Some(0)),
        ..root_p
    };
    let int_der = cert::issue(&int_p, Some(&root), &root_key.signer(HashAlg::Sha256)).unwrap();
    let int = cert::parse("int", &int_der).unwrap();
    Pki {
        root_der,
        int_key,
        int,
        int_der,
    }
}

fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(|| make_pki("Fleet"))
}

fn foreign_pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(|| make_pki("Foreign"))
}

fn leaf_key() -> &'static PrivateKey {
    static K: OnceLock<PrivateKey> = OnceLock::new();
    K.get_or_init(|| PrivateKey::generate(KeyType::EcdsaP256).unwrap())
}

fn next_serial() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0x1000);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A leaf certificate to issue: client auth, valid a year around NOW, by default.
#[derive(Clone)]
struct Spec {
    subject: Vec<(String, String)>,
    sans: Vec<San>,
    ekus: Vec<String>,
    not_before: UnixTime,
    not_after: UnixTime,
    serial: u32,
}

impl Spec {
    fn new(cn: &str) -> Self {
        Self {
            subject: vec![("CN".into(), cn.into())],
            sans: vec![],
            ekus: vec![CLIENT_AUTH_EKU.into()],
            not_before: NOW - DAY,
            not_after: NOW + 365 * DAY,
            serial: next_serial(),
        }
    }
    fn subject(mut self, pairs: &[(&str, &str)]) -> Self {
        self.subject = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }
    fn sans(mut self, dns: &[&str]) -> Self {
        self.sans = dns.iter().map(|d| San::Dns(d.to_string())).collect();
        self
    }
    fn ekus(mut self, ekus: &[&str]) -> Self {
        self.ekus = ekus.iter().map(|e| e.to_string()).collect();
        self
    }
    fn validity(mut self, not_before: UnixTime, not_after: UnixTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }
    fn serial(mut self, s: u32) -> Self {
        self.serial = s;
        self
    }
    /// As fleetpki-x509 prints serials: whole bytes, lower hex.
    fn serial_hex(&self) -> String {
        let h = format!("{:x}", self.serial);
        if h.len() % 2 == 1 { format!("0{h}") } else { h }
    }
    fn issue_by(&self, ca: &Pki) -> Vec<u8> {
        let pairs: Vec<(&str, &str)> = self
            .subject
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let bytes = self.serial.to_be_bytes();
        let mut serial: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        if serial[0] & 0x80 != 0 {
            serial.insert(0, 0);
        }
        let p = CertParams {
            serial,
            subject: name::build(&pairs).unwrap(),
            sans: self.sans.clone(),
            spki_der: leaf_key().public_key_der(),
            not_before: self.not_before,
            not_after: self.not_after,
            key_usage: vec![KeyUsageBit::DigitalSignature],
            ekus: self.ekus.clone(),
            ca: None,
            urls: IssuerUrls::default(),
        };
        cert::issue(&p, Some(&ca.int), &ca.int_key.signer(HashAlg::Sha256)).unwrap()
    }
    fn der(&self) -> Vec<u8> {
        self.issue_by(pki())
    }
    fn candidate(&self) -> Candidate {
        cand(
            "personal",
            &format!("{}.der", self.serial_hex()),
            self.der(),
        )
    }
}

fn cand(store: &str, file: &str, der: Vec<u8>) -> Candidate {
    Candidate {
        store: store.into(),
        file: file.into(),
        der,
        has_key: true,
    }
}

fn policy(selection: SelectionCriteria) -> Policy {
    let mut p = Policy::new("PS1", 1, NOW, "ws01.corp.example");
    p.selection = selection;
    p
}

fn run_with(p: &Policy, cands: &[Candidate], computer: &str, fqdn: Option<&str>) -> Selection {
    let roots = vec![pki().root_der.clone()];
    let ints = vec![pki().int_der.clone()];
    select(
        cands,
        &Context {
            computer,
            fqdn,
            now: NOW,
            trusted_roots: &roots,
            intermediates: &ints,
            policy: p,
        },
    )
}

fn run(p: &Policy, cands: &[Candidate]) -> Selection {
    run_with(p, cands, "ws01", Some("ws01.corp.example"))
}

fn criteria_detail(v: &Verdict) -> String {
    match v.dropped.as_slice() {
        [DropReason::CriteriaNotMet { detail }] => detail.clone(),
        other => panic!("expected only a criteria drop, got {other:?}"),
    }
}

#[test]
fn every_dn_name_and_alias_selects_by_its_attribute() {
    // (name as the policy says it, name given to the certificate builder, SPEC §5 OID, value)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("DC", "DC", "0.9.2342.19200300.100.1.25", "corp"),
        ("E", "E", "1.2.840.113549.1.9.1", "ws01@corp.example"),
        ("E-mail", "E", "1.2.840.113549.1.9.1", "ws01@corp.example"),
        ("CN", "CN", "2.5.4.3", "ws01.corp.example"),
        ("SN", "SN", "2.5.4.4", "Lovelace"),
        ("SERIALNUMBER", "SERIALNUMBER", "2.5.4.5", "SN-4711"),
        ("C", "C", "2.5.4.6", "DE"),
        ("L", "L", "2.5.4.7", "Berlin"),
        ("S", "ST", "2.5.4.8", "Bavaria"),
        ("ST", "ST", "2.5.4.8", "Bavaria"),
        ("STREET", "STREET", "2.5.4.9", "Main Street 1"),
        ("O", "O", "2.5.4.10", "Contoso"),
        ("OU", "OU", "2.5.4.11", "Workstations"),
        ("T", "T", "2.5.4.12", "Engineer"),
        ("Title", "T", "2.5.4.12", "Engineer"),
        ("G", "GN", "2.5.4.42", "Ada"),
        ("GN", "GN", "2.5.4.42", "Ada"),
        ("GivenName", "GN", "2.5.4.42", "Ada"),
        ("I", "I", "2.5.4.43", "AL"),
        ("Initials", "I", "2.5.4.43", "AL"),
    ];
    // The table covers the policy crate's whole list.
    let mut names: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let mut listed: Vec<&str> = DN_ATTRIBUTES.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    listed.sort_unstable();
    assert_eq!(names, listed);

    for &(alias, builder_name, oid, value) in cases {
        let oid_resolved = attribute_oid("test", alias).unwrap();
        assert_eq!(oid_resolved, oid, "{alias}");
        // Elsewhere the value sits under another attribute; the tested one has another value.
        let elsewhere = if builder_name == "OU" { "O" } else { "OU" };
        let other_value = if builder_name == "C" {
            "FR".to_string()
        } else {
            format!("x{value}")
        };
        let matching = if builder_name == "CN" {
            Spec::new(value)
        } else {
            Spec::new("x").subject(&[("CN", "match"), (builder_name, value)])
        };
        let decoy = if builder_name == "CN" {
            Spec::new("x").subject(&[("CN", &other_value), (elsewhere, value)])
        } else {
            Spec::new("x").subject(&[
                ("CN", "decoy"),
                (builder_name, &other_value),
                (elsewhere, value),
            ])
        };
        let m_der = matching.der();
        // Independent of the builder's name table: the certificate carries the SPEC's OID.
        let parsed = cert::parse("m", &m_der).unwrap();
        assert!(
            parsed
                .tbs_certificate()
                .subject()
                .iter()
                .any(|a| a.oid.to_string() == oid),
            "{alias}: fixture lacks {oid}"
        );
        let p = policy(SelectionCriteria::SubjectAttribute {
            oid: oid_resolved,
            value: value.to_uppercase(), // case-insensitive
        });
        let cands = [
            cand("personal", "match.der", m_der),
            cand("personal", "decoy.der", decoy.der()),
        ];
        let sel = run(&p, &cands);
        assert_eq!(sel.selected(), Some(0), "{alias}: {}", sel.explain());
        let detail = criteria_detail(&sel.verdicts[1]);
        assert!(
            detail.contains(&other_value) && detail.contains(&value.to_uppercase()),
            "{alias}: {detail}"
        );
    }
}

#[test]
fn san_oid_compares_the_first_san_only() {
    let first = Spec::new("a").sans(&["ws01.corp.example", "alt.corp.example"]);
    let second = Spec::new("b").sans(&["alt.corp.example", "ws01.corp.example"]);
    let cands = [first.candidate(), second.candidate()];
    for criteria in [
        SelectionCriteria::SubjectAttribute {
            oid: SAN_OID.into(),
            value: "WS01.corp.example".into(),
        },
        SelectionCriteria::SanMatch("ws01.CORP.example".into()),
    ] {
        let sel = run(&policy(criteria.clone()), &cands);
        assert_eq!(sel.selected(), Some(0), "{criteria:?}");
        let detail = criteria_detail(&sel.verdicts[1]);
        assert!(
            detail.contains("first SAN `DNS:alt.corp.example`")
                && detail.contains("SAN #2")
                && detail.contains("only the first SAN counts"),
            "{detail}"
        );
    }
    // An e-mail first SAN compares without its `email:` prefix.
    let mut mail = Spec::new("m");
    mail.sans = vec![San::Email("ws01@corp.example".into())];
    let sel = run(
        &policy(SelectionCriteria::SanMatch("ws01@corp.example".into())),
        &[mail.candidate()],
    );
    assert_eq!(sel.selected(), Some(0), "{}", sel.explain());
    // No SAN at all.
    let sel = run(
        &policy(SelectionCriteria::SanMatch("ws01".into())),
        &[Spec::new("ws01").candidate()],
    );
    assert!(criteria_detail(&sel.verdicts[0]).contains("has no SAN"));
}

#[test]
fn default_and_subject_contains_criteria() {
    struct Case {
        spec: Spec,
        criteria: SelectionCriteria,
        computer: &'static str,
        fqdn: Option<&'static str>,
        kept: bool,
        says: &'static str,
    }
    let d = SelectionCriteria::Default;
    let fq = Some("ws01.corp.example");
    let cases = [
        Case {
            spec: Spec::new("ws01"),
            criteria: d.clone(),
            computer: "ws01",
            fqdn: fq,
            kept: true,
            says: "subject `CN=ws01` contains `ws01`",
        },
        Case {
            spec: Spec::new("WS01.CORP.EXAMPLE"),
            criteria: d.clone(),
            computer: "other",
            fqdn: fq,
            kept: true,
            says: "contains `ws01.corp.example`",
        },
        Case {
            spec: Spec::new("laptop").sans(&["x.test", "ws01.corp.example"]),
            criteria: d.clone(),
            computer: "ws02",
            fqdn: fq,
            kept: true,
            says: "SAN `DNS:ws01.corp.example` contains `ws01.corp.example`",
        },
        Case {
            spec: Spec::new("laptop").sans(&["x.test"]),
            criteria: d.clone(),
            computer: "ws01",
            fqdn: fq,
            kept: false,
            says: "neither the subject `CN=laptop` nor a SAN [DNS:x.test] contains `ws01` or `ws01.corp.example`",
        },
        Case {
            spec: Spec::new("ws01"),
            criteria: d.clone(),
            computer: " ",
            fqdn: None,
            kept: false,
            says: "no computer name or FQDN",
        },
        Case {
            spec: Spec::new("ws01").subject(&[("CN", "ws01"), ("OU", "Workstations")]),
            criteria: SelectionCriteria::SubjectContains("ou=workstations".into()),
            computer: "ws01",
            fqdn: None,
            kept: true,
            says: "contains `ou=workstations`",
        },
        Case {
            spec: Spec::new("ws01").subject(&[("CN", "ws01"), ("OU", "Workstations")]),
            criteria: SelectionCriteria::SubjectContains("Servers".into()),
            computer: "ws01",
            fqdn: None,
            kept: false,
            says: "subject `CN=ws01,OU=Workstations` does not contain `Servers`",
        },
        Case {
            spec: Spec::new("ws01").subject(&[("CN", "ws01"), ("OU", "Labs")]),
            criteria: SelectionCriteria::subject_attribute("OU", "Workstations").unwrap(),
            computer: "ws01",
            fqdn: None,
            kept: false,
            says: "subject OU (2.5.4.11) is `Labs`, not `Workstations`",
        },
        Case {
            spec: Spec::new("ws01"),
            criteria: SelectionCriteria::subject_attribute("O", "Contoso").unwrap(),
            computer: "ws01",
            fqdn: None,
            kept: false,
            says: "has no O (2.5.4.10) attribute to compare with `Contoso`",
        },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let sel = run_with(
            &policy(c.criteria),
            &[c.spec.candidate()],
            c.computer,
            c.fqdn,
        );
        let v = &sel.verdicts[0];
        assert_eq!(v.kept, c.kept, "case {i}: {}", sel.explain());
        let text = if c.kept {
            v.notes.join("\n")
        } else {
            criteria_detail(v)
        };
        assert!(text.contains(c.says), "case {i}: {text}");
    }
}

#[test]
fn each_drop_reason_is_given_on_its_own() {
    type Check = fn(&[DropReason]) -> bool;
    let sa: &str = SERVER_AUTH;
    let cases: Vec<(&str, Candidate, Check)> = vec![
        (
            "wrong store",
            cand("trusted-people", "a.der", Spec::new("ws01").der()),
            |d| matches!(d, [DropReason::OutsideStores { store, allowed }] if store == "trusted-people" && allowed == "personal"),
        ),
        (
            "garbage",
            cand("personal", "junk.der", b"not a certificate".to_vec()),
            |d| matches!(d, [DropReason::Unparsable { .. }]),
        ),
        ("empty", cand("personal", "empty.der", vec![]), |d| {
            matches!(d, [DropReason::Unparsable { .. }])
        }),
        (
            "truncated",
            {
                let der = Spec::new("ws01").der();
                cand("personal", "cut.der", der[..der.len() / 2].to_vec())
            },
            |d| matches!(d, [DropReason::Unparsable { .. }]),
        ),
        (
            // webpki alone would accept this one for client auth.
            "no EKU at all",
            Spec::new("ws01").ekus(&[]).candidate(),
            |d| matches!(d, [DropReason::NoClientAuthEku { ekus }] if ekus.is_empty()),
        ),
        (
            "server auth only",
            Spec::new("ws01").ekus(&[sa]).candidate(),
            |d| matches!(d, [DropReason::NoClientAuthEku { ekus }] if ekus == &[SERVER_AUTH]),
        ),
        (
            "not yet valid",
            Spec::new("ws01")
                .validity(NOW + 1, NOW + 365 * DAY)
                .candidate(),
            |d| matches!(d, [DropReason::NotYetValid { not_before }] if *not_before == NOW + 1),
        ),
        (
            "expired",
            Spec::new("ws01")
                .validity(NOW - 30 * DAY, NOW - 1)
                .candidate(),
            |d| matches!(d, [DropReason::Expired { not_after }] if *not_after == NOW - 1),
        ),
        (
            "no key",
            Candidate {
                has_key: false,
                ..Spec::new("ws01").candidate()
            },
            |d| matches!(d, [DropReason::NoPrivateKey]),
        ),
        (
            "foreign issuer",
            cand(
                "personal",
                "f.der",
                Spec::new("ws01").issue_by(foreign_pki()),
            ),
            |d| matches!(d, [DropReason::UntrustedIssuer { error }] if error.contains("UnknownIssuer")),
        ),
        (
            "a CA certificate",
            cand("personal", "ca.der", pki().int_der.clone()),
            // The issuing CA has neither clientAuth nor a leaf's place, nor the computer name.
            |d| {
                d.iter()
                    .any(|r| matches!(r, DropReason::NoClientAuthEku { .. }))
                    && d.iter()
                        .any(|r| matches!(r, DropReason::CriteriaNotMet { .. }))
            },
        ),
        ("criteria", Spec::new("ws99").candidate(), |d| {
            matches!(d, [DropReason::CriteriaNotMet { .. }])
        }),
        (
            "several at once",
            Candidate {
                has_key: false,
                ..cand(
                    "archive",
                    "old.der",
                    Spec::new("ws01").validity(NOW - 30 * DAY, NOW - DAY).der(),
                )
            },
            |d| {
                matches!(
                    d,
                    [
                        DropReason::OutsideStores { .. },
                        DropReason::Expired { .. },
                        DropReason::NoPrivateKey
                    ]
                )
            },
        ),
    ];
    let p = policy(SelectionCriteria::Default);
    for (what, c, check) in cases {
        let sel = run(&p, std::slice::from_ref(&c));
        let v = &sel.verdicts[0];
        assert!(!v.kept && !v.selected, "{what}");
        assert!(check(&v.dropped), "{what}: {:?}", v.dropped);
        assert_eq!(sel.outcome, Outcome::NoCandidate, "{what}");
    }
}

#[test]
fn drop_texts_name_the_field_and_the_date() {
    let p = policy(SelectionCriteria::Default);
    let sel = run(
        &p,
        &[Spec::new("ws01")
            .validity(NOW - 30 * DAY, NOW - DAY)
            .candidate()],
    );
    let text = sel.verdicts[0].dropped[0].to_string();
    assert_eq!(text, "notAfter: expired on 2025-12-31T00:00:00Z");
    let sel = run(
        &p,
        &[Spec::new("ws01")
            .validity(NOW + DAY, NOW + 9 * DAY)
            .candidate()],
    );
    assert_eq!(
        sel.verdicts[0].dropped[0].to_string(),
        "notBefore: not yet valid, valid from 2026-01-02T00:00:00Z"
    );
    let sel = run(&p, &[Spec::new("ws01").ekus(&[SERVER_AUTH]).candidate()]);
    assert_eq!(
        sel.verdicts[0].dropped[0].to_string(),
        "extendedKeyUsage: no Client Authentication (1.3.6.1.5.5.7.3.2); it has 1.3.6.1.5.5.7.3.1"
    );
}

#[test]
fn validity_bounds_are_inclusive() {
    let p = policy(SelectionCriteria::Default);
    for spec in [
        Spec::new("ws01").validity(NOW, NOW + DAY),
        Spec::new("ws01").validity(NOW - DAY, NOW),
    ] {
        let sel = run(&p, &[spec.candidate()]);
        assert_eq!(sel.selected(), Some(0), "{}", sel.explain());
    }
}

#[test]
fn chains_need_the_intermediate_and_a_usable_root() {
    let p = policy(SelectionCriteria::Default);
    let c = Spec::new("ws01").candidate();
    let roots = vec![b"junk root".to_vec(), pki().root_der.clone()];
    // A broken root is a warning; the good one still anchors the chain.
    let ints = vec![pki().int_der.clone()];
    let sel = select(
        std::slice::from_ref(&c),
        &Context {
            computer: "ws01",
            fqdn: None,
            now: NOW,
            trusted_roots: &roots,
            intermediates: &ints,
            policy: &p,
        },
    );
    assert_eq!(sel.selected(), Some(0), "{}", sel.explain());
    assert_eq!(sel.warnings.len(), 1);
    assert!(
        sel.warnings[0].contains("trusted root #1"),
        "{:?}",
        sel.warnings
    );
    assert!(sel.explain().contains("warning: trusted root #1"));
    // Without the issuing CA the path cannot be built.
    let sel = select(
        std::slice::from_ref(&c),
        &Context {
            computer: "ws01",
            fqdn: None,
            now: NOW,
            trusted_roots: &roots,
            intermediates: &[],
            policy: &p,
        },
    );
    assert!(
        matches!(sel.verdicts[0].dropped.as_slice(), [DropReason::UntrustedIssuer { error }] if error.contains("UnknownIssuer")),
        "{:?}",
        sel.verdicts[0].dropped
    );
}

#[test]
fn issuer_list_accepts_any_certificate_of_the_chain() {
    let int_fp = cert::fingerprint(&pki().int_der);
    let root_fp = cert::fingerprint(&pki().root_der);
    let foreign_fp = cert::fingerprint(&foreign_pki().root_der);
    let c = Spec::new("ws01").candidate();
    for (list, kept) in [
        (vec![int_fp.clone()], true),
        (vec![foreign_fp.clone(), root_fp.clone()], true),
        (vec![foreign_fp.clone()], false),
    ] {
        let mut p = policy(SelectionCriteria::Default);
        p.issuers = list.clone();
        let sel = run(&p, std::slice::from_ref(&c));
        let v = &sel.verdicts[0];
        assert_eq!(v.kept, kept, "{list:?}: {}", sel.explain());
        if !kept {
            match v.dropped.as_slice() {
                [DropReason::IssuerNotListed { chain, allowed }] => {
                    assert_eq!(chain.len(), 2, "{chain:?}");
                    assert!(chain[0].contains("Fleet Issuing CA") && chain[0].contains(&int_fp));
                    assert!(chain[1].contains("Fleet Root") && chain[1].contains(&root_fp));
                    assert_eq!(allowed, &list);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn other_stores_count_when_the_policy_names_them() {
    let mut p = policy(SelectionCriteria::Default);
    p.stores = vec!["personal".into(), "trusted-people".into()];
    let sel = run(
        &p,
        &[cand("trusted-people", "a.der", Spec::new("ws01").der())],
    );
    assert_eq!(sel.selected(), Some(0), "{}", sel.explain());
}

#[test]
fn pem_candidates_are_read() {
    let der = Spec::new("ws01").der();
    let pem = cert::to_pem(&der).into_bytes();
    let sel = run(
        &policy(SelectionCriteria::Default),
        &[cand("personal", "a.pem", pem)],
    );
    assert_eq!(sel.selected(), Some(0), "{}", sel.explain());
}

#[test]
fn several_matches_fail_by_default_and_name_every_candidate() {
    let a = Spec::new("ws01");
    let b = Spec::new("ws01.corp.example").validity(NOW - DAY, NOW + 700 * DAY);
    let cands = [a.candidate(), b.candidate(), Spec::new("ws99").candidate()];
    let sel = run(&policy(SelectionCriteria::Default), &cands);
    assert_eq!(sel.selected(), None);
    assert_eq!(
        sel.outcome,
        Outcome::Ambiguous {
            indices: vec![0, 1],
            serials: vec![a.serial_hex(), b.serial_hex()],
        }
    );
    assert!(sel.verdicts[..2].iter().all(|v| v.kept && !v.selected));
    let msg = sel.fallback_message().unwrap();
    for s in [&a, &b] {
        assert!(
            msg.contains(&format!(
                "personal/{}.der serial {}",
                s.serial_hex(),
                s.serial_hex()
            )),
            "{msg}"
        );
    }
    assert!(msg.starts_with("client certificate selection failed: 2 certificates match"));
    assert!(!msg.contains(&Spec::new("x").serial_hex()));
    assert!(sel.explain().contains("the connection is not attempted"));
}

#[test]
fn longest_validity_takes_the_latest_not_after_whatever_the_order() {
    let short = Spec::new("ws01").validity(NOW - 10 * DAY, NOW + 100 * DAY);
    let long = Spec::new("ws01").validity(NOW - 20 * DAY, NOW + 300 * DAY);
    let mid = Spec::new("ws01").validity(NOW - DAY, NOW + 200 * DAY);
    let mut p = policy(SelectionCriteria::Default);
    p.multiple_match = MultipleMatch::LongestValidity;
    let forward = [short.candidate(), long.candidate(), mid.candidate()];
    let mut backward = forward.clone();
    backward.reverse();
    for cands in [&forward[..], &backward[..]] {
        let sel = run(&p, cands);
        match &sel.outcome {
            Outcome::Selected { index, serial, why } => {
                assert_eq!(serial, &long.serial_hex());
                assert_eq!(cands[*index].der, forward[1].der);
                assert!(
                    why.starts_with(
                        "longest validity: notAfter 2026-10-28T00:00:00Z is the latest of 3"
                    ),
                    "{why}"
                );
                assert!(!why.contains("tie"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(sel.verdicts.iter().filter(|v| v.selected).count(), 1);
        assert!(sel.fallback_message().is_none());
    }
}

#[test]
fn longest_validity_ties_are_broken_deterministically() {
    let mut p = policy(SelectionCriteria::Default);
    p.multiple_match = MultipleMatch::LongestValidity;
    // Same notAfter: the later notBefore wins.
    let older = Spec::new("ws01").validity(NOW - 10 * DAY, NOW + 100 * DAY);
    let newer = Spec::new("ws01").validity(NOW - DAY, NOW + 100 * DAY);
    for cands in [
        [older.candidate(), newer.candidate()],
        [newer.candidate(), older.candidate()],
    ] {
        let sel = run(&p, &cands);
        let Outcome::Selected { serial, why, .. } = &sel.outcome else {
            panic!("{:?}", sel.outcome)
        };
        assert_eq!(serial, &newer.serial_hex());
        assert!(
            why.contains("tie on notAfter, broken by the later notBefore"),
            "{why}"
        );
    }
    // Same dates: the larger serial wins (numerically: 0x10000 > 0xffff).
    let small = Spec::new("ws01").serial(0xffff);
    let large = Spec::new("ws01").serial(0x10000);
    for cands in [
        [small.candidate(), large.candidate()],
        [large.candidate(), small.candidate()],
    ] {
        let sel = run(&p, &cands);
        let Outcome::Selected { serial, why, .. } = &sel.outcome else {
            panic!("{:?}", sel.outcome)
        };
        assert_eq!(serial, "010000");
        assert!(why.contains("broken by the larger serial"), "{why}");
    }
}

#[test]
fn the_same_certificate_in_two_stores_is_one_candidate() {
    let mut p = policy(SelectionCriteria::Default);
    p.stores = vec!["personal".into(), "trusted-people".into()];
    let der = Spec::new("ws01").der();
    let cands = [
        cand("personal", "a.der", der.clone()),
        cand("trusted-people", "b.der", der),
    ];
    let sel = run(&p, &cands);
    assert_eq!(sel.selected(), Some(0), "{}", sel.explain());
    assert_eq!(
        sel.verdicts[1].dropped,
        vec![DropReason::Duplicate {
            of: "personal/a.der".into()
        }]
    );
}

#[test]
fn explain_shows_every_candidate_and_why() {
    let good = Spec::new("ws01");
    let expired = Spec::new("ws01").validity(NOW - 30 * DAY, NOW - DAY);
    let cands = [
        good.candidate(),
        expired.candidate(),
        cand("personal", "junk.der", b"junk".to_vec()),
        cand("archive", "old.der", Spec::new("ws01").der()),
    ];
    let sel = run(&policy(SelectionCriteria::Default), &cands);
    assert_eq!(sel.selected(), Some(0));
    let text = sel.explain();
    for c in &cands {
        assert!(text.contains(&format!("{}/{}", c.store, c.file)), "{text}");
    }
    for v in &sel.verdicts {
        if let Some(s) = &v.serial {
            assert!(text.contains(&format!("serial {s}")), "{text}");
        }
        for d in &v.dropped {
            assert!(text.contains(&format!("- {d}")), "{text}");
        }
    }
    assert!(text.contains(&format!("[1] personal/{}.der SELECTED", good.serial_hex())));
    assert!(text.contains(&format!(
        "[2] personal/{}.der DROPPED",
        expired.serial_hex()
    )));
    assert!(text.contains("+ criteria met: subject `CN=ws01` contains `ws01`"));
    assert!(text.contains("+ chains to a trusted root: `CN=Fleet Issuing CA,O=Contoso`"));
    assert!(text.contains("criteria: default: subject or a SAN contains the computer name `ws01` or FQDN `ws01.corp.example`"));
    assert!(text.contains(&format!(
        "Outcome: selected [1] serial {}: the only certificate that passes every check",
        good.serial_hex()
    )));
}

#[test]
fn no_candidate_reports_why_each_was_dropped() {
    let sel = run(
        &policy(SelectionCriteria::Default),
        &[cand("personal", "junk.der", b"junk".to_vec())],
    );
    assert_eq!(sel.outcome, Outcome::NoCandidate);
    let msg = sel.fallback_message().unwrap();
    assert!(
        msg.contains("personal/junk.der (certificate: cannot be parsed"),
        "{msg}"
    );
    let sel = run(&policy(SelectionCriteria::Default), &[]);
    assert_eq!(sel.outcome, Outcome::NoCandidate);
    assert!(sel.explain().contains("Candidates: 0"));
}

#[test]
fn selection_serializes_for_json_output() {
    let cands = [
        Spec::new("ws01").candidate(),
        Spec::new("ws01")
            .validity(NOW - 30 * DAY, NOW - DAY)
            .candidate(),
    ];
    let sel = run(&policy(SelectionCriteria::Default), &cands);
    let j = serde_json::to_value(&sel).unwrap();
    assert_eq!(j["outcome"]["result"], "selected");
    assert_eq!(j["outcome"]["index"], 0);
    assert_eq!(j["verdicts"][1]["dropped"][0]["rule"], "expired");
    assert_eq!(j["verdicts"][1]["dropped"][0]["not_after"], NOW - DAY);
    assert_eq!(j["verdicts"][0]["selected"], true);
}
