//! The safety and liveness invariants, judged against the world's ground
//! truth rather than against what the coordinator believes.

use std::collections::VecDeque;

use serde::Serialize;

use crate::clock::SimTime;
use crate::protocol::FenceEvidence;
use crate::world::{ClusterIdx, HostIdx, World};

/// Which invariant a [`Violation`] breaks; the kebab-case name is what the
/// JSON summary and the timeline print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// A fencing power operation was issued while the coordinator was not quorate.
    FenceWithoutQuorum,
    /// More fencing operations in the window than the cap allows.
    RateCapExceeded,
    /// The host's heartbeat advanced during the activity window that led to
    /// the fence: it was demonstrably alive.
    FencedLiveHost,
    /// A fence was issued with no activity check of that host answered in
    /// the current failure episode.
    FenceWithoutActivityCheck,
    /// A second fencing operation on a host while one is still in flight.
    ConcurrentRecovery,
    /// A host already fenced in this failure episode, and up again, was fenced again.
    DuplicateFence,
    /// A fence inside a cluster whose storage or network was out as a whole.
    FenceDuringPartitionOutage,
    /// A dead host was not fenced within the bound although fencing was possible.
    RecoveryTooSlow,
    /// A host stayed in a transient HA state too long.
    StuckInTransientState,
    /// The core claimed a fence succeeded, or declared the host FENCED by
    /// any path, while the chassis was not off.
    FenceSuccessNotConfirmed,
    /// The heartbeat advanced after the fence's evidence began and before
    /// its power-off landed: the host was alive when it was cut.
    HeartbeatAdvancedBeforeOffLanded,
    /// The coordinator could not be rebuilt from its journal.
    RestartFailed,
    /// A fence was issued within the start-up grace of the coordinator
    /// process that issued it.
    FenceDuringStartupGrace,
    /// A fence while more than the mass-failure share of its cluster had
    /// turned unhealthy within the guard's window (and long enough ago for
    /// the coordinator's health checks to have seen it).
    FenceDuringMassFailure,
    /// A fence of a host in maintenance that the API already reported as
    /// such (the core had been told).
    FenceInMaintenance,
    /// A power action of a superseded coordinator (older epoch than the
    /// newest) reached a chassis.
    SupersededCoordinatorActed,
    /// Power actions of two coordinator instances landed under one fencing
    /// epoch (`--coordinators`).
    TwoInstancesInOneEpoch,
    /// Fences of two coordinator instances were in flight at overlapping
    /// times (issue to landing): two fencers at once.
    OverlappingFencers,
}

/// One broken invariant, with enough context to find it in the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub at_s: f64,
    pub invariant: Invariant,
    pub host: Option<String>,
    pub detail: String,
}

/// Limits the checker enforces; they mirror the core's shipped defaults
/// unless the run overrides them, so the sim judges what the core promises.
#[derive(Debug, Clone)]
pub struct Bounds {
    pub fence_cap_per_cluster: usize,
    pub fence_cap_global: usize,
    pub fence_window_ms: u64,
    /// From death to confirmed power-off when nothing blocks fencing.
    pub recovery_bound_ms: u64,
    /// From the moment the last blocking condition cleared to confirmed
    /// power-off (the core may first wait out its activity-check backoff).
    pub recovery_bound_after_block_ms: u64,
    /// CHECKING / RECOVERING may not last longer than this, ever.
    pub operation_state_bound_ms: u64,
    /// Share of a cluster (percent) beyond which the mass-failure guard may
    /// legitimately hold fencing back.
    pub mass_failure_share_pct: u32,
    /// Coordinator start-up grace: no fencing expected this long after a
    /// start, and none allowed.
    pub startup_grace_ms: u64,
    /// The mass-failure guard's window.
    pub mass_failure_window_ms: u64,
    /// The core's power operation time bound.
    pub power_op_timeout_ms: u64,
    /// A "quorate" report counts this long: a fence issued within this time
    /// of the ground-truth loss of quorum is within the lease (the rest of
    /// the cluster waits the lease out before acting on the lost member).
    pub quorum_lease_ms: u64,
}

/// How long after a host turns unhealthy the coordinator has surely seen
/// it: a health interval, its timeout, and the answer's collection.
const OBSERVATION_DELAY_MS: u64 = 15_000;

/// How many "dead" answers per host the checker remembers to verify that a
/// fence's evidence is made of windows the simulator really answered.
const ANSWERED_HISTORY: usize = 32;

