//! Shared helpers of the `agent_*` functional tests: run the real `fence_ipmi` binary against a
//! real OpenIPMI `ipmi_sim` (test-support) on loopback and capture everything it printed.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use test_support::{IpmiSim, PowerEvent};

/// A password no other string in the output could contain by accident.
pub const ADMIN_PASSWORD: &str = "Adm1n-Pw-7f3c";
pub const OPERATOR_PASSWORD: &str = "0per-Pw-91ab";
pub const VIEWER_PASSWORD: &str = "V1ew-Pw-c0de";

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fence_ipmi"))
}

/// A simulator with our users (distinctive passwords) and the given initial power.
pub fn sim(power_on: bool) -> IpmiSim {
    IpmiSim::builder()
        .users(vec![
            test_support::SimUser::new("admin", ADMIN_PASSWORD, "admin"),
            test_support::SimUser::new("operator", OPERATOR_PASSWORD, "operator"),
            test_support::SimUser::new("viewer", VIEWER_PASSWORD, "user"),
        ])
        .power_on(power_on)
        .start()
}

/// What one run of the agent did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn assert(&self, code: i32, stdout: &str) {
        assert_eq!(
            (self.code, self.stdout.as_str()),
            (code, stdout),
            "unexpected result; stderr:\n{}",
            self.stderr
        );
    }
}

fn finish(mut cmd: Command, stdin: Option<&[u8]>) -> Run {
    let start = Instant::now();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn fence_ipmi");
    {
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            pipe.write_all(text).unwrap();
        }
    }
    let out = child.wait_with_output().expect("wait for fence_ipmi");
    Run {
        code: out.status.code().expect("fence_ipmi killed by a signal"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        elapsed: start.elapsed(),
    }
}

/// The agent's command, without the caller's Pacemaker environment (tests set it explicitly).
fn command() -> Command {
    let mut cmd = Command::new(binary());
    cmd.env_remove("PCMK_service");
    cmd
}

/// Run with command-line options.
pub fn run_args(args: &[&str]) -> Run {
    let mut cmd = command();
    cmd.args(args);
    finish(cmd, None)
}

/// Run with command-line options and extra environment.
pub fn run_args_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    finish(cmd, None)
}

/// Run with options on stdin (no arguments), as Pacemaker does.
pub fn run_stdin(input: &str) -> Run {
    finish(command(), Some(input.as_bytes()))
}

/// Run with raw bytes on stdin.
pub fn run_stdin_bytes(input: &[u8]) -> Run {
    finish(command(), Some(input))
}

/// Run with options on stdin and extra environment.
pub fn run_stdin_env(input: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = command();
    for (k, v) in env {
        cmd.env(k, v);
    }
    finish(cmd, Some(input.as_bytes()))
}

/// stdin lines for the admin user on a simulator, lanplus with cipher 3, fast timing, plus
/// `extra` lines.
pub fn stdin_for(sim: &IpmiSim, extra: &str) -> String {
    format!(
        "ip=127.0.0.1\nipport={}\nusername=admin\npassword={ADMIN_PASSWORD}\nlanplus=1\ncipher=3\npower_wait=0\n{extra}",
        sim.port()
    )
}

/// Command-line arguments for the admin user on a simulator (lanplus, cipher 3, power_wait 0).
pub fn args_for(sim: &IpmiSim, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "--ip=127.0.0.1".into(),
        format!("--ipport={}", sim.port()),
        "--username=admin".into(),
        format!("--password={ADMIN_PASSWORD}"),
        "--lanplus".into(),
        "--cipher=3".into(),
        "--power-wait=0".into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

pub fn run_argv(sim: &IpmiSim, extra: &[&str]) -> Run {
    run_args(&args_refs(sim, extra))
}

/// [`args_for`] as `&str`s (leaked: tests are short-lived processes).
pub fn args_refs(sim: &IpmiSim, extra: &[&str]) -> Vec<&'static str> {
    args_for(sim, extra)
        .into_iter()
        .map(|s| &*Box::leak(s.into_boxed_str()))
        .collect()
}

/// No secret may appear in any output.
pub fn assert_no_secrets(texts: &[&str]) {
    for t in texts {
        for secret in [ADMIN_PASSWORD, OPERATOR_PASSWORD, VIEWER_PASSWORD] {
            assert!(!t.contains(secret), "a password leaked into output:\n{t}");
        }
    }
}

/// A UDP port on 127.0.0.1 where nothing listens (bound, then released).
pub fn dead_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}
