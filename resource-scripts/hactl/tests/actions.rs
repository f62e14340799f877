//! The agent's actions run as pacemaker-execd runs them (argv[1] = action,
//! parameters in OCF_RESKEY_*), against the control double: a real process
//! serving the real control protocol (hactl-control's server) with a
//! scripted role. Ground truth is the process table, the PID file, the
//! double's own record of the SetRole requests it received, and its role as
//! asked directly over the socket.

mod common;

use common::*;
use hactl_control::CoordinatorRole::{Active, Standby};
use nix::sys::signal::Signal;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn lifecycle_start_promote_demote_stop() {
    let f = Fixture::new("");
    // Never started: probe and recurring monitor say "cleanly stopped".
    assert_eq!(f.probe().rc, 7);
    assert_eq!(f.monitor().rc, 7);
    assert_eq!(f.stop().rc, 0, "stop of a stopped resource is 0");

    let r = f.start();
    assert_eq!(r.rc, 0, "{r:?}");
    let pid = f.daemon_pid().expect("PID file after start");
    assert!(alive(pid));
    // Start returns only once the socket answers, and starts a standby.
    assert_eq!(role_of(&f.socket()).expect("answers").role, Standby);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(
        &args[1..5],
        &["run", "--config", f.config().to_str().unwrap(), "--standby"]
    );
    // Its own session: execd's process-group SIGKILL of a timed-out action
    // cannot take the daemon with it.
    assert_eq!(
        nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid)))
            .unwrap()
            .as_raw(),
        pid
    );
    assert_eq!(f.monitor().rc, 0);
    assert_eq!(f.probe().rc, 0);
    assert_eq!(f.start().rc, 0, "start of a started resource");
    assert_eq!(f.daemon_pid(), Some(pid), "a second start must not spawn");

    let p = f.action("promote", None, 20_000);
    assert_eq!(p.rc, 0, "{p:?}");
    assert_eq!(role_of(&f.socket()).unwrap().role, Active);
    assert_eq!(f.monitor().rc, 8, "monitor of the promoted instance");
    assert_eq!(f.probe().rc, 8);
    assert_eq!(
        f.action("promote", None, 20_000).rc,
        0,
        "promote is idempotent"
    );
    assert_eq!(role_of(&f.socket()).unwrap().role, Active);

    assert_eq!(f.action("demote", None, 20_000).rc, 0);
    assert_eq!(role_of(&f.socket()).unwrap().role, Standby);
    assert_eq!(f.monitor().rc, 0);
    assert_eq!(
        f.action("demote", None, 20_000).rc,
        0,
        "demote is idempotent"
    );
    assert_eq!(f.action("notify", None, 20_000).rc, 0);
    assert_eq!(
        f.set_role_requests(),
        [
            "SetRole Active",
            "SetRole Active",
            "SetRole Standby",
            "SetRole Standby"
        ]
    );

    let s = f.stop();
    assert_eq!(s.rc, 0, "{s:?}");
    assert!(
        wait_until(Duration::from_secs(2), || !alive(pid)),
        "daemon {pid} survived stop"
    );
    assert!(!f.pid_file().exists());
    assert!(
        std::fs::read_to_string(f.log_file())
            .unwrap()
            .contains("control double: stopped"),
        "the daemon did not stop cleanly on SIGTERM"
    );
    assert_eq!(f.monitor().rc, 7);
    assert_eq!(f.stop().rc, 0);
    assert_eq!(
        f.action("promote", None, 20_000).rc,
        7,
        "promote of a stopped resource"
    );
}

#[test]
fn a_refused_promotion_fails_with_the_daemons_reason() {
    let f = Fixture::new("refuse_promote = replica still receiving its state transfer");
    assert_eq!(f.start().rc, 0);
    let p = f.action("promote", None, 20_000);
    assert_eq!(p.rc, 1, "{p:?}");
    assert_eq!(
        p.exit_reason().as_deref(),
        Some("promote refused by hactl-kvm: refused: replica still receiving its state transfer")
    );
    assert_eq!(role_of(&f.socket()).unwrap().role, Standby);
    assert_eq!(
        f.monitor().rc,
        0,
        "a refused promotion leaves a healthy standby"
    );
    assert_eq!(f.set_role_requests(), ["SetRole Active"]);
}

