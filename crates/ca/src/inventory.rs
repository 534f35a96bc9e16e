//! Certificate inventory: listing with filters and showing one certificate.

use crate::error::{CaError, not_found};
use crate::site::Site;
use fleetpki_model::record::{CertFilter, CertificateRecord};
use fleetpki_x509::serial;

impl Site {
    pub async fn certificates(
        &self,
        filter: &CertFilter,
    ) -> Result<Vec<CertificateRecord>, CaError> {
        Ok(self.store.certificates(filter).await?)
    }

    pub async fn certificate(&self, serial_text: &str) -> Result<CertificateRecord, CaError> {
        let serial = serial::to_hex(&serial::from_hex(serial_text)?);
        self.store.certificate(&serial).await?.ok_or_else(|| {
            not_found(
                "serial",
                format!("no certificate with serial {serial} was issued by this site"),
            )
        })
    }
}
