//! What the CA's integration tests share: a fresh P-256 site and directory entries.
#![allow(dead_code)] // each test binary uses its own part

use fleetpki_ca::{Actor, CaSource, InitOptions, Site};
use fleetpki_model::directory::{Principal, PrincipalKind};
use fleetpki_x509::key::KeyType;
use std::path::Path;

pub fn admin() -> Actor {
    Actor::new("admin", "test")
}

/// A new site in `dir` with a generated P-256 CA (one tier, or root and issuing CA).
pub async fn init_site(dir: &Path, site_code: &str, two_tier: bool) -> Site {
    let opts = InitOptions {
        site_code: site_code.into(),
        name: None,
        base_url: None,
        database: None,
        passphrase: None,
        ca: CaSource::Generate {
            key_type: KeyType::EcdsaP256,
            two_tier,
        },
    };
    Site::init(dir, opts, &admin()).await.expect("init")
}

/// An enabled computer principal named `name` with FQDN `dns`.
pub fn computer(name: &str, dns: &str) -> Principal {
    Principal {
        name: name.into(),
        kind: PrincipalKind::Computer,
        dns: Some(dns.into()),
        email: None,
        upn: None,
        disabled: false,
    }
}
