//! A reboot reports what really happened, on stdout, in the exit code, on stderr and in syslog,
//! and the simulator's events prove it: a BMC that ignores power changes, one whose power-on
//! never takes effect, and `method=cycle` on a host that is already off.

mod agent_common;
use std::os::unix::net::UnixDatagram;

use agent_common::*;
use PowerEvent::{Off, On};

/// Runs the agent with options on stdin and a private syslog socket; returns the run and every
/// syslog message it sent.
fn run_with_syslog(input: &str) -> (Run, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let socket = UnixDatagram::bind(&path).unwrap();
    let r = run_stdin_env(
        input,
        &[("FENCE_AGENT_SYSLOG_SOCKET", path.to_str().unwrap())],
    );
    // The agent has exited: whatever it sent is queued in the socket.
    socket.set_nonblocking(true).unwrap();
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = socket.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    (r, messages.join("\n"))
}

#[test]
fn reboot_whose_off_never_takes_effect_fails_and_never_powers_on() {
    let s = sim(true);
    s.set_ignores_power_changes(true);
    let (r, syslog) = run_with_syslog(&stdin_for(&s, "action=reboot\npower_timeout=2\n"));
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{r:?}");
    assert!(
        r.stderr
            .contains("ERROR: Failed: Timed out waiting to power OFF"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("Success"), "{}", r.stderr);
    assert!(
        syslog.contains("Timed out waiting to power OFF"),
        "syslog:\n{syslog}"
    );
    // The off was requested (the BMC accepted it), the host stayed on, and no on was sent.
    assert_eq!(s.events(), [Off]);
    assert!(s.power_is_on());
}

#[test]
fn reboot_whose_power_on_never_happens_succeeds_but_warns_the_host_was_left_off() {
    // As fence_ipmilan: the host is off, so fencing succeeded (exit 0, "Success: Rebooted");
    // the log must say plainly that it was left off.
    let s = sim(true);
    s.set_ignores_power_on(true);
    let (r, syslog) = run_with_syslog(&stdin_for(
        &s,
        "action=reboot\npower_timeout=2\nretry_on=2\n",
    ));
    r.assert(0, "Success: Rebooted\n");
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("ERROR: Reboot:"))
        .unwrap_or_else(|| panic!("no reboot report on stderr:\n{}", r.stderr));
    assert!(
        line.contains(
            "powered OFF (verified), but powering ON failed: Timed out waiting to power ON"
        ) && line.contains("The host was left OFF"),
        "{line}"
    );
    assert!(
        syslog.contains("The host was left OFF"),
        "syslog:\n{syslog}"
    );
    // Off once, then on as often as retry_on says; the host is still off.
    assert_eq!(s.events(), [Off, On, On]);
    assert!(!s.power_is_on());

    // Same when the host was already off: no off, the on fails, and the report says so.
    s.clear_events();
    let r = run_stdin(&stdin_for(&s, "action=reboot\npower_timeout=1\n"));
    r.assert(0, "Success: Rebooted\n");
    assert!(
        r.stderr
            .contains("ERROR: Reboot: was already OFF, but powering ON failed")
            && r.stderr.contains("The host was left OFF"),
        "{}",
        r.stderr
    );
    assert_eq!(s.events(), [On]);
}

#[test]
fn cycle_on_an_off_host_powers_it_on_and_says_so() {
    let s = sim(false);
    let (r, syslog) = run_with_syslog(&stdin_for(&s, "action=reboot\nmethod=cycle\n"));
    r.assert(0, "Success: Rebooted\n");
    assert!(
        r.stderr.contains(
            "WARNING: Reboot: was already OFF, so no power cycle was sent; powered ON (verified)"
        ),
        "{}",
        r.stderr
    );
    assert!(
        syslog.contains("no power cycle was sent"),
        "syslog:\n{syslog}"
    );
    assert_eq!(s.events(), [On], "no cycle, one power-on");
    assert!(s.power_is_on());

    // If that power-on never happens, the host was left off: still fenced, and said loudly.
    s.set_power(false);
    s.clear_events();
    s.set_ignores_power_on(true);
    let r = run_stdin(&stdin_for(
        &s,
        "action=reboot\nmethod=cycle\npower_timeout=1\n",
    ));
    r.assert(0, "Success: Rebooted\n");
    assert!(
        r.stderr.contains(
            "ERROR: Reboot: was already OFF, so no power cycle was sent, but powering ON failed"
        ) && r.stderr.contains("The host was left OFF"),
        "{}",
        r.stderr
    );
    assert_eq!(s.events(), [On, On], "1 + retry_on power-on attempts");
    assert!(!s.power_is_on());
}

#[test]
fn cycle_refused_by_the_bmc_falls_back_to_off_confirm_on() {
    // Some BMCs answer a power cycle with 0xD5 (or 0xCC). fence_ipmilan then fails the fence
    // ("Connection timed out"); we power off, confirm OFF, power on, and say so.
    use test_support::fake_bmc::{FakeBmc, Lan15Bmc};
    let password = "cycle-pw";
    for code in [0xD5u8, 0xCC] {
        let (port, bmc) = FakeBmc::spawn(move |b| {
            let mut lan = Lan15Bmc::new(password, true);
            lan.refuse = vec![(0x02, code)];
            while let Some(d) = b.recv(std::time::Duration::from_millis(1500)) {
                if let Some(reply) = lan.answer(&d) {
                    b.send(&reply);
                }
            }
            (lan.controls, lan.power_on)
        });
        let r = run_stdin(&format!(
            "ip=127.0.0.1\nipport={port}\nusername=admin\npassword={password}\nauth=md5\nmethod=cycle\naction=reboot\npower_wait=0\nipmitool_timeout=0.2\n"
        ));
        let (controls, power_on) = bmc.join().unwrap();
        r.assert(0, "Success: Rebooted\n");
        assert!(
            r.stderr.contains("refused the power cycle")
                && r.stderr.contains(&format!("0x{code:02x}")),
            "{}",
            r.stderr
        );
        // Ground truth: the BMC saw off then on, never a cycle it carried out.
        assert_eq!(controls, vec![0, 1], "0x{code:02x}");
        assert!(power_on);
    }
}
