//! The operator's interface against a running `hactl-kvm run` (issue 10,
//! item 6): every control subcommand's table and `--json` over the daemon's
//! control socket, the state-changing commands judged by the BMCs' event
//! logs, the API double's request log and the journal file on disk; the
//! socket's permission check with a real non-root peer; the metrics
//! endpoint scraped and checked by promtool; a syslog line on a test
//! socket; the `on_event` hook, and a hanging one killed at its timeout.

mod common;

use common::*;
use serde_json::Value;
use std::process::Output;
use std::time::Duration;
use test_support::peers::wait_until;

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `--json` output: one JSON answer.
fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

/// The core's id (`host-N`) of a CloudStack host, from the daemon's id
/// map on disk.
fn core_id(w: &World, uuid: &str) -> String {
    let path = w.dir.path().join("journal").join("ids.json");
    assert!(
        wait_until(Duration::from_secs(20), || std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["hosts"][uuid].is_u64())),
        "no id for {uuid} in {}",
        path.display()
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    format!("host-{}", v["hosts"][uuid].as_u64().unwrap())
}

/// The journal's records as `hactl-kvm journal dump --json` prints them
/// (the file on disk, read by the offline tool).
fn journal_records(w: &World) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
        .args(["journal", "dump", "--json"])
        .arg(w.journal_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "journal dump: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["record"].clone()
        })
        .collect()
}

fn started(n: usize) -> World {
    let mut w = World::new(n, "secret");
    // Keep every record: `host` shows the journal's history.
    w.compact_bytes = 16 << 20;
    w.write_config("secret", 0o600);
    w.start_daemon();
    w.wait_available(n);
    w.wait_socket();
    w
}

/// `status`, `hosts`, `host`, `power status` and `role`: tables and JSON
/// that agree with the world (three hosts up, one partition, quorate; the
/// BMC's real power state; the journal's transitions).
#[test]
fn queries_answer_in_tables_and_json() {
    let mut w = started(3);
    let id = core_id(&w, &w.hosts[0].uuid.clone());

    let out = w.cli(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = stdout(&out);
    assert!(s.contains("quorum:       quorate"), "{s}");
    assert!(s.contains("AVAILABLE 3"), "{s}");
    assert!(s.contains("PARTITION"), "{s}");
    let j = json(&w.cli(&["status", "--json"]));
    let st = &j["ok"];
    assert_eq!(st["quorate"], true, "{j}");
    assert_eq!(st["counts"]["AVAILABLE"], 3, "{j}");
    assert_eq!(
        st["journal"]["path"],
        w.journal_path().display().to_string()
    );
    assert_eq!(
        st["journal"]["bytes"].as_u64().unwrap(),
        std::fs::metadata(w.journal_path()).unwrap().len(),
        "{j}"
    );

    // The daemon-side fields fill in once a health round and a power poll ran.
    assert!(
        wait_until(Duration::from_secs(20), || {
            let j = json(&w.cli(&["hosts", "--json"]));
            j["ok"]["hosts"].as_array().is_some_and(|hs| {
                hs.len() == 3
                    && hs.iter().all(|h| {
                        h["last_health"].is_object() && h["power_read_at_unix_ms"].is_u64()
                    })
            })
        }),
        "hosts never showed health checks and power reads: {}",
        text(&w.cli(&["hosts", "--json"]))
    );
    let out = w.cli(&["hosts"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = stdout(&out);
    assert!(s.starts_with("HOST"), "{s}");
    assert_eq!(
        s.lines().filter(|l| l.contains("AVAILABLE")).count(),
        3,
        "{s}"
    );
    let j = json(&w.cli(&["hosts", "--state", "FAILED", "--json"]));
    assert_eq!(j["ok"]["hosts"].as_array().unwrap().len(), 0, "{j}");

    // One host's history: its transitions as the journal file holds them.
    let out = w.cli(&["host", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("-> AVAILABLE"), "{}", text(&out));
    let j = json(&w.cli(&["host", &id, "--json"]));
    let entries = j["ok"]["entries"].as_array().unwrap().clone();
    let n: u64 = id.trim_start_matches("host-").parse().unwrap();
    let on_disk: Vec<Value> = journal_records(&w)
        .into_iter()
        .filter(|r| r["record"] == "ha_transition" && r["host"] == n)
        .collect();
    assert!(!on_disk.is_empty());
    assert_eq!(
        entries
            .iter()
            .map(|e| e["record"].clone())
            .collect::<Vec<_>>(),
        on_disk,
        "history differs from the journal file"
    );
    let out = w.cli(&["host", "host-999"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // power status reads the BMC: switch the simulated chassis off behind
    // the daemon's back and the read says so.
    let out = w.cli(&["power", &id, "status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("power ON"), "{}", text(&out));
    // A read is not a power command: the BMC's event log has none.
    assert!(w.hosts[0].bmc.events().is_empty());
    w.hosts[0].bmc.set_power(false);
    let j = json(&w.cli(&["power", &id, "status", "--json"]));
    assert_eq!(j["ok"]["power"], "OFF", "{j}");

    // Role (the hactl OCF agent's request): standalone starts active; a
    // demote stops it acting, a promote recovers from the journal with the
    // next epoch; both idempotent.
    let role = raw_request(&w, r#"{"v":1,"id":7,"request":"role"}"#);
    assert_eq!(role["id"], 7, "{role}");
    assert_eq!(role["ok"]["role"], "active", "{role}");
    assert_eq!(role["ok"]["quorum_provider"], "standalone", "{role}");
    assert_eq!(role["ok"]["epoch"], st["epoch"], "{role}");
    for _ in 0..2 {
        let set = raw_request(
            &w,
            r#"{"v":1,"id":8,"request":"set_role","role":"standby"}"#,
        );
        assert_eq!(set["ok"]["role"], "standby", "{set}");
    }
    let set = raw_request(&w, r#"{"v":1,"id":9,"request":"set_role","role":"active"}"#);
    assert_eq!(set["ok"]["role"], "active", "{set}");
    assert_eq!(
        set["ok"]["epoch"].as_u64(),
        st["epoch"].as_u64().map(|e| e + 1),
        "a promotion is a new coordinator epoch: {set}"
    );
    let again = raw_request(
        &w,
        r#"{"v":1,"id":10,"request":"set_role","role":"active"}"#,
    );
    assert_eq!(again["ok"]["epoch"], set["ok"]["epoch"], "{again}");
    assert!(
        again["ok"]["changed"]
            .as_str()
            .is_some_and(|c| c.contains("already active")),
        "{again}"
    );

    assert!(w.stop_daemon().success());
}

/// One request line on the control socket, its one answer line.
fn raw_request(w: &World, line: &str) -> Value {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(w.socket()).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"))
}
