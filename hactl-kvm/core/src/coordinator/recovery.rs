//! Recovery and power operations: attempts, fencing gates at emission, reads, confirmation.

use super::*;

impl Coordinator {
    // ----- recovery ------------------------------------------------------

    pub(super) fn start_attempt(&mut self, i: usize, now: Millis, out: &mut Vec<Action>) {
        if let Some(busy) = self.hosts[i].power_op {
            // One power operation per host at a time: start when it ends
            // (its result marks the host; its deadline bounds the wait).
            if let Some(r) = self.hosts[i].recovery.as_mut() {
                r.step(RecoveryStep::PowerChannelBusy);
                r.next_step_at = busy.op.deadline.max(now + 1);
            }
            return;
        }
        if let Some(r) = self.hosts[i].recovery.as_mut() {
            r.step(RecoveryStep::AttemptStarted);
            if !std::mem::take(&mut r.reread_off) {
                r.budget.start_attempt();
            }
            r.fence = None;
        } else {
            return;
        }
        self.start_power_op(i, PowerOpKind::Refresh, now, out);
    }

    pub(super) fn attempt_failed(
        &mut self,
        i: usize,
        failure: AttemptFailure,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(r) = self.hosts[i].recovery.as_mut() else {
            return;
        };
        r.last_failure = Some(failure);
        let attempt = r.budget.used();
        let will_retry = r.budget.attempts_left();
        r.step(RecoveryStep::AttemptFailed);
        r.next_step_at = now + self.cfg.recovery_retry_delay_ms;
        out.push(Action::Emit(Event::RecoveryAttemptFailed {
            host: self.hosts[i].host.id,
            attempt,
            failure,
            will_retry,
        }));
        self.hosts[i].failed_reason = match failure {
            AttemptFailure::RefreshUnknown | AttemptFailure::ConfirmUnknown => {
                FailedReason::BmcUnreachable
            }
            AttemptFailure::StillOn => FailedReason::OffNotConfirmed,
            AttemptFailure::PowerOffFailed => FailedReason::RecoveryAttemptsExhausted,
        };
        self.fire(i, HaTrigger::RecoveryAttemptFailed, now, out);
        self.mark_host(i);
    }

    pub(super) fn start_power_op(
        &mut self,
        i: usize,
        kind: PowerOpKind,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let id = self.next_op();
        let timeout_ms = self.power_timeout(i);
        let h = &mut self.hosts[i];
        let version = StateVersion(h.version);
        let op_ref = OpRef {
            id,
            host: h.host.id,
            version,
        };
        h.power_op = Some(PendingPower {
            op: PendingOp {
                in_round: false,
                id,
                version,
                deadline: now + timeout_ms,
                started: now,
            },
            kind,
        });
        match kind {
            PowerOpKind::Poll
            | PowerOpKind::Refresh
            | PowerOpKind::ConfirmOff(_)
            | PowerOpKind::ReadAfterOn
            | PowerOpKind::ReadAfterUser => {
                if kind == PowerOpKind::Poll {
                    // Further syncs come with the cluster's rounds.
                    h.next_power_poll_at = Millis::MAX;
                }
                out.push(Action::ReadPower {
                    op: op_ref,
                    timeout_ms,
                });
            }
            PowerOpKind::Off(fence) => {
                let Some(r) = h.recovery.as_ref() else {
                    h.power_op = None;
                    return;
                };
                out.push(Action::PowerOff {
                    op: op_ref,
                    timeout_ms,
                    reason: PowerOffReason::Fence {
                        fence,
                        evidence: r.evidence.clone(),
                    },
                });
            }
            PowerOpKind::On => {
                // Not again before the next sync period, whatever happens.
                h.next_power_on_at = now + self.cfg.power_poll_interval_ms;
                out.push(Action::PowerOn {
                    op: op_ref,
                    timeout_ms,
                    reason: PowerOnReason::RecoveryCycle,
                })
            }
            PowerOpKind::User(UserPowerOp::On) => out.push(Action::PowerOn {
                op: op_ref,
                timeout_ms,
                reason: PowerOnReason::UserRequest,
            }),
            PowerOpKind::User(UserPowerOp::Off) => out.push(Action::PowerOff {
                op: op_ref,
                timeout_ms,
                reason: PowerOffReason::UserRequest,
            }),
            PowerOpKind::User(UserPowerOp::Restart) => out.push(Action::PowerCycle {
                op: op_ref,
                timeout_ms,
            }),
        }
        self.mark_host(i);
    }

