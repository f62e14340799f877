//! The three state machines, as explicit enums and pure transition functions.
//!
//! The coordinator decides *which* trigger happened (from results, inventory
//! and timers) and then asks these functions *where* it leads; the functions
//! have no side effects and are tested exhaustively over every
//! (state, trigger, context) combination. `docs/model.md` holds the same
//! tables in prose, and a test checks the document against these functions.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Per-host HA state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HaState {
    /// The host's partition has HA disabled or is INACTIVE.
    None,
    /// Eligibility and health are being determined (also: the quiet period
    /// after power-on, during which failed health checks are tolerated).
    Initializing,
    /// Healthy, eligible, power ON, in an ACTIVE partition. Only these hosts
    /// take HA VMs and act as activity checkers.
    Available,
    /// In an ACTIVE partition but cannot be protected: maintenance, disabled,
    /// no out-of-band management, or power not ON.
    Ineligible,
    /// The most recent health check failed; an activity check is pending.
    Suspect,
    /// An activity-check round is collecting samples.
    Checking,
    /// Activity evidence says dead: refreshing power and fencing.
    Recovering,
    /// The chassis was confirmed OFF (by our fence, already off, or an
    /// operator's confirmation): its VMs can safely be restarted elsewhere.
    Fenced,
    /// Recovery could not be completed (attempts exhausted, BMC unreachable
    /// or answering UNKNOWN): waits for the operator or a passing health check.
    Failed,
}

impl HaState {
    /// Every state, in table order.
    pub const ALL: [HaState; 9] = [
        HaState::None,
        HaState::Initializing,
        HaState::Available,
        HaState::Ineligible,
        HaState::Suspect,
        HaState::Checking,
        HaState::Recovering,
        HaState::Fenced,
        HaState::Failed,
    ];

    /// The upper-case name used in the model document and events.
    pub fn name(self) -> &'static str {
        match self {
            HaState::None => "NONE",
            HaState::Initializing => "INITIALIZING",
            HaState::Available => "AVAILABLE",
            HaState::Ineligible => "INELIGIBLE",
            HaState::Suspect => "SUSPECT",
            HaState::Checking => "CHECKING",
            HaState::Recovering => "RECOVERING",
            HaState::Fenced => "FENCED",
            HaState::Failed => "FAILED",
        }
    }

    /// The CloudStack `hostha.hastate` value an operator would see for the
    /// nearest CloudStack state (see the mapping table in `docs/model.md`).
    /// `activity_seen` is true for a SUSPECT host whose last activity round
    /// saw activity (alive but unmanageable: CloudStack's `Degraded`).
    pub fn cloudstack_hastate(self, activity_seen: bool) -> &'static str {
        match self {
            HaState::None => "Disabled",
            HaState::Initializing => "Ineligible",
            HaState::Available => "Available",
            HaState::Ineligible => "Ineligible",
            HaState::Suspect if activity_seen => "Degraded",
            HaState::Suspect => "Suspect",
            HaState::Checking => "Checking",
            HaState::Recovering => "Fencing",
            HaState::Fenced => "Fenced",
            HaState::Failed => "Fencing",
        }
    }

    /// May a VM from an HA compute offering be allocated here? (Design:
    /// only AVAILABLE.)
    pub fn allows_ha_allocation(self) -> bool {
        self == HaState::Available
    }

    /// May a VM from a non-HA compute offering be allocated here? (Design:
    /// NONE, INELIGIBLE, INITIALIZING and AVAILABLE.)
    pub fn allows_non_ha_allocation(self) -> bool {
        matches!(
            self,
            HaState::None | HaState::Ineligible | HaState::Initializing | HaState::Available
        )
    }

    /// States a host only passes through while the core works on it.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            HaState::Initializing | HaState::Suspect | HaState::Checking | HaState::Recovering
        )
    }
}

