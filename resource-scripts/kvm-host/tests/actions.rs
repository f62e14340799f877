//! The agent's actions run as pacemaker-execd runs them (argv[1] = action,
//! parameters in OCF_RESKEY_*), against temp-dir storages: exit codes, exit
//! reasons, the heartbeat on storage, deadlines on blocked I/O, check-peer.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

fn mkfifo(path: &std::path::Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
}

#[test]
fn lifecycle_heartbeat_advances_while_running_and_stops_after_stop() {
    let f = Fixture::new(1);
    let hb = f.heartbeat_file(0, "node-a");
    // Never started: probe and recurring monitor say "cleanly stopped".
    assert_eq!(f.action("monitor", None, None, 20_000).rc, 7);
    assert_eq!(f.monitor(20).rc, 7);
    assert_eq!(f.stop().rc, 0, "stop of a stopped resource is 0");

    let r = f.start();
    assert_eq!(r.rc, 0, "{r:?}");
    // Start returns only once the first heartbeat is on storage.
    let c1 = counter(&hb).expect("heartbeat written by start");
    let pid = f.writer_pid();
    assert!(alive(pid));
    for depth in [0, 10, 20] {
        let m = f.monitor(depth);
        assert_eq!(m.rc, 0, "depth {depth}: {m:?}");
    }
    assert_eq!(
        f.action("monitor", None, None, 20_000).rc,
        0,
        "probe of a running resource"
    );
    let again = f.start();
    assert_eq!(again.rc, 0, "start of a started resource");
    assert_eq!(
        f.writer_pid(),
        pid,
        "second start must not spawn another writer"
    );

    assert!(
        wait_until(Duration::from_secs(5), || counter(&hb).unwrap_or(0)
            >= c1 + 2),
        "heartbeat did not advance: {c1} -> {:?}",
        counter(&hb)
    );

    let s = f.stop();
    assert_eq!(s.rc, 0, "{s:?}");
    assert!(!alive(pid), "writer {pid} still alive after stop");
    assert!(!f.pid_file().exists());
    let frozen = counter(&hb).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(counter(&hb), Some(frozen), "heartbeat advanced after stop");
    assert_eq!(f.monitor(0).rc, 7);
    assert_eq!(f.stop().rc, 0);

    // A new writer continues the counter: it only ever grows.
    assert_eq!(f.start().rc, 0);
    assert!(counter(&hb).unwrap() > frozen);
    assert_eq!(f.stop().rc, 0);
}

#[test]
fn killed_writer_is_reported_by_monitor_and_restart_works() {
    let f = Fixture::new(1);
    assert_eq!(f.start().rc, 0);
    let pid = f.writer_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)));
    let m = f.monitor(0);
    assert_eq!(m.rc, 1, "{m:?}");
    assert_eq!(
        m.exit_reason().as_deref(),
        Some(format!("heartbeat writer (pid {pid}) is not running").as_str())
    );
    assert_eq!(f.stop().rc, 0);
    assert_eq!(f.start().rc, 0);
    assert_ne!(f.writer_pid(), pid);
    assert_eq!(f.monitor(20).rc, 0);
}

