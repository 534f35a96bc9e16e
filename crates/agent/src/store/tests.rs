use super::fixtures::{TestCa, p256};
use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Simulated crashes: [`hit`] is every crash point of the store's writes; when armed with N, the
/// Nth point of this thread fails the operation there, leaving the disk as a crash would.
pub(crate) mod crash {
    use super::StoreError;
    use std::cell::Cell;
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// What the kill test's child prints at each crash point, so the parent can kill it there.
    pub const POINT: &str = "fleetpki-store-point ";
    static REPORT: AtomicBool = AtomicBool::new(false);

    /// Print [`POINT`] at every crash point (the kill test's child).
    pub fn report() {
        REPORT.store(true, Ordering::Relaxed);
    }

    thread_local! {
        static ARMED: Cell<Option<usize>> = const { Cell::new(None) };
        static SEEN: Cell<usize> = const { Cell::new(0) };
    }

    /// Crash at point `n` (0-based) from now on; None: never (just count).
    pub fn arm(n: Option<usize>) {
        ARMED.set(n);
        SEEN.set(0);
    }

    /// Crash points passed since [`arm`].
    pub fn seen() -> usize {
        SEEN.get()
    }

    pub fn hit(what: &'static str) -> Result<(), StoreError> {
        let n = SEEN.get();
        SEEN.set(n + 1);
        if REPORT.load(Ordering::Relaxed) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{POINT}{what}");
            let _ = out.flush();
        }
        if ARMED.get() == Some(n) {
            return Err(StoreError::Refused {
                field: "crash".to_string(),
                rule: format!("simulated crash at point {n} ({what})"),
            });
        }
        Ok(())
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn personal_meta() -> CertMeta {
    CertMeta {
        template: Some("Workstation".into()),
        template_major: Some(2),
        template_minor: Some(1),
        export_allowed: true,
        key_non_exportable: false,
        source: Source::Autoenroll,
    }
}

fn new_store() -> (tempfile::TempDir, AgentStore, TestCa) {
    let dir = tempfile::tempdir().unwrap();
    let store = AgentStore::open(dir.path().join("agent")).unwrap();
    (dir, store, TestCa::new("Test Root"))
}

fn put_leaf(store: &AgentStore, ca: &TestCa, cn: &str) -> (Entry, PrivateKey) {
    let key = p256();
    let der = ca.leaf(cn, &key);
    let e = store
        .put(StoreName::Personal, &der, Some(&key), personal_meta())
        .unwrap();
    (e, key)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn open_creates_the_layout_with_owner_only_keys() {
    let (_d, store, _ca) = new_store();
    for name in ["personal", "root", "trusted-people", "archive", "keys"] {
        assert!(store.dir().join(name).is_dir(), "{name}");
    }
    assert_eq!(mode(&store.dir().join("keys")), 0o700);
    // Reopening an existing store is fine and changes nothing.
    AgentStore::open(store.dir()).unwrap();
    assert_eq!(store.check(), vec![]);
}

#[test]
fn put_writes_cert_meta_and_a_0600_key() {
    let (_d, store, ca) = new_store();
    let (e, key) = put_leaf(&store, &ca, "pc1.example.test");
    assert_eq!(e.store, StoreName::Personal);
    assert!(e.has_key);
    assert!(e.exportable());
    assert_eq!(e.meta, personal_meta());
    assert_eq!(e.info.subject, "CN=pc1.example.test");
    assert!(e.stem.starts_with(&e.info.serial_hex), "{}", e.stem);
    let text = fs::read_to_string(&e.path).unwrap();
    assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{text}");
    let key_path = e.key_path.clone().unwrap();
    assert_eq!(key_path.parent().unwrap(), store.dir().join("keys"));
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(
        store.key(&e).unwrap().public_key_der(),
        key.public_key_der()
    );

    let listing = store.list(StoreName::Personal).unwrap();
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    assert_eq!(listing.entries.len(), 1);
    let listed = &listing.entries[0];
    assert_eq!(listed.der, e.der);
    assert_eq!(listed.meta, e.meta);
    assert_eq!(listed.stem, e.stem);
    // One certificate = its .pem and .json; no temp file survives.
    assert_eq!(
        files_in(&store.store_dir(StoreName::Personal)),
        vec![format!("{}.json", e.stem), format!("{}.pem", e.stem)]
    );
    assert_eq!(store.check(), vec![]);
}

#[test]
fn put_refuses_what_breaks_a_store_rule() {
    let (_d, store, ca) = new_store();
    let key = p256();
    let der = ca.leaf("pc1", &key);
    let other = p256();
    let field = |e: StoreError| match e {
        StoreError::Refused { field, .. } => field,
        e => panic!("not a refusal: {e}"),
    };
    let e = store
        .put(StoreName::Personal, &der, Some(&other), personal_meta())
        .unwrap_err();
    assert!(e.to_string().contains("does not belong"), "{e}");
    assert_eq!(field(e), "key");
    // The refused key left nothing behind.
    assert!(files_in(&store.dir().join("keys")).is_empty());
    let e = store
        .put(StoreName::Archive, &der, None, CertMeta::default())
        .unwrap_err();
    assert_eq!(field(e), "store");
    let e = store
        .put(StoreName::Root, &der, Some(&key), CertMeta::default())
        .unwrap_err();
    assert_eq!(field(e), "key");
    let e = store
        .put_trusted(StoreName::Root, &der, CertMeta::default())
        .unwrap_err();
    assert!(
        e.to_string().contains("root/ holds CA certificates only"),
        "{e}"
    );
    let e = store
        .put_trusted(StoreName::Personal, &ca.der, CertMeta::default())
        .unwrap_err();
    assert_eq!(field(e), "store");
    store
        .put(StoreName::Personal, &der, Some(&key), personal_meta())
        .unwrap();
    let e = store
        .put(StoreName::Personal, &der, Some(&key), personal_meta())
        .unwrap_err();
    assert!(e.to_string().contains("already in personal/"), "{e}");
    assert!(matches!(
        store.put(
            StoreName::Personal,
            b"not a cert",
            None,
            CertMeta::default()
        ),
        Err(StoreError::X509(_))
    ));
}

#[test]
fn trusted_certificates_have_no_key() {
    let (_d, store, ca) = new_store();
    let root = store
        .put_trusted(
            StoreName::Root,
            &ca.der,
            CertMeta {
                source: Source::Install,
                ..CertMeta::default()
            },
        )
        .unwrap();
    assert!(root.info.is_ca);
    assert!(!root.has_key && root.key_path.is_none());
    let peer = ca.leaf("peer.example.test", &p256());
    let tp = store
        .put_trusted(StoreName::TrustedPeople, &peer, CertMeta::default())
        .unwrap();
    assert_eq!(tp.store, StoreName::TrustedPeople);
    assert!(store.key(&tp).is_err());
    assert_eq!(store.list(StoreName::Root).unwrap().entries.len(), 1);
    assert_eq!(
        store.list(StoreName::TrustedPeople).unwrap().entries.len(),
        1
    );
    assert_eq!(store.check(), vec![]);
}

#[test]
fn two_roots_with_the_same_serial_do_not_collide() {
    let (_d, store, _ca) = new_store();
    let a = TestCa::new("Root A");
    let b = TestCa::new("Root B");
    let ea = store
        .put_trusted(StoreName::Root, &a.der, CertMeta::default())
        .unwrap();
    let eb = store
        .put_trusted(StoreName::Root, &b.der, CertMeta::default())
        .unwrap();
    assert_ne!(ea.stem, eb.stem);
    // Same serial, different certificates: the fingerprint part keeps them apart.
    let same = TestCa::new("Root A");
    let info = cert::info(&cert::parse("c", &same.der).unwrap()).unwrap();
    let forced = super::stem_of(&info, &same.der);
    let forced_other = super::stem_of(&info, &a.der);
    assert_ne!(forced, forced_other);
    assert!(forced.starts_with(&format!("{}-", info.serial_hex)));
}

#[test]
fn archive_moves_with_reason_and_keeps_the_key() {
    let (_d, store, ca) = new_store();
    let reasons = [
        ArchiveReason::Replaced,
        ArchiveReason::Expired,
        ArchiveReason::Revoked,
        ArchiveReason::Superseded,
        ArchiveReason::Removed,
    ];
    for (i, reason) in reasons.into_iter().enumerate() {
        let (e, key) = put_leaf(&store, &ca, &format!("pc{i}"));
        let at = 1_700_000_000 + i as i64;
        let a = store.archive(&e, reason, at).unwrap();
        assert_eq!(a.store, StoreName::Archive);
        assert_eq!(a.der, e.der);
        assert_eq!(a.meta, e.meta);
        assert_eq!(
            a.archived,
            Some(Archived {
                reason,
                at,
                from: StoreName::Personal,
                replaced_by: None,
            })
        );
        assert!(!e.path.exists());
        assert!(!e.path.with_extension("json").exists());
        assert!(a.has_key);
        assert_eq!(
            store.key(&a).unwrap().public_key_der(),
            key.public_key_der()
        );
        assert!(store.archive(&a, reason, at).is_err(), "archive twice");
    }
    assert!(store.list(StoreName::Personal).unwrap().entries.is_empty());
    let archived = store.list(StoreName::Archive).unwrap().entries;
    let mut got: Vec<_> = archived
        .iter()
        .map(|e| e.archived.as_ref().unwrap().reason)
        .collect();
    got.sort_by_key(|r| format!("{r:?}"));
    let mut want = reasons.to_vec();
    want.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(got, want);
    assert_eq!(store.check(), vec![]);
}

#[test]
fn archiving_the_same_certificate_twice_keeps_both_records() {
    let (_d, store, ca) = new_store();
    let key = p256();
    let der = ca.leaf("pc1", &key);
    let first = store
        .put(StoreName::Personal, &der, Some(&key), personal_meta())
        .unwrap();
    let a1 = store.archive(&first, ArchiveReason::Removed, 1).unwrap();
    // Re-imported (same key file is kept, not rewritten), archived again.
    let again = store
        .put(StoreName::Personal, &der, Some(&key), personal_meta())
        .unwrap();
    assert_eq!(again.key_path, first.key_path);
    let a2 = store.archive(&again, ArchiveReason::Expired, 2).unwrap();
    assert_eq!(a2.stem, format!("{}.2", a1.stem));
    let archived = store.list(StoreName::Archive).unwrap().entries;
    assert_eq!(archived.len(), 2);
    assert!(archived.iter().all(|e| e.has_key));
    assert_eq!(store.check(), vec![]);
}

#[test]
fn replace_puts_the_new_and_archives_the_old() {
    let (_d, store, ca) = new_store();
    let (old, _) = put_leaf(&store, &ca, "pc1");
    let key = p256();
    let der = ca.leaf("pc1", &key);
    let (new, archived) = store
        .replace(&old, &der, Some(&key), personal_meta(), 42)
        .unwrap();
    assert_eq!(new.store, StoreName::Personal);
    let personal = store.list(StoreName::Personal).unwrap().entries;
    assert_eq!(personal.len(), 1);
    assert_eq!(personal[0].der, der);
    let a = archived.archived.unwrap();
    assert_eq!(a.reason, ArchiveReason::Replaced);
    assert_eq!(a.at, 42);
    assert_eq!(a.replaced_by.as_deref(), Some(new.stem.as_str()));
    assert_eq!(archived.der, old.der);
    assert_eq!(store.check(), vec![]);
}

/// Invariant after a crash anywhere in a replace: personal/ holds the old or the new
/// certificate complete with its key; the old one is in personal/ or archive/; check is clean.
fn assert_survived(store: &AgentStore, old: &Entry, new_der: &[u8], point: usize) {
    assert_eq!(store.check(), vec![], "crash point {point}");
    let personal = store.list(StoreName::Personal).unwrap();
    assert!(personal.unreadable.is_empty(), "{:?}", personal.unreadable);
    let usable: Vec<&Entry> = personal
        .entries
        .iter()
        .filter(|e| (e.der == old.der || e.der == new_der) && e.has_key)
        .collect();
    assert!(
        !usable.is_empty(),
        "crash point {point}: personal/ is empty"
    );
    for e in &usable {
        let k = store.key(e).unwrap();
        key_matches(&cert::parse("c", &e.der).unwrap(), &k).unwrap();
    }
    let archive = store.list(StoreName::Archive).unwrap().entries;
    let old_somewhere = personal.entries.iter().any(|e| e.der == old.der)
        || archive.iter().any(|e| e.der == old.der);
    assert!(
        old_somewhere,
        "crash point {point}: the old certificate vanished"
    );
}

#[test]
fn a_crash_at_any_point_of_replace_leaves_old_or_new() {
    let ca = TestCa::new("Test Root");
    // Count the crash points of one replace.
    let points = {
        let (_d, store, _) = new_store();
        let (old, _) = put_leaf(&store, &ca, "pc1");
        let key = p256();
        let der = ca.leaf("pc1", &key);
        crash::arm(None);
        store
            .replace(&old, &der, Some(&key), personal_meta(), 1)
            .unwrap();
        crash::seen()
    };
    // key (3) + meta (3) + cert (3) + archive meta (3) + 2 in the move.
    assert_eq!(points, 14);
    for point in 0..points {
        let (_d, store, _) = new_store();
        let (old, _) = put_leaf(&store, &ca, "pc1");
        let key = p256();
        let der = ca.leaf("pc1", &key);
        crash::arm(Some(point));
        let err = store
            .replace(&old, &der, Some(&key), personal_meta(), 1)
            .unwrap_err();
        crash::arm(None);
        assert!(err.to_string().contains("simulated crash"), "{err}");
        assert_survived(&store, &old, &der, point);
        // Restart: open cleans temp files; the state is still consistent and usable, and the
        // agent can finish the job (archive whatever is not the newest).
        let store = AgentStore::open(store.dir()).unwrap();
        assert_survived(&store, &old, &der, point);
        for d in ["personal", "archive", "keys"] {
            let names = files_in(&store.dir().join(d));
            assert!(
                names.iter().all(|n| !n.ends_with(".tmp")),
                "{point}: {names:?}"
            );
        }
    }
}

#[test]
fn leftovers_of_a_crash_are_ignored_and_temp_files_cleaned() {
    let (_d, store, ca) = new_store();
    let (e, _) = put_leaf(&store, &ca, "pc1");
    let personal = store.store_dir(StoreName::Personal);
    // A crash mid-write, a metadata file whose certificate never arrived, an orphan key.
    fs::write(personal.join(".abc.pem.123.0.tmp"), b"-----BEGIN CERT").unwrap();
    fs::write(personal.join("deadbeef-0011223344556677.json"), b"{}").unwrap();
    let keys = store.dir().join("keys");
    let orphan_key = keys.join("deadbeef-0011223344556677.key");
    fs::write(&orphan_key, p256().to_pkcs8_pem().as_bytes()).unwrap();
    fs::set_permissions(&orphan_key, fs::Permissions::from_mode(0o600)).unwrap();
    let listing = store.list(StoreName::Personal).unwrap();
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(listing.entries[0].stem, e.stem);
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    assert_eq!(store.check(), vec![]);
    AgentStore::open(store.dir()).unwrap();
    let names = files_in(&personal);
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    // Only temp files are removed: the orphan metadata and key stay.
    assert!(names.contains(&"deadbeef-0011223344556677.json".to_string()));
    assert!(orphan_key.exists());
}

#[test]
fn a_corrupt_file_is_reported_not_fatal() {
    let (_d, store, ca) = new_store();
    let (good, _) = put_leaf(&store, &ca, "good");
    let personal = store.store_dir(StoreName::Personal);
    // Garbage certificate with metadata; a certificate without metadata; bad metadata.
    fs::write(personal.join("01-aaaaaaaaaaaaaaaa.pem"), b"garbage").unwrap();
    fs::copy(
        personal.join(format!("{}.json", good.stem)),
        personal.join("01-aaaaaaaaaaaaaaaa.json"),
    )
    .unwrap();
    let (nometa, _) = put_leaf(&store, &ca, "nometa");
    fs::remove_file(personal.join(format!("{}.json", nometa.stem))).unwrap();
    let (badmeta, _) = put_leaf(&store, &ca, "badmeta");
    fs::write(
        personal.join(format!("{}.json", badmeta.stem)),
        b"{not json",
    )
    .unwrap();
    let (escape, _) = put_leaf(&store, &ca, "escape");
    let meta_path = personal.join(format!("{}.json", escape.stem));
    let text = fs::read_to_string(&meta_path).unwrap();
    let key_file = escape.key_path.unwrap();
    let key_name = key_file.file_name().unwrap().to_str().unwrap();
    fs::write(&meta_path, text.replace(key_name, "../personal/x.key")).unwrap();

    let listing = store.list(StoreName::Personal).unwrap();
    assert_eq!(listing.entries.len(), 1, "{:?}", listing.entries);
    assert_eq!(listing.entries[0].stem, good.stem);
    let mut paths: Vec<(PathBuf, ProblemKind)> = listing
        .unreadable
        .iter()
        .map(|p| (p.path.clone(), p.kind))
        .collect();
    paths.sort();
    let mut want = vec![
        (
            personal.join("01-aaaaaaaaaaaaaaaa.pem"),
            ProblemKind::UnreadableCertificate,
        ),
        (
            personal.join(format!("{}.json", nometa.stem)),
            ProblemKind::BadMetadata,
        ),
        (
            personal.join(format!("{}.json", badmeta.stem)),
            ProblemKind::BadMetadata,
        ),
        (meta_path.clone(), ProblemKind::BadMetadata),
    ];
    want.sort();
    assert_eq!(paths, want, "{:#?}", listing.unreadable);
    let missing = listing
        .unreadable
        .iter()
        .find(|p| p.path == personal.join(format!("{}.json", nometa.stem)))
        .unwrap();
    assert!(
        missing.rule.contains("metadata file is missing"),
        "{missing}"
    );
    assert_eq!(store.check().len(), 4, "{:#?}", store.check());
}

#[test]
fn loose_key_permissions_are_found_and_the_key_refused() {
    let (_d, store, ca) = new_store();
    let (e, _) = put_leaf(&store, &ca, "pc1");
    let key_path = e.key_path.clone().unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
    let problems = store.check();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::LoosePermissions);
    assert_eq!(problems[0].path, key_path);
    assert!(problems[0].rule.contains("0600"), "{}", problems[0]);
    let err = store.key(&e).unwrap_err();
    assert!(err.to_string().contains("must be 0600"), "{err}");
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    let keys = store.dir().join("keys");
    fs::set_permissions(&keys, fs::Permissions::from_mode(0o755)).unwrap();
    let problems = store.check();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].path, keys);
    assert!(problems[0].rule.contains("0700"), "{}", problems[0]);
}

