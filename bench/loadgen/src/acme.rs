//! `loadgen acme`: ACME issuances per second with account reuse. Before timing, each worker
//! makes its own account (ES256) and validates its own name through http-01 (answered by a
//! responder this tool runs on loopback); then, timed, each issuance is newOrder (ready at once:
//! the authorization is reused) → finalize with a pre-generated CSR → certificate download,
//! every request a JWS signed with the account key, nonces chained from the previous answer.

use crate::{Error, Sender, error_text, handshake};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

#[derive(clap::Args)]
pub struct AcmeArgs {
    /// The directory URL, https://localhost:PORT/acme/directory.
    directory: String,
    /// The site root (trust anchor for the server certificate).
    #[arg(long)]
    cacert: PathBuf,
    /// Where to connect (the directory's host is sent as SNI and Host).
    #[arg(long)]
    connect: std::net::SocketAddr,
    /// The port the http-01 responder listens on (127.0.0.1; the server's http01_port).
    #[arg(long)]
    http01_port: u16,
    /// Workers: one account, one name (wN.fleet.test by default) and one connection each.
    #[arg(short = 'c', long, default_value_t = 16)]
    concurrency: usize,
    /// The names are `w<N>.<suffix>`.
    #[arg(long, default_value = "fleet.test")]
    suffix: String,
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value = "acme")]
    label: String,
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

struct Conn {
    tls: TlsConnector,
    addr: std::net::SocketAddr,
    host: String,
    server_name: rustls::pki_types::ServerName<'static>,
    sender: Option<Sender>,
}

struct Answer {
    status: u16,
    nonce: Option<String>,
    location: Option<String>,
    body: Bytes,
}

impl Conn {
    async fn send(
        &mut self,
        method: &str,
        url: &str,
        body: Option<String>,
    ) -> Result<Answer, String> {
        let sender = match &mut self.sender {
            Some(s) if !s.is_closed() => s,
            _ => {
                let tcp = TcpStream::connect(self.addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let _ = tcp.set_nodelay(true);
                let tls = self
                    .tls
                    .connect(self.server_name.clone(), tcp)
                    .await
                    .map_err(|e| format!("tls: {e}"))?;
                self.sender.insert(handshake(tls).await?)
            }
        };
        sender.ready().await.map_err(|e| error_text(&e))?;
        let path = url
            .split_once("://")
            .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
            .ok_or_else(|| format!("bad url {url}"))?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.as_str());
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/jose+json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| error_text(&e))?;
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (status, nonce, location) = (resp.status().as_u16(), h("replay-nonce"), h("location"));
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {}", error_text(&e)))?
            .to_bytes();
        Ok(Answer {
            status,
            nonce,
            location,
            body,
        })
    }
}

struct Account {
    key: EcdsaKeyPair,
    kid: Option<String>,
    nonce: Option<String>,
    rng: SystemRandom,
}

impl Account {
    fn jwk(&self) -> Value {
        let p = self.key.public_key().as_ref();
        json!({"crv": "P-256", "kty": "EC", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
    }

    fn thumbprint(&self) -> String {
        let j = self.jwk();
        let canon = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            j["x"].as_str().unwrap_or_default(),
            j["y"].as_str().unwrap_or_default()
        );
        b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canon.as_bytes()).as_ref())
    }

    /// POSTs a JWS (payload None: POST-as-GET), fetching a nonce first if none is held.
    async fn post(
        &mut self,
        conn: &mut Conn,
        dir: &Value,
        url: &str,
        payload: Option<&Value>,
    ) -> Result<Answer, String> {
        let nonce = match self.nonce.take() {
            Some(n) => n,
            None => {
                let u = dir["newNonce"].as_str().ok_or("no newNonce")?;
                conn.send("HEAD", u, None).await?.nonce.ok_or("no nonce")?
            }
        };
        let mut protected = json!({"alg": "ES256", "nonce": nonce, "url": url});
        match &self.kid {
            Some(k) => protected["kid"] = json!(k),
            None => protected["jwk"] = self.jwk(),
        }
        let p = b64(protected.to_string().as_bytes());
        let pl = payload
            .map(|v| b64(v.to_string().as_bytes()))
            .unwrap_or_default();
        let sig = self
            .key
            .sign(&self.rng, format!("{p}.{pl}").as_bytes())
            .map_err(|_| "sign")?;
        let body =
            json!({"protected": p, "payload": pl, "signature": b64(sig.as_ref())}).to_string();
        let a = conn.send("POST", url, Some(body)).await?;
        self.nonce = a.nonce.clone();
        Ok(a)
    }
}