#[test]
fn lost_storage_is_reported_in_monitor_and_syslog_but_nothing_is_killed() {
    let mut f = Fixture::new(2);
    let sock_path = f.dir.path().join("syslog.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    // Drain the socket all along, as a syslog daemon would.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    {
        let received = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                received
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
    }
    f.env.insert(
        "KVM_HOST_SYSLOG_SOCKET".into(),
        sock_path.display().to_string(),
    );
    f.set("heartbeat_max_age", "2");
    assert_eq!(f.start().rc, 0);
    let pid = f.writer_pid();
    assert_eq!(f.monitor(20).rc, 0);

    // The second storage disappears (an unmounted or deleted export).
    std::fs::remove_dir_all(f.storage(1)).unwrap();
    let lost = f.storage(1).display().to_string();
    let mut last = None;
    let failed = wait_until(Duration::from_secs(8), || {
        let m = f.monitor(20);
        let hit = m.rc == 1 && m.exit_reason().map(|r| r.contains(&lost)).unwrap_or(false);
        last = Some(m);
        hit
    });
    assert!(failed, "monitor did not report the lost storage: {last:?}");
    let reason = last.unwrap().exit_reason().unwrap();
    assert!(
        !reason.contains("storage-0"),
        "the healthy storage is not blamed: {reason}"
    );
    // Depth 0 is about the process only: still fine.
    assert_eq!(f.monitor(0).rc, 0);
    // Reported, not acted on: the writer keeps running and keeps writing
    // the healthy storage.
    assert!(alive(pid));
    let c = counter(&f.heartbeat_file(0, "node-a")).unwrap();
    assert!(wait_until(Duration::from_secs(4), || counter(
        &f.heartbeat_file(0, "node-a")
    )
    .unwrap()
        > c));

    // The event reached syslog (facility daemon = 3, err = 3: <27>).
    let messages = received.lock().unwrap().clone();
    let event = messages
        .iter()
        .find(|m| m.contains("heartbeat write to") && m.contains(&lost))
        .unwrap_or_else(|| panic!("no syslog event for the lost storage; got {messages:?}"));
    assert!(event.starts_with("<27>"), "{event}");
    assert!(event.contains("kvm-host(hb-test)"), "{event}");
    assert!(event.contains("no local action taken"), "{event}");

    // Storage comes back: monitor recovers without a restart.
    std::fs::create_dir(f.storage(1)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || f.monitor(20).rc == 0));
    assert_eq!(f.writer_pid(), pid);
}

#[test]
fn unmounted_storage_fails_start_and_writes_nothing() {
    let mut f = Fixture::new(1);
    f.set("require_mount", "true");
    let r = f.start();
    assert_eq!(r.rc, 1, "{r:?}");
    let reason = r.exit_reason().unwrap();
    assert!(reason.contains("is not a mount point"), "{reason}");
    assert!(!f.pid_file().exists(), "failed start left a PID file");
    assert!(
        !f.storage(0).join("KVMHA").exists(),
        "wrote below an unmounted mount point"
    );
    assert_eq!(f.monitor(0).rc, 7);
}

#[test]
fn blocked_heartbeat_read_makes_monitor_fail_before_its_timeout() {
    let mut f = Fixture::new(1);
    // One write at start, then none for an hour: the FIFO stays in place.
    f.set("heartbeat_interval", "3600");
    assert_eq!(f.start().rc, 0);
    let hb = f.heartbeat_file(0, "node-a");
    std::fs::remove_file(&hb).unwrap();
    mkfifo(&hb); // open(O_RDONLY) now blocks, like a hung NFS read.

    let m = f.action("monitor", Some(10_000), Some(20), 3_000);
    assert_eq!(m.rc, 1, "{m:?}");
    assert!(
        m.took < Duration::from_secs(3),
        "monitor took {:?}, beyond its 3 s timeout",
        m.took
    );
    let reason = m.exit_reason().unwrap();
    assert!(
        reason.contains("did not finish within") && reason.contains("storage hung?"),
        "{reason}"
    );
    // Shallower depths do not touch the storage.
    assert_eq!(f.action("monitor", Some(10_000), Some(10), 3_000).rc, 0);
    let s = f.stop();
    assert_eq!(s.rc, 0);
    assert!(s.took < Duration::from_secs(5));
}

