//! Directory administration: computers, users, services, groups and membership, single or in
//! bulk from JSON or CSV.

use crate::error::{CaError, not_found, refuse};
use crate::site::Site;
use crate::{Actor, audit_event};
use fleetpki_model::audit::Outcome;
use fleetpki_model::directory::{Group, Principal, PrincipalKind};
use fleetpki_store::Change;
use serde::{Deserialize, Serialize};

/// A principal with its groups, as imported and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub principal: Principal,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The JSON import/export shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFile {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub principals: Vec<Entry>,
}

impl Site {
    /// Adds a new principal and its memberships; every named group must exist.
    pub async fn directory_add(
        &self,
        principal: Principal,
        groups: &[String],
        actor: &Actor,
    ) -> Result<(), CaError> {
        principal.validate()?;
        if self.store.principal(&principal.name).await?.is_some() {
            return Err(refuse(
                "principal.name",
                format!("`{}` already exists in the directory", principal.name),
            ));
        }
        for g in groups {
            if self.store.group(g).await?.is_none() {
                return Err(refuse(
                    "--group",
                    format!(
                        "no group named `{g}`: add it first with `fleetpki directory add-group {g}`"
                    ),
                ));
            }
        }
        let mut changes = vec![put_principal(&principal, actor)];
        changes.extend(groups.iter().map(|g| add_member(g, &principal.name, actor)));
        self.store.apply(changes).await?;
        Ok(())
    }

    pub async fn directory_add_group(&self, name: &str, actor: &Actor) -> Result<(), CaError> {
        let group = Group {
            name: name.to_string(),
        };
        group.validate()?;
        if self.store.group(name).await?.is_some() {
            return Err(refuse("group.name", format!("`{name}` already exists")));
        }
        let audit = audit_event(actor, "directory.add-group", name, Outcome::Success, "");
        self.store
            .apply(vec![Change::PutGroup { group, audit }])
            .await?;
        Ok(())
    }

    pub async fn directory_add_member(
        &self,
        group: &str,
        principal: &str,
        actor: &Actor,
    ) -> Result<(), CaError> {
        if self.store.group(group).await?.is_none() {
            return Err(not_found("group", format!("no group named `{group}`")));
        }
        if self.store.principal(principal).await?.is_none() {
            return Err(refuse(
                "principal",
                format!("no principal named `{principal}`"),
            ));
        }
        self.store
            .apply(vec![add_member(group, principal, actor)])
            .await?;
        Ok(())
    }

    /// Every principal with its groups, and every group.
    pub async fn directory_list(&self) -> Result<DirectoryFile, CaError> {
        let groups = self
            .store
            .groups()
            .await?
            .into_iter()
            .map(|g| g.name)
            .collect();
        let mut principals = Vec::new();
        for p in self.store.principals().await? {
            let groups = self.store.groups_of(&p.name).await?;
            principals.push(Entry {
                principal: p,
                groups,
            });
        }
        Ok(DirectoryFile { groups, principals })
    }

    /// Imports groups and principals all-or-nothing: existing principals are updated, new
    /// groups created, memberships added. Returns (groups created, principals written).
    pub async fn directory_import(
        &self,
        file: DirectoryFile,
        source_name: &str,
        actor: &Actor,
    ) -> Result<(usize, usize), CaError> {
        let mut groups: Vec<String> = file.groups.clone();
        for e in &file.principals {
            for g in &e.groups {
                if !groups.contains(g) {
                    groups.push(g.clone());
                }
            }
        }
        let mut changes = Vec::new();
        let mut created = 0;
        for g in &groups {
            let group = Group { name: g.clone() };
            group
                .validate()
                .map_err(|e| refuse(&format!("{source_name}: {}", e.field), e.rule))?;
            if self.store.group(g).await?.is_none() {
                created += 1;
                changes.push(Change::PutGroup {
                    group,
                    audit: audit_event(
                        actor,
                        "directory.add-group",
                        g,
                        Outcome::Success,
                        format!("imported from {source_name}"),
                    ),
                });
            }
        }
        for (i, e) in file.principals.iter().enumerate() {
            e.principal.validate().map_err(|err| {
                refuse(
                    &format!(
                        "{source_name} entry {} ({}): {}",
                        i + 1,
                        e.principal.name,
                        err.field
                    ),
                    err.rule,
                )
            })?;
            if file.principals[..i]
                .iter()
                .any(|o| o.principal.name == e.principal.name)
            {
                return Err(refuse(
                    &format!("{source_name} entry {}", i + 1),
                    format!("`{}` appears twice", e.principal.name),
                ));
            }
            changes.push(put_principal(&e.principal, actor));
            changes.extend(
                e.groups
                    .iter()
                    .map(|g| add_member(g, &e.principal.name, actor)),
            );
        }
        self.store.apply(changes).await?;
        Ok((created, file.principals.len()))
    }
}