#[derive(Debug, Clone, Default)]
pub struct HostRecord {
    /// Windows the simulator answered "dead" for this host, most recent last.
    pub answered_dead: VecDeque<(SimTime, SimTime)>,
    pub fence_in_flight_until: Option<SimTime>,
    /// Start of the oldest dead window of the power-off in flight: the
    /// heartbeat must not advance from there until the off lands.
    pub off_evidence_from: Option<SimTime>,
    /// When that power-off was issued.
    pub off_issued_at: Option<SimTime>,
    /// End of the newest dead window of that power-off (the core's last
    /// observation of the host).
    pub off_evidence_to: Option<SimTime>,
    /// When a fence last turned this host's chassis off.
    pub last_fence_landed: Option<SimTime>,
    /// When this host last turned unhealthy by a fault.
    pub unhealthy_since: Option<SimTime>,
    /// Dead windows of the last fence: a fence on the same evidence is a
    /// retry within one recovery, not a second fence of the host.
    pub last_fence_evidence: Option<Vec<(SimTime, SimTime)>>,
    /// Last instant something legitimate held fencing of this dead host back.
    pub death_blocked_at: Option<SimTime>,
    pub death_reported: bool,
    /// The core declared the host FAILED (operator attention) after fencing
    /// had been legitimately blocked during this death.
    pub handed_to_operator: bool,
}

/// Ground-truth bookkeeping and the checks run at every fence and every step.
pub struct InvariantChecker {
    pub bounds: Bounds,
    pub hosts: Vec<HostRecord>,
    /// Every fencing operation ever issued: (time, cluster); survives
    /// coordinator restarts because it is the world's record, not the core's.
    fence_log: VecDeque<(SimTime, ClusterIdx)>,
    /// See [`InvariantChecker::note_uncertain_fence`].
    uncertain_log: VecDeque<(SimTime, ClusterIdx)>,
    /// When the cap was reached, fencing stays stopped for a full window
    /// (or until an operator acknowledges, which the simulator never does).
    cap_stop_until_global: Option<SimTime>,
    cap_stop_until_cluster: std::collections::HashMap<ClusterIdx, SimTime>,
    /// When each host last turned unhealthy (ground truth): the core's
    /// mass-failure guard counts hosts turning SUSPECT within its window;
    /// liveness is excused when enough of a cluster turned unhealthy
    /// recently enough for the guard to be tripped, judged on these, never
    /// on the core's announcement.
    pub violations: Vec<Violation>,
    /// Power-offs that landed on a host which resumed writing after the
    /// core's last observation of it (see `on_fence_landed`).
    pub fence_races: u64,
    /// Fences of a host in maintenance the API had not reported yet.
    pub stale_inventory_fences: u64,
    /// When the current coordinator process started (ground truth).
    coordinator_started_at: Option<SimTime>,
}

/// What the engine knows about the coordinator that bears on whether a
/// fence could have been expected.
#[derive(Debug, Clone, Copy)]
pub struct CoordinatorView {
    pub up: bool,
    pub started_at: SimTime,
}

impl InvariantChecker {
    pub fn new(bounds: Bounds, hosts: usize) -> Self {
        InvariantChecker {
            bounds,
            hosts: vec![HostRecord::default(); hosts],
            fence_log: VecDeque::new(),
            uncertain_log: VecDeque::new(),
            cap_stop_until_global: None,
            cap_stop_until_cluster: std::collections::HashMap::new(),

            violations: Vec::new(),
            fence_races: 0,
            stale_inventory_fences: 0,
            coordinator_started_at: None,
        }
    }

    fn violate(
        &mut self,
        now: SimTime,
        invariant: Invariant,
        host: Option<HostIdx>,
        detail: String,
    ) {
        self.violations.push(Violation {
            at_s: now.as_secs_f64(),
            invariant,
            host: host.map(|h| format!("h{h}")),
            detail,
        });
    }

    pub fn fences_in_window(&self, now: SimTime, cluster: Option<ClusterIdx>) -> usize {
        let from = now.0.saturating_sub(self.bounds.fence_window_ms);
        self.fence_log
            .iter()
            .filter(|(t, c)| t.0 > from && cluster.map_or(true, |cl| cl == *c))
            .count()
    }

    /// Records an activity window the simulator answered "dead" for `target`.
    pub fn record_dead_answer(&mut self, target: HostIdx, from: SimTime, to: SimTime) {
        let q = &mut self.hosts[target].answered_dead;
        if q.len() == ANSWERED_HISTORY {
            q.pop_front();
        }
        q.push_back((from, to));
    }

