//! `fleetpki serve` configuration: which roles run, where each listens, and their limits.
//! Validated at start; every error names the key it is about.

use fleetpki_policy::{MultipleMatch, Schedule, SelectionCriteria};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A site role served over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The JSON enrollment and administration API (HTTPS, client certificate optional).
    Api,
    /// CRL distribution point and CA certificates (AIA caIssuers).
    Crl,
    /// Registration, signed policy, chain and CRL for agents (HTTPS, mutual TLS).
    ManagementPoint,
    /// OCSP responder (RFC 6960) at `/ocsp`, the URL certificates carry beside the CDP.
    Ocsp,
    /// Fallback status point: clients' state messages, unauthenticated, rate-limited.
    FallbackStatusPoint,
    /// EST (RFC 7030) enrollment at `/.well-known/est/` (HTTPS); off unless enabled.
    Est,
    /// ACME (RFC 8555) for web servers (HTTPS); off unless the config enables it.
    Acme,
    /// SCEP (RFC 8894) for devices that never run the agent; opt-in (`[roles.scep]`).
    Scep,
}

impl Role {
    /// In this order: the URL-bearing roles first (OCSP follows the CRL role's address).
    pub const ALL: [Role; 8] = [
        Role::Crl,
        Role::Ocsp,
        Role::FallbackStatusPoint,
        Role::ManagementPoint,
        Role::Api,
        Role::Est,
        Role::Acme,
        Role::Scep,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Crl => "crl",
            Role::ManagementPoint => "management-point",
            Role::Ocsp => "ocsp",
            Role::FallbackStatusPoint => "fallback-status-point",
            Role::Est => "est",
            Role::Acme => "acme",
            Role::Scep => "scep",
        }
    }

    /// Served over TLS (with the site's server certificate) rather than plain HTTP.
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            Role::Api | Role::ManagementPoint | Role::Est | Role::Acme
        )
    }

    /// Runs when the config does not mention it. EST, ACME and SCEP must be asked for (a
    /// `[roles.NAME]` table): they name the templates they issue under.
    pub fn on_by_default(self) -> bool {
        !matches!(self, Role::Est | Role::Acme | Role::Scep)
    }

    /// Whether a TLS role refuses a handshake without a client certificate.
    pub fn requires_client_certificate(self) -> bool {
        self == Role::ManagementPoint
    }

    fn parse(key: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == key)
    }
}

/// A configuration error: the key and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {rule}")]
pub struct ConfigError {
    pub key: String,
    pub rule: String,
}

fn err(key: impl Into<String>, rule: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        rule: rule.into(),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    roles: BTreeMap<String, RawRole>,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    management_point: RawMp,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    api: RawApi,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApi {
    ca_admin_groups: Option<Vec<String>>,
    cert_manager_groups: Option<Vec<String>>,
    auditor_groups: Option<Vec<String>>,
    #[serde(default)]
    tokens: BTreeMap<String, RawToken>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    role: String,
    sha256: String,
}

/// An administrative role of the API (role separation as in ADCS: who manages the CA's
/// templates is not who issues and revokes, and auditors only read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminRole {
    /// Templates and CA settings; reads everything.
    CaAdmin,
    /// Approves, denies, revokes, publishes CRLs, issues enrollment tokens, decides clients;
    /// reads everything.
    CertManager,
    /// Reads everything, changes nothing.
    Auditor,
}

impl AdminRole {
    pub const ALL: [AdminRole; 3] = [Self::CaAdmin, Self::CertManager, Self::Auditor];

    pub fn name(self) -> &'static str {
        match self {
            Self::CaAdmin => "ca-admin",
            Self::CertManager => "cert-manager",
            Self::Auditor => "auditor",
        }
    }

    pub fn parse(t: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == t)
    }
}

/// An API token from the config: only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    pub role: AdminRole,
    /// Lower-case hex SHA-256 of the secret.
    pub sha256: String,
}

/// `[api]`: who holds which administrative role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Directory groups whose members (by client certificate) hold each role.
    pub groups: Vec<(AdminRole, String)>,
    pub tokens: Vec<ApiToken>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    mode: Option<String>,
    intranet_fqdn: Option<String>,
    internet_fqdn: Option<String>,
    certificate: Option<PathBuf>,
    key: Option<PathBuf>,
    password_file: Option<PathBuf>,
    renew_before_days: Option<i64>,
    check_crl: Option<bool>,
    crl_poll_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMp {
    registration: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    selection: Option<SelectionCriteria>,
    multiple_match: Option<MultipleMatch>,
    issuers: Option<Vec<String>>,
    interval_secs: Option<i64>,
    jitter_secs: Option<i64>,
}

/// Where the TLS roles' server certificate comes from, and how clients authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// The site issues its roles' certificate from its own CA and renews it itself; clients
    /// may authenticate with a self-signed identity certificate they register.
    EnhancedHttp,
    /// The administrator's PKI certificate (checked against the `site-system-https` profile);
    /// clients must present a certificate that chains to the site's root.
    Pki {
        certificate: PathBuf,
        key: Option<PathBuf>,
        password_file: Option<PathBuf>,
    },
}

