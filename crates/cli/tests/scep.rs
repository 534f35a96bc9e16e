//! The `scep` role against the real `fleetpki serve` on loopback: micromdm `scepclient` enrolls
//! with a static and with a one-time challenge, a reused one-time challenge is refused, renewal
//! (RenewalReq signed by the current certificate), a request pending approval polled to
//! issuance, certmonger's `scep-submit`, and a catalogue of malformed pkiMessages answered with
//! the right failInfo and nothing stored. Every issued certificate passes `openssl verify` and
//! pkilint; GetCACert holds the RA and the chain, GetCRL the issuing CA's CRL, and each CertRep
//! is encrypted with its request's cipher.

mod common;
use common::server::Server;
use common::{Site, s};
use fleetpki_testkit as kit;
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::scep::{self, ContentCipher, FailInfo, MessageType, Status};
use std::path::Path;
use std::process::Command;

const STATIC: &str = "static-Secret-1";

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b))
}

/// A two-tier site with `SCEP Device` (supply in request under fleet.test, RSA 2048-4096,
/// Enroll for Servers and Workstations) and `SCEP Approved` (the same, approval required).
fn scep_site() -> Site {
    let site = Site::two_tier();
    site.ok(&["template", "duplicate", "WebServer", "SCEP Device"]);
    site.ok(&[
        "template",
        "set",
        "SCEP Device",
        "--permitted-dns-suffixes",
        "fleet.test",
        "--key-algorithms",
        "rsa:2048-4096",
    ]);
    site.ok(&["template", "duplicate", "SCEP Device", "SCEP Approved"]);
    site.ok(&[
        "template",
        "set",
        "SCEP Approved",
        "--require-approval",
        "true",
    ]);
    for t in ["SCEP Device", "SCEP Approved"] {
        site.enable(t, "Servers");
        site.ok(&[
            "template",
            "grant",
            t,
            "--group",
            "Workstations",
            "--enroll",
        ]);
    }
    site
}

fn config() -> String {
    format!(
        "[roles.ocsp]\nenabled = false\n[roles.fallback-status-point]\nenabled = false\n\
         [roles.management-point]\nenabled = false\n[roles.api]\nenabled = false\n\
         [roles.scep.endpoints.devices]\ntemplate = \"SCEP Device\"\nprincipal = \"SRV1\"\n\
         challenge_sha256 = \"{h}\"\nlegacy_algorithms = true\n\
         [roles.scep.endpoints.approved]\ntemplate = \"SCEP Approved\"\nprincipal = \"SRV1\"\n\
         challenge_sha256 = \"{h}\"\nlegacy_algorithms = true\n\
         [roles.scep.endpoints.modern]\ntemplate = \"SCEP Device\"\nprincipal = \"SRV1\"\n\
         challenge_sha256 = \"{h}\"\n",
        h = sha256_hex(STATIC.as_bytes())
    )
}

fn start(site: &Site) -> Server {
    Server::start(site, &config(), 2)
}

fn endpoint(server: &Server, name: &str) -> String {
    format!("{}/scep/{name}", server.url("scep"))
}

fn ra_der(site: &Site) -> Vec<u8> {
    let text = std::fs::read(site.path("ca/scep-ra.pem")).expect("RA certificate");
    fleetpki_x509::pem::decode_labels("ra", &text, &["CERTIFICATE"])
        .expect("pem")
        .remove(0)
        .1
}

fn pem_of(der: &[u8]) -> String {
    fleetpki_x509::cert::to_pem(der)
}

fn assert_valid(site: &Site, what: &str, leaf_pem: &str) {
    let v = kit::openssl_verify(&site.root_pem(), Some(&site.issuing_pem()), None, leaf_pem)
        .expect("openssl verify");
    assert!(v.success(), "{what}: openssl verify: {}", v.combined());
    let findings = kit::pkilint_cert(leaf_pem).expect("pkilint");
    let lines: Vec<String> = findings
        .iter()
        .map(|f| format!("{} {} {} ({})", f.severity, f.code, f.message, f.node_path))
        .collect();
    assert!(lines.is_empty(), "{what}: pkilint:\n{}", lines.join("\n"));
}