    /// Judges a fencing power operation (cycle/off/reset) at the instant the
    /// core asks for it; returns the violations it caused (already recorded).
    pub fn on_fence_issued(
        &mut self,
        now: SimTime,
        world: &World,
        host: HostIdx,
        in_flight_until: SimTime,
        evidence: Option<&FenceEvidence>,
    ) -> usize {
        let before = self.violations.len();
        let cluster = world.hosts[host].cluster;
        let within_lease = world
            .quorum_lost_at
            .is_some_and(|t| now.since(t) < self.bounds.quorum_lease_ms);
        if !world.quorate && !within_lease {
            self.violate(
                now,
                Invariant::FenceWithoutQuorum,
                Some(host),
                format!(
                    "fence issued while the coordinator was not quorate (lost at {:?}, lease {} s)",
                    world.quorum_lost_at.map(|t| t.to_string()),
                    self.bounds.quorum_lease_ms / 1000
                ),
            );
        }
        let h = &world.hosts[host];
        if h.maintenance && h.api_maintenance {
            self.violate(
                now,
                Invariant::FenceInMaintenance,
                Some(host),
                "fence of a host in maintenance, as the API reported".into(),
            );
        } else if h.maintenance {
            // The inventory was stale: the core could not know.
            self.stale_inventory_fences += 1;
        }
        if let Some(started) = self.coordinator_started_at {
            if now.since(started) < self.bounds.startup_grace_ms {
                self.violate(
                    now,
                    Invariant::FenceDuringStartupGrace,
                    Some(host),
                    format!(
                        "fence {} s after the coordinator started (grace {} s)",
                        now.since(started) / 1000,
                        self.bounds.startup_grace_ms / 1000
                    ),
                );
            }
        }
        let in_cluster = self.fences_in_window(now, Some(cluster));
        let global = self.fences_in_window(now, None);
        if in_cluster >= self.bounds.fence_cap_per_cluster {
            self.violate(
                now,
                Invariant::RateCapExceeded,
                Some(host),
                format!(
                    "fence #{} in cluster c{cluster} within {} s (cap {})",
                    in_cluster + 1,
                    self.bounds.fence_window_ms / 1000,
                    self.bounds.fence_cap_per_cluster
                ),
            );
        }
        if global >= self.bounds.fence_cap_global {
            self.violate(
                now,
                Invariant::RateCapExceeded,
                Some(host),
                format!(
                    "fence #{} globally within {} s (cap {})",
                    global + 1,
                    self.bounds.fence_window_ms / 1000,
                    self.bounds.fence_cap_global
                ),
            );
        }
        match evidence {
            None => {
                self.violate(
                    now,
                    Invariant::FenceWithoutActivityCheck,
                    Some(host),
                    "fence carries no activity evidence".into(),
                );
            }
            Some(ev) if ev.dead_windows.is_empty() => {
                self.violate(
                    now,
                    Invariant::FenceWithoutActivityCheck,
                    Some(host),
                    "fence evidence has no dead sample".into(),
                );
            }
            Some(ev) => {
                let from = ev
                    .dead_windows
                    .iter()
                    .map(|w| w.0)
                    .min()
                    .expect("non-empty");
                let to = ev
                    .dead_windows
                    .iter()
                    .map(|w| w.1)
                    .max()
                    .expect("non-empty");
                if world.hosts[host]
                    .heartbeat
                    .advanced_between(from, to, world.heartbeat_period_ms)
                {
                    self.violate(now, Invariant::FencedLiveHost, Some(host), format!(
                        "heartbeat advanced during the evidence window {from}..{to} that led to the fence"));
                }
                if ev.alive_samples > 0 {
                    self.violate(
                        now,
                        Invariant::FencedLiveHost,
                        Some(host),
                        format!(
                            "fence evidence contains {} sample(s) that saw the heartbeat advance",
                            ev.alive_samples
                        ),
                    );
                }
                let answered = &self.hosts[host].answered_dead;
                let unknown: Vec<_> = ev
                    .dead_windows
                    .iter()
                    .filter(|w| !answered.contains(w))
                    .collect();
                if !unknown.is_empty() {
                    self.violate(now, Invariant::FenceWithoutActivityCheck, Some(host), format!(
                        "fence evidence cites {} dead window(s) the simulator never answered dead (first {}..{})",
                        unknown.len(), unknown[0].0, unknown[0].1));
                }
            }
        }
        let (in_flight, last_landed) = {
            let rec = &self.hosts[host];
            (rec.fence_in_flight_until, rec.last_fence_landed)
        };
        if let Some(until) = in_flight {
            if until > now {
                self.violate(
                    now,
                    Invariant::ConcurrentRecovery,
                    Some(host),
                    format!("a power operation on this host is still in flight until {until}"),
                );
            }
        }
        // A fence decided on evidence gathered before the previous fence of
        // this host took effect repeats a decision already carried out;
        // unless it is a retry of that very fence (same evidence: the BMC
        // did not confirm the off), which the heartbeat check at landing
        // still judges.
        let windows = evidence.map(|e| e.dead_windows.clone());
        let retry = windows.is_some() && windows == self.hosts[host].last_fence_evidence;
        self.hosts[host].last_fence_evidence = windows;
        let newest_evidence = evidence.and_then(|e| e.dead_windows.iter().map(|w| w.1).max());
        if let (Some(landed), Some(newest), false) = (last_landed, newest_evidence, retry) {
            if newest <= landed {
                self.violate(now, Invariant::DuplicateFence, Some(host), format!(
                    "evidence ends at {newest}, before the previous fence of this host took effect at {landed}"));
            }
        }
        let h = &world.hosts[host];
        if h.chassis == crate::world::Chassis::Off && last_landed.is_some() && !h.feed_cut && !retry
        {
            self.violate(
                now,
                Invariant::DuplicateFence,
                Some(host),
                "fence of a host whose chassis is still OFF from the previous fence".into(),
            );
        }
        let cl = &world.clusters[cluster];
        let window = self.bounds.mass_failure_window_ms;
        let failed_recently = cl
            .hosts
            .clone()
            .filter(|&x| {
                let t = self.hosts[x].unhealthy_since;
                t.is_some_and(|t| {
                    let age = now.since(t);
                    age >= OBSERVATION_DELAY_MS && age < window
                })
            })
            .count();
        if cl.hosts.len() >= 3
            && failed_recently * 100 > cl.hosts.len() * self.bounds.mass_failure_share_pct as usize
        {
            self.violate(
                now,
                Invariant::FenceDuringMassFailure,
                Some(host),
                format!(
                    "{failed_recently} of {} hosts of c{cluster} turned unhealthy within the last {} s",
                    cl.hosts.len(),
                    window / 1000
                ),
            );
        }
        // An outage that began after the core's last chance to see it (a
        // health round) is a race, not a decision against the rules.
        let outage_seen = world.clusters[cluster]
            .outage_since
            .is_some_and(|t| now.since(t) >= OBSERVATION_DELAY_MS);
        if world.partition_outage(cluster) && outage_seen {
            self.violate(
                now,
                Invariant::FenceDuringPartitionOutage,
                Some(host),
                format!("cluster c{cluster} has a whole-partition storage or network outage"),
            );
        }
        self.hosts[host].fence_in_flight_until = Some(in_flight_until);
        self.hosts[host].off_evidence_from =
            evidence.and_then(|e| e.dead_windows.iter().map(|w| w.0).min());
        self.hosts[host].off_issued_at = Some(now);
        self.hosts[host].off_evidence_to =
            evidence.and_then(|e| e.dead_windows.iter().map(|w| w.1).max());
        self.fence_log.push_back((now, cluster));
        let stop = now.plus_ms(self.bounds.fence_window_ms);
        // The stop (a liveness excuse) also counts fences the core may have counted.
        let in_cluster = in_cluster + self.uncertain_in_window(now, Some(cluster));
        let global = global + self.uncertain_in_window(now, None);
        if in_cluster + 1 >= self.bounds.fence_cap_per_cluster {
            self.cap_stop_until_cluster.insert(cluster, stop);
        }
        if global + 1 >= self.bounds.fence_cap_global {
            self.cap_stop_until_global = Some(stop);
        }
        // Keep the log bounded: nothing older than the window can matter.
        let from = now.0.saturating_sub(self.bounds.fence_window_ms);
        while self.fence_log.front().is_some_and(|(t, _)| t.0 <= from) {
            self.fence_log.pop_front();
        }
        self.violations.len() - before
    }

