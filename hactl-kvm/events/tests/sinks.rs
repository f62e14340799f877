//! The event sinks against real peers: a syslog datagram socket bound by
//! the test, the file system (rotation), and real hook processes (shell
//! scripts, a hanging one whose process group must die at the timeout).

use hactl_core::{
    AttemptFailure, ClusterId, Event, Evidence, FailedReason, FenceId, GateBlock, HostId,
    MassFailureReason, OffConfirmation, RateCapClearedBy, RateScope,
};
use hactl_events::{
    msgid, severity, EventHook, EventRecord, HookConfig, JsonlConfig, JsonlSink, Severity,
    SyslogSink,
};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const T0: u64 = 1_796_242_503_042;

fn rec(seq: u64, event: Event) -> EventRecord {
    EventRecord {
        seq,
        at_unix_ms: T0 + seq,
        event,
    }
}

fn fence_issued() -> Event {
    Event::FenceIssued {
        fence: FenceId((1 << 40) | 7),
        host: HostId(3),
        cluster: ClusterId(1),
        attempt: 1,
        evidence: Evidence {
            host: HostId(3),
            samples: vec![],
            dead_required: 3,
            decided_at: 5,
        },
    }
}

/// Every fence-related event kind (and the operator-facing safety events).
fn fence_related() -> Vec<Event> {
    vec![
        fence_issued(),
        Event::FenceConfirmed {
            fence: Some(FenceId(7)),
            host: HostId(3),
            how: OffConfirmation::ReadAfterPowerOff,
        },
        Event::RecoveryAttemptFailed {
            host: HostId(3),
            attempt: 1,
            failure: AttemptFailure::StillOn,
            will_retry: true,
        },
        Event::FenceDeferred {
            host: HostId(3),
            gate: GateBlock::NoQuorum,
        },
        Event::RateCapReached {
            scope: RateScope::Global,
            fences: 3,
            window_ms: 3_600_000,
        },
        Event::RateCapCleared {
            scope: RateScope::Global,
            by: RateCapClearedBy::Acknowledged,
        },
        Event::MassFailureDetected {
            cluster: ClusterId(2),
            reason: MassFailureReason::SuspectShare {
                affected: 4,
                total: 6,
            },
        },
        Event::OperatorActionRequired {
            host: HostId(3),
            reason: FailedReason::BmcUnreachable,
        },
        Event::LeftOffAfterRepeatedFence {
            host: HostId(3),
            fence: FenceId(8),
            previous_confirmed_at: 1,
            confirmed_at: 2,
            holdoff_ms: 3_600_000,
        },
        Event::QuorumChanged { quorate: false },
    ]
}