fn json_of(a: &Answer) -> Result<Value, String> {
    serde_json::from_slice(&a.body).map_err(|e| format!("status {} not JSON: {e}", a.status))
}

fn expect(a: &Answer, status: u16, what: &str) -> Result<(), String> {
    if a.status == status {
        Ok(())
    } else {
        Err(format!(
            "{what}: status {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ))
    }
}

/// A CSR for `name` (DER), made by rcgen before timing.
fn csr_der(name: &str) -> Result<Vec<u8>, Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    // rcgen's default subject is a CN of its own; name only the order's identifier.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name.to_string());
    Ok(params.serialize_request(&key)?.der().to_vec())
}

/// Answers `/.well-known/acme-challenge/TOKEN` from `table` (HTTP/1.0 style, one request a
/// connection).
async fn responder(listener: TcpListener, table: Arc<Mutex<HashMap<String, String>>>) {
    while let Ok((mut s, _)) = listener.accept().await {
        let table = table.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            while n < buf.len() {
                match s.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let token = head
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.strip_prefix("/.well-known/acme-challenge/"))
                .unwrap_or("");
            let found = table.lock().ok().and_then(|t| t.get(token).cloned());
            let resp = match found {
                Some(v) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{v}",
                    v.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .into(),
            };
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        });
    }
}

struct Worker {
    conn: Conn,
    account: Account,
    name: String,
    csrs: Vec<String>,
}

/// Account, and a validated authorization for the worker's name (not timed).
async fn setup(
    mut w: Worker,
    dir: &Value,
    table: &Arc<Mutex<HashMap<String, String>>>,
) -> Result<Worker, String> {
    let url = dir["newAccount"]
        .as_str()
        .ok_or("no newAccount")?
        .to_string();
    let a = w
        .account
        .post(
            &mut w.conn,
            dir,
            &url,
            Some(&json!({"termsOfServiceAgreed": true})),
        )
        .await?;
    expect(&a, 201, "newAccount")?;
    w.account.kid = a.location;
    let url = dir["newOrder"].as_str().ok_or("no newOrder")?.to_string();
    let order = json!({"identifiers": [{"type": "dns", "value": w.name}]});
    let a = w.account.post(&mut w.conn, dir, &url, Some(&order)).await?;
    expect(&a, 201, "newOrder")?;
    let authz = json_of(&a)?["authorizations"][0]
        .as_str()
        .ok_or("no authz")?
        .to_string();
    let a = w.account.post(&mut w.conn, dir, &authz, None).await?;
    let z = json_of(&a)?;
    let ch = z["challenges"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "http-01"))
        .ok_or("no http-01")?
        .clone();
    let token = ch["token"].as_str().ok_or("no token")?;
    let ka = format!("{token}.{}", w.account.thumbprint());
    table
        .lock()
        .map_err(|_| "lock")?
        .insert(token.to_string(), ka);
    let a = w
        .account
        .post(
            &mut w.conn,
            dir,
            ch["url"].as_str().ok_or("no url")?,
            Some(&json!({})),
        )
        .await?;
    if json_of(&a)?["status"] != "valid" {
        return Err(format!(
            "http-01 for {}: {}",
            w.name,
            String::from_utf8_lossy(&a.body)
        ));
    }
    Ok(w)
}

/// One issuance: newOrder (ready: authorization reused), finalize, download.
async fn issue(w: &mut Worker, dir: &Value, i: usize) -> Result<(), String> {
    let url = dir["newOrder"].as_str().ok_or("no newOrder")?.to_string();
    let order = json!({"identifiers": [{"type": "dns", "value": w.name}]});
    let a = w.account.post(&mut w.conn, dir, &url, Some(&order)).await?;
    expect(&a, 201, "newOrder")?;
    let o = json_of(&a)?;
    if o["status"] != "ready" {
        return Err(format!("order not ready: {o}"));
    }
    let fin = o["finalize"].as_str().ok_or("no finalize")?.to_string();
    let csr = json!({"csr": w.csrs[i % w.csrs.len()]});
    let a = w.account.post(&mut w.conn, dir, &fin, Some(&csr)).await?;
    expect(&a, 200, "finalize")?;
    let o = json_of(&a)?;
    let cert = o["certificate"]
        .as_str()
        .ok_or("no certificate url")?
        .to_string();
    let a = w.account.post(&mut w.conn, dir, &cert, None).await?;
    expect(&a, 200, "certificate")?;
    if !a.body.starts_with(b"-----BEGIN CERTIFICATE-----") {
        return Err("certificate: not PEM".into());
    }
    Ok(())
}

