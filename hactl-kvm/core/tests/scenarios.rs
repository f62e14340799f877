//! Core-level scenarios: the rules of the core driven end to end through
//! the tiny test world (results with latencies, heartbeats, BMCs).

mod common;
use common::*;
use hactl_core::*;

const T0: Millis = 120_000; // well past the startup grace

fn settled(clusters: u32, per: u32) -> World {
    let mut w = World::new(cfg(), clusters, per);
    w.run_until(T0);
    for &c in &w.clusters.clone() {
        assert_eq!(
            w.partition(c),
            PartitionState::Active,
            "{c} active after start"
        );
    }
    for (&id, _) in w.hosts.clone().iter() {
        assert_eq!(w.ha(id), HaState::Available, "{id} available after start");
    }
    w
}

#[test]
fn host_crash_is_fenced_once_within_60s_and_comes_back_available() {
    let mut w = settled(1, 4);
    let victim = HostId(2);
    w.crash(victim);
    w.run_until(T0 + 400_000);
    assert_eq!(w.fence_count(victim), 1, "exactly one fence");
    assert_eq!(w.fences.len(), 1, "no other host fenced");
    let off = w.confirmed_off_at(victim, T0).expect("confirmed off");
    assert!(
        off - T0 <= 60_000,
        "crash to confirmed off took {} ms",
        off - T0
    );
    // Power cycle: the power-on half followed, the host booted and is back.
    assert!(w.power_actions.iter().any(|&(_, h, on)| h == victim && on));
    assert_eq!(w.ha(victim), HaState::Available);
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    // The FENCED state was reached (VM-HA signal) and journaled.
    assert!(w.journal.iter().any(|r| matches!(r,
        Record::HaTransition { host, to: HaState::Fenced, .. } if *host == victim)));
    assert!(w.journal.iter().any(|r| matches!(r,
        Record::FenceResolved { host, outcome: FenceOutcome::ConfirmedOff, .. } if *host == victim)));
}

