//! `fleetpki directory`: computers, users, services, groups, membership, import.

use super::{Ctx, actor, read_input};
use crate::{ListOpts, output};
use anyhow::Result;
use clap::Subcommand;
use fleetpki_ca::directory::parse_import;
use fleetpki_model::directory::{Principal, PrincipalKind};
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
    let site = ctx.site().await?;
    let who = actor();
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
            site.directory_add(
                principal(name.clone(), PrincipalKind::Computer, Some(dns), None, None),
                &groups,
                &who,
            )
            .await?;
            println!("added computer {name}");
        }
        DirectoryCmd::AddUser {
            name,
            email,
            upn,
            groups,
        } => {
            site.directory_add(
                principal(name.clone(), PrincipalKind::User, None, Some(email), upn),
                &groups,
                &who,
            )
            .await?;
            println!("added user {name}");
        }
        DirectoryCmd::AddService { name, dns, groups } => {
            site.directory_add(
                principal(name.clone(), PrincipalKind::Service, dns, None, None),
                &groups,
                &who,
            )
            .await?;
            println!("added service {name}");
        }
        DirectoryCmd::AddGroup { name } => {
            site.directory_add_group(&name, &who).await?;
            println!("added group {name}");
        }
        DirectoryCmd::AddMember { group, principal } => {
            site.directory_add_member(&group, &principal, &who).await?;
            println!("{principal} is a member of {group}");
        }
        DirectoryCmd::List(opts) => {
            let d = site.directory_list().await?;
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
            let parsed = parse_import(&name, &read_input("import", &file)?)?;
            let (groups, principals) = site.directory_import(parsed, &name, &who).await?;
            println!("imported {principals} principal(s), created {groups} group(s)");
        }
    }
    Ok(())
}
