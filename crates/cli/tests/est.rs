//! The `est` role (RFC 7030) over real HTTPS on loopback, with real clients: the curl + openssl
//! recipe of INTEROP.md (cacerts, enrollment with a one-time token over HTTP Basic, 401 and its
//! challenge, a reused token refused, re-enrollment over mutual TLS keeping subject and SANs,
//! enrollment by client certificate, csrattrs, serverkeygen for an exportable template and its
//! refusal otherwise, 202 + Retry-After while a request waits for approval), BouncyCastle's EST
//! client (compiled here with javac), every issued certificate through `openssl verify` and
//! pkilint, and a catalogue of malformed bodies refused with 400/413/415 and nothing stored.

mod common;
use common::server::Server;
use common::{Site, openssl_csr, s};
use fleetpki_testkit as kit;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const REALM: &str = "fleetpki-est";
const MAX_BODY: usize = 4096;

/// A two-tier site (base URL pki.fleet.test: pkilint refuses `localhost` in CDP/AIA URIs) with
/// PC1 in Workstations and three published templates PC1 may enroll for, all duplicates of
/// Workstation (client auth, names from the directory): `EST Device`, `EST Export` (exportable)
/// and `EST Approved` (needs approval).
fn site() -> Site {
    let site = Site::two_tier_pc1();
    for (name, edits) in [
        ("EST Device", &[][..]),
        ("EST Export", &["--exportable", "true"][..]),
        ("EST Approved", &["--require-approval", "true"][..]),
    ] {
        site.ok(&["template", "duplicate", "Workstation", name]);
        if !edits.is_empty() {
            let mut args = vec!["template", "set", name];
            args.extend_from_slice(edits);
            site.ok(&args);
        }
        site.enable(name, "Workstations");
    }
    site
}

/// `fleetpki serve` with only the est role; returns the server and its port.
fn serve(site: &Site) -> (Server, u16) {
    let config = format!(
        "[tls]\nintranet_fqdn = \"localhost\"\n\
         [roles.crl]\nenabled = false\n[roles.management-point]\nenabled = false\n\
         [roles.ocsp]\nenabled = false\n[roles.fallback-status-point]\nenabled = false\n\
         [roles.api]\nenabled = false\n\
         [roles.est]\nenabled = true\ntemplate = \"EST Device\"\nrealm = \"{REALM}\"\n\
         max_body_bytes = {MAX_BODY}\n\
         [roles.est.labels]\nexport = \"EST Export\"\napproved = \"EST Approved\"\n"
    );
    let server = Server::start(site, &config, 1);
    let url = server.url("est").to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let port = server.port("est");
    (server, port)
}

/// `fleetpki token create` for PC1: `(ID, SECRET)`, the HTTP Basic user and password.
fn token(site: &Site) -> (String, String) {
    let t = site
        .ok(&["token", "create", "--principal", "PC1", "--expires", "1h"])
        .trim()
        .to_string();
    let (id, secret) = t.split_once('.').expect("ID.SECRET");
    (id.to_string(), secret.to_string())
}

/// An HTTP answer as curl saw it.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A problem document's `field`, with the status checked; returns the detail.
    fn problem(&self, status: u16, field: &str) -> String {
        assert_eq!(self.status, status, "{self:?} {}", self.text());
        let v: serde_json::Value =
            serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("{}", self.text()));
        assert_eq!(v["field"], field, "{v}");
        let detail = v["detail"].as_str().expect("detail").to_string();
        assert!(detail.starts_with(&format!("{field}: ")), "{detail}");
        detail
    }
}

/// What a curl call sends.
#[derive(Default)]
struct Call<'a> {
    user: Option<(&'a str, &'a str)>,
    /// Client certificate (with the issuing CA after it) and key.
    cert: Option<(&'a Path, &'a Path)>,
    content_type: Option<&'a str>,
    body: Option<&'a [u8]>,
}

