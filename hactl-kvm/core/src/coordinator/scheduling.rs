//! Per-host scheduling: timeouts, due checks, rounds and recovery steps.

use super::*;

impl Coordinator {
    // ----- scheduling ----------------------------------------------------

    pub(super) fn ha_enabled(&self, i: usize) -> bool {
        self.clusters[self.hosts[i].cluster].cluster.ha_enabled
    }

    pub(super) fn power_timeout(&self, i: usize) -> Millis {
        self.hosts[i]
            .host
            .overrides
            .power_op_timeout_ms
            .unwrap_or(self.cfg.power_op_timeout_ms)
    }

    pub(super) fn quiet_period(&self, i: usize) -> Millis {
        self.hosts[i]
            .host
            .overrides
            .quiet_period_ms
            .unwrap_or(self.cfg.quiet_period_ms)
    }

    /// Handles timeouts and starts whatever is due for host `i`, then
    /// schedules its next wake-up.
    pub(super) fn poll_host(&mut self, i: usize, now: Millis, out: &mut Vec<Action>) {
        if self.hosts[i].removed {
            return;
        }
        // Timeouts first: slow operations are abandoned and count as failures.
        if let Some(op) = self.hosts[i].health_op {
            if op.deadline <= now {
                self.hosts[i].health_op = None;
                self.health_outcome(i, HealthOutcome::Timeout, op, now, out);
            }
        }
        if let Some(p) = self.hosts[i].power_op {
            if p.op.deadline <= now {
                self.hosts[i].power_op = None;
                self.power_timed_out(i, p, now, out);
            }
        }
        if let Some((op, checker)) = self.hosts[i].round.as_ref().and_then(|r| r.op) {
            if op.deadline <= now {
                self.round_sample(
                    i,
                    checker,
                    ActivityVerdict::CannotTell(CannotTellReason::Timeout),
                    Window {
                        from: op.started,
                        to: now,
                    },
                    now,
                    out,
                );
            }
        }
        if self.hosts[i].removed {
            return;
        }
        // Level check: an INELIGIBLE host whose conditions all hold again.
        if self.hosts[i].ha == HaState::Ineligible
            && Self::eligible(&self.hosts[i].host)
            && self.hosts[i].power == PowerState::On
        {
            self.fire(i, HaTrigger::EligibilityRegained, now, out);
        }
        // Health checks run in every state (in HA-enabled partitions), in
        // cluster rounds; a host that needs one now gets a solo check.
        if self.ha_enabled(i)
            && self.hosts[i].health_op.is_none()
            && now >= self.hosts[i].next_health_at
        {
            self.hosts[i].next_health_at = Millis::MAX;
            self.dispatch_health(i, false, now, out);
        }
        // Activity rounds.
        match self.hosts[i].ha {
            HaState::Suspect if now >= self.hosts[i].next_round_at => self.start_round(i, now, out),
            HaState::Checking if self.hosts[i].round.as_ref().is_some_and(|r| r.op.is_none()) => {
                self.next_sample(i, now, out)
            }
            _ => {}
        }
        // Recovery steps.
        if self.hosts[i].ha == HaState::Recovering {
            let due = self.hosts[i]
                .recovery
                .as_ref()
                .is_some_and(|r| r.phase == RecoveryPhase::Waiting && now >= r.next_step_at);
            if due && self.hosts[i].power_op.is_none() {
                self.start_attempt(i, now, out);
            }
        }
        // A user power operation waiting for the host's power channel.
        if self.hosts[i].power_op.is_none() && self.hosts[i].recovery.is_none() {
            if let Some(op) = self.hosts[i].user_power.take() {
                if self.quorum.is_open(now) {
                    self.start_power_op(i, PowerOpKind::User(op), now, out);
                } else {
                    out.push(Action::Emit(Event::OperatorCommandRejected {
                        host: Some(self.hosts[i].host.id),
                        reason:
                            "coordinator lost quorum before the power operation could be issued"
                                .into(),
                    }));
                }
            }
        }
        // Second half of the recovery power cycle.
        if self.hosts[i].power_on_owed
            && self.hosts[i].power_op.is_none()
            && now >= self.hosts[i].next_power_on_at
            && self.hosts[i].recovery.is_none()
        {
            match self.hosts[i].power {
                PowerState::On => self.set_power_on_owed(i, false, now, out),
                PowerState::Off if self.quorum.is_open(now) => {
                    self.start_power_op(i, PowerOpKind::On, now, out)
                }
                _ => {}
            }
        }
        // Power-state sync.
        if self.hosts[i].power_op.is_none()
            && self.hosts[i].recovery.is_none()
            && now >= self.hosts[i].next_power_poll_at
        {
            self.start_power_op(i, PowerOpKind::Poll, now, out);
        }
        self.schedule_host(i, now);
    }

    pub(super) fn schedule_host(&mut self, i: usize, now: Millis) {
        let h = &self.hosts[i];
        if h.removed {
            self.host_timers.remove(i as u32);
            return;
        }
        let mut t = Millis::MAX;
        let mut consider = |x: Millis| t = t.min(x);
        if let Some(op) = h.health_op {
            if !op.in_round {
                consider(op.deadline);
            }
        } else if self.clusters[h.cluster].cluster.ha_enabled {
            consider(h.next_health_at);
        }
        if let Some(p) = h.power_op {
            if !p.op.in_round {
                consider(p.op.deadline);
            }
        } else {
            if h.recovery.is_none() {
                consider(h.next_power_poll_at);
            }
            if h.power_on_owed {
                consider(h.next_power_on_at.max(now + 1));
            }
        }
        if let Some(r) = &h.round {
            if let Some((op, _)) = r.op {
                consider(op.deadline);
            }
        }
        if h.ha == HaState::Suspect && !h.no_vms_reported {
            consider(h.next_round_at);
        }
        if let Some(r) = &h.recovery {
            if r.phase == RecoveryPhase::Waiting {
                consider(r.next_step_at);
            }
        }
        if t == Millis::MAX {
            self.host_timers.remove(i as u32);
            return;
        }
        let t = t.max(now + 1);
        if self.host_timers.get(i as u32) != Some(t) {
            self.host_timers.set(i as u32, t);
        }
    }
}
