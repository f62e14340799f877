//! One daemon per journal directory: an exclusive `flock` on
//! `<journal_dir>/hactl.lock`, which holds the owner's PID so that a refused
//! start can say who holds it. The lock dies with the process (also on
//! SIGKILL), so a stale file never blocks a restart.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why the lock was not taken.
#[derive(Debug, Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("journal directory {dir} is in use by another hactl-kvm (PID {holder}); refusing to start a second coordinator on the same journal")]
    Held {
        /// Directory.
        dir: PathBuf,
        /// The holder's PID as it wrote it ("unknown" if unreadable).
        holder: String,
    },
    /// I/O error.
    #[error("cannot lock journal directory {dir}: {source}")]
    Io {
        /// Directory.
        dir: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// The held lock (released when dropped or when the process dies).
#[derive(Debug)]
pub struct DirLock {
    _lock: Flock<File>,
}

/// Name of the lock file inside the journal directory.
pub const LOCK_FILE: &str = "hactl.lock";

impl DirLock {
    /// Creates the directory if needed and takes the lock without waiting.
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let io = |source| LockError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                lock.set_len(0).map_err(io)?;
                lock.seek(SeekFrom::Start(0)).map_err(io)?;
                writeln!(lock, "{}", std::process::id()).map_err(io)?;
                lock.sync_data().map_err(io)?;
                Ok(DirLock { _lock: lock })
            }
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                let holder = s.trim();
                Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder.to_string()
                    },
                })
            }
            Err((_, e)) => Err(io(std::io::Error::from(e))),
        }
    }
}
