//! The agent's on-disk certificate store (SPEC §1, §5): `personal/`, `root/`,
//! `trusted-people/`, `archive/`, with private keys apart in `keys/`.
//!
//! Layout, under the store directory:
//! - `STORE/STEM.pem`: the certificate (PEM). Its presence is what makes an entry visible.
//! - `STORE/STEM.json`: its metadata ([`CertMeta`], key file name, when added, and for
//!   `archive/` why and when it was archived).
//! - `keys/STEM.key`: the private key, PKCS#8 PEM, mode 0600 in a 0700 directory.
//!
//! STEM is `SERIAL-FINGERPRINT16` (serial in lower hex, then the first 16 hex digits of the
//! SHA-256 fingerprint): a serial alone is unique per issuer only, and two test CAs both
//! issuing serial 01 must not collide in `root/`.
//!
//! Every file is written atomically: a temp file (`.NAME.PID.N.tmp`, ignored by listings) in
//! the same directory, fsync, rename over the final name, fsync the directory. A [`put`] writes
//! the key, then the metadata, then the certificate, so a crash leaves at worst an orphan key
//! or metadata file that no listing shows. [`archive`] moves the certificate with one rename,
//! so it is in its store or in `archive/`, never in neither; [`replace`] puts the new
//! certificate completely before archiving the old one. Keys stay in `keys/` when their
//! certificate is archived (an archived certificate may still be needed to decrypt old data,
//! as Windows keeps archived certificates with their keys).
//!
//! Nothing is deleted: there is no delete API. [`AgentStore::open`] removes only leftover temp
//! files of writes that never completed.
//!
//! [`put`]: AgentStore::put
//! [`archive`]: AgentStore::archive
//! [`replace`]: AgentStore::replace

use crate::pkcs12::{self, Pkcs12Error};
use fleetpki_model::UnixTime;
use fleetpki_x509::X509Error;
use fleetpki_x509::cert::{self, CertInfo};
use fleetpki_x509::key::PrivateKey;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use zeroize::Zeroizing;

/// The directory holding private keys.
pub const KEYS_DIR: &str = "keys";
/// Version of the metadata file format.
const META_FORMAT: u32 = 1;
/// Mode of key files and of the keys directory.
const KEY_FILE_MODE: u32 = 0o600;
const KEYS_DIR_MODE: u32 = 0o700;
/// Mode of certificate and metadata files (certificates are public).
const PUBLIC_FILE_MODE: u32 = 0o644;
/// Certificates and metadata larger than this are not ours (a listing reads every file).
const MAX_FILE_LEN: u64 = 1 << 20;

/// One of the agent's stores (SPEC §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreName {
    /// The machine's own certificates, with keys (Windows: Personal).
    Personal,
    /// Trusted CA certificates (Windows: Trusted Root Certification Authorities).
    Root,
    /// Trusted end-entity certificates (Windows: Trusted People).
    TrustedPeople,
    /// Replaced, expired, revoked and removed certificates; never deleted.
    Archive,
}

impl StoreName {
    pub const ALL: [StoreName; 4] = [
        Self::Personal,
        Self::Root,
        Self::TrustedPeople,
        Self::Archive,
    ];

    /// The directory name: `personal`, `root`, `trusted-people`, `archive`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Personal => "personal",
            Self::Root => "root",
            Self::TrustedPeople => "trusted-people",
            Self::Archive => "archive",
        }
    }
}

impl std::fmt::Display for StoreName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/", self.dir_name())
    }
}

/// How a certificate came into the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Enrolled or renewed by the agent for a template.
    #[default]
    Autoenroll,
    /// Imported from a PKCS#12 file or a certificate file.
    Import,
    /// Installed as trust (site root at install, pins).
    Install,
}