/// Runs scepclient for the device in `dir` (key and certificate kept there).
fn scepclient(
    tool: &Path,
    site: &Site,
    url: &str,
    dir: &Path,
    cn: &str,
    challenge: &str,
) -> std::process::Output {
    std::fs::create_dir_all(dir).expect("dir");
    Command::new(tool)
        .current_dir(dir)
        .args([
            "-server-url",
            url,
            "-challenge",
            challenge,
            "-private-key",
            s(&dir.join("key.pem")),
            "-certificate",
            s(&dir.join("cert.pem")),
            "-cn",
            cn,
            "-ca-fingerprint",
            &sha256_hex(&ra_der(site)),
        ])
        .output()
        .expect("run scepclient")
}

fn out_text(o: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn cert_subject_and_serial(pem: &str) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("c.pem");
    std::fs::write(&p, pem).expect("write");
    let o =
        kit::openssl(&["x509", "-noout", "-subject", "-serial", "-in", s(&p)]).expect("openssl");
    o.stdout
}

#[test]
fn get_ca_caps_and_ra_certificate() {
    let site = scep_site();
    let server = start(&site);
    let url = endpoint(&server, "devices");
    let body = http_get(&format!("{url}?operation=GetCACaps"));
    for cap in [
        "AES",
        "SHA-256",
        "POSTPKIOperation",
        "Renewal",
        "SCEPStandard",
    ] {
        assert!(body.lines().any(|l| l == cap), "{cap} in {body:?}");
    }
    assert!(!body.lines().any(|l| l == "DES3" || l == "SHA-1"), "{body}");
    // GetCACert: a certs-only holding the RA certificate and the CA chain (RFC 8894 4.2.1.2),
    // typed for an RA in front of a CA.
    let (ct, body) = http_get_bytes(&format!("{url}?operation=GetCACert"));
    assert_eq!(ct, "application/x-x509-ca-ra-cert");
    // Compared by SHA-256, as sets: DER sorts a SET OF.
    let mut got: Vec<String> = scep::client::certificates_of(&body)
        .expect("certs-only")
        .iter()
        .map(|d| sha256_hex(d))
        .collect();
    let mut want = vec![sha256_hex(&ra_der(&site))];
    for pem in [site.issuing_pem(), site.root_pem()] {
        want.extend(
            fleetpki_x509::pem::decode_labels("ca", pem.as_bytes(), &["CERTIFICATE"])
                .expect("pem")
                .iter()
                .map(|(_, der)| sha256_hex(der)),
        );
    }
    assert_eq!(want.len(), 3);
    got.sort();
    want.sort();
    assert_eq!(got, want, "the RA, the issuing CA and the root");
    // The RA certificate: RSA-2048 from the site's issuing CA, in the inventory.
    let ra = pem_of(&ra_der(&site));
    let v = kit::openssl_verify(&site.root_pem(), Some(&site.issuing_pem()), None, &ra)
        .expect("verify");
    assert!(v.success(), "{}", v.combined());
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("ra.pem");
    std::fs::write(&p, &ra).expect("write");
    let text = kit::openssl(&["x509", "-noout", "-text", "-in", s(&p)]).expect("openssl");
    assert!(
        text.stdout.contains("Public-Key: (2048 bit)"),
        "{}",
        text.stdout
    );
    let certs = site.json(&["cert", "list"]);
    let ra_rows = certs
        .as_array()
        .expect("list")
        .iter()
        .filter(|c| c["template"] == "site:scep-ra")
        .count();
    assert_eq!(ra_rows, 1, "{certs}");
    // A restart keeps the same RA.
    drop(server);
    let server = start(&site);
    assert_eq!(ra, pem_of(&ra_der(&site)));
    drop(server);
}