#[test]
fn blocked_heartbeat_write_is_reported_and_stop_still_works() {
    let mut f = Fixture::new(1);
    f.set("heartbeat_max_age", "2");
    assert_eq!(f.start().rc, 0);
    // The writer's next temp-file open blocks on this FIFO.
    let tmp = f.storage(0).join("KVMHA").join(".ocf-hb-node-a.tmp");
    mkfifo(&tmp);
    let mut last = None;
    let reported = wait_until(Duration::from_secs(8), || {
        let m = f.action("monitor", Some(10_000), Some(20), 3_000);
        assert!(m.took < Duration::from_secs(3), "monitor took {:?}", m.took);
        let hit = m.rc == 1
            && m.exit_reason()
                .map(|r| r.contains("blocked for"))
                .unwrap_or(false);
        last = Some(m);
        hit
    });
    assert!(reported, "{last:?}");
    let pid = f.writer_pid();
    let s = f.action("stop", None, None, 5_000);
    assert_eq!(s.rc, 0, "{s:?}");
    assert!(!alive(pid));
}

#[test]
fn start_does_not_hang_on_a_blocked_storage() {
    let f = Fixture::new(1);
    std::fs::create_dir(f.storage(0).join("KVMHA")).unwrap();
    mkfifo(&f.heartbeat_file(0, "node-a")); // the writer's first read blocks
    let r = f.action("start", None, None, 3_000);
    assert_eq!(r.rc, 1, "{r:?}");
    assert!(r.took < Duration::from_secs(3), "start took {:?}", r.took);
    assert!(
        r.exit_reason()
            .unwrap()
            .contains("first heartbeat not written within"),
        "{r:?}"
    );
    assert!(!f.pid_file().exists());
}

#[test]
fn depth_10_checks_pass_and_fail_with_exact_reasons() {
    let mut f = Fixture::new(1);
    let virsh = f.dir.path().join("virsh");
    let systemctl = f.dir.path().join("systemctl");
    script(
        &virsh,
        "[ \"$*\" = \"--quiet --connect qemu:///system version\" ] || exit 99\nexit 0",
    );
    script(
        &systemctl,
        "[ \"$*\" = \"is-active cloudstack-agent\" ] || exit 99\necho active",
    );
    f.set("libvirt_check", "true")
        .set("virsh_binary", &virsh.display().to_string())
        .set("cloudstack_agent_check", "systemd")
        .set("systemctl_binary", &systemctl.display().to_string());
    assert_eq!(f.action("validate-all", None, None, 20_000).rc, 0);
    assert_eq!(f.start().rc, 0);
    let m = f.monitor(10);
    assert_eq!(m.rc, 0, "{m:?}");

    script(
        &virsh,
        "echo 'error: failed to connect to the hypervisor' >&2\nexit 1",
    );
    let m = f.monitor(10);
    assert_eq!(m.rc, 1);
    assert_eq!(
        m.exit_reason().unwrap(),
        "libvirt (qemu:///system) does not answer (exit status: 1): error: failed to connect to the hypervisor"
    );
    assert_eq!(f.monitor(0).rc, 0, "depth 0 does not run virsh");

    script(&virsh, "exec sleep 60");
    let m = f.action("monitor", Some(10_000), Some(10), 2_000);
    assert_eq!(m.rc, 1);
    assert!(m.took < Duration::from_secs(2), "{:?}", m.took);
    assert!(m
        .exit_reason()
        .unwrap()
        .starts_with("libvirt (qemu:///system) check did not finish within"));

    script(&virsh, "exit 0");
    script(&systemctl, "echo inactive\nexit 3");
    let m = f.monitor(10);
    assert_eq!(m.rc, 1);
    assert_eq!(
        m.exit_reason().unwrap(),
        "CloudStack agent service cloudstack-agent is not active: inactive"
    );

    // The pidfile mode, pointed at a process the test controls.
    let pidfile = f.dir.path().join("agent.pid");
    let mut stand_in = Command::new("sleep").arg("60").spawn().unwrap();
    std::fs::write(&pidfile, format!("{}\n", stand_in.id())).unwrap();
    f.set("cloudstack_agent_check", "pidfile")
        .set("cloudstack_agent_pidfile", &pidfile.display().to_string());
    assert_eq!(f.monitor(10).rc, 0);
    stand_in.kill().unwrap();
    stand_in.wait().unwrap();
    let m = f.monitor(10);
    assert_eq!(m.rc, 1);
    assert_eq!(
        m.exit_reason().unwrap(),
        format!(
            "CloudStack agent not running (pid {} from {} is gone)",
            stand_in.id(),
            pidfile.display()
        )
    );

    // virsh gone: "not installed" (5) from validate-all and deep monitor.
    f.set("virsh_binary", "/nonexistent/virsh");
    let v = f.action("validate-all", None, None, 20_000);
    assert_eq!(v.rc, 5);
    assert!(v
        .exit_reason()
        .unwrap()
        .starts_with("/nonexistent/virsh: not installed"));
    assert_eq!(f.monitor(10).rc, 5);
    // ...but stop still succeeds.
    assert_eq!(f.stop().rc, 0);
}

