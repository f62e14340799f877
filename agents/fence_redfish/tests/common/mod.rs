//! Shared helpers of the fence_redfish functional tests: run the real binary (argv or stdin)
//! and capture what it printed.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fence_redfish"))
}

/// What one run did.
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

pub fn run_program(
    program: &Path,
    args: &[String],
    stdin: Option<&str>,
    env: &[(&str, String)],
) -> Run {
    let start = Instant::now();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("PYTHONWARNINGS", "ignore")
        .env_remove("PCMK_service")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn agent");
    {
        let mut i = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            let _ = i.write_all(text.as_bytes());
        }
    }
    let out = child.wait_with_output().expect("wait agent");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Run ours with argv.
pub fn args(a: &[String]) -> Run {
    run_program(&binary(), a, None, &[])
}

/// Run ours with `key=value` lines on stdin (no argv).
pub fn stdin(lines: &[String]) -> Run {
    let mut text = lines.join("\n");
    text.push('\n');
    run_program(&binary(), &[], Some(&text), &[])
}

/// `--key=value` options for a service on 127.0.0.1:port.
pub fn cli(port: u16, user: &str, password: &str, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--ip=127.0.0.1".to_string(),
        format!("--ipport={port}"),
        format!("--username={user}"),
        format!("--password={password}"),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// The same as stdin lines.
pub fn lines(port: u16, user: &str, password: &str, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "ip=127.0.0.1".to_string(),
        format!("ipport={port}"),
        format!("username={user}"),
        format!("password={password}"),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}