#[test]
fn a_promotion_completing_later_is_awaited_within_the_deadline() {
    // Accepted at once, active 800 ms later (a Corosync promotion).
    let f = Fixture::new("promote_delay_ms = 800");
    assert_eq!(f.start().rc, 0);
    let p = f.action("promote", None, 20_000);
    assert_eq!(p.rc, 0, "{p:?}");
    assert_eq!(role_of(&f.socket()).unwrap().role, Active);
    assert_eq!(f.monitor().rc, 8);

    // One that does not complete within the operation's deadline fails.
    let g = Fixture::new("promote_delay_ms = 60000");
    assert_eq!(g.start().rc, 0);
    let p = g.action("promote", None, 3_000);
    assert_eq!(p.rc, 1, "{p:?}");
    assert!(p.took < Duration::from_secs(3), "{:?}", p.took);
    assert!(
        p.exit_reason()
            .unwrap()
            .starts_with("promote: the daemon accepted but is still Standby after"),
        "{p:?}"
    );
    assert_eq!(g.monitor().rc, 0);
}

#[test]
fn a_stuck_daemon_fails_monitor_in_time_and_stop_kills_it() {
    let f = Fixture::new("");
    assert_eq!(f.start().rc, 0);
    let pid = f.daemon_pid().unwrap();
    // Stopped by SIGSTOP: the kernel still accepts connections on its
    // socket, but nothing ever answers, like a daemon stuck in a lock.
    signal(pid, Signal::SIGSTOP);

    let m = f.action("monitor", Some(10_000), 3_000);
    assert_eq!(m.rc, 1, "{m:?}");
    assert!(
        m.took < Duration::from_secs(3),
        "monitor took {:?}, beyond its 3 s timeout",
        m.took
    );
    let reason = m.exit_reason().unwrap();
    assert!(
        reason.contains("is stuck") && reason.contains("did not answer Role within"),
        "{reason}"
    );
    let p = f.action("promote", None, 3_000);
    assert_eq!(p.rc, 1, "{p:?}");
    assert!(p.took < Duration::from_secs(3), "{:?}", p.took);
    assert!(
        p.exit_reason()
            .unwrap()
            .contains("did not answer SetRole within"),
        "{p:?}"
    );

    // SIGTERM stays pending on a stopped process: only the SIGKILL at the
    // deadline ends it.
    let s = f.action("stop", None, 4_000);
    assert_eq!(s.rc, 0, "{s:?}");
    assert!(
        s.took < Duration::from_secs(4),
        "stop took {:?}, beyond its 4 s timeout",
        s.took
    );
    assert!(!alive(pid), "daemon {pid} survived stop");
    assert!(!f.pid_file().exists());
    assert!(
        s.stderr
            .contains("ignored SIGTERM until the deadline: killed"),
        "{s:?}"
    );
}

#[test]
fn a_daemon_ignoring_sigterm_is_killed_at_the_deadline() {
    let f = Fixture::new("ignore_sigterm = true");
    assert_eq!(f.start().rc, 0);
    let pid = f.daemon_pid().unwrap();
    let s = f.action("stop", None, 5_000);
    assert_eq!(s.rc, 0, "{s:?}");
    assert!(s.took < Duration::from_secs(5), "{:?}", s.took);
    assert!(!alive(pid));
    // It was asked nicely first (the double logged the SIGTERM it ignored).
    let log = std::fs::read_to_string(f.log_file()).unwrap();
    assert!(log.contains("control double: SIGTERM ignored"), "{log}");
    assert!(!log.contains("control double: stopped"), "{log}");
}

