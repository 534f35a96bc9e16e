//! fleetpki's certification authority: site setup and key custody, the issuance pipeline
//! (template, permission, key and name rules), approvals, revocation, CRLs, inventory and audit.
//!
//! Every operation takes an [`Actor`] and writes its audit events in the same transaction as
//! the change it records.

pub mod acme;
pub mod audit;
pub mod clients;
pub mod config;
pub mod context;
pub mod directory;
pub mod error;
pub mod inventory;
pub mod issuance;
pub mod keys;
mod profile;
pub mod responder;
pub mod revocation;
pub mod scep;
pub mod site;
pub mod site_system;
pub mod templates;
pub mod tokens;
pub mod verify;

pub use error::CaError;
pub use site::{CaSource, InitOptions, Site};

use fleetpki_model::audit::{AuditEvent, Outcome};

/// Who acts, and from where (`cli`, `api 10.0.0.5:51234`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub source: String,
}

impl Actor {
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            source: source.into(),
        }
    }
}

/// A CA key signed something: recorded beside the change it signed.
pub(crate) fn key_use_event(actor: &Actor, ca: &site::CaCert, what: String) -> AuditEvent {
    audit_event(
        actor,
        "key.use",
        &format!("{} key", ca.role.name()),
        Outcome::Success,
        format!("{} signed {what}", ca.info.subject),
    )
}

/// An audit event by `actor`, now.
pub fn audit_event(
    actor: &Actor,
    action: &str,
    object: &str,
    outcome: Outcome,
    details: impl Into<String>,
) -> AuditEvent {
    AuditEvent {
        at: fleetpki_model::now(),
        actor: actor.name.clone(),
        source: actor.source.clone(),
        action: action.to_string(),
        object: object.to_string(),
        outcome,
        details: details.into(),
    }
}
