//! A closed-loop HTTP/1.1 load generator (plain or over TLS, optional client certificate) for
//! fleetpki's benches: `C` workers, each with its own connection, send requests back to back
//! for a fixed time or count and the run prints requests/s, p50/p99 latency and errors.
//!
//! - `--mode keepalive`: each worker keeps its connection (reconnecting after an error).
//! - `--mode handshake`: a new TCP connection and a full TLS handshake (no resumption) for
//!   every request, which carries `Connection: close`; the latency includes the handshake.
//! - `--bodies FILE`: POST bodies, one a line, each used once (pre-generated, e.g. by
//!   `loadgen csr`, so key generation is not measured); the run ends when they run out unless
//!   `--cycle-bodies`.
//!
//! The last line of a run is machine-readable:
//! `RESULT label=L rps=R p50_ms=X p99_ms=Y max_ms=Z ok=N errors=E secs=T`.

mod acme;
mod scep;

use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Parser)]
#[command(about = "HTTP/1.1 load generator for fleetpki's benches")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send requests; print requests/s, p50/p99 latency and the error count.
    Run(RunArgs),
    /// Pre-generate ECDSA P-256 CSRs as request bodies, one a line.
    Csr(CsrArgs),
    /// SCEP PKCSReq enrollments (RSA-2048, pkiMessages built before timing), every CertRep
    /// checked after the run.
    Scep(scep::ScepArgs),
    /// ACME issuances per second with account and authorization reuse.
    Acme(acme::AcmeArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Mode {
    /// One connection per worker, reused for every request.
    Keepalive,
    /// A new connection (full TLS handshake, no resumption) for every request.
    Handshake,
}

#[derive(Args)]
struct RunArgs {
    /// http://HOST:PORT/PATH or https://HOST:PORT/PATH
    url: String,
    #[arg(long, value_enum, default_value = "keepalive")]
    mode: Mode,
    /// Concurrent connections (workers).
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds of measurement (default 10 unless --requests is given).
    #[arg(long)]
    duration: Option<f64>,
    /// Number of measured requests instead of a duration.
    #[arg(long, conflicts_with = "duration")]
    requests: Option<u64>,
    /// Seconds of unmeasured load first (connections stay open in keepalive mode).
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// HTTP method (default GET, or POST with --bodies).
    #[arg(long)]
    method: Option<String>,
    /// Request bodies, one a line, each sent once.
    #[arg(long)]
    bodies: Option<PathBuf>,
    /// Start over when the bodies run out (otherwise the run ends there).
    #[arg(long)]
    cycle_bodies: bool,
    /// Extra header, `Name: value` (repeatable). Content-Type defaults to application/json
    /// with --bodies.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// PEM file of the CA certificates to trust (https).
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Client certificate chain (PEM) to present.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM, PKCS#8 or SEC1) of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Connect to this address instead of resolving the URL's host (SNI and Host stay).
    #[arg(long)]
    connect: Option<SocketAddr>,
    /// The status every response must have (default: any 2xx).
    #[arg(long)]
    expect_status: Option<u16>,
    /// Tokio worker threads (default: the number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Name printed on the RESULT line.
    #[arg(long, default_value = "run")]
    label: String,
}

#[derive(Args)]
struct CsrArgs {
    /// How many CSRs (each with its own new key).
    #[arg(long)]
    count: usize,
    /// Output file: one body a line.
    #[arg(long)]
    out: PathBuf,
    /// Subject common name.
    #[arg(long, default_value = "bench.fleet.test")]
    cn: String,
    /// DNS subjectAltName (repeatable).
    #[arg(long)]
    dns: Vec<String>,
    /// Each line: this text with `{csr}` replaced by the PEM CSR, JSON-escaped (no quotes
    /// added), e.g. '{"template":"Workstation","csr":"{csr}"}'.
    #[arg(long, default_value = "{csr}")]
    body: String,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(a) => run(a),
        Cmd::Csr(a) => csr(a),
        Cmd::Scep(a) => scep::run(a),
        Cmd::Acme(a) => acme::run(a),
    };
    if let Err(e) = result {
        eprintln!("loadgen: error: {e}");
        std::process::exit(2);
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

// ---------------------------------------------------------------- CSRs

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 32);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn one_csr(cn: &str, dns: &[String]) -> Result<String, Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(dns.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn.to_string());
    Ok(params.serialize_request(&key)?.pem()?)
}