/// What the caller knows about a certificate; stored beside it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertMeta {
    /// The template it was enrolled for, when it was.
    pub template: Option<String>,
    pub template_major: Option<u32>,
    pub template_minor: Option<u32>,
    /// The template allowed the private key to be exported.
    pub export_allowed: bool,
    /// The key was marked non-exportable (hardware-bound, or at import); wins over the template.
    pub key_non_exportable: bool,
    pub source: Source,
}

/// Why a certificate went to `archive/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveReason {
    /// A renewal or re-enrollment replaced it.
    Replaced,
    /// It expired and nothing replaced it.
    Expired,
    /// The CA revoked it.
    Revoked,
    /// Another certificate for the same purpose made it redundant (e.g. template withdrawn).
    Superseded,
    /// An administrator asked to remove it.
    Removed,
}

/// Where an archived certificate came from, when and why it was archived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archived {
    pub reason: ArchiveReason,
    pub at: UnixTime,
    pub from: StoreName,
    /// The stem of the certificate that replaced it, for [`ArchiveReason::Replaced`].
    pub replaced_by: Option<String>,
}

/// The metadata file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Sidecar {
    format: u32,
    meta: CertMeta,
    /// File name in `keys/`, when the certificate has a key.
    key_file: Option<String>,
    added_at: UnixTime,
    archived: Option<Archived>,
}

/// One certificate of a store, as listed.
#[derive(Clone, Debug)]
pub struct Entry {
    pub store: StoreName,
    /// File name without `.pem`; the metadata is `STEM.json`.
    pub stem: String,
    /// The certificate file.
    pub path: PathBuf,
    pub der: Vec<u8>,
    pub info: CertInfo,
    pub meta: CertMeta,
    /// The key file, when the metadata names one (it may be missing: see [`Entry::has_key`]).
    pub key_path: Option<PathBuf>,
    /// The key file exists.
    pub has_key: bool,
    pub added_at: UnixTime,
    pub archived: Option<Archived>,
}

impl Entry {
    /// The template allows export and the key is not marked non-exportable.
    pub fn exportable(&self) -> bool {
        self.meta.export_allowed && !self.meta.key_non_exportable
    }
}

/// A file the store cannot make sense of, or a rule the store breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub kind: ProblemKind,
    /// What is wrong, in words an administrator can act on.
    pub rule: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// A store directory is missing or unreadable.
    MissingDir,
    /// A certificate file does not parse.
    UnreadableCertificate,
    /// A certificate without its metadata file, or metadata that does not parse.
    BadMetadata,
    /// The metadata names a key that is missing, unreadable or not the certificate's.
    BadKey,
    /// A key file or the keys directory is readable by group or others.
    LoosePermissions,
    /// A certificate in the wrong store (a non-CA in `root/`, an unarchived one in `archive/`).
    Misplaced,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.rule)
    }
}

/// A store's readable entries, and the files it could not read (never fatal to the listing).
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub unreadable: Vec<Problem>,
}

/// Why a store operation failed; `Display` reads `FIELD: RULE`, the field being a path or an
/// input name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("{}: could not {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// A file is not what the store wrote there.
    #[error("{}: {rule}", path.display())]
    Corrupt { path: PathBuf, rule: String },
    /// The request breaks a store rule (export of a non-exportable key, key in `root/`, ...).
    #[error("{field}: {rule}")]
    Refused { field: String, rule: String },
    /// A certificate or key given to the store is invalid.
    #[error("{0}")]
    X509(#[from] X509Error),
    #[error("{0}")]
    Pkcs12(#[from] Pkcs12Error),
}

impl StoreError {
    fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io {
            path,
            action,
            source,
        }
    }

    fn refused(field: &str, rule: impl Into<String>) -> Self {
        Self::Refused {
            field: field.to_string(),
            rule: rule.into(),
        }
    }

    fn corrupt(path: &Path, rule: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.to_path_buf(),
            rule: rule.into(),
        }
    }
}

