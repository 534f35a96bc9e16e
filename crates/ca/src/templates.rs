//! Template administration: duplicate a base, edit fields (each edit a new minor version),
//! publish on the CA, grant Read / Enroll / Autoenroll, and bump the major version.

use crate::error::{CaError, not_found, refuse};
use crate::site::Site;
use crate::{Actor, audit_event};
use fleetpki_model::audit::Outcome;
use fleetpki_model::template::Template;
use fleetpki_store::Change;

impl Site {
    /// A template by name, or by display name (case-insensitive).
    pub async fn find_template(&self, name: &str) -> Result<Template, CaError> {
        if let Some(t) = self.store.template(name).await? {
            return Ok(t);
        }
        let all = self.store.templates().await?;
        let names: Vec<String> = all.iter().map(|t| t.name.clone()).collect();
        all.into_iter().find(|t| t.is_named(name)).ok_or_else(|| {
            not_found(
                "template",
                format!(
                    "no template named `{name}`; templates are: {}",
                    names.join(", ")
                ),
            )
        })
    }

    async fn put_template(
        &self,
        template: Template,
        action: &str,
        details: String,
        actor: &Actor,
    ) -> Result<Template, CaError> {
        template.validate()?;
        crate::profile::enforce_template(&template)?;
        let audit = audit_event(actor, action, &template.name, Outcome::Success, details);
        self.store
            .apply(vec![Change::PutTemplate {
                template: template.clone(),
                audit,
            }])
            .await?;
        Ok(template)
    }

    fn editable(t: &Template) -> Result<(), CaError> {
        if t.builtin {
            return Err(refuse(
                "template",
                format!(
                    "`{}` is a built-in base template and is never edited: duplicate it with `fleetpki template duplicate {} NEW-NAME`",
                    t.name, t.name
                ),
            ));
        }
        Ok(())
    }

    pub async fn template_duplicate(
        &self,
        base: &str,
        new_name: &str,
        actor: &Actor,
    ) -> Result<Template, CaError> {
        let base = self.find_template(base).await?;
        let existing = self.store.templates().await?;
        if let Some(t) = existing
            .iter()
            .find(|t| t.is_named(new_name) || new_name.eq_ignore_ascii_case(&t.display_name))
        {
            return Err(refuse(
                "template.name",
                format!("`{new_name}` is already taken by template `{}`", t.name),
            ));
        }
        let copy = base.duplicate(new_name)?;
        let details = format!("duplicated from {} v{}", base.name, base.version);
        self.put_template(copy, "template.duplicate", details, actor)
            .await
    }

    /// Applies `edits` (field, value) as one new minor version.
    pub async fn template_set(
        &self,
        name: &str,
        edits: &[(String, String)],
        actor: &Actor,
    ) -> Result<Template, CaError> {
        if edits.is_empty() {
            return Err(refuse(
                "template set",
                "name at least one --FIELD VALUE to change",
            ));
        }
        let mut t = self.find_template(name).await?;
        Self::editable(&t)?;
        for (field, value) in edits {
            t.set_field(field, value)?;
        }
        t.next_minor();
        let details = format!(
            "v{}: {}",
            t.version,
            edits
                .iter()
                .map(|(f, v)| format!("{f}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        self.put_template(t, "template.set", details, actor).await
    }

    pub async fn template_publish(
        &self,
        name: &str,
        published: bool,
        actor: &Actor,
    ) -> Result<Template, CaError> {
        let mut t = self.find_template(name).await?;
        if t.published == published {
            return Ok(t);
        }
        t.published = published;
        let action = if published {
            "template.publish"
        } else {
            "template.unpublish"
        };
        let details = format!("v{}", t.version);
        self.put_template(t, action, details, actor).await
    }

    pub async fn template_grant(
        &self,
        name: &str,
        group: &str,
        read: bool,
        enroll: bool,
        autoenroll: bool,
        actor: &Actor,
    ) -> Result<Template, CaError> {
        if !(read || enroll || autoenroll) {
            return Err(refuse(
                "template grant",
                "name at least one of --read, --enroll, --autoenroll",
            ));
        }
        let mut t = self.find_template(name).await?;
        if self.store.group(group).await?.is_none() {
            return Err(refuse(
                "--group",
                format!(
                    "no group named `{group}` in the directory: add it with `fleetpki directory add-group {group}`"
                ),
            ));
        }
        t.grant(group, read, enroll, autoenroll);
        let g = t.grants.iter().find(|g| g.group == group).cloned();
        let details = format!(
            "{group}: {}",
            g.map(|g| perms(g.read, g.enroll, g.autoenroll))
                .unwrap_or_default()
        );
        self.put_template(t, "template.grant", details, actor).await
    }

    pub async fn template_revoke_grant(
        &self,
        name: &str,
        group: &str,
        read: bool,
        enroll: bool,
        autoenroll: bool,
        actor: &Actor,
    ) -> Result<Template, CaError> {
        let mut t = self.find_template(name).await?;
        if !t.revoke_grant(group, read, enroll, autoenroll) {
            return Err(refuse(
                "--group",
                format!("template `{}` grants nothing to `{group}`", t.name),
            ));
        }
        let details = format!(
            "{group}: removed {}",
            if read || enroll || autoenroll {
                perms(read, enroll, autoenroll)
            } else {
                "all".into()
            }
        );
        self.put_template(t, "template.revoke-grant", details, actor)
            .await
    }

    /// Raises the major version: every holder re-enrolls.
    pub async fn template_bump(&self, name: &str, actor: &Actor) -> Result<Template, CaError> {
        let mut t = self.find_template(name).await?;
        Self::editable(&t)?;
        t.next_major();
        let details = format!("v{}: every holder re-enrolls", t.version);
        self.put_template(t, "template.bump", details, actor).await
    }
}

fn perms(read: bool, enroll: bool, autoenroll: bool) -> String {
    [
        (read, "Read"),
        (enroll, "Enroll"),
        (autoenroll, "Autoenroll"),
    ]
    .into_iter()
    .filter_map(|(on, n)| on.then_some(n))
    .collect::<Vec<_>>()
    .join("+")
}
