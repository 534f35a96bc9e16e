//! TLS for the HTTPS roles (management point, API): server certificate, client certificate
//! verification with hot-swapped CRLs, and the accept loop.

pub(crate) mod accept;
pub(crate) mod identity;
pub(crate) mod verifier;

pub use accept::{ClientCert, Peer};
pub use identity::IdentityError;
pub use verifier::TrustError;

use rustls::crypto::CryptoProvider;
use std::sync::Arc;

/// aws-lc-rs, named explicitly: a second provider in the build would make the process default
/// ambiguous (STACK.md).
///
/// The TLS 1.3 suites are ordered AES-128-GCM first: its key schedule hashes with SHA-256,
/// which current CPUs accelerate, where AES-256-GCM's SHA-384 runs in software and cost about
/// 7 % of a management-point handshake's CPU. Both are AEADs with 128-bit or better security
/// (what TLS 1.3 and NIST SP 800-52r2 accept); the server's order decides (see
/// [`server_config`]). Nothing is removed, so every client that connected before still does.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        _ => 2,
    });
    Arc::new(p)
}

/// A server config for one HTTPS listener: TLS 1.2 and 1.3, h2 and http/1.1, no session
/// resumption.
pub(crate) fn server_config(
    provider: Arc<CryptoProvider>,
    verifier: Arc<verifier::ClientVerifier>,
    cert: Arc<identity::ServerCert>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's suite order (see [`provider`]), not the client's.
    config.ignore_client_order = true;
    // Every connection is a full handshake. A resumed session skips client certificate
    // verification (rustls restores the chain stored with the session), so a certificate
    // revoked since, or a CRL published since, would not be checked. Agents connect once per
    // check-in, where a cache of a few hundred sessions saves nothing; and issuing the two
    // tickets rustls sends by default cost every full handshake a session write and two
    // records for nothing.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

#[cfg(test)]
mod tests {
    #[test]
    fn aes_128_gcm_leads_and_no_suite_is_dropped() {
        let ours: Vec<_> = super::provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(ours[0], rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        let mut default: Vec<_> = rustls::crypto::aws_lc_rs::default_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        let mut sorted = ours.clone();
        default.sort_by_key(|s| u16::from(*s));
        sorted.sort_by_key(|s| u16::from(*s));
        assert_eq!(sorted, default);
    }
}
