//! The `fleetpki` command: argument parsing and dispatch to the CA library.

mod cmd;
mod output;
mod remote;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "fleetpki",
    version,
    about = "fleetpki: the certificate system of a managed fleet"
)]
struct Cli {
    /// The site directory (configuration, CA certificates, keys, SQLite database); for
    /// `agent` commands, the agent's (agent.toml, certificate stores, keys, logs).
    #[arg(long, global = true, env = "FLEETPKI_DIR", default_value = ".")]
    dir: PathBuf,
    /// A file holding the passphrase of the site's CA keys (else FLEETPKI_PASSPHRASE).
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    /// How logs are written to stderr: text for people, json (one object a line) for
    /// collectors. The level comes from RUST_LOG (default: info for fleetpki, warn for the rest).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// A running server's api role (https://HOST:PORT): administrative commands go to its
    /// admin API instead of opening the site's database.
    #[arg(long, global = true, env = "FLEETPKI_SERVER", value_name = "URL")]
    server: Option<String>,
    /// With --server: a file holding the admin API token NAME:SECRET (`fleetpki api-token
    /// new`); else the FLEETPKI_API_TOKEN variable holds it.
    #[arg(long, global = true, requires = "server", value_name = "FILE")]
    api_token_file: Option<PathBuf>,
    /// With --server: an admin client certificate (PEM, leaf first) for mutual TLS.
    #[arg(long, global = true, requires_all = ["server", "client_key"], value_name = "FILE")]
    client_cert: Option<PathBuf>,
    /// With --server: the key of --client-cert (unencrypted PEM).
    #[arg(long, global = true, requires_all = ["server", "client_cert"], value_name = "FILE")]
    client_key: Option<PathBuf>,
    /// With --server: the PEM root(s) that issued the server's TLS certificate (default: the
    /// site root in --dir, ca/root.pem).
    #[arg(long, global = true, requires = "server", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a site: root CA (and optionally an issuing CA), site signing certificate, database.
    Init(cmd::init::InitArgs),
    /// Demo: create a site in a fresh directory, enroll a demo computer and verify its certificate.
    Quickstart(cmd::quickstart::QuickstartArgs),
    /// Run the site's roles (management point, API, CRL distribution point, OCSP responder,
    /// fallback status point) until interrupted.
    Serve(cmd::serve::ServeArgs),
    /// Site artefacts: the site signing certificate.
    #[command(subcommand)]
    Site(cmd::serve::SiteCmd),
    /// The site's CA certificates.
    #[command(subcommand)]
    Ca(cmd::ca::CaCmd),
    /// Certificate templates.
    #[command(subcommand)]
    Template(cmd::template::TemplateCmd),
    /// The directory: computers, users, groups.
    #[command(subcommand)]
    Directory(cmd::directory::DirectoryCmd),
    /// Certificate requests: submit, list, approve, deny.
    #[command(subcommand)]
    Request(cmd::request::RequestCmd),
    /// Issued certificates: list, show, revoke.
    #[command(subcommand)]
    Cert(cmd::cert::CertCmd),
    /// Certificate revocation lists.
    #[command(subcommand)]
    Crl(cmd::crl::CrlCmd),
    /// Check a certificate file against a role requirement profile (seed 002).
    Check(cmd::check::CheckArgs),
    /// Clients registered with the management point: list, approve, block.
    #[command(subcommand)]
    Client(cmd::client::ClientCmd),
    /// One-time enrollment tokens for the API.
    #[command(subcommand)]
    Token(cmd::token::TokenCmd),
    /// The ACME role: external account binding keys.
    #[command(subcommand)]
    Acme(cmd::acme::AcmeCmd),
    /// SCEP: one-time challenge passwords.
    #[command(subcommand)]
    Scep(cmd::scep::ScepCmd),
    /// Admin API tokens (kept, hashed, in the serve config).
    #[command(subcommand)]
    ApiToken(cmd::token::ApiTokenCmd),
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCmd),
    /// State messages clients sent to the fallback status point.
    #[command(subcommand)]
    Status(cmd::status::StatusCmd),
    #[command(subcommand)]
    Agent(cmd::agent::AgentCmd),
    /// Fleet simulation: N in-process agents against a site served on loopback, in virtual
    /// time, with and without the policy's jitter; reports the request rate's peak and mean.
    Simulate(cmd::simulate::SimulateArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// What is logged without RUST_LOG: fleetpki's own events (every `fleetpki*` target: the
/// filter matches target prefixes), and only warnings from the libraries underneath.
const DEFAULT_LOG: &str = "warn,fleetpki=info";
/// `simulate` runs thousands of agents in one process: only warnings, unless RUST_LOG asks.
const SIMULATE_LOG: &str = "warn";
/// `quickstart` prints its demo agent's decisions on stdout itself: their log lines would
/// say everything twice.
const QUICKSTART_LOG: &str = "warn,fleetpki=info,fleetpki::agent=warn";

/// Logs go to stderr in both formats: stdout carries command output (and `serve`'s
/// `ROLE listening on URL` lines, which scripts read).
fn init_logs(format: LogFormat, default: &str) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v).unwrap_or_else(|e| {
            eprintln!("warning: RUST_LOG `{v}` is not a valid filter ({e}); using `{default}`");
            EnvFilter::new(default)
        }),
        _ => EnvFilter::new(default),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // Fields at the top level of each object, where collectors look for them.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// Options shared by listings.
