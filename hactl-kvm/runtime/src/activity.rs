//! Activity checks: is a suspect's storage heartbeat still advancing?
//! Both answer ALIVE / DEAD / CANNOT-TELL with `kvm-host check-peer`'s rules.
//!
//! * `local`: the coordinator reads the heartbeat files on its own mounts
//!   with kvm-host's own reader code (`kvm_host::peer::check_peer_with`):
//!   every read in a child process with a deadline, abandoned if the mount
//!   hangs. A failure of the coordinator's own mount is reported as
//!   CANNOT-TELL (timeout), never as "checker storage unreadable": the core
//!   would make the checker host SUSPECT for what is our own problem.
//! * `peer`: the checker host runs `kvm-host check-peer` over the system
//!   `ssh` (BatchMode, strict host keys, a deadline). Any SSH failure is
//!   CANNOT-TELL (checker unreachable), never DEAD.
//!
//! Optionally CloudStack's own heartbeat file `KVMHA/hb-<host ip>` (written
//! by the stock agent) counts as evidence of life when its content changed
//! across the window; it can only turn a verdict into ALIVE.

use crate::config::SshConfig;
use hactl_core::{ActivityVerdict, CannotTellReason};
use kvm_host::child::{run_one, Outcome};
use kvm_host::peer::{check_peer_with, PeerCheck, Verdict};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A local check of one suspect.
#[derive(Debug, Clone)]
pub struct LocalCheck {
    /// The coordinator's mounts of the suspect's primary storage.
    pub mounts: Vec<PathBuf>,
    /// The suspect's heartbeat name (its kvm-host `host_id`, normally the
    /// CloudStack host name).
    pub host: String,
    /// Heartbeat directory on each storage.
    pub heartbeat_dir: String,
    /// Window between the two samples.
    pub window: Duration,
    /// Deadline of each read.
    pub io_timeout: Duration,
    /// Reader program (`None`: this binary, `read-heartbeat`).
    pub reader: Option<PathBuf>,
    /// Read CloudStack's `hb-<ip>` file too.
    pub cloudstack_hb_ip: Option<String>,
    /// Each mount must be a mount point.
    pub require_mount: bool,
}

/// The command that reads one heartbeat file (`read-heartbeat`).
pub fn reader_command(reader: &Option<PathBuf>) -> Command {
    match reader {
        Some(p) => Command::new(p),
        None => {
            use std::os::unix::process::CommandExt;
            let mut c = Command::new("/proc/self/exe");
            c.arg0("hactl-kvm");
            c
        }
    }
}

/// Reads a small file in an abandonable child (`cat`) with a deadline.
fn read_small_file(path: &Path, deadline: Instant) -> Option<Vec<u8>> {
    let mut c = Command::new("cat");
    c.arg(path);
    match run_one(c, deadline) {
        Outcome::Finished { status, stdout, .. } if status.success() => Some(stdout),
        _ => None,
    }
}

/// The core's verdict for a local check's report. Pure.
pub fn local_verdict(verdict: Verdict, details: &[String]) -> ActivityVerdict {
    match verdict {
        Verdict::Alive => ActivityVerdict::Alive,
        Verdict::Dead => ActivityVerdict::Dead,
        Verdict::CannotTell => {
            if !details.is_empty() && details.iter().all(|d| d.starts_with("no heartbeat file")) {
                ActivityVerdict::CannotTell(CannotTellReason::NoHeartbeatRecord)
            } else {
                // Our own mount (or a too short window): never the checker's fault.
                ActivityVerdict::CannotTell(CannotTellReason::Timeout)
            }
        }
    }
}

/// Runs a local check (blocking for the window). Returns the verdict and a
/// one-line explanation.
pub fn run_local(check: &LocalCheck) -> (ActivityVerdict, String) {
    if check.mounts.is_empty() {
        return (
            ActivityVerdict::CannotTell(CannotTellReason::NoHeartbeatRecord),
            "no storage mount configured for this host's cluster".into(),
        );
    }
    let cs_file = check
        .cloudstack_hb_ip
        .as_ref()
        .map(|ip| check.mounts[0].join("KVMHA").join(format!("hb-{ip}")));
    let cs_first = cs_file
        .as_ref()
        .and_then(|f| read_small_file(f, Instant::now() + check.io_timeout));
    let reader = check.reader.clone();
    let report = check_peer_with(
        &PeerCheck {
            storage: check.mounts.clone(),
            host: check.host.clone(),
            heartbeat_dir: check.heartbeat_dir.clone(),
            window: Some(check.window),
            io_timeout: check.io_timeout,
            require_mount: check.require_mount,
        },
        &move || reader_command(&reader),
    );
    let details: Vec<String> = report.storages.iter().map(|s| s.detail.clone()).collect();
    let mut verdict = local_verdict(report.verdict, &details);
    let mut why = details.join("; ");
    if let (Some(f), Some(a)) = (&cs_file, cs_first) {
        if report.window_ms == 0 {
            // check_peer did not wait (nothing readable): wait ourselves.
            std::thread::sleep(check.window);
        }
        if let Some(b) = read_small_file(f, Instant::now() + check.io_timeout) {
            if a != b && verdict != ActivityVerdict::Alive {
                verdict = ActivityVerdict::Alive;
                why.push_str(&format!("; CloudStack heartbeat {} changed", f.display()));
            }
        }
    }
    (verdict, why)
}

