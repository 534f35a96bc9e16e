//! fleetpki's X.509 layer: keys, CSRs, certificates, CRLs, names, PEM and serial numbers, built
//! on the RustCrypto `x509-cert`/`der` types with every cryptographic operation in aws-lc-rs.
//!
//! Policy (which key sizes a template allows, which names a requester may have) lives in the CA
//! crate; this crate enforces only what no template may override: SHA-2 signatures, verified
//! requests, and RFC 5280 encodings.

mod alg;
pub mod cert;
pub mod crl;
pub mod csr;
mod error;
pub mod est;
pub mod key;
pub mod name;
pub mod ocsp;
pub mod pem;
pub mod pfx;
pub mod scep;
pub mod serial;

pub use error::X509Error;
