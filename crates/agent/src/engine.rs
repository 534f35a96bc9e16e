//! One certificate-maintenance cycle (SPEC §5): select the identity to present, register,
//! fetch and verify the policy, then for each autoenroll template enroll, renew, re-enroll or
//! replace as due, writing one maintenance-log line per decision.

use crate::client::{Answer, ClientError, Presented, ServerTrust, SiteClient, StatusMessage};
use crate::config::AgentConfig;
use crate::files::{self, FileError};
use crate::identity::{self, Identity, IdentityError};
use crate::renewal::{self, RenewalRule};
use crate::schedule;
use crate::select::{self, Candidate, Context, Outcome, Selection};
use crate::store::{AgentStore, ArchiveReason, CertMeta, Entry, Source, StoreError, StoreName};
use crate::trust::{self, Pins, TrustError};
use fleetpki_model::{UnixTime, fmt_time};
use fleetpki_policy::{Policy, PolicyError, PolicyTemplate};
use fleetpki_x509::key::{KeyType, PrivateKey};
use fleetpki_x509::{X509Error, csr, name, pem};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub const STATE_FILE: &str = "state.json";
pub const POLICY_FILE: &str = "policy.json";
pub const LOG_FILE: &str = "certificate-maintenance.log";
const CHAIN_FILE: &str = "chain.pem";
const PENDING_DIR: &str = "pending";

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    X509(#[from] X509Error),
    #[error("{field}: {rule}")]
    Invalid { field: String, rule: String },
}

/// What the agent remembers between cycles (`state.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentState {
    /// The version of the last good policy; an older one is refused.
    #[serde(default)]
    pub policy_version: i64,
    /// SHA-256 of the identity certificate last registered, and the answer.
    #[serde(default)]
    pub registered: Option<(String, String)>,
    /// Requests waiting for approval, by template.
    #[serde(default)]
    pub pending: BTreeMap<String, PendingRequest>,
    /// Consecutive failed cycles (for backoff).
    #[serde(default)]
    pub failures: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingRequest {
    pub request_id: i64,
    /// File under `pending/` holding the request's key (0600) until the certificate arrives.
    pub key_file: String,
    pub submitted_at: UnixTime,
    /// Why the request was made (what it will replace).
    pub reason: String,
    pub major: u32,
}

/// What the agent did about one thing in a cycle.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Decision {
    pub at: UnixTime,
    pub template: Option<String>,
    pub action: String,
    pub reason: String,
    pub serial: Option<String>,
    pub next_due: Option<UnixTime>,
}

impl Decision {
    /// The maintenance-log line: time, what, why, next due time.
    pub fn log_line(&self) -> String {
        let mut line = format!("{} action={}", fmt_time(self.at), self.action);
        if let Some(t) = &self.template {
            line.push_str(&format!(" template=\"{t}\""));
        }
        if let Some(s) = &self.serial {
            line.push_str(&format!(" serial={s}"));
        }
        line.push_str(&format!(" reason=\"{}\"", self.reason.replace('"', "'")));
        if let Some(n) = self.next_due {
            line.push_str(&format!(" next_due={}", fmt_time(n)));
        }
        line
    }
}

/// A cycle's account.
#[derive(Clone, Debug, Serialize)]
pub struct CycleReport {
    pub decisions: Vec<Decision>,
    /// When the next cycle should start (before jitter).
    pub next_run: UnixTime,
    /// False when the cycle could not reach the site or refused what it got.
    pub ok: bool,
    /// HTTP requests the cycle sent (management point and fallback status point).
    pub requests: u64,
}

/// An installed agent: its directory, configuration, pins and store.
pub struct Agent {
    pub dir: PathBuf,
    pub config: AgentConfig,
    pub pins: Pins,
    pub store: AgentStore,
    /// The directory's maintenance lock, when opened with [`Agent::open_exclusive`]; held
    /// for the agent's lifetime.
    _lock: Option<files::DirLock>,
}

/// Which certificate the agent presents to the management point.
enum Presenting {
    Certificate(Box<Entry>),
    Identity(Identity),
}

