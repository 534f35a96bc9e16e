//! In-memory state that spares the store a read on the hot path of an issuance (newOrder →
//! finalize → download with a known account): accounts by id, reusable authorizations, the
//! template, the ready orders this process just created, and the certificates it just issued. Every map is bounded; what it holds is
//! either immutable once stored (a certificate, who owns it) or re-read after a short TTL and
//! dropped at once when this process changes it.

use fleetpki_acme::Jwk;
use fleetpki_model::acme::{AcmeAccount, AcmeAuthz, AcmeOrder};
use fleetpki_model::template::Template;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a cached account (authorization, template) is trusted before it is read again. Changes made through this
/// process drop the entry at once; this bounds how long a change made by another process
/// (another server on the same database, a restore) goes unseen: a deactivated account, or
/// one whose key was rolled over elsewhere, keeps working here for at most this long (and
/// its new key is refused here for as long).
pub(crate) const ACCOUNT_TTL: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An account as stored, with its key already parsed.
#[derive(Debug)]
pub(crate) struct CachedAccount {
    pub account: AcmeAccount,
    pub key: Jwk,
}

/// Handed out on a miss: the invalidation count when the caller started reading the store.
/// An entry read before an invalidation could hold what was just replaced, so it is not kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    generation: u64,
    at: Instant,
}

struct TtlMap<K, V> {
    entries: HashMap<K, (Arc<V>, Instant)>,
    generation: u64,
}

/// Values trusted for `ttl` after the store read that produced them, dropped at once by
/// [`Ttl::invalidate`]; at most `cap` of them.
pub(crate) struct Ttl<K, V> {
    inner: Mutex<TtlMap<K, V>>,
    ttl: Duration,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Ttl<K, V> {
    pub fn new(ttl: Duration, cap: usize) -> Self {
        Self {
            inner: Mutex::new(TtlMap {
                entries: HashMap::new(),
                generation: 0,
            }),
            ttl,
            cap: cap.max(1),
        }
    }

    /// The value for `k` if it was read less than the TTL before `now`; otherwise a ticket for
    /// [`Ttl::put`] once the caller has read it from the store.
    pub fn get<Q>(&self, k: &Q, now: Instant) -> Result<Arc<V>, Ticket>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_if(k, now, |_| true)
    }

    /// [`Ttl::get`], where a value that no longer passes `usable` counts as missing.
    pub fn get_if<Q>(
        &self,
        k: &Q,
        now: Instant,
        usable: impl Fn(&V) -> bool,
    ) -> Result<Arc<V>, Ticket>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let g = lock(&self.inner);
        match g.entries.get(k) {
            Some((v, read_at))
                if now.saturating_duration_since(*read_at) < self.ttl && usable(v) =>
            {
                Ok(Arc::clone(v))
            }
            _ => Err(Ticket {
                generation: g.generation,
                at: now,
            }),
        }
    }

    /// Keeps what the store answered after `ticket` was issued, unless an invalidation came in
    /// between (the read may predate that change). Returns the value either way.
    pub fn put(&self, ticket: Ticket, k: K, v: V) -> Arc<V> {
        let v = Arc::new(v);
        let mut g = lock(&self.inner);
        if g.generation != ticket.generation {
            return v;
        }
        if g.entries.len() >= self.cap && !g.entries.contains_key(&k) {
            let ttl = self.ttl;
            g.entries
                .retain(|_, (_, read_at)| ticket.at.saturating_duration_since(*read_at) < ttl);
            if g.entries.len() >= self.cap {
                // All fresh: start over rather than track recency; a miss costs one read.
                g.entries.clear();
            }
        }
        g.entries.insert(k, (Arc::clone(&v), ticket.at));
        v
    }

    /// Forgets `k`: call after this process changed it, also when the commit's outcome is
    /// unknown (a commit whose answer was lost may still have landed).
    pub fn invalidate<Q>(&self, k: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut g = lock(&self.inner);
        g.generation = g.generation.wrapping_add(1);
        g.entries.remove(k);
    }
}

/// Accounts by id (the kid's last segment): status and key, changed by this process only
/// through `account` (status, contact) and `key_change`, which invalidate.
pub(crate) type Accounts = Ttl<String, CachedAccount>;

/// A valid authorization of (account, name) that a new order may reuse. Only a valid one is
/// kept; this process changes one only by deactivating it (`authz`), which invalidates.
/// Bounded by [`ACCOUNT_TTL`] too: an authorization deactivated through another process is
/// still reused here for at most that long.
pub(crate) type ValidAuthz = Ttl<(String, String), AcmeAuthz>;

/// Templates by name, for newOrder's check of the identifiers only: finalize submits to the CA,
/// which reads the template afresh, so a template changed meanwhile (by this process or
/// another) refuses the certificate there at worst [`ACCOUNT_TTL`] later than it could have
/// refused the order.
pub(crate) type Templates = Ttl<String, Template>;

