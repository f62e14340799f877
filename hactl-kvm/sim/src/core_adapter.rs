//! The only place that knows the real core's types: turns the simulator's
//! world into the core's inventory, its answers into core [`Input`]s, and
//! the core's [`Action`]s into simulator requests.

use hactl_core::{
    Action, ActivityVerdict, CannotTellReason, Cluster, ClusterId, Config, Coordinator, Event,
    HealthOutcome, Host, HostId, HostOverrides, Input, Inventory, InventoryChange, OffConfirmation,
    OpRef, Pod, PodId, PowerActionOutcome, PowerFailure, PowerOffReason, PowerReading, Record,
    ResourceState, Window, Zone, ZoneId,
};

use crate::clock::SimTime;
use crate::engine::BrokenGate;
use crate::invariants::Bounds;
use crate::protocol::{CoreOut, FenceEvidence, Outcome, PowerOp, Request};
use crate::world::{HostIdx, World};
use hactl_journal::MemJournal;

/// Recovery bound the liveness invariant states: a dead host whose fencing
/// nothing blocks is confirmed OFF within this time of its death.
pub const RECOVERY_BOUND_MS: u64 = 120_000;
/// CHECKING and RECOVERING are bounded by operation timeouts; staying in
/// either longer than this means the core lost track of the host.
pub const OPERATION_STATE_BOUND_MS: u64 = 900_000;

/// Correlates a request with the core operation it answers.
#[derive(Debug, Clone, Copy)]
pub enum Tag {
    Health(OpRef),
    Activity(OpRef, HostId),
    PowerRead(OpRef),
    PowerAction(OpRef),
}

/// The real coordinator, driven through the simulator's protocol.
pub struct CoreDriver {
    core: Coordinator,
    actions: Vec<Action>,
    outs: Vec<CoreOut<Tag>>,
}

fn host_id(h: HostIdx) -> HostId {
    HostId(h as u32)
}

fn idx(h: HostId) -> HostIdx {
    h.0 as usize
}

/// The inventory the core is told about: every cluster HA-enabled, every
/// host enabled, with OOBM and VMs.
pub fn inventory(world: &World) -> Inventory {
    let mut inv = Inventory::default();
    let zones = world
        .clusters
        .iter()
        .map(|c| c.zone)
        .max()
        .map_or(0, |z| z + 1);
    let pods = world
        .clusters
        .iter()
        .map(|c| c.pod)
        .max()
        .map_or(0, |p| p + 1);
    for z in 0..zones {
        inv.zones.push(Zone {
            id: ZoneId(z as u32),
            enabled: true,
        });
    }
    for p in 0..pods {
        let zone = world
            .clusters
            .iter()
            .find(|c| c.pod == p)
            .map_or(0, |c| c.zone);
        inv.pods.push(Pod {
            id: PodId(p as u32),
            zone: ZoneId(zone as u32),
            enabled: true,
        });
    }
    for (i, c) in world.clusters.iter().enumerate() {
        inv.clusters.push(Cluster {
            id: ClusterId(i as u32),
            pod: PodId(c.pod as u32),
            enabled: true,
            ha_enabled: true,
        });
    }
    for (i, h) in world.hosts.iter().enumerate() {
        inv.hosts.push(Host {
            id: host_id(i),
            cluster: ClusterId(h.cluster as u32),
            resource_state: if h.api_maintenance {
                ResourceState::Maintenance
            } else {
                ResourceState::Enabled
            },
            oobm_enabled: true,
            has_vms: h.vms > 0,
            overrides: HostOverrides::default(),
        });
    }
    inv
}

impl CoreDriver {
    /// The limits the invariant checker enforces, from the core's shipped defaults.
    pub fn bounds() -> Bounds {
        let cfg = Config::default();
        Bounds {
            fence_cap_per_cluster: cfg.fence_rate.per_partition as usize,
            fence_cap_global: cfg.fence_rate.global as usize,
            fence_window_ms: cfg.fence_rate.window_ms,
            recovery_bound_ms: RECOVERY_BOUND_MS,
            recovery_bound_after_block_ms: cfg.activity_backoff_max_ms + RECOVERY_BOUND_MS,
            operation_state_bound_ms: OPERATION_STATE_BOUND_MS,
            mass_failure_share_pct: (cfg.mass_failure.share * 100.0).round() as u32,
            startup_grace_ms: cfg.startup_grace_ms,
            quorum_lease_ms: cfg.quorum_lease_ms,
            mass_failure_window_ms: cfg.mass_failure.window_ms,
            power_op_timeout_ms: cfg.power_op_timeout_ms,
        }
    }

