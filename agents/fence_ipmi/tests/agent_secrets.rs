//! Secrets (password, Kg) never appear in stdout, stderr or the debug file, whatever the
//! verbosity; `password_script` supplies the password through its stdout only.

mod agent_common;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use agent_common::*;

const KG_HEX: &str = "5ec0de5ec0de5ec0de5ec0de5ec0de5ec0de5ec0";

fn read(path: &std::path::Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn password_never_printed_at_any_verbosity() {
    let s = sim(true);
    let dir = tempfile::tempdir().unwrap();
    let debug = dir.path().join("debug.log");
    let debug_arg = format!("--debug-file={}", debug.display());
    let r = run_argv(&s, &["-vvv", &debug_arg, "-o", "reboot"]);
    r.assert(0, "Success: Rebooted\n");
    let log = read(&debug);
    assert!(log.contains("DEBUG"), "debug file is empty:\n{log}");
    assert!(
        log.contains("Get Chassis Status"),
        "no protocol detail in:\n{log}"
    );
    assert_no_secrets(&[&r.stdout, &r.stderr, &log]);

    let r = run_stdin(&stdin_for(
        &s,
        &format!("action=status\nverbose=1\ndebug={}\n", debug.display()),
    ));
    r.assert(0, "Status: ON\n");
    assert_no_secrets(&[&r.stdout, &r.stderr, &read(&debug)]);
}

#[test]
fn failed_logins_do_not_echo_the_password_tried() {
    let s = sim(true);
    let tried = "Tr1ed-Wr0ng-Pw";
    let r = run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword={tried}\nlanplus=1\ncipher=3\naction=off\nverbose=1\n",
        s.port()
    ));
    assert_eq!(r.code, 1);
    assert!(!r.stderr.contains(tried), "{}", r.stderr);
    assert!(s.events().is_empty());
}

#[test]
fn kg_key_never_printed() {
    let s = sim(true);
    let dir = tempfile::tempdir().unwrap();
    let debug = dir.path().join("debug.log");
    let r = run_stdin(&stdin_for(
        &s,
        &format!(
            "action=status\nhexadecimal_kg={KG_HEX}\nverbose=3\ndebug_file={}\n",
            debug.display()
        ),
    ));
    // ipmi_sim has no Kg configured, so the key does not match: the cause is named.
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("BMC key (Kg)"), "{}", r.stderr);
    for text in [&r.stdout, &r.stderr, &read(&debug)] {
        assert!(!text.to_lowercase().contains(KG_HEX), "Kg leaked:\n{text}");
    }
    assert_no_secrets(&[&r.stdout, &r.stderr, &read(&debug)]);
    // A malformed key is refused without being echoed.
    let bad = "zz5ec0de5ec0de";
    let r = run_stdin(&stdin_for(
        &s,
        &format!("action=status\nhexadecimal_kg={bad}\n"),
    ));
    assert_eq!(r.code, 1);
    assert!(!r.stderr.contains(bad), "{}", r.stderr);
}

fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn password_script_supplies_the_password() {
    let s = sim(true);
    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("pw");
    fs::write(&pw_file, format!("{ADMIN_PASSWORD}\n\n")).unwrap();
    let good = script(
        dir.path(),
        "good.sh",
        &format!("cat '{}'", pw_file.display()),
    );
    let base = format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\nlanplus=1\ncipher=3\npower_wait=0\nverbose=1\n",
        s.port()
    );
    // A wrong password option is overridden by the script (fencing.py order).
    let r = run_stdin(&format!(
        "{base}password=wrong-one\npassword_script={good}\naction=off\n"
    ));
    r.assert(0, "Success: Powered OFF\n");
    assert_eq!(s.events(), [PowerEvent::Off]);
    assert_no_secrets(&[&r.stdout, &r.stderr]);
    // Old name, command line.
    let r = run_args(&[
        "-a",
        "127.0.0.1",
        "-u",
        &s.port().to_string(),
        "-l",
        "admin",
        "-S",
        &good,
        "-P",
        "-C",
        "3",
        "-o",
        "status",
    ]);
    r.assert(2, "Status: OFF\n");

    // A failing script is an error, and nothing is switched.
    let failing = script(dir.path(), "bad.sh", "echo oops >&2; exit 3");
    let r = run_stdin(&format!("{base}passwd_script={failing}\naction=on\n"));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("password_script exited"), "{}", r.stderr);
    assert_eq!(s.events(), [PowerEvent::Off]);
}

