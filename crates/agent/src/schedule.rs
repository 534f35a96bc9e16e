//! Spreading the agent's work over time (seed 003): every scheduled action is delayed by a
//! random share of the policy's jitter window, and failures back off exponentially, with
//! jitter, up to a cap, so a fleet that falls due at once never hammers the site.

use fleetpki_model::UnixTime;
use rand::Rng;

/// `at` delayed by a uniformly random 0..=`window_secs` (a non-positive window: no delay).
pub fn jittered(at: UnixTime, window_secs: i64, rng: &mut impl Rng) -> UnixTime {
    if window_secs <= 0 {
        return at;
    }
    at.saturating_add(rng.random_range(0..=window_secs))
}

/// Exponential backoff with jitter for a failing action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first retry waits about this long.
    pub base_secs: i64,
    /// No wait grows past this.
    pub cap_secs: i64,
    /// Failures in a row so far.
    pub failures: u32,
}

impl Backoff {
    /// One minute, doubling, capped at six hours: an unreachable site sees each agent a few
    /// times an hour at most.
    pub fn new() -> Self {
        Self::with(60, 6 * 3600)
    }

    pub fn with(base_secs: i64, cap_secs: i64) -> Self {
        Self {
            base_secs: base_secs.max(1),
            cap_secs: cap_secs.max(base_secs.max(1)),
            failures: 0,
        }
    }

    /// The ceiling of the next wait: base × 2^(failures−1), capped.
    pub fn ceiling(&self) -> i64 {
        let doublings = self.failures.saturating_sub(1).min(62);
        self.base_secs
            .saturating_mul(1i64 << doublings)
            .min(self.cap_secs)
    }

    /// Records a failure and returns how long to wait before trying again: a random point in
    /// the upper half of the ceiling ("equal jitter"), so waits still grow but agents that
    /// failed together do not retry together.
    pub fn fail(&mut self, rng: &mut impl Rng) -> i64 {
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.ceiling();
        let half = ceiling / 2;
        half + rng.random_range(0..=ceiling - half)
    }

    /// A success resets the sequence.
    pub fn succeed(&mut self) {
        self.failures = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn jitter_stays_in_the_window_and_spreads() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let t = jittered(1000, 3600, &mut rng);
            assert!((1000..=4600).contains(&t));
            seen.insert((t - 1000) / 360);
        }
        // All ten tenths of the window are used.
        assert_eq!(seen.len(), 10);
        assert_eq!(jittered(1000, 0, &mut rng), 1000);
        assert_eq!(jittered(1000, -5, &mut rng), 1000);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = Backoff::with(60, 1000);
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let wait = b.fail(&mut rng);
            let c = b.ceiling();
            assert!(
                wait >= c / 2 && wait <= c,
                "wait {wait} within [{}, {c}]",
                c / 2
            );
            ceilings.push(c);
        }
        assert_eq!(ceilings, vec![60, 120, 240, 480, 960, 1000, 1000, 1000]);
        b.succeed();
        assert_eq!(b.failures, 0);
        b.fail(&mut rng);
        assert_eq!(b.ceiling(), 60);
    }

    #[test]
    fn backoff_never_overflows() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut b = Backoff::with(i64::MAX / 2, i64::MAX);
        for _ in 0..200 {
            let wait = b.fail(&mut rng);
            assert!(wait > 0);
        }
        let degenerate = Backoff::with(0, -1);
        assert_eq!((degenerate.base_secs, degenerate.cap_secs), (1, 1));
    }
}
