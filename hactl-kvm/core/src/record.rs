//! Journal records: what the core persists so that a restarted coordinator
//! rebuilds its state, never repeats a fence already done and never forgets
//! a fence counted by the rate cap.

use crate::fsm::{HaState, PartitionState};
use crate::ids::{ClusterId, FenceId, HostId, Millis, StateVersion};
use crate::io::{Evidence, RateScope};
use serde::{Deserialize, Serialize};

/// The recorded outcome of a fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceOutcome {
    /// The chassis read OFF after the power-off.
    ConfirmedOff,
    /// Not confirmed (failed, timed out, still on, unreadable).
    NotConfirmed,
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "record")]
pub enum Record {
    /// A coordinator incarnation started.
    Started {
        /// Epoch (1 for the first start).
        epoch: u32,
        /// Driver time.
        at: Millis,
    },
    /// A host HA transition.
    HaTransition {
        /// Host.
        host: HostId,
        /// Cluster.
        cluster: ClusterId,
        /// Old state.
        from: HaState,
        /// New state.
        to: HaState,
        /// New version.
        version: StateVersion,
        /// Driver time.
        at: Millis,
    },
    /// A partition transition.
    PartitionTransition {
        /// Cluster.
        cluster: ClusterId,
        /// Old state.
        from: PartitionState,
        /// New state.
        to: PartitionState,
        /// Driver time.
        at: Millis,
    },
    /// A fence power-off is about to be issued (persisted before the action).
    FenceIssued {
        /// Fence id.
        fence: FenceId,
        /// Host.
        host: HostId,
        /// Cluster.
        cluster: ClusterId,
        /// Attempt number.
        attempt: u32,
        /// Driver time.
        at: Millis,
        /// Evidence.
        evidence: Evidence,
    },
    /// The outcome of a fence.
    FenceResolved {
        /// Fence id.
        fence: FenceId,
        /// Host.
        host: HostId,
        /// Outcome.
        outcome: FenceOutcome,
        /// Driver time.
        at: Millis,
    },
    /// Whether the second half of a recovery power cycle (power-on) is still
    /// owed to a fenced host.
    PowerOnOwed {
        /// Host.
        host: HostId,
        /// Owed or settled.
        owed: bool,
        /// Driver time.
        at: Millis,
    },
    /// A rate cap was reached.
    RateCapTripped {
        /// Scope.
        scope: RateScope,
        /// Driver time.
        at: Millis,
    },
    /// An operator acknowledged a rate cap.
    RateCapAcknowledged {
        /// Scope.
        scope: RateScope,
        /// Driver time.
        at: Millis,
    },
}

impl Record {
    /// The driver time the record carries.
    pub fn at(&self) -> Millis {
        match self {
            Record::Started { at, .. }
            | Record::HaTransition { at, .. }
            | Record::PartitionTransition { at, .. }
            | Record::FenceIssued { at, .. }
            | Record::FenceResolved { at, .. }
            | Record::PowerOnOwed { at, .. }
            | Record::RateCapTripped { at, .. }
            | Record::RateCapAcknowledged { at, .. } => *at,
        }
    }
}
