//! The `--random` sweep of the issue: 1,000 seeds with every fault class on,
//! 6 to 50 hosts, every invariant holding on each. A bounded virtual hour
//! per seed keeps it to seconds in a debug build.

use hactl_sim::{all_fault_classes, parse_fault_classes, sweep_with};

#[test]
fn a_thousand_random_seeds_with_every_fault_class_hold_every_invariant() {
    let rep = sweep_with(0, 1000, 6..=50, &all_fault_classes());
    assert_eq!(rep.seeds, 1000);
    assert!(
        rep.passed(),
        "violations on seeds {:?}:\n{:#?}",
        rep.failed_seeds,
        rep.violations
    );
    // The sweep exercises fencing at all (a sweep that never fences proves little).
    assert!(
        rep.fences > 100,
        "only {} fences in 1,000 seeds",
        rep.fences
    );
    assert!(rep.recoveries > 100);
}

#[test]
fn small_clusters_and_single_fault_classes_hold() {
    for hosts in [3, 5, 12] {
        let rep = sweep_with(10_000, 200, hosts..=hosts, &all_fault_classes());
        assert!(
            rep.passed(),
            "{hosts} hosts: violations on seeds {:?}:\n{:#?}",
            rep.failed_seeds,
            rep.violations
        );
    }
    // Each new fault class alone, with crashes to fence.
    for class in [
        "lost-power-ack",
        "duplicate-power-op",
        "bmc-lies-off",
        "bmc-stale-read",
        "checker-wrong",
        "quorum-provider-dies",
        "storage-slow",
        "zombie-coordinator",
        "api-stale-inventory",
        "clock-skew",
    ] {
        let classes = parse_fault_classes(&format!("host-crash,{class}")).unwrap();
        let rep = sweep_with(20_000, 100, 6..=20, &classes);
        assert!(
            rep.passed(),
            "{class}: violations on seeds {:?}:\n{:#?}",
            rep.failed_seeds,
            rep.violations
        );
    }
}
