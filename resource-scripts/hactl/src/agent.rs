//! The OCF actions. Each returns an [`Outcome`] (exit code + exit reason);
//! `main` only prints and exits.

use crate::control::{self, RoleError};
use crate::decide::{self, Answer, Process, Score};
use crate::ocf::{Action, OcfRc, Outcome};
use crate::params::{self, Params};
use crate::pidfile::{self, DaemonRecord, Termination};
use hactl_control::CoordinatorRole;
use kvm_host::child::{self, Outcome as ChildOutcome};
use kvm_host::log::Logger;
use kvm_host::ocf::OcfEnv;
use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One invocation of the agent.
pub struct Agent<'a> {
    pub env: OcfEnv,
    pub lookup: &'a dyn Fn(&str) -> Option<OsString>,
    pub log: &'a Logger,
    pub started: Instant,
}

/// How often start polls the socket while the daemon comes up.
const START_POLL: Duration = Duration::from_millis(100);

impl Agent<'_> {
    fn deadline(&self) -> Instant {
        self.started + self.env.work_budget()
    }

    pub fn run(&self, action: Action) -> Outcome {
        match action {
            Action::Start => self.start(),
            Action::Stop => self.stop(),
            Action::Monitor => self.monitor(),
            Action::Promote => self.set_role(CoordinatorRole::Active),
            Action::Demote => self.set_role(CoordinatorRole::Standby),
            Action::Notify => self.notify(),
            Action::ValidateAll => self.validate_all(),
            Action::MetaData | Action::Usage => Outcome::ok(),
        }
    }

    fn params(&self) -> Result<Params, Outcome> {
        Params::from_lookup(self.lookup, &self.env.instance)
            .map_err(|e| Outcome::fail(OcfRc::ErrConfigured, e.to_string()))
    }

    /// Parameters plus what this node must have: the program and the file.
    fn validated(&self) -> Result<Params, Outcome> {
        let p = self.params()?;
        if self.env.pretend_binaries_missing || !is_executable(&p.hactl_kvm) {
            return Err(Outcome::fail(
                OcfRc::ErrInstalled,
                format!(
                    "{}: not installed (apt-get install hactl-kvm, or set hactl_kvm)",
                    p.hactl_kvm.display()
                ),
            ));
        }
        if let Err(e) = std::fs::File::open(&p.config) {
            return Err(Outcome::fail(
                OcfRc::ErrInstalled,
                format!("config {}: {e}", p.config.display()),
            ));
        }
        Ok(p)
    }

    /// The PID file and socket monitor/stop use even with broken parameters.
    fn pid_file(&self) -> PathBuf {
        params::pid_file_for_stop(self.lookup, &self.env.instance)
    }

    fn socket(&self) -> PathBuf {
        (self.lookup)("OCF_RESKEY_socket")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| PathBuf::from(params::defaults::SOCKET))
    }

    /// The recorded daemon, classified.
    fn process(&self, pid_file: &Path) -> Result<(Process, Option<DaemonRecord>), Outcome> {
        match pidfile::read(pid_file) {
            Ok(None) => Ok((Process::NoRecord, None)),
            Ok(Some(r)) if r.is_alive() => Ok((Process::Alive { pid: r.pid }, Some(r))),
            Ok(Some(r)) => Ok((Process::Gone { pid: r.pid }, Some(r))),
            Err(e) => Err(Outcome::fail(OcfRc::ErrGeneric, e.to_string())),
        }
    }

    fn validate_all(&self) -> Outcome {
        let p = match self.validated() {
            Ok(p) => p,
            Err(o) => return o,
        };
        let mut cmd = Command::new(&p.hactl_kvm);
        cmd.arg("check-config").arg("--config").arg(&p.config);
        match child::run_one(cmd, self.deadline()) {
            ChildOutcome::Finished { status, .. } if status.success() => Outcome::ok(),
            ChildOutcome::Finished {
                status,
                stdout,
                stderr,
            } => {
                let stdout = String::from_utf8_lossy(&stdout);
                if status.code() == Some(1) && stdout.starts_with("CloudStack API:") {
                    // The configuration and secrets were accepted; a peer did
                    // not answer. That is no reason to refuse the parameters.
                    let failed: Vec<&str> =
                        stdout.lines().filter(|l| l.contains("FAILED")).collect();
                    self.log.warn(&format!(
                        "configuration accepted, but not every peer answered: {}",
                        failed.join("; ")
                    ));
                    return Outcome::ok();
                }
                let why = check_config_reason(&String::from_utf8_lossy(&stderr));
                Outcome::fail(
                    OcfRc::ErrConfigured,
                    format!(
                        "hactl-kvm check-config refuses {}: {why}",
                        p.config.display()
                    ),
                )
            }
            ChildOutcome::TimedOut { after, .. } => Outcome::fail(
                OcfRc::ErrGeneric,
                format!(
                    "hactl-kvm check-config did not finish within {} ms",
                    after.as_millis()
                ),
            ),
            ChildOutcome::SpawnFailed(e) => Outcome::fail(
                OcfRc::ErrInstalled,
                format!("cannot run {}: {e}", p.hactl_kvm.display()),
            ),
        }
    }

    fn start(&self) -> Outcome {
        let p = match self.validated() {
            Ok(p) => p,
            Err(o) => return o,
        };
        let (process, record) = match self.process(&p.pid_file) {
            Ok(x) => x,
            Err(o) => return o,
        };
        if let Process::Alive { pid } = process {
            // Start of a started resource: succeed once it answers.
            return match self.wait_for_role(&p.socket, || None) {
                Ok(_) => {
                    self.log.info(&format!("already running (pid {pid})"));
                    Outcome::ok()
                }
                Err(e) => Outcome::fail(OcfRc::ErrGeneric, e),
            };
        }
        if record.is_some() {
            pidfile::remove(&p.pid_file);
        }
        if let Some(dir) = p.log_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let log = match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log_file)
        {
            Ok(f) => f,
            Err(e) => {
                return Outcome::fail(
                    OcfRc::ErrGeneric,
                    format!("cannot open log_file {}: {e}", p.log_file.display()),
                )
            }
        };
        let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(&p.hactl_kvm);
        cmd.arg("run")
            .arg("--config")
            .arg(&p.config)
            .arg("--standby")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map(Stdio::from).unwrap_or(Stdio::null()))
            .stderr(Stdio::from(log))
            .current_dir("/");
        child::in_own_session(&mut cmd);
        let mut daemon = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Outcome::fail(
                    OcfRc::ErrGeneric,
                    format!("cannot run {}: {e}", p.hactl_kvm.display()),
                )
            }
        };
        let pid = daemon.id() as i32;
        let exited_at_once = |daemon: &mut std::process::Child| {
            daemon.try_wait().ok().flatten().map(|status| {
                let tail = log_tail(&p.log_file, log_offset);
                format!("hactl-kvm run exited at once ({status}): {tail}")
            })
        };
        // A daemon that already exited (a zombie until reaped) has no start
        // time to record: report why it ended instead.
        let Some(record) =
            pidfile::start_ticks(pid).map(|start_ticks| DaemonRecord { pid, start_ticks })
        else {
            let _ = daemon.kill();
            let _ = daemon.wait();
            let why = exited_at_once(&mut daemon)
                .unwrap_or_else(|| "hactl-kvm run vanished at once".to_string());
            self.log.error(&why);
            return Outcome::fail(OcfRc::ErrGeneric, why);
        };
        if let Err(e) = pidfile::write(&p.pid_file, record) {
            let _ = daemon.kill();
            let _ = daemon.wait();
            return Outcome::fail(
                OcfRc::ErrGeneric,
                format!("cannot write {}: {e}", p.pid_file.display()),
            );
        }
        // Do not return before the daemon answers: Pacemaker may promote
        // it as soon as start returns 0.
        let waited = self.wait_for_role(&p.socket, || exited_at_once(&mut daemon));
        match waited {
            Ok(report) => {
                self.log.info(&format!(
                    "started: hactl-kvm pid {pid}, role {:?}, epoch {}, journal head {}",
                    report.role, report.epoch, report.journal_head
                ));
                Outcome::ok()
            }
            Err(failure) => {
                // Leave nothing behind: a failed start is followed by stop.
                let now = Instant::now();
                pidfile::terminate(
                    record,
                    now + Duration::from_secs(2),
                    now + Duration::from_secs(3),
                );
                let _ = daemon.try_wait();
                pidfile::remove(&p.pid_file);
                self.log.error(&failure);
                Outcome::fail(OcfRc::ErrGeneric, failure)
            }
        }
    }

    /// Polls `Role` until it answers, `exited` reports the daemon gone, or
    /// the deadline passes.
    fn wait_for_role(
        &self,
        socket: &Path,
        mut exited: impl FnMut() -> Option<String>,
    ) -> Result<hactl_control::RoleReport, String> {
        let deadline = self.deadline();
        loop {
            if let Some(why) = exited() {
                return Err(why);
            }
            let last = match control::role(socket, deadline) {
                Ok(r) => return Ok(r),
                Err(e) => e.to_string(),
            };
            if Instant::now() + START_POLL >= deadline {
                return Err(format!(
                    "hactl-kvm did not answer Role on {} within {} ms: {last}",
                    socket.display(),
                    self.env.work_budget().as_millis()
                ));
            }
            std::thread::sleep(START_POLL);
        }
    }

    fn stop(&self) -> Outcome {
        // Stop must work with broken or missing configuration: it needs only
        // the PID file, at its default place if the parameter is unusable.
        let pid_file = self.pid_file();
        self.apply_score(Score::Remove);
        let record = match pidfile::read(&pid_file) {
            Ok(None) => return Outcome::ok(),
            Ok(Some(r)) => r,
            // We cannot tell which process to end; a daemon may still run.
            // Failing stop lets Pacemaker fence this node, which is safe.
            Err(e) => {
                return Outcome::fail(
                    OcfRc::ErrGeneric,
                    format!("cannot tell which daemon to stop: {e}"),
                )
            }
        };
        if !record.is_alive() {
            pidfile::remove(&pid_file);
            return Outcome::ok();
        }
        let deadline = self.deadline();
        let budget = deadline.saturating_duration_since(Instant::now());
        // SIGKILL at the deadline, keeping a little time to see it work.
        let reserve = (budget / 5).min(Duration::from_secs(2));
        match pidfile::terminate(record, deadline - reserve, deadline) {
            Termination::Exited => self
                .log
                .info(&format!("stopped hactl-kvm pid {}", record.pid)),
            Termination::Killed => self.log.warn(&format!(
                "hactl-kvm pid {} ignored SIGTERM until the deadline: killed",
                record.pid
            )),
            Termination::KillPending => self.log.warn(&format!(
                "hactl-kvm pid {} is stuck in I/O with SIGKILL pending; it runs no more code",
                record.pid
            )),
        }
        pidfile::remove(&pid_file);
        Outcome::ok()
    }

    fn monitor(&self) -> Outcome {
        let pid_file = match self.params() {
            Ok(p) => p.pid_file,
            Err(_) => self.pid_file(),
        };
        let socket = self.socket();
        let process = match self.process(&pid_file) {
            Ok((p, _)) => p,
            Err(o) => return o,
        };
        let answer = match process {
            Process::Gone { .. } => Answer::NotAsked,
            // Cheap: a missing socket fails at once. A daemon someone else
            // started would make our start fail on its journal lock; say so.
            Process::NoRecord => to_answer(control::role(
                &socket,
                self.deadline().min(Instant::now() + Duration::from_secs(2)),
            )),
            Process::Alive { .. } => to_answer(control::role(&socket, self.deadline())),
        };
        let (outcome, score) = decide::monitor(&process, &answer, &socket.display().to_string());
        self.apply_score(score);
        if let Some(r) = &outcome.reason {
            self.log.error(r);
        }
        outcome
    }

    fn set_role(&self, role: CoordinatorRole) -> Outcome {
        let action = match role {
            CoordinatorRole::Active => "promote",
            CoordinatorRole::Standby => "demote",
        };
        let p = match self.params() {
            Ok(p) => p,
            Err(o) => return o,
        };
        match self.process(&p.pid_file) {
            Ok((Process::Alive { .. }, _)) => {}
            Ok((Process::NoRecord, _)) => {
                return Outcome::fail(
                    OcfRc::NotRunning,
                    format!("{action}: hactl-kvm is not running"),
                )
            }
            Ok((Process::Gone { pid }, _)) => {
                return Outcome::fail(
                    OcfRc::ErrGeneric,
                    format!("{action}: hactl-kvm daemon (pid {pid}) is not running"),
                )
            }
            Err(o) => return o,
        }
        // A Corosync promotion completes asynchronously (the group must
        // confirm the new epoch): an accepted SetRole is followed by Role
        // until the daemon reports the role or the deadline passes.
        let answer = control::set_role(&p.socket, role, self.deadline()).and_then(|r| {
            let mut r = r;
            while r.role != role && Instant::now() + START_POLL < self.deadline() {
                std::thread::sleep(START_POLL);
                let changed = r.changed.take();
                r = control::role(&p.socket, self.deadline())?;
                r.changed = r.changed.or(changed);
            }
            Ok(r)
        });
        match answer {
            Ok(r) if r.role == role => {
                self.log.info(&format!(
                    "{action}: now {:?}, epoch {}{}",
                    r.role,
                    r.epoch,
                    r.changed.map(|c| format!(" ({c})")).unwrap_or_default()
                ));
                Outcome::ok()
            }
            Ok(r) => Outcome::fail(
                OcfRc::ErrGeneric,
                format!(
                    "{action}: the daemon accepted but is still {:?} after {} ms",
                    r.role,
                    self.env.work_budget().as_millis()
                ),
            ),
            Err(RoleError::Refused(e)) => Outcome::fail(
                OcfRc::ErrGeneric,
                format!("{action} refused by hactl-kvm: {e}"),
            ),
            Err(e) => Outcome::fail(OcfRc::ErrGeneric, format!("{action}: {e}")),
        }
    }

    fn notify(&self) -> Outcome {
        // The daemon learns about the other instances from Corosync, not
        // from Pacemaker's notifications: nothing to do but record it.
        let get = |k: &str| {
            (self.lookup)(k)
                .map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        self.log.info(&format!(
            "notify {}-{}",
            get("OCF_RESKEY_CRM_meta_notify_type"),
            get("OCF_RESKEY_CRM_meta_notify_operation")
        ));
        Outcome::ok()
    }

    /// Sets or removes this node's promotion score, only when Pacemaker runs
    /// us as a clone (a primitive has no score; ocf-tester and crm_resource
    /// have no cluster to tell). Best effort: a failure is logged, never
    /// turned into an action failure.
    fn apply_score(&self, score: Score) {
        if (self.lookup)("OCF_RESKEY_CRM_meta_clone_max").is_none() {
            return;
        }
        let Some(bin) = kvm_host::agent::find_binary("crm_attribute") else {
            self.log
                .warn("crm_attribute not found (pacemaker-cli-utils): promotion score not set");
            return;
        };
        let mut cmd = Command::new(bin);
        cmd.arg("--promotion").arg("--quiet");
        match score {
            Score::Set(v) => cmd.arg("--update").arg(v.to_string()),
            Score::Remove => cmd.arg("--delete"),
        };
        let deadline = self.deadline().min(Instant::now() + Duration::from_secs(5));
        match child::run_one(cmd, deadline) {
            ChildOutcome::Finished { status, .. } if status.success() => {}
            other => self.log.warn(&format!(
                "crm_attribute --promotion ({score:?}) failed: {}",
                match &other {
                    ChildOutcome::Finished { status, .. } =>
                        format!("{status}: {}", other.stderr_tail()),
                    ChildOutcome::TimedOut { after, .. } =>
                        format!("no answer within {} ms", after.as_millis()),
                    ChildOutcome::SpawnFailed(e) => e.to_string(),
                }
            )),
        }
    }
}

fn to_answer(r: Result<hactl_control::RoleReport, RoleError>) -> Answer {
    match r {
        Ok(r) => Answer::Report(r),
        Err(e @ RoleError::Unreachable(_)) => Answer::Unreachable(e.to_string()),
        Err(e) => Answer::Failed(e.to_string()),
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// check-config's refusal in one line: its first line without the program
/// prefix and, for a multi-line message (a TOML error with its excerpt),
/// the last line too.
fn check_config_reason(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let Some(first) = lines.first() else {
        return "no reason given".into();
    };
    let first = first.trim();
    let first = first
        .strip_prefix("hactl-kvm check-config: ")
        .unwrap_or(first);
    match lines.last() {
        Some(last) if lines.len() > 1 => format!("{first}: {}", last.trim()),
        _ => first.to_string(),
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The last line the daemon wrote to its log since `offset` (at most the
/// last 8 KiB are read).
fn log_tail(path: &Path, offset: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = offset.max(len.saturating_sub(8192));
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_ok() {
        let _ = f.take(8192).read_to_end(&mut buf);
    }
    last_line(&String::from_utf8_lossy(&buf))
}