fn csr(a: CsrArgs) -> Result<(), Error> {
    if !a.body.contains("{csr}") {
        return Err("--body must contain {csr}".into());
    }
    let started = Instant::now();
    let lines = parallel(a.count, |_| {
        one_csr(&a.cn, &a.dns)
            .map(|pem| a.body.replace("{csr}", &json_escape(&pem)))
            .map_err(|e| e.to_string())
    })?;
    let mut text = String::new();
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(&a.out, text)?;
    eprintln!(
        "loadgen csr: {} P-256 CSRs in {:.1} s → {}",
        a.count,
        started.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

/// Runs `f(i)` for i in 0..n on every CPU; the results in order.
pub(crate) fn parallel<T: Send>(
    n: usize,
    f: impl Fn(usize) -> Result<T, String> + Sync,
) -> Result<Vec<T>, Error> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = n.div_ceil(threads).max(1);
    let chunks: Vec<Result<Vec<T>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || (t * per..((t + 1) * per).min(n)).map(f).collect())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect()
    });
    let mut out = Vec::with_capacity(n);
    for c in chunks {
        out.extend(c?);
    }
    Ok(out)
}

/// The load's runtime: `threads` workers, every CPU by default.
pub(crate) fn runtime(threads: Option<usize>) -> Result<(tokio::runtime::Runtime, usize), Error> {
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    Ok((rt, threads))
}

// ---------------------------------------------------------------- the run

struct Target {
    https: bool,
    authority: String,
    path: String,
    addr: SocketAddr,
    server_name: ServerName<'static>,
}

fn parse_url(url: &str, connect: Option<SocketAddr>) -> Result<Target, Error> {
    let uri: hyper::Uri = url.parse()?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url}: use http:// or https://").into()),
    };
    let host = uri.host().ok_or("the URL has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or("the URL has no host")?;
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let addr = match connect {
        Some(a) => a,
        None => {
            // IPv4 first: `localhost` often resolves to ::1 first, and the benches bind 127.0.0.1.
            let mut addrs: Vec<SocketAddr> = (host.as_str(), port).to_socket_addrs()?.collect();
            addrs.sort_by_key(|a| a.is_ipv6());
            *addrs.first().ok_or_else(|| format!("{host}: no address"))?
        }
    };
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let server_name = ServerName::try_from(bare)?;
    Ok(Target {
        https,
        authority,
        path,
        addr,
        server_name,
    })
}

fn tls_connector(a: &RunArgs) -> Result<TlsConnector, Error> {
    tls_client(a.cacert.as_ref(), a.cert.as_ref().zip(a.key.as_ref()))
}

/// A TLS client trusting `cacert`, presenting `client` (chain, key) when given.
fn tls_client(
    cacert: Option<&PathBuf>,
    client: Option<(&PathBuf, &PathBuf)>,
) -> Result<TlsConnector, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let cacert = cacert.ok_or("https needs --cacert")?;
    for c in CertificateDer::pem_file_iter(cacert)? {
        roots.add(c?)?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate", cacert.display()).into());
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_file(key)?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every new connection is a full handshake: no session tickets or IDs are offered.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(TlsConnector::from(Arc::new(config)))
}

struct Shared {
    target: Target,
    tls: Option<TlsConnector>,
    mode: Mode,
    method: hyper::Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    bodies: Vec<Bytes>,
    cycle_bodies: bool,
    next_body: AtomicUsize,
    bodies_ran_out: AtomicBool,
    /// Count mode: measured requests claimed so far, and how many to send.
    claimed: AtomicU64,
    limit: Option<u64>,
    /// Set when the warmup ends.
    measure_start: OnceLock<Instant>,
    /// Duration mode: completions after this are not counted.
    deadline: OnceLock<Instant>,
    stop: AtomicBool,
    expect_status: Option<u16>,
    timeout: Duration,
    /// Keep each measured successful response (for checking after the run: `loadgen scep`).
    keep_responses: bool,
}

impl Shared {
    /// The next body and its index in `bodies`.
    fn body(&self) -> Option<(usize, Bytes)> {
        if self.bodies.is_empty() {
            return Some((0, Bytes::new()));
        }
        let i = self.next_body.fetch_add(1, Ordering::Relaxed);
        if i < self.bodies.len() {
            Some((i, self.bodies[i].clone()))
        } else if self.cycle_bodies {
            let i = i % self.bodies.len();
            Some((i, self.bodies[i].clone()))
        } else {
            self.bodies_ran_out.store(true, Ordering::Relaxed);
            None
        }
    }

    fn status_ok(&self, status: u16) -> bool {
        match self.expect_status {
            Some(s) => status == s,
            None => (200..300).contains(&status),
        }
    }
}

#[derive(Default)]
struct Stats {
    latency_us: Vec<u32>,
    ok: u64,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    last_done: Option<Instant>,
    /// With `keep_responses`: (body index, latency µs, response body) of each measured
    /// success, whose latency is then not in `latency_us` until the response is checked.
    responses: Vec<(usize, u32, Bytes)>,
}

