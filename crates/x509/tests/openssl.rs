//! Cross-checks with the real `openssl` CLI: everything we issue, sign or encrypt must be
//! accepted by OpenSSL, and requests and keys OpenSSL makes must be read by us. These tests fail
//! (they do not skip) when `openssl` is missing.

mod common;
use common::{must, openssl};
use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::record::RevocationReason;
use fleetpki_model::template::{HashAlg, KeyFamily, KeyInfo};
use fleetpki_x509::cert::{self, CertParams, IssuerUrls, San};
use fleetpki_x509::crl::{self, CrlEntry, CrlParams};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{csr, name, pem, serial};
use std::path::{Path, PathBuf};
use x509_cert::Certificate;

const DAY: i64 = 86_400;

fn write(dir: &Path, file: &str, data: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, data).unwrap();
    p
}

fn now() -> i64 {
    fleetpki_model::now()
}

struct Ca {
    key: PrivateKey,
    cert: Certificate,
    der: Vec<u8>,
}

fn params(
    subject: &[(&str, &str)],
    spki: Vec<u8>,
    ku: Vec<KeyUsageBit>,
    ca: Option<Option<u8>>,
) -> CertParams {
    CertParams {
        serial: serial::random().unwrap(),
        subject: name::build(subject).unwrap(),
        sans: vec![],
        spki_der: spki,
        not_before: now() - 3600,
        not_after: now() + 365 * DAY,
        key_usage: ku,
        ekus: vec![],
        ca,
        urls: IssuerUrls::default(),
    }
}

fn urls(tag: &str) -> IssuerUrls {
    IssuerUrls {
        crl: Some(format!("http://pki.fleet.test/{tag}.crl")),
        ocsp: Some("http://pki.fleet.test/ocsp".into()),
        ca_issuers: Some(format!("http://pki.fleet.test/{tag}.crt")),
    }
}

fn root(kt: KeyType) -> Ca {
    let key = PrivateKey::generate(kt).unwrap();
    let mut p = params(
        &[("CN", "Fleet Test Root"), ("O", "Contoso"), ("C", "US")],
        key.public_key_der(),
        vec![KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign],
        Some(None),
    );
    p.not_after = now() + 20 * 365 * DAY;
    let der = cert::issue(&p, None, &key.signer(HashAlg::Sha256)).unwrap();
    Ca {
        cert: cert::parse("root", &der).unwrap(),
        key,
        der,
    }
}

fn intermediate(root: &Ca, kt: KeyType, hash: HashAlg) -> Ca {
    let key = PrivateKey::generate(kt).unwrap();
    let mut p = params(
        &[("CN", "Fleet Test Issuing CA"), ("O", "Contoso")],
        key.public_key_der(),
        vec![
            KeyUsageBit::KeyCertSign,
            KeyUsageBit::CrlSign,
            KeyUsageBit::DigitalSignature,
        ],
        Some(Some(0)),
    );
    p.urls = urls("root");
    let der = cert::issue(&p, Some(&root.cert), &root.key.signer(hash)).unwrap();
    Ca {
        cert: cert::parse("intermediate", &der).unwrap(),
        key,
        der,
    }
}

struct Chain {
    dir: tempfile::TempDir,
    root: Ca,
    int: Ca,
}

fn chain(root_kt: KeyType, int_kt: KeyType) -> Chain {
    let dir = tempfile::tempdir().unwrap();
    let root = root(root_kt);
    let int = intermediate(&root, int_kt, HashAlg::Sha384);
    write(dir.path(), "root.pem", cert::to_pem(&root.der));
    write(dir.path(), "inter.pem", cert::to_pem(&int.der));
    write(
        dir.path(),
        "chain.pem",
        format!("{}{}", cert::to_pem(&int.der), cert::to_pem(&root.der)),
    );
    Chain { dir, root, int }
}

/// Issues a leaf under the chain's intermediate and runs `openssl verify -x509_strict` on it.
fn leaf_verifies(c: &Chain, file: &str, p: &CertParams, purpose: Option<&str>) -> Vec<u8> {
    let der = cert::issue(p, Some(&c.int.cert), &c.int.key.signer(HashAlg::Sha256)).unwrap();
    write(c.dir.path(), file, cert::to_pem(&der));
    let mut args = vec![
        "verify",
        "-x509_strict",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "inter.pem",
    ];
    if let Some(purpose) = purpose {
        args.extend(["-purpose", purpose]);
    }
    args.push(file);
    let out = must(c.dir.path(), &args);
    assert!(out.contains(&format!("{file}: OK")), "{out}");
    der
}

