//! Operator commands in the core: who ran each accepted command is
//! journaled before what it changes; HA disable and maintenance are
//! operator overrides that take protection away whatever the inventory
//! says, survive a restart and journal compaction, and are cleared only by
//! the operator.

mod common;
use common::*;
use hactl_core::*;

const T0: Millis = 120_000; // well past the startup grace

fn settled(clusters: u32, per: u32) -> World {
    let mut w = World::new(cfg(), clusters, per);
    w.run_until(T0);
    for (&id, _) in w.hosts.clone().iter() {
        assert_eq!(w.ha(id), HaState::Available, "{id} available after start");
    }
    w
}

fn by(uid: u32) -> Operator {
    Operator {
        uid,
        user: Some(format!("user{uid}")),
    }
}

fn as_user(uid: u32, command: OperatorCommand) -> Input {
    Input::Operator {
        by: by(uid),
        command,
    }
}

fn maintenance(host: HostId, on: bool) -> OperatorCommand {
    OperatorCommand::SetOverride {
        setting: OperatorOverride::Maintenance { host },
        on,
    }
}

fn ha_disabled(scope: OverrideScope, on: bool) -> OperatorCommand {
    OperatorCommand::SetOverride {
        setting: OperatorOverride::HaDisabled { scope },
        on,
    }
}

/// The journal's operator records.
fn operator_records(w: &World) -> Vec<(Operator, OperatorCommand)> {
    w.journal
        .iter()
        .filter_map(|r| match r {
            Record::OperatorCommand { by, command, .. } => Some((by.clone(), *command)),
            _ => None,
        })
        .collect()
}

#[test]
fn every_accepted_command_is_journaled_with_who_ran_it_before_its_effects() {
    let mut w = settled(1, 4);
    let v = HostId(2);
    w.crash(v);
    w.hosts.get_mut(&v).unwrap().bmc_ok = false;
    w.run_until(T0 + 600_000);
    assert_eq!(w.ha(v), HaState::Failed);
    let before = w.journal.len();
    w.feed(as_user(1001, OperatorCommand::ConfirmHostOff { host: v }));
    assert_eq!(w.ha(v), HaState::Fenced);
    // The first record of the command is who ran it, then the transition.
    let new = &w.journal[before..];
    assert!(
        matches!(&new[0], Record::OperatorCommand { by: b, command: OperatorCommand::ConfirmHostOff { host }, .. } if *b == by(1001) && *host == v),
        "{new:?}"
    );
    assert!(new[1..].iter().any(
        |r| matches!(r, Record::HaTransition { host, to: HaState::Fenced, .. } if *host == v)
    ));
    w.feed(as_user(
        1002,
        OperatorCommand::AcknowledgeRateCap {
            scope: RateScope::Global,
        },
    ));
    assert_eq!(
        operator_records(&w),
        vec![
            (by(1001), OperatorCommand::ConfirmHostOff { host: v }),
            (
                by(1002),
                OperatorCommand::AcknowledgeRateCap {
                    scope: RateScope::Global
                }
            ),
        ]
    );
}

#[test]
fn a_refused_command_changes_nothing_and_is_not_journaled() {
    let mut w = settled(1, 4);
    let before = w.journal.len();
    // Not FAILED: confirm-off is refused.
    w.feed(as_user(
        1001,
        OperatorCommand::ConfirmHostOff { host: HostId(1) },
    ));
    w.feed(as_user(1001, maintenance(HostId(77), true)));
    w.feed(as_user(
        1001,
        ha_disabled(OverrideScope::Partition(ClusterId(9)), true),
    ));
    assert_eq!(w.journal.len(), before, "{:?}", &w.journal[before..]);
    let rejected = w.events_of(|e| matches!(e, Event::OperatorCommandRejected { .. }));
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert_eq!(w.ha(HostId(1)), HaState::Available);
}

#[test]
fn maintenance_makes_a_host_ineligible_so_its_crash_is_never_fenced() {
    let mut w = settled(1, 4);
    let v = HostId(1);
    w.feed(as_user(1001, maintenance(v, true)));
    assert_eq!(w.ha(v), HaState::Ineligible);
    // The inventory still says Enabled: the override holds through a
    // fresh inventory snapshot.
    let inv = w.inventory();
    w.feed(Input::Inventory(inv));
    assert_eq!(w.ha(v), HaState::Ineligible);
    w.crash(v);
    w.run_until(T0 + 600_000);
    assert_eq!(w.fence_count(v), 0, "a host in maintenance was fenced");
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    // Setting it again changes nothing and journals nothing.
    let before = w.journal.len();
    w.feed(as_user(1001, maintenance(v, true)));
    assert_eq!(w.journal.len(), before);
    // Out of maintenance: protected again, and the crash is dealt with.
    w.feed(as_user(1001, maintenance(v, false)));
    assert_ne!(w.ha(v), HaState::Ineligible);
    w.run_until(T0 + 1_200_000);
    assert_eq!(w.fence_count(v), 1);
}

#[test]
fn disabling_a_partition_stops_its_ha_and_enabling_gives_it_back() {
    let mut w = settled(2, 4);
    let c = ClusterId(0);
    w.feed(as_user(
        1001,
        ha_disabled(OverrideScope::Partition(c), true),
    ));
    w.run_until(T0 + 1_000);
    assert_ne!(w.partition(c), PartitionState::Active);
    assert_eq!(w.partition(ClusterId(1)), PartitionState::Active);
    w.crash(HostId(1));
    w.run_until(T0 + 600_000);
    assert_eq!(
        w.fence_count(HostId(1)),
        0,
        "fenced in a disabled partition"
    );
    w.feed(as_user(
        1001,
        ha_disabled(OverrideScope::Partition(c), false),
    ));
    w.run_until(T0 + 1_200_000);
    assert_eq!(w.partition(c), PartitionState::Active);
    assert_eq!(w.fence_count(HostId(1)), 1);
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}

#[test]
fn overrides_survive_a_restart_and_compaction() {
    let mut w = settled(1, 4);
    w.feed(as_user(1001, maintenance(HostId(1), true)));
    w.feed(as_user(
        1001,
        ha_disabled(OverrideScope::Host(HostId(2)), true),
    ));
    w.feed(as_user(1001, maintenance(HostId(3), true)));
    w.feed(as_user(1001, maintenance(HostId(3), false)));
    // Compacted journal: the overrides in force, with who set them.
    let compacted = w.core.compact_records(w.now);
    let kept: Vec<_> = compacted
        .iter()
        .filter_map(|r| match r {
            Record::OperatorCommand { by, command, .. } => Some((by.clone(), *command)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kept,
        vec![
            (by(1001), ha_disabled(OverrideScope::Host(HostId(2)), true)),
            (by(1001), maintenance(HostId(1), true)),
        ]
    );
    // The offline compaction keeps the same.
    let offline = hactl_core::record::compact_offline(&w.journal, w.now, 3_600_000);
    let kept_offline: Vec<_> = offline
        .iter()
        .filter_map(|r| match r {
            Record::OperatorCommand { by, command, .. } => Some((by.clone(), *command)),
            _ => None,
        })
        .collect();
    assert_eq!(kept_offline, kept);
    w.journal = compacted;
    w.restart();
    w.run_until(w.now + 1_000);
    assert_eq!(w.ha(HostId(1)), HaState::Ineligible);
    assert_eq!(w.ha(HostId(2)), HaState::Ineligible);
    assert_eq!(w.ha(HostId(3)), HaState::Available);
    assert_eq!(w.core.overrides().len(), 2);
}
