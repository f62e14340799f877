//! Every action of `fence_ipmi` against a real ipmi_sim, on stdin and argv, IPv4 and ::1,
//! lanplus and IPMI 1.5, both reboot methods: output, exit code and the simulator's actual
//! power events.

mod agent_common;
use std::time::Duration;

use agent_common::*;
use PowerEvent::{Off, On};

#[test]
fn status_on_and_off_stdin() {
    let s = sim(true);
    run_stdin(&stdin_for(&s, "action=status\n")).assert(0, "Status: ON\n");
    s.set_power(false);
    run_stdin(&stdin_for(&s, "action=status\n")).assert(2, "Status: OFF\n");
    assert!(
        s.events().is_empty(),
        "status changed power: {:?}",
        s.events()
    );
}

#[test]
fn status_argv_short_options_and_ipv6() {
    let s = sim(true);
    let port = s.port().to_string();
    run_args(&[
        "-a",
        "127.0.0.1",
        "-u",
        &port,
        "-l",
        "admin",
        "-p",
        ADMIN_PASSWORD,
        "-P",
        "-C",
        "3",
        "-o",
        "status",
    ])
    .assert(0, "Status: ON\n");
    run_args(&[
        "--ip=::1",
        &format!("--ipport={port}"),
        "--username=admin",
        &format!("--password={ADMIN_PASSWORD}"),
        "--lanplus",
        "--cipher=3",
        "--action=STATUS",
    ])
    .assert(0, "Status: ON\n");
    run_stdin(&format!(
        "ip=[::1]\nipport={port}\nlogin=admin\npasswd={ADMIN_PASSWORD}\nlanplus=1\ncipher=3\naction=status\n"
    ))
    .assert(0, "Status: ON\n");
    assert!(s.events().is_empty());
}

#[test]
fn off_and_on_report_and_change_power_once() {
    let s = sim(true);
    run_stdin(&stdin_for(&s, "action=off\n")).assert(0, "Success: Powered OFF\n");
    assert_eq!(s.events(), [Off]);
    assert!(!s.power_is_on());
    run_stdin(&stdin_for(&s, "action=off\n")).assert(0, "Success: Already OFF\n");
    assert_eq!(s.events(), [Off], "an already-off host got a power command");
    run_argv(&s, &["-o", "on"]).assert(0, "Success: Powered ON\n");
    assert_eq!(s.events(), [Off, On]);
    run_argv(&s, &["-o", "on"]).assert(0, "Success: Already ON\n");
    assert_eq!(s.events(), [Off, On]);
    assert!(s.power_is_on());
}

#[test]
fn reboot_onoff_goes_off_then_on_in_one_session() {
    let s = sim(true);
    let r = run_stdin(&stdin_for(&s, "action=reboot\nverbose=1\n"));
    r.assert(0, "Success: Rebooted\n");
    assert_eq!(s.events(), [Off, On]);
    assert!(s.power_is_on());
    // One session for status, off, status, on, status, closed at the end.
    assert_eq!(
        r.stderr
            .matches("opening IPMI 2.0 (lanplus) session")
            .count(),
        1,
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("IPMI session closed (acknowledged)"),
        "{}",
        r.stderr
    );
    assert!(r
        .stderr
        .contains("powered OFF (verified) then ON (verified)"));
}

#[test]
fn reboot_is_the_default_action_and_powers_on_an_off_host() {
    let s = sim(false);
    run_stdin(&stdin_for(&s, "")).assert(0, "Success: Rebooted\n");
    assert_eq!(s.events(), [On]);
}

#[test]
fn reboot_method_cycle_on_a_running_host() {
    let s = sim(true);
    run_stdin(&stdin_for(
        &s,
        "action=reboot\nmethod=cycle\npower_wait=2\n",
    ))
    .assert(0, "Success: Rebooted\n");
    // ipmi_sim powers off at once and on again about 1 s later by itself.
    let events = s.wait_for_events(2, Duration::from_secs(5));
    assert_eq!(events, [Off, On]);
}

#[test]
fn reboot_method_cycle_on_an_off_host_powers_it_on() {
    // fence-agents issue #596: a real BMC refuses a cycle when off; we power on instead.
    let s = sim(false);
    let r = run_args(&args_refs(&s, &["-o", "reboot", "--method=CYCLE"]));
    r.assert(0, "Success: Rebooted\n");
    assert_eq!(s.events(), [On]);
    assert!(r.stderr.contains("already OFF"), "{}", r.stderr);
}

#[test]
fn monitor_is_silent_and_succeeds_for_on_and_off() {
    let s = sim(true);
    run_stdin(&stdin_for(&s, "action=monitor\n")).assert(0, "");
    s.set_power(false);
    run_stdin(&stdin_for(&s, "action=monitor\n")).assert(0, "");
    assert!(s.events().is_empty());
}

#[test]
fn list_prints_the_reference_notice_without_touching_the_bmc() {
    let port = dead_port();
    for action in ["list", "list-status"] {
        run_stdin(&format!("ip=127.0.0.1\nipport={port}\naction={action}\n"))
            .assert(0, "NOTICE: List option is not working on this device yet\n");
    }
}

