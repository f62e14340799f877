//! Partition evaluation: ACTIVE/INACTIVE and the mass-failure guard.

use super::*;

impl Coordinator {
    // ----- partitions ------------------------------------------------------

    pub(super) fn evaluate_partition(&mut self, c: usize, now: Millis, out: &mut Vec<Action>) {
        if self.clusters[c].removed {
            return;
        }
        let state = self.clusters[c].state;
        if !self.clusters[c].cluster.ha_enabled {
            if state != PartitionState::None {
                self.partition_step(c, PartitionTrigger::HaDisabled, Vec::new(), now, out);
            }
            return;
        }
        if state == PartitionState::None {
            self.partition_step(c, PartitionTrigger::HaEnabled, Vec::new(), now, out);
        }
        let mut reasons = Vec::new();
        let cl = &self.clusters[c].cluster;
        if !cl.enabled {
            reasons.push(InactiveReason::ClusterDisabled);
        }
        match self.pods.get(&cl.pod) {
            Some(p) if p.enabled => match self.zones.get(&p.zone) {
                Some(z) if z.enabled => {}
                _ => reasons.push(InactiveReason::ZoneDisabled),
            },
            _ => reasons.push(InactiveReason::PodDisabled),
        }
        // Mass-failure guard: judged on hosts that could be protected.
        let mut total = 0u32;
        let mut unhealthy = 0u32;
        let mut managed = 0u32;
        let mut qualified = 0u32;
        for &i in &self.clusters[c].hosts {
            let h = &self.hosts[i];
            let eligible = Self::eligible(&h.host);
            if eligible
                && !matches!(h.ha, HaState::Fenced | HaState::Failed)
                && h.power != PowerState::Off
            {
                total += 1;
                if h.healthy == Some(false) {
                    unhealthy += 1;
                }
            }
            if matches!(
                h.ha,
                HaState::Available
                    | HaState::Initializing
                    | HaState::Suspect
                    | HaState::Checking
                    | HaState::Recovering
            ) {
                managed += 1;
            }
            if eligible && h.power == PowerState::On && h.healthy == Some(true) {
                qualified += 1;
            }
        }
        let cluster_id = self.clusters[c].cluster.id;
        match self.clusters[c].guard.evaluate(now, total, unhealthy) {
            GuardChange::Tripped(reason) => out.push(Action::Emit(Event::MassFailureDetected {
                cluster: cluster_id,
                reason,
            })),
            GuardChange::Cleared => out.push(Action::Emit(Event::MassFailureCleared {
                cluster: cluster_id,
            })),
            GuardChange::Unchanged => {}
        }
        if let Some(r) = self.clusters[c].guard.tripped() {
            if !self.gate_broken(SelfTestGate::MassFailure) {
                reasons.push(InactiveReason::MassFailure(r));
            }
        }
        // ACTIVE needs `min_available_hosts` AVAILABLE hosts. Entering, we
        // count hosts that would be AVAILABLE (eligible, ON, healthy);
        // staying, hosts under recovery still count, or the failure of one
        // host in a two-host partition would switch off the HA meant to
        // recover it.
        let required = self.cfg.min_available_hosts;
        let available = if self.clusters[c].state == PartitionState::Active {
            managed
        } else {
            qualified
        };
        if available < required {
            reasons.push(InactiveReason::TooFewAvailableHosts {
                available,
                required,
            });
        }
        let trigger = if reasons.is_empty() {
            PartitionTrigger::ConditionsMet
        } else {
            PartitionTrigger::ConditionsLost
        };
        self.partition_step(c, trigger, reasons, now, out);
        self.schedule_cluster(c, now);
    }

    pub(super) fn partition_step(
        &mut self,
        c: usize,
        trigger: PartitionTrigger,
        reasons: Vec<InactiveReason>,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let from = self.clusters[c].state;
        let cluster = self.clusters[c].cluster.id;
        match fsm::partition_transition(from, trigger) {
            Outcome::Goto(to) => {
                self.clusters[c].state = to;
                self.clusters[c].reasons = reasons.clone();
                out.push(Action::Persist(Record::PartitionTransition {
                    cluster,
                    from,
                    to,
                    at: now,
                }));
                out.push(Action::Emit(Event::PartitionStateChanged {
                    cluster,
                    from,
                    to,
                    reasons,
                }));
                let hosts = self.clusters[c].hosts.clone();
                let host_trigger = if to == PartitionState::Active {
                    Some(HaTrigger::PartitionActivated)
                } else if from == PartitionState::Active {
                    Some(HaTrigger::PartitionDeactivated)
                } else {
                    None
                };
                for i in hosts {
                    if let Some(t) = host_trigger {
                        self.fire(i, t, now, out);
                    }
                    self.mark_host(i);
                }
            }
            Outcome::Stay | Outcome::Ignored => {
                if self.clusters[c].state != PartitionState::None {
                    self.clusters[c].reasons = reasons;
                }
            }
        }
    }
}