    /// Issues the fence's power-off, unless a gate forbids it at this very
    /// moment: the partition (and its mass-failure guard) is evaluated
    /// first, so every input handled before this one, in this batch too,
    /// counts.
    pub(super) fn issue_fence(&mut self, i: usize, now: Millis, out: &mut Vec<Action>) {
        let c = self.hosts[i].cluster;
        self.evaluate_partition(c, now, out);
        if self.hosts[i].ha != HaState::Recovering || self.hosts[i].recovery.is_none() {
            return;
        }
        if let Some(gate) = self.fence_block(i, now) {
            self.defer(i, gate, now, out);
            return;
        }
        let fence = self.next_fence();
        let c = self.hosts[i].cluster;
        let cluster = self.clusters[c].cluster.id;
        let host = self.hosts[i].host.id;
        let Some(r) = self.hosts[i].recovery.as_mut() else {
            return;
        };
        r.step(RecoveryStep::PowerOffIssued);
        r.fence = Some(fence);
        let attempt = r.budget.used();
        let evidence = r.evidence.clone();
        out.push(Action::Persist(Record::FenceIssued {
            fence,
            host,
            cluster,
            attempt,
            at: now,
            evidence: evidence.clone(),
        }));
        for scope in self.rate.record(cluster, now) {
            out.push(Action::Persist(Record::RateCapTripped { scope, at: now }));
            out.push(Action::Emit(Event::RateCapReached {
                scope,
                fences: self.rate.count(scope, now),
                window_ms: self.cfg.fence_rate.window_ms,
            }));
        }
        self.schedule_rate();
        out.push(Action::Emit(Event::FenceIssued {
            fence,
            host,
            cluster,
            attempt,
            evidence,
        }));
        self.start_power_op(i, PowerOpKind::Off(fence), now, out);
    }

    /// Tracks consecutive OFF readings not caused by our own power-off;
    /// true when this reading confirms an earlier one at least
    /// `fence_confirm_interval_ms` before it. Until then the host's power
    /// is read again when the interval has passed.
    pub(super) fn off_confirmed_by_reads(
        &mut self,
        i: usize,
        read: PowerState,
        now: Millis,
    ) -> bool {
        let interval = self.cfg.fence_confirm_interval_ms;
        let h = &mut self.hosts[i];
        match read {
            PowerState::Off => {
                let first = *h.first_off_read_at.get_or_insert(now);
                if now.saturating_sub(first) >= interval {
                    return true;
                }
                h.next_power_poll_at = h.next_power_poll_at.min(first + interval);
                false
            }
            PowerState::On => {
                h.first_off_read_at = None;
                false
            }
            PowerState::Unknown => false,
        }
    }

    /// The host's pending power operation, if `op` is its answer (a stale or unknown answer is
    /// dropped): removed from the host, since its answer has come.
    pub(super) fn take_power_op(&mut self, op: OpRef) -> Option<(usize, PendingPower)> {
        let i = self.host_index.get(op.host.0)?;
        let p = self.hosts[i].power_op.filter(|p| p.op.id == op.id)?;
        self.hosts[i].power_op = None;
        Some((i, p))
    }

    pub(super) fn on_power_read(
        &mut self,
        op: OpRef,
        reading: PowerReading,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some((i, p)) = self.take_power_op(op) else {
            return;
        };
        self.power_read_done(i, p, reading, now, out);
        self.mark_host(i);
    }