impl Agent {
    /// Opens the agent to read it (status, list, select, export): no lock, so it works while
    /// the agent's own process runs.
    pub fn open(dir: &Path) -> Result<Self, AgentError> {
        let config = AgentConfig::load(dir)?;
        let pins = trust::load_pins(dir, &config)?;
        let store = AgentStore::open(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            pins,
            store,
            _lock: None,
        })
    }

    /// Opens the agent to maintain it (cycles, imports): takes the directory's lock first, so
    /// a second process (a `run --once` beside the daemon) is refused rather than enrolling
    /// twice and overwriting the first's state.
    pub fn open_exclusive(dir: &Path) -> Result<Self, AgentError> {
        let lock = files::lock_dir(dir)?;
        Ok(Self {
            _lock: Some(lock),
            ..Self::open(dir)?
        })
    }

    pub fn state(&self) -> Result<AgentState, AgentError> {
        let path = self.dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(AgentState::default());
        }
        let text = files::read_to_string(&path)?;
        serde_json::from_str(&text).map_err(|e| {
            AgentError::from(FileError::Invalid {
                path: path.display().to_string(),
                rule: e.to_string(),
            })
        })
    }

    fn save_state(&self, state: &AgentState) -> Result<(), AgentError> {
        let text = serde_json::to_vec_pretty(state).map_err(|e| AgentError::Invalid {
            field: "state".into(),
            rule: e.to_string(),
        })?;
        Ok(files::write_atomic(
            &self.dir.join(STATE_FILE),
            &text,
            false,
        )?)
    }

    /// The last good policy, verified again against the pins (any version).
    pub fn held_policy(&self) -> Result<Option<Policy>, AgentError> {
        let path = self.dir.join(POLICY_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = files::read_to_string(&path)?;
        Ok(Some(trust::verify_policy(
            &self.pins,
            &text,
            &self.config.name,
            0,
        )?))
    }

    /// The policy selection runs under: the held one, or the defaults before the first.
    fn selection_policy(&self, now: UnixTime) -> Result<Policy, AgentError> {
        Ok(self
            .held_policy()?
            .unwrap_or_else(|| Policy::new("", 1, now, &self.config.name)))
    }

    /// CA certificates the site handed out (root first or last, as served).
    fn site_chain(&self) -> Vec<Vec<u8>> {
        std::fs::read(self.dir.join(trust::TRUST_DIR).join(CHAIN_FILE))
            .ok()
            .and_then(|b| pem::decode_all("chain", &b, "CERTIFICATE").ok())
            .unwrap_or_default()
    }

    /// Runs client certificate selection over the policy's stores (`select --explain`).
    pub fn select(&self, now: UnixTime) -> Result<(Selection, Vec<Entry>), AgentError> {
        let policy = self.selection_policy(now)?;
        self.select_with(&policy, now)
    }

    fn select_with(
        &self,
        policy: &Policy,
        now: UnixTime,
    ) -> Result<(Selection, Vec<Entry>), AgentError> {
        let mut entries = Vec::new();
        let mut candidates = Vec::new();
        for name in &policy.stores {
            let Some(store) = StoreName::ALL
                .into_iter()
                .find(|s| s.dir_name() == name && *s != StoreName::Archive)
            else {
                continue;
            };
            for e in self.store.list(store)?.entries {
                candidates.push(Candidate {
                    store: store.dir_name().to_string(),
                    file: e.stem.clone(),
                    der: e.der.clone(),
                    has_key: e.has_key,
                });
                entries.push(e);
            }
        }
        let mut roots = vec![self.pins.root.clone()];
        roots.extend(
            self.store
                .list(StoreName::Root)?
                .entries
                .into_iter()
                .map(|e| e.der)
                .filter(|d| *d != self.pins.root),
        );
        let intermediates: Vec<Vec<u8>> = self
            .site_chain()
            .into_iter()
            .filter(|d| !roots.contains(d))
            .collect();
        let ctx = Context {
            computer: &self.config.name,
            fqdn: self.config.fqdn.as_deref(),
            now,
            trusted_roots: &roots,
            intermediates: &intermediates,
            policy,
        };
        Ok((select::select(&candidates, &ctx), entries))
    }

    fn log(&self, decisions: &mut Vec<Decision>, d: Decision) {
        // The log is the administrator's record; failing to write it must not stop the cycle.
        if let Err(e) = files::append_line(&self.dir.join(LOG_FILE), &d.log_line()) {
            tracing::warn!("cannot write the maintenance log: {e}");
        }
        tracing::info!(target: "fleetpki::agent", "{}", d.log_line());
        decisions.push(d);
    }

    async fn report(
        &self,
        requests: &AtomicU64,
        policy: Option<&Policy>,
        kind: &str,
        message: String,
        details: serde_json::Value,
    ) {
        let url = policy
            .and_then(|p| p.fallback_status_point.clone())
            .or_else(|| self.config.status_url.clone());
        let Some(url) = url else {
            tracing::warn!("no fallback status point known; not reported: {kind}: {message}");
            return;
        };
        let msg = StatusMessage {
            client: self.config.name.clone(),
            kind: kind.to_string(),
            message: message.chars().take(1000).collect(),
            details,
        };
        requests.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = crate::client::report(&url, &msg).await {
            tracing::warn!("fallback status point: {e}");
        }
    }

    /// One cycle at `now`. Errors reaching the site end the cycle with `ok = false` and are
    /// logged; only local failures (store, files) are returned as errors.
    pub async fn cycle(&self, now: UnixTime) -> Result<CycleReport, AgentError> {
        let requests = Arc::new(AtomicU64::new(0));
        let mut report = self.cycle_counted(now, &requests).await?;
        report.requests = requests.load(Ordering::Relaxed);
        Ok(report)
    }

    async fn cycle_counted(
        &self,
        now: UnixTime,
        requests: &Arc<AtomicU64>,
    ) -> Result<CycleReport, AgentError> {
        let mut state = self.state()?;
        let mut decisions = Vec::new();
        self.finish_interrupted_replacements(now, &mut decisions)?;
        let held = self.held_policy()?;
        let policy_for_selection = held
            .clone()
            .unwrap_or_else(|| Policy::new("", 1, now, &self.config.name));
        let interval = policy_for_selection.schedule.interval_secs;
        let fail = |decisions: Vec<Decision>, state: &mut AgentState| {
            state.failures = state.failures.saturating_add(1);
            CycleReport {
                decisions,
                next_run: now + interval,
                ok: false,
                requests: 0,
            }
        };

        // 1. Which certificate to present.
        let (selection, entries) = self.select_with(&policy_for_selection, now)?;
        let presenting = match &selection.outcome {
            Outcome::Selected { index, .. } => match entries.get(*index) {
                Some(e) => Presenting::Certificate(Box::new(e.clone())),
                None => Presenting::Identity(identity::load(&self.dir)?),
            },
            Outcome::NoCandidate => Presenting::Identity(identity::load(&self.dir)?),
            Outcome::Ambiguous { serials, .. } => {
                let message = selection.fallback_message().unwrap_or_else(|| {
                    format!(
                        "client certificate selection failed: {} candidates",
                        serials.len()
                    )
                });
                self.log(
                    &mut decisions,
                    Decision {
                        at: now,
                        template: None,
                        action: "selection-failed".into(),
                        reason: format!("{message}; the management point is not contacted"),
                        serial: None,
                        next_due: None,
                    },
                );
                self.report(
                    requests,
                    held.as_ref(),
                    "selection-failed",
                    message,
                    serde_json::json!({ "candidates": serials }),
                )
                .await;
                let r = fail(decisions, &mut state);
                self.save_state(&state)?;
                return Ok(r);
            }
        };
        // 2. Reach the management point: with the selected certificate, or the registration
        // identity (registering it first); a selected certificate the management point refuses
        // (revoked since the last CRL the agent saw, say) falls back to the identity.
        let mut attempts = vec![presenting];
        if matches!(attempts[0], Presenting::Certificate(_)) {
            attempts.push(Presenting::Identity(identity::load(&self.dir)?));
        }
        let last = attempts.len() - 1;
        let mut connected = None;
        for (i, presenting) in attempts.iter().enumerate() {
            match self
                .connect(presenting, requests, &mut state, now, &mut decisions)
                .await
            {
                Ok(Some(c)) => {
                    connected = Some(c);
                    break;
                }
                Ok(None) => {
                    // Registered, waiting for an administrator's approval.
                    self.save_state(&state)?;
                    return Ok(CycleReport {
                        decisions,
                        next_run: now + interval,
                        ok: true,
                        requests: 0,
                    });
                }
                Err((what, e)) => {
                    if i < last && matches!(e, ClientError::Unreachable { .. }) {
                        self.log(
                            &mut decisions,
                            Decision {
                                at: now,
                                template: None,
                                action: "fallback".into(),
                                reason: format!(
                                    "the management point did not accept the selected certificate ({e}); trying the registration identity"
                                ),
                                serial: None,
                                next_due: None,
                            },
                        );
                        continue;
                    }
                    self.log(&mut decisions, failure(now, None, what, &e));
                    let r = fail(decisions, &mut state);
                    self.save_state(&state)?;
                    return Ok(r);
                }
            }
        }
        let Some((client, text)) = connected else {
            let r = fail(decisions, &mut state);
            self.save_state(&state)?;
            return Ok(r);
        };

        // 3. The policy: verified before use; a bad one leaves the last good one in force.
        let policy = match trust::verify_policy(
            &self.pins,
            &text,
            &self.config.name,
            state.policy_version,
        ) {
            Ok(p) => {
                if p.version != state.policy_version {
                    self.log(&mut decisions, Decision {
                            at: now,
                            template: None,
                            action: "policy".into(),
                            reason: format!(
                                "policy version {} verified (signed by the pinned site signing certificate): {} template(s)",
                                p.version,
                                p.templates.len()
                            ),
                            serial: None,
                            next_due: None,
                        });
                }
                files::write_atomic(&self.dir.join(POLICY_FILE), text.as_bytes(), false)?;
                state.policy_version = p.version;
                Some(p)
            }
            Err(e) => {
                let kind = match &e {
                    TrustError::Policy(PolicyError::SignerMismatch { .. }) => "trust-changed",
                    _ => "policy-invalid",
                };
                self.log(
                    &mut decisions,
                    Decision {
                        at: now,
                        template: None,
                        action: "policy-refused".into(),
                        reason: format!("{e}; keeping policy version {}", state.policy_version),
                        serial: None,
                        next_due: None,
                    },
                );
                self.report(
                    requests,
                    held.as_ref(),
                    kind,
                    format!("policy refused: {e}"),
                    serde_json::Value::Null,
                )
                .await;
                state.failures = state.failures.saturating_add(1);
                held.clone()
            }
        };
        let Some(policy) = policy else {
            let r = fail(decisions, &mut state);
            self.save_state(&state)?;
            return Ok(r);
        };

        // 4. The chain (kept for selection and for presenting) and the CRL.
        if let Ok(chain) = client.chain().await {
            let text: String = chain
                .iter()
                .map(|d| pem::encode("CERTIFICATE", d))
                .collect();
            files::write_atomic(
                &self.dir.join(trust::TRUST_DIR).join(CHAIN_FILE),
                text.as_bytes(),
                false,
            )?;
        }
        let revoked = self.revoked_serials(&client).await;

        // 5. Each template.
        let mut next_due: Option<UnixTime> = None;
        let mut ok = true;
        for t in &policy.templates {
            match self
                .maintain(
                    &client,
                    &policy,
                    t,
                    now,
                    &mut state,
                    revoked.as_ref(),
                    &mut decisions,
                )
                .await
            {
                Ok(due) => {
                    if let Some(d) = due {
                        next_due = Some(next_due.map_or(d, |n| n.min(d)));
                    }
                }
                Err(e) => {
                    ok = false;
                    let kind = "enrollment-failed";
                    self.log(
                        &mut decisions,
                        Decision {
                            at: now,
                            template: Some(t.name.clone()),
                            action: "failed".into(),
                            reason: e.to_string(),
                            serial: None,
                            next_due: None,
                        },
                    );
                    self.report(
                        requests,
                        Some(&policy),
                        kind,
                        format!("{}: {e}", t.name),
                        serde_json::Value::Null,
                    )
                    .await;
                }
            }
        }
        if ok {
            state.failures = 0;
        } else {
            state.failures = state.failures.saturating_add(1);
        }
        self.save_state(&state)?;
        let interval = policy.schedule.interval_secs;
        let next_run = next_due.map_or(now + interval, |d| d.clamp(now + 1, now + interval));
        Ok(CycleReport {
            decisions,
            next_run,
            ok,
            requests: 0,
        })
    }

    /// A replacement stores the new certificate before archiving the old one, so a crash in
    /// between leaves two autoenrolled certificates of one template in `personal/` — which
    /// would also make client certificate selection ambiguous. Finish the job: keep the newest
    /// (latest notAfter, then notBefore), archive the others as replaced.
    fn finish_interrupted_replacements(
        &self,
        now: UnixTime,
        decisions: &mut Vec<Decision>,
    ) -> Result<(), AgentError> {
        let mut by_template: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for e in self.store.list(StoreName::Personal)?.entries {
            if e.meta.source == Source::Autoenroll
                && let Some(t) = e.meta.template.clone()
            {
                by_template.entry(t).or_default().push(e);
            }
        }
        for (template, mut entries) in by_template {
            if entries.len() < 2 {
                continue;
            }
            entries.sort_by_key(|e| (e.info.not_after, e.info.not_before, e.added_at));
            let Some(newest) = entries.pop() else {
                continue;
            };
            for old in entries {
                self.store.archive(&old, ArchiveReason::Replaced, now)?;
                self.log(
                    decisions,
                    Decision {
                        at: now,
                        template: Some(template.clone()),
                        action: "archive".into(),
                        reason: format!(
                            "replaced by {} (finishing a replacement that was interrupted)",
                            newest.info.serial_hex
                        ),
                        serial: Some(old.info.serial_hex.clone()),
                        next_due: None,
                    },
                );
            }
        }
        Ok(())
    }

    /// Connects presenting `presenting`, registers an identity that is not yet approved, and
    /// fetches the signed policy. `Ok(None)`: registered, waiting for approval.
    async fn connect(
        &self,
        presenting: &Presenting,
        requests: &Arc<AtomicU64>,
        state: &mut AgentState,
        now: UnixTime,
        decisions: &mut Vec<Decision>,
    ) -> Result<Option<(SiteClient, String)>, (&'static str, ClientError)> {
        let key;
        let presented = match presenting {
            Presenting::Certificate(e) => {
                key = self.store.key(e).map_err(|e| {
                    (
                        "key",
                        ClientError::Setup {
                            field: "key".into(),
                            rule: e.to_string(),
                        },
                    )
                })?;
                let mut chain = vec![e.der.clone()];
                chain.extend(
                    self.site_chain()
                        .into_iter()
                        .filter(|d| *d != self.pins.root),
                );
                Presented { chain, key: &key }
            }
            Presenting::Identity(id) => Presented {
                chain: vec![id.der.clone()],
                key: &id.key,
            },
        };
        let client = SiteClient::new(
            &self.config.site,
            ServerTrust::Pinned(&self.pins.root),
            Some(presented),
        )
        .map_err(|e| ("connect", e))?
        .counting(requests.clone());
        if let Presenting::Identity(id) = presenting {
            let sha = fleetpki_x509::cert::fingerprint(&id.der);
            let registered = state
                .registered
                .as_ref()
                .is_some_and(|(s, st)| *s == sha && st == "approved");
            if !registered {
                let r = client
                    .register(&self.config.name)
                    .await
                    .map_err(|e| ("register", e))?;
                self.log(
                    decisions,
                    Decision {
                        at: now,
                        template: None,
                        action: "register".into(),
                        reason: format!("registered the self-signed identity {sha}: {}", r.status),
                        serial: None,
                        next_due: None,
                    },
                );
                let approved = r.status == "approved";
                state.registered = Some((sha, r.status));
                if !approved {
                    return Ok(None);
                }
            }
        }
        let text = client.policy().await.map_err(|e| ("policy", e))?;
        Ok(Some((client, text)))
    }

    /// Serials (hex) on the issuing CA's CRL, when it could be fetched and verified.
    async fn revoked_serials(&self, client: &SiteClient) -> Option<BTreeSet<String>> {
        let der = client.crl().await.ok()?;
        let chain = self.site_chain();
        let verified = chain.iter().any(|ca| {
            fleetpki_x509::cert::parse("ca", ca)
                .ok()
                .is_some_and(|c| fleetpki_x509::crl::verify_signed_by(&der, &c).is_ok())
        });
        if !verified {
            tracing::warn!(
                "the CRL from the management point does not verify with the site chain; ignored"
            );
            return None;
        }
        let crl = fleetpki_x509::crl::parse("crl", &der).ok()?;
        let info = fleetpki_x509::crl::info(&crl).ok()?;
        Some(
            info.revoked
                .iter()
                .map(|(s, _)| fleetpki_x509::serial::to_hex(s))
                .collect(),
        )
    }

    /// Keeps one template's certificate current; returns when it next falls due.
    #[allow(clippy::too_many_arguments)]
    async fn maintain(
        &self,
        client: &SiteClient,
        policy: &Policy,
        t: &PolicyTemplate,
        now: UnixTime,
        state: &mut AgentState,
        revoked: Option<&BTreeSet<String>>,
        decisions: &mut Vec<Decision>,
    ) -> Result<Option<UnixTime>, AgentError> {
        let holders: Vec<Entry> = self
            .store
            .list(StoreName::Personal)?
            .entries
            .into_iter()
            .filter(|e| e.meta.template.as_deref() == Some(t.name.as_str()))
            .collect();
        let decision = |action: &str,
                        reason: String,
                        serial: Option<String>,
                        next_due: Option<UnixTime>| Decision {
            at: now,
            template: Some(t.name.clone()),
            action: action.into(),
            reason,
            serial,
            next_due,
        };

        // A request waiting for approval: poll it, nothing else.
        if let Some(p) = state.pending.get(&t.name).cloned() {
            match client.poll(p.request_id).await? {
                Answer::Pending { request_id } => {
                    self.log(
                        decisions,
                        decision(
                            "pending",
                            format!(
                                "request {request_id} still waits for approval ({})",
                                p.reason
                            ),
                            None,
                            None,
                        ),
                    );
                    return Ok(None);
                }
                Answer::Refused {
                    request_id,
                    status,
                    reason,
                } => {
                    state.pending.remove(&t.name);
                    self.log(
                        decisions,
                        decision(
                            "request-closed",
                            format!("request {request_id} was {status}: {reason}"),
                            None,
                            None,
                        ),
                    );
                    return Ok(None);
                }
                Answer::Issued { certificate, .. } => {
                    let key_path = self.dir.join(PENDING_DIR).join(&p.key_file);
                    let key = PrivateKey::from_pem(&files::read_to_string(&key_path)?, None)?;
                    let installed = self.install(
                        t,
                        p.major,
                        &certificate,
                        &key,
                        &holders,
                        revoked,
                        now,
                        decisions,
                        &p.reason,
                    )?;
                    state.pending.remove(&t.name);
                    // The key now lives in the store's keys/.
                    let _ = std::fs::remove_file(&key_path);
                    return Ok(Some(self.due_of(&installed, t).at));
                }
            }
        }

        // Revoked certificates go to the archive at once.
        let mut live = Vec::new();
        for e in holders {
            if revoked.is_some_and(|r| r.contains(&e.info.serial_hex)) {
                self.store.archive(&e, ArchiveReason::Revoked, now)?;
                self.log(
                    decisions,
                    decision(
                        "archive",
                        "revoked by the CA (on the current CRL); a replacement is requested".into(),
                        Some(e.info.serial_hex.clone()),
                        None,
                    ),
                );
            } else {
                live.push(e);
            }
        }
        // The current one: valid now, latest notAfter.
        let current = live
            .iter()
            .filter(|e| e.info.not_before <= now && now < e.info.not_after)
            .max_by_key(|e| (e.info.not_after, e.info.not_before));
        let why = match current {
            None if live.is_empty() => "no certificate for this template".to_string(),
            None => "the certificate expired; re-enrolling".to_string(),
            Some(e) if e.meta.template_major.unwrap_or(0) < t.major => format!(
                "the template's major version {} is newer than the certificate's {}",
                t.major,
                e.meta.template_major.unwrap_or(0)
            ),
            Some(e) => {
                let due = self.due_of(e, t);
                if now < due.at {
                    self.log(
                        decisions,
                        decision(
                            "keep",
                            format!(
                                "valid until {}; renewal due at {} ({})",
                                fmt_time(e.info.not_after),
                                fmt_time(due.at),
                                due.by.describe()
                            ),
                            Some(e.info.serial_hex.clone()),
                            Some(due.at),
                        ),
                    );
                    return Ok(Some(due.at));
                }
                format!(
                    "renewal due since {} ({})",
                    fmt_time(due.at),
                    due.by.describe()
                )
            }
        };
        self.enroll(
            client, policy, t, &live, revoked, now, state, decisions, why,
        )
        .await
    }

    fn due_of(&self, e: &Entry, t: &PolicyTemplate) -> renewal::Due {
        renewal::due(
            e.info.not_before,
            e.info.not_after,
            RenewalRule::Template {
                renewal_period_secs: t.renewal_period_secs,
            },
        )
    }

    /// Requests a certificate under `t` for `why`; installs it when issued at once.
    #[allow(clippy::too_many_arguments)]
    async fn enroll(
        &self,
        client: &SiteClient,
        _policy: &Policy,
        t: &PolicyTemplate,
        holders: &[Entry],
        revoked: Option<&BTreeSet<String>>,
        now: UnixTime,
        state: &mut AgentState,
        decisions: &mut Vec<Decision>,
        why: String,
    ) -> Result<Option<UnixTime>, AgentError> {
        let key_type = key_type_for(&t.key_algorithms)?;
        let key = PrivateKey::generate(key_type)?;
        let request = csr::build(&key, &name::build(&[("CN", &self.config.name)])?, &[])?;
        let csr_pem = pem::encode("CERTIFICATE REQUEST", &request);
        match client.enroll(&t.name, &csr_pem).await? {
            Answer::Issued { certificate, .. } => {
                let e = self.install(
                    t,
                    t.major,
                    &certificate,
                    &key,
                    holders,
                    revoked,
                    now,
                    decisions,
                    &why,
                )?;
                Ok(Some(self.due_of(&e, t).at))
            }
            Answer::Pending { request_id } => {
                let dir = self.dir.join(PENDING_DIR);
                std::fs::create_dir_all(&dir).map_err(files::io(&dir))?;
                let key_file = format!("{request_id}.key");
                files::write_atomic(&dir.join(&key_file), key.to_pkcs8_pem().as_bytes(), true)?;
                state.pending.insert(
                    t.name.clone(),
                    PendingRequest {
                        request_id,
                        key_file,
                        submitted_at: now,
                        reason: why.clone(),
                        major: t.major,
                    },
                );
                self.log(
                    decisions,
                    Decision {
                        at: now,
                        template: Some(t.name.clone()),
                        action: "requested".into(),
                        reason: format!("{why}; request {request_id} waits for approval"),
                        serial: None,
                        next_due: None,
                    },
                );
                Ok(None)
            }
            Answer::Refused {
                request_id,
                status,
                reason,
            } => Err(AgentError::Invalid {
                field: "enrollment".into(),
                rule: format!("request {request_id} was {status}: {reason}"),
            }),
        }
    }

    /// Puts a new certificate in `personal/`, then archives what it replaces (new first: a
    /// crash in between leaves both, never neither).
    #[allow(clippy::too_many_arguments)]
    fn install(
        &self,
        t: &PolicyTemplate,
        major: u32,
        der: &[u8],
        key: &PrivateKey,
        holders: &[Entry],
        revoked: Option<&BTreeSet<String>>,
        now: UnixTime,
        decisions: &mut Vec<Decision>,
        why: &str,
    ) -> Result<Entry, AgentError> {
        let meta = CertMeta {
            template: Some(t.name.clone()),
            template_major: Some(major),
            template_minor: Some(t.minor),
            export_allowed: t.exportable,
            key_non_exportable: false,
            source: Source::Autoenroll,
        };
        let new = self.store.put(StoreName::Personal, der, Some(key), meta)?;
        let due = self.due_of(&new, t);
        let action = if holders.is_empty() {
            "enroll"
        } else {
            "renew"
        };
        self.log(
            decisions,
            Decision {
                at: now,
                template: Some(t.name.clone()),
                action: action.into(),
                reason: format!(
                    "{why}; issued, valid until {}",
                    fmt_time(new.info.not_after)
                ),
                serial: Some(new.info.serial_hex.clone()),
                next_due: Some(due.at),
            },
        );
        for old in holders {
            let reason = if revoked.is_some_and(|r| r.contains(&old.info.serial_hex)) {
                ArchiveReason::Revoked
            } else if old.info.not_after <= now {
                ArchiveReason::Expired
            } else {
                ArchiveReason::Replaced
            };
            self.store.archive(old, reason, now)?;
            self.log(
                decisions,
                Decision {
                    at: now,
                    template: Some(t.name.clone()),
                    action: "archive".into(),
                    reason: format!("{reason:?} by {}", new.info.serial_hex).to_lowercase(),
                    serial: Some(old.info.serial_hex.clone()),
                    next_due: None,
                },
            );
        }
        Ok(new)
    }
}

