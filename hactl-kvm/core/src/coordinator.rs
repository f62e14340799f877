//! The coordinator: owns the state of every host and partition, turns
//! inputs into FSM triggers, consults the safety gates and emits actions.

use crate::config::{Config, ConfigError};
use crate::event::{
    AttemptFailure, Event, FailedReason, GateBlock, InactiveReason, OffConfirmation,
    RateCapClearedBy, RoundOutcome,
};
use crate::fsm::{
    self, HaContext, HaState, HaTrigger, Outcome, PartitionState, PartitionTrigger, PowerState,
    RecoveryPhase, RecoveryStep,
};
use crate::gates::{
    ActivityEvidence, Backoff, ConcurrencyLimit, FenceRateCap, GuardChange, MassFailureGuard,
    QuorumGate, RetryBudget, StartupGrace,
};
use crate::ids::{ClusterId, FenceId, HostId, Millis, OpId, OpRef, PodId, StateVersion, ZoneId};
use crate::inventory::{Cluster, Host, Inventory, InventoryChange, Pod, ResourceState, Zone};
use crate::io::{
    Action, ActivityVerdict, CannotTellReason, Evidence, EvidenceSample, HealthOutcome, Input,
    OperatorCommand, PowerActionOutcome, PowerOffReason, PowerOnReason, PowerReading, RateScope,
    UserPowerOp, Window,
};
use crate::record::{FenceOutcome, Record};
use crate::timers::{IdIndex, TimerQueue};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use thiserror::Error;

/// Why a coordinator could not be rebuilt from journal records.
#[derive(Debug, Error)]
pub enum RecoverError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The journal holds more incarnations than an op id can encode.
    #[error("journal epoch {0} is exhausted; compact the journal")]
    EpochExhausted(u32),
}

/// A read-only view of one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostView {
    /// Host.
    pub id: HostId,
    /// Cluster.
    pub cluster: ClusterId,
    /// HA state.
    pub ha: HaState,
    /// HA state version.
    pub version: StateVersion,
    /// Power state.
    pub power: PowerState,
    /// Result of the last health check, if any.
    pub healthy: Option<bool>,
    /// The CloudStack `hostha.hastate` equivalent.
    pub cloudstack_hastate: String,
    /// A recovery flow is running for this host.
    pub recovering: bool,
    /// The power-on half of a recovery power cycle is still owed.
    pub power_on_owed: bool,
    /// HA compute offerings may be allocated here.
    pub allows_ha_allocation: bool,
    /// Non-HA compute offerings may be allocated here.
    pub allows_non_ha_allocation: bool,
}

/// A read-only view of one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionView {
    /// Cluster.
    pub id: ClusterId,
    /// State.
    pub state: PartitionState,
    /// Why it is not ACTIVE.
    pub reasons: Vec<InactiveReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wake {
    RateCap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PowerOpKind {
    Poll,
    Refresh,
    Off(FenceId),
    ConfirmOff(FenceId),
    On,
    ReadAfterOn,
    User(UserPowerOp),
    ReadAfterUser,
}

#[derive(Debug, Clone, Copy)]
struct PendingOp {
    /// Part of a cluster-wide round: its timeout is handled by the
    /// cluster's timer, not the host's.
    in_round: bool,
    id: OpId,
    version: StateVersion,
    deadline: Millis,
    started: Millis,
}

#[derive(Debug, Clone, Copy)]
struct PendingPower {
    op: PendingOp,
    kind: PowerOpKind,
}

#[derive(Debug, Clone)]
struct Round {
    evidence: ActivityEvidence,
    op: Option<(PendingOp, HostId)>,
}

#[derive(Debug, Clone)]
struct Recovery {
    budget: RetryBudget,
    evidence: Evidence,
    phase: RecoveryPhase,
    next_step_at: Millis,
    fence: Option<FenceId>,
    last_failure: Option<AttemptFailure>,
    /// The next refresh is the second read confirming an OFF chassis, not
    /// a new attempt (it spends no attempt of the budget).
    reread_off: bool,
}

impl Recovery {
    fn committed(&self) -> bool {
        self.phase.committed()
    }

    /// Applies a step of the recovery phase machine (`fsm::recovery_transition`).
    fn step(&mut self, step: RecoveryStep) {
        match fsm::recovery_transition(self.phase, step) {
            Outcome::Goto(p) => self.phase = p,
            Outcome::Stay => {}
            Outcome::Ignored => debug_assert!(false, "{step:?} in {:?}", self.phase),
        }
    }
}

#[derive(Debug, Clone)]
struct HostEntry {
    host: Host,
    removed: bool,
    cluster: usize,
    ha: HaState,
    version: u64,
    power: PowerState,
    healthy: Option<bool>,
    quiet_until: Millis,
    activity_seen: bool,
    failed_reason: FailedReason,
    health_op: Option<PendingOp>,
    next_health_at: Millis,
    power_op: Option<PendingPower>,
    next_power_poll_at: Millis,
    /// Boxed, like `recovery`: only failing hosts have one, and keeping
    /// them out of line keeps the entry every round touches small.
    round: Option<Box<Round>>,
    next_round_at: Millis,
    no_vms_reported: bool,
    backoff: Backoff,
    recovery: Option<Box<Recovery>>,
    power_on_owed: bool,
    next_power_on_at: Millis,
    /// When this host's last fence was confirmed OFF (derived from the
    /// journaled `FenceResolved` records): the re-fence hold-off measures
    /// from it.
    last_confirmed_fence_at: Option<Millis>,
    user_power: Option<UserPowerOp>,
    /// The first of consecutive OFF readings not caused by our own
    /// power-off (cleared by an ON reading or a passed health check).
    first_off_read_at: Option<Millis>,
    dirty: bool,
}

#[derive(Debug, Clone)]
struct ClusterEntry {
    cluster: Cluster,
    removed: bool,
    hosts: Vec<usize>,
    state: PartitionState,
    reasons: Vec<InactiveReason>,
    guard: MassFailureGuard,
    checker_cursor: usize,
    /// Health checks of all hosts run in one round per interval, so the
    /// coordinator keeps one timer per cluster, not two per host.
    next_health_at: Millis,
    health_deadline: Option<Millis>,
    next_poll_at: Millis,
    poll_deadline: Option<Millis>,
    dirty: bool,
}

#[derive(Debug, Clone, Default)]
struct Restored {
    version: u64,
    state: Option<HaState>,
    open_fence: Option<FenceId>,
    power_on_owed: bool,
    last_confirmed_fence_at: Option<Millis>,
}

/// A safety gate that a `checker-self-test` build can break, to prove that
/// the simulator's invariant checker catches a core without it. No release
/// build can break any (the setter does not exist there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelfTestGate {
    /// Fence without quorum.
    Quorum,
    /// Ignore the fence-rate cap.
    RateCap,
    /// Conclude "dead" whatever the activity samples say.
    Evidence,
    /// Ignore a tripped mass-failure guard.
    MassFailure,
    /// Fence during the start-up grace.
    StartupGrace,
}

/// The HA decision core. See the crate documentation for the protocol.
#[derive(Debug, Clone)]
pub struct Coordinator {
    cfg: Config,
    epoch: u32,
    seq: u64,
    fence_seq: u64,
    last_now: Millis,
    quorum: QuorumGate,
    grace: StartupGrace,
    rate: FenceRateCap,
    activity_slots: ConcurrencyLimit,
    recovery_slots: ConcurrencyLimit,
    zones: HashMap<ZoneId, Zone>,
    pods: HashMap<PodId, Pod>,
    clusters: Vec<ClusterEntry>,
    cluster_index: HashMap<ClusterId, usize>,
    hosts: Vec<HostEntry>,
    host_index: IdIndex,
    /// One wake-up slot per host.
    host_timers: TimerQueue,
    /// One wake-up slot per cluster (rounds, mass-failure guard).
    cluster_timers: TimerQueue,
    /// Partition and rate-cap wake-ups (rare).
    timers: BinaryHeap<Reverse<(Millis, Wake)>>,
    rate_scheduled: Option<Millis>,
    restored: HashMap<HostId, Restored>,
    dirty_hosts: Vec<usize>,
    dirty_clusters: Vec<usize>,
    /// Fence and rate-cap records, kept for journal compaction.
    fence_log: Vec<Record>,
    /// Gates broken for the checker's self-test (always empty outside
    /// `checker-self-test` builds).
    broken_gates: Vec<SelfTestGate>,
}

const MAX_EPOCH: u32 = (1 << 24) - 1;
/// Retry delay when a round cannot start for lack of an activity slot.
const SLOT_RETRY_MS: Millis = 1_000;

