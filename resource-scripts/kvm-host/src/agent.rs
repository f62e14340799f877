//! The OCF actions: start, stop, monitor, validate-all. Each returns an
//! [`Outcome`] (exit code + exit reason); `main` only prints and exits.

use crate::child::{self, Outcome as ChildOutcome};
use crate::heartbeat::{self, heartbeat_path};
use crate::log::Logger;
use crate::ocf::{Action, CheckLevel, OcfEnv, OcfRc};
use crate::params::{self, AgentCheck, LibvirtCheck, Params};
use crate::reader::{self, ReadReport, ReadRequest, ReadResult};
use crate::state::{self, StateFiles, StorageStatus, Termination};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::ocf::Outcome;

/// One invocation of the agent.
pub struct Agent<'a> {
    pub env: OcfEnv,
    pub lookup: &'a dyn Fn(&str) -> Option<OsString>,
    pub log: &'a Logger,
    pub started: Instant,
}

impl Agent<'_> {
    fn deadline(&self) -> Instant {
        self.started + self.env.work_budget()
    }

    pub fn run(&self, action: Action) -> Outcome {
        match action {
            Action::Start => self.start(),
            Action::Stop => self.stop(),
            Action::Monitor => self.monitor(),
            Action::ValidateAll => self.validate_all(),
            Action::MetaData | Action::Usage => Outcome::ok(),
        }
    }

    fn params(&self) -> Result<Params, Outcome> {
        Params::from_lookup(self.lookup)
            .map_err(|e| Outcome::fail(OcfRc::ErrConfigured, e.to_string()))
    }

    /// Parameters plus the local environment (binaries, state directory).
    fn validated(&self) -> Result<Params, Outcome> {
        let p = self.params()?;
        if let LibvirtCheck::Virsh { binary, .. } = &p.libvirt {
            self.require_binary(binary, "libvirt_check", "libvirt-clients")?;
        }
        if let AgentCheck::Systemd { .. } = &p.agent {
            self.require_binary(&p.systemctl_binary, "cloudstack_agent_check", "systemd")?;
        }
        if p.state_dir.exists() && !p.state_dir.is_dir() {
            return Err(Outcome::fail(
                OcfRc::ErrArgs,
                format!("state_dir {} is not a directory", p.state_dir.display()),
            ));
        }
        Ok(p)
    }

    fn require_binary(&self, name: &str, param: &str, package: &str) -> Result<(), Outcome> {
        if self.env.pretend_binaries_missing || find_binary(name).is_none() {
            return Err(Outcome::fail(
                OcfRc::ErrInstalled,
                format!("{name}: not installed (needed by {param}; apt-get install {package}, or turn {param} off)"),
            ));
        }
        Ok(())
    }

    fn validate_all(&self) -> Outcome {
        match self.validated() {
            Ok(_) => Outcome::ok(),
            Err(o) => o,
        }
    }

    fn start(&self) -> Outcome {
        let p = match self.validated() {
            Ok(p) => p,
            Err(o) => return o,
        };
        let files = StateFiles::new(&p.state_dir, &self.env.instance);
        match files.read_pid() {
            Ok(Some(pid)) if files.is_our_writer(pid) => {
                self.log
                    .info(&format!("already running (writer pid {pid})"));
                return Outcome::ok();
            }
            _ => files.remove_all(),
        }
        if let Err(e) = std::fs::create_dir_all(&p.state_dir) {
            let rc = if e.kind() == std::io::ErrorKind::PermissionDenied {
                OcfRc::ErrPerm
            } else {
                OcfRc::ErrGeneric
            };
            return Outcome::fail(
                rc,
                format!("cannot create state_dir {}: {e}", p.state_dir.display()),
            );
        }
        let mut cmd = child::self_command();
        cmd.arg(state::WRITER_SUBCOMMAND)
            .args(files.writer_identity_args())
            .arg("--host")
            .arg(&p.host_id)
            .arg("--interval")
            .arg(p.heartbeat_interval_secs.to_string())
            .arg("--heartbeat-dir")
            .arg(&p.heartbeat_dir)
            .arg("--require-mount")
            .arg(p.require_mount.to_string());
        for s in &p.storage {
            cmd.arg("--storage").arg(s);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir("/");
        child::in_own_session(&mut cmd);
        let mut writer = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Outcome::fail(
                    OcfRc::ErrGeneric,
                    format!("cannot start heartbeat writer: {e}"),
                )
            }
        };
        let pid = writer.id();
        if let Err(e) = files.write_pid(pid) {
            let _ = writer.kill();
            let _ = writer.wait();
            return Outcome::fail(
                OcfRc::ErrGeneric,
                format!("cannot write {}: {e}", files.pid_file().display()),
            );
        }
        // Do not return before the first heartbeat is on every storage:
        // Pacemaker starts dependents as soon as start returns 0.
        let failure = loop {
            if let Ok(Some(status)) = writer.try_wait() {
                break format!("heartbeat writer exited at once ({status})");
            }
            let statuses: Vec<Option<StorageStatus>> =
                (0..p.storage.len()).map(|i| files.read_status(i)).collect();
            let errors: Vec<String> = statuses
                .iter()
                .flatten()
                .filter_map(|s| s.last_error.clone())
                .collect();
            if !errors.is_empty() {
                break format!("first heartbeat write failed: {}", errors.join("; "));
            }
            if statuses
                .iter()
                .all(|s| matches!(s, Some(s) if s.counter > 0))
            {
                self.log.info(&format!(
                    "started: heartbeat writer pid {pid} writing to {} storage(s)",
                    p.storage.len()
                ));
                return Outcome::ok();
            }
            if Instant::now() >= self.deadline() {
                let slow: Vec<String> = p
                    .storage
                    .iter()
                    .zip(&statuses)
                    .filter(|(_, s)| !matches!(s, Some(s) if s.counter > 0))
                    .map(|(path, _)| path.display().to_string())
                    .collect();
                break format!(
                    "first heartbeat not written within {} ms on {} (storage hung?)",
                    self.env.work_budget().as_millis(),
                    slow.join(", ")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Leave nothing behind: a failed start must be followed by a clean stop.
        let _ = state::terminate(pid as i32, Duration::from_secs(2), || {
            files.is_our_writer(pid as i32)
        });
        let _ = writer.try_wait();
        files.remove_all();
        self.log.error(&failure);
        Outcome::fail(OcfRc::ErrGeneric, failure)
    }

    fn stop(&self) -> Outcome {
        // Stop must work with broken or missing configuration: it needs only
        // the state directory, falling back to the default.
        let state_dir = params::state_dir_for_stop(self.lookup);
        let files = StateFiles::new(&state_dir, &self.env.instance);
        let pid = match files.read_pid() {
            Ok(Some(pid)) => pid,
            Ok(None) => {
                files.remove_all();
                return Outcome::ok();
            }
            Err(e) => {
                self.log.warn(&format!("ignoring unreadable PID file: {e}"));
                files.remove_all();
                return Outcome::ok();
            }
        };
        if !files.is_our_writer(pid) {
            files.remove_all();
            return Outcome::ok();
        }
        let budget = self.deadline().saturating_duration_since(Instant::now());
        match state::terminate(pid, budget, || files.is_our_writer(pid)) {
            Termination::Exited | Termination::Killed => {}
            Termination::KillPending => self.log.warn(&format!(
                "heartbeat writer pid {pid} is stuck in storage I/O; SIGKILL is pending, it cannot write again"
            )),
        }
        files.remove_all();
        self.log.info("stopped");
        Outcome::ok()
    }

    fn monitor(&self) -> Outcome {
        let state_dir = match Params::from_lookup(self.lookup) {
            Ok(p) => p.state_dir,
            Err(_) => params::state_dir_for_stop(self.lookup),
        };
        let files = StateFiles::new(&state_dir, &self.env.instance);
        let pid = match files.read_pid() {
            Ok(None) => {
                return Outcome {
                    rc: OcfRc::NotRunning,
                    reason: None,
                }
            }
            Ok(Some(pid)) => pid,
            Err(e) => return Outcome::fail(OcfRc::ErrGeneric, e),
        };
        let p = match self.params() {
            Ok(p) => p,
            Err(o) if self.env.is_probe => {
                self.log
                    .warn(&format!("probe with invalid parameters: {:?}", o.reason));
                return Outcome {
                    rc: OcfRc::NotRunning,
                    reason: None,
                };
            }
            Err(o) => return Outcome::fail(OcfRc::ErrGeneric, o.reason.unwrap_or_default()),
        };
        if !files.is_our_writer(pid) {
            return Outcome::fail(
                OcfRc::ErrGeneric,
                format!("heartbeat writer (pid {pid}) is not running"),
            );
        }
        if self.env.check_level < CheckLevel::Services {
            return Outcome::ok();
        }
        self.deep_checks(&p, &files, pid)
    }

    /// Depth 10 and 20: every check runs at once, all bound by one deadline.
    fn deep_checks(&self, p: &Params, files: &StateFiles, writer_pid: i32) -> Outcome {
        let deadline = self.deadline();
        let mut problems: Vec<(OcfRc, String)> = Vec::new();

        let mut commands: Vec<(CheckKind, Command)> = Vec::new();
        if let LibvirtCheck::Virsh { binary, uri } = &p.libvirt {
            if let Err(o) = self.require_binary(binary, "libvirt_check", "libvirt-clients") {
                problems.push((o.rc, o.reason.unwrap_or_default()));
            } else {
                let mut c = Command::new(binary);
                c.args(["--quiet", "--connect", uri, "version"]);
                commands.push((CheckKind::Libvirt(uri.clone()), c));
            }
        }
        match &p.agent {
            AgentCheck::Systemd { service } => {
                if let Err(o) =
                    self.require_binary(&p.systemctl_binary, "cloudstack_agent_check", "systemd")
                {
                    problems.push((o.rc, o.reason.unwrap_or_default()));
                } else {
                    let mut c = Command::new(&p.systemctl_binary);
                    c.args(["is-active", service.as_str()]);
                    commands.push((CheckKind::Agent(service.clone()), c));
                }
            }
            AgentCheck::PidFile { path } => {
                if let Err(e) = check_pidfile(path) {
                    problems.push((OcfRc::ErrGeneric, e));
                }
            }
            AgentCheck::Off => {}
        }
        let storage_deep = self.env.check_level >= CheckLevel::Storage;
        let requests: Vec<ReadRequest> = if storage_deep {
            p.storage
                .iter()
                .map(|s| ReadRequest {
                    file: heartbeat_path(s, &p.heartbeat_dir, &p.host_id),
                    require_mount_of: p.require_mount.then(|| s.clone()),
                })
                .collect()
        } else {
            Vec::new()
        };
        // Storage reads are children too; run them alongside the checks.
        let (kinds, cmds): (Vec<CheckKind>, Vec<Command>) = commands.into_iter().unzip();
        // A reader left stuck by an earlier monitor means the storage is
        // still hung: report that instead of adding another stuck process.
        let blocked: Vec<Option<u32>> = requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let file = files.blocked_reader_file(i);
                let pid = std::fs::read_to_string(&file)
                    .ok()?
                    .trim()
                    .parse::<i32>()
                    .ok();
                match pid {
                    Some(pid) if reader::is_blocked_reader(pid, &r.file) => Some(pid as u32),
                    _ => {
                        let _ = std::fs::remove_file(&file);
                        None
                    }
                }
            })
            .collect();
        let to_read: Vec<ReadRequest> = requests
            .iter()
            .zip(&blocked)
            .filter(|(_, b)| b.is_none())
            .map(|(r, _)| r.clone())
            .collect();
        let reads_handle = std::thread::spawn(move || reader::read_all(&to_read, deadline));
        let outcomes = child::run_all(cmds, deadline);
        let mut fresh = reads_handle.join().unwrap_or_default().into_iter();
        let reads: Vec<ReadResult> = blocked
            .iter()
            .map(|b| match b {
                Some(pid) => ReadResult::StillBlocked { pid: *pid },
                None => fresh
                    .next()
                    .unwrap_or_else(|| ReadResult::Failed("heartbeat reader lost".into())),
            })
            .collect();
        for (i, r) in reads.iter().enumerate() {
            if let ReadResult::TimedOut { pid, .. } = r {
                // Give the SIGKILL a moment; remember the reader only if it
                // is really stuck.
                std::thread::sleep(Duration::from_millis(20));
                if reader::is_blocked_reader(*pid as i32, &requests[i].file) {
                    let _ = std::fs::write(files.blocked_reader_file(i), format!("{pid}\n"));
                }
            }
        }

        for (kind, outcome) in kinds.iter().zip(outcomes.iter()) {
            if let Some(problem) = judge_service(kind, outcome) {
                problems.push((OcfRc::ErrGeneric, problem));
            }
        }
        if storage_deep {
            let now = heartbeat::boot_ms();
            let max_age_ms = p.effective_max_age_secs() * 1000;
            for (index, (storage, read)) in p.storage.iter().zip(reads.iter()).enumerate() {
                // Only this writer's report about this storage counts.
                let status = files.read_status(index).filter(|s| {
                    s.storage == *storage && i64::from(s.writer_pid) == i64::from(writer_pid)
                });
                let verdict = assess_status(storage, status.as_ref(), now, max_age_ms)
                    .and_then(|written| assess_read_back(storage, &p.host_id, written, read));
                if let Err(problem) = verdict {
                    problems.push((OcfRc::ErrGeneric, problem));
                }
            }
        }
        if problems.is_empty() {
            return Outcome::ok();
        }
        for (_, p) in &problems {
            self.log.error(p);
        }
        // "Not installed" is the most specific code; otherwise generic.
        let rc = if problems.iter().any(|(rc, _)| *rc == OcfRc::ErrInstalled) {
            OcfRc::ErrInstalled
        } else {
            OcfRc::ErrGeneric
        };
        let reason: Vec<String> = problems.into_iter().map(|(_, p)| p).collect();
        Outcome::fail(rc, reason.join("; "))
    }
}