    /// Starts a fresh coordinator (empty journal) or rebuilds one from the
    /// journal on the simulated disk; tells it the inventory and quorum.
    /// Returns the driver, its first outputs and a note for the timeline.
    ///
    /// Like the real journal, a torn tail is cut off the disk before the new
    /// incarnation appends to it.
    pub fn start(
        now: SimTime,
        _wall_ms: i64,
        world: &World,
        disk: &mut MemJournal,
        broken: Option<BrokenGate>,
    ) -> Result<(CoreDriver, Vec<CoreOut<Tag>>, String), String> {
        let cfg = Config::default();
        let (core, first, note) = if disk.is_empty() {
            let core = Coordinator::new(cfg, now.0)
                .map_err(|e| format!("invalid core configuration: {e}"))?;
            let first = core.start_actions();
            (core, first, "fresh, empty journal".to_string())
        } else {
            // Replayed by hactl-journal exactly as the daemon replays its
            // file; the torn tail is cut off before the new incarnation
            // appends.
            let bytes = std::mem::take(disk).bytes().to_vec();
            let (journal, replay) = MemJournal::replay::<Record>(bytes)
                .map_err(|e| format!("cannot replay the journal: {e}"))?;
            *disk = journal;
            let n = replay.records.len();
            let (core, first) = Coordinator::recover(cfg, replay.records, now.0)
                .map_err(|e| format!("cannot rebuild the coordinator from its journal: {e}"))?;
            let note = match replay.torn_tail {
                Some(t) => format!(
                    "{n} journal records replayed, torn tail of {} bytes detected and dropped",
                    t.bytes
                ),
                None => format!("{n} journal records replayed"),
            };
            (core, first, note)
        };
        #[cfg(feature = "checker-self-test")]
        let core = {
            let mut core = core;
            if let Some(BrokenGate::Core(gate)) = broken {
                core.break_gate_for_checker_self_test(gate);
            }
            core
        };
        #[cfg(not(feature = "checker-self-test"))]
        if matches!(broken, Some(BrokenGate::Core(_))) {
            return Err(
                "this build cannot break a core gate (the invariant checker's \
                        self-test needs the checker-self-test feature of a test build)"
                    .to_string(),
            );
        }
        let mut d = CoreDriver {
            core,
            actions: Vec::new(),
            outs: Vec::new(),
        };
        let mut outs = Vec::new();
        d.convert(first.into_iter(), &mut outs);
        let mut more = d.handle(now, Input::Inventory(inventory(world)));
        outs.append(&mut more);
        let mut more = d.handle(
            now,
            Input::QuorumChanged {
                quorate: world.quorate,
            },
        );
        outs.append(&mut more);
        Ok((d, outs, note))
    }

    fn handle(&mut self, now: SimTime, input: Input) -> Vec<CoreOut<Tag>> {
        // Both buffers are reused across calls: the benchmark makes hundreds
        // of millions of calls, most of which produce nothing.
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        self.core.handle_into(now.0, input, &mut actions);
        self.finish_call(actions)
    }

    /// Converts the actions of one core call and asks for the next wake-up;
    /// keeps the action buffer for the next call.
    fn finish_call(&mut self, mut actions: Vec<Action>) -> Vec<CoreOut<Tag>> {
        let mut outs = std::mem::take(&mut self.outs);
        outs.clear();
        self.convert(actions.drain(..), &mut outs);
        self.actions = actions;
        if let Some(t) = self.core.next_timeout() {
            outs.push(CoreOut::WakeAt(SimTime(t)));
        }
        outs
    }

    /// Hands an output buffer back for reuse.
    pub fn recycle(&mut self, mut outs: Vec<CoreOut<Tag>>) {
        outs.clear();
        if outs.capacity() > self.outs.capacity() {
            self.outs = outs;
        }
    }

    /// Records that rebuild the core's state (the journal compaction's).
    pub fn compact_records(&self, now: SimTime) -> Vec<hactl_core::Record> {
        self.core.compact_records(now.0)
    }

    pub fn tick(&mut self, now: SimTime, _wall_ms: i64) -> Vec<CoreOut<Tag>> {
        self.handle(now, Input::Tick)
    }