#[test]
fn a_daemon_that_exits_at_start_is_reported_with_its_last_line() {
    let f = Fixture::new("fail_start = journal /var/lib/hactl-kvm is locked by pid 4711");
    let r = f.start();
    assert_eq!(r.rc, 1, "{r:?}");
    let reason = r.exit_reason().unwrap();
    assert!(
        reason.starts_with("hactl-kvm run exited at once"),
        "{reason}"
    );
    assert!(
        reason.contains("journal /var/lib/hactl-kvm is locked by pid 4711"),
        "{reason}"
    );
    assert!(!f.pid_file().exists(), "a failed start left a PID file");
    assert_eq!(f.monitor().rc, 7);
}

#[test]
fn start_fails_in_time_when_the_socket_never_answers_and_leaves_nothing() {
    let mut f = Fixture::new("");
    // The daemon serves another socket than the one the agent asks.
    let elsewhere = f.dir.path().join("elsewhere.sock");
    std::fs::write(f.config(), format!("socket = {}\n", elsewhere.display())).unwrap();
    f.set("socket", f.socket().to_str().unwrap());
    let r = f.action("start", None, 3_000);
    assert_eq!(r.rc, 1, "{r:?}");
    assert!(r.took < Duration::from_secs(3), "start took {:?}", r.took);
    let reason = r.exit_reason().unwrap();
    assert!(reason.contains("did not answer Role on"), "{reason}");
    assert!(!f.pid_file().exists());
    // The daemon it started is gone again (the double removes its socket
    // when it ends on SIGTERM).
    assert!(
        wait_until(Duration::from_secs(3), || !elsewhere.exists()),
        "the daemon started by the failed start still serves {}",
        elsewhere.display()
    );
}

#[test]
fn a_killed_daemon_is_reported_and_restart_works() {
    let f = Fixture::new("");
    assert_eq!(f.start().rc, 0);
    let pid = f.daemon_pid().unwrap();
    signal(pid, Signal::SIGKILL);
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)));
    for m in [f.monitor(), f.probe()] {
        assert_eq!(m.rc, 1, "{m:?}");
        assert_eq!(
            m.exit_reason().unwrap(),
            format!("hactl-kvm daemon (pid {pid}) is not running")
        );
    }
    assert_eq!(f.action("promote", None, 20_000).rc, 1);
    assert_eq!(f.stop().rc, 0);
    assert!(!f.pid_file().exists());
    assert_eq!(f.start().rc, 0);
    assert_ne!(f.daemon_pid(), Some(pid));
    assert_eq!(f.monitor().rc, 0);
}

#[test]
fn stop_works_with_the_configuration_gone() {
    let mut f = Fixture::new("");
    assert_eq!(f.start().rc, 0);
    let pid = f.daemon_pid().unwrap();
    std::fs::remove_file(f.config()).unwrap();
    f.unset("config").set("hactl_kvm", "/nonexistent/hactl-kvm");
    // As ocf-rarun's handle_invalid_env would not: the daemon still runs
    // and answers, so monitor tells the truth.
    assert_eq!(f.monitor().rc, 0);
    let s = f.stop();
    assert_eq!(s.rc, 0, "{s:?}");
    assert!(wait_until(Duration::from_secs(2), || !alive(pid)));
    assert!(!f.pid_file().exists());
}

#[test]
fn a_daemon_the_agent_did_not_start_is_reported_not_adopted() {
    let f = Fixture::new("");
    let mut foreign = Command::new(DOUBLE)
        .args(["run", "--config", f.config().to_str().unwrap()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || role_of(&f.socket()).is_some()));
    let m = f.probe();
    assert_eq!(m.rc, 1, "{m:?}");
    assert!(
        m.exit_reason()
            .unwrap()
            .contains("did not start answers on"),
        "{m:?}"
    );
    // Stop does not touch what it did not start.
    assert_eq!(f.stop().rc, 0);
    assert!(
        foreign.try_wait().unwrap().is_none(),
        "stop ended a daemon it did not start"
    );
    let _ = foreign.kill();
    let _ = foreign.wait();
}