/// A GET with curl; the Content-Type and the body.
fn http_get_bytes(url: &str) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("body");
    let o = Command::new("curl")
        .args(["-sS", "--fail", "-o", s(&out), "-w", "%{content_type}", url])
        .output()
        .expect("curl");
    assert!(o.status.success(), "{}", out_text(&o));
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        std::fs::read(&out).expect("body"),
    )
}

/// A GET with curl; the body as text.
fn http_get(url: &str) -> String {
    let o = Command::new("curl")
        .args(["-sS", "--fail", url])
        .output()
        .expect("curl");
    assert!(o.status.success(), "{}", out_text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn scepclient_enrolls_with_static_and_one_time_challenges_and_renews() {
    let Some(tool) = kit::tool("scepclient") else {
        return;
    };
    let site = scep_site();
    let server = start(&site);
    let url = endpoint(&server, "devices");
    let work = tempfile::tempdir().expect("tmp");

    // Static challenge: enrolls as the endpoint's principal.
    let d1 = work.path().join("dev1");
    let o = scepclient(&tool, &site, &url, &d1, "dev1.fleet.test", STATIC);
    assert!(o.status.success(), "{}", out_text(&o));
    let pem1 = std::fs::read_to_string(d1.join("cert.pem")).expect("cert");
    assert_valid(&site, "static", &pem1);
    assert!(cert_subject_and_serial(&pem1).contains("dev1.fleet.test"));

    // A wrong static challenge: refused, nothing stored.
    let before = site.fingerprint();
    let bad = work.path().join("bad");
    let o = scepclient(&tool, &site, &url, &bad, "bad.fleet.test", "wrong");
    assert!(!o.status.success(), "{}", out_text(&o));
    assert!(!bad.join("cert.pem").exists());
    assert_eq!(site.fingerprint(), before);

    // One-time challenge for PC1: enrolls once, as PC1.
    let challenge = site
        .ok(&["scep", "challenge", "--principal", "PC1"])
        .trim()
        .to_string();
    let d2 = work.path().join("dev2");
    let o = scepclient(&tool, &site, &url, &d2, "dev2.fleet.test", &challenge);
    assert!(o.status.success(), "{}", out_text(&o));
    let pem2 = std::fs::read_to_string(d2.join("cert.pem")).expect("cert");
    assert_valid(&site, "one-time", &pem2);
    let pc1 = site.json(&["cert", "list", "--principal", "PC1"]);
    assert_eq!(pc1.as_array().map(Vec::len), Some(1), "{pc1}");

    // The same challenge again (another device): refused, nothing stored.
    let before = site.fingerprint();
    let d3 = work.path().join("dev3");
    let o = scepclient(&tool, &site, &url, &d3, "dev3.fleet.test", &challenge);
    assert!(!o.status.success(), "{}", out_text(&o));
    assert!(!d3.join("cert.pem").exists());
    assert_eq!(site.fingerprint(), before);
    // The refusal is the server's: the same challenge by hand gets a signed FAILURE badRequest.
    let dev4 = device(work.path(), "dev4.fleet.test", Some(&challenge));
    let c = Client {
        url: url.clone(),
        ra: ra_cert(&site),
        dev: &dev4,
    };
    let (status, certs) = c.op(MessageType::PkcsReq, "tx-replay", &dev4.csr);
    assert_eq!(status, Status::Failure(FailInfo::BadRequest));
    assert!(certs.is_empty());
    assert_eq!(site.fingerprint(), before);
    // Control: the same hand-made request with a fresh challenge enrolls.
    let fresh = site
        .ok(&["scep", "challenge", "--principal", "PC1"])
        .trim()
        .to_string();
    let dev5 = device(work.path(), "dev5.fleet.test", Some(&fresh));
    let c = Client { dev: &dev5, ..c };
    let (status, certs) = c.op(MessageType::PkcsReq, "tx-fresh", &dev5.csr);
    assert!(matches!(status, Status::Success(_)), "{status:?}");
    assert_eq!(certs.len(), 1);

    // Renewal: scepclient signs a RenewalReq with the certificate it holds.
    let old_serial = cert_subject_and_serial(&pem1);
    std::fs::rename(d1.join("cert.pem"), d1.join("old.pem")).expect("move");
    std::fs::copy(d1.join("old.pem"), d1.join("cert.pem")).expect("copy");
    let o = scepclient(&tool, &site, &url, &d1, "dev1.fleet.test", "");
    assert!(o.status.success(), "renewal: {}", out_text(&o));
    let renewed = std::fs::read_to_string(d1.join("cert.pem")).expect("cert");
    assert_ne!(
        cert_subject_and_serial(&renewed),
        old_serial,
        "a new certificate"
    );
    assert_valid(&site, "renewed", &renewed);
    let srv1 = site.json(&["cert", "list", "--principal", "SRV1"]);
    assert_eq!(srv1.as_array().map(Vec::len), Some(2), "{srv1}");
    drop(server);
}

/// A device made by hand: an RSA key, a CSR (with `challenge` when given) and a self-signed
/// certificate to sign its pkiMessages, as RFC 8894 clients do.
struct Device {
    key: PrivateKey,
    cert: x509_cert::Certificate,
    csr: Vec<u8>,
}

fn device(dir: &Path, cn: &str, challenge: Option<&str>) -> Device {
    let cnf = dir.join(format!("{cn}.cnf"));
    let mut text = format!(
        "[req]\ndistinguished_name = dn\nprompt = no\nattributes = attrs\n[dn]\nCN = {cn}\n[attrs]\n"
    );
    if let Some(c) = challenge {
        text.push_str(&format!("challengePassword = {c}\n"));
    }
    std::fs::write(&cnf, text).expect("cnf");
    let key_path = dir.join(format!("{cn}.key"));
    let csr_path = dir.join(format!("{cn}.der"));
    let o = kit::openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        s(&key_path),
        "-config",
        s(&cnf),
        "-outform",
        "DER",
        "-out",
        s(&csr_path),
    ])
    .expect("openssl");
    assert_eq!(o.status, 0, "{}", o.combined());
    let key =
        PrivateKey::from_pem(&std::fs::read_to_string(&key_path).expect("key"), None).expect("key");
    assert_eq!(key.key_type(), KeyType::Rsa2048);
    let subject = fleetpki_x509::name::build(&[("CN", cn)]).expect("name");
    let cert = scep::client::self_signed(&key, &subject).expect("self-signed");
    Device {
        key,
        cert,
        csr: std::fs::read(&csr_path).expect("csr"),
    }
}

