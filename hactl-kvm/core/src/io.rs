//! What goes into the core ([`Input`]) and what comes out ([`Action`]).

use crate::event::Event;
use crate::ids::{ClusterId, FenceId, HostId, Millis, OpRef};
use crate::inventory::{Inventory, InventoryChange};
use crate::record::Record;
use serde::{Deserialize, Serialize};

/// A time interval `[from, to]` in the driver's monotonic milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// Start (inclusive).
    pub from: Millis,
    /// End (inclusive).
    pub to: Millis,
}

/// Result of a health check (KVM agent connectivity and self-test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthOutcome {
    /// The agent answered and reported itself healthy.
    Passed,
    /// The agent could not be reached.
    AgentUnreachable,
    /// The agent answered but reported a problem (e.g. cannot write its
    /// storage heartbeat).
    AgentUnhealthy,
    /// The driver gave up waiting (the core also times checks out itself).
    Timeout,
}

/// Why an activity check could not tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CannotTellReason {
    /// The checker host could not read the shared storage. The checker
    /// itself becomes SUSPECT and its verdict is discarded.
    CheckerStorageUnreadable,
    /// The check did not complete in time.
    Timeout,
    /// The checker host could not be reached to run the check.
    CheckerUnreachable,
    /// No heartbeat record exists for the target (never a reason to fence).
    NoHeartbeatRecord,
}

/// What a checker host saw of the suspect's storage heartbeat during the
/// sample window (a relative check: did the heartbeat advance within the
/// window, judged on the checker's own clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict", content = "reason")]
pub enum ActivityVerdict {
    /// The heartbeat advanced during the window: the host is alive.
    Alive,
    /// The heartbeat did not advance during the whole window.
    Dead,
    /// Could not tell. Never counts as dead.
    CannotTell(CannotTellReason),
}

/// A power reading from the BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerReading {
    /// Chassis power is on.
    On,
    /// Chassis power is off (confirmed by the BMC).
    Off,
    /// The BMC answered something that is neither on nor off.
    Unknown,
    /// The BMC could not be reached (or refused the credentials).
    Unreachable,
}

/// Why a power action failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerFailure {
    /// The BMC could not be reached.
    Unreachable,
    /// The BMC rejected the command (completion code, HTTP 4xx ...).
    Rejected,
    /// Authentication failed.
    AuthFailed,
    /// The operation did not complete in time (the core also times power
    /// operations out itself and counts that as a failure).
    Timeout,
}

/// Result of a power action (off, on, cycle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "failure")]
pub enum PowerActionOutcome {
    /// The BMC accepted the command. This is NOT a confirmation: the core
    /// always reads the power state afterwards.
    Accepted,
    /// The command failed.
    Failed(PowerFailure),
}

/// A power operation an operator asks for through the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserPowerOp {
    /// Power on.
    On,
    /// Power off.
    Off,
    /// Power cycle (restart).
    Restart,
}

/// Scope of a fence-rate cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scope", content = "cluster")]
pub enum RateScope {
    /// The whole coordinator.
    Global,
    /// One partition.
    Partition(ClusterId),
}

/// Who ran an operator command: the kernel's credentials of the control
/// socket's peer (never what the client says about itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operator {
    /// User id.
    pub uid: u32,
    /// The user's name, when the daemon could look it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.user {
            Some(u) => write!(f, "{u} (uid {})", self.uid),
            None => write!(f, "uid {}", self.uid),
        }
    }
}

/// What an HA override applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum OverrideScope {
    /// A partition (cluster): HA off for all its hosts.
    Partition(ClusterId),
    /// One host: it becomes INELIGIBLE.
    Host(HostId),
}

/// A local operator override of what the inventory (CloudStack) says. An
/// override can only take protection away (HA off, maintenance); clearing
/// it gives the inventory's own setting back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "setting")]
pub enum OperatorOverride {
    /// HA disabled for a partition or a host.
    HaDisabled {
        /// What.
        scope: OverrideScope,
    },
    /// The host is in maintenance (INELIGIBLE: never checked or fenced).
    Maintenance {
        /// The host.
        host: HostId,
    },
}

/// Commands from an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum OperatorCommand {
    /// Acknowledge a fence-rate-cap alert: fencing resumes in that scope and
    /// fences before the acknowledgement no longer count.
    AcknowledgeRateCap {
        /// Which cap.
        scope: RateScope,
    },
    /// The operator confirms that a FAILED host is powered off (e.g. pulled
    /// the plug): it becomes FENCED.
    ConfirmHostOff {
        /// The host.
        host: HostId,
    },
    /// A user-triggered power operation.
    UserPower {
        /// The host.
        host: HostId,
        /// The operation.
        op: UserPowerOp,
    },
    /// Sets (`on`) or clears an operator override.
    SetOverride {
        /// Which override.
        setting: OperatorOverride,
        /// True to set it, false to clear it.
        on: bool,
    },
}

