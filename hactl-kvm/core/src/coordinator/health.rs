//! Health check results.

use super::*;

impl Coordinator {
    // ----- health --------------------------------------------------------

    pub(super) fn on_health(
        &mut self,
        op: OpRef,
        outcome: Option<HealthOutcome>,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.host_index.get(op.host.0) else {
            return;
        };
        let Some(pending) = self.hosts[i].health_op else {
            return;
        };
        if pending.id != op.id {
            return;
        }
        self.hosts[i].health_op = None;
        if let Some(outcome) = outcome {
            self.health_outcome(i, outcome, pending, now, out);
        }
        self.mark_host(i);
    }

    pub(super) fn health_outcome(
        &mut self,
        i: usize,
        outcome: HealthOutcome,
        pending: PendingOp,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let passed = outcome == HealthOutcome::Passed;
        if passed {
            // A host that answers is on, whatever its BMC read.
            self.hosts[i].first_off_read_at = None;
        }
        let before = self.hosts[i].healthy;
        self.hosts[i].healthy = Some(passed);
        if before != Some(passed) {
            let c = self.hosts[i].cluster;
            self.mark_cluster(c);
        }
        if StateVersion(self.hosts[i].version) != pending.version {
            // Started for a state the host has since left: the HA FSM does
            // not act on it; check again right away.
            self.hosts[i].next_health_at = now;
            return;
        }
        let trigger = if passed {
            HaTrigger::HealthPassed
        } else {
            HaTrigger::HealthFailed
        };
        self.fire(i, trigger, now, out);
    }
}