#[test]
fn validate_all_exit_codes() {
    let mut f = Fixture::new(1);
    assert_eq!(f.action("validate-all", None, None, 20_000).rc, 0);
    f.unset("storage");
    let v = f.action("validate-all", None, None, 20_000);
    assert_eq!(v.rc, 6);
    assert_eq!(
        v.exit_reason().unwrap(),
        "storage: required parameter not set"
    );
    f.set("storage", "relative/path");
    assert_eq!(f.action("validate-all", None, None, 20_000).rc, 6);
    f.set("storage", "/mnt/x")
        .set("heartbeat_interval", "often");
    let v = f.action("validate-all", None, None, 20_000);
    assert_eq!(v.rc, 6);
    assert_eq!(
        v.exit_reason().unwrap(),
        "heartbeat_interval=\"often\": not a whole number of seconds"
    );
    f.set("heartbeat_interval", "1");
    let file = f.dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    f.set("state_dir", &file.display().to_string());
    assert_eq!(f.action("validate-all", None, None, 20_000).rc, 2);
    // Invalid parameters never make start do anything.
    let mut g = Fixture::new(1);
    g.set("host_id", "../../etc");
    assert_eq!(g.start().rc, 6);
    assert!(!g.pid_file().exists());
    assert!(!g.storage(0).join("KVMHA").exists());
}

#[test]
fn stop_succeeds_when_configuration_is_gone() {
    let mut f = Fixture::new(1);
    assert_eq!(f.start().rc, 0);
    let pid = f.writer_pid();
    // The storage list vanished and libvirt is broken: stop needs none of it.
    f.unset("storage")
        .set("libvirt_check", "true")
        .set("virsh_binary", "/nonexistent");
    // As ocf-rarun's handle_invalid_env: a probe says 7, a recurring monitor 1.
    assert_eq!(f.action("monitor", None, None, 20_000).rc, 7);
    let m = f.monitor(0);
    assert_eq!(m.rc, 1);
    assert_eq!(
        m.exit_reason().unwrap(),
        "storage: required parameter not set"
    );
    let s = f.stop();
    assert_eq!(s.rc, 0, "{s:?}");
    assert!(!alive(pid));
    // A never-configured resource stops fine too.
    let mut g = Fixture::new(0);
    g.params.clear();
    assert_eq!(g.stop().rc, 0);
    assert_eq!(g.action("monitor", None, None, 20_000).rc, 7);
}

#[test]
fn command_line_contract() {
    let out = Command::new(AGENT).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(AGENT).arg("promote").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("ocf-exit-reason:promote: action not supported"));
    let out = Command::new(AGENT).arg("reload-agent").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    // meta-data: no environment at all, extra arguments ignored.
    let out = Command::new(AGENT)
        .args(["meta-data", "extra"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("<resource-agent name=\"kvm-host\""));
}

