//! The `on_event` hook: a script run per event with the event's JSON on
//! stdin, on a worker thread so that the core never waits for it.

use hactl_control::EventRecord;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Hook settings.
#[derive(Debug, Clone)]
pub struct HookConfig {
    /// The script (absolute path; run without a shell, no arguments).
    pub program: PathBuf,
    /// Longest a run may take; then its process group is killed.
    pub timeout: Duration,
    /// Events waiting for the hook before new ones are dropped.
    pub queue: usize,
}

/// What the hook did, for metrics and `status`.
#[derive(Debug, Default)]
pub struct HookStats {
    /// Runs that exited 0.
    pub succeeded: AtomicU64,
    /// Runs that failed (non-zero exit, signal, could not start).
    pub failed: AtomicU64,
    /// Runs killed at the timeout (also counted in `failed`).
    pub timed_out: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// The last failure, as logged.
    pub last_failure: Mutex<Option<String>>,
}

/// The running hook worker.
#[derive(Debug)]
pub struct EventHook {
    tx: Option<SyncSender<Vec<u8>>>,
    /// Set by [`EventHook::stop`]: queued events are dropped, not run.
    stopping: Arc<AtomicBool>,
    stats: Arc<HookStats>,
    worker: Option<JoinHandle<()>>,
}

enum RunEnd {
    Exited(ExitStatus),
    TimedOut,
}

fn run_once(cfg: &HookConfig, input: &[u8]) -> Result<(), String> {
    let name = cfg.program.display();
    let mut child = Command::new(&cfg.program)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a timeout kills whatever it started too.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("on_event hook {name}: cannot start: {e}"))?;
    let pgid = Pid::from_raw(child.id() as i32);
    // Feed stdin from its own thread: a hook that never reads must not
    // stall us past the timeout when the event exceeds the pipe buffer.
    if let Some(mut stdin) = child.stdin.take() {
        let data = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let deadline = Instant::now() + cfg.timeout;
    let end = loop {
        match child.try_wait() {
            Ok(Some(status)) => break RunEnd::Exited(status),
            Ok(None) if Instant::now() >= deadline => break RunEnd::TimedOut,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("on_event hook {name}: wait failed: {e}")),
        }
    };
    match end {
        RunEnd::Exited(status) if status.success() => {
            // The hook is done; anything it left running in its group is not
            // ours to keep alive past the call.
            let _ = killpg(pgid, Signal::SIGKILL);
            Ok(())
        }
        RunEnd::Exited(status) => {
            let _ = killpg(pgid, Signal::SIGKILL);
            Err(format!("on_event hook {name}: failed: {status}"))
        }
        RunEnd::TimedOut => {
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait();
            Err(format!(
                "on_event hook {name}: timed out after {} ms; its process group was killed",
                cfg.timeout.as_millis()
            ))
        }
    }
}

impl EventHook {
    /// Starts the worker thread.
    pub fn start(config: HookConfig) -> Self {
        let (tx, rx) = sync_channel::<Vec<u8>>(config.queue.max(1));
        let stats = Arc::new(HookStats::default());
        let st = stats.clone();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let worker = std::thread::Builder::new()
            .name("on_event-hook".into())
            .spawn(move || {
                for input in rx {
                    if stop.load(Ordering::SeqCst) {
                        st.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    match run_once(&config, &input) {
                        Ok(()) => {
                            st.succeeded.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(msg) => {
                            st.failed.fetch_add(1, Ordering::Relaxed);
                            if msg.contains("timed out") {
                                st.timed_out.fetch_add(1, Ordering::Relaxed);
                            }
                            log::warn!("{msg}");
                            *st.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
                        }
                    }
                }
            })
            .expect("spawn the on_event hook thread");
        EventHook {
            tx: Some(tx),
            stopping,
            stats,
            worker: Some(worker),
        }
    }

    /// Queues an event for the hook without waiting. Returns false when the
    /// queue is full (the event is dropped and counted).
    pub fn submit(&self, rec: &EventRecord) -> bool {
        let Ok(mut json) = serde_json::to_vec(rec) else {
            return false;
        };
        json.push(b'\n');
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(json) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> &HookStats {
        &self.stats
    }

    /// Stops accepting events, lets the queued ones run, and waits for the
    /// worker (at most queue length x timeout).
    pub fn shutdown(self) {
        self.close(false);
    }

    /// Stops at once: the run in progress ends (at most at its timeout),
    /// queued events are dropped (counted). For a daemon stopping, whose
    /// SIGTERM must not wait for a queue of hanging hooks. Returns how many
    /// queued events were dropped.
    pub fn stop(self) -> u64 {
        self.close(true)
    }

    fn close(mut self, drop_queued: bool) -> u64 {
        let before = self.stats.dropped.load(Ordering::Relaxed);
        self.stopping.store(drop_queued, Ordering::SeqCst);
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        self.stats.dropped.load(Ordering::Relaxed) - before
    }
}