impl fmt::Display for HaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What happened to a host, as far as the HA FSM is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HaTrigger {
    /// The partition became ACTIVE.
    PartitionActivated,
    /// The partition left ACTIVE (INACTIVE or HA disabled).
    PartitionDeactivated,
    /// Maintenance, disabled, error, or out-of-band management turned off.
    EligibilityLost,
    /// All eligibility conditions hold again.
    EligibilityRegained,
    /// A health check passed.
    HealthPassed,
    /// A health check failed or timed out.
    HealthFailed,
    /// An activity-check round starts (a check slot and a checker were found).
    ActivityRoundStarted,
    /// A round saw activity: the host is alive but unmanageable.
    ActivitySeen,
    /// A round ended without enough agreeing samples either way.
    ActivityInconclusive,
    /// N of M samples agreed "dead" and every safety gate is open.
    DeadConfirmed,
    /// Dead was confirmed but a safety gate is closed (quorum, grace, rate
    /// cap, mass failure, recovery slots): back to SUSPECT, fresh evidence later.
    FenceDeferred,
    /// This host, acting as checker, could not read the shared storage.
    CheckerStorageUnreadable,
    /// Power FSM OFF -> ON.
    PowerCameOn,
    /// Power FSM UNKNOWN -> ON (BMC connectivity regained).
    PowerRegained,
    /// A confirmed chassis OFF reading (ON/UNKNOWN -> OFF, or the read after
    /// our power-off, or "already OFF" at the pre-fence refresh).
    PowerWentOff,
    /// Power FSM ON/OFF -> UNKNOWN (BMC unreachable or answering unknown).
    PowerLost,
    /// A recovery attempt failed (refresh not ON, power-off failed or timed
    /// out, OFF not confirmed).
    RecoveryAttemptFailed,
    /// The operator confirmed the host is powered off.
    OperatorConfirmedOff,
    /// The chassis read OFF after a fence power-off we issued. Applies in
    /// every state: it is a fact that the host's VMs are no longer running,
    /// even if the host left RECOVERING while the power-off was in flight.
    FenceConfirmed,
}

impl HaTrigger {
    /// Every trigger, in table order.
    pub const ALL: [HaTrigger; 19] = [
        HaTrigger::PartitionActivated,
        HaTrigger::PartitionDeactivated,
        HaTrigger::EligibilityLost,
        HaTrigger::EligibilityRegained,
        HaTrigger::HealthPassed,
        HaTrigger::HealthFailed,
        HaTrigger::ActivityRoundStarted,
        HaTrigger::ActivitySeen,
        HaTrigger::ActivityInconclusive,
        HaTrigger::DeadConfirmed,
        HaTrigger::FenceDeferred,
        HaTrigger::CheckerStorageUnreadable,
        HaTrigger::PowerCameOn,
        HaTrigger::PowerRegained,
        HaTrigger::PowerWentOff,
        HaTrigger::PowerLost,
        HaTrigger::RecoveryAttemptFailed,
        HaTrigger::OperatorConfirmedOff,
        HaTrigger::FenceConfirmed,
    ];

    /// The snake_case name used in the model document and events.
    pub fn name(self) -> &'static str {
        match self {
            HaTrigger::PartitionActivated => "partition_activated",
            HaTrigger::PartitionDeactivated => "partition_deactivated",
            HaTrigger::EligibilityLost => "eligibility_lost",
            HaTrigger::EligibilityRegained => "eligibility_regained",
            HaTrigger::HealthPassed => "health_passed",
            HaTrigger::HealthFailed => "health_failed",
            HaTrigger::ActivityRoundStarted => "activity_round_started",
            HaTrigger::ActivitySeen => "activity_seen",
            HaTrigger::ActivityInconclusive => "activity_inconclusive",
            HaTrigger::DeadConfirmed => "dead_confirmed",
            HaTrigger::FenceDeferred => "fence_deferred",
            HaTrigger::CheckerStorageUnreadable => "checker_storage_unreadable",
            HaTrigger::PowerCameOn => "power_came_on",
            HaTrigger::PowerRegained => "power_regained",
            HaTrigger::PowerWentOff => "power_went_off",
            HaTrigger::PowerLost => "power_lost",
            HaTrigger::RecoveryAttemptFailed => "recovery_attempt_failed",
            HaTrigger::OperatorConfirmedOff => "operator_confirmed_off",
            HaTrigger::FenceConfirmed => "fence_confirmed",
        }
    }
}

impl fmt::Display for HaTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The facts about a host that some transitions depend on (the "guard"
/// column of the transition table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct HaContext {
    /// The host's partition is ACTIVE.
    pub partition_active: bool,
    /// Resource state Enabled and out-of-band management enabled.
    pub eligible: bool,
    /// Power FSM is ON.
    pub power_on: bool,
    /// Power FSM is UNKNOWN (BMC unreachable or answering neither on nor off).
    pub power_unknown: bool,
    /// The host runs VMs.
    pub has_vms: bool,
    /// Inside the quiet period after power-on.
    pub in_quiet_period: bool,
    /// A fence power-off has already been issued in the current recovery
    /// (the flow is committed and must run to its end).
    pub power_off_committed: bool,
    /// The recovery retry budget is not used up.
    pub attempts_left: bool,
}