#[test]
fn issued_chains_verify_with_openssl() {
    for (root_kt, int_kt) in [
        (KeyType::EcdsaP384, KeyType::EcdsaP256),
        (KeyType::Rsa3072, KeyType::Rsa2048),
        (KeyType::Ed25519, KeyType::EcdsaP384),
    ] {
        let c = chain(root_kt, int_kt);
        let d = c.dir.path();
        // Root and intermediate on their own.
        assert!(
            must(
                d,
                &["verify", "-x509_strict", "-CAfile", "root.pem", "root.pem"]
            )
            .contains("root.pem: OK")
        );
        assert!(
            must(
                d,
                &["verify", "-x509_strict", "-CAfile", "root.pem", "inter.pem"]
            )
            .contains("inter.pem: OK")
        );
        let text = must(d, &["x509", "-in", "inter.pem", "-noout", "-text"]);
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(
            text.contains("X509v3 Basic Constraints: critical"),
            "{text}"
        );

        // ECDSA end entity with server auth.
        let k = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let mut p = params(
            &[("CN", "mp.fleet.test")],
            k.public_key_der(),
            vec![KeyUsageBit::DigitalSignature],
            None,
        );
        p.sans = vec![
            San::Dns("mp.fleet.test".into()),
            San::Ip("10.0.0.1".parse().unwrap()),
        ];
        p.ekus = vec!["1.3.6.1.5.5.7.3.1".into()];
        p.urls = urls("issuing");
        let der = leaf_verifies(&c, "server.pem", &p, Some("sslserver"));
        let text = must(d, &["x509", "-in", "server.pem", "-noout", "-text"]);
        for want in [
            "DNS:mp.fleet.test, IP Address:10.0.0.1",
            "TLS Web Server Authentication",
            "X509v3 Key Usage: critical",
            "URI:http://pki.fleet.test/issuing.crl",
            "OCSP - URI:http://pki.fleet.test/ocsp",
            "CA Issuers - URI:http://pki.fleet.test/issuing.crt",
            "X509v3 Subject Key Identifier",
            "X509v3 Authority Key Identifier",
        ] {
            assert!(text.contains(want), "missing {want}:\n{text}");
        }
        // Serial and fingerprint agree with openssl's view.
        let info = cert::info(&cert::parse("server", &der).unwrap()).unwrap();
        let serial_out = must(d, &["x509", "-in", "server.pem", "-noout", "-serial"]);
        assert_eq!(
            serial_out
                .trim()
                .trim_start_matches("serial=")
                .to_lowercase(),
            info.serial_hex
        );
        let fp = must(
            d,
            &[
                "x509",
                "-in",
                "server.pem",
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        );
        let fp: String = fp
            .trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase();
        assert_eq!(fp, cert::fingerprint(&der));

        // RSA end entity with client auth (digitalSignature + keyEncipherment, 0xa0).
        let k = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        let mut p = params(
            &[("CN", "pc1.fleet.test")],
            k.public_key_der(),
            vec![KeyUsageBit::DigitalSignature, KeyUsageBit::KeyEncipherment],
            None,
        );
        p.sans = vec![
            San::Dns("pc1.fleet.test".into()),
            San::Upn("pc1$@fleet.test".into()),
        ];
        p.ekus = vec!["1.3.6.1.5.5.7.3.2".into()];
        p.urls = urls("issuing");
        leaf_verifies(&c, "client.pem", &p, Some("sslclient"));

        // Custom EKU (Intel AMT provisioning) with the OU alternative from seed 001.
        let k = PrivateKey::generate(KeyType::EcdsaP384).unwrap();
        let mut p = params(
            &[
                ("CN", "amt.fleet.test"),
                ("OU", "Intel(R) Client Setup Certificate"),
            ],
            k.public_key_der(),
            vec![KeyUsageBit::DigitalSignature],
            None,
        );
        p.sans = vec![San::Dns("amt.fleet.test".into())];
        p.ekus = vec!["1.3.6.1.5.5.7.3.1".into(), "2.16.840.1.113741.1.2.3".into()];
        leaf_verifies(&c, "amt.pem", &p, None);
        let text = must(d, &["x509", "-in", "amt.pem", "-noout", "-text"]);
        assert!(text.contains("2.16.840.1.113741.1.2.3"), "{text}");

        // CN-only subject, no SAN at all.
        let k = PrivateKey::generate(KeyType::Ed25519).unwrap();
        let p = params(
            &[("CN", "Authenticated Session User")],
            k.public_key_der(),
            vec![KeyUsageBit::DigitalSignature],
            None,
        );
        leaf_verifies(&c, "cn-only.pem", &p, None);

        // Empty subject with a (critical) SAN.
        let k = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let mut p = params(
            &[],
            k.public_key_der(),
            vec![KeyUsageBit::DigitalSignature],
            None,
        );
        p.sans = vec![
            San::Email("user@fleet.test".into()),
            San::Upn("user@fleet.test".into()),
        ];
        p.ekus = vec!["1.3.6.1.5.5.7.3.2".into()];
        leaf_verifies(&c, "san-only.pem", &p, None);
        let text = must(d, &["x509", "-in", "san-only.pem", "-noout", "-text"]);
        assert!(
            text.contains("X509v3 Subject Alternative Name: critical"),
            "{text}"
        );

        // A leaf that outlives 2049 gets GeneralizedTime, which openssl reads back.
        let k = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let mut p = params(
            &[("CN", "long.fleet.test")],
            k.public_key_der(),
            vec![KeyUsageBit::DigitalSignature],
            None,
        );
        p.not_after = 2_556_144_000; // 2051-01-01T00:00:00Z
        let der = cert::issue(&p, Some(&c.int.cert), &c.int.key.signer(HashAlg::Sha256)).unwrap();
        write(d, "long.pem", cert::to_pem(&der));
        let end = must(d, &["x509", "-in", "long.pem", "-noout", "-enddate"]);
        assert!(end.contains("Jan  1 00:00:00 2051 GMT"), "{end}");
    }
}

#[test]
fn crls_verify_and_revoke_with_openssl() {
    let c = chain(KeyType::EcdsaP384, KeyType::EcdsaP256);
    let d = c.dir.path();
    let mk_leaf = |file: &str, cn: &str| {
        let k = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let mut p = params(
            &[("CN", cn)],
            k.public_key_der(),
            vec![KeyUsageBit::DigitalSignature],
            None,
        );
        p.ekus = vec!["1.3.6.1.5.5.7.3.2".into()];
        p.urls = urls("issuing");
        let der = leaf_verifies(&c, file, &p, None);
        (p.serial, der)
    };
    let (revoked_serial, _) = mk_leaf("revoked.pem", "gone.fleet.test");
    let (other_serial, _) = mk_leaf("other.pem", "other.fleet.test");
    let (_, _) = mk_leaf("good.pem", "good.fleet.test");
    let t = now();
    let p = CrlParams {
        number: 42,
        this_update: t - 60,
        next_update: t + 7 * DAY,
        entries: vec![
            CrlEntry {
                serial: revoked_serial.clone(),
                revoked_at: t - 120,
                reason: RevocationReason::KeyCompromise,
            },
            CrlEntry {
                serial: other_serial,
                revoked_at: t - 100,
                reason: RevocationReason::Unspecified,
            },
        ],
        delta_base: None,
    };
    let der = crl::sign(&p, &c.int.cert, &c.int.key.signer(HashAlg::Sha256)).unwrap();
    write(d, "int.crl", &der);
    let out = must(
        d,
        &[
            "crl",
            "-in",
            "int.crl",
            "-inform",
            "DER",
            "-CAfile",
            "chain.pem",
            "-noout",
        ],
    );
    assert!(out.contains("verify OK"), "{out}");
    let text = must(
        d,
        &["crl", "-in", "int.crl", "-inform", "DER", "-noout", "-text"],
    );
    let number_line = text
        .lines()
        .skip_while(|l| !l.contains("X509v3 CRL Number"))
        .nth(1)
        .unwrap_or_default();
    assert_eq!(number_line.trim(), "42", "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert_eq!(
        text.matches("CRL Reason Code").count(),
        1,
        "unspecified carries no reason code:\n{text}"
    );
    assert!(
        text.contains(&serial::to_hex(&revoked_serial).to_uppercase()),
        "{text}"
    );

    // The root's (empty) CRL, and CRL checking of the whole chain.
    let root_crl = crl::sign(
        &CrlParams {
            number: 1,
            this_update: t - 60,
            next_update: t + 7 * DAY,
            entries: vec![],
            delta_base: None,
        },
        &c.root.cert,
        &c.root.key.signer(HashAlg::Sha256),
    )
    .unwrap();
    write(
        d,
        "crls.pem",
        format!(
            "{}{}",
            pem::encode("X509 CRL", &der),
            pem::encode("X509 CRL", &root_crl)
        ),
    );
    let base = [
        "verify",
        "-x509_strict",
        "-crl_check_all",
        "-CRLfile",
        "crls.pem",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "inter.pem",
    ];
    let good = openssl(d, &[&base[..], &["good.pem"]].concat());
    assert!(good.ok && good.out.contains("good.pem: OK"), "{}", good.out);
    let bad = openssl(d, &[&base[..], &["revoked.pem"]].concat());
    assert!(
        !bad.ok && bad.out.contains("certificate revoked"),
        "{}",
        bad.out
    );
    let other = openssl(d, &[&base[..], &["other.pem"]].concat());
    assert!(
        !other.ok && other.out.contains("certificate revoked"),
        "{}",
        other.out
    );

    // A delta CRL parses and shows its critical indicator.
    let delta = crl::sign(
        &CrlParams {
            number: 43,
            this_update: t - 60,
            next_update: t + DAY,
            entries: vec![],
            delta_base: Some(42),
        },
        &c.int.cert,
        &c.int.key.signer(HashAlg::Sha256),
    )
    .unwrap();
    write(d, "delta.crl", &delta);
    let out = must(
        d,
        &[
            "crl",
            "-in",
            "delta.crl",
            "-inform",
            "DER",
            "-CAfile",
            "chain.pem",
            "-noout",
            "-text",
        ],
    );
    assert!(out.contains("Delta CRL Indicator: critical"), "{out}");
    assert!(out.contains("verify OK"), "{out}");
}

#[test]
fn our_requests_verify_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    for kt in KeyType::ALL {
        let k = PrivateKey::generate(kt).unwrap();
        let subject = name::build(&[("CN", "pc1.fleet.test"), ("O", "Contoso")]).unwrap();
        let der = csr::create(
            &subject,
            &[
                San::Dns("pc1.fleet.test".into()),
                San::Ip("10.1.2.3".parse().unwrap()),
            ],
            &k.signer(HashAlg::Sha384),
        )
        .unwrap();
        write(
            dir.path(),
            "req.pem",
            pem::encode("CERTIFICATE REQUEST", &der),
        );
        let out = must(
            dir.path(),
            &["req", "-in", "req.pem", "-verify", "-noout", "-text"],
        );
        assert!(
            out.contains("verify OK") || out.contains("verification OK"),
            "{kt}: {out}"
        );
        assert!(
            out.contains("DNS:pc1.fleet.test, IP Address:10.1.2.3"),
            "{kt}: {out}"
        );
    }
}

