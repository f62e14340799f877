//! The coordinator: owns the state of every host and partition, turns
//! inputs into FSM triggers, consults the safety gates and emits actions.
//!
//! This module holds the types and the public API; each part of the work
//! is an `impl Coordinator` block of its own submodule: `dispatch` (clock,
//! timers, cluster rounds, input routing), `restore` (restart from the
//! journal, compaction), `inventory`, `partition` (ACTIVE/INACTIVE, the
//! mass-failure guard), `transitions` (firing HA triggers), `scheduling`,
//! `health`, `activity` (rounds and evidence), `recovery` (attempts, power
//! operations, the gates at emission; its phases are `fsm::RecoveryPhase`)
//! and `operator`.

mod activity;
mod dispatch;
mod health;
mod inventory;
mod operator;
mod partition;
mod recovery;
mod restore;
mod scheduling;
mod transitions;

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
    Operator, OperatorCommand, OperatorOverride, OverrideScope, PowerActionOutcome, PowerOffReason,
    PowerOnReason, PowerReading, RateScope, UserPowerOp, Window,
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
    /// Time of the host's last HA transition record.
    last_transition_at: Option<Millis>,
    /// A confirmed fence whose consequences (power-on owed, FENCED) were
    /// never journaled: the journal ends, or the host's next transition is
    /// missing, right after its `FenceResolved`. With the confirmed-fence
    /// time it replaced (so re-confirming it is not mistaken for a second
    /// fence by the re-fence hold-off).
    confirmed_unapplied: Option<(FenceId, Option<Millis>)>,
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
    /// Operator overrides in force, with who set them.
    overrides: BTreeMap<OperatorOverride, Operator>,
    /// Hosts and clusters as the inventory describes them (before the
    /// overrides), to re-apply when an override changes.
    inventory_hosts: HashMap<HostId, Host>,
    inventory_clusters: HashMap<ClusterId, Cluster>,
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
            overrides: BTreeMap::new(),
            inventory_hosts: HashMap::new(),
            inventory_clusters: HashMap::new(),
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
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Coordinator>();
}