    /// The API's (possibly stale) view of host `h` reaches the core.
    pub fn host_update(&mut self, now: SimTime, world: &World, h: HostIdx) -> Vec<CoreOut<Tag>> {
        let host = inventory(world)
            .hosts
            .into_iter()
            .nth(h)
            .expect("host in the inventory");
        self.handle(
            now,
            Input::InventoryChange(InventoryChange::UpsertHost(host)),
        )
    }

    pub fn quorum(&mut self, now: SimTime, _wall_ms: i64, quorate: bool) -> Vec<CoreOut<Tag>> {
        self.handle(now, Input::QuorumChanged { quorate })
    }

    /// Feeds the answer to the operation `tag` back to the core.
    pub fn deliver(
        &mut self,
        now: SimTime,
        _wall_ms: i64,
        tag: Tag,
        outcome: Outcome,
        window: Option<(SimTime, SimTime)>,
    ) -> Vec<CoreOut<Tag>> {
        self.handle(now, Self::answer_input(now, tag, outcome, window))
    }

    /// Feeds answers that arrive together (a round's collected answers)
    /// to the core in one call, in the given order.
    pub fn deliver_batch(
        &mut self,
        now: SimTime,
        _wall_ms: i64,
        answers: &[(Tag, Outcome)],
    ) -> Vec<CoreOut<Tag>> {
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        self.core.handle_batch(
            now.0,
            answers
                .iter()
                .map(|&(tag, outcome)| Self::answer_input(now, tag, outcome, None)),
            &mut actions,
        );
        self.finish_call(actions)
    }

    /// The core input carrying the answer to the operation `tag`.
    fn answer_input(
        now: SimTime,
        tag: Tag,
        outcome: Outcome,
        window: Option<(SimTime, SimTime)>,
    ) -> Input {
        match tag {
            Tag::Health(op) => Input::HealthResult {
                op,
                outcome: match outcome {
                    Outcome::Healthy => HealthOutcome::Passed,
                    Outcome::AgentDown => HealthOutcome::AgentUnreachable,
                    Outcome::AgentUnhealthy => HealthOutcome::AgentUnhealthy,
                    _ => HealthOutcome::Timeout,
                },
            },
            Tag::Activity(op, checker) => {
                let (from, to) = window.unwrap_or((now, now));
                Input::ActivityResult {
                    op,
                    checker,
                    verdict: match outcome {
                        Outcome::Alive => ActivityVerdict::Alive,
                        Outcome::Dead => ActivityVerdict::Dead,
                        Outcome::CheckerCannotReadStorage => {
                            ActivityVerdict::CannotTell(CannotTellReason::CheckerStorageUnreadable)
                        }
                        Outcome::CheckerUnreachable => {
                            ActivityVerdict::CannotTell(CannotTellReason::CheckerUnreachable)
                        }
                        _ => ActivityVerdict::CannotTell(CannotTellReason::Timeout),
                    },
                    window: Window {
                        from: from.0,
                        to: to.0,
                    },
                }
            }
            Tag::PowerRead(op) => Input::PowerReadResult {
                op,
                reading: match outcome {
                    Outcome::PowerIsOn => PowerReading::On,
                    Outcome::PowerIsOff => PowerReading::Off,
                    _ => PowerReading::Unreachable,
                },
            },
            Tag::PowerAction(op) => Input::PowerActionResult {
                op,
                outcome: match outcome {
                    Outcome::PowerDone => PowerActionOutcome::Accepted,
                    Outcome::PowerRefused => PowerActionOutcome::Failed(PowerFailure::Rejected),
                    Outcome::BmcUnreachable => {
                        PowerActionOutcome::Failed(PowerFailure::Unreachable)
                    }
                    _ => PowerActionOutcome::Failed(PowerFailure::Timeout),
                },
            },
        }
    }

    /// The coordinator's epoch (its fencing token).
    pub fn epoch(&self) -> u32 {
        self.core.epoch()
    }

