//! Inventory: zones, pods, clusters and hosts added, changed and removed.

use super::*;

impl Coordinator {
    // ----- inventory ---------------------------------------------------

    pub(super) fn apply_inventory(&mut self, inv: Inventory, now: Millis, out: &mut Vec<Action>) {
        let hosts: HashSet<HostId> = inv.hosts.iter().map(|h| h.id).collect();
        let clusters: HashSet<ClusterId> = inv.clusters.iter().map(|c| c.id).collect();
        self.zones = inv.zones.into_iter().map(|z| (z.id, z)).collect();
        self.pods = inv.pods.into_iter().map(|p| (p.id, p)).collect();
        for c in inv.clusters {
            self.upsert_cluster(c, now, out);
        }
        for h in inv.hosts {
            self.upsert_host(h, now, out);
        }
        let gone: Vec<HostId> = self
            .hosts
            .iter()
            .filter(|h| !h.removed && !hosts.contains(&h.host.id))
            .map(|h| h.host.id)
            .collect();
        for h in gone {
            self.remove_host(h, now, out);
        }
        let gone: Vec<ClusterId> = self
            .clusters
            .iter()
            .filter(|c| !c.removed && !clusters.contains(&c.cluster.id))
            .map(|c| c.cluster.id)
            .collect();
        for c in gone {
            self.remove_cluster(c, now, out);
        }
        for c in 0..self.clusters.len() {
            self.mark_cluster(c);
        }
    }

    pub(super) fn apply_change(&mut self, ch: InventoryChange, now: Millis, out: &mut Vec<Action>) {
        match ch {
            InventoryChange::UpsertZone(z) => {
                self.zones.insert(z.id, z);
                self.mark_all_clusters();
            }
            InventoryChange::UpsertPod(p) => {
                self.pods.insert(p.id, p);
                self.mark_all_clusters();
            }
            InventoryChange::UpsertCluster(c) => self.upsert_cluster(c, now, out),
            InventoryChange::UpsertHost(h) => self.upsert_host(h, now, out),
            InventoryChange::RemoveHost(h) => self.remove_host(h, now, out),
            InventoryChange::RemoveCluster(c) => self.remove_cluster(c, now, out),
        }
    }

    pub(super) fn mark_all_clusters(&mut self) {
        for c in 0..self.clusters.len() {
            self.mark_cluster(c);
        }
    }

    pub(super) fn upsert_cluster(
        &mut self,
        mut cluster: Cluster,
        _now: Millis,
        _out: &mut Vec<Action>,
    ) {
        self.inventory_clusters.insert(cluster.id, cluster.clone());
        if self.overrides.contains_key(&OperatorOverride::HaDisabled {
            scope: OverrideScope::Partition(cluster.id),
        }) {
            cluster.ha_enabled = false;
        }
        let idx = match self.cluster_index.get(&cluster.id) {
            Some(&c) => {
                self.clusters[c].cluster = cluster;
                self.clusters[c].removed = false;
                c
            }
            None => {
                let c = self.clusters.len();
                self.cluster_index.insert(cluster.id, c);
                self.clusters.push(ClusterEntry {
                    cluster,
                    removed: false,
                    hosts: Vec::new(),
                    state: PartitionState::None,
                    reasons: Vec::new(),
                    guard: MassFailureGuard::new(self.cfg.mass_failure),
                    checker_cursor: 0,
                    next_health_at: 0,
                    health_deadline: None,
                    next_poll_at: 0,
                    poll_deadline: None,
                    dirty: false,
                });
                c
            }
        };
        self.mark_cluster(idx);
    }

    pub(super) fn placeholder_cluster(&mut self, id: ClusterId) -> usize {
        // A host may arrive before its cluster: the cluster exists with HA
        // disabled until it is described.
        let c = self.clusters.len();
        self.cluster_index.insert(id, c);
        self.clusters.push(ClusterEntry {
            cluster: Cluster {
                id,
                pod: PodId(u32::MAX),
                enabled: false,
                ha_enabled: false,
            },
            removed: false,
            hosts: Vec::new(),
            state: PartitionState::None,
            reasons: Vec::new(),
            guard: MassFailureGuard::new(self.cfg.mass_failure),
            checker_cursor: 0,
            next_health_at: 0,
            health_deadline: None,
            next_poll_at: 0,
            poll_deadline: None,
            dirty: false,
        });
        c
    }

    pub(super) fn eligible(host: &Host) -> bool {
        host.resource_state == ResourceState::Enabled && host.oobm_enabled
    }