/// A peer check: `checker_ip` runs `kvm-host check-peer` for `host`.
#[derive(Debug, Clone)]
pub struct PeerSshCheck {
    /// Checker address.
    pub checker_ip: String,
    /// Suspect heartbeat name.
    pub host: String,
    /// Storage mounts on the checker.
    pub mounts: Vec<PathBuf>,
    /// Heartbeat directory.
    pub heartbeat_dir: String,
    /// Window (whole seconds are used, at least 1).
    pub window: Duration,
    /// Deadline of the whole check.
    pub deadline: Duration,
    /// SSH settings.
    pub ssh: SshConfig,
    /// Each storage must be a mount point on the checker.
    pub require_mount: bool,
}

/// The ssh command line of a peer check (no secret in it: key auth only).
pub fn peer_command(c: &PeerSshCheck) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&c.ssh.program);
    cmd.arg("-o")
        .arg("BatchMode=yes")
        .arg("-o")
        .arg("StrictHostKeyChecking=yes")
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            c.ssh.known_hosts.display()
        ))
        .arg("-o")
        .arg(format!(
            "ConnectTimeout={}",
            c.ssh.connect_timeout_ms.div_ceil(1000).max(1)
        ))
        .arg("-i")
        .arg(&c.ssh.identity_file)
        .arg("-p")
        .arg(c.ssh.port.to_string())
        .arg("-l")
        .arg(&c.ssh.user)
        .arg(&c.checker_ip)
        .arg("--")
        .arg(&c.ssh.kvm_host)
        .arg("check-peer")
        .arg("--host")
        .arg(&c.host)
        .arg("--heartbeat-dir")
        .arg(&c.heartbeat_dir)
        .arg("--window")
        .arg(c.window.as_secs().max(1).to_string())
        .arg("--json");
    if !c.require_mount {
        cmd.arg("--no-require-mount");
    }
    for m in &c.mounts {
        cmd.arg("--storage").arg(m);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// The core's verdict from check-peer's exit status and JSON. Pure.
pub fn peer_verdict(exit: Option<i32>, stdout: &[u8]) -> ActivityVerdict {
    match exit {
        Some(0) => ActivityVerdict::Alive,
        Some(10) => ActivityVerdict::Dead,
        Some(11) => {
            let report: Option<serde_json::Value> = serde_json::from_slice(stdout).ok();
            let details: Vec<String> = report
                .as_ref()
                .and_then(|r| r.get("storages"))
                .and_then(|s| s.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.get("detail").and_then(|d| d.as_str()))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if details.iter().any(|d| d.starts_with("cannot read storage")) {
                ActivityVerdict::CannotTell(CannotTellReason::CheckerStorageUnreadable)
            } else if !details.is_empty()
                && details.iter().all(|d| d.starts_with("no heartbeat file"))
            {
                ActivityVerdict::CannotTell(CannotTellReason::NoHeartbeatRecord)
            } else {
                ActivityVerdict::CannotTell(CannotTellReason::Timeout)
            }
        }
        // 255: ssh itself failed; anything else: not check-peer's answer.
        _ => ActivityVerdict::CannotTell(CannotTellReason::CheckerUnreachable),
    }
}

/// Runs a peer check over SSH with its deadline.
pub async fn run_peer(c: &PeerSshCheck) -> (ActivityVerdict, String) {
    let child = match peer_command(c).spawn() {
        Ok(ch) => ch,
        Err(e) => {
            return (
                ActivityVerdict::CannotTell(CannotTellReason::CheckerUnreachable),
                format!("cannot run {}: {e}", c.ssh.program.display()),
            )
        }
    };
    match tokio::time::timeout(c.deadline, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let v = peer_verdict(out.status.code(), &out.stdout);
            let err = String::from_utf8_lossy(&out.stderr);
            (
                v,
                format!(
                    "check-peer on {} exited {:?}: {}",
                    c.checker_ip,
                    out.status.code(),
                    err.lines().last().unwrap_or("").trim()
                ),
            )
        }
        Ok(Err(e)) => (
            ActivityVerdict::CannotTell(CannotTellReason::CheckerUnreachable),
            format!("ssh to {} failed: {e}", c.checker_ip),
        ),
        Err(_) => (
            ActivityVerdict::CannotTell(CannotTellReason::Timeout),
            format!("check-peer on {} did not answer in time", c.checker_ip),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_failure_is_never_dead() {
        for code in [None, Some(255), Some(1), Some(2), Some(127)] {
            assert_eq!(
                peer_verdict(code, b""),
                ActivityVerdict::CannotTell(CannotTellReason::CheckerUnreachable)
            );
        }
        assert_eq!(peer_verdict(Some(10), b""), ActivityVerdict::Dead);
        assert_eq!(peer_verdict(Some(0), b""), ActivityVerdict::Alive);
        let unreadable = br#"{"storages":[{"detail":"cannot read storage: x"}]}"#;
        assert_eq!(
            peer_verdict(Some(11), unreadable),
            ActivityVerdict::CannotTell(CannotTellReason::CheckerStorageUnreadable)
        );
    }

    #[test]
    fn own_mount_failure_never_blames_the_checker() {
        let v = local_verdict(
            Verdict::CannotTell,
            &["cannot read storage: read did not finish within 100 ms (hung?)".into()],
        );
        assert_eq!(v, ActivityVerdict::CannotTell(CannotTellReason::Timeout));
        let v = local_verdict(Verdict::CannotTell, &["no heartbeat file (x)".into()]);
        assert_eq!(
            v,
            ActivityVerdict::CannotTell(CannotTellReason::NoHeartbeatRecord)
        );
    }
}
