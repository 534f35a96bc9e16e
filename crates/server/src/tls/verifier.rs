//! Client certificate verification for the HTTPS roles: rustls-webpki path validation against
//! the site root with the site's CRLs (swapped in when a new CRL is published), plus the checks
//! webpki leaves to the caller: an explicit Client Authentication EKU, and in enhanced HTTP a
//! self-signed identity certificate that registration will vouch for.

use arc_swap::ArcSwap;
use fleetpki_x509::cert;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    SignatureScheme,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const EKU_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

/// What the site trusts for client certificates; shared by every HTTPS listener.
pub(crate) struct ClientTrust {
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    /// The site's issuing CA: supplied as the intermediate when a client sends its leaf alone.
    issuing: Option<CertificateDer<'static>>,
    hints: Vec<DistinguishedName>,
    /// Optional-auth and mandatory-auth webpki verifiers, rebuilt together on a new CRL.
    current: ArcSwap<Verifiers>,
    /// Numbers the generations of `current`, so that a connection can tell whether its
    /// handshake was checked against the CRLs in force now.
    generations: AtomicU64,
    /// Accept self-signed identity certificates (enhanced HTTP registration).
    self_signed_identities: bool,
}

struct Verifiers {
    /// Which generation these are (see [`ClientTrust::generation`]).
    number: u64,
    optional: Arc<dyn ClientCertVerifier>,
    mandatory: Arc<dyn ClientCertVerifier>,
    /// Chains these verifiers accepted: built with them, so a new CRL starts it empty.
    verified: VerifiedChains,
}

/// Chains (leaf plus the intermediates it was checked with, by SHA-256) that passed path
/// validation against this generation's roots and CRLs, with the time window in which every
/// certificate of the chain is valid. A client that reconnects then costs no signature
/// verification of its chain or of the CRLs; its CertificateVerify is still checked by rustls
/// on every handshake, so possession of the key is proven each time. Exact, not time-bounded:
/// the outcome of path validation depends only on the chain, the roots and the CRLs (fixed for
/// the generation) and on the time (checked against the stored window).
#[derive(Default)]
struct VerifiedChains {
    by_digest: Mutex<HashMap<[u8; 32], Window>>,
}

/// Seconds since the epoch, inclusive at both ends as webpki treats validity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    not_before: i64,
    not_after: i64,
}

/// Most chains remembered before the cache starts over (bounded memory for any fleet size).
const VERIFIED_MAX: usize = 100_000;

impl VerifiedChains {
    fn contains(&self, digest: &[u8; 32], now: i64) -> bool {
        self.by_digest
            .lock()
            .ok()
            .and_then(|m| m.get(digest).copied())
            .is_some_and(|w| w.not_before <= now && now <= w.not_after)
    }

    fn remember(&self, digest: [u8; 32], window: Window) {
        // A poisoned lock only loses the cache; verification itself never depends on it.
        if let Ok(mut m) = self.by_digest.lock() {
            if m.len() >= VERIFIED_MAX {
                m.clear();
            }
            m.insert(digest, window);
        }
    }
}

