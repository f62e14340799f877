//! Inputs and timers: clock observation, timer dispatch, cluster rounds, the settle loop and input routing.

use super::*;

impl Coordinator {
    // ----- internals -------------------------------------------------------

    pub(super) fn view(&self, h: &HostEntry) -> HostView {
        HostView {
            id: h.host.id,
            cluster: self.clusters[h.cluster].cluster.id,
            ha: h.ha,
            version: StateVersion(h.version),
            power: h.power,
            healthy: h.healthy,
            cloudstack_hastate: h.ha.cloudstack_hastate(h.activity_seen).to_string(),
            recovering: h.recovery.is_some(),
            power_on_owed: h.power_on_owed,
            allows_ha_allocation: h.ha.allows_ha_allocation(),
            allows_non_ha_allocation: h.ha.allows_non_ha_allocation(),
        }
    }

    pub(super) fn next_op(&mut self) -> OpId {
        self.seq += 1;
        OpId::new(self.epoch, self.seq)
    }

    pub(super) fn next_fence(&mut self) -> FenceId {
        self.fence_seq += 1;
        FenceId(OpId::new(self.epoch, self.fence_seq).0)
    }

    pub(super) fn observe_clock(&mut self, now: Millis, out: &mut Vec<Action>) -> Millis {
        if now < self.last_now {
            // Monotonic time went backwards: hold time still, hold fencing.
            self.grace.rearm(self.last_now, self.cfg.startup_grace_ms);
            out.push(Action::Emit(Event::ClockAnomaly {
                previous: self.last_now,
                now,
                fencing_held_until: self.grace.until(),
            }));
            return self.last_now;
        }
        if let Some(due) = self.next_timeout() {
            if now > due.saturating_add(self.cfg.clock_jump_tolerance_ms) && due >= self.last_now {
                // The clock jumped (or we were not driven for a long time):
                // whatever we believed is stale; no fencing until fresh
                // evidence has been gathered.
                self.grace.rearm(now, self.cfg.startup_grace_ms);
                out.push(Action::Emit(Event::ClockAnomaly {
                    previous: self.last_now,
                    now,
                    fencing_held_until: self.grace.until(),
                }));
            }
        }
        self.last_now = now;
        now
    }

    pub(super) fn run_timers(&mut self, now: Millis, out: &mut Vec<Action>) {
        loop {
            let misc = self.timers.peek().map(|Reverse((t, _))| *t);
            let host = self.host_timers.peek();
            let cluster = self.cluster_timers.peek();
            let earliest = [misc, host.map(|h| h.0), cluster.map(|c| c.0)]
                .into_iter()
                .flatten()
                .min();
            match earliest {
                Some(t) if t <= now => {}
                _ => break,
            }
            if let Some((t, i)) = host.filter(|h| Some(h.0) == earliest) {
                // poll_host reschedules the host in place (one heap
                // update instead of a removal and an insertion).
                self.poll_host(i as usize, now, out);
                if self.host_timers.get(i).is_some_and(|x| x <= now.max(t)) {
                    self.host_timers.remove(i);
                }
            } else if let Some((t, c)) = cluster.filter(|c| Some(c.0) == earliest) {
                self.poll_cluster(c as usize, now, out);
                if self.cluster_timers.get(c).is_some_and(|x| x <= now.max(t)) {
                    self.cluster_timers.remove(c);
                }
            } else {
                let Reverse((t, wake)) = self.timers.pop().expect("peeked");
                match wake {
                    Wake::RateCap => {
                        if self.rate_scheduled == Some(t) {
                            self.rate_scheduled = None;
                            for scope in self.rate.expire(now) {
                                out.push(Action::Emit(Event::RateCapCleared {
                                    scope,
                                    by: RateCapClearedBy::WindowPassed,
                                }));
                            }
                            self.schedule_rate();
                        }
                    }
                }
            }
            self.settle(now, out);
        }
    }

    /// Cluster rounds: health checks and power-state sync for every host of
    /// the cluster at once, their timeouts, and the guard's deadline.
    pub(super) fn poll_cluster(&mut self, c: usize, now: Millis, out: &mut Vec<Action>) {
        if self.clusters[c].removed {
            return;
        }
        if self.clusters[c].health_deadline.is_some_and(|d| d <= now) {
            self.clusters[c].health_deadline = None;
            for k in 0..self.clusters[c].hosts.len() {
                let i = self.clusters[c].hosts[k];
                if let Some(op) = self.hosts[i].health_op {
                    if op.in_round && op.deadline <= now {
                        self.hosts[i].health_op = None;
                        self.health_outcome(i, HealthOutcome::Timeout, op, now, out);
                        self.mark_host(i);
                    }
                }
            }
        }
        if self.clusters[c].poll_deadline.is_some_and(|d| d <= now) {
            self.clusters[c].poll_deadline = None;
            for k in 0..self.clusters[c].hosts.len() {
                let i = self.clusters[c].hosts[k];
                if let Some(p) = self.hosts[i].power_op {
                    if p.op.in_round && p.op.deadline <= now {
                        self.hosts[i].power_op = None;
                        self.power_timed_out(i, p, now, out);
                        self.mark_host(i);
                    }
                }
            }
        }
        if self.clusters[c].cluster.ha_enabled && now >= self.clusters[c].next_health_at {
            let timeout = self.cfg.health_check_timeout_ms;
            for k in 0..self.clusters[c].hosts.len() {
                let i = self.clusters[c].hosts[k];
                if self.hosts[i].health_op.is_none() && !self.hosts[i].removed {
                    self.dispatch_health(i, true, now, out);
                }
            }
            self.clusters[c].next_health_at = now + self.cfg.health_check_interval_ms;
            self.clusters[c].health_deadline = Some(now + timeout);
        }
        if now >= self.clusters[c].next_poll_at {
            let mut deadline = None::<Millis>;
            for k in 0..self.clusters[c].hosts.len() {
                let i = self.clusters[c].hosts[k];
                let h = &self.hosts[i];
                if h.power_op.is_none() && h.recovery.is_none() && !h.removed {
                    self.start_power_op(i, PowerOpKind::Poll, now, out);
                    if let Some(p) = self.hosts[i].power_op.as_mut() {
                        p.op.in_round = true;
                        deadline = Some(deadline.map_or(p.op.deadline, |d| d.max(p.op.deadline)));
                    }
                    // The read is timed by the cluster; the host has
                    // nothing else due because of it.
                    self.hosts[i].dirty = false;
                }
            }
            self.dirty_hosts.retain(|&i| self.hosts[i].dirty);
            self.clusters[c].next_poll_at = now + self.cfg.power_poll_interval_ms;
            self.clusters[c].poll_deadline = deadline;
        }
        if self.clusters[c]
            .guard
            .next_deadline()
            .is_some_and(|d| d <= now)
        {
            self.mark_cluster(c);
        }
        self.schedule_cluster(c, now);
    }

