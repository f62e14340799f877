//! The simulation loop: pops events off the virtual clock, applies faults to
//! the world, drives the real core, carries out what it asks with realistic
//! latencies and timeouts, and checks the invariants after every step.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use hactl_journal::MemJournal;

use crate::clock::{EventQueue, SimTime};
use crate::core_adapter::{CoreDriver, Tag};
use crate::faults::Fault;
use crate::invariants::{CoordinatorView, InvariantChecker};
use crate::protocol::{CoreOut, Outcome, PowerOp, Request};
use crate::report::{RunReport, Timeline};
use crate::scenario::Scenario;
use crate::world::{Chassis, HostIdx, Os, World};

mod coordinators;
pub use coordinators::{ClusterBreaks, ClusterOptions};
use coordinators::{ClusterEv, Coordinators};

/// Physical constants of the simulated hardware.
pub const HEARTBEAT_PERIOD_MS: u64 = 5_000;
/// From chassis ON to agent up.
pub const BOOT_MS: u64 = 45_000;
/// OFF interval of a power cycle.
pub const CYCLE_OFF_MS: u64 = 5_000;
/// How often the engine samples for stuck states and slow recoveries.
pub const SAMPLE_MS: u64 = 5_000;
/// Answers to the requests of one core call about hosts of one cluster (a
/// cluster's health round or power-state sync) that arrive within this long
/// of each other are handed to the core together, at the arrival of the
/// latest of them, as the production runtime collects a round's concurrent
/// answers. Small against
/// every timeout (3 s for health checks) and check interval (10 s); an
/// answer is never held to or past its own timeout, and a timed-out or slow
/// answer still arrives at its own time.
pub const ROUND_COLLECT_MS: u64 = 250;

/// States the liveness invariant considers transient, and how long each may
/// last without a fault in force (None: only judged at the end of the run).
const OPERATION_STATES: &[&str] = &["CHECKING", "RECOVERING"];
const TRANSIENT_STATES: &[&str] = &["INITIALIZING", "SUSPECT", "CHECKING", "RECOVERING"];

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub seed: u64,
    /// Keep the human-readable timeline (off for the benchmark).
    pub timeline: bool,
    /// A fault-free tail this long at the end of the run must see no host
    /// left in a transient state (0: no end-of-run settle check).
    pub settle_ms: u64,
    /// A safety gate broken on purpose (None: the shipped core). Breaking
    /// one exists only to show that the invariant checker catches it.
    pub broken: Option<BrokenGate>,
    /// Several coordinator instances with replication and promotion
    /// (None: the single coordinator of the other scenarios).
    pub cluster: Option<ClusterOptions>,
}

/// A safety mechanism a checker self-test breaks: one of the core's gates
/// (only in `checker-self-test` builds), or the simulated BMC driver's
/// fencing-token check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenGate {
    Core(hactl_core::SelfTestGate),
    /// The BMC driver executes power actions of a superseded coordinator.
    FencingToken,
}

/// The quorum provider repeats its report this often (the core's lease is
/// 30 s).
pub const QUORUM_RENEWAL_MS: u64 = 10_000;

/// A superseded coordinator still running (zombie-coordinator): its
/// requests reach the world; its journal writes are refused.
struct Zombie {
    core: Option<CoreDriver>,
    gen: u32,
    pending_wakes: BTreeSet<SimTime>,
}

enum Ev {
    Fault(Fault),
    CoreWake {
        gen: u32,
    },
    Deliver {
        gen: u32,
        tag: Tag,
        outcome: Outcome,
        /// The interval an activity check observed.
        window: Option<(SimTime, SimTime)>,
    },
    /// Answers collected from one round, in arrival order (see
    /// [`ROUND_COLLECT_MS`]).
    DeliverBatch {
        gen: u32,
        answers: Vec<(Tag, Outcome)>,
    },
    ActivityEnd {
        gen: u32,
        tag: Tag,
        target: HostIdx,
        checker: HostIdx,
        start: SimTime,
        lw_start: Option<SimTime>,
        epoch: u32,
    },
    /// A power operation reaches the chassis.
    PowerLands {
        host: HostIdx,
        op: PowerOp,
        fence: bool,
        /// The issuing coordinator's epoch (fencing token).
        epoch: u32,
        /// The newest epoch when it was issued: an operation issued by the
        /// then-current coordinator may still land after a takeover.
        token_at_issue: u32,
        /// With several coordinator instances: which one issued it, in
        /// which epoch, when.
        by: Option<(usize, u64, SimTime)>,
    },
    /// The coordinator cluster (CPG, quorum service, Pacemaker).
    Cluster(ClusterEv),
    /// The quorum provider repeats its report.
    QuorumRenewal,
    /// The API's inventory catches up with a host's maintenance state.
    ApiReports {
        host: HostIdx,
        maintenance: bool,
    },
    /// The superseded coordinator finally stops.
    ZombieStops,
    ChassisBackOn {
        host: HostIdx,
    },
    Booted {
        host: HostIdx,
        boot_id: u64,
    },
    CoordinatorRestart,
    Sample,
}

/// An answer to a round request, waiting to be grouped with the other
/// answers of the same core call.
struct RoundAnswer {
    /// Position among the requests of the core call.
    asked: u32,
    cluster: usize,
    latency_ms: u64,
    timeout_ms: u64,
    tag: Tag,
    outcome: Outcome,
}

impl RoundAnswer {
    /// The latest delay this answer may be handed over at: an answer that
    /// beat its timeout must still arrive before it; a timed-out answer
    /// arrives exactly at its time.
    fn latest_ms(&self) -> u64 {
        if self.latency_ms < self.timeout_ms {
            self.timeout_ms - 1
        } else {
            self.latency_ms
        }
    }
}

struct HostTrack {
    state: &'static str,
    since: SimTime,
    boot_id: u64,
    phase_ms: u64,
    last_fence_issued: Option<SimTime>,
    last_off_at: Option<SimTime>,
    /// When the chassis last came on.
    last_on_at: Option<SimTime>,
    /// The last OFF the simulated BMC answered for this host, and whether
    /// the chassis really was off then (ground truth for FENCED).
    last_off_answer: Option<(SimTime, bool)>,
    /// When the last death began, kept after recovery to measure time to AVAILABLE.
    death_started: Option<SimTime>,
    /// Start of the death a fence ended, until the core confirms the OFF.
    fenced_death: Option<SimTime>,
}

pub struct Simulation {
    scenario_name: String,
    opts: RunOptions,
    pub world: World,
    queue: EventQueue<Ev>,
    rng: ChaCha8Rng,
    core: Option<CoreDriver>,
    gen: u32,
    coordinator_started_at: SimTime,
    crash_on_next_fence: Option<(u64, bool)>,
    /// The coordinator's journal: the hactl-journal format, in memory; it
    /// survives coordinator crashes, possibly with a torn tail.
    pub disk: MemJournal,
    pub checker: InvariantChecker,
    tracks: Vec<HostTrack>,
    transient: BTreeSet<HostIdx>,
    dead: Vec<HostIdx>,
    pub timeline: Timeline,
    last_disruptive_fault: SimTime,
    end: SimTime,
    // Figures for the summary.
    fences: u64,
    fence_successes: u64,
    recoveries: u64,
    time_to_recovery: BTreeMap<HostIdx, Vec<u64>>,
    time_to_available: BTreeMap<HostIdx, Vec<u64>>,
    state_entries: BTreeMap<&'static str, u64>,
    event_counts: BTreeMap<&'static str, u64>,
    events: u64,
    max_queue: usize,
    core_calls: u64,
    coordinator_restarts: u32,
    /// Wake-ups the current core asked for and that have not fired yet.
    pending_wakes: BTreeSet<SimTime>,
    /// Answers to round requests of the core call being handled, grouped
    /// and scheduled when the call's outputs are done.
    round_answers: Vec<RoundAnswer>,
    /// Emptied answer vectors, reused for the next batches.
    batch_pool: Vec<Vec<(Tag, Outcome)>>,
    zombie: Option<Zombie>,
    /// The zombie's outputs are being handled (its journal writes are
    /// refused and its state claims are not the coordinator's).
    zombie_mode: bool,
    zombie_power_actions: u64,
    /// Several coordinator instances (`--coordinators`).
    cluster: Option<Box<Coordinators>>,
    /// The instant being stepped (for work deferred to the end of a step).
    cluster_now: SimTime,
}

