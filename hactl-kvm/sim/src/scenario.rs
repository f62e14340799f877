//! Named fault scenarios and seeded random fault schedules.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::clock::SimTime;
use crate::faults::Fault;
use crate::world::Topology;

/// When the first fault of a named scenario strikes: after the coordinator's
/// start-up grace period, with every host settled in AVAILABLE.
pub const FAULT_AT_S: u64 = 300;

/// A fault schedule over a topology for a bounded stretch of virtual time.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub topology: Topology,
    pub duration: SimTime,
    pub faults: Vec<(SimTime, Fault)>,
}

/// One line per built-in scenario, as `--list` prints them.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("host-crash", "one host crashes with its chassis ON; it is fenced (power-cycled) and comes back AVAILABLE"),
    ("agent-down-vms-alive", "the agent of one host dies while its VMs keep writing; heartbeats advance, nothing is fenced"),
    ("host-nfs-outage", "one host loses its NFS path for 10 min; its stalled VMs justify fencing it; back still without storage, it is fenced again and left OFF for the operator"),
    ("cluster-nfs-outage", "the NFS export of a whole cluster goes away for 10 min; the guard trips, nothing is fenced"),
    ("bmc-unreachable", "a host crashes while its BMC is unreachable; no fence is claimed, the host waits for an operator"),
    ("bmc-slow", "a host crashes while its BMC answers slower than the power timeout; operations are abandoned, the host waits for an operator"),
    ("bmc-dead-with-host", "a host loses power together with its BMC; power reads fail, no fence is claimed, the host waits for an operator"),
    ("flapping", "the agent of one host flaps up/down every 7 s for 10 min while the host is fine; nothing is fenced"),
    ("partition", "the coordinator is cut off from a whole cluster for 10 min; nothing is fenced"),
    ("quorum-loss", "quorum is lost, then a host crashes; nothing is fenced until quorum returns, then the host is recovered"),
    ("coordinator-restart", "hosts crash one after another; the coordinator crashes at its first fence (torn journal tail) and restarts; no duplicate fence, the rate cap is remembered"),
    ("mass-failure", "most hosts of a cluster fail at once; the mass-failure guard trips and nothing is fenced"),
    ("clock-step", "the coordinator's and one host's wall clocks step by hours; nothing is fenced"),
    ("lost-power-ack", "a host crashes and every power operation on it executes but its answer is lost or late; the OFF read after the timeout confirms the fence, once"),
    ("duplicate-power-op", "a host crashes and every power operation on it executes twice; one fence, the host comes back AVAILABLE"),
    ("bmc-lies-off", "a healthy host's BMC reads OFF for 25 s, and a crashed host's BMC lies the same way; the healthy host is never FENCED, the crashed one is fenced by our own power-off"),
    ("bmc-stale-read", "a host crashes and its BMC answers reads from a stale cache (ON) for 40 s around the fence; the fence is confirmed only when a fresh read says OFF"),
    ("checker-wrong", "the only peer left to check a host whose agent is down (VMs alive) answers the opposite of the truth every time; one checker never convicts alone: nothing is fenced"),
    ("quorum-provider-dies", "the quorum provider goes silent (last word: quorate) as quorum is lost, then a host crashes; nothing is fenced until the provider is back"),
    ("storage-slow", "heartbeat reads outlast the sample window for 10 min while a host is crashed; checks cannot tell, nothing is fenced until the storage is fast again"),
    ("clock-skew", "the coordinator's and the hosts' wall clocks differ by minutes and step during activity rounds of a crashed host and of a live host whose agent is down; the crashed one is fenced once, the live one never (the heartbeat check compares counters, not clocks)"),
    ("api-stale-inventory", "a host goes into maintenance and then hangs; the API reports the maintenance 20 s late: the host is never fenced while in maintenance, and is recovered once the API reports it back"),
    ("zombie-coordinator", "a new coordinator recovers from the journal while the old one keeps running for 10 min; a host crashes; the old one's power actions are refused by their fencing token"),
];