    /// The core decided a fence but crashed while journaling it, so it was
    /// never sent; the core may already have journaled that this fence
    /// reaches the rate cap, which then stops fencing for a window. Only the
    /// stop is mirrored; the fence is not counted (it never happened).
    pub fn note_unsent_fence(&mut self, now: SimTime, world: &World, host: HostIdx) {
        let cluster = world.hosts[host].cluster;
        let stop = now.plus_ms(self.bounds.fence_window_ms);
        let in_cluster = self.fences_in_window(now, Some(cluster))
            + self.uncertain_in_window(now, Some(cluster));
        let global = self.fences_in_window(now, None) + self.uncertain_in_window(now, None);
        if in_cluster + 1 >= self.bounds.fence_cap_per_cluster {
            self.cap_stop_until_cluster.insert(cluster, stop);
        }
        if global + 1 >= self.bounds.fence_cap_global {
            self.cap_stop_until_global = Some(stop);
        }
    }

    /// Fences the core journaled but that never left, whose records may or may not have
    /// survived in the journal a successor recovers (`--coordinators`: held behind a record not
    /// yet durable when the instance died): they may count against the successor's rate cap,
    /// so they excuse the cap's stop (liveness), but the rate-cap invariant counts only fences
    /// that were issued.
    pub fn note_uncertain_fence(&mut self, now: SimTime, world: &World, host: HostIdx) {
        self.note_unsent_fence(now, world, host);
        self.uncertain_log
            .push_back((now, world.hosts[host].cluster));
    }

    fn uncertain_in_window(&self, now: SimTime, cluster: Option<ClusterIdx>) -> usize {
        let from = now.0.saturating_sub(self.bounds.fence_window_ms);
        self.uncertain_log
            .iter()
            .filter(|(t, c)| t.0 > from && cluster.map_or(true, |cl| cl == *c))
            .count()
    }

