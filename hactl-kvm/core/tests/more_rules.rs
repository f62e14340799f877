//! More core rules end to end: heartbeat cliff, clock jumps, concurrency
//! limits, per-host overrides, configuration validation, event delivery.

mod common;
use common::*;
use hactl_core::*;

const T0: Millis = 120_000;

#[test]
fn heartbeat_cliff_makes_the_partition_inactive_until_it_recovers() {
    let mut w = World::new(cfg(), 1, 10);
    w.run_until(T0);
    w.feed(Input::HeartbeatCensus {
        cluster: ClusterId(0),
        fresh: 10,
        total: 10,
    });
    assert_eq!(w.partition(ClusterId(0)), PartitionState::Active);
    w.feed(Input::HeartbeatCensus {
        cluster: ClusterId(0),
        fresh: 3,
        total: 10,
    });
    assert_eq!(w.partition(ClusterId(0)), PartitionState::Inactive);
    let p = w.core.partition(ClusterId(0)).unwrap();
    assert!(p.reasons.iter().any(|r| matches!(
        r,
        InactiveReason::MassFailure(MassFailureReason::HeartbeatCliff {
            before: 10,
            after: 3,
            ..
        })
    )));
    // A real crash during the outage is not fenced.
    w.crash(HostId(4));
    w.run_until(T0 + 200_000);
    assert!(w.fences.is_empty());
    w.feed(Input::HeartbeatCensus {
        cluster: ClusterId(0),
        fresh: 9,
        total: 10,
    });
    w.run_until(T0 + 300_000);
    assert_eq!(w.partition(ClusterId(0)), PartitionState::Active);
    w.run_until(T0 + 500_000);
    assert_eq!(
        w.fence_count(HostId(4)),
        1,
        "after the outage the dead host is recovered"
    );
}

#[test]
fn clock_jump_forward_holds_fencing_for_a_grace_period() {
    let mut w = World::new(cfg(), 1, 4);
    w.run_until(T0);
    let jump_to = T0 + 3_600_000;
    let a = w.core.handle(jump_to, Input::Tick);
    let held = a.iter().find_map(|a| match a {
        Action::Emit(Event::ClockAnomaly {
            fencing_held_until, ..
        }) => Some(*fencing_held_until),
        _ => None,
    });
    assert_eq!(held, Some(jump_to + cfg().startup_grace_ms));
}

#[test]
fn recovery_concurrency_limit_defers_the_second_recovery() {
    let mut c = cfg();
    c.max_concurrent_recoveries = 1;
    let mut w = World::new(c, 2, 4);
    w.run_until(T0);
    // Both BMCs are slow: the first recovery holds its slot for a while.
    for h in [HostId(1), HostId(1001)] {
        w.crash(h);
        w.hosts.get_mut(&h).unwrap().bmc_slow = true;
    }
    w.run_until(T0 + 120_000);
    assert!(!w
        .events_of(|e| matches!(
            e,
            Event::FenceDeferred {
                gate: GateBlock::RecoveryConcurrency,
                ..
            }
        ))
        .is_empty());
    let recovering = w
        .core
        .hosts()
        .iter()
        .filter(|h| h.ha == HaState::Recovering)
        .count();
    assert!(recovering <= 1);
}

#[test]
fn activity_concurrency_limit_bounds_hosts_checking() {
    let mut c = cfg();
    c.max_concurrent_activity_checks = 1;
    let mut w = World::new(c, 3, 4);
    w.run_until(T0);
    for h in [HostId(1), HostId(1001), HostId(2001)] {
        w.hosts.get_mut(&h).unwrap().agent_ok = false;
    }
    for _ in 0..200 {
        let t = w.now + 500;
        w.run_until(t);
        let checking = w
            .core
            .hosts()
            .iter()
            .filter(|h| h.ha == HaState::Checking)
            .count();
        assert!(checking <= 1, "{checking} hosts CHECKING");
    }
}

