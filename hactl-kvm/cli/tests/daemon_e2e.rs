//! End-to-end tests of `hactl-kvm run` on loopback: the real daemon binary
//! against the CloudStack API double, one `ipmi_sim` BMC per host and
//! kvm-host heartbeat records written on a temporary directory (the primary
//! storage), with the `local` activity check. Each test asserts the BMCs'
//! power event logs and the API double's call record (ground truth), never
//! the daemon's own view.
//!
//! They live in the cli crate because only its tests get the path of the
//! `hactl-kvm` binary from cargo (`CARGO_BIN_EXE_hactl-kvm`).

mod common;

use common::*;
use std::fs;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::peers::wait_until;
use test_support::PowerEvent;

/// Agent disconnects and heartbeat stops: powered off, confirmed off,
/// declared degraded, powered on, and back after the agent reconnects
/// (cancel seen); the BMC log shows exactly off then on.
#[test]
fn crashed_host_is_fenced_handed_off_and_comes_back() {
    let mut w = World::new(3, "secret");
    w.start_daemon();
    w.wait_available(3);
    let (uuid, name) = (w.hosts[0].uuid.clone(), w.hosts[0].name.clone());
    // Crash: heartbeat stops, CloudStack loses the agent.
    w.hosts[0].writer.as_mut().unwrap().stop();
    w.cs.update_host(&uuid, |h| h.state = "Disconnected".into());
    let events = w.hosts[0].bmc.wait_for_events(2, Duration::from_secs(60));
    assert_eq!(
        events,
        vec![PowerEvent::Off, PowerEvent::On],
        "BMC of {name}; daemon log:\n{}",
        w.log()
    );
    assert!(
        wait_until(Duration::from_secs(20), || w
            .calls("declareHostAsDegraded", &uuid)
            == 1),
        "no declareHostAsDegraded for {name}; calls: {:?}\nlog:\n{}",
        w.cs.calls().iter().map(|c| &c.command).collect::<Vec<_>>(),
        w.log()
    );
    assert_eq!(w.cs.host(&uuid).unwrap().resourcestate, "Degraded");
    // The host boots, its agent reconnects, its heartbeat resumes.
    w.hosts[0].writer = Some(Writer::start(&w.dir.path().join("storage"), &name, 1000));
    w.cs.update_host(&uuid, |h| h.state = "Up".into());
    assert!(
        wait_until(Duration::from_secs(30), || w
            .calls("cancelHostAsDegraded", &uuid)
            == 1),
        "no cancelHostAsDegraded for {name}; log:\n{}",
        w.log()
    );
    assert_eq!(w.cs.host(&uuid).unwrap().resourcestate, "Enabled");
    // Nothing else was powered, nothing declared twice, the other hosts untouched.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        w.hosts[0].bmc.events(),
        vec![PowerEvent::Off, PowerEvent::On]
    );
    assert_eq!(w.calls("declareHostAsDegraded", &uuid), 1);
    for h in &w.hosts[1..] {
        assert!(
            h.bmc.events().is_empty(),
            "{} was powered: {:?}",
            h.name,
            h.bmc.events()
        );
    }
    assert!(w.stop_daemon().success(), "SIGTERM: exit 0");
}

/// Agent disconnects but the heartbeat goes on: never powered off.
#[test]
fn disconnected_agent_with_live_heartbeat_is_never_fenced() {
    let mut w = World::new(3, "secret");
    w.start_daemon();
    w.wait_available(3);
    let uuid = w.hosts[0].uuid.clone();
    w.cs.update_host(&uuid, |h| h.state = "Disconnected".into());
    // The activity check ran and saw it alive (the test is not vacuous) ...
    assert!(
        wait_until(Duration::from_secs(30), || w.count("(local): Alive") >= 2),
        "no activity check saw the heartbeat; log:\n{}",
        w.log()
    );
    std::thread::sleep(Duration::from_secs(8));
    // ... and no BMC saw any power command, CloudStack no hand-off.
    for h in &w.hosts {
        assert!(
            h.bmc.events().is_empty(),
            "{} was powered: {:?}",
            h.name,
            h.bmc.events()
        );
    }
    assert_eq!(w.cs.calls_of("declareHostAsDegraded").len(), 0);
    assert!(w.stop_daemon().success());
}

