//! OCSP against the real `openssl ocsp`: requests OpenSSL makes must parse and match their
//! issuer, and responses we sign (by the issuing CA and by a delegated responder) must verify
//! and report the right status, with the nonce echoed. These tests fail (they do not skip) when
//! `openssl` is missing; the pkilint test skips without `lint_ocsp_response` unless CI or
//! FLEETPKI_REQUIRE_TOOLS is set.

mod common;
use common::{must, openssl};
use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::record::RevocationReason;
use fleetpki_model::template::HashAlg;
use fleetpki_x509::cert::{self, CertParams, IssuerUrls, San};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::ocsp::{
    self, CertId, CertIdHash, CertStatus, ErrorStatus, OcspRequest, SingleResponse,
};
use fleetpki_x509::{name, serial};
use std::path::Path;
use x509_cert::Certificate;

const DAY: i64 = 86_400;
const OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";

fn now() -> i64 {
    fleetpki_model::now()
}

struct Issued {
    key: PrivateKey,
    cert: Certificate,
    der: Vec<u8>,
    serial: Vec<u8>,
}

fn issue(
    dir: &Path,
    file: &str,
    cn: &str,
    ca: Option<Option<u8>>,
    ekus: &[&str],
    issuer: Option<&Issued>,
) -> Issued {
    let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let p = CertParams {
        serial: serial::random().unwrap(),
        subject: name::build(&[("CN", cn), ("O", "Contoso")]).unwrap(),
        sans: if ca.is_none() {
            vec![San::Dns(format!("{}.fleet.test", cn.replace(' ', "-")))]
        } else {
            vec![]
        },
        spki_der: key.public_key_der(),
        not_before: now() - 3600,
        not_after: now() + 365 * DAY,
        key_usage: if ca.is_some() {
            vec![KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign]
        } else {
            vec![KeyUsageBit::DigitalSignature]
        },
        ekus: ekus.iter().map(|e| e.to_string()).collect(),
        ca,
        urls: if issuer.is_some() {
            IssuerUrls {
                crl: Some("http://pki.fleet.test/ca.crl".into()),
                ocsp: Some("http://pki.fleet.test/ocsp".into()),
                ca_issuers: Some("http://pki.fleet.test/ca.crt".into()),
            }
        } else {
            IssuerUrls::default()
        },
    };
    let der = match issuer {
        Some(i) => cert::issue(&p, Some(&i.cert), &i.key.signer(HashAlg::Sha256)),
        None => cert::issue(&p, None, &key.signer(HashAlg::Sha256)),
    }
    .unwrap();
    std::fs::write(dir.join(file), cert::to_pem(&der)).unwrap();
    Issued {
        cert: cert::parse(file, &der).unwrap(),
        key,
        der,
        serial: p.serial,
    }
}

/// root → inter → leaf1..3 and a delegated OCSP responder; `other` is a second CA under root.
struct Pki {
    dir: tempfile::TempDir,
    root: Issued,
    inter: Issued,
    other: Issued,
    leaves: Vec<Issued>,
    responder: Issued,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = issue(d, "root.pem", "Fleet OCSP Test Root", Some(None), &[], None);
    let inter = issue(
        d,
        "inter.pem",
        "Fleet Issuing CA",
        Some(Some(0)),
        &[],
        Some(&root),
    );
    let other = issue(
        d,
        "other.pem",
        "Fleet Other CA",
        Some(Some(0)),
        &[],
        Some(&root),
    );
    let leaves = (1..=3)
        .map(|i| {
            let cn = format!("leaf{i}");
            issue(
                d,
                &format!("{cn}.pem"),
                &cn,
                None,
                &["1.3.6.1.5.5.7.3.2"],
                Some(&inter),
            )
        })
        .collect();
    let responder = issue(
        d,
        "responder.pem",
        "Fleet OCSP Responder",
        None,
        &[OCSP_SIGNING],
        Some(&inter),
    );
    Pki {
        dir,
        root,
        inter,
        other,
        leaves,
        responder,
    }
}

/// `openssl ocsp -reqout` with `args` (which name the issuer and certificates).
fn openssl_request(p: &Pki, file: &str, args: &[&str]) -> (Vec<u8>, OcspRequest) {
    let mut all = vec!["ocsp", "-reqout", file];
    all.extend_from_slice(args);
    must(p.dir.path(), &all);
    let der = std::fs::read(p.dir.path().join(file)).unwrap();
    let req = ocsp::parse_request(&der).unwrap();
    (der, req)
}

fn statuses() -> Vec<CertStatus> {
    vec![
        CertStatus::Good,
        CertStatus::Revoked {
            at: now() - 600,
            reason: Some(RevocationReason::KeyCompromise),
        },
        CertStatus::Unknown,
    ]
}