#[test]
fn check_peer_alive_dead_and_cannot_tell() {
    let f = Fixture::new(1);
    assert_eq!(f.start().rc, 0);
    let storage = f.storage(0).display().to_string();
    let base = [
        "--storage",
        storage.as_str(),
        "--host",
        "node-a",
        "--no-require-mount",
    ];

    let alive_run = check_peer(&[&base[..], &["--window", "3"]].concat());
    assert_eq!(alive_run.rc, 0, "{alive_run:?}");
    assert_eq!(alive_run.stdout, "ALIVE\n");

    let json = check_peer(&[&base[..], &["--json"]].concat()); // auto window: 2*1+1 s
    assert_eq!(json.rc, 0, "{json:?}");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["verdict"], "ALIVE");
    assert_eq!(v["host"], "node-a");
    assert!(v["window_ms"].as_u64().unwrap() >= 3000);
    assert!(
        v["storages"][0]["second_counter"].as_u64() > v["storages"][0]["first_counter"].as_u64()
    );

    assert_eq!(f.stop().rc, 0);
    let dead = check_peer(&[&base[..], &["--window", "3"]].concat());
    assert_eq!(dead.rc, 10, "{dead:?}");
    assert_eq!(dead.stdout, "DEAD\n");
    // A window shorter than two intervals cannot prove death.
    let short = check_peer(&[&base[..], &["--window", "1"]].concat());
    assert_eq!(
        (short.rc, short.stdout.as_str()),
        (11, "CANNOT-TELL\n"),
        "{short:?}"
    );

    // This host cannot read the storage: unmounted, missing, or hung.
    let mounted = check_peer(&[
        "--storage",
        storage.as_str(),
        "--host",
        "node-a",
        "--window",
        "3",
    ]);
    assert_eq!(
        (mounted.rc, mounted.stdout.as_str()),
        (11, "CANNOT-TELL\n"),
        "{mounted:?}"
    );
    let gone = check_peer(&[
        "--storage",
        "/nonexistent/storage",
        "--host",
        "node-a",
        "--no-require-mount",
    ]);
    assert_eq!((gone.rc, gone.stdout.as_str()), (11, "CANNOT-TELL\n"));
    let unknown = check_peer(&[
        "--storage",
        storage.as_str(),
        "--host",
        "node-zzz",
        "--no-require-mount",
    ]);
    assert_eq!(unknown.rc, 11);
    std::fs::remove_file(f.heartbeat_file(0, "node-a")).unwrap();
    mkfifo(&f.heartbeat_file(0, "node-a"));
    let hung = check_peer(&[&base[..], &["--io-timeout", "1"]].concat());
    assert_eq!(
        (hung.rc, hung.stdout.as_str()),
        (11, "CANNOT-TELL\n"),
        "{hung:?}"
    );
    assert!(hung.took < Duration::from_secs(3), "{:?}", hung.took);
    assert!(
        hung.stderr.contains("did not finish within"),
        "{}",
        hung.stderr
    );

    // Bad usage is 2, distinct from every verdict.
    assert_eq!(check_peer(&["--host", "node-a"]).rc, 2);
    assert_eq!(check_peer(&["--storage", "rel", "--host", "node-a"]).rc, 2);
    assert_eq!(check_peer(&["--storage", "/x", "--host", "../x"]).rc, 2);
}

/// The resource as the agent sees it: the PID file and the writer process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResourceState {
    /// No PID file.
    Stopped,
    /// PID file naming our live writer.
    Running,
    /// PID file, writer gone (killed, crashed).
    Failed,
}

fn enter(f: &Fixture, state: ResourceState) {
    match state {
        ResourceState::Stopped => {}
        ResourceState::Running => assert_eq!(f.start().rc, 0),
        ResourceState::Failed => {
            assert_eq!(f.start().rc, 0);
            let pid = f.writer_pid();
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            assert!(wait_until(Duration::from_secs(5), || !alive(pid)));
        }
    }
}

