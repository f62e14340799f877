//! The hactl-kvm coordinator as a service: a tokio runtime that drives the
//! sans-IO decision core (`hactl-core`) against CloudStack, the hosts' BMCs
//! and the shared storage heartbeats, with a crash-safe journal.
//!
//! * [`daemon`]: the loop (timers, ordered actions, persist-before-act,
//!   signals, systemd notification, hand-off to CloudStack VM-HA).
//! * [`config`] / [`secrets`]: the TOML configuration (documented in
//!   `hactl-kvm/etc/hactl.toml`) and the root-only secrets file.
//! * [`power`]: the power-driver trait and its `ipmi`, `fence-agent` and
//!   `script` drivers; every request carries the coordinator epoch.
//! * [`activity`]: `local` and `peer` activity checks.
//! * [`handoff`]: the journaled declare/cancel-degraded side-record.
//! * [`lock`], [`notify`], [`clock`]: one daemon per journal, sd_notify,
//!   the boot-time clock.
//! * [`check`]: the `check-config` command.

pub mod activity;
pub mod check;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod handoff;
pub mod lock;
pub mod notify;
pub mod power;
pub mod secrets;

pub use config::RuntimeConfig;
pub use daemon::{Daemon, DaemonError};

/// Body of the hidden `read-heartbeat` subcommand the `local` activity
/// check runs (in a child process, so that a hung mount cannot hold the
/// daemon): kvm-host's own reader, one JSON line.
pub fn read_heartbeat_report(
    file: &std::path::Path,
    require_mount_of: Option<&std::path::Path>,
) -> String {
    let report = kvm_host::reader::read_report(file, require_mount_of);
    serde_json::to_string(&report).expect("report serialises")
}
