//! The `--random` sweep of the issue: at least 1,000 seeds, every invariant
//! holding on each. Small clusters and a bounded virtual hour per seed keep
//! it to seconds in a debug build.

#[test]
fn a_thousand_random_seeds_hold_every_invariant() {
    let rep = hactl_sim::sweep(0, 1000, 5);
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
fn random_sweeps_on_other_cluster_sizes_hold() {
    for hosts in [3, 12] {
        let rep = hactl_sim::sweep(10_000, 200, hosts);
        assert!(
            rep.passed(),
            "{hosts} hosts: violations on seeds {:?}:\n{:#?}",
            rep.failed_seeds,
            rep.violations
        );
    }
}
