//! `fleetpki directory`: computers, users, services, groups, membership, import.

use super::{Backend, Ctx, read_input};
use crate::remote::seg;
use crate::{ListOpts, output};
use anyhow::Result;
use clap::Subcommand;
use fleetpki_ca::directory::DirectoryFile;
use fleetpki_ca::directory::parse_import;
use fleetpki_model::directory::{Principal, PrincipalKind};
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DirectoryCmd {
    /// Add a computer.
    AddComputer {
        name: String,
        /// Its fully qualified DNS name.
        #[arg(long)]
        dns: String,
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Add a user.
    AddUser {
        name: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        upn: Option<String>,
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Add a service account.
    AddService {
        name: String,
        #[arg(long)]
        dns: Option<String>,
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Add a group.
    AddGroup { name: String },
    /// Add a principal to a group.
    AddMember { group: String, principal: String },
    /// List principals and their groups.
    List(ListOpts),
    /// Import groups and principals from JSON or CSV (kind,name,dns,email,upn,groups), all or nothing.
    Import { file: PathBuf },
}

pub async fn run(ctx: &Ctx, c: DirectoryCmd) -> Result<()> {
    let b = ctx.backend().await?;
    let principal = |name: String, kind, dns, email, upn| Principal {
        name,
        kind,
        dns,
        email,
        upn,
        disabled: false,
    };
    match c {
        DirectoryCmd::AddComputer { name, dns, groups } => {
            let p = principal(name.clone(), PrincipalKind::Computer, Some(dns), None, None);
            add(&b, p, &groups).await?;
            println!("added computer {name}");
        }
        DirectoryCmd::AddUser {
            name,
            email,
            upn,
            groups,
        } => {
            let p = principal(name.clone(), PrincipalKind::User, None, Some(email), upn);
            add(&b, p, &groups).await?;
            println!("added user {name}");
        }
        DirectoryCmd::AddService { name, dns, groups } => {
            let p = principal(name.clone(), PrincipalKind::Service, dns, None, None);
            add(&b, p, &groups).await?;
            println!("added service {name}");
        }
        DirectoryCmd::AddGroup { name } => {
            match &b {
                Backend::Local { site, who } => site.directory_add_group(&name, who).await?,
                Backend::Remote(api) => {
                    let _: Value = api
                        .post("/api/v1/directory/groups", &json!({ "name": name }))
                        .await?;
                }
            }
            println!("added group {name}");
        }
        DirectoryCmd::AddMember { group, principal } => {
            match &b {
                Backend::Local { site, who } => {
                    site.directory_add_member(&group, &principal, who).await?
                }
                Backend::Remote(api) => {
                    let _: Value = api
                        .post(
                            &format!("/api/v1/directory/groups/{}/members", seg(&group)),
                            &json!({ "principal": principal }),
                        )
                        .await?;
                }
            }
            println!("{principal} is a member of {group}");
        }
        DirectoryCmd::List(opts) => {
            let d: DirectoryFile = match &b {
                Backend::Local { site, .. } => site.directory_list().await?,
                Backend::Remote(api) => api.get("/api/v1/directory").await?,
            };
            if opts.json {
                return output::json(&d);
            }
            let rows = d
                .principals
                .iter()
                .map(|e| {
                    let p = &e.principal;
                    vec![
                        p.name.clone(),
                        p.kind.name().into(),
                        p.dns.clone().unwrap_or_default(),
                        p.email.clone().unwrap_or_default(),
                        p.upn.clone().unwrap_or_default(),
                        e.groups.join(", "),
                    ]
                })
                .collect();
            output::table(&["name", "kind", "dns", "email", "upn", "groups"], rows);
            println!(
                "groups: {}",
                if d.groups.is_empty() {
                    "(none)".into()
                } else {
                    d.groups.join(", ")
                }
            );
        }
        DirectoryCmd::Import { file } => {
            let name = file.display().to_string();
            // JSON or CSV is read here either way; the server takes the parsed directory.
            let parsed = parse_import(&name, &read_input("import", &file)?)?;
            let (groups, principals) = match &b {
                Backend::Local { site, who } => site.directory_import(parsed, &name, who).await?,
                Backend::Remote(api) => {
                    let r: Imported = api.post("/api/v1/directory/import", &parsed).await?;
                    (r.groups_created, r.principals)
                }
            };
            println!("imported {principals} principal(s), created {groups} group(s)");
        }
    }
    Ok(())
}

/// The answer of `POST /api/v1/directory/import`.
#[derive(Deserialize)]
struct Imported {
    groups_created: usize,
    principals: usize,
}

async fn add(b: &Backend, p: Principal, groups: &[String]) -> Result<()> {
    match b {
        Backend::Local { site, who } => site.directory_add(p, groups, who).await?,
        Backend::Remote(api) => {
            let body = json!({
                "kind": p.kind.name(), "name": p.name, "dns": p.dns, "email": p.email,
                "upn": p.upn, "groups": groups,
            });
            let _: Value = api.post("/api/v1/directory/principals", &body).await?;
        }
    }
    Ok(())
}