/// Parses a directory file: JSON (`{"groups": [...], "principals": [...]}`) or CSV with the
/// header `kind,name,dns,email,upn,groups` (groups separated by `;`).
pub fn parse_import(file_name: &str, bytes: &[u8]) -> Result<DirectoryFile, CaError> {
    let text = std::str::from_utf8(bytes).map_err(|_| refuse(file_name, "is not UTF-8 text"))?;
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| {
            refuse(
                file_name,
                format!(
                    "invalid directory JSON at line {}, column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        });
    }
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| refuse(file_name, format!("unreadable CSV header: {e}")))?
        .clone();
    let want = ["kind", "name", "dns", "email", "upn", "groups"];
    if headers.iter().collect::<Vec<_>>() != want {
        return Err(refuse(
            file_name,
            format!("the CSV header must be `{}`", want.join(",")),
        ));
    }
    let mut out = DirectoryFile::default();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| refuse(&format!("{file_name} line {line}"), e.to_string()))?;
        let opt = |k: usize| rec.get(k).map(str::to_string).filter(|s| !s.is_empty());
        let kind = PrincipalKind::parse(
            &format!("{file_name} line {line}: kind"),
            rec.get(0).unwrap_or(""),
        )?;
        let principal = Principal {
            name: rec.get(1).unwrap_or("").to_string(),
            kind,
            dns: opt(2),
            email: opt(3),
            upn: opt(4),
            disabled: false,
        };
        let groups = rec
            .get(5)
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        out.principals.push(Entry { principal, groups });
    }
    Ok(out)
}

fn put_principal(p: &Principal, actor: &Actor) -> Change {
    let details = format!(
        "{} dns={} email={} upn={}",
        p.kind.name(),
        p.dns.as_deref().unwrap_or("-"),
        p.email.as_deref().unwrap_or("-"),
        p.upn.as_deref().unwrap_or("-")
    );
    Change::PutPrincipal {
        principal: p.clone(),
        audit: audit_event(actor, "directory.put", &p.name, Outcome::Success, details),
    }
}

fn add_member(group: &str, principal: &str, actor: &Actor) -> Change {
    Change::AddMember {
        group: group.to_string(),
        principal: principal.to_string(),
        audit: audit_event(
            actor,
            "directory.add-member",
            principal,
            Outcome::Success,
            format!("to {group}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_import_parses_and_names_lines() {
        let csv = "kind,name,dns,email,upn,groups\ncomputer,PC1,pc1.fleet.test,,,Workstations;All\nuser,alice,,alice@fleet.test,alice@fleet.test,\n";
        let f = parse_import("d.csv", csv.as_bytes()).unwrap();
        assert_eq!(f.principals.len(), 2);
        assert_eq!(f.principals[0].groups, vec!["Workstations", "All"]);
        let bad = "kind,name,dns,email,upn,groups\nrobot,R1,,,,\n";
        let e = parse_import("d.csv", bad.as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("d.csv line 2: kind:"), "{e}");
        assert!(
            parse_import("d.csv", b"name,kind\n")
                .unwrap_err()
                .to_string()
                .contains("header")
        );
    }
}
