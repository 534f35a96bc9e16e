//! `fleetpki status`: the state messages clients sent to the fallback status point.

use super::{Backend, Ctx};
use crate::remote::query;
use crate::{ListOpts, output};
use anyhow::{Result, bail};
use clap::Subcommand;
use fleetpki_model::duration::parse_duration;
use fleetpki_model::site::{StatusFilter, StatusMessage};
use fleetpki_model::{UnixTime, fmt_time};
use serde::{Deserialize, Serialize};

#[derive(Subcommand)]
pub enum StatusCmd {
    /// List state messages, newest first.
    List {
        /// Only messages from this client (the name it sent).
        #[arg(long)]
        client: Option<String>,
        /// Only messages of this kind, e.g. selection-failed, renewal-failed, policy-invalid.
        #[arg(long)]
        kind: Option<String>,
        /// Only messages received at or after this time: RFC 3339 (2026-11-22T10:00:00Z), Unix
        /// seconds, or a duration ago (30m, 12h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// At most this many messages.
        #[arg(long, default_value_t = StatusFilter::DEFAULT_LIMIT)]
        limit: i64,
        #[command(flatten)]
        opts: ListOpts,
    },
}

/// A message for `--json`: the body as the JSON it is, not a string holding JSON. The same
/// shape as `GET /api/v1/status` answers.
#[derive(Serialize, Deserialize)]
struct View {
    id: i64,
    received_at: UnixTime,
    source: String,
    client: String,
    kind: String,
    body: serde_json::Value,
}

pub async fn run(ctx: &Ctx, c: StatusCmd) -> Result<()> {
    match c {
        StatusCmd::List {
            client,
            kind,
            since,
            limit,
            opts,
        } => {
            if limit < 1 {
                bail!("--limit: must be at least 1");
            }
            let since = since
                .map(|t| parse_since(&t, fleetpki_model::now()))
                .transpose()?;
            let filter = StatusFilter {
                client,
                kind,
                since,
                limit,
            };
            let views: Vec<View> = match ctx.backend().await? {
                Backend::Local { site, .. } => site
                    .store
                    .status_messages(&filter)
                    .await?
                    .into_iter()
                    .map(view)
                    .collect(),
                Backend::Remote(api) => {
                    let q = query(&[
                        ("client", filter.client),
                        ("kind", filter.kind),
                        ("since", filter.since.map(|s| s.to_string())),
                        ("limit", Some(filter.limit.to_string())),
                    ]);
                    api.get(&format!("/api/v1/status{q}")).await?
                }
            };
            if opts.json {
                return output::json(&views);
            }
            let rows = views
                .iter()
                .map(|m| {
                    vec![
                        m.id.to_string(),
                        fmt_time(m.received_at),
                        m.source.clone(),
                        m.client.clone(),
                        m.kind.clone(),
                        summary(&m.body),
                    ]
                })
                .collect();
            output::table(
                &["id", "received", "source", "client", "kind", "message"],
                rows,
            );
        }
    }
    Ok(())
}

fn view(m: StatusMessage) -> View {
    View {
        id: m.id,
        received_at: m.received_at,
        // The server stores only bodies that parsed; keep the text if one somehow does not.
        body: serde_json::from_str(&m.body).unwrap_or_else(|_| m.body.clone().into()),
        source: m.source,
        client: m.client,
        kind: m.kind,
    }
}

/// The message text for a table cell: one line, at most 80 characters.
fn summary(body: &serde_json::Value) -> String {
    let text = body
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default();
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line
    }
}

/// `--since`: RFC 3339, Unix seconds, or a duration before `now`.
fn parse_since(text: &str, now: UnixTime) -> Result<UnixTime> {
    let t = text.trim();
    // Let chains would need Rust 1.88; the workspace promises 1.85.
    let digits = !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if let Some(secs) = digits.then(|| t.parse::<i64>().ok()).flatten() {
        return Ok(secs);
    }
    if let Ok(d) = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
        return Ok(d.unix_timestamp());
    }
    if let Ok(ago) = parse_duration("--since", t) {
        return Ok(now.saturating_sub(ago));
    }
    bail!(
        "--since: `{text}` is not a time; expected RFC 3339 (2026-11-22T10:00:00Z), Unix seconds, or a duration ago (30m, 12h, 7d)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        let now = 1_795_315_226;
        assert_eq!(parse_since("2026-11-22T02:40:26Z", now).unwrap(), now);
        assert_eq!(parse_since("2026-11-22T03:40:26+01:00", now).unwrap(), now);
        assert_eq!(parse_since("1795315226", now).unwrap(), now);
        assert_eq!(parse_since("2h", now).unwrap(), now - 7200);
        assert_eq!(parse_since("7d", now).unwrap(), now - 7 * 86_400);
        for bad in ["", "yesterday", "2026-11-22", "-5", "2h ago"] {
            let e = parse_since(bad, now).unwrap_err().to_string();
            assert!(e.starts_with("--since: "), "{bad}: {e}");
        }
    }

    #[test]
    fn summaries_are_one_short_line() {
        let s = |t: &str| summary(&serde_json::from_str(t).unwrap());
        assert_eq!(
            s(r#"{"client":"a","kind":"b","message":"line one\nline two"}"#),
            "line one line two"
        );
        assert_eq!(s(r#"{"client":"a","kind":"b"}"#), "");
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(200));
        assert_eq!(s(&long).chars().count(), 80);
    }
}
