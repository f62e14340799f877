//! Reading heartbeat files where a hung storage cannot hold us: each read
//! runs in a child process (`kvm-host read-heartbeat`) with a deadline.

use crate::child::{self, Outcome};
use crate::heartbeat::{self, HeartbeatRecord};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The subcommand the child runs.
pub const READ_SUBCOMMAND: &str = "read-heartbeat";

/// What the `read-heartbeat` child prints (one JSON line on stdout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum ReadReport {
    Record { record: HeartbeatRecord },
    NotMounted { message: String },
    Missing { message: String },
    Unreadable { message: String },
}

/// Body of the child: read one file, report, never fail otherwise.
pub fn read_report(file: &Path, require_mount_of: Option<&Path>) -> ReadReport {
    if let Some(storage) = require_mount_of {
        match heartbeat::is_mount_point(storage) {
            Ok(true) => {}
            Ok(false) => {
                return ReadReport::NotMounted {
                    message: format!("{} is not a mount point", storage.display()),
                }
            }
            Err(e) => {
                return ReadReport::Unreadable {
                    message: e.to_string(),
                }
            }
        }
    }
    match heartbeat::read_heartbeat(file) {
        Ok(record) => ReadReport::Record { record },
        Err(e) if e.is_missing() => ReadReport::Missing {
            message: e.to_string(),
        },
        Err(e) => ReadReport::Unreadable {
            message: e.to_string(),
        },
    }
}

/// One heartbeat read by a child process, or why it gave nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    Report(ReadReport),
    /// The read did not finish by the deadline: the storage is hung. The
    /// reader was SIGKILLed; `pid` may still exist, stuck in the kernel.
    TimedOut {
        after_ms: u64,
        pid: u32,
    },
    /// Not attempted: the reader abandoned by an earlier check is still
    /// stuck (a hard NFS mount). Starting another would only pile up
    /// unkillable processes, one per monitor.
    StillBlocked {
        pid: u32,
    },
    /// The child could not run or answered garbage.
    Failed(String),
}

/// Whether `pid` is a live `kvm-host read-heartbeat` of `file`.
pub fn is_blocked_reader(pid: i32, file: &Path) -> bool {
    if !crate::state::is_alive(pid) {
        return false;
    }
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
    args.get(1) == Some(&READ_SUBCOMMAND.as_bytes())
        && args
            .windows(2)
            .any(|w| w[0] == b"--file" && w[1] == file.as_os_str().as_encoded_bytes())
}

/// One file to read.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub file: PathBuf,
    /// Check first that this storage is a mount point.
    pub require_mount_of: Option<PathBuf>,
}

/// Reads all files concurrently in child processes; each must finish by
/// `deadline`, or it is abandoned and reported as timed out.
pub fn read_all(requests: &[ReadRequest], deadline: Instant) -> Vec<ReadResult> {
    read_all_with(requests, deadline, &child::self_command)
}

/// [`read_all`] with another reader program: `reader()` must give a command
/// that understands `read-heartbeat --file F [--require-mount-of M]` and
/// prints a [`ReadReport`] (the coordinator runs its own binary this way).
pub fn read_all_with(
    requests: &[ReadRequest],
    deadline: Instant,
    reader: &dyn Fn() -> std::process::Command,
) -> Vec<ReadResult> {
    let commands = requests
        .iter()
        .map(|r| {
            let mut c = reader();
            c.arg(READ_SUBCOMMAND).arg("--file").arg(&r.file);
            if let Some(m) = &r.require_mount_of {
                c.arg("--require-mount-of").arg(m);
            }
            c
        })
        .collect();
    child::run_all(commands, deadline)
        .into_iter()
        .map(|o| match o {
            Outcome::Finished { stdout, status, .. } => {
                match serde_json::from_slice::<ReadReport>(&stdout) {
                    Ok(report) => ReadResult::Report(report),
                    Err(e) => ReadResult::Failed(format!(
                        "heartbeat reader exited with {status} without a report: {e}"
                    )),
                }
            }
            Outcome::TimedOut { after, pid } => ReadResult::TimedOut {
                after_ms: after.as_millis() as u64,
                pid,
            },
            Outcome::SpawnFailed(e) => {
                ReadResult::Failed(format!("cannot run heartbeat reader: {e}"))
            }
        })
        .collect()
}