fn observe(f: &Fixture) -> ResourceState {
    if !f.pid_file().exists() {
        ResourceState::Stopped
    } else if alive(f.writer_pid()) {
        ResourceState::Running
    } else {
        ResourceState::Failed
    }
}

/// Every (state, action) pair: exit code and resulting state.
///
/// | state   | start        | stop        | monitor | probe | validate-all |
/// |---------|--------------|-------------|---------|-------|--------------|
/// | Stopped | 0 -> Running | 0 -> Stopped| 7       | 7     | 0            |
/// | Running | 0 (same pid) | 0 -> Stopped| 0       | 0     | 0            |
/// | Failed  | 0 -> Running | 0 -> Stopped| 1       | 1     | 0            |
#[test]
fn transition_table_is_exhaustive() {
    use ResourceState::*;
    let table: &[(ResourceState, &str, i32, ResourceState)] = &[
        (Stopped, "start", 0, Running),
        (Stopped, "stop", 0, Stopped),
        (Stopped, "monitor", 7, Stopped),
        (Stopped, "probe", 7, Stopped),
        (Stopped, "validate-all", 0, Stopped),
        (Running, "start", 0, Running),
        (Running, "stop", 0, Stopped),
        (Running, "monitor", 0, Running),
        (Running, "probe", 0, Running),
        (Running, "validate-all", 0, Running),
        (Failed, "start", 0, Running),
        (Failed, "stop", 0, Stopped),
        (Failed, "monitor", 1, Failed),
        (Failed, "probe", 1, Failed),
        (Failed, "validate-all", 0, Failed),
    ];
    for &(from, action, rc, to) in table {
        let f = Fixture::new(1);
        enter(&f, from);
        let pid_before = f.pid_file().exists().then(|| f.writer_pid());
        let r = match action {
            "probe" => f.action("monitor", None, Some(20), 20_000),
            "monitor" => f.monitor(20),
            other => f.action(other, None, None, 20_000),
        };
        assert_eq!(r.rc, rc, "{from:?} --{action}--> rc: {r:?}");
        assert_eq!(observe(&f), to, "{from:?} --{action}--> state");
        if (from, action) == (Running, "start") {
            assert_eq!(
                Some(f.writer_pid()),
                pid_before,
                "start of a running resource spawned a writer"
            );
        }
        if (from, action) == (Failed, "start") {
            assert_ne!(Some(f.writer_pid()), pid_before);
        }
    }
}

#[test]
fn a_reader_still_stuck_from_an_earlier_monitor_is_not_duplicated() {
    let mut f = Fixture::new(1);
    f.set("heartbeat_interval", "3600");
    assert_eq!(f.start().rc, 0);
    let hb = f.heartbeat_file(0, "node-a");
    std::fs::remove_file(&hb).unwrap();
    mkfifo(&hb);
    // Stand-in for a reader stuck in D state on a hard NFS mount: a real
    // `kvm-host read-heartbeat` blocked on the FIFO, recorded as abandoned.
    let mut stuck = Command::new(AGENT)
        .args(["read-heartbeat", "--file"])
        .arg(&hb)
        .spawn()
        .unwrap();
    let marker = f
        .state_dir()
        .join("kvm-host-hb-test.storage-0.blocked-reader.pid");
    std::fs::write(&marker, format!("{}\n", stuck.id())).unwrap();

    let readers = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .filter(|c| {
                let c = String::from_utf8_lossy(c);
                c.contains("read-heartbeat") && c.contains(hb.to_str().unwrap())
            })
            .count()
    };
    // With a 20 s operation timeout a fresh read of the FIFO would block for
    // the whole 16 s work budget; answering from the marker takes
    // milliseconds, so 8 s tells the two apart even on a loaded machine.
    let m = f.action("monitor", Some(10_000), Some(20), 20_000);
    assert_eq!(m.rc, 1, "{m:?}");
    assert!(m.took < Duration::from_secs(8), "{:?}", m.took);
    assert!(
        m.exit_reason().unwrap().contains(&format!(
            "still blocked since an earlier monitor (pid {})",
            stuck.id()
        )),
        "{m:?}"
    );
    assert_eq!(
        readers(),
        1,
        "monitor started another reader next to the stuck one"
    );

    // Once the stuck reader is gone, monitor reads again (and times out on
    // the FIFO); a reader that dies on SIGKILL is not recorded as stuck.
    stuck.kill().unwrap();
    stuck.wait().unwrap();
    let m = f.action("monitor", Some(10_000), Some(20), 2_000);
    assert_eq!(m.rc, 1);
    assert!(
        m.exit_reason().unwrap().contains("did not finish within"),
        "{m:?}"
    );
    assert!(!marker.exists());
    assert_eq!(f.stop().rc, 0);
}