#[test]
fn validate_all_checks_options_only() {
    // Nothing listens on this port: validate-all must not contact the BMC.
    let port = dead_port();
    run_stdin(&format!(
        "ip=127.0.0.1\nipport={port}\nusername=admin\npassword=x\naction=validate-all\n"
    ))
    .assert(0, "");
}

#[test]
fn diag_reports_the_bmc_refusal() {
    // ipmi_sim answers the diagnostic interrupt with completion code 0xCC.
    let s = sim(true);
    let r = run_stdin(&stdin_for(&s, "action=diag\n"));
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("0xcc"), "{}", r.stderr);
    assert!(r.stderr.contains("diagnostic interrupt"), "{}", r.stderr);
    assert!(s.events().is_empty());
}

#[test]
fn ipmi_15_lan_with_each_auth_type() {
    let s = sim(true);
    for auth in ["md5", "PASSWORD", "none"] {
        run_stdin(&format!(
            "ip=127.0.0.1\nipport={}\nusername=admin\npassword={ADMIN_PASSWORD}\nauth={auth}\naction=status\n",
            s.port()
        ))
        .assert(0, "Status: ON\n");
    }
    run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword={ADMIN_PASSWORD}\npower_wait=0\naction=reboot\n",
        s.port()
    ))
    .assert(0, "Success: Rebooted\n");
    assert_eq!(s.events(), [Off, On]);
}

#[test]
fn operator_account_can_fence_with_privlvl_operator() {
    let s = sim(true);
    run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=operator\npassword={OPERATOR_PASSWORD}\nlanplus=1\ncipher=3\nprivlvl=operator\npower_wait=0\naction=reboot\n",
        s.port()
    ))
    .assert(0, "Success: Rebooted\n");
    assert_eq!(s.events(), [Off, On]);
}

#[test]
fn other_cipher_suites_and_default_suite() {
    let s = sim(true);
    for cipher in ["1", "2", "3"] {
        run_stdin(&format!(
            "ip=127.0.0.1\nipport={}\nusername=admin\npassword={ADMIN_PASSWORD}\nlanplus=1\ncipher={cipher}\naction=status\n{}",
            s.port(),
            // Suite 1 (no integrity) needs the explicit opt-in.
            if cipher == "1" { "allow_unauthenticated=1\n" } else { "" }
        ))
        .assert(0, "Status: ON\n");
    }
    // No cipher given: suite 3 (ipmi_sim has no 17), no 10 s cipher-suite probe like ipmitool.
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword={ADMIN_PASSWORD}\nlanplus=1\naction=status\n",
        s.port()
    ));
    r.assert(0, "Status: ON\n");
    assert!(r.elapsed < Duration::from_secs(2), "{:?}", r.elapsed);
}

#[test]
fn delay_applies_to_off_and_reboot_only() {
    let s = sim(true);
    // fencing.py: delay=N sleeps until N+1 s after start.
    let r = run_stdin(&stdin_for(&s, "action=status\ndelay=2\n"));
    r.assert(0, "Status: ON\n");
    assert!(
        r.elapsed < Duration::from_secs(2),
        "status was delayed: {:?}",
        r.elapsed
    );
    let r = run_stdin(&stdin_for(&s, "action=off\ndelay=1\n"));
    r.assert(0, "Success: Powered OFF\n");
    assert!(
        r.elapsed >= Duration::from_secs(2),
        "off not delayed: {:?}",
        r.elapsed
    );
    let r = run_stdin(&stdin_for(&s, "action=on\ndelay=2\n"));
    r.assert(0, "Success: Powered ON\n");
    assert!(
        r.elapsed < Duration::from_secs(2),
        "on was delayed: {:?}",
        r.elapsed
    );
}

#[test]
fn default_power_wait_is_two_seconds() {
    let s = sim(true);
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword={ADMIN_PASSWORD}\nlanplus=1\ncipher=3\naction=off\n",
        s.port()
    ));
    r.assert(0, "Success: Powered OFF\n");
    assert!(
        r.elapsed >= Duration::from_secs(2) && r.elapsed < Duration::from_secs(4),
        "{:?}",
        r.elapsed
    );
}

#[test]
fn port_as_ip_uses_the_plug_as_address_and_plain_port_is_ignored() {
    let s = sim(true);
    // Pacemaker sends port=<node name>: ignored without port_as_ip.
    run_stdin(&stdin_for(
        &s,
        "action=status\nport=node1\nnodename=node1\n",
    ))
    .assert(0, "Status: ON\n");
    run_stdin(&format!(
        "port=127.0.0.1\nport_as_ip=1\nipport={}\nusername=admin\npassword={ADMIN_PASSWORD}\nlanplus=1\ncipher=3\naction=status\n",
        s.port()
    ))
    .assert(0, "Status: ON\n");
}

#[test]
fn ipmitool_only_parameters_are_accepted_and_ignored() {
    let s = sim(true);
    let r = run_stdin(&stdin_for(
        &s,
        "action=status\nipmitool_path=/nonexistent/ipmitool\nuse_sudo=1\nsudo_path=/nonexistent/sudo\nipmitool_timeout=1\nverbose=1\n",
    ));
    r.assert(0, "Status: ON\n");
    assert!(
        r.stderr.contains("ipmitool_path is ignored"),
        "{}",
        r.stderr
    );
}