/// The agent's store directory.
#[derive(Clone, Debug)]
pub struct AgentStore {
    dir: PathBuf,
}

impl AgentStore {
    /// Opens the store at `dir`, creating it and its subdirectories when missing (`keys/` 0700),
    /// and removes leftover temp files of interrupted writes. Does not judge existing files:
    /// call [`AgentStore::check`] for that.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(StoreError::io(&dir, "create the store directory"))?;
        for name in StoreName::ALL {
            let sub = dir.join(name.dir_name());
            create_dir(&sub, 0o755)?;
            remove_temp_files(&sub)?;
        }
        let keys = dir.join(KEYS_DIR);
        create_dir(&keys, KEYS_DIR_MODE)?;
        remove_temp_files(&keys)?;
        sync_dir(&dir)?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of `store`.
    pub fn store_dir(&self, store: StoreName) -> PathBuf {
        self.dir.join(store.dir_name())
    }

    fn keys_dir(&self) -> PathBuf {
        self.dir.join(KEYS_DIR)
    }

    /// The certificates of `store`, sorted by stem. Fails only when the directory cannot be
    /// read; a file that does not parse goes to [`Listing::unreadable`]. Temp files, orphan
    /// metadata and keys without a certificate are not entries.
    pub fn list(&self, store: StoreName) -> Result<Listing, StoreError> {
        let dir = self.store_dir(store);
        let mut listing = Listing::default();
        let mut stems = Vec::new();
        let rd = fs::read_dir(&dir).map_err(StoreError::io(&dir, "list the store"))?;
        for item in rd {
            let item = item.map_err(StoreError::io(&dir, "list the store"))?;
            let name = item.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            if let Some(stem) = name.strip_suffix(".pem") {
                stems.push(stem.to_string());
            }
        }
        stems.sort();
        for stem in stems {
            match self.read_entry(store, &stem) {
                Ok(e) => listing.entries.push(e),
                Err(p) => listing.unreadable.push(p),
            }
        }
        Ok(listing)
    }

    fn read_entry(&self, store: StoreName, stem: &str) -> Result<Entry, Problem> {
        let dir = self.store_dir(store);
        let path = dir.join(format!("{stem}.pem"));
        let problem = |path: &Path, kind, rule: String| Problem {
            path: path.to_path_buf(),
            kind,
            rule,
        };
        let bytes = read_limited(&path)
            .map_err(|e| problem(&path, ProblemKind::UnreadableCertificate, e.to_string()))?;
        let parsed = cert::parse("certificate", &bytes).map_err(|e| {
            problem(
                &path,
                ProblemKind::UnreadableCertificate,
                format!("not a certificate: {}", e.rule()),
            )
        })?;
        let info = cert::info(&parsed).map_err(|e| {
            problem(
                &path,
                ProblemKind::UnreadableCertificate,
                format!("not a usable certificate: {}", e.rule()),
            )
        })?;
        let der = der::Encode::to_der(&parsed)
            .map_err(|e| problem(&path, ProblemKind::UnreadableCertificate, e.to_string()))?;
        let meta_path = dir.join(format!("{stem}.json"));
        let sidecar = read_sidecar(&meta_path)
            .map_err(|e| problem(&meta_path, ProblemKind::BadMetadata, e.to_string()))?;
        let key_path = sidecar
            .key_file
            .as_deref()
            .map(|f| {
                safe_file_name(f)
                    .map(|f| self.keys_dir().join(f))
                    .ok_or_else(|| {
                        problem(
                            &meta_path,
                            ProblemKind::BadMetadata,
                            format!("key_file `{f}` is not a plain file name"),
                        )
                    })
            })
            .transpose()?;
        let has_key = key_path.as_deref().is_some_and(Path::exists);
        Ok(Entry {
            store,
            stem: stem.to_string(),
            path,
            der,
            info,
            meta: sidecar.meta,
            key_path,
            has_key,
            added_at: sidecar.added_at,
            archived: sidecar.archived,
        })
    }

