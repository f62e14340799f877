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

/// The batch that confirms a fence journals `FenceResolved`, the owed
/// power-on and the move to FENCED one after another; a crash (or a
/// replicated journal losing its tail) after the first leaves a journal in
/// which the fence is confirmed but the host never became FENCED. The
/// restarted coordinator must finish that fence (verify the off with a
/// read, never a second off; FENCED; power on), not forget the host powered
/// off with its VMs dead.
#[test]
fn restart_after_a_confirmation_whose_consequences_were_lost_finishes_the_fence() {
    let mut w = settled(4);
    let v = HostId(2);
    w.crash(v);
    let confirmed = |w: &World| {
        w.journal.iter().any(|r| {
            matches!(r, Record::FenceResolved { host, outcome: FenceOutcome::ConfirmedOff, .. }
                if *host == v)
        })
    };
    assert!(w.run_until_cond(T0 + 120_000, confirmed));
    // The test world carries out a whole batch at once; the crash cuts it
    // after its first Persist, so undo what came after: the power-on the
    // same batch sent (the host stays off and dead).
    w.power_actions.retain(|(_, h, on)| !(*h == v && *on));
    let h = w.hosts.get_mut(&v).unwrap();
    (h.power_on, h.alive, h.boot_at) = (false, false, None);
    let cut = w
        .journal
        .iter()
        .position(|r| {
            matches!(r, Record::FenceResolved { host, outcome: FenceOutcome::ConfirmedOff, .. }
                if *host == v)
        })
        .expect("the fence was confirmed");
    assert!(
        w.journal[cut + 1..].iter().any(|r| matches!(r,
            Record::HaTransition { host, to: HaState::Fenced, .. } if *host == v)),
        "the move to FENCED follows the confirmation in the journal"
    );
    w.journal.truncate(cut + 1);
    w.restart();
    w.run_until(T0 + 600_000);
    assert_eq!(w.fence_count(v), 1, "the off was not repeated");
    assert!(
        w.power_actions
            .iter()
            .filter(|(_, h, on)| *h == v && *on)
            .count()
            == 1,
        "the fenced host was not powered on exactly once"
    );
    assert_eq!(w.ha(v), HaState::Available);
    assert!(
        w.events_of(|e| matches!(e, Event::LeftOffAfterRepeatedFence { .. }))
            .is_empty(),
        "re-verifying the fence was taken for a second fence"
    );
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}
