//! Runs external commands (virsh, systemctl, our own storage readers) with a
//! deadline, several at once, and abandons those that do not finish.
//!
//! Why a child process and not a thread: a thread stuck in uninterruptible
//! NFS I/O keeps the whole process (and so the stdout/stderr pipes execd
//! waits on) alive after `exit`. A child with its own stdio and process group
//! can be SIGKILLed and left behind; we return in time either way.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Most output kept from one child; more is discarded.
const MAX_OUTPUT: usize = 64 * 1024;

/// How often finished children are looked for.
const POLL: Duration = Duration::from_millis(5);

/// What became of one command.
#[derive(Debug)]
pub enum Outcome {
    Finished {
        status: ExitStatus,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// Still running at the deadline: SIGKILLed (with its process group) and
    /// abandoned, not waited for. `pid` may live on in uninterruptible I/O.
    TimedOut {
        after: Duration,
        pid: u32,
    },
    SpawnFailed(io::Error),
}

impl Outcome {
    /// The last non-empty line of stderr, for an exit reason.
    pub fn stderr_tail(&self) -> String {
        match self {
            Outcome::Finished { stderr, .. } => String::from_utf8_lossy(stderr)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string(),
            _ => String::new(),
        }
    }
}

struct Running {
    child: Child,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn set_nonblocking(fd: impl std::os::fd::AsFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(&fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

fn drain(r: &mut Option<impl Read>, into: &mut Vec<u8>) {
    let Some(reader) = r.as_mut() else { return };
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(into.len());
                into.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return, // WouldBlock: nothing more for now.
        }
    }
}

/// Runs all `commands` concurrently; each must finish by `deadline`.
/// Results come back in the order of `commands`.
pub fn run_all(commands: Vec<Command>, deadline: Instant) -> Vec<Outcome> {
    let started = Instant::now();
    let mut slots: Vec<Result<Running, Outcome>> = commands
        .into_iter()
        .map(|mut cmd| {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0);
            match cmd.spawn() {
                Ok(child) => {
                    // Non-blocking pipes: a grandchild holding them open
                    // must not make us wait for EOF.
                    if let Some(s) = &child.stdout {
                        let _ = set_nonblocking(s);
                    }
                    if let Some(s) = &child.stderr {
                        let _ = set_nonblocking(s);
                    }
                    Ok(Running {
                        child,
                        stdout: Vec::new(),
                        stderr: Vec::new(),
                    })
                }
                Err(e) => Err(Outcome::SpawnFailed(e)),
            }
        })
        .collect();

    loop {
        let mut pending = 0;
        for slot in slots.iter_mut() {
            let Ok(run) = slot else { continue };
            drain(&mut run.child.stdout, &mut run.stdout);
            drain(&mut run.child.stderr, &mut run.stderr);
            match run.child.try_wait() {
                Ok(Some(status)) => {
                    drain(&mut run.child.stdout, &mut run.stdout);
                    drain(&mut run.child.stderr, &mut run.stderr);
                    *slot = Err(Outcome::Finished {
                        status,
                        stdout: std::mem::take(&mut run.stdout),
                        stderr: std::mem::take(&mut run.stderr),
                    });
                }
                Ok(None) => pending += 1,
                Err(e) => *slot = Err(Outcome::SpawnFailed(e)),
            }
        }
        if pending == 0 {
            break;
        }
        if Instant::now() >= deadline {
            for slot in slots.iter_mut() {
                if let Ok(run) = slot {
                    abandon(&mut run.child);
                    *slot = Err(Outcome::TimedOut {
                        after: started.elapsed(),
                        pid: run.child.id(),
                    });
                }
            }
            break;
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
    slots
        .into_iter()
        .map(|s| match s {
            Err(outcome) => outcome,
            Ok(_) => unreachable!("every slot is resolved before the loop ends"),
        })
        .collect()
}

/// Runs one command with a deadline.
pub fn run_one(command: Command, deadline: Instant) -> Outcome {
    run_all(vec![command], deadline)
        .pop()
        .expect("one command gives one outcome")
}

/// SIGKILLs a child's process group and reaps it only if it is already gone:
/// one stuck in D state is left to init rather than waited for.
fn abandon(child: &mut Child) {
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(2));
    let _ = child.try_wait();
}

/// The command that runs this very binary (through /proc/self/exe, which
/// still works when the file was replaced by an upgrade).
pub fn self_command() -> Command {
    let mut c = Command::new("/proc/self/exe");
    c.arg0("kvm-host");
    c
}

/// Makes the child `cmd` spawns the leader of a new session (and so of its
/// own process group) before it execs: a daemon an agent starts must stay out
/// of execd's process-group SIGKILL when an action of the agent times out.
pub fn in_own_session(cmd: &mut Command) -> &mut Command {
    // SAFETY: setsid is async-signal-safe and the only thing run in the
    // forked child before exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn finished_commands_report_output_and_status() {
        let out = run_all(
            vec![sh("echo out; echo err >&2; exit 3"), sh("true")],
            Instant::now() + Duration::from_secs(10),
        );
        match &out[0] {
            Outcome::Finished {
                status,
                stdout,
                stderr,
            } => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(stdout, b"out\n");
                assert_eq!(stderr, b"err\n");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&out[1], Outcome::Finished { status, .. } if status.success()));
    }

    #[test]
    fn a_hanging_command_is_abandoned_at_the_deadline() {
        let t0 = Instant::now();
        // The grandchild `sleep` holds the pipes: we must not wait for EOF.
        let out = run_all(
            vec![sh("sleep 30 & sleep 30"), sh("exit 0")],
            Instant::now() + Duration::from_millis(300),
        );
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(matches!(out[0], Outcome::TimedOut { .. }), "{:?}", out[0]);
        assert!(matches!(out[1], Outcome::Finished { .. }));
    }

    #[test]
    fn a_missing_program_is_a_spawn_failure() {
        let out = run_one(
            Command::new("/nonexistent/virsh"),
            Instant::now() + Duration::from_secs(1),
        );
        assert!(matches!(out, Outcome::SpawnFailed(_)));
    }
}