/// curl against `https://localhost:PORT/.well-known/est/PATH`, the site root the only anchor.
fn curl(site: &Site, port: u16, path: &str, call: Call) -> Resp {
    let url = format!("https://localhost:{port}/.well-known/est/{path}");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let headers = site.path("curl-headers.txt");
    let body_file = site.path("curl-body.bin");
    let root = site.path("ca/root.pem");
    let mut args: Vec<String> = [
        "-sS",
        "--cacert",
        s(&root),
        "--resolve",
        &resolve,
        "-D",
        s(&headers),
        "-o",
        s(&body_file),
        "-w",
        "%{http_code}",
        "-H",
        "Expect:",
    ]
    .map(String::from)
    .to_vec();
    if let Some((u, p)) = call.user {
        args.extend(["--user".into(), format!("{u}:{p}")]);
    }
    if let Some((c, k)) = call.cert {
        args.extend(["--cert".into(), s(c).into(), "--key".into(), s(k).into()]);
    }
    if let Some(b) = call.body {
        let f = site.path("curl-request.bin");
        std::fs::write(&f, b).expect("request body");
        args.extend(["--data-binary".into(), format!("@{}", s(&f))]);
        args.extend([
            "-H".into(),
            format!("Content-Type:{}", call.content_type.unwrap_or("")),
            "-H".into(),
            "Content-Transfer-Encoding: base64".into(),
        ]);
    }
    args.push(url);
    let o = Command::new("curl").args(&args).output().expect("curl");
    assert!(
        o.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Resp {
        status: String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("status"),
        headers: std::fs::read_to_string(&headers).expect("headers"),
        body: std::fs::read(&body_file).unwrap_or_default(),
    }
}

/// The recipe's CSR: `openssl req … -outform DER | openssl base64`, and the key's path.
fn csr_b64(site: &Site, stem: &str) -> (Vec<u8>, PathBuf) {
    let csr = openssl_csr(
        site.dir.path(),
        stem,
        "ec:P-256",
        "/CN=dev",
        &["-outform", "DER"],
    );
    let o = kit::openssl(&["base64", "-in", s(&csr)]).expect("openssl base64");
    assert!(o.success(), "{}", o.combined());
    assert!(o.stdout.contains('\n'), "openssl base64 wraps its lines");
    (o.stdout.into_bytes(), site.path(&format!("{stem}.key")))
}

/// `openssl base64 -d | openssl pkcs7 -inform DER -print_certs` of an EST answer: the PEM.
fn print_certs(site: &Site, body: &[u8], stem: &str) -> String {
    let b64 = site.path(&format!("{stem}.b64"));
    std::fs::write(&b64, body).expect("b64");
    let der = site.path(&format!("{stem}.p7"));
    let o = kit::openssl(&["base64", "-d", "-in", s(&b64), "-out", s(&der)]).expect("base64");
    assert!(o.success(), "{}", o.combined());
    let o =
        kit::openssl(&["pkcs7", "-inform", "DER", "-in", s(&der), "-print_certs"]).expect("pkcs7");
    assert!(o.success(), "{}", o.combined());
    // Only the PEM blocks (openssl prints subject= and issuer= lines before each).
    let mut pem = String::new();
    let mut inside = false;
    for line in o.stdout.lines() {
        inside |= line.starts_with("-----BEGIN");
        if inside {
            pem.push_str(line);
            pem.push('\n');
        }
        inside &= !line.starts_with("-----END");
    }
    pem
}

/// The one certificate of an enrollment answer, written to `STEM.pem`, verified by openssl
/// against the site root and linted clean by pkilint.
fn enrolled_cert(site: &Site, r: &Resp, stem: &str) -> PathBuf {
    assert_eq!(r.status, 200, "{r:?} {}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/pkcs7-mime; smime-type=certs-only"),
        "{r:?}"
    );
    assert_eq!(
        r.header("content-transfer-encoding").as_deref(),
        Some("base64")
    );
    let pem = print_certs(site, &r.body, stem);
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1, "{pem}");
    let path = site.path(&format!("{stem}.pem"));
    std::fs::write(&path, &pem).expect("pem");
    check_cert(site, &path);
    path
}

