//! Every secret, in every failure path, is absent from everything the agent wrote: stdout,
//! stderr, syslog and the debug file, at the highest verbosity. The secrets are 1, 2, 8 and 20
//! characters long, each inside the next, so a redaction that skips short secrets or replaces a
//! short one first (leaving the rest of a longer one visible) is caught.

mod agent_common;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent_common::*;

const S1: &str = "Z";
const S2: &str = "Zq";
const S8: &str = "xZq7-Kp2";
const S20: &str = "N4v!xZq7-Kp2_Lm0Rt8W";
const SECRETS: [&str; 4] = [S1, S2, S8, S20];

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Runs the agent with `input` on stdin (or `args`), a syslog socket and a debug file; returns
/// the exit code and everything it wrote.
fn run_capturing(input: Option<&str>, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("log");
    let debug = dir.path().join("debug.log");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => {
                    all.push_str(&String::from_utf8_lossy(&buf[..n]));
                    all.push('\n');
                }
                Err(_) if stop2.load(Ordering::Relaxed) => break,
                Err(_) => {}
            }
        }
        all
    });
    let env = [("FENCE_AGENT_SYSLOG_SOCKET", socket_path.to_str().unwrap())];
    let r = match input {
        Some(text) => run_stdin_env(
            &format!("{text}verbose_level=3\ndebug_file={}\n", debug.display()),
            &env,
        ),
        None => {
            let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            a.extend(["-vvv".into(), format!("--debug-file={}", debug.display())]);
            run_args_env(&a.iter().map(String::as_str).collect::<Vec<_>>(), &env)
        }
    };
    stop.store(true, Ordering::Relaxed);
    let syslog = reader.join().unwrap();
    let everything = format!(
        "--- stdout\n{}\n--- stderr\n{}\n--- syslog\n{syslog}\n--- debug file\n{}",
        r.stdout,
        r.stderr,
        fs::read_to_string(&debug).unwrap_or_default()
    );
    (r.code, everything)
}

fn assert_clean(case: &str, code: i32, everything: &str) {
    assert_eq!(code, 1, "{case}: expected a failure:\n{everything}");
    assert!(
        everything.contains("--- debug file\n20") || everything.contains("ERROR"),
        "{case}: nothing was logged:\n{everything}"
    );
    for s in SECRETS {
        assert!(
            !everything.contains(s),
            "{case}: secret {s:?} ({} chars) leaked:\n{everything}",
            s.len()
        );
    }
    assert!(
        !everything.to_lowercase().contains(&hex(S20)),
        "{case}: Kg leaked"
    );
}

fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn no_secret_of_any_length_appears_in_any_output_of_any_failure() {
    let s = sim(true);
    let port = s.port().to_string();
    let base = format!("ip=127.0.0.1\nipport={port}\nusername=admin\nipmitool_timeout=0.2\n");
    let dir = tempfile::tempdir().unwrap();
    for secret in SECRETS {
        // Wrong password, lanplus (RAKP 2 mismatch) and IPMI 1.5 MD5 (Activate Session dropped;
        // 20 characters is too long for IPMI 1.5: refused before any packet).
        let (code, all) = run_capturing(
            Some(&format!(
                "{base}lanplus=1\ncipher=3\npassword={secret}\naction=off\n"
            )),
            &[],
        );
        assert_clean(&format!("lanplus wrong password {secret:?}"), code, &all);
        let (code, all) =
            run_capturing(Some(&format!("{base}password={secret}\naction=off\n")), &[]);
        assert_clean(&format!("lan wrong password {secret:?}"), code, &all);
        // A script that echoes the password to stderr, then fails.
        let failing = script(
            dir.path(),
            &format!("fail{}.sh", secret.len()),
            &format!("echo '+ printf {secret}' >&2; printf '%s' '{secret}'; exit 3"),
        );
        let (code, all) = run_capturing(
            Some(&format!(
                "{base}lanplus=1\npassword_script={failing}\naction=off\n"
            )),
            &[],
        );
        assert_clean(&format!("failing password_script {secret:?}"), code, &all);
        // Non-UTF-8 output around the password, echoed on stderr.
        let binary = script(
            dir.path(),
            &format!("binary{}.sh", secret.len()),
            &format!("echo 'pw is {secret}' >&2; printf '\\377{secret}\\376'"),
        );
        let (code, all) = run_capturing(
            Some(&format!(
                "{base}lanplus=1\npassword_script={binary}\naction=off\n"
            )),
            &[],
        );
        assert_clean(&format!("non-UTF-8 password_script {secret:?}"), code, &all);
        // On the command line, also as a stray operand: -P is lanplus and takes no value.
        let (code, all) = run_capturing(
            None,
            &[
                "-a",
                "127.0.0.1",
                "-u",
                &port,
                "-l",
                "admin",
                "-p",
                secret,
                "-P",
                secret,
                "-o",
                "off",
            ],
        );
        assert_clean(&format!("command line {secret:?}"), code, &all);
        // The password meant for -p given to -P: a stray operand nothing registered as secret.
        let (code, all) = run_capturing(
            None,
            &[
                "-a",
                "127.0.0.1",
                "-u",
                &port,
                "-l",
                "admin",
                "-P",
                secret,
                "-o",
                "off",
            ],
        );
        assert_clean(&format!("stray operand {secret:?}"), code, &all);
    }
    // A wrong Kg given as hexadecimal whose bytes are the 20-character secret (and the password
    // is the 8-character one, wrong).
    let (code, all) = run_capturing(
        Some(&format!(
            "{base}lanplus=1\ncipher=3\npassword={S8}\nhexadecimal_kg={}\naction=off\n",
            hex(S20)
        )),
        &[],
    );
    assert_clean("wrong password and Kg", code, &all);
    let (code, all) = run_capturing(
        Some(&format!(
            "{base}lanplus=1\ncipher=3\npassword={ADMIN_PASSWORD}\nhexadecimal_kg={}\naction=off\n",
            hex(S20).to_uppercase()
        )),
        &[],
    );
    assert_clean("wrong Kg", code, &all);
    // Unknown user: the refusal is believed only at the login deadline (1 s here).
    let (code, all) = run_capturing(
        Some(&format!(
            "ip=127.0.0.1\nipport={port}\nusername=nobody\nlanplus=1\ncipher=3\npassword={S20}\nlogin_timeout=1\naction=off\n"
        )),
        &[],
    );
    assert_clean("unknown user", code, &all);
    assert!(s.events().is_empty(), "power changed: {:?}", s.events());
}
