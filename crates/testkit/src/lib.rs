//! Test-only helpers that run the real third-party tools (pkilint, openssl) against
//! fleetpki's output and return structured results.
//!
//! Add it to a crate's `[dev-dependencies]` as `fleetpki-testkit.workspace = true`.
//!
//! Missing tools: `scripts/test.sh` installs every tool and exports
//! `FLEETPKI_REQUIRE_TOOLS=1`, and CI sets `CI`; in either case a missing tool panics.
//! Otherwise (a bare `cargo test` on a laptop) a test should skip by returning early:
//!
//! ```no_run
//! # fn cert_pem() -> String { String::new() }
//! if fleetpki_testkit::tool(fleetpki_testkit::LINT_PKIX_CERT).is_none() {
//!     return; // skip notice already printed
//! }
//! let findings = fleetpki_testkit::pkilint_cert(&cert_pem()).unwrap();
//! assert!(findings.is_empty(), "pkilint findings: {findings:#?}");
//! ```
//!
//! The runners (`pkilint_*`, `openssl*`) return an error, never a silent pass, when the
//! tool is absent and not required.

mod openssl;
mod pkilint;
#[cfg(test)]
mod testpki;
mod tools;

pub use openssl::{Output, openssl, openssl_verify};
pub use pkilint::{
    Finding, LINT_CRL, LINT_OCSP_RESPONSE, LINT_PKIX_CERT, LINT_PKIX_CHAIN, pkilint_cert,
    pkilint_chain, pkilint_crl, pkilint_ocsp,
};
pub use tools::{tool, tools_required};