#[test]
fn check_finds_a_missing_or_foreign_key() {
    let (_d, store, ca) = new_store();
    let (e, _) = put_leaf(&store, &ca, "pc1");
    let key_path = e.key_path.clone().unwrap();
    // Another key in its place.
    fs::remove_file(&key_path).unwrap();
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .unwrap();
    f.write_all(p256().to_pkcs8_pem().as_bytes()).unwrap();
    drop(f);
    let problems = store.check();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::BadKey);
    assert!(
        problems[0].rule.contains("does not belong"),
        "{}",
        problems[0]
    );
    fs::remove_file(&key_path).unwrap();
    let listed = &store.list(StoreName::Personal).unwrap().entries[0];
    assert!(!listed.has_key);
    let problems = store.check();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::BadKey);
}

#[test]
fn export_follows_the_template_and_the_key_flag() {
    let (_d, store, ca) = new_store();
    store
        .put_trusted(StoreName::Root, &ca.der, CertMeta::default())
        .unwrap();
    let key = p256();
    let der = ca.leaf("pc1", &key);
    let denied = store
        .put(
            StoreName::Personal,
            &der,
            Some(&key),
            CertMeta {
                export_allowed: false,
                ..personal_meta()
            },
        )
        .unwrap();
    let e = store.export_pkcs12(&denied, "pw", false).unwrap_err();
    assert!(
        e.to_string()
            .contains("export: the template `Workstation` does not allow exporting"),
        "{e}"
    );
    let archived = store.archive(&denied, ArchiveReason::Removed, 1).unwrap();
    let pinned = store
        .put(
            StoreName::Personal,
            &der,
            Some(&key),
            CertMeta {
                key_non_exportable: true,
                ..personal_meta()
            },
        )
        .unwrap();
    let e = store.export_pkcs12(&pinned, "pw", true).unwrap_err();
    assert!(e.to_string().contains("marked non-exportable"), "{e}");
    assert!(store.export_pkcs12(&archived, "pw", false).is_err());

    store.archive(&pinned, ArchiveReason::Removed, 2).unwrap();
    let ok = store
        .put(StoreName::Personal, &der, Some(&key), personal_meta())
        .unwrap();
    for legacy in [false, true] {
        let p12 = store.export_pkcs12(&ok, "s3cret", legacy).unwrap();
        let back = crate::pkcs12::import(&p12, "s3cret").unwrap();
        assert_eq!(back.cert_der, der);
        assert_eq!(back.key.public_key_der(), key.public_key_der());
        // The chain comes from root/.
        assert_eq!(back.chain, vec![ca.der.clone()]);
    }
}