    pub(super) fn update_power(
        &mut self,
        i: usize,
        read: PowerState,
        out: &mut Vec<Action>,
    ) -> Option<HaTrigger> {
        let from = self.hosts[i].power;
        let (outcome, trigger) = fsm::power_transition(from, read);
        if let Outcome::Goto(to) = outcome {
            self.hosts[i].power = to;
            out.push(Action::Emit(Event::PowerStateChanged {
                host: self.hosts[i].host.id,
                from,
                to,
            }));
            let c = self.hosts[i].cluster;
            self.mark_cluster(c);
        }
        trigger
    }

    pub(super) fn power_read_done(
        &mut self,
        i: usize,
        p: PendingPower,
        reading: PowerReading,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let read = match reading {
            PowerReading::On => PowerState::On,
            PowerReading::Off => PowerState::Off,
            PowerReading::Unknown | PowerReading::Unreachable => PowerState::Unknown,
        };
        match p.kind {
            PowerOpKind::Poll | PowerOpKind::ReadAfterUser | PowerOpKind::ReadAfterOn => {
                let trigger = self.update_power(i, read, out);
                // One OFF reading is not enough to call the host FENCED
                // (its VMs may then restart elsewhere): a BMC can report
                // OFF for a chassis that is on. After our own (user)
                // power-off one reading is; otherwise two readings
                // `fence_confirm_interval_ms` apart.
                let confirmed = p.kind == PowerOpKind::ReadAfterUser
                    || self.off_confirmed_by_reads(i, read, now);
                let trigger = match trigger {
                    Some(HaTrigger::PowerWentOff) if !confirmed => None,
                    None if read == PowerState::Off && confirmed => Some(HaTrigger::PowerWentOff),
                    t => t,
                };
                if p.kind == PowerOpKind::ReadAfterOn && read == PowerState::On {
                    self.set_power_on_owed(i, false, now, out);
                }
                if let Some(t) = trigger {
                    if t == HaTrigger::PowerCameOn {
                        self.hosts[i].quiet_until = now + self.quiet_period(i);
                    }
                    // A reading is a fact about the chassis: the power FSM
                    // and its consequences apply whatever the HA version.
                    {
                        self.fire(i, t, now, out);
                    }
                }
            }
            PowerOpKind::Refresh => {
                self.update_power(i, read, out);
                if self.hosts[i].ha != HaState::Recovering || self.hosts[i].recovery.is_none() {
                    return;
                }
                let confirmed = self.off_confirmed_by_reads(i, read, now);
                match read {
                    // `issue_fence` evaluates every gate right before the power-off.
                    PowerState::On => self.issue_fence(i, now, out),
                    PowerState::Off if !confirmed => {
                        // Already off? Read again after the confirm interval
                        // before believing it (no attempt spent).
                        let first = self.hosts[i].first_off_read_at.unwrap_or(now);
                        if let Some(r) = self.hosts[i].recovery.as_mut() {
                            r.step(RecoveryStep::OffNeedsConfirmation);
                            r.reread_off = true;
                            r.next_step_at = first + self.cfg.fence_confirm_interval_ms;
                        }
                    }
                    PowerState::Off => {
                        out.push(Action::Emit(Event::FenceConfirmed {
                            fence: None,
                            host: self.hosts[i].host.id,
                            how: OffConfirmation::AlreadyOff,
                        }));
                        self.fire(i, HaTrigger::PowerWentOff, now, out);
                    }
                    PowerState::Unknown => {
                        self.attempt_failed(i, AttemptFailure::RefreshUnknown, now, out)
                    }
                }
            }
            PowerOpKind::ConfirmOff(fence) => {
                self.update_power(i, read, out);
                let host = self.hosts[i].host.id;
                let in_flow = self.hosts[i]
                    .recovery
                    .as_ref()
                    .is_some_and(|r| r.fence == Some(fence));
                if read == PowerState::Off {
                    out.push(Action::Persist(Record::FenceResolved {
                        fence,
                        host,
                        outcome: FenceOutcome::ConfirmedOff,
                        at: now,
                    }));
                    out.push(Action::Emit(Event::FenceConfirmed {
                        fence: Some(fence),
                        host,
                        how: OffConfirmation::ReadAfterPowerOff,
                    }));
                    let previous = self.hosts[i].last_confirmed_fence_at.replace(now);
                    let refenced =
                        previous.filter(|&p| now.saturating_sub(p) < self.cfg.refence_holdoff_ms);
                    if let Some(previous_confirmed_at) = refenced {
                        // Fenced again soon after its last fence: whatever
                        // broke it is still broken. Powering it on would
                        // only start the next round of the loop, so it
                        // stays OFF until the operator powers it on.
                        out.push(Action::Emit(Event::LeftOffAfterRepeatedFence {
                            host,
                            fence,
                            previous_confirmed_at,
                            confirmed_at: now,
                            holdoff_ms: self.cfg.refence_holdoff_ms,
                        }));
                    } else if self.cfg.power_on_after_fence {
                        self.set_power_on_owed(i, true, now, out);
                        self.hosts[i].next_power_on_at = now;
                    }
                    self.fire(i, HaTrigger::FenceConfirmed, now, out);
                } else {
                    out.push(Action::Persist(Record::FenceResolved {
                        fence,
                        host,
                        outcome: FenceOutcome::NotConfirmed,
                        at: now,
                    }));
                    if in_flow {
                        let failure = if read == PowerState::On {
                            AttemptFailure::StillOn
                        } else {
                            AttemptFailure::ConfirmUnknown
                        };
                        self.attempt_failed(i, failure, now, out);
                    }
                }
            }
            PowerOpKind::Off(_) | PowerOpKind::On | PowerOpKind::User(_) => {
                debug_assert!(false, "power action answered with a reading");
            }
        }
    }

