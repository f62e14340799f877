//! The thin Corosync I/O layer: one thread owns the CPG and votequorum connections, polls their
//! descriptors, feeds what they deliver into the [`Replica`] and carries out its actions (multicast,
//! journal append + fsync). Requests from other threads reach it through a channel.
//!
//! `rust-corosync` callbacks are plain `fn` pointers that run under a crate-global lock on the
//! dispatching thread, so they only push into a process-wide channel: one [`ClusterNode`] per
//! process.
//!
//! The quorum lease is renewed by asking votequorum every `poll_interval`; checks
//! ([`ClusterNode::authorize_power`], [`ClusterNode::status`]) read shared state and never wait
//! for the I/O thread, so a hung Corosync makes them refuse once the lease expires.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rust_corosync::{cpg, votequorum, NodeId as CsNodeId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use hactl_journal::{Journal, JournalError};

use crate::lease::QuorumLease;
use crate::replica::{
    verify_chain, Action, ChainError, Entry, NodeId, ProposalId, Refusal, Replica, Role, Wire,
};

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The CPG group name.
    pub group: String,
    /// The local journal file.
    pub journal: PathBuf,
    /// Configured nodes (a view needs more than half of them).
    pub cluster_size: usize,
    /// How long a quorate answer from votequorum is trusted.
    pub quorum_lease: Duration,
    /// How often votequorum is asked (must be well below the lease).
    pub poll_interval: Duration,
    /// How long a newly active member waits before it may act: at least the time Corosync needs
    /// to tell a cut-off former active that it lost the ring (token + consensus timeouts), so that
    /// it has stopped before the new one starts.
    pub takeover_grace: Duration,
}

/// Errors of the I/O layer.
#[derive(Debug, Error)]
pub enum NodeError {
    /// A Corosync library call failed.
    #[error("corosync {call} failed: {err:?} (is corosync running, and are we in its network and mount namespace?)")]
    Corosync {
        /// The call.
        call: &'static str,
        /// Its error.
        err: rust_corosync::CsError,
    },
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The local journal is not a valid replicated log.
    #[error("journal {path}: {err}")]
    Chain {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        err: ChainError,
    },
    /// The replica refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A proposal was delivered but not accepted by the group.
    #[error("proposal {0} was not accepted by the group (epoch or view changed)")]
    Rejected(ProposalId),
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The configuration cannot work.
    #[error("invalid cluster node configuration: {0}")]
    Config(&'static str),
    /// Only one node per process (callbacks are global).
    #[error("a ClusterNode already runs in this process")]
    AlreadyRunning,
    /// The I/O thread stopped.
    #[error("the cluster I/O thread has stopped: {0}")]
    Stopped(String),
}

fn cs(call: &'static str) -> impl Fn(rust_corosync::CsError) -> NodeError {
    move |err| NodeError::Corosync { call, err }
}

/// A snapshot of the node's state, for status and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// This node.
    pub node: NodeId,
    /// Its role.
    pub role: Role,
    /// The fencing epoch.
    pub epoch: u64,
    /// The node the log names active.
    pub active: Option<NodeId>,
    /// Last log position (in memory; its write may still be under way).
    pub head: u64,
    /// Last log position written and fsync'ed to the local journal.
    pub written: u64,
    /// Last log position written by a majority of the configured nodes.
    pub committed: u64,
    /// CPG view.
    pub members: Vec<NodeId>,
    /// Whether a view change is being synchronised.
    pub syncing: bool,
    /// Quorate within the lease.
    pub quorate: bool,
    /// The nodes votequorum last reported in this node's partition.
    pub quorum_members: Vec<NodeId>,
    /// Bytes in the local journal file.
    pub journal_bytes: u64,
    /// The log's first position (1, or the last snapshot's after a compaction).
    pub first_seq: u64,
}

enum CpgEvent {
    Deliver(NodeId, Vec<u8>),
    View(Vec<NodeId>),
    Quorum(bool),
    QuorumMembers(Vec<NodeId>),
}

static EVENTS: Mutex<Option<Sender<CpgEvent>>> = Mutex::new(None);
static RUNNING: AtomicBool = AtomicBool::new(false);