/// POSTs a pkiMessage; the HTTP status and body.
fn post(url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let req = dir.path().join("req.der");
    let resp = dir.path().join("resp.der");
    std::fs::write(&req, body).expect("write");
    let o = Command::new("curl")
        .args([
            "-sS",
            "-o",
            s(&resp),
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/x-pki-message",
            "--data-binary",
        ])
        .arg(format!("@{}", s(&req)))
        .arg(format!("{url}?operation=PKIOperation"))
        .output()
        .expect("curl");
    assert!(o.status.success(), "{}", out_text(&o));
    let code = String::from_utf8_lossy(&o.stdout).parse().expect("code");
    (code, std::fs::read(&resp).unwrap_or_default())
}

struct Client<'a> {
    url: String,
    ra: x509_cert::Certificate,
    dev: &'a Device,
}

impl Client<'_> {
    fn message(&self, t: MessageType, tid: &str, inner: &[u8]) -> (Vec<u8>, [u8; 16]) {
        self.message_in(ContentCipher::Aes256Cbc, t, tid, inner)
    }

    /// A pkiMessage whose envelope uses `cipher`.
    fn message_in(
        &self,
        cipher: ContentCipher,
        t: MessageType,
        tid: &str,
        inner: &[u8],
    ) -> (Vec<u8>, [u8; 16]) {
        let mut nonce = [0u8; 16];
        aws_lc_rs::rand::fill(&mut nonce).expect("rand");
        let der = scep::client::request(
            t,
            tid,
            &nonce,
            inner,
            &self.dev.cert,
            &self.dev.key,
            &self.ra,
            cipher,
        )
        .expect("pkiMessage");
        (der, nonce)
    }

    /// Sends and reads the CertRep.
    fn send(&self, der: &[u8], nonce: &[u8]) -> (Status, Vec<Vec<u8>>) {
        let (status, certs, _) = self.send_read(der, nonce);
        (status, certs)
    }

    /// Sends and reads the CertRep, with the cipher of its envelope (None without content).
    fn send_read(&self, der: &[u8], nonce: &[u8]) -> (Status, Vec<Vec<u8>>, Option<ContentCipher>) {
        let (code, body) = post(&self.url, der);
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        scep::client::read_cert_rep(&body, &self.dev.key, nonce).expect("CertRep")
    }

    fn op(&self, t: MessageType, tid: &str, inner: &[u8]) -> (Status, Vec<Vec<u8>>) {
        let (der, nonce) = self.message(t, tid, inner);
        self.send(&der, &nonce)
    }

    fn poll_inner(&self) -> Vec<u8> {
        use der::Encode;
        let tbs = self.dev.cert.tbs_certificate();
        scep::IssuerAndSubject {
            issuer: tbs.issuer().clone(),
            subject: tbs.subject().clone(),
        }
        .to_der()
        .expect("IssuerAndSubject")
    }
}

