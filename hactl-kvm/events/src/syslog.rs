//! RFC 5424 syslog over a local datagram socket.

use hactl_control::render::event_kind;
use hactl_control::time::rfc3339_ms;
use hactl_control::EventRecord;
use hactl_core::{ClusterId, Event, FenceId, HaState, HostId};
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system log socket.
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";

/// LOG_DAEMON.
const FACILITY_DAEMON: u8 = 3;

/// Our structured-data id. 32473 is the private enterprise number reserved
/// for documentation (RFC 5612); the SD-ID is fixed so filters can rely on it.
const SD_ID: &str = "hactl@32473";

/// Syslog severities (RFC 5424 numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// 3.
    Err = 3,
    /// 4.
    Warning = 4,
    /// 5.
    Notice = 5,
    /// 6.
    Info = 6,
    /// 7.
    Debug = 7,
}

/// The severity of an event. Everything about fencing, the rate cap, the
/// mass-failure guard, quorum and hosts needing the operator is NOTICE or
/// higher.
pub fn severity(e: &Event) -> Severity {
    use Severity::*;
    match e {
        Event::RateCapReached { .. }
        | Event::MassFailureDetected { .. }
        | Event::OperatorActionRequired { .. } => Err,
        Event::FenceIssued { .. }
        | Event::RecoveryAttemptFailed { .. }
        | Event::LeftOffAfterRepeatedFence { .. }
        | Event::OperatorCommandRejected { .. }
        | Event::ClockAnomaly { .. }
        | Event::NoCheckerAvailable { .. } => Warning,
        Event::QuorumChanged { quorate } => {
            if *quorate {
                Notice
            } else {
                Warning
            }
        }
        Event::HaStateChanged { to, .. } => match to {
            HaState::Failed => Err,
            HaState::Recovering | HaState::Fenced => Notice,
            _ => Info,
        },
        Event::FenceConfirmed { .. }
        | Event::FenceDeferred { .. }
        | Event::RateCapCleared { .. }
        | Event::MassFailureCleared { .. }
        | Event::UserPowerRequested { .. }
        | Event::PartitionStateChanged { .. }
        | Event::CoordinatorStarted { .. } => Notice,
        Event::PowerStateChanged { .. }
        | Event::ActivityRoundConcluded { .. }
        | Event::CheckerVerdictDiscarded { .. }
        | Event::RecoveryNotNeeded { .. } => Info,
        Event::ActivitySample { .. } => Debug,
    }
}

/// The stable MSGID of an event kind: its wire name in upper case, e.g.
/// `FENCE_ISSUED` (at most 32 printable ASCII characters, as RFC 5424 asks).
pub fn msgid(e: &Event) -> String {
    let mut id = event_kind(e).to_ascii_uppercase();
    id.truncate(32);
    id
}

/// Host, partition and fence an event is about (the structured data of its
/// syslog line; the daemon also files host history by it).
pub fn subjects(e: &Event) -> (Option<HostId>, Option<ClusterId>, Option<FenceId>) {
    match e {
        Event::HaStateChanged { host, cluster, .. } => (Some(*host), Some(*cluster), None),
        Event::FenceIssued {
            host,
            cluster,
            fence,
            ..
        } => (Some(*host), Some(*cluster), Some(*fence)),
        Event::FenceConfirmed { host, fence, .. } => (Some(*host), None, *fence),
        Event::LeftOffAfterRepeatedFence { host, fence, .. } => (Some(*host), None, Some(*fence)),
        Event::PowerStateChanged { host, .. }
        | Event::ActivitySample { host, .. }
        | Event::ActivityRoundConcluded { host, .. }
        | Event::CheckerVerdictDiscarded { host, .. }
        | Event::NoCheckerAvailable { host }
        | Event::RecoveryAttemptFailed { host, .. }
        | Event::FenceDeferred { host, .. }
        | Event::OperatorActionRequired { host, .. }
        | Event::UserPowerRequested { host, .. }
        | Event::RecoveryNotNeeded { host } => (Some(*host), None, None),
        Event::OperatorCommandRejected { host, .. } => (*host, None, None),
        Event::PartitionStateChanged { cluster, .. }
        | Event::MassFailureDetected { cluster, .. }
        | Event::MassFailureCleared { cluster } => (None, Some(*cluster), None),
        Event::RateCapReached { scope, .. } | Event::RateCapCleared { scope, .. } => match scope {
            hactl_core::RateScope::Partition(c) => (None, Some(*c), None),
            hactl_core::RateScope::Global => (None, None, None),
        },
        Event::CoordinatorStarted { .. }
        | Event::QuorumChanged { .. }
        | Event::ClockAnomaly { .. } => (None, None, None),
    }
}

/// RFC 5424 PARAM-VALUE escaping.
fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Sends events to a syslog datagram socket.
#[derive(Debug)]
pub struct SyslogSink {
    socket: UnixDatagram,
    path: PathBuf,
    hostname: String,
    pid: u32,
    dropped: AtomicU64,
}

impl SyslogSink {
    /// A sink writing to `path` (e.g. [`DEFAULT_SYSLOG_SOCKET`]). The socket
    /// is non-blocking: a stalled syslog daemon costs lines, never the core.
    pub fn new(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "-".into());
        Ok(SyslogSink {
            socket,
            path: path.as_ref().to_path_buf(),
            hostname,
            pid: std::process::id(),
            dropped: AtomicU64::new(0),
        })
    }

    /// The RFC 5424 line for an event. `partition` names the host's
    /// partition for events that do not carry it themselves.
    pub fn format(&self, rec: &EventRecord, partition: Option<ClusterId>) -> String {
        let e = &rec.event;
        let pri = FACILITY_DAEMON * 8 + severity(e) as u8;
        let (host, cluster, fence) = subjects(e);
        let mut sd = format!("[{SD_ID} seq=\"{}\"", rec.seq);
        if let Some(h) = host {
            sd.push_str(&format!(" host=\"{}\"", sd_escape(&h.to_string())));
        }
        if let Some(c) = cluster.or(partition) {
            sd.push_str(&format!(" partition=\"{}\"", sd_escape(&c.to_string())));
        }
        if let Some(f) = fence {
            sd.push_str(&format!(" fence=\"{}\"", sd_escape(&f.to_string())));
        }
        sd.push(']');
        let mut body = serde_json::to_value(e).unwrap_or_default();
        if let Some(o) = body.as_object_mut() {
            o.remove("event");
        }
        format!(
            "<{pri}>1 {} {} hactl-kvm {} {} {sd} {}",
            rfc3339_ms(rec.at_unix_ms),
            self.hostname,
            self.pid,
            msgid(e),
            body
        )
    }

    /// Sends one event. Returns false (and counts a drop) when the line
    /// could not be delivered (socket full, no syslog daemon).
    pub fn send(&self, rec: &EventRecord, partition: Option<ClusterId>) -> bool {
        let line = self.format(rec, partition);
        match self.socket.send_to(line.as_bytes(), &self.path) {
            Ok(_) => true,
            Err(e) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                if e.kind() != ErrorKind::WouldBlock {
                    log::debug!("syslog {}: {e}", self.path.display());
                }
                false
            }
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