fn push(ev: CpgEvent) {
    if let Some(tx) = EVENTS.lock().expect("events lock").as_ref() {
        let _ = tx.send(ev);
    }
}

fn on_deliver(_h: &cpg::Handle, _g: String, node: CsNodeId, _pid: u32, msg: &[u8], len: usize) {
    push(CpgEvent::Deliver(
        u32::from(node),
        msg[..len.min(msg.len())].to_vec(),
    ));
}

fn on_confchg(
    _h: &cpg::Handle,
    _g: &str,
    members: Vec<cpg::Address>,
    _left: Vec<cpg::Address>,
    _joined: Vec<cpg::Address>,
) {
    let mut ids: Vec<NodeId> = members.iter().map(|a| u32::from(a.nodeid)).collect();
    ids.sort_unstable();
    ids.dedup();
    push(CpgEvent::View(ids));
}

fn on_quorum(_h: &votequorum::Handle, _c: u64, quorate: bool, _nodes: Vec<votequorum::Node>) {
    push(CpgEvent::Quorum(quorate));
}

fn on_nodelist(_h: &votequorum::Handle, _c: u64, _ring: votequorum::RingId, nodes: Vec<CsNodeId>) {
    let mut ids: Vec<NodeId> = nodes.into_iter().map(u32::from).collect();
    ids.sort_unstable();
    push(CpgEvent::QuorumMembers(ids));
}

enum Request {
    Promote(Sender<Result<(), NodeError>>),
    Propose(String, Sender<Result<u64, NodeError>>),
    Snapshot(u64, String, Sender<Result<u64, NodeError>>),
}

struct Shared {
    journal_path: PathBuf,
    /// Bytes in the journal file (kept by the I/O thread after every write).
    journal_bytes: std::sync::atomic::AtomicU64,
    replica: Mutex<Replica>,
    /// When this member last became Active (None while not Active).
    active_since: Mutex<Option<Instant>>,
    takeover_grace: Duration,
    lease: Mutex<QuorumLease>,
    quorum_members: Mutex<Vec<NodeId>>,
    stop: AtomicBool,
    failure: Mutex<Option<String>>,
}

/// A running member of the replication group.
pub struct ClusterNode {
    shared: Arc<Shared>,
    requests: Sender<Request>,
    thread: Option<JoinHandle<()>>,
}

impl ClusterNode {
    /// Opens the journal, connects to Corosync (CPG and votequorum), joins the group and starts
    /// the I/O thread. The node is `Joining` until its first view is in sync.
    pub fn start(cfg: NodeConfig) -> Result<ClusterNode, NodeError> {
        if cfg.poll_interval >= cfg.quorum_lease {
            return Err(NodeError::Config(
                "poll_interval must be below quorum_lease (polling renews the lease)",
            ));
        }
        if cfg.cluster_size == 0 {
            return Err(NodeError::Config("cluster_size must be at least 1"));
        }
        if RUNNING.swap(true, Ordering::SeqCst) {
            return Err(NodeError::AlreadyRunning);
        }
        let started = Self::start_inner(cfg);
        if started.is_err() {
            *EVENTS.lock().expect("events lock") = None;
            RUNNING.store(false, Ordering::SeqCst);
        }
        started
    }

