//! A deterministic data-center simulator that drives the real hactl-kvm core on a virtual clock with injected faults and checks safety invariants.
//!
//! One job: answer "does the decision core keep its safety promises against
//! a data center that misbehaves?" reproducibly. Everything random comes from
//! one seeded ChaCha8 stream per run, time is a virtual millisecond counter
//! driven by a binary-heap event queue, and the world (hosts, heartbeats on
//! shared NFS, BMCs, agents, the quorum service, the network between the
//! coordinator and the hosts) is the ground truth the invariants are judged
//! against. The coordinator itself is the real `hactl-core` behind a thin
//! adapter; it can crash and be rebuilt from its journal, which the simulator
//! keeps in an in-memory `hactl_journal::MemJournal` (the daemon's journal
//! format and replay) that survives the crash (torn tail included).
//!
//! Entry points: [`run_scenario`], [`run_random`], [`sweep`] and [`bench`].

pub mod bench;
pub mod clock;
pub mod cluster_scenario;
pub mod core_adapter;
pub mod engine;
pub mod faults;
pub mod invariants;
pub mod protocol;
pub mod report;
pub mod scenario;
pub mod world;

pub use bench::{bench, BenchConfig, BenchReport};
pub use report::{RunReport, SweepReport};
pub use scenario::{
    all_fault_classes, parse_fault_classes, FaultClass, ScenarioError, FAULT_CLASSES, SCENARIOS,
};

pub use cluster_scenario::CLUSTER_SCENARIOS;
pub use engine::{BrokenGate, ClusterBreaks, ClusterOptions};
use engine::{RunOptions, Simulation};
pub use hactl_core::SelfTestGate;

/// Quiet tail at the end of a named scenario after which no host may still
/// be in a transient state.
pub const SCENARIO_SETTLE_MS: u64 = 600_000;

/// Runs a named scenario. `hosts` overrides the scenario's default size.
pub fn run_scenario(
    name: &str,
    seed: u64,
    hosts: Option<usize>,
    timeline: bool,
) -> Result<RunReport, ScenarioError> {
    let sc = scenario::named(name, hosts)?;
    let opts = RunOptions {
        seed,
        timeline,
        settle_ms: SCENARIO_SETTLE_MS,
        broken: None,
        cluster: None,
    };
    Ok(Simulation::new(&sc, opts).run())
}

/// Runs a named scenario with one safety mechanism broken on purpose (a
/// core gate needs a `checker-self-test` build): proves that the invariant
/// checker catches a core, or BMC driver, without it.
pub fn run_scenario_with_broken_gate(
    name: &str,
    seed: u64,
    hosts: Option<usize>,
    broken: BrokenGate,
) -> Result<RunReport, ScenarioError> {
    if matches!(broken, BrokenGate::Core(_)) && !cfg!(feature = "checker-self-test") {
        return Err(ScenarioError::SelfTestUnavailable);
    }
    let sc = scenario::named(name, hosts)?;
    let opts = RunOptions {
        seed,
        timeline: true,
        settle_ms: SCENARIO_SETTLE_MS,
        broken: Some(broken),
        cluster: None,
    };
    Ok(Simulation::new(&sc, opts).run())
}

/// Runs a named scenario against a core whose quorum gate is switched off:
/// an unsafe configuration that exists only to show the invariant checker
/// catching a core that fences without quorum.
pub fn run_scenario_without_quorum_gate(
    name: &str,
    seed: u64,
    hosts: Option<usize>,
    timeline: bool,
) -> Result<RunReport, ScenarioError> {
    if !cfg!(feature = "checker-self-test") {
        return Err(ScenarioError::SelfTestUnavailable);
    }
    let sc = scenario::named(name, hosts)?;
    let opts = RunOptions {
        seed,
        timeline,
        settle_ms: SCENARIO_SETTLE_MS,
        broken: Some(BrokenGate::Core(hactl_core::SelfTestGate::Quorum)),
        cluster: None,
    };
    Ok(Simulation::new(&sc, opts).run())
}

/// Runs one seeded random fault schedule on `hosts` hosts drawing from
/// every fault class.
pub fn run_random(seed: u64, hosts: usize, timeline: bool) -> RunReport {
    run_random_with(seed, hosts, &scenario::all_fault_classes(), timeline)
}

/// Runs one seeded random fault schedule drawing from `classes`.
pub fn run_random_with(
    seed: u64,
    hosts: usize,
    classes: &[FaultClass],
    timeline: bool,
) -> RunReport {
    let sc = scenario::random(seed, hosts, classes);
    let opts = RunOptions {
        seed,
        timeline,
        settle_ms: scenario::RANDOM_SETTLE_S * 1000,
        broken: None,
        cluster: None,
    };
    Simulation::new(&sc, opts).run()
}