#[derive(Debug, Clone)]
enum CheckKind {
    Libvirt(String),
    Agent(String),
}

fn judge_service(kind: &CheckKind, outcome: &ChildOutcome) -> Option<String> {
    let what = match kind {
        CheckKind::Libvirt(uri) => format!("libvirt ({uri})"),
        CheckKind::Agent(service) => format!("CloudStack agent service {service}"),
    };
    match outcome {
        ChildOutcome::Finished { status, .. } if status.success() => None,
        ChildOutcome::Finished { status, stdout, .. } => {
            let detail = match kind {
                // systemctl is-active prints the state on stdout.
                CheckKind::Agent(_) => String::from_utf8_lossy(stdout).trim().to_string(),
                CheckKind::Libvirt(_) => outcome.stderr_tail(),
            };
            Some(match kind {
                CheckKind::Libvirt(_) => format!("{what} does not answer ({status}): {detail}"),
                CheckKind::Agent(_) => format!("{what} is not active: {detail}"),
            })
        }
        ChildOutcome::TimedOut { after, .. } => Some(format!(
            "{what} check did not finish within {} ms",
            after.as_millis()
        )),
        ChildOutcome::SpawnFailed(e) => Some(format!("{what} check could not run: {e}")),
    }
}

/// The PID in `path` names a live process.
fn check_pidfile(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("CloudStack agent not running: {}: {e}", path.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| format!("CloudStack agent PID file {} holds no PID", path.display()))?;
    if pid > 0 && state::is_alive(pid) {
        Ok(())
    } else {
        Err(format!(
            "CloudStack agent not running (pid {pid} from {} is gone)",
            path.display()
        ))
    }
}

