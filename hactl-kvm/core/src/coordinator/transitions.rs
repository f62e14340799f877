//! HA transitions: the context, firing triggers and entering states.

use super::*;

impl Coordinator {
    // ----- HA transitions ----------------------------------------------

    pub(super) fn ctx(&self, i: usize, now: Millis) -> HaContext {
        let h = &self.hosts[i];
        HaContext {
            partition_active: self.clusters[h.cluster].state == PartitionState::Active,
            eligible: !h.removed && Self::eligible(&h.host),
            power_on: h.power == PowerState::On,
            power_unknown: h.power == PowerState::Unknown,
            has_vms: h.host.has_vms,
            in_quiet_period: now < h.quiet_until,
            power_off_committed: h.recovery.as_ref().is_some_and(|r| r.committed()),
            attempts_left: h
                .recovery
                .as_ref()
                .is_some_and(|r| r.budget.attempts_left()),
        }
    }

    /// Applies a trigger; returns true if the state changed.
    pub(super) fn fire(
        &mut self,
        i: usize,
        trigger: HaTrigger,
        now: Millis,
        out: &mut Vec<Action>,
    ) -> bool {
        if self.hosts[i].removed {
            return false;
        }
        let ctx = self.ctx(i, now);
        match fsm::ha_transition(self.hosts[i].ha, trigger, ctx) {
            Outcome::Goto(to) => {
                self.enter(i, to, trigger, now, out);
                true
            }
            Outcome::Stay | Outcome::Ignored => false,
        }
    }

    pub(super) fn enter(
        &mut self,
        i: usize,
        to: HaState,
        trigger: HaTrigger,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let from = self.hosts[i].ha;
        // Leaving CHECKING ends the round (its pending sample is discarded).
        if from == HaState::Checking && self.hosts[i].round.take().is_some() {
            self.activity_slots.release();
        }
        // Leaving RECOVERING ends the flow. A power-off already issued keeps
        // its pending operation: its outcome still goes to the fence log.
        if from == HaState::Recovering && self.hosts[i].recovery.take().is_some() {
            self.recovery_slots.release();
        }
        let cluster = self.clusters[self.hosts[i].cluster].cluster.id;
        let h = &mut self.hosts[i];
        h.ha = to;
        h.version += 1;
        let version = StateVersion(h.version);
        match to {
            HaState::Suspect if from != HaState::Checking => {
                h.backoff.reset();
                h.next_round_at = now + self.cfg.activity_first_delay_ms;
                h.activity_seen = false;
                self.clusters[h.cluster].guard.note_suspect(h.host.id, now);
            }
            HaState::Available => {
                h.backoff.reset();
                h.activity_seen = false;
                h.quiet_until = 0;
                h.no_vms_reported = false;
            }
            HaState::Initializing => {
                h.next_health_at = now;
                h.activity_seen = false;
            }
            _ => {}
        }
        let host = h.host.id;
        out.push(Action::Persist(Record::HaTransition {
            host,
            cluster,
            from,
            to,
            version,
            at: now,
        }));
        out.push(Action::Emit(Event::HaStateChanged {
            host,
            cluster,
            from,
            to,
            trigger,
            version,
            cloudstack: to.cloudstack_hastate(false).to_string(),
        }));
        if to == HaState::Failed {
            out.push(Action::Emit(Event::OperatorActionRequired {
                host,
                reason: self.hosts[i].failed_reason,
            }));
        }
        let c = self.hosts[i].cluster;
        self.mark_cluster(c);
        self.mark_host(i);
    }
}