/// A map that forgets its oldest entries beyond `cap`.
pub(crate) struct Recent<K, V> {
    inner: Mutex<(HashMap<K, V>, VecDeque<K>)>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Recent<K, V> {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
            cap: cap.max(1),
        }
    }

    pub fn insert(&self, k: K, v: V) {
        let mut g = lock(&self.inner);
        let (map, order) = &mut *g;
        if map.insert(k.clone(), v).is_none() {
            order.push_back(k);
        }
        // Keys already taken stay queued until they age out; only the map's size is bounded
        // by them, and the queue by the same cap.
        while order.len() > self.cap {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// Removes and returns the entry for `k`.
    pub fn take(&self, k: &K) -> Option<V> {
        lock(&self.inner).0.remove(k)
    }
}

/// Ready orders this process created, by id, until finalized: finalize need not read back
/// what newOrder just wrote. Only `ready` orders are kept, and a stored ready order changes
/// only by being finalized, which the store guards (`only_if: ready`): a copy taken here can
/// be no staler than a read, since a finalization elsewhere is refused at commit all the same.
pub(crate) type ReadyOrders = Recent<String, AcmeOrder>;

/// Certificates this process just issued through finalize: serial → (account, DER), for the
/// download that follows. Both are immutable once committed.
pub(crate) type Issued = Recent<String, (String, Vec<u8>)>;

#[cfg(test)]
mod tests {
    use super::*;
    use fleetpki_model::acme::AccountStatus;

    fn account(id: &str, status: AccountStatus, x: u8) -> CachedAccount {
        CachedAccount {
            account: AcmeAccount {
                id: id.into(),
                jwk: String::new(),
                thumbprint: format!("t{x}"),
                status,
                contact: vec![],
                principal: None,
                eab_kid: None,
                created_at: 0,
            },
            key: Jwk::P256 {
                x: vec![x; 32],
                y: vec![x; 32],
            },
        }
    }

    fn cached(c: &Accounts, id: &str, now: Instant) -> Option<Arc<CachedAccount>> {
        c.get(id, now).ok()
    }

    fn put(c: &Accounts, ticket: Ticket, a: CachedAccount) -> Arc<CachedAccount> {
        c.put(ticket, a.account.id.clone(), a)
    }

    #[test]
    fn account_hit_until_ttl() {
        let c = Accounts::new(Duration::from_secs(5), 10);
        let t0 = Instant::now();
        let ticket = c.get("a", t0).expect_err("empty cache misses");
        put(&c, ticket, account("a", AccountStatus::Valid, 1));
        assert!(cached(&c, "a", t0 + Duration::from_secs(4)).is_some());
        assert!(
            cached(&c, "a", t0 + Duration::from_secs(5)).is_none(),
            "re-read once the TTL is over"
        );
        assert!(cached(&c, "b", t0).is_none());
    }

    #[test]
    fn deactivation_or_key_change_invalidates() {
        let c = Accounts::new(Duration::from_secs(5), 10);
        let t0 = Instant::now();
        let ticket = c.get("a", t0).expect_err("miss");
        put(&c, ticket, account("a", AccountStatus::Valid, 1));
        let ticket = c.get("b", t0).expect_err("miss");
        put(&c, ticket, account("b", AccountStatus::Valid, 2));
        // This process deactivated a (or replaced its key): the next request reads the store.
        c.invalidate("a");
        let ticket = c
            .get("a", t0)
            .expect_err("dropped at once, not after the TTL");
        put(&c, ticket, account("a", AccountStatus::Deactivated, 3));
        let a = cached(&c, "a", t0).expect("re-read is cached");
        assert_eq!(a.account.status, AccountStatus::Deactivated);
        assert_eq!(
            a.key,
            Jwk::P256 {
                x: vec![3; 32],
                y: vec![3; 32]
            }
        );
        assert!(cached(&c, "b", t0).is_some(), "other accounts stay");
    }

    #[test]
    fn a_read_older_than_an_invalidation_is_not_kept() {
        let c = Accounts::new(Duration::from_secs(5), 10);
        let t0 = Instant::now();
        // A request reads the old key from the store…
        let ticket = c.get("a", t0).expect_err("miss");
        // …meanwhile a key change commits and invalidates…
        c.invalidate("a");
        // …then the first request stores what it read: it must not be served to others.
        let old = put(&c, ticket, account("a", AccountStatus::Valid, 1));
        assert_eq!(
            old.account.thumbprint, "t1",
            "the caller still gets its read"
        );
        assert!(cached(&c, "a", t0).is_none());
    }

    #[test]
    fn account_map_is_bounded() {
        let c = Accounts::new(Duration::from_secs(5), 2);
        let t0 = Instant::now();
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            let ticket = c.get(id, t0).expect_err("miss");
            put(&c, ticket, account(id, AccountStatus::Valid, i as u8));
        }
        assert!(lock(&c.inner).entries.len() <= 2);
        assert!(cached(&c, "c", t0).is_some(), "the newest is kept");
    }

    #[test]
    fn an_unusable_value_is_a_miss() {
        let c: Ttl<&str, i64> = Ttl::new(Duration::from_secs(5), 10);
        let t0 = Instant::now();
        let ticket = c.get("z", t0).expect_err("miss");
        c.put(ticket, "z", 100);
        assert!(c.get_if("z", t0, |&expires| expires > 99).is_ok());
        let ticket = c
            .get_if("z", t0, |&expires| expires > 100)
            .expect_err("expired: read again");
        c.put(ticket, "z", 200);
        assert_eq!(c.get("z", t0).ok().as_deref(), Some(&200));
    }

    #[test]
    fn recent_takes_once_and_forgets_the_oldest() {
        let r: Recent<String, u32> = Recent::new(2);
        r.insert("a".into(), 1);
        r.insert("b".into(), 2);
        assert_eq!(r.take(&"a".into()), Some(1));
        assert_eq!(r.take(&"a".into()), None, "taken once");
        r.insert("c".into(), 3);
        r.insert("d".into(), 4);
        assert_eq!(r.take(&"b".into()), None, "aged out");
        assert_eq!(r.take(&"c".into()), Some(3));
        assert_eq!(r.take(&"d".into()), Some(4));
    }
}