    fn start_inner(cfg: NodeConfig) -> Result<ClusterNode, NodeError> {
        let (ev_tx, ev_rx) = mpsc::channel();
        *EVENTS.lock().expect("events lock") = Some(ev_tx);

        let model = cpg::ModelData::ModelV1(cpg::Model1Data {
            flags: cpg::Model1Flags::None,
            deliver_fn: Some(on_deliver),
            confchg_fn: Some(on_confchg),
            totem_confchg_fn: None,
        });
        let cpg_h = cpg::initialize(&model, 0).map_err(cs("cpg_initialize"))?;
        let me = u32::from(cpg::local_get(&cpg_h).map_err(cs("cpg_local_get"))?);
        let vq_h = votequorum::initialize(&votequorum::Callbacks {
            quorum_notification_fn: Some(on_quorum),
            nodelist_notification_fn: Some(on_nodelist),
            expectedvotes_notification_fn: None,
        })
        .map_err(cs("votequorum_initialize"))?;
        votequorum::trackstart(&vq_h, 0, rust_corosync::TrackFlags::Changes)
            .map_err(cs("votequorum_trackstart"))?;

        // Only once Corosync answered: a node that cannot run leaves no journal behind.
        let (journal, replay) = Journal::open::<Entry>(&cfg.journal)?;
        verify_chain(&replay.records).map_err(|err| NodeError::Chain {
            path: cfg.journal.clone(),
            err,
        })?;
        let shared = Arc::new(Shared {
            journal_path: cfg.journal.clone(),
            journal_bytes: std::sync::atomic::AtomicU64::new(journal.len()),
            replica: Mutex::new(Replica::new(me, cfg.cluster_size, replay.records)),
            active_since: Mutex::new(None),
            takeover_grace: cfg.takeover_grace,
            lease: Mutex::new(QuorumLease::new(cfg.quorum_lease)),
            quorum_members: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
        });
        cpg::join(&cpg_h, &cfg.group).map_err(cs("cpg_join"))?;

        let (req_tx, req_rx) = mpsc::channel();
        let io = IoLoop {
            shared: shared.clone(),
            cpg: cpg_h,
            vq: vq_h,
            me,
            journal,
            events: ev_rx,
            requests: req_rx,
            proposals: HashMap::new(),
            poll_interval: cfg.poll_interval,
        };
        let thread = std::thread::Builder::new()
            .name("hactl-cluster-io".into())
            .spawn(move || io.run())
            .map_err(|e| NodeError::Stopped(e.to_string()))?;
        Ok(ClusterNode {
            shared,
            requests: req_tx,
            thread: Some(thread),
        })
    }

    /// The node's state now (never waits for Corosync).
    pub fn status(&self) -> NodeStatus {
        let quorate = self
            .shared
            .lease
            .lock()
            .expect("lease lock")
            .is_quorate(Instant::now());
        let quorum_members = self
            .shared
            .quorum_members
            .lock()
            .expect("quorum members lock")
            .clone();
        let r = self.shared.replica.lock().expect("replica lock");
        NodeStatus {
            quorum_members,
            node: r.me(),
            role: r.role(),
            epoch: r.epoch(),
            active: r.active(),
            head: r.head(),
            written: r.written(),
            committed: r.committed(),
            members: r.members().iter().copied().collect(),
            syncing: r.syncing(),
            quorate,
            journal_bytes: self.shared.journal_bytes.load(Ordering::SeqCst),
            first_seq: r.first_seq(),
        }
    }

    /// The local journal file of the replicated log.
    pub fn journal_path(&self) -> PathBuf {
        self.shared.journal_path.clone()
    }

    /// The replicated log as held locally.
    pub fn log(&self) -> Vec<Entry> {
        self.shared
            .replica
            .lock()
            .expect("replica lock")
            .log()
            .to_vec()
    }

    /// The check a power request carrying `epoch` passes before any BMC is touched.
    pub fn authorize_power(&self, epoch: u64) -> Result<(), Refusal> {
        let quorate = self
            .shared
            .lease
            .lock()
            .expect("lease lock")
            .is_quorate(Instant::now());
        self.shared
            .replica
            .lock()
            .expect("replica lock")
            .authorize_power(epoch, quorate)?;
        let since = *self.shared.active_since.lock().expect("active_since lock");
        let elapsed = since.map_or(Duration::ZERO, |t| t.elapsed());
        if elapsed < self.shared.takeover_grace {
            return Err(Refusal::TakeoverGrace {
                elapsed_ms: elapsed.as_millis() as u64,
                grace_ms: self.shared.takeover_grace.as_millis() as u64,
            });
        }
        Ok(())
    }

    fn ask<T>(
        &self,
        make: impl FnOnce(Sender<Result<T, NodeError>>) -> Request,
        timeout: Duration,
    ) -> Result<T, NodeError> {
        if let Some(f) = self.shared.failure.lock().expect("failure lock").clone() {
            return Err(NodeError::Stopped(f));
        }
        let (tx, rx) = mpsc::channel();
        self.requests
            .send(make(tx))
            .map_err(|_| NodeError::Stopped("request channel closed".into()))?;
        match rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(NodeError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => {
                Err(NodeError::Stopped("I/O thread dropped the request".into()))
            }
        }
    }

