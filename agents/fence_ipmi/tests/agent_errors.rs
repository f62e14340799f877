//! Failures of `fence_ipmi` against a real ipmi_sim: each names its real cause, exits 1, and
//! leaves the simulated host's power untouched.

mod agent_common;
use std::time::{Duration, Instant};

use agent_common::*;

fn assert_failed_without_power_change(r: &Run, s: &IpmiSim, cause: &str) {
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout, "", "{r:?}");
    assert!(
        r.stderr.contains(cause),
        "stderr does not name the cause {cause:?}:\n{}",
        r.stderr
    );
    assert!(s.events().is_empty(), "power changed: {:?}", s.events());
    assert!(s.power_is_on());
    assert_no_secrets(&[&r.stdout, &r.stderr]);
}

#[test]
fn wrong_password_and_unknown_user() {
    let s = sim(true);
    for action in ["status", "off", "reboot"] {
        let r = run_stdin(&format!(
            "ip=127.0.0.1\nipport={}\nusername=admin\npassword={OPERATOR_PASSWORD}\nlanplus=1\ncipher=3\naction={action}\n",
            s.port()
        ));
        assert_failed_without_power_change(&r, &s, "wrong password for user \"admin\"");
    }
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=nobody\npassword=x\nlanplus=1\ncipher=3\naction=off\n",
        s.port()
    ));
    assert_failed_without_power_change(&r, &s, "unknown user");
    // IPMI 1.5 too.
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword={OPERATOR_PASSWORD}\nauth=md5\naction=off\n",
        s.port()
    ));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(s.events().is_empty());
}

#[test]
fn privilege_too_low() {
    let s = sim(true);
    // A user-level account may read the status ...
    run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=viewer\npassword={VIEWER_PASSWORD}\nlanplus=1\ncipher=3\nprivlvl=user\naction=status\n",
        s.port()
    ))
    .assert(0, "Status: ON\n");
    // ... but not switch power: refused at once, not after 20 s of polling.
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=viewer\npassword={VIEWER_PASSWORD}\nlanplus=1\ncipher=3\nprivlvl=user\naction=off\n",
        s.port()
    ));
    assert_failed_without_power_change(&r, &s, "insufficient privilege");
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
    // Asking for administrator with a user-level account fails at login. (This ipmi_sim
    // enforces the account's limit on IPMI 1.5 only; over lanplus it grants the level asked.)
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=viewer\npassword={VIEWER_PASSWORD}\nauth=md5\naction=off\n",
        s.port()
    ));
    assert_failed_without_power_change(&r, &s, "privilege");
}

#[test]
fn unreachable_port_fails_fast_with_the_cause() {
    let port = dead_port();
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={port}\nusername=admin\npassword=x\nlanplus=1\ncipher=3\naction=off\n"
    ));
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("unreachable"), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
}

#[test]
fn silent_bmc_is_bounded_by_login_timeout() {
    // A socket that receives but never answers: the login must give up after login_timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={port}\nusername=admin\npassword=x\nlanplus=1\ncipher=3\naction=off\nlogin_timeout=2\nipmitool_timeout=1\n"
    ));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    assert!(
        r.elapsed >= Duration::from_secs(2) && r.elapsed < Duration::from_secs(5),
        "{:?}",
        r.elapsed
    );
    // Without login_timeout, power_timeout bounds the login (like ipmitool's kill).
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={port}\nusername=admin\npassword=x\nlanplus=1\ncipher=3\naction=status\npower_timeout=3\nipmitool_timeout=1\n"
    ));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    assert!(
        r.elapsed >= Duration::from_secs(3) && r.elapsed < Duration::from_secs(6),
        "{:?}",
        r.elapsed
    );
    drop(silent);
}

#[test]
fn bmc_that_never_answers_the_chassis_command() {
    let s = sim(true);
    s.set_chassis_hangs(true);
    let r = run_stdin(&stdin_for(
        &s,
        "action=off\npower_timeout=3\nipmitool_timeout=1\nverbose=1\n",
    ));
    s.set_chassis_hangs(false);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("Connection timed out"), "{}", r.stderr);
    assert!(r.stderr.contains("requesting power OFF"), "{}", r.stderr);
    // Bounded by power_timeout (3 s) plus the short close attempt.
    assert!(
        r.elapsed >= Duration::from_secs(3) && r.elapsed < Duration::from_secs(8),
        "{:?}",
        r.elapsed
    );
    // The session was closed (attempted: the BMC is still silent) before exiting.
    assert!(r.stderr.contains("IPMI session closed"), "{}", r.stderr);
    assert!(s.events().is_empty(), "{:?}", s.events());
    assert!(s.power_is_on());
    assert_no_secrets(&[&r.stderr]);
}

