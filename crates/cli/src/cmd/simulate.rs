//! `fleetpki simulate`: a fleet of in-process agents against a real site server on loopback,
//! driven in virtual time, measuring how the policy's jitter spreads the requests of a fleet
//! whose certificates all fall due in the same hour.
//!
//! Each run makes a throwaway site, serves its management point on ephemeral loopback ports,
//! installs N agents (each its own directory, identity and certificate, enrolled over mutual
//! TLS) and then runs a discrete-event loop: every wake is a real `Agent::cycle` at the
//! virtual time, the next wake comes from the daemon's own `next_wake`, and the HTTP requests
//! each cycle sent are counted into virtual-time buckets. The same fleet size runs twice: with
//! the policy's jitter and with none (the baseline).

use crate::output;
use anyhow::{Context, Result, bail};
use clap::Args;
use fleetpki_agent::engine::{Agent, CycleReport, next_wake};
use fleetpki_agent::install::{InstallOptions, SigningPin, install};
use fleetpki_agent::schedule::Backoff;
use fleetpki_agent::store::StoreName;
use fleetpki_ca::directory::{DirectoryFile, Entry};
use fleetpki_ca::verify::Usage;
use fleetpki_ca::{Actor, CaSource, InitOptions, Site};
use fleetpki_model::directory::{Principal, PrincipalKind};
use fleetpki_model::{UnixTime, now};
use fleetpki_policy::{DEFAULT_INTERVAL_SECS, DEFAULT_JITTER_SECS, MIN_INTERVAL_SECS};
use fleetpki_server::{Role, ServeConfig};
use fleetpki_x509::key::KeyType;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The template the simulated fleet autoenrolls (a copy of Workstation Authentication).
const TEMPLATE: &str = "Fleet-Sim";
const GROUP: &str = "Workstations";
/// What renewed certificates get: long enough that none falls due again in the simulated
/// window (the site's clock is real while the agents' runs ahead; see [`first_validity`]).
const RENEWED_VALIDITY: &str = "1y";
const RENEWED_PERIOD: &str = "6w";
/// Most agents one run takes (names are SIM000001…).
const MAX_AGENTS: usize = 999_999;

