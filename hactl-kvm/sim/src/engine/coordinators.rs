//! Two or three coordinator instances (`--coordinators N`): each is a real core, a real
//! `hactl_cluster::Replica` and a local journal (the replica's entries), joined by a simulated
//! CPG (agreed order per view, virtual synchrony, views that change after Corosync's detection
//! time), a simulated votequorum behind the real `QuorumLease`, and a Pacemaker stand-in that
//! promotes the most current in-sync replica of a majority view once the active one is lost.
//!
//! The daemon rules modelled here (the I/O layer around the sans-IO replica, as the daemon will
//! do it): a core runs only on an instance whose replica became Active, recovered from the
//! records of its replicated log; the core's outputs are carried out in order and a `Persist`
//! holds everything after it until the replica reports the record durable; every power action
//! passes `Replica::authorize_power` with the instance's quorum lease and the take-over grace
//! right before it reaches a BMC, and carries the epoch the instance became active in; an
//! instance whose replica stops being Active drops its core.
//!
//! Ground truth judged at the BMCs: the power actions that land in one epoch come from one
//! instance, and fences of two instances are never in flight at the same time; every fence also
//! passes the single-coordinator invariants (quorum judged for the issuing instance).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use hactl_cluster::{
    Action, Entry, EntryBody, NodeId, ProposalId, QuorumLease, Refusal, Replica, Role, Wire,
};
use hactl_journal::MemJournal;
use rand::Rng;

use super::{Ev, Simulation};
use crate::clock::SimTime;
use crate::core_adapter::{CoreDriver, Tag};
use crate::faults::Fault;
use crate::invariants::Invariant;
use crate::protocol::{CoreOut, PowerOp};
use crate::world::HostIdx;

/// CPG delivers a message this long after it was multicast.
pub const CPG_LATENCY_MS: u64 = 2;
/// Corosync notices a network split or merge after token loss and consensus (measured 3.6 s on
/// the three-node test cluster, `docs/replication.md`); both sides notice after the same time.
pub const CPG_SPLIT_DETECT_MS: u64 = 3_600;
/// CPG sees a member process die almost at once (its IPC connection closes).
pub const CPG_PROCESS_DEATH_MS: u64 = 100;
/// A restarted instance joins the group this long after it starts.
pub const CPG_JOIN_MS: u64 = 500;
/// votequorum is asked this often.
pub const QUORUM_POLL_MS: u64 = 500;
/// votequorum's "quorate" is trusted this long (`QuorumLease`).
pub const QUORUM_LEASE_MS: u64 = 2_000;
/// A newly active instance waits this long before its first power action (longer than
/// `CPG_SPLIT_DETECT_MS`: a cut-off former active has noticed the split by then).
pub const TAKEOVER_GRACE_MS: u64 = 4_000;
/// Pacemaker looks at the cluster this often.
pub const PACEMAKER_INTERVAL_MS: u64 = 1_000;
/// The instance repeats its quorum answer to its core this often (the core's lease is 30 s).
pub const CORE_QUORUM_REFRESH_MS: u64 = 10_000;
/// How long fence intervals are remembered for the overlap check.
const FENCE_HISTORY_MS: u64 = 600_000;

/// Safety rules of the multi-coordinator model that a checker self-test may switch off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterBreaks {
    /// The power driver does not call `authorize_power` (no epoch, role, view or lease check).
    pub epoch_check: bool,
    /// The daemon carries on after a `Persist` once written locally, without waiting for the
    /// replica to report it durable.
    pub durability: bool,
    /// Pacemaker promotes in any view (no-quorum-policy=ignore) and the daemon starts its core
    /// on Pacemaker's promote, without waiting for its replica to become Active.
    pub promotion_rule: bool,
    /// The daemon keeps its core running when its replica stops being Active (a demote that
    /// is lost or slow).
    pub demotion: bool,
}

/// How the coordinators of a run are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterOptions {
    /// 2 or 3 instances.
    pub instances: usize,
    pub breaks: ClusterBreaks,
}

/// Events of the coordinator cluster.
pub(crate) enum ClusterEv {
    /// Corosync forms new views from the network and process state.
    Reconfigure,
    /// CPG delivers what is queued.
    Deliver,
    QuorumPoll,
    Pacemaker,
    Restart(usize),
    Rejoin(usize),
    QuorumBack(usize),
}

struct CpgMsg {
    sender: usize,
    view_id: u64,
    wire: Wire,
}

/// One coordinator instance.
pub(crate) struct Instance {
    up: bool,
    replica: Replica,
    /// The local journal: what the replica's `Append`/`Replace` wrote (survives a crash).
    disk: Vec<Entry>,
    /// Network side: instances talk to each other iff their sides are equal.
    side: u32,
    quorum_link: bool,
    lease: QuorumLease,
    view: Vec<usize>,
    view_id: u64,
    // The instance's core, swapped into the engine while it is stepped.
    core: Option<CoreDriver>,
    gen: u32,
    pending_wakes: BTreeSet<SimTime>,
    /// Power requests held until every record the core persisted before them is durable.
    held: VecDeque<CoreOut<Tag>>,
    /// The record proposed and not durable yet (one at a time keeps the core's order).
    waiting: Option<(ProposalId, String)>,
    /// Records to propose, in the core's order (a rejected one goes back to the front).
    unproposed: VecDeque<String>,
    /// The snapshot proposal in flight (it is also `waiting`, so nothing is proposed after it
    /// until it is durable or rejected).
    compacting: Option<ProposalId>,
    /// The epoch this instance's core acts in, and since when.
    active_epoch: u64,
    active_since: SimTime,
    fed_quorum: Option<(bool, SimTime)>,
    /// Ground truth: when this instance's side last lost its majority.
    truth_lost_at: Option<SimTime>,
    /// Messages it multicast that were not delivered when it died are lost (CPG may drop an
    /// unordered message of a failed sender).
    dead_drops: bool,
}