#[test]
fn agent_down_with_vms_alive_is_never_fenced_and_checks_back_off() {
    let mut w = settled(1, 4);
    let h = HostId(1);
    w.hosts.get_mut(&h).unwrap().agent_ok = false;
    w.run_until(T0 + 900_000);
    assert!(w.fences.is_empty(), "alive host fenced: {:?}", w.fences);
    assert_eq!(w.ha(h), HaState::Suspect);
    assert_eq!(w.core.host(h).unwrap().cloudstack_hastate, "Degraded");
    let delays: Vec<Millis> = w
        .events_of(|e| matches!(e, Event::ActivityRoundConcluded { host, .. } if *host == h))
        .into_iter()
        .map(|(_, e)| match e {
            Event::ActivityRoundConcluded {
                next_round_in_ms,
                outcome,
                ..
            } => {
                assert_eq!(outcome, RoundOutcome::ActivitySeen);
                next_round_in_ms
            }
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        &delays[..6],
        &[10_000, 20_000, 40_000, 80_000, 160_000, 250_000]
    );
    // Agent back: AVAILABLE again.
    w.hosts.get_mut(&h).unwrap().agent_ok = true;
    w.run_until(T0 + 1_200_000);
    assert_eq!(w.ha(h), HaState::Available);
}

#[test]
fn no_fence_without_quorum_then_fence_after_quorum_returns() {
    let mut w = settled(1, 4);
    w.set_quorum(false);
    w.crash(HostId(3));
    w.run_until(T0 + 300_000);
    assert!(w.fences.is_empty());
    assert!(!w
        .events_of(|e| matches!(
            e,
            Event::FenceDeferred {
                gate: GateBlock::NoQuorum,
                ..
            }
        ))
        .is_empty());
    w.set_quorum(true);
    w.run_until(T0 + 700_000);
    assert_eq!(w.fence_count(HostId(3)), 1);
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}

#[test]
fn no_fence_during_startup_grace() {
    let mut w = World::new(cfg(), 1, 4);
    w.run_until(5_000);
    w.crash(HostId(0));
    w.run_until(59_999);
    assert!(w.fences.is_empty(), "fenced during grace");
    w.run_until(400_000);
    assert_eq!(w.fence_count(HostId(0)), 1);
    assert!(w.fences[0].at >= 60_000);
}

#[test]
fn whole_cluster_outage_trips_mass_failure_guard_and_fences_nobody() {
    let mut w = settled(1, 10);
    // Network/storage outage: every agent unreachable and every heartbeat
    // stops at once, while the hosts (and their VMs) are in fact fine.
    let ids: Vec<HostId> = w.hosts.keys().copied().collect();
    for id in &ids {
        let h = w.hosts.get_mut(id).unwrap();
        h.agent_ok = false;
        h.storage_ok = false;
        h.hb_stopped_at = Some(T0);
    }
    w.run_until(T0 + 600_000);
    assert!(
        w.fences.is_empty(),
        "fenced during a whole-partition outage: {:?}",
        w.fences.len()
    );
    assert_eq!(w.partition(ClusterId(0)), PartitionState::Inactive);
    assert!(!w
        .events_of(|e| matches!(e, Event::MassFailureDetected { .. }))
        .is_empty());
    // Outage over: the partition resumes on its own.
    for id in &ids {
        let h = w.hosts.get_mut(id).unwrap();
        h.agent_ok = true;
        h.storage_ok = true;
        h.hb_stopped_at = None;
    }
    w.run_until(T0 + 900_000);
    assert_eq!(w.partition(ClusterId(0)), PartitionState::Active);
    assert!(!w
        .events_of(|e| matches!(e, Event::MassFailureCleared { .. }))
        .is_empty());
    for id in &ids {
        assert_eq!(w.ha(*id), HaState::Available);
    }
}

#[test]
fn bmc_dead_with_host_asks_the_operator_instead_of_looping() {
    let mut w = settled(1, 4);
    let v = HostId(1);
    w.crash(v);
    w.hosts.get_mut(&v).unwrap().bmc_ok = false;
    w.run_until(T0 + 600_000);
    assert_eq!(w.ha(v), HaState::Failed);
    assert!(
        w.fences.is_empty(),
        "no power-off can be issued to an unreachable BMC after a failed refresh"
    );
    assert!(!w
        .events_of(|e| matches!(e, Event::OperatorActionRequired { host, .. } if *host == v))
        .is_empty());
    let attempts = w
        .events_of(|e| matches!(e, Event::RecoveryAttemptFailed { host, .. } if *host == v))
        .len();
    assert_eq!(
        attempts as u32,
        cfg().max_recovery_attempts,
        "bounded attempts, no endless loop"
    );
    // Still FAILED much later (no loop), until the operator confirms.
    w.run_until(T0 + 3_600_000);
    assert_eq!(w.ha(v), HaState::Failed);
    w.feed(operator(OperatorCommand::ConfirmHostOff { host: v }));
    assert_eq!(w.ha(v), HaState::Fenced);
}

#[test]
fn bmc_slow_power_ops_time_out_and_count_as_failures() {
    let mut w = settled(1, 4);
    let v = HostId(2);
    w.crash(v);
    w.hosts.get_mut(&v).unwrap().bmc_slow = true;
    w.run_until(T0 + 600_000);
    assert_eq!(w.ha(v), HaState::Failed);
    assert!(w.fences.is_empty());
    assert!(w.violations.is_empty());
}

#[test]
fn checker_that_cannot_read_storage_is_discarded_and_becomes_suspect() {
    let mut w = settled(1, 5);
    // Host 0 cannot read the storage; host 1 crashes.
    w.hosts.get_mut(&HostId(0)).unwrap().storage_ok = false;
    w.crash(HostId(1));
    w.run_until(T0 + 300_000);
    let discarded = w.events_of(|e| {
        matches!(e, Event::CheckerVerdictDiscarded { checker, reason: CannotTellReason::CheckerStorageUnreadable, .. } if *checker == HostId(0))
    });
    assert!(
        !discarded.is_empty(),
        "the storage-blind checker's verdict was discarded"
    );
    assert!(w.journal.iter().any(|r| matches!(r,
        Record::HaTransition { host, from: HaState::Available, to: HaState::Suspect, .. } if *host == HostId(0))));
    // The crashed host is still fenced, on evidence from the healthy checker.
    assert_eq!(w.fence_count(HostId(1)), 1);
    for f in &w.fences {
        assert!(f
            .evidence
            .samples
            .iter()
            .all(|s| s.verdict != ActivityVerdict::Dead || s.checker != HostId(0)));
    }
}

#[test]
fn rate_cap_stops_fencing_alerts_and_resumes_on_acknowledge() {
    let mut w = settled(1, 12);
    // Crash four hosts, one every 5 minutes (no mass failure).
    for (k, id) in [1u32, 2, 3, 4].into_iter().enumerate() {
        w.run_until(T0 + k as u64 * 300_000);
        w.crash(HostId(id));
    }
    w.run_until(T0 + 1_500_000);
    assert_eq!(w.fences.len(), 3, "cap of 3 per hour");
    assert!(!w
        .events_of(|e| matches!(e, Event::RateCapReached { .. }))
        .is_empty());
    assert!(w.core.rate_cap_tripped(RateScope::Partition(ClusterId(0))));
    w.feed(operator(OperatorCommand::AcknowledgeRateCap {
        scope: RateScope::Partition(ClusterId(0)),
    }));
    w.feed(operator(OperatorCommand::AcknowledgeRateCap {
        scope: RateScope::Global,
    }));
    w.run_until(T0 + 2_000_000);
    assert_eq!(w.fences.len(), 4, "fencing resumed after acknowledgement");
}

#[test]
fn rate_cap_clears_when_the_window_passes() {
    let mut w = settled(1, 12);
    for (k, id) in [1u32, 2, 3, 4].into_iter().enumerate() {
        w.run_until(T0 + k as u64 * 300_000);
        w.crash(HostId(id));
    }
    w.run_until(T0 + 1_500_000);
    assert_eq!(w.fences.len(), 3);
    w.run_until(T0 + 5_000_000);
    assert_eq!(
        w.fences.len(),
        4,
        "the fourth host is fenced once the window has passed"
    );
    assert!(!w
        .events_of(|e| matches!(
            e,
            Event::RateCapCleared {
                by: RateCapClearedBy::WindowPassed,
                ..
            }
        ))
        .is_empty());
}

#[test]
fn maintenance_makes_a_host_ineligible_and_back() {
    let mut w = settled(1, 4);
    let h = HostId(1);
    w.hosts.get_mut(&h).unwrap().resource_state = ResourceState::Maintenance;
    let input = w.host_input(h);
    w.feed(input);
    assert_eq!(w.ha(h), HaState::Ineligible);
    assert!(!w.core.host(h).unwrap().allows_ha_allocation);
    assert!(w.core.host(h).unwrap().allows_non_ha_allocation);
    w.hosts.get_mut(&h).unwrap().resource_state = ResourceState::Enabled;
    let input = w.host_input(h);
    w.feed(input);
    w.run_until(T0 + 10_000);
    assert_eq!(w.ha(h), HaState::Available);
}

#[test]
fn host_without_vms_is_available_but_never_fenced() {
    let mut w = settled(1, 4);
    let h = HostId(3);
    w.hosts.get_mut(&h).unwrap().has_vms = false;
    let input = w.host_input(h);
    w.feed(input);
    w.run_until(T0 + 10_000);
    assert_eq!(w.ha(h), HaState::Available, "empty hosts take HA VMs");
    w.crash(h);
    w.run_until(T0 + 600_000);
    assert!(w.fences.is_empty());
    assert_eq!(w.ha(h), HaState::Suspect);
    assert!(!w
        .events_of(|e| matches!(e, Event::RecoveryNotNeeded { .. }))
        .is_empty());
}

/// One checker never convicts alone (a wrong checker would fence a live
/// host): in a two-host partition the survivor is the only checker, so
/// the failed host is never fenced; its rounds end inconclusive.
#[test]
fn two_host_partition_never_fences_on_one_checkers_word() {
    let mut w = settled(1, 2);
    w.crash(HostId(1));
    w.run_until(T0 + 600_000);
    assert_eq!(w.fence_count(HostId(1)), 0);
    assert!(!w
        .events_of(|e| matches!(
            e,
            Event::ActivityRoundConcluded {
                outcome: RoundOutcome::Inconclusive,
                dead: 4,
                ..
            }
        ))
        .is_empty());
    // A third host gives the second opinion: the crash is recovered.
    let mut w = settled(1, 3);
    w.crash(HostId(1));
    w.run_until(T0 + 120_000);
    assert_eq!(w.fence_count(HostId(1)), 1);
}

#[test]
fn partition_needs_two_available_hosts_and_enabled_hierarchy() {
    let mut w = World::new(cfg(), 1, 1);
    w.run_until(T0);
    assert_eq!(w.partition(ClusterId(0)), PartitionState::Inactive);
    assert_eq!(w.ha(HostId(0)), HaState::None);
    let p = w.core.partition(ClusterId(0)).unwrap();
    assert!(p
        .reasons
        .iter()
        .any(|r| matches!(r, InactiveReason::TooFewAvailableHosts { .. })));
    // Disabling HA for the partition: NONE.
    let mut w = settled(1, 3);
    w.feed(Input::InventoryChange(InventoryChange::UpsertCluster(
        Cluster {
            id: ClusterId(0),
            pod: PodId(0),
            enabled: true,
            ha_enabled: false,
        },
    )));
    assert_eq!(w.partition(ClusterId(0)), PartitionState::None);
    assert_eq!(w.ha(HostId(0)), HaState::None);
    // Pod disabled: INACTIVE with reason.
    let mut w = settled(1, 3);
    w.feed(Input::InventoryChange(InventoryChange::UpsertPod(Pod {
        id: PodId(0),
        zone: ZoneId(0),
        enabled: false,
    })));
    assert_eq!(w.partition(ClusterId(0)), PartitionState::Inactive);
    assert_eq!(
        w.core.partition(ClusterId(0)).unwrap().reasons,
        vec![InactiveReason::PodDisabled]
    );
}

#[test]
fn stale_results_are_discarded() {
    let mut w = settled(1, 3);
    let h = HostId(0);
    let v = w.core.host(h).unwrap().version;
    // A result for an operation that was never issued.
    let bogus = OpRef {
        id: OpId::new(1, 999_999),
        host: h,
        version: v,
    };
    let before = w.journal.len();
    w.feed(Input::HealthResult {
        op: bogus,
        outcome: HealthOutcome::AgentUnreachable,
    });
    w.feed(Input::ActivityResult {
        op: bogus,
        checker: HostId(1),
        verdict: ActivityVerdict::Dead,
        window: Window { from: 0, to: 1 },
    });
    w.feed(Input::PowerReadResult {
        op: bogus,
        reading: PowerReading::Off,
    });
    assert_eq!(w.ha(h), HaState::Available);
    assert_eq!(w.journal.len(), before);
    // A result from a previous coordinator epoch.
    let old = OpRef {
        id: OpId::new(0, 1),
        host: h,
        version: v,
    };
    w.feed(Input::HealthResult {
        op: old,
        outcome: HealthOutcome::AgentUnreachable,
    });
    assert_eq!(w.ha(h), HaState::Available);
}

#[test]
fn user_power_actions_need_quorum_and_power_off_fences_a_host_with_vms() {
    let mut w = settled(1, 3);
    w.set_quorum(false);
    w.feed(operator(OperatorCommand::UserPower {
        host: HostId(0),
        op: UserPowerOp::Off,
    }));
    assert!(!w
        .events_of(|e| matches!(e, Event::OperatorCommandRejected { .. }))
        .is_empty());
    assert!(w.power_actions.is_empty());
    w.set_quorum(true);
    w.feed(operator(OperatorCommand::UserPower {
        host: HostId(0),
        op: UserPowerOp::Off,
    }));
    w.run_until(T0 + 5_000);
    assert_eq!(w.core.host(HostId(0)).unwrap().power, PowerState::Off);
    assert_eq!(
        w.ha(HostId(0)),
        HaState::Fenced,
        "confirmed off with VMs: FENCED"
    );
    w.feed(operator(OperatorCommand::UserPower {
        host: HostId(0),
        op: UserPowerOp::On,
    }));
    w.run_until(T0 + 100_000);
    assert_eq!(w.ha(HostId(0)), HaState::Available);
}

#[test]
fn quiet_period_keeps_a_booting_host_initializing() {
    let mut w = settled(1, 3);
    let h = HostId(0);
    w.feed(operator(OperatorCommand::UserPower {
        host: h,
        op: UserPowerOp::Off,
    }));
    w.run_until(T0 + 5_000);
    // Powered on, but the OS takes longer than usual to boot.
    w.feed(operator(OperatorCommand::UserPower {
        host: h,
        op: UserPowerOp::On,
    }));
    w.hosts.get_mut(&h).unwrap().boot_at = Some(T0 + 200_000);
    w.run_until(T0 + 150_000);
    assert_eq!(
        w.ha(h),
        HaState::Initializing,
        "failed health checks inside the quiet period"
    );
    w.run_until(T0 + 230_000);
    assert_eq!(w.ha(h), HaState::Available);
    assert!(w.fences.is_empty());
}

#[test]
fn clock_going_backwards_holds_fencing() {
    let mut w = settled(1, 4);
    let a = w.core.handle(T0 - 50_000, Input::Tick);
    let held_until = a
        .iter()
        .find_map(|a| match a {
            Action::Emit(Event::ClockAnomaly {
                fencing_held_until, ..
            }) => Some(*fencing_held_until),
            _ => None,
        })
        .expect("clock anomaly");
    // A crash right away would be fenced within ~30 s; the hold delays it
    // until the grace re-armed by the anomaly is over.
    w.crash(HostId(1));
    w.run_until(T0 + 300_000);
    let fence = w.fences.first().expect("fenced after the hold");
    assert!(
        fence.at >= held_until,
        "fenced at {} while held until {held_until}",
        fence.at
    );
    assert!(!w
        .events_of(|e| matches!(
            e,
            Event::FenceDeferred {
                gate: GateBlock::StartupGrace { .. },
                ..
            }
        ))
        .is_empty());
}
