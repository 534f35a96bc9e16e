//! Role profiles end to end: certificates built with fleetpki's issuer and with openssl,
//! checked against every profile; templates checked statically; files read in every format.

mod support;

mod input;
mod openssl;
mod table;
mod templates;
