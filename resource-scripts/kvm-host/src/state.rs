//! Local state under the state directory (tmpfs, emptied at boot): the PID
//! file that marks the resource as started, and the per-storage status files
//! the heartbeat writer keeps for `monitor`. Also: recognising and ending
//! our writer process by PID.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The subcommand that marks a heartbeat-writer process in /proc/PID/cmdline.
pub const WRITER_SUBCOMMAND: &str = "heartbeat-writer";

/// Files of one resource instance in one state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFiles {
    pub state_dir: PathBuf,
    pub instance: String,
}

/// What the writer reports about one storage after every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStatus {
    pub storage: PathBuf,
    pub writer_pid: u32,
    /// Counter of the last write that was read back correctly (0: none yet).
    pub counter: u64,
    /// CLOCK_BOOTTIME ms of that write.
    pub last_ok_boot_ms: Option<u64>,
    /// Set while an attempt is running: if it stays set, the I/O is hung.
    pub attempt_started_boot_ms: Option<u64>,
    pub last_error: Option<String>,
    pub consecutive_failures: u64,
    /// When the writer started working on this storage.
    pub writer_started_boot_ms: u64,
}

impl StateFiles {
    pub fn new(state_dir: &Path, instance: &str) -> StateFiles {
        StateFiles {
            state_dir: state_dir.to_path_buf(),
            instance: instance.to_string(),
        }
    }

    fn stem(&self) -> String {
        // Clone instances look like "rsc:0"; keep the name a single component.
        format!("kvm-host-{}", self.instance.replace('/', "_"))
    }

    pub fn pid_file(&self) -> PathBuf {
        self.state_dir.join(format!("{}.pid", self.stem()))
    }

    pub fn status_file(&self, index: usize) -> PathBuf {
        self.state_dir
            .join(format!("{}.storage-{index}.json", self.stem()))
    }

    /// Records a storage reader abandoned in uninterruptible I/O.
    pub fn blocked_reader_file(&self, index: usize) -> PathBuf {
        self.state_dir.join(format!(
            "{}.storage-{index}.blocked-reader.pid",
            self.stem()
        ))
    }

    /// Reads the PID file: `Ok(None)` when absent (the resource is stopped).
    pub fn read_pid(&self) -> Result<Option<i32>, String> {
        match fs::read_to_string(self.pid_file()) {
            Ok(s) => s
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|p| *p > 1)
                .map(Some)
                .ok_or_else(|| format!("{}: not a PID: {:?}", self.pid_file().display(), s.trim())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.pid_file().display())),
        }
    }

    pub fn write_pid(&self, pid: u32) -> io::Result<()> {
        write_atomic(&self.pid_file(), format!("{pid}\n").as_bytes())
    }

    pub fn read_status(&self, index: usize) -> Option<StorageStatus> {
        let bytes = fs::read(self.status_file(index)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn write_status(&self, index: usize, status: &StorageStatus) -> io::Result<()> {
        let bytes = serde_json::to_vec(status).expect("status serialises");
        write_atomic(&self.status_file(index), &bytes)
    }

    /// Removes the PID file and every status file of this instance.
    pub fn remove_all(&self) {
        let _ = fs::remove_file(self.pid_file());
        let prefix = format!("{}.storage-", self.stem());
        if let Ok(entries) = fs::read_dir(&self.state_dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    /// The argv the writer is started with; `is_our_writer` looks for it.
    pub fn writer_identity_args(&self) -> Vec<String> {
        vec![
            "--instance".into(),
            self.instance.clone(),
            "--state-dir".into(),
            self.state_dir.to_string_lossy().into_owned(),
        ]
    }

    /// True when `pid` is a live (not zombie) heartbeat writer of this
    /// instance: a recycled PID or a dead writer is not ours.
    pub fn is_our_writer(&self, pid: i32) -> bool {
        if !is_alive(pid) {
            return false;
        }
        let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.get(1).map(String::as_str) != Some(WRITER_SUBCOMMAND) {
            return false;
        }
        let wanted = self.writer_identity_args();
        wanted
            .chunks(2)
            .all(|pair| args.windows(2).any(|w| w[0] == pair[0] && w[1] == pair[1]))
    }
}

/// Write to a temp file and rename, so readers never see half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// A process exists and is not a zombie (PID 1 here may never reap it).
pub fn is_alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the ")" that closes the command name.
    match stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
    {
        Some("Z") | Some("X") | None => false,
        Some(_) => true,
    }
}

/// How ending a process went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Gone after SIGTERM.
    Exited,
    /// Needed SIGKILL, and is gone.
    Killed,
    /// SIGKILL is pending but the process is still there: stuck in
    /// uninterruptible (NFS) I/O. It dies the moment that I/O returns and can
    /// run no more of its own code.
    KillPending,
}

/// SIGTERM, wait up to half of `budget`, then SIGKILL and wait the rest.
/// `still_ours` must say whether the PID still names the process we mean.
pub fn terminate(pid: i32, budget: Duration, still_ours: impl Fn() -> bool) -> Termination {
    use nix::sys::signal::{kill, Signal};
    let target = nix::unistd::Pid::from_raw(pid);
    let t0 = Instant::now();
    let _ = kill(target, Signal::SIGTERM);
    let wait_until = |limit: Instant| -> bool {
        loop {
            if !still_ours() {
                return true;
            }
            if Instant::now() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    if wait_until(t0 + budget / 2) {
        return Termination::Exited;
    }
    let _ = kill(target, Signal::SIGKILL);
    if wait_until(t0 + budget) {
        Termination::Killed
    } else {
        Termination::KillPending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_round_trip_and_absence() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateFiles::new(dir.path(), "rsc:0");
        assert_eq!(s.read_pid(), Ok(None));
        s.write_pid(4242).unwrap();
        assert_eq!(s.read_pid(), Ok(Some(4242)));
        fs::write(s.pid_file(), "junk").unwrap();
        assert!(s.read_pid().is_err());
        s.remove_all();
        assert!(!s.pid_file().exists());
    }

    #[test]
    fn status_round_trip_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateFiles::new(dir.path(), "x");
        let st = StorageStatus {
            storage: "/mnt/a".into(),
            writer_pid: 1,
            counter: 3,
            last_ok_boot_ms: Some(10),
            attempt_started_boot_ms: None,
            last_error: None,
            consecutive_failures: 0,
            writer_started_boot_ms: 1,
        };
        s.write_status(1, &st).unwrap();
        assert_eq!(s.read_status(1), Some(st));
        assert_eq!(s.read_status(0), None);
        // Another instance's files survive our cleanup.
        let other = StateFiles::new(dir.path(), "y");
        other.write_pid(5).unwrap();
        s.remove_all();
        assert!(!s.status_file(1).exists());
        assert!(other.pid_file().exists());
    }

    #[test]
    fn our_own_process_is_alive_but_not_a_writer() {
        let me = std::process::id() as i32;
        assert!(is_alive(me));
        let s = StateFiles::new(Path::new("/tmp"), "x");
        assert!(!s.is_our_writer(me));
        assert!(!is_alive(i32::MAX - 1));
    }

    #[test]
    fn terminate_ends_a_process_that_obeys_sigterm() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let t = terminate(pid, Duration::from_secs(5), || is_alive(pid));
        assert_eq!(t, Termination::Exited);
        let _ = child.wait();
    }
}
