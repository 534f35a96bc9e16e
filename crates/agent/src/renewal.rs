//! When a certificate falls due for renewal (SPEC §5, seed 004): one pure function of the
//! certificate's validity and the rule that governs it, so every decision is reproducible.

use fleetpki_model::UnixTime;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// What governs a certificate's renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewalRule {
    /// An autoenrolled certificate: renew at 80 % of its lifetime or when the remaining
    /// lifetime falls to the template's renewal period, whichever comes later.
    Template { renewal_period_secs: i64 },
    /// A site-managed certificate: renew this many days before expiry (default 42).
    SiteManaged { days: i64 },
}

/// Which of the two points decided the due time, for the maintenance log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DueBy {
    /// 80 % of the lifetime (the renewal period is more than 20 % of it).
    EightyPercent,
    /// The remaining lifetime reaches the template's renewal period.
    RenewalPeriod,
    /// N days before expiry (site-managed).
    DaysBeforeExpiry,
}

impl DueBy {
    pub fn describe(self) -> &'static str {
        match self {
            Self::EightyPercent => "80% of its lifetime",
            Self::RenewalPeriod => "the template's renewal period before expiry",
            Self::DaysBeforeExpiry => "the site-managed window before expiry",
        }
    }
}

/// The instant renewal falls due and which rule set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    pub at: UnixTime,
    pub by: DueBy,
}

/// When a certificate valid from `not_before` to `not_after` falls due under `rule`.
///
/// The 80 % point rounds down to the second. A certificate whose validity is empty or
/// inverted is due at once (at `not_before`); a renewal period at or beyond the whole lifetime
/// leaves the 80 % point in charge, as the seed says ("if the renewal period is more than 20 %
/// of the lifetime, wait for the 80 % point"). Negative periods count as zero.
pub fn due(not_before: UnixTime, not_after: UnixTime, rule: RenewalRule) -> Due {
    match rule {
        RenewalRule::SiteManaged { days } => Due {
            at: not_after.saturating_sub(days.max(0).saturating_mul(DAY)),
            by: DueBy::DaysBeforeExpiry,
        },
        RenewalRule::Template {
            renewal_period_secs,
        } => {
            if not_after <= not_before {
                return Due {
                    at: not_before,
                    by: DueBy::EightyPercent,
                };
            }
            // i128: a lifetime near i64::MAX times 4 must not overflow.
            let lifetime = i128::from(not_after) - i128::from(not_before);
            let eighty = i128::from(not_before) + lifetime * 4 / 5;
            let period = i128::from(not_after) - i128::from(renewal_period_secs.max(0));
            // Both points lie within [not_before, not_after], so they fit in i64.
            let clamp = |v: i128| v.clamp(i128::from(not_before), i128::from(not_after)) as i64;
            if period > eighty {
                Due {
                    at: clamp(period),
                    by: DueBy::RenewalPeriod,
                }
            } else {
                Due {
                    at: clamp(eighty),
                    by: DueBy::EightyPercent,
                }
            }
        }
    }
}

/// Whether renewal is due at `now` (the due instant itself counts as due).
pub fn is_due(now: UnixTime, not_before: UnixTime, not_after: UnixTime, rule: RenewalRule) -> bool {
    now >= due(not_before, not_after, rule).at
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK: i64 = 7 * DAY;
    const T0: i64 = 1_800_000_000;

    fn template(period: i64) -> RenewalRule {
        RenewalRule::Template {
            renewal_period_secs: period,
        }
    }

    /// (case, lifetime, rule, expected seconds after not_before, expected rule)
    #[test]
    fn due_table() {
        let cases: &[(&str, i64, RenewalRule, i64, DueBy)] = &[
            // Seed 004: a 1-year certificate with a 6-week period renews 6 weeks before expiry.
            (
                "1 year, 6 weeks",
                365 * DAY,
                template(6 * WEEK),
                365 * DAY - 6 * WEEK,
                DueBy::RenewalPeriod,
            ),
            // Seed 004: a 2-month certificate with the same period renews at 80 %.
            (
                "2 months, 6 weeks",
                60 * DAY,
                template(6 * WEEK),
                48 * DAY,
                DueBy::EightyPercent,
            ),
            // Exactly 20 %: both points coincide; either names the same instant.
            (
                "period = 20%",
                100 * DAY,
                template(20 * DAY),
                80 * DAY,
                DueBy::EightyPercent,
            ),
            // One second under 20 %: the period point is one second later and wins.
            (
                "period just under 20%",
                100 * DAY,
                template(20 * DAY - 1),
                80 * DAY + 1,
                DueBy::RenewalPeriod,
            ),
            // A period longer than the lifetime: the 80 % point.
            (
                "period > lifetime",
                10 * DAY,
                template(30 * DAY),
                8 * DAY,
                DueBy::EightyPercent,
            ),
            // No renewal period: the later point is expiry itself (the seed's rule, literally).
            (
                "no period",
                10 * DAY,
                template(0),
                10 * DAY,
                DueBy::RenewalPeriod,
            ),
            (
                "negative period counts as none",
                10 * DAY,
                template(-5),
                10 * DAY,
                DueBy::RenewalPeriod,
            ),
            // Short test lifetimes (minutes), as the end-to-end test uses.
            (
                "5 minutes, 2 minutes",
                300,
                template(120),
                240,
                DueBy::EightyPercent,
            ),
            (
                "5 minutes, 30 seconds",
                300,
                template(30),
                270,
                DueBy::RenewalPeriod,
            ),
            // 80 % of 7 seconds rounds down to 5.
            ("rounding", 7, template(7), 5, DueBy::EightyPercent),
            (
                "site managed 42 days",
                365 * DAY,
                RenewalRule::SiteManaged { days: 42 },
                365 * DAY - 42 * DAY,
                DueBy::DaysBeforeExpiry,
            ),
            (
                "site managed window longer than the lifetime",
                30 * DAY,
                RenewalRule::SiteManaged { days: 42 },
                -12 * DAY,
                DueBy::DaysBeforeExpiry,
            ),
        ];
        for (case, lifetime, rule, after, by) in cases {
            let d = due(T0, T0 + lifetime, *rule);
            assert_eq!(d.at, T0 + after, "{case}: due instant");
            assert_eq!(d.by, *by, "{case}: deciding rule");
        }
    }

    #[test]
    fn due_instant_is_the_boundary() {
        let (nb, na) = (T0, T0 + 365 * DAY);
        let at = due(nb, na, template(6 * WEEK)).at;
        assert!(!is_due(at - 1, nb, na, template(6 * WEEK)), "not before");
        assert!(is_due(at, nb, na, template(6 * WEEK)), "at");
        // An expired certificate is still due (re-enrolled, not abandoned).
        assert!(is_due(na + 365 * DAY, nb, na, template(6 * WEEK)));
    }

    #[test]
    fn empty_or_inverted_validity_is_due_at_once() {
        assert_eq!(due(T0, T0, template(60)).at, T0);
        assert_eq!(due(T0, T0 - 100, template(60)).at, T0);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let d = due(i64::MIN, i64::MAX, template(i64::MAX));
        assert_eq!(d.by, DueBy::EightyPercent);
        assert!(d.at > 0 && d.at < i64::MAX);
        let s = due(0, i64::MIN + 1, RenewalRule::SiteManaged { days: i64::MAX });
        assert_eq!(s.at, i64::MIN);
    }
}