    /// The power driver refused a fence the core had issued (`--coordinators`: the instance
    /// failed `authorize_power`). Nothing reached the BMC, but the core counted it against
    /// the rate cap when it issued it; the checker counts it the same way.
    pub fn note_refused_fence(&mut self, now: SimTime, world: &World, host: HostIdx) {
        self.note_unsent_fence(now, world, host);
        self.fence_log.push_back((now, world.hosts[host].cluster));
    }

    /// A judged power-off turned the chassis off: the heartbeat must not
    /// have advanced from the start of its evidence until now.
    pub fn on_fence_landed(&mut self, host: HostIdx, at: SimTime, world: &World) {
        self.hosts[host].last_fence_landed = Some(at);
        if let Some(from) = self.hosts[host].off_evidence_from.take() {
            let hb = &world.hosts[host].heartbeat;
            let period = world.heartbeat_period_ms;
            let issued = self.hosts[host].off_issued_at.unwrap_or(at);
            let last_seen = self.hosts[host].off_evidence_to.unwrap_or(from);
            // A host that resumes after the core's last look at it and
            // before the off lands is a race no coordinator can win, as
            // long as the core acted at once: it issued the off within one
            // power operation of its last observation (the power refresh
            // in between), and the off itself is bounded by the same time.
            // Issued later (a retry, a deferred decision), the evidence was
            // stale: that is judged.
            let acted_at_once = issued.since(last_seen) <= self.bounds.power_op_timeout_ms;
            if acted_at_once
                && hb.advanced_between(last_seen, at, period)
                && !hb.advanced_between(from, last_seen, period)
            {
                self.fence_races += 1;
            } else if hb.advanced_between(from, at, period) {
                let before_issue = hb.advanced_between(from, issued, period);
                self.violate(
                    at,
                    Invariant::HeartbeatAdvancedBeforeOffLanded,
                    Some(host),
                    format!(
                        "heartbeat advanced between the evidence start {from} and the power-off landing at {at} ({} the off was issued at {issued})",
                        if before_issue { "before" } else { "only after" }
                    ),
                );
            }
        }
    }

    /// Host `host` turned unhealthy (stopped answering health checks
    /// healthily) at `now`, by a fault.
    pub fn note_unhealthy(&mut self, host: HostIdx, now: SimTime) {
        self.hosts[host].unhealthy_since = Some(now);
    }

    /// Could the mass-failure guard of cluster `c` be tripped now, by
    /// ground truth? More than the guard's share of the cluster turned
    /// unhealthy within a span the guard may still remember: its window
    /// (SUSPECT comes up to a health interval plus timeout after the
    /// fault), plus the full window it waits before clearing.
    fn guard_may_be_tripped(&self, now: SimTime, world: &World, c: ClusterIdx) -> bool {
        let cl = &world.clusters[c];
        let size = cl.hosts.len();
        let span = 3 * self.bounds.mass_failure_window_ms + 30_000;
        let recent = cl
            .hosts
            .clone()
            .filter(|&h| {
                self.hosts[h]
                    .unhealthy_since
                    .is_some_and(|t| now.since(t) <= span)
            })
            .count();
        size >= 3 && recent * 100 > size * self.bounds.mass_failure_share_pct as usize
    }

    /// The core declared the host FAILED. That ends the recovery-bound clock
    /// only if something legitimately blocked fencing during this death
    /// (an unreachable BMC, say); giving up on a fenceable host does not.
    pub fn on_failed(&mut self, host: HostIdx) {
        let rec = &mut self.hosts[host];
        if rec.death_blocked_at.is_some() {
            rec.handed_to_operator = true;
        }
    }

    /// Fencing of this dead host is legitimately slower from `at` on (it was
    /// already SUSPECT, in activity-check backoff, when it died).
    pub fn hold_back_death(&mut self, host: HostIdx, at: SimTime) {
        self.hosts[host].death_blocked_at = Some(at);
    }

    pub fn on_fence_finished(&mut self, host: HostIdx) {
        self.hosts[host].fence_in_flight_until = None;
    }

    /// A host died: starts a recovery clock for it.
    pub fn on_death(&mut self, host: HostIdx) {
        let rec = &mut self.hosts[host];
        rec.death_blocked_at = None;
        rec.handed_to_operator = false;
        rec.death_reported = false;
    }