impl HaContext {
    /// Every combination of the context flags (for exhaustive tests).
    pub fn all() -> impl Iterator<Item = HaContext> {
        (0u16..256)
            .map(|bits| HaContext {
                partition_active: bits & 1 != 0,
                eligible: bits & 2 != 0,
                power_on: bits & 4 != 0,
                has_vms: bits & 8 != 0,
                in_quiet_period: bits & 16 != 0,
                power_off_committed: bits & 32 != 0,
                attempts_left: bits & 64 != 0,
                power_unknown: bits & 128 != 0,
            })
            // Power is ON, OFF or UNKNOWN: never ON and UNKNOWN at once.
            .filter(|c| !(c.power_on && c.power_unknown))
    }
}

/// The result of applying a trigger to a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome<S> {
    /// Move to this (different) state.
    Goto(S),
    /// The trigger is valid here and changes nothing.
    Stay,
    /// The trigger does not apply to this state and is deliberately ignored
    /// (for example a stale activity result for a host no longer CHECKING).
    Ignored,
}

/// Phase of one recovery flow while its host is RECOVERING.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecoveryPhase {
    /// Waiting to start an attempt (or the confirming re-read of an OFF
    /// reading, or for the host's power channel to be free).
    Waiting,
    /// Reading the chassis power right before the power-off.
    Refreshing,
    /// The fence's power-off is issued.
    PoweringOff,
    /// Reading the chassis power after the power-off.
    Confirming,
}

impl RecoveryPhase {
    /// Every phase.
    pub const ALL: [RecoveryPhase; 4] = [
        RecoveryPhase::Waiting,
        RecoveryPhase::Refreshing,
        RecoveryPhase::PoweringOff,
        RecoveryPhase::Confirming,
    ];
    /// A power-off has been issued in this attempt (leaving the flow must
    /// not forget it).
    pub fn committed(self) -> bool {
        matches!(self, RecoveryPhase::PoweringOff | RecoveryPhase::Confirming)
    }
}

/// What happens to a recovery flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecoveryStep {
    /// An attempt starts: the power refresh is read.
    AttemptStarted,
    /// Another power operation of the host is still pending: wait for it.
    PowerChannelBusy,
    /// The refresh read ON and every gate allowed it: the power-off left.
    PowerOffIssued,
    /// The refresh read OFF without confirmation: read again after
    /// `fence_confirm_interval_ms` (no attempt spent).
    OffNeedsConfirmation,
    /// The power-off was answered (or timed out): confirm with a read.
    PowerOffAnswered,
    /// The attempt failed (power unknown, still ON, unreadable).
    AttemptFailed,
}

impl RecoveryStep {
    /// Every step.
    pub const ALL: [RecoveryStep; 6] = [
        RecoveryStep::AttemptStarted,
        RecoveryStep::PowerChannelBusy,
        RecoveryStep::PowerOffIssued,
        RecoveryStep::OffNeedsConfirmation,
        RecoveryStep::PowerOffAnswered,
        RecoveryStep::AttemptFailed,
    ];
}

/// The recovery phase machine: off is issued only from a refresh, confirmed
/// only after an issued off, and every failure goes back to waiting.
pub fn recovery_transition(phase: RecoveryPhase, step: RecoveryStep) -> Outcome<RecoveryPhase> {
    use RecoveryPhase as P;
    use RecoveryStep as E;
    match (phase, step) {
        (P::Waiting, E::AttemptStarted) => Outcome::Goto(P::Refreshing),
        (P::Waiting, E::PowerChannelBusy) => Outcome::Stay,
        (P::Refreshing, E::PowerOffIssued) => Outcome::Goto(P::PoweringOff),
        (P::Refreshing, E::OffNeedsConfirmation) => Outcome::Goto(P::Waiting),
        (P::PoweringOff, E::PowerOffAnswered) => Outcome::Goto(P::Confirming),
        (P::Refreshing | P::Confirming, E::AttemptFailed) => Outcome::Goto(P::Waiting),
        _ => Outcome::Ignored,
    }
}