/// From the writer's status: the counter of the last good write, if recent
/// enough; otherwise the most precise reason we can give. Pure.
pub fn assess_status(
    storage: &Path,
    status: Option<&StorageStatus>,
    now_boot_ms: u64,
    max_age_ms: u64,
) -> Result<u64, String> {
    let s = status.ok_or_else(|| {
        format!(
            "no heartbeat status for {} (writer not writing?)",
            storage.display()
        )
    })?;
    if let Some(ok) = s.last_ok_boot_ms {
        if now_boot_ms.saturating_sub(ok) <= max_age_ms {
            return Ok(s.counter);
        }
    }
    let since = s.last_ok_boot_ms.unwrap_or(s.writer_started_boot_ms);
    let age_s = now_boot_ms.saturating_sub(since) / 1000;
    if let Some(t) = s.attempt_started_boot_ms {
        let hung_s = now_boot_ms.saturating_sub(t) / 1000;
        return Err(format!(
            "heartbeat write on {} blocked for {hung_s} s (no good write for {age_s} s): storage hung?",
            storage.display()
        ));
    }
    if let Some(e) = &s.last_error {
        return Err(format!(
            "heartbeat write on {} failing for {age_s} s: {e}",
            storage.display()
        ));
    }
    Err(format!(
        "heartbeat on {} not written for {age_s} s",
        storage.display()
    ))
}

