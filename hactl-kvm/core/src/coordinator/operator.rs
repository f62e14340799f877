//! Operator commands.

use super::*;

impl Coordinator {
    // ----- operator -------------------------------------------------------

    pub(super) fn on_operator(&mut self, cmd: OperatorCommand, now: Millis, out: &mut Vec<Action>) {
        match cmd {
            OperatorCommand::AcknowledgeRateCap { scope } => {
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
                out.push(Action::Emit(Event::UserPowerRequested { host, op }));
                // Issued as soon as the host's current power operation (a
                // state read) has ended: one power operation per host.
                self.hosts[i].user_power = Some(op);
                self.mark_host(i);
            }
        }
    }
}