/// Runs `seeds` random schedules starting at `first_seed` and aggregates them.
pub fn sweep(first_seed: u64, seeds: u64, hosts: usize) -> SweepReport {
    sweep_with(
        first_seed,
        seeds,
        hosts..=hosts,
        &scenario::all_fault_classes(),
    )
}

/// Runs `seeds` random schedules drawing from `classes`; seed `s` runs on
/// `hosts.start() + s % (range length)` hosts, so a sweep covers the sizes.
pub fn sweep_with(
    first_seed: u64,
    seeds: u64,
    hosts: std::ops::RangeInclusive<usize>,
    classes: &[FaultClass],
) -> SweepReport {
    let (lo, hi) = (*hosts.start(), (*hosts.end()).max(*hosts.start()));
    let mut rep = SweepReport {
        first_seed,
        hosts: lo,
        max_hosts: hi,
        ..SweepReport::default()
    };
    for seed in first_seed..first_seed.saturating_add(seeds) {
        let n = lo + (seed % (hi - lo + 1) as u64) as usize;
        rep.add(&run_random_with(seed, n, classes, false));
    }
    rep
}

fn cluster_options(
    instances: usize,
    breaks: ClusterBreaks,
) -> Result<ClusterOptions, ScenarioError> {
    if !(2..=3).contains(&instances) {
        return Err(ScenarioError::Coordinators(instances));
    }
    Ok(ClusterOptions { instances, breaks })
}

/// Runs a named scenario with `instances` (2 or 3) coordinator instances, each a core, a
/// replica and a journal, with the replication and promotion rules of `hactl-cluster`.
/// `breaks` switches safety rules off (checker self-tests only; default: none).
pub fn run_cluster_scenario(
    name: &str,
    seed: u64,
    hosts: Option<usize>,
    instances: usize,
    breaks: ClusterBreaks,
    timeline: bool,
) -> Result<RunReport, ScenarioError> {
    let cluster = cluster_options(instances, breaks)?;
    let sc = cluster_scenario::named(name, hosts)?;
    let opts = RunOptions {
        seed,
        timeline,
        settle_ms: SCENARIO_SETTLE_MS,
        broken: None,
        cluster: Some(cluster),
    };
    Ok(Simulation::new(&sc, opts).run())
}

/// Runs one seeded random schedule with `instances` coordinator instances: data-center faults
/// from `classes` plus faults of the coordinator cluster.
pub fn run_cluster_random(
    seed: u64,
    hosts: usize,
    instances: usize,
    classes: &[FaultClass],
    breaks: ClusterBreaks,
    timeline: bool,
) -> Result<RunReport, ScenarioError> {
    let cluster = cluster_options(instances, breaks)?;
    let sc = cluster_scenario::random(seed, hosts, instances, classes);
    let opts = RunOptions {
        seed,
        timeline,
        settle_ms: scenario::RANDOM_SETTLE_S * 1000,
        broken: None,
        cluster: Some(cluster),
    };
    Ok(Simulation::new(&sc, opts).run())
}

/// [`sweep_with`] for `instances` coordinator instances.
pub fn sweep_cluster(
    first_seed: u64,
    seeds: u64,
    hosts: std::ops::RangeInclusive<usize>,
    instances: usize,
    classes: &[FaultClass],
    breaks: ClusterBreaks,
) -> Result<SweepReport, ScenarioError> {
    cluster_options(instances, breaks)?;
    let (lo, hi) = (*hosts.start(), (*hosts.end()).max(*hosts.start()));
    let mut rep = SweepReport {
        first_seed,
        hosts: lo,
        max_hosts: hi,
        ..SweepReport::default()
    };
    for seed in first_seed..first_seed.saturating_add(seeds) {
        let n = lo + (seed % (hi - lo + 1) as u64) as usize;
        rep.add(&run_cluster_random(
            seed, n, instances, classes, breaks, false,
        )?);
    }
    Ok(rep)
}

/// Runs a given schedule with `instances` coordinator instances (tests build schedules that
/// the named scenarios do not cover).
pub fn run_cluster_schedule(
    sc: &scenario::Scenario,
    seed: u64,
    instances: usize,
    breaks: ClusterBreaks,
) -> Result<RunReport, ScenarioError> {
    let cluster = cluster_options(instances, breaks)?;
    let opts = RunOptions {
        seed,
        timeline: true,
        settle_ms: SCENARIO_SETTLE_MS,
        broken: None,
        cluster: Some(cluster),
    };
    Ok(Simulation::new(sc, opts).run())
}
