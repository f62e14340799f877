//! Events: typed payloads for every transition and every safety decision,
//! delivered to subscribers (syslog, JSON lines, CloudStack) by the runtime.

use crate::fsm::{HaState, HaTrigger, PartitionState, PowerState};
use crate::ids::{ClusterId, FenceId, HostId, Millis, StateVersion};
use crate::io::{ActivityVerdict, CannotTellReason, Evidence, RateScope, UserPowerOp, Window};
use serde::{Deserialize, Serialize};

/// Why a partition is not ACTIVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum InactiveReason {
    /// The cluster is disabled.
    ClusterDisabled,
    /// The pod is disabled (or unknown).
    PodDisabled,
    /// The zone is disabled (or unknown).
    ZoneDisabled,
    /// Fewer than the required number of AVAILABLE hosts.
    TooFewAvailableHosts {
        /// Hosts counted.
        available: u32,
        /// Required.
        required: u32,
    },
    /// The mass-failure guard tripped.
    MassFailure(MassFailureReason),
}

/// Why the mass-failure guard tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum MassFailureReason {
    /// Too many hosts turned SUSPECT within the window (or are failing
    /// health checks at the same time).
    SuspectShare {
        /// Hosts affected.
        affected: u32,
        /// Hosts in the partition.
        total: u32,
    },
    /// Storage heartbeats dropped together.
    HeartbeatCliff {
        /// Fresh heartbeats before.
        before: u32,
        /// Fresh heartbeats now.
        after: u32,
        /// Hosts counted.
        total: u32,
    },
}

/// A safety gate that blocked a fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "gate")]
pub enum GateBlock {
    /// The coordinator is not quorate.
    NoQuorum,
    /// The coordinator started (or its clock jumped) too recently.
    StartupGrace {
        /// When fencing becomes possible.
        until: Millis,
    },
    /// The fence-rate cap is reached.
    RateCap {
        /// Which cap.
        scope: RateScope,
    },
    /// The partition is not ACTIVE (mass failure or other reason).
    PartitionInactive,
    /// Too many recoveries already running.
    RecoveryConcurrency,
    /// The host has no VMs: nothing to recover.
    NoVms,
    /// Another power operation on this host is still pending.
    HostBusy,
}

/// How a host came to be confirmed off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OffConfirmation {
    /// The pre-fence power refresh already read OFF.
    AlreadyOff,
    /// A power read after our power-off read OFF.
    ReadAfterPowerOff,
    /// A power reading (sync) saw the chassis OFF outside a recovery.
    ObservedOff,
    /// The operator confirmed it.
    Operator,
}

/// Why a host is FAILED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailedReason {
    /// The recovery retry budget was used up.
    RecoveryAttemptsExhausted,
    /// The BMC was unreachable or answered UNKNOWN at the last attempt.
    BmcUnreachable,
    /// Power-off was accepted but the chassis never read OFF.
    OffNotConfirmed,
}

/// Why a recovery attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptFailure {
    /// The pre-fence refresh could not read the power state.
    RefreshUnknown,
    /// The power-off failed or timed out.
    PowerOffFailed,
    /// After the power-off the chassis still read ON.
    StillOn,
    /// After the power-off the power could not be read.
    ConfirmUnknown,
}

/// How an activity round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundOutcome {
    /// A sample saw the heartbeat advance.
    ActivitySeen,
    /// Enough samples agreed "dead".
    Dead,
    /// Neither.
    Inconclusive,
}

/// How a rate-cap stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateCapClearedBy {
    /// Operator acknowledgement.
    Acknowledged,
    /// The window passed.
    WindowPassed,
}

