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
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
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