/// `[tls]`: server certificates and client certificate checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub mode: TlsMode,
    pub intranet_fqdn: String,
    pub internet_fqdn: Option<String>,
    /// Site maintenance renews the site-issued server certificate this long before expiry.
    pub renew_before_days: i64,
    /// Refuse client certificates revoked by the site's latest CRLs.
    pub check_crl: bool,
    /// How often the server looks for a newly published CRL (and a new policy version).
    pub crl_poll_seconds: u64,
}

/// How enhanced-HTTP registrations are approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Every new self-signed identity is approved at once.
    Auto,
    /// An administrator approves each (`fleetpki client approve`).
    Manual,
}

/// `[management_point]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpConfig {
    pub registration: Registration,
}

/// `[policy]`: the site-wide client settings every signed policy carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    pub selection: SelectionCriteria,
    pub multiple_match: MultipleMatch,
    pub issuers: Vec<String>,
    pub schedule: Schedule,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRole {
    /// Unset: the role's default ([`Role::on_by_default`]).
    enabled: Option<bool>,
    listen: Option<String>,
    max_body_bytes: Option<usize>,
    rate_per_minute: Option<u32>,
    signer: Option<String>,
    /// EST: the template served at `/.well-known/est/`.
    template: Option<String>,
    /// EST: `LABEL = "template"`, served at `/.well-known/est/LABEL/`.
    labels: Option<BTreeMap<String, String>>,
    /// EST: the HTTP Basic realm announced in `WWW-Authenticate`.
    realm: Option<String>,
    // The acme role's settings (see `AcmeConfig`); `template` is shared with est.
    principal: Option<String>,
    http01_port: Option<u16>,
    resolve: Option<BTreeMap<String, String>>,
    dns_server: Option<String>,
    external_account_required: Option<bool>,
    authz_reuse_secs: Option<i64>,
    /// SCEP: `[roles.scep.endpoints.NAME]`.
    endpoints: Option<BTreeMap<String, RawScepEndpoint>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScepEndpoint {
    template: Option<String>,
    principal: Option<String>,
    challenge_sha256: Option<String>,
    legacy_algorithms: Option<bool>,
}

/// One SCEP endpoint (`/scep/NAME`): the template it enrolls for and, optionally, a static
/// challenge password (SHA-256 only) that enrolls as `principal`. One-time challenges
/// (`fleetpki scep challenge`) work on every endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepEndpoint {
    pub name: String,
    pub template: String,
    /// Lower-case hex SHA-256 of the static challenge, and whom it enrolls as.
    pub static_challenge: Option<(String, String)>,
    /// Accept (and answer in kind) SHA-1 pkiMessage signatures and DES / 3DES envelopes from
    /// clients that know nothing better (`legacy_algorithms`, default false: refused badAlg).
    pub legacy_algorithms: bool,
}

/// One role's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleConfig {
    pub role: Role,
    pub listen: SocketAddr,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Requests per minute accepted from one source address (the fallback status point).
    pub rate_per_minute: u32,
    /// What signs OCSP responses (the `ocsp` role only; `Ca` elsewhere).
    pub signer: OcspSigner,
    /// The templates EST serves and its realm (the `est` role only).
    pub est: Option<EstConfig>,
    /// The acme role's settings (that role only).
    pub acme: Option<AcmeConfig>,
    /// The SCEP endpoints (the `scep` role only; empty elsewhere).
    pub scep_endpoints: Vec<ScepEndpoint>,
}

/// `[roles.est]`: which template each EST path serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstConfig {
    /// Served at `/.well-known/est/` (`template`).
    pub default_template: Option<String>,
    /// Served at `/.well-known/est/LABEL/` (`labels`).
    pub labels: BTreeMap<String, String>,
    /// The HTTP Basic realm (`realm`, default `fleetpki`): clients such as BouncyCastle's
    /// check it against the one they were configured with.
    pub realm: String,
}

/// The operation names RFC 7030 puts after the label: a label may not be one of them.
const EST_OPERATIONS: [&str; 6] = [
    "cacerts",
    "simpleenroll",
    "simplereenroll",
    "fullcmc",
    "serverkeygen",
    "csrattrs",
];

fn build_est(r: &mut RawRole) -> Result<EstConfig, ConfigError> {
    let template = r.template.take();
    let labels = r.labels.take().unwrap_or_default();
    if let Some(t) = &template
        && t.trim().is_empty()
    {
        return Err(err("roles.est.template", "must name a template"));
    }
    if template.is_none() && labels.is_empty() {
        return Err(err(
            "roles.est.template",
            "name the template EST serves at /.well-known/est/ (or give `labels`)",
        ));
    }
    for (label, t) in &labels {
        let key = format!("roles.est.labels.{label}");
        // RFC 7030 §3.2.2: a path segment; BouncyCastle's client accepts these characters.
        let ok = !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;:=".contains(&b));
        if !ok {
            return Err(err(
                key,
                "a label is one path segment of letters, digits and -._~!$&'()*+,;:=",
            ));
        }
        if EST_OPERATIONS.contains(&label.as_str()) {
            return Err(err(key, "an EST operation name cannot be a label"));
        }
        if t.trim().is_empty() {
            return Err(err(key, "must name a template"));
        }
    }
    let realm = r.realm.take().unwrap_or_else(|| "fleetpki".to_string());
    if realm.is_empty()
        || realm.len() > 64
        || !realm
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(err(
            "roles.est.realm",
            "1-64 printable ASCII characters, without quotes or backslashes",
        ));
    }
    Ok(EstConfig {
        default_template: template,
        labels,
        realm,
    })
}

