//! Challenge validation: http-01 (RFC 8555 §8.3) on the configured port, with names resolved
//! through the role's `resolve` map before the system resolver.

use crate::config::AcmeConfig;
use axum::body::Bytes;
use fleetpki_acme::{Problem, ProblemType};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;

/// A validation gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The key authorization is ~90 bytes; a page longer than this is not one.
const MAX_BODY: usize = 4096;

/// Where `name` is reached: the `resolve` map (exact name, then the longest `*.suffix`), else
/// the system resolver.
pub(crate) async fn resolve(
    cfg: &AcmeConfig,
    name: &str,
    port: u16,
) -> Result<SocketAddr, Problem> {
    if let Some(ip) = cfg.resolve.get(name) {
        return Ok(SocketAddr::new(*ip, port));
    }
    let wildcard = cfg
        .resolve
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix("*.")
                .is_some_and(|s| name.ends_with(&format!(".{s}")))
        })
        .max_by_key(|(k, _)| k.len());
    if let Some((_, ip)) = wildcard {
        return Ok(SocketAddr::new(*ip, port));
    }
    let found = tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((name, port)))
        .await
        .map_err(|_| Problem::new(ProblemType::Dns, format!("{name}: DNS lookup timed out")))?
        .map_err(|e| Problem::new(ProblemType::Dns, format!("{name}: DNS lookup failed: {e}")))?
        .next();
    found.ok_or_else(|| Problem::new(ProblemType::Dns, format!("{name}: no address")))
}

/// Fetches `http://NAME:PORT/.well-known/acme-challenge/TOKEN` and compares the body with the
/// key authorization. Redirects are not followed.
pub(crate) async fn http01(
    cfg: &AcmeConfig,
    name: &str,
    token: &str,
    key_authorization: &str,
) -> Result<(), Problem> {
    let addr = resolve(cfg, name, cfg.http01_port).await?;
    let fetch = async {
        let conn_err = |e: &dyn std::fmt::Display| {
            Problem::new(
                ProblemType::Connection,
                format!("http-01: cannot fetch from {name} ({addr}): {e}"),
            )
        };
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| conn_err(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| conn_err(&e))?;
        tokio::spawn(conn);
        let host = if cfg.http01_port == 80 {
            name.to_string()
        } else {
            format!("{name}:{}", cfg.http01_port)
        };
        let req = hyper::Request::get(format!("/.well-known/acme-challenge/{token}"))
            .header(hyper::header::HOST, host)
            .header(hyper::header::USER_AGENT, "fleetpki-acme-validation")
            .body(Empty::<Bytes>::new())
            .map_err(|e| conn_err(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| conn_err(&e))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| conn_err(&e))?
            .to_bytes();
        Ok::<_, Problem>((status, body))
    };
    let (status, body) = tokio::time::timeout(TIMEOUT, fetch).await.map_err(|_| {
        Problem::new(
            ProblemType::Connection,
            format!("http-01: {name} ({addr}) did not answer within {TIMEOUT:?}"),
        )
    })??;
    if status != hyper::StatusCode::OK {
        return Err(Problem::new(
            ProblemType::IncorrectResponse,
            format!("http-01: {name} ({addr}) answered {status}, not 200"),
        ));
    }
    // RFC 8555 §8.3: the body may end with whitespace.
    let got = String::from_utf8_lossy(&body);
    if got.trim_end() != key_authorization {
        return Err(Problem::new(
            ProblemType::IncorrectResponse,
            format!("http-01: {name} ({addr}) answered a body that is not the key authorization"),
        ));
    }
    Ok(())
}
