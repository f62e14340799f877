//! fence_redfish end to end against a real sushy-emulator (TLS with a per-run CA, basic auth):
//! every action via argv and stdin, TLS verification, wrong password, unknown system, several
//! systems, a refused ResetType. Power is judged by the emulator's own answer (read with
//! Python's HTTP client) and its request log, never by the agent's output alone.

mod common;
use std::time::Duration;

use common::*;
use test_support::{FakeSystem, SushyEmulator};

fn ca_opt(emu: &SushyEmulator) -> String {
    format!("--ssl-ca-file={}", emu.ca_file().display())
}
fn ca_line(emu: &SushyEmulator) -> String {
    format!("ssl_ca_file={}", emu.ca_file().display())
}

#[test]
fn every_power_action_via_argv_and_stdin_changes_the_emulators_power() {
    let emu = SushyEmulator::start();
    let sys = emu.systems[0].clone();
    let ca = ca_opt(&emu);
    let cal = ca_line(&emu);
    let (p, u, pw) = (emu.port(), emu.username.clone(), emu.password.clone());

    args(&cli(p, &u, &pw, &["-o", "status", &ca])).assert(0, "Status: ON\n");
    stdin(&lines(p, &u, &pw, &["action=monitor", &cal])).assert(0, "");

    stdin(&lines(p, &u, &pw, &["action=off", &cal])).assert(0, "Success: Powered OFF\n");
    assert_eq!(emu.power_state(&sys), "Off");
    args(&cli(p, &u, &pw, &["-o", "status", &ca])).assert(2, "Status: OFF\n");
    args(&cli(p, &u, &pw, &["-o", "off", &ca])).assert(0, "Success: Already OFF\n");
    assert_eq!(
        emu.reset_requests().len(),
        1,
        "Already OFF must send no reset"
    );

    args(&cli(p, &u, &pw, &["-o", "on", &ca])).assert(0, "Success: Powered ON\n");
    assert_eq!(emu.power_state(&sys), "On");
    stdin(&lines(p, &u, &pw, &["action=on", &cal])).assert(0, "Success: Already ON\n");

    let before = emu.reset_requests().len();
    stdin(&lines(p, &u, &pw, &["action=reboot", &cal])).assert(0, "Success: Rebooted\n");
    assert_eq!(emu.power_state(&sys), "On");
    let resets = emu.reset_requests();
    assert_eq!(
        resets.len() - before,
        2,
        "reboot = ForceOff then On: {resets:?}"
    );
    assert!(resets.iter().all(
        |r| r.status == 204 && r.path == format!("{}/Actions/ComputerSystem.Reset", sys.uri())
    ));

    // Default action (no action given) is reboot, as in fence-agents.
    args(&cli(p, &u, &pw, &[&ca])).assert(0, "Success: Rebooted\n");
    assert_eq!(emu.reset_requests().len() - before, 4);

    // validate-all: no contact; list: the systems.
    args(&cli(p, &u, &pw, &["-o", "validate-all", &ca])).assert(0, "");
    args(&cli(p, &u, &pw, &["-o", "list", &ca])).assert(0, &format!("{},node1\n", sys.uuid));
    args(&cli(p, &u, &pw, &["-o", "list-status", &ca]))
        .assert(0, &format!("{},node1,ON\n", sys.uuid));
}

#[test]
fn tls_is_verified_with_the_test_ca_and_refused_without_it() {
    let emu = SushyEmulator::start();
    let (p, u, pw) = (emu.port(), emu.username.clone(), emu.password.clone());
    let r = args(&cli(p, &u, &pw, &["-o", "status"]));
    r.assert(1, "");
    assert!(
        r.stderr.contains("TLS failure") && r.stderr.contains("UnknownIssuer"),
        "{}",
        r.stderr
    );
    args(&cli(p, &u, &pw, &["-o", "status", &ca_opt(&emu)])).assert(0, "Status: ON\n");
    // ssl_insecure is honoured explicitly, on both input paths.
    args(&cli(p, &u, &pw, &["-o", "status", "--ssl-insecure"])).assert(0, "Status: ON\n");
    stdin(&lines(p, &u, &pw, &["action=status", "ssl_insecure=1"])).assert(0, "Status: ON\n");
    // The system store is honoured too (SSL_CERT_FILE replaces it here).
    let r = run_program(
        &binary(),
        &cli(p, &u, &pw, &["-o", "status"]),
        None,
        &[("SSL_CERT_FILE", emu.ca_file().display().to_string())],
    );
    r.assert(0, "Status: ON\n");
    // A CA file that is not there: usage error, no contact.
    let r = args(&cli(
        p,
        &u,
        &pw,
        &["-o", "status", "--ssl-ca-file=/nonexistent/ca.pem"],
    ));
    r.assert(1, "");
    assert!(r.stderr.contains("--ssl-ca-file"), "{}", r.stderr);
}

