//! ACME (RFC 8555) messages without I/O: the flattened JWS every request is (parsed, checked and
//! verified with aws-lc-rs), JWK thumbprints (RFC 7638), external account binding and key change
//! inner JWSs, and the problem types errors are answered with.

pub mod jws;
pub mod problem;

pub use jws::{Alg, Jwk, Jws, KeyRef, Protected};
pub use problem::{Problem, ProblemType};
