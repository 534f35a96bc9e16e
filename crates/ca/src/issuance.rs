//! The issuance pipeline: from a PKCS#10 request to a stored certificate, through the
//! template's rules (published, Enroll permission, key type and size, subject rule), approval,
//! and signing by the issuing CA.

use crate::context::RequestContext;
use crate::error::{CaError, not_found, refuse};
use crate::site::{BACKDATE, CaCert, Site};
use crate::{Actor, audit_event, key_use_event};
use fleetpki_model::UnixTime;
use fleetpki_model::audit::Outcome;
use fleetpki_model::directory::{Principal, PrincipalKind};
use fleetpki_model::oid::KeyUsageBit;
use fleetpki_model::record::{CertificateRecord, NewRequest, RequestStatus};
use fleetpki_model::template::{
    KeyFamily, KeyInfo, SubjectRule, Template, check_dns_name, dns_within,
};
use fleetpki_store::{Applied, Change, Decision, StoreError};
use fleetpki_x509::cert::{self, CertParams, IssuerUrls, San};
use fleetpki_x509::csr::{self, Csr};
use fleetpki_x509::key::Signer;
use fleetpki_x509::{name, serial};
use std::sync::Arc;
use x509_cert::name::Name;

/// What a submission came to.
#[derive(Debug, Clone)]
pub enum Submitted {
    Issued {
        request_id: i64,
        certificate: Box<CertificateRecord>,
    },
    Pending {
        request_id: i64,
    },
}

/// The names the CA will write into a certificate.
#[derive(Debug, Clone)]
pub struct NamePlan {
    pub subject: Name,
    pub sans: Vec<San>,
}