pub fn names() -> impl Iterator<Item = &'static str> {
    SCENARIOS.iter().map(|(n, _)| *n)
}

/// Errors building a scenario from operator input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScenarioError {
    #[error("unknown scenario {0:?}; `hactl-kvm simulate --list` names the built-in scenarios")]
    Unknown(String),
    #[error("scenario {name} needs at least {min} hosts, got {got}")]
    TooFewHosts {
        name: &'static str,
        min: usize,
        got: usize,
    },
    #[error("unknown fault class {0:?}; the classes are: {classes}", classes = FAULT_CLASSES.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", "))]
    UnknownFaultClass(String),
    #[error("scenario {0:?} faults the single coordinator itself; with --coordinators use the instance scenarios (hactl-kvm simulate --list)")]
    NotWithCoordinators(String),
    #[error("--coordinators must be 1, 2 or 3, got {0}")]
    Coordinators(usize),
    #[error(
        "this build cannot switch the quorum gate off: only test builds with the \
         checker-self-test feature can, to prove the invariant checker"
    )]
    SelfTestUnavailable,
}

fn at(s: u64) -> SimTime {
    SimTime::from_secs(s)
}

/// Hosts per cluster for named scenarios: one cluster unless `--hosts` asks
/// for more than this many.
pub const SCENARIO_HOSTS_PER_CLUSTER: usize = 10;

