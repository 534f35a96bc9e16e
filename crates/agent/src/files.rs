//! Crash-safe file writes and plain reads for the agent's own files (config, state, policy,
//! log): a write lands whole or not at all.

use std::fs::{File, OpenOptions};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {rule}")]
    Invalid { path: String, rule: String },
    /// Another process holds the agent directory's maintenance lock.
    #[error(
        "{path}: another fleetpki agent process{} is maintaining this agent; stop it (or let it finish) and try again",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { path: String, holder: Option<u32> },
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub fn read_to_string(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(io(path))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename
/// over the target, fsync the directory. `private` makes the file 0600 from its creation.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), FileError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(if private { 0o600 } else { 0o644 });
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// The file whose lock says one process maintains an agent directory.
pub const LOCK_FILE: &str = "agent.lock";

/// The agent directory's maintenance lock, held while it lives. Two processes renewing,
/// importing or writing state in one directory at once would both enroll and overwrite each
/// other's state; readers (status, list, select, export) never take it. An advisory `flock`:
/// the kernel drops it when the holder exits, even when killed, so it never goes stale.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Takes the maintenance lock of `dir` without waiting; the holder's pid goes into the file
/// so a refused process can say who holds it.
pub fn lock_dir(dir: &Path) -> Result<DirLock, FileError> {
    let path = dir.join(LOCK_FILE);
    let mut opts = OpenOptions::new();
    // Not truncated before the lock is ours: the holder's pid must stay readable.
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    opts.mode(0o644);
    let mut file = opts.open(&path).map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            return Err(FileError::Locked {
                path: path.display().to_string(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
    }
    // The pid is only for the message above: failing to write it does not matter.
    let _ = file
        .set_len(0)
        .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
    Ok(DirLock { _file: file })
}

/// Appends one line and syncs it (the maintenance log: each decision survives a crash).
pub fn append_line(path: &Path, line: &str) -> Result<(), FileError> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))?;
    f.write_all(format!("{line}\n").as_bytes())
        .map_err(io(path))?;
    f.sync_data().map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path()).unwrap();
        // flock locks belong to open file descriptions: a second open conflicts even within
        // one process, as a second agent process would.
        match lock_dir(dir.path()) {
            Err(FileError::Locked { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("second lock: {other:?}"),
        }
        let msg = lock_dir(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("agent.lock") && msg.contains("pid"), "{msg}");
        drop(held);
        lock_dir(dir.path()).expect("free again once the holder is gone");
    }

    #[test]
    fn atomic_write_replaces_whole_and_private_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"one", false).unwrap();
        write_atomic(&p, b"two", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        append_line(&dir.path().join("log"), "a").unwrap();
        append_line(&dir.path().join("log"), "b").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("log")).unwrap(),
            "a\nb\n"
        );
    }
}
