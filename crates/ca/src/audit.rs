//! Reading and verifying the audit log.

use crate::error::CaError;
use crate::site::Site;
use fleetpki_model::audit::{AuditEntry, ChainBreak, verify_chain};

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub entries: usize,
    pub result: Result<(), ChainBreak>,
}

impl Site {
    /// Entries after `after`, at most `limit`.
    pub async fn audit_list(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, CaError> {
        Ok(self.store.audit_entries(after, limit).await?)
    }

    /// Re-computes the whole chain and compares it with the recorded head.
    pub async fn audit_verify(&self) -> Result<AuditReport, CaError> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map(|e: &AuditEntry| e.seq).unwrap_or(0);
            let page = self.store.audit_entries(after, 10_000).await?;
            if page.is_empty() {
                break;
            }
            all.extend(page);
        }
        let head = self.store.audit_head().await?;
        let result = verify_chain(&all, head.as_ref().map(|(s, h)| (*s, h.as_str())));
        Ok(AuditReport {
            entries: all.len(),
            result,
        })
    }
}