/// A second daemon on the same journal directory refuses to start and
/// names the holder; a secrets file with mode 0644 is refused.
#[test]
fn second_daemon_and_open_secrets_are_refused() {
    let mut w = World::new(3, "secret");
    w.start_daemon();
    w.wait_available(1);
    let first = w.daemon.as_ref().unwrap().id();
    let out = Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
        .arg("run")
        .arg("--config")
        .arg(w.config_path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("PID {first}")), "{err}");
    assert!(w.stop_daemon().success());

    w.write_config("secret", 0o644);
    let out = Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
        .arg("run")
        .arg("--config")
        .arg(w.config_path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("mode 0644") && err.contains("0600"), "{err}");
    assert!(!err.contains("secret\""), "no secret in the error: {err}");
}

/// Every heartbeat stops at once (storage outage), then one agent
/// disconnects too: the heartbeat cliff holds fencing, zero power actions.
#[test]
fn storage_outage_causes_zero_power_actions() {
    let mut w = World::new(3, "secret");
    w.start_daemon();
    w.wait_available(3);
    // Steady state first: a couple of heartbeat censuses (one per activity window).
    std::thread::sleep(Duration::from_secs(10));
    for h in &mut w.hosts {
        h.writer.as_mut().unwrap().stop();
    }
    assert!(
        wait_until(Duration::from_secs(20), || w
            .count(r#""kind":"heartbeat_cliff""#)
            >= 1),
        "the heartbeat cliff was not detected; log:\n{}",
        w.log()
    );
    let uuid = w.hosts[0].uuid.clone();
    w.cs.update_host(&uuid, |h| h.state = "Disconnected".into());
    // Twice the time a crashed host takes to be fenced without the outage.
    std::thread::sleep(Duration::from_secs(14));
    for h in &w.hosts {
        assert!(
            h.bmc.events().is_empty(),
            "{} was powered: {:?}\nlog:\n{}",
            h.name,
            h.bmc.events(),
            w.log()
        );
    }
    assert_eq!(w.cs.calls_of("declareHostAsDegraded").len(), 0);
    assert!(w.stop_daemon().success());
}

/// A wrong BMC password: a clear error naming the cause, and no fence.
#[test]
fn wrong_bmc_password_is_reported_and_never_fences() {
    let mut w = World::new(3, "not-the-password");
    w.start_daemon();
    assert!(
        wait_until(Duration::from_secs(20), || w
            .log()
            .contains("BMC refused the credentials")),
        "no clear credentials error; log:\n{}",
        w.log()
    );
    assert!(!w.log().contains("not-the-password"), "password in the log");
    let uuid = w.hosts[0].uuid.clone();
    w.hosts[0].writer.as_mut().unwrap().stop();
    w.cs.update_host(&uuid, |h| h.state = "Disconnected".into());
    std::thread::sleep(Duration::from_secs(12));
    for h in &w.hosts {
        assert!(
            h.bmc.events().is_empty(),
            "{} was powered: {:?}",
            h.name,
            h.bmc.events()
        );
    }
    assert_eq!(w.cs.calls_of("declareHostAsDegraded").len(), 0);
    assert!(w.stop_daemon().success());
}

/// The API unreachable: a crashed host is not fenced while it is; once
/// the API answers again the fence happens (so it was the API that held it).
#[test]
fn unreachable_api_means_no_fencing_at_all() {
    let mut w = World::new(3, "secret");
    w.start_daemon();
    w.wait_available(3);
    w.cs.set_unreachable(true);
    let uuid = w.hosts[0].uuid.clone();
    w.hosts[0].writer.as_mut().unwrap().stop();
    w.cs.update_host(&uuid, |h| h.state = "Disconnected".into());
    assert!(
        wait_until(Duration::from_secs(20), || w
            .log()
            .contains("fencing suspended")),
        "no notice of the suspended fencing; log:\n{}",
        w.log()
    );
    std::thread::sleep(Duration::from_secs(12));
    for h in &w.hosts {
        assert!(
            h.bmc.events().is_empty(),
            "{} was powered: {:?}",
            h.name,
            h.bmc.events()
        );
    }
    w.cs.set_unreachable(false);
    let events = w.hosts[0].bmc.wait_for_events(2, Duration::from_secs(60));
    assert_eq!(
        events,
        vec![PowerEvent::Off, PowerEvent::On],
        "log:\n{}",
        w.log()
    );
    assert!(w.stop_daemon().success());
}

/// SIGKILL between power-off and power-on, restart on the same journal:
/// the fence is not repeated, the rate cap still counts it, the host ends
/// powered on and AVAILABLE.
#[test]
fn sigkill_between_off_and_on_neither_repeats_nor_forgets() {
    let mut w = World::new(3, "secret");
    w.start_daemon();
    w.wait_available(3);
    let (uuid, name) = (w.hosts[0].uuid.clone(), w.hosts[0].name.clone());
    // A slow chassis: each power command takes 1.5 s, leaving a window after the off.
    w.hosts[0]
        .bmc
        .set_chassis_delay(Duration::from_millis(1500));
    w.hosts[0].writer.as_mut().unwrap().stop();
    w.cs.update_host(&uuid, |h| h.state = "Disconnected".into());
    assert!(
        wait_until(Duration::from_secs(60), || w.hosts[0].bmc.events().first()
            == Some(&PowerEvent::Off)),
        "never powered off; log:\n{}",
        w.log()
    );
    let mut first = w.daemon.take().unwrap();
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let offset = w.log().len();
    w.hosts[0].bmc.set_chassis_delay(Duration::ZERO);
    w.start_daemon();
    let events = w.hosts[0].bmc.wait_for_events(2, Duration::from_secs(60));
    assert_eq!(
        events,
        vec![PowerEvent::Off, PowerEvent::On],
        "log:\n{}",
        w.log()
    );
    // The host boots and its agent reconnects.
    w.hosts[0].writer = Some(Writer::start(&w.dir.path().join("storage"), &name, 1000));
    w.cs.update_host(&uuid, |h| h.state = "Up".into());
    let after = |w: &World| w.log()[offset..].to_string();
    assert!(
        wait_until(Duration::from_secs(30), || after(&w)
            .matches(r#""to":"AVAILABLE""#)
            .count()
            >= 3),
        "not every host AVAILABLE after the restart; log:\n{}",
        after(&w)
    );
    let log = after(&w);
    assert!(
        log.contains(r#""recovered":true"#) && log.contains(r#""fences_in_window":1"#),
        "the restarted coordinator does not count the fence; log:\n{log}"
    );
    assert_eq!(
        log.matches(r#""event":"fence_issued""#).count(),
        0,
        "fence repeated:\n{log}"
    );
    assert!(
        w.log().contains("journal compacted"),
        "the journal was never compacted"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        w.hosts[0].bmc.events(),
        vec![PowerEvent::Off, PowerEvent::On]
    );
    assert!(w.stop_daemon().success());
}

/// check-config: every peer reachable -> a table and exit 0; one BMC with a
/// wrong password -> its row says why, exit 1; never a power change.
#[test]
fn check_config_reaches_the_api_and_every_bmc_once() {
    let w = World::new(2, "secret");
    let out = Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
        .arg("check-config")
        .arg("--config")
        .arg(w.config_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("CloudStack API: OK (2 KVM hosts)"), "{text}");
    assert_eq!(text.matches(" On\n").count(), 2, "{text}");
    w.write_config("wrong", 0o600);
    let out = Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
        .arg("check-config")
        .arg("--config")
        .arg(w.config_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAILED: BMC refused the credentials"),
        "{text}"
    );
    for h in &w.hosts {
        assert!(h.bmc.events().is_empty());
    }
    w.cs.set_unreachable(true);
    let out = Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
        .arg("check-config")
        .arg("--config")
        .arg(w.config_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("CloudStack API: FAILED"), "{text}");
}

/// `peer` activity checks over SSH (the real ssh client to a real sshd,
/// running kvm-host check-peer): a crashed host is fenced on the checkers'
/// DEAD verdicts; a disconnected one whose heartbeat goes on is not.
#[test]
fn peer_checks_over_ssh_fence_the_dead_and_only_the_dead() {
    let sshd = test_support::Sshd::start();
    // Four hosts: two suspects of three would trip the mass-failure guard.
    let mut w = World::with_activity(4, "secret", Some(&sshd));
    w.start_daemon();
    w.wait_available(4);
    let (dead, live) = (w.hosts[0].uuid.clone(), w.hosts[1].uuid.clone());
    w.cs.update_host(&live, |h| h.state = "Disconnected".into());
    assert!(
        wait_until(Duration::from_secs(30), || w
            .log()
            .contains("): Alive: check-peer on 127.0.0.1 exited Some(0)")),
        "no ALIVE answer over ssh; log:\n{}\nsshd log:\n{}",
        w.log(),
        sshd.log()
    );
    w.hosts[0].writer.as_mut().unwrap().stop();
    w.cs.update_host(&dead, |h| h.state = "Disconnected".into());
    let events = w.hosts[0].bmc.wait_for_events(2, Duration::from_secs(60));
    assert_eq!(
        events,
        vec![PowerEvent::Off, PowerEvent::On],
        "log:\n{}",
        w.log()
    );
    assert!(
        w.log().contains("(peer host-"),
        "checks ran over ssh:\n{}",
        w.log()
    );
    assert!(
        w.hosts[1].bmc.events().is_empty(),
        "live host powered:\n{}",
        w.log()
    );
    assert!(w.stop_daemon().success());
}

/// systemd notification: READY=1 once started, WATCHDOG=1 at half of
/// WATCHDOG_USEC, STOPPING=1 on SIGTERM. SIGHUP with an invalid
/// configuration is refused and the daemon keeps running; a valid one is
/// loaded.
#[test]
fn sd_notify_and_sighup_reload() {
    use std::os::unix::net::UnixDatagram;
    let mut w = World::new(3, "secret");
    let sock_path = w.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let log = fs::File::create(w.log_path()).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
        .arg("run")
        .arg("--config")
        .arg(w.config_path())
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    w.daemon = Some(child);
    let mut buf = [0u8; 256];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    assert_eq!(recv(), "READY=1");
    let t = Instant::now();
    assert_eq!(recv(), "WATCHDOG=1");
    assert_eq!(recv(), "WATCHDOG=1");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    w.wait_available(3);
    // An invalid configuration: refused, still running.
    let good = fs::read_to_string(w.config_path()).unwrap();
    fs::write(
        w.config_path(),
        format!("{good}\n[core.evidence]\nbogus = 1\n"),
    )
    .unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || w
            .log()
            .contains("reload refused")),
        "log:\n{}",
        w.log()
    );
    assert!(
        w.daemon.as_mut().unwrap().try_wait().unwrap().is_none(),
        "daemon died"
    );
    fs::write(w.config_path(), &good).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || w
            .log()
            .contains("configuration reloaded")),
        "log:\n{}",
        w.log()
    );
    assert!(w.stop_daemon().success());
    let mut last = String::new();
    while let Ok(n) = sock.recv(&mut buf) {
        last = String::from_utf8_lossy(&buf[..n]).to_string();
        if last == "STOPPING=1" {
            break;
        }
    }
    assert_eq!(last, "STOPPING=1");
}

