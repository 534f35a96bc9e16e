//! fleetpki agent: what runs on every managed machine (SPEC §5). It keeps its certificates in
//! an on-disk store ([`store`]), trusts the site through pins set at install ([`trust`]),
//! decides when a certificate is due ([`renewal`]), spreads its work over a random window
//! ([`schedule`]), selects the client certificate it presents and explains why ([`select`]),
//! and moves certificates in and out as PKCS#12 ([`pkcs12`]).

pub mod client;
pub mod config;
pub mod engine;
pub mod files;
pub mod identity;
pub mod install;
pub mod pkcs12;
pub mod renewal;
pub mod schedule;
pub mod select;
pub mod store;
pub mod trust;