/// Makes a CSR with `openssl req -new -newkey ...` and returns its PEM.
fn openssl_csr(dir: &Path, newkey: &[&str], extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "req",
        "-new",
        "-nodes",
        "-keyout",
        "k.pem",
        "-out",
        "r.pem",
        "-subj",
        "/O=Contoso/CN=dev1.fleet.test",
    ];
    args.extend(newkey);
    args.extend(extra);
    must(dir, &args);
    std::fs::read(dir.join("r.pem")).unwrap()
}

#[test]
fn openssl_requests_parse_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let san = [
        "-addext",
        "subjectAltName=DNS:dev1.fleet.test,DNS:alt.fleet.test,IP:10.0.0.1,email:a@fleet.test,URI:https://x.test/y,otherName:1.3.6.1.4.1.311.20.2.3;UTF8:dev1\\$@fleet.test",
    ];
    // Windows/MDM requests carry KU, EKU and the Microsoft template extension: tolerated.
    let windows = [
        "-addext",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "-addext",
        "extendedKeyUsage=clientAuth",
        "-addext",
        "1.3.6.1.4.1.311.21.7=DER:3014060c2b06010401823715087b8348020164020104",
        "-addext",
        "1.3.6.1.4.1.311.20.2=ASN1:BMPSTRING:Machine",
        "-addext",
        "basicConstraints=CA:FALSE",
    ];
    let cases: Vec<(Vec<&str>, KeyInfo, &str)> = vec![
        (
            vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyInfo {
                family: KeyFamily::Ecdsa,
                bits: 256,
            },
            "ecdsa-with-SHA256",
        ),
        (
            vec![
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-sha384",
            ],
            KeyInfo {
                family: KeyFamily::Ecdsa,
                bits: 384,
            },
            "ecdsa-with-SHA384",
        ),
        (
            vec![
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-sha512",
            ],
            KeyInfo {
                family: KeyFamily::Ecdsa,
                bits: 256,
            },
            "ecdsa-with-SHA512",
        ),
        (
            vec![
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-521",
                "-sha512",
            ],
            KeyInfo {
                family: KeyFamily::Ecdsa,
                bits: 521,
            },
            "ecdsa-with-SHA512",
        ),
        (
            vec!["-newkey", "rsa:2048"],
            KeyInfo {
                family: KeyFamily::Rsa,
                bits: 2048,
            },
            "sha256WithRSAEncryption",
        ),
        (
            vec!["-newkey", "rsa:3072", "-sha384"],
            KeyInfo {
                family: KeyFamily::Rsa,
                bits: 3072,
            },
            "sha384WithRSAEncryption",
        ),
        (
            vec!["-newkey", "rsa:1024", "-sha256"],
            KeyInfo {
                family: KeyFamily::Rsa,
                bits: 1024,
            },
            "sha256WithRSAEncryption",
        ),
        (
            vec![
                "-newkey",
                "rsa:2048",
                "-sha256",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ],
            KeyInfo {
                family: KeyFamily::Rsa,
                bits: 2048,
            },
            "RSASSA-PSS",
        ),
        (
            vec!["-newkey", "ed25519"],
            KeyInfo {
                family: KeyFamily::Ed25519,
                bits: 256,
            },
            "Ed25519",
        ),
    ];
    for (newkey, key, alg) in cases {
        let pem_bytes = openssl_csr(d, &newkey, &[&san[..], &windows[..]].concat());
        let csr = csr::parse(&pem_bytes).unwrap_or_else(|e| panic!("{newkey:?}: {e}"));
        assert_eq!(csr.key, key, "{newkey:?}");
        assert_eq!(csr.signature_algorithm, alg, "{newkey:?}");
        assert_eq!(csr.subject_text, "CN=dev1.fleet.test,O=Contoso");
        assert_eq!(csr.common_name.as_deref(), Some("dev1.fleet.test"));
        assert_eq!(csr.dns_names, vec!["dev1.fleet.test", "alt.fleet.test"]);
        assert_eq!(
            csr.other_sans,
            vec![
                "IP 10.0.0.1",
                "email a@fleet.test",
                "URI https://x.test/y",
                "UPN dev1$@fleet.test"
            ]
        );
        assert_eq!(csr.requested_extensions().unwrap().len(), 6);
        // The SPKI we hand to issuance is openssl's public key.
        must(
            d,
            &[
                "pkey", "-in", "k.pem", "-pubout", "-outform", "DER", "-out", "pub.der",
            ],
        );
        assert_eq!(
            csr.spki_der,
            std::fs::read(d.join("pub.der")).unwrap(),
            "{newkey:?}"
        );
        // DER input works as well.
        must(
            d,
            &["req", "-in", "r.pem", "-outform", "DER", "-out", "r.der"],
        );
        assert_eq!(
            csr::parse(&std::fs::read(d.join("r.der")).unwrap())
                .unwrap()
                .der,
            csr.der
        );
    }

    // A SCEP-style challenge password is readable.
    std::fs::write(d.join("cfg.cnf"), "[req]\ndistinguished_name=dn\nattributes=attrs\nprompt=no\n[dn]\nCN=scep.fleet.test\n[attrs]\nchallengePassword=0penSesame\n").unwrap();
    must(
        d,
        &[
            "req",
            "-new",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "scep.pem",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-config",
            "cfg.cnf",
        ],
    );
    let pem_bytes = std::fs::read(d.join("scep.pem")).unwrap();
    assert_eq!(
        csr::parse(&pem_bytes)
            .unwrap()
            .challenge_password()
            .as_deref(),
        Some("0penSesame")
    );
}

