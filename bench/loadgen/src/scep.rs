//! `loadgen scep`: SCEP (RFC 8894) PKCSReq enrollments against any SCEP server, with
//! fleetpki-x509's client side building the pkiMessages (before timing) and reading every
//! CertRep back (after the run: RA signature, nonce echo, SUCCESS, a certificate for our key).

use super::{Error, Mode, Shared, execute, parse_url, report, tls_client};
use crate::parallel;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use fleetpki_model::template::HashAlg;
use fleetpki_x509::cert::San;
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::scep::{ContentCipher, MessageType, Status, client};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use x509_cert::Certificate;

#[derive(Clone, Copy, ValueEnum, Debug)]
pub enum Cipher {
    Aes128,
    Aes256,
    Des3,
}

#[derive(Args)]
pub struct ScepArgs {
    /// The SCEP endpoint, e.g. http://127.0.0.1:PORT/scep/NAME (`?operation=PKIOperation` is
    /// appended).
    url: String,
    /// The certificate to encrypt to (the RA's, or the CA's when it decrypts itself): PEM
    /// (the first CERTIFICATE) or DER.
    #[arg(long)]
    ra: PathBuf,
    /// The challengePassword every CSR carries.
    #[arg(long)]
    challenge: String,
    /// RSA-2048 client keys generated before the run; message i uses key i mod N (each
    /// message still has its own CSR, subject, transactionID and nonce).
    #[arg(long, default_value_t = 32)]
    keys: usize,
    /// Subjects are CN=LABEL-RUN-i.DOMAIN, with the same DNS subjectAltName.
    #[arg(long, default_value = "fleet.test")]
    domain: String,
    /// Concurrent connections (workers), keep-alive.
    #[arg(short = 'c', long, default_value_t = 16)]
    concurrency: usize,
    /// Measured enrollments.
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    /// Unmeasured enrollments first (each with its own message too).
    #[arg(long, default_value_t = 0)]
    warmup_requests: u64,
    #[arg(long, value_enum, default_value = "aes128")]
    cipher: Cipher,
    /// PEM roots to trust for an https:// URL.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Tokio worker threads (default: the number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Name printed on the RESULT line.
    #[arg(long, default_value = "scep")]
    label: String,
}

/// What checking a CertRep needs: which key the request was made with and its senderNonce.
struct Sent {
    key: usize,
    nonce: [u8; 16],
}

fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| "no randomness")?;
    Ok(b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn read_ra(path: &PathBuf) -> Result<Certificate, Error> {
    let bytes = std::fs::read(path)?;
    let der = if bytes.starts_with(b"-----") {
        fleetpki_x509::pem::decode_labels("ra", &bytes, &["CERTIFICATE"])?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{}: no CERTIFICATE", path.display()))?
            .1
    } else {
        bytes
    };
    Ok(fleetpki_x509::cert::parse("ra", &der)?)
}

/// The client's keys and the self-signed certificates that sign their pkiMessages.
fn make_keys(n: usize) -> Result<Vec<(PrivateKey, Certificate)>, Error> {
    parallel(n, |i| {
        let key = PrivateKey::generate(KeyType::Rsa2048).map_err(|e| e.to_string())?;
        let subject = fleetpki_x509::name::build(&[("CN", &format!("loadgen-scep-key-{i}"))])
            .map_err(|e| e.to_string())?;
        let cert = client::self_signed(&key, &subject).map_err(|e| e.to_string())?;
        Ok((key, cert))
    })
}

fn shared(
    a: &ScepArgs,
    bodies: Vec<Bytes>,
    limit: Option<u64>,
    keep_responses: bool,
) -> Result<Arc<Shared>, Error> {
    let url = format!("{}?operation=PKIOperation", a.url);
    let target = parse_url(&url, None)?;
    let tls = if target.https {
        Some(tls_client(a.cacert.as_ref(), None)?)
    } else {
        None
    };
    Ok(Arc::new(Shared {
        target,
        tls,
        mode: Mode::Keepalive,
        method: hyper::Method::POST,
        headers: vec![(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-pki-message"),
        )],
        bodies,
        cycle_bodies: false,
        next_body: AtomicUsize::new(0),
        bodies_ran_out: AtomicBool::new(false),
        claimed: AtomicU64::new(0),
        limit,
        measure_start: OnceLock::new(),
        deadline: OnceLock::new(),
        stop: AtomicBool::new(false),
        expect_status: Some(200),
        timeout: Duration::from_secs_f64(a.timeout),
        keep_responses,
    }))
}

/// Why a CertRep is not a SUCCESS carrying a certificate for `key`'s public key.
fn check(resp: &[u8], key: &PrivateKey, nonce: &[u8]) -> Result<(), String> {
    let (status, certs, _) = client::read_cert_rep(resp, key, nonce)?;
    match status {
        Status::Success(_) => {}
        Status::Pending => return Err("CertRep PENDING".into()),
        Status::Failure(info) => return Err(format!("CertRep FAILURE {}", info.name())),
    }
    let spki = key.public_key_der();
    let ours = certs.iter().any(|der| {
        fleetpki_x509::cert::parse("issued", der).is_ok_and(|c| {
            use x509_cert::der::Encode;
            c.tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .is_ok_and(|d| d == spki)
        })
    });
    if ours {
        Ok(())
    } else {
        Err(format!(
            "CertRep SUCCESS without a certificate for the request's key ({} certificates)",
            certs.len()
        ))
    }
}

pub fn run(a: ScepArgs) -> Result<(), Error> {
    if a.concurrency == 0 || a.keys == 0 || a.requests == 0 {
        return Err("--concurrency, --keys and --requests must be at least 1".into());
    }
    let ra = read_ra(&a.ra)?;
    let cipher = match a.cipher {
        Cipher::Aes128 => ContentCipher::Aes128Cbc,
        Cipher::Aes256 => ContentCipher::Aes256Cbc,
        Cipher::Des3 => ContentCipher::DesEde3Cbc,
    };
    let total = usize::try_from(a.warmup_requests + a.requests)?;

    // Not timed: keys, then one CSR and pkiMessage per request.
    let started = Instant::now();
    let keys = make_keys(a.keys)?;
    let run_id = hex(&random::<4>()?);
    let messages: Vec<(Bytes, Sent)> = parallel(total, |i| {
        let k = i % keys.len();
        let (key, signer) = &keys[k];
        let cn = format!("{}-{run_id}-{i}.{}", a.label, a.domain);
        let subject = fleetpki_x509::name::build(&[("CN", &cn)]).map_err(|e| e.to_string())?;
        let csr = fleetpki_x509::csr::create_with_challenge(
            &subject,
            &[San::Dns(cn.clone())],
            Some(&a.challenge),
            &key.signer(HashAlg::Sha256),
        )
        .map_err(|e| e.to_string())?;
        let nonce = random::<16>().map_err(|e| e.to_string())?;
        let tid = hex(&random::<16>().map_err(|e| e.to_string())?);
        let der = client::request(
            MessageType::PkcsReq,
            &tid,
            &nonce,
            &csr,
            signer,
            key,
            &ra,
            cipher,
        )
        .map_err(|e| e.to_string())?;
        Ok((Bytes::from(der), Sent { key: k, nonce }))
    })?;
    eprintln!(
        "loadgen scep: {} RSA-2048 keys, {total} pkiMessages ({}) in {:.1} s",
        keys.len(),
        cipher.name(),
        started.elapsed().as_secs_f64()
    );
    let warm = usize::try_from(a.warmup_requests)?;
    let (bodies, sent): (Vec<Bytes>, Vec<Sent>) = messages.into_iter().unzip();

    let (rt, threads) = crate::runtime(a.threads)?;
    println!(
        "== {}: SCEP PKCSReq POST {} c={} threads={threads} requests={} warmup_requests={warm}",
        a.label, a.url, a.concurrency, a.requests
    );
    if warm > 0 {
        let sh = shared(&a, bodies[..warm].to_vec(), None, false)?;
        let (st, _) = execute(&rt, &sh, a.concurrency, 0.0, None);
        if st.errors > 0 {
            let first = st.error_kinds.keys().next().cloned().unwrap_or_default();
            eprintln!(
                "loadgen scep: warmup: {} of {warm} failed ({first})",
                st.errors
            );
        }
    }
    let measured: Vec<Bytes> = bodies[warm..].to_vec();
    let sh = shared(&a, measured, Some(a.requests), true)?;
    let (mut all, secs) = execute(&rt, &sh, a.concurrency, 0.0, None);
    rt.shutdown_timeout(Duration::from_secs(1));

    // After the run: every answer must be a SUCCESS CertRep for the request's key.
    let responses = std::mem::take(&mut all.responses);
    let checked = parallel(responses.len(), |i| {
        let (index, us, resp) = &responses[i];
        let s = &sent[warm + index];
        Ok((*us, check(resp, &keys[s.key].0, &s.nonce)))
    })?;
    for (us, outcome) in checked {
        match outcome {
            Ok(()) => all.latency_us.push(us),
            Err(e) => {
                all.ok -= 1;
                all.errors += 1;
                *all.error_kinds.entry(e).or_default() += 1;
            }
        }
    }
    report(&a.label, &sh, all, secs);
    Ok(())
}
