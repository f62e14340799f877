//! Scenarios for several coordinator instances (`--coordinators 2|3`): named ones, and seeded
//! random schedules that add faults of the coordinator cluster (partitions between instances and
//! from the quorum service, crashes mid-recovery, the zombie former active, a wrong promotion)
//! to the data-center faults of [`crate::scenario::random`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::clock::SimTime;
use crate::faults::Fault;
use crate::scenario::{
    self, FaultClass, Scenario, ScenarioError, FAULT_AT_S, RANDOM_DURATION_S, RANDOM_SETTLE_S,
    SCENARIO_HOSTS_PER_CLUSTER,
};
use crate::world::Topology;

/// Scenarios that exist only with several instances, one line each as `--list` prints them.
pub const CLUSTER_SCENARIOS: &[(&str, &str)] = &[
    ("active-killed-mid-recovery", "a host crashes; the active instance dies the instant it sends the fence; a standby is promoted from its replica and the host is fenced once (the BMC sees one off)"),
    ("active-isolated", "the active instance is cut off from the others but keeps running (a zombie with its hosts and BMCs reachable); the majority promotes a standby; a host crashes; only the new active fences it, once"),
    ("standby-isolated", "a standby is cut off for 10 min, then a host crashes; nothing changes for the hosts: the active fences it once, no promotion"),
    ("forced-promotion", "Pacemaker promotes a standby while the active instance runs (its demote lost); the old one steps down by the replicated epoch; a host crashes and is fenced once"),
    ("active-quorum-cut", "the active instance loses its quorum service for 2 min as a host crashes; its power driver refuses to act while its quorum lease has run out; the host is fenced once afterwards"),
];

/// Single-coordinator faults the instances replace (quorum, crash and zombie of the one
/// coordinator): not drawn in a multi-coordinator schedule.
const SINGLE_COORDINATOR_CLASSES: &[FaultClass] = &[
    FaultClass::QuorumLoss,
    FaultClass::CoordinatorCrash,
    FaultClass::QuorumProviderDies,
    FaultClass::ZombieCoordinator,
];

/// Named scenarios of the single coordinator that stay meaningful with several instances.
fn single_scenario_allowed(name: &str) -> bool {
    !matches!(
        name,
        "quorum-loss" | "coordinator-restart" | "quorum-provider-dies" | "zombie-coordinator"
    )
}

fn at(s: u64) -> SimTime {
    SimTime::from_secs(s)
}

/// Builds a named scenario for several instances: one of [`CLUSTER_SCENARIOS`] or a data-center
/// scenario of the single coordinator that does not fault the coordinator itself.
pub fn named(name: &str, hosts: Option<usize>) -> Result<Scenario, ScenarioError> {
    if let Some((key, _)) = CLUSTER_SCENARIOS.iter().find(|(n, _)| *n == name) {
        let n = hosts.unwrap_or(6);
        if n < 3 {
            return Err(ScenarioError::TooFewHosts {
                name: key,
                min: 3,
                got: n,
            });
        }
        let t = FAULT_AT_S;
        let faults = match *key {
            "active-killed-mid-recovery" => vec![
                (
                    at(t - 1),
                    Fault::ActiveCrashOnNextFence {
                        restart_after_ms: 30_000,
                    },
                ),
                (at(t), Fault::HostCrash { host: 1 }),
            ],
            "active-isolated" => vec![
                (
                    at(t - 30),
                    Fault::CoordinatorIsolated {
                        instance: None,
                        for_ms: 600_000,
                    },
                ),
                (at(t + 90), Fault::HostCrash { host: 1 }),
            ],
            "standby-isolated" => vec![
                (
                    at(t - 30),
                    Fault::CoordinatorIsolated {
                        instance: Some(1),
                        for_ms: 600_000,
                    },
                ),
                (at(t), Fault::HostCrash { host: 1 }),
            ],
            "forced-promotion" => vec![
                (at(t - 30), Fault::ForcedPromotion),
                (at(t + 60), Fault::HostCrash { host: 1 }),
            ],
            "active-quorum-cut" => vec![
                (
                    at(t),
                    Fault::CoordinatorQuorumCut {
                        instance: None,
                        for_ms: 120_000,
                    },
                ),
                (at(t + 5), Fault::HostCrash { host: 1 }),
            ],
            _ => unreachable!("every cluster scenario is built"),
        };
        return Ok(Scenario {
            name: key.to_string(),
            topology: Topology::new(n, SCENARIO_HOSTS_PER_CLUSTER),
            duration: at(1800),
            faults,
        });
    }
    if !single_scenario_allowed(name) {
        return Err(ScenarioError::NotWithCoordinators(name.to_string()));
    }
    scenario::named(name, hosts)
}