type Sender = SendRequest<Full<Bytes>>;

async fn handshake<T>(io: T) -> Result<Sender, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn connect(sh: &Shared) -> Result<Sender, String> {
    let tcp = TcpStream::connect(sh.target.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    match &sh.tls {
        Some(tls) => {
            let stream = tls
                .connect(sh.target.server_name.clone(), tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            handshake(stream).await
        }
        None => handshake(tcp).await,
    }
}

fn error_text(e: &hyper::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// One request on `conn` (opened first if needed); the response body is read to the end.
async fn one(sh: &Shared, conn: &mut Option<Sender>, body: Bytes) -> Result<(u16, Bytes), String> {
    let sender = match conn {
        Some(s) if sh.mode == Mode::Keepalive && !s.is_closed() => s,
        _ => conn.insert(connect(sh).await?),
    };
    sender.ready().await.map_err(|e| error_text(&e))?;
    let mut req = hyper::Request::builder()
        .method(sh.method.clone())
        .uri(sh.target.path.as_str())
        .header(HOST, sh.target.authority.as_str());
    for (k, v) in &sh.headers {
        req = req.header(k, v);
    }
    if sh.mode == Mode::Handshake {
        req = req.header(CONNECTION, "close");
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| error_text(&e))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {}", error_text(&e)))?
        .to_bytes();
    if sh.mode == Mode::Handshake {
        *conn = None;
    }
    Ok((status, body))
}

async fn worker(sh: Arc<Shared>) -> Stats {
    let mut st = Stats::default();
    let mut conn: Option<Sender> = None;
    while !sh.stop.load(Ordering::Relaxed) {
        // Count mode: only requests claimed after the warmup are measured, and at most `limit`.
        let claimed = match (sh.limit, sh.measure_start.get()) {
            (Some(limit), Some(_)) => {
                if sh.claimed.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
                true
            }
            _ => false,
        };
        let Some((index, body)) = sh.body() else {
            sh.stop.store(true, Ordering::Relaxed);
            break;
        };
        let started = Instant::now();
        let outcome = match tokio::time::timeout(sh.timeout, one(&sh, &mut conn, body)).await {
            Ok(Ok((status, resp))) if sh.status_ok(status) => Ok(resp),
            Ok(Ok((status, _))) => Err(format!("status {status}")),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("timeout".to_string()),
        };
        let done = Instant::now();
        if outcome.is_err() {
            conn = None;
        }
        let measured = if sh.limit.is_some() {
            claimed
        } else {
            sh.measure_start.get().is_some_and(|s| done >= *s)
                && sh.deadline.get().is_none_or(|d| done <= *d)
        };
        if !measured {
            continue;
        }
        match outcome {
            Ok(resp) => {
                st.ok += 1;
                let us = done.duration_since(started).as_micros();
                let us = u32::try_from(us).unwrap_or(u32::MAX);
                if sh.keep_responses {
                    st.responses.push((index, us, resp));
                } else {
                    st.latency_us.push(us);
                }
            }
            Err(e) => {
                st.errors += 1;
                *st.error_kinds.entry(e).or_default() += 1;
            }
        }
        st.last_done = Some(done);
    }
    st
}

fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

fn run(a: RunArgs) -> Result<(), Error> {
    if a.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let target = parse_url(&a.url, a.connect)?;
    let tls = if target.https {
        Some(tls_connector(&a)?)
    } else {
        None
    };
    let bodies: Vec<Bytes> = match &a.bodies {
        Some(p) => std::fs::read(p)?
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(Bytes::copy_from_slice)
            .collect(),
        None => Vec::new(),
    };
    if a.bodies.is_some() && bodies.is_empty() {
        return Err("--bodies: the file has no lines".into());
    }
    let method: hyper::Method = a
        .method
        .as_deref()
        .unwrap_or(if bodies.is_empty() { "GET" } else { "POST" })
        .parse()?;
    let mut headers = Vec::new();
    for h in &a.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| format!("--header `{h}`: use `Name: value`"))?;
        headers.push((
            HeaderName::from_bytes(k.trim().as_bytes())?,
            HeaderValue::from_str(v.trim())?,
        ));
    }
    if !bodies.is_empty() && !headers.iter().any(|(k, _)| k == CONTENT_TYPE) {
        headers.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
    }
    let duration = match (a.duration, a.requests) {
        (Some(d), _) => Some(d),
        (None, None) => Some(10.0),
        (None, Some(_)) => None,
    };
    let (rt, threads) = runtime(a.threads)?;
    println!(
        "== {}: {} {} mode={:?} c={} threads={} {} warmup={}s",
        a.label,
        method,
        a.url,
        a.mode,
        a.concurrency,
        threads,
        match (duration, a.requests) {
            (Some(d), _) => format!("duration={d}s"),
            (None, Some(n)) => format!("requests={n}"),
            _ => String::new(),
        },
        a.warmup
    );
    let sh = Arc::new(Shared {
        target,
        tls,
        mode: a.mode,
        method,
        headers,
        bodies,
        cycle_bodies: a.cycle_bodies,
        next_body: AtomicUsize::new(0),
        bodies_ran_out: AtomicBool::new(false),
        claimed: AtomicU64::new(0),
        limit: a.requests,
        measure_start: OnceLock::new(),
        deadline: OnceLock::new(),
        stop: AtomicBool::new(false),
        expect_status: a.expect_status,
        timeout: Duration::from_secs_f64(a.timeout),
        keep_responses: false,
    });
    let (all, secs) = execute(&rt, &sh, a.concurrency, a.warmup, duration);
    rt.shutdown_timeout(Duration::from_secs(1));
    report(&a.label, &sh, all, secs);
    Ok(())
}

/// Runs `concurrency` workers over `sh` (a warmup first, then a duration or `sh.limit`
/// requests): every worker's stats merged, and the measured seconds.
fn execute(
    rt: &tokio::runtime::Runtime,
    sh: &Arc<Shared>,
    concurrency: usize,
    warmup: f64,
    duration: Option<f64>,
) -> (Stats, f64) {
    let (stats, start) = rt.block_on(async {
        // Without a warmup the window opens before the first request (so that, counting
        // requests, none is sent unmeasured).
        if warmup <= 0.0 {
            let _ = sh.measure_start.set(Instant::now());
        }
        let workers: Vec<_> = (0..concurrency)
            .map(|_| tokio::spawn(worker(sh.clone())))
            .collect();
        if warmup > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
            let _ = sh.measure_start.set(Instant::now());
        }
        let start = *sh.measure_start.get_or_init(Instant::now);
        if let Some(d) = duration {
            let deadline = start + Duration::from_secs_f64(d);
            let _ = sh.deadline.set(deadline);
            // Wake early if the bodies run out.
            while Instant::now() < deadline && !sh.stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sh.stop.store(true, Ordering::Relaxed);
        }
        let mut stats = Vec::new();
        for w in workers {
            stats.push(w.await.unwrap_or_default());
        }
        (stats, start)
    });
    let mut all = Stats::default();
    for s in stats {
        all.latency_us.extend(s.latency_us);
        all.ok += s.ok;
        all.errors += s.errors;
        for (k, n) in s.error_kinds {
            *all.error_kinds.entry(k).or_default() += n;
        }
        all.last_done = all.last_done.max(s.last_done);
        all.responses.extend(s.responses);
    }
    let ran_out = sh.bodies_ran_out.load(Ordering::Relaxed);
    let deadline = sh.deadline.get().copied();
    let end = match (deadline, all.last_done) {
        // The full window, unless the bodies ran out before it closed.
        (Some(d), Some(last)) if ran_out => last.min(d),
        (Some(d), _) => d,
        (None, Some(last)) => last,
        (None, None) => start,
    };
    (all, end.duration_since(start).as_secs_f64().max(1e-9))
}

