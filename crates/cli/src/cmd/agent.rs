//! `fleetpki agent`: the client side — install against a site, run certificate maintenance,
//! show status, list the store, explain client certificate selection, PKCS#12 in and out.

use super::{Ctx, read_input, write_output};
use crate::{ListOpts, output};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use fleetpki_agent::engine::{Agent, LOG_FILE, next_wake};
use fleetpki_agent::install::{InstallOptions, SigningPin, install};
use fleetpki_agent::store::{CertMeta, Source, StoreName};
use fleetpki_model::{fmt_time, now};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum AgentCmd {
    /// Install an agent in --dir: pin the site root and site signing certificate, make the
    /// self-signed identity it registers with.
    Install {
        /// The management point's URL (https://mp.example:8443).
        #[arg(long)]
        site: String,
        /// The site's root CA certificate (PEM or DER).
        #[arg(long)]
        root: Option<PathBuf>,
        /// The site signing certificate (`fleetpki site signing-cert --out FILE`).
        #[arg(long, conflicts_with = "site_signing_fingerprint")]
        site_signing_cert: Option<PathBuf>,
        /// Or its SHA-256 fingerprint: fetched from the management point and checked.
        #[arg(long)]
        site_signing_fingerprint: Option<String>,
        /// Allow trusting what the site presents for whatever was not given (logged loudly,
        /// pinned afterwards).
        #[arg(long)]
        allow_tofu: bool,
        /// The computer's name (its directory principal).
        #[arg(long)]
        name: String,
        /// The computer's FQDN (for the default selection criterion).
        #[arg(long)]
        fqdn: Option<String>,
        /// The fallback status point (`http://HOST:PORT/status`), for state messages sent
        /// before a verified policy names one.
        #[arg(long)]
        fallback_status_point: Option<String>,
    },
    /// Run certificate maintenance: a cycle now, then on the policy's schedule with jitter.
    Run {
        /// One cycle, then exit (exit status 2 when the cycle could not complete).
        #[arg(long)]
        once: bool,
        /// Decide as if the time were this (RFC 3339 or Unix seconds): what-if runs and tests.
        /// Only maintenance decisions use it; TLS checks keep the real clock.
        #[arg(long, hide = true, requires = "once")]
        as_of: Option<String>,
    },
    /// The agent's configuration, pins, policy, registration and certificates.
    Status {
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Every certificate in the agent's stores, archive included.
    List {
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Which client certificate the agent would present, and why.
    Select {
        /// Every candidate with why it was kept or dropped.
        #[arg(long)]
        explain: bool,
        #[arg(long)]
        json: bool,
        /// Select as if the time were this (RFC 3339 or Unix seconds).
        #[arg(long, hide = true)]
        as_of: Option<String>,
    },
    /// Export a certificate and its key as PKCS#12 (only when the template allows export).
    Export {
        /// Serial number (hex) of a certificate in personal/.
        serial: String,
        #[arg(long)]
        out: PathBuf,
        /// 3DES + SHA-1 MAC for older Windows and macOS Keychain (default: AES-256 + PBKDF2).
        #[arg(long)]
        legacy: bool,
        /// File holding the password (default: FLEETPKI_P12_PASSWORD).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Import a PKCS#12 file into personal/ (its key marked non-exportable unless --exportable).
    Import {
        file: PathBuf,
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[arg(long)]
        exportable: bool,
    },
}

fn password(file: Option<&Path>) -> Result<Zeroizing<String>> {
    let p = match file {
        Some(f) => {
            let bytes = read_input("--password-file", f)?;
            let text = String::from_utf8(bytes).context("--password-file: not UTF-8")?;
            Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_string())
        }
        None => match std::env::var("FLEETPKI_P12_PASSWORD") {
            Ok(v) => Zeroizing::new(v),
            Err(_) => bail!("password: pass --password-file FILE or set FLEETPKI_P12_PASSWORD"),
        },
    };
    if p.is_empty() {
        bail!("password: must not be empty");
    }
    Ok(p)
}

/// The agent, to read.
fn open(ctx: &Ctx) -> Result<Agent> {
    Agent::open(&ctx.dir).with_context(|| format!("no usable agent in {}", ctx.dir.display()))
}

/// The agent, to change: its directory's lock held, so a second agent process is refused.
fn open_exclusive(ctx: &Ctx) -> Result<Agent> {
    Agent::open_exclusive(&ctx.dir)
        .with_context(|| format!("cannot maintain the agent in {}", ctx.dir.display()))
}

pub async fn run(ctx: &Ctx, c: AgentCmd) -> Result<i32> {
    match c {
        AgentCmd::Install {
            site,
            root,
            site_signing_cert,
            site_signing_fingerprint,
            allow_tofu,
            name,
            fqdn,
            fallback_status_point,
        } => {
            let root = match root {
                Some(p) => Some(fleetpki_agent::trust::one_certificate(
                    "--root",
                    &read_input("--root", &p)?,
                )?),
                None => None,
            };
            let signing = match (site_signing_cert, site_signing_fingerprint) {
                (Some(p), _) => SigningPin::Certificate(fleetpki_agent::trust::one_certificate(
                    "--site-signing-cert",
                    &read_input("--site-signing-cert", &p)?,
                )?),
                (None, Some(f)) => SigningPin::Fingerprint(f),
                (None, None) => SigningPin::FirstUse,
            };
            let done = install(
                InstallOptions {
                    dir: ctx.dir.clone(),
                    site,
                    name,
                    fqdn,
                    root,
                    signing,
                    allow_tofu,
                    status_url: fallback_status_point,
                },
                now(),
            )
            .await?;
            for w in &done.warnings {
                eprintln!("WARNING: {w}");
            }
            output::fields(&[
                ("agent", ctx.dir.display().to_string()),
                ("site", done.config.site.clone()),
                ("name", done.config.name.clone()),
                ("root pinned", done.config.root_sha256.clone()),
                ("signing pinned", done.config.signing_sha256.clone()),
                (
                    "next",
                    format!("fleetpki --dir {} agent run", ctx.dir.display()),
                ),
            ]);
            Ok(0)
        }
        AgentCmd::Run { once, as_of } => {
            run_agent(ctx, once, as_of.as_deref().map(parse_time).transpose()?).await
        }
        AgentCmd::Status { opts } => status(ctx, opts).map(|()| 0),
        AgentCmd::List { opts } => list(ctx, opts).map(|()| 0),
        AgentCmd::Select {
            explain,
            json,
            as_of,
        } => {
            let agent = open(ctx)?;
            let at = as_of
                .as_deref()
                .map(parse_time)
                .transpose()?
                .unwrap_or_else(now);
            let (selection, _) = agent.select(at)?;
            if json {
                output::json(&selection)?;
            } else if explain {
                print!("{}", selection.explain());
            } else {
                match selection.selected() {
                    Some(_) => {
                        println!("{}", selection.explain().lines().next().unwrap_or_default())
                    }
                    None => println!("{}", selection.fallback_message().unwrap_or_default()),
                }
            }
            Ok(if selection.selected().is_some() { 0 } else { 2 })
        }
        AgentCmd::Export {
            serial,
            out,
            legacy,
            password_file,
        } => {
            let agent = open(ctx)?;
            let entry = agent
                .store
                .list(StoreName::Personal)?
                .entries
                .into_iter()
                .find(|e| e.info.serial_hex.eq_ignore_ascii_case(serial.trim()))
                .with_context(|| format!("serial: no certificate {serial} in personal/"))?;
            let pw = password(password_file.as_deref())?;
            let bytes = agent.store.export_pkcs12(&entry, &pw, legacy)?;
            write_output("--out", &out, &bytes)?;
            println!(
                "exported {} ({}) to {}",
                entry.info.serial_hex,
                if legacy {
                    "3DES, SHA-1 MAC"
                } else {
                    "AES-256-CBC, PBKDF2, SHA-256 MAC"
                },
                out.display()
            );
            Ok(0)
        }
        AgentCmd::Import {
            file,
            password_file,
            exportable,
        } => {
            let agent = open_exclusive(ctx)?;
            let pw = password(password_file.as_deref())?;
            let meta = CertMeta {
                export_allowed: exportable,
                key_non_exportable: !exportable,
                source: Source::Import,
                ..CertMeta::default()
            };
            let (entry, chain) =
                agent
                    .store
                    .import_pkcs12(&read_input("file", &file)?, &pw, meta)?;
            println!(
                "imported {} ({}) into personal/ with {} chain certificate(s)",
                entry.info.serial_hex,
                entry.info.subject,
                chain.len()
            );
            Ok(0)
        }
    }
}

/// `--as-of`: RFC 3339 or Unix seconds.
fn parse_time(text: &str) -> Result<i64> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<i64>() {
        return Ok(secs);
    }
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map(|d| d.unix_timestamp())
        .map_err(|_| {
            anyhow::anyhow!(
                "--as-of: `{text}` is not RFC 3339 (2026-11-22T10:00:00Z) or Unix seconds"
            )
        })
}

async fn run_agent(ctx: &Ctx, once: bool, as_of: Option<i64>) -> Result<i32> {
    let agent = open_exclusive(ctx)?;
    let mut rng = rand::rng();
    // Local failures (a full disk, an unreadable store) do not stop the daemon: they are
    // logged and retried with the same capped backoff as an unreachable site.
    let mut local = fleetpki_agent::schedule::Backoff::new();
    loop {
        let t = as_of.unwrap_or_else(now);
        let wake = match agent.cycle(t).await {
            Ok(report) => {
                local.succeed();
                for d in &report.decisions {
                    println!("{}", d.log_line());
                }
                if once {
                    return Ok(if report.ok { 0 } else { 2 });
                }
                let state = agent.state()?;
                let policy = agent.held_policy().ok().flatten();
                next_wake(&report, &state, policy.as_ref(), now(), &mut rng)
            }
            Err(e) if once => return Err(e.into()),
            Err(e) => {
                let wait = local.fail(&mut rng);
                tracing::error!("certificate maintenance failed: {e}; retrying in {wait} s");
                now() + wait
            }
        };
        println!("next cycle at {}", fmt_time(wake));
        let secs = u64::try_from(wake - now()).unwrap_or(0).max(1);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(0),
            _ = tokio::time::sleep(std::time::Duration::from_secs(secs)) => {}
        }
    }
}