#[test]
fn weak_or_unsupported_openssl_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let refused = |newkey: &[&str], field: &str, words: &[&str]| {
        let pem_bytes = openssl_csr(d, newkey, &[]);
        let e = csr::parse(&pem_bytes).expect_err("must be refused");
        assert_eq!(e.field(), field, "{newkey:?}: {e}");
        for w in words {
            assert!(e.rule().contains(w), "{newkey:?}: `{e}` lacks {w}");
        }
    };
    refused(
        &["-newkey", "rsa:2048", "-sha1"],
        "csr.signature_algorithm",
        &[
            "sha1WithRSAEncryption",
            "SHA-1",
            "SHA-256, SHA-384 or SHA-512",
        ],
    );
    refused(
        &[
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-sha1",
        ],
        "csr.signature_algorithm",
        &["SHA-1"],
    );
    refused(
        &["-newkey", "rsa:2048", "-md5"],
        "csr.signature_algorithm",
        &["MD5", "SHA-256"],
    );
    refused(
        &["-newkey", "rsa:2048", "-sha224"],
        "csr.signature_algorithm",
        &["not supported"],
    );
    refused(
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
        "csr.public_key",
        &["curve"],
    );
    refused(&["-newkey", "ed448"], "csr.public_key", &["Ed448"]);
    // PSS with a salt length other than the hash length.
    refused(
        &[
            "-newkey",
            "rsa:2048",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:20",
        ],
        "csr.signature_algorithm",
        &["salt"],
    );
    // DSA: generate parameters first.
    must(
        d,
        &[
            "genpkey",
            "-genparam",
            "-algorithm",
            "DSA",
            "-pkeyopt",
            "dsa_paramgen_bits:2048",
            "-out",
            "dsa.param",
        ],
    );
    refused(&["-newkey", "dsa:dsa.param"], "csr.public_key", &["DSA"]);

    // A request whose content was changed after signing.
    let pem_bytes = openssl_csr(
        d,
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &[],
    );
    let mut der = pem::decode_all("csr", &pem_bytes, "CERTIFICATE REQUEST")
        .unwrap()
        .remove(0);
    let pos = der.windows(4).position(|w| w == b"dev1").unwrap();
    der[pos] = b'e';
    let e = csr::parse(&der).unwrap_err();
    assert_eq!(
        e.to_string(),
        "csr.signature: the signature does not verify against the request's public key"
    );
}