    /// Whether something legitimate holds fencing of `host` back right now.
    pub fn fencing_blocked(
        &self,
        now: SimTime,
        world: &World,
        host: HostIdx,
        coord: CoordinatorView,
    ) -> bool {
        let h = &world.hosts[host];
        let c = h.cluster;
        let cl = &world.clusters[c];
        let size = cl.hosts.len().max(1);
        let unhealthy = cl
            .hosts
            .clone()
            .filter(|&x| !world.agent_healthy(x) || !world.agent_reachable(x))
            .count();
        let healthy_peers = cl
            .hosts
            .clone()
            .filter(|&x| {
                // A peer counts toward an ACTIVE partition only if it could be
                // AVAILABLE: healthy, reachable, and its power state readable.
                x != host
                    && !world.hosts[x].maintenance
                    && !world.hosts[x].api_maintenance
                    && world.agent_healthy(x)
                    && world.agent_reachable(x)
                    && world.bmc_answers(x)
                    && world.hosts[x].bmc.extra_latency_ms == 0
            })
            .count();
        !world.quorate
            || !world.quorum_provider_alive
            || !coord.up
            || now.since(coord.started_at)
                < self.bounds.startup_grace_ms + self.bounds.recovery_bound_ms
            || !world.bmc_answers(host)
            || h.bmc.extra_latency_ms > 0
            || world.partition_outage(c)
            || unhealthy * 100 >= size * self.bounds.mass_failure_share_pct as usize
            || healthy_peers < 2
            || self
                .cap_stop_until_cluster
                .get(&c)
                .is_some_and(|&t| now < t)
            || self.cap_stop_until_global.is_some_and(|t| now < t)
            || self.guard_may_be_tripped(now, world, c)
            // Faults that make a safe decision impossible for a while:
            // checks cannot tell, a checker lies, the BMC's reads lie.
            || cl.storage_slow
            || cl.hosts.clone().any(|x| world.hosts[x].checker_wrong_pct > 0)
            || h.bmc.lies_off
            || h.bmc.stale.is_some()
            || h.maintenance
            || h.api_maintenance
    }

    /// Per-step liveness check for dead hosts (only hosts listed in `dead`).
    pub fn check_dead_hosts(
        &mut self,
        now: SimTime,
        world: &World,
        dead: &[HostIdx],
        coord: CoordinatorView,
    ) {
        for &h in dead {
            let Some(since) = world.hosts[h].dead_since else {
                continue;
            };
            if self.fencing_blocked(now, world, h, coord) {
                self.hosts[h].death_blocked_at = Some(now);
                continue;
            }
            let rec = &self.hosts[h];
            if rec.death_reported || rec.handed_to_operator {
                continue;
            }
            let late = match rec.death_blocked_at {
                None => now.since(since) > self.bounds.recovery_bound_ms,
                Some(b) => now.since(b) > self.bounds.recovery_bound_after_block_ms,
            };
            if late {
                let detail = match rec.death_blocked_at {
                    None => format!(
                        "dead since {since}, not fenced within {} s although nothing blocked fencing",
                        self.bounds.recovery_bound_ms / 1000),
                    Some(b) => format!(
                        "dead since {since}, fencing possible again since {b}, not fenced within {} s of that",
                        self.bounds.recovery_bound_after_block_ms / 1000),
                };
                self.hosts[h].death_reported = true;
                self.violate(now, Invariant::RecoveryTooSlow, Some(h), detail);
            }
        }
    }

    pub fn stuck(
        &mut self,
        now: SimTime,
        host: HostIdx,
        state: &str,
        since: SimTime,
        bound_ms: u64,
    ) {
        self.violate(
            now,
            Invariant::StuckInTransientState,
            Some(host),
            format!(
                "in {state} since {since} (longer than {} s)",
                bound_ms / 1000
            ),
        );
    }

    /// A coordinator process started now.
    pub fn coordinator_started(&mut self, now: SimTime) {
        self.coordinator_started_at = Some(now);
    }

    /// A superseded coordinator's power action reached the chassis.
    pub fn superseded_acted(&mut self, now: SimTime, host: HostIdx, epoch: u32, token: u32) {
        self.violate(
            now,
            Invariant::SupersededCoordinatorActed,
            Some(host),
            format!("power action of epoch {epoch} landed after epoch {token} took over"),
        );
    }

    /// A violation of a multi-coordinator invariant (judged by the engine
    /// on the BMCs' ground truth).
    pub fn coordinators_violated(
        &mut self,
        now: SimTime,
        invariant: Invariant,
        host: HostIdx,
        detail: String,
    ) {
        self.violate(now, invariant, Some(host), detail);
    }

    pub fn fence_success_not_confirmed(&mut self, now: SimTime, host: HostIdx, detail: String) {
        self.violate(now, Invariant::FenceSuccessNotConfirmed, Some(host), detail);
    }