/// The per-host HA transition function.
pub fn ha_transition(state: HaState, trigger: HaTrigger, ctx: HaContext) -> Outcome<HaState> {
    use HaState as S;
    use HaTrigger as T;
    // A host that would become managed again must also be eligible and ON.
    let managed = |target: HaState| {
        if ctx.eligible && ctx.power_on {
            target
        } else {
            S::Ineligible
        }
    };
    let raw = match (trigger, state) {
        (T::PartitionActivated, S::None) => Outcome::Goto(managed(S::Initializing)),
        (T::PartitionActivated, _) => Outcome::Ignored,

        (T::PartitionDeactivated, S::None) => Outcome::Ignored,
        // FENCED is a fact about the chassis that VM-HA relies on and FAILED
        // is an open request to the operator: neither is forgotten.
        (T::PartitionDeactivated, S::Fenced | S::Failed) => Outcome::Stay,
        (T::PartitionDeactivated, _) => Outcome::Goto(S::None),

        (T::EligibilityLost, S::None | S::Ineligible) => Outcome::Stay,
        (T::EligibilityLost, _) => Outcome::Goto(S::Ineligible),

        (T::EligibilityRegained, S::Ineligible) => {
            if ctx.eligible && ctx.power_on {
                Outcome::Goto(S::Initializing)
            } else {
                Outcome::Stay
            }
        }
        (T::EligibilityRegained, S::None) => Outcome::Stay,
        (T::EligibilityRegained, _) => Outcome::Ignored,

        (T::HealthPassed, S::None | S::Ineligible | S::Available) => Outcome::Stay,
        (T::HealthPassed, S::Initializing | S::Suspect | S::Checking) => {
            Outcome::Goto(managed(S::Available))
        }
        (T::HealthPassed, S::Recovering) => {
            if ctx.power_off_committed {
                Outcome::Stay
            } else {
                Outcome::Goto(managed(S::Available))
            }
        }
        (T::HealthPassed, S::Fenced | S::Failed) => Outcome::Goto(managed(S::Initializing)),

        (T::HealthFailed, S::Available) => Outcome::Goto(S::Suspect),
        (T::HealthFailed, S::Initializing) => {
            if ctx.in_quiet_period {
                Outcome::Stay
            } else {
                Outcome::Goto(S::Suspect)
            }
        }
        // An INELIGIBLE host that is eligible but whose BMC cannot be read
        // and that now fails health checks may be a host that died with its
        // BMC: it enters the failure flow, which cannot fence it and ends
        // in FAILED, asking the operator, instead of staying silently
        // INELIGIBLE.
        (T::HealthFailed, S::Ineligible) => {
            if ctx.eligible && ctx.power_unknown {
                Outcome::Goto(S::Suspect)
            } else {
                Outcome::Stay
            }
        }
        (T::HealthFailed, _) => Outcome::Stay,

        (T::ActivityRoundStarted, S::Suspect) => Outcome::Goto(S::Checking),
        (T::ActivityRoundStarted, _) => Outcome::Ignored,

        (T::ActivitySeen | T::ActivityInconclusive, S::Checking) => Outcome::Goto(S::Suspect),
        (T::ActivitySeen | T::ActivityInconclusive, _) => Outcome::Ignored,

        (T::DeadConfirmed, S::Checking) => Outcome::Goto(S::Recovering),
        (T::DeadConfirmed, _) => Outcome::Ignored,

        (T::FenceDeferred, S::Checking) => Outcome::Goto(S::Suspect),
        (T::FenceDeferred, S::Recovering) => {
            if ctx.power_off_committed {
                Outcome::Ignored
            } else {
                Outcome::Goto(S::Suspect)
            }
        }
        (T::FenceDeferred, _) => Outcome::Ignored,

        (T::CheckerStorageUnreadable, S::Available) => Outcome::Goto(S::Suspect),
        (T::CheckerStorageUnreadable, _) => Outcome::Stay,

        (T::PowerCameOn, S::None | S::Recovering) => Outcome::Stay,
        (T::PowerCameOn, S::Ineligible) => {
            if ctx.eligible {
                Outcome::Goto(S::Initializing)
            } else {
                Outcome::Stay
            }
        }
        (T::PowerCameOn, S::Initializing) => {
            if ctx.eligible {
                Outcome::Stay
            } else {
                Outcome::Goto(S::Ineligible)
            }
        }
        (T::PowerCameOn, _) => {
            if ctx.eligible {
                Outcome::Goto(S::Initializing)
            } else {
                Outcome::Goto(S::Ineligible)
            }
        }

        (T::PowerRegained, S::Ineligible) => {
            if ctx.eligible {
                Outcome::Goto(S::Initializing)
            } else {
                Outcome::Stay
            }
        }
        // FENCED/FAILED: reaching the BMC again says nothing about the host
        // (design). SUSPECT/CHECKING/RECOVERING: the BMC's reachability says
        // nothing about the host's health either, so the evidence goes on.
        (T::PowerRegained, _) => Outcome::Stay,

        (T::PowerWentOff, S::None | S::Ineligible | S::Fenced) => Outcome::Stay,
        (T::PowerWentOff, S::Recovering | S::Failed) => Outcome::Goto(S::Fenced),
        (T::PowerWentOff, S::Available | S::Initializing | S::Suspect | S::Checking) => {
            if ctx.has_vms {
                Outcome::Goto(S::Fenced)
            } else {
                Outcome::Goto(S::Ineligible)
            }
        }

        (T::PowerLost, S::Available | S::Initializing) => Outcome::Goto(S::Ineligible),
        (T::PowerLost, _) => Outcome::Stay,

        (T::RecoveryAttemptFailed, S::Recovering) => {
            if ctx.attempts_left {
                Outcome::Stay
            } else {
                Outcome::Goto(S::Failed)
            }
        }
        (T::RecoveryAttemptFailed, _) => Outcome::Ignored,

        (T::OperatorConfirmedOff, S::Failed) => Outcome::Goto(S::Fenced),
        (T::OperatorConfirmedOff, _) => Outcome::Ignored,

        (T::FenceConfirmed, S::Fenced) => Outcome::Stay,
        (T::FenceConfirmed, _) => Outcome::Goto(S::Fenced),
    };
    // Outside an ACTIVE partition only NONE, FENCED and FAILED exist.
    match raw {
        Outcome::Goto(target)
            if !ctx.partition_active && !matches!(target, S::None | S::Fenced | S::Failed) =>
        {
            if state == S::None {
                Outcome::Stay
            } else {
                Outcome::Goto(S::None)
            }
        }
        other => other,
    }
}

