//! The replication group on a real three-node Corosync cluster in network namespaces: one
//! `hactl-cluster-node` per node, driven through its stdin/stdout commands (the explicit promote
//! stands in for Pacemaker). Ground truth is what each node wrote to its journal file, compared
//! byte for byte, and what Corosync itself reports.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ChildStdin;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::cluster3::Signal;
use test_support::{Cluster3, QuorumStatus};

const LEASE_MS: u64 = 2000;
const POLL_MS: u64 = 200;
const GRACE_MS: u64 = 4000;

struct Probe {
    node: usize,
    pid: u32,
    stdin: ChildStdin,
    lines: Receiver<String>,
    journal: PathBuf,
}

impl Probe {
    fn start(c: &mut Cluster3, node: usize) -> Probe {
        let journal = c.data_dir(node).join("journal");
        let mut cmd = c.command(node, env!("CARGO_BIN_EXE_hactl-cluster-node"));
        cmd.arg("--journal")
            .arg(&journal)
            .args(["--cluster-size", "3", "--group", "hactl-test"])
            .args(["--lease-ms", &LEASE_MS.to_string()])
            .args(["--poll-ms", &POLL_MS.to_string()])
            .args(["--grace-ms", &GRACE_MS.to_string()]);
        let pid = c.spawn_piped(node, cmd);
        let (stdin, stdout) = c.take_pipes(pid);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Probe {
            node,
            pid,
            stdin,
            lines,
            journal,
        }
    }

    fn ask(&mut self, cmd: &str) -> Value {
        writeln!(self.stdin, "{cmd}").expect("probe stdin");
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("node{}: no answer to {cmd:?}: {e}", self.node));
        serde_json::from_str(&line).expect("probe answers JSON")
    }

    fn status(&mut self) -> Value {
        self.ask("status")
    }

    fn wait(&mut self, what: &str, limit: Duration, cond: impl Fn(&Value) -> bool) -> Duration {
        let t0 = Instant::now();
        loop {
            let s = self.status();
            if cond(&s) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < limit,
                "node{}: not {what} within {limit:?}; status {s}",
                self.node
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn propose(&mut self, text: &str) -> u64 {
        let a = self.ask(&format!("propose {text}"));
        a["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("node{}: propose {text:?} failed: {a}", self.node))
    }

    fn journal_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.journal).expect("journal file")
    }
}

/// Waits until `b` has written as far as `a` (members write what CPG delivered on their own
/// thread), then compares the two journal files byte for byte.
fn assert_same_journal(a: &mut Probe, b: &mut Probe) {
    let head = a.status()["head"].as_u64().unwrap();
    for p in [&mut *a, &mut *b] {
        p.wait(
            &format!("written up to {head}"),
            Duration::from_secs(10),
            |s| s["written"].as_u64().unwrap() >= head,
        );
    }
    let (x, y) = (a.journal_bytes(), b.journal_bytes());
    assert!(
        x == y,
        "journals of node{} ({} bytes) and node{} ({} bytes) differ",
        a.node,
        x.len(),
        b.node,
        y.len()
    );
}

fn standby_in_sync(members: &'static [u64]) -> impl Fn(&Value) -> bool {
    move |s| {
        s["role"] == "Standby"
            && !s["syncing"].as_bool().unwrap()
            && s["quorate"] == true
            && s["members"].as_array().is_some_and(|m| {
                m.iter()
                    .map(|v| v.as_u64().unwrap())
                    .eq(members.iter().copied())
            })
    }
}

/// The active, with no sync round open, in a view of `members` members (after one left, a
/// proposal is rejected until the view change's round closed).
fn active_in_sync(members: usize) -> impl Fn(&Value) -> bool {
    move |s| {
        s["role"] == "Active"
            && !s["syncing"].as_bool().unwrap()
            && s["members"].as_array().unwrap().len() == members
    }
}