    /// Adds a certificate (DER or PEM) to `store` with its private key, if any, and returns its
    /// entry. Writes the key (0600), then the metadata, then the certificate, each atomically.
    /// Refuses `archive/` (use [`AgentStore::archive`]), keys outside `personal/`, a key that
    /// is not the certificate's, and a certificate already in the store.
    pub fn put(
        &self,
        store: StoreName,
        cert_der: &[u8],
        key: Option<&PrivateKey>,
        meta: CertMeta,
    ) -> Result<Entry, StoreError> {
        if store == StoreName::Archive {
            return Err(StoreError::refused(
                "store",
                "certificates enter archive/ only by being archived from another store",
            ));
        }
        if key.is_some() && store != StoreName::Personal {
            return Err(StoreError::refused(
                "key",
                format!("private keys are kept for personal/ certificates only, not {store}"),
            ));
        }
        let parsed = cert::parse("certificate", cert_der)?;
        let info = cert::info(&parsed)?;
        let der = der::Encode::to_der(&parsed).map_err(|e| {
            StoreError::refused("certificate", format!("cannot be re-encoded: {e}"))
        })?;
        if store == StoreName::Root && !info.is_ca {
            return Err(StoreError::refused(
                "certificate",
                format!(
                    "root/ holds CA certificates only; `{}` is not a CA (use trusted-people/)",
                    info.subject
                ),
            ));
        }
        let stem = stem_of(&info, &der);
        let dir = self.store_dir(store);
        let cert_path = dir.join(format!("{stem}.pem"));
        if cert_path.exists() {
            return Err(StoreError::refused(
                "certificate",
                format!("serial {} is already in {store}", info.serial_hex),
            ));
        }
        let key_file = match key {
            Some(k) => {
                key_matches(&parsed, k)?;
                Some(self.write_key(&stem, k)?)
            }
            None => None,
        };
        let sidecar = Sidecar {
            format: META_FORMAT,
            meta,
            key_file,
            added_at: fleetpki_model::now(),
            archived: None,
        };
        write_atomic(
            &dir,
            &format!("{stem}.json"),
            &sidecar_bytes(&sidecar)?,
            PUBLIC_FILE_MODE,
        )?;
        // Last: the certificate makes the entry visible.
        write_atomic(
            &dir,
            &format!("{stem}.pem"),
            cert::to_pem(&der).as_bytes(),
            PUBLIC_FILE_MODE,
        )?;
        self.read_entry(store, &stem)
            .map_err(|p| StoreError::corrupt(&p.path, p.rule))
    }

    /// Adds a CA certificate to `root/` or an end-entity certificate to `trusted-people/`,
    /// without a key.
    pub fn put_trusted(
        &self,
        store: StoreName,
        cert_der: &[u8],
        meta: CertMeta,
    ) -> Result<Entry, StoreError> {
        if !matches!(store, StoreName::Root | StoreName::TrustedPeople) {
            return Err(StoreError::refused(
                "store",
                format!("trust goes to root/ or trusted-people/, not {store}"),
            ));
        }
        self.put(store, cert_der, None, meta)
    }

    /// Writes `keys/STEM.key`, or keeps the one already there when it holds the same key
    /// (a retried put): a key file is never overwritten.
    fn write_key(&self, stem: &str, key: &PrivateKey) -> Result<String, StoreError> {
        let name = format!("{stem}.key");
        let keys = self.keys_dir();
        let path = keys.join(&name);
        if path.exists() {
            let existing = read_key(&path)?;
            if existing.public_key_der() == key.public_key_der() {
                return Ok(name);
            }
            return Err(StoreError::refused(
                "key",
                format!(
                    "{} already holds another key; it is kept, nothing is overwritten",
                    path.display()
                ),
            ));
        }
        let pem = key.to_pkcs8_pem();
        write_atomic(&keys, &name, pem.as_bytes(), KEY_FILE_MODE)?;
        Ok(name)
    }

