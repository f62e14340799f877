//! Coordinator roles: which `hactl-kvm run` instance drives the core and may act.
//!
//! * `standalone` (default): the instance is active from the start, its journal is a local file;
//!   exactly as before roles existed. With `run --standby` it starts standby (the core is not
//!   driven, nothing acts) until promoted: promote = recover the core from the local journal (a
//!   new coordinator epoch, the startup grace) and act; demote = stop acting.
//! * `corosync`: every instance starts standby and joins the CPG group of `[cluster]` through
//!   `hactl_cluster::ClusterNode`, which keeps its replica of the group's journal. Promote = claim
//!   a new fencing epoch in the group, then (once the group confirmed it) recover the core from the
//!   replica and act; the core's `Persist` records go through `ClusterNode::propose` and count as
//!   done only once durable (delivered back through CPG and written by a majority). Demote, a lost
//!   epoch or a record that did not become durable = stop acting.
//!
//! Whatever the mode, every power action passes [`PowerGate::authorize`] right before the driver
//! touches a BMC: this instance is acting and, with Corosync, `ClusterNode::authorize_power` of
//! the fencing epoch it was promoted in (active in the replica, quorate within the lease, majority
//! view, no sync round open, take-over grace over).

use super::{Daemon, DaemonError};
use crate::clock::now_ms;
use crate::config::{QuorumProvider, RuntimeConfig};
use crate::handoff::{HandoffRecord, Handoffs};
use crate::power::PowerError;
use cloudstack_api::inventory::IdMap;
use hactl_cluster::{
    ClusterNode, Entry, EntryBody, NodeConfig, NodeError, Refusal, Role as ReplicaRole,
};
use hactl_core::{Coordinator, Input, Record};
use hactl_journal::Journal;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The replicated journal's file in the journal directory (`corosync` mode).
pub const REPLICA_FILE: &str = "replica.journal";

/// How `hactl-kvm run` was told to start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// Start as standby (always so with `quorum = "corosync"`).
    pub standby: bool,
}

/// Where the core's journal records go.
pub enum CoreJournal {
    /// A local file (`standalone`).
    Local(Journal),
    /// The CPG group's replicated journal (`corosync`).
    Replicated {
        /// The group member.
        node: Arc<ClusterNode>,
        /// How long a record may take to become durable.
        timeout: Duration,
        /// Closed when a side record (hand-off, id map) was not durable.
        gate: Arc<PowerGate>,
    },
}

/// What the replicated log carries besides the core's records: everything a promoted standby
/// needs to carry on where the former active stopped.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum SideRecord {
    /// A VM-HA hand-off step (the local `handoff.journal` of standalone mode).
    Handoff(HandoffRecord),
    /// The CloudStack uuid -> core id map the records' ids refer to (`ids.json`).
    Ids(IdMap),
}

/// What a snapshot entry of the replicated log holds (it replaces every entry before it): the
/// core's compact records, one hand-off record per host with a hand-off in progress, and the
/// last id map. Reading it gives what [`replicated`] would have read from the entries it replaced.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct SnapshotState {
    core: Vec<Record>,
    handoffs: Vec<HandoffRecord>,
    ids: Option<IdMap>,
}