/// `[roles.acme]`: what an ACME order may ask for, and how challenges are validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The template orders are finalized under: its permitted DNS suffixes bound what can be
    /// ordered (it must supply names in the request).
    pub template: String,
    /// The directory principal certificates are requested for when the account has no EAB
    /// binding (None: only EAB-bound accounts may order).
    pub principal: Option<String>,
    /// The port http-01 validation connects to (80 by RFC 8555; tests use another).
    pub http01_port: u16,
    /// Names resolved here instead of by the system resolver (`name` or `*.suffix` → address).
    pub resolve: BTreeMap<String, std::net::IpAddr>,
    /// The DNS server dns-01 asks for TXT records; without one, dns-01 is not offered.
    pub dns_server: Option<SocketAddr>,
    /// New accounts must carry an external account binding (`fleetpki acme eab`).
    pub external_account_required: bool,
    /// How long a valid authorization is reused by new orders of the same account.
    pub authz_reuse_secs: i64,
}

/// Who signs the `ocsp` role's responses (`[roles.ocsp] signer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcspSigner {
    /// `ca`: the CA that issued the certificate asked about.
    #[default]
    Ca,
    /// `delegated`: a short-lived certificate with id-kp-OCSPSigning and id-pkix-ocsp-nocheck,
    /// issued by the issuing CA to a key held only in memory, renewed automatically.
    Delegated,
}

/// The validated configuration: the enabled roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub roles: Vec<RoleConfig>,
    pub tls: TlsConfig,
    pub management_point: MpConfig,
    pub policy: PolicyConfig,
    pub api: ApiConfig,
}

impl ServeConfig {
    /// Every role on loopback: the CRL role where the site's base URL points when that is a
    /// loopback address (so the CDP and AIA URLs in issued certificates work), the others on
    /// ephemeral ports.
    pub fn defaults(base_url: &str) -> Result<ServeConfig, ConfigError> {
        Self::build(RawConfig::default(), base_url)
    }