    /// Claims the active role; returns once the claim was multicast (the role changes when the
    /// group accepts it: watch [`ClusterNode::status`]).
    pub fn promote(&self, timeout: Duration) -> Result<(), NodeError> {
        self.ask(Request::Promote, timeout)
    }

    /// Replicates one record; returns its log position once it is durable (written by a majority
    /// of the configured nodes).
    pub fn propose(&self, payload: String, timeout: Duration) -> Result<u64, NodeError> {
        self.ask(|tx| Request::Propose(payload, tx), timeout)
    }

    /// Compacts the replicated log: proposes one snapshot entry carrying `state`, which must be
    /// what the log's entries up to `head` amount to (the group refuses it if the log no longer
    /// ends at `head`). Returns the snapshot's log position once it is durable; every member
    /// that writes it has replaced its journal by it.
    pub fn propose_snapshot(
        &self,
        head: u64,
        state: String,
        timeout: Duration,
    ) -> Result<u64, NodeError> {
        self.ask(|tx| Request::Snapshot(head, state, tx), timeout)
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        *EVENTS.lock().expect("events lock") = None;
        RUNNING.store(false, Ordering::SeqCst);
    }
}

struct IoLoop {
    shared: Arc<Shared>,
    cpg: cpg::Handle,
    vq: votequorum::Handle,
    me: NodeId,
    journal: Journal,
    events: Receiver<CpgEvent>,
    requests: Receiver<Request>,
    proposals: HashMap<ProposalId, Sender<Result<u64, NodeError>>>,
    poll_interval: Duration,
}

impl IoLoop {
    fn run(mut self) {
        if let Err(e) = self.run_inner() {
            *self.shared.failure.lock().expect("failure lock") = Some(e.to_string());
            // Nothing this instance knows may be trusted any more.
            self.shared
                .lease
                .lock()
                .expect("lease lock")
                .observe(Instant::now(), false);
        }
    }

