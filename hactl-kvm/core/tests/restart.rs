//! Coordinator restarts: state rebuilt from the journal, no fence repeated,
//! no fence forgotten by the rate cap.

mod common;
use common::*;
use hactl_core::*;

const T0: Millis = 120_000;

fn settled(per: u32) -> World {
    let mut w = World::new(cfg(), 1, per);
    w.run_until(T0);
    w
}

#[test]
fn restart_mid_fence_never_repeats_the_fence() {
    let mut w = settled(4);
    let v = HostId(1);
    w.crash(v);
    // Stop right after the power-off was issued, before its result.
    assert!(w.run_until_cond(T0 + 120_000, |w| !w.fences.is_empty()));
    assert!(w
        .journal
        .iter()
        .any(|r| matches!(r, Record::FenceIssued { host, .. } if *host == v)));
    let epoch = w.core.epoch();
    w.restart();
    assert_eq!(w.core.epoch(), epoch + 1);
    assert!(
        w.events_of(|e| matches!(
            e,
            Event::CoordinatorStarted {
                recovered: true,
                open_fences: 1,
                ..
            }
        ))
        .len()
            == 1
    );
    w.run_until(T0 + 600_000);
    assert_eq!(
        w.fence_count(v),
        1,
        "the fence was verified by a power read, not repeated"
    );
    assert!(w.journal.iter().any(|r| matches!(r,
        Record::FenceResolved { host, outcome: FenceOutcome::ConfirmedOff, .. } if *host == v)));
    assert_eq!(
        w.ha(v),
        HaState::Available,
        "power cycle completed after the restart"
    );
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}

#[test]
fn restart_after_confirmed_fence_keeps_fenced_and_owed_power_on() {
    let mut w = settled(4);
    let v = HostId(2);
    w.crash(v);
    assert!(w.run_until_cond(T0 + 120_000, |w| w.ha(HostId(2)) == HaState::Fenced));
    // Crash before the power-on was issued.
    let before = w.power_actions.len();
    w.restart();
    assert_eq!(w.ha(v), HaState::Fenced, "FENCED survives the restart");
    assert!(w.core.host(v).unwrap().power_on_owed || w.power_actions.len() > before);
    w.run_until(T0 + 600_000);
    assert_eq!(w.fence_count(v), 1);
    assert_eq!(w.ha(v), HaState::Available);
}

#[test]
fn restart_remembers_fences_counted_by_the_rate_cap() {
    let mut w = settled(12);
    for (k, id) in [1u32, 2, 3].into_iter().enumerate() {
        w.run_until(T0 + k as u64 * 300_000);
        w.crash(HostId(id));
    }
    w.run_until(T0 + 1_200_000);
    assert_eq!(w.fences.len(), 3);
    w.restart();
    assert!(w.core.rate_cap_tripped(RateScope::Partition(ClusterId(0))));
    assert_eq!(w.core.fences_in_window(RateScope::Global, w.now), 3);
    w.crash(HostId(4));
    w.run_until(T0 + 2_400_000);
    assert_eq!(
        w.fences.len(),
        3,
        "the restarted coordinator still honours the cap"
    );
}

#[test]
fn restart_keeps_failed_hosts_failed_and_versions_growing() {
    let mut w = settled(4);
    let v = HostId(3);
    w.crash(v);
    w.hosts.get_mut(&v).unwrap().bmc_ok = false;
    w.run_until(T0 + 600_000);
    assert_eq!(w.ha(v), HaState::Failed);
    let version = w.core.host(v).unwrap().version;
    let n = w.events.len();
    w.restart();
    if w.ha(v) != HaState::Failed {
        for e in &w.events[n..] {
            eprintln!("{e:?}");
        }
    }
    assert_eq!(w.ha(v), HaState::Failed);
    assert!(w.core.host(v).unwrap().version >= version);
    assert!(!w
        .events_of(|e| matches!(e, Event::OperatorActionRequired { host, .. } if *host == v))
        .is_empty());
    w.run_until(T0 + 1_200_000);
    assert_eq!(w.ha(v), HaState::Failed);
    assert!(w.fences.is_empty());
}

#[test]
fn no_fence_during_grace_after_restart() {
    let mut w = settled(4);
    w.restart();
    let restarted = w.now;
    w.crash(HostId(0));
    w.run_until(restarted + 59_000);
    assert!(w.fences.is_empty());
    w.run_until(restarted + 300_000);
    assert_eq!(w.fence_count(HostId(0)), 1);
}

#[test]
fn compacted_records_rebuild_the_same_state() {
    let mut w = settled(12);
    for (k, id) in [1u32, 2, 3].into_iter().enumerate() {
        w.run_until(T0 + k as u64 * 300_000);
        w.crash(HostId(id));
    }
    w.run_until(T0 + 1_200_000);
    let compact = w.core.compact_records(w.now);
    assert!(compact.len() < w.journal.len());
    let (core, _) = Coordinator::recover(cfg(), compact, w.now).unwrap();
    assert!(core.rate_cap_tripped(RateScope::Partition(ClusterId(0))));
    assert_eq!(core.fences_in_window(RateScope::Global, w.now), 3);
}

#[test]
fn records_from_the_future_count_as_now_when_the_clock_stepped_back() {
    let mut w = settled(12);
    for (k, id) in [1u32, 2, 3].into_iter().enumerate() {
        w.run_until(T0 + k as u64 * 300_000);
        w.crash(HostId(id));
    }
    w.run_until(T0 + 1_200_000);
    // The new process's clock starts near zero.
    let (core, _) = Coordinator::recover(cfg(), w.journal.clone(), 1_000).unwrap();
    assert_eq!(core.fences_in_window(RateScope::Global, 1_000), 3);
    assert!(
        core.rate_cap_tripped(RateScope::Global)
            || core.rate_cap_tripped(RateScope::Partition(ClusterId(0)))
    );
}
