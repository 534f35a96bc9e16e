//! Role requirement profiles (SPEC §7, seed 002 "PKI certificate requirements for
//! Configuration Manager"): what each Configuration Manager role demands of its certificate,
//! checked on certificate files (`fleetpki check`), on the certificate the CA is about to sign,
//! and statically on templates bound to a profile.
//!
//! Every rule quotes the seed; every finding says what the certificate has and what to do.
//! Rules that need facts a certificate does not carry (the site system's FQDNs, whether its
//! key is exportable) say so as [`Status::Unverified`] and name the option that supplies them.

mod catalog;
mod check;
mod error;
mod facts;
mod input;
mod rules;
mod template;

pub use catalog::{profile, profiles};
pub use check::{Context, Finding, Report, check};
pub use error::ProfileError;
pub use facts::CertFacts;
pub use input::{Input, InputFormat, KeyDer, read_input};
pub use rules::{Check, Fqdn, Profile, Rule, Severity, Status};
pub use template::check_template;