/// Per-partition (cluster) HA state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PartitionState {
    /// HA disabled for the partition by the administrator.
    None,
    /// HA enabled and conditions permit HA operation.
    Active,
    /// HA enabled but conditions do not permit it (see the reasons).
    Inactive,
}

impl PartitionState {
    /// Every state.
    pub const ALL: [PartitionState; 3] = [
        PartitionState::None,
        PartitionState::Active,
        PartitionState::Inactive,
    ];
    /// Upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            PartitionState::None => "NONE",
            PartitionState::Active => "ACTIVE",
            PartitionState::Inactive => "INACTIVE",
        }
    }
}

impl fmt::Display for PartitionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What happened to a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionTrigger {
    /// The administrator enabled HA for the partition.
    HaEnabled,
    /// The administrator disabled HA for the partition (or removed it).
    HaDisabled,
    /// Zone, pod and cluster enabled, enough AVAILABLE hosts, no mass failure.
    ConditionsMet,
    /// One of those conditions no longer holds.
    ConditionsLost,
}

impl PartitionTrigger {
    /// Every trigger.
    pub const ALL: [PartitionTrigger; 4] = [
        PartitionTrigger::HaEnabled,
        PartitionTrigger::HaDisabled,
        PartitionTrigger::ConditionsMet,
        PartitionTrigger::ConditionsLost,
    ];
    /// snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            PartitionTrigger::HaEnabled => "ha_enabled",
            PartitionTrigger::HaDisabled => "ha_disabled",
            PartitionTrigger::ConditionsMet => "conditions_met",
            PartitionTrigger::ConditionsLost => "conditions_lost",
        }
    }
}

