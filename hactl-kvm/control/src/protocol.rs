//! The wire protocol: one JSON object per line in each direction.
//!
//! A client sends a [`RequestEnvelope`] line; the server answers with one or
//! more [`ResponseEnvelope`] lines carrying the same `id`. Every request gets
//! exactly one final answer; `events` first streams one
//! [`Reply::Event`] line per event and then ends with [`Reply::EndOfStream`]
//! (with `follow` the stream ends only when the daemon or the client goes
//! away). The payloads are the core's own types ([`hactl_core`]), so the
//! protocol cannot drift from what the core knows.
//!
//! Versioning: `v` is [`PROTOCOL_VERSION`]. A server answers a request of
//! another version with [`ControlError::VersionMismatch`] naming both, and
//! never guesses.

use hactl_core::{
    ClusterId, Event, EvidenceSample, HaState, HealthOutcome, HostId, HostView, Millis,
    PartitionState, PartitionView, PowerState, RateScope, Record, RoundOutcome,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line a server accepts (a request is a few hundred
/// bytes; anything longer is refused without being parsed).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// One request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// Protocol version of the sender.
    pub v: u32,
    /// Chosen by the client, echoed in every answer line.
    pub id: u64,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
}

/// What a power request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerRequest {
    /// Read the chassis power through the BMC (no change).
    Status,
    /// Power on.
    On,
    /// Hard power off.
    Off,
    /// Power cycle.
    Cycle,
}

impl PowerRequest {
    /// True for the operations that can take a running host down (the CLI
    /// asks for confirmation before sending them).
    pub fn is_disruptive(self) -> bool {
        matches!(self, PowerRequest::Off | PowerRequest::Cycle)
    }
}

/// What `enable`/`disable` applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Target {
    /// A partition (cluster): HA on or off for all its hosts.
    Partition(ClusterId),
    /// One host.
    Host(HostId),
}

/// Every request of the control protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "request")]
pub enum Request {
    /// Quorum, partitions, counts per HA state, rate cap, mass failure,
    /// journal, uptime.
    Status,
    /// Every host, optionally filtered.
    Hosts {
        /// Only hosts of this partition.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partition: Option<ClusterId>,
        /// Only hosts in this HA state.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<HaState>,
    },
    /// One host's history from the journal, oldest first.
    HostHistory {
        /// The host.
        host: HostId,
    },
    /// The event stream.
    Events {
        /// Only events at or after this wall-clock time (Unix ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_unix_ms: Option<u64>,
        /// Keep the stream open and send new events as they happen.
        #[serde(default)]
        follow: bool,
    },
    /// A power operation through the core (quorum applies, journaled).
    Power {
        /// The host.
        host: HostId,
        /// What to do.
        op: PowerRequest,
    },
    /// Acknowledge a tripped fence-rate cap.
    AckCap {
        /// Which cap.
        scope: RateScope,
    },
    /// The operator confirms that a FAILED host is powered off.
    ConfirmOff {
        /// The host.
        host: HostId,
    },
    /// Enable HA for a partition or host.
    Enable {
        /// What.
        target: Target,
    },
    /// Disable HA for a partition or host.
    Disable {
        /// What.
        target: Target,
    },
    /// Put a host into maintenance (or take it out).
    Maintenance {
        /// The host.
        host: HostId,
        /// True to enter maintenance, false to leave it.
        on: bool,
    },
    /// This instance's role among the coordinator instances (read only).
    Role,
    /// Make this instance active (it drives the core and may act) or
    /// standby (it keeps a replica and never acts). Sent by the
    /// `ocf:cloudstack:hactl` agent on Pacemaker's promote/demote.
    SetRole {
        /// The role wanted.
        role: CoordinatorRole,
    },
}

/// The role of one coordinator instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordinatorRole {
    /// Drives the core; the only instance that may issue power actions.
    Active,
    /// Keeps the journal replica current; never acts.
    Standby,
}

impl Request {
    /// True for requests that change state (journaled with who ran them).
    pub fn changes_state(&self) -> bool {
        match self {
            Request::Status
            | Request::Hosts { .. }
            | Request::HostHistory { .. }
            | Request::Events { .. }
            | Request::Role => false,
            Request::Power { op, .. } => *op != PowerRequest::Status,
            Request::AckCap { .. }
            | Request::ConfirmOff { .. }
            | Request::Enable { .. }
            | Request::Disable { .. }
            | Request::Maintenance { .. }
            | Request::SetRole { .. } => true,
        }
    }
}

/// One answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    /// Protocol version of the server.
    pub v: u32,
    /// The request's id (0 when the request could not be read at all).
    pub id: u64,
    /// The answer.
    #[serde(flatten)]
    pub body: Response,
}

/// An answer: a reply or a typed error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The request was carried out.
    Ok(Reply),
    /// It was not.
    Err(ControlError),
}

impl From<Result<Reply, ControlError>> for Response {
    fn from(r: Result<Reply, ControlError>) -> Self {
        match r {
            Ok(v) => Response::Ok(v),
            Err(e) => Response::Err(e),
        }
    }
}

/// Successful answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reply")]
pub enum Reply {
    /// Answer to [`Request::Status`].
    Status(StatusReport),
    /// Answer to [`Request::Hosts`].
    Hosts {
        /// One row per host, ordered by host id.
        hosts: Vec<HostRow>,
    },
    /// Answer to [`Request::HostHistory`].
    HostHistory(HostHistory),
    /// Answer to [`Request::Role`] and [`Request::SetRole`].
    Role(RoleReport),
    /// One event of an `events` stream.
    Event(EventRecord),
    /// The end of an `events` stream.
    EndOfStream,
    /// Answer to `power status`.
    PowerRead {
        /// Host.
        host: HostId,
        /// What the BMC said.
        power: PowerState,
        /// When it was read (Unix ms).
        read_at_unix_ms: u64,
    },
    /// A state-changing request was accepted by the core.
    Applied {
        /// Exactly what changed, one line per change, for the operator.
        changes: Vec<String>,
        /// The journal record that holds it (with who ran it) was fsynced.
        journaled: bool,
    },
}