/// Builds the named scenario with `hosts` hosts (None: the scenario's default).
pub fn named(name: &str, hosts: Option<usize>) -> Result<Scenario, ScenarioError> {
    let (key, _) = SCENARIOS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| ScenarioError::Unknown(name.to_string()))?;
    let (default_hosts, min_hosts) = match *key {
        "coordinator-restart" => (10, 6),
        "mass-failure" => (6, 4),
        "checker-wrong" => (4, 4),
        _ => (6, 3),
    };
    let n = hosts.unwrap_or(default_hosts);
    if n < min_hosts {
        return Err(ScenarioError::TooFewHosts {
            name: key,
            min: min_hosts,
            got: n,
        });
    }
    let t = FAULT_AT_S;
    let mut duration = at(1800);
    let faults: Vec<(SimTime, Fault)> = match *key {
        "host-crash" => vec![(at(t), Fault::HostCrash { host: 1 })],
        "agent-down-vms-alive" => vec![
            (at(t), Fault::AgentDown { host: 1 }),
            (at(t + 600), Fault::AgentUp { host: 1 }),
        ],
        "host-nfs-outage" => vec![
            (at(t), Fault::HostNfsDown { host: 1 }),
            (at(t + 600), Fault::HostNfsUp { host: 1 }),
        ],
        "cluster-nfs-outage" => vec![
            (at(t), Fault::ClusterNfsDown { cluster: 0 }),
            (at(t + 600), Fault::ClusterNfsUp { cluster: 0 }),
        ],
        "bmc-unreachable" => vec![
            (at(t - 60), Fault::BmcUnreachable { host: 1 }),
            (at(t), Fault::HostCrash { host: 1 }),
        ],
        "bmc-slow" => vec![
            (
                at(t - 60),
                Fault::BmcSlow {
                    host: 1,
                    extra_ms: 120_000,
                },
            ),
            (at(t), Fault::HostCrash { host: 1 }),
        ],
        "bmc-dead-with-host" => vec![(at(t), Fault::HostAndBmcLosePower { host: 1 })],
        "flapping" => {
            let mut v = Vec::new();
            let mut s = t * 1000;
            while s < (t + 600) * 1000 {
                v.push((SimTime(s), Fault::AgentDown { host: 1 }));
                v.push((SimTime(s + 7_000), Fault::AgentUp { host: 1 }));
                s += 14_000;
            }
            v
        }
        "partition" => vec![
            (at(t), Fault::PartitionCluster { cluster: 0 }),
            (at(t + 600), Fault::HealCluster { cluster: 0 }),
        ],
        "quorum-loss" => vec![
            (at(t - 20), Fault::QuorumLost),
            (at(t), Fault::HostCrash { host: 1 }),
            (at(t + 300), Fault::QuorumRegained),
        ],
        "coordinator-restart" => {
            duration = at(3000);
            vec![
                // Crash right after the first fence left for the BMC, before
                // its result could come back.
                (
                    at(t - 1),
                    Fault::CoordinatorCrashOnNextFence {
                        restart_after_ms: 20_000,
                        tear_last_record: false,
                    },
                ),
                (at(t), Fault::HostCrash { host: 1 }),
                // Crash while writing the journal record that precedes the
                // second fence: the record is torn and the fence never left.
                (
                    at(t + 599),
                    Fault::CoordinatorCrashOnNextFence {
                        restart_after_ms: 20_000,
                        tear_last_record: true,
                    },
                ),
                (at(t + 600), Fault::HostCrash { host: 2 }),
                (at(t + 1200), Fault::HostCrash { host: 3 }),
                // A fourth fence inside the hour would exceed the default cap
                // of 3 per hour: a restarted core that forgot its fence log
                // would fence h4.
                (at(t + 1800), Fault::HostCrash { host: 4 }),
            ]
        }
        "mass-failure" => {
            let victims = (n * 2).div_ceil(3).min(n - 1);
            (1..=victims)
                .map(|h| {
                    (
                        SimTime(t * 1000 + h as u64 * 200),
                        Fault::HostCrash { host: h },
                    )
                })
                .collect()
        }
        "clock-step" => vec![
            (
                at(t),
                Fault::CoordinatorWallClockStep {
                    delta_ms: 3_600_000,
                },
            ),
            (
                at(t + 100),
                Fault::HostWallClockStep {
                    host: 2,
                    delta_ms: -3_600_000,
                },
            ),
            (
                at(t + 300),
                Fault::CoordinatorWallClockStep {
                    delta_ms: -7_200_000,
                },
            ),
        ],
        "lost-power-ack" => vec![
            (at(t - 30), Fault::PowerAcksLost { host: 1 }),
            (at(t), Fault::HostCrash { host: 1 }),
            (at(t + 600), Fault::PowerAcksBack { host: 1 }),
        ],
        "duplicate-power-op" => vec![
            (at(t - 30), Fault::PowerOpsDuplicated { host: 1 }),
            (at(t), Fault::HostCrash { host: 1 }),
            (at(t + 600), Fault::PowerOpsSingle { host: 1 }),
        ],
        "bmc-lies-off" => vec![
            (at(t), Fault::BmcLiesOff { host: 2 }),
            (at(t + 25), Fault::BmcHonest { host: 2 }),
            (at(t + 100), Fault::HostCrash { host: 1 }),
            // Around the recovery's power refresh (30-48 s after the crash).
            (at(t + 125), Fault::BmcLiesOff { host: 1 }),
            (at(t + 150), Fault::BmcHonest { host: 1 }),
        ],
        "bmc-stale-read" => vec![
            (at(t), Fault::HostCrash { host: 1 }),
            // Cached ON from just before the fence until after it.
            (at(t + 25), Fault::BmcStaleRead { host: 1 }),
            (at(t + 65), Fault::BmcFresh { host: 1 }),
        ],
        // h0 and h3 leave AVAILABLE (BMC unreachable: INELIGIBLE, still
        // healthy), so the lying h2 is the only peer left to check h1.
        "checker-wrong" => vec![
            (at(t - 90), Fault::BmcUnreachable { host: 0 }),
            (at(t - 90), Fault::BmcUnreachable { host: 3 }),
            (at(t - 30), Fault::CheckerWrong { host: 2, pct: 100 }),
            (at(t), Fault::AgentDown { host: 1 }),
            (at(t + 600), Fault::AgentUp { host: 1 }),
            (at(t + 600), Fault::CheckerRight { host: 2 }),
            (at(t + 600), Fault::BmcReachable { host: 0 }),
            (at(t + 600), Fault::BmcReachable { host: 3 }),
        ],
        "quorum-provider-dies" => vec![
            (at(t - 20), Fault::QuorumProviderDies),
            (at(t + 40), Fault::HostCrash { host: 1 }),
            (at(t + 600), Fault::QuorumProviderBack),
        ],
        "storage-slow" => vec![
            (at(t - 10), Fault::StorageSlow { cluster: 0 }),
            (at(t), Fault::HostCrash { host: 1 }),
            (at(t + 600), Fault::StorageNormal { cluster: 0 }),
        ],
        "clock-skew" => {
            let mut v = vec![(
                at(t - 200),
                Fault::CoordinatorWallClockStep { delta_ms: 420_000 },
            )];
            for (h, d) in [
                (0, -180_000i64),
                (1, 300_000),
                (2, -600_000),
                (3, 90_000),
                (4, 240_000),
            ] {
                v.push((
                    at(t - 200),
                    Fault::HostWallClockStep {
                        host: h,
                        delta_ms: d,
                    },
                ));
            }
            v.push((at(t), Fault::HostCrash { host: 1 }));
            v.push((at(t), Fault::AgentDown { host: 3 }));
            // Mid-round steps: checkers, the suspects and the coordinator.
            for (k, h) in [(15, 2), (20, 3), (25, 0), (40, 3)] {
                v.push((
                    at(t + k),
                    Fault::HostWallClockStep {
                        host: h,
                        delta_ms: -300_000,
                    },
                ));
                v.push((
                    at(t + k),
                    Fault::CoordinatorWallClockStep { delta_ms: 180_000 },
                ));
            }
            v.push((at(t + 600), Fault::AgentUp { host: 3 }));
            v
        }
        "api-stale-inventory" => vec![
            (
                at(t),
                Fault::MaintenanceStarted {
                    host: 1,
                    api_lag_ms: 20_000,
                },
            ),
            (at(t + 30), Fault::HostCrash { host: 1 }),
            (
                at(t + 600),
                Fault::MaintenanceEnded {
                    host: 1,
                    api_lag_ms: 30_000,
                },
            ),
        ],
        "zombie-coordinator" => vec![
            (
                at(t - 5),
                Fault::ZombieCoordinator {
                    zombie_for_ms: 600_000,
                },
            ),
            (at(t), Fault::HostCrash { host: 1 }),
        ],
        other => unreachable!("scenario {other} listed but not built"),
    };
    Ok(Scenario {
        name: key.to_string(),
        topology: Topology::new(n, SCENARIO_HOSTS_PER_CLUSTER),
        duration,
        faults,
    })
}