#[test]
fn import_puts_the_pkcs12_certificate_into_personal() {
    let (_d, store, ca) = new_store();
    let key = p256();
    let der = ca.leaf("imported", &key);
    let p12 =
        crate::pkcs12::export(&der, &key, std::slice::from_ref(&ca.der), "pw", None, true).unwrap();
    let meta = CertMeta {
        source: Source::Import,
        key_non_exportable: true,
        ..CertMeta::default()
    };
    let e = store.import_pkcs12(&p12, "nope", meta.clone()).unwrap_err();
    assert!(
        matches!(e, StoreError::Pkcs12(Pkcs12Error::Password { .. })),
        "{e}"
    );
    let (entry, chain) = store.import_pkcs12(&p12, "pw", meta.clone()).unwrap();
    assert_eq!(entry.der, der);
    assert_eq!(entry.meta, meta);
    assert!(entry.has_key);
    assert_eq!(chain, vec![ca.der.clone()]);
    // The chain is not trusted on the way in.
    assert!(store.list(StoreName::Root).unwrap().entries.is_empty());
    assert_eq!(store.check(), vec![]);
}

/// The environment variable that turns the kill test's re-invoked binary into the child.
const KILL_CHILD_DIR: &str = "FLEETPKI_STORE_KILL_CHILD_DIR";