fn check_cert(site: &Site, path: &Path) {
    let pem = std::fs::read_to_string(path).expect("pem");
    let o = kit::openssl_verify(&site.root_pem(), Some(&site.issuing_pem()), None, &pem)
        .expect("openssl verify");
    assert!(
        o.success(),
        "openssl verify {}: {}",
        path.display(),
        o.combined()
    );
    if kit::tool(kit::LINT_PKIX_CERT).is_some() {
        let findings = kit::pkilint_cert(&pem).expect("pkilint");
        assert!(findings.is_empty(), "pkilint: {findings:#?}");
    }
}

fn x509(path: &Path, what: &[&str]) -> String {
    let mut args = vec!["x509", "-in", s(path), "-noout"];
    args.extend_from_slice(what);
    let o = kit::openssl(&args).expect("x509");
    assert!(o.success(), "{}", o.combined());
    o.stdout.trim().to_string()
}

fn request_count(site: &Site) -> usize {
    site.json(&["request", "list"])
        .as_array()
        .expect("requests")
        .len()
}

#[test]
fn curl_and_openssl_enroll_reenroll_and_are_refused_without_credentials() {
    let site = site();
    let (server, port) = serve(&site);

    // cacerts: the issuing CA and the root.
    let r = curl(&site, port, "cacerts", Call::default());
    assert_eq!(r.status, 200, "{r:?}");
    let chain = print_certs(&site, &r.body, "cacerts");
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "{chain}");
    for pem in [site.root_pem(), site.issuing_pem()] {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let got: String = chain.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(got.contains(&body), "cacerts lacks a site CA certificate");
    }

    // No credentials: 401 with the Basic challenge, nothing stored.
    let (csr, key) = csr_b64(&site, "dev");
    let before = site.fingerprint();
    let enroll = |user, cert, body: &[u8]| {
        curl(
            &site,
            port,
            "simpleenroll",
            Call {
                user,
                cert,
                content_type: Some("application/pkcs10"),
                body: Some(body),
            },
        )
    };
    let r = enroll(None, None, &csr);
    assert_eq!(r.status, 401, "{r:?}");
    // The bare challenge has an empty body: BouncyCastle's client fails on a 401 whose body it
    // did not read before answering the challenge.
    assert!(r.body.is_empty(), "{}", r.text());
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(&*format!("Basic realm=\"{REALM}\""))
    );
    let (id, secret) = token(&site);
    let after_token = site.fingerprint();
    assert_ne!(before, after_token);
    // A wrong secret: 401, the token still unused.
    enroll(Some((&id, "wrong")), None, &csr).problem(401, "token");
    assert_eq!(site.fingerprint(), after_token);

    // Enroll with the one-time token.
    let r = enroll(Some((&id, &secret)), None, &csr);
    let dev = enrolled_cert(&site, &r, "dev");
    let subject = x509(&dev, &["-subject"]);
    assert_eq!(subject, "subject=CN = pc1.fleet.test");
    let san = x509(&dev, &["-ext", "subjectAltName"]);
    assert_eq!(request_count(&site), 1);

    // The token is used up: another request with it is refused and stores nothing.
    let (csr2, _) = csr_b64(&site, "dev2");
    let used = site.fingerprint();
    let detail = enroll(Some((&id, &secret)), None, &csr2).problem(401, "token");
    assert!(detail.contains("already been used"), "{detail}");
    assert_eq!(site.fingerprint(), used);

    // Re-enroll over mutual TLS with the current certificate (and the issuing CA after it).
    let with_chain = site.path("dev-plus-intermediate.pem");
    std::fs::write(
        &with_chain,
        std::fs::read_to_string(&dev).unwrap() + &site.issuing_pem(),
    )
    .unwrap();
    let (csr3, key3) = csr_b64(&site, "dev3");
    let reenroll = |cert, body: &[u8]| {
        curl(
            &site,
            port,
            "simplereenroll",
            Call {
                cert,
                content_type: Some("application/pkcs10"),
                body: Some(body),
                ..Call::default()
            },
        )
    };
    let r = reenroll(Some((&with_chain, &key)), &csr3);
    let renewed = enrolled_cert(&site, &r, "renewed");
    assert_eq!(x509(&renewed, &["-subject"]), subject);
    assert_eq!(x509(&renewed, &["-ext", "subjectAltName"]), san);
    assert_ne!(x509(&renewed, &["-serial"]), x509(&dev, &["-serial"]));
    assert_eq!(x509(&renewed, &["-pubkey"]), {
        let o = kit::openssl(&["pkey", "-in", s(&key3), "-pubout"]).unwrap();
        o.stdout.trim().to_string()
    });
    // Without a client certificate: 401, and the challenge all the same.
    let r = reenroll(None, &csr3);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.header("www-authenticate").is_some());

    // simpleenroll authenticated by the client certificate alone.
    let (csr4, _) = csr_b64(&site, "dev4");
    let r = enroll(None, Some((&with_chain, &key)), &csr4);
    let by_cert = enrolled_cert(&site, &r, "by-cert");
    // The same request again (a client retrying) gets the same certificate, not a second one.
    let n = request_count(&site);
    let r = enroll(None, Some((&with_chain, &key)), &csr4);
    let again = enrolled_cert(&site, &r, "by-cert-again");
    assert_eq!(x509(&again, &["-serial"]), x509(&by_cert, &["-serial"]));
    assert_eq!(request_count(&site), n);

    // csrattrs: P-256/P-384 with ECDSA-SHA256 and RSA with SHA-256 (Workstation's key rules).
    let r = curl(&site, port, "csrattrs", Call::default());
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/csrattrs")
    );
    let attrs = site.path("csrattrs.b64");
    std::fs::write(&attrs, &r.body).unwrap();
    let o = kit::openssl(&["asn1parse", "-in", s(&attrs)]).unwrap();
    assert!(o.success(), "{}", o.combined());
    for want in [
        "ecdsa-with-SHA256",
        "id-ecPublicKey",
        "prime256v1",
        "secp384r1",
        "rsaEncryption",
    ] {
        assert!(o.stdout.contains(want), "{want} missing from {}", o.stdout);
    }

    // serverkeygen: refused for a template without key export...
    let (csr5, _) = csr_b64(&site, "dev5");
    let (id5, secret5) = token(&site);
    let keygen = |path: &str, body: &[u8], user| {
        curl(
            &site,
            port,
            path,
            Call {
                user,
                content_type: Some("application/pkcs10"),
                body: Some(body),
                ..Call::default()
            },
        )
    };
    let quiet = site.fingerprint();
    let detail = keygen("serverkeygen", &csr5, Some((&id5, &secret5))).problem(403, "template");
    assert!(
        detail.contains("does not allow private-key export"),
        "{detail}"
    );
    assert_eq!(site.fingerprint(), quiet);
    // ...and answered with the key and the certificate where export is allowed.
    let r = keygen("export/serverkeygen", &csr5, Some((&id5, &secret5)));
    assert_eq!(r.status, 200, "{r:?} {}", r.text());
    let ctype = r.header("content-type").unwrap();
    let boundary = ctype
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap_or_else(|| panic!("{ctype}"));
    let text = r.text();
    let parts: Vec<&str> = text
        .split(&format!("--{boundary}"))
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "--")
        .collect();
    assert_eq!(parts.len(), 2, "{text}");
    let body_of = |part: &str, ctype: &str| {
        let (head, body) = part.split_once("\r\n\r\n").expect("part headers");
        assert!(head.contains(ctype), "{head}");
        assert!(head.contains("Content-Transfer-Encoding: base64"), "{head}");
        body.trim().to_string()
    };
    let key_b64 = body_of(parts[0], "application/pkcs8");
    let cert_b64 = body_of(parts[1], "application/pkcs7-mime; smime-type=certs-only");
    let gen_cert = site.path("generated.pem");
    std::fs::write(
        &gen_cert,
        print_certs(&site, cert_b64.as_bytes(), "generated"),
    )
    .unwrap();
    check_cert(&site, &gen_cert);
    let gen_key = site.path("generated.key");
    let key_pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        key_b64.replace("\r\n", "\n")
    );
    std::fs::write(&gen_key, key_pem).unwrap();
    let o = kit::openssl(&["pkey", "-in", s(&gen_key), "-pubout"]).unwrap();
    assert!(o.success(), "{}", o.combined());
    assert_eq!(x509(&gen_cert, &["-pubkey"]), o.stdout.trim());

    // A template that needs approval: 202 + Retry-After, the same request again is still
    // pending (not a second request, not a used-token refusal), and once approved it gets
    // the certificate.
    let (csr6, _) = csr_b64(&site, "dev6");
    let (id6, secret6) = token(&site);
    let approved = |body: &[u8]| keygen("approved/simpleenroll", body, Some((&id6, &secret6)));
    let r = approved(&csr6);
    assert_eq!(r.status, 202, "{r:?} {}", r.text());
    assert_eq!(r.header("retry-after").as_deref(), Some("300"));
    let n = request_count(&site);
    let r = approved(&csr6);
    assert_eq!(r.status, 202, "{r:?} {}", r.text());
    assert_eq!(request_count(&site), n);
    let pending = site.json(&["request", "list", "--pending"]);
    let rid = pending[0]["id"].as_i64().expect("id").to_string();
    site.ok(&["request", "approve", &rid]);
    enrolled_cert(&site, &approved(&csr6), "approved");
    // A different CSR with the used token is still refused.
    approved(&csr5).problem(401, "token");

    server.stop();
}