fn status(ctx: &Ctx, opts: ListOpts) -> Result<()> {
    let agent = open(ctx)?;
    let state = agent.state()?;
    let policy = agent.held_policy()?;
    let t = now();
    let personal = agent.store.list(StoreName::Personal)?.entries;
    if opts.json {
        return output::json(&serde_json::json!({
            "config": agent.config,
            "state": state,
            "policy": policy,
            "certificates": personal.iter().map(|e| serde_json::json!({
                "serial": e.info.serial_hex,
                "subject": e.info.subject,
                "template": e.meta.template,
                "not_after": e.info.not_after,
            })).collect::<Vec<_>>(),
        }));
    }
    output::fields(&[
        ("site", agent.config.site.clone()),
        ("name", agent.config.name.clone()),
        ("root pinned", agent.config.root_sha256.clone()),
        (
            "signing pinned",
            format!(
                "{}{}",
                agent.config.signing_sha256,
                if agent.config.tofu {
                    " (trusted on first use)"
                } else {
                    ""
                }
            ),
        ),
        (
            "registration",
            state
                .registered
                .as_ref()
                .map_or("not registered".into(), |(_, s)| s.clone()),
        ),
        (
            "policy",
            policy.as_ref().map_or("none yet".into(), |p| {
                format!(
                    "version {}, {} template(s), every {} s + up to {} s jitter",
                    p.version,
                    p.templates.len(),
                    p.schedule.interval_secs,
                    p.schedule.jitter_secs
                )
            }),
        ),
        (
            "pending",
            if state.pending.is_empty() {
                "none".into()
            } else {
                state
                    .pending
                    .iter()
                    .map(|(t, p)| format!("{t}: request {}", p.request_id))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        ("failures in a row", state.failures.to_string()),
    ]);
    let rows = personal
        .iter()
        .map(|e| {
            vec![
                e.info.serial_hex.clone(),
                e.meta.template.clone().unwrap_or_else(|| "-".into()),
                fmt_time(e.info.not_after),
                if e.info.not_after <= t {
                    "expired".into()
                } else {
                    "valid".into()
                },
            ]
        })
        .collect();
    output::table(&["serial", "template", "not after", "state"], rows);
    let log = std::fs::read_to_string(agent.dir.join(LOG_FILE)).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    if !tail.is_empty() {
        println!("\nlast decisions ({}):", agent.dir.join(LOG_FILE).display());
        for l in tail.iter().rev() {
            println!("  {l}");
        }
    }
    Ok(())
}

fn list(ctx: &Ctx, opts: ListOpts) -> Result<()> {
    let agent = open(ctx)?;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for store in StoreName::ALL {
        let listing = agent.store.list(store)?;
        for e in &listing.entries {
            let archived = e
                .archived
                .as_ref()
                .map(|a| format!("{:?} {}", a.reason, fmt_time(a.at)).to_lowercase())
                .unwrap_or_default();
            rows.push(vec![
                store.dir_name().to_string(),
                e.info.serial_hex.clone(),
                e.info.subject.clone(),
                e.meta.template.clone().unwrap_or_else(|| "-".into()),
                fmt_time(e.info.not_after),
                if e.has_key { "yes".into() } else { "no".into() },
                archived.clone(),
            ]);
            json.push(serde_json::json!({
                "store": store.dir_name(), "serial": e.info.serial_hex, "subject": e.info.subject,
                "template": e.meta.template, "not_after": e.info.not_after, "key": e.has_key,
                "archived": archived,
            }));
        }
        for p in &listing.unreadable {
            eprintln!("warning: {}: {}", p.path.display(), p.rule);
        }
    }
    if opts.json {
        return output::json(&json);
    }
    output::table(
        &[
            "store",
            "serial",
            "subject",
            "template",
            "not after",
            "key",
            "archived",
        ],
        rows,
    );
    Ok(())
}