/// Virtual length of one `--random` run, and the fault-free tail at its end
/// in which every transient state must have settled.
pub const RANDOM_DURATION_S: u64 = 3600;
pub const RANDOM_SETTLE_S: u64 = 1200;

/// A seeded random fault schedule: a handful of faults of every kind, each
/// with its repair, all between the start-up grace period and the settle
/// tail. Same seed, same schedule.
/// A class of faults a random schedule draws from (`--faults LIST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultClass {
    HostCrash,
    PowerLoss,
    AgentDown,
    HostNfs,
    ClusterNfs,
    BmcUnreachable,
    BmcSlow,
    Flapping,
    PartitionCluster,
    PartitionHost,
    QuorumLoss,
    CoordinatorCrash,
    ClockStep,
    LostPowerAck,
    DuplicatePowerOp,
    BmcLiesOff,
    BmcStaleRead,
    CheckerWrong,
    QuorumProviderDies,
    StorageSlow,
    ZombieCoordinator,
    ApiStaleInventory,
    ClockSkew,
}

/// Every fault class with its `--faults` name.
pub const FAULT_CLASSES: &[(FaultClass, &str)] = &[
    (FaultClass::HostCrash, "host-crash"),
    (FaultClass::PowerLoss, "power-loss"),
    (FaultClass::AgentDown, "agent-down"),
    (FaultClass::HostNfs, "host-nfs"),
    (FaultClass::ClusterNfs, "cluster-nfs"),
    (FaultClass::BmcUnreachable, "bmc-unreachable"),
    (FaultClass::BmcSlow, "bmc-slow"),
    (FaultClass::Flapping, "flapping"),
    (FaultClass::PartitionCluster, "partition-cluster"),
    (FaultClass::PartitionHost, "partition-host"),
    (FaultClass::QuorumLoss, "quorum-loss"),
    (FaultClass::CoordinatorCrash, "coordinator-crash"),
    (FaultClass::ClockStep, "clock-step"),
    (FaultClass::LostPowerAck, "lost-power-ack"),
    (FaultClass::DuplicatePowerOp, "duplicate-power-op"),
    (FaultClass::BmcLiesOff, "bmc-lies-off"),
    (FaultClass::BmcStaleRead, "bmc-stale-read"),
    (FaultClass::CheckerWrong, "checker-wrong"),
    (FaultClass::QuorumProviderDies, "quorum-provider-dies"),
    (FaultClass::StorageSlow, "storage-slow"),
    (FaultClass::ZombieCoordinator, "zombie-coordinator"),
    (FaultClass::ApiStaleInventory, "api-stale-inventory"),
    (FaultClass::ClockSkew, "clock-skew"),
];

