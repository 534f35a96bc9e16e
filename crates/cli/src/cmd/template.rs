//! `fleetpki template`: list, show, duplicate, set, publish, grant, bump.

use super::{Backend, Ctx};
use crate::remote::seg;
use crate::{ListOpts, output};
use anyhow::Result;
use clap::{Args, Subcommand};
use fleetpki_model::duration::format_duration;
use fleetpki_model::oid::eku_name;
use fleetpki_model::template::{SETTABLE_FIELDS, SubjectRule, Template};
use hyper::Method;
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum TemplateCmd {
    /// List templates.
    List(ListOpts),
    /// Show one template (by name or display name).
    Show {
        name: String,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Every stored version of a template.
    History {
        name: String,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Copy a template (a base, or any other) under a new name; the copy is editable and unpublished.
    Duplicate { base: String, new_name: String },
    /// Change fields; the edits together make one new minor version.
    Set {
        name: String,
        #[command(flatten)]
        fields: Box<SetFields>,
    },
    /// Make a template usable on this CA.
    Publish { name: String },
    /// Stop issuing from a template.
    Unpublish { name: String },
    /// Grant a directory group Read / Enroll / Autoenroll (Autoenroll implies Enroll, Enroll implies Read).
    Grant(GrantArgs),
    /// Remove permissions (all of the group's when none is named).
    RevokeGrant(GrantArgs),
    /// Raise the major version: every holder re-enrolls.
    Bump { name: String },
}

#[derive(Args)]
pub struct GrantArgs {
    name: String,
    #[arg(long)]
    group: String,
    #[arg(long)]
    read: bool,
    #[arg(long)]
    enroll: bool,
    #[arg(long)]
    autoenroll: bool,
}

/// One optional flag per settable field (see `fleetpki_model::template::SETTABLE_FIELDS`).
#[derive(Args)]
pub struct SetFields {
    #[arg(long)]
    display_name: Option<String>,
    /// Comma list of names (server-auth, client-auth, amt-provisioning, …) or dotted OIDs.
    #[arg(long)]
    eku: Option<String>,
    /// Comma list: digitalSignature, keyEncipherment, keyAgreement, …
    #[arg(long)]
    key_usage: Option<String>,
    /// `supply` (in the request) or `directory` (built from the principal).
    #[arg(long)]
    subject: Option<String>,
    /// Comma list of cn, dns, upn, email.
    #[arg(long)]
    subject_from_directory: Option<String>,
    /// Comma list of DNS suffixes requested names must fall under.
    #[arg(long)]
    permitted_dns_suffixes: Option<String>,
    /// Comma list: rsa:MIN-MAX, ecdsa:MIN-MAX, ed25519.
    #[arg(long)]
    key_algorithms: Option<String>,
    #[arg(long)]
    min_key_size: Option<String>,
    #[arg(long)]
    max_key_size: Option<String>,
    /// sha256, sha384 or sha512.
    #[arg(long)]
    hash: Option<String>,
    /// e.g. 1y, 90d.
    #[arg(long)]
    validity: Option<String>,
    /// e.g. 6w.
    #[arg(long)]
    renewal_period: Option<String>,
    #[arg(long)]
    exportable: Option<String>,
    #[arg(long)]
    require_approval: Option<String>,
    /// Bind a role requirement profile (seed 002); `none` unbinds.
    #[arg(long)]
    profile: Option<String>,
}

impl SetFields {
    /// The edits in the canonical field order, so `--subject` applies before the suffixes.
    fn edits(self) -> Vec<(String, String)> {
        let given = [
            ("display-name", self.display_name),
            ("eku", self.eku),
            ("key-usage", self.key_usage),
            ("subject", self.subject),
            ("subject-from-directory", self.subject_from_directory),
            ("permitted-dns-suffixes", self.permitted_dns_suffixes),
            ("key-algorithms", self.key_algorithms),
            ("min-key-size", self.min_key_size),
            ("max-key-size", self.max_key_size),
            ("hash", self.hash),
            ("validity", self.validity),
            ("renewal-period", self.renewal_period),
            ("exportable", self.exportable),
            ("require-approval", self.require_approval),
            ("profile", self.profile),
        ];
        debug_assert_eq!(given.len(), SETTABLE_FIELDS.len());
        given
            .into_iter()
            .filter_map(|(f, v)| v.map(|v| (f.to_string(), v)))
            .collect()
    }
}

/// The body of `POST /api/v1/templates/{name}/grant` and `…/revoke-grant`.
#[derive(Serialize)]
struct GrantBody<'a> {
    group: &'a str,
    read: bool,
    enroll: bool,
    autoenroll: bool,
}

impl<'a> From<&'a GrantArgs> for GrantBody<'a> {
    fn from(g: &'a GrantArgs) -> Self {
        GrantBody {
            group: &g.group,
            read: g.read,
            enroll: g.enroll,
            autoenroll: g.autoenroll,
        }
    }
}

