//! The re-fence hold-off: a host fenced again within `refence_holdoff_ms`
//! of its previous confirmed fence is left OFF (FENCED) for the operator
//! instead of being powered on into the next round of a per-host fence loop.

mod common;
use common::*;
use hactl_core::*;

const T0: Millis = 120_000;
const HOUR: Millis = 3_600_000;

fn settled(cfg: Config, per: u32) -> World {
    let mut w = World::new(cfg, 1, per);
    w.run_until(T0);
    w
}

fn left_off_events(w: &World, v: HostId) -> Vec<(Millis, Event)> {
    w.events_of(|e| matches!(e, Event::LeftOffAfterRepeatedFence { host, .. } if *host == v))
}

/// Crashes `v` and waits until its fence is confirmed and it is AVAILABLE
/// again; returns the confirmation time.
fn crash_and_recover(w: &mut World, v: HostId) -> Millis {
    let from = w.now;
    w.crash(v);
    assert!(
        w.run_until_cond(from + 600_000, |w| w.confirmed_off_at(v, from).is_some()
            && w.ha(v) == HaState::Available),
        "{v} was fenced and came back AVAILABLE"
    );
    w.confirmed_off_at(v, from).unwrap()
}

/// Crashes `v` again and waits until the new fence is confirmed.
fn crash_and_fence(w: &mut World, v: HostId) -> Millis {
    let from = w.now;
    let fences = w.fence_count(v);
    w.crash(v);
    assert!(
        w.run_until_cond(from + 600_000, |w| w.fence_count(v) > fences
            && w.confirmed_off_at(v, from).is_some()),
        "{v} was fenced again"
    );
    w.confirmed_off_at(v, from).unwrap()
}

fn assert_left_off(w: &mut World, v: HostId, previous: Millis, second: Millis) {
    let power_ons_before = w
        .power_actions
        .iter()
        .filter(|(_, h, on)| *h == v && *on)
        .count();
    // Long enough for a power cycle, the quiet period and several polls.
    let end = w.now + 1_800_000;
    w.run_until(end);
    assert_eq!(w.ha(v), HaState::Fenced, "left FENCED for the operator");
    assert_eq!(w.core.host(v).unwrap().power, PowerState::Off);
    assert!(!w.hosts[&v].power_on, "chassis stays OFF");
    assert!(!w.core.host(v).unwrap().power_on_owed);
    assert_eq!(
        w.power_actions
            .iter()
            .filter(|(_, h, on)| *h == v && *on)
            .count(),
        power_ons_before,
        "no power-on after the repeated fence"
    );
    assert_eq!(w.fence_count(v), 2, "fencing itself was not skipped, once");
    let ev = left_off_events(w, v);
    assert_eq!(ev.len(), 1, "{ev:?}");
    match &ev[0].1 {
        Event::LeftOffAfterRepeatedFence {
            previous_confirmed_at,
            confirmed_at,
            holdoff_ms,
            ..
        } => {
            assert_eq!(*previous_confirmed_at, previous);
            assert_eq!(*confirmed_at, second);
            assert_eq!(*holdoff_ms, w.cfg.refence_holdoff_ms);
        }
        other => panic!("{other:?}"),
    }
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}

#[test]
fn second_fence_within_the_holdoff_leaves_the_host_off_until_the_operator_powers_it_on() {
    let mut w = settled(cfg(), 4);
    let v = HostId(1);
    let first = crash_and_recover(&mut w, v);
    assert!(left_off_events(&w, v).is_empty(), "a first fence powers on");
    let second = crash_and_fence(&mut w, v);
    assert!(second - first < w.cfg.refence_holdoff_ms);
    assert_left_off(&mut w, v, first, second);
    // Other hosts are untouched.
    for id in [0, 2, 3] {
        assert_eq!(w.ha(HostId(id)), HaState::Available);
    }
    // Powering it on is the operator's call, through the usual command.
    w.feed(operator(OperatorCommand::UserPower {
        host: v,
        op: UserPowerOp::On,
    }));
    let end = w.now + 600_000;
    w.run_until(end);
    assert_eq!(w.ha(v), HaState::Available);
    assert_eq!(w.fence_count(v), 2);
}

#[test]
fn fence_after_the_holdoff_powers_the_host_on_as_before() {
    let mut w = settled(cfg(), 4);
    let v = HostId(1);
    let first = crash_and_recover(&mut w, v);
    w.run_until(first + HOUR + 1);
    let second = crash_and_recover(&mut w, v);
    assert!(second - first >= w.cfg.refence_holdoff_ms);
    assert!(left_off_events(&w, v).is_empty());
    assert_eq!(w.fence_count(v), 2);
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}

#[test]
fn the_holdoff_is_per_host() {
    let mut w = settled(cfg(), 6);
    crash_and_recover(&mut w, HostId(1));
    crash_and_recover(&mut w, HostId(2));
    assert!(w
        .events_of(|e| matches!(e, Event::LeftOffAfterRepeatedFence { .. }))
        .is_empty());
    assert_eq!(w.ha(HostId(2)), HaState::Available);
}

#[test]
fn the_holdoff_survives_a_restart_rebuilt_from_the_fence_records() {
    let mut w = settled(cfg(), 4);
    let v = HostId(1);
    let first = crash_and_recover(&mut w, v);
    w.restart();
    let second = crash_and_fence(&mut w, v);
    assert_left_off(&mut w, v, first, second);
    // And the host left off stays off across another restart.
    w.restart();
    let end = w.now + 600_000;
    w.run_until(end);
    assert_eq!(w.ha(v), HaState::Fenced);
    assert!(!w.hosts[&v].power_on);
}

#[test]
fn compacted_records_keep_a_confirmed_fence_for_a_holdoff_longer_than_the_rate_window() {
    let mut c = cfg();
    c.refence_holdoff_ms = 3 * HOUR;
    let mut w = settled(c.clone(), 4);
    let v = HostId(1);
    let first = crash_and_recover(&mut w, v);
    // Past the rate window (1 h), inside the hold-off (3 h).
    w.run_until(first + 2 * HOUR);
    let compact = w.core.compact_records(w.now);
    assert!(compact.iter().any(|r| matches!(r,
        Record::FenceResolved { host, outcome: FenceOutcome::ConfirmedOff, .. } if *host == v)));
    w.journal = compact;
    w.restart();
    assert_eq!(
        w.core.fences_in_window(RateScope::Global, w.now),
        0,
        "the rate cap still counts only its window"
    );
    let second = crash_and_fence(&mut w, v);
    assert_left_off(&mut w, v, first, second);
}

#[test]
fn a_zero_holdoff_is_rejected() {
    let mut c = cfg();
    c.refence_holdoff_ms = 0;
    assert_eq!(c.validate(), Err(ConfigError::Zero("refence_holdoff_ms")));
    assert!(Coordinator::new(c, 0).is_err());
    assert_eq!(Config::default().refence_holdoff_ms, HOUR);
}
