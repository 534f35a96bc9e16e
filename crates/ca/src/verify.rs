//! Path validation of certificates against the site's chain, by rustls-webpki (the same
//! validator the site's TLS roles use), so "verified" means what a relying party would check.

use crate::error::{CaError, refuse};
use crate::site::Site;
use fleetpki_model::UnixTime;
use rustls_pki_types::CertificateDer;
use std::time::Duration;

/// What the certificate must be good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    ClientAuth,
    ServerAuth,
}

impl Site {
    /// Builds and checks the path from `leaf_der` to the site's root at time `at`: signatures,
    /// validity, basic constraints, name constraints and the extended key usage.
    pub fn validate_path(
        &self,
        leaf_der: &[u8],
        usage: Usage,
        at: UnixTime,
    ) -> Result<(), CaError> {
        let root = CertificateDer::from(self.root.der.as_slice());
        let anchor = webpki::anchor_from_trusted_cert(&root)
            .map_err(|e| refuse("root", format!("unusable as a trust anchor: {e}")))?;
        let intermediates: Vec<CertificateDer<'_>> = self
            .chain()
            .iter()
            .filter(|c| c.der != self.root.der)
            .map(|c| CertificateDer::from(c.der.as_slice()))
            .collect();
        let leaf = CertificateDer::from(leaf_der);
        let ee = webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| refuse("certificate", format!("unparseable: {e}")))?;
        let time =
            rustls_pki_types::UnixTime::since_unix_epoch(Duration::from_secs(at.max(0) as u64));
        let ku = match usage {
            Usage::ClientAuth => webpki::KeyUsage::client_auth(),
            Usage::ServerAuth => webpki::KeyUsage::server_auth(),
        };
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &intermediates,
            time,
            ku,
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| {
            refuse(
                "certificate",
                format!("does not validate against the site's chain: {e:?}"),
            )
        })
    }
}
