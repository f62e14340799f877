//! Restart and compaction: rebuilding a coordinator from its journal, and
//! the records that rebuild the current state.

use super::*;

impl Coordinator {
    /// Rebuilds a coordinator from journal records (in journal order). The
    /// new incarnation gets the next epoch, keeps every host's state version
    /// growing, keeps FENCED and FAILED hosts, verifies fences whose outcome
    /// was not recorded with a power read (never by fencing again), and
    /// counts every journaled fence in the rate cap. Records stamped later
    /// than `now` (the clock stepped back) count as if issued at `now`.
    ///
    /// The returned startup actions ([`Action::Persist`] of the new epoch
    /// and the start event) must be carried out like any other batch.
    pub fn recover<I>(
        config: Config,
        records: I,
        now: Millis,
    ) -> Result<(Self, Vec<Action>), RecoverError>
    where
        I: IntoIterator<Item = Record>,
    {
        config.validate()?;
        let mut max_epoch = 0u32;
        let mut count = 0u64;
        let mut restored: HashMap<HostId, Restored> = HashMap::new();
        let mut open: BTreeMap<FenceId, HostId> = BTreeMap::new();
        let mut rate = FenceRateCap::new(config.fence_rate);
        let mut fence_log = Vec::new();
        let mut overrides = BTreeMap::new();
        for rec in records {
            count += 1;
            let at = rec.at().min(now);
            if matches!(
                rec,
                Record::FenceIssued { .. }
                    | Record::FenceResolved { .. }
                    | Record::RateCapTripped { .. }
                    | Record::RateCapAcknowledged { .. }
            ) {
                fence_log.push(rec.clone());
            }
            match rec {
                Record::Started { epoch, .. } => max_epoch = max_epoch.max(epoch),
                Record::HaTransition {
                    host, to, version, ..
                } => {
                    let r = restored.entry(host).or_default();
                    r.version = r.version.max(version.0);
                    r.state = Some(to);
                    r.last_transition_at = Some(at);
                    r.confirmed_unapplied = None;
                }
                Record::PartitionTransition { .. } => {}
                Record::FenceIssued {
                    fence,
                    host,
                    cluster,
                    ..
                } => {
                    rate.record(cluster, at);
                    open.insert(fence, host);
                }
                Record::FenceResolved {
                    fence,
                    host,
                    outcome,
                    ..
                } => {
                    open.remove(&fence);
                    if outcome == FenceOutcome::ConfirmedOff {
                        let r = restored.entry(host).or_default();
                        let before = r.last_confirmed_fence_at;
                        r.last_confirmed_fence_at = Some(before.map_or(at, |t| t.max(at)));
                        // The batch that confirmed it also journals the
                        // host's move to FENCED at the same time; a
                        // transition stamped earlier means that batch was
                        // cut short (a crash, or a replicated journal that
                        // lost its tail). Compaction writes every host's
                        // transition stamped at compaction time, never
                        // earlier than the fences it keeps.
                        r.confirmed_unapplied = r
                            .last_transition_at
                            .map_or(true, |t| t < at)
                            .then_some((fence, before));
                    }
                }
                Record::PowerOnOwed { host, owed, .. } => {
                    restored.entry(host).or_default().power_on_owed = owed;
                }
                Record::RateCapTripped { scope, .. } => rate.restore_trip(scope, at),
                Record::RateCapAcknowledged { scope, .. } => {
                    rate.acknowledge(scope, at);
                }
                Record::OperatorCommand {
                    by,
                    command: OperatorCommand::SetOverride { setting, on },
                    ..
                } => {
                    if on {
                        overrides.insert(setting, by);
                    } else {
                        overrides.remove(&setting);
                    }
                }
                // The other commands are an audit trail; their effects
                // have records of their own.
                Record::OperatorCommand { .. } => {}
            }
        }
        // A confirmed fence whose consequences were lost is verified again
        // like an open one: a power read (never a second off), and if the
        // host is still off the confirmation is applied in full (FENCED,
        // hand-off, power-on owed). Left as it was, the host would come
        // back as an unmanaged host that is simply off, its VMs dead.
        let mut reverified = 0u32;
        for r in restored.values_mut() {
            if let Some((fence, before)) = r.confirmed_unapplied.take() {
                if r.state != Some(HaState::Fenced) {
                    r.open_fence = Some(fence);
                    r.last_confirmed_fence_at = before;
                    reverified += 1;
                }
            }
        }
        let open_fences = open.len() as u32 + reverified;
        for (fence, host) in open {
            restored.entry(host).or_default().open_fence = Some(fence);
        }
        if max_epoch >= MAX_EPOCH {
            return Err(RecoverError::EpochExhausted(max_epoch));
        }
        let epoch = max_epoch + 1;
        let mut core = Self::build(config, epoch, now);
        core.rate = rate;
        core.restored = restored;
        core.fence_log = fence_log;
        core.overrides = overrides;
        // Stops that ended while we were down end now.
        let mut out = Vec::new();
        for scope in core.rate.expire(now) {
            out.push(Action::Emit(Event::RateCapCleared {
                scope,
                by: RateCapClearedBy::WindowPassed,
            }));
        }
        out.insert(0, Action::Persist(Record::Started { epoch, at: now }));
        out.push(Action::Emit(Event::CoordinatorStarted {
            epoch,
            recovered: true,
            records: count,
            fences_in_window: core.rate.count(RateScope::Global, now),
            open_fences,
        }));
        core.schedule_rate();
        Ok((core, out))
    }