fn failure(now: UnixTime, template: Option<String>, what: &str, e: &ClientError) -> Decision {
    Decision {
        at: now,
        template,
        action: format!("{what}-failed"),
        reason: e.to_string(),
        serial: None,
        next_due: None,
    }
}

/// The key the agent generates for a template: the first of its allowed algorithms, at the
/// smallest size it allows (`ecdsa:256-384` → P-256, `rsa:2048-4096` → RSA 2048).
pub fn key_type_for(rules: &[String]) -> Result<KeyType, AgentError> {
    for r in rules {
        let (family, bits) = r.split_once(':').map_or((r.as_str(), ""), |(f, b)| (f, b));
        let min: u32 = bits
            .split('-')
            .next()
            .and_then(|b| b.parse().ok())
            .unwrap_or(0);
        let kt = match family {
            "ed25519" => Some(KeyType::Ed25519),
            "ecdsa" if min <= 256 => Some(KeyType::EcdsaP256),
            "ecdsa" if min <= 384 => Some(KeyType::EcdsaP384),
            "rsa" if min <= 2048 => Some(KeyType::Rsa2048),
            "rsa" if min <= 3072 => Some(KeyType::Rsa3072),
            "rsa" if min <= 4096 => Some(KeyType::Rsa4096),
            _ => None,
        };
        if let Some(k) = kt {
            return Ok(k);
        }
    }
    Err(AgentError::Invalid {
        field: "template.key_algorithms".into(),
        rule: format!("none of {rules:?} is a key the agent can generate"),
    })
}