#[test]
fn validate_all_exit_codes() {
    let mut f = Fixture::new("");
    assert_eq!(f.action("validate-all", None, 20_000).rc, 0);

    f.unset("config");
    let v = f.action("validate-all", None, 20_000);
    assert_eq!(
        (v.rc, v.exit_reason().as_deref()),
        (6, Some("config: required parameter not set"))
    );
    f.set("config", "hactl.toml");
    let v = f.action("validate-all", None, 20_000);
    assert_eq!(v.rc, 6, "{v:?}");
    assert!(v
        .exit_reason()
        .unwrap()
        .starts_with("config=\"hactl.toml\": must be an absolute path"));

    let missing = f.dir.path().join("missing.toml");
    f.set("config", missing.to_str().unwrap());
    let v = f.action("validate-all", None, 20_000);
    assert_eq!(v.rc, 5, "{v:?}");
    f.set("config", f.config().to_str().unwrap());

    f.set("hactl_kvm", "/nonexistent/hactl-kvm");
    let v = f.action("validate-all", None, 20_000);
    assert_eq!(v.rc, 5, "{v:?}");
    assert!(v
        .exit_reason()
        .unwrap()
        .starts_with("/nonexistent/hactl-kvm: not installed"));
    f.set("hactl_kvm", DOUBLE);

    // ocf-tester's "all binaries missing" switch.
    f.env
        .insert("OCF_TESTER_FAIL_HAVE_BINARY".into(), "1".into());
    assert_eq!(f.action("validate-all", None, 20_000).rc, 5);
    f.env.clear();

    // The daemon's own check refuses the file.
    std::fs::write(f.config(), "this is not a configuration\n").unwrap();
    let v = f.action("validate-all", None, 20_000);
    assert_eq!(v.rc, 6, "{v:?}");
    assert!(
        v.exit_reason()
            .unwrap()
            .contains("line 1: expected key = value"),
        "{v:?}"
    );

    // Invalid parameters never make start do anything.
    let mut g = Fixture::new("");
    g.set("config", "relative.toml");
    assert_eq!(g.start().rc, 6);
    assert!(!g.pid_file().exists());
    assert!(!g.log_file().exists());
}

#[test]
fn command_line_contract() {
    let out = Command::new(AGENT).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(AGENT).arg("migrate_to").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("ocf-exit-reason:migrate_to: action not supported"));
    assert_eq!(
        Command::new(AGENT)
            .arg("reload-agent")
            .output()
            .unwrap()
            .status
            .code(),
        Some(3)
    );
    let out = Command::new(AGENT)
        .args(["meta-data", "extra"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("<resource-agent name=\"hactl\""));
}

/// The resource as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No PID file.
    Stopped,
    /// Our daemon, answering, standby.
    Standby,
    /// Our daemon, answering, active.
    Active,
    /// PID file, daemon gone (killed, crashed).
    Failed,
    /// Our daemon, alive, never answering (SIGSTOPped).
    Stuck,
}

fn enter(f: &Fixture, state: State) {
    if state == State::Stopped {
        return;
    }
    assert_eq!(f.start().rc, 0);
    let pid = f.daemon_pid().unwrap();
    match state {
        State::Active => assert_eq!(f.action("promote", None, 20_000).rc, 0),
        State::Failed => {
            signal(pid, Signal::SIGKILL);
            assert!(wait_until(Duration::from_secs(5), || !alive(pid)));
        }
        State::Stuck => signal(pid, Signal::SIGSTOP),
        _ => {}
    }
}