fn path(name: &str, action: &str) -> String {
    format!("/api/v1/templates/{}{action}", seg(name))
}

pub async fn run(ctx: &Ctx, c: TemplateCmd) -> Result<()> {
    let b = ctx.backend().await?;
    match c {
        TemplateCmd::List(opts) => {
            let all: Vec<Template> = match &b {
                Backend::Local { site, .. } => site.store.templates().await?,
                Backend::Remote(api) => api.get("/api/v1/templates").await?,
            };
            if opts.json {
                return output::json(&all);
            }
            let rows = all
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.display_name.clone(),
                        t.version.to_string(),
                        if t.builtin {
                            "base".into()
                        } else {
                            t.base
                                .clone()
                                .map(|b| format!("from {b}"))
                                .unwrap_or_default()
                        },
                        if t.published {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                        t.ekus
                            .iter()
                            .map(|e| eku_name(e))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect();
            output::table(
                &[
                    "name",
                    "display name",
                    "version",
                    "kind",
                    "published",
                    "EKU",
                ],
                rows,
            );
        }
        TemplateCmd::Show { name, opts } => {
            let t: Template = match &b {
                Backend::Local { site, .. } => site.find_template(&name).await?,
                Backend::Remote(api) => api.get(&path(&name, "")).await?,
            };
            if opts.json {
                return output::json(&t);
            }
            show(&t);
        }
        TemplateCmd::History { name, opts } => {
            let versions: Vec<Template> = match &b {
                Backend::Local { site, .. } => {
                    let t = site.find_template(&name).await?;
                    site.store.template_history(&t.name).await?
                }
                Backend::Remote(api) => api.get(&path(&name, "/history")).await?,
            };
            if opts.json {
                return output::json(&versions);
            }
            let rows = versions
                .iter()
                .map(|v| {
                    vec![
                        v.version.to_string(),
                        if v.published {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                        v.subject.to_string(),
                    ]
                })
                .collect();
            output::table(&["version", "published", "subject"], rows);
        }
        TemplateCmd::Duplicate { base, new_name } => {
            let t: Template = match &b {
                Backend::Local { site, who } => {
                    site.template_duplicate(&base, &new_name, who).await?
                }
                Backend::Remote(api) => {
                    api.post(&path(&base, "/duplicate"), &json!({ "name": new_name }))
                        .await?
                }
            };
            println!(
                "created template `{}` v{} from `{base}` (unpublished; edit it with `fleetpki template set`)",
                t.name, t.version
            );
        }
        TemplateCmd::Set { name, fields } => {
            let edits = (*fields).edits();
            let t: Template = match &b {
                Backend::Local { site, who } => site.template_set(&name, &edits, who).await?,
                Backend::Remote(api) => {
                    if edits.is_empty() {
                        // The local refusal, before a round trip.
                        anyhow::bail!("template set: name at least one --FIELD VALUE to change");
                    }
                    let body: serde_json::Map<String, Value> = edits
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect();
                    api.send(Method::PATCH, &path(&name, ""), &body).await?
                }
            };
            println!("template `{}` is now v{}", t.name, t.version);
        }
        TemplateCmd::Publish { name } => {
            let t = publish(&b, &name, true).await?;
            println!("template `{}` v{} is published", t.name, t.version);
        }
        TemplateCmd::Unpublish { name } => {
            let t = publish(&b, &name, false).await?;
            println!("template `{}` is no longer published", t.name);
        }
        TemplateCmd::Grant(g) => {
            let t: Template = match &b {
                Backend::Local { site, who } => {
                    site.template_grant(&g.name, &g.group, g.read, g.enroll, g.autoenroll, who)
                        .await?
                }
                Backend::Remote(api) => {
                    if !(g.read || g.enroll || g.autoenroll) {
                        anyhow::bail!(
                            "template grant: name at least one of --read, --enroll, --autoenroll"
                        );
                    }
                    api.post(&path(&g.name, "/grant"), &GrantBody::from(&g))
                        .await?
                }
            };
            println!("template `{}`: {}", t.name, grants(&t));
        }
        TemplateCmd::RevokeGrant(g) => {
            let t: Template = match &b {
                Backend::Local { site, who } => {
                    site.template_revoke_grant(
                        &g.name,
                        &g.group,
                        g.read,
                        g.enroll,
                        g.autoenroll,
                        who,
                    )
                    .await?
                }
                Backend::Remote(api) => {
                    api.post(&path(&g.name, "/revoke-grant"), &GrantBody::from(&g))
                        .await?
                }
            };
            println!("template `{}`: {}", t.name, grants(&t));
        }
        TemplateCmd::Bump { name } => {
            let t: Template = match &b {
                Backend::Local { site, who } => site.template_bump(&name, who).await?,
                Backend::Remote(api) => api.post(&path(&name, "/bump"), &json!({})).await?,
            };
            println!(
                "template `{}` is now v{}: every holder re-enrolls",
                t.name, t.version
            );
        }
    }
    Ok(())
}

async fn publish(b: &Backend, name: &str, published: bool) -> Result<Template> {
    Ok(match b {
        Backend::Local { site, who } => site.template_publish(name, published, who).await?,
        Backend::Remote(api) => {
            api.post(&path(name, "/publish"), &json!({ "published": published }))
                .await?
        }
    })
}

fn grants(t: &Template) -> String {
    if t.grants.is_empty() {
        return "no grants".into();
    }
    t.grants
        .iter()
        .map(|g| {
            let p: Vec<&str> = [
                (g.read, "Read"),
                (g.enroll, "Enroll"),
                (g.autoenroll, "Autoenroll"),
            ]
            .into_iter()
            .filter_map(|(on, n)| on.then_some(n))
            .collect();
            format!("{} [{}]", g.group, p.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn show(t: &Template) {
    let mut rows = vec![
        ("name", t.name.clone()),
        ("display name", t.display_name.clone()),
        ("version", t.version.to_string()),
        (
            "kind",
            if t.builtin {
                "built-in base (duplicate to edit)".into()
            } else {
                format!("duplicated from {}", t.base.as_deref().unwrap_or("?"))
            },
        ),
        ("published", t.published.to_string()),
        (
            "EKU",
            t.ekus
                .iter()
                .map(|e| format!("{} ({e})", eku_name(e)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "key usage",
            t.key_usage
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("subject", t.subject.to_string()),
        (
            "key algorithms",
            t.key_algorithms
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("hash", t.hash.name().into()),
        ("validity", format_duration(t.validity)),
        ("renewal period", format_duration(t.renewal_period)),
        ("exportable key", t.exportable.to_string()),
        ("require approval", t.require_approval.to_string()),
        ("permissions", grants(t)),
    ];
    if let Some(p) = &t.profile {
        rows.push(("role profile", p.clone()));
    }
    output::fields(&rows);
    if matches!(&t.subject, SubjectRule::SupplyInRequest { permitted_dns_suffixes } if permitted_dns_suffixes.is_empty())
    {
        println!(
            "warning: any DNS name may be requested from this template; limit it with --permitted-dns-suffixes"
        );
    }
}
