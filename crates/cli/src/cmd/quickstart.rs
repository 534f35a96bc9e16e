//! `fleetpki quickstart`: the README's first command. A demo site in a fresh directory, a demo
//! computer in the directory, a Workstation Authentication certificate for a key generated on
//! the spot, validated against the chain, and a short account of what happened.

use super::actor;
use crate::output;
use anyhow::{Context, Result};
use clap::Args;
use fleetpki_agent::engine::Agent;
use fleetpki_agent::install::{InstallOptions, SigningPin, install};
use fleetpki_ca::issuance::Submitted;
use fleetpki_ca::keys::write_private;
use fleetpki_ca::verify::Usage;
use fleetpki_ca::{CaSource, InitOptions, Site};
use fleetpki_model::directory::{Principal, PrincipalKind};
use fleetpki_model::fmt_time;
use fleetpki_server::{Role, ServeConfig};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{csr, name, pem};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct QuickstartArgs {
    /// Where to create the demo site (must not exist, or be empty). Default: a new directory
    /// under the system's temporary directory.
    #[arg(long = "demo-dir")]
    demo_dir: Option<PathBuf>,
    /// Stop after enrolling instead of serving the site's roles until interrupted.
    #[arg(long)]
    no_serve: bool,
}

pub async fn run(a: QuickstartArgs) -> Result<()> {
    let dir = match a.demo_dir {
        Some(d) => {
            if d.exists()
                && std::fs::read_dir(&d)
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(true)
            {
                anyhow::bail!(
                    "--demo-dir: {} is not empty; quickstart needs a fresh directory",
                    d.display()
                );
            }
            d
        }
        None => {
            let stamp = fleetpki_model::now();
            std::env::temp_dir().join(format!(
                "fleetpki-quickstart-{stamp}-{}",
                std::process::id()
            ))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let who = actor();

    println!(
        "1. Creating site PS1 in {} (two-tier CA, ECDSA P-256, SQLite, keys encrypted at rest)",
        dir.display()
    );
    let opts = InitOptions {
        site_code: "PS1".into(),
        name: Some("Quickstart demo site".into()),
        // A free loopback port for the CRL/OCSP base URL that certificates will carry.
        base_url: Some(format!("http://localhost:{}", free_port()?)),
        database: None,
        passphrase: None,
        ca: CaSource::Generate {
            key_type: KeyType::EcdsaP256,
            two_tier: true,
        },
    };
    let site = Site::init(&dir, opts, &who).await?;
    super::init::print_site(&site);

    println!("\n2. Directory: group `Workstations`, computer PC0001 (pc0001.fleet.test) in it");
    site.directory_add_group("Workstations", &who).await?;
    let pc = Principal {
        name: "PC0001".into(),
        kind: PrincipalKind::Computer,
        dns: Some("pc0001.fleet.test".into()),
        email: None,
        upn: None,
        disabled: false,
    };
    site.directory_add(pc, &["Workstations".to_string()], &who)
        .await?;

    println!(
        "\n3. Template `Workstation Authentication`: publish, grant Workstations Read + Enroll + Autoenroll"
    );
    site.template_grant("Workstation", "Workstations", true, true, true, &who)
        .await?;
    site.template_publish("Workstation", true, &who).await?;

    println!("\n4. PC0001 generates an ECDSA P-256 key and a PKCS#10 request, and submits it");
    let key = PrivateKey::generate(KeyType::EcdsaP256)?;
    let request = csr::build(&key, &name::build(&[("CN", "PC0001")])?, &[])?;
    let cert = match site.submit("Workstation", "PC0001", &request, &who).await? {
        Submitted::Issued { certificate, .. } => certificate,
        Submitted::Pending { request_id } => {
            anyhow::bail!("request {request_id} unexpectedly needs approval")
        }
    };
    let client_dir = dir.join("client-pc0001");
    write_private(
        &client_dir.join("pc0001.key.pem"),
        key.to_pkcs8_pem().as_bytes(),
    )?;
    std::fs::write(
        client_dir.join("pc0001.pem"),
        pem::encode("CERTIFICATE", &cert.der),
    )?;
    std::fs::write(client_dir.join("chain.pem"), site.chain_pem())?;
    std::fs::write(client_dir.join("root.pem"), site.root.pem())?;
    let untrusted: String = site
        .chain()
        .iter()
        .filter(|c| c.der != site.root.der)
        .map(|c| c.pem())
        .collect();
    std::fs::write(client_dir.join("intermediates.pem"), untrusted)?;

    println!(
        "\n5. Validating the certificate against the site's chain for Client Authentication (rustls-webpki)"
    );
    site.validate_path(&cert.der, Usage::ClientAuth, fleetpki_model::now())?;

    println!("\nWhat happened:");
    output::fields(&[
        ("issued", format!("serial {}", cert.serial)),
        ("subject", cert.subject.clone()),
        ("SAN", cert.sans.join(", ")),
        ("why these names", "the template builds them from the directory: CN and SAN DNS = the computer's FQDN (the CSR's CN is ignored)".into()),
        ("key", format!("{} (the template's keyEncipherment is dropped: it does not apply to EC keys)", cert.key)),
        ("template", format!("{} v{}", cert.template, cert.template_version)),
        ("valid", format!("{} → {}", fmt_time(cert.not_before), fmt_time(cert.not_after))),
        ("chain", "PC0001 → fleetpki PS1 Issuing CA → fleetpki PS1 Root CA: valid for Client Authentication".into()),
        ("files", client_dir.display().to_string()),
    ]);
    println!(
        "\nCheck it yourself:\n  openssl verify -CAfile {0}/root.pem -untrusted {0}/intermediates.pem {0}/pc0001.pem",
        client_dir.display()
    );
    println!(
        "  fleetpki --dir {} cert list\n  fleetpki --dir {} audit verify",
        dir.display(),
        dir.display()
    );
    if a.no_serve {
        return Ok(());
    }
    serve(site, &client_dir).await
}

/// Step 6: the site's roles on loopback, with commands to talk to them as PC0001 would.
async fn serve(site: Site, client_dir: &std::path::Path) -> Result<()> {
    println!(
        "\n6. Site roles on loopback (site-issued TLS certificate, CRLs published by site maintenance):"
    );
    let config = ServeConfig::defaults(&site.config.base_url)?;
    let site = std::sync::Arc::new(site);
    let mut running = fleetpki_server::start(site.clone(), &config).await?;
    for (role, url) in &running.roles {
        println!("  {:<21} {url}", role.name());
    }
    let host = |role: Role| {
        running
            .url(role)
            .map(|u| u.replace("127.0.0.1", "localhost"))
            .unwrap_or_default()
    };
    let d = client_dir.display();
    println!(
        "\nPC0001 checks in at the management point with its certificate (mutual TLS) and gets its signed policy:"
    );
    println!(
        "  curl -s --cacert {d}/root.pem --cert {d}/pc0001.pem --key {d}/pc0001.key.pem {}/mp/policy",
        host(Role::ManagementPoint)
    );
    println!("Without a client certificate the handshake is refused:");
    println!(
        "  curl -s --cacert {d}/root.pem {}/mp/policy",
        host(Role::ManagementPoint)
    );
    println!("The CRL the certificate points to, and the API's description:");
    println!("  curl -so issuing.crl {}/crl/issuing.crl", host(Role::Crl));
    println!(
        "  curl -s --cacert {d}/root.pem {}/openapi.json",
        host(Role::Api)
    );
    demo_agent(
        &site,
        &host(Role::ManagementPoint),
        &host(Role::FallbackStatusPoint),
        client_dir,
    )
    .await?;
    println!("\nServing until Ctrl-C.");
    use std::io::Write;
    std::io::stdout().flush().context("stdout")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        failed = running.wait() => {
            if let Some(Err(e)) = failed {
                anyhow::bail!("a listener stopped: {e}");
            }
        }
    }
    running.shutdown().await;
    Ok(())
}

pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).context("cannot find a free port")?;
    Ok(l.local_addr().context("cannot find a free port")?.port())
}