/// Everything the core can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "input")]
pub enum Input {
    /// Time passed (also run any due timers). Every input does this first.
    Tick,
    /// The full inventory (replaces what the core knew).
    Inventory(Inventory),
    /// One inventory change.
    InventoryChange(InventoryChange),
    /// Result of a [`Action::RunHealthCheck`].
    HealthResult {
        /// Echo of the action's `op`.
        op: OpRef,
        /// Outcome.
        outcome: HealthOutcome,
    },
    /// Result of a [`Action::RunActivityCheck`].
    ActivityResult {
        /// Echo of the action's `op`.
        op: OpRef,
        /// The checker that ran it (echo of the action's `checker`).
        checker: HostId,
        /// What it saw.
        verdict: ActivityVerdict,
        /// The interval the checker actually observed, in the driver's clock.
        window: Window,
    },
    /// Result of a [`Action::ReadPower`].
    PowerReadResult {
        /// Echo of the action's `op`.
        op: OpRef,
        /// Reading.
        reading: PowerReading,
    },
    /// Result of [`Action::PowerOff`], [`Action::PowerOn`] or [`Action::PowerCycle`].
    PowerActionResult {
        /// Echo of the action's `op`.
        op: OpRef,
        /// Outcome.
        outcome: PowerActionOutcome,
    },
    /// The coordinator's quorum (cluster membership) changed.
    QuorumChanged {
        /// True when this coordinator is in the quorate partition.
        quorate: bool,
    },
    /// How many hosts of a partition have a fresh storage heartbeat (one
    /// directory listing of the shared heartbeat area). Feeds the
    /// mass-failure guard's heartbeat-cliff detection; optional.
    HeartbeatCensus {
        /// The partition.
        cluster: ClusterId,
        /// Hosts whose heartbeat advanced recently.
        fresh: u32,
        /// Hosts counted.
        total: u32,
    },
    /// An operator command, with who ran it (journaled with every command
    /// the core accepts).
    Operator {
        /// Who.
        by: Operator,
        /// What.
        command: OperatorCommand,
    },
}

/// The samples that justified a fence, carried on the power-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The suspect.
    pub host: HostId,
    /// Every sample of the deciding round, in order.
    pub samples: Vec<EvidenceSample>,
    /// How many "dead" samples were required.
    pub dead_required: u32,
    /// When the decision was made.
    pub decided_at: Millis,
}

impl Evidence {
    /// Number of samples that said dead.
    pub fn dead_samples(&self) -> usize {
        self.samples
            .iter()
            .filter(|s| s.verdict == ActivityVerdict::Dead)
            .count()
    }
    /// The interval covered by the dead samples (first start to last end).
    pub fn span(&self) -> Option<Window> {
        let dead = self
            .samples
            .iter()
            .filter(|s| s.verdict == ActivityVerdict::Dead);
        let from = dead.clone().map(|s| s.window.from).min()?;
        let to = dead.map(|s| s.window.to).max()?;
        Some(Window { from, to })
    }
}

/// One activity sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceSample {
    /// The checker host.
    pub checker: HostId,
    /// What it saw.
    pub verdict: ActivityVerdict,
    /// The window it observed.
    pub window: Window,
}

/// Why the core powers a host off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum PowerOffReason {
    /// A fence: recovery of a host that activity evidence showed dead.
    Fence {
        /// The fence id (fence log, rate cap).
        fence: FenceId,
        /// The samples that justified it.
        evidence: Evidence,
    },
    /// An operator asked for it.
    UserRequest,
}

/// Why the core powers a host on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerOnReason {
    /// Second half of the recovery power cycle, after OFF was confirmed.
    RecoveryCycle,
    /// An operator asked for it.
    UserRequest,
}

/// Everything the core asks its driver to do. Actions are ordered: a
/// [`Action::Persist`] must be durable before any later action of the same
/// batch is carried out (the fence record precedes its power-off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Check the host's agent.
    RunHealthCheck {
        /// Operation (echo it in the result).
        op: OpRef,
        /// The core abandons the check after this long.
        timeout_ms: Millis,
    },
    /// Ask `checker` whether `op.host`'s storage heartbeat advances during
    /// a window of `window_ms`.
    RunActivityCheck {
        /// Operation; `op.host` is the suspect.
        op: OpRef,
        /// The AVAILABLE peer that runs the check.
        checker: HostId,
        /// How long to watch the heartbeat.
        window_ms: Millis,
        /// The core abandons the check after this long (CannotTell).
        timeout_ms: Millis,
    },
    /// Read chassis power through the BMC.
    ReadPower {
        /// Operation.
        op: OpRef,
        /// Time bound.
        timeout_ms: Millis,
    },
    /// Power the chassis off (hard off, no OS shutdown).
    PowerOff {
        /// Operation.
        op: OpRef,
        /// Time bound.
        timeout_ms: Millis,
        /// Fence (with evidence) or user request.
        reason: PowerOffReason,
    },
    /// Power the chassis on.
    PowerOn {
        /// Operation.
        op: OpRef,
        /// Time bound.
        timeout_ms: Millis,
        /// Why.
        reason: PowerOnReason,
    },
    /// Power cycle (user-triggered restart only; recovery is off, confirm,
    /// on).
    PowerCycle {
        /// Operation.
        op: OpRef,
        /// Time bound.
        timeout_ms: Millis,
    },
    /// Deliver an event to subscribers.
    Emit(Event),
    /// Append a record to the journal (fsync'ed) before going on.
    Persist(Record),
}

impl Action {
    /// True for actions that change a chassis' power (off, on, cycle).
    pub fn is_power_change(&self) -> bool {
        matches!(
            self,
            Action::PowerOff { .. } | Action::PowerOn { .. } | Action::PowerCycle { .. }
        )
    }
    /// True for a fencing power-off.
    pub fn is_fence(&self) -> bool {
        matches!(
            self,
            Action::PowerOff {
                reason: PowerOffReason::Fence { .. },
                ..
            }
        )
    }
}