/// The partition transition function.
pub fn partition_transition(
    state: PartitionState,
    trigger: PartitionTrigger,
) -> Outcome<PartitionState> {
    use PartitionState as P;
    use PartitionTrigger as T;
    match (state, trigger) {
        (P::None, T::HaEnabled) => Outcome::Goto(P::Inactive),
        (P::None, _) => Outcome::Ignored,
        (P::Active, T::HaDisabled) => Outcome::Goto(P::None),
        (P::Active, T::ConditionsLost) => Outcome::Goto(P::Inactive),
        (P::Active, T::ConditionsMet | T::HaEnabled) => Outcome::Stay,
        (P::Inactive, T::HaDisabled) => Outcome::Goto(P::None),
        (P::Inactive, T::ConditionsMet) => Outcome::Goto(P::Active),
        (P::Inactive, T::ConditionsLost | T::HaEnabled) => Outcome::Stay,
    }
}

/// Per-host power state (the power-management FSM of the design).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PowerState {
    /// Chassis power on.
    On,
    /// Chassis power off.
    Off,
    /// Cannot be determined (initial state; BMC unreachable, slow or
    /// answering something else). The design's "UNSUPPORTED" in its event
    /// list is this state.
    Unknown,
}

impl PowerState {
    /// Every state.
    pub const ALL: [PowerState; 3] = [PowerState::On, PowerState::Off, PowerState::Unknown];
    /// Upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            PowerState::On => "ON",
            PowerState::Off => "OFF",
            PowerState::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The power FSM transition function: a reading moves the FSM to the read
/// state, and each real change has a consequence for the HA FSM.
pub fn power_transition(
    state: PowerState,
    read: PowerState,
) -> (Outcome<PowerState>, Option<HaTrigger>) {
    use PowerState as P;
    match (state, read) {
        (a, b) if a == b => (Outcome::Stay, None),
        (P::Off, P::On) => (Outcome::Goto(P::On), Some(HaTrigger::PowerCameOn)),
        (P::Unknown, P::On) => (Outcome::Goto(P::On), Some(HaTrigger::PowerRegained)),
        (_, P::Off) => (Outcome::Goto(P::Off), Some(HaTrigger::PowerWentOff)),
        (_, P::Unknown) => (Outcome::Goto(P::Unknown), Some(HaTrigger::PowerLost)),
        _ => unreachable!("all power pairs covered"),
    }
}

/// The system event the design (or this model) names for a transition, as
/// carried by [`crate::Event::HaStateChanged`] (plus the specific events
/// listed in `docs/model.md`).
pub fn transition_label(from: HaState, to: HaState, trigger: HaTrigger) -> &'static str {
    use HaState as S;
    match trigger {
        HaTrigger::CheckerStorageUnreadable => {
            return "as a checker, could not read the shared storage"
        }
        HaTrigger::FenceDeferred => {
            return "dead, but a safety gate is closed: fresh evidence later"
        }
        HaTrigger::ActivitySeen => {
            return "activity seen: alive but unmanageable, re-check after backoff"
        }
        HaTrigger::ActivityInconclusive => return "round inconclusive: re-check after backoff",
        HaTrigger::OperatorConfirmedOff => return "operator confirmed the host is off",
        _ => {}
    }
    match (from, to) {
        (S::Suspect, S::Checking) => "activity check being performed",
        (S::Checking, S::Recovering) => "failed activity check, recovery being attempted",
        (S::Checking, S::Suspect) => {
            "activity seen or inconclusive: alive but unmanageable, re-check later"
        }
        (S::Recovering, S::Failed) => "recovery failed: operator action required",
        (S::Recovering, S::Fenced) => "recovery succeeded: chassis confirmed OFF",
        (S::Fenced, S::Initializing) => "FENCED host powered on / passed a health check",
        (S::Failed, S::Initializing) => "FAILED host powered on / passed a health check",
        (S::Failed, S::Fenced) => "FAILED host confirmed OFF (BMC back or operator)",
        (S::Available, S::Suspect) => "health check failed",
        (S::Initializing, S::Suspect) => "health check failed after the quiet period",
        (S::Suspect | S::Checking | S::Recovering, S::Available) => {
            "health check passed before the state action completed"
        }
        (S::Initializing, S::Available) => "health check passed",
        (S::Ineligible, S::Suspect) => "health check failed while the BMC cannot be read",
        (_, S::Ineligible) => "cannot be protected (maintenance, no OOBM, power not ON)",
        (_, S::None) => "partition left ACTIVE",
        (S::None, _) => "partition became ACTIVE",
        (_, S::Fenced) => "chassis confirmed OFF",
        (_, S::Initializing) => "re-assess eligibility and health",
        _ => "state changed",
    }
}