    fn run_inner(&mut self) -> Result<(), NodeError> {
        let cpg_fd = cpg::fd_get(&self.cpg).map_err(cs("cpg_fd_get"))?;
        let vq_fd = votequorum::fd_get(&self.vq).map_err(cs("votequorum_fd_get"))?;
        let mut next_poll = Instant::now();
        while !self.shared.stop.load(Ordering::SeqCst) {
            let mut fds = [
                libc::pollfd {
                    fd: cpg_fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: vq_fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: fds is a valid array of two pollfd for the duration of the call.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, 20) };
            if fds[0].revents != 0 {
                cpg::dispatch(&self.cpg, rust_corosync::DispatchFlags::All)
                    .map_err(cs("cpg_dispatch"))?;
            }
            if fds[1].revents != 0 {
                votequorum::dispatch(&self.vq, rust_corosync::DispatchFlags::All)
                    .map_err(cs("votequorum_dispatch"))?;
            }
            if Instant::now() >= next_poll {
                // Renew the lease with a fresh answer; a call that hangs lets it expire.
                let info = votequorum::get_info(&self.vq, CsNodeId::from(self.me))
                    .map_err(cs("votequorum_getinfo"))?;
                let quorate = info
                    .flags
                    .contains(votequorum::NodeInfoFlags::VOTEQUORUM_INFO_QUORATE);
                self.observe_quorum(quorate);
                next_poll = Instant::now() + self.poll_interval;
            }
            while let Ok(ev) = self.events.try_recv() {
                let actions = {
                    let mut r = self.shared.replica.lock().expect("replica lock");
                    match ev {
                        CpgEvent::Deliver(from, bytes) => match serde_json::from_slice(&bytes) {
                            Ok(msg) => r.deliver(from, msg),
                            // Not ours (or a newer version's): every member ignores it alike.
                            Err(_) => Vec::new(),
                        },
                        CpgEvent::View(members) => r.view_changed(members),
                        CpgEvent::Quorum(q) => {
                            drop(r);
                            self.observe_quorum(q);
                            Vec::new()
                        }
                        CpgEvent::QuorumMembers(m) => {
                            *self
                                .shared
                                .quorum_members
                                .lock()
                                .expect("quorum members lock") = m;
                            Vec::new()
                        }
                    }
                };
                self.execute(actions)?;
            }
            // Everything delivered so far is written and fsync'ed: say so (one message per batch).
            let report = self
                .shared
                .replica
                .lock()
                .expect("replica lock")
                .report_written();
            self.execute(report)?;
            while let Ok(req) = self.requests.try_recv() {
                match req {
                    Request::Promote(reply) => {
                        let r = self.shared.replica.lock().expect("replica lock").promote();
                        match r {
                            Ok(actions) => {
                                self.execute(actions)?;
                                let _ = reply.send(Ok(()));
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e.into()));
                            }
                        }
                    }
                    Request::Propose(payload, reply) => {
                        let r = self.replica().propose(payload);
                        self.start_proposal(r, reply)?;
                    }
                    Request::Snapshot(head, state, reply) => {
                        let r = self.replica().propose_snapshot(head, state);
                        self.start_proposal(r, reply)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn replica(&self) -> std::sync::MutexGuard<'_, Replica> {
        self.shared.replica.lock().expect("replica lock")
    }

    /// Multicasts an accepted local proposal (its caller is answered once it is durable or
    /// rejected), or answers a refused one at once.
    fn start_proposal(
        &mut self,
        r: Result<(ProposalId, Vec<Action>), Refusal>,
        reply: Sender<Result<u64, NodeError>>,
    ) -> Result<(), NodeError> {
        match r {
            Ok((id, actions)) => {
                self.proposals.insert(id, reply);
                self.execute(actions)
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                Ok(())
            }
        }
    }

    fn note_journal_bytes(&self) {
        self.shared
            .journal_bytes
            .store(self.journal.len(), Ordering::SeqCst);
    }

    fn observe_quorum(&self, quorate: bool) {
        self.shared
            .lease
            .lock()
            .expect("lease lock")
            .observe(Instant::now(), quorate);
    }

    fn execute(&mut self, actions: Vec<Action>) -> Result<(), NodeError> {
        for a in actions {
            match a {
                Action::Multicast(msg) => {
                    let bytes = serde_json::to_vec(&msg).expect("wire message encodes");
                    self.mcast(&msg, &bytes)?;
                }
                Action::Append(e) => {
                    self.journal.append(&e)?;
                    self.note_journal_bytes();
                }
                Action::Compact(e) => {
                    // Atomic (temporary file, fsync, rename, directory fsync): a crash leaves
                    // either the old log or the compacted one, both valid.
                    self.journal.rewrite(std::slice::from_ref(&e))?;
                    self.note_journal_bytes();
                }
                Action::Replace { .. } => {
                    let log = self
                        .shared
                        .replica
                        .lock()
                        .expect("replica lock")
                        .log()
                        .to_vec();
                    self.journal.rewrite(&log)?;
                    self.note_journal_bytes();
                }
                Action::Durable { proposal, seq } => {
                    if let Some(tx) = self.proposals.remove(&proposal) {
                        let _ = tx.send(Ok(seq));
                    }
                }
                Action::Rejected { proposal } => {
                    if let Some(tx) = self.proposals.remove(&proposal) {
                        let _ = tx.send(Err(NodeError::Rejected(proposal)));
                    }
                }
                Action::RoleChanged(role) => {
                    *self.shared.active_since.lock().expect("active_since lock") =
                        (role == Role::Active).then(Instant::now);
                }
            }
        }
        Ok(())
    }

    fn mcast(&self, _msg: &Wire, bytes: &[u8]) -> Result<(), NodeError> {
        // CS_ERR_TRY_AGAIN is flow control: retry briefly, it clears as the ring drains.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match cpg::mcast_joined(&self.cpg, cpg::Guarantee::TypeAgreed, bytes) {
                Ok(()) => return Ok(()),
                Err(rust_corosync::CsError::CsErrTryAgain) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(err) => {
                    return Err(NodeError::Corosync {
                        call: "cpg_mcast_joined",
                        err,
                    })
                }
            }
        }
    }
}
