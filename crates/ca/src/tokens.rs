//! One-time enrollment tokens: an administrator issues one for a principal (optionally for one
//! template); its holder enrolls once, before it expires. Only the secret's hash is stored.

use crate::error::refuse;
use crate::issuance::Submitted;
use crate::{Actor, CaError, Site, audit_event};
use fleetpki_model::audit::Outcome;
use fleetpki_model::site::EnrollToken;
use fleetpki_store::Change;

/// Longest a token may live.
pub const MAX_TTL_SECS: i64 = 30 * 86_400;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

fn random_hex(n: usize) -> Result<String, CaError> {
    let mut raw = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut raw)
        .map_err(|_| refuse("token", "the system random generator failed"))?;
    Ok(hex::encode(raw))
}

/// A token as its holder presents it: `ID.SECRET`.
pub struct Presented<'a> {
    pub id: &'a str,
    pub secret: &'a str,
}

impl<'a> Presented<'a> {
    pub fn parse(text: &'a str) -> Result<Self, CaError> {
        let (id, secret) = text.trim().split_once('.').ok_or_else(|| {
            refuse(
                "token",
                "expected ID.SECRET, as `fleetpki token create` printed it",
            )
        })?;
        if id.is_empty() || secret.is_empty() || id.len() > 64 || secret.len() > 128 {
            return Err(refuse(
                "token",
                "expected ID.SECRET, as `fleetpki token create` printed it",
            ));
        }
        Ok(Presented { id, secret })
    }

    pub fn secret_sha256(&self) -> String {
        sha256_hex(self.secret.as_bytes())
    }
}

impl Site {
    /// Creates a token for `principal` (which must exist), valid for `ttl_secs`. Returns the
    /// stored token and the text to hand to its holder (`ID.SECRET`, shown once).
    pub async fn token_create(
        &self,
        principal: &str,
        template: Option<&str>,
        ttl_secs: i64,
        actor: &Actor,
    ) -> Result<(EnrollToken, String), CaError> {
        if !(60..=MAX_TTL_SECS).contains(&ttl_secs) {
            return Err(refuse(
                "--expires",
                "a token lives between one minute and 30 days",
            ));
        }
        let principal = self.store.principal(principal).await?.ok_or_else(|| {
            refuse(
                "--principal",
                format!("no principal named `{principal}` in the directory"),
            )
        })?;
        let template = match template {
            Some(t) => Some(
                self.find_template(t)
                    .await
                    .map_err(CaError::referenced)?
                    .name,
            ),
            None => None,
        };
        let id = random_hex(8)?;
        let secret = random_hex(24)?;
        let now = fleetpki_model::now();
        let token = EnrollToken {
            id: id.clone(),
            principal: principal.name.clone(),
            template: template.clone(),
            secret_sha256: sha256_hex(secret.as_bytes()),
            created_at: now,
            expires_at: now + ttl_secs,
            used_at: None,
            created_by: actor.name.clone(),
        };
        self.committer
            .apply(vec![Change::CreateToken {
                token: token.clone(),
                audit: audit_event(
                    actor,
                    "token.create",
                    &id,
                    Outcome::Success,
                    format!(
                        "one-time enrollment token for {}{}, expires {}",
                        principal.name,
                        template
                            .map(|t| format!(" (template {t})"))
                            .unwrap_or_default(),
                        fleetpki_model::fmt_time(now + ttl_secs)
                    ),
                ),
            }])
            .await?;
        Ok((token, format!("{id}.{secret}")))
    }

    /// The token `presented` names, if its secret matches: whether or not it is still usable
    /// (the holder may poll the request it made with it).
    pub async fn token_check(&self, presented: &Presented<'_>) -> Result<EnrollToken, CaError> {
        let bad = || refuse("token", "unknown token or wrong secret");
        let token = self.store.token(presented.id).await?.ok_or_else(bad)?;
        let want = token.secret_sha256.as_bytes();
        let got = presented.secret_sha256();
        if aws_lc_rs::constant_time::verify_slices_are_equal(want, got.as_bytes()).is_err() {
            return Err(bad());
        }
        Ok(token)
    }

    /// Enrolls with a one-time token: the token must match, be unused and unexpired, and allow
    /// `template`; it is used up in the same transaction that stores the request.
    pub async fn submit_with_token(
        &self,
        template: &str,
        csr_bytes: &[u8],
        presented: &Presented<'_>,
        actor: &Actor,
    ) -> Result<Submitted, CaError> {
        self.submit_with_token_and(template, csr_bytes, presented, actor, Vec::new())
            .await
    }

    /// [`Site::submit_with_token`], committing `with` in the same transaction (SCEP records its
    /// transaction so).
    pub async fn submit_with_token_and(
        &self,
        template: &str,
        csr_bytes: &[u8],
        presented: &Presented<'_>,
        actor: &Actor,
        with: Vec<Change>,
    ) -> Result<Submitted, CaError> {
        let token = self.token_check(presented).await?;
        let now = fleetpki_model::now();
        if token.used_at.is_some() {
            return Err(refuse("token", "this one-time token has already been used"));
        }
        if now >= token.expires_at {
            return Err(refuse(
                "token",
                format!("expired at {}", fleetpki_model::fmt_time(token.expires_at)),
            ));
        }
        let template = self
            .find_template(template)
            .await
            .map_err(CaError::referenced)?;
        if let Some(only) = &token.template
            && *only != template.name
        {
            return Err(refuse(
                "template",
                format!("this token is for template `{only}` only"),
            ));
        }
        let consume = Change::ConsumeToken {
            id: token.id.clone(),
            secret_sha256: presented.secret_sha256(),
            at: now,
            audit: audit_event(
                actor,
                "token.use",
                &token.id,
                Outcome::Success,
                format!("enrollment for {} under {}", token.principal, template.name),
            ),
        };
        self.submit_with(
            &template.name,
            &token.principal,
            csr_bytes,
            actor,
            std::iter::once(consume).chain(with).collect(),
        )
        .await
        .map_err(|e| match e {
            // The token was used or expired between the check and the commit.
            CaError::Store(fleetpki_store::StoreError::Conflict { why, .. }) => {
                refuse("token", why)
            }
            e => e,
        })
    }
}