/// Typed errors. The daemon's refusals carry the core's own reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "error")]
pub enum ControlError {
    /// The client speaks another protocol version.
    #[error("protocol version mismatch: the daemon speaks {server}, the client sent {client}")]
    VersionMismatch {
        /// The server's version.
        server: u32,
        /// The client's.
        client: u32,
    },
    /// The request line could not be understood.
    #[error("bad request: {detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
    },
    /// The peer is neither root nor a member of the control group.
    #[error("permission denied: uid {uid} is neither root nor a member of group {group}")]
    PermissionDenied {
        /// The peer's uid.
        uid: u32,
        /// The control group's name.
        group: String,
    },
    /// No such host.
    #[error("unknown host {host}")]
    UnknownHost {
        /// The host asked for.
        host: HostId,
    },
    /// No such partition.
    #[error("unknown partition {partition}")]
    UnknownPartition {
        /// The partition asked for.
        partition: ClusterId,
    },
    /// The core refused the command; nothing was changed.
    #[error("refused: {reason}")]
    Refused {
        /// The core's reason, for the operator.
        reason: String,
    },
    /// The daemon cannot do this (yet), e.g. no BMC access configured.
    #[error("not supported: {detail}")]
    Unsupported {
        /// Why.
        detail: String,
    },
    /// The daemon failed while carrying the request out.
    #[error("daemon error: {detail}")]
    Internal {
        /// What failed.
        detail: String,
    },
}

/// A rate cap's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateCapStatus {
    /// Which cap.
    pub scope: RateScope,
    /// Fences counted in the current window.
    pub fences_in_window: u32,
    /// The cap.
    pub limit: u32,
    /// Fencing is stopped in this scope until acknowledged or the window passes.
    pub tripped: bool,
}

/// The journal's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStatus {
    /// File.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// When it was last compacted (Unix ms), if ever.
    pub last_compaction_unix_ms: Option<u64>,
}

/// Answer to `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The coordinator is in the quorate partition.
    pub quorate: bool,
    /// The coordinator incarnation.
    pub epoch: u32,
    /// Seconds since the daemon started.
    pub uptime_s: u64,
    /// Every partition with its state and why it is not ACTIVE.
    pub partitions: Vec<PartitionView>,
    /// Hosts per HA state.
    pub counts: BTreeMap<HaState, u32>,
    /// The global cap first, then each partition's.
    pub rate_caps: Vec<RateCapStatus>,
    /// The journal.
    pub journal: JournalStatus,
}

impl StatusReport {
    /// Partitions whose mass-failure guard is holding fencing.
    pub fn mass_failure_partitions(&self) -> Vec<ClusterId> {
        self.partitions
            .iter()
            .filter(|p| {
                p.state == PartitionState::Inactive
                    && p.reasons
                        .iter()
                        .any(|r| matches!(r, hactl_core::InactiveReason::MassFailure(_)))
            })
            .map(|p| p.id)
            .collect()
    }
}

/// The last health check of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSummary {
    /// When it finished (Unix ms).
    pub at_unix_ms: u64,
    /// Its outcome.
    pub outcome: HealthOutcome,
}

/// The last activity round about a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundSummary {
    /// When it ended (Unix ms).
    pub at_unix_ms: u64,
    /// How it ended.
    pub outcome: RoundOutcome,
    /// Its samples (checker, window, verdict).
    pub samples: Vec<EvidenceSample>,
}

/// One row of `hosts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRow {
    /// The core's view of the host (HA state, CloudStack hastate, power).
    pub view: HostView,
    /// The host's name in CloudStack, when the daemon knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the power state was last read (Unix ms).
    pub power_read_at_unix_ms: Option<u64>,
    /// The last health check.
    pub last_health: Option<HealthSummary>,
    /// The last activity round.
    pub last_round: Option<RoundSummary>,
    /// The operation in flight, if any ("power-off", "activity round" ...).
    pub pending: Option<String>,
}

/// One journal record of a host's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The record's driver time (monotonic ms of the incarnation that wrote it).
    pub at: Millis,
    /// The record.
    pub record: Record,
}

/// Answer to `host NAME`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostHistory {
    /// The host.
    pub host: HostId,
    /// Its journal records, oldest first.
    pub entries: Vec<HistoryEntry>,
}

/// One event as the daemon delivers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Sequence number (increasing, per daemon run).
    pub seq: u64,
    /// Wall-clock time (Unix ms).
    pub at_unix_ms: u64,
    /// The core's event.
    pub event: Event,
}

/// Where this instance stands among the coordinator instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleReport {
    /// Active or standby now.
    pub role: CoordinatorRole,
    /// The quorum provider in use (`standalone` or `corosync`).
    pub quorum_provider: String,
    /// Whether quorum is held now (within the quorum lease).
    pub quorate: bool,
    /// The fencing epoch this instance acts under (bumped by every
    /// promotion; power drivers refuse a stale one).
    pub epoch: u64,
    /// Journal records this instance holds (its replica's head).
    pub journal_head: u64,
    /// Records known durable on every member of the current view.
    pub journal_committed: u64,
    /// False while a state transfer is still running: such a replica must
    /// not be promoted.
    pub in_sync: bool,
    /// What the hactl OCF agent should give Pacemaker as this instance's
    /// promotion score (higher = more current; 0 = never promote).
    pub promotion_score: i64,
    /// For a SetRole answer: what changed, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<String>,
}
