//! Certificate templates: the three built-in bases, duplication, versioned edits, permissions,
//! and the key and subject rules the CA enforces at issuance.

use crate::FieldError;
use crate::duration::{format_duration, parse_duration};
use crate::oid::{self, KeyUsageBit};
use serde::{Deserialize, Serialize};

/// `major.minor`. Every edit bumps the minor; `bump` raises the major, which makes every holder
/// re-enroll (ADCS "Reenroll All Certificate Holders").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Public-key algorithm families a template may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyFamily {
    Rsa,
    Ecdsa,
    Ed25519,
}

impl KeyFamily {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rsa => "rsa",
            Self::Ecdsa => "ecdsa",
            Self::Ed25519 => "ed25519",
        }
    }
}

/// The key found in a request: family and size in bits (RSA modulus, EC curve size, 256 for Ed25519).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub family: KeyFamily,
    pub bits: u32,
}

impl std::fmt::Display for KeyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.family {
            KeyFamily::Rsa => write!(f, "RSA-{}", self.bits),
            KeyFamily::Ecdsa => write!(f, "ECDSA P-{}", self.bits),
            KeyFamily::Ed25519 => write!(f, "Ed25519"),
        }
    }
}

/// One allowed family with its minimum AND maximum size (seed 002 has roles capped at 2048 bits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRule {
    pub family: KeyFamily,
    pub min_bits: u32,
    pub max_bits: u32,
}

impl std::fmt::Display for KeyRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.family {
            KeyFamily::Ed25519 => write!(f, "ed25519"),
            fam => write!(f, "{}:{}-{}", fam.name(), self.min_bits, self.max_bits),
        }
    }
}

/// The hash the CA signs with when its key allows a choice (RSA); EC and Ed25519 CA keys use
/// their own (P-256: SHA-256, P-384: SHA-384, Ed25519: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }
    pub fn parse(field: &str, t: &str) -> Result<Self, FieldError> {
        match t.trim().to_ascii_lowercase().replace('-', "").as_str() {
            "sha256" => Ok(Self::Sha256),
            "sha384" => Ok(Self::Sha384),
            "sha512" => Ok(Self::Sha512),
            "sha1" | "md5" => Err(FieldError::new(
                field,
                format!("`{t}` is refused: SHA-1 and MD5 are broken; use sha256, sha384 or sha512"),
            )),
            _ => Err(FieldError::new(
                field,
                format!("`{t}` is not a hash; expected sha256, sha384 or sha512"),
            )),
        }
    }
}

/// How the subject and SAN of an issued certificate are formed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SubjectRule {
    /// The requester names the subject and DNS names; each DNS name must end in one of the
    /// permitted suffixes (an empty list permits any name and is flagged by `template show`).
    SupplyInRequest { permitted_dns_suffixes: Vec<String> },
    /// The CA builds the names from the principal's directory entry; the request's names are ignored.
    FromDirectory {
        cn: bool,
        dns: bool,
        upn: bool,
        email: bool,
    },
}

impl std::fmt::Display for SubjectRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SupplyInRequest {
                permitted_dns_suffixes,
            } if permitted_dns_suffixes.is_empty() => {
                write!(f, "supply in request (any DNS name)")
            }
            Self::SupplyInRequest {
                permitted_dns_suffixes,
            } => {
                write!(
                    f,
                    "supply in request (DNS names under {})",
                    permitted_dns_suffixes.join(", ")
                )
            }
            Self::FromDirectory {
                cn,
                dns,
                upn,
                email,
            } => {
                let parts: Vec<&str> = [
                    (*cn, "CN"),
                    (*dns, "SAN DNS"),
                    (*upn, "SAN UPN"),
                    (*email, "SAN e-mail"),
                ]
                .into_iter()
                .filter_map(|(on, n)| on.then_some(n))
                .collect();
                write!(f, "build from directory ({})", parts.join(", "))
            }
        }
    }
}

/// Read / Enroll / Autoenroll for one directory group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub group: String,
    pub read: bool,
    pub enroll: bool,
    pub autoenroll: bool,
}