    /// The entry's private key. Refuses a key file readable by group or others, as ssh does.
    pub fn key(&self, entry: &Entry) -> Result<PrivateKey, StoreError> {
        let path = entry.key_path.as_deref().ok_or_else(|| {
            StoreError::refused(
                "key",
                format!("{} has no private key", entry.path.display()),
            )
        })?;
        read_key(path)
    }

    /// Moves `entry` to `archive/` with `reason`; its key stays in `keys/`. Writes the archive
    /// metadata, renames the certificate (one atomic step), then removes the old metadata file,
    /// whose content now lives in the archive's.
    pub fn archive(
        &self,
        entry: &Entry,
        reason: ArchiveReason,
        at: UnixTime,
    ) -> Result<Entry, StoreError> {
        self.archive_with(entry, reason, at, None)
    }

    fn archive_with(
        &self,
        entry: &Entry,
        reason: ArchiveReason,
        at: UnixTime,
        replaced_by: Option<String>,
    ) -> Result<Entry, StoreError> {
        if entry.store == StoreName::Archive {
            return Err(StoreError::refused(
                "entry",
                format!("{} is already archived", entry.path.display()),
            ));
        }
        let from_dir = self.store_dir(entry.store);
        let from_meta = from_dir.join(format!("{}.json", entry.stem));
        let from_cert = from_dir.join(format!("{}.pem", entry.stem));
        // Re-read the metadata: the entry may be stale, the file is the truth.
        let sidecar = read_sidecar(&from_meta)?;
        let archive_dir = self.store_dir(StoreName::Archive);
        let stem = free_stem(&archive_dir, &entry.stem);
        let archived = Sidecar {
            archived: Some(Archived {
                reason,
                at,
                from: entry.store,
                replaced_by,
            }),
            ..sidecar
        };
        write_atomic(
            &archive_dir,
            &format!("{stem}.json"),
            &sidecar_bytes(&archived)?,
            PUBLIC_FILE_MODE,
        )?;
        crash_point("archive: before the certificate moves")?;
        let to_cert = archive_dir.join(format!("{stem}.pem"));
        fs::rename(&from_cert, &to_cert).map_err(StoreError::io(&from_cert, "move to archive/"))?;
        sync_dir(&archive_dir)?;
        sync_dir(&from_dir)?;
        crash_point("archive: before the old metadata goes")?;
        match fs::remove_file(&from_meta) {
            Ok(()) => sync_dir(&from_dir)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&from_meta, "remove the moved metadata")(e)),
        }
        self.read_entry(StoreName::Archive, &stem)
            .map_err(|p| StoreError::corrupt(&p.path, p.rule))
    }

    /// Puts `new_cert_der` (with `new_key`) into `old`'s store, then archives `old` as
    /// [`ArchiveReason::Replaced`]. A crash leaves the old certificate, or both, never
    /// neither. Returns (new entry, archived old entry).
    pub fn replace(
        &self,
        old: &Entry,
        new_cert_der: &[u8],
        new_key: Option<&PrivateKey>,
        meta: CertMeta,
        at: UnixTime,
    ) -> Result<(Entry, Entry), StoreError> {
        if old.store == StoreName::Archive {
            return Err(StoreError::refused(
                "entry",
                "an archived certificate cannot be replaced; put the new one instead",
            ));
        }
        let new = self.put(old.store, new_cert_der, new_key, meta)?;
        let archived =
            self.archive_with(old, ArchiveReason::Replaced, at, Some(new.stem.clone()))?;
        Ok((new, archived))
    }

    /// Exports `entry` with its key and its chain from `root/` as PKCS#12, only when the
    /// template allowed export and the key is not marked non-exportable (SPEC §5).
    pub fn export_pkcs12(
        &self,
        entry: &Entry,
        password: &str,
        legacy: bool,
    ) -> Result<Vec<u8>, StoreError> {
        if !entry.meta.export_allowed {
            return Err(StoreError::refused(
                "export",
                format!(
                    "the template{} does not allow exporting the private key",
                    entry
                        .meta
                        .template
                        .as_deref()
                        .map(|t| format!(" `{t}`"))
                        .unwrap_or_default()
                ),
            ));
        }
        if entry.meta.key_non_exportable {
            return Err(StoreError::refused(
                "export",
                "the private key is marked non-exportable",
            ));
        }
        let key = self.key(entry)?;
        let chain = self.chain_of(&entry.der)?;
        Ok(pkcs12::export(
            &entry.der, &key, &chain, password, None, legacy,
        )?)
    }

    /// Issuer certificates of `der` found in `root/`, issuer first, each verified to have
    /// signed the one before; stops at a self-signed certificate or a missing issuer.
    fn chain_of(&self, der: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let roots = self.list(StoreName::Root)?.entries;
        let mut chain: Vec<Vec<u8>> = Vec::new();
        let mut current = der.to_vec();
        while chain.len() < roots.len() {
            let child = cert::parse("certificate", &current)?;
            let child_info = cert::info(&child)?;
            if child_info.issuer == child_info.subject && !chain.is_empty() {
                break;
            }
            let issuer = roots.iter().find(|r| {
                r.info.subject == child_info.issuer
                    && r.der != current
                    && !chain.contains(&r.der)
                    && cert::parse("issuer", &r.der)
                        .is_ok_and(|ic| cert::verify_der_signed_by(&current, &ic).is_ok())
            });
            match issuer {
                Some(r) => {
                    chain.push(r.der.clone());
                    current = r.der.clone();
                }
                None => break,
            }
        }
        Ok(chain)
    }

    /// Imports a PKCS#12 file into `personal/` with `meta` (source, exportability) and returns
    /// the entry and the file's other certificates, which are NOT trusted automatically: the
    /// caller decides whether any goes to `root/`.
    pub fn import_pkcs12(
        &self,
        bytes: &[u8],
        password: &str,
        meta: CertMeta,
    ) -> Result<(Entry, Vec<Vec<u8>>), StoreError> {
        let imported = pkcs12::import(bytes, password)?;
        let entry = self.put(
            StoreName::Personal,
            &imported.cert_der,
            Some(&imported.key),
            meta,
        )?;
        Ok((entry, imported.chain))
    }

    /// Checks the store's consistency: every store directory exists; every visible certificate
    /// parses and has its metadata; a certificate whose metadata names a key has that key,
    /// readable and matching; key files and `keys/` are owner-only; `root/` holds CA
    /// certificates; `archive/` entries say why they were archived. Leftover temp files,
    /// orphan metadata and orphan keys are the expected traces of a crash, not problems.
    pub fn check(&self) -> Vec<Problem> {
        check(&self.dir)
    }
}

