//! Journal records: what the core persists so that a restarted coordinator
//! rebuilds its state, never repeats a fence already done and never forgets
//! a fence counted by the rate cap.

use crate::fsm::{HaState, PartitionState};
use crate::ids::{ClusterId, FenceId, HostId, Millis, StateVersion};
use crate::io::{Evidence, Operator, OperatorCommand, OperatorOverride, RateScope};
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
    /// An operator command the core accepted, with who ran it (before the
    /// records of what it changed). `SetOverride` commands are also state:
    /// a restart replays them.
    OperatorCommand {
        /// Who.
        by: Operator,
        /// What.
        command: OperatorCommand,
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
            | Record::RateCapAcknowledged { at, .. }
            | Record::OperatorCommand { at, .. } => *at,
        }
    }
}

/// Compacts a journal's records without a running coordinator (offline
/// `hactl-kvm journal compact`): the records that make
/// [`crate::Coordinator::recover`] rebuild the same state, for every host
/// the journal knows, whether or not an inventory has named it yet
/// ([`crate::Coordinator::compact_records`] covers only inventoried hosts).
///
/// Kept: the highest epoch (so the next start still gets a new one); per
/// host its last HA state at its highest version and an owed power-on;
/// every fence issued within `keep_ms` before `now` or never resolved, with
/// its resolution; rate-cap trips and acknowledgements within `keep_ms`.
/// `keep_ms` must cover the daemon's longer of the rate window and the
/// re-fence hold-off.
pub fn compact_offline(records: &[Record], now: Millis, keep_ms: Millis) -> Vec<Record> {
    use std::collections::{BTreeMap, HashSet};
    #[derive(Default)]
    struct HostState {
        cluster: Option<ClusterId>,
        last: Option<HaState>,
        version: u64,
        power_on_owed: bool,
    }
    let horizon = now.saturating_sub(keep_ms);
    let mut epoch = 0;
    let mut hosts: BTreeMap<HostId, HostState> = BTreeMap::new();
    let mut resolved: HashSet<FenceId> = HashSet::new();
    let mut overrides: BTreeMap<OperatorOverride, Operator> = BTreeMap::new();
    for r in records {
        match r {
            Record::OperatorCommand {
                by,
                command: OperatorCommand::SetOverride { setting, on },
                ..
            } => {
                if *on {
                    overrides.insert(*setting, by.clone());
                } else {
                    overrides.remove(setting);
                }
            }
            Record::Started { epoch: e, .. } => epoch = epoch.max(*e),
            Record::HaTransition {
                host,
                cluster,
                to,
                version,
                ..
            } => {
                let h = hosts.entry(*host).or_default();
                h.cluster = Some(*cluster);
                h.last = Some(*to);
                h.version = h.version.max(version.0);
            }
            Record::PowerOnOwed { host, owed, .. } => {
                hosts.entry(*host).or_default().power_on_owed = *owed;
            }
            Record::FenceResolved { fence, .. } => {
                resolved.insert(*fence);
            }
            _ => {}
        }
    }
    let keep: HashSet<FenceId> = records
        .iter()
        .filter_map(|r| match r {
            Record::FenceIssued { fence, at, .. } if *at > horizon || !resolved.contains(fence) => {
                Some(*fence)
            }
            _ => None,
        })
        .collect();
    let mut out = vec![Record::Started { epoch, at: now }];
    for (id, h) in &hosts {
        if let (Some(cluster), Some(state)) = (h.cluster, h.last) {
            out.push(Record::HaTransition {
                host: *id,
                cluster,
                from: state,
                to: state,
                version: StateVersion(h.version),
                at: now,
            });
        }
        if h.power_on_owed {
            out.push(Record::PowerOnOwed {
                host: *id,
                owed: true,
                at: now,
            });
        }
    }
    out.extend(
        overrides
            .into_iter()
            .map(|(setting, by)| Record::OperatorCommand {
                by,
                command: OperatorCommand::SetOverride { setting, on: true },
                at: now,
            }),
    );
    out.extend(
        records
            .iter()
            .filter(|r| match r {
                Record::FenceIssued { fence, .. } | Record::FenceResolved { fence, .. } => {
                    keep.contains(fence)
                }
                Record::RateCapTripped { at, .. } | Record::RateCapAcknowledged { at, .. } => {
                    *at > horizon
                }
                _ => false,
            })
            .cloned(),
    );
    out
}