#[test]
fn malformed_stdin_is_an_error_and_changes_nothing() {
    let s = sim(true);
    for bad in [
        "action = off\n",
        "off\n",
        "action=off\nthis line has no equals sign\n",
        "action=off\n=value\n",
        "action=off\nbad key=1\n",
    ] {
        let r = run_stdin(&stdin_for(&s, bad));
        assert_failed_without_power_change(&r, &s, "Parse error: stdin line");
    }
    // Not UTF-8.
    let r = run_stdin_bytes(&[stdin_for(&s, "action=off\n").as_bytes(), b"ip\xff=1\n"].concat());
    assert_failed_without_power_change(&r, &s, "UTF-8");
}

#[test]
fn bad_values_are_usage_errors_before_any_bmc_contact() {
    let s = sim(true);
    let cases = [
        ("action=explode\n", "Failed: Unrecognised action 'explode'"),
        ("action=off\nprivlvl=root\n", "Failed: You have to enter a valid choice for --privlvl from the valid values: ['callback', 'user', 'operator', 'administrator']"),
        ("action=off\nmethod=yank\n", "valid choice for --method"),
        ("action=off\npower_timeout=abc\n", "Failed: The value you have entered for --power-timeout is not a valid time in seconds"),
        ("action=off\nretry_on=x\n", "--retry-on is not a valid integer"),
        ("action=off\ncipher=7\n", "not a supported cipher suite"),
        ("action=off\nhexadecimal_kg=xyz\n", "--hexadecimal-kg is not a hexadecimal key"),
        ("action=off\ntarget=0x1ff\n", "--target is not an IPMB address"),
        ("action=off\nipport=70000\n", "not a valid UDP port"),
    ];
    for (extra, message) in cases {
        let r = run_stdin(&stdin_for(&s, extra));
        assert_failed_without_power_change(&r, &s, message);
        assert!(
            r.stderr.contains("Please use '-h' for usage"),
            "{}",
            r.stderr
        );
    }
    let r = run_stdin("username=admin\naction=off\n");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("Failed: You have to enter fence address"),
        "{}",
        r.stderr
    );
    // Unknown command-line option.
    let r = run_args(&["--zzz"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Parse error: option --zzz not recognized"),
        "{}",
        r.stderr
    );
    // -n without --port-as-ip.
    let r = run_args(&["-a", "127.0.0.1", "-n", "node1", "-o", "status"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("option -n/--plug is not recognized"),
        "{}",
        r.stderr
    );
}

#[test]
fn validate_all_lists_every_problem() {
    let r = run_stdin("action=validate-all\nprivlvl=root\npower_wait=x\n");
    assert_eq!(r.code, 1, "{r:?}");
    for m in [
        "You have to enter fence address",
        "valid choice for --privlvl",
        "--power-wait is not a valid time",
        "validate-all failed",
    ] {
        assert!(r.stderr.contains(m), "missing {m:?} in:\n{}", r.stderr);
    }
}

#[test]
fn cipher_zero_is_refused_unless_allowed() {
    let s = sim(true);
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword=anything\nlanplus=1\ncipher=0\naction=off\n",
        s.port()
    ));
    assert_failed_without_power_change(&r, &s, "cipher suite 0 authenticates nothing");
    assert!(r.stderr.contains("allow_unauthenticated"), "{}", r.stderr);
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword=anything\nlanplus=1\ncipher=0\naction=validate-all\n",
        s.port()
    ));
    assert_eq!(r.code, 1, "{r:?}");
    // Explicitly allowed: works (and ipmi_sim indeed accepts any password with suite 0).
    run_args(&[
        "-a",
        "127.0.0.1",
        "-u",
        &s.port().to_string(),
        "-l",
        "admin",
        "-p",
        "anything",
        "-P",
        "-C",
        "0",
        "--allow-cipher-zero",
        "-o",
        "status",
    ])
    .assert(0, "Status: ON\n");
    assert!(s.events().is_empty());
}