/// The read-back must show our host and at least the last good counter.
pub fn assess_read_back(
    storage: &Path,
    host: &str,
    written: u64,
    read: &ReadResult,
) -> Result<(), String> {
    let s = storage.display();
    match read {
        ReadResult::Report(ReadReport::Record { record }) => {
            if record.host != host {
                Err(format!(
                    "heartbeat on {s} names host {:?}, not {host:?}",
                    record.host
                ))
            } else if record.counter < written {
                Err(format!(
                    "heartbeat on {s} reads back counter {} but {written} was written (stale or foreign writer)",
                    record.counter
                ))
            } else {
                Ok(())
            }
        }
        ReadResult::Report(ReadReport::NotMounted { message }) => {
            Err(format!("storage lost: {message}"))
        }
        ReadResult::Report(ReadReport::Missing { message }) => {
            Err(format!("heartbeat on {s} missing: {message}"))
        }
        ReadResult::Report(ReadReport::Unreadable { message }) => {
            Err(format!("heartbeat on {s} unreadable: {message}"))
        }
        ReadResult::TimedOut { after_ms, .. } => Err(format!(
            "heartbeat read on {s} did not finish within {after_ms} ms: storage hung?"
        )),
        ReadResult::StillBlocked { pid } => Err(format!(
            "heartbeat read on {s} still blocked since an earlier monitor (pid {pid}): storage hung?"
        )),
        ReadResult::Failed(m) => Err(format!("heartbeat on {s}: {m}")),
    }
}