    /// The host's HA state name as the core holds it.
    pub fn host_state(&self, h: HostIdx) -> &'static str {
        self.core
            .host(host_id(h))
            .map_or("UNMANAGED", |v| v.ha.name())
    }

    fn convert(&mut self, actions: impl Iterator<Item = Action>, outs: &mut Vec<CoreOut<Tag>>) {
        for a in actions {
            match a {
                Action::RunHealthCheck { op, timeout_ms } => outs.push(CoreOut::Request {
                    tag: Tag::Health(op),
                    request: Request::Health { host: idx(op.host) },
                    timeout_ms,
                }),
                Action::RunActivityCheck {
                    op,
                    checker,
                    window_ms,
                    timeout_ms,
                } => outs.push(CoreOut::Request {
                    tag: Tag::Activity(op, checker),
                    request: Request::Activity {
                        target: idx(op.host),
                        checker: idx(checker),
                        window_ms,
                    },
                    timeout_ms,
                }),
                Action::ReadPower { op, timeout_ms } => outs.push(CoreOut::Request {
                    tag: Tag::PowerRead(op),
                    request: Request::PowerRead { host: idx(op.host) },
                    timeout_ms,
                }),
                Action::PowerOff {
                    op,
                    timeout_ms,
                    reason,
                } => {
                    let fence = match reason {
                        PowerOffReason::Fence { evidence, .. } => Some(FenceEvidence {
                            dead_windows: evidence
                                .samples
                                .iter()
                                .filter(|s| s.verdict == ActivityVerdict::Dead)
                                .map(|s| (SimTime(s.window.from), SimTime(s.window.to)))
                                .collect(),
                            alive_samples: evidence
                                .samples
                                .iter()
                                .filter(|s| s.verdict == ActivityVerdict::Alive)
                                .count(),
                        }),
                        PowerOffReason::UserRequest => None,
                    };
                    outs.push(CoreOut::Request {
                        tag: Tag::PowerAction(op),
                        request: Request::Power {
                            host: idx(op.host),
                            op: PowerOp::Off,
                            fence,
                            epoch: op.id.epoch(),
                        },
                        timeout_ms,
                    })
                }
                Action::PowerOn { op, timeout_ms, .. } => outs.push(CoreOut::Request {
                    tag: Tag::PowerAction(op),
                    request: Request::Power {
                        host: idx(op.host),
                        op: PowerOp::On,
                        fence: None,
                        epoch: op.id.epoch(),
                    },
                    timeout_ms,
                }),
                Action::PowerCycle { op, timeout_ms } => outs.push(CoreOut::Request {
                    tag: Tag::PowerAction(op),
                    request: Request::Power {
                        host: idx(op.host),
                        op: PowerOp::Cycle,
                        fence: None,
                        epoch: op.id.epoch(),
                    },
                    timeout_ms,
                }),
                Action::Persist(rec) => outs.push(CoreOut::Persist(Box::new(rec))),
                Action::Emit(ev) => outs.push(event_out(ev)),
            }
        }
    }
}

fn event_out(ev: Event) -> CoreOut<Tag> {
    match ev {
        Event::HaStateChanged {
            host,
            from,
            to,
            trigger,
            ..
        } => CoreOut::Transition {
            host: idx(host),
            from: from.name(),
            to: to.name(),
            why: trigger.name().to_string(),
        },
        Event::FenceConfirmed { host, how, .. } => CoreOut::FenceConfirmed {
            host: idx(host),
            after_our_off: how == OffConfirmation::ReadAfterPowerOff,
        },
        Event::MassFailureDetected { cluster, .. } | Event::MassFailureCleared { cluster } => {
            CoreOut::MassFailureGuard {
                cluster: cluster.0 as usize,
                tripped: matches!(ev, Event::MassFailureDetected { .. }),
                text: Box::new(move || describe(&ev)),
            }
        }
        other => CoreOut::Note {
            kind: event_kind(&other),
            text: Box::new(move || describe(&other)),
        },
    }
}

