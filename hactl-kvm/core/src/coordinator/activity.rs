//! Activity rounds: checkers, samples, evidence and the dead verdict.

use super::*;

impl Coordinator {
    // ----- activity ------------------------------------------------------

    pub(super) fn pick_checker(&mut self, i: usize) -> Option<HostId> {
        let c = self.hosts[i].cluster;
        let n = self.clusters[c].hosts.len();
        if n == 0 {
            return None;
        }
        let start = self.clusters[c].checker_cursor;
        let round = self.hosts[i].round.as_ref();
        let mut fallback = None;
        for k in 0..n {
            let j = self.clusters[c].hosts[(start + k) % n];
            let cand = &self.hosts[j];
            if j == i
                || cand.removed
                || cand.ha != HaState::Available
                || cand.power != PowerState::On
            {
                continue;
            }
            if round.is_some_and(|r| r.evidence.used_checker(cand.host.id)) {
                fallback.get_or_insert((k, cand.host.id));
                continue;
            }
            self.clusters[c].checker_cursor = (start + k + 1) % n;
            return Some(cand.host.id);
        }
        let (k, id) = fallback?;
        self.clusters[c].checker_cursor = (start + k + 1) % n;
        Some(id)
    }

    pub(super) fn start_round(&mut self, i: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.hosts[i].host.has_vms {
            // Nothing to recover and no VM activity to observe: not dead,
            // just not managed by us (health checks go on).
            if !self.hosts[i].no_vms_reported {
                self.hosts[i].no_vms_reported = true;
                out.push(Action::Emit(Event::RecoveryNotNeeded {
                    host: self.hosts[i].host.id,
                }));
            }
            return;
        }
        if !self.activity_slots.has_free() {
            self.hosts[i].next_round_at = now + SLOT_RETRY_MS;
            return;
        }
        if self.pick_checker_available(i).is_none() {
            let delay = self.hosts[i].backoff.next_delay();
            self.hosts[i].next_round_at = now + delay;
            out.push(Action::Emit(Event::NoCheckerAvailable {
                host: self.hosts[i].host.id,
            }));
            return;
        }
        let acquired = self.activity_slots.try_acquire();
        debug_assert!(acquired);
        if !self.fire(i, HaTrigger::ActivityRoundStarted, now, out) {
            self.activity_slots.release();
            return;
        }
        self.hosts[i].round = Some(Box::new(Round {
            evidence: ActivityEvidence::new(self.cfg.evidence),
            op: None,
        }));
        self.next_sample(i, now, out);
    }

    pub(super) fn pick_checker_available(&self, i: usize) -> Option<()> {
        let c = self.hosts[i].cluster;
        self.clusters[c]
            .hosts
            .iter()
            .any(|&j| {
                j != i
                    && !self.hosts[j].removed
                    && self.hosts[j].ha == HaState::Available
                    && self.hosts[j].power == PowerState::On
            })
            .then_some(())
    }

    pub(super) fn next_sample(&mut self, i: usize, now: Millis, out: &mut Vec<Action>) {
        match self.pick_checker(i) {
            Some(checker) => {
                let id = self.next_op();
                let h = &mut self.hosts[i];
                let op = PendingOp {
                    in_round: false,
                    id,
                    version: StateVersion(h.version),
                    deadline: now + self.cfg.activity_check_timeout_ms,
                    started: now,
                };
                if let Some(r) = h.round.as_mut() {
                    r.op = Some((op, checker));
                }
                out.push(Action::RunActivityCheck {
                    op: OpRef {
                        id,
                        host: h.host.id,
                        version: op.version,
                    },
                    checker,
                    window_ms: self.cfg.activity_sample_window_ms,
                    timeout_ms: self.cfg.activity_check_timeout_ms,
                });
            }
            None => {
                out.push(Action::Emit(Event::NoCheckerAvailable {
                    host: self.hosts[i].host.id,
                }));
                self.conclude_round(i, RoundOutcome::Inconclusive, now, out);
            }
        }
    }

    pub(super) fn on_activity(
        &mut self,
        op: OpRef,
        checker: HostId,
        verdict: ActivityVerdict,
        window: Window,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.host_index.get(op.host.0) else {
            return;
        };
        let Some((pending, expected_checker)) = self.hosts[i].round.as_ref().and_then(|r| r.op)
        else {
            return;
        };
        if pending.id != op.id
            || pending.version != op.version
            || StateVersion(self.hosts[i].version) != pending.version
            || expected_checker != checker
        {
            return;
        }
        self.round_sample(i, checker, verdict, window, now, out);
        self.mark_host(i);
    }

