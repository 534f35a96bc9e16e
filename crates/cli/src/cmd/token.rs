//! `fleetpki token`: one-time enrollment tokens; `fleetpki api-token`: admin API tokens.

use super::{Backend, Ctx};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use fleetpki_model::duration::parse_duration;
use fleetpki_model::fmt_time;
use serde::Deserialize;
use serde_json::json;

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a one-time enrollment token for a principal (shown once).
    Create(OneTimeArgs),
}

/// What a one-time secret is for: `token create` and `scep challenge`.
#[derive(Args)]
pub struct OneTimeArgs {
    #[arg(long)]
    principal: String,
    /// Limit it to one template.
    #[arg(long)]
    template: Option<String>,
    /// How long it stays usable (e.g. 1h, 7d).
    #[arg(long, default_value = "1d")]
    expires: String,
}

pub async fn run(ctx: &Ctx, c: TokenCmd) -> Result<()> {
    match c {
        TokenCmd::Create(a) => create_one_time(ctx, &a, "one-time enrollment token").await,
    }
}

/// Creates a one-time enrollment token (also SCEP's one-time challenge): hashed at rest,
/// used up in the transaction that stores the request. The secret goes to stdout, once.
pub(crate) async fn create_one_time(ctx: &Ctx, a: &OneTimeArgs, what: &str) -> Result<()> {
    let ttl = parse_duration("--expires", &a.expires)?;
    let t: Created = match ctx.backend().await? {
        Backend::Local { site, who } => {
            let (token, text) = site
                .token_create(&a.principal, a.template.as_deref(), ttl, &who)
                .await?;
            Created {
                token: text,
                principal: token.principal,
                template: token.template,
                expires_at: token.expires_at,
            }
        }
        Backend::Remote(api) => {
            let body = json!({
                "principal": a.principal, "template": a.template, "expires_in": ttl,
            });
            api.post("/api/v1/tokens", &body).await?
        }
    };
    eprintln!(
        "{what} for {}{}, usable until {}; it is shown only now:",
        t.principal,
        t.template
            .as_deref()
            .map(|t| format!(" (template {t})"))
            .unwrap_or_default(),
        fmt_time(t.expires_at)
    );
    println!("{}", t.token);
    Ok(())
}

/// A one-time token as made here or as `POST /api/v1/tokens` answers.
#[derive(Deserialize)]
struct Created {
    token: String,
    principal: String,
    template: Option<String>,
    expires_at: i64,
}

#[derive(Subcommand)]
pub enum ApiTokenCmd {
    /// Make a new admin API token: prints the secret (once) and the `[api.tokens]` lines for
    /// the serve config, which keeps only its SHA-256.
    New {
        /// A name for the token (audit logs show `token:NAME`).
        #[arg(long)]
        name: String,
        /// ca-admin, cert-manager or auditor.
        #[arg(long)]
        role: String,
    },
}

pub fn api_token(c: ApiTokenCmd) -> Result<()> {
    match c {
        ApiTokenCmd::New { name, role } => {
            if !matches!(role.as_str(), "ca-admin" | "cert-manager" | "auditor") {
                bail!("--role: `{role}`: use ca-admin, cert-manager or auditor");
            }
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                bail!("--name: use letters, digits, '-' and '_'");
            }
            let mut raw = [0u8; 24];
            aws_lc_rs::rand::fill(&mut raw)
                .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
            let secret = hex::encode(raw);
            let sha = fleetpki_x509::cert::fingerprint(secret.as_bytes());
            eprintln!("add to the serve config (--config), then restart `fleetpki serve`:");
            eprintln!("[api.tokens.{name}]\nrole = \"{role}\"\nsha256 = \"{sha}\"\n");
            eprintln!("the token (send as `Authorization: Bearer TOKEN`), shown only now:");
            println!("{name}:{secret}");
        }
    }
    Ok(())
}
