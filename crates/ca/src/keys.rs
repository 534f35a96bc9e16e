//! Custody of the site's private keys: encrypted PKCS#8 files, mode 0600, written atomically.
//!
//! Keys are encrypted under the operator's passphrase, or, for an unattended site, under a
//! random key-encryption key (KEK) kept in its own 0600 file. The KEK file guards against the
//! key files alone leaking (a copied `keys/` folder, a backup without `secrets/`); it does not
//! guard against someone who can read the whole site directory as the service account: for that,
//! use a passphrase (or, later, a PKCS#11 token) and keep the KEK off the data volume.

use crate::config::{KeyProtection, SiteConfig};
use crate::error::{CaError, refuse};
use fleetpki_x509::key::PrivateKey;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Which key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    Root,
    Issuing,
    SiteSigning,
    /// The TLS key of the site's roles in enhanced HTTP (its certificate comes from the site CA).
    SiteSystem,
    /// The SCEP registration authority's RSA key (key transport and CertRep signatures).
    ScepRa,
}

impl KeyRole {
    pub fn name(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Issuing => "issuing",
            Self::SiteSigning => "site-signing",
            Self::SiteSystem => "site-system",
            Self::ScepRa => "scep-ra",
        }
    }
}

/// Reads and writes the site's encrypted key files.
pub struct KeyCustody {
    keys_dir: PathBuf,
    secret: Zeroizing<Vec<u8>>,
}

impl KeyCustody {
    /// For a site whose keys are protected as `config` says; `passphrase` is what the operator
    /// supplied (required in passphrase mode, ignored otherwise).
    pub fn open(
        dir: &Path,
        config: &SiteConfig,
        passphrase: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Self, CaError> {
        let secret = match config.keys.protection {
            KeyProtection::Passphrase => passphrase.ok_or_else(|| {
                refuse("FLEETPKI_PASSPHRASE", "this site's CA keys are passphrase-protected: set FLEETPKI_PASSPHRASE or pass --passphrase-file")
            })?,
            KeyProtection::KekFile => {
                let path = config.kek_path(dir).ok_or_else(|| refuse("keys.kek_file", "is not set"))?;
                Zeroizing::new(std::fs::read(&path).map_err(CaError::io(&path))?)
            }
        };
        Ok(Self {
            keys_dir: dir.join("keys"),
            secret,
        })
    }

    /// Creates a new random KEK file (0600) and returns its contents.
    pub fn create_kek(path: &Path) -> Result<Zeroizing<Vec<u8>>, CaError> {
        let mut raw = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(raw.as_mut())
            .map_err(|_| refuse("keys.kek_file", "the system random generator failed"))?;
        let kek = Zeroizing::new(hex::encode(raw.as_ref()).into_bytes());
        write_private(path, &kek)?;
        Ok(kek)
    }

    pub fn with_secret(dir: &Path, secret: Zeroizing<Vec<u8>>) -> Self {
        Self {
            keys_dir: dir.join("keys"),
            secret,
        }
    }

    fn path(&self, role: KeyRole) -> PathBuf {
        self.keys_dir.join(format!("{}.key.pem", role.name()))
    }

    pub fn store(&self, role: KeyRole, key: &PrivateKey) -> Result<(), CaError> {
        let pem = key.to_encrypted_pem(&self.secret)?;
        write_private(&self.path(role), pem.as_bytes())
    }

    pub fn load(&self, role: KeyRole) -> Result<PrivateKey, CaError> {
        let path = self.path(role);
        let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(CaError::io(&path))?);
        Ok(PrivateKey::from_pem(&text, Some(&self.secret))?)
    }
}

/// Writes `bytes` to `path` with mode 0600 via a synced temporary file and rename, so a crash
/// leaves the old file or the new one, never a torn key.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CaError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(CaError::io(parent))?;
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))
        .map_err(CaError::io(parent))?;
    write_atomic(path, bytes, 0o600)
}

/// Atomic write with the given mode: temp file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(CaError::io(&tmp))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(CaError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(CaError::io(path))?;
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(CaError::io(parent))?;
    Ok(())
}
