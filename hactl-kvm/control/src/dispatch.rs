//! Sans-IO glue between the protocol and the decision core, for the
//! daemon's [`crate::ControlHandler`]: which core input a request becomes,
//! what the core's answer means for the operator, and the read-only
//! reports built from the core's views.
//!
//! The daemon calls, in its loop: [`core_input`] -> feed the input
//! with `Coordinator::handle` -> carry out the actions as usual (journal
//! first) -> [`outcome`] on the same actions -> answer.

use crate::protocol::{
    ControlError, HistoryEntry, HostHistory, HostRow, JournalStatus, PowerRequest, RateCapStatus,
    Reply, Request, StatusReport, Target,
};
use hactl_core::{
    Action, ClusterId, Coordinator, Event, HaState, HostId, Input, Millis, Operator,
    OperatorCommand, OperatorOverride, OverrideScope, RateCapClearedBy, RateScope, Record,
    UserPowerOp,
};

/// The operator behind a peer's uid: the uid, and its user name when the
/// user database knows it.
pub fn operator_of(uid: u32) -> Operator {
    Operator {
        uid,
        user: nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name),
    }
}

fn scope_of(target: Target) -> OverrideScope {
    match target {
        Target::Partition(c) => OverrideScope::Partition(c),
        Target::Host(h) => OverrideScope::Host(h),
    }
}

/// The core input for a state-changing request, run by `by`. Read-only
/// requests are errors here (the daemon answers queries itself).
pub fn core_input(
    core: &Coordinator,
    request: &Request,
    by: Operator,
) -> Result<Input, ControlError> {
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
            match target {
                Target::Partition(c) if core.partition(c).is_none() => {
                    return Err(ControlError::UnknownPartition { partition: c })
                }
                Target::Host(h) => known(h)?,
                _ => {}
            }
            OperatorCommand::SetOverride {
                setting: OperatorOverride::HaDisabled {
                    scope: scope_of(target),
                },
                on: matches!(request, Request::Disable { .. }),
            }
        }
        Request::Maintenance { host, on } => {
            known(host)?;
            OperatorCommand::SetOverride {
                setting: OperatorOverride::Maintenance { host },
                on,
            }
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
    Ok(Input::Operator { by, command: cmd })
}

/// What an override is, in words.
pub fn override_text(setting: &OperatorOverride) -> String {
    match setting {
        OperatorOverride::HaDisabled {
            scope: OverrideScope::Partition(c),
        } => format!("{c}: HA disabled"),
        OperatorOverride::HaDisabled {
            scope: OverrideScope::Host(h),
        } => format!("{h}: HA disabled"),
        OperatorOverride::Maintenance { host } => format!("{host}: maintenance"),
    }
}

fn target_name(t: Target) -> String {
    match t {
        Target::Partition(c) => c.to_string(),
        Target::Host(h) => h.to_string(),
    }
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
            Action::Persist(Record::OperatorCommand {
                by,
                command: OperatorCommand::SetOverride { setting, on },
                ..
            }) => {
                journaled = true;
                changes.push(format!(
                    "{} by {by}: {}",
                    override_text(setting),
                    if *on {
                        "set (whatever CloudStack says)"
                    } else {
                        "cleared (CloudStack's own setting applies again)"
                    }
                ));
            }
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
        match request {
            Request::AckCap { scope } => changes.push(format!(
                "rate cap {} acknowledged (it was not tripped; fences before now no longer count)",
                scope_name(*scope)
            )),
            Request::Enable { target } => changes.push(format!(
                "nothing changed: HA of {} was not disabled by an operator",
                target_name(*target)
            )),
            Request::Disable { target } => changes.push(format!(
                "nothing changed: HA of {} was already disabled by an operator",
                target_name(*target)
            )),
            Request::Maintenance { host, on } => changes.push(format!(
                "nothing changed: {host} was {} maintenance by an operator",
                if *on { "already in" } else { "not in" }
            )),
            _ => {}
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
            name: None,
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
            Record::OperatorCommand { command, .. } => command_host(command) == Some(host),
            _ => false,
        })
        .map(|r| HistoryEntry {
            at: r.at(),
            record: r.clone(),
        })
        .collect();
    HostHistory { host, entries }
}

/// The host an operator command is about, if it is about one.
pub fn command_host(command: &OperatorCommand) -> Option<HostId> {
    match command {
        OperatorCommand::ConfirmHostOff { host } | OperatorCommand::UserPower { host, .. } => {
            Some(*host)
        }
        OperatorCommand::SetOverride { setting, .. } => match setting {
            OperatorOverride::HaDisabled {
                scope: OverrideScope::Host(h),
            }
            | OperatorOverride::Maintenance { host: h } => Some(*h),
            OperatorOverride::HaDisabled {
                scope: OverrideScope::Partition(_),
            } => None,
        },
        OperatorCommand::AcknowledgeRateCap { .. } => None,
    }
}
