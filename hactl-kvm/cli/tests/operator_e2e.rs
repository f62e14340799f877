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
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use test_support::peers::wait_until;
use test_support::PowerEvent;

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
    // Each row names the CloudStack host behind the core's id.
    assert!(
        s.lines()
            .any(|l| l.starts_with(&format!("{id} "))
                && l.contains(&format!(" {} ", w.hosts[0].name))),
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

/// A free loopback TCP port (bound and released; the daemon binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` over loopback: the body.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// Sample `name{labels}` -> value of a text exposition; panics on a
/// malformed sample line.
fn samples(exposition: &str) -> std::collections::BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line has a value");
            let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {l}"));
            (series.to_string(), v)
        })
        .collect()
}

/// Crashes `w.hosts[0]` (heartbeat stops, agent disconnected) and waits for
/// its BMC to see the fence's power-off and the recovery's power-on.
fn crash_first_host(w: &mut World) {
    w.crash(0);
    let events = w.hosts[0].bmc.wait_for_events(2, Duration::from_secs(60));
    assert_eq!(
        events,
        vec![PowerEvent::Off, PowerEvent::On],
        "BMC of {}; daemon log:\n{}",
        w.hosts[0].name,
        w.log()
    );
}

/// A fence (ground truth: the BMC's power-off) reaches every sink: an
/// RFC 5424 line on a syslog test socket (LOG_DAEMON, WARNING, MSGID
/// FENCE_ISSUED, the host in structured data), the JSON-lines events file,
/// the on_event hook's stdin, and the metrics endpoint (scraped, promtool
/// clean, fences issued and confirmed counted).
#[test]
fn a_fence_reaches_syslog_events_file_hook_and_metrics() {
    let mut w = World::new(3, "secret");
    let d = w.dir.path().to_path_buf();
    let syslog = std::os::unix::net::UnixDatagram::bind(d.join("syslog.sock")).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let hook = d.join("hook.sh");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\ncat >> {}\n", d.join("hook.out").display()),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let port = free_port();
    w.metrics_listen = format!("127.0.0.1:{port}");
    w.events = format!(
        "[events]\nsyslog_socket = \"{}\"\nfile = \"{}\"\non_event = \"{}\"\non_event_timeout_ms = 5000\n",
        d.join("syslog.sock").display(),
        d.join("events.jsonl").display(),
        hook.display()
    );
    w.write_config("secret", 0o600);
    w.start_daemon();
    w.wait_available(3);
    let id = core_id(&w, &w.hosts[0].uuid.clone());
    let n: u64 = id.trim_start_matches("host-").parse().unwrap();
    crash_first_host(&mut w);

    // syslog: the fence's line.
    let mut lines = Vec::new();
    let fence_line =
        |lines: &[String]| lines.iter().find(|l| l.contains(" FENCE_ISSUED ")).cloned();
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while fence_line(&lines).is_none() && std::time::Instant::now() < until {
        let mut buf = vec![0u8; 65536];
        if let Ok(len) = syslog.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
    }
    let line = fence_line(&lines).unwrap_or_else(|| {
        panic!(
            "no FENCE_ISSUED syslog line among {} lines:\n{}",
            lines.len(),
            lines.join("\n")
        )
    });
    // LOG_DAEMON (3) * 8 + WARNING (4), RFC 5424 version 1, our app name.
    assert!(line.starts_with("<28>1 "), "{line}");
    assert!(line.contains(" hactl-kvm "), "{line}");
    assert!(line.contains(&format!("host=\"{id}\"")), "{line}");

    // The events file and the hook got the same event as JSON.
    let is_fence = |l: &str| {
        serde_json::from_str::<Value>(l)
            .is_ok_and(|v| v["event"]["event"] == "fence_issued" && v["event"]["host"] == n)
    };
    let has_fence = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .any(is_fence)
    };
    assert!(
        has_fence(&d.join("events.jsonl")),
        "events file has no fence_issued of {id}"
    );
    assert!(
        wait_until(Duration::from_secs(20), || has_fence(&d.join("hook.out"))),
        "the hook never got the fence_issued of {id}: {}",
        std::fs::read_to_string(d.join("hook.out")).unwrap_or_default()
    );

    // Metrics: scraped, promtool clean, the fence counted.
    let body = scrape(port);
    test_support::promtool::check_metrics(&body)
        .unwrap_or_else(|e| panic!("{e}\n--- exposition ---\n{body}"));
    let m = samples(&body);
    // Counted as the BMC saw them: the host stays dead after its power-on,
    // so a second fence follows (and leaves it off).
    let offs = || {
        w.hosts[0]
            .bmc
            .events()
            .iter()
            .filter(|e| **e == PowerEvent::Off)
            .count() as f64
    };
    assert!(
        wait_until(Duration::from_secs(30), || {
            let issued = samples(&scrape(port))["hactl_fences_issued_total"];
            issued >= 1.0 && issued == offs()
        }),
        "fences issued {} vs the BMC's power-offs {}",
        samples(&scrape(port))["hactl_fences_issued_total"],
        offs()
    );
    assert_eq!(m.get("hactl_quorate"), Some(&1.0), "{body}");
    assert!(
        m.get("hactl_power_read_duration_seconds_count")
            .is_some_and(|c| *c >= 1.0),
        "{body}"
    );
    assert!(
        m.get("hactl_journal_fsync_duration_seconds_count")
            .is_some_and(|c| *c >= 1.0),
        "{body}"
    );
    assert!(
        m.get("hactl_health_check_duration_seconds_count")
            .is_some_and(|c| *c >= 1.0),
        "{body}"
    );
    assert!(
        m.get("hactl_activity_check_duration_seconds_count")
            .is_some_and(|c| *c >= 1.0),
        "{body}"
    );
    assert!(w.stop_daemon().success());
}