fn ra_cert(site: &Site) -> x509_cert::Certificate {
    fleetpki_x509::cert::parse("ra", &ra_der(site)).expect("ra")
}

#[test]
fn pki_operations_cert_poll_pending_and_approval() {
    let site = scep_site();
    let server = start(&site);
    let work = tempfile::tempdir().expect("tmp");

    // PKCSReq with the static challenge (AES-256, SHA-256: accepted by an endpoint without
    // legacy algorithms): SUCCESS, the certificate encrypted to the device.
    let dev = device(work.path(), "poll1.fleet.test", Some(STATIC));
    let c = Client {
        url: endpoint(&server, "modern"),
        ra: ra_cert(&site),
        dev: &dev,
    };
    let (der, nonce) = c.message(MessageType::PkcsReq, "tx-1", &dev.csr);
    let (status, certs, cipher) = c.send_read(&der, &nonce);
    assert!(matches!(status, Status::Success(_)), "{status:?}");
    assert_eq!(certs.len(), 1);
    assert_valid(&site, "PKCSReq", &pem_of(&certs[0]));
    // The reply is encrypted with the request's cipher (RFC 8894 3.3.2), for AES-128 too.
    assert_eq!(cipher, Some(ContentCipher::Aes256Cbc));
    let dev128 = device(work.path(), "aes128.fleet.test", Some(STATIC));
    let c128 = Client {
        url: c.url.clone(),
        ra: c.ra.clone(),
        dev: &dev128,
    };
    let (der, nonce) = c128.message_in(
        ContentCipher::Aes128Cbc,
        MessageType::PkcsReq,
        "tx-aes128",
        &dev128.csr,
    );
    let (status, certs128, cipher) = c128.send_read(&der, &nonce);
    assert!(matches!(status, Status::Success(_)), "{status:?}");
    assert_eq!(certs128.len(), 1);
    assert_eq!(cipher, Some(ContentCipher::Aes128Cbc));
    // CertPoll and a repeated PKCSReq of the same transaction: the same certificate, no
    // second request.
    let requests = site.json(&["request", "list"]).as_array().map(Vec::len);
    let (_, again) = c.op(MessageType::CertPoll, "tx-1", &c.poll_inner());
    assert_eq!(again, certs);
    let (_, again) = c.op(MessageType::PkcsReq, "tx-1", &dev.csr);
    assert_eq!(again, certs);
    assert_eq!(
        site.json(&["request", "list"]).as_array().map(Vec::len),
        requests
    );
    // GetCert by issuer and serial; GetCRL for it.
    let parsed = fleetpki_x509::cert::parse("issued", &certs[0]).expect("parse");
    let ias = {
        use der::Encode;
        cms::cert::IssuerAndSerialNumber {
            issuer: parsed.tbs_certificate().issuer().clone(),
            serial_number: parsed.tbs_certificate().serial_number().clone(),
        }
        .to_der()
        .expect("ias")
    };
    let (_, got) = c.op(MessageType::GetCert, "tx-getcert", &ias);
    assert_eq!(got, certs);
    let (status, _) = c.op(MessageType::GetCrl, "tx-getcrl", &ias);
    let Status::Success(content) = status else {
        panic!("GetCRL: {status:?}");
    };
    // The issuing CA's CRL: its issuer, and a signature openssl verifies against the chain.
    let crls = scep::client::crls_of(&content).expect("degenerate SignedData");
    assert_eq!(crls.len(), 1);
    let crl = {
        use der::Decode;
        <x509_cert::crl::CertificateList>::from_der(&crls[0]).expect("CRL")
    };
    let issuing = fleetpki_x509::cert::parse("issuing", &{
        let pem = site.issuing_pem();
        fleetpki_x509::pem::decode_labels("issuing", pem.as_bytes(), &["CERTIFICATE"])
            .expect("pem")
            .remove(0)
            .1
    })
    .expect("issuing");
    assert_eq!(
        crl.tbs_cert_list.issuer,
        *issuing.tbs_certificate().subject(),
        "issued by the issuing CA"
    );
    let crl_path = work.path().join("getcrl.der");
    std::fs::write(&crl_path, &crls[0]).expect("write");
    let chain_path = work.path().join("chain.pem");
    std::fs::write(&chain_path, site.chain_pem()).expect("write");
    let v = kit::openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        s(&crl_path),
        "-CAfile",
        s(&chain_path),
        "-noout",
    ])
    .expect("openssl crl");
    assert!(
        v.status == 0 && v.combined().contains("verify OK"),
        "{}",
        v.combined()
    );

    // A template that needs approval: PENDING, polled, approved, then SUCCESS.
    let dev2 = device(work.path(), "poll2.fleet.test", Some(STATIC));
    let c2 = Client {
        url: endpoint(&server, "approved"),
        ra: ra_cert(&site),
        dev: &dev2,
    };
    let (status, _) = c2.op(MessageType::PkcsReq, "tx-2", &dev2.csr);
    assert_eq!(status, Status::Pending);
    let (status, _) = c2.op(MessageType::CertPoll, "tx-2", &c2.poll_inner());
    assert_eq!(status, Status::Pending);
    let pending = site.json(&["request", "list", "--pending"]);
    let id = pending[0]["id"].as_i64().expect("pending id").to_string();
    // The mapping is durable: a restarted server still answers the poll.
    drop(server);
    let server = start(&site);
    let c2 = Client {
        url: endpoint(&server, "approved"),
        ..c2
    };
    site.ok(&["request", "approve", &id]);
    let (status, certs) = c2.op(MessageType::CertPoll, "tx-2", &c2.poll_inner());
    assert!(matches!(status, Status::Success(_)), "{status:?}");
    assert_valid(&site, "approved", &pem_of(&certs[0]));
    // An unknown transaction: badCertId, nothing stored.
    let before = site.fingerprint();
    let (status, _) = c2.op(MessageType::CertPoll, "tx-unknown", &c2.poll_inner());
    assert_eq!(status, Status::Failure(FailInfo::BadCertId));
    assert_eq!(site.fingerprint(), before);
    drop(server);
}