#[test]
fn validate_all_does_not_run_password_script() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let sc = script(
        dir.path(),
        "mark.sh",
        &format!("touch '{}'; echo pw", marker.display()),
    );
    run_stdin(&format!(
        "ip=127.0.0.1\nipport={}\npassword_script={sc}\naction=validate-all\n",
        dead_port()
    ))
    .assert(0, "");
    assert!(!marker.exists(), "validate-all ran password_script");
}

#[test]
fn syslog_gets_the_log_lines_without_secrets() {
    use std::os::unix::net::UnixDatagram;
    let s = sim(true);
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("log");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // A syslog daemon reading as the agent writes.
    let reader = std::thread::spawn(move || {
        let mut messages = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = socket.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let last = m.contains("IPMI session closed");
            messages.push(m);
            if last {
                break;
            }
        }
        messages.join("\n")
    });
    let r = run_stdin_env(
        &stdin_for(&s, "action=reboot\nverbose=1\nbogus=1\n"),
        &[("FENCE_AGENT_SYSLOG_SOCKET", socket_path.to_str().unwrap())],
    );
    let all = reader.join().unwrap();
    r.assert(0, "Success: Rebooted\n");
    assert!(
        all.contains("fence_ipmi[") && all.contains("Ignoring unknown option 'bogus'"),
        "syslog got:\n{all}\nstderr:\n{}",
        r.stderr
    );
    assert!(
        all.contains("Get Chassis Status"),
        "no debug lines in syslog:\n{all}"
    );
    assert_no_secrets(&[&all, &r.stdout, &r.stderr]);
}

#[test]
fn a_stalled_syslog_never_blocks_fencing() {
    use std::os::unix::net::UnixDatagram;
    let s = sim(true);
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("log");
    // Bound but never read: its queue fills after a few lines.
    let _stalled = UnixDatagram::bind(&socket_path).unwrap();
    let r = run_stdin_env(
        &stdin_for(&s, "action=reboot\nverbose_level=2\n"),
        &[("FENCE_AGENT_SYSLOG_SOCKET", socket_path.to_str().unwrap())],
    );
    r.assert(0, "Success: Rebooted\n");
    assert!(
        r.elapsed < std::time::Duration::from_secs(5),
        "{:?}",
        r.elapsed
    );
    assert!(r.stderr.contains("IPMI session closed"), "{}", r.stderr);
}

#[test]
fn password_script_stderr_is_logged_redacted() {
    // A script that traces itself prints the password on stderr too. fencing.py passes that
    // stderr through; we log it through the redacting logger.
    let s = sim(true);
    let dir = tempfile::tempdir().unwrap();
    let tracing = script(
        dir.path(),
        "traced.sh",
        &format!("echo \"+ printf {ADMIN_PASSWORD}\" >&2; printf '{ADMIN_PASSWORD}\\n'"),
    );
    let input = format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\nlanplus=1\ncipher=3\npassword_script={tracing}\naction=status\n",
        s.port()
    );
    let r = run_stdin(&input);
    r.assert(0, "Status: ON\n");
    assert!(
        r.stderr
            .contains("WARNING: password_script: + printf [hidden]"),
        "{}",
        r.stderr
    );
    assert_no_secrets(&[&r.stdout, &r.stderr]);

    // Also when the script fails after printing it.
    let failing = script(
        dir.path(),
        "traced-fail.sh",
        &format!("echo \"+ printf {ADMIN_PASSWORD}\" >&2; printf '{ADMIN_PASSWORD}'; exit 2"),
    );
    let r = run_stdin(&input.replace(&tracing, &failing));
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{r:?}");
    assert!(r.stderr.contains("password_script exited"), "{}", r.stderr);
    assert!(r.stderr.contains("+ printf [hidden]"), "{}", r.stderr);
    assert_no_secrets(&[&r.stdout, &r.stderr]);
    assert!(s.events().is_empty());
}