fn observe(f: &Fixture) -> State {
    let Some(pid) = f.daemon_pid() else {
        return State::Stopped;
    };
    if !alive(pid) {
        return State::Failed;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    if stat[stat.rfind(')').unwrap() + 1..]
        .trim_start()
        .starts_with('T')
    {
        return State::Stuck;
    }
    let report = hactl_ocf::control::role(
        &f.socket(),
        std::time::Instant::now() + Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("daemon {pid} runs but does not answer Role: {e}"));
    match report.role {
        Active => State::Active,
        Standby => State::Standby,
    }
}

/// Every (state, action) pair: exit code and resulting state.
///
/// | state   | start        | stop | monitor/probe | promote      | demote        | notify | validate-all |
/// |---------|--------------|------|---------------|--------------|---------------|--------|--------------|
/// | Stopped | 0 -> Standby | 0    | 7             | 7            | 7             | 0      | 0            |
/// | Standby | 0 (same pid) | 0    | 0             | 0 -> Active  | 0             | 0      | 0            |
/// | Active  | 0 (same pid) | 0    | 8             | 0            | 0 -> Standby  | 0      | 0            |
/// | Failed  | 0 -> Standby | 0    | 1             | 1            | 1             | 0      | 0            |
/// | Stuck   | 1            | 0    | 1             | 1            | 1             | 0      | 0            |
/// (stop always ends in Stopped.)
#[test]
fn transition_table_is_exhaustive() {
    use State::*;
    let table: &[(State, &str, i32, State)] = &[
        (Stopped, "start", 0, Standby),
        (Stopped, "stop", 0, Stopped),
        (Stopped, "monitor", 7, Stopped),
        (Stopped, "probe", 7, Stopped),
        (Stopped, "promote", 7, Stopped),
        (Stopped, "demote", 7, Stopped),
        (Stopped, "notify", 0, Stopped),
        (Stopped, "validate-all", 0, Stopped),
        (Standby, "start", 0, Standby),
        (Standby, "stop", 0, Stopped),
        (Standby, "monitor", 0, Standby),
        (Standby, "probe", 0, Standby),
        (Standby, "promote", 0, Active),
        (Standby, "demote", 0, Standby),
        (Standby, "notify", 0, Standby),
        (Standby, "validate-all", 0, Standby),
        (Active, "start", 0, Active),
        (Active, "stop", 0, Stopped),
        (Active, "monitor", 8, Active),
        (Active, "probe", 8, Active),
        (Active, "promote", 0, Active),
        (Active, "demote", 0, Standby),
        (Active, "notify", 0, Active),
        (Active, "validate-all", 0, Active),
        (Failed, "start", 0, Standby),
        (Failed, "stop", 0, Stopped),
        (Failed, "monitor", 1, Failed),
        (Failed, "probe", 1, Failed),
        (Failed, "promote", 1, Failed),
        (Failed, "demote", 1, Failed),
        (Failed, "notify", 0, Failed),
        (Failed, "validate-all", 0, Failed),
        (Stuck, "start", 1, Stuck),
        (Stuck, "stop", 0, Stopped),
        (Stuck, "monitor", 1, Stuck),
        (Stuck, "probe", 1, Stuck),
        (Stuck, "promote", 1, Stuck),
        (Stuck, "demote", 1, Stuck),
        (Stuck, "notify", 0, Stuck),
        (Stuck, "validate-all", 0, Stuck),
    ];
    // Short timeouts: a stuck daemon makes an action use its whole budget.
    const TIMEOUT_MS: u64 = 2_500;
    for &(from, action, rc, to) in table {
        let f = Fixture::new("");
        enter(&f, from);
        let pid_before = f.daemon_pid();
        let r = match action {
            "probe" => f.action("monitor", None, TIMEOUT_MS),
            "monitor" => f.action("monitor", Some(10_000), TIMEOUT_MS),
            other => f.action(other, None, TIMEOUT_MS),
        };
        assert_eq!(r.rc, rc, "{from:?} --{action}--> rc: {r:?}");
        assert!(
            r.took < Duration::from_millis(TIMEOUT_MS),
            "{from:?} --{action}--> took {:?}, beyond its timeout",
            r.took
        );
        assert_eq!(observe(&f), to, "{from:?} --{action}--> state");
        if rc != 0 && rc != 7 && rc != 8 {
            assert!(
                r.exit_reason().is_some(),
                "{from:?} --{action}--> {rc} without a reason"
            );
        }
        match (from, action) {
            (Standby | Active, "start") => {
                assert_eq!(f.daemon_pid(), pid_before, "start spawned a second daemon")
            }
            (Failed, "start") => assert_ne!(f.daemon_pid(), pid_before),
            _ => {}
        }
        if let (Some(pid), Stopped) = (pid_before, to) {
            assert!(
                !alive(pid),
                "{from:?} --{action}--> left daemon {pid} running"
            );
        }
    }
}
