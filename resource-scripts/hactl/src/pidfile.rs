//! The PID file that records the daemon this agent started, and recognising
//! that process later. A PID alone can be recycled after a crash and a
//! reboot-less restart, so the record also holds the process's start time
//! (field 22 of /proc/PID/stat, clock ticks since boot): a live process with
//! the same PID but another start time is not ours and is never signalled.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the PID file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonRecord {
    pub pid: i32,
    /// Start time of that process, clock ticks since boot.
    pub start_ticks: u64,
}

/// Errors reading the PID file (absence is not an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PidFileError {
    #[error("{path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error("{path}: not a PID record: {content:?}")]
    Garbled { path: PathBuf, content: String },
}

/// The start time of a live (not zombie) process, or None.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" that closes the command name: state is field 3.
    let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    if matches!(rest.first(), Some(&"Z") | Some(&"X") | None) {
        return None;
    }
    rest.get(22 - 3)?.parse().ok()
}

/// Reads the PID file: `Ok(None)` when absent (the resource is stopped).
pub fn read(path: &Path) -> Result<Option<DaemonRecord>, PidFileError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(PidFileError::Unreadable {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })
        }
    };
    let mut it = text.split_whitespace();
    let parsed = (|| {
        let pid: i32 = it.next()?.parse().ok().filter(|p| *p > 1)?;
        let start_ticks: u64 = it.next()?.parse().ok()?;
        Some(DaemonRecord { pid, start_ticks })
    })();
    parsed.map(Some).ok_or_else(|| PidFileError::Garbled {
        path: path.to_path_buf(),
        content: text.trim().chars().take(80).collect(),
    })
}

/// Writes the record atomically (temp file + rename).
pub fn write(path: &Path, record: DaemonRecord) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    fs::write(&tmp, format!("{} {}\n", record.pid, record.start_ticks))?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

pub fn remove(path: &Path) {
    let _ = fs::remove_file(path);
}

impl DaemonRecord {
    /// True while the recorded process is alive and is the same process
    /// (same start time) running `hactl-kvm run` (or a stand-in's `run`).
    pub fn is_alive(&self) -> bool {
        if start_ticks(self.pid) != Some(self.start_ticks) {
            return false;
        }
        let Ok(raw) = fs::read(format!("/proc/{}/cmdline", self.pid)) else {
            return false;
        };
        raw.split(|b| *b == 0).any(|a| a == b"run")
    }
}

/// How ending the daemon went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Gone after SIGTERM.
    Exited,
    /// Needed SIGKILL (sent to its whole process group), and is gone.
    Killed,
    /// Still there after SIGKILL (stuck in uninterruptible I/O): it runs no
    /// more of its own code and dies when that I/O returns.
    KillPending,
}

/// SIGTERM, wait for a clean exit until `kill_at`, then SIGKILL the
/// daemon's process group and wait until `deadline`.
pub fn terminate(record: DaemonRecord, kill_at: Instant, deadline: Instant) -> Termination {
    use nix::sys::signal::{kill, killpg, Signal};
    let pid = nix::unistd::Pid::from_raw(record.pid);
    let gone = |limit: Instant| -> bool {
        loop {
            if !record.is_alive() {
                return true;
            }
            if Instant::now() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let _ = kill(pid, Signal::SIGTERM);
    if gone(kill_at) {
        return Termination::Exited;
    }
    // Only if it is still the same process: never a recycled PID's group.
    if record.is_alive() {
        // The daemon is a session leader (started with setsid): its process
        // group holds it and the helpers it spawned.
        if killpg(pid, Signal::SIGKILL).is_err() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    if gone(deadline.max(Instant::now() + Duration::from_millis(200))) {
        Termination::Killed
    } else {
        Termination::KillPending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_absence_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pid");
        assert_eq!(read(&p), Ok(None));
        let r = DaemonRecord {
            pid: 4242,
            start_ticks: 99,
        };
        write(&p, r).unwrap();
        assert_eq!(read(&p), Ok(Some(r)));
        fs::write(&p, "4242\n").unwrap();
        assert!(matches!(read(&p), Err(PidFileError::Garbled { .. })));
        fs::write(&p, "1 5\n").unwrap();
        assert!(matches!(read(&p), Err(PidFileError::Garbled { .. })));
    }

    #[test]
    fn a_recycled_pid_is_not_ours() {
        let me = std::process::id() as i32;
        let ticks = start_ticks(me).expect("own start time");
        // Our own process does not run `run`.
        assert!(!DaemonRecord {
            pid: me,
            start_ticks: ticks
        }
        .is_alive());
        // argv: sh -c SCRIPT run ("run" is $0).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :", "run"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let t = start_ticks(pid).unwrap();
        let ours = DaemonRecord {
            pid,
            start_ticks: t,
        };
        // Until the child has exec'd, its cmdline is still ours.
        let t0 = Instant::now();
        while !ours.is_alive() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(ours.is_alive());
        assert!(!DaemonRecord {
            pid,
            start_ticks: t + 1
        }
        .is_alive());
        let _ = child.kill();
        let _ = child.wait();
    }
}