/// Finds a command like the shell would (a name with a '/' is a path).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heartbeat::HeartbeatRecord;

    fn status(last_ok: Option<u64>, attempt: Option<u64>, err: Option<&str>) -> StorageStatus {
        StorageStatus {
            storage: "/mnt/a".into(),
            writer_pid: 1,
            counter: 4,
            last_ok_boot_ms: last_ok,
            attempt_started_boot_ms: attempt,
            last_error: err.map(String::from),
            consecutive_failures: err.map(|_| 1).unwrap_or(0),
            writer_started_boot_ms: 0,
        }
    }

    #[test]
    fn status_assessment_table() {
        let s = Path::new("/mnt/a");
        assert_eq!(
            assess_status(s, Some(&status(Some(9_000), None, None)), 10_000, 15_000),
            Ok(4)
        );
        // Fresh success, even with an attempt running now.
        assert_eq!(
            assess_status(
                s,
                Some(&status(Some(9_000), Some(9_500), None)),
                10_000,
                15_000
            ),
            Ok(4)
        );
        let hung = assess_status(
            s,
            Some(&status(Some(1_000), Some(2_000), None)),
            30_000,
            15_000,
        )
        .unwrap_err();
        assert!(hung.contains("blocked for 28 s"), "{hung}");
        let failing = assess_status(
            s,
            Some(&status(Some(1_000), None, Some("EIO"))),
            30_000,
            15_000,
        )
        .unwrap_err();
        assert!(failing.contains("failing for 29 s: EIO"), "{failing}");
        let never = assess_status(
            s,
            Some(&status(None, None, Some("not mounted"))),
            30_000,
            15_000,
        )
        .unwrap_err();
        assert!(never.contains("not mounted"), "{never}");
        assert!(assess_status(s, None, 0, 1)
            .unwrap_err()
            .contains("no heartbeat status"));
    }

    #[test]
    fn read_back_assessment_table() {
        let s = Path::new("/mnt/a");
        let rec = |host: &str, counter| {
            ReadResult::Report(ReadReport::Record {
                record: HeartbeatRecord {
                    format: 1,
                    host: host.into(),
                    counter,
                    incarnation: "i".into(),
                    written_unix_ms: 0,
                    interval_secs: 1,
                },
            })
        };
        assert_eq!(assess_read_back(s, "h", 4, &rec("h", 4)), Ok(()));
        assert_eq!(assess_read_back(s, "h", 4, &rec("h", 5)), Ok(()));
        assert!(assess_read_back(s, "h", 4, &rec("h", 3)).is_err());
        assert!(assess_read_back(s, "h", 4, &rec("x", 4)).is_err());
        let t = assess_read_back(
            s,
            "h",
            4,
            &ReadResult::TimedOut {
                after_ms: 900,
                pid: 1,
            },
        )
        .unwrap_err();
        assert!(t.contains("did not finish within 900 ms"), "{t}");
    }

    #[test]
    fn binaries_are_found_like_the_shell_does() {
        assert!(find_binary("sh").is_some());
        assert!(find_binary("/bin/sh").is_some());
        assert!(find_binary("/nonexistent/virsh").is_none());
        assert!(find_binary("definitely-not-a-command-kvmhost").is_none());
    }
}