/// Every fault class.
pub fn all_fault_classes() -> Vec<FaultClass> {
    FAULT_CLASSES.iter().map(|(c, _)| *c).collect()
}

/// Parses a comma-separated `--faults` list (`all` for every class).
pub fn parse_fault_classes(list: &str) -> Result<Vec<FaultClass>, ScenarioError> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "all" {
            return Ok(all_fault_classes());
        }
        let class = FAULT_CLASSES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(c, _)| *c)
            .ok_or_else(|| ScenarioError::UnknownFaultClass(name.to_string()))?;
        if !out.contains(&class) {
            out.push(class);
        }
    }
    if out.is_empty() {
        return Err(ScenarioError::UnknownFaultClass(list.to_string()));
    }
    Ok(out)
}

/// A BMC that lies or reads stale does so for less than this (the core's
/// default `fence_confirm_interval_ms`): a reading that stays wrong longer
/// than two confirming reads apart cannot be told from the truth by reads,
/// only our own power-off defeats it (see docs/model.md).
pub const BMC_MISREAD_MAX_MS: u64 = 29_000;

/// A seeded random fault schedule on `hosts` hosts drawing 1-6 faults from
/// `classes`. At most one checker-wrong and one zombie-coordinator fault per
/// schedule (the core promises safety against one wrong checker per
/// partition, not two).
pub fn random(seed: u64, hosts: usize, classes: &[FaultClass]) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let hosts = hosts.max(3);
    let topo = Topology::new(hosts, SCENARIO_HOSTS_PER_CLUSTER);
    let clusters = topo.clusters();
    let first = 200_000u64;
    let last = (RANDOM_DURATION_S - RANDOM_SETTLE_S) * 1000;
    let mut faults = Vec::new();
    let classes = if classes.is_empty() {
        all_fault_classes()
    } else {
        classes.to_vec()
    };
    let mut once_used: Vec<FaultClass> = Vec::new();
    let count = rng.gen_range(1..=6);
    for _ in 0..count {
        let start = rng.gen_range(first..last - 60_000);
        // Repairs come before the settle tail so the end state can be judged.
        let span = |rng: &mut ChaCha8Rng| SimTime(rng.gen_range(start + 5_000..last));
        let host = rng.gen_range(0..hosts);
        let cluster = rng.gen_range(0..clusters);
        let s = SimTime(start);
        let class = classes[rng.gen_range(0..classes.len())];
        let misread =
            |rng: &mut ChaCha8Rng| SimTime(start + rng.gen_range(2_000..BMC_MISREAD_MAX_MS));
        match class {
            FaultClass::HostCrash => faults.push((s, Fault::HostCrash { host })),
            FaultClass::PowerLoss => {
                faults.push((s, Fault::HostAndBmcLosePower { host }));
                faults.push((span(&mut rng), Fault::PowerFeedRestored { host }));
            }
            FaultClass::AgentDown => {
                faults.push((s, Fault::AgentDown { host }));
                faults.push((span(&mut rng), Fault::AgentUp { host }));
            }
            FaultClass::HostNfs => {
                faults.push((s, Fault::HostNfsDown { host }));
                faults.push((span(&mut rng), Fault::HostNfsUp { host }));
            }
            FaultClass::ClusterNfs => {
                faults.push((s, Fault::ClusterNfsDown { cluster }));
                faults.push((span(&mut rng), Fault::ClusterNfsUp { cluster }));
            }
            FaultClass::BmcUnreachable => {
                faults.push((s, Fault::BmcUnreachable { host }));
                faults.push((span(&mut rng), Fault::BmcReachable { host }));
            }
            FaultClass::BmcSlow => {
                let extra_ms = rng.gen_range(1_000..120_000);
                faults.push((s, Fault::BmcSlow { host, extra_ms }));
                faults.push((span(&mut rng), Fault::BmcNormal { host }));
            }
            FaultClass::Flapping => {
                let mut t = start;
                let end = span(&mut rng).0;
                let half = rng.gen_range(2_000..20_000);
                while t + 2 * half < end {
                    faults.push((SimTime(t), Fault::AgentDown { host }));
                    faults.push((SimTime(t + half), Fault::AgentUp { host }));
                    t += 2 * half;
                }
            }
            FaultClass::PartitionCluster => {
                faults.push((s, Fault::PartitionCluster { cluster }));
                faults.push((span(&mut rng), Fault::HealCluster { cluster }));
            }
            FaultClass::PartitionHost => {
                faults.push((s, Fault::PartitionHost { host }));
                faults.push((span(&mut rng), Fault::HealHost { host }));
            }
            FaultClass::QuorumLoss => {
                faults.push((s, Fault::QuorumLost));
                faults.push((span(&mut rng), Fault::QuorumRegained));
            }
            FaultClass::CoordinatorCrash => {
                let restart_after_ms = rng.gen_range(1_000..60_000);
                let tear_last_record = rng.gen_bool(0.5);
                let f = if rng.gen_bool(0.5) {
                    Fault::CoordinatorCrash {
                        restart_after_ms,
                        tear_last_record,
                    }
                } else {
                    Fault::CoordinatorCrashOnNextFence {
                        restart_after_ms,
                        tear_last_record,
                    }
                };
                faults.push((s, f));
            }
            FaultClass::ClockStep => {
                let delta_ms = rng.gen_range(-7_200_000i64..7_200_000);
                if rng.gen_bool(0.5) {
                    faults.push((s, Fault::CoordinatorWallClockStep { delta_ms }));
                } else {
                    faults.push((s, Fault::HostWallClockStep { host, delta_ms }));
                }
            }
            FaultClass::LostPowerAck => {
                faults.push((s, Fault::PowerAcksLost { host }));
                faults.push((span(&mut rng), Fault::PowerAcksBack { host }));
            }
            FaultClass::DuplicatePowerOp => {
                faults.push((s, Fault::PowerOpsDuplicated { host }));
                faults.push((span(&mut rng), Fault::PowerOpsSingle { host }));
            }
            FaultClass::BmcLiesOff => {
                faults.push((s, Fault::BmcLiesOff { host }));
                faults.push((misread(&mut rng), Fault::BmcHonest { host }));
            }
            FaultClass::BmcStaleRead => {
                faults.push((s, Fault::BmcStaleRead { host }));
                faults.push((misread(&mut rng), Fault::BmcFresh { host }));
            }
            FaultClass::CheckerWrong if !once_used.contains(&class) => {
                once_used.push(class);
                let pct = rng.gen_range(10..=100);
                faults.push((s, Fault::CheckerWrong { host, pct }));
                faults.push((span(&mut rng), Fault::CheckerRight { host }));
            }
            FaultClass::QuorumProviderDies => {
                faults.push((s, Fault::QuorumProviderDies));
                faults.push((span(&mut rng), Fault::QuorumProviderBack));
            }
            FaultClass::StorageSlow => {
                faults.push((s, Fault::StorageSlow { cluster }));
                faults.push((span(&mut rng), Fault::StorageNormal { cluster }));
            }
            FaultClass::ZombieCoordinator if !once_used.contains(&class) => {
                once_used.push(class);
                let zombie_for_ms = rng.gen_range(10_000..900_000);
                faults.push((s, Fault::ZombieCoordinator { zombie_for_ms }));
            }
            FaultClass::ApiStaleInventory => {
                let api_lag_ms = rng.gen_range(1_000..120_000);
                faults.push((s, Fault::MaintenanceStarted { host, api_lag_ms }));
                let api_lag_ms = rng.gen_range(1_000..120_000);
                faults.push((span(&mut rng), Fault::MaintenanceEnded { host, api_lag_ms }));
            }
            FaultClass::ClockSkew => {
                // Minutes of skew between the coordinator and the hosts of
                // a cluster, then steps a few seconds apart (mid-round).
                let first_host = cluster * SCENARIO_HOSTS_PER_CLUSTER;
                let last_host = (first_host + SCENARIO_HOSTS_PER_CLUSTER).min(hosts);
                for h in first_host..last_host {
                    let delta_ms = rng.gen_range(-600_000i64..600_000);
                    faults.push((s, Fault::HostWallClockStep { host: h, delta_ms }));
                }
                for k in 1..=3u64 {
                    let at = SimTime(start + k * rng.gen_range(2_000..8_000));
                    let delta_ms = rng.gen_range(-300_000i64..300_000);
                    faults.push((at, Fault::CoordinatorWallClockStep { delta_ms }));
                    let delta_ms = rng.gen_range(-300_000i64..300_000);
                    faults.push((at, Fault::HostWallClockStep { host, delta_ms }));
                }
            }
            FaultClass::CheckerWrong | FaultClass::ZombieCoordinator => {
                faults.push((s, Fault::HostCrash { host }))
            }
        }
    }
    faults.sort_by_key(|(t, _)| *t);
    Scenario {
        name: format!("random-{seed}"),
        topology: topo,
        duration: SimTime::from_secs(RANDOM_DURATION_S),
        faults,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_scenario_builds() {
        for name in names() {
            let s = named(name, None).unwrap();
            assert!(!s.faults.is_empty(), "{name} has no faults");
            assert!(s.faults.iter().all(|(t, _)| *t < s.duration));
        }
    }

    #[test]
    fn unknown_and_too_small_are_errors() {
        assert!(matches!(
            named("nope", None),
            Err(ScenarioError::Unknown(_))
        ));
        assert!(matches!(
            named("host-crash", Some(2)),
            Err(ScenarioError::TooFewHosts { .. })
        ));
    }

    #[test]
    fn random_schedules_are_reproducible_and_leave_a_quiet_tail() {
        for seed in 0..200 {
            let a = random(seed, 5, &all_fault_classes());
            let b = random(seed, 5, &all_fault_classes());
            assert_eq!(a.faults, b.faults);
            let tail = SimTime::from_secs(RANDOM_DURATION_S - RANDOM_SETTLE_S);
            assert!(a.faults.iter().all(|(t, _)| *t < tail), "seed {seed}");
        }
        assert_ne!(
            random(1, 5, &all_fault_classes()).faults,
            random(2, 5, &all_fault_classes()).faults
        );
        assert!(parse_fault_classes("host-crash,bmc-lies-off").is_ok());
        assert!(parse_fault_classes("host-crash,nonsense").is_err());
        assert_eq!(
            parse_fault_classes("all").unwrap().len(),
            FAULT_CLASSES.len()
        );
    }
}