/// Polls `authorize EPOCH` until it passes; returns how long that took. While it does not, the
/// only acceptable refusal is the take-over grace.
fn wait_authorized(p: &mut Probe, epoch: u64) -> Duration {
    let t0 = Instant::now();
    loop {
        let a = p.ask(&format!("authorize {epoch}"));
        if a["ok"] == true {
            return t0.elapsed();
        }
        let why = a["error"].as_str().unwrap_or_default().to_string();
        assert!(why.contains("take-over grace"), "node{}: {why}", p.node);
        assert!(
            t0.elapsed() < Duration::from_millis(GRACE_MS + 5000),
            "still refused: {why}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn refused(v: &Value) -> bool {
    v.get("ok").is_none() && v["error"].is_string()
}

#[test]
fn replication_state_transfer_isolation_and_heal_on_a_real_cluster() {
    let t_start = Instant::now();
    let mut c = Cluster3::start();
    let limit = Duration::from_secs(20);
    let phase = |name: &str| eprintln!("[{:>6.2} s] {name}", t_start.elapsed().as_secs_f64());
    phase("cluster up");

    // Nodes 1 and 2 first; node 3 joins late.
    let mut p1 = Probe::start(&mut c, 1);
    let mut p2 = Probe::start(&mut c, 2);
    p1.wait("standby of [1,2]", limit, standby_in_sync(&[1, 2]));
    p2.wait("standby of [1,2]", limit, standby_in_sync(&[1, 2]));
    assert!(
        refused(&p1.ask("propose too-early")),
        "a standby may not write"
    );
    assert!(refused(&p1.ask("authorize 0")), "a standby may not fence");

    assert_eq!(p1.ask("promote")["ok"], true);
    p1.wait("active in epoch 1", limit, |s| {
        s["role"] == "Active" && s["epoch"] == 1
    });
    p2.wait("standby following node 1", limit, |s| {
        s["role"] == "Standby" && s["epoch"] == 1 && s["active"] == 1
    });
    let grace_left = wait_authorized(&mut p1, 1);
    assert!(
        grace_left > Duration::from_millis(GRACE_MS / 2),
        "no grace: {grace_left:?}"
    );
    for i in 0..20 {
        let seq = p1.propose(&format!("{{\"record\":{i},\"host\":\"kvm{}\"}}", i % 4));
        assert_eq!(
            seq,
            i + 3,
            "records follow the epoch and confirm entries without gaps"
        );
    }
    // Durable on the active: written there and delivered to every member of the view, which
    // writes it in the same order.
    assert_same_journal(&mut p1, &mut p2);

    // The late joiner: state transfer before it counts as a standby.
    phase("late joiner starts");
    let mut p3 = Probe::start(&mut c, 3);
    for p in [&mut p1, &mut p2, &mut p3] {
        p.wait("in sync in [1,2,3]", limit, |s| {
            !s["syncing"].as_bool().unwrap() && s["members"].as_array().unwrap().len() == 3
        });
    }
    p3.wait("caught-up standby", limit, |s| {
        s["role"] == "Standby" && s["head"] == 22 && s["epoch"] == 1
    });
    assert_same_journal(&mut p1, &mut p3);
    for i in 20..25 {
        p1.propose(&format!("{{\"record\":{i}}}"));
    }
    assert_same_journal(&mut p1, &mut p2);
    assert_same_journal(&mut p1, &mut p3);

    // Isolate the active: its power check refuses once Corosync declares it inquorate.
    wait_authorized(&mut p1, 1);
    let t0 = Instant::now();
    phase("isolate node 1");
    c.isolate(1);
    let mut refused_after = None;
    while t0.elapsed() < Duration::from_secs(15) {
        let a = p1.ask("authorize 1");
        if refused(&a) {
            let why = a["error"].as_str().unwrap();
            assert!(
                why.contains("not quorate")
                    || why.contains("no majority")
                    || why.contains("synchronising"),
                "refused for another reason: {why}"
            );
            eprintln!("isolated active refuses: {why}");
            refused_after = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused_after = refused_after.expect("isolated active still authorized after 15 s");
    eprintln!("MEASURED isolate -> isolated active refuses power: {refused_after:?}");
    let s1 = p1.status();
    assert_eq!(s1["quorate"], false, "{s1}");
    assert!(refused(&p1.ask("propose from-the-minority")));
    assert_eq!(
        c.quorum(1),
        Some(QuorumStatus {
            quorate: false,
            nodes: 1
        })
    );
    for p in [&mut p2, &mut p3] {
        p.wait("standby of [2,3]", limit, standby_in_sync(&[2, 3]));
        p.wait("votequorum members [2,3]", limit, |s| {
            s["quorum_members"] == serde_json::json!([2, 3])
        });
    }
    p1.wait("votequorum members [1]", limit, |s| {
        s["quorum_members"] == serde_json::json!([1])
    });
    // The majority goes on: node 2 is promoted in epoch 2 and writes.
    phase("promote node 2");
    let t_promote = Instant::now();
    assert_eq!(p2.ask("promote")["ok"], true);
    p2.wait("active in epoch 2", limit, |s| {
        s["role"] == "Active" && s["epoch"] == 2
    });
    wait_authorized(&mut p2, 2);
    let takeover = t_promote.elapsed();
    eprintln!("MEASURED promote -> epoch 2 committed, grace over, power authorized: {takeover:?}");
    assert!(takeover >= Duration::from_millis(GRACE_MS));
    let stale = p2.ask("authorize 1");
    assert!(
        stale["error"]
            .as_str()
            .unwrap()
            .contains("stale fencing epoch 1"),
        "{stale}"
    );
    assert!(
        refused(&p1.ask("authorize 1")),
        "the old active stays refused"
    );
    for i in 0..5 {
        p2.propose(&format!("{{\"epoch2-record\":{i}}}"));
    }
    assert_same_journal(&mut p2, &mut p3);
    assert!(
        p1.journal_bytes() != p2.journal_bytes(),
        "the isolated node missed epoch 2"
    );

    // Heal: node 1 comes back as a standby of epoch 2 and catches up.
    phase("heal node 1");
    c.heal(1);
    p1.wait("standby in epoch 2", Duration::from_secs(30), |s| {
        s["role"] == "Standby"
            && s["epoch"] == 2
            && s["quorate"] == true
            && !s["syncing"].as_bool().unwrap()
    });
    p2.wait("active of [1,2,3]", limit, |s| {
        s["role"] == "Active" && s["members"].as_array().unwrap().len() == 3
    });
    p2.propose("{\"after-heal\":true}");
    assert_same_journal(&mut p1, &mut p2);
    assert_same_journal(&mut p1, &mut p3);
    assert!(refused(&p1.ask("authorize 1")));
    assert!(refused(&p1.ask("authorize 2")), "only the active may fence");

    // The active's process dies (SIGKILL): node 3 takes over in epoch 3; node 2's restarted
    // instance comes back as a standby and never resumes epoch 2.
    phase("kill the active instance on node 2");
    let t_kill = Instant::now();
    c.kill(p2.pid);
    drop(p2);
    for p in [&mut p1, &mut p3] {
        p.wait("standby of [1,3]", limit, standby_in_sync(&[1, 3]));
    }
    assert_eq!(p3.ask("promote")["ok"], true);
    p3.wait("active in epoch 3", limit, |s| {
        s["role"] == "Active" && s["epoch"] == 3
    });
    wait_authorized(&mut p3, 3);
    eprintln!(
        "MEASURED active killed -> new active authorized (explicit promote at once): {:?}",
        t_kill.elapsed()
    );
    p3.propose("{\"epoch3-record\":1}");
    let mut p2 = Probe::start(&mut c, 2);
    p2.wait("restarted standby in epoch 3", limit, |s| {
        s["role"] == "Standby" && s["epoch"] == 3 && !s["syncing"].as_bool().unwrap()
    });
    assert_same_journal(&mut p3, &mut p2);
    assert_same_journal(&mut p3, &mut p1);
    let stale = p2.ask("authorize 2");
    assert!(refused(&stale), "{stale}");

    // A provider that stops answering: freeze node 3's corosync; the active's lease runs out.
    phase("freeze corosync on node 3");
    wait_authorized(&mut p3, 3);
    let cs3 = c.corosync_pid(3);
    c.signal(3, cs3, Signal::SIGSTOP);
    let t0 = Instant::now();
    let mut lease_refusal = None;
    while t0.elapsed() < Duration::from_secs(10) {
        let a = p3.ask("authorize 3");
        if refused(&a) {
            assert_eq!(a["error"], "not quorate", "refused for another reason");
            lease_refusal = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    c.signal(3, cs3, Signal::SIGCONT);
    let lease_refusal = lease_refusal.expect("a frozen corosync kept the active authorized");
    eprintln!("MEASURED corosync frozen -> active refuses power: {lease_refusal:?}");
    assert!(
        lease_refusal >= Duration::from_millis(LEASE_MS - POLL_MS - 100),
        "refused before the lease could have run out: {lease_refusal:?}"
    );
    assert!(
        lease_refusal <= Duration::from_millis(LEASE_MS + POLL_MS + 1000),
        "refused only after {lease_refusal:?} (lease {LEASE_MS} ms)"
    );
    phase("down");
    c.down();
    phase("done");
}

/// The entries of a node's journal file (the ground truth a restart reads).
fn journal_entries(p: &Probe) -> Vec<hactl_cluster::Entry> {
    hactl_journal::inspect::<hactl_cluster::Entry>(&p.journal)
        .expect("journal readable")
        .records
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

fn file_len(p: &Probe) -> u64 {
    std::fs::metadata(&p.journal).expect("journal file").len()
}

/// Compaction on the real cluster: the active compacts the log; the journal files of the
/// members shrink, start with the same snapshot entry and stay byte-identical as the log goes
/// on; a member that was down since before the snapshot catches up from a compacted donor
/// (snapshot + tail), and a member restarted from its compacted file rejoins without loss.
#[test]
fn compaction_shrinks_every_replica_and_a_late_member_catches_up_on_a_real_cluster() {
    let t_start = Instant::now();
    let mut c = Cluster3::start();
    let limit = Duration::from_secs(20);
    let phase = |name: &str| eprintln!("[{:>6.2} s] {name}", t_start.elapsed().as_secs_f64());
    let mut p1 = Probe::start(&mut c, 1);
    let mut p2 = Probe::start(&mut c, 2);
    let mut p3 = Probe::start(&mut c, 3);
    for p in [&mut p1, &mut p2, &mut p3] {
        p.wait("standby of [1,2,3]", limit, standby_in_sync(&[1, 2, 3]));
    }
    assert_eq!(p1.ask("promote")["ok"], true);
    p1.wait("active in epoch 1", limit, |s| {
        s["role"] == "Active" && s["epoch"] == 1
    });
    assert!(
        refused(&p2.ask("snapshot from-a-standby")),
        "a standby may not compact"
    );
    let padding = "x".repeat(200);
    for i in 0..10 {
        p1.propose(&format!("{{\"record\":{i},\"pad\":\"{padding}\"}}"));
    }
    assert_same_journal(&mut p1, &mut p3);
    phase("node 3's instance dies before the compaction");
    c.kill(p3.pid);
    let behind = journal_entries(&p3);
    // A proposal during the view change is rejected: wait for the round to close.
    p1.wait("active of [1,2] in sync", limit, active_in_sync(2));
    for i in 10..40 {
        p1.propose(&format!("{{\"record\":{i},\"pad\":\"{padding}\"}}"));
    }
    assert_same_journal(&mut p1, &mut p2);
    let before = (file_len(&p1), file_len(&p2));
    let head = p1.status()["head"].as_u64().unwrap();

    phase("compact");
    let a = p1.ask("snapshot {\"state\":\"compacted\"}");
    assert_eq!(
        a["seq"].as_u64(),
        Some(head + 1),
        "snapshot at head + 1: {a}"
    );
    assert_same_journal(&mut p1, &mut p2);
    for p in [&p1, &p2] {
        let e = journal_entries(p);
        assert_eq!(e.len(), 1, "node{}: only the snapshot is left", p.node);
        assert_eq!(e[0].seq, head + 1);
        assert!(matches!(
            e[0].body,
            hactl_cluster::EntryBody::Snapshot { active: 1, .. }
        ));
        hactl_cluster::verify_chain(&e).unwrap();
    }
    let after = (file_len(&p1), file_len(&p2));
    eprintln!("MEASURED journal bytes before -> after compaction: {before:?} -> {after:?}");
    assert!(after.0 * 10 < before.0 && after.1 * 10 < before.1);
    for i in 40..45 {
        assert_eq!(
            p1.propose(&format!("{{\"record\":{i}}}")),
            head + 2 + (i - 40),
            "the log goes on after the snapshot"
        );
    }
    assert_same_journal(&mut p1, &mut p2);

    phase("node 3 restarts from its journal, which ends before the snapshot");
    assert!(behind.last().unwrap().seq < head);
    let mut p3 = Probe::start(&mut c, 3);
    let head = p1.status()["head"].as_u64().unwrap();
    p3.wait("caught-up standby", limit, |s| {
        s["role"] == "Standby" && s["head"] == head && !s["syncing"].as_bool().unwrap()
    });
    assert_same_journal(&mut p1, &mut p3);
    assert_same_journal(&mut p1, &mut p2);
    let e3 = journal_entries(&p3);
    assert!(matches!(
        e3[0].body,
        hactl_cluster::EntryBody::Snapshot { .. }
    ));
    hactl_cluster::verify_chain(&e3).unwrap();

    phase("node 2 restarts from its compacted file");
    c.kill(p2.pid);
    let mut p2 = Probe::start(&mut c, 2);
    p2.wait("standby of [1,2,3]", limit, standby_in_sync(&[1, 2, 3]));
    assert_eq!(p2.status()["epoch"], 1);
    p1.propose("{\"record\":45}");
    assert_same_journal(&mut p1, &mut p2);
    assert_same_journal(&mut p1, &mut p3);

    phase("node 2 takes over from the compacted log");
    c.kill(p1.pid);
    p2.wait("standby of [2,3]", limit, standby_in_sync(&[2, 3]));
    assert_eq!(p2.ask("promote")["ok"], true);
    p2.wait("active in epoch 2", limit, |s| {
        s["role"] == "Active" && s["epoch"] == 2
    });
    p2.propose("{\"record\":46}");
    assert_same_journal(&mut p2, &mut p3);
    phase("down");
    c.down();
}

/// Asks with a longer answer limit than [`Probe::ask`] (a multi-MiB proposal takes a while).
fn ask_slow(p: &mut Probe, cmd: &str, limit: Duration) -> Value {
    writeln!(p.stdin, "{cmd}").expect("probe stdin");
    let line = p
        .lines
        .recv_timeout(limit)
        .unwrap_or_else(|e| panic!("node{}: no answer within {limit:?}: {e}", p.node));
    serde_json::from_str(&line).expect("probe answers JSON")
}

const MIB: usize = 1 << 20;

/// A process's peak resident memory (`VmHWM` in /proc), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib / 1024.0
}

/// Proposes 64 KiB records until the active's journal file holds `bytes`; returns how many.
fn fill_log(p: &mut Probe, bytes: u64) -> usize {
    let pad = "r".repeat(64 * 1024);
    let mut records = 0;
    while file_len(p) < bytes {
        let a = p.ask(&format!("propose {records}:{pad}"));
        assert!(a["seq"].is_u64(), "record {records}: {a}");
        records += 1;
    }
    records
}

/// Starts node 3 with an empty journal and waits until a state transfer made it a standby with
/// the active's journal, byte for byte; prints what it took.
fn transfer_to_empty_node3(c: &mut Cluster3, p1: &mut Probe, p2: &mut Probe) -> Probe {
    let journal = c.data_dir(3).join("journal");
    assert!(!journal.exists(), "node 3 starts empty");
    let head = p1.status()["head"].as_u64().unwrap();
    let log_bytes = file_len(p1);
    let t0 = Instant::now();
    let mut p3 = Probe::start(c, 3);
    p3.wait("caught-up standby", Duration::from_secs(60), |s| {
        s["role"] == "Standby" && s["head"] == head && !s["syncing"].as_bool().unwrap()
    });
    eprintln!(
        "MEASURED state transfer of a {:.1} MiB log ({head} entries) to an empty member: {:?}",
        log_bytes as f64 / MIB as f64,
        t0.elapsed()
    );
    assert_same_journal(p1, &mut p3);
    assert_same_journal(p1, p2);
    p3
}

/// Large replicated messages through a real Corosync 3 (knet, libcpg over libqb IPC), each one
/// CPG multicast: state transfers of a 16 MiB log (`journal_compact_bytes`' default) and of a
/// 32 MiB one (a log may grow to twice the threshold before a snapshot is retried) to a member
/// that starts with an empty journal, and snapshots of 1 and 4 MiB and of the largest entry a
/// journal takes. Every member must end with the active's journal, byte for byte. A snapshot
/// over the entry limit is refused on the active, and the group goes on (before the limit was
/// checked, it was multicast and every member's I/O thread stopped on the journal write).
#[test]
fn large_state_transfer_and_snapshots_on_a_real_cluster() {
    let t_start = Instant::now();
    let mut c = Cluster3::start();
    let limit = Duration::from_secs(20);
    let phase = |name: &str| eprintln!("[{:>6.2} s] {name}", t_start.elapsed().as_secs_f64());
    let mut p1 = Probe::start(&mut c, 1);
    let mut p2 = Probe::start(&mut c, 2);
    for p in [&mut p1, &mut p2] {
        p.wait("standby of [1,2]", limit, standby_in_sync(&[1, 2]));
    }
    assert_eq!(p1.ask("promote")["ok"], true);
    p1.wait("active in epoch 1", limit, |s| {
        s["role"] == "Active" && s["epoch"] == 1
    });

    let mut node3 = None;
    for mib in [16u64, 32] {
        if let Some(p3) = node3.take() {
            let p3: Probe = p3;
            c.kill(p3.pid);
            std::fs::remove_file(&p3.journal).expect("remove node 3's journal");
            // A proposal during the view change is rejected: wait for the round to close.
            p1.wait("active of [1,2] in sync", limit, active_in_sync(2));
        }
        phase(&format!("fill the log with 64 KiB records up to {mib} MiB"));
        let t_fill = Instant::now();
        let records = fill_log(&mut p1, mib * MIB as u64);
        eprintln!(
            "MEASURED {records} more records of 64 KiB proposed (each durable before the next) in {:?}",
            t_fill.elapsed()
        );
        assert_same_journal(&mut p1, &mut p2);
        phase("node 3 starts with an empty journal");
        let p3 = transfer_to_empty_node3(&mut c, &mut p1, &mut p2);
        eprintln!(
            "MEASURED peak RSS: node 1 {:.0} MiB, node 3 {:.0} MiB, corosync on node 1 {:.0} MiB",
            peak_rss_mib(p1.pid),
            peak_rss_mib(p3.pid),
            peak_rss_mib(c.corosync_pid(1))
        );
        node3 = Some(p3);
    }
    let mut p3 = node3.expect("node 3 runs");
    p1.wait("active of [1,2,3] in sync", limit, |s| {
        s["role"] == "Active"
            && !s["syncing"].as_bool().unwrap()
            && s["members"].as_array().unwrap().len() == 3
    });

    let largest = hactl_cluster::MAX_ENTRY_BYTES - 4096;
    for (name, len) in [("1 MiB", MIB), ("4 MiB", 4 * MIB), ("the largest", largest)] {
        phase(&format!("snapshot of {name} ({len} bytes)"));
        let state = "s".repeat(len);
        let head = p1.status()["head"].as_u64().unwrap();
        let t_snap = Instant::now();
        let a = ask_slow(
            &mut p1,
            &format!("snapshot {state}"),
            Duration::from_secs(60),
        );
        assert_eq!(a["seq"].as_u64(), Some(head + 1), "snapshot of {name}: {a}");
        let durable = t_snap.elapsed();
        for p in [&mut p2, &mut p3] {
            p.wait("written the snapshot", Duration::from_secs(60), |s| {
                s["written"].as_u64().unwrap() > head
            });
        }
        eprintln!(
            "MEASURED snapshot of {len} bytes: durable on the active in {durable:?}, written by every member in {:?}",
            t_snap.elapsed()
        );
        assert_same_journal(&mut p1, &mut p2);
        assert_same_journal(&mut p1, &mut p3);
        for p in [&p1, &p2, &p3] {
            let e = journal_entries(p);
            assert!(
                matches!(&e[..], [hactl_cluster::Entry { body: hactl_cluster::EntryBody::Snapshot { state: s, .. }, .. }] if *s == state),
                "node{}: the journal is not just the proposed snapshot",
                p.node
            );
        }
        // A record after it, so the next snapshot replaces more than a snapshot.
        p1.propose("{\"after-snapshot\":true}");
    }

    phase("a snapshot over the entry limit");
    let before: Vec<Vec<u8>> = [&p1, &p2, &p3].iter().map(|p| p.journal_bytes()).collect();
    let over = "s".repeat(hactl_cluster::MAX_ENTRY_BYTES);
    let a = ask_slow(
        &mut p1,
        &format!("snapshot {over}"),
        Duration::from_secs(60),
    );
    assert!(
        a["error"]
            .as_str()
            .is_some_and(|e| e.contains("over the limit")),
        "{a}"
    );
    let after: Vec<Vec<u8>> = [&p1, &p2, &p3].iter().map(|p| p.journal_bytes()).collect();
    assert!(before == after, "a refused snapshot changed a journal");
    let head = p1.status()["head"].as_u64().unwrap();
    assert_eq!(p1.propose("{\"after-refusal\":true}"), head + 1);
    assert_same_journal(&mut p1, &mut p2);
    assert_same_journal(&mut p1, &mut p3);
    phase("down");
    c.down();
}
