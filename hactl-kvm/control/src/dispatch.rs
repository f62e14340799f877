//! Sans-IO glue between the protocol and the decision core, for the
//! daemon's [`crate::ControlHandler`]: which core input a request becomes,
//! what the core's answer means for the operator, and the read-only
//! reports built from the core's views.
//!
//! The daemon calls, under its core lock: [`core_input`] -> feed the input
//! with `Coordinator::handle` -> carry out the actions as usual (journal
//! first) -> [`outcome`] on the same actions -> answer.

use crate::protocol::{
    ControlError, HistoryEntry, HostHistory, HostRow, JournalStatus, PowerRequest, RateCapStatus,
    Reply, Request, StatusReport, Target,
};
use hactl_core::{
    Action, ClusterId, Coordinator, Event, HaState, HostId, Input, Millis, OperatorCommand,
    RateCapClearedBy, RateScope, Record, UserPowerOp,
};

/// The core input for a state-changing request. Read-only requests and
/// those the core has no input for yet are errors here (the daemon answers
/// queries itself).
pub fn core_input(core: &Coordinator, request: &Request) -> Result<Input, ControlError> {
    let known = |host: HostId| {
        core.host(host)
            .map(|_| ())
            .ok_or(ControlError::UnknownHost { host })
    };
    let cmd = match *request {
        Request::AckCap { scope } => {
            if let RateScope::Partition(c) = scope {
                if core.partition(c).is_none() {
                    return Err(ControlError::UnknownPartition { partition: c });
                }
            }
            OperatorCommand::AcknowledgeRateCap { scope }
        }
        Request::ConfirmOff { host } => {
            known(host)?;
            OperatorCommand::ConfirmHostOff { host }
        }
        Request::Power { host, op } => {
            known(host)?;
            let op = match op {
                PowerRequest::On => UserPowerOp::On,
                PowerRequest::Off => UserPowerOp::Off,
                PowerRequest::Cycle => UserPowerOp::Restart,
                PowerRequest::Status => {
                    return Err(ControlError::BadRequest {
                        detail: "power status is a read, not a core command".into(),
                    })
                }
            };
            OperatorCommand::UserPower { host, op }
        }
        Request::Enable { target } | Request::Disable { target } => {
            let what = match target {
                Target::Partition(c) => c.to_string(),
                Target::Host(h) => h.to_string(),
            };
            return Err(ControlError::Unsupported {
                detail: format!(
                    "enable/disable of {what}: the core takes HA enablement from the inventory \
                     (CloudStack); a local override is not implemented yet"
                ),
            });
        }
        Request::Maintenance { host, .. } => {
            return Err(ControlError::Unsupported {
                detail: format!(
                    "maintenance of {host}: set it in CloudStack (the core takes resource \
                     state from the inventory); a local override is not implemented yet"
                ),
            });
        }
        Request::Status
        | Request::Hosts { .. }
        | Request::HostHistory { .. }
        | Request::Events { .. }
        | Request::Role => {
            return Err(ControlError::BadRequest {
                detail: "a query, not a core command".into(),
            })
        }
        Request::SetRole { .. } => {
            return Err(ControlError::BadRequest {
                detail: "a role change is the daemon's, not a core command".into(),
            })
        }
    };
    Ok(Input::Operator(cmd))
}

fn scope_name(s: RateScope) -> String {
    match s {
        RateScope::Global => "global".into(),
        RateScope::Partition(c) => c.to_string(),
    }
}

/// What the core's actions for an operator command mean: the core's own
/// refusal, or exactly what changed and whether it was journaled.
pub fn outcome(request: &Request, actions: &[Action]) -> Result<Reply, ControlError> {
    let mut changes = Vec::new();
    let mut journaled = false;
    for a in actions {
        match a {
            Action::Persist(_) => journaled = true,
            Action::Emit(Event::OperatorCommandRejected { reason, host }) => {
                return Err(ControlError::Refused {
                    reason: match host {
                        Some(h) => format!("{h}: {reason}"),
                        None => reason.clone(),
                    },
                })
            }
            Action::Emit(Event::HaStateChanged {
                host, from, to, ..
            }) => changes.push(format!("{host}: {from} -> {to}")),
            Action::Emit(Event::FenceConfirmed { host, .. }) => {
                changes.push(format!("{host}: confirmed off by the operator"))
            }
            Action::Emit(Event::RateCapCleared {
                scope,
                by: RateCapClearedBy::Acknowledged,
            }) => changes.push(format!(
                "rate cap {} cleared: fencing resumes",
                scope_name(*scope)
            )),
            Action::Emit(Event::UserPowerRequested { host, op }) => changes.push(format!(
                "{host}: power {} requested (issued through the core, result in `hactl-kvm events`)",
                match op {
                    UserPowerOp::On => "on",
                    UserPowerOp::Off => "off",
                    UserPowerOp::Restart => "cycle",
                }
            )),
            _ => {}
        }
    }
    if changes.is_empty() {
        if let Request::AckCap { scope } = request {
            changes.push(format!(
                "rate cap {} acknowledged (it was not tripped; fences before now no longer count)",
                scope_name(*scope)
            ));
        }
    }
    Ok(Reply::Applied { changes, journaled })
}

/// The partitions the core knows hosts of, in id order.
fn clusters(core: &Coordinator) -> Vec<ClusterId> {
    let mut c: Vec<ClusterId> = core.hosts().iter().map(|h| h.cluster).collect();
    c.sort();
    c.dedup();
    c
}

/// `status` from the core's views. Partitions are those with hosts.
pub fn status_report(
    core: &Coordinator,
    now: Millis,
    uptime_s: u64,
    journal: JournalStatus,
) -> StatusReport {
    let cfg = core.config().fence_rate;
    let cl = clusters(core);
    let cap = |scope: RateScope, limit: u32| RateCapStatus {
        scope,
        fences_in_window: core.fences_in_window(scope, now),
        limit,
        tripped: core.rate_cap_tripped(scope),
    };
    let mut rate_caps = vec![cap(RateScope::Global, cfg.global)];
    rate_caps.extend(
        cl.iter()
            .map(|c| cap(RateScope::Partition(*c), cfg.per_partition)),
    );
    StatusReport {
        quorate: core.is_quorate(),
        epoch: core.epoch(),
        uptime_s,
        partitions: cl.iter().filter_map(|c| core.partition(*c)).collect(),
        counts: core.state_counts(),
        rate_caps,
        journal,
    }
}

/// `hosts` rows from the core's views; the daemon fills in what only it
/// knows (read times, last checks, pending operation).
pub fn host_rows(
    core: &Coordinator,
    partition: Option<ClusterId>,
    state: Option<HaState>,
) -> Vec<HostRow> {
    core.hosts()
        .into_iter()
        .filter(|h| partition.map_or(true, |p| h.cluster == p))
        .filter(|h| state.map_or(true, |s| h.ha == s))
        .map(|view| HostRow {
            view,
            power_read_at_unix_ms: None,
            last_health: None,
            last_round: None,
            pending: None,
        })
        .collect()
}

/// A host's journal records, oldest first.
pub fn host_history(records: &[Record], host: HostId) -> HostHistory {
    let entries = records
        .iter()
        .filter(|r| match r {
            Record::HaTransition { host: h, .. }
            | Record::FenceIssued { host: h, .. }
            | Record::FenceResolved { host: h, .. }
            | Record::PowerOnOwed { host: h, .. } => *h == host,
            _ => false,
        })
        .map(|r| HistoryEntry {
            at: r.at(),
            record: r.clone(),
        })
        .collect();
    HostHistory { host, entries }
}