fn answer(req: &OcspRequest, status: &[CertStatus]) -> Vec<SingleResponse> {
    req.ids
        .iter()
        .zip(status)
        .map(|(id, s)| SingleResponse {
            id: id.clone(),
            status: s.clone(),
            this_update: now() - 60,
            next_update: Some(now() + DAY),
        })
        .collect()
}

fn write(p: &Pki, file: &str, der: &[u8]) {
    std::fs::write(p.dir.path().join(file), der).unwrap();
}

#[test]
fn openssl_requests_parse_and_match_their_issuer() {
    let p = pki();
    let leaf1 = &p.leaves[0];

    let (_, req) = openssl_request(
        &p,
        "nonce.der",
        &["-issuer", "inter.pem", "-cert", "leaf1.pem"],
    );
    assert_eq!(req.ids.len(), 1);
    let id = &req.ids[0];
    assert_eq!(id.hash, CertIdHash::Sha1, "openssl's default CertID hash");
    assert_eq!(id.serial, leaf1.serial);
    assert!(id.matches_issuer(&p.inter.cert));
    assert!(!id.matches_issuer(&p.root.cert));
    assert!(!id.matches_issuer(&p.other.cert));
    assert_eq!(
        id,
        &CertId::new(CertIdHash::Sha1, &p.inter.cert, &leaf1.serial).unwrap()
    );
    // OpenSSL sends a 16-byte nonce wrapped in an OCTET STRING (RFC 9654).
    let nonce = req.nonce.expect("openssl sends a nonce by default");
    assert_eq!(nonce.len(), 18);
    assert_eq!(&nonce[..2], &[0x04, 0x10]);

    let (_, req) = openssl_request(
        &p,
        "no-nonce.der",
        &["-issuer", "inter.pem", "-cert", "leaf1.pem", "-no_nonce"],
    );
    assert_eq!(req.nonce, None);
    assert_eq!(req.ids.len(), 1);

    // The digest option applies to the -cert options after it.
    let (_, req) = openssl_request(
        &p,
        "sha256.der",
        &["-issuer", "inter.pem", "-sha256", "-cert", "leaf1.pem"],
    );
    let id = &req.ids[0];
    assert_eq!(id.hash, CertIdHash::Sha256);
    assert_eq!(id.issuer_name_hash.len(), 32);
    assert!(id.matches_issuer(&p.inter.cert));
    assert!(!id.matches_issuer(&p.other.cert));

    let (_, req) = openssl_request(
        &p,
        "two.der",
        &[
            "-issuer",
            "inter.pem",
            "-cert",
            "leaf2.pem",
            "-cert",
            "leaf1.pem",
        ],
    );
    let serials: Vec<_> = req.ids.iter().map(|i| i.serial.clone()).collect();
    assert_eq!(
        serials,
        vec![p.leaves[1].serial.clone(), leaf1.serial.clone()]
    );
    assert!(req.ids.iter().all(|i| i.matches_issuer(&p.inter.cert)));

    // A certificate of another CA in the same request: each id matches its own issuer.
    let (_, req) = openssl_request(
        &p,
        "mixed.der",
        &[
            "-issuer",
            "inter.pem",
            "-cert",
            "leaf1.pem",
            "-issuer",
            "root.pem",
            "-cert",
            "other.pem",
        ],
    );
    assert!(req.ids[0].matches_issuer(&p.inter.cert));
    assert!(req.ids[1].matches_issuer(&p.root.cert));
    assert!(!req.ids[1].matches_issuer(&p.inter.cert));
}

