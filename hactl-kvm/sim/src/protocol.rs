//! The simulator's side of the conversation with the coordinator: what the
//! core can ask the data center to do, what the data center answers, and
//! what the core hands back besides requests. `core_adapter` translates
//! between these and the real core's types, so the engine stays readable
//! and the translation is in one place.

use crate::clock::SimTime;
use crate::world::HostIdx;

/// An operation the core asked the data center to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Ask the host's agent whether it (and its storage) is healthy.
    Health { host: HostIdx },
    /// Have `checker` watch `target`'s heartbeat on shared storage for `window_ms`.
    Activity {
        target: HostIdx,
        checker: HostIdx,
        window_ms: u64,
    },
    /// Read chassis power through the host's BMC.
    PowerRead { host: HostIdx },
    /// A power operation through the host's BMC; `fence` is set when the
    /// core means it as a fence, with the evidence it decided on.
    Power {
        host: HostIdx,
        op: PowerOp,
        fence: Option<FenceEvidence>,
        /// The coordinator's epoch: the fencing token the BMC driver checks.
        epoch: u32,
    },
}

/// The activity evidence a fence carries, in simulator time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceEvidence {
    /// Windows of the samples that said "dead".
    pub dead_windows: Vec<(SimTime, SimTime)>,
    /// Samples that said "alive" (a fence must have none).
    pub alive_samples: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerOp {
    Off,
    On,
    Cycle,
    Reset,
}

/// What the data center answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The agent answered and is healthy.
    Healthy,
    /// The host is up but its agent refuses connections.
    AgentDown,
    /// The agent answered but reports a problem (its storage).
    AgentUnhealthy,
    /// No answer within the core's timeout (any kind of request).
    TimedOut,
    /// The heartbeat advanced during the window.
    Alive,
    /// The heartbeat did not advance during the window.
    Dead,
    /// The checker could not read the shared storage.
    CheckerCannotReadStorage,
    /// The checker could not be reached to run the check.
    CheckerUnreachable,
    PowerIsOn,
    PowerIsOff,
    /// The BMC does not answer at all (network, or no power).
    BmcUnreachable,
    /// The BMC accepted the power operation.
    PowerDone,
    /// The BMC driver refused the power operation: its fencing token is
    /// older than the current coordinator's.
    PowerRefused,
}

/// Everything the core hands back to the engine from one call.
pub enum CoreOut<Tag> {
    Request {
        tag: Tag,
        request: Request,
        timeout_ms: u64,
    },
    /// Call the core again (with a tick) no later than this instant.
    WakeAt(SimTime),
    /// One journal record, to be appended (through hactl-journal) before
    /// anything after it is carried out.
    Persist(Box<hactl_core::Record>),
    /// The host's HA state changed.
    Transition {
        host: HostIdx,
        from: &'static str,
        to: &'static str,
        why: String,
    },
    /// The core claims this host is confirmed OFF; `after_our_off` when it
    /// says it read OFF after its own power-off.
    FenceConfirmed { host: HostIdx, after_our_off: bool },
    /// The core's mass-failure guard tripped (or cleared) for a cluster.
    MassFailureGuard {
        cluster: usize,
        tripped: bool,
        text: Box<dyn Fn() -> String>,
    },
    /// Any other event worth a timeline line (formatted only if the
    /// timeline is kept); `kind` is counted in the summary.
    Note {
        kind: &'static str,
        text: Box<dyn Fn() -> String>,
    },
}