/// When the next cycle starts: the report's time spread over the policy's jitter window, or,
/// after failures, a capped exponential backoff.
pub fn next_wake(
    report: &CycleReport,
    state: &AgentState,
    policy: Option<&Policy>,
    now: UnixTime,
    rng: &mut impl rand::Rng,
) -> UnixTime {
    if state.failures > 0 {
        let mut b = schedule::Backoff::new();
        let mut wait = 0;
        for _ in 0..state.failures {
            wait = b.fail(rng);
        }
        return now + wait;
    }
    let jitter = policy.map_or(0, |p| p.schedule.jitter_secs);
    schedule::jittered(report.next_run, jitter, rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_replacement_is_finished() {
        use crate::store::fixtures::TestCa;
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("Test CA");
        let signer = identity::create("site signing", fleetpki_model::now()).unwrap();
        let config = AgentConfig {
            site: "https://mp.test".into(),
            name: "PC1".into(),
            fqdn: None,
            root_sha256: fleetpki_x509::cert::fingerprint(&ca.der),
            signing_sha256: fleetpki_x509::cert::fingerprint(&signer.der),
            tofu: false,
            status_url: None,
        };
        trust::save_pins(
            dir.path(),
            &Pins {
                root: ca.der.clone(),
                signing: signer.der.clone(),
            },
        )
        .unwrap();
        config.save(dir.path()).unwrap();
        let agent = Agent::open(dir.path()).unwrap();
        let now = fleetpki_model::now();
        let meta = |template: Option<&str>, source| CertMeta {
            template: template.map(str::to_string),
            template_major: Some(1),
            source,
            ..CertMeta::default()
        };
        let put = |not_after: i64, m: CertMeta| {
            let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
            let der = ca.leaf_at("pc1", &key, now - DAY_SECS, not_after);
            agent
                .store
                .put(StoreName::Personal, &der, Some(&key), m)
                .unwrap()
        };
        let old = put(now + 10 * DAY_SECS, meta(Some("W"), Source::Autoenroll));
        let new = put(now + 20 * DAY_SECS, meta(Some("W"), Source::Autoenroll));
        // Another template's certificate and an imported one are not this template's pair.
        let other = put(now + 5 * DAY_SECS, meta(Some("X"), Source::Autoenroll));
        let imported = put(now + 5 * DAY_SECS, meta(Some("W"), Source::Import));

        let mut decisions = Vec::new();
        agent
            .finish_interrupted_replacements(now, &mut decisions)
            .unwrap();
        let left: Vec<String> = agent
            .store
            .list(StoreName::Personal)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.info.serial_hex)
            .collect();
        assert_eq!(left.len(), 3);
        for kept in [&new, &other, &imported] {
            assert!(left.contains(&kept.info.serial_hex));
        }
        let archived = agent.store.list(StoreName::Archive).unwrap().entries;
        assert_eq!(archived.len(), 1);
        assert_eq!(archived[0].info.serial_hex, old.info.serial_hex);
        assert_eq!(decisions.len(), 1);
        assert!(decisions[0].reason.contains("interrupted"));
        // Nothing more to do the second time.
        let mut again = Vec::new();
        agent
            .finish_interrupted_replacements(now, &mut again)
            .unwrap();
        assert!(again.is_empty());
    }

    const DAY_SECS: i64 = 86_400;

    #[test]
    fn key_types_from_template_rules() {
        let k = |r: &[&str]| key_type_for(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(k(&["ecdsa:256-384"]).unwrap(), KeyType::EcdsaP256);
        assert_eq!(k(&["ecdsa:384-384"]).unwrap(), KeyType::EcdsaP384);
        assert_eq!(
            k(&["rsa:2048-4096", "ecdsa:256-256"]).unwrap(),
            KeyType::Rsa2048
        );
        assert_eq!(k(&["ed25519"]).unwrap(), KeyType::Ed25519);
        assert!(
            k(&["dsa:1024-1024"])
                .unwrap_err()
                .to_string()
                .contains("template.key_algorithms")
        );
    }

    #[test]
    fn log_lines_say_what_why_and_next_due() {
        let d = Decision {
            at: 1_800_000_000,
            template: Some("Workstation".into()),
            action: "keep".into(),
            reason: "valid \"until\" x".into(),
            serial: Some("ab".into()),
            next_due: Some(1_800_000_060),
        };
        assert_eq!(
            d.log_line(),
            "2027-01-15T08:00:00Z action=keep template=\"Workstation\" serial=ab reason=\"valid 'until' x\" next_due=2027-01-15T08:01:00Z"
        );
    }
}