/// [`AgentStore::check`] on a directory, without creating or cleaning anything.
pub fn check(dir: &Path) -> Vec<Problem> {
    let store = AgentStore {
        dir: dir.to_path_buf(),
    };
    let mut problems = Vec::new();
    let keys = store.keys_dir();
    match fs::metadata(&keys) {
        Ok(m) if m.is_dir() => {
            if m.permissions().mode() & 0o077 != 0 {
                problems.push(Problem {
                    path: keys.clone(),
                    kind: ProblemKind::LoosePermissions,
                    rule: format!(
                        "the keys directory is mode {:o}; it must be 0700 (owner only)",
                        m.permissions().mode() & 0o777
                    ),
                });
            }
            if let Ok(rd) = fs::read_dir(&keys) {
                for item in rd.flatten() {
                    let path = item.path();
                    if let Err(rule) = owner_only(&path) {
                        problems.push(Problem {
                            path,
                            kind: ProblemKind::LoosePermissions,
                            rule,
                        });
                    }
                }
            }
        }
        _ => problems.push(Problem {
            path: keys.clone(),
            kind: ProblemKind::MissingDir,
            rule: "the keys directory is missing".to_string(),
        }),
    }
    for name in StoreName::ALL {
        let listing = match store.list(name) {
            Ok(l) => l,
            Err(e) => {
                problems.push(Problem {
                    path: store.store_dir(name),
                    kind: ProblemKind::MissingDir,
                    rule: e.to_string(),
                });
                continue;
            }
        };
        problems.extend(listing.unreadable);
        for e in listing.entries {
            problems.extend(check_entry(&store, &e));
        }
    }
    problems
}

