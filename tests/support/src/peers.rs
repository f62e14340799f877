//! Finding the peer programs, and stopping the processes we started.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Returns the full path of `program`, or panics with the command that installs it.
///
/// Tests call this before using a peer so that a machine without the peer fails with a
/// message an operator can act on ("apt-get install openipmi"), instead of a bare ENOENT.
pub fn require(program: &str, debian_package: &str) -> PathBuf {
    find_in_path(program).unwrap_or_else(|| {
        panic!(
            "the test peer `{program}` is not installed: run `apt-get install -y {debian_package}` \
             (or `bash .ci/run`, which installs every peer the tests need)"
        )
    })
}

/// Looks `program` up in `$PATH` plus the sbin directories, which root's PATH may lack.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(program))
        .find(|p| p.is_file());
    found
}

/// Sends SIGTERM to a child we started, waits up to `grace`, then SIGKILLs it and reaps it.
pub fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