/// Signs answers (good, revoked keyCompromise, unknown) to a three-certificate request and has
/// openssl verify them, by request (`-reqin`, which also checks the nonce) and by certificate.
fn check_with_openssl(p: &Pki, tag: &str, digest: &str, delegated: bool) {
    let d = p.dir.path();
    let req_file = format!("{tag}-req.der");
    let resp_file = format!("{tag}-resp.der");
    let certs = [
        "-cert",
        "leaf1.pem",
        "-cert",
        "leaf2.pem",
        "-cert",
        "leaf3.pem",
    ];
    let mut args = vec!["-issuer", "inter.pem", digest];
    args.extend(certs);
    let (_, req) = openssl_request(p, &req_file, &args);
    let status = statuses();
    let singles = answer(&req, &status);
    let (responder, signer_key, extra) = if delegated {
        (
            &p.responder.cert,
            &p.responder.key,
            vec![p.responder.der.clone()],
        )
    } else {
        (&p.inter.cert, &p.inter.key, vec![])
    };
    let resp = ocsp::sign_response(
        &singles,
        req.nonce.as_deref(),
        responder,
        &signer_key.signer(HashAlg::Sha256),
        now(),
        &extra,
    )
    .unwrap();
    write(p, &resp_file, &resp);

    // Our own reading of it.
    let parsed = ocsp::parse_response(&resp).unwrap();
    assert_eq!(parsed.error, None);
    assert_eq!(parsed.nonce, req.nonce, "nonce echoed");
    assert_eq!(parsed.responses, singles);
    assert_eq!(parsed.certs, extra);
    parsed.verify_signed_by(responder).unwrap();

    let out = must(
        d,
        &[
            "ocsp",
            "-reqin",
            &req_file,
            "-respin",
            &resp_file,
            "-issuer",
            "inter.pem",
            "-CAfile",
            "root.pem",
            "-resp_text",
        ],
    );
    assert!(out.contains("Response verify OK"), "{tag}:\n{out}");
    assert!(!out.contains("WARNING"), "{tag}:\n{out}");
    assert!(
        out.contains("OCSP Response Status: successful (0x0)"),
        "{tag}:\n{out}"
    );
    assert!(
        out.contains("Response Type: Basic OCSP Response"),
        "{tag}:\n{out}"
    );
    assert!(out.contains("Responder Id: "), "{tag}:\n{out}");
    assert!(out.contains("OCSP Nonce"), "{tag}:\n{out}");
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Cert Status:"))
        .collect();
    assert_eq!(
        lines,
        [
            "Cert Status: good",
            "Cert Status: revoked",
            "Cert Status: unknown"
        ],
        "{tag}:\n{out}"
    );
    assert!(
        out.contains("Revocation Reason: keyCompromise (0x1)"),
        "{tag}:\n{out}"
    );
    let algo = if digest == "-sha256" {
        "sha256"
    } else {
        "sha1"
    };
    assert!(
        out.contains(&format!("Hash Algorithm: {algo}")),
        "{tag}:\n{out}"
    );

    // By certificate: openssl builds the same CertIDs and reports each one's status.
    let mut args = vec!["ocsp", "-issuer", "inter.pem", digest];
    args.extend(certs);
    args.extend(["-no_nonce", "-respin", &resp_file, "-CAfile", "root.pem"]);
    let out = must(d, &args);
    assert!(out.contains("Response verify OK"), "{tag}:\n{out}");
    for want in [
        "leaf1.pem: good",
        "leaf2.pem: revoked",
        "leaf3.pem: unknown",
    ] {
        assert!(out.contains(want), "{tag}: missing {want}:\n{out}");
    }
    assert!(out.contains("Reason: keyCompromise"), "{tag}:\n{out}");
    assert!(!out.contains("Status times invalid"), "{tag}:\n{out}");
}

#[test]
fn ca_signed_responses_verify_with_openssl() {
    let p = pki();
    check_with_openssl(&p, "ca-sha1", "-sha1", false);
    check_with_openssl(&p, "ca-sha256", "-sha256", false);
}

#[test]
fn delegated_responder_responses_verify_with_openssl() {
    let p = pki();
    check_with_openssl(&p, "delegated-sha1", "-sha1", true);
    check_with_openssl(&p, "delegated-sha256", "-sha256", true);
}

#[test]
fn openssl_rejects_what_it_should() {
    let p = pki();
    let d = p.dir.path();
    let (_, req) = openssl_request(
        &p,
        "req.der",
        &["-issuer", "inter.pem", "-cert", "leaf1.pem"],
    );
    let singles = answer(&req, &[CertStatus::Good]);
    let sign = |nonce: Option<&[u8]>, who: &Issued, certs: &[Vec<u8>]| {
        ocsp::sign_response(
            &singles,
            nonce,
            &who.cert,
            &who.key.signer(HashAlg::Sha256),
            now(),
            certs,
        )
        .unwrap()
    };
    let verify = |file: &str| {
        openssl(
            d,
            &[
                "ocsp",
                "-reqin",
                "req.der",
                "-respin",
                file,
                "-issuer",
                "inter.pem",
                "-CAfile",
                "root.pem",
            ],
        )
    };

    // A different nonce: openssl's nonce check is live, so the echo test above means something.
    let mut other = req.nonce.clone().unwrap();
    let last = other.len() - 1;
    other[last] ^= 1;
    write(&p, "bad-nonce.der", &sign(Some(&other), &p.inter, &[]));
    let r = verify("bad-nonce.der");
    assert!(!r.ok && r.out.contains("Nonce Verify error"), "{}", r.out);

    // No nonce at all in the answer: accepted with a warning.
    write(&p, "no-nonce.der", &sign(None, &p.inter, &[]));
    let r = verify("no-nonce.der");
    assert!(r.out.contains("WARNING: no nonce in response"), "{}", r.out);

    // A responder certificate without the OCSPSigning EKU is not authorised.
    write(
        &p,
        "unauthorised.der",
        &sign(
            req.nonce.as_deref(),
            &p.leaves[0],
            &[p.leaves[0].der.clone()],
        ),
    );
    let r = verify("unauthorised.der");
    assert!(!r.ok && !r.out.contains("Response verify OK"), "{}", r.out);
}

