//! The audit log's entries and its hash chain: each entry commits to the one before it, so an
//! edited, inserted or deleted entry breaks verification.

use crate::UnixTime;
use serde::{Deserialize, Serialize};

/// Whether the action was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Denied,
    Failed,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }
    pub fn parse(t: &str) -> Option<Self> {
        match t {
            "success" => Some(Self::Success),
            "denied" => Some(Self::Denied),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// What happened, before the store places it in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: UnixTime,
    /// Who: an administrator, a principal, or `site` for automatic actions.
    pub actor: String,
    /// From where: `cli`, `api 127.0.0.1:5123`, …
    pub source: String,
    /// What: `template.set`, `request.submit`, `cert.issue`, `cert.revoke`, `crl.publish`, `key.use`, …
    pub action: String,
    /// On what: a template name, a serial, a request id.
    pub object: String,
    pub outcome: Outcome,
    /// Free text with the particulars (versions, reasons, the error).
    pub details: String,
}

/// An event as stored: numbered and chained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 over the entry's fields, each length-prefixed so no two field splits collide.
pub fn chain_hash(seq: i64, e: &AuditEvent, prev_hash: &str) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let seq_s = seq.to_string();
    let at_s = e.at.to_string();
    for part in [
        "fleetpki-audit-v1",
        &seq_s,
        &at_s,
        &e.actor,
        &e.source,
        &e.action,
        &e.object,
        e.outcome.name(),
        &e.details,
        prev_hash,
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    hex::encode(ctx.finish().as_ref())
}

/// Seals `event` as entry `seq` after `prev_hash`.
pub fn seal(seq: i64, event: AuditEvent, prev_hash: &str) -> AuditEntry {
    let hash = chain_hash(seq, &event, prev_hash);
    AuditEntry {
        seq,
        event,
        prev_hash: prev_hash.to_string(),
        hash,
    }
}

/// Why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {seq}: its hash does not match its contents (the entry was edited)")]
    Edited { seq: i64 },
    #[error(
        "entry {seq}: expected sequence number {expected} (an entry was deleted or inserted before it)"
    )]
    Gap { seq: i64, expected: i64 },
    #[error(
        "entry {seq}: it does not follow the entry before it (an entry was deleted, inserted or reordered)"
    )]
    Unlinked { seq: i64 },
    #[error(
        "the log ends at entry {last} but the recorded head is entry {head} (entries were deleted from the end)"
    )]
    Truncated { last: i64, head: i64 },
    #[error("the log's last entry does not match the recorded head hash")]
    HeadMismatch,
}

/// Verifies `entries` (in sequence order, starting at 1) against the recorded head `(seq, hash)`.
pub fn verify_chain(entries: &[AuditEntry], head: Option<(i64, &str)>) -> Result<(), ChainBreak> {
    let mut prev = GENESIS.to_string();
    for (i, e) in entries.iter().enumerate() {
        let expected = i as i64 + 1;
        if e.seq != expected {
            return Err(ChainBreak::Gap {
                seq: e.seq,
                expected,
            });
        }
        if e.prev_hash != prev {
            return Err(ChainBreak::Unlinked { seq: e.seq });
        }
        if chain_hash(e.seq, &e.event, &e.prev_hash) != e.hash {
            return Err(ChainBreak::Edited { seq: e.seq });
        }
        prev = e.hash.clone();
    }
    let last = entries.last().map(|e| e.seq).unwrap_or(0);
    match head {
        Some((seq, _)) if seq != last => Err(ChainBreak::Truncated { last, head: seq }),
        Some((_, h)) if h != prev && last != 0 => Err(ChainBreak::HeadMismatch),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: i64) -> AuditEvent {
        AuditEvent {
            at: n,
            actor: "admin".into(),
            source: "cli".into(),
            action: "cert.issue".into(),
            object: format!("obj{n}"),
            outcome: Outcome::Success,
            details: String::new(),
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 1..=n {
            let prev = out
                .last()
                .map(|e| e.hash.clone())
                .unwrap_or_else(|| GENESIS.into());
            out.push(seal(i, ev(i), &prev));
        }
        out
    }

    #[test]
    fn detects_edit_delete_truncate() {
        let c = chain(5);
        let head = (5, c[4].hash.as_str());
        verify_chain(&c, Some(head)).unwrap();

        let mut edited = c.clone();
        edited[2].event.details = "tampered".into();
        assert_eq!(
            verify_chain(&edited, Some(head)),
            Err(ChainBreak::Edited { seq: 3 })
        );

        let mut deleted = c.clone();
        deleted.remove(1);
        assert_eq!(
            verify_chain(&deleted, Some(head)),
            Err(ChainBreak::Gap {
                seq: 3,
                expected: 2
            })
        );

        assert_eq!(
            verify_chain(&c[..4], Some(head)),
            Err(ChainBreak::Truncated { last: 4, head: 5 })
        );
    }
}