/// What is sent (a name for messages, the Content-Type, the body) and what must come back (the
/// status, the problem's field, words of its rule).
type BadBody<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str, &'a str);

#[test]
fn malformed_bodies_are_refused_with_a_reason_and_store_nothing() {
    let site = site();
    let (server, port) = serve(&site);
    let (id, secret) = token(&site);
    let (good, _) = csr_b64(&site, "good");
    let der = {
        let p = site.path("good.csr");
        std::fs::read(p).unwrap()
    };
    let b64 = |bytes: &[u8]| {
        let f = site.path("raw.bin");
        std::fs::write(&f, bytes).unwrap();
        kit::openssl(&["base64", "-in", s(&f)])
            .unwrap()
            .stdout
            .into_bytes()
    };
    let mut tampered = der.clone();
    let pos = tampered.windows(3).position(|w| w == b"dev").expect("CN");
    tampered[pos] = b'x';
    let sha1 = openssl_csr(
        site.dir.path(),
        "sha1",
        "rsa:2048",
        "/CN=dev",
        &["-sha1", "-outform", "DER"],
    );
    let pem = std::fs::read_to_string(openssl_csr(
        site.dir.path(),
        "pem",
        "ec:P-256",
        "/CN=dev",
        &[],
    ))
    .unwrap();
    let cases: Vec<BadBody> = vec![
        (
            "not base64",
            Some("application/pkcs10"),
            b"%%% not base64 %%%".to_vec(),
            400,
            "body",
            "outside the base64 alphabet",
        ),
        (
            "empty",
            Some("application/pkcs10"),
            b"\r\n".to_vec(),
            400,
            "body",
            "empty",
        ),
        (
            "PEM instead of base64 DER",
            Some("application/pkcs10"),
            pem.into_bytes(),
            400,
            "body",
            "PEM armour",
        ),
        (
            "raw DER, not base64",
            Some("application/pkcs10"),
            der.clone(),
            400,
            "body",
            "not base64",
        ),
        (
            "garbage DER",
            Some("application/pkcs10"),
            b64(b"\x30\x82\x01\x00garbage"),
            400,
            "csr",
            "not a valid DER",
        ),
        (
            "text, not DER",
            Some("application/pkcs10"),
            b64(b"hello"),
            400,
            "body",
            "not DER",
        ),
        (
            "bad signature",
            Some("application/pkcs10"),
            b64(&tampered),
            400,
            "csr.signature",
            "does not verify",
        ),
        (
            "SHA-1 signature",
            Some("application/pkcs10"),
            b64(&std::fs::read(sha1).unwrap()),
            400,
            "csr.signature_algorithm",
            "SHA-1",
        ),
        (
            "wrong content type",
            Some("application/json"),
            good.clone(),
            415,
            "content-type",
            "application/pkcs10",
        ),
        (
            "no content type",
            None,
            good.clone(),
            415,
            "content-type",
            "missing",
        ),
        (
            "oversized",
            Some("application/pkcs10"),
            vec![b'A'; MAX_BODY * 3],
            413,
            "body",
            "max_body_bytes",
        ),
    ];
    let before = site.fingerprint();
    for (what, ctype, body, status, field, words) in cases {
        let r = curl(
            &site,
            port,
            "simpleenroll",
            Call {
                user: Some((&id, &secret)),
                content_type: ctype.or(Some("")),
                body: Some(&body),
                ..Call::default()
            },
        );
        let detail = r.problem(status, field);
        assert!(detail.contains(words), "{what}: {detail}");
        assert_eq!(site.fingerprint(), before, "{what} stored something");
    }
    // The token was never used up: the good request still enrolls with it.
    let r = curl(
        &site,
        port,
        "simpleenroll",
        Call {
            user: Some((&id, &secret)),
            content_type: Some("application/pkcs10"),
            body: Some(&good),
            ..Call::default()
        },
    );
    enrolled_cert(&site, &r, "good");
    // Unknown paths and methods.
    curl(&site, port, "nolabel/cacerts", Call::default()).problem(404, "path");
    curl(&site, port, "fullcmc", Call::default()).problem(404, "path");
    curl(&site, port, "simpleenroll", Call::default()).problem(405, "method");
    server.stop();
}