#[test]
fn power_change_not_confirmed_times_out_with_the_reference_message() {
    // The BMC accepts the command but the host never changes: counter-based polling gives up
    // after power_timeout polls, stonith_status_sleep apart.
    let s = sim(true);
    s.set_ignores_power_changes(true);
    let r = run_stdin(&stdin_for(&s, "action=off\npower_timeout=3\n"));
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{r:?}");
    assert!(
        r.stderr.contains("Failed: Timed out waiting to power OFF"),
        "{}",
        r.stderr
    );
    assert!(
        r.elapsed >= Duration::from_secs(3) && r.elapsed < Duration::from_secs(5),
        "{:?}",
        r.elapsed
    );
    assert_eq!(s.events(), [PowerEvent::Off], "exactly one off attempt");
    assert!(s.power_is_on());

    // A reboot whose off is not confirmed fails and never sends on.
    s.clear_events();
    let r = run_stdin(&stdin_for(&s, "action=reboot\npower_timeout=1\n"));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("Timed out waiting to power OFF"),
        "{}",
        r.stderr
    );
    assert_eq!(s.events(), [PowerEvent::Off]);

    // on: 1 + retry_on attempts.
    s.set_power(false);
    s.clear_events();
    let r = run_stdin(&stdin_for(&s, "action=on\npower_timeout=1\nretry_on=2\n"));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("Failed: Timed out waiting to power ON"),
        "{}",
        r.stderr
    );
    assert_eq!(s.events(), [PowerEvent::On, PowerEvent::On, PowerEvent::On]);
}

#[test]
fn slow_bmc_is_bounded_by_power_timeout() {
    // Each chassis command takes 4 s (ipmi_sim answers nothing meanwhile): with
    // power_timeout=2 the command itself times out.
    let s = sim(true);
    s.set_chassis_delay(Duration::from_secs(4));
    let r = run_stdin(&stdin_for(
        &s,
        "action=off\npower_timeout=2\nipmitool_timeout=1\n",
    ));
    s.set_chassis_delay(Duration::ZERO);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("Connection timed out"), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(6), "{:?}", r.elapsed);
}

#[test]
fn quiet_silences_stderr_but_not_the_exit_code() {
    let s = sim(true);
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword=nope-nope\nlanplus=1\ncipher=3\naction=off\nquiet=1\nbogus=1\n",
        s.port()
    ));
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (1, "", ""));
    let r = run_stdin(&stdin_for(&s, "action=status\nbogus=1\n"));
    r.assert(0, "Status: ON\n");
    assert!(
        r.stderr
            .contains("WARNING: Parse error: Ignoring unknown option 'bogus'"),
        "{}",
        r.stderr
    );
    assert!(s.events().is_empty());
}