/// SHA-256 over each certificate's length and bytes, leaf first.
fn chain_digest(end_entity: &[u8], intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for der in std::iter::once(end_entity).chain(intermediates.iter().map(|c| c.as_ref())) {
        ctx.update(&(der.len() as u64).to_be_bytes());
        ctx.update(der);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The span in which every certificate of the chain is valid; `None` if one cannot be read
/// (the chain then simply is not remembered).
fn chain_window(end_entity: &[u8], intermediates: &[CertificateDer<'_>]) -> Option<Window> {
    let mut w = Window {
        not_before: i64::MIN,
        not_after: i64::MAX,
    };
    for der in std::iter::once(end_entity).chain(intermediates.iter().map(|c| c.as_ref())) {
        let info = cert::info(&cert::parse("certificate", der).ok()?).ok()?;
        w.not_before = w.not_before.max(info.not_before);
        w.not_after = w.not_after.min(info.not_after);
    }
    Some(w)
}

/// Why the verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("trust: the site root cannot be a trust anchor: {0}")]
    Root(Error),
    #[error("crl: a CRL of the site cannot be used: {0}")]
    Verifier(String),
}

impl ClientTrust {
    /// `root` and `issuing` are DER; `crls` the latest full CRL of every site CA (empty to skip
    /// revocation checks). A chain whose CA has no CRL yet counts as not revoked only when
    /// `crls` covers no CA at all; otherwise unknown status refuses the certificate.
    pub fn new(
        provider: Arc<CryptoProvider>,
        root: &[u8],
        issuing: Option<&[u8]>,
        crls: Vec<Vec<u8>>,
        self_signed_identities: bool,
    ) -> Result<ClientTrust, TrustError> {
        let mut store = RootCertStore::empty();
        store
            .add(CertificateDer::from(root.to_vec()))
            .map_err(TrustError::Root)?;
        let hints = store.subjects();
        let roots = Arc::new(store);
        let current = ArcSwap::from_pointee(build(&provider, &roots, crls, 0)?);
        Ok(ClientTrust {
            provider,
            roots,
            issuing: issuing.map(|d| CertificateDer::from(d.to_vec())),
            hints,
            current,
            generations: AtomicU64::new(0),
            self_signed_identities,
        })
    }

    /// Replaces the CRLs; handshakes from now on use them, those in flight finish with the old,
    /// and connections opened before are checked again at their next request
    /// ([`ClientTrust::recheck`]).
    pub fn reload(&self, crls: Vec<Vec<u8>>) -> Result<(), TrustError> {
        let number = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        let v = build(&self.provider, &self.roots, crls, number)?;
        self.current.store(Arc::new(v));
        Ok(())
    }

    /// The generation of CRLs in force now. Read before a handshake starts, it is never newer
    /// than the one the handshake is checked against.
    pub fn generation(&self) -> u64 {
        self.current.load().number
    }

    /// Whether a certificate accepted by an earlier handshake of a connection still passes:
    /// checked again (path, CRLs, validity, EKU) when a CRL was loaded since `generation` or
    /// when the time is outside the window the handshake saw. A long-lived connection (HTTP
    /// keep-alive, HTTP/2) thus stops working once its certificate is revoked and the CRL
    /// published, like a new one would. Self-signed registration identities are not on any
    /// CRL; their registration status decides.
    pub fn recheck(
        &self,
        end_entity: &[u8],
        intermediates: &[Vec<u8>],
        generation: u64,
        window: Option<(i64, i64)>,
        now: UnixTime,
    ) -> Result<(), Error> {
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let inside = window.is_some_and(|(from, to)| from <= secs && secs <= to);
        if generation == self.generation() && inside {
            return Ok(());
        }
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        self.verify(true, &CertificateDer::from(end_entity), &intermediates, now)
            .map(|_| ())
    }

    /// Path validation with the current generation (see [`ClientVerifier`]).
    fn verify(
        &self,
        mandatory: bool,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let generation = self.current.load();
        let inner = if mandatory {
            &generation.mandatory
        } else {
            &generation.optional
        };
        // A client that sends its certificate alone still chains through the site's issuing CA.
        let supplied;
        let intermediates = match (&self.issuing, intermediates.is_empty()) {
            (Some(issuing), true) => {
                supplied = [issuing.clone()];
                &supplied[..]
            }
            _ => intermediates,
        };
        let digest = chain_digest(end_entity, intermediates);
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if generation.verified.contains(&digest, secs) {
            return Ok(ClientCertVerified::assertion());
        }
        match inner.verify_client_cert(end_entity, intermediates, now) {
            Ok(v) => {
                require_client_auth_eku(end_entity)?;
                if let Some(window) = chain_window(end_entity, intermediates) {
                    generation.verified.remember(digest, window);
                }
                Ok(v)
            }
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
                if self.self_signed_identities && is_self_signed_identity(end_entity) =>
            {
                check_validity(end_entity, now)?;
                require_client_auth_eku(end_entity)?;
                Ok(ClientCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    /// The rustls verifier for a listener.
    pub fn verifier(self: &Arc<Self>, mandatory: bool) -> Arc<ClientVerifier> {
        Arc::new(ClientVerifier {
            trust: self.clone(),
            mandatory,
        })
    }
}

fn build(
    provider: &Arc<CryptoProvider>,
    roots: &Arc<RootCertStore>,
    crls: Vec<Vec<u8>>,
    number: u64,
) -> Result<Verifiers, TrustError> {
    let make = |mandatory: bool| {
        let mut b = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .with_crls(
                crls.iter()
                    .map(|c| CertificateRevocationListDer::from(c.clone())),
            );
        if crls.is_empty() {
            b = b.allow_unknown_revocation_status();
        }
        if !mandatory {
            b = b.allow_unauthenticated();
        }
        b.build().map_err(|e| TrustError::Verifier(e.to_string()))
    };
    Ok(Verifiers {
        number,
        optional: make(false)?,
        mandatory: make(true)?,
        verified: VerifiedChains::default(),
    })
}

/// The rustls `ClientCertVerifier` of one listener.
#[derive(Debug)]
pub(crate) struct ClientVerifier {
    trust: Arc<ClientTrust>,
    mandatory: bool,
}

impl std::fmt::Debug for ClientTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTrust")
            .field("self_signed_identities", &self.self_signed_identities)
            .finish_non_exhaustive()
    }
}

/// The certificate is self-signed (its own issuer, signature verifying with its own key) and
/// not a CA: a client's registration identity.
pub(crate) fn is_self_signed_identity(der: &[u8]) -> bool {
    let Ok(c) = cert::parse("client certificate", der) else {
        return false;
    };
    let Ok(info) = cert::info(&c) else {
        return false;
    };
    self_signed_identity(&c, &info)
}

/// [`is_self_signed_identity`] of a certificate already parsed.
pub(crate) fn self_signed_identity(c: &x509_cert::Certificate, info: &cert::CertInfo) -> bool {
    !info.is_ca && info.subject == info.issuer && cert::verify_signed_by(c, c).is_ok()
}

fn require_client_auth_eku(der: &[u8]) -> Result<(), Error> {
    let c = cert::parse("client certificate", der)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let info =
        cert::info(&c).map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    if info.ekus.iter().any(|e| e == EKU_CLIENT_AUTH) {
        Ok(())
    } else {
        // webpki accepts a certificate with no EKU at all; the site requires it explicitly.
        Err(Error::InvalidCertificate(CertificateError::InvalidPurpose))
    }
}

fn check_validity(der: &[u8], now: UnixTime) -> Result<(), Error> {
    let c = cert::parse("client certificate", der)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let info =
        cert::info(&c).map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < info.not_before {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > info.not_after {
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.trust.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.trust
            .verify(self.mandatory, end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.trust.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.trust.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.trust
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_chain_counts_only_inside_its_window() {
        let chains = VerifiedChains::default();
        let d = chain_digest(b"leaf", &[]);
        assert!(!chains.contains(&d, 100));
        chains.remember(
            d,
            Window {
                not_before: 50,
                not_after: 150,
            },
        );
        assert!(chains.contains(&d, 50));
        assert!(chains.contains(&d, 150));
        assert!(!chains.contains(&d, 49), "not yet valid");
        assert!(!chains.contains(&d, 151), "expired");
    }

    #[test]
    fn the_digest_covers_every_certificate_and_its_boundaries() {
        let leaf = chain_digest(b"leaf", &[]);
        let with_ca = chain_digest(b"leaf", &[CertificateDer::from(b"ca".to_vec())]);
        let other_ca = chain_digest(b"leaf", &[CertificateDer::from(b"cb".to_vec())]);
        // The same bytes split differently between leaf and intermediate.
        let shifted = chain_digest(b"lea", &[CertificateDer::from(b"fca".to_vec())]);
        let all = [leaf, with_ca, other_ca, shifted];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn an_unreadable_chain_has_no_window() {
        assert_eq!(chain_window(b"not a certificate", &[]), None);
    }
}