/// A certificate template. Stored whole (as JSON) with every version kept in history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub name: String,
    pub display_name: String,
    /// The base it was duplicated from; `None` for a built-in base.
    pub base: Option<String>,
    pub builtin: bool,
    pub version: Version,
    pub ekus: Vec<String>,
    pub key_usage: Vec<KeyUsageBit>,
    pub subject: SubjectRule,
    pub key_algorithms: Vec<KeyRule>,
    pub hash: HashAlg,
    /// Seconds.
    pub validity: i64,
    /// Seconds before expiry at which holders renew (default 6 weeks).
    pub renewal_period: i64,
    pub exportable: bool,
    pub require_approval: bool,
    pub published: bool,
    /// A role requirement profile (seed 002) every issued certificate must satisfy.
    #[serde(default)]
    pub profile: Option<String>,
    pub grants: Vec<Grant>,
}

const DAY: i64 = 86_400;
const DEFAULT_KEYS: fn() -> Vec<KeyRule> = || {
    vec![
        KeyRule {
            family: KeyFamily::Ecdsa,
            min_bits: 256,
            max_bits: 384,
        },
        KeyRule {
            family: KeyFamily::Rsa,
            min_bits: 2048,
            max_bits: 4096,
        },
    ]
};

/// Names settable with `template set NAME --FIELD VALUE`, with what each takes.
pub const SETTABLE_FIELDS: &[(&str, &str)] = &[
    ("display-name", "text"),
    (
        "eku",
        "comma list of names (server-auth, client-auth, amt-provisioning, …) or dotted OIDs",
    ),
    (
        "key-usage",
        "comma list: digitalSignature, keyEncipherment, keyAgreement, …",
    ),
    ("subject", "`supply` or `directory`"),
    (
        "subject-from-directory",
        "comma list of cn, dns, upn, email (implies --subject directory)",
    ),
    (
        "permitted-dns-suffixes",
        "comma list of DNS suffixes (implies --subject supply); empty permits any",
    ),
    (
        "key-algorithms",
        "comma list of rsa:MIN-MAX, ecdsa:MIN-MAX (256/384), ed25519",
    ),
    (
        "min-key-size",
        "bits; sets the minimum of every allowed RSA/ECDSA rule it fits",
    ),
    (
        "max-key-size",
        "bits; sets the maximum of every allowed RSA/ECDSA rule it fits",
    ),
    ("hash", "sha256, sha384 or sha512"),
    ("validity", "duration: 1y, 90d, 12h"),
    ("renewal-period", "duration before expiry: 6w, 42d"),
    ("exportable", "true or false"),
    ("require-approval", "true or false"),
    (
        "profile",
        "a role requirement profile (fleetpki check --list-profiles), or `none`",
    ),
];

impl Template {
    /// The three built-in bases of SPEC §3, published and granted to nobody.
    pub fn bases() -> Vec<Template> {
        use KeyUsageBit::*;
        let base = |name: &str,
                    display: &str,
                    eku: &str,
                    ku: Vec<KeyUsageBit>,
                    subject: SubjectRule,
                    validity: i64| Template {
            name: name.into(),
            display_name: display.into(),
            base: None,
            builtin: true,
            version: Version { major: 1, minor: 0 },
            ekus: vec![eku.into()],
            key_usage: ku,
            subject,
            key_algorithms: DEFAULT_KEYS(),
            hash: HashAlg::Sha256,
            validity,
            renewal_period: 42 * DAY,
            exportable: false,
            require_approval: false,
            published: false,
            profile: None,
            grants: vec![],
        };
        vec![
            base(
                "WebServer",
                "Web Server",
                oid::SERVER_AUTH,
                vec![DigitalSignature, KeyEncipherment],
                SubjectRule::SupplyInRequest {
                    permitted_dns_suffixes: vec![],
                },
                2 * 365 * DAY,
            ),
            base(
                "Workstation",
                "Workstation Authentication",
                oid::CLIENT_AUTH,
                vec![DigitalSignature, KeyEncipherment],
                SubjectRule::FromDirectory {
                    cn: true,
                    dns: true,
                    upn: false,
                    email: false,
                },
                365 * DAY,
            ),
            base(
                "ClientAuth",
                "Authenticated Session",
                oid::CLIENT_AUTH,
                vec![DigitalSignature],
                SubjectRule::FromDirectory {
                    cn: true,
                    dns: false,
                    upn: false,
                    email: false,
                },
                365 * DAY,
            ),
        ]
    }

    /// A new, unpublished, editable copy named `name`, version 1.0, with no grants.
    pub fn duplicate(&self, name: &str) -> Result<Template, FieldError> {
        check_name("name", name)?;
        Ok(Template {
            name: name.to_string(),
            display_name: name.to_string(),
            base: Some(self.name.clone()),
            builtin: false,
            version: Version { major: 1, minor: 0 },
            published: false,
            grants: vec![],
            ..self.clone()
        })
    }

