//! What a run produces: the readable timeline and the machine-readable summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::clock::SimTime;
use crate::invariants::Violation;

/// One line per notable event, prefixed with its virtual time. Lines are
/// built lazily so a benchmark run with the timeline off pays nothing.
pub struct Timeline {
    enabled: bool,
    lines: Vec<String>,
}

impl Timeline {
    pub fn new(enabled: bool) -> Timeline {
        Timeline {
            enabled,
            lines: Vec::new(),
        }
    }

    pub fn line(&mut self, at: SimTime, kind: &str, text: impl FnOnce() -> String) {
        if self.enabled {
            let mut l = String::with_capacity(64);
            let _ = write!(l, "{at}  {kind:<9} {}", text());
            self.lines.push(l);
        }
    }

    pub fn into_lines(self) -> Vec<String> {
        self.lines
    }
}

/// The result of one simulation run; serialised as the `--json` summary.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    pub hosts: usize,
    pub clusters: usize,
    pub virtual_duration_s: f64,
    /// Fencing power operations (off/cycle/reset) the core issued.
    pub fences: u64,
    /// Fences the core reported as confirmed (chassis OFF read back).
    pub fence_successes: u64,
    /// Dead hosts whose chassis a fence turned off (their VMs are safe to restart elsewhere).
    pub recoveries: u64,
    /// Broken invariants; empty when all held.
    pub violations: Vec<Violation>,
    /// Longest time from a host's death to its chassis being confirmed OFF.
    pub max_time_to_recovery_s: Option<f64>,
    pub time_to_recovery_s: BTreeMap<String, f64>,
    /// From a host's death until the core had it AVAILABLE again.
    pub time_to_available_s: BTreeMap<String, f64>,
    /// HA state of every host at the end of the run, counted per state.
    pub final_state_counts: BTreeMap<String, usize>,
    /// HA state of each host at the end (small runs only).
    pub host_states: BTreeMap<String, String>,
    /// How often each state was entered during the run.
    pub state_entries: BTreeMap<String, u64>,
    /// Core events by kind (mass-failure trips, rate-cap stops, deferred
    /// fences, operator alerts ...).
    pub core_events: BTreeMap<String, u64>,
    pub coordinator_restarts: u32,
    /// Power actions a superseded (zombie) coordinator asked for.
    pub superseded_power_actions: u64,
    /// Coordinator instances (1: the single coordinator).
    pub coordinators: usize,
    /// Instances that became active (their core recovered from the replica).
    pub promotions: u64,
    /// Power actions the power driver refused (`authorize_power`: stale
    /// epoch, not active, no majority, syncing, not quorate, grace).
    pub epoch_refusals: u64,
    /// Snapshots of the replicated log that became durable (coordinator instances only).
    pub compactions: u64,
    /// State transfers that replaced a member's log by a compacted one, snapshot first.
    pub snapshot_transfers: u64,
    /// Fences that landed on a host which resumed writing its heartbeat
    /// after the core's last observation and before the off landed, the
    /// core having acted at once: a race no coordinator can win, counted.
    pub fence_races: u64,
    /// Fences of a host whose maintenance the API had not reported yet
    /// (a stale inventory: the core could not know).
    pub stale_inventory_fences: u64,
    pub journal_bytes: usize,
    /// Events the simulator processed.
    pub events: u64,
    /// Largest number of events pending at once.
    pub max_queue_len: usize,
    /// Calls into the core.
    pub core_calls: u64,
    #[serde(skip)]
    pub timeline: Vec<String>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// A short human summary printed after the timeline.
    pub fn human_summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scenario {} seed {}: {} hosts in {} clusters, {:.0} s virtual",
            self.scenario, self.seed, self.hosts, self.clusters, self.virtual_duration_s
        );
        if self.coordinators > 1 {
            let _ = writeln!(
                s,
                "{} coordinator instances: {} promotions (a core recovered from its replica), {} power actions refused by the epoch check, {} log compactions, {} snapshot transfers",
                self.coordinators, self.promotions, self.epoch_refusals, self.compactions, self.snapshot_transfers
            );
        }
        let _ = writeln!(
            s,
            "fences issued {}, confirmed {}, dead hosts recovered {}, max time to recovery {}",
            self.fences,
            self.fence_successes,
            self.recoveries,
            self.max_time_to_recovery_s
                .map(|v| format!("{v:.1} s"))
                .unwrap_or_else(|| "n/a".into())
        );
        let states: Vec<String> = self
            .final_state_counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(s, "final HA states: {}", states.join(" "));
        if self.violations.is_empty() {
            let _ = writeln!(s, "invariants: all held");
        } else {
            let _ = writeln!(s, "invariants: {} VIOLATED", self.violations.len());
            for v in &self.violations {
                let _ = writeln!(
                    s,
                    "  at {:.1} s {:?} {}: {}",
                    v.at_s,
                    v.invariant,
                    v.host.as_deref().unwrap_or("-"),
                    v.detail
                );
            }
        }
        s
    }
}

/// One seed of a sweep that broke an invariant.
#[derive(Debug, Clone, Serialize)]
pub struct FailedSeed {
    pub seed: u64,
    pub violations: Vec<Violation>,
}

/// Aggregate of a `--random` sweep.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SweepReport {
    pub seeds: u64,
    pub first_seed: u64,
    /// Hosts per run: from `hosts` to `max_hosts` (seed modulo the range).
    pub hosts: usize,
    pub max_hosts: usize,
    pub fences: u64,
    /// See [`RunReport::fence_races`].
    pub fence_races: u64,
    pub recoveries: u64,
    /// Instances that became active (coordinator-instance sweeps).
    pub promotions: u64,
    /// See [`RunReport::compactions`].
    pub compactions: u64,
    /// See [`RunReport::snapshot_transfers`].
    pub snapshot_transfers: u64,
    /// Every violation of every seed, each tagged with its seed.
    pub violations: Vec<SeedViolation>,
    pub failed_seeds: Vec<u64>,
    pub max_time_to_recovery_s: Option<f64>,
    pub final_state_counts: BTreeMap<String, usize>,
    pub events: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeedViolation {
    pub seed: u64,
    #[serde(flatten)]
    pub violation: Violation,
}

impl SweepReport {
    pub fn add(&mut self, r: &RunReport) {
        self.seeds += 1;
        self.fences += r.fences;
        self.fence_races += r.fence_races;
        self.recoveries += r.recoveries;
        self.promotions += r.promotions;
        self.compactions += r.compactions;
        self.snapshot_transfers += r.snapshot_transfers;
        self.events += r.events;
        if !r.violations.is_empty() {
            self.failed_seeds.push(r.seed);
            for v in &r.violations {
                self.violations.push(SeedViolation {
                    seed: r.seed,
                    violation: v.clone(),
                });
            }
        }
        if let Some(m) = r.max_time_to_recovery_s {
            self.max_time_to_recovery_s = Some(self.max_time_to_recovery_s.map_or(m, |x| x.max(m)));
        }
        for (k, v) in &r.final_state_counts {
            *self.final_state_counts.entry(k.clone()).or_default() += v;
        }
    }

    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}