fn listener(dir: &Path) -> (UnixDatagram, PathBuf) {
    let path = dir.join("log.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    (sock, path)
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn syslog_line_is_rfc5424_with_msgid_and_structured_data() {
    let dir = tempfile::tempdir().unwrap();
    let (sock, path) = listener(dir.path());
    let sink = SyslogSink::new(&path).unwrap();
    assert!(sink.send(&rec(1, fence_issued()), None));
    let line = recv(&sock);
    // <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD SP MSG
    let mut f = line.splitn(7, ' ');
    // LOG_DAEMON (3) * 8 + WARNING (4) = 28.
    assert_eq!(f.next(), Some("<28>1"), "{line}");
    assert_eq!(f.next(), Some("2026-12-02T20:15:03.043Z"));
    let host = f.next().unwrap();
    assert!(!host.is_empty() && !host.contains(' '));
    assert_eq!(f.next(), Some("hactl-kvm"));
    assert_eq!(f.next(), Some(std::process::id().to_string().as_str()));
    assert_eq!(f.next(), Some("FENCE_ISSUED"));
    let rest = f.next().unwrap();
    assert!(
        rest.starts_with(
            "[hactl@32473 seq=\"1\" host=\"host-3\" partition=\"cluster-1\" fence=\"fence-1.7\"] {"
        ),
        "{line}"
    );
    let msg = &rest[rest.find("] ").unwrap() + 2..];
    let body: serde_json::Value = serde_json::from_str(msg).unwrap();
    assert_eq!(body["attempt"], 1);

    // A host event without its partition gets the one the daemon names.
    let ev = Event::OperatorActionRequired {
        host: HostId(5),
        reason: FailedReason::OffNotConfirmed,
    };
    assert!(sink.send(&rec(2, ev), Some(ClusterId(4))));
    let line = recv(&sock);
    assert!(line.starts_with("<27>1 "), "ERR: {line}");
    assert!(line.contains(
        " OPERATOR_ACTION_REQUIRED [hactl@32473 seq=\"2\" host=\"host-5\" partition=\"cluster-4\"] "
    ));
}

#[test]
fn fence_related_events_are_notice_or_higher_and_msgids_are_stable() {
    for e in fence_related() {
        assert!(
            severity(&e) <= Severity::Notice,
            "{e:?} is {:?}",
            severity(&e)
        );
        let id = msgid(&e);
        assert!(
            !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| (33..=126).contains(&b)),
            "{id}"
        );
    }
    assert_eq!(msgid(&fence_issued()), "FENCE_ISSUED");
    assert_eq!(
        msgid(&Event::MassFailureCleared {
            cluster: ClusterId(1)
        }),
        "MASS_FAILURE_CLEARED"
    );
    assert_eq!(
        severity(&Event::PowerStateChanged {
            host: HostId(1),
            from: hactl_core::PowerState::Unknown,
            to: hactl_core::PowerState::On,
        }),
        Severity::Info
    );
}

#[test]
fn a_stalled_or_missing_syslog_never_blocks_and_counts_drops() {
    let dir = tempfile::tempdir().unwrap();
    let (_sock, path) = listener(dir.path());
    let sink = SyslogSink::new(&path).unwrap();
    // Nobody reads: the socket fills, sends fail at once instead of waiting.
    let mut delivered = 0u64;
    for seq in 0..5000 {
        if sink.send(&rec(seq, fence_issued()), None) {
            delivered += 1;
        }
    }
    assert!(sink.dropped() > 0, "a full socket must drop");
    assert_eq!(delivered + sink.dropped(), 5000);
    let missing = SyslogSink::new(dir.path().join("absent.sock")).unwrap();
    assert!(!missing.send(&rec(1, fence_issued()), None));
    assert_eq!(missing.dropped(), 1);
}

fn read_seqs(path: &Path) -> Vec<u64> {
    match std::fs::read_to_string(path) {
        Ok(t) => t
            .lines()
            .map(|l| serde_json::from_str::<EventRecord>(l).unwrap().seq)
            .collect(),
        Err(_) => vec![],
    }
}

#[test]
fn jsonl_file_rotates_by_size_and_keeps_the_newest_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let line_len = serde_json::to_vec(&rec(10, Event::QuorumChanged { quorate: true }))
        .unwrap()
        .len() as u64
        + 1;
    let mut sink = JsonlSink::open(JsonlConfig {
        path: path.clone(),
        max_bytes: line_len * 3,
        keep: 2,
    })
    .unwrap();
    for seq in 10..30 {
        sink.write(&rec(seq, Event::QuorumChanged { quorate: true }))
            .unwrap();
    }
    let p1 = dir.path().join("events.jsonl.1");
    let p2 = dir.path().join("events.jsonl.2");
    assert!(!dir.path().join("events.jsonl.3").exists());
    for p in [&path, &p1, &p2] {
        assert!(std::fs::metadata(p).unwrap().len() <= line_len * 3, "{p:?}");
    }
    // Oldest file first: one contiguous run ending with the last event.
    let all: Vec<u64> = [&p2, &p1, &path]
        .iter()
        .flat_map(|p| read_seqs(p))
        .collect();
    // 20 events, 3 per file: the current file has the last 2.
    assert_eq!(all, (22..30).collect::<Vec<_>>());
    // Reopening appends to the current file.
    drop(sink);
    let mut sink = JsonlSink::open(JsonlConfig {
        path: path.clone(),
        max_bytes: line_len * 3,
        keep: 2,
    })
    .unwrap();
    assert_eq!(sink.len(), line_len * 2);
    for seq in 30..32 {
        sink.write(&rec(seq, Event::QuorumChanged { quorate: true }))
            .unwrap();
    }
    assert_eq!(read_seqs(&path), vec![31]);
    assert_eq!(read_seqs(&p1), vec![28, 29, 30]);
    assert_eq!(read_seqs(&p2), vec![25, 26, 27]);
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit(')').next().unwrap_or("").split_whitespace().next();
            state != Some("Z")
        }
        Err(_) => false,
    }
}