/// Step 7: the agent on PC0001, the whole loop of the seeds: install with pins, registration,
/// signed policy, autoenrollment, and why it presents the certificate it does.
async fn demo_agent(site: &Site, mp: &str, fsp: &str, client_dir: &Path) -> Result<()> {
    let dir = client_dir
        .parent()
        .unwrap_or(client_dir)
        .join("agent-pc0001");
    println!(
        "\n7. The fleetpki agent on PC0001 ({}): installed with the site root and the site signing certificate pinned",
        dir.display()
    );
    install(
        InstallOptions {
            dir: dir.clone(),
            site: mp.to_string(),
            name: "PC0001".into(),
            fqdn: Some("pc0001.fleet.test".into()),
            root: Some(site.root.der.clone()),
            signing: SigningPin::Certificate(site.signing.der.clone()),
            allow_tofu: false,
            status_url: Some(format!("{fsp}/status")),
        },
        fleetpki_model::now(),
    )
    .await?;
    let agent = Agent::open_exclusive(&dir)?;
    let show = |r: &fleetpki_agent::engine::CycleReport| {
        for d in &r.decisions {
            println!("  {}", d.log_line());
        }
    };
    println!(
        "   First cycle: registers its self-signed identity (approved automatically: registration = \"auto\"), verifies the signed policy, autoenrolls"
    );
    show(&agent.cycle(fleetpki_model::now()).await?);
    println!("   Second cycle: nothing due; it says when renewal will be");
    show(&agent.cycle(fleetpki_model::now()).await?);
    let (selection, _) = agent.select(fleetpki_model::now())?;
    println!(
        "\n   Which certificate PC0001 now presents to the management point, and why (agent select --explain):"
    );
    for line in selection.explain().lines() {
        println!("   {line}");
    }
    println!(
        "\n   Its maintenance log: {}\n   Try: fleetpki --dir {} agent status",
        dir.join(fleetpki_agent::engine::LOG_FILE).display(),
        dir.display()
    );
    Ok(())
}
