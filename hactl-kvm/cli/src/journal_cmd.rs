//! `hactl-kvm journal verify|dump|compact`: offline work on a stopped
//! daemon's journal.
//!
//! Exit status: 0 the journal is intact (verify) or the command did its job;
//! 1 the journal is damaged before its end (or not a journal): the daemon
//! would refuse to start on it, nothing was changed; 2 bad arguments or the
//! file cannot be read or locked; 3 (verify) intact except a torn last
//! record, which the daemon cuts off at its next start.

use clap::{Args, Subcommand};
use hactl_core::record::compact_offline;
use hactl_core::{
    Cluster, ClusterId, Config, Coordinator, Host, HostId, HostOverrides, Input, Inventory, Millis,
    Pod, PodId, Record, ResourceState, Zone, ZoneId,
};
use hactl_journal::{inspect, Journal, JournalError};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Default journal path of the daemon.
pub const DEFAULT_JOURNAL: &str = "/var/lib/hactl-kvm/journal";

#[derive(Args, Debug)]
pub struct JournalArgs {
    #[command(subcommand)]
    command: JournalCommand,
}

#[derive(Subcommand, Debug)]
enum JournalCommand {
    /// Check every record's checksums and that the core can rebuild its
    /// state from them. Changes nothing.
    ///
    /// Example: hactl-kvm journal verify /var/lib/hactl-kvm/journal
    ///
    /// Exit status: 0 intact; 3 a torn last record (cut off at the next
    /// start); 1 damaged before the end or not a journal (the daemon refuses
    /// to start); 2 unreadable.
    Verify(PathArgs),
    /// Print every record, oldest first: offset, driver time, record.
    ///
    /// Example: hactl-kvm journal dump --host 3 --json /var/lib/hactl-kvm/journal
    Dump(DumpArgs),
    /// Rewrite the journal as the records that rebuild the current state.
    ///
    /// Atomic: written aside, fsynced, renamed. Refuses while another
    /// process holds the journal's lock (a running daemon) and when the
    /// journal is damaged before its end. Fence records are kept for
    /// --keep-fences-hours, so the rate cap and the re-fence hold-off never
    /// forget a fence (set it to at least the daemon's longer of
    /// fence_rate.window and refence_holdoff).
    ///
    /// Example: hactl-kvm journal compact /var/lib/hactl-kvm/journal
    Compact(CompactArgs),
}

#[derive(Args, Debug)]
struct PathArgs {
    /// The journal file.
    #[arg(default_value = DEFAULT_JOURNAL)]
    path: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct DumpArgs {
    #[command(flatten)]
    common: PathArgs,
    /// Only records about this host (its numeric id).
    #[arg(long, value_name = "ID")]
    host: Option<u32>,
}

#[derive(Args, Debug)]
struct CompactArgs {
    #[command(flatten)]
    common: PathArgs,
    /// Keep confirmed fence records at least this long (hours).
    #[arg(long, value_name = "H", default_value_t = 168,
          value_parser = clap::value_parser!(u64).range(1..=87_600))]
    keep_fences_hours: u64,
}

pub fn run(args: JournalArgs) -> ExitCode {
    match args.command {
        JournalCommand::Verify(a) => verify(&a),
        JournalCommand::Dump(a) => dump(&a),
        JournalCommand::Compact(a) => compact(&a),
    }
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("hactl-kvm journal: {msg}");
    ExitCode::from(code)
}

/// Exit code of a journal error: unreadable (2) or damaged (1).
fn error_code(e: &JournalError) -> u8 {
    match e {
        JournalError::Io { .. } => 2,
        _ => 1,
    }
}

/// The driver time to compact/recover at: the newest record's.
fn last_at(records: &[Record]) -> Millis {
    records.iter().map(Record::at).max().unwrap_or(0)
}