/// A hook that never ends: each run is killed at `on_event_timeout_ms`
/// (not before), with what it started, its failure is logged, and the core
/// goes on deciding meanwhile (the hosts become AVAILABLE while runs hang).
/// Each run first records its PID and start time and the event it got.
#[test]
fn a_hanging_hook_is_killed_at_its_timeout_and_never_blocks_the_core() {
    let mut w = World::new(3, "secret");
    let d = w.dir.path().to_path_buf();
    let hook = d.join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$$ $(date +%s%N)\" >> {runs}\ncat >> {got}\necho >> {got}\nexec sleep 1000\n",
            runs = d.join("runs").display(),
            got = d.join("got").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    w.events = format!(
        "[events]\nsyslog_socket = \"\"\nfile = \"\"\non_event = \"{}\"\non_event_timeout_ms = 1000\n",
        hook.display()
    );
    w.write_config("secret", 0o600);
    w.start_daemon();
    // The core is not held up by the hanging hook.
    w.wait_available(3);
    let runs = || -> Vec<(u32, u128)> {
        std::fs::read_to_string(d.join("runs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (pid, ns) = l.split_once(' ')?;
                Some((pid.parse().ok()?, ns.parse().ok()?))
            })
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(30), || runs().len() >= 3),
        "the hook did not run three times: {:?}\nlog:\n{}",
        runs(),
        w.log()
    );
    let r = runs();
    for pair in r.windows(2) {
        let gap_ms = (pair[1].1 - pair[0].1) / 1_000_000;
        // One run at a time, each ended at the timeout, not before.
        assert!(gap_ms >= 1000, "run {} ended after {gap_ms} ms", pair[0].0);
        assert!(
            wait_until(Duration::from_secs(10), || !Path::new(&format!(
                "/proc/{}",
                pair[0].0
            ))
            .exists()),
            "hook run {} still alive",
            pair[0].0
        );
    }
    // The first run got the first event (the coordinator's start) on stdin.
    let got = std::fs::read_to_string(d.join("got")).unwrap();
    let first: Value = serde_json::from_str(got.lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 1, "{got}");
    assert_eq!(first["event"]["event"], "coordinator_started", "{got}");
    assert!(
        w.log().contains("timed out after 1000 ms"),
        "hook timeout not logged:\n{}",
        w.log()
    );
    let status = w.stop_daemon();
    assert!(status.success(), "{status:?}");
}

/// The journal's operator records (the file on disk) as (uid, user, command).
fn operator_records(w: &World) -> Vec<Value> {
    journal_records(w)
        .into_iter()
        .filter(|r| r["record"] == "operator_command")
        .collect()
}