    /// Reads a TOML file of `[roles.NAME]` tables (`enabled`, `listen`, `max_body_bytes`,
    /// `rate_per_minute`, for `ocsp` `signer = "ca" | "delegated"`, for `est` `template`,
    /// `labels` and `realm`); roles it does not mention keep their defaults (every role but
    /// `est` on).
    pub fn load(path: &Path, base_url: &str) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("--config", format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text, base_url).map_err(|e| ConfigError {
            key: format!("{}: {}", path.display(), e.key),
            rule: e.rule,
        })
    }

    pub fn parse(text: &str, base_url: &str) -> Result<ServeConfig, ConfigError> {
        let raw: RawConfig = fleetpki_model::config_file::from_toml(text)
            .map_err(|e| err(e.key_or_line(), e.rule()))?;
        Self::build(raw, base_url)
    }

    fn build(mut raw: RawConfig, base_url: &str) -> Result<ServeConfig, ConfigError> {
        if let Some(unknown) = raw.roles.keys().find(|k| Role::parse(k).is_none()) {
            return Err(err(
                format!("roles.{unknown}"),
                format!(
                    "unknown role; roles are {}",
                    Role::ALL.map(Role::name).join(", ")
                ),
            ));
        }
        let mut roles = Vec::new();
        // Certificates carry the CDP and OCSP URLs under the same base URL: unless told
        // otherwise, OCSP listens where the CRL role does (one socket).
        let mut crl_listen = None;
        for role in Role::ALL {
            let mut r = match raw.roles.remove(role.name()) {
                Some(r) => r,
                None if !role.on_by_default() => continue,
                None => RawRole::default(),
            };
            // A table present runs its role unless it says `enabled = false`.
            if !r.enabled.unwrap_or(true) {
                continue;
            }
            let key = |k: &str| format!("roles.{}.{k}", role.name());
            let est = if role == Role::Est {
                Some(build_est(&mut r)?)
            } else {
                for (set, k) in [(r.labels.is_some(), "labels"), (r.realm.is_some(), "realm")] {
                    if set {
                        return Err(err(key(k), "only the est role has this setting"));
                    }
                }
                None
            };
            let acme = build_acme(role, &r)?;
            let listen = match r.listen {
                Some(text) => text.parse::<SocketAddr>().map_err(|_| {
                    err(
                        key("listen"),
                        format!("`{text}` is not an address:port such as 127.0.0.1:8080"),
                    )
                })?,
                None if role == Role::Ocsp => {
                    crl_listen.unwrap_or_else(|| default_listen(role, base_url))
                }
                None => default_listen(role, base_url),
            };
            if role == Role::Crl {
                crl_listen = Some(listen);
            }
            let max_body_bytes = r.max_body_bytes.unwrap_or(16 * 1024);
            if !(256..=1024 * 1024).contains(&max_body_bytes) {
                return Err(err(
                    key("max_body_bytes"),
                    "must lie between 256 and 1048576",
                ));
            }
            let rate_per_minute = r.rate_per_minute.unwrap_or(60);
            if rate_per_minute == 0 {
                return Err(err(key("rate_per_minute"), "must be at least 1"));
            }
            let signer = match (role, r.signer.as_deref()) {
                (_, None) => OcspSigner::Ca,
                (Role::Ocsp, Some("ca")) => OcspSigner::Ca,
                (Role::Ocsp, Some("delegated")) => OcspSigner::Delegated,
                (Role::Ocsp, Some(other)) => {
                    return Err(err(
                        key("signer"),
                        format!("`{other}` is not a signer; expected \"ca\" or \"delegated\""),
                    ));
                }
                (_, Some(_)) => {
                    return Err(err(key("signer"), "only the ocsp role has a signer"));
                }
            };
            let scep_endpoints = match (role, r.endpoints) {
                (Role::Scep, Some(e)) => build_scep_endpoints(e)?,
                (Role::Scep, None) => {
                    return Err(err(
                        key("endpoints"),
                        "at least one endpoint is needed: [roles.scep.endpoints.NAME] with template = \"…\"",
                    ));
                }
                (_, None) => Vec::new(),
                (_, Some(_)) => {
                    return Err(err(key("endpoints"), "only the scep role has endpoints"));
                }
            };
            roles.push(RoleConfig {
                role,
                listen,
                max_body_bytes,
                rate_per_minute,
                signer,
                est,
                acme,
                scep_endpoints,
            });
        }
        check_shared_addresses(&roles)?;
        Ok(ServeConfig {
            roles,
            tls: build_tls(raw.tls, base_url)?,
            management_point: MpConfig {
                registration: match raw.management_point.registration.as_deref() {
                    None | Some("auto") => Registration::Auto,
                    Some("manual") => Registration::Manual,
                    Some(other) => {
                        return Err(err(
                            "management_point.registration",
                            format!("`{other}`: use auto or manual"),
                        ));
                    }
                },
            },
            policy: build_policy(raw.policy)?,
            api: build_api(raw.api)?,
        })
    }
}

/// `[roles.acme]`'s own keys; the other roles refuse them.
fn build_acme(role: Role, r: &RawRole) -> Result<Option<AcmeConfig>, ConfigError> {
    let key = |k: &str| format!("roles.{}.{k}", role.name());
    if role != Role::Acme {
        for (set, k) in [
            (r.template.is_some(), "template"),
            (r.principal.is_some(), "principal"),
            (r.http01_port.is_some(), "http01_port"),
            (r.resolve.is_some(), "resolve"),
            (r.dns_server.is_some(), "dns_server"),
            (
                r.external_account_required.is_some(),
                "external_account_required",
            ),
            (r.authz_reuse_secs.is_some(), "authz_reuse_secs"),
        ] {
            if set {
                let only = if k == "template" {
                    "only the est and acme roles have this setting"
                } else {
                    "only the acme role has this setting"
                };
                return Err(err(key(k), only));
            }
        }
        return Ok(None);
    }
    let template = r.template.clone().ok_or_else(|| {
        err(
            key("template"),
            "required: the template ACME orders are issued under",
        )
    })?;
    if template.trim().is_empty() {
        return Err(err(key("template"), "must not be empty"));
    }
    let external_account_required = r.external_account_required.unwrap_or(false);
    let principal = r.principal.clone();
    if principal.is_none() && !external_account_required {
        return Err(err(
            key("principal"),
            "required unless external_account_required = true: the directory principal \
             certificates are requested for when an account has no external account binding",
        ));
    }
    if principal.as_deref().is_some_and(|p| p.trim().is_empty()) {
        return Err(err(key("principal"), "must not be empty"));
    }
    let http01_port = r.http01_port.unwrap_or(80);
    if http01_port == 0 {
        return Err(err(key("http01_port"), "must be a port from 1 to 65535"));
    }
    let mut resolve = BTreeMap::new();
    for (name, addr) in r.resolve.clone().unwrap_or_default() {
        let ip = addr.parse::<std::net::IpAddr>().map_err(|_| {
            err(
                format!("{}.{name}", key("resolve")),
                format!("`{addr}` is not an IP address"),
            )
        })?;
        let body = name.strip_prefix("*.").unwrap_or(&name);
        if body.is_empty() || body.contains('*') {
            return Err(err(
                format!("{}.{name}", key("resolve")),
                "a name, or *.suffix for every name under it",
            ));
        }
        resolve.insert(name.to_ascii_lowercase(), ip);
    }
    let dns_server = match &r.dns_server {
        None => None,
        Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
            err(
                key("dns_server"),
                format!("`{text}` is not an address:port such as 127.0.0.1:53"),
            )
        })?),
    };
    let authz_reuse_secs = r.authz_reuse_secs.unwrap_or(30 * 24 * 3600);
    if !(0..=90 * 24 * 3600).contains(&authz_reuse_secs) {
        return Err(err(
            key("authz_reuse_secs"),
            "must lie between 0 and 7776000 (90 days)",
        ));
    }
    Ok(Some(AcmeConfig {
        template,
        principal,
        http01_port,
        resolve,
        dns_server,
        external_account_required,
        authz_reuse_secs,
    }))
}