pub(crate) struct Coordinators {
    instances: Vec<Instance>,
    /// The instance being stepped (its core is in the engine's slot).
    acting: Option<usize>,
    /// The instance that became active last and still runs its core: its claims are the
    /// coordinator's (host states in the summary); other running cores are zombies.
    owner: Option<usize>,
    cpg: VecDeque<CpgMsg>,
    deliver_at: Option<SimTime>,
    reconfigure_at: Option<SimTime>,
    next_view_id: u64,
    next_gen: u32,
    base: Instant,
    breaks: ClusterBreaks,
    /// Ground truth at the BMCs: the instance whose power action first landed in each epoch.
    epoch_owner: BTreeMap<u64, usize>,
    /// Landed fences: (instance, issued, landed).
    fences: VecDeque<(usize, SimTime, SimTime)>,
    /// Newest epoch an instance became active in.
    newest_epoch: u64,
    claim_at: Option<SimTime>,
    crash_on_next_fence: Option<u64>,
    pending_crash: Option<(usize, u64)>,
    pub(crate) promotions: u64,
    pub(crate) refused_power_actions: u64,
    /// Snapshots that became durable (the log compacted on every member that wrote them).
    pub(crate) compactions: u64,
    /// State transfers that replaced a member's whole log by a compacted one (snapshot first).
    pub(crate) snapshot_transfers: u64,
}

/// The active compacts its replicated log once its journal holds more entries than this (the
/// daemon's `journal_compact_bytes`, scaled down so that every seed compacts often, through
/// crashes, partitions and state transfers).
const COMPACT_AFTER_ENTRIES: usize = 16;

fn node(i: usize) -> NodeId {
    i as NodeId + 1
}

impl Coordinators {
    pub(crate) fn new(opts: ClusterOptions) -> Coordinators {
        let n = opts.instances.max(1);
        let instances = (0..n)
            .map(|i| Instance {
                up: true,
                replica: Replica::new(node(i), n, Vec::new()),
                disk: Vec::new(),
                side: 0,
                quorum_link: true,
                lease: QuorumLease::new(Duration::from_millis(QUORUM_LEASE_MS)),
                view: Vec::new(),
                view_id: 0,
                core: None,
                gen: 0,
                pending_wakes: BTreeSet::new(),
                held: VecDeque::new(),
                waiting: None,
                unproposed: VecDeque::new(),
                compacting: None,
                active_epoch: 0,
                active_since: SimTime::ZERO,
                fed_quorum: None,
                truth_lost_at: None,
                dead_drops: false,
            })
            .collect();
        Coordinators {
            instances,
            acting: None,
            owner: None,
            cpg: VecDeque::new(),
            deliver_at: None,
            reconfigure_at: None,
            next_view_id: 1,
            next_gen: 1_000,
            base: Instant::now(),
            breaks: opts.breaks,
            epoch_owner: BTreeMap::new(),
            fences: VecDeque::new(),
            newest_epoch: 0,
            claim_at: None,
            crash_on_next_fence: None,
            pending_crash: None,
            promotions: 0,
            refused_power_actions: 0,
            compactions: 0,
            snapshot_transfers: 0,
        }
    }

    fn at(&self, now: SimTime) -> Instant {
        self.base + Duration::from_millis(now.0)
    }

    pub(crate) fn len(&self) -> usize {
        self.instances.len()
    }

    pub(crate) fn acting(&self) -> Option<usize> {
        self.acting
    }

    /// The instance whose core is `gen`, if it still runs.
    fn instance_of_gen(&self, gen: u32) -> Option<usize> {
        self.instances
            .iter()
            .position(|x| x.gen == gen && x.core.is_some())
    }

    /// Ground truth: instance `i` runs and its network side holds a majority of the instances.
    fn truly_quorate(&self, i: usize) -> bool {
        let me = &self.instances[i];
        let side = self
            .instances
            .iter()
            .filter(|x| x.up && x.side == me.side)
            .count();
        me.up && side * 2 > self.instances.len()
    }

    fn majority(&self, members: usize) -> bool {
        members * 2 > self.instances.len()
    }

    /// Indices of the running instances, grouped by the network side they can reach.
    fn components(&self) -> Vec<Vec<usize>> {
        let mut by_side: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, x) in self.instances.iter().enumerate() {
            if x.up {
                by_side.entry(x.side).or_default().push(i);
            }
        }
        by_side.into_values().collect()
    }

    /// Whether the members of view `view_id` are all running, still in it and can all talk.
    fn view_intact(&self, view_id: u64) -> bool {
        let members: Vec<&Instance> = self
            .instances
            .iter()
            .filter(|x| x.view_id == view_id)
            .collect();
        !members.is_empty()
            && members.iter().all(|x| x.up && x.side == members[0].side)
            && members.len() == members[0].view.len()
    }
}

/// What a batch of replica actions asks the engine to do afterwards.
#[derive(Default)]
struct After {
    start_core: bool,
    stop_core: Option<&'static str>,
    pump: bool,
}

impl Simulation {
    fn cl(&self) -> &Coordinators {
        self.cluster.as_ref().expect("coordinator cluster mode")
    }

    fn cl_mut(&mut self) -> &mut Coordinators {
        self.cluster.as_mut().expect("coordinator cluster mode")
    }