#[derive(Args)]
pub struct SimulateArgs {
    /// How many agents each run installs.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// The policy's jitter window for the jittered run (default: the policy's, 1800 s).
    #[arg(long)]
    jitter_secs: Option<i64>,
    /// The policy's cycle interval (default: the policy's, 3600 s).
    #[arg(long)]
    interval_secs: Option<i64>,
    /// Cycles (and so TLS connections) in flight against the server at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seed of the agents' random number generators (jitter, backoff).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Width of a rate bucket, in virtual seconds.
    #[arg(long, default_value_t = 60)]
    bucket_secs: i64,
    /// Keep the sites and agent directories here (must be empty or absent) instead of a
    /// temporary directory removed at the end.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One run's account; every count starts at zero.
#[derive(Debug, Default, Serialize)]
struct RunReport {
    name: &'static str,
    jitter_secs: i64,
    interval_secs: i64,
    agents: usize,
    /// Validity of the certificates enrolled at the start.
    first_validity_secs: i64,
    /// The earliest and latest instant the first certificates fall due, and the spread.
    first_due: UnixTime,
    last_due: UnixTime,
    due_spread_secs: i64,
    /// Installation and first enrollment (not in the buckets).
    setup_requests: u64,
    setup_enrolled: usize,
    /// The simulated period: from the first enrollment to the cycle in which the last agent
    /// renewed (virtual time).
    start: UnixTime,
    end: UnixTime,
    cycles: u64,
    requests: u64,
    renewals: u64,
    /// Cycles that failed (could not complete, or a local failure).
    errors: u64,
    /// Agents whose renewed certificate was checked: one current certificate of the template,
    /// not the first one, chaining to the site root for client authentication.
    renewed_agents: usize,
    failures: Vec<String>,
    /// Requests and renewals per bucket, by bucket index from the earliest due time.
    buckets: BTreeMap<i64, u64>,
    renewal_buckets: BTreeMap<i64, u64>,
    /// Over the comparison window.
    window_requests: u64,
    window_mean: f64,
    window_peak: u64,
    window_peak_bucket: i64,
    peak_to_mean: f64,
    /// The busiest bucket of the whole simulated period (a fleet without jitter also keeps its
    /// routine check-ins in step).
    overall_peak: u64,
    real_secs: f64,
}

#[derive(Debug, Serialize)]
struct Summary {
    agents: usize,
    seed: u64,
    concurrency: usize,
    bucket_secs: i64,
    /// Bucket indexes (from each run's earliest due time) of the comparison window: from the
    /// first to the last bucket in which either run renewed.
    window_first_bucket: i64,
    window_last_bucket: i64,
    runs: Vec<RunReport>,
    /// Baseline (no jitter) peak over the jittered run's peak.
    peak_ratio_baseline_over_jittered: f64,
    all_renewed: bool,
}

pub async fn run(a: SimulateArgs) -> Result<i32> {
    if a.agents == 0 || a.agents > MAX_AGENTS {
        bail!("--agents: must be 1 to {MAX_AGENTS}");
    }
    if a.concurrency == 0 {
        bail!("--concurrency: must be at least 1");
    }
    if a.bucket_secs < 1 {
        bail!("--bucket-secs: must be at least 1");
    }
    let interval = a.interval_secs.unwrap_or(DEFAULT_INTERVAL_SECS);
    if interval < MIN_INTERVAL_SECS {
        bail!("--interval-secs: must be at least {MIN_INTERVAL_SECS}");
    }
    let jitter = a.jitter_secs.unwrap_or(DEFAULT_JITTER_SECS.min(interval));
    if !(1..=interval).contains(&jitter) {
        bail!(
            "--jitter-secs: must be 1 to the interval ({interval} s); the run without jitter is made anyway"
        );
    }
    let (_temp, root) = match &a.work_dir {
        Some(d) => {
            if d.exists()
                && std::fs::read_dir(d)
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(true)
            {
                bail!("--work-dir: {} is not empty", d.display());
            }
            std::fs::create_dir_all(d)
                .with_context(|| format!("--work-dir: cannot create {}", d.display()))?;
            (None, d.clone())
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("fleetpki-simulate-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let mut runs = Vec::new();
    for (name, j) in [("jittered", jitter), ("baseline", 0)] {
        if !a.json {
            eprintln!(
                "run `{name}` (jitter {j} s): {} agents in {}",
                a.agents,
                root.join(name).display()
            );
        }
        runs.push(run_fleet(&a, &root.join(name), name, j, interval, jitter).await?);
    }
    // The comparison window: both runs aligned on their earliest due time, from the first to
    // the last bucket in which either renewed.
    let first = runs
        .iter()
        .filter_map(|r| r.renewal_buckets.keys().next().copied())
        .min()
        .unwrap_or(0);
    let last = runs
        .iter()
        .filter_map(|r| r.renewal_buckets.keys().next_back().copied())
        .max()
        .unwrap_or(0);
    for r in &mut runs {
        window(r, first, last);
    }
    let ratio = if runs[0].window_peak == 0 {
        0.0
    } else {
        runs[1].window_peak as f64 / runs[0].window_peak as f64
    };
    let all_renewed = runs.iter().all(|r| r.renewed_agents == r.agents);
    let summary = Summary {
        agents: a.agents,
        seed: a.seed,
        concurrency: a.concurrency,
        bucket_secs: a.bucket_secs,
        window_first_bucket: first,
        window_last_bucket: last,
        runs,
        peak_ratio_baseline_over_jittered: ratio,
        all_renewed,
    };
    if a.json {
        output::json(&summary)?;
    } else {
        print_summary(&summary, interval);
    }
    Ok(if all_renewed { 0 } else { 2 })
}

/// Mean and peak requests per bucket over buckets `first..=last` (empty buckets count).
fn window(r: &mut RunReport, first: i64, last: i64) {
    let n = (last - first + 1).max(1);
    let mut total = 0;
    let mut peak = 0;
    let mut peak_at = first;
    for b in first..=last {
        let v = r.buckets.get(&b).copied().unwrap_or(0);
        total += v;
        if v > peak {
            peak = v;
            peak_at = b;
        }
    }
    r.overall_peak = r.buckets.values().copied().max().unwrap_or(0);
    r.window_requests = total;
    r.window_mean = total as f64 / n as f64;
    r.window_peak = peak;
    r.window_peak_bucket = peak_at;
    r.peak_to_mean = if total == 0 {
        0.0
    } else {
        peak as f64 / r.window_mean
    };
}

fn print_summary(s: &Summary, interval: i64) {
    let b = s.bucket_secs;
    let unit = if b == 60 {
        "min".to_string()
    } else {
        format!("{b} s")
    };
    println!(
        "Fleet simulation: {} agents per run (P-256), policy interval {interval} s, seed {}, {} cycles in flight; requests counted per {unit} of virtual time",
        s.agents, s.seed, s.concurrency
    );
    for r in &s.runs {
        println!(
            "  {}: first certificates valid {} s, falling due within {} s of each other; setup (install + first enrollment, not counted below): {} requests, {} of {} enrolled; {:.0} s real time",
            r.name,
            r.first_validity_secs,
            r.due_spread_secs,
            r.setup_requests,
            r.setup_enrolled,
            r.agents,
            r.real_secs
        );
    }
    println!(
        "Window: buckets {}..={} after the earliest due time ({} {unit}, from the first to the last renewal of either run)\n",
        s.window_first_bucket,
        s.window_last_bucket,
        s.window_last_bucket - s.window_first_bucket + 1
    );
    let rows = s
        .runs
        .iter()
        .map(|r| {
            vec![
                r.name.to_string(),
                format!("{} s", r.jitter_secs),
                r.cycles.to_string(),
                r.requests.to_string(),
                r.renewals.to_string(),
                format!("{}/{}", r.renewed_agents, r.agents),
                r.errors.to_string(),
                format!("{:.1}", r.window_mean),
                format!("{} (bucket {})", r.window_peak, r.window_peak_bucket),
                format!("{:.2}", r.peak_to_mean),
                r.overall_peak.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "run",
            "jitter",
            "cycles",
            "requests",
            "renewals",
            "renewed + verified",
            "errors",
            &format!("mean/{unit}"),
            &format!("peak/{unit}"),
            "peak:mean",
            &format!("peak/{unit} overall"),
        ],
        rows,
    );
    println!(
        "\nPeak without jitter (baseline) / peak with jitter: {:.1}x",
        s.peak_ratio_baseline_over_jittered
    );
    for r in &s.runs {
        for f in &r.failures {
            println!("{}: {f}", r.name);
        }
    }
    if !s.all_renewed {
        println!("NOT every agent ended with a renewed, valid certificate (see above)");
    }
}

/// Validity of the certificates enrolled at the start, in whole hours: the fifth of it after
/// the 80 % point longer than the jitter window plus ten minutes, so a jittered renewal still
/// finds its certificate valid; and the 80 % point a few intervals in, so the agents have
/// settled into their schedule before their certificates fall due.
fn first_validity(interval: i64, jitter: i64) -> i64 {
    let hour = 3600;
    let need = (5 * (jitter + 600)).max((15 * interval).div_euclid(4) + 1);
    (need + hour - 1) / hour * hour
}

/// What one cycle task hands back.
struct Done {
    index: usize,
    at: UnixTime,
    outcome: Result<CycleReport, String>,
    wake: UnixTime,
    sched: Sched,
}

/// An agent's own randomness and local-failure backoff, as its daemon keeps them.
struct Sched {
    rng: StdRng,
    local: Backoff,
}

/// One cycle of agent `index` at virtual time `at`; the next wake as the daemon computes it.
async fn cycle(index: usize, agent: Arc<Agent>, at: UnixTime, mut sched: Sched) -> Done {
    let (outcome, wake) = match agent.cycle(at).await {
        Ok(report) => {
            sched.local.succeed();
            let wake = match agent.state() {
                Ok(state) => {
                    let policy = agent.held_policy().ok().flatten();
                    next_wake(&report, &state, policy.as_ref(), at, &mut sched.rng)
                }
                Err(_) => at + sched.local.fail(&mut sched.rng),
            };
            (Ok(report), wake)
        }
        Err(e) => (Err(e.to_string()), at + sched.local.fail(&mut sched.rng)),
    };
    Done {
        index,
        at,
        outcome,
        wake,
        sched,
    }
}

fn renewed_in(report: &CycleReport) -> bool {
    report
        .decisions
        .iter()
        .any(|d| d.action == "renew" && d.template.as_deref() == Some(TEMPLATE))
}

fn failed_in(report: &CycleReport) -> bool {
    !report.ok
        || report
            .decisions
            .iter()
            .any(|d| d.action.ends_with("failed"))
}

async fn run_fleet(
    a: &SimulateArgs,
    dir: &Path,
    name: &'static str,
    jitter: i64,
    interval: i64,
    max_jitter: i64,
) -> Result<RunReport> {
    let started = Instant::now();
    let who = Actor::new("simulate", "cli");
    let n = a.agents;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;

    // The site: two-tier P-256 CA, N computers in one group, a Workstation copy they
    // autoenroll whose certificates fall due a few intervals after enrollment.
    let site = Site::init(
        &dir.join("site"),
        InitOptions {
            site_code: "SIM".into(),
            name: Some("fleet simulation".into()),
            base_url: Some(format!(
                "http://localhost:{}",
                super::quickstart::free_port()?
            )),
            database: None,
            passphrase: None,
            ca: CaSource::Generate {
                key_type: KeyType::EcdsaP256,
                two_tier: true,
            },
        },
        &who,
    )
    .await?;
    let names: Vec<String> = (1..=n).map(|i| format!("SIM{i:06}")).collect();
    let principals = names
        .iter()
        .map(|c| Entry {
            principal: Principal {
                name: c.clone(),
                kind: PrincipalKind::Computer,
                dns: Some(format!("{}.fleet.test", c.to_lowercase())),
                email: None,
                upn: None,
                disabled: false,
            },
            groups: vec![GROUP.into()],
        })
        .collect();
    site.directory_import(
        DirectoryFile {
            groups: vec![GROUP.into()],
            principals,
        },
        "simulate",
        &who,
    )
    .await?;
    // Both runs use the same first validity, so the windows compare. A renewal period of half
    // the validity leaves the 80 % point in charge of the due time.
    let validity = first_validity(interval, max_jitter);
    site.template_duplicate("Workstation", TEMPLATE, &who)
        .await?;
    site.template_set(
        TEMPLATE,
        &[
            ("renewal-period".into(), format!("{}s", validity / 2)),
            ("validity".into(), format!("{validity}s")),
        ],
        &who,
    )
    .await?;
    site.template_grant(TEMPLATE, GROUP, true, true, true, &who)
        .await?;
    site.template_publish(TEMPLATE, true, &who).await?;

    let config = ServeConfig::parse(
        &format!(
            "[roles.api]\nenabled = false\n[roles.ocsp]\nenabled = false\n[roles.crl]\nenabled = false\n\
             [tls]\nintranet_fqdn = \"localhost\"\n[management_point]\nregistration = \"auto\"\n\
             [policy]\ninterval_secs = {interval}\njitter_secs = {jitter}\n"
        ),
        &site.config.base_url,
    )?;
    let site = Arc::new(site);
    let running = fleetpki_server::start(site.clone(), &config).await?;
    let url = |role: Role| {
        running
            .url(role)
            .map(|u| u.replace("127.0.0.1", "localhost"))
            .with_context(|| format!("the {} role did not start", role.name()))
    };
    let mp = url(Role::ManagementPoint)?;
    let fsp = format!("{}/status", url(Role::FallbackStatusPoint)?);

    // The agents run on their own threads: each cycle writes its state with fsyncs (blocking
    // calls), which must stall neither the server's runtime nor the other agents.
    let agents_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.concurrency.clamp(2, 64))
        .thread_name("sim-agent")
        .enable_all()
        .build()
        .context("cannot start the agents' runtime")?;
    let result = drive(
        a,
        dir,
        name,
        jitter,
        interval,
        validity,
        &site,
        &names,
        &mp,
        &fsp,
        agents_rt.handle(),
    )
    .await;
    agents_rt.shutdown_background();
    running.shutdown().await;
    let mut report = result?;
    report.real_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    a: &SimulateArgs,
    dir: &Path,
    name: &'static str,
    jitter: i64,
    interval: i64,
    validity: i64,
    site: &Arc<Site>,
    names: &[String],
    mp: &str,
    fsp: &str,
    rt: &tokio::runtime::Handle,
) -> Result<RunReport> {
    let n = names.len();
    let limit = Arc::new(Semaphore::new(a.concurrency));

    // Install every agent (local work: keys, pins, identity).
    let t0 = now();
    let mut tasks = JoinSet::new();
    for (i, c) in names.iter().enumerate() {
        let opts = InstallOptions {
            dir: dir.join("agents").join(c),
            site: mp.to_string(),
            name: c.clone(),
            fqdn: Some(format!("{}.fleet.test", c.to_lowercase())),
            root: Some(site.root.der.clone()),
            signing: SigningPin::Certificate(site.signing.der.clone()),
            allow_tofu: false,
            status_url: Some(fsp.to_string()),
        };
        let limit = limit.clone();
        tasks.spawn_on(
            async move {
                let _permit = limit.acquire_owned().await;
                let d = opts.dir.clone();
                install(opts, t0).await?;
                // No lock: these directories are this process's own, and thousands of
                // held lock files would only spend descriptors.
                Ok::<_, anyhow::Error>((i, Arc::new(Agent::open(&d)?)))
            },
            rt,
        );
    }
    let mut agents: Vec<Option<Arc<Agent>>> = vec![None; n];
    while let Some(r) = tasks.join_next().await {
        let (i, agent) = r.context("an install task panicked")??;
        agents[i] = Some(agent);
    }
    let agents: Vec<Arc<Agent>> = agents
        .into_iter()
        .enumerate()
        .map(|(i, a)| a.with_context(|| format!("agent {} was not installed", names[i])))
        .collect::<Result<_>>()?;

    // First enrollment: every agent's first cycle at the same virtual instant, as a fleet
    // installed at once would run it.
    let mut report = RunReport {
        name,
        jitter_secs: jitter,
        interval_secs: interval,
        agents: n,
        first_validity_secs: validity,
        start: t0,
        end: t0,
        ..Default::default()
    };
    let seed = a.seed;
    let sched = |i: usize| Sched {
        // One stream per agent, so wake times do not depend on the order cycles finish in.
        rng: StdRng::seed_from_u64(seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        local: Backoff::new(),
    };
    let mut running = JoinSet::new();
    for (i, agent) in agents.iter().enumerate() {
        let (agent, limit, s) = (agent.clone(), limit.clone(), sched(i));
        running.spawn_on(
            async move {
                let _permit = limit.acquire_owned().await;
                cycle(i, agent, t0, s).await
            },
            rt,
        );
    }
    let mut first_serial: Vec<Option<String>> = vec![None; n];
    let mut heap = BinaryHeap::new();
    let mut scheds: Vec<Option<Sched>> = (0..n).map(|_| None).collect();
    let mut dues = Vec::new();
    while let Some(r) = running.join_next().await {
        let d = r.context("a cycle task panicked")?;
        let label = &names[d.index];
        match &d.outcome {
            Ok(rep) => {
                report.setup_requests += rep.requests;
                match rep
                    .decisions
                    .iter()
                    .find(|x| x.action == "enroll" && x.template.as_deref() == Some(TEMPLATE))
                {
                    Some(e) => {
                        report.setup_enrolled += 1;
                        first_serial[d.index] = e.serial.clone();
                        dues.extend(e.next_due);
                        heap.push(Reverse((d.wake, d.index)));
                        scheds[d.index] = Some(d.sched);
                    }
                    None => report.failures.push(format!(
                        "{label}: the first cycle did not enroll: {}",
                        rep.decisions
                            .iter()
                            .map(|x| x.log_line())
                            .collect::<Vec<_>>()
                            .join("; ")
                    )),
                }
            }
            Err(e) => report
                .failures
                .push(format!("{label}: the first cycle failed: {e}")),
        }
    }
    report.first_due = dues.iter().copied().min().unwrap_or(t0);
    report.last_due = dues.iter().copied().max().unwrap_or(t0);
    report.due_spread_secs = report.last_due - report.first_due;

    // Renewed certificates are issued by the site's real clock while the agents' clock runs
    // hours ahead: with the first validity they would be due again at once. A longer validity
    // (a minor version: holders keep what they have until due) keeps them current.
    site.template_set(
        TEMPLATE,
        &[
            ("validity".into(), RENEWED_VALIDITY.into()),
            ("renewal-period".into(), RENEWED_PERIOD.into()),
        ],
        &Actor::new("simulate", "cli"),
    )
    .await?;

    // The discrete-event loop in virtual time: the earliest wake first, at most `concurrency`
    // cycles in flight, until every enrolled agent has renewed (or the horizon passes).
    let horizon = report.last_due + jitter + 2 * interval + 6 * 3600;
    let origin = report.first_due;
    let bucket = |t: UnixTime| (t - origin).div_euclid(a.bucket_secs);
    let mut renewed = vec![false; n];
    let mut waiting = report.setup_enrolled;
    loop {
        while running.len() < a.concurrency && waiting > 0 {
            let Some(Reverse((at, i))) = heap.peek().copied() else {
                break;
            };
            if at > horizon {
                break;
            }
            heap.pop();
            let Some(s) = scheds[i].take() else {
                continue;
            };
            running.spawn_on(cycle(i, agents[i].clone(), at, s), rt);
        }
        let Some(r) = running.join_next().await else {
            break;
        };
        let d = r.context("a cycle task panicked")?;
        report.cycles += 1;
        report.end = report.end.max(d.at);
        match &d.outcome {
            Ok(rep) => {
                report.requests += rep.requests;
                *report.buckets.entry(bucket(d.at)).or_default() += rep.requests;
                if renewed_in(rep) {
                    report.renewals += 1;
                    *report.renewal_buckets.entry(bucket(d.at)).or_default() += 1;
                    if !renewed[d.index] {
                        renewed[d.index] = true;
                        waiting -= 1;
                    }
                }
                if failed_in(rep) {
                    report.errors += 1;
                    if report.failures.len() < 20 {
                        report.failures.push(format!(
                            "{}: cycle at {} failed: {}",
                            names[d.index],
                            fleetpki_model::fmt_time(d.at),
                            rep.decisions
                                .iter()
                                .map(|x| x.log_line())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ));
                    }
                }
            }
            Err(e) => {
                report.errors += 1;
                if report.failures.len() < 20 {
                    report.failures.push(format!("{}: {e}", names[d.index]));
                }
            }
        }
        heap.push(Reverse((d.wake, d.index)));
        scheds[d.index] = Some(d.sched);
    }

    // Every agent must end with a renewed, valid certificate: checked in its own store.
    let at = now();
    for (i, agent) in agents.iter().enumerate() {
        match check_renewed(site, agent, first_serial[i].as_deref(), report.end, at) {
            Ok(()) => report.renewed_agents += 1,
            Err(e) => {
                if report.failures.len() < 40 {
                    report.failures.push(format!("{}: {e}", names[i]));
                }
            }
        }
    }
    Ok(report)
}

/// The agent holds exactly one certificate of the template, not its first one, chaining to
/// the site root for client authentication now, and still valid at the simulation's end.
fn check_renewed(
    site: &Site,
    agent: &Agent,
    first: Option<&str>,
    end: UnixTime,
    real_now: UnixTime,
) -> Result<()> {
    let first = first.context("never enrolled")?;
    let mine: Vec<_> = agent
        .store
        .list(StoreName::Personal)?
        .entries
        .into_iter()
        .filter(|e| e.meta.template.as_deref() == Some(TEMPLATE))
        .collect();
    let [current] = mine.as_slice() else {
        bail!("{} certificates of {TEMPLATE} in personal/", mine.len());
    };
    if current.info.serial_hex == first {
        bail!("still holds its first certificate {first}: not renewed");
    }
    if current.info.not_after <= end {
        bail!(
            "the renewed certificate {} expires before the simulation's end",
            current.info.serial_hex
        );
    }
    site.validate_path(&current.der, Usage::ClientAuth, real_now)
        .with_context(|| format!("the renewed certificate {}", current.info.serial_hex))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_validity_leaves_the_jitter_room_after_the_due_time() {
        assert_eq!(first_validity(3600, 1800), 4 * 3600);
        for (interval, jitter) in [
            (60, 1),
            (60, 60),
            (3600, 3600),
            (28_800, 1800),
            (86_400, 86_400),
        ] {
            let v = first_validity(interval, jitter);
            assert_eq!(v % 3600, 0, "{interval} {jitter}");
            // After the 80 % point: the whole jitter window plus ten minutes.
            assert!(v - v * 4 / 5 >= jitter + 600, "{interval} {jitter}: {v}");
            // Three intervals before the due time.
            assert!(v * 4 / 5 >= 3 * interval, "{interval} {jitter}: {v}");
        }
    }

    fn run_with(buckets: &[(i64, u64)]) -> RunReport {
        RunReport {
            name: "t",
            interval_secs: 3600,
            agents: 1,
            buckets: buckets.iter().copied().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn window_counts_empty_buckets_and_finds_the_peak() {
        let mut r = run_with(&[(-5, 100), (0, 10), (2, 30), (4, 7)]);
        window(&mut r, 0, 3);
        assert_eq!(r.window_requests, 40);
        assert_eq!(r.window_mean, 10.0);
        assert_eq!((r.window_peak, r.window_peak_bucket), (30, 2));
        assert_eq!(r.peak_to_mean, 3.0);
        assert_eq!(r.overall_peak, 100);
        let mut empty = run_with(&[]);
        window(&mut empty, 0, 0);
        assert_eq!((empty.window_peak, empty.peak_to_mean), (0, 0.0));
    }
}