    pub(super) fn upsert_host(&mut self, mut host: Host, now: Millis, out: &mut Vec<Action>) {
        self.inventory_hosts.insert(host.id, host.clone());
        // An operator's override takes protection away whatever the
        // inventory says (never the other way round).
        if self
            .overrides
            .contains_key(&OperatorOverride::Maintenance { host: host.id })
        {
            host.resource_state = ResourceState::Maintenance;
        } else if self.overrides.contains_key(&OperatorOverride::HaDisabled {
            scope: OverrideScope::Host(host.id),
        }) {
            host.resource_state = ResourceState::Disabled;
        }
        let c = match self.cluster_index.get(&host.cluster) {
            Some(&c) => c,
            None => self.placeholder_cluster(host.cluster),
        };
        match self.host_index.get(host.id.0) {
            Some(i) if !self.hosts[i].removed => {
                let was_eligible = Self::eligible(&self.hosts[i].host);
                let old_cluster = self.hosts[i].cluster;
                if old_cluster != c {
                    // Moving between partitions: leave the old one cleanly.
                    self.fire(i, HaTrigger::PartitionDeactivated, now, out);
                    self.clusters[old_cluster].hosts.retain(|&x| x != i);
                    self.clusters[c].hosts.push(i);
                    self.hosts[i].cluster = c;
                    self.mark_cluster(old_cluster);
                    self.join_active_partition(i, now, out);
                }
                let gained_vms = host.has_vms && !self.hosts[i].host.has_vms;
                self.hosts[i].host = host;
                if gained_vms {
                    self.hosts[i].no_vms_reported = false;
                }
                let is_eligible = Self::eligible(&self.hosts[i].host);
                if was_eligible && !is_eligible {
                    self.fire(i, HaTrigger::EligibilityLost, now, out);
                } else if !was_eligible && is_eligible {
                    self.fire(i, HaTrigger::EligibilityRegained, now, out);
                }
                self.mark_host(i);
                self.mark_cluster(c);
            }
            existing => {
                let r = self.restored.remove(&host.id).unwrap_or_default();
                let entry = HostEntry {
                    removed: false,
                    cluster: c,
                    ha: match r.state {
                        Some(s @ (HaState::Fenced | HaState::Failed)) => s,
                        _ => HaState::None,
                    },
                    version: r.version,
                    power: PowerState::Unknown,
                    healthy: None,
                    quiet_until: 0,
                    activity_seen: false,
                    failed_reason: FailedReason::RecoveryAttemptsExhausted,
                    health_op: None,
                    next_health_at: now,
                    power_op: None,
                    next_power_poll_at: now,
                    round: None,
                    next_round_at: now,
                    no_vms_reported: false,
                    backoff: Backoff::new(
                        self.cfg.activity_backoff_initial_ms,
                        self.cfg.activity_backoff_max_ms,
                    ),
                    recovery: None,
                    power_on_owed: r.power_on_owed,
                    next_power_on_at: now,
                    // A re-added host keeps its fence history, as a
                    // restart rebuilding it from the journal would.
                    last_confirmed_fence_at: r
                        .last_confirmed_fence_at
                        .max(existing.and_then(|i| self.hosts[i].last_confirmed_fence_at)),
                    user_power: None,
                    first_off_read_at: None,
                    dirty: false,
                    host,
                };
                let i = match existing {
                    Some(i) => {
                        let version = self.hosts[i].version.max(entry.version);
                        self.hosts[i] = entry;
                        self.hosts[i].version = version;
                        i
                    }
                    None => {
                        let i = self.hosts.len();
                        self.host_index.insert(entry.host.id.0, i);
                        self.hosts.push(entry);
                        i
                    }
                };
                self.clusters[c].hosts.push(i);
                self.join_active_partition(i, now, out);
                if self.hosts[i].ha == HaState::Failed {
                    out.push(Action::Emit(Event::OperatorActionRequired {
                        host: self.hosts[i].host.id,
                        reason: FailedReason::RecoveryAttemptsExhausted,
                    }));
                }
                if let Some(fence) = r.open_fence {
                    // A fence whose outcome we never learned: verify it with
                    // a power read; never issue it again.
                    self.start_power_op(i, PowerOpKind::ConfirmOff(fence), now, out);
                }
                self.mark_host(i);
                self.mark_cluster(c);
            }
        }
    }

    /// A host that arrives in a partition which is already ACTIVE gets the
    /// `PartitionActivated` its partition's hosts got when it became ACTIVE;
    /// without it the host would stay NONE, unprotected, until the partition
    /// changed state again. (FENCED/FAILED hosts ignore the trigger.)
    fn join_active_partition(&mut self, i: usize, now: Millis, out: &mut Vec<Action>) {
        if self.clusters[self.hosts[i].cluster].state == PartitionState::Active {
            self.fire(i, HaTrigger::PartitionActivated, now, out);
        }
    }

    pub(super) fn remove_host(&mut self, id: HostId, now: Millis, out: &mut Vec<Action>) {
        let Some(i) = self.host_index.get(id.0) else {
            return;
        };
        if self.hosts[i].removed {
            return;
        }
        if self.hosts[i].round.is_some() {
            self.hosts[i].round = None;
            self.activity_slots.release();
        }
        if self.hosts[i].recovery.is_some() {
            self.hosts[i].recovery = None;
            self.recovery_slots.release();
        }
        let _ = now;
        let _ = out;
        let c = self.hosts[i].cluster;
        self.clusters[c].hosts.retain(|&x| x != i);
        let h = &mut self.hosts[i];
        h.removed = true;
        h.health_op = None;
        self.host_timers.remove(i as u32);
        let h = &mut self.hosts[i];
        // A pending fence power-off is kept in the fence log (journal); its
        // result is discarded because the host is gone.
        h.power_op = None;
        self.mark_cluster(c);
    }

    pub(super) fn remove_cluster(&mut self, id: ClusterId, now: Millis, out: &mut Vec<Action>) {
        let Some(&c) = self.cluster_index.get(&id) else {
            return;
        };
        let hosts: Vec<HostId> = self.clusters[c]
            .hosts
            .iter()
            .map(|&i| self.hosts[i].host.id)
            .collect();
        for h in hosts {
            self.remove_host(h, now, out);
        }
        self.clusters[c].cluster.ha_enabled = false;
        self.evaluate_partition(c, now, out);
        self.clusters[c].removed = true;
    }
}