/// Child side: replace the personal certificate forever, reporting every crash point.
fn kill_child(dir: &Path) -> ! {
    let ca = TestCa::new("Kill Test Root");
    crash::report();
    let store = AgentStore::open(dir).unwrap();
    loop {
        let personal = store.list(StoreName::Personal).unwrap().entries;
        let key = p256();
        let der = ca.leaf("pc1", &key);
        match personal.split_first() {
            None => {
                store
                    .put(StoreName::Personal, &der, Some(&key), personal_meta())
                    .unwrap();
            }
            Some((first, rest)) => {
                // A kill between put and archive leaves two: finish the job first.
                for extra in rest {
                    store.archive(extra, ArchiveReason::Superseded, 0).unwrap();
                }
                store
                    .replace(first, &der, Some(&key), personal_meta(), 0)
                    .unwrap();
            }
        }
    }
}

/// Real process death: the test binary re-invokes itself as a child that loops `replace`;
/// the parent SIGKILLs it right after it reports its Nth crash point (N varies by round, so the
/// kills land all over a replace; no timing decides the verdict), 24 times on the same store,
/// and after each kill the store must be consistent with a usable certificate in personal/.
#[test]
fn replace_survives_sigkill() {
    if let Some(dir) = std::env::var_os(KILL_CHILD_DIR) {
        kill_child(Path::new(&dir));
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("agent");
    // personal/ starts with a certificate: from then on it must never be without one.
    let (seed, _) = put_leaf(
        &AgentStore::open(&dir).unwrap(),
        &TestCa::new("Seed"),
        "pc1",
    );
    let exe = std::env::current_exe().unwrap();
    for round in 0..24u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "store::tests::replace_survives_sigkill",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(KILL_CHILD_DIR, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Kill right after the child reports its Nth crash point (a replace has 14); the
        // step 5 is coprime with 14, so the rounds land on every point of a replace.
        let target = 3 + round * 5;
        let stdout = child.stdout.take().unwrap();
        let mut points = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            // libtest may print its "test NAME ..." on the same line.
            if line.contains(crash::POINT) {
                points += 1;
                if points == target {
                    break;
                }
            }
        }
        assert_eq!(points, target, "round {round}: the child stopped early");
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: {status:?}");

        // Before any cleanup: what a restarted agent finds.
        let problems = check(&dir);
        assert_eq!(problems, vec![], "round {round}");
        let store = AgentStore {
            dir: dir.to_path_buf(),
        };
        let personal = store.list(StoreName::Personal).unwrap();
        assert!(personal.unreadable.is_empty(), "{:?}", personal.unreadable);
        assert!(
            !personal.entries.is_empty(),
            "round {round}: personal/ is empty"
        );
        for e in &personal.entries {
            assert!(e.has_key, "round {round}: {}", e.path.display());
            let k = store.key(e).unwrap();
            key_matches(&cert::parse("c", &e.der).unwrap(), &k).unwrap();
        }
    }
    let store = AgentStore::open(&dir).unwrap();
    let archived = store.list(StoreName::Archive).unwrap().entries;
    assert!(archived.len() >= 24, "only {} archived", archived.len());
    assert!(
        archived.iter().any(|e| e.der == seed.der),
        "the seed vanished"
    );
    assert_eq!(store.check(), vec![]);
}
