//! The `hactl-kvm simulate` command-line contract, run on the built binary.

use std::process::{Command, Output};

fn hactl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
        .args(args)
        .output()
        .expect("run hactl-kvm")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

const REQUIRED_SCENARIOS: &[&str] = &[
    "host-crash",
    "agent-down-vms-alive",
    "cluster-nfs-outage",
    "bmc-unreachable",
    "bmc-slow",
    "bmc-dead-with-host",
    "flapping",
    "partition",
    "quorum-loss",
    "coordinator-restart",
    "mass-failure",
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
];

#[test]
fn faults_selects_fault_classes_and_rejects_unknown_ones() {
    let o = hactl(&[
        "simulate",
        "--random",
        "--seeds",
        "20",
        "--hosts",
        "6",
        "--max-hosts",
        "12",
        "--faults",
        "host-crash,bmc-lies-off,zombie-coordinator",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["seeds"], 20);
    assert_eq!(v["max_hosts"], 12);
    let o = hactl(&[
        "simulate",
        "--random",
        "--seeds",
        "2",
        "--faults",
        "host-crash,meteor",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown fault class \"meteor\""),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn list_names_every_required_scenario_one_per_line() {
    let o = hactl(&["simulate", "--list"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for s in REQUIRED_SCENARIOS {
        assert!(names.contains(s), "--list lacks {s}:\n{out}");
    }
    for l in out.lines() {
        assert!(
            l.split_whitespace().count() > 3,
            "no description on line {l:?}"
        );
    }
}

#[test]
fn host_crash_json_summary_has_the_contract_keys() {
    let o = hactl(&[
        "simulate",
        "--scenario",
        "host-crash",
        "--seed",
        "3",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["fences"], 1);
    assert_eq!(v["recoveries"], 1);
    assert_eq!(v["violations"], serde_json::json!([]));
    let ttr = v["max_time_to_recovery_s"].as_f64().expect("a number");
    assert!(ttr > 0.0 && ttr <= 60.0, "max_time_to_recovery_s = {ttr}");
    assert!(v["time_to_recovery_s"]["h1"].is_number());
    assert!(v["final_state_counts"]["AVAILABLE"].is_number());
    assert_eq!(v["host_states"]["h1"], "AVAILABLE");
}

#[test]
fn host_crash_timeline_shows_failure_fence_and_recovery() {
    let o = hactl(&["simulate", "--scenario", "host-crash"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let pos = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("timeline lacks {needle:?}:\n{out}"))
    };
    let crash = pos("host h1 crashes");
    let fence = pos("FENCE");
    let confirmed = pos("h1 fence confirmed");
    let available = out.rfind("h1 INITIALIZING -> AVAILABLE").expect("h1 back");
    assert!(crash < fence && fence < confirmed && confirmed < available);
    assert!(out.contains("invariants: all held"));
    // Every timeline line starts with its virtual time.
    assert!(out.lines().take(5).all(|l| l.starts_with("T+")));
}

#[test]
fn hosts_option_resizes_the_data_center() {
    let o = hactl(&[
        "simulate",
        "--scenario",
        "partition",
        "--hosts",
        "25",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["hosts"], 25);
    assert_eq!(v["clusters"], 3);
    assert_eq!(v["fences"], 0);
}

#[test]
fn random_sweep_json_reports_no_violations() {
    let o = hactl(&[
        "simulate",
        "--random",
        "--seeds",
        "100",
        "--first-seed",
        "500",
        "--hosts",
        "6",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["seeds"], 100);
    assert_eq!(v["first_seed"], 500);
    assert_eq!(v["violations"], serde_json::json!([]));
    assert!(v["fences"].as_u64().unwrap() > 0);
}

#[test]
fn an_invariant_violation_exits_non_zero_with_the_violation_listed() {
    let o = hactl(&[
        "simulate",
        "--scenario",
        "quorum-loss",
        "--no-quorum-gate",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = json(&o);
    let vs = v["violations"].as_array().unwrap();
    assert!(
        vs.iter().any(|x| x["invariant"] == "fence-without-quorum"),
        "{vs:?}"
    );
}

#[test]
fn bad_arguments_are_rejected_with_status_2() {
    for args in [
        vec!["simulate"],
        vec!["simulate", "--scenario", "no-such-scenario"],
        vec!["simulate", "--scenario", "host-crash", "--hosts", "1"],
        vec!["simulate", "--scenario", "host-crash", "--seed", "-4"],
        vec!["simulate", "--random"],
        vec!["simulate", "--random", "--seeds", "0"],
        vec![
            "simulate",
            "--scenario",
            "host-crash",
            "--random",
            "--seeds",
            "3",
        ],
        vec!["simulate", "--list", "--json"],
        vec!["simulate", "--scenario", "mass-failure", "--hosts", "3"],
        vec![
            "simulate",
            "--coordinators",
            "4",
            "--scenario",
            "host-crash",
        ],
        vec![
            "simulate",
            "--coordinators",
            "0",
            "--scenario",
            "host-crash",
        ],
        vec!["simulate", "--coordinators", "3", "--bench"],
        vec![
            "simulate",
            "--coordinators",
            "3",
            "--scenario",
            "zombie-coordinator",
        ],
        vec!["simulate", "--scenario", "active-isolated"],
    ] {
        let o = hactl(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
        assert!(!stderr(&o).trim().is_empty(), "{args:?}: no error message");
        assert!(stdout(&o).is_empty(), "{args:?}: printed results anyway");
    }
    let o = hactl(&["simulate", "--scenario", "no-such-scenario"]);
    assert!(stderr(&o).contains("--list"), "{}", stderr(&o));
}

#[test]
fn help_documents_the_simulate_options() {
    let o = hactl(&["simulate", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for opt in [
        "--scenario",
        "--seed",
        "--hosts",
        "--json",
        "--random",
        "--seeds",
        "--first-seed",
        "--list",
        "--bench",
        "--coordinators",
    ] {
        assert!(out.contains(opt), "--help lacks {opt}");
    }
    assert!(
        !out.contains("no-quorum-gate"),
        "the unsafe switch stays hidden"
    );
}

#[test]
fn coordinators_run_the_instance_scenarios_and_sweeps() {
    let o = hactl(&[
        "simulate",
        "--coordinators",
        "3",
        "--scenario",
        "active-isolated",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["coordinators"], 3);
    assert_eq!(v["promotions"], 2, "the majority promoted a standby");
    assert_eq!(v["fences"], 1);
    assert_eq!(v["recoveries"], 1);
    assert_eq!(v["violations"], serde_json::json!([]));
    // The README's main command is unchanged with one coordinator.
    let o = hactl(&["simulate", "--scenario", "host-crash", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(json(&o)["coordinators"], 1);
    let o = hactl(&[
        "simulate",
        "--coordinators",
        "2",
        "--random",
        "--seeds",
        "40",
        "--hosts",
        "6",
        "--max-hosts",
        "20",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["seeds"], 40);
    assert_eq!(v["violations"], serde_json::json!([]));
    let o = hactl(&["simulate", "--list"]);
    for name in [
        "active-killed-mid-recovery",
        "active-isolated",
        "forced-promotion",
    ] {
        assert!(stdout(&o).contains(name), "--list lacks {name}");
    }
}