impl Simulation {
    pub fn new(scenario: &Scenario, opts: RunOptions) -> Simulation {
        let world = World::new(&scenario.topology, HEARTBEAT_PERIOD_MS);
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5eed_0fda_7ace_0017);
        let n = world.hosts.len();
        let tracks = (0..n)
            .map(|_| HostTrack {
                state: "NONE",
                since: SimTime::ZERO,
                boot_id: 0,
                phase_ms: rng.gen_range(0..HEARTBEAT_PERIOD_MS),
                last_fence_issued: None,
                last_off_at: None,
                last_on_at: None,
                last_off_answer: None,
                death_started: None,
                fenced_death: None,
            })
            .collect();
        let checker = InvariantChecker::new(CoreDriver::bounds(), n);
        let mut sim = Simulation {
            scenario_name: scenario.name.clone(),
            world,
            queue: EventQueue::new(),
            rng,
            core: None,
            gen: 0,
            coordinator_started_at: SimTime::ZERO,
            crash_on_next_fence: None,
            disk: MemJournal::new(),
            checker,
            tracks,
            transient: BTreeSet::new(),
            dead: Vec::new(),
            timeline: Timeline::new(opts.timeline),
            last_disruptive_fault: SimTime::ZERO,
            end: scenario.duration,
            fences: 0,
            fence_successes: 0,
            recoveries: 0,
            time_to_recovery: BTreeMap::new(),
            time_to_available: BTreeMap::new(),
            state_entries: BTreeMap::new(),
            event_counts: BTreeMap::new(),
            events: 0,
            max_queue: 0,
            core_calls: 0,
            coordinator_restarts: 0,
            pending_wakes: BTreeSet::new(),
            round_answers: Vec::new(),
            batch_pool: Vec::new(),
            zombie: None,
            zombie_mode: false,
            zombie_power_actions: 0,
            cluster: opts.cluster.map(|c| Box::new(Coordinators::new(c))),
            cluster_now: SimTime::ZERO,
            opts,
        };
        for h in 0..n {
            let phase = sim.tracks[h].phase_ms;
            sim.world.refresh_heartbeat(h, SimTime::ZERO, phase);
        }
        for (t, f) in &scenario.faults {
            sim.queue.schedule(*t, Ev::Fault(f.clone()));
        }
        sim.queue.schedule(SimTime(SAMPLE_MS), Ev::Sample);
        sim.queue
            .schedule(SimTime(QUORUM_RENEWAL_MS), Ev::QuorumRenewal);
        sim
    }

    /// Runs `f` with the zombie coordinator in the coordinator's place.
    fn as_zombie(&mut self, f: impl FnOnce(&mut Self)) {
        let Some(mut z) = self.zombie.take() else {
            return;
        };
        std::mem::swap(&mut self.core, &mut z.core);
        std::mem::swap(&mut self.gen, &mut z.gen);
        std::mem::swap(&mut self.pending_wakes, &mut z.pending_wakes);
        self.zombie_mode = true;
        f(self);
        self.zombie_mode = false;
        std::mem::swap(&mut self.core, &mut z.core);
        std::mem::swap(&mut self.gen, &mut z.gen);
        std::mem::swap(&mut self.pending_wakes, &mut z.pending_wakes);
        if self.zombie.is_none() {
            self.zombie = Some(z);
        }
    }

    fn wall_ms(&self, now: SimTime) -> i64 {
        now.0 as i64 + self.world.coordinator_wall_offset_ms
    }

    fn coord_view(&self) -> CoordinatorView {
        CoordinatorView {
            up: if self.cluster.is_some() {
                self.cluster_coordinator_up()
            } else {
                self.core.is_some()
            },
            started_at: self.coordinator_started_at,
        }
    }

    /// Runs to the end of the scenario and returns the report.
    pub fn run(mut self) -> RunReport {
        if self.cluster.is_some() {
            self.cluster_start(SimTime::ZERO);
        } else {
            self.start_coordinator(SimTime::ZERO, false);
        }
        while let Some(t) = self.queue.peek_time() {
            if t > self.end {
                break;
            }
            let (now, ev) = self.queue.pop().expect("peeked");
            self.events += 1;
            self.max_queue = self.max_queue.max(self.queue.len());
            self.step(now, ev);
        }
        self.finish()
    }

    fn step(&mut self, now: SimTime, ev: Ev) {
        let ev_gen = match &ev {
            Ev::CoreWake { gen } | Ev::Deliver { gen, .. } | Ev::DeliverBatch { gen, .. } => {
                Some(*gen)
            }
            _ => None,
        };
        if self.cluster.is_some() {
            if self.cluster.as_ref().is_some_and(|c| c.acting().is_none()) {
                self.cluster_sync_world(now);
                if let Some(g) = ev_gen {
                    self.cluster_step_core_event(now, g, ev);
                    return;
                }
            }
        } else if let Some(g) = ev_gen {
            if g != self.gen && self.zombie.as_ref().is_some_and(|z| z.gen == g) {
                self.as_zombie(|s| s.step(now, ev));
                return;
            }
        }
        match ev {
            Ev::Fault(f) => self.apply_fault(now, f),
            Ev::CoreWake { gen } => {
                if gen == self.gen && self.pending_wakes.remove(&now) {
                    let wall = self.wall_ms(now);
                    if let Some(core) = self.core.as_mut() {
                        let outs = core.tick(now, wall);
                        self.core_calls += 1;
                        self.handle_outs(now, outs);
                    }
                }
            }
            Ev::Deliver {
                gen,
                tag,
                outcome,
                window,
            } => {
                if gen == self.gen {
                    let wall = self.wall_ms(now);
                    if let Some(core) = self.core.as_mut() {
                        let outs = core.deliver(now, wall, tag, outcome, window);
                        self.core_calls += 1;
                        self.handle_outs(now, outs);
                    }
                }
            }
            Ev::DeliverBatch { gen, mut answers } => {
                if gen == self.gen {
                    let wall = self.wall_ms(now);
                    if let Some(core) = self.core.as_mut() {
                        let outs = core.deliver_batch(now, wall, &answers);
                        self.core_calls += 1;
                        self.handle_outs(now, outs);
                    }
                }
                answers.clear();
                self.batch_pool.push(answers);
            }
            Ev::ActivityEnd {
                gen,
                tag,
                target,
                checker,
                start,
                lw_start,
                epoch,
            } => {
                let outcome =
                    if !self.world.agent_reachable(checker) || !self.world.agent_answers(checker) {
                        Outcome::CheckerUnreachable
                    } else if self.world.can_read_storage(checker) {
                        let lw_end = self.world.last_write(target, now);
                        let _ = epoch;
                        let mut alive = lw_end > lw_start;
                        let wrong_pct = self.world.hosts[checker].checker_wrong_pct;
                        if wrong_pct > 0 && self.rng.gen_range(0..100) < wrong_pct {
                            // checker-wrong: the opposite of the truth.
                            alive = !alive;
                            self.timeline.line(now, "world", || {
                                format!("checker h{checker} answers WRONG about h{target}")
                            });
                        }
                        if alive {
                            Outcome::Alive
                        } else {
                            self.checker.record_dead_answer(target, start, now);
                            Outcome::Dead
                        }
                    } else {
                        Outcome::CheckerCannotReadStorage
                    };
                let window = (start, now);
                self.queue.schedule(
                    now,
                    Ev::Deliver {
                        gen,
                        tag,
                        outcome,
                        window: Some(window),
                    },
                );
            }
            Ev::PowerLands {
                host,
                op,
                fence,
                epoch,
                token_at_issue,
                by,
            } => {
                if let Some((i, e, issued)) = by {
                    self.cluster_power_landed(now, (host, op, fence), (i, e, issued));
                }
                if epoch < token_at_issue {
                    // Only a BMC driver without the token check lets this
                    // through: an already superseded coordinator acted.
                    self.checker
                        .superseded_acted(now, host, epoch, token_at_issue);
                    let line = format!(
                        "power {op:?} of h{host} from superseded epoch {epoch} lands (token {})",
                        self.world.fencing_token
                    );
                    self.timeline.line(now, "VIOLATION", || line);
                }
                self.power_lands(now, host, op, fence)
            }
            Ev::Cluster(e) => self.cluster_event(now, e),
            Ev::QuorumRenewal if self.cluster.is_some() => {}
            Ev::QuorumRenewal => {
                if self.world.quorum_provider_alive {
                    self.feed_quorum(now);
                    // The superseded instance still hears its provider: it
                    // is not stopped by losing quorum, only by the token.
                    self.as_zombie(|s| s.feed_quorum(now));
                }
                self.queue
                    .schedule(now.plus_ms(QUORUM_RENEWAL_MS), Ev::QuorumRenewal);
            }
            Ev::ApiReports { host, maintenance } => {
                self.world.hosts[host].api_maintenance = maintenance;
                self.timeline.line(now, "world", || {
                    format!("the API now reports h{host} maintenance={maintenance}")
                });
                if self.cluster.is_some() {
                    // Every running instance's core hears the API.
                    for i in 0..self.cluster.as_ref().map_or(0, |c| c.len()) {
                        self.with_instance(i, |s| {
                            if let Some(core) = s.core.as_mut() {
                                let outs = core.host_update(now, &s.world, host);
                                s.core_calls += 1;
                                s.handle_outs(now, outs);
                            }
                        });
                    }
                } else if let Some(core) = self.core.as_mut() {
                    let outs = core.host_update(now, &self.world, host);
                    self.core_calls += 1;
                    self.handle_outs(now, outs);
                }
            }
            Ev::ZombieStops => {
                if self.zombie.take().is_some() {
                    self.timeline.line(now, "coord", || {
                        "the superseded coordinator stops".to_string()
                    });
                }
            }
            Ev::ChassisBackOn { host } => {
                if self.world.hosts[host].chassis == Chassis::Off
                    && !self.world.hosts[host].feed_cut
                {
                    self.chassis_on(now, host);
                }
            }
            Ev::Booted { host, boot_id } => {
                let h = &mut self.world.hosts[host];
                if self.tracks[host].boot_id == boot_id
                    && h.chassis == Chassis::On
                    && h.os == Os::Booting
                {
                    h.os = Os::Running;
                    h.agent_up = true;
                    let phase = self.tracks[host].phase_ms;
                    self.world.refresh_heartbeat(host, now, phase);
                    self.timeline
                        .line(now, "world", || format!("h{host} booted, agent up"));
                }
            }
            Ev::CoordinatorRestart => self.start_coordinator(now, true),
            Ev::Sample => {
                self.sample(now);
                self.queue.schedule(now.plus_ms(SAMPLE_MS), Ev::Sample);
            }
        }
    }

    fn start_coordinator(&mut self, now: SimTime, restart: bool) {
        let wall = self.wall_ms(now);
        match CoreDriver::start(now, wall, &self.world, &mut self.disk, self.opts.broken) {
            Ok((core, outs, note)) => {
                // The driver takes the journal and announces its epoch: the
                // fencing token every power action must now carry.
                self.world.fencing_token = self.world.fencing_token.max(core.epoch());
                self.checker.coordinator_started(now);
                self.core = Some(core);
                self.coordinator_started_at = now;
                if restart {
                    self.coordinator_restarts += 1;
                    self.timeline.line(now, "coord", || {
                        format!("coordinator restarted from its journal ({note})")
                    });
                } else {
                    self.timeline
                        .line(now, "coord", || format!("coordinator started ({note})"));
                }
                self.handle_outs(now, outs);
                self.resync_states(now);
            }
            Err(e) => {
                self.checker.restart_failed(now, e.clone());
                self.timeline.line(now, "VIOLATION", || {
                    format!("coordinator failed to start: {e}")
                });
            }
        }
    }

    /// After a (re)start the core may hold states restored from its journal
    /// without announcing them as transitions: take them over.
    fn resync_states(&mut self, now: SimTime) {
        let Some(core) = self.core.as_ref() else {
            return;
        };
        for h in 0..self.tracks.len() {
            let s = core.host_state(h);
            if self.tracks[h].state != s {
                let from = self.tracks[h].state;
                self.tracks[h].state = s;
                self.tracks[h].since = now;
                if TRANSIENT_STATES.contains(&s) {
                    self.transient.insert(h);
                } else {
                    self.transient.remove(&h);
                }
                self.timeline.line(now, "core", || {
                    format!("h{h} {from} -> {s}: as rebuilt from the journal")
                });
            }
        }
    }

    fn crash_coordinator(&mut self, now: SimTime, restart_after_ms: u64, torn: bool) {
        if self.core.is_none() {
            return;
        }
        self.core = None;
        self.gen += 1;
        self.pending_wakes.clear();
        self.timeline.line(now, "coord", || {
            format!(
                "coordinator process dies{}",
                if torn {
                    " mid-write: journal tail torn"
                } else {
                    ""
                }
            )
        });
        self.queue
            .schedule(now.plus_ms(restart_after_ms), Ev::CoordinatorRestart);
    }

    fn feed_quorum(&mut self, now: SimTime) {
        let wall = self.wall_ms(now);
        let q = self.world.quorate;
        if let Some(core) = self.core.as_mut() {
            let outs = core.quorum(now, wall, q);
            self.core_calls += 1;
            self.handle_outs(now, outs);
        }
    }

    fn mark_dead(&mut self, now: SimTime, host: HostIdx) {
        let h = &mut self.world.hosts[host];
        if h.dead_since.is_none() {
            h.dead_since = Some(now);
            h.failure_epoch += 1;
            self.dead.push(host);
            self.tracks[host].death_started = Some(now);
            self.checker.on_death(host);
            if self.tracks[host].state == "FAILED" {
                // Already waiting for the operator: no automatic recovery is due.
                self.checker.hold_back_death(host, now);
                self.checker.on_failed(host);
            }
            if matches!(
                self.tracks[host].state,
                "SUSPECT" | "CHECKING" | "INITIALIZING"
            ) {
                // Already suspected (e.g. agent down) and in activity-check
                // backoff: the next round may be up to the backoff maximum away.
                self.checker.hold_back_death(host, now);
            }
        }
    }

    fn clear_dead(&mut self, host: HostIdx) {
        self.world.hosts[host].dead_since = None;
        self.dead.retain(|&h| h != host);
    }

    fn apply_fault(&mut self, now: SimTime, f: Fault) {
        self.timeline.line(now, "FAULT", || f.to_string());
        if f.is_disruptive() {
            self.last_disruptive_fault = now;
        }
        // Hosts whose health the fault can change: their turning unhealthy
        // is what the mass-failure guard reacts to (judged on ground truth).
        let affected = self.fault_scope(&f);
        let was_unhealthy: Vec<bool> = affected.clone().map(|h| self.unhealthy(h)).collect();
        self.apply_fault_to_world(now, f);
        let mut clusters: Vec<usize> = affected
            .clone()
            .map(|h| self.world.hosts[h].cluster)
            .collect();
        clusters.dedup();
        for c in clusters {
            let out = self.world.partition_outage(c);
            let since = &mut self.world.clusters[c].outage_since;
            match (out, since.is_some()) {
                (true, false) => *since = Some(now),
                (false, true) => *since = None,
                _ => {}
            }
        }
        for (h, was) in affected.zip(was_unhealthy) {
            if !was && self.unhealthy(h) {
                self.checker.note_unhealthy(h, now);
            }
        }
        let view = self.coord_view();
        let dead = self.dead.clone();
        self.checker.check_dead_hosts(now, &self.world, &dead, view);
    }

    /// Ground truth: the host would fail a health check now.
    fn unhealthy(&self, h: HostIdx) -> bool {
        let w = &self.world;
        !(w.agent_answers(h) && w.agent_reachable(h) && w.agent_healthy(h))
    }

    /// The hosts a fault can touch.
    fn fault_scope(&self, f: &Fault) -> std::ops::Range<HostIdx> {
        match *f {
            Fault::HostCrash { host }
            | Fault::HostAndBmcLosePower { host }
            | Fault::PowerFeedRestored { host }
            | Fault::AgentDown { host }
            | Fault::AgentUp { host }
            | Fault::HostNfsDown { host }
            | Fault::HostNfsUp { host }
            | Fault::PartitionHost { host }
            | Fault::HealHost { host } => host..host + 1,
            Fault::ClusterNfsDown { cluster }
            | Fault::ClusterNfsUp { cluster }
            | Fault::PartitionCluster { cluster }
            | Fault::HealCluster { cluster } => self.world.clusters[cluster].hosts.clone(),
            _ => 0..0,
        }
    }

    fn apply_fault_to_world(&mut self, now: SimTime, f: Fault) {
        if self.cluster_fault(now, &f) {
            return;
        }
        let w = &mut self.world;
        let mut touched: Option<HostIdx> = None;
        let mut cluster_touched = None;
        match f {
            Fault::HostCrash { host } => {
                if w.hosts[host].os == Os::Running || w.hosts[host].os == Os::Booting {
                    w.hosts[host].os = Os::Crashed;
                    w.hosts[host].agent_up = false;
                    self.mark_dead(now, host);
                }
                touched = Some(host);
            }
            Fault::HostAndBmcLosePower { host } => {
                let h = &mut w.hosts[host];
                h.feed_cut = true;
                h.bmc.powered = false;
                let was_running = h.chassis == Chassis::On;
                h.chassis = Chassis::Off;
                h.os = Os::Down;
                h.agent_up = false;
                if was_running {
                    self.mark_dead(now, host);
                }
                touched = Some(host);
            }
            Fault::PowerFeedRestored { host } => {
                let h = &mut w.hosts[host];
                if h.feed_cut {
                    h.feed_cut = false;
                    h.bmc.powered = true;
                    // Servers configured to restore power on AC return.
                    self.clear_dead(host);
                    self.chassis_on(now, host);
                }
                touched = Some(host);
            }
            Fault::AgentDown { host } => {
                w.hosts[host].agent_up = false;
            }
            Fault::AgentUp { host } => {
                if w.hosts[host].os == Os::Running {
                    w.hosts[host].agent_up = true;
                }
            }
            Fault::HostNfsDown { host } => {
                w.hosts[host].nfs_ok = false;
                touched = Some(host);
            }
            Fault::HostNfsUp { host } => {
                w.hosts[host].nfs_ok = true;
                touched = Some(host);
            }
            Fault::ClusterNfsDown { cluster } => {
                w.clusters[cluster].nfs_ok = false;
                cluster_touched = Some(cluster);
            }
            Fault::ClusterNfsUp { cluster } => {
                w.clusters[cluster].nfs_ok = true;
                cluster_touched = Some(cluster);
            }
            Fault::BmcUnreachable { host } => w.hosts[host].bmc.reachable = false,
            Fault::BmcReachable { host } => w.hosts[host].bmc.reachable = true,
            Fault::BmcSlow { host, extra_ms } => w.hosts[host].bmc.extra_latency_ms = extra_ms,
            Fault::BmcNormal { host } => w.hosts[host].bmc.extra_latency_ms = 0,
            Fault::PartitionCluster { cluster } => w.clusters[cluster].partitioned = true,
            Fault::HealCluster { cluster } => w.clusters[cluster].partitioned = false,
            Fault::PartitionHost { host } => w.hosts[host].net_ok = false,
            Fault::HealHost { host } => w.hosts[host].net_ok = true,
            Fault::QuorumLost => {
                if w.quorate {
                    w.quorum_lost_at = Some(now);
                }
                w.quorate = false;
                if w.quorum_provider_alive {
                    self.feed_quorum(now);
                }
            }
            Fault::QuorumRegained => {
                w.quorate = true;
                w.quorum_lost_at = None;
                if w.quorum_provider_alive {
                    self.feed_quorum(now);
                }
            }
            Fault::QuorumProviderDies => {
                // Silent from now on; its last word was "quorate".
                w.quorum_provider_alive = false;
                if w.quorate {
                    w.quorum_lost_at = Some(now);
                }
                w.quorate = false;
            }
            Fault::QuorumProviderBack => {
                w.quorum_provider_alive = true;
                w.quorate = true;
                w.quorum_lost_at = None;
                self.feed_quorum(now);
            }
            Fault::BmcLiesOff { host } => w.hosts[host].bmc.lies_off = true,
            Fault::BmcHonest { host } => w.hosts[host].bmc.lies_off = false,
            Fault::BmcStaleRead { host } => {
                let c = w.hosts[host].chassis;
                w.hosts[host].bmc.stale = Some(c);
            }
            Fault::BmcFresh { host } => w.hosts[host].bmc.stale = None,
            Fault::PowerAcksLost { host } => w.hosts[host].bmc.loses_acks = true,
            Fault::PowerAcksBack { host } => w.hosts[host].bmc.loses_acks = false,
            Fault::PowerOpsDuplicated { host } => w.hosts[host].bmc.duplicates_ops = true,
            Fault::PowerOpsSingle { host } => w.hosts[host].bmc.duplicates_ops = false,
            Fault::CheckerWrong { host, pct } => w.hosts[host].checker_wrong_pct = pct,
            Fault::CheckerRight { host } => w.hosts[host].checker_wrong_pct = 0,
            Fault::MaintenanceStarted { host, api_lag_ms } => {
                w.hosts[host].maintenance = true;
                let ev = Ev::ApiReports {
                    host,
                    maintenance: true,
                };
                self.queue.schedule(now.plus_ms(api_lag_ms), ev);
            }
            Fault::MaintenanceEnded { host, api_lag_ms } => {
                w.hosts[host].maintenance = false;
                let ev = Ev::ApiReports {
                    host,
                    maintenance: false,
                };
                self.queue.schedule(now.plus_ms(api_lag_ms), ev);
            }
            Fault::StorageSlow { cluster } => w.clusters[cluster].storage_slow = true,
            Fault::StorageNormal { cluster } => w.clusters[cluster].storage_slow = false,
            Fault::ZombieCoordinator { zombie_for_ms } => {
                if self.core.is_some() && self.zombie.is_none() {
                    self.zombie = Some(Zombie {
                        core: self.core.take(),
                        gen: self.gen,
                        pending_wakes: std::mem::take(&mut self.pending_wakes),
                    });
                    self.gen += 1;
                    self.queue
                        .schedule(now.plus_ms(zombie_for_ms), Ev::ZombieStops);
                    self.start_coordinator(now, true);
                }
            }
            Fault::CoordinatorCrash {
                restart_after_ms,
                tear_last_record,
            } => {
                let torn =
                    tear_last_record && self.core.is_some() && self.disk.append_torn_copy_of_last();
                self.crash_coordinator(now, restart_after_ms, torn);
            }
            Fault::CoordinatorCrashOnNextFence {
                restart_after_ms,
                tear_last_record,
            } => self.crash_on_next_fence = Some((restart_after_ms, tear_last_record)),
            Fault::CoordinatorWallClockStep { delta_ms } => {
                w.coordinator_wall_offset_ms += delta_ms;
            }
            Fault::HostWallClockStep { host, delta_ms } => {
                // What the host writes into its heartbeat file changes; a
                // relative check ("did it change") is unaffected.
                w.hosts[host].wall_offset_ms += delta_ms;
            }
            // Applied by `cluster_fault` (nothing to do without instances).
            Fault::CoordinatorIsolated { .. }
            | Fault::CoordinatorQuorumCut { .. }
            | Fault::CoordinatorInstanceCrash { .. }
            | Fault::ActiveCrashOnNextFence { .. }
            | Fault::ForcedPromotion => {}
        }
        if let Some(h) = touched {
            let phase = self.tracks[h].phase_ms;
            self.world.refresh_heartbeat(h, now, phase);
        }
        if let Some(c) = cluster_touched {
            for h in self.world.clusters[c].hosts.clone() {
                let phase = self.tracks[h].phase_ms;
                self.world.refresh_heartbeat(h, now, phase);
            }
        }
    }

    fn chassis_on(&mut self, now: SimTime, host: HostIdx) {
        let h = &mut self.world.hosts[host];
        h.chassis = Chassis::On;
        h.os = Os::Booting;
        h.agent_up = false;
        self.tracks[host].last_on_at = Some(now);
        self.tracks[host].boot_id += 1;
        let boot_id = self.tracks[host].boot_id;
        self.queue
            .schedule(now.plus_ms(BOOT_MS), Ev::Booted { host, boot_id });
        self.timeline
            .line(now, "world", || format!("h{host} chassis ON, booting"));
    }

    fn power_lands(&mut self, now: SimTime, host: HostIdx, op: PowerOp, fence: bool) {
        if fence {
            self.checker.on_fence_finished(host);
        }
        if !self.world.bmc_answers(host) {
            // The BMC died between accepting and executing; nothing happens.
            return;
        }
        match op {
            PowerOp::Off | PowerOp::Cycle | PowerOp::Reset => {
                let h = &mut self.world.hosts[host];
                let was_on = h.chassis == Chassis::On;
                if op == PowerOp::Reset && !was_on {
                    return; // a reset of an OFF chassis does nothing
                }
                h.chassis = Chassis::Off;
                h.os = Os::Down;
                h.agent_up = false;
                self.tracks[host].last_off_at = Some(now);
                if fence {
                    let before = self.checker.violations.len();
                    self.checker.on_fence_landed(host, now, &self.world);
                    for v in &self.checker.violations[before..] {
                        let line = format!("{:?}: {}", v.invariant, v.detail);
                        self.timeline.line(now, "VIOLATION", || line);
                    }
                    if let Some(since) = self.world.hosts[host].dead_since {
                        self.tracks[host].fenced_death = Some(since);
                        self.recoveries += 1;
                        self.clear_dead(host);
                        self.timeline.line(now, "world", || {
                            format!("h{host} chassis OFF by {op:?}: dead host fenced {:.1} s after it died", now.since(since) as f64 / 1000.0)
                        });
                    } else {
                        self.timeline
                            .line(now, "world", || format!("h{host} chassis OFF by {op:?}"));
                    }
                }
                let phase = self.tracks[host].phase_ms;
                self.world.refresh_heartbeat(host, now, phase);
                if op != PowerOp::Off {
                    self.queue
                        .schedule(now.plus_ms(CYCLE_OFF_MS), Ev::ChassisBackOn { host });
                }
            }
            PowerOp::On => {
                if self.world.hosts[host].chassis == Chassis::Off {
                    self.chassis_on(now, host);
                }
            }
        }
    }

    /// Latency of a BMC exchange, or the outcome the driver reports at the
    /// timeout when the BMC does not answer in time.
    fn bmc_latency(&mut self, host: HostIdx, timeout_ms: u64) -> Result<u64, Outcome> {
        if !self.world.bmc_answers(host) {
            return Err(Outcome::BmcUnreachable);
        }
        let l = self.rng.gen_range(150..900) + self.world.hosts[host].bmc.extra_latency_ms;
        if l <= timeout_ms {
            Ok(l)
        } else {
            Err(Outcome::TimedOut)
        }
    }

    fn handle_outs(&mut self, now: SimTime, mut outs: Vec<CoreOut<Tag>>) {
        if self.cluster.as_ref().is_some_and(|c| c.acting().is_some()) {
            self.cluster_handle_outs(now, &mut outs);
            if let Some(core) = self.core.as_mut() {
                core.recycle(outs);
            }
            return;
        }
        let gen = self.gen;
        self.handle_outs_inner(now, &mut outs);
        // Answers of a core that crashed meanwhile would be dropped on
        // arrival (stale generation): schedule them with the generation that
        // asked, as one-by-one delivery did.
        self.schedule_round_answers(now, gen);
        if let Some(core) = self.core.as_mut() {
            core.recycle(outs);
        }
    }

    /// Schedules the answers to the round requests of one core call: per
    /// cluster and sorted by arrival, answers within [`ROUND_COLLECT_MS`] of
    /// the group's first arrival go together at the latest arrival of the
    /// group, provided that no member is held to or past its own timeout. A
    /// group of one is an ordinary delivery at its own time. Within a group
    /// the answers keep the order the core asked in (it walks its hosts in
    /// order, so this is also the cache-friendly order).
    fn schedule_round_answers(&mut self, now: SimTime, gen: u32) {
        if self.round_answers.is_empty() {
            return;
        }
        let mut answers = std::mem::take(&mut self.round_answers);
        // The core asks cluster by cluster: take each run of one cluster's
        // requests (a cluster seen again later just forms other groups).
        let mut run_start = 0;
        while run_start < answers.len() {
            let cluster = answers[run_start].cluster;
            let run_end = answers[run_start..]
                .iter()
                .position(|a| a.cluster != cluster)
                .map_or(answers.len(), |n| run_start + n);
            let run = &mut answers[run_start..run_end];
            // The common case, a healthy round: every answer fits in one
            // group, already in asking order; no sorting needed.
            let first = run.iter().map(|a| a.latency_ms).min().unwrap_or(0);
            let last = run.iter().map(|a| a.latency_ms).max().unwrap_or(0);
            let limit = run.iter().map(|a| a.latest_ms()).min().unwrap_or(0);
            if run.len() > 1 && last <= first + ROUND_COLLECT_MS && last <= limit {
                let mut batch = self.batch_pool.pop().unwrap_or_default();
                batch.extend(run.iter().map(|a| (a.tag, a.outcome)));
                self.queue.schedule(
                    now.plus_ms(last),
                    Ev::DeliverBatch {
                        gen,
                        answers: batch,
                    },
                );
                run_start = run_end;
                continue;
            }
            // Stable: equal arrivals keep the order the core asked in.
            run.sort_by_key(|a| a.latency_ms);
            let mut start = 0;
            while start < run.len() {
                let first = run[start].latency_ms;
                let mut limit = run[start].latest_ms();
                let mut end = start + 1;
                while end < run.len() {
                    let a = &run[end];
                    if a.latency_ms > first + ROUND_COLLECT_MS || a.latency_ms > limit {
                        break;
                    }
                    limit = limit.min(a.latest_ms());
                    end += 1;
                }
                let at = now.plus_ms(run[end - 1].latency_ms);
                if end - start == 1 {
                    let a = &run[start];
                    self.queue.schedule(
                        at,
                        Ev::Deliver {
                            gen,
                            tag: a.tag,
                            outcome: a.outcome,
                            window: None,
                        },
                    );
                } else {
                    let group = &mut run[start..end];
                    group.sort_by_key(|a| a.asked);
                    let mut batch = self.batch_pool.pop().unwrap_or_default();
                    batch.extend(group.iter().map(|a| (a.tag, a.outcome)));
                    self.queue.schedule(
                        at,
                        Ev::DeliverBatch {
                            gen,
                            answers: batch,
                        },
                    );
                }
                start = end;
            }
            run_start = run_end;
        }
        answers.clear();
        self.round_answers = answers;
    }

    /// Queues the answer to a round request (health check, power read) for
    /// [`Simulation::schedule_round_answers`].
    fn answer_round(
        &mut self,
        host: HostIdx,
        latency_ms: u64,
        timeout_ms: u64,
        tag: Tag,
        outcome: Outcome,
    ) {
        self.round_answers.push(RoundAnswer {
            asked: self.round_answers.len() as u32,
            cluster: self.world.hosts[host].cluster,
            latency_ms,
            timeout_ms,
            tag,
            outcome,
        });
    }

    fn handle_outs_inner(&mut self, now: SimTime, outs: &mut Vec<CoreOut<Tag>>) {
        let mut persisted_in_batch = false;
        for out in outs.drain(..) {
            match out {
                CoreOut::WakeAt(t) => {
                    let t = t.max(now);
                    if self.pending_wakes.insert(t) {
                        self.queue.schedule(t, Ev::CoreWake { gen: self.gen });
                    }
                }
                // The journal belongs to the new coordinator: a superseded
                // one's writes are refused (and its claims are not ours).
                CoreOut::Persist(_)
                | CoreOut::Transition { .. }
                | CoreOut::FenceConfirmed { .. }
                | CoreOut::MassFailureGuard { .. }
                | CoreOut::Note { .. }
                    if self.zombie_mode => {}
                CoreOut::Persist(rec) => {
                    self.disk
                        .append(&rec)
                        .expect("journal records always serialise");
                    persisted_in_batch = true;
                }
                CoreOut::Transition {
                    host,
                    from,
                    to,
                    why,
                } => {
                    let tr = &mut self.tracks[host];
                    tr.state = to;
                    tr.since = now;
                    *self.state_entries.entry(to).or_default() += 1;
                    if TRANSIENT_STATES.contains(&to) {
                        self.transient.insert(host);
                    } else {
                        self.transient.remove(&host);
                    }
                    if to == "FENCED" {
                        self.judge_fenced(now, host, &why);
                    }
                    if to == "FAILED" && self.world.hosts[host].dead_since.is_some() {
                        self.checker.on_failed(host);
                    }
                    if to == "AVAILABLE" {
                        if let Some(d) = self.tracks[host].death_started.take() {
                            self.time_to_available
                                .entry(host)
                                .or_default()
                                .push(now.since(d));
                        }
                    }
                    self.timeline
                        .line(now, "core", || format!("h{host} {from} -> {to}: {why}"));
                }
                CoreOut::FenceConfirmed {
                    host,
                    after_our_off,
                } => {
                    self.fence_successes += 1;
                    let tr = &self.tracks[host];
                    let off_now = self.world.hosts[host].chassis == Chassis::Off;
                    let ok = if after_our_off {
                        off_now
                            && matches!((tr.last_fence_issued, tr.last_off_at), (Some(f), Some(o)) if o >= f)
                    } else {
                        off_now
                    };
                    if !ok {
                        let detail = format!(
                            "core claims h{host} fenced but the chassis never went OFF after the last fence request (chassis now {:?})",
                            self.world.hosts[host].chassis
                        );
                        self.timeline.line(now, "VIOLATION", || detail.clone());
                        self.checker.fence_success_not_confirmed(now, host, detail);
                    } else {
                        if let Some(since) = self.tracks[host].fenced_death.take() {
                            // Crash to confirmed power-off: the figure the
                            // shipped defaults promise to keep under 60 s.
                            self.time_to_recovery
                                .entry(host)
                                .or_default()
                                .push(now.since(since));
                        }
                        self.timeline.line(now, "core", || {
                            format!("h{host} fence confirmed (chassis OFF read back)")
                        });
                    }
                }
                CoreOut::MassFailureGuard {
                    cluster,
                    tripped,
                    text,
                } => {
                    let kind = if tripped {
                        "mass_failure_detected"
                    } else {
                        "mass_failure_cleared"
                    };
                    *self.event_counts.entry(kind).or_default() += 1;
                    let _ = cluster;
                    self.timeline.line(now, "event", text);
                }
                CoreOut::Note { kind, text } => {
                    *self.event_counts.entry(kind).or_default() += 1;
                    self.timeline.line(now, "event", text);
                }
                CoreOut::Request {
                    tag,
                    request,
                    timeout_ms,
                } => {
                    if let Request::Power {
                        host,
                        fence: Some(_),
                        ..
                    } = &request
                    {
                        if self.cluster.is_some() {
                            let crash = self.cluster_crash_at_fence();
                            self.execute(now, tag, request, timeout_ms);
                            if crash {
                                return;
                            }
                            continue;
                        }
                        if self.zombie_mode {
                            self.execute(now, tag, request, timeout_ms);
                            continue;
                        }
                        {
                            if let Some((restart_after_ms, tear)) = self.crash_on_next_fence.take()
                            {
                                if tear && persisted_in_batch && self.disk.tear_last_record() {
                                    self.checker.note_unsent_fence(now, &self.world, *host);
                                    // The record announcing this fence never reached
                                    // the disk, so the fence never left either.
                                    self.timeline.line(now, "coord", || {
                                        format!("crash while journaling the fence of h{host}: record torn, fence not sent")
                                    });
                                    self.crash_coordinator(now, restart_after_ms, true);
                                    return;
                                }
                                self.execute(now, tag, request, timeout_ms);
                                self.crash_coordinator(now, restart_after_ms, false);
                                return;
                            }
                        }
                    }
                    self.execute(now, tag, request, timeout_ms);
                }
            }
        }
    }

    /// FENCED, reached by any path, promises the chassis is off (VMs may
    /// restart elsewhere): judged on the chassis, not on the core's word.
    /// The chassis may have come on since a truthful OFF read (a power
    /// feed restored while the answer travelled).
    fn judge_fenced(&mut self, now: SimTime, host: HostIdx, why: &str) {
        let tr = &self.tracks[host];
        let off_now = self.world.hosts[host].chassis == Chassis::Off;
        let came_on_after_true_read = matches!(
            (tr.last_off_answer, tr.last_on_at),
            (Some((read, true)), Some(on)) if on >= read
        );
        if !(off_now || came_on_after_true_read) {
            let detail = format!(
                "core declared h{host} FENCED ({why}) while its chassis is ON (last OFF answer {:?})",
                tr.last_off_answer
            );
            self.timeline.line(now, "VIOLATION", || detail.clone());
            self.checker.fence_success_not_confirmed(now, host, detail);
        }
    }

    fn deliver_in(&mut self, now: SimTime, delay_ms: u64, tag: Tag, outcome: Outcome) {
        let gen = self.gen;
        let at = now.plus_ms(delay_ms);
        self.queue.schedule(
            at,
            Ev::Deliver {
                gen,
                tag,
                outcome,
                window: None,
            },
        );
    }

    fn execute(&mut self, now: SimTime, tag: Tag, request: Request, timeout_ms: u64) {
        match request {
            Request::Health { host } => {
                let w = &self.world;
                let running =
                    w.hosts[host].chassis == Chassis::On && w.hosts[host].os == Os::Running;
                if !(w.agent_reachable(host) && running) {
                    self.answer_round(host, timeout_ms, timeout_ms, tag, Outcome::TimedOut);
                } else if !w.hosts[host].agent_up {
                    let l = self.rng.gen_range(1..20);
                    self.answer_round(host, l, timeout_ms, tag, Outcome::AgentDown);
                } else if !w.agent_healthy(host) {
                    let l = self.rng.gen_range(5..200);
                    self.answer_round(
                        host,
                        l.min(timeout_ms),
                        timeout_ms,
                        tag,
                        Outcome::AgentUnhealthy,
                    );
                } else {
                    let l = self.rng.gen_range(5..120);
                    self.answer_round(host, l.min(timeout_ms), timeout_ms, tag, Outcome::Healthy);
                }
            }
            Request::Activity {
                target,
                checker,
                window_ms,
            } => {
                let gen = self.gen;
                if !self.world.agent_reachable(checker) || !self.world.agent_answers(checker) {
                    self.deliver_in(now, timeout_ms, tag, Outcome::TimedOut);
                } else if !self.world.can_read_storage(checker) {
                    let l = self.rng.gen_range(5..200);
                    self.deliver_in(now, l, tag, Outcome::CheckerCannotReadStorage);
                } else if window_ms > timeout_ms
                    || self.world.clusters[self.world.hosts[target].cluster].storage_slow
                {
                    // storage-slow: the reads outlast the window and the
                    // check's time bound.
                    self.deliver_in(now, timeout_ms, tag, Outcome::TimedOut);
                } else {
                    let lw_start = self.world.last_write(target, now);
                    let epoch = self.world.hosts[target].failure_epoch;
                    self.queue.schedule(
                        now.plus_ms(window_ms),
                        Ev::ActivityEnd {
                            gen,
                            tag,
                            target,
                            checker,
                            start: now,
                            lw_start,
                            epoch,
                        },
                    );
                }
            }
            Request::PowerRead { host } => match self.bmc_latency(host, timeout_ms) {
                Err(o) => self.answer_round(host, timeout_ms, timeout_ms, tag, o),
                Ok(l) => {
                    let h = &self.world.hosts[host];
                    let o = match h.bmc.read(h.chassis) {
                        Chassis::On => Outcome::PowerIsOn,
                        Chassis::Off => Outcome::PowerIsOff,
                    };
                    if o == Outcome::PowerIsOff {
                        let truthful = self.world.hosts[host].chassis == Chassis::Off;
                        self.tracks[host].last_off_answer = Some((now, truthful));
                    }
                    self.answer_round(host, l, timeout_ms, tag, o);
                }
            },
            Request::Power {
                host,
                op,
                fence: evidence,
                epoch,
            } => {
                if self.zombie_mode {
                    self.zombie_power_actions += 1;
                }
                // Several instances: the power driver asks the replica
                // (epoch, role, view, quorum lease, take-over grace); the
                // action carries the epoch its instance became active in.
                let mut by = None;
                let mut epoch = epoch;
                if self.cluster.is_some() {
                    match self.cluster_authorize(now) {
                        Ok((i, e)) => {
                            by = Some((i, e, now));
                            epoch = e as u32;
                        }
                        Err(why) => {
                            self.cluster_note_refusal();
                            if matches!(op, PowerOp::Off | PowerOp::Cycle | PowerOp::Reset)
                                && self.world.hosts[host].vms > 0
                            {
                                self.checker.note_refused_fence(now, &self.world, host);
                            }
                            self.timeline.line(now, "coord", || {
                                format!("power driver refuses {op:?} of h{host}: {why}")
                            });
                            let l = self.rng.gen_range(1..20);
                            self.deliver_in(now, l, tag, Outcome::PowerRefused);
                            return;
                        }
                    }
                }
                let token_checked =
                    self.opts.broken != Some(BrokenGate::FencingToken) && self.cluster.is_none();
                if token_checked && epoch < self.world.fencing_token {
                    // The BMC driver refuses a superseded coordinator.
                    self.timeline.line(now, "world", || {
                        format!(
                            "BMC driver refuses {op:?} of h{host}: epoch {epoch} < token {}",
                            self.world.fencing_token
                        )
                    });
                    let l = self.rng.gen_range(1..20);
                    self.deliver_in(now, l, tag, Outcome::PowerRefused);
                    return;
                }
                // Every operation that takes power from a host running VMs
                // is judged as a fence, whatever the core calls it: the
                // simulated data center has no operator, so a power-off
                // without activity evidence is never justified.
                let fence = matches!(op, PowerOp::Off | PowerOp::Cycle | PowerOp::Reset)
                    && self.world.hosts[host].vms > 0;
                let latency = self.bmc_latency(host, timeout_ms);
                if fence {
                    self.fences += 1;
                    self.tracks[host].last_fence_issued = Some(now);
                    let until = now.plus_ms(*latency.as_ref().unwrap_or(&timeout_ms));
                    // Quorum is judged for the instance that issues it.
                    let saved = (
                        self.world.quorate,
                        self.world.quorum_lost_at,
                        self.world.quorum_provider_alive,
                    );
                    if let Some((i, _, _)) = by {
                        let (q, lost, link) = self.cluster_quorum_truth(i);
                        self.world.quorate = q;
                        self.world.quorum_lost_at = lost;
                        self.world.quorum_provider_alive = link;
                    }
                    let n = self.checker.on_fence_issued(
                        now,
                        &self.world,
                        host,
                        until,
                        evidence.as_ref(),
                    );
                    (
                        self.world.quorate,
                        self.world.quorum_lost_at,
                        self.world.quorum_provider_alive,
                    ) = saved;
                    self.timeline.line(now, "FENCE", || {
                        format!(
                            "core issues {op:?} of h{host} (quorate={}, host dead={}, evidence={})",
                            self.world.quorate,
                            self.world.hosts[host].dead_since.is_some(),
                            evidence.is_some()
                        )
                    });
                    if n > 0 {
                        for v in &self.checker.violations[self.checker.violations.len() - n..] {
                            let line = format!("{:?}: {}", v.invariant, v.detail);
                            self.timeline.line(now, "VIOLATION", || line);
                        }
                    }
                }
                match latency {
                    Err(o) => self.deliver_in(now, timeout_ms, tag, o),
                    Ok(l) => {
                        let lands = Ev::PowerLands {
                            host,
                            op,
                            fence,
                            epoch,
                            token_at_issue: self.world.fencing_token,
                            by,
                        };
                        self.queue.schedule(now.plus_ms(l), lands);
                        let bmc = &self.world.hosts[host].bmc;
                        if bmc.duplicates_ops {
                            // A retransmitted command executes again.
                            let again = l + self.rng.gen_range(300..3_000);
                            let lands = Ev::PowerLands {
                                host,
                                op,
                                fence,
                                epoch,
                                token_at_issue: self.world.fencing_token,
                                by,
                            };
                            self.queue.schedule(now.plus_ms(again), lands);
                        }
                        if self.world.hosts[host].bmc.loses_acks {
                            // Executed, but the answer is lost (the driver
                            // times out) or comes after the timeout.
                            let late = if self.rng.gen_bool(0.5) {
                                timeout_ms
                            } else {
                                timeout_ms + self.rng.gen_range(1..5_000)
                            };
                            let o = if late == timeout_ms {
                                Outcome::TimedOut
                            } else {
                                Outcome::PowerDone
                            };
                            self.deliver_in(now, late, tag, o);
                        } else {
                            self.deliver_in(now, l, tag, Outcome::PowerDone);
                        }
                    }
                }
            }
        }
    }

    fn sample(&mut self, now: SimTime) {
        let view = self.coord_view();
        if !self.dead.is_empty() {
            let dead = self.dead.clone();
            let before = self.checker.violations.len();
            self.checker.check_dead_hosts(now, &self.world, &dead, view);
            for v in &self.checker.violations[before..] {
                let line = format!(
                    "{:?} {}: {}",
                    v.invariant,
                    v.host.as_deref().unwrap_or("-"),
                    v.detail
                );
                self.timeline.line(now, "VIOLATION", || line);
            }
        }
        let bound = self.checker.bounds.operation_state_bound_ms;
        let stuck: Vec<(HostIdx, &'static str, SimTime)> = self
            .transient
            .iter()
            .map(|&h| (h, self.tracks[h].state, self.tracks[h].since))
            .filter(|(_, s, since)| OPERATION_STATES.contains(s) && now.since(*since) > bound)
            .collect();
        for (h, s, since) in stuck {
            self.checker.stuck(now, h, s, since, bound);
            self.timeline.line(now, "VIOLATION", || {
                format!("h{h} stuck in {s} since {since}")
            });
            // Report once per stay.
            self.tracks[h].since = now;
        }
    }

    /// A host's state at the end: the coordinator's core's, or the last
    /// one it announced.
    fn final_host_state(&self, h: HostIdx) -> &'static str {
        let core = if self.cluster.is_some() {
            self.cluster_host_state(h)
        } else {
            self.core.as_ref().map(|c| c.host_state(h))
        };
        core.unwrap_or(self.tracks[h].state)
    }

    fn finish(mut self) -> RunReport {
        let now = self.end;
        if self.cluster.is_some() {
            self.cluster_sync_world(now);
        }
        let (coordinators, promotions, epoch_refusals) = if self.cluster.is_some() {
            self.cluster_figures()
        } else {
            (1, 0, 0)
        };
        let (compactions, snapshot_transfers) = if self.cluster.is_some() {
            self.cluster_compaction_figures()
        } else {
            (0, 0)
        };
        // End-of-run settle check: after a quiet tail, nothing transient.
        if self.opts.settle_ms > 0
            && now.since(self.last_disruptive_fault) >= self.opts.settle_ms
            && self.coord_view().up
        {
            let settled_before = SimTime(now.0 - self.opts.settle_ms / 2);
            // A SUSPECT host with fewer than two peers able to check it
            // stays SUSPECT by design (one checker never convicts alone):
            // excused by ground truth, not by the core's word.
            let stuck: Vec<_> = self
                .transient
                .iter()
                .map(|&h| (h, self.tracks[h].state, self.tracks[h].since))
                .filter(|(_, _, since)| *since <= settled_before)
                .filter(|&(h, s, _)| !(s == "SUSPECT" && self.world.possible_checkers(h) < 2))
                .collect();
            for (h, s, since) in stuck {
                self.checker
                    .stuck(now, h, s, since, self.opts.settle_ms / 2);
                self.timeline.line(now, "VIOLATION", || {
                    format!("h{h} still {s} at the end of a quiet tail")
                });
            }
        }
        let mut final_states: BTreeMap<String, usize> = BTreeMap::new();
        for h in 0..self.world.hosts.len() {
            let s = self.final_host_state(h);
            *final_states.entry(s.to_string()).or_default() += 1;
        }
        let host_states: BTreeMap<String, String> = if self.world.hosts.len() <= 64 {
            (0..self.world.hosts.len())
                .map(|h| {
                    let s = self.final_host_state(h);
                    (format!("h{h}"), s.to_string())
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        let to_s = |v: &BTreeMap<HostIdx, Vec<u64>>| -> BTreeMap<String, f64> {
            v.iter()
                .map(|(h, xs)| (format!("h{h}"), *xs.iter().max().unwrap() as f64 / 1000.0))
                .collect()
        };
        let ttr = to_s(&self.time_to_recovery);
        let max_ttr = self
            .time_to_recovery
            .values()
            .flatten()
            .max()
            .map(|&m| m as f64 / 1000.0);
        RunReport {
            scenario: self.scenario_name.clone(),
            seed: self.opts.seed,
            hosts: self.world.hosts.len(),
            clusters: self.world.clusters.len(),
            virtual_duration_s: self.end.as_secs_f64(),
            fences: self.fences,
            fence_successes: self.fence_successes,
            recoveries: self.recoveries,
            violations: std::mem::take(&mut self.checker.violations),
            max_time_to_recovery_s: max_ttr,
            time_to_recovery_s: ttr,
            time_to_available_s: to_s(&self.time_to_available),
            final_state_counts: final_states,
            host_states,
            state_entries: self
                .state_entries
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            core_events: self
                .event_counts
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            coordinator_restarts: self.coordinator_restarts,
            superseded_power_actions: self.zombie_power_actions,
            coordinators,
            promotions,
            epoch_refusals,
            compactions,
            snapshot_transfers,
            fence_races: self.checker.fence_races,
            stale_inventory_fences: self.checker.stale_inventory_fences,
            journal_bytes: self.disk.len(),
            events: self.events,
            max_queue_len: self.max_queue,
            core_calls: self.core_calls,
            timeline: self.timeline.into_lines(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::Topology;
    use hactl_core::{HostId, OpId, OpRef, StateVersion};

    fn sim(hosts: usize, per_cluster: usize) -> Simulation {
        let sc = Scenario {
            name: "grouping".into(),
            topology: Topology::new(hosts, per_cluster),
            duration: SimTime::from_secs(60),
            faults: Vec::new(),
        };
        let mut s = Simulation::new(
            &sc,
            RunOptions {
                seed: 7,
                timeline: false,
                settle_ms: 0,
                broken: None,
                cluster: None,
            },
        );
        // Only the deliveries scheduled by the test stay in the queue.
        s.queue = EventQueue::new();
        s
    }

    fn tag(host: u32) -> Tag {
        Tag::Health(OpRef {
            id: OpId::new(1, u64::from(host) + 1),
            host: HostId(host),
            version: StateVersion(1),
        })
    }

    fn host_of(t: &Tag) -> u32 {
        match t {
            Tag::Health(op) | Tag::PowerRead(op) | Tag::PowerAction(op) => op.host.0,
            Tag::Activity(op, _) => op.host.0,
        }
    }

    /// (delivery time, hosts in delivery order, batched?) of everything queued.
    fn deliveries(s: &mut Simulation) -> Vec<(u64, Vec<u32>, bool)> {
        std::iter::from_fn(|| s.queue.pop())
            .map(|(t, ev)| match ev {
                Ev::Deliver { tag, .. } => (t.0, vec![host_of(&tag)], false),
                Ev::DeliverBatch { answers, .. } => {
                    (t.0, answers.iter().map(|(t, _)| host_of(t)).collect(), true)
                }
                _ => panic!("only deliveries are scheduled"),
            })
            .collect()
    }

    #[test]
    fn a_rounds_fast_answers_go_together_in_asking_order_and_timeouts_keep_their_time() {
        let mut s = sim(8, 4);
        let now = SimTime(10_000);
        // Cluster 0 (hosts 0-3): three fast answers and one timeout.
        s.answer_round(0, 90, 3_000, tag(0), Outcome::Healthy);
        s.answer_round(1, 7, 3_000, tag(1), Outcome::Healthy);
        s.answer_round(2, 3_000, 3_000, tag(2), Outcome::TimedOut);
        s.answer_round(3, 150, 3_000, tag(3), Outcome::AgentUnhealthy);
        // Cluster 1 (hosts 4-7): answers never mix with cluster 0's.
        s.answer_round(4, 20, 3_000, tag(4), Outcome::Healthy);
        s.answer_round(5, 60, 3_000, tag(5), Outcome::AgentDown);
        s.schedule_round_answers(now, 0);
        assert!(s.round_answers.is_empty());
        assert_eq!(
            deliveries(&mut s),
            vec![
                (10_060, vec![4, 5], true),
                (10_150, vec![0, 1, 3], true),
                (13_000, vec![2], false),
            ]
        );
    }

    #[test]
    fn answers_further_apart_than_the_collect_window_arrive_separately() {
        let mut s = sim(4, 4);
        let now = SimTime(0);
        s.answer_round(0, 100, 10_000, tag(0), Outcome::PowerIsOn);
        s.answer_round(
            1,
            100 + ROUND_COLLECT_MS,
            10_000,
            tag(1),
            Outcome::PowerIsOn,
        );
        s.answer_round(
            2,
            101 + ROUND_COLLECT_MS,
            10_000,
            tag(2),
            Outcome::PowerIsOn,
        );
        s.schedule_round_answers(now, 0);
        assert_eq!(
            deliveries(&mut s),
            vec![
                (100 + ROUND_COLLECT_MS, vec![0, 1], true),
                (101 + ROUND_COLLECT_MS, vec![2], false),
            ]
        );
    }

    #[test]
    fn an_answer_that_beat_its_timeout_is_never_held_to_it() {
        let mut s = sim(4, 4);
        let now = SimTime(0);
        // Arrives 100 ms before its timeout; the other answer is the
        // timeout itself, within the collect window, but must not take the
        // early answer with it.
        s.answer_round(0, 2_900, 3_000, tag(0), Outcome::Healthy);
        s.answer_round(1, 3_000, 3_000, tag(1), Outcome::TimedOut);
        // Two answers short of their (shorter) timeouts collect no later
        // than the earliest of those timeouts allows.
        s.answer_round(2, 1_000, 1_100, tag(2), Outcome::Healthy);
        s.answer_round(3, 1_150, 3_000, tag(3), Outcome::Healthy);
        s.schedule_round_answers(now, 0);
        assert_eq!(
            deliveries(&mut s),
            vec![
                (1_000, vec![2], false),
                (1_150, vec![3], false),
                (2_900, vec![0], false),
                (3_000, vec![1], false),
            ]
        );
    }
}