#[test]
fn wrong_password_and_unknown_system_fail_without_touching_power() {
    let emu = SushyEmulator::start();
    let sys = emu.systems[0].clone();
    let (p, u) = (emu.port(), emu.username.clone());
    let ca = ca_opt(&emu);
    let r = args(&cli(p, &u, "Wr0ng-Pw-d00d", &["-o", "off", &ca, "-vvv"]));
    r.assert(1, "");
    assert!(
        r.stderr.contains("login refused by the BMC (HTTP 401"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("Wr0ng-Pw-d00d"),
        "password leaked: {}",
        r.stderr
    );
    let r = args(&cli(
        p,
        &u,
        &emu.password,
        &[
            "-o",
            "off",
            &ca,
            "--systems-uri=/redfish/v1/Systems/no-such-system",
        ],
    ));
    r.assert(1, "");
    assert!(
        r.stderr.contains("no such resource") && r.stderr.contains("no-such-system"),
        "{}",
        r.stderr
    );
    assert!(emu.reset_requests().is_empty());
    assert_eq!(emu.power_state(&sys), "On");
}

#[test]
fn several_systems_need_a_choice_and_only_the_chosen_one_changes() {
    let a = FakeSystem::new(1, "node1", true);
    let b = FakeSystem::new(2, "node2", true);
    let emu = SushyEmulator::with_systems(vec![a.clone(), b.clone()]);
    let (p, u, pw) = (emu.port(), emu.username.clone(), emu.password.clone());
    let ca = ca_opt(&emu);
    // No systems_uri: fence-agents would pick the last one silently; we refuse and list them.
    let r = args(&cli(p, &u, &pw, &["-o", "off", &ca]));
    r.assert(1, "");
    assert!(
        r.stderr.contains("2 systems")
            && r.stderr.contains(&a.uri())
            && r.stderr.contains(&b.uri()),
        "{}",
        r.stderr
    );
    assert!(emu.reset_requests().is_empty());

    // sushy answers /Systems/<name> with 307 to the UUID path, as some BMCs redirect.
    let by_name = "--systems-uri=/redfish/v1/Systems/node2".to_string();
    args(&cli(p, &u, &pw, &["-o", "status", &ca, &by_name])).assert(0, "Status: ON\n");
    let uri = format!("--systems-uri={}", b.uri());
    args(&cli(p, &u, &pw, &["-o", "off", &ca, &uri])).assert(0, "Success: Powered OFF\n");
    assert_eq!(
        (emu.power_state(&a), emu.power_state(&b)),
        ("On".into(), "Off".into())
    );

    // plug (what Pacemaker sends: the node name) selects by Name on stdin.
    stdin(&lines(
        p,
        &u,
        &pw,
        &["action=off", "port=node1", &ca_line(&emu)],
    ))
    .assert(0, "Success: Powered OFF\n");
    assert_eq!(emu.power_state(&a), "Off");
    let r = stdin(&lines(
        p,
        &u,
        &pw,
        &["action=on", "plug=node9", &ca_line(&emu)],
    ));
    r.assert(1, "");
    assert!(
        r.stderr.contains("no system with Id or Name \"node9\""),
        "{}",
        r.stderr
    );
    assert!(emu.wait_power_state(&b, "Off", Duration::from_secs(1)));
}

#[test]
fn a_refused_reset_type_is_reported_at_once() {
    let emu = SushyEmulator::start();
    let sys = emu.systems[0].clone();
    let (p, u, pw) = (emu.port(), emu.username.clone(), emu.password.clone());
    // sushy advertises Nmi but answers 501; fence-agents prints "Success: Rebooted".
    let r = args(&cli(
        p,
        &u,
        &pw,
        &["-o", "diag", &ca_opt(&emu), "--retry-on=0"],
    ));
    r.assert(1, "");
    assert!(
        r.stderr.contains("HTTP 501") && r.stderr.contains("ComputerSystem.Reset"),
        "{}",
        r.stderr
    );
    assert_eq!(
        emu.reset_requests()
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        [501]
    );
    assert_eq!(emu.power_state(&sys), "On");
}