#[derive(Args, Clone, Copy)]
pub struct ListOpts {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn main() {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Simulate(_) => SIMULATE_LOG,
        Command::Quickstart(_) => QUICKSTART_LOG,
        _ => DEFAULT_LOG,
    };
    init_logs(cli.log_format, default_log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// The commands the admin API has no endpoint for, and why.
fn local_only(c: &Command) -> Option<(&'static str, &'static str)> {
    Some(match c {
        Command::Init(_) => ("init", "it creates a site's files, keys and database"),
        Command::Quickstart(_) => (
            "quickstart",
            "it creates and serves a demo site in a local directory",
        ),
        Command::Serve(_) => ("serve", "it is the server, on the site's own database"),
        Command::Check(_) => ("check", "it checks a local file and needs no site"),
        Command::ApiToken(_) => (
            "api-token",
            "API tokens live in the server's serve config, which only its operator edits",
        ),
        Command::Agent(_) => (
            "agent",
            "the agent talks to the management point with its own identity, not to the admin API",
        ),
        Command::Simulate(_) => ("simulate", "it serves its own site on loopback"),
        _ => return None,
    })
}

/// Runs the command; the exit code is 0 unless the command defines its own (`check`).
async fn run(cli: Cli) -> Result<i32> {
    let remote = cli.server.map(|server| remote::Options {
        server,
        api_token_file: cli.api_token_file,
        client_cert: cli.client_cert,
        client_key: cli.client_key,
        ca_file: cli.ca_file,
        dir: cli.dir.clone(),
    });
    if remote.is_some() && cli.passphrase_file.is_some() {
        anyhow::bail!(
            "--passphrase-file: not with --server; the server unlocks the site's keys itself"
        );
    }
    let ctx = cmd::Ctx {
        dir: cli.dir,
        passphrase_file: cli.passphrase_file,
        remote,
    };
    if let Some((command, why)) = local_only(&cli.command) {
        ctx.local_only(command, why)?;
    }
    let done = match cli.command {
        Command::Check(a) => return cmd::check::run(a),
        Command::Init(a) => cmd::init::run(&ctx, a).await,
        Command::Quickstart(a) => cmd::quickstart::run(a).await,
        Command::Serve(a) => cmd::serve::run(&ctx, a).await,
        Command::Site(c) => cmd::serve::site(&ctx, c).await,
        Command::Ca(c) => cmd::ca::run(&ctx, c).await,
        Command::Template(c) => cmd::template::run(&ctx, c).await,
        Command::Directory(c) => cmd::directory::run(&ctx, c).await,
        Command::Request(c) => cmd::request::run(&ctx, c).await,
        Command::Cert(c) => cmd::cert::run(&ctx, c).await,
        Command::Crl(c) => cmd::crl::run(&ctx, c).await,
        Command::Audit(c) => cmd::audit::run(&ctx, c).await,
        Command::Client(c) => cmd::client::run(&ctx, c).await,
        Command::Token(c) => cmd::token::run(&ctx, c).await,
        Command::Scep(c) => cmd::scep::run(&ctx, c).await,
        Command::ApiToken(c) => cmd::token::api_token(c),
        Command::Acme(c) => cmd::acme::run(&ctx, c).await,
        Command::Status(c) => cmd::status::run(&ctx, c).await,
        Command::Agent(c) => return cmd::agent::run(&ctx, c).await,
        Command::Simulate(a) => return cmd::simulate::run(a).await,
    };
    done.map(|()| 0)
}