fn check_entry(store: &AgentStore, e: &Entry) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut push = |path: &Path, kind, rule: String| {
        problems.push(Problem {
            path: path.to_path_buf(),
            kind,
            rule,
        })
    };
    if let Some(kp) = &e.key_path {
        match store.key(e) {
            Ok(k) => {
                let matches = cert::parse("certificate", &e.der)
                    .map_err(StoreError::from)
                    .and_then(|c| key_matches(&c, &k));
                if let Err(err) = matches {
                    push(kp, ProblemKind::BadKey, err.to_string());
                }
            }
            // Loose permissions are reported once, by the keys directory scan.
            Err(StoreError::Refused { field, .. }) if field == "key_permissions" => {}
            Err(err) => push(kp, ProblemKind::BadKey, err.to_string()),
        }
    }
    match e.store {
        StoreName::Root if !e.info.is_ca => push(
            &e.path,
            ProblemKind::Misplaced,
            format!(
                "root/ holds CA certificates only; `{}` is not a CA",
                e.info.subject
            ),
        ),
        StoreName::Archive if e.archived.is_none() => push(
            &e.path,
            ProblemKind::Misplaced,
            "in archive/ but its metadata does not say why it was archived".to_string(),
        ),
        StoreName::Personal | StoreName::Root | StoreName::TrustedPeople
            if e.archived.is_some() =>
        {
            push(
                &e.path,
                ProblemKind::Misplaced,
                format!("its metadata says archived, but it is in {}", e.store),
            )
        }
        _ => {}
    }
    problems
}

/// `SERIAL-FINGERPRINT16`.
fn stem_of(info: &CertInfo, der: &[u8]) -> String {
    let fp = cert::fingerprint(der);
    let serial: String = info
        .serial_hex
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    format!("{serial}-{}", &fp[..16.min(fp.len())])
}