#[test]
fn per_host_power_timeout_override_is_used() {
    let mut w = World::new(cfg(), 1, 3);
    w.run_until(T0);
    let host = Host {
        id: HostId(1),
        cluster: ClusterId(0),
        resource_state: ResourceState::Enabled,
        oobm_enabled: true,
        has_vms: true,
        overrides: HostOverrides {
            power_op_timeout_ms: Some(2_500),
            quiet_period_ms: Some(1_000),
        },
    };
    let mut a = w.core.handle(
        w.now,
        Input::InventoryChange(InventoryChange::UpsertHost(host)),
    );
    for _ in 0..100 {
        if a.iter()
            .any(|a| matches!(a, Action::ReadPower { op, .. } if op.host == HostId(1)))
        {
            break;
        }
        let t = w.core.next_timeout().unwrap();
        w.now = t;
        a = w.core.handle(t, Input::Tick);
    }
    let timeout = a.iter().find_map(|a| match a {
        Action::ReadPower { op, timeout_ms } if op.host == HostId(1) => Some(*timeout_ms),
        _ => None,
    });
    assert_eq!(timeout, Some(2_500));
}

#[test]
fn invalid_configuration_is_refused() {
    let mut c = cfg();
    c.evidence.dead_required = 5;
    c.evidence.max_samples = 4;
    assert!(matches!(
        Coordinator::new(c, 0),
        Err(ConfigError::Evidence { .. })
    ));
    let mut c = cfg();
    c.activity_check_timeout_ms = c.activity_sample_window_ms;
    assert!(Coordinator::new(c, 0).is_err());
    let mut c = cfg();
    c.mass_failure.share = 1.5;
    assert!(Coordinator::new(c, 0).is_err());
    let mut c = cfg();
    c.health_check_interval_ms = 0;
    assert_eq!(
        Coordinator::new(c, 0).unwrap_err(),
        ConfigError::Zero("health_check_interval_ms")
    );
}

#[test]
fn events_reach_every_subscriber() {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut bus = Subscribers::default();
    for name in ["syslog", "jsonl"] {
        let seen = seen.clone();
        bus.subscribe(move |e: &Event| {
            seen.lock()
                .unwrap()
                .push(format!("{name}:{}", serde_json::to_string(e).unwrap()));
        });
    }
    let mut core = Coordinator::new(cfg(), 0).unwrap();
    let actions = core.handle(0, Input::QuorumChanged { quorate: true });
    let delivered = bus.deliver(&actions);
    assert_eq!(delivered, 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].starts_with("syslog:{\"event\":\"quorum_changed\""));
}

#[test]
fn every_fence_is_persisted_before_its_power_off() {
    let mut w = World::new(cfg(), 1, 4);
    w.run_until(T0);
    w.crash(HostId(2));
    let mut saw = false;
    for _ in 0..2000 {
        let next = w.core.next_timeout().unwrap();
        w.run_until(next);
        if !w.fences.is_empty() {
            saw = true;
            break;
        }
    }
    assert!(saw);
    // World::process handles actions in order and flags a power-off whose
    // FenceIssued record it has not seen yet.
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    assert!(w
        .journal
        .iter()
        .any(|r| matches!(r, Record::FenceIssued { host, .. } if *host == HostId(2))));
}

#[test]
fn a_silent_quorum_provider_closes_the_gate_when_the_lease_runs_out() {
    let mut w = World::new(cfg(), 1, 4);
    w.run_until(T0);
    // The provider's last word was "quorate"; it says nothing more.
    w.quorum_provider_silent = true;
    w.run_until(T0 + cfg().quorum_lease_ms);
    w.crash(HostId(2));
    w.run_until(T0 + 400_000);
    assert!(w.fences.is_empty(), "fenced on an expired lease");
    assert!(!w
        .events_of(|e| matches!(
            e,
            Event::FenceDeferred {
                gate: GateBlock::NoQuorum,
                ..
            }
        ))
        .is_empty());
    // The provider speaks again: the lease is renewed and the host fenced.
    w.quorum_provider_silent = false;
    w.run_until(T0 + 800_000);
    assert_eq!(w.fence_count(HostId(2)), 1);
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}