/// An event with its typed payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// The coordinator started (fresh or rebuilt from the journal).
    CoordinatorStarted {
        /// Epoch of this incarnation.
        epoch: u32,
        /// Rebuilt from journal records.
        recovered: bool,
        /// Journal records replayed.
        records: u64,
        /// Fences still counted by the rate cap.
        fences_in_window: u32,
        /// Fences whose outcome was not recorded (verified by a power read).
        open_fences: u32,
    },
    /// A host's HA state changed.
    HaStateChanged {
        /// Host.
        host: HostId,
        /// Its cluster.
        cluster: ClusterId,
        /// Old state.
        from: HaState,
        /// New state.
        to: HaState,
        /// What caused it.
        trigger: HaTrigger,
        /// The new state version.
        version: StateVersion,
        /// CloudStack `hostha.hastate` equivalent of `to`.
        cloudstack: String,
    },
    /// A host's power state changed (power-state sync or a read after an
    /// operation).
    PowerStateChanged {
        /// Host.
        host: HostId,
        /// Old state.
        from: PowerState,
        /// New state.
        to: PowerState,
    },
    /// A partition's HA state changed.
    PartitionStateChanged {
        /// Cluster.
        cluster: ClusterId,
        /// Old state.
        from: PartitionState,
        /// New state.
        to: PartitionState,
        /// Why it is not ACTIVE (empty when ACTIVE or NONE).
        reasons: Vec<InactiveReason>,
    },
    /// One activity sample arrived.
    ActivitySample {
        /// Suspect.
        host: HostId,
        /// Checker.
        checker: HostId,
        /// Verdict.
        verdict: ActivityVerdict,
        /// Window observed.
        window: Window,
    },
    /// An activity round ended.
    ActivityRoundConcluded {
        /// Suspect.
        host: HostId,
        /// Outcome.
        outcome: RoundOutcome,
        /// Dead samples.
        dead: u32,
        /// Samples in the round.
        samples: u32,
        /// Delay before the next round (0 if none).
        next_round_in_ms: Millis,
    },
    /// A checker's verdict was discarded.
    CheckerVerdictDiscarded {
        /// Checker.
        checker: HostId,
        /// Suspect.
        host: HostId,
        /// Why.
        reason: CannotTellReason,
    },
    /// No AVAILABLE peer could check a suspect.
    NoCheckerAvailable {
        /// Suspect.
        host: HostId,
    },
    /// A fence power-off is being issued.
    FenceIssued {
        /// Fence id.
        fence: FenceId,
        /// Host.
        host: HostId,
        /// Cluster.
        cluster: ClusterId,
        /// Attempt number (1-based).
        attempt: u32,
        /// The evidence.
        evidence: Evidence,
    },
    /// The host is confirmed off.
    FenceConfirmed {
        /// The fence, if we issued one.
        fence: Option<FenceId>,
        /// Host.
        host: HostId,
        /// How.
        how: OffConfirmation,
    },
    /// A recovery attempt failed.
    RecoveryAttemptFailed {
        /// Host.
        host: HostId,
        /// Attempt (1-based).
        attempt: u32,
        /// Why.
        failure: AttemptFailure,
        /// Whether another attempt follows.
        will_retry: bool,
    },
    /// A fence decision was deferred by a safety gate.
    FenceDeferred {
        /// Host.
        host: HostId,
        /// Gate.
        gate: GateBlock,
    },
    /// A fence-rate cap was reached: fencing stops in that scope.
    RateCapReached {
        /// Scope.
        scope: RateScope,
        /// Fences counted in the window.
        fences: u32,
        /// Window length.
        window_ms: Millis,
    },
    /// A fence-rate cap stop ended.
    RateCapCleared {
        /// Scope.
        scope: RateScope,
        /// How.
        by: RateCapClearedBy,
    },
    /// The mass-failure guard tripped for a partition.
    MassFailureDetected {
        /// Cluster.
        cluster: ClusterId,
        /// Why.
        reason: MassFailureReason,
    },
    /// The mass-failure guard cleared for a partition.
    MassFailureCleared {
        /// Cluster.
        cluster: ClusterId,
    },
    /// A host needs the operator (FAILED).
    OperatorActionRequired {
        /// Host.
        host: HostId,
        /// Why.
        reason: FailedReason,
    },
    /// The coordinator's quorum changed.
    QuorumChanged {
        /// Quorate now.
        quorate: bool,
    },
    /// A user-triggered power operation is being issued.
    UserPowerRequested {
        /// Host.
        host: HostId,
        /// Operation.
        op: UserPowerOp,
    },
    /// An operator command was refused.
    OperatorCommandRejected {
        /// Host, if any.
        host: Option<HostId>,
        /// Why, for the operator.
        reason: String,
    },
    /// The driver's clock went backwards or jumped forward.
    ClockAnomaly {
        /// Previous time.
        previous: Millis,
        /// New time.
        now: Millis,
        /// Fencing is held off until then.
        fencing_held_until: Millis,
    },
    /// A suspect host has no VMs: it is left SUSPECT, never fenced.
    RecoveryNotNeeded {
        /// Host.
        host: HostId,
    },
    /// A fenced host was left OFF (FENCED) instead of being powered on
    /// again, because this fence came within `refence_holdoff_ms` of its
    /// previous confirmed fence. Powering it on is the operator's call
    /// (user power-on).
    LeftOffAfterRepeatedFence {
        /// Host.
        host: HostId,
        /// The fence just confirmed.
        fence: FenceId,
        /// When the previous fence of this host was confirmed.
        previous_confirmed_at: Millis,
        /// When this fence was confirmed.
        confirmed_at: Millis,
        /// The hold-off in force.
        holdoff_ms: Millis,
    },
}

/// Delivers events to any number of subscribers (the runtime registers
/// syslog, JSON-lines and CloudStack sinks; tests register closures).
#[derive(Default)]
pub struct Subscribers {
    sinks: Vec<EventSink>,
}

/// One subscriber.
pub type EventSink = Box<dyn FnMut(&Event) + Send>;

impl Subscribers {
    /// Adds a subscriber.
    pub fn subscribe<F: FnMut(&Event) + Send + 'static>(&mut self, sink: F) {
        self.sinks.push(Box::new(sink));
    }

    /// Delivers one event to every subscriber.
    pub fn publish(&mut self, event: &Event) {
        for s in &mut self.sinks {
            s(event);
        }
    }

    /// Delivers every [`crate::Action::Emit`] of a batch; returns how many
    /// events were delivered.
    pub fn deliver(&mut self, actions: &[crate::Action]) -> usize {
        let mut n = 0;
        for a in actions {
            if let crate::Action::Emit(e) = a {
                self.publish(e);
                n += 1;
            }
        }
        n
    }
}

impl std::fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscribers")
            .field("sinks", &self.sinks.len())
            .finish()
    }
}
