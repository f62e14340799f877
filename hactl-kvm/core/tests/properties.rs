//! Property tests: random event sequences (crashes, agent/storage/BMC
//! faults, quorum flips, coordinator restarts, maintenance, user power
//! actions, time passing) must never break the core-level invariants.

mod common;
use common::*;
use hactl_core::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Crash(u32),
    Revive(u32),
    AgentDown(u32),
    AgentUp(u32),
    StorageDown(u32),
    StorageUp(u32),
    BmcDown(u32),
    BmcUp(u32),
    BmcSlow(u32, bool),
    Quorum(bool),
    Restart,
    Maintenance(u32, bool),
    UserPower(u32, u8),
    Network(bool),
    ConfirmOff(u32),
}

const HOSTS: u32 = 5;

fn op() -> impl Strategy<Value = Op> {
    let h = 0..HOSTS;
    prop_oneof![
        6 => (1_000u64..120_000).prop_map(Op::Advance),
        2 => h.clone().prop_map(Op::Crash),
        1 => h.clone().prop_map(Op::Revive),
        1 => h.clone().prop_map(Op::AgentDown),
        1 => h.clone().prop_map(Op::AgentUp),
        1 => h.clone().prop_map(Op::StorageDown),
        1 => h.clone().prop_map(Op::StorageUp),
        1 => h.clone().prop_map(Op::BmcDown),
        1 => h.clone().prop_map(Op::BmcUp),
        1 => (h.clone(), any::<bool>()).prop_map(|(h, b)| Op::BmcSlow(h, b)),
        1 => any::<bool>().prop_map(Op::Quorum),
        1 => Just(Op::Restart),
        1 => (h.clone(), any::<bool>()).prop_map(|(h, b)| Op::Maintenance(h, b)),
        1 => (h.clone(), 0u8..3).prop_map(|(h, o)| Op::UserPower(h, o)),
        1 => any::<bool>().prop_map(Op::Network),
        1 => h.prop_map(Op::ConfirmOff),
    ]
}

fn check_rate_cap(w: &World) -> Result<(), TestCaseError> {
    let window = w.cfg.fence_rate.window_ms;
    for (i, f) in w.fences.iter().enumerate() {
        let in_window = w.fences[..=i]
            .iter()
            .filter(|g| g.at + window > f.at)
            .count() as u32;
        prop_assert!(
            in_window <= w.cfg.fence_rate.per_partition.min(w.cfg.fence_rate.global),
            "{} fences within one window at {}",
            in_window,
            f.at
        );
    }
    Ok(())
}

fn apply(w: &mut World, op: &Op) {
    let id = |h: &u32| HostId(*h);
    match op {
        Op::Advance(d) => {
            let t = w.now + d;
            w.run_until(t);
        }
        Op::Crash(h) => w.crash(id(h)),
        Op::Revive(h) => {
            let now = w.now;
            let s = w.hosts.get_mut(&id(h)).unwrap();
            if s.power_on && !s.alive {
                s.boot_at = Some(now + 30_000);
            }
        }
        Op::AgentDown(h) => w.hosts.get_mut(&id(h)).unwrap().agent_ok = false,
        Op::AgentUp(h) => w.hosts.get_mut(&id(h)).unwrap().agent_ok = true,
        Op::StorageDown(h) => w.hosts.get_mut(&id(h)).unwrap().storage_ok = false,
        Op::StorageUp(h) => w.hosts.get_mut(&id(h)).unwrap().storage_ok = true,
        Op::BmcDown(h) => w.hosts.get_mut(&id(h)).unwrap().bmc_ok = false,
        Op::BmcUp(h) => w.hosts.get_mut(&id(h)).unwrap().bmc_ok = true,
        Op::BmcSlow(h, b) => w.hosts.get_mut(&id(h)).unwrap().bmc_slow = *b,
        Op::Quorum(q) => w.set_quorum(*q),
        Op::Restart => w.restart(),
        Op::Maintenance(h, m) => {
            w.hosts.get_mut(&id(h)).unwrap().resource_state = if *m {
                ResourceState::Maintenance
            } else {
                ResourceState::Enabled
            };
            let input = w.host_input(id(h));
            w.feed(input);
        }
        Op::UserPower(h, o) => {
            let op = [UserPowerOp::On, UserPowerOp::Off, UserPowerOp::Restart][*o as usize];
            w.feed(operator(OperatorCommand::UserPower { host: id(h), op }));
        }
        Op::Network(ok) => w.network_ok = *ok,
        Op::ConfirmOff(h) => {
            // An honest operator: only confirms hosts that really are off.
            if !w.hosts[&id(h)].power_on {
                w.feed(operator(OperatorCommand::ConfirmHostOff { host: id(h) }));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn core_invariants_hold_under_random_events(ops in proptest::collection::vec(op(), 1..40)) {
        let mut w = World::new(cfg(), 1, HOSTS);
        w.run_until(90_000);
        for op in &ops {
            apply(&mut w, op);
            prop_assert!(w.violations.is_empty(), "after {:?}: {:?}", op, w.violations);
        }
        w.run_until(w.now + 600_000);
        prop_assert!(w.violations.is_empty(), "{:?}", w.violations);
        check_rate_cap(&w)?;
        // Fences only carry N dead samples, each from a checker other than
        // the suspect.
        for f in &w.fences {
            prop_assert!(f.evidence.dead_samples() >= cfg().evidence.dead_required as usize);
            prop_assert!(f.evidence.samples.iter().all(|s| s.checker != f.host));
            prop_assert!(f.quorate);
        }
    }

    #[test]
    fn a_healthy_cluster_is_never_fenced(ops in proptest::collection::vec(
        prop_oneof![
            (1_000u64..120_000).prop_map(Op::Advance),
            any::<bool>().prop_map(Op::Quorum),
            Just(Op::Restart),
            (0..HOSTS).prop_map(Op::AgentDown),
            (0..HOSTS).prop_map(Op::AgentUp),
            (0..HOSTS).prop_map(Op::StorageDown),
            (0..HOSTS).prop_map(Op::StorageUp),
            (0..HOSTS).prop_map(Op::BmcDown),
            (0..HOSTS).prop_map(Op::BmcUp),
            any::<bool>().prop_map(Op::Network),
        ], 1..40)) {
        // Hosts never die and their VMs keep writing heartbeats: whatever
        // else goes wrong (agents, storage on checkers, BMCs, network,
        // quorum, restarts), nobody may be fenced.
        let mut w = World::new(cfg(), 1, HOSTS);
        w.run_until(90_000);
        for op in &ops {
            apply(&mut w, op);
        }
        w.run_until(w.now + 600_000);
        prop_assert!(w.fences.is_empty(), "fenced a live host: {:?}", w.fences.iter().map(|f| (f.at, f.host)).collect::<Vec<_>>());
        prop_assert!(w.violations.is_empty(), "{:?}", w.violations);
    }
}