/// `stem`, or `stem.2`, `stem.3`, ... when `dir` already has that name (the same certificate
/// archived twice): an archived file is never overwritten.
fn free_stem(dir: &Path, stem: &str) -> String {
    let taken =
        |s: &str| dir.join(format!("{s}.pem")).exists() || dir.join(format!("{s}.json")).exists();
    if !taken(stem) {
        return stem.to_string();
    }
    let mut n = 2u32;
    loop {
        let candidate = format!("{stem}.{n}");
        if !taken(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// A file name without directory parts, so metadata cannot point a key path elsewhere.
fn safe_file_name(name: &str) -> Option<&str> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0');
    ok.then_some(name)
}

fn key_matches(cert: &x509_cert::Certificate, key: &PrivateKey) -> Result<(), StoreError> {
    let spki = der::Encode::to_der(cert.tbs_certificate().subject_public_key_info())
        .map_err(|e| StoreError::refused("certificate", format!("cannot be re-encoded: {e}")))?;
    if spki != key.public_key_der() {
        return Err(StoreError::refused(
            "key",
            "the private key does not belong to the certificate (public keys differ)",
        ));
    }
    Ok(())
}

fn owner_only(path: &Path) -> Result<(), String> {
    match fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Err(format!(
            "key file is mode {:o}; it must be 0600 (owner only)",
            m.permissions().mode() & 0o777
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("cannot read its permissions: {e}")),
    }
}

fn read_key(path: &Path) -> Result<PrivateKey, StoreError> {
    if !path.exists() {
        return Err(StoreError::corrupt(path, "the key file is missing"));
    }
    if let Err(rule) = owner_only(path) {
        return Err(StoreError::Refused {
            field: "key_permissions".to_string(),
            rule: format!("{}: {rule}", path.display()),
        });
    }
    let bytes = Zeroizing::new(read_limited(path)?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| StoreError::corrupt(path, "the key file is not PEM text"))?;
    PrivateKey::from_pem(text, None)
        .map_err(|e| StoreError::corrupt(path, format!("unreadable key: {}", e.rule())))
}

fn read_limited(path: &Path) -> Result<Vec<u8>, StoreError> {
    let meta = fs::metadata(path).map_err(StoreError::io(path, "read"))?;
    if meta.len() > MAX_FILE_LEN {
        return Err(StoreError::corrupt(
            path,
            format!("{} bytes is too large for a store file", meta.len()),
        ));
    }
    fs::read(path).map_err(StoreError::io(path, "read"))
}

fn read_sidecar(path: &Path) -> Result<Sidecar, StoreError> {
    let bytes = match read_limited(path) {
        Err(StoreError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
            return Err(StoreError::corrupt(
                path,
                "the certificate's metadata file is missing",
            ));
        }
        r => r?,
    };
    let s: Sidecar = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::corrupt(path, format!("unreadable metadata: {e}")))?;
    if s.format != META_FORMAT {
        return Err(StoreError::corrupt(
            path,
            format!("metadata format {} is not {META_FORMAT}", s.format),
        ));
    }
    Ok(s)
}

fn sidecar_bytes(s: &Sidecar) -> Result<Vec<u8>, StoreError> {
    let mut v = serde_json::to_vec_pretty(s)
        .map_err(|e| StoreError::refused("metadata", format!("cannot be written: {e}")))?;
    v.push(b'\n');
    Ok(v)
}

fn create_dir(path: &Path, mode: u32) -> Result<(), StoreError> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(StoreError::io(path, "create the directory")(e)),
    }
}

fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

fn remove_temp_files(dir: &Path) -> Result<(), StoreError> {
    let rd = fs::read_dir(dir).map_err(StoreError::io(dir, "list the directory"))?;
    for item in rd.flatten() {
        let name = item.file_name();
        if name.to_str().is_some_and(is_temp_name) {
            let path = item.path();
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&path, "remove a leftover temp file")(e)),
            }
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir, "fsync the directory"))
}

/// Temp files are unique per process and write, so two writers never share one.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Temp file in `dir` → write → fsync → rename to `name` → fsync `dir`. `create_new` with
/// `mode` means the content is never readable by others, even for a moment.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(StoreError::io(&tmp, "create a temp file"))?;
    crash_point("write: temp file created")?;
    f.write_all(bytes)
        .map_err(StoreError::io(&tmp, "write a temp file"))?;
    f.sync_all()
        .map_err(StoreError::io(&tmp, "fsync a temp file"))?;
    drop(f);
    crash_point("write: temp file complete")?;
    let dest = dir.join(name);
    fs::rename(&tmp, &dest).map_err(StoreError::io(&dest, "rename a temp file into place"))?;
    sync_dir(dir)?;
    crash_point("write: renamed")
}

#[cfg(not(test))]
#[inline(always)]
fn crash_point(_what: &'static str) -> Result<(), StoreError> {
    Ok(())
}

/// Test builds: stops the operation at the Nth crash point of this thread, leaving the disk
/// exactly as a crash there would (every earlier step durable, nothing later).
#[cfg(test)]
fn crash_point(what: &'static str) -> Result<(), StoreError> {
    tests::crash::hit(what)
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