/// The storage dies under a running resource: a FUSE mount that never
/// answers covers it, so every access blocks in the kernel like a dead NFS
/// server. Monitor, check-peer and stop must all still answer in time.
#[test]
fn storage_on_a_dead_mount_fails_monitor_in_time_and_stop_still_works() {
    let mut f = Fixture::new(2);
    f.set("heartbeat_max_age", "2");
    assert_eq!(f.start().rc, 0);
    let pid = f.writer_pid();
    let dead = f.storage(1);
    let _mount = DeadMount::over(&dead);
    let dead_s = dead.display().to_string();

    let m = f.action("monitor", Some(10_000), Some(20), 3_000);
    assert_eq!(m.rc, 1, "{m:?}");
    assert!(m.took < Duration::from_secs(3), "monitor took {:?}", m.took);
    let reason = m.exit_reason().unwrap();
    assert!(
        reason.contains(&dead_s) && reason.contains("storage hung?"),
        "{reason}"
    );
    // Depth 0 and 10 never touch the storage.
    // A storage access would block for the whole 8 s work budget.
    let m = f.action("monitor", Some(10_000), Some(10), 10_000);
    assert_eq!(m.rc, 0, "{m:?}");
    assert!(m.took < Duration::from_secs(3), "{:?}", m.took);

    // The writer's thread for the dead storage is stuck; after max_age the
    // monitor says so, while the healthy storage keeps its heartbeat.
    let blocked = wait_until(Duration::from_secs(8), || {
        let m = f.action("monitor", Some(10_000), Some(20), 3_000);
        m.exit_reason()
            .map(|r| r.contains(&format!("heartbeat write on {dead_s} blocked for")))
            .unwrap_or(false)
    });
    assert!(blocked);
    let healthy = f.heartbeat_file(0, "node-a");
    let c = counter(&healthy).unwrap();
    assert!(wait_until(Duration::from_secs(4), || counter(&healthy)
        .unwrap()
        > c));

    // check-peer: the dead storage alone cannot tell; with the healthy one
    // as well, the peer is seen alive.
    let alone = check_peer(&[
        "--storage",
        &dead_s,
        "--host",
        "node-a",
        "--no-require-mount",
        "--io-timeout",
        "1",
    ]);
    assert_eq!(
        (alone.rc, alone.stdout.as_str()),
        (11, "CANNOT-TELL\n"),
        "{alone:?}"
    );
    assert!(alone.took < Duration::from_secs(3), "{:?}", alone.took);
    let both = check_peer(&[
        "--storage",
        &f.storage(0).display().to_string(),
        "--storage",
        &dead_s,
        "--host",
        "node-a",
        "--no-require-mount",
        "--io-timeout",
        "1",
        "--window",
        "3",
    ]);
    assert_eq!((both.rc, both.stdout.as_str()), (0, "ALIVE\n"), "{both:?}");

    // Stop ends the writer although one of its threads is in the kernel.
    let s = f.action("stop", None, None, 5_000);
    assert_eq!(s.rc, 0, "{s:?}");
    assert!(s.took < Duration::from_secs(5));
    assert!(!alive(pid), "writer survived stop");
}