    /// Starts every instance; the first views form at once and Pacemaker promotes one.
    pub(super) fn cluster_start(&mut self, now: SimTime) {
        self.cluster_schedule_reconfigure(now, 0);
        self.queue.schedule(
            now.plus_ms(QUORUM_POLL_MS),
            Ev::Cluster(ClusterEv::QuorumPoll),
        );
        self.queue.schedule(
            now.plus_ms(PACEMAKER_INTERVAL_MS),
            Ev::Cluster(ClusterEv::Pacemaker),
        );
        let n = self.cl().len();
        self.timeline.line(now, "coord", || {
            format!("{n} coordinator instances start (CPG group, votequorum, Pacemaker)")
        });
        self.cluster_sync_world(now);
    }

    /// Runs `f` with instance `i`'s core in the engine's coordinator slot.
    pub(super) fn with_instance<R>(&mut self, i: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        let cl = self.cluster.as_mut().expect("cluster mode");
        let inst = &mut cl.instances[i];
        std::mem::swap(&mut self.core, &mut inst.core);
        std::mem::swap(&mut self.gen, &mut inst.gen);
        std::mem::swap(&mut self.pending_wakes, &mut inst.pending_wakes);
        let prev = cl.acting.replace(i);
        let zombie_was = self.zombie_mode;
        self.zombie_mode = cl.owner != Some(i);
        let r = f(self);
        self.zombie_mode = zombie_was;
        let cl = self.cluster.as_mut().expect("cluster mode");
        cl.acting = prev;
        let inst = &mut cl.instances[i];
        std::mem::swap(&mut self.core, &mut inst.core);
        std::mem::swap(&mut self.gen, &mut inst.gen);
        std::mem::swap(&mut self.pending_wakes, &mut inst.pending_wakes);
        if prev.is_none() {
            if let Some((c, restart)) = self.cl_mut().pending_crash.take() {
                let now = self.cluster_now;
                self.crash_instance(now, c, restart);
            }
        }
        r
    }

    /// Steps an event addressed to a core generation: the instance running it handles it.
    pub(super) fn cluster_step_core_event(&mut self, now: SimTime, gen: u32, ev: Ev) {
        if let Some(i) = self.cl().instance_of_gen(gen) {
            self.with_instance(i, |s| s.step(now, ev));
        }
    }

    /// The engine's ground-truth fields follow the instance that is the coordinator now.
    pub(super) fn cluster_sync_world(&mut self, now: SimTime) {
        self.cluster_now = now;
        let cl = self.cl();
        let (q, link) = match cl.owner {
            Some(o) if cl.instances[o].core.is_some() || cl.acting == Some(o) => {
                (cl.truly_quorate(o), cl.instances[o].quorum_link)
            }
            _ => (false, true),
        };
        if self.world.quorate && !q {
            self.world.quorum_lost_at = Some(now);
        }
        if q {
            self.world.quorum_lost_at = None;
        }
        self.world.quorate = q;
        self.world.quorum_provider_alive = link;
    }

    /// Whether a coordinator core runs that is the coordinator (for the liveness excuses).
    pub(super) fn cluster_coordinator_up(&self) -> bool {
        let cl = self.cl();
        cl.owner.is_some_and(|o| {
            cl.instances[o].core.is_some() || (cl.acting == Some(o) && self.core.is_some())
        })
    }