#[test]
fn under_pacemakers_fencer_internal_timeouts_are_off() {
    // The host follows the off command only after 3 s. With power_timeout=1 a manual run gives
    // up after one poll; under pacemaker-fenced (disable_timeout implied) the agent keeps
    // polling until the host is off, and the fencer's own timeout governs.
    let s = sim(true);
    s.set_ignores_power_changes(true);
    let r = run_stdin_env(
        &stdin_for(&s, "action=off\npower_timeout=1\n"),
        &[("PCMK_service", "stonith_admin")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("Timed out waiting to power OFF"),
        "{}",
        r.stderr
    );

    let input = stdin_for(&s, "action=off\npower_timeout=1\n");
    let flip = std::thread::spawn({
        let dir = s.dir().to_path_buf();
        move || {
            std::thread::sleep(Duration::from_secs(3));
            std::fs::write(dir.join("power"), "0\n").unwrap();
        }
    });
    let r = run_stdin_env(&input, &[("PCMK_service", "pacemaker-fenced")]);
    flip.join().unwrap();
    r.assert(0, "Success: Powered OFF\n");
    assert!(r.elapsed >= Duration::from_secs(3), "{:?}", r.elapsed);

    // An explicit disable_timeout=0 keeps the limits even under the fencer.
    s.set_power(true);
    let r = run_stdin_env(
        &stdin_for(&s, "action=off\npower_timeout=1\ndisable_timeout=0\n"),
        &[("PCMK_service", "pacemaker-fenced")],
    );
    assert_eq!(r.code, 1, "{r:?}");
}

#[test]
fn default_cipher_falls_back_on_an_ignored_open_session_and_names_every_cause() {
    // A BMC whose session table is full ignores Open Session for every suite, which is also how
    // ipmi_sim (and real BMCs) turn down a suite they lack. Without `cipher`, fence_ipmi tries
    // suite 3, then 17; the error must say why both failed, not only "suite 17 unsupported".
    let s = sim(true);
    let mut opts = ipmi_lan::ConnectOptions::new(
        "127.0.0.1",
        "admin",
        ipmi_lan::Secret::new(ADMIN_PASSWORD.as_bytes().to_vec()),
    );
    opts.port = s.port();
    opts.retransmit_interval = Duration::from_millis(200);
    let mut held = Vec::new();
    let refusal = loop {
        assert!(held.len() < 200, "the BMC never ran out of session slots");
        match ipmi_lan::Session::open(&opts, Instant::now() + Duration::from_secs(10)) {
            Ok(session) => held.push(session),
            Err(e) => break e,
        }
    };
    assert!(
        refusal.is_cipher_suite_rejection(),
        "a full session table should look like an ignored Open Session: {refusal:?}"
    );

    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword={ADMIN_PASSWORD}\nlanplus=1\n\
         power_wait=0\nipmitool_timeout=0.2\naction=off\nverbose=1\n",
        s.port()
    ));
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{r:?}");
    assert!(
        r.stderr.contains("trying the next cipher suite"),
        "suite 17 was not tried:\n{}",
        r.stderr
    );
    let error = r
        .stderr
        .lines()
        .find(|l| l.contains("accepted none of the cipher suites tried (3, 17)"))
        .unwrap_or_else(|| panic!("no combined error:\n{}", r.stderr));
    assert!(
        error.contains("for cipher suite 3:")
            && error.contains("for cipher suite 17:")
            && error.contains("no free session slot"),
        "{error}"
    );
    assert!(!r.stderr.contains("Success"), "{}", r.stderr);
    assert!(s.events().is_empty(), "{:?}", s.events());

    // Once the sessions are gone, the same run works with suite 3.
    for session in held {
        session.close().expect("close a held session");
    }
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword={ADMIN_PASSWORD}\nlanplus=1\n\
         power_wait=0\naction=off\n",
        s.port()
    ));
    r.assert(0, "Success: Powered OFF\n");
    assert_eq!(s.events(), [PowerEvent::Off]);
}

#[test]
fn cipher_one_and_unauthenticated_ipmi15_are_refused_unless_allowed() {
    // Cipher suite 1: no integrity after login, so a forged "power is off" would be believed.
    let s = sim(true);
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword={ADMIN_PASSWORD}\nlanplus=1\ncipher=1\naction=off\n",
        s.port()
    ));
    assert_failed_without_power_change(&r, &s, "cipher suite 1 has no integrity protection");
    assert!(r.stderr.contains("allow_unauthenticated"), "{}", r.stderr);
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword={ADMIN_PASSWORD}\nlanplus=1\ncipher=1\nallow_unauthenticated=1\naction=status\n",
        s.port()
    ));
    assert_eq!((r.code, r.stdout.as_str()), (0, "Status: ON\n"), "{r:?}");

    // IPMI 1.5 on a BMC offering only straight password: the password is not sent in clear
    // unless auth=password was asked for.
    let s = test_support::IpmiSim::builder().auths("straight").start();
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword=secret\naction=off\n",
        s.port()
    ));
    assert_failed_without_power_change(&r, &s, "auth=password");
    // ... and only "none": refused, naming the option.
    let s = test_support::IpmiSim::builder().auths("none").start();
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword=secret\naction=off\n",
        s.port()
    ));
    assert_failed_without_power_change(&r, &s, "allow_unauthenticated");
}

#[test]
fn stdin_larger_than_64_kib_is_refused_before_anything_happens() {
    let s = sim(true);
    let mut input = stdin_for(&s, "action=off\n");
    // Comment lines are valid on stdin: only the size is wrong.
    while input.len() <= 64 * 1024 {
        input.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    let r = run_stdin(&input);
    assert_failed_without_power_change(&r, &s, "64 KiB");
    // Just under the cap still works.
    let mut input = stdin_for(&s, "action=status\n");
    while input.len() + 80 < 64 * 1024 {
        input.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    let r = run_stdin(&input);
    assert_eq!((r.code, r.stdout.as_str()), (0, "Status: ON\n"), "{r:?}");
}