fn ctx_flags(c: &HaContext) -> [(&'static str, bool); 7] {
    [
        ("eligible", c.eligible),
        ("power_on", c.power_on),
        ("power_unknown", c.power_unknown),
        ("has_vms", c.has_vms),
        ("in_quiet_period", c.in_quiet_period),
        ("power_off_committed", c.power_off_committed),
        ("attempts_left", c.attempts_left),
    ]
}

fn outcome_text(o: Outcome<HaState>) -> String {
    match o {
        Outcome::Goto(s) => s.name().to_string(),
        Outcome::Stay => "(stay)".to_string(),
        Outcome::Ignored => "(ignored)".to_string(),
    }
}

/// Renders the per-host transition table (for an ACTIVE partition) as the
/// Markdown table in `docs/model.md`: one row per (state, trigger, guard).
/// The guard lists only the context flags that change the outcome.
pub fn render_ha_table() -> String {
    let mut s = String::from(
        "| From | Trigger | Guard | To | Event (HaStateChanged + label) |\n|---|---|---|---|---|\n",
    );
    let contexts: Vec<HaContext> = HaContext::all().filter(|c| c.partition_active).collect();
    for state in HaState::ALL {
        for trigger in HaTrigger::ALL {
            // Which flags matter?
            let mut relevant = [false; 7];
            for c in &contexts {
                let base = ha_transition(state, trigger, *c);
                for (k, flag) in relevant.iter_mut().enumerate() {
                    let mut d = *c;
                    match k {
                        0 => d.eligible = !d.eligible,
                        1 => d.power_on = !d.power_on,
                        2 => d.power_unknown = !d.power_unknown,
                        3 => d.has_vms = !d.has_vms,
                        4 => d.in_quiet_period = !d.in_quiet_period,
                        5 => d.power_off_committed = !d.power_off_committed,
                        _ => d.attempts_left = !d.attempts_left,
                    }
                    if d.power_on && d.power_unknown {
                        continue;
                    }
                    if ha_transition(state, trigger, d) != base {
                        *flag = true;
                    }
                }
            }
            let mut rows: Vec<(String, Outcome<HaState>)> = Vec::new();
            for c in &contexts {
                let guard: Vec<String> = ctx_flags(c)
                    .iter()
                    .zip(relevant.iter())
                    .filter(|(_, r)| **r)
                    .map(|((n, v), _)| if *v { n.to_string() } else { format!("!{n}") })
                    .collect();
                let guard = if guard.is_empty() {
                    "-".to_string()
                } else {
                    guard.join(" && ")
                };
                let o = ha_transition(state, trigger, *c);
                if !rows.iter().any(|(g, _)| *g == guard) {
                    rows.push((guard, o));
                }
            }
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            for (guard, o) in rows {
                let event = match o {
                    Outcome::Goto(to) => transition_label(state, to, trigger),
                    _ => "-",
                };
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    state.name(),
                    trigger.name(),
                    guard,
                    outcome_text(o),
                    event
                ));
            }
        }
    }
    s
}

/// Renders the partition transition table.
pub fn render_partition_table() -> String {
    let mut s = String::from("| From | Trigger | To | Event |\n|---|---|---|---|\n");
    for state in PartitionState::ALL {
        for trigger in PartitionTrigger::ALL {
            let o = partition_transition(state, trigger);
            let (to, ev) = match o {
                Outcome::Goto(t) => (t.name().to_string(), "PartitionStateChanged (with reasons)"),
                Outcome::Stay => ("(stay)".to_string(), "-"),
                Outcome::Ignored => ("(ignored)".to_string(), "-"),
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                state.name(),
                trigger.name(),
                to,
                ev
            ));
        }
    }
    s
}

/// Renders the power transition table.
pub fn render_power_table() -> String {
    let mut s =
        String::from("| From | Reading | To | HA trigger | Event |\n|---|---|---|---|---|\n");
    for state in PowerState::ALL {
        for read in PowerState::ALL {
            let (o, t) = power_transition(state, read);
            let to = match o {
                Outcome::Goto(t) => t.name().to_string(),
                _ => "(stay)".to_string(),
            };
            let trig = t.map_or("-".to_string(), |t| t.name().to_string());
            let ev = if matches!(o, Outcome::Goto(_)) {
                "PowerStateChanged"
            } else {
                "-"
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                state.name(),
                read.name(),
                to,
                trig,
                ev
            ));
        }
    }
    s
}