    pub(super) fn round_sample(
        &mut self,
        i: usize,
        checker: HostId,
        verdict: ActivityVerdict,
        window: Window,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let target = self.hosts[i].host.id;
        let mut verdict = verdict;
        let checker_idx = self.host_index.get(checker.0);
        if verdict == ActivityVerdict::CannotTell(CannotTellReason::CheckerStorageUnreadable) {
            out.push(Action::Emit(Event::CheckerVerdictDiscarded {
                checker,
                host: target,
                reason: CannotTellReason::CheckerStorageUnreadable,
            }));
            if let Some(j) = checker_idx {
                self.fire(j, HaTrigger::CheckerStorageUnreadable, now, out);
            }
        } else if !checker_idx
            .is_some_and(|j| !self.hosts[j].removed && self.hosts[j].ha == HaState::Available)
            && !matches!(verdict, ActivityVerdict::CannotTell(_))
        {
            // Only AVAILABLE hosts may judge peers: a checker that left
            // AVAILABLE while checking has its verdict discarded.
            out.push(Action::Emit(Event::CheckerVerdictDiscarded {
                checker,
                host: target,
                reason: CannotTellReason::CheckerUnreachable,
            }));
            verdict = ActivityVerdict::CannotTell(CannotTellReason::CheckerUnreachable);
        }
        out.push(Action::Emit(Event::ActivitySample {
            host: target,
            checker,
            verdict,
            window,
        }));
        // The checker may have been this very host's round (it became
        // SUSPECT above only if it is another host).
        let Some(round) = self.hosts[i].round.as_mut() else {
            return;
        };
        round.op = None;
        round.evidence.add(EvidenceSample {
            checker,
            verdict,
            window,
        });
        let outcome = round.evidence.outcome();
        let outcome = if self.gate_broken(SelfTestGate::Evidence) {
            Some(RoundOutcome::Dead)
        } else {
            outcome
        };
        match outcome {
            None => self.next_sample(i, now, out),
            Some(outcome) => self.conclude_round(i, outcome, now, out),
        }
    }

    pub(super) fn conclude_round(
        &mut self,
        i: usize,
        outcome: RoundOutcome,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let host = self.hosts[i].host.id;
        let (dead, samples) = self.hosts[i].round.as_ref().map_or((0, 0), |r| {
            (r.evidence.dead(), r.evidence.samples().len() as u32)
        });
        match outcome {
            RoundOutcome::ActivitySeen | RoundOutcome::Inconclusive => {
                let delay = self.hosts[i].backoff.next_delay();
                self.hosts[i].next_round_at = now + delay;
                out.push(Action::Emit(Event::ActivityRoundConcluded {
                    host,
                    outcome,
                    dead,
                    samples,
                    next_round_in_ms: delay,
                }));
                let trigger = if outcome == RoundOutcome::ActivitySeen {
                    HaTrigger::ActivitySeen
                } else {
                    HaTrigger::ActivityInconclusive
                };
                self.fire(i, trigger, now, out);
                if outcome == RoundOutcome::ActivitySeen {
                    self.hosts[i].activity_seen = true;
                }
            }
            RoundOutcome::Dead => {
                out.push(Action::Emit(Event::ActivityRoundConcluded {
                    host,
                    outcome,
                    dead,
                    samples,
                    next_round_in_ms: 0,
                }));
                let evidence = Evidence {
                    host,
                    samples: self.hosts[i]
                        .round
                        .as_ref()
                        .map(|r| r.evidence.samples().to_vec())
                        .unwrap_or_default(),
                    dead_required: self.cfg.evidence.dead_required,
                    decided_at: now,
                };
                let block = self.fence_block(i, now).or_else(|| {
                    (!self.recovery_slots.has_free()).then_some(GateBlock::RecoveryConcurrency)
                });
                if let Some(gate) = block {
                    self.defer(i, gate, now, out);
                    return;
                }
                let acquired = self.recovery_slots.try_acquire();
                debug_assert!(acquired);
                // Put the flow in place first so the FSM sees its budget.
                self.hosts[i].recovery = Some(Box::new(Recovery {
                    budget: RetryBudget::new(self.cfg.max_recovery_attempts),
                    evidence,
                    phase: RecoveryPhase::Waiting,
                    next_step_at: now,
                    fence: None,
                    last_failure: None,
                    reread_off: false,
                }));
                if !self.fire(i, HaTrigger::DeadConfirmed, now, out) {
                    self.hosts[i].recovery = None;
                    self.recovery_slots.release();
                    return;
                }
                // `enter` released nothing (we came from CHECKING); restore
                // the flow that `enter` does not touch.
                self.start_attempt(i, now, out);
            }
        }
    }

    pub(super) fn defer(&mut self, i: usize, gate: GateBlock, now: Millis, out: &mut Vec<Action>) {
        out.push(Action::Emit(Event::FenceDeferred {
            host: self.hosts[i].host.id,
            gate,
        }));
        let mut next = now + self.hosts[i].backoff.next_delay();
        if let GateBlock::StartupGrace { until } = gate {
            next = next.max(until);
        }
        self.hosts[i].next_round_at = next;
        self.fire(i, HaTrigger::FenceDeferred, now, out);
        // FenceDeferred from CHECKING does not reset the round delay.
        self.hosts[i].next_round_at = next;
    }

    /// The gate that forbids fencing host `i` now, if any.
    pub(super) fn fence_block(&self, i: usize, now: Millis) -> Option<GateBlock> {
        let h = &self.hosts[i];
        let c = &self.clusters[h.cluster];
        if !self.quorum.is_open(now) {
            return Some(GateBlock::NoQuorum);
        }
        if !self.grace.is_open(now) && !self.gate_broken(SelfTestGate::StartupGrace) {
            return Some(GateBlock::StartupGrace {
                until: self.grace.until(),
            });
        }
        if c.state != PartitionState::Active {
            return Some(GateBlock::PartitionInactive);
        }
        if let Some(scope) = self.rate.blocked(c.cluster.id, now) {
            if !self.gate_broken(SelfTestGate::RateCap) {
                return Some(GateBlock::RateCap { scope });
            }
        }
        if !h.host.has_vms {
            return Some(GateBlock::NoVms);
        }
        None
    }
}