/// A seeded random schedule for `instances` coordinator instances: the data-center faults of
/// [`scenario::random`] (without the single coordinator's own) plus one to three faults of the
/// coordinator cluster. Same seed, same schedule.
pub fn random(seed: u64, hosts: usize, instances: usize, classes: &[FaultClass]) -> Scenario {
    let classes: Vec<FaultClass> = classes
        .iter()
        .copied()
        .filter(|c| !SINGLE_COORDINATOR_CLASSES.contains(c))
        .collect();
    let mut sc = if classes.is_empty() {
        scenario::random(seed, hosts, &[FaultClass::HostCrash])
    } else {
        scenario::random(seed, hosts, &classes)
    };
    let hosts = sc.topology.hosts;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc0c0_0a7e_5eed_0003);
    let first = 200_000u64;
    let last = (RANDOM_DURATION_S - RANDOM_SETTLE_S) * 1000;
    let count = rng.gen_range(1..=3);
    for _ in 0..count {
        let start = rng.gen_range(first..last - 60_000);
        let s = SimTime(start);
        // Every cluster fault is over before the settle tail.
        let upto = |rng: &mut ChaCha8Rng, max: u64| rng.gen_range(2_000..max.min(last - start));
        let instance = if rng.gen_bool(0.5) {
            None
        } else {
            Some(rng.gen_range(0..instances))
        };
        match rng.gen_range(0..6) {
            0 => {
                // The zombie: the active one cut off, still running.
                let for_ms = upto(&mut rng, 400_000);
                sc.faults.push((
                    s,
                    Fault::CoordinatorIsolated {
                        instance: None,
                        for_ms,
                    },
                ));
                let host = rng.gen_range(0..hosts);
                let after = rng.gen_range(0..for_ms);
                sc.faults
                    .push((SimTime(start + after), Fault::HostCrash { host }));
            }
            1 => {
                let for_ms = upto(&mut rng, 400_000);
                sc.faults
                    .push((s, Fault::CoordinatorIsolated { instance, for_ms }));
            }
            2 => {
                let for_ms = upto(&mut rng, 120_000);
                sc.faults
                    .push((s, Fault::CoordinatorQuorumCut { instance, for_ms }));
            }
            3 => {
                let restart_after_ms = upto(&mut rng, 120_000);
                sc.faults.push((
                    s,
                    Fault::CoordinatorInstanceCrash {
                        instance,
                        restart_after_ms,
                    },
                ));
            }
            4 => {
                // Mid-recovery: the active dies as it sends a fence.
                let restart_after_ms = upto(&mut rng, 120_000);
                let host = rng.gen_range(0..hosts);
                sc.faults
                    .push((s, Fault::ActiveCrashOnNextFence { restart_after_ms }));
                sc.faults.push((s, Fault::HostCrash { host }));
            }
            _ => sc.faults.push((s, Fault::ForcedPromotion)),
        }
    }
    sc.faults.sort_by_key(|(t, _)| *t);
    sc.name = format!("random-{instances}-coordinators");
    sc
}
