//! The heartbeat writer daemon: one thread per storage writes this host's
//! heartbeat every interval and reports each attempt in a local status file.
//!
//! It only reports. A failed or hung write is logged and shows up in
//! `monitor`; nothing here reboots, kills VMs or touches sysrq. Deciding to
//! fence belongs to the coordinator (the CloudStack `kvmheartbeat.sh` reboot
//! turned single NFS hiccups into cluster-wide reboots).

use crate::heartbeat::{self, HeartbeatRecord};
use crate::log::Logger;
use crate::state::{StateFiles, StorageStatus};
use nix::sys::signal::{SigSet, Signal};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the writer needs; passed on its command line by `start`.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub state: StateFiles,
    pub host: String,
    pub interval: Duration,
    pub heartbeat_dir: String,
    pub require_mount: bool,
    pub storage: Vec<PathBuf>,
}

/// Runs until SIGTERM/SIGINT. Never returns.
pub fn run(cfg: WriterConfig) -> ! {
    let log = Arc::new(Logger::new(&cfg.state.instance, false));
    // Block the stop signals before any thread exists, so that every thread
    // inherits the mask and only `sigwait` below sees them.
    let mut stop_signals = SigSet::empty();
    stop_signals.add(Signal::SIGTERM);
    stop_signals.add(Signal::SIGINT);
    stop_signals.add(Signal::SIGHUP);
    let _ = stop_signals.thread_block();

    let pid = std::process::id();
    let incarnation = format!("{}:{pid}:{}", heartbeat::boot_id(), heartbeat::boot_ms());
    log.info(&format!(
        "heartbeat writer started for {} storage(s), host {}, every {} s",
        cfg.storage.len(),
        cfg.host,
        cfg.interval.as_secs()
    ));
    for (index, storage) in cfg.storage.iter().enumerate() {
        let cfg = cfg.clone();
        let log = Arc::clone(&log);
        let storage = storage.clone();
        let incarnation = incarnation.clone();
        std::thread::Builder::new()
            .name(format!("hb-{index}"))
            .spawn(move || storage_loop(&cfg, index, storage, &incarnation, &log))
            .expect("spawn heartbeat thread");
    }
    // SIGHUP is ignored; SIGTERM, SIGINT or a failed wait end the writer.
    while let Ok(Signal::SIGHUP) = stop_signals.wait() {}
    log.info("heartbeat writer stopping on request");
    // Exit at once: a thread stuck in NFS I/O must not hold up the stop.
    std::process::exit(0);
}

fn storage_loop(
    cfg: &WriterConfig,
    index: usize,
    storage: PathBuf,
    incarnation: &str,
    log: &Logger,
) {
    let pid = std::process::id();
    let path = heartbeat::heartbeat_path(&storage, &cfg.heartbeat_dir, &cfg.host);
    let mut status = StorageStatus {
        storage: storage.clone(),
        writer_pid: pid,
        counter: 0,
        last_ok_boot_ms: None,
        attempt_started_boot_ms: Some(heartbeat::boot_ms()),
        last_error: None,
        consecutive_failures: 0,
        writer_started_boot_ms: heartbeat::boot_ms(),
    };
    let _ = cfg.state.write_status(index, &status);
    // Continue the counter of a previous writer, so it only ever grows.
    let mut next_counter = match heartbeat::read_heartbeat(&path) {
        Ok(prev) if prev.host == cfg.host => prev.counter + 1,
        _ => 1,
    };
    let mut next_tick = Instant::now();
    loop {
        status.attempt_started_boot_ms = Some(heartbeat::boot_ms());
        let _ = cfg.state.write_status(index, &status);
        let record = HeartbeatRecord {
            format: heartbeat::FORMAT_VERSION,
            host: cfg.host.clone(),
            counter: next_counter,
            incarnation: incarnation.to_string(),
            written_unix_ms: heartbeat::unix_ms(),
            interval_secs: cfg.interval.as_secs(),
        };
        // Every attempt consumes a counter value: a write that failed late
        // (after the rename) must still be overtaken by the next one.
        next_counter += 1;
        let result =
            heartbeat::write_heartbeat(&storage, &cfg.heartbeat_dir, cfg.require_mount, &record);
        status.attempt_started_boot_ms = None;
        match result {
            Ok(()) => {
                if status.consecutive_failures > 0 {
                    log.warn(&format!(
                        "heartbeat on {} written again after {} failed attempt(s)",
                        storage.display(),
                        status.consecutive_failures
                    ));
                } else if status.counter == 0 {
                    log.info(&format!("first heartbeat written to {}", path.display()));
                }
                status.counter = record.counter;
                status.last_ok_boot_ms = Some(heartbeat::boot_ms());
                status.last_error = None;
                status.consecutive_failures = 0;
            }
            Err(e) => {
                if status.consecutive_failures == 0 {
                    // Reported, never acted on: see the module comment.
                    log.error(&format!(
                        "heartbeat write to {} failed: {e} (storage lost? no local action taken)",
                        storage.display()
                    ));
                }
                status.last_error = Some(e.to_string());
                status.consecutive_failures += 1;
            }
        }
        let _ = cfg.state.write_status(index, &status);
        next_tick += cfg.interval;
        let now = Instant::now();
        if next_tick < now {
            // An attempt overran: skip the missed ticks instead of bursting.
            next_tick = now;
        }
        std::thread::sleep(next_tick - now);
    }
}