/// With `cloudstack_heartbeat = true`, CloudStack's own heartbeat file
/// (`KVMHA/hb-<ip>`, as the stock agent writes it) that keeps changing is
/// evidence of life: the host whose kvm-host heartbeat stopped is not fenced.
#[test]
fn cloudstack_heartbeat_file_counts_as_evidence_of_life() {
    CS_HB.with(|c| c.set(true));
    let mut w = World::new(3, "secret");
    w.start_daemon();
    w.wait_available(3);
    let uuid = w.hosts[0].uuid.clone();
    let hb = w.dir.path().join("storage/KVMHA/hb-127.0.0.10");
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let writer = std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            let _ = fs::write(&hb, format!("{now}\n"));
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    w.hosts[0].writer.as_mut().unwrap().stop();
    w.cs.update_host(&uuid, |h| h.state = "Disconnected".into());
    assert!(
        wait_until(Duration::from_secs(30), || w
            .log()
            .contains("CloudStack heartbeat")),
        "the CloudStack heartbeat was never used; log:\n{}",
        w.log()
    );
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    for h in &w.hosts {
        assert!(
            h.bmc.events().is_empty(),
            "{} was powered: {:?}\nlog:\n{}",
            h.name,
            h.bmc.events(),
            w.log()
        );
    }
    assert!(w.stop_daemon().success());
}