#[test]
fn sha1_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    must(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "old.pem",
            "-subj",
            "/CN=Old Root",
            "-sha1",
            "-days",
            "30",
        ],
    );
    let pem_bytes = std::fs::read(d.join("old.pem")).unwrap();
    let old = cert::parse("--import-cert", &pem_bytes).unwrap();
    let e = cert::verify_signed_by(&old, &old).unwrap_err();
    assert_eq!(e.field(), "certificate.signature_algorithm");
    assert!(e.rule().contains("SHA-1"), "{e}");
    assert_eq!(
        cert::info(&old).unwrap().signature_algorithm,
        "sha1WithRSAEncryption"
    );

    // The same with SHA-256 verifies, whichever way we read it.
    must(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "k2.pem",
            "-out",
            "new.pem",
            "-subj",
            "/CN=New Root",
            "-sha256",
            "-days",
            "30",
        ],
    );
    let der = pem::decode_all(
        "c",
        &std::fs::read(d.join("new.pem")).unwrap(),
        "CERTIFICATE",
    )
    .unwrap()
    .remove(0);
    let new = cert::parse("c", &der).unwrap();
    cert::verify_signed_by(&new, &new).unwrap();
    cert::verify_der_signed_by(&der, &new).unwrap();
}

#[test]
fn encrypted_keys_open_with_openssl_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for kt in KeyType::ALL {
        let k = PrivateKey::generate(kt).unwrap();
        write(d, "ours.pem", k.to_encrypted_pem(b"correct horse").unwrap());
        let asn1 = must(d, &["asn1parse", "-in", "ours.pem"]);
        assert!(
            asn1.contains("PBES2")
                && asn1.contains("PBKDF2")
                && asn1.contains("hmacWithSHA256")
                && asn1.contains("aes-256-cbc"),
            "{asn1}"
        );
        assert!(asn1.contains(":0927C0"), "600000 iterations:\n{asn1}");
        must(
            d,
            &[
                "pkcs8",
                "-in",
                "ours.pem",
                "-passin",
                "pass:correct horse",
                "-out",
                "plain.pem",
            ],
        );
        let wrong = openssl(d, &["pkcs8", "-in", "ours.pem", "-passin", "pass:wrong"]);
        assert!(!wrong.ok, "openssl accepted a wrong passphrase");
        must(
            d,
            &[
                "pkey",
                "-in",
                "plain.pem",
                "-pubout",
                "-outform",
                "DER",
                "-out",
                "pub.der",
            ],
        );
        assert_eq!(
            std::fs::read(d.join("pub.der")).unwrap(),
            k.public_key_der(),
            "{kt}"
        );
        // And our unencrypted PKCS#8 reads in openssl too.
        write(d, "ours-plain.pem", k.to_pkcs8_pem().as_bytes());
        must(d, &["pkey", "-in", "ours-plain.pem", "-noout"]);
    }
}