pub fn run(a: AcmeArgs) -> Result<(), Error> {
    let (rt, threads) = crate::runtime(a.threads)?;
    let host = a
        .directory
        .split_once("://")
        .and_then(|(_, r)| r.split('/').next())
        .ok_or("bad directory URL")?
        .to_string();
    let sni = host
        .rsplit_once(':')
        .map_or(host.as_str(), |(h, _)| h)
        .to_string();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&a.cacert)? {
        roots.add(c?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = TlsConnector::from(Arc::new(config));
    let server_name = rustls::pki_types::ServerName::try_from(sni)?;
    println!(
        "== {}: ACME issuances (newOrder + finalize + download, account and authorization reused) {} c={} threads={threads} duration={}s warmup={}s",
        a.label, a.directory, a.concurrency, a.duration, a.warmup
    );
    let mut workers = Vec::new();
    for i in 0..a.concurrency {
        let name = format!("w{i}.{}", a.suffix);
        let csrs = (0..4)
            .map(|_| csr_der(&name).map(|d| b64(&d)))
            .collect::<Result<Vec<_>, _>>()?;
        workers.push(Worker {
            conn: Conn {
                tls: tls.clone(),
                addr: a.connect,
                host: host.clone(),
                server_name: server_name.clone(),
                sender: None,
            },
            account: Account {
                key: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| "keygen")?,
                kid: None,
                nonce: None,
                rng: SystemRandom::new(),
            },
            name,
            csrs,
        });
    }
    let result: Result<(u64, u64, Vec<u32>, f64, BTreeErrors), Error> = rt.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", a.http01_port)).await?;
        let table: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        tokio::spawn(responder(listener, table.clone()));
        let mut first = workers.remove(0);
        let d = first.conn.send("GET", &a.directory, None).await?;
        let dir: Arc<Value> = Arc::new(serde_json::from_slice(&d.body)?);
        let mut ready = vec![setup(first, &dir, &table).await?];
        for w in workers {
            ready.push(setup(w, &dir, &table).await?);
        }
        let warm_end = Instant::now() + Duration::from_secs_f64(a.warmup);
        let end = warm_end + Duration::from_secs_f64(a.duration);
        let tasks: Vec<_> = ready
            .into_iter()
            .map(|mut w| {
                let dir = dir.clone();
                tokio::spawn(async move {
                    let (mut ok, mut err, mut lat, mut kinds) =
                        (0u64, 0u64, Vec::new(), BTreeErrors::new());
                    let mut i = 0;
                    loop {
                        let t0 = Instant::now();
                        if t0 >= end {
                            break;
                        }
                        let r =
                            tokio::time::timeout(Duration::from_secs(10), issue(&mut w, &dir, i))
                                .await;
                        i += 1;
                        let t1 = Instant::now();
                        if t0 < warm_end || t1 > end {
                            continue;
                        }
                        match r {
                            Ok(Ok(())) => {
                                ok += 1;
                                lat.push(
                                    u32::try_from(t1.duration_since(t0).as_micros())
                                        .unwrap_or(u32::MAX),
                                );
                            }
                            Ok(Err(e)) => {
                                err += 1;
                                w.account.nonce = None;
                                *kinds.entry(e.chars().take(160).collect()).or_default() += 1;
                            }
                            Err(_) => {
                                err += 1;
                                w.conn.sender = None;
                                *kinds.entry("timeout".into()).or_default() += 1;
                            }
                        }
                    }
                    (ok, err, lat, kinds)
                })
            })
            .collect();
        let (mut ok, mut err, mut lat, mut kinds) = (0, 0, Vec::new(), BTreeErrors::new());
        for t in tasks {
            let (o, e, l, k) = t.await?;
            ok += o;
            err += e;
            lat.extend(l);
            for (kk, n) in k {
                *kinds.entry(kk).or_default() += n;
            }
        }
        Ok((ok, err, lat, a.duration, kinds))
    });
    let (ok, errors, mut lat, secs, kinds) = result?;
    lat.sort_unstable();
    let rps = ok as f64 / secs;
    let (p50, p99) = (
        crate::percentile_ms(&lat, 0.5),
        crate::percentile_ms(&lat, 0.99),
    );
    let max = crate::percentile_ms(&lat, 1.0);
    println!(
        "   {ok} issuances, {errors} errors in {secs:.2} s: {rps:.1} issuances/s; latency p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    for (k, n) in kinds.iter().take(8) {
        println!("   error ×{n}: {k}");
    }
    println!(
        "RESULT label={} rps={rps:.1} p50_ms={p50:.2} p99_ms={p99:.2} max_ms={max:.2} ok={ok} errors={errors} secs={secs:.2}",
        a.label
    );
    Ok(())
}

type BTreeErrors = std::collections::BTreeMap<String, u64>;
