//! In-process issuance (CSR parsed and its signature verified, template rules applied,
//! certificate signed, nothing stored) against the raw ceiling 1/(1/sign + 1/verify) of
//! aws-lc-rs ECDSA P-256, both measured in this run.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use criterion::Criterion;
use fleetpki_ca::issuance::Issuance;
use fleetpki_ca::{Actor, CaSource, InitOptions, Site};
use fleetpki_model::directory::{Principal, PrincipalKind};
use fleetpki_model::template::Template;
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{csr, name};
use std::hint::black_box;
use std::time::Instant;

struct Fixture {
    _dir: tempfile::TempDir,
    site: Site,
    template: Template,
    principal: Principal,
    groups: Vec<String>,
    csr: Vec<u8>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let site = rt
        .block_on(Site::init(
            dir.path(),
            InitOptions {
                site_code: "BEN".into(),
                name: None,
                base_url: None,
                database: None,
                passphrase: None,
                ca: CaSource::Generate {
                    key_type: KeyType::EcdsaP256,
                    two_tier: true,
                },
            },
            &Actor::new("bench", "bench"),
        ))
        .expect("site");
    let mut template = Template::bases()
        .into_iter()
        .find(|t| t.name == "Workstation")
        .expect("Workstation");
    template.published = true;
    template.grant("Workstations", true, true, true);
    let principal = Principal {
        name: "PC1".into(),
        kind: PrincipalKind::Computer,
        dns: Some("pc1.fleet.test".into()),
        email: None,
        upn: None,
        disabled: false,
    };
    let key = PrivateKey::generate(KeyType::EcdsaP256).expect("key");
    let csr = csr::build(&key, &name::build(&[("CN", "PC1")]).expect("name"), &[]).expect("csr");
    site.issuer_key().expect("issuer key");
    Fixture {
        _dir: dir,
        site,
        template,
        principal,
        groups: vec!["Workstations".into()],
        csr,
    }
}

fn issue_once(f: &Fixture, urls: &fleetpki_x509::cert::IssuerUrls) -> usize {
    let job = Issuance {
        template: &f.template,
        principal: &f.principal,
        groups: &f.groups,
        issuer: f.site.issuer(),
        urls,
    };
    let parsed = csr::parse(&f.csr).expect("csr");
    let plan = job.check(&parsed).expect("policy");
    let signer = f.site.issuer_key().expect("key").signer(f.template.hash);
    job.sign(&parsed, plan, &signer, fleetpki_model::now(), None)
        .expect("sign")
        .der
        .len()
}

struct Raw {
    key: EcdsaKeyPair,
    msg: Vec<u8>,
    sig: Vec<u8>,
}

fn raw() -> Raw {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .expect("keygen");
    let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref())
        .expect("key");
    let msg = vec![0x5au8; 450]; // about the size of a TBSCertificate
    let sig = key.sign(&rng, &msg).expect("sign").as_ref().to_vec();
    Raw { key, msg, sig }
}

fn raw_sign(r: &Raw, rng: &SystemRandom) -> usize {
    r.key.sign(rng, &r.msg).expect("sign").as_ref().len()
}

fn raw_verify(r: &Raw) {
    UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        r.key.public_key().as_ref(),
    )
    .verify(&r.msg, &r.sig)
    .expect("verify");
}

/// Operations per second over `n` runs of `f`.
fn rate(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    f64::from(n) / t.elapsed().as_secs_f64()
}

fn main() {
    let f = fixture();
    let urls = f.site.urls_for(f.site.issuer().role);
    let r = raw();
    let rng = SystemRandom::new();

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("raw ECDSA P-256 sign (aws-lc-rs)", |b| {
        b.iter(|| black_box(raw_sign(&r, &rng)))
    });
    c.bench_function("raw ECDSA P-256 verify (aws-lc-rs)", |b| {
        b.iter(|| raw_verify(black_box(&r)))
    });
    c.bench_function("issuance in process (P-256 CSR → certificate)", |b| {
        b.iter(|| black_box(issue_once(&f, &urls)))
    });
    c.final_summary();

    // The ratio, from interleaved rounds so that machine noise hits both sides alike.
    let (mut sign, mut verify, mut issue) = (0.0, 0.0, 0.0);
    let rounds = 5;
    for _ in 0..rounds {
        sign += rate(4000, || {
            black_box(raw_sign(&r, &rng));
        });
        verify += rate(4000, || raw_verify(&r));
        issue += rate(2000, || {
            black_box(issue_once(&f, &urls));
        });
    }
    let (sign, verify, issue) = (
        sign / f64::from(rounds),
        verify / f64::from(rounds),
        issue / f64::from(rounds),
    );
    let ceiling = 1.0 / (1.0 / sign + 1.0 / verify);
    println!(
        "baseline: aws-lc-rs P-256 sign {sign:.0}/s, verify {verify:.0}/s → ceiling 1/(1/sign+1/verify) = {ceiling:.0}/s"
    );
    println!(
        "fleetpki in-process issuance: {issue:.0}/s = {:.1} % of the ceiling (target ≥ 80 %)",
        100.0 * issue / ceiling
    );
}