    /// Whether `needle` names this template (by name, or case-insensitively by display name).
    pub fn is_named(&self, needle: &str) -> bool {
        self.name == needle
            || self.display_name.eq_ignore_ascii_case(needle)
            || self.name.eq_ignore_ascii_case(needle)
    }

    /// Applies one `--FIELD VALUE` edit. Bumping the version is the caller's job so that several
    /// edits in one command make one new version.
    pub fn set_field(&mut self, field: &str, value: &str) -> Result<(), FieldError> {
        let f = format!("template.{field}");
        match field {
            "display-name" => {
                let v = value.trim();
                if v.is_empty() || v.chars().count() > 128 || v.chars().any(char::is_control) {
                    return Err(FieldError::new(f, "must be 1–128 printable characters"));
                }
                self.display_name = v.to_string();
            }
            "eku" => {
                let ekus = split_list(value)
                    .map(|e| oid::parse_eku(&f, e))
                    .collect::<Result<Vec<_>, _>>()?;
                if ekus.is_empty() {
                    return Err(FieldError::new(
                        f,
                        "at least one extended key usage is required",
                    ));
                }
                self.ekus = dedup(ekus);
            }
            "key-usage" => {
                let ku = split_list(value)
                    .map(|k| KeyUsageBit::parse(&f, k))
                    .collect::<Result<Vec<_>, _>>()?;
                if ku.is_empty() {
                    return Err(FieldError::new(f, "at least one key usage is required"));
                }
                if let Some(b) = ku
                    .iter()
                    .find(|b| matches!(b, KeyUsageBit::KeyCertSign | KeyUsageBit::CrlSign))
                {
                    return Err(FieldError::new(
                        f,
                        format!(
                            "{} is for CA certificates; end-entity templates cannot carry it",
                            b.name()
                        ),
                    ));
                }
                self.key_usage = dedup(ku);
            }
            "subject" => match value.trim() {
                "supply" | "supply-in-request" => {
                    if !matches!(self.subject, SubjectRule::SupplyInRequest { .. }) {
                        self.subject = SubjectRule::SupplyInRequest {
                            permitted_dns_suffixes: vec![],
                        };
                    }
                }
                "directory" | "from-directory" => {
                    if !matches!(self.subject, SubjectRule::FromDirectory { .. }) {
                        self.subject = SubjectRule::FromDirectory {
                            cn: true,
                            dns: true,
                            upn: false,
                            email: false,
                        };
                    }
                }
                other => {
                    return Err(FieldError::new(
                        f,
                        format!(
                            "`{other}` is not a subject rule; expected `supply` or `directory`"
                        ),
                    ));
                }
            },
            "subject-from-directory" => {
                let (mut cn, mut dns, mut upn, mut email) = (false, false, false, false);
                for part in split_list(value) {
                    match part.to_ascii_lowercase().as_str() {
                        "cn" => cn = true,
                        "dns" => dns = true,
                        "upn" => upn = true,
                        "email" | "e-mail" => email = true,
                        other => {
                            return Err(FieldError::new(
                                f,
                                format!(
                                    "`{other}` is not a directory name source; expected cn, dns, upn, email"
                                ),
                            ));
                        }
                    }
                }
                if !(cn || dns || upn || email) {
                    return Err(FieldError::new(
                        f,
                        "name at least one of cn, dns, upn, email",
                    ));
                }
                self.subject = SubjectRule::FromDirectory {
                    cn,
                    dns,
                    upn,
                    email,
                };
            }
            "permitted-dns-suffixes" => {
                let mut suffixes = Vec::new();
                for s in split_list(value) {
                    let s = s.trim_start_matches('.').to_ascii_lowercase();
                    check_dns_name(&f, &s, false)?;
                    suffixes.push(s);
                }
                self.subject = SubjectRule::SupplyInRequest {
                    permitted_dns_suffixes: dedup(suffixes),
                };
            }
            "key-algorithms" => {
                let rules = split_list(value)
                    .map(|r| parse_key_rule(&f, r))
                    .collect::<Result<Vec<_>, _>>()?;
                if rules.is_empty() {
                    return Err(FieldError::new(f, "allow at least one key algorithm"));
                }
                if rules
                    .iter()
                    .enumerate()
                    .any(|(i, r)| rules[..i].iter().any(|o| o.family == r.family))
                {
                    return Err(FieldError::new(f, "name each key family once"));
                }
                self.key_algorithms = rules;
            }
            "min-key-size" | "max-key-size" => {
                let bits: u32 = value.trim().parse().map_err(|_| {
                    FieldError::new(&f, format!("`{value}` is not a number of bits"))
                })?;
                let min = field == "min-key-size";
                let mut touched = false;
                for r in self
                    .key_algorithms
                    .iter_mut()
                    .filter(|r| r.family != KeyFamily::Ed25519)
                {
                    let fits = match r.family {
                        KeyFamily::Rsa => bits >= 1024,
                        _ => bits <= 521,
                    };
                    if fits {
                        if min {
                            r.min_bits = bits
                        } else {
                            r.max_bits = bits
                        }
                        touched = true;
                    }
                }
                if !touched {
                    return Err(FieldError::new(
                        f,
                        format!("no allowed key algorithm takes a size of {bits} bits"),
                    ));
                }
            }
            "hash" => self.hash = HashAlg::parse(&f, value)?,
            "validity" => self.validity = parse_duration(&f, value)?,
            "renewal-period" => self.renewal_period = parse_duration(&f, value)?,
            "exportable" => self.exportable = parse_bool(&f, value)?,
            "require-approval" => self.require_approval = parse_bool(&f, value)?,
            "profile" => {
                let v = value.trim();
                self.profile = match v {
                    "" | "none" => None,
                    p if p.len() <= 64
                        && p.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
                    {
                        Some(p.to_string())
                    }
                    p => {
                        return Err(FieldError::new(
                            f,
                            format!(
                                "`{p}` is not a profile name (lower-case letters, digits and hyphens)"
                            ),
                        ));
                    }
                };
            }
            other => {
                return Err(FieldError::new(
                    format!("template.{other}"),
                    format!(
                        "unknown field; settable fields are {}",
                        SETTABLE_FIELDS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whole-template consistency, checked after every edit and before it is stored.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_name("template.name", &self.name)?;
        if self.ekus.is_empty() {
            return Err(FieldError::new(
                "template.eku",
                "at least one extended key usage is required",
            ));
        }
        if self.key_usage.is_empty() {
            return Err(FieldError::new(
                "template.key-usage",
                "at least one key usage is required",
            ));
        }
        for r in &self.key_algorithms {
            let f = "template.key-algorithms";
            if r.min_bits > r.max_bits {
                return Err(FieldError::new(
                    f,
                    format!(
                        "{}: minimum {} is above maximum {}",
                        r.family.name(),
                        r.min_bits,
                        r.max_bits
                    ),
                ));
            }
            match r.family {
                KeyFamily::Rsa if r.min_bits < 1024 || r.max_bits > 16384 => {
                    return Err(FieldError::new(
                        f,
                        "RSA sizes must lie within 1024–16384 bits",
                    ));
                }
                KeyFamily::Ecdsa
                    if !(256..=384).contains(&r.min_bits) || !(256..=384).contains(&r.max_bits) =>
                {
                    return Err(FieldError::new(
                        f,
                        "ECDSA sizes must be 256 (P-256) or 384 (P-384)",
                    ));
                }
                _ => {}
            }
        }
        if self.renewal_period >= self.validity {
            return Err(FieldError::new(
                "template.renewal-period",
                format!(
                    "{} must be shorter than the validity period {}",
                    format_duration(self.renewal_period),
                    format_duration(self.validity)
                ),
            ));
        }
        let mut groups: Vec<&str> = self.grants.iter().map(|g| g.group.as_str()).collect();
        groups.sort_unstable();
        if groups.windows(2).any(|w| w[0] == w[1]) {
            return Err(FieldError::new(
                "template.grants",
                "each group may appear once",
            ));
        }
        Ok(())
    }

    /// Checks a request's key against the allowed families and sizes.
    pub fn check_key(&self, key: &KeyInfo) -> Result<(), FieldError> {
        let allowed = || {
            self.key_algorithms
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rule = self
            .key_algorithms
            .iter()
            .find(|r| r.family == key.family)
            .ok_or_else(|| {
                FieldError::new(
                    "csr.public_key",
                    format!(
                        "{key} is not allowed by template {}; allowed: {}",
                        self.name,
                        allowed()
                    ),
                )
            })?;
        if key.family != KeyFamily::Ed25519 && key.bits < rule.min_bits {
            return Err(FieldError::new(
                "csr.public_key",
                format!(
                    "{key} is below the minimum of {} bits for {} keys in template {}",
                    rule.min_bits,
                    rule.family.name(),
                    self.name
                ),
            ));
        }
        if key.family != KeyFamily::Ed25519 && key.bits > rule.max_bits {
            return Err(FieldError::new(
                "csr.public_key",
                format!(
                    "{key} is above the maximum of {} bits for {} keys in template {}",
                    rule.max_bits,
                    rule.family.name(),
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// Adds or widens the grant of `group`; `autoenroll` implies enroll and read, `enroll` read.
    pub fn grant(&mut self, group: &str, read: bool, enroll: bool, autoenroll: bool) {
        let enroll = enroll || autoenroll;
        let read = read || enroll;
        match self.grants.iter_mut().find(|g| g.group == group) {
            Some(g) => {
                g.read |= read;
                g.enroll |= enroll;
                g.autoenroll |= autoenroll;
            }
            None => self.grants.push(Grant {
                group: group.to_string(),
                read,
                enroll,
                autoenroll,
            }),
        }
    }

    /// Removes the named permissions (all of them when none is named); returns whether anything changed.
    pub fn revoke_grant(
        &mut self,
        group: &str,
        read: bool,
        enroll: bool,
        autoenroll: bool,
    ) -> bool {
        let all = !(read || enroll || autoenroll);
        let Some(pos) = self.grants.iter().position(|g| g.group == group) else {
            return false;
        };
        if all || read {
            self.grants.remove(pos);
            return true;
        }
        let g = &mut self.grants[pos];
        // Enroll without Read is meaningless, Autoenroll without Enroll too: revoke downwards.
        if enroll {
            g.enroll = false;
            g.autoenroll = false;
        }
        if autoenroll {
            g.autoenroll = false;
        }
        true
    }

    pub fn next_minor(&mut self) {
        self.version.minor += 1;
    }

    pub fn next_major(&mut self) {
        self.version = Version {
            major: self.version.major + 1,
            minor: 0,
        };
    }
}

/// Template names: 1–64 characters of letters, digits, space and `._-()`.
pub fn check_name(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name.trim() == name
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || " ._-()".contains(c));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "`{name}` is not a valid name: use 1–64 letters, digits, spaces or ._-() with no leading or trailing space"
            ),
        ))
    }
}

/// A DNS name of at least two labels (a single label such as `localhost` is refused, as pkilint
/// does), each 1–63 letters, digits or hyphens, not starting or ending with a hyphen.
pub fn check_dns_name(field: &str, name: &str, allow_wildcard: bool) -> Result<(), FieldError> {
    let body = match name.strip_prefix("*.") {
        Some(rest) if allow_wildcard => rest,
        _ => name,
    };
    let labels: Vec<&str> = body.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(FieldError::new(
            field,
            format!(
                "`{name}` is not a fully qualified DNS name (two or more labels of letters, digits and hyphens)"
            ),
        ));
    }
    Ok(())
}

/// Whether `name` equals `suffix` or lies under it (label-aligned, case-insensitive).
pub fn dns_within(name: &str, suffix: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let suffix = suffix.to_ascii_lowercase();
    name == suffix || name.ends_with(&format!(".{suffix}"))
}

fn parse_key_rule(field: &str, text: &str) -> Result<KeyRule, FieldError> {
    let t = text.trim().to_ascii_lowercase();
    let (fam, range) = t.split_once(':').unwrap_or((t.as_str(), ""));
    let family = match fam {
        "rsa" => KeyFamily::Rsa,
        "ecdsa" | "ec" => KeyFamily::Ecdsa,
        "ed25519" => KeyFamily::Ed25519,
        other => {
            return Err(FieldError::new(
                field,
                format!("`{other}` is not a key family; expected rsa, ecdsa or ed25519"),
            ));
        }
    };
    let (min_bits, max_bits) = match (family, range) {
        (KeyFamily::Ed25519, "") => (256, 256),
        (KeyFamily::Ed25519, _) => {
            return Err(FieldError::new(
                field,
                "ed25519 has a fixed size; write just `ed25519`",
            ));
        }
        (KeyFamily::Rsa, "") => (2048, 4096),
        (KeyFamily::Ecdsa, "") => (256, 384),
        (_, r) => {
            let bad = || {
                FieldError::new(
                    field,
                    format!("`{text}`: write the size range as MIN-MAX bits, e.g. rsa:2048-4096"),
                )
            };
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)
        }
    };
    Ok(KeyRule {
        family,
        min_bits,
        max_bits,
    })
}

fn parse_bool(field: &str, v: &str) -> Result<bool, FieldError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(FieldError::new(
            field,
            format!("`{v}` is not true or false"),
        )),
    }
}

fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn dedup<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> Template {
        Template::bases().into_iter().next().unwrap()
    }

    #[test]
    fn bases_are_valid_and_match_spec() {
        let bases = Template::bases();
        assert_eq!(bases.len(), 3);
        for t in &bases {
            t.validate().unwrap();
            assert!(t.builtin);
        }
        assert_eq!(bases[1].display_name, "Workstation Authentication");
        assert_eq!(bases[1].ekus, vec![oid::CLIENT_AUTH]);
        assert_eq!(bases[2].key_usage, vec![KeyUsageBit::DigitalSignature]);
    }

    #[test]
    fn duplicate_and_set_amt() {
        let mut t = web().duplicate("AMT Provisioning").unwrap();
        t.set_field("eku", "server-auth,2.16.840.1.113741.1.2.3")
            .unwrap();
        t.set_field("permitted-dns-suffixes", ".fleet.test")
            .unwrap();
        t.validate().unwrap();
        assert_eq!(t.ekus, vec![oid::SERVER_AUTH, oid::AMT_PROVISIONING]);
        assert_eq!(
            t.subject,
            SubjectRule::SupplyInRequest {
                permitted_dns_suffixes: vec!["fleet.test".into()]
            }
        );
        assert!(!t.builtin && t.base.as_deref() == Some("WebServer"));
    }

    #[test]
    fn key_limits_min_and_max() {
        let mut t = web().duplicate("SQL").unwrap();
        t.set_field("key-algorithms", "rsa:2048-2048").unwrap();
        let rsa = |bits| KeyInfo {
            family: KeyFamily::Rsa,
            bits,
        };
        t.check_key(&rsa(2048)).unwrap();
        assert!(
            t.check_key(&rsa(1024))
                .unwrap_err()
                .rule
                .contains("below the minimum of 2048")
        );
        assert!(
            t.check_key(&rsa(4096))
                .unwrap_err()
                .rule
                .contains("above the maximum of 2048")
        );
        assert!(
            t.check_key(&KeyInfo {
                family: KeyFamily::Ed25519,
                bits: 256
            })
            .unwrap_err()
            .rule
            .contains("not allowed")
        );
        t.set_field("max-key-size", "4096").unwrap();
        t.check_key(&rsa(4096)).unwrap();
    }

    #[test]
    fn bad_fields_name_the_field() {
        let mut t = web().duplicate("X").unwrap();
        let cases = [
            ("hash", "sha1", "template.hash"),
            ("validity", "forever", "template.validity"),
            ("key-usage", "keyCertSign", "template.key-usage"),
            ("key-algorithms", "dsa", "template.key-algorithms"),
            (
                "permitted-dns-suffixes",
                "bad_suffix!",
                "template.permitted-dns-suffixes",
            ),
            ("colour", "red", "template.colour"),
        ];
        for (f, v, want) in cases {
            assert_eq!(t.set_field(f, v).unwrap_err().field, want, "{f}={v}");
        }
        t.set_field("renewal-period", "2y").unwrap();
        assert_eq!(t.validate().unwrap_err().field, "template.renewal-period");
    }

    #[test]
    fn grants_imply_downwards_and_revoke_downwards() {
        let mut t = web();
        t.grant("Servers", false, false, true);
        assert_eq!(
            t.grants[0],
            Grant {
                group: "Servers".into(),
                read: true,
                enroll: true,
                autoenroll: true
            }
        );
        t.revoke_grant("Servers", false, true, false);
        assert_eq!(
            t.grants[0],
            Grant {
                group: "Servers".into(),
                read: true,
                enroll: false,
                autoenroll: false
            }
        );
        assert!(t.revoke_grant("Servers", false, false, false));
        assert!(t.grants.is_empty());
    }

    #[test]
    fn dns_rules() {
        check_dns_name("f", "pc1.fleet.test", false).unwrap();
        assert!(check_dns_name("f", "localhost", false).is_err());
        assert!(check_dns_name("f", "-a.b", false).is_err());
        assert!(dns_within("Host.Fleet.Test", "fleet.test"));
        assert!(!dns_within("evilfleet.test", "fleet.test"));
    }
}