/// The BouncyCastle jars Debian installs (libbcprov-java, libbcpkix-java, libbcutil-java).
const BC_JARS: [&str; 3] = [
    "/usr/share/java/bcprov.jar",
    "/usr/share/java/bcpkix.jar",
    "/usr/share/java/bcutil.jar",
];

/// The class path with BouncyCastle, or None (skip) when it or a JDK is missing and the tools
/// are not required.
fn bouncycastle() -> Option<String> {
    kit::tool("javac")?;
    kit::tool("java")?;
    if let Some(missing) = BC_JARS.iter().find(|j| !Path::new(j).exists()) {
        assert!(
            !kit::tools_required(),
            "{missing} is missing: scripts/test.sh installs libbcprov-java libbcpkix-java libbcutil-java"
        );
        eprintln!(
            "SKIP: {missing} is missing (apt-get install libbcpkix-java libbcprov-java libbcutil-java)"
        );
        return None;
    }
    Some(BC_JARS.join(":"))
}

#[test]
fn bouncycastle_est_client_enrolls() {
    let Some(jars) = bouncycastle() else {
        return;
    };
    let site = site();
    let classes = site.path("classes");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/est/EstEnroll.java");
    let o = Command::new("javac")
        .args(["-cp", &jars, "-d", s(&classes), s(&src)])
        .output()
        .expect("javac");
    assert!(
        o.status.success(),
        "javac: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (server, port) = serve(&site);
    let cp = format!("{}:{jars}", s(&classes));
    let run = |realm: &str, id: &str, secret: &str, out: &Path| {
        Command::new("java")
            .args([
                "-Djava.net.preferIPv4Stack=true",
                "-cp",
                &cp,
                "EstEnroll",
                &format!("localhost:{port}"),
                s(&site.path("ca/root.pem")),
                realm,
                id,
                secret,
                "bc-device",
                s(out),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("java")
    };
    let (id, secret) = token(&site);
    // A client configured for another realm stops at the challenge: no credentials sent.
    let before = site.fingerprint();
    let out = site.path("bc.pem");
    let o = run("another-realm", &id, &secret, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("does not match server realm"), "{err}");
    assert_eq!(site.fingerprint(), before);
    // With the server's realm it enrolls.
    let o = run(REALM, &id, &secret, &out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "BouncyCastle EST client: {stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("cacerts 2"), "{stdout}");
    assert!(stdout.contains("enrolled CN=pc1.fleet.test"), "{stdout}");
    check_cert(&site, &out);
    assert_eq!(request_count(&site), 1);
    server.stop();
}
