//! `hactl-cluster-node`'s contract for bad input and a missing Corosync: a clear error, a
//! non-zero exit, and nothing created.

use std::process::Command;

fn node() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hactl-cluster-node"))
}

#[test]
fn bad_arguments_exit_2_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let j = journal.to_str().unwrap();
    for (args, says) in [
        (vec!["--bogus"], "unknown argument"),
        (vec![], "--journal is required"),
        (
            vec!["--journal", j, "--cluster-size", "0"],
            "not a positive number",
        ),
        (
            vec!["--journal", j, "--lease-ms", "x"],
            "not a positive number",
        ),
        (
            vec!["--journal", j, "--lease-ms", "200", "--poll-ms", "500"],
            "--poll-ms must be below",
        ),
        (vec!["--journal"], "needs a value"),
    ] {
        let out = node().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!journal.exists(), "{args:?} created the journal");
    }
}

#[test]
fn without_corosync_it_exits_1_naming_the_cause_and_creates_no_journal() {
    test_support::require("unshare", "util-linux");
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    // A fresh network namespace: Corosync's abstract IPC sockets are not there.
    let out = Command::new("unshare")
        .args(["--net", "--"])
        .arg(env!("CARGO_BIN_EXE_hactl-cluster-node"))
        .arg("--journal")
        .arg(&journal)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("corosync cpg_initialize failed"), "{err}");
    assert!(!journal.exists());
}