impl Coordinator {
    /// A fresh coordinator (epoch 1) starting at `now`.
    pub fn new(config: Config, now: Millis) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::build(config, 1, now))
    }

    /// Opens the quorum gate for good: UNSAFE, only so that the simulator's tests can prove that
    /// its invariant checker catches a core fencing without quorum. Not in release builds.
    #[cfg(feature = "checker-self-test")]
    pub fn disable_quorum_gate_for_checker_self_test(&mut self) {
        self.quorum = QuorumGate::disabled_for_checker_self_test();
    }

    fn build(cfg: Config, epoch: u32, now: Millis) -> Self {
        Coordinator {
            quorum: QuorumGate::new(cfg.quorum_lease_ms),
            grace: StartupGrace::new(now, cfg.startup_grace_ms),
            rate: FenceRateCap::new(cfg.fence_rate),
            activity_slots: ConcurrencyLimit::new(cfg.max_concurrent_activity_checks),
            recovery_slots: ConcurrencyLimit::new(cfg.max_concurrent_recoveries),
            cfg,
            epoch,
            seq: 0,
            fence_seq: 0,
            last_now: now,
            zones: HashMap::new(),
            pods: HashMap::new(),
            clusters: Vec::new(),
            cluster_index: HashMap::new(),
            hosts: Vec::new(),
            host_index: IdIndex::default(),
            host_timers: TimerQueue::default(),
            cluster_timers: TimerQueue::default(),
            timers: BinaryHeap::new(),
            rate_scheduled: None,
            restored: HashMap::new(),
            dirty_hosts: Vec::new(),
            dirty_clusters: Vec::new(),
            fence_log: Vec::new(),
            broken_gates: Vec::new(),
        }
    }

    /// Breaks a safety gate: UNSAFE, only so that the simulator's tests can
    /// prove that its invariant checker catches a core without it.
    #[cfg(feature = "checker-self-test")]
    pub fn break_gate_for_checker_self_test(&mut self, gate: SelfTestGate) {
        if gate == SelfTestGate::Quorum {
            self.quorum = QuorumGate::disabled_for_checker_self_test();
        }
        self.broken_gates.push(gate);
    }

    fn gate_broken(&self, gate: SelfTestGate) -> bool {
        !self.broken_gates.is_empty() && self.broken_gates.contains(&gate)
    }

    /// Rebuilds a coordinator from journal records (in journal order). The
    /// new incarnation gets the next epoch, keeps every host's state version
    /// growing, keeps FENCED and FAILED hosts, verifies fences whose outcome
    /// was not recorded with a power read (never by fencing again), and
    /// counts every journaled fence in the rate cap. Records stamped later
    /// than `now` (the clock stepped back) count as if issued at `now`.
    ///
    /// The returned startup actions ([`Action::Persist`] of the new epoch
    /// and the start event) must be carried out like any other batch.
    pub fn recover<I>(
        config: Config,
        records: I,
        now: Millis,
    ) -> Result<(Self, Vec<Action>), RecoverError>
    where
        I: IntoIterator<Item = Record>,
    {
        config.validate()?;
        let mut max_epoch = 0u32;
        let mut count = 0u64;
        let mut restored: HashMap<HostId, Restored> = HashMap::new();
        let mut open: BTreeMap<FenceId, HostId> = BTreeMap::new();
        let mut rate = FenceRateCap::new(config.fence_rate);
        let mut fence_log = Vec::new();
        for rec in records {
            count += 1;
            let at = rec.at().min(now);
            if matches!(
                rec,
                Record::FenceIssued { .. }
                    | Record::FenceResolved { .. }
                    | Record::RateCapTripped { .. }
                    | Record::RateCapAcknowledged { .. }
            ) {
                fence_log.push(rec.clone());
            }
            match rec {
                Record::Started { epoch, .. } => max_epoch = max_epoch.max(epoch),
                Record::HaTransition {
                    host, to, version, ..
                } => {
                    let r = restored.entry(host).or_default();
                    r.version = r.version.max(version.0);
                    r.state = Some(to);
                }
                Record::PartitionTransition { .. } => {}
                Record::FenceIssued {
                    fence,
                    host,
                    cluster,
                    ..
                } => {
                    rate.record(cluster, at);
                    open.insert(fence, host);
                }
                Record::FenceResolved {
                    fence,
                    host,
                    outcome,
                    ..
                } => {
                    open.remove(&fence);
                    if outcome == FenceOutcome::ConfirmedOff {
                        let last = &mut restored.entry(host).or_default().last_confirmed_fence_at;
                        *last = Some(last.map_or(at, |t| t.max(at)));
                    }
                }
                Record::PowerOnOwed { host, owed, .. } => {
                    restored.entry(host).or_default().power_on_owed = owed;
                }
                Record::RateCapTripped { scope, .. } => rate.restore_trip(scope, at),
                Record::RateCapAcknowledged { scope, .. } => {
                    rate.acknowledge(scope, at);
                }
            }
        }
        let open_fences = open.len() as u32;
        for (fence, host) in open {
            restored.entry(host).or_default().open_fence = Some(fence);
        }
        if max_epoch >= MAX_EPOCH {
            return Err(RecoverError::EpochExhausted(max_epoch));
        }
        let epoch = max_epoch + 1;
        let mut core = Self::build(config, epoch, now);
        core.rate = rate;
        core.restored = restored;
        core.fence_log = fence_log;
        // Stops that ended while we were down end now.
        let mut out = Vec::new();
        for scope in core.rate.expire(now) {
            out.push(Action::Emit(Event::RateCapCleared {
                scope,
                by: RateCapClearedBy::WindowPassed,
            }));
        }
        out.insert(0, Action::Persist(Record::Started { epoch, at: now }));
        out.push(Action::Emit(Event::CoordinatorStarted {
            epoch,
            recovered: true,
            records: count,
            fences_in_window: core.rate.count(RateScope::Global, now),
            open_fences,
        }));
        core.schedule_rate();
        Ok((core, out))
    }

    /// The actions a fresh coordinator must carry out before anything else
    /// (persist its start, announce it).
    pub fn start_actions(&self) -> Vec<Action> {
        vec![
            Action::Persist(Record::Started {
                epoch: self.epoch,
                at: self.last_now,
            }),
            Action::Emit(Event::CoordinatorStarted {
                epoch: self.epoch,
                recovered: false,
                records: 0,
                fences_in_window: 0,
                open_fences: 0,
            }),
        ]
    }

    /// Feeds one input at time `now` and returns the resulting actions.
    pub fn handle(&mut self, now: Millis, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        self.handle_into(now, input, &mut out);
        out
    }

    /// Like [`Coordinator::handle`], appending to `out` (no allocation when
    /// `out` has capacity).
    pub fn handle_into(&mut self, now: Millis, input: Input, out: &mut Vec<Action>) {
        let start = out.len();
        let now = self.observe_clock(now, out);
        self.run_timers(now, out);
        self.apply(now, input, out);
        self.settle(now, out);
        self.note_fence_records(start, out);
    }

    /// Feeds several inputs that arrive at the same time `now` (for example
    /// every result of a cluster's health round), appending to `out`. Same
    /// effect as handling them one by one at `now`, except that partition
    /// and host re-evaluation happen once, after all of them: cheaper, and
    /// the mass-failure guard sees simultaneous failures together.
    pub fn handle_batch<I>(&mut self, now: Millis, inputs: I, out: &mut Vec<Action>)
    where
        I: IntoIterator<Item = Input>,
    {
        let start = out.len();
        let now = self.observe_clock(now, out);
        self.run_timers(now, out);
        for input in inputs {
            self.apply(now, input, out);
        }
        self.settle(now, out);
        self.note_fence_records(start, out);
    }

    fn note_fence_records(&mut self, start: usize, out: &[Action]) {
        for a in &out[start..] {
            if let Action::Persist(
                rec @ (Record::FenceIssued { .. }
                | Record::FenceResolved { .. }
                | Record::RateCapTripped { .. }
                | Record::RateCapAcknowledged { .. }),
            ) = a
            {
                self.fence_log.push(rec.clone());
            }
        }
    }

    /// The next time the core wants a [`Input::Tick`] (or any input).
    pub fn next_timeout(&self) -> Option<Millis> {
        [
            self.timers.peek().map(|Reverse((t, _))| *t),
            self.host_timers.peek().map(|(t, _)| t),
            self.cluster_timers.peek().map(|(t, _)| t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The coordinator epoch (incarnation number).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Last reported quorum.
    pub fn is_quorate(&self) -> bool {
        self.quorum.quorate()
    }

    /// Fences counted by the rate cap in `scope` at `now`.
    pub fn fences_in_window(&self, scope: RateScope, now: Millis) -> u32 {
        self.rate.count(scope, now)
    }

    /// Is fencing stopped by the rate cap in `scope`?
    pub fn rate_cap_tripped(&self, scope: RateScope) -> bool {
        self.rate.is_tripped(scope)
    }

    /// One host.
    pub fn host(&self, id: HostId) -> Option<HostView> {
        let i = self.host_index.get(id.0)?;
        let h = &self.hosts[i];
        (!h.removed).then(|| self.view(h))
    }

    /// Every managed host, in id order.
    pub fn hosts(&self) -> Vec<HostView> {
        let mut v: Vec<_> = self
            .hosts
            .iter()
            .filter(|h| !h.removed)
            .map(|h| self.view(h))
            .collect();
        v.sort_by_key(|h| h.id);
        v
    }

    /// One partition.
    pub fn partition(&self, id: ClusterId) -> Option<PartitionView> {
        let &i = self.cluster_index.get(&id)?;
        let c = &self.clusters[i];
        (!c.removed).then(|| PartitionView {
            id,
            state: c.state,
            reasons: c.reasons.clone(),
        })
    }

    /// How many hosts are in each HA state.
    pub fn state_counts(&self) -> BTreeMap<HaState, u32> {
        let mut m = BTreeMap::new();
        for h in self.hosts.iter().filter(|h| !h.removed) {
            *m.entry(h.ha).or_insert(0) += 1;
        }
        m
    }

    /// Records that rebuild the current state (for journal compaction):
    /// replaying them with [`Coordinator::recover`] gives the same host
    /// states, versions, open fences, owed power-ons and rate-cap state.
    pub fn compact_records(&self, now: Millis) -> Vec<Record> {
        let mut out = vec![Record::Started {
            epoch: self.epoch,
            at: now,
        }];
        let mut hosts: Vec<&HostEntry> = self.hosts.iter().collect();
        hosts.sort_by_key(|h| h.host.id);
        for h in hosts {
            let cluster = self.clusters[h.cluster].cluster.id;
            out.push(Record::HaTransition {
                host: h.host.id,
                cluster,
                from: h.ha,
                to: h.ha,
                version: StateVersion(h.version),
                at: now,
            });
            if h.power_on_owed {
                out.push(Record::PowerOnOwed {
                    host: h.host.id,
                    owed: true,
                    at: now,
                });
            }
        }
        // Fence records: everything the rate cap may still count, every
        // fence still open, and the cap's trips and acknowledgements.
        let horizon = now.saturating_sub(self.cfg.fence_rate.window_ms);
        // Confirmed fences also feed the re-fence hold-off, which may look
        // further back than the rate window.
        let fence_horizon = now.saturating_sub(
            self.cfg
                .fence_rate
                .window_ms
                .max(self.cfg.refence_holdoff_ms),
        );
        let resolved: HashSet<FenceId> = self
            .fence_log
            .iter()
            .filter_map(|r| match r {
                Record::FenceResolved { fence, .. } => Some(*fence),
                _ => None,
            })
            .collect();
        let keep: HashSet<FenceId> = self
            .fence_log
            .iter()
            .filter_map(|r| match r {
                Record::FenceIssued { fence, at, .. }
                    if *at > fence_horizon || !resolved.contains(fence) =>
                {
                    Some(*fence)
                }
                _ => None,
            })
            .collect();
        out.extend(
            self.fence_log
                .iter()
                .filter(|r| match r {
                    Record::FenceIssued { fence, .. } | Record::FenceResolved { fence, .. } => {
                        keep.contains(fence)
                    }
                    other => other.at() > horizon,
                })
                .cloned(),
        );
        out
    }

    // ----- internals -------------------------------------------------------

    fn view(&self, h: &HostEntry) -> HostView {
        HostView {
            id: h.host.id,
            cluster: self.clusters[h.cluster].cluster.id,
            ha: h.ha,
            version: StateVersion(h.version),
            power: h.power,
            healthy: h.healthy,
            cloudstack_hastate: h.ha.cloudstack_hastate(h.activity_seen).to_string(),
            recovering: h.recovery.is_some(),
            power_on_owed: h.power_on_owed,
            allows_ha_allocation: h.ha.allows_ha_allocation(),
            allows_non_ha_allocation: h.ha.allows_non_ha_allocation(),
        }
    }

    fn next_op(&mut self) -> OpId {
        self.seq += 1;
        OpId::new(self.epoch, self.seq)
    }

    fn next_fence(&mut self) -> FenceId {
        self.fence_seq += 1;
        FenceId(OpId::new(self.epoch, self.fence_seq).0)
    }

    fn observe_clock(&mut self, now: Millis, out: &mut Vec<Action>) -> Millis {
        if now < self.last_now {
            // Monotonic time went backwards: hold time still, hold fencing.
            self.grace.rearm(self.last_now, self.cfg.startup_grace_ms);
            out.push(Action::Emit(Event::ClockAnomaly {
                previous: self.last_now,
                now,
                fencing_held_until: self.grace.until(),
            }));
            return self.last_now;
        }
        if let Some(due) = self.next_timeout() {
            if now > due.saturating_add(self.cfg.clock_jump_tolerance_ms) && due >= self.last_now {
                // The clock jumped (or we were not driven for a long time):
                // whatever we believed is stale; no fencing until fresh
                // evidence has been gathered.
                self.grace.rearm(now, self.cfg.startup_grace_ms);
                out.push(Action::Emit(Event::ClockAnomaly {
                    previous: self.last_now,
                    now,
                    fencing_held_until: self.grace.until(),
                }));
            }
        }
        self.last_now = now;
        now
    }

    fn run_timers(&mut self, now: Millis, out: &mut Vec<Action>) {
        loop {
            let misc = self.timers.peek().map(|Reverse((t, _))| *t);
            let host = self.host_timers.peek();
            let cluster = self.cluster_timers.peek();
            let earliest = [misc, host.map(|h| h.0), cluster.map(|c| c.0)]
                .into_iter()
                .flatten()
                .min();
            match earliest {
                Some(t) if t <= now => {}
                _ => break,
            }
            if let Some((t, i)) = host.filter(|h| Some(h.0) == earliest) {
                // poll_host reschedules the host in place (one heap
                // update instead of a removal and an insertion).
                self.poll_host(i as usize, now, out);
                if self.host_timers.get(i).is_some_and(|x| x <= now.max(t)) {
                    self.host_timers.remove(i);
                }
            } else if let Some((t, c)) = cluster.filter(|c| Some(c.0) == earliest) {
                self.poll_cluster(c as usize, now, out);
                if self.cluster_timers.get(c).is_some_and(|x| x <= now.max(t)) {
                    self.cluster_timers.remove(c);
                }
            } else {
                let Reverse((t, wake)) = self.timers.pop().expect("peeked");
                match wake {
                    Wake::RateCap => {
                        if self.rate_scheduled == Some(t) {
                            self.rate_scheduled = None;
                            for scope in self.rate.expire(now) {
                                out.push(Action::Emit(Event::RateCapCleared {
                                    scope,
                                    by: RateCapClearedBy::WindowPassed,
                                }));
                            }
                            self.schedule_rate();
                        }
                    }
                }
            }
            self.settle(now, out);
        }
    }

    /// Cluster rounds: health checks and power-state sync for every host of
    /// the cluster at once, their timeouts, and the guard's deadline.
    fn poll_cluster(&mut self, c: usize, now: Millis, out: &mut Vec<Action>) {
        if self.clusters[c].removed {
            return;
        }
        if self.clusters[c].health_deadline.is_some_and(|d| d <= now) {
            self.clusters[c].health_deadline = None;
            for k in 0..self.clusters[c].hosts.len() {
                let i = self.clusters[c].hosts[k];
                if let Some(op) = self.hosts[i].health_op {
                    if op.in_round && op.deadline <= now {
                        self.hosts[i].health_op = None;
                        self.health_outcome(i, HealthOutcome::Timeout, op, now, out);
                        self.mark_host(i);
                    }
                }
            }
        }
        if self.clusters[c].poll_deadline.is_some_and(|d| d <= now) {
            self.clusters[c].poll_deadline = None;
            for k in 0..self.clusters[c].hosts.len() {
                let i = self.clusters[c].hosts[k];
                if let Some(p) = self.hosts[i].power_op {
                    if p.op.in_round && p.op.deadline <= now {
                        self.hosts[i].power_op = None;
                        self.power_timed_out(i, p, now, out);
                        self.mark_host(i);
                    }
                }
            }
        }
        if self.clusters[c].cluster.ha_enabled && now >= self.clusters[c].next_health_at {
            let timeout = self.cfg.health_check_timeout_ms;
            for k in 0..self.clusters[c].hosts.len() {
                let i = self.clusters[c].hosts[k];
                if self.hosts[i].health_op.is_none() && !self.hosts[i].removed {
                    self.dispatch_health(i, true, now, out);
                }
            }
            self.clusters[c].next_health_at = now + self.cfg.health_check_interval_ms;
            self.clusters[c].health_deadline = Some(now + timeout);
        }
        if now >= self.clusters[c].next_poll_at {
            let mut deadline = None::<Millis>;
            for k in 0..self.clusters[c].hosts.len() {
                let i = self.clusters[c].hosts[k];
                let h = &self.hosts[i];
                if h.power_op.is_none() && h.recovery.is_none() && !h.removed {
                    self.start_power_op(i, PowerOpKind::Poll, now, out);
                    if let Some(p) = self.hosts[i].power_op.as_mut() {
                        p.op.in_round = true;
                        deadline = Some(deadline.map_or(p.op.deadline, |d| d.max(p.op.deadline)));
                    }
                    // The read is timed by the cluster; the host has
                    // nothing else due because of it.
                    self.hosts[i].dirty = false;
                }
            }
            self.dirty_hosts.retain(|&i| self.hosts[i].dirty);
            self.clusters[c].next_poll_at = now + self.cfg.power_poll_interval_ms;
            self.clusters[c].poll_deadline = deadline;
        }
        if self.clusters[c]
            .guard
            .next_deadline()
            .is_some_and(|d| d <= now)
        {
            self.mark_cluster(c);
        }
        self.schedule_cluster(c, now);
    }

    fn schedule_cluster(&mut self, c: usize, now: Millis) {
        let cl = &self.clusters[c];
        if cl.removed {
            self.cluster_timers.remove(c as u32);
            return;
        }
        let t = [
            cl.cluster.ha_enabled.then_some(cl.next_health_at),
            cl.health_deadline,
            Some(cl.next_poll_at),
            cl.poll_deadline,
            cl.guard.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| t.max(now + 1));
        match t {
            Some(t) if self.cluster_timers.get(c as u32) != Some(t) => {
                self.cluster_timers.set(c as u32, t)
            }
            Some(_) => {}
            None => self.cluster_timers.remove(c as u32),
        }
    }

    fn dispatch_health(&mut self, i: usize, in_round: bool, now: Millis, out: &mut Vec<Action>) {
        let id = self.next_op();
        let h = &mut self.hosts[i];
        let op = PendingOp {
            in_round,
            id,
            version: StateVersion(h.version),
            deadline: now + self.cfg.health_check_timeout_ms,
            started: now,
        };
        h.health_op = Some(op);
        out.push(Action::RunHealthCheck {
            op: OpRef {
                id,
                host: h.host.id,
                version: op.version,
            },
            timeout_ms: self.cfg.health_check_timeout_ms,
        });
    }

    fn schedule_rate(&mut self) {
        if let Some(t) = self.rate.next_expiry() {
            if self.rate_scheduled != Some(t) {
                self.rate_scheduled = Some(t);
                self.timers.push(Reverse((t, Wake::RateCap)));
            }
        }
    }

    fn mark_host(&mut self, i: usize) {
        if !self.hosts[i].dirty {
            self.hosts[i].dirty = true;
            self.dirty_hosts.push(i);
        }
    }

    fn mark_cluster(&mut self, c: usize) {
        if !self.clusters[c].dirty {
            self.clusters[c].dirty = true;
            self.dirty_clusters.push(c);
        }
    }

    fn settle(&mut self, now: Millis, out: &mut Vec<Action>) {
        // Partition evaluation can move hosts, and host moves can change the
        // partition; iterate to a fixed point (bounded as a safety net).
        for _ in 0..64 {
            if self.dirty_clusters.is_empty() && self.dirty_hosts.is_empty() {
                return;
            }
            while let Some(c) = self.dirty_clusters.pop() {
                self.clusters[c].dirty = false;
                self.evaluate_partition(c, now, out);
            }
            while let Some(i) = self.dirty_hosts.pop() {
                self.hosts[i].dirty = false;
                self.poll_host(i, now, out);
            }
        }
        debug_assert!(false, "settle did not converge");
    }

    fn apply(&mut self, now: Millis, input: Input, out: &mut Vec<Action>) {
        match input {
            Input::Tick => {}
            Input::Inventory(inv) => self.apply_inventory(inv, now, out),
            Input::InventoryChange(ch) => self.apply_change(ch, now, out),
            Input::HealthResult { op, outcome } => self.on_health(op, Some(outcome), now, out),
            Input::ActivityResult {
                op,
                checker,
                verdict,
                window,
            } => self.on_activity(op, checker, verdict, window, now, out),
            Input::PowerReadResult { op, reading } => self.on_power_read(op, reading, now, out),
            Input::PowerActionResult { op, outcome } => self.on_power_action(op, outcome, now, out),
            Input::QuorumChanged { quorate } => {
                // A repeated "quorate" renews the lease (see QuorumGate).
                let was_open = self.quorum.is_open(now);
                if self.quorum.set(quorate, now) {
                    out.push(Action::Emit(Event::QuorumChanged { quorate }));
                }
                if !was_open && self.quorum.is_open(now) {
                    // Owed power-ons may proceed now.
                    for i in 0..self.hosts.len() {
                        if self.hosts[i].power_on_owed {
                            self.mark_host(i);
                        }
                    }
                }
            }
            Input::HeartbeatCensus {
                cluster,
                fresh,
                total,
            } => {
                if let Some(&c) = self.cluster_index.get(&cluster) {
                    self.clusters[c].guard.note_census(fresh, total);
                    self.mark_cluster(c);
                }
            }
            Input::Operator(cmd) => self.on_operator(cmd, now, out),
        }
    }

    // ----- inventory ---------------------------------------------------

    fn apply_inventory(&mut self, inv: Inventory, now: Millis, out: &mut Vec<Action>) {
        let hosts: HashSet<HostId> = inv.hosts.iter().map(|h| h.id).collect();
        let clusters: HashSet<ClusterId> = inv.clusters.iter().map(|c| c.id).collect();
        self.zones = inv.zones.into_iter().map(|z| (z.id, z)).collect();
        self.pods = inv.pods.into_iter().map(|p| (p.id, p)).collect();
        for c in inv.clusters {
            self.upsert_cluster(c, now, out);
        }
        for h in inv.hosts {
            self.upsert_host(h, now, out);
        }
        let gone: Vec<HostId> = self
            .hosts
            .iter()
            .filter(|h| !h.removed && !hosts.contains(&h.host.id))
            .map(|h| h.host.id)
            .collect();
        for h in gone {
            self.remove_host(h, now, out);
        }
        let gone: Vec<ClusterId> = self
            .clusters
            .iter()
            .filter(|c| !c.removed && !clusters.contains(&c.cluster.id))
            .map(|c| c.cluster.id)
            .collect();
        for c in gone {
            self.remove_cluster(c, now, out);
        }
        for c in 0..self.clusters.len() {
            self.mark_cluster(c);
        }
    }

    fn apply_change(&mut self, ch: InventoryChange, now: Millis, out: &mut Vec<Action>) {
        match ch {
            InventoryChange::UpsertZone(z) => {
                self.zones.insert(z.id, z);
                self.mark_all_clusters();
            }
            InventoryChange::UpsertPod(p) => {
                self.pods.insert(p.id, p);
                self.mark_all_clusters();
            }
            InventoryChange::UpsertCluster(c) => self.upsert_cluster(c, now, out),
            InventoryChange::UpsertHost(h) => self.upsert_host(h, now, out),
            InventoryChange::RemoveHost(h) => self.remove_host(h, now, out),
            InventoryChange::RemoveCluster(c) => self.remove_cluster(c, now, out),
        }
    }

    fn mark_all_clusters(&mut self) {
        for c in 0..self.clusters.len() {
            self.mark_cluster(c);
        }
    }

    fn upsert_cluster(&mut self, cluster: Cluster, _now: Millis, _out: &mut Vec<Action>) {
        let idx = match self.cluster_index.get(&cluster.id) {
            Some(&c) => {
                self.clusters[c].cluster = cluster;
                self.clusters[c].removed = false;
                c
            }
            None => {
                let c = self.clusters.len();
                self.cluster_index.insert(cluster.id, c);
                self.clusters.push(ClusterEntry {
                    cluster,
                    removed: false,
                    hosts: Vec::new(),
                    state: PartitionState::None,
                    reasons: Vec::new(),
                    guard: MassFailureGuard::new(self.cfg.mass_failure),
                    checker_cursor: 0,
                    next_health_at: 0,
                    health_deadline: None,
                    next_poll_at: 0,
                    poll_deadline: None,
                    dirty: false,
                });
                c
            }
        };
        self.mark_cluster(idx);
    }

    fn placeholder_cluster(&mut self, id: ClusterId) -> usize {
        // A host may arrive before its cluster: the cluster exists with HA
        // disabled until it is described.
        let c = self.clusters.len();
        self.cluster_index.insert(id, c);
        self.clusters.push(ClusterEntry {
            cluster: Cluster {
                id,
                pod: PodId(u32::MAX),
                enabled: false,
                ha_enabled: false,
            },
            removed: false,
            hosts: Vec::new(),
            state: PartitionState::None,
            reasons: Vec::new(),
            guard: MassFailureGuard::new(self.cfg.mass_failure),
            checker_cursor: 0,
            next_health_at: 0,
            health_deadline: None,
            next_poll_at: 0,
            poll_deadline: None,
            dirty: false,
        });
        c
    }

    fn eligible(host: &Host) -> bool {
        host.resource_state == ResourceState::Enabled && host.oobm_enabled
    }

    fn upsert_host(&mut self, host: Host, now: Millis, out: &mut Vec<Action>) {
        let c = match self.cluster_index.get(&host.cluster) {
            Some(&c) => c,
            None => self.placeholder_cluster(host.cluster),
        };
        match self.host_index.get(host.id.0) {
            Some(i) if !self.hosts[i].removed => {
                let was_eligible = Self::eligible(&self.hosts[i].host);
                let old_cluster = self.hosts[i].cluster;
                if old_cluster != c {
                    // Moving between partitions: leave the old one cleanly.
                    self.fire(i, HaTrigger::PartitionDeactivated, now, out);
                    self.clusters[old_cluster].hosts.retain(|&x| x != i);
                    self.clusters[c].hosts.push(i);
                    self.hosts[i].cluster = c;
                    self.mark_cluster(old_cluster);
                }
                let gained_vms = host.has_vms && !self.hosts[i].host.has_vms;
                self.hosts[i].host = host;
                if gained_vms {
                    self.hosts[i].no_vms_reported = false;
                }
                let is_eligible = Self::eligible(&self.hosts[i].host);
                if was_eligible && !is_eligible {
                    self.fire(i, HaTrigger::EligibilityLost, now, out);
                } else if !was_eligible && is_eligible {
                    self.fire(i, HaTrigger::EligibilityRegained, now, out);
                }
                self.mark_host(i);
                self.mark_cluster(c);
            }
            existing => {
                let r = self.restored.remove(&host.id).unwrap_or_default();
                let entry = HostEntry {
                    removed: false,
                    cluster: c,
                    ha: match r.state {
                        Some(s @ (HaState::Fenced | HaState::Failed)) => s,
                        _ => HaState::None,
                    },
                    version: r.version,
                    power: PowerState::Unknown,
                    healthy: None,
                    quiet_until: 0,
                    activity_seen: false,
                    failed_reason: FailedReason::RecoveryAttemptsExhausted,
                    health_op: None,
                    next_health_at: now,
                    power_op: None,
                    next_power_poll_at: now,
                    round: None,
                    next_round_at: now,
                    no_vms_reported: false,
                    backoff: Backoff::new(
                        self.cfg.activity_backoff_initial_ms,
                        self.cfg.activity_backoff_max_ms,
                    ),
                    recovery: None,
                    power_on_owed: r.power_on_owed,
                    next_power_on_at: now,
                    // A re-added host keeps its fence history, as a
                    // restart rebuilding it from the journal would.
                    last_confirmed_fence_at: r
                        .last_confirmed_fence_at
                        .max(existing.and_then(|i| self.hosts[i].last_confirmed_fence_at)),
                    user_power: None,
                    first_off_read_at: None,
                    dirty: false,
                    host,
                };
                let i = match existing {
                    Some(i) => {
                        let version = self.hosts[i].version.max(entry.version);
                        self.hosts[i] = entry;
                        self.hosts[i].version = version;
                        i
                    }
                    None => {
                        let i = self.hosts.len();
                        self.host_index.insert(entry.host.id.0, i);
                        self.hosts.push(entry);
                        i
                    }
                };
                self.clusters[c].hosts.push(i);
                if self.hosts[i].ha == HaState::Failed {
                    out.push(Action::Emit(Event::OperatorActionRequired {
                        host: self.hosts[i].host.id,
                        reason: FailedReason::RecoveryAttemptsExhausted,
                    }));
                }
                if let Some(fence) = r.open_fence {
                    // A fence whose outcome we never learned: verify it with
                    // a power read; never issue it again.
                    self.start_power_op(i, PowerOpKind::ConfirmOff(fence), now, out);
                }
                self.mark_host(i);
                self.mark_cluster(c);
            }
        }
    }

    fn remove_host(&mut self, id: HostId, now: Millis, out: &mut Vec<Action>) {
        let Some(i) = self.host_index.get(id.0) else {
            return;
        };
        if self.hosts[i].removed {
            return;
        }
        if self.hosts[i].round.is_some() {
            self.hosts[i].round = None;
            self.activity_slots.release();
        }
        if self.hosts[i].recovery.is_some() {
            self.hosts[i].recovery = None;
            self.recovery_slots.release();
        }
        let _ = now;
        let _ = out;
        let c = self.hosts[i].cluster;
        self.clusters[c].hosts.retain(|&x| x != i);
        let h = &mut self.hosts[i];
        h.removed = true;
        h.health_op = None;
        self.host_timers.remove(i as u32);
        let h = &mut self.hosts[i];
        // A pending fence power-off is kept in the fence log (journal); its
        // result is discarded because the host is gone.
        h.power_op = None;
        self.mark_cluster(c);
    }

    fn remove_cluster(&mut self, id: ClusterId, now: Millis, out: &mut Vec<Action>) {
        let Some(&c) = self.cluster_index.get(&id) else {
            return;
        };
        let hosts: Vec<HostId> = self.clusters[c]
            .hosts
            .iter()
            .map(|&i| self.hosts[i].host.id)
            .collect();
        for h in hosts {
            self.remove_host(h, now, out);
        }
        self.clusters[c].cluster.ha_enabled = false;
        self.evaluate_partition(c, now, out);
        self.clusters[c].removed = true;
    }

    // ----- partitions ------------------------------------------------------

    fn evaluate_partition(&mut self, c: usize, now: Millis, out: &mut Vec<Action>) {
        if self.clusters[c].removed {
            return;
        }
        let state = self.clusters[c].state;
        if !self.clusters[c].cluster.ha_enabled {
            if state != PartitionState::None {
                self.partition_step(c, PartitionTrigger::HaDisabled, Vec::new(), now, out);
            }
            return;
        }
        if state == PartitionState::None {
            self.partition_step(c, PartitionTrigger::HaEnabled, Vec::new(), now, out);
        }
        let mut reasons = Vec::new();
        let cl = &self.clusters[c].cluster;
        if !cl.enabled {
            reasons.push(InactiveReason::ClusterDisabled);
        }
        match self.pods.get(&cl.pod) {
            Some(p) if p.enabled => match self.zones.get(&p.zone) {
                Some(z) if z.enabled => {}
                _ => reasons.push(InactiveReason::ZoneDisabled),
            },
            _ => reasons.push(InactiveReason::PodDisabled),
        }
        // Mass-failure guard: judged on hosts that could be protected.
        let mut total = 0u32;
        let mut unhealthy = 0u32;
        let mut managed = 0u32;
        let mut qualified = 0u32;
        for &i in &self.clusters[c].hosts {
            let h = &self.hosts[i];
            let eligible = Self::eligible(&h.host);
            if eligible
                && !matches!(h.ha, HaState::Fenced | HaState::Failed)
                && h.power != PowerState::Off
            {
                total += 1;
                if h.healthy == Some(false) {
                    unhealthy += 1;
                }
            }
            if matches!(
                h.ha,
                HaState::Available
                    | HaState::Initializing
                    | HaState::Suspect
                    | HaState::Checking
                    | HaState::Recovering
            ) {
                managed += 1;
            }
            if eligible && h.power == PowerState::On && h.healthy == Some(true) {
                qualified += 1;
            }
        }
        let cluster_id = self.clusters[c].cluster.id;
        match self.clusters[c].guard.evaluate(now, total, unhealthy) {
            GuardChange::Tripped(reason) => out.push(Action::Emit(Event::MassFailureDetected {
                cluster: cluster_id,
                reason,
            })),
            GuardChange::Cleared => out.push(Action::Emit(Event::MassFailureCleared {
                cluster: cluster_id,
            })),
            GuardChange::Unchanged => {}
        }
        if let Some(r) = self.clusters[c].guard.tripped() {
            if !self.gate_broken(SelfTestGate::MassFailure) {
                reasons.push(InactiveReason::MassFailure(r));
            }
        }
        // ACTIVE needs `min_available_hosts` AVAILABLE hosts. Entering, we
        // count hosts that would be AVAILABLE (eligible, ON, healthy);
        // staying, hosts under recovery still count, or the failure of one
        // host in a two-host partition would switch off the HA meant to
        // recover it.
        let required = self.cfg.min_available_hosts;
        let available = if self.clusters[c].state == PartitionState::Active {
            managed
        } else {
            qualified
        };
        if available < required {
            reasons.push(InactiveReason::TooFewAvailableHosts {
                available,
                required,
            });
        }
        let trigger = if reasons.is_empty() {
            PartitionTrigger::ConditionsMet
        } else {
            PartitionTrigger::ConditionsLost
        };
        self.partition_step(c, trigger, reasons, now, out);
        self.schedule_cluster(c, now);
    }

    fn partition_step(
        &mut self,
        c: usize,
        trigger: PartitionTrigger,
        reasons: Vec<InactiveReason>,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let from = self.clusters[c].state;
        let cluster = self.clusters[c].cluster.id;
        match fsm::partition_transition(from, trigger) {
            Outcome::Goto(to) => {
                self.clusters[c].state = to;
                self.clusters[c].reasons = reasons.clone();
                out.push(Action::Persist(Record::PartitionTransition {
                    cluster,
                    from,
                    to,
                    at: now,
                }));
                out.push(Action::Emit(Event::PartitionStateChanged {
                    cluster,
                    from,
                    to,
                    reasons,
                }));
                let hosts = self.clusters[c].hosts.clone();
                let host_trigger = if to == PartitionState::Active {
                    Some(HaTrigger::PartitionActivated)
                } else if from == PartitionState::Active {
                    Some(HaTrigger::PartitionDeactivated)
                } else {
                    None
                };
                for i in hosts {
                    if let Some(t) = host_trigger {
                        self.fire(i, t, now, out);
                    }
                    self.mark_host(i);
                }
            }
            Outcome::Stay | Outcome::Ignored => {
                if self.clusters[c].state != PartitionState::None {
                    self.clusters[c].reasons = reasons;
                }
            }
        }
    }

    // ----- HA transitions ----------------------------------------------

    fn ctx(&self, i: usize, now: Millis) -> HaContext {
        let h = &self.hosts[i];
        HaContext {
            partition_active: self.clusters[h.cluster].state == PartitionState::Active,
            eligible: !h.removed && Self::eligible(&h.host),
            power_on: h.power == PowerState::On,
            power_unknown: h.power == PowerState::Unknown,
            has_vms: h.host.has_vms,
            in_quiet_period: now < h.quiet_until,
            power_off_committed: h.recovery.as_ref().is_some_and(|r| r.committed()),
            attempts_left: h
                .recovery
                .as_ref()
                .is_some_and(|r| r.budget.attempts_left()),
        }
    }

    /// Applies a trigger; returns true if the state changed.
    fn fire(&mut self, i: usize, trigger: HaTrigger, now: Millis, out: &mut Vec<Action>) -> bool {
        if self.hosts[i].removed {
            return false;
        }
        let ctx = self.ctx(i, now);
        match fsm::ha_transition(self.hosts[i].ha, trigger, ctx) {
            Outcome::Goto(to) => {
                self.enter(i, to, trigger, now, out);
                true
            }
            Outcome::Stay | Outcome::Ignored => false,
        }
    }

    fn enter(
        &mut self,
        i: usize,
        to: HaState,
        trigger: HaTrigger,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let from = self.hosts[i].ha;
        // Leaving CHECKING ends the round (its pending sample is discarded).
        if from == HaState::Checking && self.hosts[i].round.take().is_some() {
            self.activity_slots.release();
        }
        // Leaving RECOVERING ends the flow. A power-off already issued keeps
        // its pending operation: its outcome still goes to the fence log.
        if from == HaState::Recovering && self.hosts[i].recovery.take().is_some() {
            self.recovery_slots.release();
        }
        let cluster = self.clusters[self.hosts[i].cluster].cluster.id;
        let h = &mut self.hosts[i];
        h.ha = to;
        h.version += 1;
        let version = StateVersion(h.version);
        match to {
            HaState::Suspect if from != HaState::Checking => {
                h.backoff.reset();
                h.next_round_at = now + self.cfg.activity_first_delay_ms;
                h.activity_seen = false;
                self.clusters[h.cluster].guard.note_suspect(h.host.id, now);
            }
            HaState::Available => {
                h.backoff.reset();
                h.activity_seen = false;
                h.quiet_until = 0;
                h.no_vms_reported = false;
            }
            HaState::Initializing => {
                h.next_health_at = now;
                h.activity_seen = false;
            }
            _ => {}
        }
        let host = h.host.id;
        out.push(Action::Persist(Record::HaTransition {
            host,
            cluster,
            from,
            to,
            version,
            at: now,
        }));
        out.push(Action::Emit(Event::HaStateChanged {
            host,
            cluster,
            from,
            to,
            trigger,
            version,
            cloudstack: to.cloudstack_hastate(false).to_string(),
        }));
        if to == HaState::Failed {
            out.push(Action::Emit(Event::OperatorActionRequired {
                host,
                reason: self.hosts[i].failed_reason,
            }));
        }
        let c = self.hosts[i].cluster;
        self.mark_cluster(c);
        self.mark_host(i);
    }

    // ----- scheduling ----------------------------------------------------

    fn ha_enabled(&self, i: usize) -> bool {
        self.clusters[self.hosts[i].cluster].cluster.ha_enabled
    }

    fn power_timeout(&self, i: usize) -> Millis {
        self.hosts[i]
            .host
            .overrides
            .power_op_timeout_ms
            .unwrap_or(self.cfg.power_op_timeout_ms)
    }

    fn quiet_period(&self, i: usize) -> Millis {
        self.hosts[i]
            .host
            .overrides
            .quiet_period_ms
            .unwrap_or(self.cfg.quiet_period_ms)
    }

    /// Handles timeouts and starts whatever is due for host `i`, then
    /// schedules its next wake-up.
    fn poll_host(&mut self, i: usize, now: Millis, out: &mut Vec<Action>) {
        if self.hosts[i].removed {
            return;
        }
        // Timeouts first: slow operations are abandoned and count as failures.
        if let Some(op) = self.hosts[i].health_op {
            if op.deadline <= now {
                self.hosts[i].health_op = None;
                self.health_outcome(i, HealthOutcome::Timeout, op, now, out);
            }
        }
        if let Some(p) = self.hosts[i].power_op {
            if p.op.deadline <= now {
                self.hosts[i].power_op = None;
                self.power_timed_out(i, p, now, out);
            }
        }
        if let Some((op, checker)) = self.hosts[i].round.as_ref().and_then(|r| r.op) {
            if op.deadline <= now {
                self.round_sample(
                    i,
                    checker,
                    ActivityVerdict::CannotTell(CannotTellReason::Timeout),
                    Window {
                        from: op.started,
                        to: now,
                    },
                    now,
                    out,
                );
            }
        }
        if self.hosts[i].removed {
            return;
        }
        // Level check: an INELIGIBLE host whose conditions all hold again.
        if self.hosts[i].ha == HaState::Ineligible
            && Self::eligible(&self.hosts[i].host)
            && self.hosts[i].power == PowerState::On
        {
            self.fire(i, HaTrigger::EligibilityRegained, now, out);
        }
        // Health checks run in every state (in HA-enabled partitions), in
        // cluster rounds; a host that needs one now gets a solo check.
        if self.ha_enabled(i)
            && self.hosts[i].health_op.is_none()
            && now >= self.hosts[i].next_health_at
        {
            self.hosts[i].next_health_at = Millis::MAX;
            self.dispatch_health(i, false, now, out);
        }
        // Activity rounds.
        match self.hosts[i].ha {
            HaState::Suspect if now >= self.hosts[i].next_round_at => self.start_round(i, now, out),
            HaState::Checking if self.hosts[i].round.as_ref().is_some_and(|r| r.op.is_none()) => {
                self.next_sample(i, now, out)
            }
            _ => {}
        }
        // Recovery steps.
        if self.hosts[i].ha == HaState::Recovering {
            let due = self.hosts[i]
                .recovery
                .as_ref()
                .is_some_and(|r| r.phase == RecoveryPhase::Waiting && now >= r.next_step_at);
            if due && self.hosts[i].power_op.is_none() {
                self.start_attempt(i, now, out);
            }
        }
        // A user power operation waiting for the host's power channel.
        if self.hosts[i].power_op.is_none() && self.hosts[i].recovery.is_none() {
            if let Some(op) = self.hosts[i].user_power.take() {
                if self.quorum.is_open(now) {
                    self.start_power_op(i, PowerOpKind::User(op), now, out);
                } else {
                    out.push(Action::Emit(Event::OperatorCommandRejected {
                        host: Some(self.hosts[i].host.id),
                        reason:
                            "coordinator lost quorum before the power operation could be issued"
                                .into(),
                    }));
                }
            }
        }
        // Second half of the recovery power cycle.
        if self.hosts[i].power_on_owed
            && self.hosts[i].power_op.is_none()
            && now >= self.hosts[i].next_power_on_at
            && self.hosts[i].recovery.is_none()
        {
            match self.hosts[i].power {
                PowerState::On => self.set_power_on_owed(i, false, now, out),
                PowerState::Off if self.quorum.is_open(now) => {
                    self.start_power_op(i, PowerOpKind::On, now, out)
                }
                _ => {}
            }
        }
        // Power-state sync.
        if self.hosts[i].power_op.is_none()
            && self.hosts[i].recovery.is_none()
            && now >= self.hosts[i].next_power_poll_at
        {
            self.start_power_op(i, PowerOpKind::Poll, now, out);
        }
        self.schedule_host(i, now);
    }

    fn schedule_host(&mut self, i: usize, now: Millis) {
        let h = &self.hosts[i];
        if h.removed {
            self.host_timers.remove(i as u32);
            return;
        }
        let mut t = Millis::MAX;
        let mut consider = |x: Millis| t = t.min(x);
        if let Some(op) = h.health_op {
            if !op.in_round {
                consider(op.deadline);
            }
        } else if self.clusters[h.cluster].cluster.ha_enabled {
            consider(h.next_health_at);
        }
        if let Some(p) = h.power_op {
            if !p.op.in_round {
                consider(p.op.deadline);
            }
        } else {
            if h.recovery.is_none() {
                consider(h.next_power_poll_at);
            }
            if h.power_on_owed {
                consider(h.next_power_on_at.max(now + 1));
            }
        }
        if let Some(r) = &h.round {
            if let Some((op, _)) = r.op {
                consider(op.deadline);
            }
        }
        if h.ha == HaState::Suspect && !h.no_vms_reported {
            consider(h.next_round_at);
        }
        if let Some(r) = &h.recovery {
            if r.phase == RecoveryPhase::Waiting {
                consider(r.next_step_at);
            }
        }
        if t == Millis::MAX {
            self.host_timers.remove(i as u32);
            return;
        }
        let t = t.max(now + 1);
        if self.host_timers.get(i as u32) != Some(t) {
            self.host_timers.set(i as u32, t);
        }
    }

    // ----- health --------------------------------------------------------

    fn on_health(
        &mut self,
        op: OpRef,
        outcome: Option<HealthOutcome>,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.host_index.get(op.host.0) else {
            return;
        };
        let Some(pending) = self.hosts[i].health_op else {
            return;
        };
        if pending.id != op.id {
            return;
        }
        self.hosts[i].health_op = None;
        if let Some(outcome) = outcome {
            self.health_outcome(i, outcome, pending, now, out);
        }
        self.mark_host(i);
    }

    fn health_outcome(
        &mut self,
        i: usize,
        outcome: HealthOutcome,
        pending: PendingOp,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let passed = outcome == HealthOutcome::Passed;
        if passed {
            // A host that answers is on, whatever its BMC read.
            self.hosts[i].first_off_read_at = None;
        }
        let before = self.hosts[i].healthy;
        self.hosts[i].healthy = Some(passed);
        if before != Some(passed) {
            let c = self.hosts[i].cluster;
            self.mark_cluster(c);
        }
        if StateVersion(self.hosts[i].version) != pending.version {
            // Started for a state the host has since left: the HA FSM does
            // not act on it; check again right away.
            self.hosts[i].next_health_at = now;
            return;
        }
        let trigger = if passed {
            HaTrigger::HealthPassed
        } else {
            HaTrigger::HealthFailed
        };
        self.fire(i, trigger, now, out);
    }

    // ----- activity ------------------------------------------------------

    fn pick_checker(&mut self, i: usize) -> Option<HostId> {
        let c = self.hosts[i].cluster;
        let n = self.clusters[c].hosts.len();
        if n == 0 {
            return None;
        }
        let start = self.clusters[c].checker_cursor;
        let round = self.hosts[i].round.as_ref();
        let mut fallback = None;
        for k in 0..n {
            let j = self.clusters[c].hosts[(start + k) % n];
            let cand = &self.hosts[j];
            if j == i
                || cand.removed
                || cand.ha != HaState::Available
                || cand.power != PowerState::On
            {
                continue;
            }
            if round.is_some_and(|r| r.evidence.used_checker(cand.host.id)) {
                fallback.get_or_insert((k, cand.host.id));
                continue;
            }
            self.clusters[c].checker_cursor = (start + k + 1) % n;
            return Some(cand.host.id);
        }
        let (k, id) = fallback?;
        self.clusters[c].checker_cursor = (start + k + 1) % n;
        Some(id)
    }

    fn start_round(&mut self, i: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.hosts[i].host.has_vms {
            // Nothing to recover and no VM activity to observe: not dead,
            // just not managed by us (health checks go on).
            if !self.hosts[i].no_vms_reported {
                self.hosts[i].no_vms_reported = true;
                out.push(Action::Emit(Event::RecoveryNotNeeded {
                    host: self.hosts[i].host.id,
                }));
            }
            return;
        }
        if !self.activity_slots.has_free() {
            self.hosts[i].next_round_at = now + SLOT_RETRY_MS;
            return;
        }
        if self.pick_checker_available(i).is_none() {
            let delay = self.hosts[i].backoff.next_delay();
            self.hosts[i].next_round_at = now + delay;
            out.push(Action::Emit(Event::NoCheckerAvailable {
                host: self.hosts[i].host.id,
            }));
            return;
        }
        let acquired = self.activity_slots.try_acquire();
        debug_assert!(acquired);
        if !self.fire(i, HaTrigger::ActivityRoundStarted, now, out) {
            self.activity_slots.release();
            return;
        }
        self.hosts[i].round = Some(Box::new(Round {
            evidence: ActivityEvidence::new(self.cfg.evidence),
            op: None,
        }));
        self.next_sample(i, now, out);
    }

    fn pick_checker_available(&self, i: usize) -> Option<()> {
        let c = self.hosts[i].cluster;
        self.clusters[c]
            .hosts
            .iter()
            .any(|&j| {
                j != i
                    && !self.hosts[j].removed
                    && self.hosts[j].ha == HaState::Available
                    && self.hosts[j].power == PowerState::On
            })
            .then_some(())
    }

    fn next_sample(&mut self, i: usize, now: Millis, out: &mut Vec<Action>) {
        match self.pick_checker(i) {
            Some(checker) => {
                let id = self.next_op();
                let h = &mut self.hosts[i];
                let op = PendingOp {
                    in_round: false,
                    id,
                    version: StateVersion(h.version),
                    deadline: now + self.cfg.activity_check_timeout_ms,
                    started: now,
                };
                if let Some(r) = h.round.as_mut() {
                    r.op = Some((op, checker));
                }
                out.push(Action::RunActivityCheck {
                    op: OpRef {
                        id,
                        host: h.host.id,
                        version: op.version,
                    },
                    checker,
                    window_ms: self.cfg.activity_sample_window_ms,
                    timeout_ms: self.cfg.activity_check_timeout_ms,
                });
            }
            None => {
                out.push(Action::Emit(Event::NoCheckerAvailable {
                    host: self.hosts[i].host.id,
                }));
                self.conclude_round(i, RoundOutcome::Inconclusive, now, out);
            }
        }
    }

    fn on_activity(
        &mut self,
        op: OpRef,
        checker: HostId,
        verdict: ActivityVerdict,
        window: Window,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.host_index.get(op.host.0) else {
            return;
        };
        let Some((pending, expected_checker)) = self.hosts[i].round.as_ref().and_then(|r| r.op)
        else {
            return;
        };
        if pending.id != op.id
            || pending.version != op.version
            || StateVersion(self.hosts[i].version) != pending.version
            || expected_checker != checker
        {
            return;
        }
        self.round_sample(i, checker, verdict, window, now, out);
        self.mark_host(i);
    }

    fn round_sample(
        &mut self,
        i: usize,
        checker: HostId,
        verdict: ActivityVerdict,
        window: Window,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let target = self.hosts[i].host.id;
        let mut verdict = verdict;
        let checker_idx = self.host_index.get(checker.0);
        if verdict == ActivityVerdict::CannotTell(CannotTellReason::CheckerStorageUnreadable) {
            out.push(Action::Emit(Event::CheckerVerdictDiscarded {
                checker,
                host: target,
                reason: CannotTellReason::CheckerStorageUnreadable,
            }));
            if let Some(j) = checker_idx {
                self.fire(j, HaTrigger::CheckerStorageUnreadable, now, out);
            }
        } else if !checker_idx
            .is_some_and(|j| !self.hosts[j].removed && self.hosts[j].ha == HaState::Available)
            && !matches!(verdict, ActivityVerdict::CannotTell(_))
        {
            // Only AVAILABLE hosts may judge peers: a checker that left
            // AVAILABLE while checking has its verdict discarded.
            out.push(Action::Emit(Event::CheckerVerdictDiscarded {
                checker,
                host: target,
                reason: CannotTellReason::CheckerUnreachable,
            }));
            verdict = ActivityVerdict::CannotTell(CannotTellReason::CheckerUnreachable);
        }
        out.push(Action::Emit(Event::ActivitySample {
            host: target,
            checker,
            verdict,
            window,
        }));
        // The checker may have been this very host's round (it became
        // SUSPECT above only if it is another host).
        let Some(round) = self.hosts[i].round.as_mut() else {
            return;
        };
        round.op = None;
        round.evidence.add(EvidenceSample {
            checker,
            verdict,
            window,
        });
        let outcome = round.evidence.outcome();
        let outcome = if self.gate_broken(SelfTestGate::Evidence) {
            Some(RoundOutcome::Dead)
        } else {
            outcome
        };
        match outcome {
            None => self.next_sample(i, now, out),
            Some(outcome) => self.conclude_round(i, outcome, now, out),
        }
    }

    fn conclude_round(
        &mut self,
        i: usize,
        outcome: RoundOutcome,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let host = self.hosts[i].host.id;
        let (dead, samples) = self.hosts[i].round.as_ref().map_or((0, 0), |r| {
            (r.evidence.dead(), r.evidence.samples().len() as u32)
        });
        match outcome {
            RoundOutcome::ActivitySeen | RoundOutcome::Inconclusive => {
                let delay = self.hosts[i].backoff.next_delay();
                self.hosts[i].next_round_at = now + delay;
                out.push(Action::Emit(Event::ActivityRoundConcluded {
                    host,
                    outcome,
                    dead,
                    samples,
                    next_round_in_ms: delay,
                }));
                let trigger = if outcome == RoundOutcome::ActivitySeen {
                    HaTrigger::ActivitySeen
                } else {
                    HaTrigger::ActivityInconclusive
                };
                self.fire(i, trigger, now, out);
                if outcome == RoundOutcome::ActivitySeen {
                    self.hosts[i].activity_seen = true;
                }
            }
            RoundOutcome::Dead => {
                out.push(Action::Emit(Event::ActivityRoundConcluded {
                    host,
                    outcome,
                    dead,
                    samples,
                    next_round_in_ms: 0,
                }));
                let evidence = Evidence {
                    host,
                    samples: self.hosts[i]
                        .round
                        .as_ref()
                        .map(|r| r.evidence.samples().to_vec())
                        .unwrap_or_default(),
                    dead_required: self.cfg.evidence.dead_required,
                    decided_at: now,
                };
                let block = self.fence_block(i, now).or_else(|| {
                    (!self.recovery_slots.has_free()).then_some(GateBlock::RecoveryConcurrency)
                });
                if let Some(gate) = block {
                    self.defer(i, gate, now, out);
                    return;
                }
                let acquired = self.recovery_slots.try_acquire();
                debug_assert!(acquired);
                // Put the flow in place first so the FSM sees its budget.
                self.hosts[i].recovery = Some(Box::new(Recovery {
                    budget: RetryBudget::new(self.cfg.max_recovery_attempts),
                    evidence,
                    phase: RecoveryPhase::Waiting,
                    next_step_at: now,
                    fence: None,
                    last_failure: None,
                    reread_off: false,
                }));
                if !self.fire(i, HaTrigger::DeadConfirmed, now, out) {
                    self.hosts[i].recovery = None;
                    self.recovery_slots.release();
                    return;
                }
                // `enter` released nothing (we came from CHECKING); restore
                // the flow that `enter` does not touch.
                self.start_attempt(i, now, out);
            }
        }
    }

    fn defer(&mut self, i: usize, gate: GateBlock, now: Millis, out: &mut Vec<Action>) {
        out.push(Action::Emit(Event::FenceDeferred {
            host: self.hosts[i].host.id,
            gate,
        }));
        let mut next = now + self.hosts[i].backoff.next_delay();
        if let GateBlock::StartupGrace { until } = gate {
            next = next.max(until);
        }
        self.hosts[i].next_round_at = next;
        self.fire(i, HaTrigger::FenceDeferred, now, out);
        // FenceDeferred from CHECKING does not reset the round delay.
        self.hosts[i].next_round_at = next;
    }

    /// The gate that forbids fencing host `i` now, if any.
    fn fence_block(&self, i: usize, now: Millis) -> Option<GateBlock> {
        let h = &self.hosts[i];
        let c = &self.clusters[h.cluster];
        if !self.quorum.is_open(now) {
            return Some(GateBlock::NoQuorum);
        }
        if !self.grace.is_open(now) && !self.gate_broken(SelfTestGate::StartupGrace) {
            return Some(GateBlock::StartupGrace {
                until: self.grace.until(),
            });
        }
        if c.state != PartitionState::Active {
            return Some(GateBlock::PartitionInactive);
        }
        if let Some(scope) = self.rate.blocked(c.cluster.id, now) {
            if !self.gate_broken(SelfTestGate::RateCap) {
                return Some(GateBlock::RateCap { scope });
            }
        }
        if !h.host.has_vms {
            return Some(GateBlock::NoVms);
        }
        None
    }

    // ----- recovery ------------------------------------------------------

    fn start_attempt(&mut self, i: usize, now: Millis, out: &mut Vec<Action>) {
        if let Some(busy) = self.hosts[i].power_op {
            // One power operation per host at a time: start when it ends
            // (its result marks the host; its deadline bounds the wait).
            if let Some(r) = self.hosts[i].recovery.as_mut() {
                r.step(RecoveryStep::PowerChannelBusy);
                r.next_step_at = busy.op.deadline.max(now + 1);
            }
            return;
        }
        if let Some(r) = self.hosts[i].recovery.as_mut() {
            r.step(RecoveryStep::AttemptStarted);
            if !std::mem::take(&mut r.reread_off) {
                r.budget.start_attempt();
            }
            r.fence = None;
        } else {
            return;
        }
        self.start_power_op(i, PowerOpKind::Refresh, now, out);
    }

    fn attempt_failed(
        &mut self,
        i: usize,
        failure: AttemptFailure,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(r) = self.hosts[i].recovery.as_mut() else {
            return;
        };
        r.last_failure = Some(failure);
        let attempt = r.budget.used();
        let will_retry = r.budget.attempts_left();
        r.step(RecoveryStep::AttemptFailed);
        r.next_step_at = now + self.cfg.recovery_retry_delay_ms;
        out.push(Action::Emit(Event::RecoveryAttemptFailed {
            host: self.hosts[i].host.id,
            attempt,
            failure,
            will_retry,
        }));
        self.hosts[i].failed_reason = match failure {
            AttemptFailure::RefreshUnknown | AttemptFailure::ConfirmUnknown => {
                FailedReason::BmcUnreachable
            }
            AttemptFailure::StillOn => FailedReason::OffNotConfirmed,
            AttemptFailure::PowerOffFailed => FailedReason::RecoveryAttemptsExhausted,
        };
        self.fire(i, HaTrigger::RecoveryAttemptFailed, now, out);
        self.mark_host(i);
    }

    fn start_power_op(&mut self, i: usize, kind: PowerOpKind, now: Millis, out: &mut Vec<Action>) {
        let id = self.next_op();
        let timeout_ms = self.power_timeout(i);
        let h = &mut self.hosts[i];
        let version = StateVersion(h.version);
        let op_ref = OpRef {
            id,
            host: h.host.id,
            version,
        };
        h.power_op = Some(PendingPower {
            op: PendingOp {
                in_round: false,
                id,
                version,
                deadline: now + timeout_ms,
                started: now,
            },
            kind,
        });
        match kind {
            PowerOpKind::Poll
            | PowerOpKind::Refresh
            | PowerOpKind::ConfirmOff(_)
            | PowerOpKind::ReadAfterOn
            | PowerOpKind::ReadAfterUser => {
                if kind == PowerOpKind::Poll {
                    // Further syncs come with the cluster's rounds.
                    h.next_power_poll_at = Millis::MAX;
                }
                out.push(Action::ReadPower {
                    op: op_ref,
                    timeout_ms,
                });
            }
            PowerOpKind::Off(fence) => {
                let Some(r) = h.recovery.as_ref() else {
                    h.power_op = None;
                    return;
                };
                out.push(Action::PowerOff {
                    op: op_ref,
                    timeout_ms,
                    reason: PowerOffReason::Fence {
                        fence,
                        evidence: r.evidence.clone(),
                    },
                });
            }
            PowerOpKind::On => {
                // Not again before the next sync period, whatever happens.
                h.next_power_on_at = now + self.cfg.power_poll_interval_ms;
                out.push(Action::PowerOn {
                    op: op_ref,
                    timeout_ms,
                    reason: PowerOnReason::RecoveryCycle,
                })
            }
            PowerOpKind::User(UserPowerOp::On) => out.push(Action::PowerOn {
                op: op_ref,
                timeout_ms,
                reason: PowerOnReason::UserRequest,
            }),
            PowerOpKind::User(UserPowerOp::Off) => out.push(Action::PowerOff {
                op: op_ref,
                timeout_ms,
                reason: PowerOffReason::UserRequest,
            }),
            PowerOpKind::User(UserPowerOp::Restart) => out.push(Action::PowerCycle {
                op: op_ref,
                timeout_ms,
            }),
        }
        self.mark_host(i);
    }

    /// Issues the fence's power-off, unless a gate forbids it at this very
    /// moment: the partition (and its mass-failure guard) is evaluated
    /// first, so every input handled before this one, in this batch too,
    /// counts.
    fn issue_fence(&mut self, i: usize, now: Millis, out: &mut Vec<Action>) {
        let c = self.hosts[i].cluster;
        self.evaluate_partition(c, now, out);
        if self.hosts[i].ha != HaState::Recovering || self.hosts[i].recovery.is_none() {
            return;
        }
        if let Some(gate) = self.fence_block(i, now) {
            self.defer(i, gate, now, out);
            return;
        }
        let fence = self.next_fence();
        let c = self.hosts[i].cluster;
        let cluster = self.clusters[c].cluster.id;
        let host = self.hosts[i].host.id;
        let Some(r) = self.hosts[i].recovery.as_mut() else {
            return;
        };
        r.step(RecoveryStep::PowerOffIssued);
        r.fence = Some(fence);
        let attempt = r.budget.used();
        let evidence = r.evidence.clone();
        out.push(Action::Persist(Record::FenceIssued {
            fence,
            host,
            cluster,
            attempt,
            at: now,
            evidence: evidence.clone(),
        }));
        for scope in self.rate.record(cluster, now) {
            out.push(Action::Persist(Record::RateCapTripped { scope, at: now }));
            out.push(Action::Emit(Event::RateCapReached {
                scope,
                fences: self.rate.count(scope, now),
                window_ms: self.cfg.fence_rate.window_ms,
            }));
        }
        self.schedule_rate();
        out.push(Action::Emit(Event::FenceIssued {
            fence,
            host,
            cluster,
            attempt,
            evidence,
        }));
        self.start_power_op(i, PowerOpKind::Off(fence), now, out);
    }

    /// Tracks consecutive OFF readings not caused by our own power-off;
    /// true when this reading confirms an earlier one at least
    /// `fence_confirm_interval_ms` before it. Until then the host's power
    /// is read again when the interval has passed.
    fn off_confirmed_by_reads(&mut self, i: usize, read: PowerState, now: Millis) -> bool {
        let interval = self.cfg.fence_confirm_interval_ms;
        let h = &mut self.hosts[i];
        match read {
            PowerState::Off => {
                let first = *h.first_off_read_at.get_or_insert(now);
                if now.saturating_sub(first) >= interval {
                    return true;
                }
                h.next_power_poll_at = h.next_power_poll_at.min(first + interval);
                false
            }
            PowerState::On => {
                h.first_off_read_at = None;
                false
            }
            PowerState::Unknown => false,
        }
    }

    /// The host's pending power operation, if `op` is its answer (a stale or unknown answer is
    /// dropped): removed from the host, since its answer has come.
    fn take_power_op(&mut self, op: OpRef) -> Option<(usize, PendingPower)> {
        let i = self.host_index.get(op.host.0)?;
        let p = self.hosts[i].power_op.filter(|p| p.op.id == op.id)?;
        self.hosts[i].power_op = None;
        Some((i, p))
    }

    fn on_power_read(
        &mut self,
        op: OpRef,
        reading: PowerReading,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some((i, p)) = self.take_power_op(op) else {
            return;
        };
        self.power_read_done(i, p, reading, now, out);
        self.mark_host(i);
    }

    fn update_power(
        &mut self,
        i: usize,
        read: PowerState,
        out: &mut Vec<Action>,
    ) -> Option<HaTrigger> {
        let from = self.hosts[i].power;
        let (outcome, trigger) = fsm::power_transition(from, read);
        if let Outcome::Goto(to) = outcome {
            self.hosts[i].power = to;
            out.push(Action::Emit(Event::PowerStateChanged {
                host: self.hosts[i].host.id,
                from,
                to,
            }));
            let c = self.hosts[i].cluster;
            self.mark_cluster(c);
        }
        trigger
    }

    fn power_read_done(
        &mut self,
        i: usize,
        p: PendingPower,
        reading: PowerReading,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let read = match reading {
            PowerReading::On => PowerState::On,
            PowerReading::Off => PowerState::Off,
            PowerReading::Unknown | PowerReading::Unreachable => PowerState::Unknown,
        };
        match p.kind {
            PowerOpKind::Poll | PowerOpKind::ReadAfterUser | PowerOpKind::ReadAfterOn => {
                let trigger = self.update_power(i, read, out);
                // One OFF reading is not enough to call the host FENCED
                // (its VMs may then restart elsewhere): a BMC can report
                // OFF for a chassis that is on. After our own (user)
                // power-off one reading is; otherwise two readings
                // `fence_confirm_interval_ms` apart.
                let confirmed = p.kind == PowerOpKind::ReadAfterUser
                    || self.off_confirmed_by_reads(i, read, now);
                let trigger = match trigger {
                    Some(HaTrigger::PowerWentOff) if !confirmed => None,
                    None if read == PowerState::Off && confirmed => Some(HaTrigger::PowerWentOff),
                    t => t,
                };
                if p.kind == PowerOpKind::ReadAfterOn && read == PowerState::On {
                    self.set_power_on_owed(i, false, now, out);
                }
                if let Some(t) = trigger {
                    if t == HaTrigger::PowerCameOn {
                        self.hosts[i].quiet_until = now + self.quiet_period(i);
                    }
                    // A reading is a fact about the chassis: the power FSM
                    // and its consequences apply whatever the HA version.
                    {
                        self.fire(i, t, now, out);
                    }
                }
            }
            PowerOpKind::Refresh => {
                self.update_power(i, read, out);
                if self.hosts[i].ha != HaState::Recovering || self.hosts[i].recovery.is_none() {
                    return;
                }
                let confirmed = self.off_confirmed_by_reads(i, read, now);
                match read {
                    // `issue_fence` evaluates every gate right before the power-off.
                    PowerState::On => self.issue_fence(i, now, out),
                    PowerState::Off if !confirmed => {
                        // Already off? Read again after the confirm interval
                        // before believing it (no attempt spent).
                        let first = self.hosts[i].first_off_read_at.unwrap_or(now);
                        if let Some(r) = self.hosts[i].recovery.as_mut() {
                            r.step(RecoveryStep::OffNeedsConfirmation);
                            r.reread_off = true;
                            r.next_step_at = first + self.cfg.fence_confirm_interval_ms;
                        }
                    }
                    PowerState::Off => {
                        out.push(Action::Emit(Event::FenceConfirmed {
                            fence: None,
                            host: self.hosts[i].host.id,
                            how: OffConfirmation::AlreadyOff,
                        }));
                        self.fire(i, HaTrigger::PowerWentOff, now, out);
                    }
                    PowerState::Unknown => {
                        self.attempt_failed(i, AttemptFailure::RefreshUnknown, now, out)
                    }
                }
            }
            PowerOpKind::ConfirmOff(fence) => {
                self.update_power(i, read, out);
                let host = self.hosts[i].host.id;
                let in_flow = self.hosts[i]
                    .recovery
                    .as_ref()
                    .is_some_and(|r| r.fence == Some(fence));
                if read == PowerState::Off {
                    out.push(Action::Persist(Record::FenceResolved {
                        fence,
                        host,
                        outcome: FenceOutcome::ConfirmedOff,
                        at: now,
                    }));
                    out.push(Action::Emit(Event::FenceConfirmed {
                        fence: Some(fence),
                        host,
                        how: OffConfirmation::ReadAfterPowerOff,
                    }));
                    let previous = self.hosts[i].last_confirmed_fence_at.replace(now);
                    let refenced =
                        previous.filter(|&p| now.saturating_sub(p) < self.cfg.refence_holdoff_ms);
                    if let Some(previous_confirmed_at) = refenced {
                        // Fenced again soon after its last fence: whatever
                        // broke it is still broken. Powering it on would
                        // only start the next round of the loop, so it
                        // stays OFF until the operator powers it on.
                        out.push(Action::Emit(Event::LeftOffAfterRepeatedFence {
                            host,
                            fence,
                            previous_confirmed_at,
                            confirmed_at: now,
                            holdoff_ms: self.cfg.refence_holdoff_ms,
                        }));
                    } else if self.cfg.power_on_after_fence {
                        self.set_power_on_owed(i, true, now, out);
                        self.hosts[i].next_power_on_at = now;
                    }
                    self.fire(i, HaTrigger::FenceConfirmed, now, out);
                } else {
                    out.push(Action::Persist(Record::FenceResolved {
                        fence,
                        host,
                        outcome: FenceOutcome::NotConfirmed,
                        at: now,
                    }));
                    if in_flow {
                        let failure = if read == PowerState::On {
                            AttemptFailure::StillOn
                        } else {
                            AttemptFailure::ConfirmUnknown
                        };
                        self.attempt_failed(i, failure, now, out);
                    }
                }
            }
            PowerOpKind::Off(_) | PowerOpKind::On | PowerOpKind::User(_) => {
                debug_assert!(false, "power action answered with a reading");
            }
        }
    }

    fn on_power_action(
        &mut self,
        op: OpRef,
        outcome: PowerActionOutcome,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some((i, p)) = self.take_power_op(op) else {
            return;
        };
        self.power_action_done(i, p, outcome, now, out);
        self.mark_host(i);
    }

    fn power_action_done(
        &mut self,
        i: usize,
        p: PendingPower,
        outcome: PowerActionOutcome,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        match p.kind {
            PowerOpKind::Off(fence) => {
                // Accepted or not, only a chassis OFF read counts: read now.
                if let Some(r) = self.hosts[i].recovery.as_mut() {
                    if r.fence == Some(fence) {
                        r.step(RecoveryStep::PowerOffAnswered);
                    }
                }
                let _ = outcome;
                self.start_power_op(i, PowerOpKind::ConfirmOff(fence), now, out);
            }
            PowerOpKind::On => match outcome {
                PowerActionOutcome::Accepted => {
                    self.start_power_op(i, PowerOpKind::ReadAfterOn, now, out)
                }
                PowerActionOutcome::Failed(_) => {
                    self.hosts[i].next_power_on_at = now + self.cfg.power_poll_interval_ms;
                }
            },
            PowerOpKind::User(_) => self.start_power_op(i, PowerOpKind::ReadAfterUser, now, out),
            _ => debug_assert!(false, "reading answered with a power action result"),
        }
    }

    fn power_timed_out(&mut self, i: usize, p: PendingPower, now: Millis, out: &mut Vec<Action>) {
        match p.kind {
            PowerOpKind::Off(_) | PowerOpKind::On | PowerOpKind::User(_) => self.power_action_done(
                i,
                p,
                PowerActionOutcome::Failed(crate::io::PowerFailure::Timeout),
                now,
                out,
            ),
            _ => self.power_read_done(i, p, PowerReading::Unreachable, now, out),
        }
    }

    fn set_power_on_owed(&mut self, i: usize, owed: bool, now: Millis, out: &mut Vec<Action>) {
        if self.hosts[i].power_on_owed != owed {
            self.hosts[i].power_on_owed = owed;
            out.push(Action::Persist(Record::PowerOnOwed {
                host: self.hosts[i].host.id,
                owed,
                at: now,
            }));
        }
    }

    // ----- operator -------------------------------------------------------

    fn on_operator(&mut self, cmd: OperatorCommand, now: Millis, out: &mut Vec<Action>) {
        match cmd {
            OperatorCommand::AcknowledgeRateCap { scope } => {
                out.push(Action::Persist(Record::RateCapAcknowledged {
                    scope,
                    at: now,
                }));
                if self.rate.acknowledge(scope, now) {
                    out.push(Action::Emit(Event::RateCapCleared {
                        scope,
                        by: RateCapClearedBy::Acknowledged,
                    }));
                }
            }
            OperatorCommand::ConfirmHostOff { host } => {
                let Some(i) = self
                    .host_index
                    .get(host.0)
                    .filter(|&i| !self.hosts[i].removed)
                else {
                    out.push(Action::Emit(Event::OperatorCommandRejected {
                        host: Some(host),
                        reason: "unknown host".into(),
                    }));
                    return;
                };
                if self.hosts[i].ha != HaState::Failed {
                    out.push(Action::Emit(Event::OperatorCommandRejected {
                        host: Some(host),
                        reason: format!(
                            "host is {}, only a FAILED host can be confirmed off",
                            self.hosts[i].ha
                        ),
                    }));
                    return;
                }
                out.push(Action::Emit(Event::FenceConfirmed {
                    fence: None,
                    host,
                    how: OffConfirmation::Operator,
                }));
                self.fire(i, HaTrigger::OperatorConfirmedOff, now, out);
            }
            OperatorCommand::UserPower { host, op } => {
                let reject = |reason: &str, out: &mut Vec<Action>| {
                    out.push(Action::Emit(Event::OperatorCommandRejected {
                        host: Some(host),
                        reason: reason.to_string(),
                    }))
                };
                let Some(i) = self
                    .host_index
                    .get(host.0)
                    .filter(|&i| !self.hosts[i].removed)
                else {
                    return reject("unknown host", out);
                };
                if !self.quorum.is_open(now) {
                    return reject("coordinator is not quorate: no power actions", out);
                }
                if self.hosts[i].recovery.is_some()
                    || self.hosts[i].power_on_owed
                    || matches!(
                        self.hosts[i].power_op,
                        Some(PendingPower {
                            kind: PowerOpKind::Off(_) | PowerOpKind::ConfirmOff(_),
                            ..
                        })
                    )
                {
                    return reject("a recovery of this host is in progress", out);
                }
                if self.hosts[i].user_power.is_some() {
                    return reject("another power operation on this host is pending", out);
                }
                out.push(Action::Emit(Event::UserPowerRequested { host, op }));
                // Issued as soon as the host's current power operation (a
                // state read) has ended: one power operation per host.
                self.hosts[i].user_power = Some(op);
                self.mark_host(i);
            }
        }
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Coordinator>();
}