    pub fn restart_failed(&mut self, now: SimTime, detail: String) {
        self.violate(now, Invariant::RestartFailed, None, detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{Os, Topology};

    fn bounds() -> Bounds {
        Bounds {
            fence_cap_per_cluster: 3,
            fence_cap_global: 3,
            fence_window_ms: 3_600_000,
            recovery_bound_ms: 120_000,
            recovery_bound_after_block_ms: 370_000,
            operation_state_bound_ms: 900_000,
            mass_failure_share_pct: 50,
            startup_grace_ms: 60_000,
            mass_failure_window_ms: 60_000,
            power_op_timeout_ms: 10_000,
            quorum_lease_ms: 30_000,
        }
    }

    fn world() -> World {
        let mut w = World::new(&Topology::new(6, 10), 5_000);
        for h in 0..6 {
            w.refresh_heartbeat(h, SimTime(0), 0);
        }
        w
    }

    fn dead_evidence(from: u64, to: u64) -> FenceEvidence {
        FenceEvidence {
            dead_windows: vec![(SimTime(from), SimTime(to))],
            alive_samples: 0,
        }
    }

    fn kinds(c: &InvariantChecker) -> Vec<Invariant> {
        c.violations.iter().map(|v| v.invariant).collect()
    }

    /// A fence on a host that stopped writing, with evidence the checker
    /// itself answered: no violation.
    fn clean_fence(c: &mut InvariantChecker, w: &mut World, h: HostIdx, at: u64) {
        w.hosts[h].os = Os::Crashed;
        w.refresh_heartbeat(h, SimTime(at - 30_000), 0);
        c.record_dead_answer(h, SimTime(at - 20_000), SimTime(at - 12_000));
        c.on_fence_issued(
            SimTime(at),
            w,
            h,
            SimTime(at + 1_000),
            Some(&dead_evidence(at - 20_000, at - 12_000)),
        );
    }

    #[test]
    fn a_justified_fence_is_clean() {
        let mut c = InvariantChecker::new(bounds(), 6);
        let mut w = world();
        clean_fence(&mut c, &mut w, 1, 100_000);
        assert!(c.violations.is_empty(), "{:?}", c.violations);
    }

    #[test]
    fn fence_without_quorum_is_caught() {
        let mut c = InvariantChecker::new(bounds(), 6);
        let mut w = world();
        w.quorate = false;
        clean_fence(&mut c, &mut w, 1, 100_000);
        assert_eq!(kinds(&c), vec![Invariant::FenceWithoutQuorum]);
    }

    #[test]
    fn fourth_fence_in_the_window_is_caught_and_the_window_slides() {
        let mut c = InvariantChecker::new(bounds(), 6);
        let mut w = world();
        for (i, h) in [1, 2, 3].into_iter().enumerate() {
            clean_fence(&mut c, &mut w, h, 100_000 + i as u64 * 60_000);
        }
        assert!(c.violations.is_empty());
        clean_fence(&mut c, &mut w, 4, 400_000);
        assert!(kinds(&c).contains(&Invariant::RateCapExceeded));
        let mut c2 = InvariantChecker::new(bounds(), 6);
        let mut w2 = world();
        for (i, h) in [1, 2, 3].into_iter().enumerate() {
            clean_fence(&mut c2, &mut w2, h, 100_000 + i as u64 * 60_000);
        }
        clean_fence(&mut c2, &mut w2, 4, 100_000 + 3_600_001);
        assert!(
            !kinds(&c2).contains(&Invariant::RateCapExceeded),
            "{:?}",
            c2.violations
        );
    }

    #[test]
    fn fencing_a_host_whose_heartbeat_advanced_is_caught() {
        let mut c = InvariantChecker::new(bounds(), 6);
        let w = world();
        // h1 keeps writing; the core claims it was dead over 60..80 s.
        c.record_dead_answer(1, SimTime(60_000), SimTime(80_000));
        c.on_fence_issued(
            SimTime(90_000),
            &w,
            1,
            SimTime(91_000),
            Some(&dead_evidence(60_000, 80_000)),
        );
        assert!(kinds(&c).contains(&Invariant::FencedLiveHost));
    }

    #[test]
    fn evidence_the_simulator_never_answered_is_caught() {
        let mut c = InvariantChecker::new(bounds(), 6);
        let mut w = world();
        w.hosts[1].os = Os::Crashed;
        w.refresh_heartbeat(1, SimTime(10_000), 0);
        c.on_fence_issued(
            SimTime(90_000),
            &w,
            1,
            SimTime(91_000),
            Some(&dead_evidence(60_000, 80_000)),
        );
        assert_eq!(kinds(&c), vec![Invariant::FenceWithoutActivityCheck]);
        c.on_fence_issued(SimTime(95_000), &w, 2, SimTime(96_000), None);
        assert!(kinds(&c).contains(&Invariant::FenceWithoutActivityCheck));
    }

    #[test]
    fn concurrent_and_duplicate_fences_are_caught() {
        let mut c = InvariantChecker::new(bounds(), 6);
        let mut w = world();
        clean_fence(&mut c, &mut w, 1, 100_000);
        // Second request while the first is still in flight, on old evidence.
        c.on_fence_issued(
            SimTime(100_500),
            &w,
            1,
            SimTime(101_000),
            Some(&dead_evidence(80_000, 88_000)),
        );
        assert!(kinds(&c).contains(&Invariant::ConcurrentRecovery));
        c.on_fence_landed(1, SimTime(101_000), &w);
        c.on_fence_finished(1);
        c.on_fence_issued(
            SimTime(200_000),
            &w,
            1,
            SimTime(201_000),
            Some(&dead_evidence(80_000, 88_000)),
        );
        assert!(
            !kinds(&c).contains(&Invariant::DuplicateFence),
            "a retry on the same evidence (BMC did not confirm the off) is not a second fence"
        );
        c.on_fence_finished(1);
        c.on_fence_issued(
            SimTime(300_000),
            &w,
            1,
            SimTime(301_000),
            Some(&dead_evidence(79_000, 87_000)),
        );
        assert!(kinds(&c).contains(&Invariant::DuplicateFence));
    }

    #[test]
    fn fence_during_a_whole_cluster_outage_is_caught() {
        let mut c = InvariantChecker::new(bounds(), 6);
        let mut w = world();
        w.clusters[0].nfs_ok = false;
        // Begun just now: the core could not have seen it (a race).
        w.clusters[0].outage_since = Some(SimTime(95_000));
        clean_fence(&mut c, &mut w, 1, 100_000);
        assert!(!kinds(&c).contains(&Invariant::FenceDuringPartitionOutage));
        let mut c = InvariantChecker::new(bounds(), 6);
        let mut w = world();
        w.clusters[0].nfs_ok = false;
        w.clusters[0].outage_since = Some(SimTime(60_000));
        clean_fence(&mut c, &mut w, 1, 100_000);
        assert!(kinds(&c).contains(&Invariant::FenceDuringPartitionOutage));
        let mut c = InvariantChecker::new(bounds(), 6);
        let mut w = world();
        w.clusters[0].partitioned = true;
        w.clusters[0].outage_since = Some(SimTime(60_000));
        clean_fence(&mut c, &mut w, 1, 100_000);
        assert!(kinds(&c).contains(&Invariant::FenceDuringPartitionOutage));
    }

    #[test]
    fn a_dead_host_left_unfenced_is_caught_unless_something_blocks() {
        let view = CoordinatorView {
            up: true,
            started_at: SimTime(0),
        };
        let mut c = InvariantChecker::new(bounds(), 6);
        let mut w = world();
        w.hosts[1].os = Os::Crashed;
        w.hosts[1].agent_up = false;
        w.hosts[1].dead_since = Some(SimTime(300_000));
        c.on_death(1);
        c.check_dead_hosts(SimTime(400_000), &w, &[1], view);
        assert!(c.violations.is_empty());
        c.check_dead_hosts(SimTime(421_000), &w, &[1], view);
        assert_eq!(kinds(&c), vec![Invariant::RecoveryTooSlow]);

        // Same death with the BMC unreachable: blocked, no violation.
        let mut c = InvariantChecker::new(bounds(), 6);
        w.hosts[1].bmc.reachable = false;
        c.on_death(1);
        c.check_dead_hosts(SimTime(421_000), &w, &[1], view);
        c.check_dead_hosts(SimTime(900_000), &w, &[1], view);
        assert!(c.violations.is_empty());
        // BMC back: the after-block bound applies from then on.
        w.hosts[1].bmc.reachable = true;
        c.check_dead_hosts(SimTime(1_200_000), &w, &[1], view);
        assert!(c.violations.is_empty());
        c.check_dead_hosts(SimTime(1_270_001), &w, &[1], view);
        assert_eq!(kinds(&c), vec![Invariant::RecoveryTooSlow]);
    }

    #[test]
    fn a_heartbeat_advancing_before_the_off_lands_is_caught() {
        let mut c = InvariantChecker::new(bounds(), 6);
        let mut w = world();
        clean_fence(&mut c, &mut w, 1, 100_000);
        // Lands while the host is still silent: clean.
        c.on_fence_landed(1, SimTime(100_900), &w);
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        c.on_fence_finished(1);
        // Next fence: the host starts writing again after the evidence and
        // before the off lands.
        let mut c = InvariantChecker::new(bounds(), 6);
        clean_fence(&mut c, &mut w, 2, 200_000);
        w.hosts[2].os = Os::Running;
        w.refresh_heartbeat(2, SimTime(200_100), 0);
        c.on_fence_landed(2, SimTime(206_000), &w);
        // The evidence ended 12 s before the off was issued: stale, judged.
        assert_eq!(kinds(&c), vec![Invariant::HeartbeatAdvancedBeforeOffLanded]);
        // Issued 0.5 s after the last dead sample, the host resuming in
        // between is a race: counted, not a violation.
        let mut c = InvariantChecker::new(bounds(), 6);
        let mut w = world();
        w.hosts[3].os = Os::Crashed;
        w.refresh_heartbeat(3, SimTime(260_000), 0);
        c.record_dead_answer(3, SimTime(291_500), SimTime(299_500));
        c.on_fence_issued(
            SimTime(300_000),
            &w,
            3,
            SimTime(301_000),
            Some(&dead_evidence(291_500, 299_500)),
        );
        w.hosts[3].os = Os::Running;
        w.refresh_heartbeat(3, SimTime(300_100), 0);
        c.on_fence_landed(3, SimTime(300_800), &w);
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        assert_eq!(c.fence_races, 1);
    }
}