fn build_scep_endpoints(
    raw: BTreeMap<String, RawScepEndpoint>,
) -> Result<Vec<ScepEndpoint>, ConfigError> {
    let mut out = Vec::new();
    for (name, e) in raw {
        let key = |k: &str| format!("roles.scep.endpoints.{name}.{k}");
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err(
                format!("roles.scep.endpoints.{name}"),
                "an endpoint name is 1-64 letters, digits, '-' or '_' (it is the URL path /scep/NAME)",
            ));
        }
        let template = e.template.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            err(
                key("template"),
                "required: the template this endpoint enrolls for",
            )
        })?;
        let static_challenge = match (e.challenge_sha256, e.principal) {
            (None, None) => None,
            (Some(h), Some(p)) => {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err(
                        key("challenge_sha256"),
                        "must be 64 hex digits: the SHA-256 of the static challenge password (printf %s SECRET | sha256sum)",
                    ));
                }
                if p.trim().is_empty() {
                    return Err(err(key("principal"), "must not be empty"));
                }
                Some((h.to_ascii_lowercase(), p))
            }
            (Some(_), None) => {
                return Err(err(
                    key("principal"),
                    "required with challenge_sha256: the directory principal the static challenge enrolls as",
                ));
            }
            (None, Some(_)) => {
                return Err(err(
                    key("challenge_sha256"),
                    "required with principal (without a static challenge, only one-time challenges enroll)",
                ));
            }
        };
        out.push(ScepEndpoint {
            name,
            template,
            static_challenge,
            legacy_algorithms: e.legacy_algorithms.unwrap_or(false),
        });
    }
    if out.is_empty() {
        return Err(err(
            "roles.scep.endpoints",
            "at least one endpoint is needed: [roles.scep.endpoints.NAME] with template = \"…\"",
        ));
    }
    Ok(out)
}