/// A host whose BMC died with it ends FAILED (the core cannot prove it
/// off); `confirm-off` without --yes and without a terminal changes
/// nothing; with --yes it is journaled with who ran it, the host becomes
/// FENCED and is handed off to CloudStack (declareHostAsDegraded in the
/// double's request log), without any power command reaching its BMC.
#[test]
fn confirm_off_unblocks_a_failed_host() {
    let mut w = started(3);
    let uuid = w.hosts[0].uuid.clone();
    let id = core_id(&w, &uuid);
    // The BMC dies with the host: every chassis command hangs.
    w.hosts[0].bmc.set_chassis_hangs(true);
    w.hosts[0].writer.as_mut().unwrap().stop();
    w.cs.update_host(&uuid, |h| h.state = "Disconnected".into());
    assert!(
        wait_until(Duration::from_secs(120), || {
            json(&w.cli(&["hosts", "--state", "FAILED", "--json"]))["ok"]["hosts"]
                .as_array()
                .is_some_and(|hs| hs.len() == 1)
        }),
        "{id} never FAILED; log:\n{}",
        w.log()
    );
    let out = w.cli(&["hosts", "--state", "FAILED"]);
    assert!(stdout(&out).contains(&id), "{}", text(&out));
    assert_eq!(w.calls("declareHostAsDegraded", &uuid), 0);

    // No terminal, no --yes: refused before anything is sent.
    let before = journal_records(&w).len();
    let out = w.cli(&["confirm-off", &id]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(journal_records(&w).len(), before);

    let out = w.cli(&["confirm-off", &id, "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = stdout(&out);
    assert!(
        s.contains(&format!("changed: {id}: confirmed off by the operator")),
        "{s}"
    );
    assert!(
        s.contains(&format!("changed: {id}: FAILED -> FENCED")),
        "{s}"
    );
    // Journaled with who ran it (this test runs as root).
    let ops = operator_records(&w);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0]["by"]["uid"], 0);
    assert_eq!(ops[0]["by"]["user"], "root");
    assert_eq!(ops[0]["command"]["command"], "confirm_host_off");
    // Handed off: CloudStack restarts its VMs elsewhere.
    assert!(
        wait_until(Duration::from_secs(30), || w
            .calls("declareHostAsDegraded", &uuid)
            == 1),
        "no declareHostAsDegraded after confirm-off; log:\n{}",
        w.log()
    );
    // A second confirm-off is refused with the core's reason (exit 1).
    let out = w.cli(&["confirm-off", &id, "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only a FAILED host can be confirmed off"),
        "{}",
        text(&out)
    );
    assert_eq!(operator_records(&w).len(), 1);
    // The hung BMC never completed a power command.
    assert!(w.hosts[0].bmc.events().is_empty());
    assert!(w.stop_daemon().success());
}

/// Fence-rate cap of 1: the first fence trips it and the next host's
/// fence waits (its BMC sees nothing) until the operator acknowledges the
/// global and the partition cap; then it is fenced. Both acks journaled.
#[test]
fn ack_cap_releases_a_tripped_cap() {
    let mut w = World::new(6, "secret");
    w.compact_bytes = 16 << 20;
    w.core = CORE
        .replace("per_partition = 3", "per_partition = 1")
        .replace("global = 3", "global = 1");
    let port = free_port();
    w.metrics_listen = format!("127.0.0.1:{port}");
    w.write_config("secret", 0o600);
    w.start_daemon();
    w.wait_available(6);
    w.wait_socket();
    // First crash: fenced, and the cap trips.
    crash_first_host(&mut w);
    let j = json(&w.cli(&["status", "--json"]));
    let caps = j["ok"]["rate_caps"].as_array().unwrap().clone();
    assert!(
        caps.iter().all(|c| c["tripped"] == true),
        "caps not tripped: {caps:?}"
    );
    let s = stdout(&w.cli(&["status"]));
    assert!(
        s.contains("rate cap:     global: 1/1 fences in window - TRIPPED"),
        "{s}"
    );
    let tripped = || samples(&scrape(port))["hactl_rate_cap_tripped{scope=\"global\"}"];
    assert_eq!(tripped(), 1.0);
    // The first host recovers (heartbeat back, agent Up).
    let storage = w.dir.path().join("storage");
    let name0 = w.hosts[0].name.clone();
    w.hosts[0].writer = Some(Writer::start(&storage, &name0, 1000));
    let uuid0 = w.hosts[0].uuid.clone();
    w.cs.update_host(&uuid0, |h| h.state = "Up".into());
    // Second crash: held by the cap.
    let uuid1 = w.hosts[1].uuid.clone();
    let id1 = core_id(&w, &uuid1);
    w.hosts[1].writer.as_mut().unwrap().stop();
    w.cs.update_host(&uuid1, |h| h.state = "Disconnected".into());
    let deferred = |w: &World| {
        let out = w.cli(&["events", "--json"]);
        String::from_utf8_lossy(&out.stdout).lines().any(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| {
                v["event"]["event"] == "fence_deferred"
                    && Some(v["event"]["host"].as_u64().unwrap_or(0))
                        == id1.trim_start_matches("host-").parse().ok()
            })
        })
    };
    assert!(
        wait_until(Duration::from_secs(60), || deferred(&w)),
        "no fence_deferred for {id1}; log:\n{}",
        w.log()
    );
    assert!(
        w.hosts[1].bmc.events().is_empty(),
        "{id1} powered while the cap holds: {:?}",
        w.hosts[1].bmc.events()
    );
    // Global ack: the partition cap still holds.
    let out = w.cli(&["ack-cap"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("rate cap global cleared: fencing resumes"),
        "{}",
        text(&out)
    );
    let cluster = j["ok"]["partitions"][0]["id"].as_u64().unwrap();
    let partition = format!("cluster-{cluster}");
    assert_eq!(tripped(), 0.0, "global cap gauge after the ack");
    assert_eq!(
        samples(&scrape(port))[&format!("hactl_rate_cap_tripped{{scope=\"{partition}\"}}")],
        1.0
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(w.hosts[1].bmc.events().is_empty());
    let out = w.cli(&["ack-cap", &partition, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json(&out);
    assert_eq!(j["ok"]["journaled"], true, "{j}");
    // Now the held fence goes out.
    let events = w.hosts[1].bmc.wait_for_events(1, Duration::from_secs(60));
    assert_eq!(events.first(), Some(&PowerEvent::Off), "log:\n{}", w.log());
    // That fence trips the cap of 1 again, counted from the acknowledgement.
    assert_eq!(tripped(), 1.0);
    let acks: Vec<Value> = operator_records(&w)
        .into_iter()
        .filter(|r| r["command"]["command"] == "acknowledge_rate_cap")
        .collect();
    assert_eq!(acks.len(), 2, "{acks:?}");
    assert!(acks.iter().all(|a| a["by"]["uid"] == 0));
    assert!(w.stop_daemon().success());
}

/// Runs the CLI as `nobody` (setpriv), with the given supplementary groups.
fn cli_as_nobody(w: &World, groups: &str, args: &[&str]) -> Output {
    let setpriv = test_support::require("setpriv", "util-linux");
    std::process::Command::new(setpriv)
        .args(["--reuid=nobody", "--regid=nogroup"])
        .arg(if groups.is_empty() {
            "--clear-groups".to_string()
        } else {
            format!("--groups={groups}")
        })
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_hactl-kvm"))
        .args(args)
        .arg("--socket")
        .arg(w.socket())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// A non-root user without the control group is refused: by the socket's
/// mode (0660 root:group) and, if the mode were opened up, by the daemon's
/// SO_PEERCRED check; nothing is changed (journal, BMC). The same user with
/// the control group as a supplementary group is let in.
#[test]
fn permission_is_refused_for_a_user_without_the_control_group() {
    let mut w = started(3);
    let id = core_id(&w, &w.hosts[0].uuid.clone());
    // Let `nobody` reach the socket's directory (the test's own tempdir).
    std::fs::set_permissions(
        w.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let meta = std::fs::metadata(w.socket()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o660
    );
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 0, "group root");
    let before = journal_records(&w).len();

    // 1. The socket's mode keeps nobody out.
    let out = cli_as_nobody(&w, "", &["power", &id, "off", "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ermission denied"),
        "{}",
        text(&out)
    );

    // 2. Mode opened up by mistake: the daemon's credential check refuses.
    std::fs::set_permissions(
        w.socket(),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let out = cli_as_nobody(&w, "", &["power", &id, "off", "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: permission denied: uid 65534 is neither root nor a member of group root\n"
    );
    let out = cli_as_nobody(&w, "", &["status", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(json(&out)["err"]["error"], "permission_denied");
    std::fs::set_permissions(
        w.socket(),
        std::os::unix::fs::PermissionsExt::from_mode(0o660),
    )
    .unwrap();

    // Nothing changed: no record, no power command.
    assert_eq!(journal_records(&w).len(), before);
    std::thread::sleep(Duration::from_secs(2));
    assert!(w.hosts[0].bmc.events().is_empty());

    // 3. nobody with the control group (root, gid 0) as a supplementary group.
    let out = cli_as_nobody(&w, "0", &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("quorum:"), "{}", text(&out));
    assert!(w.stop_daemon().success());
}

/// `events`, `power on|off|cycle`, `disable`/`enable` and `maintenance`
/// against the running daemon: tables and JSON; every change journaled
/// with who ran it (the file on disk); power through the core reaching the
/// BMC (its event log); a host in maintenance whose heartbeat stops is not
/// fenced until maintenance ends.
#[test]
fn events_power_and_overrides_through_the_core() {
    let mut w = started(4);
    let ids: Vec<String> = (0..4)
        .map(|i| core_id(&w, &w.hosts[i].uuid.clone()))
        .collect();

    // events: table and JSON lines, in sequence.
    let out = w.cli(&["events"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(" coordinator_started "),
        "{}",
        text(&out)
    );
    let out = w.cli(&["events", "--json", "--since", "1h"]);
    let seqs: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(seqs.len() >= 5, "{seqs:?}");
    assert!(seqs.windows(2).all(|p| p[1] == p[0] + 1), "{seqs:?}");

    // power off / on / cycle of host 3 through the core.
    let h3 = &ids[3];
    let out = w.cli(&["power", h3, "off"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no --yes, no terminal: {}",
        text(&out)
    );
    let out = w.cli(&["power", h3, "off", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("changed: {h3}: power off requested")),
        "{}",
        text(&out)
    );
    assert_eq!(
        w.hosts[3].bmc.wait_for_events(1, Duration::from_secs(30)),
        vec![PowerEvent::Off],
        "log:\n{}",
        w.log()
    );
    // Refused while the off (and the read after it) is still pending; the
    // refusal changes nothing, so retry until accepted.
    assert!(
        wait_until(Duration::from_secs(30), || w
            .cli(&["power", h3, "on", "--yes"])
            .status
            .success()),
        "power on never accepted; log:\n{}",
        w.log()
    );
    assert_eq!(
        w.hosts[3].bmc.wait_for_events(2, Duration::from_secs(30)),
        vec![PowerEvent::Off, PowerEvent::On]
    );
    let users: Vec<Value> = operator_records(&w)
        .into_iter()
        .filter(|r| r["command"]["command"] == "user_power")
        .collect();
    assert!(users.len() >= 2, "{users:?}");
    assert_eq!(users[0]["command"]["op"], "off");
    assert!(users.iter().all(|r| r["by"]["uid"] == 0));

    // disable / enable host 2: journaled; a repeated enable changes nothing.
    let h2 = &ids[2];
    let out = w.cli(&["disable", h2]);
    assert!(out.status.success(), "{}", text(&out));
    let s = stdout(&out);
    assert!(
        s.contains(&format!("changed: {h2}: HA disabled by root (uid 0): set")),
        "{s}"
    );
    assert!(
        s.contains(&format!("changed: {h2}: AVAILABLE -> INELIGIBLE")),
        "{s}"
    );
    let j = json(&w.cli(&["hosts", "--state", "INELIGIBLE", "--json"]));
    assert_eq!(j["ok"]["hosts"].as_array().unwrap().len(), 1, "{j}");
    let j = json(&w.cli(&["enable", h2, "--json"]));
    assert_eq!(j["ok"]["journaled"], true, "{j}");
    let out = w.cli(&["enable", h2]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).starts_with("changed: nothing changed"),
        "{}",
        text(&out)
    );

    // maintenance of host 1, then its heartbeat stops: never fenced while
    // in maintenance; fenced once it ends.
    let h1 = &ids[1];
    let out = w.cli(&["maintenance", h1, "on"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("{h1}: maintenance by root (uid 0): set")),
        "{}",
        text(&out)
    );
    let uuid1 = w.hosts[1].uuid.clone();
    w.hosts[1].writer.as_mut().unwrap().stop();
    w.cs.update_host(&uuid1, |h| h.state = "Disconnected".into());
    // Well past the 2-sample, 3.5 s-window evidence an AVAILABLE host gets.
    std::thread::sleep(Duration::from_secs(15));
    assert!(
        w.hosts[1].bmc.events().is_empty(),
        "{h1} powered in maintenance: {:?}",
        w.hosts[1].bmc.events()
    );
    let out = w.cli(&["maintenance", h1, "off", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out)["ok"]["journaled"], true);
    let ev = w.hosts[1].bmc.wait_for_events(1, Duration::from_secs(60));
    assert_eq!(ev.first(), Some(&PowerEvent::Off), "log:\n{}", w.log());
    let overrides: Vec<Value> = operator_records(&w)
        .into_iter()
        .filter(|r| r["command"]["command"] == "set_override")
        .collect();
    assert_eq!(overrides.len(), 4, "{overrides:?}");

    // The host's history shows the operator's commands.
    let out = w.cli(&["host", h1]);
    assert!(
        stdout(&out).contains("operator root (uid 0): ")
            && stdout(&out).contains("maintenance set"),
        "{}",
        text(&out)
    );
    assert!(w.stop_daemon().success());
}