/// The template is published and the principal, enabled, is in a group holding Enroll on it.
pub fn authorize(
    template: &Template,
    principal: &Principal,
    groups: &[String],
) -> Result<(), CaError> {
    if !template.published {
        return Err(refuse(
            "template",
            format!(
                "`{}` is not published on this CA: publish it with `fleetpki template publish {}`",
                template.name, template.name
            ),
        ));
    }
    if principal.disabled {
        return Err(refuse(
            "principal",
            format!("`{}` is disabled in the directory", principal.name),
        ));
    }
    let holds = template
        .grants
        .iter()
        .any(|g| g.enroll && groups.contains(&g.group));
    if !holds {
        let granted: Vec<&str> = template
            .grants
            .iter()
            .filter(|g| g.enroll)
            .map(|g| g.group.as_str())
            .collect();
        return Err(refuse(
            "principal",
            format!(
                "`{}` holds no Enroll permission on template `{}`: it is in groups [{}], and Enroll is granted to [{}]",
                principal.name,
                template.name,
                groups.join(", "),
                granted.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Applies the template's subject rule to the request and the principal's directory entry.
pub fn plan_names(
    template: &Template,
    principal: &Principal,
    csr: &Csr,
) -> Result<NamePlan, CaError> {
    match &template.subject {
        SubjectRule::FromDirectory {
            cn,
            dns,
            upn,
            email,
        } => {
            let need = |what: &str, v: &Option<String>| {
                v.clone().ok_or_else(|| {
                    refuse(
                        &format!("principal.{what}"),
                        format!(
                            "template `{}` builds the {what} from the directory, but `{}` has none",
                            template.name, principal.name
                        ),
                    )
                })
            };
            let mut sans = Vec::new();
            let mut subject = Vec::new();
            if *cn {
                let value = match principal.kind {
                    PrincipalKind::User => principal.name.clone(),
                    _ => need("dns", &principal.dns)?,
                };
                subject.push(("CN".to_string(), value));
            }
            if *dns {
                sans.push(San::Dns(need("dns", &principal.dns)?));
            }
            if *upn {
                sans.push(San::Upn(need("upn", &principal.upn)?));
            }
            if *email {
                sans.push(San::Email(need("email", &principal.email)?));
            }
            let pairs: Vec<(&str, &str)> = subject
                .iter()
                .map(|(a, v)| (a.as_str(), v.as_str()))
                .collect();
            Ok(NamePlan {
                subject: name::build(&pairs)?,
                sans,
            })
        }
        SubjectRule::SupplyInRequest {
            permitted_dns_suffixes,
        } => {
            if let Some(other) = csr.other_sans.first() {
                return Err(refuse(
                    "csr.subject_alt_name",
                    format!(
                        "`{other}` is not permitted: template `{}` accepts DNS names only",
                        template.name
                    ),
                ));
            }
            let mut dns: Vec<String> = Vec::new();
            let check = |n: &str| -> Result<String, CaError> {
                let n = n.to_ascii_lowercase();
                check_dns_name("csr.subject_alt_name", &n, false)?;
                if !permitted_dns_suffixes.is_empty()
                    && !permitted_dns_suffixes.iter().any(|s| dns_within(&n, s))
                {
                    return Err(refuse(
                        "csr.subject_alt_name",
                        format!(
                            "`{n}` is outside the permitted DNS suffixes of template `{}` ({})",
                            template.name,
                            permitted_dns_suffixes.join(", ")
                        ),
                    ));
                }
                Ok(n)
            };
            for n in &csr.dns_names {
                let n = check(n)?;
                if !dns.contains(&n) {
                    dns.push(n);
                }
            }
            if let Some(cn) = &csr.common_name {
                // A CN is the legacy place for the host name: it obeys the same suffix rule, and
                // joins the SAN so that name checking clients find it.
                let looks_dns = cn.contains('.') && !cn.contains(' ');
                if looks_dns || !permitted_dns_suffixes.is_empty() {
                    let n = check(cn).map_err(|_| {
                        refuse("csr.subject", format!("CN `{cn}` must be a DNS name within the permitted suffixes of template `{}` ({})", template.name, permitted_dns_suffixes.join(", ")))
                    })?;
                    if !dns.contains(&n) {
                        dns.push(n);
                    }
                }
            }
            if dns.is_empty() && csr.common_name.is_none() {
                return Err(refuse(
                    "csr.subject",
                    "the request names nothing: supply a CN or a subjectAltName DNS name",
                ));
            }
            Ok(NamePlan {
                subject: csr.subject.clone(),
                sans: dns.into_iter().map(San::Dns).collect(),
            })
        }
    }
}

/// The template's key usage fitted to the key: key encipherment exists only for RSA keys, so an
/// EC or Ed25519 certificate gets digitalSignature alone (RFC 5480 / RFC 8410).
pub fn effective_key_usage(template: &Template, key: &KeyInfo) -> Vec<KeyUsageBit> {
    let mut ku: Vec<KeyUsageBit> = template
        .key_usage
        .iter()
        .copied()
        .filter(|b| {
            key.family == KeyFamily::Rsa
                || !matches!(
                    b,
                    KeyUsageBit::KeyEncipherment | KeyUsageBit::DataEncipherment
                )
        })
        .filter(|b| key.family != KeyFamily::Ed25519 || *b != KeyUsageBit::KeyAgreement)
        .collect();
    if ku.is_empty() {
        ku.push(KeyUsageBit::DigitalSignature);
    }
    ku
}

/// Everything the CA checks and signs, without storage: template rules, names, signature.
pub struct Issuance<'a> {
    pub template: &'a Template,
    pub principal: &'a Principal,
    pub groups: &'a [String],
    pub issuer: &'a CaCert,
    pub urls: &'a IssuerUrls,
}

impl Issuance<'_> {
    /// Checks `csr` against the template's rules; returns the names to certify.
    pub fn check(&self, csr: &Csr) -> Result<NamePlan, CaError> {
        authorize(self.template, self.principal, self.groups)?;
        self.template.check_key(&csr.key)?;
        plan_names(self.template, self.principal, csr)
    }

    /// Signs the certificate for a checked request.
    /// The certificate the CA would sign for a checked request, checked against the template's
    /// role profile (if any) before any key is used.
    pub fn prepare(&self, csr: &Csr, plan: NamePlan, now: UnixTime) -> Result<CertParams, CaError> {
        let not_before = (now - BACKDATE).max(self.issuer.info.not_before);
        let not_after = (now + self.template.validity).min(self.issuer.info.not_after);
        if not_after <= now {
            return Err(refuse(
                "issuer",
                format!("the issuing CA {} has expired", self.issuer.info.subject),
            ));
        }
        let params = CertParams {
            serial: serial::random()?,
            subject: plan.subject,
            sans: plan.sans,
            spki_der: csr.spki_der.clone(),
            not_before,
            not_after,
            key_usage: effective_key_usage(self.template, &csr.key),
            ekus: self.template.ekus.clone(),
            ca: None,
            urls: self.urls.clone(),
        };
        crate::profile::enforce_issuance(
            self.template,
            self.principal,
            &params,
            &self.issuer.info.key,
            now,
        )?;
        Ok(params)
    }

    /// Prepares and signs the certificate for a checked request.
    pub fn sign(
        &self,
        csr: &Csr,
        plan: NamePlan,
        signer: &dyn Signer,
        now: UnixTime,
        request_id: Option<i64>,
    ) -> Result<CertificateRecord, CaError> {
        let params = self.prepare(csr, plan, now)?;
        let serial = &params.serial;
        let der = cert::issue(&params, Some(&self.issuer.cert), signer)?;
        Ok(CertificateRecord {
            serial: serial::to_hex(serial),
            template: self.template.name.clone(),
            template_version: self.template.version,
            principal: self.principal.name.clone(),
            subject: name::to_string(&params.subject),
            sans: params.sans.iter().map(san_text).collect(),
            key: csr.key.to_string(),
            not_before: params.not_before,
            not_after: params.not_after,
            request_id,
            der,
            revocation: None,
        })
    }
}

/// The planned names are the certificate's own: same subject, same SANs (in any order).
fn same_names(plan: &NamePlan, current: &CertificateRecord) -> Result<(), CaError> {
    let subject = name::to_string(&plan.subject);
    if subject != current.subject {
        return Err(refuse(
            "csr.subject",
            format!(
                "re-enrollment keeps the certificate's subject `{}`; this request would get `{subject}`",
                current.subject
            ),
        ));
    }
    let mut planned: Vec<String> = plan.sans.iter().map(san_text).collect();
    let mut held = current.sans.clone();
    planned.sort();
    held.sort();
    if planned != held {
        return Err(refuse(
            "csr.san",
            format!(
                "re-enrollment keeps the certificate's subject alternative names [{}]; this request would get [{}]",
                held.join(", "),
                planned.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The inventory record of a certificate the site issues to one of its own roles (OCSP
/// signing, site-system TLS, SCEP RA): principal `site`, no request behind it.
pub(crate) fn site_role_record(
    params: &CertParams,
    der: Vec<u8>,
    key: &fleetpki_x509::key::PrivateKey,
    template: &str,
) -> CertificateRecord {
    CertificateRecord {
        serial: serial::to_hex(&params.serial),
        template: template.to_string(),
        template_version: fleetpki_model::template::Version { major: 1, minor: 0 },
        principal: crate::responder::SITE_PRINCIPAL.to_string(),
        subject: name::to_string(&params.subject),
        sans: params.sans.iter().map(san_text).collect(),
        key: key.key_type().info().to_string(),
        not_before: params.not_before,
        not_after: params.not_after,
        request_id: None,
        der,
        revocation: None,
    }
}

impl Site {
    /// Commits a certificate the site issued to one of its own roles: its inventory record
    /// with `issued` (the issue event), and the issuing key's use for `what`, in one
    /// transaction.
    pub(crate) async fn commit_site_role_certificate(
        &self,
        record: CertificateRecord,
        issued: fleetpki_model::audit::AuditEvent,
        actor: &Actor,
        what: String,
    ) -> Result<(), CaError> {
        let key_use = key_use_event(actor, self.issuer(), what);
        self.committer
            .apply(vec![
                Change::PutCertificate {
                    certificate: Box::new(record),
                    audit: issued,
                },
                Change::Audit(key_use),
            ])
            .await?;
        Ok(())
    }

    /// Keeps a site role's key (in custody) and certificate (PEM at `path`). Key first: a crash
    /// between the two writes leaves a certificate whose key does not match, which the role's
    /// loader detects and answers by issuing again.
    pub(crate) fn keep_site_role_credentials(
        &self,
        role: crate::keys::KeyRole,
        key: &fleetpki_x509::key::PrivateKey,
        path: &std::path::Path,
        der: &[u8],
    ) -> Result<(), CaError> {
        self.custody()?.store(role, key)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(CaError::io(dir))?;
        }
        crate::keys::write_atomic(
            path,
            fleetpki_x509::pem::encode("CERTIFICATE", der).as_bytes(),
            0o644,
        )
    }
}

pub fn san_text(s: &San) -> String {
    match s {
        San::Dns(d) => format!("DNS:{d}"),
        San::Email(e) => format!("email:{e}"),
        San::Upn(u) => format!("UPN:{u}"),
        San::Ip(ip) => format!("IP:{ip}"),
    }
}

impl Site {
    /// Looks up the template and principal a request names, and the principal's groups:
    /// from the context cache while the policy version stands (one read), else the store.
    async fn request_context(
        &self,
        template: &str,
        principal: &str,
    ) -> Result<Arc<RequestContext>, CaError> {
        let version = self.store.policy_version().await?;
        if let Some(hit) = self.contexts.get(version, template, principal) {
            return Ok(hit);
        }
        let found = self
            .find_template(template)
            .await
            .map_err(CaError::referenced)?;
        let p = self.store.principal(principal).await?.ok_or_else(|| {
            refuse(
                "principal",
                format!("no principal named `{principal}` in the directory"),
            )
        })?;
        let groups = self.store.groups_of(&p.name).await?;
        let context = Arc::new(RequestContext {
            template: found,
            principal: p,
            groups,
        });
        self.contexts
            .put(version, template, principal, context.clone());
        Ok(context)
    }

    /// Submits a PKCS#10 request (PEM or DER) for `principal` under `template`. Nothing is stored
    /// unless every rule holds; the answer comes only after the certificate is committed.
    pub async fn submit(
        &self,
        template: &str,
        principal: &str,
        csr_bytes: &[u8],
        actor: &Actor,
    ) -> Result<Submitted, CaError> {
        self.submit_with(template, principal, csr_bytes, actor, Vec::new())
            .await
    }

    /// [`Site::submit`], committing `with` (e.g. a token's `ConsumeToken`) in the same
    /// transaction as the request: if either is refused, neither happens.
    pub async fn submit_with(
        &self,
        template: &str,
        principal: &str,
        csr_bytes: &[u8],
        actor: &Actor,
        with: Vec<Change>,
    ) -> Result<Submitted, CaError> {
        self.submit_checked(template, principal, csr_bytes, actor, |_| with, None)
            .await
    }

    /// [`Site::submit_with`], where the changes committed with the request are made from the
    /// certificate about to be stored (`None` when the request waits for approval): an ACME
    /// order records its certificate's serial in the same transaction that issues it.
    pub async fn submit_then(
        &self,
        template: &str,
        principal: &str,
        csr_bytes: &[u8],
        actor: &Actor,
        then: impl FnOnce(Option<&CertificateRecord>) -> Vec<Change> + Send,
    ) -> Result<Submitted, CaError> {
        self.submit_checked(template, principal, csr_bytes, actor, then, None)
            .await
    }

    /// Re-enrollment (EST `simplereenroll`, RFC 7030 §4.2.2): a new certificate for the holder
    /// of `current`, under its template and for its principal, through the same pipeline as
    /// [`Site::submit`], which must certify exactly the subject and SANs `current` has; a
    /// request that would change them is refused (on `csr.subject` / `csr.san`) before
    /// anything is stored.
    pub async fn submit_reenrollment(
        &self,
        current: &CertificateRecord,
        csr_bytes: &[u8],
        actor: &Actor,
    ) -> Result<Submitted, CaError> {
        self.submit_checked(
            &current.template,
            &current.principal,
            csr_bytes,
            actor,
            |_| Vec::new(),
            Some(current),
        )
        .await
    }

    /// The enrollment pipeline: `then` makes the changes committed with the request,
    /// `keep_names_of` (a re-enrollment) requires the names of the certificate it replaces.
    pub(crate) async fn submit_checked(
        &self,
        template: &str,
        principal: &str,
        csr_bytes: &[u8],
        actor: &Actor,
        then: impl FnOnce(Option<&CertificateRecord>) -> Vec<Change> + Send,
        keep_names_of: Option<&CertificateRecord>,
    ) -> Result<Submitted, CaError> {
        let csr = csr::parse(csr_bytes)?;
        let context = self.request_context(template, principal).await?;
        let (template, principal, groups) =
            (&context.template, &context.principal, &context.groups);
        let urls = self.urls_for(self.issuer().role);
        let job = Issuance {
            template,
            principal,
            groups,
            issuer: self.issuer(),
            urls: &urls,
        };
        let plan = job.check(&csr)?;
        if let Some(current) = keep_names_of {
            same_names(&plan, current)?;
        }
        let now = fleetpki_model::now();
        let request = NewRequest {
            template: template.name.clone(),
            template_version: template.version,
            principal: principal.name.clone(),
            submitted_by: actor.name.clone(),
            csr_der: csr.der.clone(),
            submitted_at: now,
        };
        let submit_event = |d: &str| {
            audit_event(
                actor,
                "request.submit",
                &template.name,
                Outcome::Success,
                format!(
                    "for {} ({}, {}): {d}",
                    principal.name, csr.key, csr.subject_text
                ),
            )
        };
        if template.require_approval {
            // A request that could never be issued is refused now, not after an approval.
            job.prepare(&csr, plan, now)?;
            let applied = self
                .committer
                .apply(
                    std::iter::once(Change::SubmitRequest {
                        request,
                        decision: Decision::Pending,
                        audit: vec![submit_event("pending approval")],
                    })
                    .chain(then(None))
                    .collect(),
                )
                .await?;
            return Ok(Submitted::Pending {
                request_id: request_id(&applied)?,
            });
        }
        let certificate = job.sign(
            &csr,
            plan,
            &self.issuer_key()?.signer(template.hash),
            now,
            None,
        )?;
        let audit = vec![
            submit_event("issued"),
            issue_event(actor, &certificate, self.issuer()),
            key_use_event(
                actor,
                self.issuer(),
                format!("certificate {}", certificate.serial),
            ),
        ];
        let with = then(Some(&certificate));
        let applied = self
            .committer
            .apply(
                std::iter::once(Change::SubmitRequest {
                    request,
                    decision: Decision::Issue(Box::new(certificate.clone())),
                    audit,
                })
                .chain(with)
                .collect(),
            )
            .await?;
        let request_id = request_id(&applied)?;
        Ok(Submitted::Issued {
            request_id,
            certificate: Box::new(CertificateRecord {
                request_id: Some(request_id),
                ..certificate
            }),
        })
    }

    async fn pending_request(
        &self,
        id: i64,
    ) -> Result<fleetpki_model::record::RequestRecord, CaError> {
        let req = self
            .store
            .request(id)
            .await?
            .ok_or_else(|| not_found("request", format!("no request with id {id}")))?;
        if req.status != RequestStatus::Pending {
            return Err(refuse(
                "request",
                format!("request {id} is {}, not pending", req.status.name()),
            ));
        }
        Ok(req)
    }

    /// Approves a pending request: the template's rules are checked again as they stand now,
    /// then the certificate is issued.
    pub async fn approve(&self, id: i64, actor: &Actor) -> Result<CertificateRecord, CaError> {
        let req = self.pending_request(id).await?;
        let csr = csr::parse(&req.csr_der)?;
        let context = self.request_context(&req.template, &req.principal).await?;
        let (template, principal, groups) =
            (&context.template, &context.principal, &context.groups);
        let urls = self.urls_for(self.issuer().role);
        let job = Issuance {
            template,
            principal,
            groups,
            issuer: self.issuer(),
            urls: &urls,
        };
        let plan = job.check(&csr)?;
        let now = fleetpki_model::now();
        let certificate = job.sign(
            &csr,
            plan,
            &self.issuer_key()?.signer(template.hash),
            now,
            Some(id),
        )?;
        let audit = vec![
            audit_event(
                actor,
                "request.approve",
                &id.to_string(),
                Outcome::Success,
                format!("serial {}", certificate.serial),
            ),
            issue_event(actor, &certificate, self.issuer()),
            key_use_event(
                actor,
                self.issuer(),
                format!("certificate {}", certificate.serial),
            ),
        ];
        self.committer
            .apply(vec![Change::DecideRequest {
                id,
                decided_by: actor.name.clone(),
                at: now,
                decision: Decision::Issue(Box::new(certificate.clone())),
                audit,
            }])
            .await
            .map_err(|e| decided_elsewhere(id, e))?;
        Ok(certificate)
    }

    /// Denies a pending request with a reason the requester will see.
    pub async fn deny(&self, id: i64, reason: &str, actor: &Actor) -> Result<(), CaError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 1024 {
            return Err(refuse("--reason", "give a reason of 1–1024 characters"));
        }
        self.pending_request(id).await?;
        let audit = vec![audit_event(
            actor,
            "request.deny",
            &id.to_string(),
            Outcome::Denied,
            reason,
        )];
        self.committer
            .apply(vec![Change::DecideRequest {
                id,
                decided_by: actor.name.clone(),
                at: fleetpki_model::now(),
                decision: Decision::Deny(reason.to_string()),
                audit,
            }])
            .await
            .map_err(|e| decided_elsewhere(id, e))?;
        Ok(())
    }
}

pub(crate) fn issue_event(
    actor: &Actor,
    c: &CertificateRecord,
    issuer: &CaCert,
) -> fleetpki_model::audit::AuditEvent {
    audit_event(
        actor,
        "cert.issue",
        &c.serial,
        Outcome::Success,
        format!(
            "{} {} for {} ({}), template {} v{}, signed by {} key",
            c.subject,
            c.sans.join(" "),
            c.principal,
            c.key,
            c.template,
            c.template_version,
            issuer.info.subject
        ),
    )
}

fn request_id(applied: &[Applied]) -> Result<i64, CaError> {
    match applied.first() {
        Some(Applied::Request { id }) => Ok(*id),
        _ => Err(CaError::Store(StoreError::Corrupt(
            "the store did not return the new request's id".into(),
        ))),
    }
}

fn decided_elsewhere(id: i64, e: StoreError) -> CaError {
    match e {
        StoreError::Conflict { .. } => refuse(
            "request",
            format!("request {id} was decided by someone else meanwhile"),
        ),
        other => other.into(),
    }
}
