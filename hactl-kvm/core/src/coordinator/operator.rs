//! Operator commands.

use super::*;

impl Coordinator {
    // ----- operator -------------------------------------------------------

    pub(super) fn on_operator(
        &mut self,
        by: Operator,
        cmd: OperatorCommand,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        // Who ran it, journaled before what it changes; only once the
        // command is accepted (a refused one changes nothing).
        let accepted = |out: &mut Vec<Action>| {
            out.push(Action::Persist(Record::OperatorCommand {
                by: by.clone(),
                command: cmd,
                at: now,
            }))
        };
        match cmd {
            OperatorCommand::AcknowledgeRateCap { scope } => {
                if let RateScope::Partition(c) = scope {
                    if !self.cluster_index.contains_key(&c) {
                        out.push(Action::Emit(Event::OperatorCommandRejected {
                            host: None,
                            reason: format!("unknown partition {c}"),
                        }));
                        return;
                    }
                }
                accepted(out);
                out.push(Action::Persist(Record::RateCapAcknowledged {
                    scope,
                    at: now,
                }));
                if self.rate.acknowledge(scope, now) {
                    out.push(Action::Emit(Event::RateCapCleared {
                        scope,
                        by: RateCapClearedBy::Acknowledged,
                    }));
                }
            }
            OperatorCommand::ConfirmHostOff { host } => {
                let Some(i) = self
                    .host_index
                    .get(host.0)
                    .filter(|&i| !self.hosts[i].removed)
                else {
                    out.push(Action::Emit(Event::OperatorCommandRejected {
                        host: Some(host),
                        reason: "unknown host".into(),
                    }));
                    return;
                };
                if self.hosts[i].ha != HaState::Failed {
                    out.push(Action::Emit(Event::OperatorCommandRejected {
                        host: Some(host),
                        reason: format!(
                            "host is {}, only a FAILED host can be confirmed off",
                            self.hosts[i].ha
                        ),
                    }));
                    return;
                }
                accepted(out);
                out.push(Action::Emit(Event::FenceConfirmed {
                    fence: None,
                    host,
                    how: OffConfirmation::Operator,
                }));
                self.fire(i, HaTrigger::OperatorConfirmedOff, now, out);
            }
            OperatorCommand::UserPower { host, op } => {
                let reject = |reason: &str, out: &mut Vec<Action>| {
                    out.push(Action::Emit(Event::OperatorCommandRejected {
                        host: Some(host),
                        reason: reason.to_string(),
                    }))
                };
                let Some(i) = self
                    .host_index
                    .get(host.0)
                    .filter(|&i| !self.hosts[i].removed)
                else {
                    return reject("unknown host", out);
                };
                if !self.quorum.is_open(now) {
                    return reject("coordinator is not quorate: no power actions", out);
                }
                if self.hosts[i].recovery.is_some()
                    || self.hosts[i].power_on_owed
                    || matches!(
                        self.hosts[i].power_op,
                        Some(PendingPower {
                            kind: PowerOpKind::Off(_) | PowerOpKind::ConfirmOff(_),
                            ..
                        })
                    )
                {
                    return reject("a recovery of this host is in progress", out);
                }
                if self.hosts[i].user_power.is_some() {
                    return reject("another power operation on this host is pending", out);
                }
                accepted(out);
                out.push(Action::Emit(Event::UserPowerRequested { host, op }));
                // Issued as soon as the host's current power operation (a
                // state read) has ended: one power operation per host.
                self.hosts[i].user_power = Some(op);
                self.mark_host(i);
            }
            OperatorCommand::SetOverride { setting, on } => {
                let reject = |reason: String, host: Option<HostId>, out: &mut Vec<Action>| {
                    out.push(Action::Emit(Event::OperatorCommandRejected {
                        host,
                        reason,
                    }))
                };
                let known_host = |h: HostId| {
                    self.host_index
                        .get(h.0)
                        .is_some_and(|i| !self.hosts[i].removed)
                };
                match setting {
                    OperatorOverride::HaDisabled {
                        scope: OverrideScope::Partition(c),
                    } => {
                        let known = self
                            .cluster_index
                            .get(&c)
                            .is_some_and(|&i| !self.clusters[i].removed);
                        if !known {
                            return reject(format!("unknown partition {c}"), None, out);
                        }
                    }
                    OperatorOverride::HaDisabled {
                        scope: OverrideScope::Host(h),
                    }
                    | OperatorOverride::Maintenance { host: h } => {
                        if !known_host(h) {
                            return reject("unknown host".into(), Some(h), out);
                        }
                    }
                }
                if self.overrides.contains_key(&setting) == on {
                    // Already so: nothing changes, nothing is journaled.
                    return;
                }
                accepted(out);
                if on {
                    self.overrides.insert(setting, by.clone());
                } else {
                    self.overrides.remove(&setting);
                }
                self.reapply_inventory(setting, now, out);
            }
        }
    }

    /// Applies the inventory's own description of what an override
    /// concerns again, through the override now in force: the same
    /// eligibility and partition transitions an inventory change makes.
    fn reapply_inventory(&mut self, setting: OperatorOverride, now: Millis, out: &mut Vec<Action>) {
        match setting {
            OperatorOverride::HaDisabled {
                scope: OverrideScope::Partition(c),
            } => {
                if let Some(cluster) = self.inventory_clusters.get(&c).cloned() {
                    self.upsert_cluster(cluster, now, out);
                }
            }
            OperatorOverride::HaDisabled {
                scope: OverrideScope::Host(h),
            }
            | OperatorOverride::Maintenance { host: h } => {
                if let Some(host) = self.inventory_hosts.get(&h).cloned() {
                    self.upsert_host(host, now, out);
                }
            }
        }
    }

    /// The operator overrides in force, with who set them.
    pub fn overrides(&self) -> Vec<(OperatorOverride, Operator)> {
        self.overrides
            .iter()
            .map(|(s, by)| (*s, by.clone()))
            .collect()
    }
}