fn verify(a: &PathArgs) -> ExitCode {
    let ins = match inspect::<Record>(&a.path) {
        Ok(i) => i,
        Err(e) => return fail(error_code(&e), e),
    };
    let records: Vec<Record> = ins.records.iter().map(|(_, r)| r.clone()).collect();
    let n = records.len();
    let now = last_at(&records);
    let rebuilt = Coordinator::recover(Config::default(), records, now);
    if a.json {
        let v = serde_json::json!({
            "path": a.path,
            "bytes": ins.bytes,
            "records": n,
            "torn_tail": ins.torn_tail.map(|t| serde_json::json!({"offset": t.offset, "bytes": t.bytes})),
            "rebuilds": rebuilt.as_ref().is_ok(),
            "error": rebuilt.as_ref().err().map(|e| e.to_string()),
        });
        println!("{v}");
    } else {
        println!("{}: {} records, {} bytes", a.path.display(), n, ins.bytes);
        if let Some(t) = ins.torn_tail {
            println!(
                "torn last record at byte offset {} ({} bytes): the daemon cuts it off at its next start",
                t.offset, t.bytes
            );
        }
        match &rebuilt {
            Ok((c, _)) => println!(
                "the core rebuilds its state from it: {} hosts, next epoch {}",
                c.hosts().len(),
                c.epoch()
            ),
            Err(e) => println!("the core cannot rebuild its state from it: {e}"),
        }
    }
    if rebuilt.is_err() {
        ExitCode::from(1)
    } else if ins.torn_tail.is_some() {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

fn record_host(r: &Record) -> Option<HostId> {
    match r {
        Record::HaTransition { host, .. }
        | Record::FenceIssued { host, .. }
        | Record::FenceResolved { host, .. }
        | Record::PowerOnOwed { host, .. } => Some(*host),
        Record::OperatorCommand { command, .. } => hactl_control::dispatch::command_host(command),
        _ => None,
    }
}

fn dump(a: &DumpArgs) -> ExitCode {
    let ins = match inspect::<Record>(&a.common.path) {
        Ok(i) => i,
        Err(e) => return fail(error_code(&e), e),
    };
    for (off, r) in &ins.records {
        if let Some(h) = a.host {
            if record_host(r) != Some(HostId(h)) {
                continue;
            }
        }
        let json = serde_json::to_string(r).unwrap_or_default();
        if a.common.json {
            println!("{{\"offset\":{off},\"record\":{json}}}");
        } else {
            println!("{off:>10}  {:>12}  {json}", r.at());
        }
    }
    if let Some(t) = ins.torn_tail {
        eprintln!(
            "hactl-kvm journal: torn last record at byte offset {} ({} bytes) not shown",
            t.offset, t.bytes
        );
    }
    ExitCode::SUCCESS
}

/// An inventory naming every host and cluster the records mention, so that
/// a recovered core instantiates each host from its journaled state.
fn inventory_of(records: &[Record]) -> Inventory {
    let mut hosts = std::collections::BTreeMap::<HostId, ClusterId>::new();
    for r in records {
        if let Record::HaTransition { host, cluster, .. } = r {
            hosts.insert(*host, *cluster);
        }
    }
    let mut clusters: Vec<ClusterId> = hosts.values().copied().collect();
    clusters.sort();
    clusters.dedup();
    Inventory {
        zones: vec![Zone {
            id: ZoneId(0),
            enabled: true,
        }],
        pods: vec![Pod {
            id: PodId(0),
            zone: ZoneId(0),
            enabled: true,
        }],
        clusters: clusters
            .into_iter()
            .map(|id| Cluster {
                id,
                pod: PodId(0),
                enabled: true,
                ha_enabled: true,
            })
            .collect(),
        hosts: hosts
            .into_iter()
            .map(|(id, cluster)| Host {
                id,
                cluster,
                resource_state: ResourceState::Enabled,
                oobm_enabled: true,
                has_vms: true,
                overrides: HostOverrides::default(),
            })
            .collect(),
    }
}

/// Checks through the core that `compacted` rebuilds what `original` does:
/// every host's HA state, state version and owed power-on, and the rate
/// cap's count, once the same inventory names them.
fn same_state(original: &[Record], compacted: &[Record], now: Millis) -> Result<(), String> {
    let inv = inventory_of(original);
    let rebuild = |recs: &[Record]| -> Result<_, String> {
        let (mut core, _) = Coordinator::recover(Config::default(), recs.to_vec(), now)
            .map_err(|e| format!("the core cannot rebuild its state: {e}"))?;
        core.handle(now, Input::Inventory(inv.clone()));
        let hosts: Vec<_> = core
            .hosts()
            .into_iter()
            .map(|h| (h.id, h.ha, h.version, h.power_on_owed))
            .collect();
        let fences = core.fences_in_window(hactl_core::RateScope::Global, now);
        Ok((core.epoch(), hosts, fences))
    };
    let a = rebuild(original)?;
    let b = rebuild(compacted)?;
    if a != b {
        return Err(format!(
            "compaction would change the rebuilt state ({a:?} vs {b:?})"
        ));
    }
    Ok(())
}

/// Takes the journal's advisory lock (flock, exclusive, non-blocking); the
/// daemon holds the same lock while it runs.
fn lock(path: &Path) -> Result<File, String> {
    let f = File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    // SAFETY: flock on a valid, owned descriptor.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
            format!(
                "{}: locked by another process (is the daemon running?); stop it first",
                path.display()
            )
        } else {
            format!("{}: cannot lock: {e}", path.display())
        });
    }
    Ok(f)
}

fn compact(a: &CompactArgs) -> ExitCode {
    let path = &a.common.path;
    if !path.exists() {
        return fail(2, format!("{}: no such file", path.display()));
    }
    let _lock = match lock(path) {
        Ok(f) => f,
        Err(e) => return fail(2, e),
    };
    // Damage before the end: refuse before touching anything.
    if let Err(e) = inspect::<Record>(path) {
        return fail(error_code(&e), e);
    }
    let (mut journal, replay) = match Journal::open::<Record>(path) {
        Ok(j) => j,
        Err(e) => return fail(error_code(&e), e),
    };
    let before_bytes = journal.len();
    let before = replay.records.len();
    let now = last_at(&replay.records);
    let keep_ms = a.keep_fences_hours * 3_600_000;
    let compacted = compact_offline(&replay.records, now, keep_ms);
    // Never write a compaction that would rebuild a different state.
    if let Err(e) = same_state(&replay.records, &compacted, now) {
        return fail(1, format!("{e}; journal left as it was"));
    }
    if let Err(e) = journal.rewrite(&compacted) {
        return fail(error_code(&e), e);
    }
    let msg = format!(
        "{}: {} records ({} bytes) -> {} records ({} bytes){}",
        path.display(),
        before,
        before_bytes,
        compacted.len(),
        journal.len(),
        replay
            .torn_tail
            .map(|t| format!("; a torn last record of {} bytes was cut off", t.bytes))
            .unwrap_or_default()
    );
    if a.common.json {
        println!(
            "{}",
            serde_json::json!({"path": path, "records_before": before, "bytes_before": before_bytes,
                "records_after": compacted.len(), "bytes_after": journal.len(),
                "torn_tail_cut": replay.torn_tail.map(|t| t.bytes)})
        );
    } else {
        println!("{msg}");
    }
    ExitCode::SUCCESS
}