    /// The host states of the coordinator's core (for the summary).
    pub(super) fn cluster_host_state(&self, h: HostIdx) -> Option<&'static str> {
        let cl = self.cl();
        let o = cl.owner?;
        cl.instances[o].core.as_ref().map(|c| c.host_state(h))
    }

    pub(super) fn cluster_event(&mut self, now: SimTime, ev: ClusterEv) {
        match ev {
            ClusterEv::Reconfigure => {
                if self.cl().reconfigure_at == Some(now) {
                    self.cl_mut().reconfigure_at = None;
                    self.cpg_reconfigure(now);
                }
            }
            ClusterEv::Deliver => {
                if self.cl().deliver_at == Some(now) {
                    self.cl_mut().deliver_at = None;
                    self.cpg_deliver(now, false);
                }
            }
            ClusterEv::QuorumPoll => {
                self.quorum_poll(now);
                self.queue.schedule(
                    now.plus_ms(QUORUM_POLL_MS),
                    Ev::Cluster(ClusterEv::QuorumPoll),
                );
            }
            ClusterEv::Pacemaker => {
                self.pacemaker(now, false);
                self.queue.schedule(
                    now.plus_ms(PACEMAKER_INTERVAL_MS),
                    Ev::Cluster(ClusterEv::Pacemaker),
                );
            }
            ClusterEv::Restart(i) => self.restart_instance(now, i),
            ClusterEv::Rejoin(i) => {
                self.cl_mut().instances[i].side = 0;
                self.timeline.line(now, "coord", || {
                    format!("network: instance c{} reaches the others again", i + 1)
                });
                self.cluster_network_changed(now, CPG_SPLIT_DETECT_MS);
            }
            ClusterEv::QuorumBack(i) => {
                self.cl_mut().instances[i].quorum_link = true;
                self.timeline.line(now, "coord", || {
                    format!("instance c{} reaches its quorum service again", i + 1)
                });
            }
        }
    }

    fn cluster_schedule_reconfigure(&mut self, now: SimTime, after_ms: u64) {
        let at = now.plus_ms(after_ms);
        let cl = self.cl_mut();
        // A later change resets Corosync's detection: one reconfiguration covers both.
        if cl.reconfigure_at.map_or(true, |t| t < at) {
            cl.reconfigure_at = Some(at);
            self.queue.schedule(at, Ev::Cluster(ClusterEv::Reconfigure));
        }
    }

    fn schedule_cpg_delivery(&mut self, now: SimTime) {
        let at = now.plus_ms(CPG_LATENCY_MS);
        let cl = self.cl_mut();
        if cl.deliver_at.is_none() {
            cl.deliver_at = Some(at);
            self.queue.schedule(at, Ev::Cluster(ClusterEv::Deliver));
        }
    }

    /// Something changed who can reach whom: update the ground truth now; Corosync forms the
    /// new views after `detect_ms`.
    fn cluster_network_changed(&mut self, now: SimTime, detect_ms: u64) {
        let n = self.cl().len();
        for i in 0..n {
            let q = self.cl().truly_quorate(i);
            let x = &mut self.cl_mut().instances[i];
            match (q, x.truth_lost_at.is_some()) {
                (false, false) => x.truth_lost_at = Some(now),
                (true, true) => x.truth_lost_at = None,
                _ => {}
            }
        }
        self.cluster_schedule_reconfigure(now, detect_ms);
        self.cluster_sync_world(now);
    }

    /// Delivers queued messages in agreed order to every member of the view each was sent in.
    /// Outside a reconfiguration a view that is no longer intact stalls (its messages wait for
    /// the view change). In `flush` (virtual synchrony, right before new views are installed)
    /// every message goes to the sender's new side; another side gets it unless it already
    /// missed an earlier one of the flush (CPG may deliver a split's in-flight messages on one
    /// side only); a dead sender's undelivered messages are lost when it was so decided.
    fn cpg_deliver(&mut self, now: SimTime, flush: bool) {
        let mut missed: BTreeSet<(u64, u32)> = BTreeSet::new();
        let mut budget = 100_000u32;
        while let Some(msg) = self.cl_mut().cpg.pop_front() {
            budget -= 1;
            assert!(budget > 0, "CPG delivery does not quiesce");
            let cl = self.cl();
            let members: Vec<(usize, u32)> = (0..cl.len())
                .filter(|&m| cl.instances[m].up && cl.instances[m].view_id == msg.view_id)
                .map(|m| (m, cl.instances[m].side))
                .collect();
            if !flush && !cl.view_intact(msg.view_id) {
                self.cl_mut().cpg.push_front(msg);
                break;
            }
            let sender = &cl.instances[msg.sender];
            if !sender.up && sender.dead_drops {
                continue;
            }
            let sender_side = sender.side;
            let mut to = Vec::new();
            for (m, side) in members {
                if !flush || side == sender_side {
                    to.push(m);
                    continue;
                }
                let key = (msg.view_id, side);
                if missed.contains(&key) {
                    continue;
                }
                if self.rng.gen_bool(0.5) {
                    to.push(m);
                } else {
                    missed.insert(key);
                }
            }
            for m in to {
                let from = node(msg.sender);
                let actions = self.cl_mut().instances[m]
                    .replica
                    .deliver(from, msg.wire.clone());
                self.replica_actions(now, m, actions);
            }
        }
    }

    /// Corosync installs new views: flush the old ones, then tell every member whose view
    /// changed.
    fn cpg_reconfigure(&mut self, now: SimTime) {
        self.cpg_deliver(now, true);
        let comps = self.cl().components();
        for comp in comps {
            let changed = comp.iter().any(|&m| self.cl().instances[m].view != comp);
            if !changed {
                continue;
            }
            let id = {
                let cl = self.cl_mut();
                cl.next_view_id += 1;
                cl.next_view_id
            };
            let names: Vec<String> = comp.iter().map(|m| format!("c{}", m + 1)).collect();
            self.timeline.line(now, "coord", || {
                format!("CPG view {id}: [{}]", names.join(", "))
            });
            for &m in &comp {
                let x = &mut self.cl_mut().instances[m];
                x.view = comp.clone();
                x.view_id = id;
            }
            for &m in &comp {
                let ids: Vec<NodeId> = comp.iter().map(|&x| node(x)).collect();
                let actions = self.cl_mut().instances[m].replica.view_changed(ids);
                self.replica_actions(now, m, actions);
            }
        }
        self.cluster_sync_world(now);
    }

    /// Carries out one batch of replica actions of instance `m`, in order, then reports its
    /// journal written.
    fn replica_actions(&mut self, now: SimTime, m: usize, actions: Vec<Action>) {
        let mut after = After::default();
        for a in actions {
            self.replica_action(now, m, a, &mut after);
        }
        let more = self.cl_mut().instances[m].replica.report_written();
        for a in more {
            self.replica_action(now, m, a, &mut after);
        }
        if let Some(why) = after.stop_core {
            self.stop_instance_core(now, m, why);
        }
        if after.start_core {
            self.start_instance_core(now, m);
        }
        let x = &self.cl().instances[m];
        if x.core.is_some()
            && x.waiting.is_none()
            && (after.pump || (!x.unproposed.is_empty() && !x.replica.syncing()))
        {
            self.with_instance(m, |s| s.pump(now));
        }
    }

    fn replica_action(&mut self, now: SimTime, m: usize, a: Action, after: &mut After) {
        match a {
            Action::Multicast(wire) => {
                let view_id = self.cl().instances[m].view_id;
                self.cl_mut().cpg.push_back(CpgMsg {
                    sender: m,
                    view_id,
                    wire,
                });
                self.schedule_cpg_delivery(now);
            }
            Action::Append(e) => {
                let disk = &mut self.cl_mut().instances[m].disk;
                debug_assert_eq!(e.seq, disk.last().map_or(1, |l| l.seq + 1));
                disk.push(e);
            }
            Action::Compact(e) => {
                let seq = e.seq;
                self.cl_mut().instances[m].disk = vec![e];
                self.timeline.line(now, "coord", || {
                    format!("instance c{} compacts its journal at seq {seq}", m + 1)
                });
            }
            Action::Replace { base, entries } => {
                let whole = base == 0
                    && entries
                        .first()
                        .is_some_and(|e| matches!(e.body, EntryBody::Snapshot { .. }));
                let cl = self.cl_mut();
                if whole {
                    cl.snapshot_transfers += 1;
                }
                let disk = &mut cl.instances[m].disk;
                disk.retain(|e| e.seq <= base);
                disk.extend(entries);
            }
            Action::Durable { proposal, .. } => {
                let cl = self.cl_mut();
                let x = &mut cl.instances[m];
                if x.waiting.as_ref().is_some_and(|(p, _)| *p == proposal) {
                    x.waiting = None;
                    after.pump = true;
                }
                if x.compacting == Some(proposal) {
                    x.compacting = None;
                    cl.compactions += 1;
                }
            }
            Action::Rejected { proposal } => {
                let x = &mut self.cl_mut().instances[m];
                if x.compacting == Some(proposal) {
                    // Not compacted (epoch or view changed): tried again after a later record.
                    x.compacting = None;
                    if x.waiting.as_ref().is_some_and(|(p, _)| *p == proposal) {
                        x.waiting = None;
                    }
                } else if x.waiting.as_ref().is_some_and(|(p, _)| *p == proposal) {
                    let (_, payload) = x.waiting.take().expect("checked");
                    x.unproposed.push_front(payload);
                }
            }
            Action::RoleChanged(role) => {
                self.timeline.line(now, "coord", || {
                    format!("instance c{} replica is {role:?}", m + 1)
                });
                let has_core = self.cl().instances[m].core.is_some();
                if role == Role::Active && !has_core {
                    after.start_core = true;
                    after.stop_core = None;
                } else if role != Role::Active && has_core && !self.cl().breaks.demotion {
                    after.stop_core = Some("its replica is no longer active: demoted");
                    after.start_core = false;
                }
            }
        }
    }

    /// The daemon becomes active: a core recovered from the records of its replicated log.
    fn start_instance_core(&mut self, now: SimTime, i: usize) {
        let mut mem = MemJournal::new();
        let mut records = 0usize;
        for e in &self.cl().instances[i].disk {
            // A snapshot holds the compact records of everything before it.
            let recs: Result<Vec<hactl_core::Record>, _> = match &e.body {
                EntryBody::Record { payload } => serde_json::from_str(payload).map(|r| vec![r]),
                EntryBody::Snapshot { state, .. } => serde_json::from_str(state),
                EntryBody::Epoch { .. } | EntryBody::Confirm => Ok(Vec::new()),
            };
            let recs = match recs {
                Ok(r) => r,
                Err(err) => {
                    let detail =
                        format!("instance c{}: unreadable replicated record: {err}", i + 1);
                    self.checker.restart_failed(now, detail);
                    return;
                }
            };
            for rec in recs {
                mem.append(&rec).expect("records serialise");
                records += 1;
            }
        }
        let epoch = {
            let x = &self.cl().instances[i];
            if x.replica.role() == Role::Active {
                x.replica.epoch()
            } else {
                // Broken promotion rule: acting on Pacemaker's promote alone.
                x.replica.epoch() + 1
            }
        };
        let lease_q = {
            let cl = self.cl();
            cl.instances[i].lease.is_quorate(cl.at(now))
        };
        let truth = self.world.quorate;
        self.world.quorate = lease_q;
        let started = CoreDriver::start(
            now,
            self.wall_ms(now),
            &self.world,
            &mut mem,
            self.opts.broken,
        );
        self.world.quorate = truth;
        let (core, outs, note) = match started {
            Ok(x) => x,
            Err(e) => {
                self.checker.restart_failed(now, e.clone());
                self.timeline.line(now, "VIOLATION", || {
                    format!("instance c{} cannot start its core: {e}", i + 1)
                });
                return;
            }
        };
        let gen = {
            let cl = self.cl_mut();
            cl.next_gen += 1;
            let gen = cl.next_gen;
            let x = &mut cl.instances[i];
            x.core = Some(core);
            x.gen = gen;
            x.pending_wakes.clear();
            x.held.clear();
            x.waiting = None;
            x.compacting = None;
            x.unproposed.clear();
            x.active_epoch = epoch;
            x.active_since = now;
            x.fed_quorum = Some((lease_q, now));
            cl.owner = Some(i);
            cl.newest_epoch = cl.newest_epoch.max(epoch);
            cl.promotions += 1;
            gen
        };
        let _ = gen;
        self.world.fencing_token = self.world.fencing_token.max(epoch as u32);
        self.checker.coordinator_started(now);
        self.coordinator_started_at = now;
        self.coordinator_restarts += 1;
        self.timeline.line(now, "coord", || {
            format!("instance c{} active in epoch {epoch}: core recovered from {records} replicated records ({note})", i + 1)
        });
        self.cluster_sync_world(now);
        self.with_instance(i, |s| {
            s.handle_outs(now, outs);
            s.resync_states(now);
        });
    }

    /// The daemon drops its core (demoted, or its process died).
    fn stop_instance_core(&mut self, now: SimTime, i: usize, why: &str) {
        let cl = self.cl_mut();
        debug_assert_ne!(cl.acting, Some(i));
        let x = &mut cl.instances[i];
        if x.core.take().is_none() {
            return;
        }
        x.pending_wakes.clear();
        // Fences the core journaled and counted against its rate cap but that never left
        // (held behind a record not yet durable): the core restored from the replica counts
        // those whose records survived, so they excuse the cap's stop.
        let held: Vec<HostIdx> = x
            .held
            .drain(..)
            .filter_map(|o| match o {
                CoreOut::Request {
                    request:
                        crate::protocol::Request::Power {
                            host,
                            op: PowerOp::Off | PowerOp::Cycle | PowerOp::Reset,
                            ..
                        },
                    ..
                } => Some(host),
                _ => None,
            })
            .collect();
        x.waiting = None;
        x.compacting = None;
        x.unproposed.clear();
        if cl.owner == Some(i) {
            cl.owner = None;
        }
        for host in held {
            if self.world.hosts[host].vms > 0 {
                self.checker.note_uncertain_fence(now, &self.world, host);
            }
        }
        self.timeline.line(now, "coord", || {
            format!("instance c{} stops its core: {why}", i + 1)
        });
        self.cluster_sync_world(now);
    }

    /// Core outputs of the acting instance. A `Persist` is proposed to the replica (one record
    /// in flight at a time, in the core's order); a power request waits until every record
    /// persisted before it is durable; everything else (checks, reads, timers) goes at once:
    /// holding it would only let the core's own timeouts expire while a view change is synced.
    pub(super) fn cluster_handle_outs(&mut self, now: SimTime, outs: &mut Vec<CoreOut<Tag>>) {
        let i = self.cl().acting.expect("an instance is acting");
        let gen = self.gen;
        let durability = !self.cl().breaks.durability;
        for out in outs.drain(..) {
            if self.core.is_none() || self.cl().pending_crash.is_some() {
                break;
            }
            match out {
                CoreOut::Persist(rec) => {
                    let payload = serde_json::to_string(&rec).expect("records serialise");
                    if durability {
                        self.cl_mut().instances[i].unproposed.push_back(payload);
                        self.propose_next(now, i);
                    } else if let Ok((_, actions)) =
                        self.cl_mut().instances[i].replica.propose(payload)
                    {
                        // Broken: carried on once proposed, durable or not.
                        self.replica_actions_inline(now, i, actions);
                    }
                }
                out @ CoreOut::Request {
                    request: crate::protocol::Request::Power { .. },
                    ..
                } => {
                    let x = &mut self.cl_mut().instances[i];
                    if x.waiting.is_some() || !x.unproposed.is_empty() || !x.held.is_empty() {
                        x.held.push_back(out);
                    } else {
                        self.handle_outs_inner(now, &mut vec![out]);
                    }
                }
                other => self.handle_outs_inner(now, &mut vec![other]),
            }
        }
        self.schedule_round_answers(now, gen);
    }

    /// Proposes the next record if none is in flight (a refusal leaves it queued: the
    /// replica is syncing a view change or holds no majority; it is proposed again later).
    fn propose_next(&mut self, now: SimTime, i: usize) {
        let x = &mut self.cl_mut().instances[i];
        if x.waiting.is_some() {
            return;
        }
        let Some(payload) = x.unproposed.pop_front() else {
            return;
        };
        match x.replica.propose(payload.clone()) {
            Ok((p, actions)) => {
                x.waiting = Some((p, payload));
                self.replica_actions_inline(now, i, actions);
            }
            Err(_) => x.unproposed.push_front(payload),
        }
    }

    /// Carries on after a record became durable or a view change closed: proposes the next
    /// record, and releases the held power requests once nothing persisted is outstanding.
    fn pump(&mut self, now: SimTime) {
        let i = self.cl().acting.expect("an instance is acting");
        let gen = self.gen;
        self.propose_next(now, i);
        loop {
            if self.core.is_none() || self.cl().pending_crash.is_some() {
                break;
            }
            let x = &mut self.cl_mut().instances[i];
            if x.waiting.is_some() || !x.unproposed.is_empty() {
                break;
            }
            let Some(out) = x.held.pop_front() else {
                break;
            };
            self.handle_outs_inner(now, &mut vec![out]);
        }
        self.maybe_compact(now, i);
        self.schedule_round_answers(now, gen);
    }

    /// The daemon's `maybe_compact` in `corosync` mode: once everything the core persisted is
    /// durable (so its state is exactly what the log holds) and the journal is over the
    /// threshold, the active proposes a snapshot of the core's compact records at its head.
    fn maybe_compact(&mut self, now: SimTime, i: usize) {
        let Some(core) = self.core.as_ref() else {
            return;
        };
        let x = &self.cl().instances[i];
        if x.waiting.is_some()
            || !x.unproposed.is_empty()
            || !x.held.is_empty()
            || x.disk.len() <= COMPACT_AFTER_ENTRIES
            || x.replica.role() != Role::Active
            || x.replica.syncing()
        {
            return;
        }
        let state = serde_json::to_string(&core.compact_records(now)).expect("records serialise");
        let head = x.replica.head();
        let x = &mut self.cl_mut().instances[i];
        if let Ok((p, actions)) = x.replica.propose_snapshot(head, state) {
            x.waiting = Some((p, String::new()));
            x.compacting = Some(p);
            self.replica_actions_inline(now, i, actions);
        }
    }

    /// Replica actions produced while the instance is being stepped: only multicasts and
    /// journal writes can come from a local request.
    fn replica_actions_inline(&mut self, now: SimTime, i: usize, actions: Vec<Action>) {
        let mut after = After::default();
        for a in actions {
            self.replica_action(now, i, a, &mut after);
        }
    }

    /// The power driver's check right before a BMC is touched. Returns the epoch the action
    /// carries, or why it is refused.
    pub(super) fn cluster_authorize(&mut self, now: SimTime) -> Result<(usize, u64), String> {
        let cl = self.cl();
        let i = cl.acting.expect("an instance is acting");
        let x = &cl.instances[i];
        if cl.breaks.epoch_check {
            return Ok((i, x.active_epoch));
        }
        let quorate = x.lease.is_quorate(cl.at(now));
        x.replica
            .authorize_power(x.active_epoch, quorate)
            .map_err(|r| r.to_string())?;
        let elapsed = now.since(x.active_since);
        if elapsed < TAKEOVER_GRACE_MS {
            return Err(Refusal::TakeoverGrace {
                elapsed_ms: elapsed,
                grace_ms: TAKEOVER_GRACE_MS,
            }
            .to_string());
        }
        Ok((i, x.active_epoch))
    }

    pub(super) fn cluster_note_refusal(&mut self) {
        self.cl_mut().refused_power_actions += 1;
    }

    /// Ground truth for the issuing instance while its fence is judged.
    pub(super) fn cluster_quorum_truth(&self, i: usize) -> (bool, Option<SimTime>, bool) {
        let cl = self.cl();
        let x = &cl.instances[i];
        (cl.truly_quorate(i), x.truth_lost_at, x.quorum_link)
    }

    /// A power action of instance `i` in `epoch`, issued at `issued`, reached the chassis.
    pub(super) fn cluster_power_landed(
        &mut self,
        now: SimTime,
        (host, op, fence): (HostIdx, PowerOp, bool),
        (i, epoch, issued): (usize, u64, SimTime),
    ) {
        let cl = self.cl_mut();
        let owner = *cl.epoch_owner.entry(epoch).or_insert(i);
        let mut found = Vec::new();
        if owner != i {
            found.push((
                Invariant::TwoInstancesInOneEpoch,
                format!(
                    "{op:?} of h{host} by instance c{} in epoch {epoch}, in which instance c{} already acted",
                    i + 1,
                    owner + 1
                ),
            ));
        }
        if fence {
            while cl
                .fences
                .front()
                .is_some_and(|f| now.since(f.2) > FENCE_HISTORY_MS)
            {
                cl.fences.pop_front();
            }
            for &(j, from, to) in &cl.fences {
                if j != i && from <= now && issued <= to {
                    found.push((
                        Invariant::OverlappingFencers,
                        format!(
                            "{op:?} of h{host} by instance c{} in flight {issued}..{now} overlaps a fence by instance c{} in flight {from}..{to}",
                            i + 1,
                            j + 1
                        ),
                    ));
                    break;
                }
            }
            cl.fences.push_back((i, issued, now));
        }
        for (inv, detail) in found {
            self.timeline
                .line(now, "VIOLATION", || format!("{inv:?}: {detail}"));
            self.checker.coordinators_violated(now, inv, host, detail);
        }
    }

    /// votequorum answers every instance that reaches it: quorate iff its view holds a
    /// majority; each instance tells its core what its lease says.
    fn quorum_poll(&mut self, now: SimTime) {
        let n = self.cl().len();
        for i in 0..n {
            let (feed, q) = {
                let cl = self.cl_mut();
                let t = cl.base + Duration::from_millis(now.0);
                let members = cl.instances[i].view.len();
                let maj = cl.majority(members);
                let x = &mut cl.instances[i];
                if !x.up {
                    continue;
                }
                if x.quorum_link {
                    x.lease.observe(t, maj);
                }
                let q = x.lease.is_quorate(t);
                let feed = x.core.is_some()
                    && x.fed_quorum.map_or(true, |(f, at)| {
                        f != q || now.since(at) >= CORE_QUORUM_REFRESH_MS
                    });
                if feed {
                    x.fed_quorum = Some((q, now));
                }
                (feed, q)
            };
            if feed {
                self.with_instance(i, |s| {
                    let wall = s.wall_ms(now);
                    if let Some(core) = s.core.as_mut() {
                        let outs = core.quorum(now, wall, q);
                        s.core_calls += 1;
                        s.handle_outs(now, outs);
                    }
                });
            }
        }
    }

    /// Pacemaker: in a view holding a majority (any view when its rule is broken), in sync, with
    /// no active member, promote the most current standby (highest epoch, then longest log, then
    /// lowest id). `forced`: promote even though an active member is there.
    fn pacemaker(&mut self, now: SimTime, forced: bool) {
        let breaks = self.cl().breaks;
        if !forced
            && self
                .cl()
                .claim_at
                .is_some_and(|t| now.since(t) < 3 * PACEMAKER_INTERVAL_MS)
        {
            return;
        }
        let comps = self.cl().components();
        for comp in comps {
            let cl = self.cl();
            let view = &cl.instances[comp[0]].view;
            if view != &comp
                || !comp
                    .iter()
                    .all(|&m| cl.instances[m].view_id == cl.instances[comp[0]].view_id)
            {
                continue; // Corosync has not formed this view yet.
            }
            if !cl.majority(comp.len()) && !breaks.promotion_rule {
                continue;
            }
            if comp.iter().any(|&m| cl.instances[m].replica.syncing()) {
                continue;
            }
            let has_active = comp.iter().any(|&m| {
                cl.instances[m].replica.role() == Role::Active || cl.instances[m].core.is_some()
            });
            if has_active && !forced {
                continue;
            }
            let Some(&pick) = comp
                .iter()
                .filter(|&&m| {
                    cl.instances[m].replica.role() == Role::Standby
                        && cl.instances[m].core.is_none()
                })
                .max_by_key(|&&m| {
                    let r = &cl.instances[m].replica;
                    (r.epoch(), r.head(), std::cmp::Reverse(m))
                })
            else {
                continue;
            };
            self.timeline.line(now, "coord", || {
                format!("Pacemaker promotes instance c{}", pick + 1)
            });
            self.cl_mut().claim_at = Some(now);
            match self.cl_mut().instances[pick].replica.promote() {
                Ok(actions) => self.replica_actions(now, pick, actions),
                Err(e) => self.timeline.line(now, "coord", || {
                    format!("instance c{} refuses the promotion: {e}", pick + 1)
                }),
            }
            if breaks.promotion_rule && self.cl().instances[pick].core.is_none() {
                self.start_instance_core(now, pick);
            }
        }
    }

    fn resolve(&self, instance: Option<usize>) -> Option<usize> {
        match instance {
            Some(i) => (i < self.cl().len()).then_some(i),
            None => self.cl().owner,
        }
    }

    fn crash_instance(&mut self, now: SimTime, i: usize, restart_after_ms: u64) {
        if !self.cl().instances[i].up {
            return;
        }
        self.stop_instance_core(now, i, "its process dies");
        let drops = self.rng.gen_bool(0.5);
        let x = &mut self.cl_mut().instances[i];
        x.up = false;
        x.dead_drops = drops;
        x.view.clear();
        x.view_id = 0;
        self.timeline.line(now, "coord", || {
            format!(
                "instance c{} process dies{}",
                i + 1,
                if drops {
                    ", its undelivered messages are lost"
                } else {
                    ""
                }
            )
        });
        self.queue.schedule(
            now.plus_ms(restart_after_ms),
            Ev::Cluster(ClusterEv::Restart(i)),
        );
        self.cluster_network_changed(now, CPG_PROCESS_DEATH_MS);
    }

    fn restart_instance(&mut self, now: SimTime, i: usize) {
        let n = self.cl().len();
        let x = &mut self.cl_mut().instances[i];
        if x.up {
            return;
        }
        x.up = true;
        x.replica = Replica::new(node(i), n, x.disk.clone());
        x.lease = QuorumLease::new(Duration::from_millis(QUORUM_LEASE_MS));
        let entries = x.disk.len();
        self.timeline.line(now, "coord", || {
            format!(
                "instance c{} restarts as a standby from its journal ({entries} entries)",
                i + 1
            )
        });
        self.cluster_network_changed(now, CPG_JOIN_MS);
    }

    /// Applies a multi-coordinator fault (false: not one).
    pub(super) fn cluster_fault(&mut self, now: SimTime, f: &Fault) -> bool {
        if self.cluster.is_none() {
            return matches!(
                f,
                Fault::CoordinatorIsolated { .. }
                    | Fault::CoordinatorQuorumCut { .. }
                    | Fault::CoordinatorInstanceCrash { .. }
                    | Fault::ActiveCrashOnNextFence { .. }
                    | Fault::ForcedPromotion
            );
        }
        match *f {
            Fault::CoordinatorIsolated { instance, for_ms } => {
                if let Some(i) = self.resolve(instance) {
                    let side = 1 + i as u32;
                    self.cl_mut().instances[i].side = side;
                    self.queue
                        .schedule(now.plus_ms(for_ms), Ev::Cluster(ClusterEv::Rejoin(i)));
                    self.cluster_network_changed(now, CPG_SPLIT_DETECT_MS);
                }
            }
            Fault::CoordinatorQuorumCut { instance, for_ms } => {
                if let Some(i) = self.resolve(instance) {
                    self.cl_mut().instances[i].quorum_link = false;
                    self.queue
                        .schedule(now.plus_ms(for_ms), Ev::Cluster(ClusterEv::QuorumBack(i)));
                    self.cluster_sync_world(now);
                }
            }
            Fault::CoordinatorInstanceCrash {
                instance,
                restart_after_ms,
            } => {
                if let Some(i) = self.resolve(instance) {
                    self.crash_instance(now, i, restart_after_ms);
                }
            }
            Fault::ActiveCrashOnNextFence { restart_after_ms } => {
                self.cl_mut().crash_on_next_fence = Some(restart_after_ms);
            }
            Fault::ForcedPromotion => self.pacemaker(now, true),
            _ => return false,
        }
        true
    }

    /// The active instance issues a fence: crash it there if armed (the request has left).
    pub(super) fn cluster_crash_at_fence(&mut self) -> bool {
        let cl = self.cl_mut();
        let Some(i) = cl.acting else {
            return false;
        };
        if cl.owner != Some(i) {
            return false;
        }
        match cl.crash_on_next_fence.take() {
            Some(r) => {
                cl.pending_crash = Some((i, r));
                true
            }
            None => false,
        }
    }

    /// Figures for the summary: (instances, promotions, power actions refused by the epoch check).
    pub(super) fn cluster_figures(&self) -> (usize, u64, u64) {
        let cl = self.cl();
        (cl.len(), cl.promotions, cl.refused_power_actions)
    }

    /// (durable snapshots, state transfers of a whole compacted log).
    pub(super) fn cluster_compaction_figures(&self) -> (u64, u64) {
        let cl = self.cl();
        (cl.compactions, cl.snapshot_transfers)
    }
}