#[test]
fn malformed_pki_messages_get_their_fail_info_and_store_nothing() {
    let site = scep_site();
    let mut config = config();
    config.push_str(
        "[roles.scep.endpoints.ghost]\ntemplate = \"No Such Template\"\nprincipal = \"SRV1\"\n",
    );
    config.push_str(&format!(
        "challenge_sha256 = \"{}\"\n",
        sha256_hex(STATIC.as_bytes())
    ));
    let server = Server::start(&site, &config, 2);
    let work = tempfile::tempdir().expect("tmp");
    let url = endpoint(&server, "devices");
    let before = site.fingerprint();

    // Not a pkiMessage at all: 400 (no CertRep can echo a transaction).
    assert_eq!(post(&url, b"garbage").0, 400);
    // A ContentInfo of the wrong content type (id-data, not signedData): 400.
    let data_ci = hex::decode("300f06092a864886f70d010701a0020400").expect("hex");
    assert_eq!(post(&url, &data_ci).0, 400);

    let good = device(work.path(), "cat1.fleet.test", Some(STATIC));
    let c = Client {
        url: url.clone(),
        ra: ra_cert(&site),
        dev: &good,
    };
    // A bad signature: badMessageCheck.
    let (mut der, nonce) = c.message(MessageType::PkcsReq, "cat-sig", &good.csr);
    let n = der.len();
    der[n - 3] ^= 0x01;
    assert_eq!(
        c.send(&der, &nonce).0,
        Status::Failure(FailInfo::BadMessageCheck)
    );
    // Encrypted to another RA certificate: the uniform badMessageCheck.
    let other = device(work.path(), "other-ra", None);
    let c_other = Client {
        url: url.clone(),
        ra: other.cert.clone(),
        dev: &good,
    };
    assert_eq!(
        c_other.op(MessageType::PkcsReq, "cat-ra", &good.csr).0,
        Status::Failure(FailInfo::BadMessageCheck)
    );
    // Not a CSR inside: badRequest.
    assert_eq!(
        c.op(MessageType::PkcsReq, "cat-csr", b"not a csr").0,
        Status::Failure(FailInfo::BadRequest)
    );
    // A wrong challenge, and none: badRequest.
    for (cn, challenge) in [
        ("cat2.fleet.test", Some("wrong")),
        ("cat3.fleet.test", None),
    ] {
        let d = device(work.path(), cn, challenge);
        let c = Client {
            url: url.clone(),
            ra: ra_cert(&site),
            dev: &d,
        };
        assert_eq!(
            c.op(MessageType::PkcsReq, cn, &d.csr).0,
            Status::Failure(FailInfo::BadRequest),
            "{cn}"
        );
    }
    // A name outside the template's suffixes: the pipeline refuses, badRequest.
    let d = device(work.path(), "cat.example.com", Some(STATIC));
    let c = Client {
        url: url.clone(),
        ra: ra_cert(&site),
        dev: &d,
    };
    assert_eq!(
        c.op(MessageType::PkcsReq, "cat-name", &d.csr).0,
        Status::Failure(FailInfo::BadRequest)
    );
    // An unknown template behind an endpoint: badRequest.
    let c = Client {
        url: endpoint(&server, "ghost"),
        ra: ra_cert(&site),
        dev: &good,
    };
    assert_eq!(
        c.op(MessageType::PkcsReq, "cat-ghost", &good.csr).0,
        Status::Failure(FailInfo::BadRequest)
    );
    // A renewal signed by a certificate this CA did not issue: badRequest.
    let c = Client {
        url: url.clone(),
        ra: ra_cert(&site),
        dev: &good,
    };
    assert_eq!(
        c.op(MessageType::RenewalReq, "cat-renew", &good.csr).0,
        Status::Failure(FailInfo::BadRequest)
    );
    // A PKCSReq signed with another key than the CSR's: badRequest.
    let stranger = device(work.path(), "cat4.fleet.test", Some(STATIC));
    let c = Client {
        url: url.clone(),
        ra: ra_cert(&site),
        dev: &stranger,
    };
    assert_eq!(
        c.op(MessageType::PkcsReq, "cat-pop", &good.csr).0,
        Status::Failure(FailInfo::BadRequest)
    );
    // 3DES where the endpoint does not take legacy algorithms: badAlg, before anything else.
    let c = Client {
        url: endpoint(&server, "modern"),
        ra: ra_cert(&site),
        dev: &good,
    };
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce).expect("rand");
    let des3 = scep::client::request(
        MessageType::PkcsReq,
        "cat-3des",
        &nonce,
        &good.csr,
        &good.cert,
        &good.key,
        &c.ra,
        ContentCipher::DesEde3Cbc,
    )
    .expect("pkiMessage");
    assert_eq!(c.send(&des3, &nonce).0, Status::Failure(FailInfo::BadAlg));
    let c = Client {
        url: url.clone(),
        ra: ra_cert(&site),
        dev: &stranger,
    };
    // A certificate this CA never issued: badCertId.
    let ias = {
        use der::Encode;
        cms::cert::IssuerAndSerialNumber {
            issuer: good.cert.tbs_certificate().issuer().clone(),
            serial_number: good.cert.tbs_certificate().serial_number().clone(),
        }
        .to_der()
        .expect("ias")
    };
    assert_eq!(
        c.op(MessageType::GetCert, "cat-getcert", &ias).0,
        Status::Failure(FailInfo::BadCertId)
    );
    assert_eq!(
        site.fingerprint(),
        before,
        "a refused message stored something"
    );
    drop(server);
}