/// The event's snake_case name, as counted in the summary.
fn event_kind(ev: &Event) -> &'static str {
    match ev {
        Event::CoordinatorStarted { .. } => "coordinator_started",
        Event::HaStateChanged { .. } => "ha_state_changed",
        Event::PowerStateChanged { .. } => "power_state_changed",
        Event::PartitionStateChanged { .. } => "partition_state_changed",
        Event::ActivitySample { .. } => "activity_sample",
        Event::ActivityRoundConcluded { .. } => "activity_round_concluded",
        Event::CheckerVerdictDiscarded { .. } => "checker_verdict_discarded",
        Event::NoCheckerAvailable { .. } => "no_checker_available",
        Event::FenceIssued { .. } => "fence_issued",
        Event::FenceConfirmed { .. } => "fence_confirmed",
        Event::RecoveryAttemptFailed { .. } => "recovery_attempt_failed",
        Event::FenceDeferred { .. } => "fence_deferred",
        Event::RateCapReached { .. } => "rate_cap_reached",
        Event::RateCapCleared { .. } => "rate_cap_cleared",
        Event::MassFailureDetected { .. } => "mass_failure_detected",
        Event::MassFailureCleared { .. } => "mass_failure_cleared",
        Event::OperatorActionRequired { .. } => "operator_action_required",
        Event::QuorumChanged { .. } => "quorum_changed",
        Event::UserPowerRequested { .. } => "user_power_requested",
        Event::OperatorCommandRejected { .. } => "operator_command_rejected",
        Event::ClockAnomaly { .. } => "clock_anomaly",
        Event::RecoveryNotNeeded { .. } => "recovery_not_needed",
        Event::LeftOffAfterRepeatedFence { .. } => "left_off_after_repeated_fence",
    }
}

/// One timeline line for a core event.
fn describe(ev: &Event) -> String {
    match ev {
        Event::CoordinatorStarted {
            epoch,
            recovered,
            records,
            fences_in_window,
            open_fences,
        } => format!(
            "coordinator epoch {epoch} up (recovered={recovered}, {records} records, {fences_in_window} fences in the rate window, {open_fences} open fences)"
        ),
        Event::PowerStateChanged { host, from, to } => format!("{host} power {from} -> {to}"),
        Event::PartitionStateChanged {
            cluster,
            from,
            to,
            reasons,
        } => {
            if reasons.is_empty() {
                format!("{cluster} {from} -> {to}")
            } else {
                format!("{cluster} {from} -> {to} because {reasons:?}")
            }
        }
        Event::FenceIssued {
            host,
            attempt,
            evidence,
            ..
        } => format!(
            "fence of {host} issued (attempt {attempt}, {} of {} samples dead)",
            evidence.dead_samples(),
            evidence.samples.len()
        ),
        Event::ActivitySample {
            host,
            checker,
            verdict,
            window,
        } => format!(
            "activity sample of {host} by {checker} over {:.1} s: {verdict:?}",
            (window.to - window.from) as f64 / 1000.0
        ),
        Event::ActivityRoundConcluded {
            host,
            outcome,
            dead,
            samples,
            next_round_in_ms,
        } => format!(
            "activity round on {host}: {outcome:?} ({dead} of {samples} dead){}",
            if *next_round_in_ms > 0 {
                format!(", next round in {} s", next_round_in_ms / 1000)
            } else {
                String::new()
            }
        ),
        Event::FenceDeferred { host, gate } => format!("fence of {host} deferred by gate {gate:?}"),
        Event::MassFailureDetected { cluster, reason } => {
            format!("MASS-FAILURE GUARD trips for {cluster}: {reason:?}")
        }
        Event::MassFailureCleared { cluster } => format!("mass-failure guard clears for {cluster}"),
        Event::RateCapReached {
            scope,
            fences,
            window_ms,
        } => format!(
            "RATE CAP reached ({scope:?}): {fences} fences in {} s, fencing stops",
            window_ms / 1000
        ),
        Event::RateCapCleared { scope, by } => format!("rate cap cleared ({scope:?}) by {by:?}"),
        Event::OperatorActionRequired { host, reason } => {
            format!("OPERATOR ACTION REQUIRED for {host}: {reason:?}")
        }
        Event::RecoveryAttemptFailed {
            host,
            attempt,
            failure,
            will_retry,
        } => format!(
            "recovery attempt {attempt} of {host} failed: {failure:?}{}",
            if *will_retry { ", will retry" } else { ", giving up" }
        ),
        Event::QuorumChanged { quorate } => format!("core told quorate={quorate}"),
        Event::LeftOffAfterRepeatedFence {
            host,
            previous_confirmed_at,
            confirmed_at,
            holdoff_ms,
            ..
        } => format!(
            "{host} LEFT OFF for the operator: fenced again {} s after its previous fence (hold-off {} s)",
            confirmed_at.saturating_sub(*previous_confirmed_at) / 1000,
            holdoff_ms / 1000
        ),
        Event::NoCheckerAvailable { host } => format!("no AVAILABLE peer can check {host}"),
        Event::CheckerVerdictDiscarded {
            checker,
            host,
            reason,
        } => format!("verdict of checker {checker} on {host} discarded: {reason:?}"),
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    }
}