#[test]
fn hook_gets_the_event_json_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.json");
    let hook = EventHook::start(HookConfig {
        program: script(dir.path(), "hook", &format!("cat > {}", out.display())),
        timeout: Duration::from_secs(10),
        queue: 4,
    });
    let r = rec(1, fence_issued());
    assert!(hook.submit(&r));
    wait_until("the hook run", Duration::from_secs(10), || {
        hook.stats().succeeded.load(Ordering::Relaxed) == 1
    });
    let got: EventRecord =
        serde_json::from_str(std::fs::read_to_string(&out).unwrap().trim()).unwrap();
    assert_eq!(got, r);
    hook.shutdown();
}

#[test]
fn a_failing_hook_is_counted_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let hook = EventHook::start(HookConfig {
        program: script(dir.path(), "hook", "cat >/dev/null; exit 3"),
        timeout: Duration::from_secs(10),
        queue: 4,
    });
    assert!(hook.submit(&rec(1, fence_issued())));
    wait_until("the hook failure", Duration::from_secs(10), || {
        hook.stats().failed.load(Ordering::Relaxed) == 1
    });
    let msg = hook.stats().last_failure.lock().unwrap().clone().unwrap();
    assert!(msg.contains("exit status: 3"), "{msg}");
    assert!(msg.contains("/hook"), "{msg}");
    let missing = EventHook::start(HookConfig {
        program: dir.path().join("does-not-exist"),
        timeout: Duration::from_secs(1),
        queue: 1,
    });
    assert!(missing.submit(&rec(1, fence_issued())));
    wait_until("the start failure", Duration::from_secs(10), || {
        missing.stats().failed.load(Ordering::Relaxed) == 1
    });
    assert!(missing
        .stats()
        .last_failure
        .lock()
        .unwrap()
        .as_deref()
        .unwrap()
        .contains("cannot start"));
}

#[test]
fn a_hanging_hook_and_its_children_are_killed_at_the_timeout_without_blocking_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // The hook starts a grandchild and then hangs; both must die.
    let hook = EventHook::start(HookConfig {
        program: script(
            dir.path(),
            "hook",
            &format!("sleep 1000 &\necho $$ $! >> {}\nwait", pids.display()),
        ),
        timeout: Duration::from_millis(400),
        queue: 1,
    });
    // The caller never waits: the first event runs, one waits in the
    // queue, the rest are dropped and counted.
    let mut accepted = 0;
    for seq in 0..5 {
        if hook.submit(&rec(seq, fence_issued())) {
            accepted += 1;
        }
    }
    assert!(accepted <= 2, "queue of 1 (+1 running) accepted {accepted}");
    assert_eq!(hook.stats().dropped.load(Ordering::Relaxed), 5 - accepted);
    wait_until(
        "the first hook run to start",
        Duration::from_secs(10),
        || std::fs::read_to_string(&pids).is_ok_and(|t| !t.is_empty()),
    );
    let first: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    wait_until("the timeout kill", Duration::from_secs(10), || {
        hook.stats().timed_out.load(Ordering::Relaxed) >= 1
    });
    wait_until(
        "the hook and its grandchild to be gone",
        Duration::from_secs(5),
        || !alive(first[0]) && !alive(first[1]),
    );
    let msg = hook.stats().last_failure.lock().unwrap().clone().unwrap();
    assert!(msg.contains("timed out after 400 ms"), "{msg}");
    hook.shutdown();
    assert_eq!(
        hook_runs(&pids),
        accepted as usize,
        "every accepted event ran exactly once"
    );
}

fn hook_runs(pids: &Path) -> usize {
    std::fs::read_to_string(pids).unwrap().lines().count()
}

/// `stop` (the daemon's SIGTERM): the run in progress ends at its timeout,
/// the queued events are dropped and counted instead of each hanging for a
/// timeout of its own.
#[test]
fn stop_drops_the_queue_and_waits_only_for_the_running_hook() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let hook = EventHook::start(HookConfig {
        program: script(
            dir.path(),
            "hook",
            &format!("echo $$ >> {}\nexec sleep 1000", pids.display()),
        ),
        timeout: Duration::from_millis(400),
        queue: 8,
    });
    for seq in 0..4 {
        assert!(hook.submit(&rec(seq, fence_issued())));
    }
    wait_until("the first run", Duration::from_secs(10), || {
        std::fs::read_to_string(&pids).is_ok_and(|t| !t.is_empty())
    });
    assert_eq!(hook.stats().dropped.load(Ordering::Relaxed), 0);
    assert_eq!(hook.stop(), 3, "the three queued events dropped");
    assert_eq!(hook_runs(&pids), 1, "queued events ran after stop");
}
