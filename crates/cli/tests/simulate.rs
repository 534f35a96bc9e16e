//! `fleetpki simulate` with a small fleet: both runs (with the policy's jitter and without)
//! renew every agent, the request counts add up (per bucket, per cycle, per enrollment), the
//! agents' own stores hold the renewed certificates, and jitter lowers the peak.

mod common;

use common::{bin, s};
use fleetpki_agent::store::{AgentStore, StoreName};
use serde_json::Value;

const AGENTS: u64 = 20;

fn n(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

#[test]
fn a_small_fleet_renews_and_jitter_lowers_the_peak() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("sim");
    let out = bin()
        .env_remove("RUST_LOG")
        .args([
            "simulate",
            "--agents",
            &AGENTS.to_string(),
            "--concurrency",
            "4",
            "--seed",
            "7",
            "--work-dir",
            s(&dir),
            "--json",
        ])
        .output()
        .expect("run fleetpki simulate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "simulate failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sum: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(sum["all_renewed"], true, "{sum}");
    let runs = sum["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["name"], "jittered");
    assert_eq!(runs[1]["name"], "baseline");
    assert_eq!(
        n(&runs[0], "jitter_secs"),
        1800,
        "the policy's default window"
    );
    assert_eq!(n(&runs[1], "jitter_secs"), 0);

    for r in runs {
        let name = r["name"].as_str().unwrap_or_default();
        assert_eq!(n(r, "agents"), AGENTS, "{name}");
        assert_eq!(n(r, "setup_enrolled"), AGENTS, "{name}");
        assert_eq!(n(r, "renewed_agents"), AGENTS, "{name}: {r}");
        assert_eq!(n(r, "renewals"), AGENTS, "{name}: one renewal each");
        assert_eq!(n(r, "errors"), 0, "{name}: {r}");
        assert!(r["failures"].as_array().is_some_and(|f| f.is_empty()));
        // First cycle: register, policy, chain, CRL, enroll.
        assert_eq!(n(r, "setup_requests"), 5 * AGENTS, "{name}");
        // Every later cycle: policy, chain, CRL; a renewal adds the enrollment.
        let (cycles, requests, renewals) = (n(r, "cycles"), n(r, "requests"), n(r, "renewals"));
        assert_eq!(requests, 3 * cycles + renewals, "{name}");
        let buckets: u64 = r["buckets"]
            .as_object()
            .expect("buckets")
            .values()
            .filter_map(Value::as_u64)
            .sum();
        assert_eq!(buckets, requests, "{name}: buckets add up to the total");
        let renewal_buckets: u64 = r["renewal_buckets"]
            .as_object()
            .expect("renewal buckets")
            .values()
            .filter_map(Value::as_u64)
            .sum();
        assert_eq!(renewal_buckets, renewals, "{name}");
        // All first certificates fall due within the same hour.
        assert!(n(r, "due_spread_secs") < 3600, "{name}");
        assert!(n(r, "window_peak") <= n(r, "window_requests"), "{name}");
        assert!(n(r, "window_peak") <= n(r, "overall_peak"), "{name}");

        // The agents' own stores: one current certificate of the template, the first one
        // archived as replaced.
        let agents = dir.join(name).join("agents");
        let mut seen = 0;
        for entry in std::fs::read_dir(&agents).expect("agents dir") {
            let store = AgentStore::open(entry.expect("entry").path()).expect("store");
            let personal = store.list(StoreName::Personal).expect("personal").entries;
            let archive = store.list(StoreName::Archive).expect("archive").entries;
            assert_eq!(personal.len(), 1, "{name}");
            assert_eq!(archive.len(), 1, "{name}");
            assert_ne!(personal[0].info.serial_hex, archive[0].info.serial_hex);
            assert!(personal[0].info.not_after > archive[0].info.not_after);
            seen += 1;
        }
        assert_eq!(seen, AGENTS, "{name}");
    }

    // Without jitter the whole fleet renews in the bucket its certificates fall due in; with
    // jitter the renewals spread and the peak is lower.
    let (jittered, baseline) = (&runs[0], &runs[1]);
    assert!(
        n(jittered, "window_peak") <= n(baseline, "window_peak"),
        "{sum}"
    );
    assert!(
        baseline["renewal_buckets"]
            .as_object()
            .is_some_and(|b| b.len() <= 2),
        "{baseline}"
    );
    assert!(
        jittered["renewal_buckets"]
            .as_object()
            .is_some_and(|b| b.len() > 2),
        "{jittered}"
    );
    let ratio = sum["peak_ratio_baseline_over_jittered"]
        .as_f64()
        .expect("ratio");
    assert!(ratio >= 1.0, "{sum}");
}
