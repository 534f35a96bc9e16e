//! Per-source rate limiting for unauthenticated roles: a token bucket per address, in a map of bounded size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many sources are remembered at most. A bucket is ~40 bytes, so this bounds the map to
/// well under a megabyte however many addresses a flood comes from.
pub(crate) const MAX_SOURCES: usize = 10_000;

/// `per_minute` requests per source: a burst of `per_minute`, refilled evenly over a minute.
pub(crate) struct RateLimiter {
    per_minute: u32,
    max_sources: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A refused request: when the source may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limited {
    /// Whole seconds, at least 1 (the Retry-After header).
    pub retry_after: u64,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self::with_capacity(per_minute, MAX_SOURCES)
    }

    fn with_capacity(per_minute: u32, max_sources: usize) -> Self {
        Self {
            per_minute: per_minute.max(1),
            max_sources: max_sources.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The time an empty bucket takes to fill: after that, a bucket is as good as absent.
    fn refill_time(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn per_second(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    /// Takes one token for `source` at `now`, or says how long to wait for one.
    pub fn check(&self, source: IpAddr, now: Instant) -> Result<(), Limited> {
        let key = source_key(source);
        // A poisoned lock only means another request panicked mid-update; the map is still usable.
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let cap = f64::from(self.per_minute);
        if !map.contains_key(&key) && map.len() >= self.max_sources {
            self.evict(&mut map, now);
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: cap,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second()).min(cap);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / self.per_second();
            Err(Limited {
                retry_after: (wait.ceil() as u64).max(1),
            })
        }
    }

    /// Makes room for one more source: first forgets every bucket that has had time to refill
    /// (forgetting it changes nothing), and if the map is still full, the least recently seen.
    fn evict(&self, map: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        let full = self.refill_time();
        map.retain(|_, b| now.saturating_duration_since(b.last) < full);
        while map.len() >= self.max_sources {
            let Some(oldest) = map.iter().min_by_key(|(_, b)| b.last).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn sources(&self) -> usize {
        self.buckets.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// IPv4 (also when mapped into IPv6) by address; IPv6 by /64, the block one host or one
/// subscriber usually holds whole, so that rotating through it does not buy more messages.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_then_refusal_then_refill() {
        let l = RateLimiter::new(6);
        let t0 = Instant::now();
        for _ in 0..6 {
            l.check(ip("10.0.0.1"), t0).unwrap();
        }
        // One token comes back every 10 s.
        assert_eq!(
            l.check(ip("10.0.0.1"), t0),
            Err(Limited { retry_after: 10 })
        );
        assert_eq!(
            l.check(ip("10.0.0.1"), t0 + Duration::from_secs(4)),
            Err(Limited { retry_after: 6 })
        );
        l.check(ip("10.0.0.1"), t0 + Duration::from_secs(10))
            .unwrap();
        assert!(
            l.check(ip("10.0.0.1"), t0 + Duration::from_secs(10))
                .is_err()
        );
        // A full minute refills the whole burst, and no more.
        let later = t0 + Duration::from_secs(600);
        for _ in 0..6 {
            l.check(ip("10.0.0.1"), later).unwrap();
        }
        assert!(l.check(ip("10.0.0.1"), later).is_err());
    }

    #[test]
    fn sources_are_independent_and_ipv6_counts_by_64() {
        let l = RateLimiter::new(1);
        let t = Instant::now();
        l.check(ip("10.0.0.1"), t).unwrap();
        l.check(ip("10.0.0.2"), t).unwrap();
        assert!(l.check(ip("10.0.0.1"), t).is_err());
        assert!(
            l.check(ip("::ffff:10.0.0.2"), t).is_err(),
            "an IPv4-mapped address is the IPv4 source"
        );
        l.check(ip("2001:db8:1:2::1"), t).unwrap();
        assert!(l.check(ip("2001:db8:1:2:ffff::9"), t).is_err(), "same /64");
        l.check(ip("2001:db8:1:3::1"), t).unwrap();
        assert_eq!(l.check(ip("10.0.0.1"), t), Err(Limited { retry_after: 60 }));
    }

    #[test]
    fn memory_stays_bounded() {
        let l = RateLimiter::with_capacity(2, 100);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let t = t0 + Duration::from_millis(u64::from(i));
            l.check(IpAddr::from(i.to_be_bytes()), t).unwrap();
            assert!(l.sources() <= 100);
        }
        // The most recent sources are kept: their buckets still count.
        let t = t0 + Duration::from_millis(1000);
        l.check(IpAddr::from(999u32.to_be_bytes()), t).unwrap();
        assert!(l.check(IpAddr::from(999u32.to_be_bytes()), t).is_err());
    }

    #[test]
    fn refilled_buckets_are_forgotten_first() {
        let l = RateLimiter::with_capacity(2, 3);
        let t0 = Instant::now();
        l.check(ip("10.0.0.1"), t0).unwrap();
        l.check(ip("10.0.0.1"), t0).unwrap();
        let t1 = t0 + Duration::from_secs(61);
        l.check(ip("10.0.0.2"), t1).unwrap();
        l.check(ip("10.0.0.3"), t1).unwrap();
        l.check(ip("10.0.0.4"), t1).unwrap();
        assert_eq!(l.sources(), 3, "10.0.0.1 had refilled and was dropped");
        l.check(ip("10.0.0.2"), t1).unwrap();
        assert!(l.check(ip("10.0.0.2"), t1).is_err(), "10.0.0.2 was kept");
    }
}