    pub(super) fn on_power_action(
        &mut self,
        op: OpRef,
        outcome: PowerActionOutcome,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some((i, p)) = self.take_power_op(op) else {
            return;
        };
        self.power_action_done(i, p, outcome, now, out);
        self.mark_host(i);
    }

    pub(super) fn power_action_done(
        &mut self,
        i: usize,
        p: PendingPower,
        outcome: PowerActionOutcome,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        match p.kind {
            PowerOpKind::Off(fence) => {
                // Accepted or not, only a chassis OFF read counts: read now.
                if let Some(r) = self.hosts[i].recovery.as_mut() {
                    if r.fence == Some(fence) {
                        r.step(RecoveryStep::PowerOffAnswered);
                    }
                }
                let _ = outcome;
                self.start_power_op(i, PowerOpKind::ConfirmOff(fence), now, out);
            }
            PowerOpKind::On => match outcome {
                PowerActionOutcome::Accepted => {
                    self.start_power_op(i, PowerOpKind::ReadAfterOn, now, out)
                }
                PowerActionOutcome::Failed(_) => {
                    self.hosts[i].next_power_on_at = now + self.cfg.power_poll_interval_ms;
                }
            },
            PowerOpKind::User(_) => self.start_power_op(i, PowerOpKind::ReadAfterUser, now, out),
            _ => debug_assert!(false, "reading answered with a power action result"),
        }
    }

    pub(super) fn power_timed_out(
        &mut self,
        i: usize,
        p: PendingPower,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        match p.kind {
            PowerOpKind::Off(_) | PowerOpKind::On | PowerOpKind::User(_) => self.power_action_done(
                i,
                p,
                PowerActionOutcome::Failed(crate::io::PowerFailure::Timeout),
                now,
                out,
            ),
            _ => self.power_read_done(i, p, PowerReading::Unreachable, now, out),
        }
    }

    pub(super) fn set_power_on_owed(
        &mut self,
        i: usize,
        owed: bool,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        if self.hosts[i].power_on_owed != owed {
            self.hosts[i].power_on_owed = owed;
            out.push(Action::Persist(Record::PowerOnOwed {
                host: self.hosts[i].host.id,
                owed,
                at: now,
            }));
        }
    }
}
