//! fence_redfish against the Redfish test double, for what sushy-emulator cannot do: "already
//! in that state" refusals (409/400) confirmed by a status read, PoweringOff/PoweringOn never read
//! as done, slow answers bounded by the timeouts, SessionService sessions deleted at the end,
//! the Accept/OData-Version headers, a ResetType the system does not allow. The double's record
//! of every request is the ground truth.

mod common;
use std::time::Duration;

use common::*;
use test_support::{DoubleBehaviour, RedfishDouble};

fn run(d: &RedfishDouble, extra: &[&str]) -> Run {
    let b = &d.behaviour;
    let ca = format!("--ssl-ca-file={}", d.ca_file().display());
    let mut e: Vec<&str> = vec![&ca];
    e.extend_from_slice(extra);
    args(&cli(d.port(), &b.username, &b.password, &e))
}

fn system_powers(d: &RedfishDouble) -> Vec<String> {
    d.events()
        .iter()
        .filter_map(|e| e.str("power").map(str::to_string))
        .collect()
}

#[test]
fn a_409_already_off_counts_only_when_a_status_read_confirms_it() {
    // The BMC's status lags: the first read says On although the host is off; ForceOff gets 409.
    let d = RedfishDouble::start(DoubleBehaviour {
        systems: vec![("1".into(), "node1".into(), "Off".into())],
        already_status: Some(409),
        report_on_for_reads: 1,
        ..Default::default()
    });
    run(&d, &["-o", "off"]).assert(0, "Success: Powered OFF\n");
    assert_eq!(d.resets(), [("ForceOff".to_string(), 409)]);

    // Same refusal, but the status read still says On: not success, the BMC's message shown.
    let d = RedfishDouble::start(DoubleBehaviour {
        systems: vec![("1".into(), "node1".into(), "Off".into())],
        already_status: Some(409),
        report_on_for_reads: 2,
        ..Default::default()
    });
    let r = run(&d, &["-o", "off"]);
    r.assert(1, "");
    assert!(
        r.stderr.contains("HTTP 409")
            && r.stderr.contains("already powered off")
            && r.stderr.contains("the system is On, not Off"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_400_already_answer_is_handled_like_409_and_other_400s_are_errors() {
    let d = RedfishDouble::start(DoubleBehaviour {
        systems: vec![("1".into(), "node1".into(), "Off".into())],
        already_status: Some(400),
        report_on_for_reads: 1,
        ..Default::default()
    });
    run(&d, &["-o", "off"]).assert(0, "Success: Powered OFF\n");
    assert_eq!(d.resets(), [("ForceOff".to_string(), 400)]);

    // A refused off is reported at once with the BMC's message (fence-agents waits out
    // power_timeout and says only "Timed out").
    let d = RedfishDouble::start(DoubleBehaviour {
        refuse: vec![("ForceOff".into(), 500)],
        ..Default::default()
    });
    let r = run(&d, &["-o", "off", "--power-timeout=20"]);
    r.assert(1, "");
    assert!(
        r.stderr.contains("HTTP 500") && r.stderr.contains("ResetType ForceOff refused"),
        "{}",
        r.stderr
    );
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
}

#[test]
fn powering_off_and_on_are_never_read_as_done() {
    let d = RedfishDouble::start(DoubleBehaviour {
        transition_secs: 2.5,
        ..Default::default()
    });
    run(&d, &["-o", "reboot"]).assert(0, "Success: Rebooted\n");
    assert_eq!(
        d.resets(),
        [("ForceOff".to_string(), 204), ("On".to_string(), 204)]
    );
    let powers = system_powers(&d);
    // The On was sent only after a read of Off, and the agent went on polling through
    // PoweringOn until On.
    let off_read = powers.iter().position(|p| p == "Off").expect("an Off read");
    assert!(
        powers[..off_read].iter().any(|p| p == "PoweringOff"),
        "{powers:?}"
    );
    assert!(
        powers[off_read..].iter().any(|p| p == "PoweringOn"),
        "{powers:?}"
    );
    assert_eq!(powers.last().map(String::as_str), Some("On"), "{powers:?}");
    let events = d.events();
    let on_sent = events
        .iter()
        .position(|e| e.str("reset") == Some("On"))
        .unwrap();
    let first_off = events
        .iter()
        .position(|e| e.str("power") == Some("Off"))
        .unwrap();
    assert!(first_off < on_sent);

    // A transition longer than power_timeout: the off is NOT reported done.
    let d = RedfishDouble::start(DoubleBehaviour {
        transition_secs: 30.0,
        ..Default::default()
    });
    let r = run(&d, &["-o", "off", "--power-timeout=2"]);
    r.assert(1, "");
    assert!(
        r.stderr.contains("Timed out waiting to power OFF"),
        "{}",
        r.stderr
    );
    // status of a system in transition: neither ON nor OFF, exit 1.
    let r = run(&d, &["-o", "status"]);
    r.assert(1, "");
    assert!(
        r.stderr.contains("PoweringOff: neither ON nor OFF"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_off_on_a_system_already_powering_off_waits_for_off() {
    // Another actor's ForceOff is under way; our ForceOff gets 409 "in progress".
    let d = RedfishDouble::start(DoubleBehaviour {
        systems: vec![("1".into(), "node1".into(), "PoweringOff".into())],
        already_status: Some(409),
        transition_secs: 2.0,
        ..Default::default()
    });
    run(&d, &["-o", "off"]).assert(0, "Success: Powered OFF\n");
    assert_eq!(d.resets(), [("ForceOff".to_string(), 409)]);
    assert_eq!(system_powers(&d).last().map(String::as_str), Some("Off"));
}

#[test]
fn slow_answers_are_bounded_by_the_timeouts() {
    let d = RedfishDouble::start(DoubleBehaviour {
        delay_secs: 4.0,
        ..Default::default()
    });
    let r = run(
        &d,
        &["-o", "status", "--login-timeout=1", "--power-timeout=1"],
    );
    r.assert(1, "");
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
}

#[test]
fn a_session_is_used_for_every_request_and_deleted_at_the_end() {
    let d = RedfishDouble::start(DoubleBehaviour {
        sessions: true,
        ..Default::default()
    });
    let r = run(&d, &["-o", "reboot", "-v"]);
    r.assert(0, "Success: Rebooted\n");
    let events = d.events();
    let created: Vec<_> = events
        .iter()
        .filter(|e| e.str("session") == Some("created"))
        .collect();
    let deleted: Vec<_> = events
        .iter()
        .filter(|e| e.str("session") == Some("deleted"))
        .collect();
    assert_eq!(
        (created.len(), deleted.len()),
        (1, 1),
        "one session per invocation, deleted"
    );
    assert_eq!(
        events.last().unwrap().str("session"),
        Some("deleted"),
        "deleted last"
    );
    for e in &events {
        let path = e.str("path").unwrap();
        if path.trim_end_matches('/') != "/redfish/v1" && e.str("session") != Some("created") {
            assert_eq!(e.str("auth"), Some("token"), "{e:?}");
        }
        // Headers real BMCs require (the double answers 406 without them).
        assert_eq!(
            (e.str("accept"), e.str("odata")),
            (Some("application/json"), Some("4.0")),
            "{e:?}"
        );
    }

    // Wrong password: the session is refused, nothing else happens.
    let r = args(&cli(
        d.port(),
        "admin",
        "Bad-Pw-0000",
        &[
            &format!("--ssl-ca-file={}", d.ca_file().display()),
            "-o",
            "off",
        ],
    ));
    r.assert(1, "");
    assert!(r.stderr.contains("login refused"), "{}", r.stderr);
    assert_eq!(d.resets().len(), 2);

    // auth_method=basic: no session even though the service offers one.
    let before = d.events().len();
    run(&d, &["-o", "status", "--auth-method=basic"]).assert(0, "Status: ON\n");
    assert!(d.events()[before..]
        .iter()
        .all(|e| e.str("session").is_none() && e.str("auth") != Some("token")));
}

#[test]
fn a_reset_type_the_system_does_not_allow_is_not_sent() {
    let d = RedfishDouble::start(DoubleBehaviour {
        allowed: Some(vec!["On".into(), "ForceOff".into()]),
        ..Default::default()
    });
    let r = run(&d, &["-o", "diag"]);
    r.assert(1, "");
    assert!(
        r.stderr
            .contains("does not allow ResetType Nmi (allowed: On, ForceOff)"),
        "{}",
        r.stderr
    );
    assert!(d.resets().is_empty());
    // Nmi allowed and accepted: diag succeeds as in fence-agents.
    let d = RedfishDouble::start(DoubleBehaviour::default());
    run(&d, &["-o", "diag"]).assert(0, "Success: Rebooted\n");
    assert_eq!(d.resets(), [("Nmi".to_string(), 204)]);
}

#[test]
fn neither_password_nor_session_token_is_ever_shown() {
    let d = RedfishDouble::start(DoubleBehaviour {
        sessions: true,
        ..Default::default()
    });
    let dbg = tempfile::tempdir().unwrap();
    let file = dbg.path().join("debug.log");
    let r = run(
        &d,
        &[
            "-o",
            "status",
            "-vvv",
            &format!("--debug-file={}", file.display()),
        ],
    );
    r.assert(0, "Status: ON\n");
    let debug = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        r.stderr.contains("X-Auth-Token") || r.stderr.contains("session"),
        "{}",
        r.stderr
    );
    for text in [&r.stderr, &r.stdout, &debug] {
        assert!(
            !text.contains(&d.behaviour.password),
            "password shown:\n{text}"
        );
        assert!(!text.contains("tok-"), "session token shown:\n{text}");
    }
}

#[test]
fn sessions_advertised_but_unavailable_fall_back_to_basic_auth_unless_required() {
    let d = RedfishDouble::start(DoubleBehaviour {
        sessions: true,
        session_post_status: Some(503),
        ..Default::default()
    });
    run(&d, &["-o", "status"]).assert(0, "Status: ON\n");
    let events = d.events();
    assert!(events
        .iter()
        .any(|e| e.str("session") == Some("unavailable")));
    assert!(events.iter().any(|e| e.str("auth") == Some("basic")));
    // auth_method=session: no fallback, the cause is reported.
    let r = run(&d, &["-o", "status", "--auth-method=session"]);
    r.assert(1, "");
    assert!(
        r.stderr.contains("HTTP 503") && r.stderr.contains("sessions unavailable"),
        "{}",
        r.stderr
    );
}
