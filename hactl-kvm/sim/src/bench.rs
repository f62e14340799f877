//! The large-scale benchmark: 10,000 hosts in 500 clusters for 24 h of
//! virtual time with background faults, reporting wall time, peak RSS and
//! events per second. Run it in release mode (`hactl-kvm simulate --bench`).

use std::fmt::Write as _;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::clock::SimTime;
use crate::engine::{RunOptions, Simulation};
use crate::faults::Fault;
use crate::scenario::Scenario;
use crate::world::Topology;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub hosts: usize,
    pub hosts_per_cluster: usize,
    pub virtual_hours: u64,
    /// Background faults injected per virtual hour, fleet-wide.
    pub faults_per_hour: u64,
    pub seed: u64,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            hosts: 10_000,
            hosts_per_cluster: 20,
            virtual_hours: 24,
            faults_per_hour: 30,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub hosts: usize,
    pub clusters: usize,
    pub virtual_hours: u64,
    pub faults_injected: usize,
    pub wall_s: f64,
    /// Peak resident set size of the whole process (getrusage ru_maxrss).
    pub peak_rss_mib: f64,
    pub events: u64,
    pub events_per_s: f64,
    pub core_calls: u64,
    pub max_queue_len: usize,
    pub fences: u64,
    pub recoveries: u64,
    pub violations: usize,
    pub violation_kinds: Vec<String>,
}

impl BenchReport {
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "bench: {} hosts in {} clusters, {} h virtual, {} background faults",
            self.hosts, self.clusters, self.virtual_hours, self.faults_injected
        );
        let _ = writeln!(
            s,
            "wall time {:.2} s, peak RSS {:.1} MiB, {} events ({:.0} events/s), {} core calls, queue peak {}",
            self.wall_s, self.peak_rss_mib, self.events, self.events_per_s, self.core_calls, self.max_queue_len
        );
        let _ = writeln!(
            s,
            "fences {}, dead hosts recovered {}, invariant violations {}",
            self.fences, self.recoveries, self.violations
        );
        for k in &self.violation_kinds {
            let _ = writeln!(s, "  {k}");
        }
        s
    }
}

/// Peak RSS of this process in MiB.
pub fn peak_rss_mib() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return f64::NAN;
    }
    // Linux reports ru_maxrss in KiB.
    ru.ru_maxrss as f64 / 1024.0
}

/// The background fault schedule of the benchmark.
pub fn background(cfg: &BenchConfig) -> Scenario {
    let topo = Topology::new(cfg.hosts, cfg.hosts_per_cluster);
    let clusters = topo.clusters();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let dur_ms = cfg.virtual_hours * 3_600_000;
    let mut faults = Vec::new();
    let n = cfg.faults_per_hour * cfg.virtual_hours;
    for _ in 0..n {
        let t = rng.gen_range(300_000..dur_ms);
        let host = rng.gen_range(0..cfg.hosts);
        let back = SimTime(t + rng.gen_range(30_000..1_800_000));
        let s = SimTime(t);
        match rng.gen_range(0..10) {
            0 => faults.push((s, Fault::HostCrash { host })),
            1 | 2 => {
                faults.push((s, Fault::AgentDown { host }));
                faults.push((back, Fault::AgentUp { host }));
            }
            3 => {
                faults.push((s, Fault::HostNfsDown { host }));
                faults.push((SimTime(t + 20_000), Fault::HostNfsUp { host }));
            }
            4 => {
                faults.push((s, Fault::BmcUnreachable { host }));
                faults.push((back, Fault::BmcReachable { host }));
            }
            5 => {
                faults.push((
                    s,
                    Fault::BmcSlow {
                        host,
                        extra_ms: 30_000,
                    },
                ));
                faults.push((back, Fault::BmcNormal { host }));
            }
            6 => {
                faults.push((s, Fault::PartitionHost { host }));
                faults.push((back, Fault::HealHost { host }));
            }
            7 => {
                let delta_ms = rng.gen_range(-3_600_000i64..3_600_000);
                faults.push((s, Fault::HostWallClockStep { host, delta_ms }));
            }
            _ => {
                let mut u = t;
                for _ in 0..10 {
                    faults.push((SimTime(u), Fault::AgentDown { host }));
                    faults.push((SimTime(u + 4_000), Fault::AgentUp { host }));
                    u += 8_000;
                }
            }
        }
    }
    // A few larger incidents through the day.
    let big = [
        (
            4u64,
            Fault::ClusterNfsDown {
                cluster: rng.gen_range(0..clusters),
            },
        ),
        (
            9,
            Fault::PartitionCluster {
                cluster: rng.gen_range(0..clusters),
            },
        ),
        (14, Fault::QuorumLost),
        (
            19,
            Fault::CoordinatorCrash {
                restart_after_ms: 30_000,
                tear_last_record: true,
            },
        ),
    ];
    for (hour, f) in big {
        if hour >= cfg.virtual_hours {
            continue;
        }
        let t = SimTime(hour * 3_600_000);
        let repair = SimTime(t.0 + 600_000);
        let undo = match &f {
            Fault::ClusterNfsDown { cluster } => Some(Fault::ClusterNfsUp { cluster: *cluster }),
            Fault::PartitionCluster { cluster } => Some(Fault::HealCluster { cluster: *cluster }),
            Fault::QuorumLost => Some(Fault::QuorumRegained),
            _ => None,
        };
        faults.push((t, f));
        if let Some(u) = undo {
            faults.push((repair, u));
        }
    }
    faults.sort_by_key(|(t, _)| *t);
    Scenario {
        name: "bench".into(),
        topology: topo,
        duration: SimTime(dur_ms),
        faults,
    }
}

/// Runs the benchmark and measures it.
pub fn bench(cfg: &BenchConfig) -> BenchReport {
    let sc = background(cfg);
    let faults_injected = sc.faults.len();
    let clusters = sc.topology.clusters();
    let start = Instant::now();
    let rep = Simulation::new(
        &sc,
        RunOptions {
            seed: cfg.seed,
            timeline: false,
            settle_ms: 0,
            broken: None,
            cluster: None,
        },
    )
    .run();
    let wall = start.elapsed().as_secs_f64();
    let mut kinds: Vec<String> = rep
        .violations
        .iter()
        .take(20)
        .map(|v| {
            format!(
                "{:.0} s {:?} {}: {}",
                v.at_s,
                v.invariant,
                v.host.as_deref().unwrap_or("-"),
                v.detail
            )
        })
        .collect();
    kinds.dedup();
    BenchReport {
        hosts: rep.hosts,
        clusters,
        virtual_hours: cfg.virtual_hours,
        faults_injected,
        wall_s: wall,
        peak_rss_mib: peak_rss_mib(),
        events: rep.events,
        events_per_s: rep.events as f64 / wall.max(1e-9),
        core_calls: rep.core_calls,
        max_queue_len: rep.max_queue_len,
        fences: rep.fences,
        recoveries: rep.recoveries,
        violations: rep.violations.len(),
        violation_kinds: kinds,
    }
}