    /// Records that rebuild the current state (for journal compaction):
    /// replaying them with [`Coordinator::recover`] gives the same host
    /// states, versions, open fences, owed power-ons and rate-cap state.
    pub fn compact_records(&self, now: Millis) -> Vec<Record> {
        let mut out = vec![Record::Started {
            epoch: self.epoch,
            at: now,
        }];
        let mut hosts: Vec<&HostEntry> = self.hosts.iter().collect();
        hosts.sort_by_key(|h| h.host.id);
        for h in hosts {
            let cluster = self.clusters[h.cluster].cluster.id;
            out.push(Record::HaTransition {
                host: h.host.id,
                cluster,
                from: h.ha,
                to: h.ha,
                version: StateVersion(h.version),
                at: now,
            });
            if h.power_on_owed {
                out.push(Record::PowerOnOwed {
                    host: h.host.id,
                    owed: true,
                    at: now,
                });
            }
        }
        // Overrides in force (a restart must not give protection back
        // that an operator took away).
        out.extend(
            self.overrides
                .iter()
                .map(|(setting, by)| Record::OperatorCommand {
                    by: by.clone(),
                    command: OperatorCommand::SetOverride {
                        setting: *setting,
                        on: true,
                    },
                    at: now,
                }),
        );
        // Fence records: everything the rate cap may still count, every
        // fence still open, and the cap's trips and acknowledgements.
        let horizon = now.saturating_sub(self.cfg.fence_rate.window_ms);
        // Confirmed fences also feed the re-fence hold-off, which may look
        // further back than the rate window.
        let fence_horizon = now.saturating_sub(
            self.cfg
                .fence_rate
                .window_ms
                .max(self.cfg.refence_holdoff_ms),
        );
        let resolved: HashSet<FenceId> = self
            .fence_log
            .iter()
            .filter_map(|r| match r {
                Record::FenceResolved { fence, .. } => Some(*fence),
                _ => None,
            })
            .collect();
        let keep: HashSet<FenceId> = self
            .fence_log
            .iter()
            .filter_map(|r| match r {
                Record::FenceIssued { fence, at, .. }
                    if *at > fence_horizon || !resolved.contains(fence) =>
                {
                    Some(*fence)
                }
                _ => None,
            })
            .collect();
        out.extend(
            self.fence_log
                .iter()
                .filter(|r| match r {
                    Record::FenceIssued { fence, .. } | Record::FenceResolved { fence, .. } => {
                        keep.contains(fence)
                    }
                    other => other.at() > horizon,
                })
                .cloned(),
        );
        out
    }
}