/// Proposes until durable or `timeout`: a proposal refused or rejected because a view change is
/// being synchronised (a member joined or left) is proposed again once the round closed; it was
/// not accepted, so it is not in the log twice.
fn propose_durable(node: &ClusterNode, payload: String, timeout: Duration) -> Result<u64, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match node.propose(payload.clone(), left) {
            Ok(seq) => return Ok(seq),
            Err(NodeError::Refused(Refusal::Syncing)) | Err(NodeError::Rejected(_))
                if Instant::now() + Duration::from_millis(20) < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Proposes a side record; when it is not durable the instance stops acting (the gate closes at
/// once, the next role tick turns it standby).
fn propose_side(node: &ClusterNode, timeout: Duration, gate: &PowerGate, rec: &SideRecord) {
    let payload = serde_json::to_string(rec).expect("side records serialise");
    if let Err(e) = propose_durable(node, payload, timeout) {
        tracing::error!("replicated {rec:?} not durable: {e}; this instance stops acting");
        gate.set(false, 0);
    }
}

/// Where hand-off records go.
pub enum HandoffJournal {
    /// A local file (`standalone`).
    Local(Journal),
    /// The replicated log (`corosync`).
    Replicated {
        /// The group member.
        node: Arc<ClusterNode>,
        /// How long a record may take to become durable.
        timeout: Duration,
        /// Closed when a record was not durable.
        gate: Arc<PowerGate>,
    },
}

impl HandoffJournal {
    /// Appends a hand-off record (replicated: see [`propose_side`]).
    pub fn append(&mut self, rec: &HandoffRecord) -> Result<(), DaemonError> {
        match self {
            HandoffJournal::Local(j) => Ok(j.append(rec)?),
            HandoffJournal::Replicated {
                node,
                timeout,
                gate,
            } => {
                propose_side(node, *timeout, gate, &SideRecord::Handoff(rec.clone()));
                Ok(())
            }
        }
    }
}

impl CoreJournal {
    /// Appends a record: fsync'ed locally, or durable in the group. A replicated record that is
    /// not durable in time is [`DaemonError::NotDurable`]: the caller stops acting.
    pub fn append(&mut self, record: &Record) -> Result<(), DaemonError> {
        match self {
            CoreJournal::Local(j) => Ok(j.append(record)?),
            CoreJournal::Replicated { node, timeout, .. } => {
                let payload = serde_json::to_string(record).expect("records serialise");
                propose_durable(node, payload, *timeout)
                    .map(|_| ())
                    .map_err(DaemonError::NotDurable)
            }
        }
    }

    /// Bytes in the journal file (the local replica's file in `corosync` mode).
    pub fn len(&self) -> u64 {
        match self {
            CoreJournal::Local(j) => j.len(),
            CoreJournal::Replicated { node, .. } => node.status().journal_bytes,
        }
    }

    /// Whether this is the group's replicated journal.
    pub fn replicated(&self) -> bool {
        matches!(self, CoreJournal::Replicated { .. })
    }

    /// Replicates a changed id map while acting (`corosync`; standalone keeps `ids.json` only).
    pub fn replicate_ids(&self, ids: &IdMap, acting: bool) {
        if let (
            CoreJournal::Replicated {
                node,
                timeout,
                gate,
            },
            true,
        ) = (self, acting)
        {
            propose_side(node, *timeout, gate, &SideRecord::Ids(ids.clone()));
        }
    }

    /// The journal file (the replica's file in `corosync` mode).
    pub fn path(&self) -> std::path::PathBuf {
        match self {
            CoreJournal::Local(j) => j.path().to_path_buf(),
            CoreJournal::Replicated { node, .. } => node.journal_path(),
        }
    }

    /// Every core record held, in order.
    pub fn records(&self) -> Result<Vec<Record>, String> {
        match self {
            CoreJournal::Local(j) => Ok(hactl_journal::inspect::<Record>(j.path())
                .map_err(|e| e.to_string())?
                .records
                .into_iter()
                .map(|(_, r)| r)
                .collect()),
            CoreJournal::Replicated { node, .. } => Ok(replicated(node)?.0),
        }
    }

    /// No bytes (see [`CoreJournal::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Compaction: replaces the records by `records`, the core's compact records. Standalone:
    /// an atomic rewrite of the local file. Replicated: a snapshot of the group's log at its head
    /// (these records, the hand-offs still in progress and the last id map, as the log holds
    /// them), proposed to the group; every member replaces its log by it once written. The
    /// caller guarantees that every record the core persisted is durable, so `records` are what
    /// the log up to its head amounts to. A snapshot that did not become durable is
    /// [`DaemonError::NotCompacted`].
    pub fn rewrite(&mut self, records: &[Record]) -> Result<(), DaemonError> {
        match self {
            CoreJournal::Local(j) => Ok(j.rewrite(records)?),
            CoreJournal::Replicated { node, timeout, .. } => {
                let log = node.log();
                let head = log.last().map_or(0, |e| e.seq);
                let state = snapshot_state(records, &log).map_err(DaemonError::NotCompacted)?;
                node.propose_snapshot(head, state, *timeout)
                    .map(|_| ())
                    .map_err(|e| DaemonError::NotCompacted(e.to_string()))
            }
        }
    }
}

/// The snapshot of `log` for the core's compact `records`: the hand-offs still in progress and
/// the last id map as the log holds them.
fn snapshot_state(records: &[Record], log: &[Entry]) -> Result<String, String> {
    let (_, handoffs, ids) = read_log(log)?;
    let state = SnapshotState {
        core: records.to_vec(),
        handoffs: Handoffs::replay(&handoffs).compact_records(),
        ids,
    };
    Ok(serde_json::to_string(&state).expect("snapshot state serialises"))
}

/// The core's records, the hand-off records and the last id map of a replicated log.
type Replicated = (Vec<Record>, Vec<HandoffRecord>, Option<IdMap>);

/// What the replica's log holds, in log order: the core's records, the hand-off records and the
/// last id map.
fn replicated(node: &ClusterNode) -> Result<Replicated, String> {
    read_log(&node.log())
}

/// [`replicated`] of a given log: a snapshot entry (the first of a compacted log) gives what the
/// entries it replaced held, the entries after it add to that. A snapshot this version cannot
/// read is an error: the core's state, fences included, is in it, and recovering without it
/// could fence again what was fenced.
fn read_log(log: &[Entry]) -> Result<Replicated, String> {
    let mut records = Vec::new();
    let mut handoffs = Vec::new();
    let mut ids = None;
    for e in log {
        let payload = match &e.body {
            EntryBody::Record { payload } => payload,
            EntryBody::Snapshot { state, .. } => {
                let s = serde_json::from_str::<SnapshotState>(state).map_err(|err| {
                    format!(
                        "the replicated snapshot at seq {} is not readable: {err}",
                        e.seq
                    )
                })?;
                records = s.core;
                handoffs = s.handoffs;
                ids = s.ids;
                continue;
            }
            EntryBody::Epoch { .. } | EntryBody::Confirm => continue,
        };
        if let Ok(r) = serde_json::from_str::<Record>(payload) {
            records.push(r);
            continue;
        }
        match serde_json::from_str::<SideRecord>(payload) {
            Ok(SideRecord::Handoff(h)) => handoffs.push(h),
            Ok(SideRecord::Ids(m)) => ids = Some(m),
            // A newer version's record: every member skips it alike.
            Err(e) => tracing::error!("replicated record not readable, skipped: {e}"),
        }
    }
    Ok((records, handoffs, ids))
}

/// The check every power action passes right before a BMC is touched.
#[derive(Default)]
pub struct PowerGate {
    acting: AtomicBool,
    /// The fencing epoch this instance was promoted in (`corosync` only).
    epoch: AtomicU64,
    node: Option<Arc<ClusterNode>>,
}

impl PowerGate {
    /// Passes only while this instance acts, and with Corosync only what
    /// `ClusterNode::authorize_power` passes for the epoch it acts in.
    pub fn authorize(&self) -> Result<(), PowerError> {
        if !self.acting.load(Ordering::SeqCst) {
            return Err(PowerError::NotAuthorized(
                "this coordinator instance is standby".into(),
            ));
        }
        if let Some(node) = &self.node {
            node.authorize_power(self.epoch.load(Ordering::SeqCst))
                .map_err(|r| PowerError::NotAuthorized(r.to_string()))?;
        }
        Ok(())
    }

    fn set(&self, acting: bool, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
        self.acting.store(acting, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoleState {
    Standby,
    /// A claim was multicast; waiting for the group to confirm an epoch above `prev_epoch`.
    Promoting {
        prev_epoch: u64,
        since: Instant,
    },
    /// Drives the core (in fencing epoch `epoch` with Corosync; 0 standalone).
    Active {
        epoch: u64,
    },
}

/// This instance's role and its quorum provider.
pub struct Roles {
    node: Option<Arc<ClusterNode>>,
    gate: Arc<PowerGate>,
    state: RoleState,
    promote_timeout: Duration,
    /// Whether the power gate passed at the last role tick (logs the moment it stops).
    could_act: bool,
    last_quorate: bool,
    /// The replica's first log position last seen: it moves when the log is compacted (by this
    /// instance or, on a standby, by the active), which status reports as the last compaction.
    seen_first_seq: u64,
}

/// What a role report says (the control socket's `Role` answer is built from it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleStatus {
    /// `active` or `standby` (a promotion under way is still standby).
    pub active: bool,
    /// `standalone` or `corosync`.
    pub quorum_provider: &'static str,
    /// Quorate now (Corosync: within the lease; standalone: the API answers).
    pub quorate: bool,
    /// The fencing epoch (Corosync: the group's; standalone: the core's).
    pub epoch: u64,
    /// Records held (the replica's head; standalone: 0).
    pub journal_head: u64,
    /// Records written by a majority (standalone: 0).
    pub journal_committed: u64,
    /// False while the replica is joining or a sync round is open.
    pub in_sync: bool,
    /// The promotion score for Pacemaker (0 = never promote this one).
    pub promotion_score: i64,
    /// Whether a power action would pass the gate now.
    pub may_act: bool,
    /// The node the group names active (Corosync).
    pub active_node: Option<u32>,
    /// This node's Corosync node id (Corosync).
    pub node_id: Option<u32>,
}

/// Why a role change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// The replica is still catching up.
    #[error("not promoted: the journal replica is still syncing (state transfer or sync round under way); try again when in_sync is true")]
    Syncing,
    /// No quorum.
    #[error("not promoted: not quorate ({0})")]
    NotQuorate(String),
    /// The group refused or did not answer.
    #[error("not promoted: {0}")]
    Refused(String),
    /// The daemon is stopping.
    #[error("the daemon is stopping")]
    Stopping,
}

impl Roles {
    /// Opens the core's journal for the configured provider. Returns the roles, the journal, the
    /// records to rebuild the core from and whether to act at once.
    pub(super) fn open(
        cfg: &RuntimeConfig,
        dir: &Path,
        opts: StartOptions,
    ) -> Result<(Roles, CoreJournal, Vec<Record>, bool), DaemonError> {
        match cfg.daemon.quorum {
            QuorumProvider::Standalone => {
                let (journal, replay) = Journal::open::<Record>(dir.join(super::JOURNAL_FILE))?;
                if let Some(t) = replay.torn_tail {
                    tracing::warn!(
                        "journal: cut off a torn last record at byte {} ({} bytes) from a crash",
                        t.offset,
                        t.bytes
                    );
                }
                tracing::warn!(
                    "quorum provider `standalone`: this coordinator has no quorum but its own; run exactly one per CloudStack (a second one on another machine would fence independently)"
                );
                let act = !opts.standby;
                let gate = Arc::new(PowerGate::default());
                gate.set(act, 0);
                let roles = Roles {
                    node: None,
                    gate,
                    state: if act {
                        RoleState::Active { epoch: 0 }
                    } else {
                        RoleState::Standby
                    },
                    promote_timeout: Duration::from_secs(10),
                    could_act: act,
                    last_quorate: true,
                    seen_first_seq: 0,
                };
                if !act {
                    tracing::warn!("started as standby: the core is not driven and nothing acts until promoted");
                }
                Ok((roles, CoreJournal::Local(journal), replay.records, act))
            }
            QuorumProvider::Corosync => {
                let c = &cfg.cluster;
                // Refused before joining the group: a majority counted against the wrong size,
                // or a grace shorter than Corosync's split detection, voids the safety argument.
                let facts = hactl_cluster::corosync_conf::read()
                    .map_err(|e| DaemonError::Cluster(e.to_string()))?;
                hactl_cluster::corosync_conf::check(
                    c.cluster_size,
                    Duration::from_millis(c.takeover_grace_ms),
                    &facts,
                )
                .map_err(|e| DaemonError::Cluster(e.to_string()))?;
                if facts.two_node {
                    tracing::warn!(
                        "Corosync runs two_node: votequorum keeps a lone survivor quorate, but the \
                         replicated journal needs a majority of 2, i.e. both: while either node \
                         is down nothing is fenced"
                    );
                }
                let node = ClusterNode::start(NodeConfig {
                    group: c.group.clone(),
                    journal: dir.join(REPLICA_FILE),
                    cluster_size: c.cluster_size,
                    quorum_lease: Duration::from_millis(c.quorum_lease_ms),
                    poll_interval: Duration::from_millis(c.poll_interval_ms),
                    takeover_grace: Duration::from_millis(c.takeover_grace_ms),
                })
                .map_err(|e| DaemonError::Cluster(e.to_string()))?;
                let me = node.status().node;
                if c.node_id != 0 && c.node_id != me {
                    return Err(DaemonError::Cluster(format!(
                        "[cluster] node_id is {} but the local Corosync says this node is {me}",
                        c.node_id
                    )));
                }
                tracing::info!(
                    "quorum provider `corosync`: node {me} of {}, CPG group {:?}; standby until promoted",
                    c.cluster_size,
                    c.group
                );
                let node = Arc::new(node);
                let gate = Arc::new(PowerGate {
                    node: Some(node.clone()),
                    ..PowerGate::default()
                });
                let roles = Roles {
                    node: Some(node.clone()),
                    gate,
                    state: RoleState::Standby,
                    promote_timeout: Duration::from_millis(
                        c.propose_timeout_ms.max(1000) * 2 + c.takeover_grace_ms,
                    ),
                    could_act: false,
                    last_quorate: false,
                    seen_first_seq: node.status().first_seq,
                };
                let journal = CoreJournal::Replicated {
                    node,
                    timeout: Duration::from_millis(c.propose_timeout_ms),
                    gate: roles.gate.clone(),
                };
                Ok((roles, journal, Vec::new(), false))
            }
        }
    }

    /// Opens the hand-off journal: the local file, or (`corosync`) the replicated log, from
    /// which a promotion reads the hand-offs back.
    pub(super) fn open_handoffs(
        &self,
        cfg: &RuntimeConfig,
        dir: &Path,
    ) -> Result<(HandoffJournal, Handoffs), DaemonError> {
        match &self.node {
            None => {
                let (j, replay) = Journal::open::<HandoffRecord>(dir.join(super::HANDOFF_FILE))?;
                Ok((HandoffJournal::Local(j), Handoffs::replay(&replay.records)))
            }
            Some(node) => Ok((
                HandoffJournal::Replicated {
                    node: node.clone(),
                    timeout: Duration::from_millis(cfg.cluster.propose_timeout_ms),
                    gate: self.gate.clone(),
                },
                Handoffs::replay(&[]),
            )),
        }
    }

    /// Whether this instance drives the core now.
    pub fn acting(&self) -> bool {
        matches!(self.state, RoleState::Active { .. })
    }

    /// The gate the power tasks check.
    pub fn gate(&self) -> Arc<PowerGate> {
        self.gate.clone()
    }

    /// Whether the provider says quorate (standalone: always; the API check is the daemon's).
    fn provider_quorate(&self) -> bool {
        self.node.as_ref().map_or(true, |n| n.status().quorate)
    }

    /// Whether the core's quorum lease is to be renewed now: acting and quorate.
    pub fn renews_quorum(&self) -> bool {
        self.acting() && self.provider_quorate()
    }

    /// How often the daemon runs [`Daemon::on_role_tick`].
    pub fn tick_interval(cfg: &RuntimeConfig) -> Duration {
        Duration::from_millis(cfg.cluster.poll_interval_ms.clamp(50, 1000))
    }
}

/// What a tick decided.
enum Step {
    Nothing,
    Activate {
        replicated: Box<Replicated>,
        epoch: u64,
    },
    Deactivate(String),
}

impl Daemon {
    /// Called every [`Roles::tick_interval`]: completes a promotion the group confirmed, stops
    /// acting when the group moved on, and turns a lost quorum into a core input at once.
    pub(super) fn on_role_tick(&mut self) -> Result<(), DaemonError> {
        if let Some(node) = &self.roles.node {
            let s = node.status();
            if s.first_seq != self.roles.seen_first_seq {
                self.roles.seen_first_seq = s.first_seq;
                self.last_compaction_unix_ms = Some(hactl_control::time::now_unix_ms());
                tracing::info!(
                    "replicated journal compacted: it starts at seq {} now, {} bytes",
                    s.first_seq,
                    s.journal_bytes
                );
            }
        }
        let step = self.role_step();
        match step {
            Step::Nothing => {}
            Step::Activate { replicated, epoch } => {
                let (records, handoffs, ids) = *replicated;
                // Carry on where the former active stopped: its hand-offs and its host ids.
                self.handoffs = Handoffs::replay(&handoffs);
                tracing::info!(
                    "taking over {} hand-off record(s), id map {}",
                    handoffs.len(),
                    if ids.is_some() { "replicated" } else { "local" }
                );
                self.handoff_running.clear();
                if let Some(ids) = ids {
                    super::save_ids(&self.ids_path, &ids)?;
                    self.ids = ids;
                }
                self.activate(records, epoch)?
            }
            Step::Deactivate(why) => self.deactivate(&why),
        }
        if self.roles.acting() {
            let quorate = self.api_ok && self.roles.provider_quorate();
            if quorate != self.roles.last_quorate {
                self.roles.last_quorate = quorate;
                if !quorate {
                    tracing::warn!("quorum lost: the core stops fencing");
                }
                let a = self.core.handle(now_ms(), Input::QuorumChanged { quorate });
                self.execute(a)?;
            }
            let can = self.roles.gate.authorize();
            match (&can, self.roles.could_act) {
                (Err(e), true) => tracing::warn!("power actions stopped: {e}"),
                (Ok(()), false) => tracing::info!("power actions allowed"),
                _ => {}
            }
            self.roles.could_act = can.is_ok();
        }
        Ok(())
    }

    fn role_step(&mut self) -> Step {
        let Some(node) = self.roles.node.clone() else {
            return Step::Nothing;
        };
        let s = node.status();
        match self.roles.state {
            RoleState::Standby => Step::Nothing,
            RoleState::Promoting { prev_epoch, since } => {
                if s.role == ReplicaRole::Active
                    && s.epoch > prev_epoch
                    && node.authorize_power(s.epoch).is_err()
                {
                    // The group confirmed us, but the take-over grace runs (a cut-off former
                    // active may still be stopping): the core is not driven yet, so that its
                    // start-up reads and open-fence checks run when the BMCs may be touched.
                    Step::Nothing
                } else if s.role == ReplicaRole::Active && s.epoch > prev_epoch {
                    match replicated(&node) {
                        Ok(r) => Step::Activate {
                            replicated: Box::new(r),
                            epoch: s.epoch,
                        },
                        Err(e) => {
                            // The group's epoch is ours, but the core cannot be rebuilt: acting
                            // without the state (its fences) is not safe. Stay standby.
                            self.roles.state = RoleState::Standby;
                            tracing::error!("promotion abandoned: {e}");
                            Step::Nothing
                        }
                    }
                } else if s.epoch > prev_epoch && s.active != Some(s.node) {
                    self.roles.state = RoleState::Standby;
                    tracing::warn!(
                        "promotion lost: epoch {} went to node {:?}",
                        s.epoch,
                        s.active
                    );
                    Step::Nothing
                } else if since.elapsed() > self.roles.promote_timeout {
                    self.roles.state = RoleState::Standby;
                    tracing::warn!(
                        "promotion not confirmed by the group within {:?}; still standby",
                        self.roles.promote_timeout
                    );
                    Step::Nothing
                } else {
                    Step::Nothing
                }
            }
            RoleState::Active { epoch } => {
                if !self.roles.gate.acting.load(Ordering::SeqCst) {
                    Step::Deactivate("a replicated record was not durable".into())
                } else if s.role != ReplicaRole::Active || s.epoch != epoch {
                    Step::Deactivate(format!(
                        "the group is in fencing epoch {} with node {:?} active (this node was active in {epoch}; its replica role is {:?})",
                        s.epoch, s.active, s.role
                    ))
                } else {
                    Step::Nothing
                }
            }
        }
    }

    /// Rebuilds the core from `records` (a new coordinator epoch, the startup grace) and acts.
    fn activate(&mut self, records: Vec<Record>, fencing_epoch: u64) -> Result<(), DaemonError> {
        let n = records.len();
        let (core, actions) = Coordinator::recover(self.cfg.core.clone(), records, now_ms())?;
        self.core = core;
        // The new core learns the inventory from scratch; heartbeat censuses start over.
        self.inventory = None;
        self.census.clear();
        self.roles.state = RoleState::Active {
            epoch: fencing_epoch,
        };
        self.roles.gate.set(true, fencing_epoch);
        self.roles.could_act = false;
        tracing::warn!(
            "active: coordinator epoch {} recovered from {n} journal records (fencing epoch {fencing_epoch}); startup grace {} ms before any fence",
            self.core.epoch(),
            self.cfg.core.startup_grace_ms
        );
        self.execute(actions)?;
        if self.roles.acting() {
            // The map this instance's records refer to (built while standby, or the replicated
            // one it just took over) is in the log before any record that names a new host.
            self.journal.replicate_ids(&self.ids, true);
            let quorate = self.api_ok && self.roles.provider_quorate();
            self.roles.last_quorate = quorate;
            let a = self.core.handle(now_ms(), Input::QuorumChanged { quorate });
            self.execute(a)?;
            self.spawn_inventory();
        }
        Ok(())
    }

    /// Stops acting: no core input, no power action passes the gate from now on. In-flight
    /// operations' results are dropped; a later promotion rebuilds the core from the journal.
    pub(super) fn deactivate(&mut self, why: &str) {
        if !self.roles.acting() {
            return;
        }
        self.roles.gate.set(false, 0);
        self.roles.state = RoleState::Standby;
        self.roles.could_act = false;
        tracing::warn!("standby: {why}; no power action from now on");
    }

    /// Where this instance stands.
    pub fn role_status(&self) -> RoleStatus {
        let may_act = self.roles.acting() && self.roles.gate.authorize().is_ok();
        let active = self.roles.acting();
        match &self.roles.node {
            None => RoleStatus {
                active,
                quorum_provider: "standalone",
                quorate: self.api_ok,
                epoch: u64::from(self.core.epoch()),
                journal_head: 0,
                journal_committed: 0,
                in_sync: true,
                promotion_score: if active { 1010 } else { 1000 },
                may_act,
                active_node: None,
                node_id: None,
            },
            Some(node) => {
                let s = node.status();
                let in_sync = s.role != ReplicaRole::Joining && !s.syncing;
                RoleStatus {
                    active,
                    quorum_provider: "corosync",
                    quorate: s.quorate,
                    epoch: s.epoch,
                    journal_head: s.head,
                    journal_committed: s.committed,
                    in_sync,
                    // Members in sync hold the same log; keep the active where it is.
                    promotion_score: match (in_sync, active) {
                        (false, _) => 0,
                        (true, true) => 1010,
                        (true, false) => 1000,
                    },
                    may_act,
                    active_node: s.active,
                    node_id: Some(s.node),
                }
            }
        }
    }

    /// Makes this instance active or standby. Idempotent; refuses to promote a replica that is
    /// still syncing or not quorate, and says why. A Corosync promotion completes asynchronously
    /// (the group must confirm the new epoch): watch [`Daemon::role_status`].
    pub fn change_role(&mut self, active: bool) -> Result<String, RoleError> {
        if self.stopping {
            return Err(RoleError::Stopping);
        }
        if !active {
            if !self.roles.acting() {
                if matches!(self.roles.state, RoleState::Promoting { .. }) {
                    self.roles.state = RoleState::Standby;
                    return Ok("promotion abandoned; standby".into());
                }
                return Ok("already standby".into());
            }
            self.deactivate("demoted by request");
            return Ok("demoted: standby, no power action from now on".into());
        }
        match self.roles.state {
            RoleState::Active { .. } => return Ok("already active".into()),
            RoleState::Promoting { .. } => return Ok("promotion under way".into()),
            RoleState::Standby => {}
        }
        let Some(node) = self.roles.node.clone() else {
            // Standalone: recover from the local journal with a new epoch.
            let records = self
                .journal
                .records()
                .map_err(|e| RoleError::Refused(format!("cannot read the journal: {e}")))?;
            self.activate(records, 0)
                .map_err(|e| RoleError::Refused(e.to_string()))?;
            return Ok(format!(
                "promoted: active in coordinator epoch {}",
                self.core.epoch()
            ));
        };
        let s = node.status();
        if s.role == ReplicaRole::Joining || s.syncing {
            return Err(RoleError::Syncing);
        }
        if !s.quorate {
            return Err(RoleError::NotQuorate(format!(
                "votequorum partition {:?}",
                s.quorum_members
            )));
        }
        node.promote(self.roles.promote_timeout)
            .map_err(|e| RoleError::Refused(e.to_string()))?;
        self.roles.state = RoleState::Promoting {
            prev_epoch: s.epoch,
            since: Instant::now(),
        };
        tracing::info!(
            "promotion requested: claiming fencing epoch {}",
            s.epoch + 1
        );
        Ok(format!(
            "promotion under way: claiming fencing epoch {}",
            s.epoch + 1
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_records_are_told_apart_from_core_records() {
        let h = SideRecord::Handoff(HandoffRecord::DeclareDue { host: "u1".into() });
        let p = serde_json::to_string(&h).unwrap();
        assert!(serde_json::from_str::<Record>(&p).is_err(), "{p}");
        assert!(matches!(
            serde_json::from_str::<SideRecord>(&p).unwrap(),
            SideRecord::Handoff(HandoffRecord::DeclareDue { .. })
        ));
        let r = Record::Started { epoch: 1, at: 5 };
        let p = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&p).unwrap(), r);
    }

    fn entry(seq: u64, body: EntryBody) -> Entry {
        Entry {
            seq,
            epoch: 1,
            body,
            chain: 0,
        }
    }

    fn record(r: &impl Serialize) -> EntryBody {
        EntryBody::Record {
            payload: serde_json::to_string(r).unwrap(),
        }
    }

    /// A promotion reading a compacted log gets what it would have got from the entries the
    /// snapshot replaced, then what came after it.
    #[test]
    fn a_snapshot_reads_back_as_the_entries_it_replaced() {
        let mut ids = IdMap::default();
        ids.host("uuid-a");
        ids.host("uuid-b");
        let handoff = |r: HandoffRecord| record(&SideRecord::Handoff(r));
        let host = |h: &str| h.to_string();
        let full = vec![
            entry(1, EntryBody::Epoch { active: 1 }),
            entry(2, EntryBody::Confirm),
            entry(3, record(&Record::Started { epoch: 1, at: 5 })),
            entry(4, record(&SideRecord::Ids(ids.clone()))),
            entry(5, handoff(HandoffRecord::DeclareDue { host: host("a") })),
            entry(6, handoff(HandoffRecord::Declared { host: host("a") })),
            entry(7, handoff(HandoffRecord::DeclareDue { host: host("b") })),
            entry(8, handoff(HandoffRecord::Cancelled { host: host("b") })),
            entry(9, handoff(HandoffRecord::DeclareDue { host: host("c") })),
        ];
        let (records, handoffs, full_ids) = read_log(&full).unwrap();
        let compact = vec![Record::Started { epoch: 1, at: 7 }];
        let after = Record::Started { epoch: 2, at: 9 };
        let compacted = vec![
            entry(
                10,
                EntryBody::Snapshot {
                    active: 1,
                    state: snapshot_state(&compact, &full).unwrap(),
                },
            ),
            entry(11, record(&after)),
            entry(12, handoff(HandoffRecord::CancelDue { host: host("a") })),
        ];
        let (records2, handoffs2, ids2) = read_log(&compacted).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records2, vec![compact[0].clone(), after]);
        assert_eq!(ids2, full_ids);
        assert_eq!(ids2, Some(ids));
        let mut expected = Handoffs::replay(&handoffs);
        expected.apply(&HandoffRecord::CancelDue { host: host("a") });
        assert_eq!(Handoffs::replay(&handoffs2), expected);
        assert_eq!(
            expected.hosts.len(),
            2,
            "a cancel owed, c declare owed, b done"
        );
    }

    #[test]
    fn an_unreadable_snapshot_is_an_error_not_an_empty_state() {
        let log = vec![
            entry(
                4,
                EntryBody::Snapshot {
                    active: 1,
                    state: "{\"core\": 7}".into(),
                },
            ),
            entry(5, record(&Record::Started { epoch: 2, at: 9 })),
        ];
        let err = read_log(&log).unwrap_err();
        assert!(err.contains("seq 4"), "{err}");
    }
}