#[test]
fn openssl_keys_import() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let check = |file: &str, pass: Option<&[u8]>, kt: KeyType| {
        let text = std::fs::read_to_string(d.join(file)).unwrap();
        let k = PrivateKey::from_pem(&text, pass).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(k.key_type(), kt, "{file}");
        must(
            d,
            &[
                "pkey",
                "-in",
                file,
                "-passin",
                "pass:pw-123456",
                "-pubout",
                "-outform",
                "DER",
                "-out",
                "pub.der",
            ],
        );
        assert_eq!(
            std::fs::read(d.join("pub.der")).unwrap(),
            k.public_key_der(),
            "{file}"
        );
        k
    };
    must(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "p384.pem",
        ],
    );
    check("p384.pem", None, KeyType::EcdsaP384);
    // SEC1 with a leading EC PARAMETERS block, as `openssl ecparam -genkey` writes it.
    must(
        d,
        &[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-out",
            "sec1.pem",
        ],
    );
    check("sec1.pem", None, KeyType::EcdsaP256);
    must(d, &["genrsa", "-traditional", "-out", "pkcs1.pem", "3072"]);
    check("pkcs1.pem", None, KeyType::Rsa3072);
    must(d, &["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"]);
    check("ed.pem", None, KeyType::Ed25519);
    must(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-aes256",
            "-pass",
            "pass:pw-123456",
            "-out",
            "enc-rsa.pem",
        ],
    );
    check("enc-rsa.pem", Some(b"pw-123456"), KeyType::Rsa2048);
    let text = std::fs::read_to_string(d.join("enc-rsa.pem")).unwrap();
    let e = PrivateKey::from_pem(&text, Some(b"pw-1234567")).unwrap_err();
    assert_eq!(e.field(), "passphrase");
    assert_eq!(
        PrivateKey::from_pem(&text, None).unwrap_err().field(),
        "passphrase"
    );
    must(
        d,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "p384.pem",
            "-v2",
            "aes-128-cbc",
            "-v2prf",
            "hmacWithSHA1",
            "-passout",
            "pass:pw-123456",
            "-out",
            "enc-sha1prf.pem",
        ],
    );
    check("enc-sha1prf.pem", Some(b"pw-123456"), KeyType::EcdsaP384);
    // Legacy OpenSSL PEM encryption is refused with advice, not misread.
    must(
        d,
        &[
            "genrsa",
            "-traditional",
            "-aes128",
            "-passout",
            "pass:pw-123456",
            "-out",
            "legacy.pem",
            "2048",
        ],
    );
    let e = PrivateKey::from_pem(
        &std::fs::read_to_string(d.join("legacy.pem")).unwrap(),
        Some(b"pw-123456"),
    )
    .unwrap_err();
    assert_eq!(e.field(), "key");
    assert!(e.rule().contains("pkcs8"), "{e}");
}