/// Prints a run's figures and its RESULT line.
fn report(label: &str, sh: &Shared, mut all: Stats, secs: f64) {
    let body_count = sh.bodies.len();
    let ran_out = sh.bodies_ran_out.load(Ordering::Relaxed);
    all.latency_us.sort_unstable();
    let rps = all.ok as f64 / secs;
    let (p50, p99) = (
        percentile_ms(&all.latency_us, 0.50),
        percentile_ms(&all.latency_us, 0.99),
    );
    let max = percentile_ms(&all.latency_us, 1.0);
    println!(
        "   {} ok, {} errors in {secs:.2} s: {rps:.1} req/s; latency p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        all.ok, all.errors
    );
    if body_count > 0 {
        let used = sh.next_body.load(Ordering::Relaxed).min(body_count);
        println!(
            "   bodies: {used} of {body_count} used{}",
            if ran_out {
                " (ran out: the run ended early)"
            } else if sh.next_body.load(Ordering::Relaxed) > body_count {
                " (cycled: some were sent twice)"
            } else {
                ""
            }
        );
    }
    for (kind, n) in all.error_kinds.iter().take(8) {
        println!("   error ×{n}: {kind}");
    }
    println!(
        "RESULT label={label} rps={rps:.1} p50_ms={p50:.2} p99_ms={p99:.2} max_ms={max:.2} ok={} errors={} secs={secs:.2}",
        all.ok, all.errors
    );
}