    pub(super) fn schedule_cluster(&mut self, c: usize, now: Millis) {
        let cl = &self.clusters[c];
        if cl.removed {
            self.cluster_timers.remove(c as u32);
            return;
        }
        let t = [
            cl.cluster.ha_enabled.then_some(cl.next_health_at),
            cl.health_deadline,
            Some(cl.next_poll_at),
            cl.poll_deadline,
            cl.guard.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| t.max(now + 1));
        match t {
            Some(t) if self.cluster_timers.get(c as u32) != Some(t) => {
                self.cluster_timers.set(c as u32, t)
            }
            Some(_) => {}
            None => self.cluster_timers.remove(c as u32),
        }
    }

    pub(super) fn dispatch_health(
        &mut self,
        i: usize,
        in_round: bool,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let id = self.next_op();
        let h = &mut self.hosts[i];
        let op = PendingOp {
            in_round,
            id,
            version: StateVersion(h.version),
            deadline: now + self.cfg.health_check_timeout_ms,
            started: now,
        };
        h.health_op = Some(op);
        out.push(Action::RunHealthCheck {
            op: OpRef {
                id,
                host: h.host.id,
                version: op.version,
            },
            timeout_ms: self.cfg.health_check_timeout_ms,
        });
    }

    pub(super) fn schedule_rate(&mut self) {
        if let Some(t) = self.rate.next_expiry() {
            if self.rate_scheduled != Some(t) {
                self.rate_scheduled = Some(t);
                self.timers.push(Reverse((t, Wake::RateCap)));
            }
        }
    }

    pub(super) fn mark_host(&mut self, i: usize) {
        if !self.hosts[i].dirty {
            self.hosts[i].dirty = true;
            self.dirty_hosts.push(i);
        }
    }

    pub(super) fn mark_cluster(&mut self, c: usize) {
        if !self.clusters[c].dirty {
            self.clusters[c].dirty = true;
            self.dirty_clusters.push(c);
        }
    }

    pub(super) fn settle(&mut self, now: Millis, out: &mut Vec<Action>) {
        // Partition evaluation can move hosts, and host moves can change the
        // partition; iterate to a fixed point (bounded as a safety net).
        for _ in 0..64 {
            if self.dirty_clusters.is_empty() && self.dirty_hosts.is_empty() {
                return;
            }
            while let Some(c) = self.dirty_clusters.pop() {
                self.clusters[c].dirty = false;
                self.evaluate_partition(c, now, out);
            }
            while let Some(i) = self.dirty_hosts.pop() {
                self.hosts[i].dirty = false;
                self.poll_host(i, now, out);
            }
        }
        debug_assert!(false, "settle did not converge");
    }

    pub(super) fn apply(&mut self, now: Millis, input: Input, out: &mut Vec<Action>) {
        match input {
            Input::Tick => {}
            Input::Inventory(inv) => self.apply_inventory(inv, now, out),
            Input::InventoryChange(ch) => self.apply_change(ch, now, out),
            Input::HealthResult { op, outcome } => self.on_health(op, Some(outcome), now, out),
            Input::ActivityResult {
                op,
                checker,
                verdict,
                window,
            } => self.on_activity(op, checker, verdict, window, now, out),
            Input::PowerReadResult { op, reading } => self.on_power_read(op, reading, now, out),
            Input::PowerActionResult { op, outcome } => self.on_power_action(op, outcome, now, out),
            Input::QuorumChanged { quorate } => {
                // A repeated "quorate" renews the lease (see QuorumGate).
                let was_open = self.quorum.is_open(now);
                if self.quorum.set(quorate, now) {
                    out.push(Action::Emit(Event::QuorumChanged { quorate }));
                }
                if !was_open && self.quorum.is_open(now) {
                    // Owed power-ons may proceed now.
                    for i in 0..self.hosts.len() {
                        if self.hosts[i].power_on_owed {
                            self.mark_host(i);
                        }
                    }
                }
            }
            Input::HeartbeatCensus {
                cluster,
                fresh,
                total,
            } => {
                if let Some(&c) = self.cluster_index.get(&cluster) {
                    self.clusters[c].guard.note_census(fresh, total);
                    self.mark_cluster(c);
                }
            }
            Input::Operator { by, command } => self.on_operator(by, command, now, out),
        }
    }
}
