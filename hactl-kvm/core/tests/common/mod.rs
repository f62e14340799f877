//! A tiny deterministic world for core-level tests: hosts with agents,
//! heartbeats and BMCs, driven on a virtual clock. (The full simulator with
//! fault injection is `hactl-sim`; this only exercises the core's rules.)
#![allow(dead_code)]

use hactl_core::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct SimHost {
    pub cluster: ClusterId,
    /// The OS runs (VMs write heartbeats while it does).
    pub alive: bool,
    /// Since when the heartbeat stopped (None: advancing).
    pub hb_stopped_at: Option<Millis>,
    pub agent_ok: bool,
    /// This host can read the shared storage (as a checker).
    pub storage_ok: bool,
    pub power_on: bool,
    pub bmc_ok: bool,
    /// The BMC answers but never within the timeout.
    pub bmc_slow: bool,
    pub has_vms: bool,
    pub boot_at: Option<Millis>,
    pub resource_state: ResourceState,
    /// The BMC accepts power-on but the chassis stays off.
    pub stuck_off: bool,
    /// The BMC reads OFF whatever the chassis does.
    pub bmc_lies_off: bool,
}

impl SimHost {
    pub fn new(cluster: ClusterId) -> Self {
        SimHost {
            cluster,
            alive: true,
            hb_stopped_at: None,
            agent_ok: true,
            storage_ok: true,
            power_on: true,
            bmc_ok: true,
            bmc_slow: false,
            has_vms: true,
            boot_at: None,
            resource_state: ResourceState::Enabled,
            stuck_off: false,
            bmc_lies_off: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FenceSeen {
    pub at: Millis,
    pub host: HostId,
    pub evidence: Evidence,
    pub quorate: bool,
}

pub struct World {
    pub core: Coordinator,
    pub cfg: Config,
    pub now: Millis,
    pub hosts: BTreeMap<HostId, SimHost>,
    pub clusters: Vec<ClusterId>,
    pending: Vec<(Millis, u64, Input)>,
    pending_seq: u64,
    pub events: Vec<(Millis, Event)>,
    pub journal: Vec<Record>,
    pub fences: Vec<FenceSeen>,
    pub power_actions: Vec<(Millis, HostId, bool)>,
    pub quorate: bool,
    pub violations: Vec<String>,
    /// Deliver results of operations (false: drop them, as if the network
    /// between coordinator and hosts were cut).
    pub network_ok: bool,
    /// Start time of the current coordinator incarnation.
    pub started_at: Millis,
    /// Outstanding power actions per host: (issued at, timeout).
    pub outstanding: BTreeMap<HostId, (Millis, Millis)>,
    /// When the quorum provider next repeats "quorate" (renews the lease).
    next_quorum_renewal: Millis,
    /// The quorum provider has gone silent (no more renewals).
    pub quorum_provider_silent: bool,
    /// Fences whose FenceIssued record has been persisted.
    persisted_fences: Vec<FenceId>,
    /// Results are held instead of delivered (see `hold_results`).
    pub hold: bool,
    pub held: Vec<Input>,
}

/// The quorum provider repeats its report this often (the core's lease is
/// 30 s).
pub const QUORUM_RENEWAL_MS: Millis = 10_000;

pub const HB_LAT: Millis = 50;

impl World {
    /// `clusters` clusters of `per_cluster` hosts each, quorate, past grace.
    pub fn new(cfg: Config, clusters: u32, per_cluster: u32) -> World {
        let core = Coordinator::new(cfg.clone(), 0).expect("valid config");
        let mut w = World {
            core,
            cfg,
            now: 0,
            hosts: BTreeMap::new(),
            clusters: (0..clusters).map(ClusterId).collect(),
            pending: Vec::new(),
            pending_seq: 0,
            events: Vec::new(),
            journal: Vec::new(),
            fences: Vec::new(),
            power_actions: Vec::new(),
            quorate: true,
            violations: Vec::new(),
            network_ok: true,
            started_at: 0,
            outstanding: BTreeMap::new(),
            next_quorum_renewal: QUORUM_RENEWAL_MS,
            quorum_provider_silent: false,
            persisted_fences: Vec::new(),
            hold: false,
            held: Vec::new(),
        };
        let start = w.core.start_actions();
        w.process(start);
        for c in 0..clusters {
            for k in 0..per_cluster {
                w.hosts
                    .insert(HostId(c * 1000 + k), SimHost::new(ClusterId(c)));
            }
        }
        w.feed(Input::QuorumChanged { quorate: true });
        let inv = w.inventory();
        w.feed(Input::Inventory(inv));
        w
    }

    pub fn inventory(&self) -> Inventory {
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
            clusters: self
                .clusters
                .iter()
                .map(|&id| Cluster {
                    id,
                    pod: PodId(0),
                    enabled: true,
                    ha_enabled: true,
                })
                .collect(),
            hosts: self
                .hosts
                .iter()
                .map(|(&id, h)| Host {
                    id,
                    cluster: h.cluster,
                    resource_state: h.resource_state,
                    oobm_enabled: true,
                    has_vms: h.has_vms,
                    overrides: HostOverrides::default(),
                })
                .collect(),
        }
    }

    pub fn host_input(&self, id: HostId) -> Input {
        let h = &self.hosts[&id];
        Input::InventoryChange(InventoryChange::UpsertHost(Host {
            id,
            cluster: h.cluster,
            resource_state: h.resource_state,
            oobm_enabled: true,
            has_vms: h.has_vms,
            overrides: HostOverrides::default(),
        }))
    }

    pub fn feed(&mut self, input: Input) {
        let actions = self.core.handle(self.now, input);
        self.process(actions);
    }

    fn later(&mut self, at: Millis, input: Input) {
        if self.hold {
            self.held.push(input);
            return;
        }
        self.pending_seq += 1;
        self.pending.push((at, self.pending_seq, input));
    }

    /// Holds every result in flight, and every later one, in `held` (to be
    /// fed as one batch by the test).
    pub fn hold_results(&mut self) {
        self.hold = true;
        self.pending.sort_by_key(|p| (p.0, p.1));
        let drained: Vec<Input> = self.pending.drain(..).map(|p| p.2).collect();
        self.held.extend(drained);
    }

    pub fn crash(&mut self, id: HostId) {
        let now = self.now;
        let h = self.hosts.get_mut(&id).unwrap();
        h.alive = false;
        h.hb_stopped_at.get_or_insert(now);
    }

    fn hb_advanced(&self, id: HostId, from: Millis) -> bool {
        let h = &self.hosts[&id];
        match h.hb_stopped_at {
            None => true,
            Some(stop) => stop > from,
        }
    }

    fn process(&mut self, actions: Vec<Action>) {
        let now = self.now;
        for a in actions {
            if a.is_power_change() && !self.quorate {
                self.violations
                    .push(format!("{now}: power action without quorum: {a:?}"));
            }
            match a {
                Action::Emit(e) => self.events.push((now, e)),
                Action::Persist(r) => {
                    if let Record::FenceIssued { fence, .. } = &r {
                        self.persisted_fences.push(*fence);
                    }
                    self.journal.push(r)
                }
                Action::RunHealthCheck { op, .. } => {
                    let h = &self.hosts[&op.host];
                    if !self.network_ok {
                        continue;
                    }
                    if h.alive && h.power_on && h.agent_ok {
                        self.later(
                            now + HB_LAT,
                            Input::HealthResult {
                                op,
                                outcome: HealthOutcome::Passed,
                            },
                        );
                    } else if h.alive && h.power_on {
                        self.later(
                            now + HB_LAT,
                            Input::HealthResult {
                                op,
                                outcome: HealthOutcome::AgentUnreachable,
                            },
                        );
                    }
                    // A dead host does not answer: the core times out.
                }
                Action::RunActivityCheck {
                    op,
                    checker,
                    window_ms,
                    ..
                } => {
                    if !self.network_ok {
                        continue;
                    }
                    let to = now + window_ms;
                    let c = &self.hosts[&checker];
                    let verdict = if !c.storage_ok {
                        ActivityVerdict::CannotTell(CannotTellReason::CheckerStorageUnreadable)
                    } else if !c.alive {
                        continue;
                    } else if self.hosts[&op.host].hb_stopped_at.is_some_and(|s| s <= now) {
                        ActivityVerdict::Dead
                    } else {
                        // Decided at the end of the window (see below).
                        ActivityVerdict::Alive
                    };
                    self.later(
                        to,
                        Input::ActivityResult {
                            op,
                            checker,
                            verdict,
                            window: Window { from: now, to },
                        },
                    );
                }
                Action::ReadPower { op, .. } => {
                    if !self.network_ok {
                        continue;
                    }
                    let h = &self.hosts[&op.host];
                    if h.bmc_slow {
                        continue;
                    }
                    let reading = if !h.bmc_ok {
                        PowerReading::Unreachable
                    } else if h.power_on && !h.bmc_lies_off {
                        PowerReading::On
                    } else {
                        PowerReading::Off
                    };
                    self.later(now + 100, Input::PowerReadResult { op, reading });
                }
                Action::PowerOff {
                    op,
                    reason,
                    timeout_ms,
                } => {
                    if let PowerOffReason::Fence { evidence, fence } = &reason {
                        // Write-ahead: the fence's record is durable before
                        // its power-off is carried out (actions in order).
                        if !self.persisted_fences.contains(fence) {
                            self.violations.push(format!(
                                "{now}: power-off of {fence} before its FenceIssued record"
                            ));
                        }
                        if let Some(&(at, t)) = self.outstanding.get(&op.host) {
                            if at + t > now {
                                self.violations.push(format!(
                                    "{now}: fence of {} while a power action is outstanding",
                                    op.host
                                ));
                            }
                        }
                        if now < self.started_at + self.cfg.startup_grace_ms {
                            self.violations
                                .push(format!("{now}: fence during startup grace"));
                        }
                        // Ground truth, not the core's partition state: the
                        // partition had the healthy hosts ACTIVE requires.
                        let c = self.hosts[&op.host].cluster;
                        let healthy_peers = self
                            .hosts
                            .iter()
                            .filter(|(id, h)| {
                                **id != op.host
                                    && h.cluster == c
                                    && h.alive
                                    && h.power_on
                                    && h.agent_ok
                            })
                            .count() as u32;
                        if healthy_peers + 1 < self.cfg.min_available_hosts {
                            self.violations.push(format!(
                                "{now}: fence while partition {c} had {healthy_peers} healthy peers"
                            ));
                        }
                        self.fences.push(FenceSeen {
                            at: now,
                            host: op.host,
                            evidence: evidence.clone(),
                            quorate: self.quorate,
                        });
                        // The decisive invariant: never fence a host whose
                        // heartbeat advanced during the evidence window.
                        if let Some(span) = evidence.span() {
                            if self.hb_advanced(op.host, span.from) {
                                self.violations.push(format!(
                                    "{now}: fenced {} whose heartbeat advanced in {:?}",
                                    op.host, span
                                ));
                            }
                        }
                        if evidence.dead_samples() < self.cfg.evidence.dead_required as usize {
                            self.violations
                                .push(format!("{now}: fence without N dead samples"));
                        }
                    }
                    self.power_actions.push((now, op.host, false));
                    self.outstanding.insert(op.host, (now, timeout_ms));
                    let h = self.hosts.get_mut(&op.host).unwrap();
                    if !self.network_ok || h.bmc_slow {
                        continue;
                    }
                    let outcome = if h.bmc_ok {
                        h.power_on = false;
                        h.alive = false;
                        h.boot_at = None;
                        h.hb_stopped_at.get_or_insert(now);
                        PowerActionOutcome::Accepted
                    } else {
                        PowerActionOutcome::Failed(PowerFailure::Unreachable)
                    };
                    self.later(now + 200, Input::PowerActionResult { op, outcome });
                }
                Action::PowerOn { op, timeout_ms, .. } | Action::PowerCycle { op, timeout_ms } => {
                    self.power_actions.push((now, op.host, true));
                    self.outstanding.insert(op.host, (now, timeout_ms));
                    let h = self.hosts.get_mut(&op.host).unwrap();
                    if !self.network_ok || h.bmc_slow {
                        continue;
                    }
                    let outcome = if h.bmc_ok && h.stuck_off {
                        PowerActionOutcome::Accepted
                    } else if h.bmc_ok {
                        h.power_on = true;
                        h.alive = false;
                        h.hb_stopped_at.get_or_insert(now);
                        h.boot_at = Some(now + 60_000);
                        PowerActionOutcome::Accepted
                    } else {
                        PowerActionOutcome::Failed(PowerFailure::Unreachable)
                    };
                    self.later(now + 200, Input::PowerActionResult { op, outcome });
                }
            }
        }
    }

    fn step_world(&mut self) {
        let now = self.now;
        for h in self.hosts.values_mut() {
            if let Some(b) = h.boot_at {
                if b <= now && h.power_on {
                    h.alive = true;
                    h.hb_stopped_at = None;
                    h.boot_at = None;
                }
            }
        }
    }

    /// Runs until virtual time `t`.
    pub fn run_until(&mut self, t: Millis) {
        loop {
            let next_pending = self.pending.iter().map(|p| (p.0, p.1)).min();
            let next_timer = self.core.next_timeout();
            let next_boot = self.hosts.values().filter_map(|h| h.boot_at).min();
            let renewal = Some(self.next_quorum_renewal);
            let next = [next_pending.map(|p| p.0), next_timer, next_boot, renewal]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|&n| n <= t) else {
                self.now = t.max(self.now);
                let a = self.core.handle(self.now, Input::Tick);
                self.process(a);
                return;
            };
            self.now = next.max(self.now);
            self.step_world();
            if self.now >= self.next_quorum_renewal {
                self.next_quorum_renewal = self.now + QUORUM_RENEWAL_MS;
                if self.quorate && !self.quorum_provider_silent {
                    let a = self
                        .core
                        .handle(self.now, Input::QuorumChanged { quorate: true });
                    self.process(a);
                }
                continue;
            }
            if let Some((at, seq)) = next_pending.filter(|p| p.0 <= self.now) {
                let idx = self
                    .pending
                    .iter()
                    .position(|p| p.0 == at && p.1 == seq)
                    .unwrap();
                let (_, _, mut input) = self.pending.remove(idx);
                if let Input::PowerActionResult { op, .. } = &input {
                    self.outstanding.remove(&op.host);
                }
                // Activity verdicts are judged at the end of the window.
                if let Input::ActivityResult {
                    op,
                    verdict,
                    window,
                    ..
                } = &mut input
                {
                    if *verdict == ActivityVerdict::Alive && !self.hb_advanced(op.host, window.from)
                    {
                        *verdict = ActivityVerdict::Dead;
                    }
                    if *verdict == ActivityVerdict::Dead && self.hb_advanced(op.host, window.from) {
                        *verdict = ActivityVerdict::Alive;
                    }
                }
                let a = self.core.handle(self.now, input);
                self.process(a);
            } else {
                let a = self.core.handle(self.now, Input::Tick);
                self.process(a);
            }
        }
    }

    /// The coordinator crashes and a new one is rebuilt from the journal.
    /// Results still in flight for the old incarnation are delivered to the
    /// new one (and must be discarded by it).
    pub fn restart(&mut self) {
        let records = self.journal.clone();
        let (core, actions) =
            Coordinator::recover(self.cfg.clone(), records, self.now).expect("recover");
        self.core = core;
        self.started_at = self.now;
        self.process(actions);
        let q = self.quorate;
        self.feed(Input::QuorumChanged { quorate: q });
        let inv = self.inventory();
        self.feed(Input::Inventory(inv));
    }

    /// Runs in small steps until `cond` holds (or `limit` is reached).
    pub fn run_until_cond<F: Fn(&World) -> bool>(&mut self, limit: Millis, cond: F) -> bool {
        while self.now < limit {
            if cond(self) {
                return true;
            }
            let t = self.now + 10;
            self.run_until(t);
        }
        cond(self)
    }

    pub fn set_quorum(&mut self, q: bool) {
        self.quorate = q;
        self.feed(Input::QuorumChanged { quorate: q });
    }

    pub fn ha(&self, id: HostId) -> HaState {
        self.core.host(id).unwrap().ha
    }

    pub fn fence_count(&self, id: HostId) -> usize {
        self.fences.iter().filter(|f| f.host == id).count()
    }

    pub fn events_of<F: Fn(&Event) -> bool>(&self, f: F) -> Vec<(Millis, Event)> {
        self.events.iter().filter(|(_, e)| f(e)).cloned().collect()
    }

    /// Time of the first FenceConfirmed event for `id` after `after`.
    pub fn confirmed_off_at(&self, id: HostId, after: Millis) -> Option<Millis> {
        self.events.iter().find_map(|(t, e)| match e {
            Event::FenceConfirmed { host, .. } if *host == id && *t >= after => Some(*t),
            _ => None,
        })
    }

    pub fn partition(&self, c: ClusterId) -> PartitionState {
        self.core.partition(c).unwrap().state
    }
}

/// Defaults for tests: the shipped defaults.
pub fn cfg() -> Config {
    Config::default()
}

/// An operator command as root ran it.
pub fn operator(command: OperatorCommand) -> Input {
    Input::Operator {
        by: Operator {
            uid: 0,
            user: Some("root".into()),
        },
        command,
    }
}
