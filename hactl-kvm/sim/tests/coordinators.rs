//! Two or three coordinator instances (issue 11 item 5): the real core on each, the real
//! `hactl-cluster` replica between them, the simulated CPG, quorum service and Pacemaker. Every
//! outcome is judged on the simulated BMCs and hosts (the run report's ground-truth figures and
//! violations), never on what an instance says about itself.

use hactl_sim::clock::SimTime;
use hactl_sim::faults::Fault;
use hactl_sim::invariants::Invariant;
use hactl_sim::{
    all_fault_classes, cluster_scenario, run_cluster_scenario, run_cluster_schedule, sweep_cluster,
    ClusterBreaks, RunReport, CLUSTER_SCENARIOS,
};

fn run(name: &str, instances: usize) -> RunReport {
    run_cluster_scenario(name, 1, None, instances, ClusterBreaks::default(), true)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn show(r: &RunReport) -> String {
    let mut s = r
        .timeline
        .iter()
        .filter(|l| !l.contains("activity sample") && !l.contains(" core "))
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    s.push_str(&format!("\nviolations: {:#?}", r.violations));
    s
}

fn has(r: &RunReport, inv: Invariant) -> bool {
    r.violations.iter().any(|v| v.invariant == inv)
}

/// One fence of the crashed host reached its BMC, it went off once and came back.
fn fenced_once(r: &RunReport) {
    assert!(r.passed(), "{}", show(r));
    assert_eq!(r.fences, 1, "fences at the BMCs\n{}", show(r));
    assert_eq!(r.recoveries, 1, "dead hosts turned off\n{}", show(r));
    assert_eq!(r.final_state_counts.get("AVAILABLE"), Some(&r.hosts));
}

#[test]
fn host_crash_is_fenced_once_with_two_or_three_instances() {
    for n in [2, 3] {
        let r = run("host-crash", n);
        fenced_once(&r);
        assert_eq!(r.coordinators, n);
        assert_eq!(r.promotions, 1, "one instance promoted at start");
    }
}

#[test]
fn killing_the_active_mid_recovery_neither_repeats_nor_forgets_the_fence() {
    for n in [2, 3] {
        let r = run("active-killed-mid-recovery", n);
        // The off sent by the dying instance is the only one; the standby promoted from its
        // replica confirms it instead of fencing again (its power-on waits out the grace).
        fenced_once(&r);
        assert_eq!(r.promotions, 2, "a standby took over\n{}", show(&r));
    }
}

#[test]
fn a_cut_off_active_keeps_running_but_only_the_new_active_fences() {
    let r = run("active-isolated", 3);
    fenced_once(&r);
    assert_eq!(
        r.promotions,
        2,
        "the majority promoted a standby\n{}",
        show(&r)
    );
    // With two instances neither side holds a majority: nobody fences until the network heals
    // (the host crashed 8 min before), then once.
    let r = run("active-isolated", 2);
    fenced_once(&r);
    assert_eq!(r.promotions, 1);
    let ttr = r.max_time_to_recovery_s.expect("fenced");
    assert!(
        ttr > 400.0,
        "fenced at {ttr} s, before the heal\n{}",
        show(&r)
    );
}

#[test]
fn an_isolated_standby_changes_nothing_for_the_hosts() {
    for n in [2, 3] {
        let r = run("standby-isolated", n);
        fenced_once(&r);
        assert_eq!(r.promotions, 1, "no take-over\n{}", show(&r));
    }
}

#[test]
fn a_wrong_promotion_demotes_the_old_active_by_the_replicated_epoch() {
    for n in [2, 3] {
        let r = run("forced-promotion", n);
        fenced_once(&r);
        assert_eq!(r.promotions, 2);
    }
}

#[test]
fn an_active_without_its_quorum_service_stops_fencing_until_it_is_back() {
    for n in [2, 3] {
        let r = run("active-quorum-cut", n);
        fenced_once(&r);
        // Crashed 5 s into a 120 s cut: the off lands only after the quorum answers return.
        let ttr = r.max_time_to_recovery_s.expect("fenced");
        assert!(ttr > 115.0, "fenced {ttr} s after the crash\n{}", show(&r));
    }
}

#[test]
fn scenarios_that_fault_the_single_coordinator_are_refused_with_instances() {
    for name in ["zombie-coordinator", "coordinator-restart", "quorum-loss"] {
        let e = run_cluster_scenario(name, 1, None, 3, ClusterBreaks::default(), false)
            .expect_err(name);
        assert!(e.to_string().contains("single coordinator"), "{e}");
    }
    for n in [1, 4] {
        assert!(
            run_cluster_scenario("host-crash", 1, None, n, ClusterBreaks::default(), false)
                .is_err()
        );
    }
    for (name, _) in CLUSTER_SCENARIOS {
        assert!(
            hactl_sim::run_scenario(name, 1, None, false).is_err(),
            "{name}"
        );
    }
}

/// The seeded sweep: data-center faults of every class plus instance faults (isolation of the
/// active or of any instance, quorum-service cuts, crashes, crashes at the next fence, wrong
/// promotions), 6-50 hosts, every invariant on every seed.
#[test]
fn seeded_sweep_with_instance_faults_holds_every_invariant() {
    for (instances, seeds) in [(3, 400), (2, 300)] {
        let rep = sweep_cluster(
            0,
            seeds,
            6..=50,
            instances,
            &all_fault_classes(),
            ClusterBreaks::default(),
        )
        .expect("sweep");
        assert!(
            rep.passed(),
            "{instances} instances: {} violations on seeds {:?}: {:#?}",
            rep.violations.len(),
            rep.failed_seeds,
            rep.violations.iter().take(5).collect::<Vec<_>>()
        );
        assert!(rep.fences > seeds / 2, "the sweep fences ({})", rep.fences);
        // The instances compact their replicated log, and members catch up from compacted
        // donors, on these same seeds: the invariants above judged runs with both.
        eprintln!(
            "{instances} instances, {seeds} seeds: {} compactions, {} snapshot transfers, {} promotions",
            rep.compactions, rep.snapshot_transfers, rep.promotions
        );
        assert!(rep.compactions > seeds, "compactions: {}", rep.compactions);
        assert!(
            rep.snapshot_transfers > 0,
            "no state transfer of a compacted log"
        );
    }
}

/// Pacemaker promotes a standby while the active runs, and the old active's demotion is lost
/// (it keeps its core): only the replica's rules stand between it and the BMCs.
fn demoted_active_keeps_its_core(breaks: ClusterBreaks) -> RunReport {
    let breaks = ClusterBreaks {
        demotion: true,
        ..breaks
    };
    run_cluster_scenario("forced-promotion", 1, None, 3, breaks, true).expect("runs")
}

#[test]
fn a_demoted_active_is_stopped_by_the_epoch_check_and_caught_without_it() {
    // Records are not waited for: the epoch check alone refuses the old active's power actions.
    let r = demoted_active_keeps_its_core(ClusterBreaks {
        durability: true,
        ..ClusterBreaks::default()
    });
    assert!(r.passed(), "{}", show(&r));
    assert!(
        r.epoch_refusals >= 1,
        "the old active never tried\n{}",
        show(&r)
    );
    assert_eq!(r.fences, 1);
    // The durability rule alone stops it as well: its records are never accepted again.
    let r = demoted_active_keeps_its_core(ClusterBreaks {
        epoch_check: true,
        ..ClusterBreaks::default()
    });
    assert!(r.passed(), "{}", show(&r));
    assert_eq!(r.fences, 1);
    // Both broken: the superseded instance fences the crashed host too, and the BMC ground
    // truth shows it.
    let r = demoted_active_keeps_its_core(ClusterBreaks {
        durability: true,
        epoch_check: true,
        ..ClusterBreaks::default()
    });
    assert!(
        has(&r, Invariant::SupersededCoordinatorActed),
        "{}",
        show(&r)
    );
    assert!(has(&r, Invariant::DuplicateFence), "{}", show(&r));
}

/// Pacemaker promotes two standbys at once with its promotion rule broken (each daemon starts
/// its core on Pacemaker's word, in the epoch it expects): both expect epoch 2.
fn double_promotion(breaks: ClusterBreaks) -> RunReport {
    let mut sc = cluster_scenario::named("forced-promotion", None).expect("scenario");
    sc.faults
        .insert(1, (SimTime::from_secs(270), Fault::ForcedPromotion));
    let breaks = ClusterBreaks {
        promotion_rule: true,
        ..breaks
    };
    run_cluster_schedule(&sc, 1, 3, breaks).expect("runs")
}

#[test]
fn two_instances_in_one_epoch_are_stopped_by_the_epoch_check_and_caught_without_it() {
    let r = double_promotion(ClusterBreaks {
        durability: true,
        ..ClusterBreaks::default()
    });
    assert!(r.passed(), "{}", show(&r));
    assert!(r.epoch_refusals >= 1, "{}", show(&r));
    let r = double_promotion(ClusterBreaks {
        durability: true,
        epoch_check: true,
        ..ClusterBreaks::default()
    });
    assert!(has(&r, Invariant::TwoInstancesInOneEpoch), "{}", show(&r));
    assert!(has(&r, Invariant::OverlappingFencers), "{}", show(&r));
}

/// The zombie cut off from its peers, with the epoch check and the durability rule both broken:
/// votequorum tells its core "not quorate" (its view is a minority), and the core's own quorum
/// gate keeps it from fencing; only the new active fences.
#[test]
fn a_cut_off_active_is_held_by_its_core_quorum_gate_even_with_the_replica_rules_broken() {
    let breaks = ClusterBreaks {
        epoch_check: true,
        durability: true,
        ..ClusterBreaks::default()
    };
    let r = run_cluster_scenario("active-isolated", 1, None, 3, breaks, true).expect("runs");
    fenced_once(&r);
    assert!(
        r.timeline
            .iter()
            .any(|l| l.contains("core told quorate=false")),
        "the zombie's core never heard it lost quorum\n{}",
        show(&r)
    );
}