/// A plain-HTTP role and a TLS role cannot share one socket.
fn check_shared_addresses(roles: &[RoleConfig]) -> Result<(), ConfigError> {
    for (i, a) in roles.iter().enumerate() {
        for b in &roles[i + 1..] {
            if a.listen.port() != 0 && a.listen == b.listen && a.role.is_tls() != b.role.is_tls() {
                let (tls, plain) = if a.role.is_tls() { (a, b) } else { (b, a) };
                return Err(err(
                    format!("roles.{}.listen", tls.role.name()),
                    format!(
                        "{} is also the plain-HTTP role {}'s address; an HTTPS role needs its own",
                        tls.listen,
                        plain.role.name()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The host of a URL such as `http://pki.fleet.test:8080/x`.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host_port = rest.split('/').next().unwrap_or(rest);
    match host_port.rsplit_once(':') {
        Some((h, _)) if !h.contains(']') || h.ends_with(']') => h,
        _ => host_port,
    }
}

fn build_tls(raw: RawTls, base_url: &str) -> Result<TlsConfig, ConfigError> {
    let mode = match raw.mode.as_deref() {
        None | Some("enhanced-http") => {
            for (set, key) in [
                (raw.certificate.is_some(), "tls.certificate"),
                (raw.key.is_some(), "tls.key"),
                (raw.password_file.is_some(), "tls.password_file"),
            ] {
                if set {
                    return Err(err(
                        key,
                        "only used with mode = \"pki\" (enhanced HTTP issues its own certificate)",
                    ));
                }
            }
            TlsMode::EnhancedHttp
        }
        Some("pki") => TlsMode::Pki {
            certificate: raw.certificate.ok_or_else(|| {
                err(
                    "tls.certificate",
                    "required with mode = \"pki\": the server certificate (PEM with its chain, or PKCS#12)",
                )
            })?,
            key: raw.key,
            password_file: raw.password_file,
        },
        Some(other) => {
            return Err(err(
                "tls.mode",
                format!("`{other}`: use enhanced-http or pki"),
            ));
        }
    };
    let intranet_fqdn = raw
        .intranet_fqdn
        .unwrap_or_else(|| url_host(base_url).to_string());
    if intranet_fqdn.is_empty() {
        return Err(err("tls.intranet_fqdn", "must not be empty"));
    }
    let renew_before_days = raw.renew_before_days.unwrap_or(42);
    if !(1..=180).contains(&renew_before_days) {
        return Err(err("tls.renew_before_days", "must lie between 1 and 180"));
    }
    let crl_poll_seconds = raw.crl_poll_seconds.unwrap_or(1);
    if !(1..=3600).contains(&crl_poll_seconds) {
        return Err(err("tls.crl_poll_seconds", "must lie between 1 and 3600"));
    }
    Ok(TlsConfig {
        mode,
        intranet_fqdn,
        internet_fqdn: raw.internet_fqdn,
        renew_before_days,
        check_crl: raw.check_crl.unwrap_or(true),
        crl_poll_seconds,
    })
}

fn build_api(raw: RawApi) -> Result<ApiConfig, ConfigError> {
    let mut groups = Vec::new();
    for (role, list, default) in [
        (AdminRole::CaAdmin, raw.ca_admin_groups, "ca-admins"),
        (
            AdminRole::CertManager,
            raw.cert_manager_groups,
            "cert-managers",
        ),
        (AdminRole::Auditor, raw.auditor_groups, "auditors"),
    ] {
        for g in list.unwrap_or_else(|| vec![default.to_string()]) {
            groups.push((role, g));
        }
    }
    let mut tokens = Vec::new();
    for (name, t) in raw.tokens {
        let key = |k: &str| format!("api.tokens.{name}.{k}");
        let role = AdminRole::parse(&t.role).ok_or_else(|| {
            err(
                key("role"),
                format!("`{}`: use ca-admin, cert-manager or auditor", t.role),
            )
        })?;
        if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(
                key("sha256"),
                "must be 64 hex digits (what `fleetpki api-token new` prints)",
            ));
        }
        if name.is_empty() || name.contains(':') {
            return Err(err(
                format!("api.tokens.{name}"),
                "a token name must not be empty or contain ':'",
            ));
        }
        tokens.push(ApiToken {
            name,
            role,
            sha256: t.sha256.to_ascii_lowercase(),
        });
    }
    Ok(ApiConfig { groups, tokens })
}

/// A policy error's rule without its `field: ` prefix (the key is named by the caller).
fn rule_of(e: &fleetpki_policy::PolicyError) -> String {
    let text = e.to_string();
    text.strip_prefix(&format!("{}: ", e.field()))
        .map(str::to_string)
        .unwrap_or(text)
}

fn build_policy(raw: RawPolicy) -> Result<PolicyConfig, ConfigError> {
    let d = Schedule::default();
    let schedule = Schedule {
        interval_secs: raw.interval_secs.unwrap_or(d.interval_secs),
        jitter_secs: raw.jitter_secs.unwrap_or(d.jitter_secs),
    };
    let selection = match raw.selection.unwrap_or_default() {
        SelectionCriteria::SubjectAttribute { oid, value } => {
            SelectionCriteria::subject_attribute(&oid, &value)
                .map_err(|e| err("policy.selection.subject_attribute.oid", rule_of(&e)))?
        }
        other => other,
    };
    let config = PolicyConfig {
        selection,
        multiple_match: raw.multiple_match.unwrap_or_default(),
        issuers: raw.issuers.unwrap_or_default(),
        schedule,
    };
    // The policy crate's own rules, checked now rather than at the first check-in.
    let mut probe = fleetpki_policy::Policy::new("AAA", 1, 0, "probe");
    probe.selection = config.selection.clone();
    probe.multiple_match = config.multiple_match;
    probe.issuers = config.issuers.clone();
    probe.schedule = config.schedule;
    probe
        .validate()
        .map_err(|e| err(format!("policy.{}", e.field()), rule_of(&e)))?;
    Ok(config)
}

fn default_listen(role: Role, base_url: &str) -> SocketAddr {
    let ephemeral = SocketAddr::from(([127, 0, 0, 1], 0));
    if !matches!(role, Role::Crl | Role::Ocsp) {
        return ephemeral;
    }
    // http://localhost:8080 → 127.0.0.1:8080; anything not on loopback stays ephemeral.
    let host_port = base_url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(base_url);
    let host_port = host_port.split('/').next().unwrap_or(host_port);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().unwrap_or(80)),
        None => (host_port, 80),
    };
    match host {
        "localhost" | "127.0.0.1" => SocketAddr::from(([127, 0, 0, 1], port)),
        _ => ephemeral,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_base_url_on_loopback() {
        let crl = |c: &ServeConfig| c.roles.iter().find(|r| r.role == Role::Crl).unwrap().listen;
        let c = ServeConfig::defaults("http://localhost:8080").unwrap();
        assert_eq!(crl(&c), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.tls.intranet_fqdn, "localhost");
        assert_eq!(c.tls.mode, TlsMode::EnhancedHttp);
        let c = ServeConfig::defaults("http://pki.fleet.test").unwrap();
        assert_eq!(crl(&c).port(), 0);
        assert_eq!(c.tls.intranet_fqdn, "pki.fleet.test");
        for r in &c.roles {
            assert_eq!(r.listen.ip(), std::net::Ipv4Addr::LOCALHOST, "{:?}", r.role);
        }
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[roles.crl]\nlisten = \"nowhere\"\n", "roles.crl.listen"),
            ("[roles.ocsp-typo]\n", "roles.ocsp-typo"),
            (
                "[roles.crl]\nmax_body_bytes = 1\n",
                "roles.crl.max_body_bytes",
            ),
            ("[roles.crl]\nlisen = \"127.0.0.1:1\"\n", "roles.crl.lisen"),
            (
                "[roles.crl]\nmax_body_bytes = \"big\"\n",
                "roles.crl.max_body_bytes",
            ),
            (
                "[roles.scep]\nenabled = true\n[roles.scep.endpoints.intune]\nchalenge = \"x\"\n",
                "roles.scep.endpoints.intune.chalenge",
            ),
            (
                "[tls]\nrenew_before_days = \"soon\"\n",
                "tls.renew_before_days",
            ),
            ("[roles.crl\n", "line 1"),
            ("[tls]\nmode = \"pki\"\n", "tls.certificate"),
            ("[tls]\nmode = \"https\"\n", "tls.mode"),
            ("[tls]\ncertificate = \"x.pem\"\n", "tls.certificate"),
            ("[tls]\nrenew_before_days = 0\n", "tls.renew_before_days"),
            (
                "[management_point]\nregistration = \"sometimes\"\n",
                "management_point.registration",
            ),
            (
                "[policy]\njitter_secs = -5\n",
                "policy.schedule.jitter_secs",
            ),
            (
                "[policy]\nselection = { subject_attribute = { oid = \"Shoe\", value = \"x\" } }\n",
                "policy.selection.subject_attribute.oid",
            ),
            (
                "[roles.crl]\nlisten = \"127.0.0.1:9000\"\n[roles.management-point]\nlisten = \"127.0.0.1:9000\"\n",
                "roles.management-point.listen",
            ),
        ];
        for (text, key) in cases {
            let e = ServeConfig::parse(text, "http://localhost:8080").unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
        let e = ServeConfig::parse("[roles.crl]\nmax_body_bytes = \"big\"\n", "http://x.test")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("roles.crl.max_body_bytes: invalid type") && e.ends_with("(line 2)"),
            "{e}"
        );
        let c = ServeConfig::parse(
            "[roles.crl]\nenabled = false\n[roles.ocsp]\nenabled = false\n[roles.fallback-status-point]\nenabled = false\n[roles.api]\nenabled = false\n[roles.management-point]\nenabled = false\n",
            "http://x.test",
        )
        .unwrap();
        assert!(c.roles.is_empty());
        for (text, key) in [
            ("[roles.acme]\nprincipal = \"p\"\n", "roles.acme.template"),
            ("[roles.acme]\ntemplate = \"t\"\n", "roles.acme.principal"),
            (
                "[roles.acme]\ntemplate = \"t\"\nprincipal = \"p\"\nhttp01_port = 0\n",
                "roles.acme.http01_port",
            ),
            (
                "[roles.acme]\ntemplate = \"t\"\nprincipal = \"p\"\nresolve = { \"a.test\" = \"nowhere\" }\n",
                "roles.acme.resolve.a.test",
            ),
            (
                "[roles.acme]\ntemplate = \"t\"\nprincipal = \"p\"\ndns_server = \"x\"\n",
                "roles.acme.dns_server",
            ),
            ("[roles.api]\ntemplate = \"t\"\n", "roles.api.template"),
            ("[roles.scep]\n", "roles.scep.endpoints"),
            (
                "[roles.scep.endpoints.dev]\nprincipal = \"ndes\"\n",
                "roles.scep.endpoints.dev.template",
            ),
            (
                "[roles.scep.endpoints.dev]\ntemplate = \"T\"\nchallenge_sha256 = \"abc\"\nprincipal = \"p\"\n",
                "roles.scep.endpoints.dev.challenge_sha256",
            ),
            (
                "[roles.scep.endpoints.dev]\ntemplate = \"T\"\nchallenge_sha256 = \"abc\"\n",
                "roles.scep.endpoints.dev.principal",
            ),
            (
                "[roles.scep.endpoints.\"a/b\"]\ntemplate = \"T\"\n",
                "roles.scep.endpoints.a/b",
            ),
            (
                "[roles.crl.endpoints.dev]\ntemplate = \"T\"\n",
                "roles.crl.endpoints",
            ),
            ("[roles.ocsp]\nsigner = \"hsm\"\n", "roles.ocsp.signer"),
            ("[roles.crl]\nsigner = \"ca\"\n", "roles.crl.signer"),
            (
                "[roles.fallback-status-point]\nrate_per_minute = 0\n",
                "roles.fallback-status-point.rate_per_minute",
            ),
        ] {
            let e = ServeConfig::parse(text, "http://x.test").unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    #[test]
    fn est_is_off_unless_enabled_and_names_its_templates() {
        let c = ServeConfig::defaults("http://localhost:8080").unwrap();
        assert!(c.roles.iter().all(|r| r.role != Role::Est));
        let c = ServeConfig::parse(
            "[roles.est]\nenabled = true\ntemplate = \"Device\"\n[roles.est.labels]\nrouters = \"Router\"\n",
            "http://x.test",
        )
        .unwrap();
        let est = role(&c, Role::Est);
        assert!(est.role.is_tls() && !est.role.requires_client_certificate());
        let e = est.est.as_ref().unwrap();
        assert_eq!(e.default_template.as_deref(), Some("Device"));
        assert_eq!(e.labels["routers"], "Router");
        assert_eq!(e.realm, "fleetpki");
        for (text, key) in [
            ("[roles.est]\nenabled = true\n", "roles.est.template"),
            (
                "[roles.est]\nenabled = true\ntemplate = \" \"\n",
                "roles.est.template",
            ),
            (
                "[roles.est]\nenabled = true\n[roles.est.labels]\ncacerts = \"T\"\n",
                "roles.est.labels.cacerts",
            ),
            (
                "[roles.est]\nenabled = true\n[roles.est.labels]\n\"a/b\" = \"T\"\n",
                "roles.est.labels.a/b",
            ),
            (
                "[roles.est]\nenabled = true\ntemplate = \"T\"\nrealm = \"a\\\"b\"\n",
                "roles.est.realm",
            ),
            ("[roles.api]\ntemplate = \"T\"\n", "roles.api.template"),
            ("[roles.crl]\nrealm = \"r\"\n", "roles.crl.realm"),
        ] {
            let e = ServeConfig::parse(text, "http://x.test").unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    #[test]
    fn acme_runs_only_when_configured() {
        let c = ServeConfig::defaults("http://localhost:8080").unwrap();
        assert!(c.roles.iter().all(|r| r.role != Role::Acme));
        let c = ServeConfig::parse(
            "[roles.acme]\ntemplate = \"Web\"\nprincipal = \"SRV1\"\nresolve = { \"*.fleet.test\" = \"127.0.0.1\" }\n",
            "http://localhost:8080",
        )
        .unwrap();
        let acme = role(&c, Role::Acme).acme.clone().unwrap();
        assert_eq!(acme.template, "Web");
        assert_eq!(acme.http01_port, 80);
        assert_eq!(acme.dns_server, None);
        assert!(!acme.external_account_required);
        assert_eq!(acme.resolve.len(), 1);
        assert!(role(&c, Role::Acme).role.is_tls());
        // With EAB required, no default principal is needed.
        let c = ServeConfig::parse(
            "[roles.acme]\ntemplate = \"Web\"\nexternal_account_required = true\n",
            "http://x.test",
        )
        .unwrap();
        assert_eq!(role(&c, Role::Acme).acme.as_ref().unwrap().principal, None);
    }

    fn role(c: &ServeConfig, r: Role) -> &RoleConfig {
        c.roles.iter().find(|rc| rc.role == r).unwrap()
    }

    #[test]
    fn ocsp_shares_the_crl_address_unless_told_otherwise() {
        let c = ServeConfig::defaults("http://localhost:8080").unwrap();
        assert_eq!(c.roles.len(), 5, "scep is opt-in");
        let c = ServeConfig::parse(
            "[roles.scep.endpoints.dev]\ntemplate = \"Device\"\n",
            "http://localhost:8080",
        )
        .unwrap();
        assert_eq!(
            role(&c, Role::Scep).scep_endpoints,
            vec![ScepEndpoint {
                name: "dev".into(),
                template: "Device".into(),
                static_challenge: None,
                legacy_algorithms: false,
            }]
        );
        let crl = role(&c, Role::Crl).listen;
        assert_eq!(role(&c, Role::Ocsp).listen, crl);
        assert_eq!(role(&c, Role::Ocsp).signer, OcspSigner::Ca);
        assert_eq!(role(&c, Role::FallbackStatusPoint).listen.port(), 0);

        let c = ServeConfig::parse(
            "[roles.crl]\nlisten = \"127.0.0.1:9000\"\n[roles.ocsp]\nsigner = \"delegated\"\n",
            "http://localhost:8080",
        )
        .unwrap();
        assert_eq!(
            role(&c, Role::Ocsp).listen,
            "127.0.0.1:9000".parse().unwrap()
        );
        assert_eq!(role(&c, Role::Ocsp).signer, OcspSigner::Delegated);

        let c = ServeConfig::parse(
            "[roles.crl]\nenabled = false\n[roles.ocsp]\nlisten = \"127.0.0.1:9001\"\n",
            "http://localhost:8080",
        )
        .unwrap();
        assert_eq!(
            role(&c, Role::Ocsp).listen,
            "127.0.0.1:9001".parse().unwrap()
        );
        // No CRL role: OCSP still defaults to where the base URL points.
        let c =
            ServeConfig::parse("[roles.crl]\nenabled = false\n", "http://localhost:8080").unwrap();
        assert_eq!(
            role(&c, Role::Ocsp).listen,
            "127.0.0.1:8080".parse().unwrap()
        );
    }
}