#[test]
fn error_responses_read_by_openssl() {
    let p = pki();
    for (status, text) in [
        (
            ErrorStatus::MalformedRequest,
            "responder error: malformedrequest (1)",
        ),
        (
            ErrorStatus::InternalError,
            "responder error: internalerror (2)",
        ),
        (ErrorStatus::TryLater, "responder error: trylater (3)"),
        (ErrorStatus::SigRequired, "responder error: sigrequired (5)"),
        (
            ErrorStatus::Unauthorized,
            "responder error: unauthorized (6)",
        ),
    ] {
        let der = ocsp::error_response(status);
        write(&p, "err.der", &der);
        let out = openssl(p.dir.path(), &["ocsp", "-respin", "err.der", "-resp_text"]).out;
        assert!(
            out.to_ascii_lowercase().contains(text),
            "{status:?}:\n{out}"
        );
        assert_eq!(ocsp::parse_response(&der).unwrap().error, Some(status));
    }
}

#[test]
fn garbage_requests_are_errors_not_panics() {
    let p = pki();
    let (der, _) = openssl_request(
        &p,
        "req.der",
        &[
            "-issuer",
            "inter.pem",
            "-cert",
            "leaf1.pem",
            "-cert",
            "leaf2.pem",
        ],
    );
    for n in 0..der.len() {
        let e = ocsp::parse_request(&der[..n]).unwrap_err();
        assert_eq!(e.field(), "ocsp.request");
    }
    let mut longer = der.clone();
    longer.push(0);
    assert!(ocsp::parse_request(&longer).is_err());
    // Every single-byte corruption parses or fails, but never panics.
    for i in 0..der.len() {
        for x in [0x01, 0x80, 0xff] {
            let mut m = der.clone();
            m[i] ^= x;
            let _ = ocsp::parse_request(&m);
            let _ = ocsp::parse_response(&m);
        }
    }
    for junk in [
        &b""[..],
        b"\x30",
        b"\x30\x00",
        b"\x30\x80\x00\x00",
        b"\x30\x84\xff\xff\xff\xff",
        b"GET / HTTP/1.1\r\n",
        &[0u8; 64],
    ] {
        assert_eq!(
            ocsp::parse_request(junk).unwrap_err().field(),
            "ocsp.request"
        );
        assert_eq!(
            ocsp::parse_response(junk).unwrap_err().field(),
            "ocsp.response"
        );
    }
    // A certificate is not a request.
    assert!(ocsp::parse_request(&p.inter.der).is_err());
}

#[test]
fn pkilint_finds_nothing_in_good_and_revoked_responses() {
    if fleetpki_testkit::tool("lint_ocsp_response").is_none() {
        return;
    }
    let p = pki();
    let (_, req) = openssl_request(
        &p,
        "req.der",
        &["-issuer", "inter.pem", "-cert", "leaf1.pem"],
    );
    for (delegated, status) in [
        (false, CertStatus::Good),
        (
            false,
            CertStatus::Revoked {
                at: now() - 600,
                reason: Some(RevocationReason::KeyCompromise),
            },
        ),
        (
            false,
            CertStatus::Revoked {
                at: now() - 600,
                reason: None,
            },
        ),
        (true, CertStatus::Good),
        (
            true,
            CertStatus::Revoked {
                at: now() - 600,
                reason: Some(RevocationReason::Superseded),
            },
        ),
    ] {
        let who = if delegated { &p.responder } else { &p.inter };
        let certs = if delegated {
            vec![p.responder.der.clone()]
        } else {
            vec![]
        };
        let resp = ocsp::sign_response(
            &answer(&req, std::slice::from_ref(&status)),
            req.nonce.as_deref(),
            &who.cert,
            &who.key.signer(HashAlg::Sha256),
            now(),
            &certs,
        )
        .unwrap();
        let findings = fleetpki_testkit::pkilint_ocsp(&resp).unwrap();
        assert!(
            findings.is_empty(),
            "{status:?} (delegated: {delegated}): {findings:#?}"
        );
    }
}
