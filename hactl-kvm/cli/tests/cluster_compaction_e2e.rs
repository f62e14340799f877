//! Compaction of the replicated journal end to end: three `hactl-kvm run` daemons with
//! `quorum = "corosync"` on a real three-node Corosync cluster in network namespaces
//! (`test_support::Cluster3`), against the CloudStack API double and one `ipmi_sim` BMC per KVM
//! host, with a small `journal_compact_bytes`. The active fences a crashed host, its replicated
//! log passes the threshold and it compacts; then it is killed and a standby takes over from the
//! compacted log.
//!
//! Ground truth: the replica journal files on each node's disk (their first entry, their size,
//! byte-identical), the BMCs' event logs, and `hactl-kvm status --json` compared with the files.

mod common;

use common::cluster::*;
use common::*;
use serde_json::Value;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use test_support::peers::wait_until;
use test_support::{Cluster3, PowerEvent};

const COMPACT_BYTES: u64 = 4096;

fn is_snapshot(e: &Value) -> bool {
    e["body"].get("Snapshot").is_some()
}

#[test]
fn the_active_compacts_the_replicated_journal_and_a_standby_takes_over_from_it() {
    let t0 = Instant::now();
    let mut w = World::new(3, "secret");
    let mut c = Cluster3::start();
    phase(t0, "corosync cluster up");
    forward_peers(&c, &w, &test_support::cluster3::NODES);
    let mut nodes: Vec<Node> = (1..=3)
        .map(|n| Node::with_daemon_keys(&w, n, &format!("journal_compact_bytes = {COMPACT_BYTES}")))
        .collect();
    for node in &mut nodes {
        node.start(&mut c);
    }
    for node in &nodes {
        node.wait_role("a standby in sync", Duration::from_secs(30), |v| {
            v["role"] == "standby" && v["in_sync"] == true && v["quorate"] == true
        });
    }
    let e1 = nodes[0].promote();
    nodes[0].wait_available(0, 3);
    phase(t0, "node 1 active, hosts AVAILABLE");

    // A crashed host: fenced once; its records push the log past the threshold.
    w.crash(0);
    let events = w.hosts[0].bmc.wait_for_events(2, Duration::from_secs(60));
    assert_eq!(
        events,
        vec![PowerEvent::Off, PowerEvent::On],
        "log:\n{}",
        nodes[0].log()
    );
    phase(t0, "host 0 fenced");
    // The hand-off to CloudStack, then the host boots and its agent reconnects.
    let uuid = w.hosts[0].uuid.clone();
    assert!(
        wait_until(Duration::from_secs(20), || w
            .calls("declareHostAsDegraded", &uuid)
            == 1),
        "no declareHostAsDegraded; log:\n{}",
        nodes[0].log()
    );
    w.revive(0);
    assert!(
        wait_until(Duration::from_secs(30), || w
            .calls("cancelHostAsDegraded", &uuid)
            == 1),
        "no cancelHostAsDegraded; log:\n{}",
        nodes[0].log()
    );
    nodes[0].wait_available(0, 4);
    phase(t0, "host 0 back, hand-off done");
    assert!(
        wait_until(Duration::from_secs(30), || nodes
            .iter()
            .all(|n| n.entries().first().is_some_and(is_snapshot))),
        "no compaction on every replica; sizes {:?}; active's log:\n{}",
        nodes.iter().map(|n| n.replica().len()).collect::<Vec<_>>(),
        nodes[0].log()
    );
    phase(t0, "every replica starts with a snapshot");
    // Identical on the three disks once the standbys wrote what the active wrote.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let a = nodes[0].replica();
            nodes[1..].iter().all(|n| n.replica() == a)
        }),
        "replica journals differ after compaction"
    );
    let snapshot = nodes[0].entries()[0].clone();
    let state: Value =
        serde_json::from_str(snapshot["body"]["Snapshot"]["state"].as_str().unwrap()).unwrap();
    let core = state["core"].to_string();
    assert!(
        core.contains("fence_issued") && core.contains("fence_resolved"),
        "the snapshot keeps the recent fence (the rate cap and hold-off count it): {core}"
    );
    assert!(!state["ids"].is_null(), "the snapshot keeps the id map");
    for node in &nodes {
        // Status reads the replica's size and notices a compaction on its next role tick
        // (`poll_interval_ms`); the log may also move on between two reads: wait, bounded.
        let mut last = Value::Null;
        let agreed = wait_until(Duration::from_secs(10), || {
            let size = fs::metadata(node.replica_path()).unwrap().len();
            last = node.ask(&["status"]).expect("status");
            last["journal"]["bytes"].as_u64() == Some(size)
                && last["journal"]["last_compaction_unix_ms"]
                    .as_u64()
                    .is_some()
        });
        assert!(
            agreed,
            "node{}: status {last} vs file of {} bytes",
            node.n,
            fs::metadata(node.replica_path()).unwrap().len()
        );
        assert_eq!(
            last["journal"]["path"].as_str().map(PathBuf::from),
            Some(node.replica_path())
        );
        eprintln!(
            "MEASURED node{} replica after compaction: {} bytes (threshold {COMPACT_BYTES})",
            node.n, last["journal"]["bytes"]
        );
    }
    let compactions = nodes[0].log().matches("journal compacted:").count();
    assert!(
        (1..=5).contains(&compactions),
        "the active compacts once the log passes the threshold, not on every loop: {compactions}"
    );

    // The active dies; node 2 takes over from the compacted log: the fenced host is not fenced
    // again, the others are not touched, the hand-off is not repeated.
    c.kill(nodes[0].pid.take().unwrap());
    phase(t0, "node 1 killed");
    let e2 = nodes[1].promote();
    assert!(e2 > e1);
    assert!(
        wait_until(Duration::from_secs(20), || nodes[1]
            .log()
            .contains("power actions allowed")),
        "node 2 never acts; log:\n{}",
        nodes[1].log()
    );
    assert!(
        nodes[1].log().contains("active: coordinator epoch"),
        "{}",
        nodes[1].log()
    );
    phase(t0, "node 2 active from the compacted log");
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        w.hosts[0].bmc.events(),
        vec![PowerEvent::Off, PowerEvent::On],
        "node 2's log:\n{}",
        nodes[1].log()
    );
    assert!(w.hosts[1].bmc.events().is_empty());
    assert!(w.hosts[2].bmc.events().is_empty());
    assert_eq!(w.calls("declareHostAsDegraded", &uuid), 1);
    assert_eq!(w.calls("cancelHostAsDegraded", &uuid), 1);
    for node in &mut nodes {
        if let Some(pid) = node.pid.take() {
            c.stop(pid, Duration::from_secs(10));
        }
    }
    drop(c);
    w.daemon = None;
}