#[test]
fn one_off_reading_of_a_running_host_is_not_a_fence() {
    let mut w = World::new(cfg(), 1, 4);
    w.run_until(T0);
    let h = HostId(1);
    // The BMC reads OFF across one power-sync round while the host runs and
    // passes its health checks: never FENCED.
    w.hosts.get_mut(&h).unwrap().bmc_lies_off = true;
    w.run_until(T0 + cfg().power_poll_interval_ms + 5_000);
    w.hosts.get_mut(&h).unwrap().bmc_lies_off = false;
    w.run_until(T0 + 600_000);
    assert!(w
        .events_of(
            |e| matches!(e, Event::HaStateChanged { host, to: HaState::Fenced, .. } if *host == h)
        )
        .is_empty());
    assert_eq!(w.ha(h), HaState::Available);
    // A host that really went off (health failing, OFF read twice, the
    // confirm interval apart) is FENCED by the routine reads alone.
    let g = HostId(2);
    {
        let x = w.hosts.get_mut(&g).unwrap();
        x.alive = false;
        x.power_on = false;
        x.hb_stopped_at = Some(T0 + 600_000);
    }
    w.run_until(T0 + 900_000);
    let fenced_at = w
        .events_of(
            |e| matches!(e, Event::HaStateChanged { host, to: HaState::Fenced, .. } if *host == g),
        )
        .first()
        .map(|(t, _)| *t)
        .expect("FENCED");
    let first_off = w
        .events_of(|e| matches!(e, Event::PowerStateChanged { host, to: PowerState::Off, .. } if *host == g))
        .first()
        .map(|(t, _)| *t)
        .expect("read OFF");
    assert!(
        fenced_at >= first_off + cfg().fence_confirm_interval_ms,
        "FENCED at {fenced_at}, first OFF read at {first_off}"
    );
}

#[test]
fn a_host_that_does_not_power_on_is_not_hammered_with_power_ons() {
    let mut w = World::new(cfg(), 1, 4);
    w.run_until(T0);
    let v = HostId(1);
    // The BMC accepts power-on but the chassis stays off.
    w.hosts.get_mut(&v).unwrap().stuck_off = true;
    w.crash(v);
    assert!(w.run_until_cond(T0 + 120_000, |w| w.ha(HostId(1)) == HaState::Fenced));
    let start = w.now;
    let before = w.power_actions.iter().filter(|a| a.1 == v && a.2).count();
    w.run_until(start + 600_000);
    let ons = w.power_actions.iter().filter(|a| a.1 == v && a.2).count() - before;
    let minutes = (w.now - start) / 60_000;
    assert!(
        ons as u64 <= minutes + 2,
        "{ons} power-ons in {minutes} min"
    );
    assert_eq!(w.fence_count(v), 1);
}

#[test]
fn batched_inputs_reach_the_same_decisions() {
    // Two identical worlds; one delivers each health result alone, the
    // other hands the same results to handle_batch: same states after.
    let mut a = Coordinator::new(cfg(), 0).unwrap();
    let mut b = Coordinator::new(cfg(), 0).unwrap();
    let w = World::new(cfg(), 1, 4);
    let inv = w.inventory();
    let mut out_a = Vec::new();
    let mut out_b = Vec::new();
    for c in [&mut a, &mut b] {
        let mut o = Vec::new();
        c.handle_into(0, Input::QuorumChanged { quorate: true }, &mut o);
        c.handle_into(0, Input::Inventory(inv.clone()), &mut o);
        if out_a.is_empty() {
            out_a = o;
        } else {
            out_b = o;
        }
    }
    let answers = |actions: &[Action]| -> Vec<Input> {
        actions
            .iter()
            .filter_map(|x| match x {
                Action::RunHealthCheck { op, .. } => Some(Input::HealthResult {
                    op: *op,
                    outcome: HealthOutcome::Passed,
                }),
                Action::ReadPower { op, .. } => Some(Input::PowerReadResult {
                    op: *op,
                    reading: PowerReading::On,
                }),
                _ => None,
            })
            .collect()
    };
    let ia = answers(&out_a);
    let ib = answers(&out_b);
    assert_eq!(ia.len(), ib.len());
    assert!(!ia.is_empty());
    let mut sink = Vec::new();
    for i in ia {
        a.handle_into(100, i, &mut sink);
    }
    b.handle_batch(100, ib, &mut sink);
    let sa: Vec<_> = a
        .hosts()
        .into_iter()
        .map(|h| (h.id, h.ha, h.power))
        .collect();
    let sb: Vec<_> = b
        .hosts()
        .into_iter()
        .map(|h| (h.id, h.ha, h.power))
        .collect();
    assert_eq!(sa, sb);
    assert!(sa.iter().all(|h| h.1 == HaState::Initializing), "{sa:?}");
    assert_eq!(
        a.partition(ClusterId(0)).unwrap().state,
        PartitionState::Active
    );
    assert_eq!(
        b.partition(ClusterId(0)).unwrap().state,
        PartitionState::Active
    );
}