/// certmonger (`getcert add-scep-ca` + `getcert request -w`) against the `devices` endpoint,
/// its daemon on a private session bus with its state in a temp dir; the request must reach
/// MONITORING with a valid certificate.
#[test]
fn certmonger_enrolls_and_reaches_monitoring() {
    let (Some(_), Some(_), Some(_)) = (
        kit::tool("certmonger"),
        kit::tool("getcert"),
        kit::tool("dbus-run-session"),
    ) else {
        return;
    };
    let site = scep_site();
    let server = start(&site);
    let work = tempfile::tempdir().expect("tmp");
    let w = work.path();
    for d in ["requests", "cas", "local", "tmp", "home", "out"] {
        std::fs::create_dir_all(w.join(d)).expect("dir");
    }
    let ca = site.path("ca");
    // certmonger verifies the RA's CertRep signature up to -N (the trust anchor: the root)
    // through -I (the issuing CA).
    let script = format!(
        "set -e\n\
         getcert add-scep-ca -s -c fleetpki -u '{url}' -r '{ra}' -N '{root}' -I '{issuing}'\n\
         getcert request -s -c fleetpki -k '{out}/key.pem' -f '{out}/cert.pem' \
         -N CN=cm1.fleet.test -D cm1.fleet.test -L '{challenge}' -w --wait-timeout 60\n\
         getcert list -s\n",
        url = endpoint(&server, "devices"),
        ra = s(&ca.join("scep-ra.pem")),
        root = s(&ca.join("root.pem")),
        issuing = s(&ca.join("issuing.pem")),
        out = s(&w.join("out")),
        challenge = STATIC,
    );
    std::fs::write(w.join("cm.sh"), script).expect("script");
    let o = Command::new("dbus-run-session")
        .args(["--", "certmonger", "-s", "-n", "-c"])
        .arg(format!("sh {}", s(&w.join("cm.sh"))))
        .env("HOME", w.join("home"))
        .env("CERTMONGER_REQUESTS_DIR", w.join("requests"))
        .env("CERTMONGER_CAS_DIR", w.join("cas"))
        .env("CERTMONGER_LOCAL_CA_DIR", w.join("local"))
        .env("CERTMONGER_TMPDIR", w.join("tmp"))
        .env("CERTMONGER_CONFIG_DIR", w.join("home"))
        .output()
        .expect("certmonger");
    let text = out_text(&o);
    assert!(text.contains("status: MONITORING"), "{text}");
    let pem = std::fs::read_to_string(w.join("out/cert.pem")).expect("certmonger's certificate");
    assert_valid(&site, "certmonger", &pem);
    drop(server);
}