/// Gates are evaluated where the power-off is emitted, after every earlier
/// input of the batch: health failures that trip the mass-failure guard,
/// arriving in the same batch as (and before) the power refresh that would
/// issue a fence, stop that fence.
#[test]
fn a_batchs_earlier_health_failures_stop_its_fence() {
    let mut c = cfg();
    // The refresh must still be pending when the next health round answers.
    c.power_op_timeout_ms = 30_000;
    let mut w = World::new(c, 1, 6);
    w.run_until(T0);
    w.crash(HostId(1));
    let recovering = w.run_until_cond(T0 + 120_000, |w| w.ha(HostId(1)) == HaState::Recovering);
    assert!(recovering);
    // The power refresh is in flight: hold it, and the next results.
    w.hold_results();
    let refresh: Vec<Input> = std::mem::take(&mut w.held)
        .into_iter()
        .filter(|i| matches!(i, Input::PowerReadResult { op, .. } if op.host == HostId(1)))
        .collect();
    assert_eq!(refresh.len(), 1, "the refresh read is in flight");
    // Four of six agents die (their hosts answer: unreachable agent).
    for h in 2..6 {
        w.hosts.get_mut(&HostId(h)).unwrap().agent_ok = false;
    }
    // Until the next health round has answered (well within its timeout).
    let limit = w.now + cfg().health_check_interval_ms + 1_000;
    let answered = w.run_until_cond(limit, |w| {
        w.held
            .iter()
            .filter(|i| {
                matches!(
                    i,
                    Input::HealthResult {
                        outcome: HealthOutcome::AgentUnreachable,
                        ..
                    }
                )
            })
            .count()
            == 4
    });
    assert!(answered);
    let failures: Vec<Input> = w
        .held
        .drain(..)
        .filter(|i| {
            matches!(
                i,
                Input::HealthResult {
                    outcome: HealthOutcome::AgentUnreachable,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(failures.len(), 4, "one health round answered");
    assert_eq!(w.ha(HostId(1)), HaState::Recovering);
    // One batch: the failures first, then the refresh reading ON.
    let mut actions = Vec::new();
    let batch = failures.into_iter().chain(refresh);
    w.core.handle_batch(w.now, batch, &mut actions);
    assert!(
        !actions.iter().any(|a| a.is_fence()),
        "a power-off left in the batch that tripped the guard: {actions:?}"
    );
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Emit(Event::MassFailureDetected { .. }))));
}

/// A host added to, or moved into, a partition that is already ACTIVE is
/// protected like the hosts that were there when it became ACTIVE (it used to
/// stay in NONE for good: found wiring the daemon to CloudStack's inventory).
#[test]
fn a_host_added_to_or_moved_into_an_active_partition_is_protected_and_recovered() {
    let mut w = World::new(cfg(), 2, 4);
    w.run_until(T0);
    assert_eq!(w.partition(ClusterId(0)), PartitionState::Active);
    assert_eq!(w.partition(ClusterId(1)), PartitionState::Active);
    // Added: a new host in cluster 0.
    let added = HostId(7);
    w.hosts.insert(added, SimHost::new(ClusterId(0)));
    let input = w.host_input(added);
    w.feed(input);
    // Moved: host 1002 goes from cluster 1 into cluster 0.
    let moved = HostId(1002);
    w.hosts.get_mut(&moved).unwrap().cluster = ClusterId(0);
    let input = w.host_input(moved);
    w.feed(input);
    w.run_until(T0 + 120_000);
    assert_eq!(w.ha(added), HaState::Available);
    assert_eq!(w.ha(moved), HaState::Available);
    // And protected for real: when it dies it is fenced.
    w.crash(added);
    w.run_until(T0 + 400_000);
    assert_eq!(w.fence_count(added), 1, "the added host is recovered");
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}
