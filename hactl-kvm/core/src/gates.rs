//! The safety gates, each a small named component with its own tests. The
//! coordinator consults all of them before it issues any fencing action.

use crate::config::{EvidenceConfig, FenceRateConfig, MassFailureConfig};
use crate::event::{MassFailureReason, RoundOutcome};
use crate::ids::{ClusterId, HostId, Millis};
use crate::io::{ActivityVerdict, EvidenceSample, RateScope};
use std::collections::{HashMap, VecDeque};

/// No power action while the coordinator is not quorate.
///
/// Quorum is a lease, not a sticky flag: a "quorate" report counts for
/// `lease_ms` after it arrived, so the driver must repeat it (every
/// `QuorumChanged { quorate: true }` renews the lease). A quorum provider
/// that dies while reporting "quorate" closes the gate when the lease runs
/// out instead of leaving it open forever.
///
/// There is deliberately no setting that turns it off: a coordinator that may fence without
/// quorum is how a partitioned management plane powers off healthy hosts. Only a build with the
/// `checker-self-test` feature (which the simulator's tests enable, and no release build does) can
/// open it, to prove that the simulator's invariant checker catches such a core.
#[derive(Debug, Clone)]
pub struct QuorumGate {
    required: bool,
    quorate: bool,
    lease_ms: Millis,
    /// When the last "quorate" report arrived.
    renewed_at: Option<Millis>,
}

impl QuorumGate {
    /// A gate that starts closed (not quorate), with the given lease.
    pub fn new(lease_ms: Millis) -> Self {
        QuorumGate {
            required: true,
            quorate: false,
            lease_ms,
            renewed_at: None,
        }
    }

    /// An always-open gate: UNSAFE, only for the invariant checker's self-test.
    #[cfg(feature = "checker-self-test")]
    pub fn disabled_for_checker_self_test() -> Self {
        QuorumGate {
            required: false,
            quorate: false,
            lease_ms: 0,
            renewed_at: None,
        }
    }
    /// Records a quorum report at `now` (a "quorate" report renews the
    /// lease); returns true if the reported value changed.
    pub fn set(&mut self, quorate: bool, now: Millis) -> bool {
        let changed = self.quorate != quorate;
        self.quorate = quorate;
        self.renewed_at = quorate.then_some(now);
        changed
    }
    /// Last reported quorum.
    pub fn quorate(&self) -> bool {
        self.quorate
    }
    /// When the lease runs out (None: not quorate).
    pub fn lease_until(&self) -> Option<Millis> {
        self.renewed_at
            .filter(|_| self.quorate)
            .map(|t| t.saturating_add(self.lease_ms))
    }
    /// May power actions be issued at `now`?
    pub fn is_open(&self, now: Millis) -> bool {
        !self.required || self.lease_until().is_some_and(|until| now < until)
    }
}

/// No fencing during a grace period after the coordinator starts (it has not
/// yet seen the truth) or after its clock jumped.
#[derive(Debug, Clone)]
pub struct StartupGrace {
    until: Millis,
}

impl StartupGrace {
    /// Grace from `now` for `grace_ms`.
    pub fn new(now: Millis, grace_ms: Millis) -> Self {
        StartupGrace {
            until: now.saturating_add(grace_ms),
        }
    }
    /// Extends the grace to at least `now + grace_ms`.
    pub fn rearm(&mut self, now: Millis, grace_ms: Millis) {
        self.until = self.until.max(now.saturating_add(grace_ms));
    }
    /// Is fencing allowed at `now`?
    pub fn is_open(&self, now: Millis) -> bool {
        now >= self.until
    }
    /// When the grace ends.
    pub fn until(&self) -> Millis {
        self.until
    }
}

#[derive(Debug, Clone, Default)]
struct RateLog {
    fences: VecDeque<Millis>,
    counted_from: Millis,
    tripped_at: Option<Millis>,
}

impl RateLog {
    fn prune(&mut self, now: Millis, window: Millis) {
        let horizon = now.saturating_sub(window);
        while self
            .fences
            .front()
            .is_some_and(|&t| t <= horizon && now >= window)
        {
            self.fences.pop_front();
        }
    }
    fn count(&self, now: Millis, window: Millis) -> u32 {
        self.fences
            .iter()
            .filter(|&&t| (now < window || t > now - window) && t >= self.counted_from)
            .count() as u32
    }
}

/// At most N fences per sliding window, per partition and globally. Reaching
/// the cap stops fencing in that scope until an operator acknowledges or the
/// window has passed since the stop.
#[derive(Debug, Clone)]
pub struct FenceRateCap {
    cfg: FenceRateConfig,
    global: RateLog,
    partitions: HashMap<ClusterId, RateLog>,
}

impl FenceRateCap {
    /// A cap with these limits.
    pub fn new(cfg: FenceRateConfig) -> Self {
        FenceRateCap {
            cfg,
            global: RateLog::default(),
            partitions: HashMap::new(),
        }
    }

    fn limit(&self, scope: RateScope) -> u32 {
        match scope {
            RateScope::Global => self.cfg.global,
            RateScope::Partition(_) => self.cfg.per_partition,
        }
    }

    fn log(&self, scope: RateScope) -> Option<&RateLog> {
        match scope {
            RateScope::Global => Some(&self.global),
            RateScope::Partition(c) => self.partitions.get(&c),
        }
    }

    fn log_mut(&mut self, scope: RateScope) -> &mut RateLog {
        match scope {
            RateScope::Global => &mut self.global,
            RateScope::Partition(c) => self.partitions.entry(c).or_default(),
        }
    }

    /// Fences counted in `scope` at `now`.
    pub fn count(&self, scope: RateScope, now: Millis) -> u32 {
        self.log(scope)
            .map_or(0, |l| l.count(now, self.cfg.window_ms))
    }

    /// Is `scope` stopped (tripped and neither acknowledged nor expired)?
    pub fn is_tripped(&self, scope: RateScope) -> bool {
        self.log(scope).is_some_and(|l| l.tripped_at.is_some())
    }

    /// The scope that blocks a fence in `cluster` at `now`, if any.
    pub fn blocked(&self, cluster: ClusterId, now: Millis) -> Option<RateScope> {
        [RateScope::Partition(cluster), RateScope::Global]
            .into_iter()
            .find(|&s| self.is_tripped(s) || self.count(s, now) >= self.limit(s))
    }

    /// Counts a fence issued in `cluster` at `at`; returns the scopes that
    /// this fence made reach their cap (to raise the alert).
    pub fn record(&mut self, cluster: ClusterId, at: Millis) -> Vec<RateScope> {
        let window = self.cfg.window_ms;
        let mut tripped = Vec::new();
        for scope in [RateScope::Partition(cluster), RateScope::Global] {
            let limit = self.limit(scope);
            let log = self.log_mut(scope);
            log.prune(at, window);
            log.fences.push_back(at);
            if log.tripped_at.is_none() && log.count(at, window) >= limit {
                log.tripped_at = Some(at);
                tripped.push(scope);
            }
        }
        tripped
    }

    /// Restores a trip read from the journal.
    pub fn restore_trip(&mut self, scope: RateScope, at: Millis) {
        let log = self.log_mut(scope);
        if log.tripped_at.is_none() {
            log.tripped_at = Some(at);
        }
    }

    /// Operator acknowledgement: the stop ends and fences before `now` no
    /// longer count. Returns true if the scope was stopped.
    pub fn acknowledge(&mut self, scope: RateScope, now: Millis) -> bool {
        let log = self.log_mut(scope);
        let was = log.tripped_at.take().is_some();
        log.counted_from = now;
        was
    }

    /// Ends stops whose window has passed; returns the scopes cleared.
    pub fn expire(&mut self, now: Millis) -> Vec<RateScope> {
        let window = self.cfg.window_ms;
        let mut cleared = Vec::new();
        let mut check = |scope: RateScope, log: &mut RateLog| {
            if let Some(t) = log.tripped_at {
                if now >= t.saturating_add(window) {
                    log.tripped_at = None;
                    cleared.push(scope);
                }
            }
            log.prune(now, window);
        };
        check(RateScope::Global, &mut self.global);
        let mut keys: Vec<_> = self.partitions.keys().copied().collect();
        keys.sort();
        for c in keys {
            let log = self.partitions.get_mut(&c).expect("key exists");
            check(RateScope::Partition(c), log);
        }
        cleared
    }

    /// The earliest time a current stop ends by itself.
    pub fn next_expiry(&self) -> Option<Millis> {
        std::iter::once(&self.global)
            .chain(self.partitions.values())
            .filter_map(|l| l.tripped_at)
            .map(|t| t.saturating_add(self.cfg.window_ms))
            .min()
    }
}

/// What the mass-failure guard decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardChange {
    /// Nothing changed.
    Unchanged,
    /// The guard tripped.
    Tripped(MassFailureReason),
    /// The guard cleared.
    Cleared,
}

/// Detects partition-wide trouble (storage or network outage, not host
/// failure): more than a share of the hosts turning SUSPECT within a short
/// window or failing health checks at once, or storage heartbeats dropping
/// off a cliff together. While tripped the partition is INACTIVE for
/// fencing; it clears by itself when the share recovers.
#[derive(Debug, Clone)]
pub struct MassFailureGuard {
    cfg: MassFailureConfig,
    suspects: VecDeque<(Millis, HostId)>,
    last_census: Option<(u32, u32)>,
    cliff: Option<MassFailureReason>,
    tripped: Option<(MassFailureReason, Millis)>,
    /// While tripped: since when the trouble has been seen gone.
    recovered_since: Option<Millis>,
}

impl MassFailureGuard {
    /// A guard with these settings.
    pub fn new(cfg: MassFailureConfig) -> Self {
        MassFailureGuard {
            cfg,
            suspects: VecDeque::new(),
            last_census: None,
            cliff: None,
            tripped: None,
            recovered_since: None,
        }
    }

    /// A host of the partition turned SUSPECT at `now`.
    pub fn note_suspect(&mut self, host: HostId, now: Millis) {
        self.suspects.push_back((now, host));
    }

    /// A heartbeat census for the partition.
    pub fn note_census(&mut self, fresh: u32, total: u32) {
        if let Some((before, _)) = self.last_census {
            let dropped = before.saturating_sub(fresh);
            if before >= self.cfg.min_hosts
                && f64::from(dropped) > self.cfg.cliff_drop_share * f64::from(before)
            {
                self.cliff = Some(MassFailureReason::HeartbeatCliff {
                    before,
                    after: fresh,
                    total,
                });
            }
        }
        if self.cliff.is_some()
            && total > 0
            && f64::from(fresh) > (1.0 - self.cfg.cliff_drop_share) * f64::from(total)
        {
            self.cliff = None;
        }
        self.last_census = Some((fresh, total));
    }

    /// Is the guard tripped?
    pub fn tripped(&self) -> Option<MassFailureReason> {
        self.tripped.map(|(r, _)| r)
    }

    /// Re-evaluates at `now` for a partition of `total` hosts of which
    /// `unhealthy` currently fail health checks.
    pub fn evaluate(&mut self, now: Millis, total: u32, unhealthy: u32) -> GuardChange {
        let window = self.cfg.window_ms;
        while self
            .suspects
            .front()
            .is_some_and(|&(t, _)| t.saturating_add(window) <= now)
        {
            self.suspects.pop_front();
        }
        let mut recent: Vec<HostId> = self.suspects.iter().map(|&(_, h)| h).collect();
        recent.sort_unstable();
        recent.dedup();
        let over = |n: u32| {
            total >= self.cfg.min_hosts && f64::from(n) > self.cfg.share * f64::from(total)
        };
        let reason = if over(recent.len() as u32) {
            Some(MassFailureReason::SuspectShare {
                affected: recent.len() as u32,
                total,
            })
        } else if over(unhealthy) {
            Some(MassFailureReason::SuspectShare {
                affected: unhealthy,
                total,
            })
        } else {
            self.cliff
        };
        match (self.tripped, reason) {
            (None, Some(r)) => {
                self.tripped = Some((r, now));
                self.recovered_since = None;
                GuardChange::Tripped(r)
            }
            (Some(_), Some(r)) => {
                // Still tripped: the quiet window starts over.
                self.tripped = Some((r, now));
                self.recovered_since = None;
                GuardChange::Unchanged
            }
            (Some(_), None) => {
                // Clear only after the share has stayed recovered for a
                // full window.
                let since = *self.recovered_since.get_or_insert(now);
                if now >= since.saturating_add(window) {
                    self.tripped = None;
                    self.recovered_since = None;
                    GuardChange::Cleared
                } else {
                    GuardChange::Unchanged
                }
            }
            (None, None) => GuardChange::Unchanged,
        }
    }

    /// When a re-evaluation may change the outcome without new input.
    pub fn next_deadline(&self) -> Option<Millis> {
        let window = self.cfg.window_ms;
        let a = self
            .suspects
            .front()
            .map(|&(t, _)| t.saturating_add(window));
        let b = self
            .tripped
            .map(|(_, since)| self.recovered_since.unwrap_or(since).saturating_add(window));
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Distinct checkers whose dead samples a fence needs.
pub const MIN_DEAD_CHECKERS: u32 = 2;

/// N-of-M activity evidence for one round. "Cannot tell" (timeouts,
/// unreadable storage, unreachable checker) never counts as dead; a single
/// "alive" sample ends the round.
#[derive(Debug, Clone)]
pub struct ActivityEvidence {
    cfg: EvidenceConfig,
    samples: Vec<EvidenceSample>,
}

impl ActivityEvidence {
    /// An empty round.
    pub fn new(cfg: EvidenceConfig) -> Self {
        ActivityEvidence {
            cfg,
            samples: Vec::new(),
        }
    }
    /// Adds a sample (discarded verdicts are added as CannotTell).
    pub fn add(&mut self, sample: EvidenceSample) {
        self.samples.push(sample);
    }
    /// Samples so far.
    pub fn samples(&self) -> &[EvidenceSample] {
        &self.samples
    }
    /// Dead samples so far.
    pub fn dead(&self) -> u32 {
        self.samples
            .iter()
            .filter(|s| s.verdict == ActivityVerdict::Dead)
            .count() as u32
    }
    /// Distinct checkers among the dead samples.
    pub fn dead_checkers(&self) -> u32 {
        let mut seen: Vec<HostId> = Vec::new();
        for s in &self.samples {
            if s.verdict == ActivityVerdict::Dead && !seen.contains(&s.checker) {
                seen.push(s.checker);
            }
        }
        seen.len() as u32
    }
    /// The round's outcome, or None if more samples are needed. "Dead"
    /// needs `dead_required` dead samples from at least
    /// [`MIN_DEAD_CHECKERS`] distinct checkers: one wrong checker never
    /// convicts a host alone.
    pub fn outcome(&self) -> Option<RoundOutcome> {
        if self
            .samples
            .iter()
            .any(|s| s.verdict == ActivityVerdict::Alive)
        {
            return Some(RoundOutcome::ActivitySeen);
        }
        let dead = self.dead();
        let checkers = self.dead_checkers();
        if dead >= self.cfg.dead_required && checkers >= MIN_DEAD_CHECKERS {
            return Some(RoundOutcome::Dead);
        }
        let taken = self.samples.len() as u32;
        let left = self.cfg.max_samples.saturating_sub(taken);
        if dead + left < self.cfg.dead_required || checkers + left < MIN_DEAD_CHECKERS {
            return Some(RoundOutcome::Inconclusive);
        }
        None
    }
    /// Checkers already used in this round.
    pub fn used_checker(&self, checker: HostId) -> bool {
        self.samples.iter().any(|s| s.checker == checker)
    }
}

/// A counting limit (activity-check slots, recovery slots).
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit {
    max: u32,
    in_use: u32,
}

impl ConcurrencyLimit {
    /// A limit of `max`.
    pub fn new(max: u32) -> Self {
        ConcurrencyLimit { max, in_use: 0 }
    }
    /// Takes a slot if one is free.
    pub fn try_acquire(&mut self) -> bool {
        if self.in_use < self.max {
            self.in_use += 1;
            true
        } else {
            false
        }
    }
    /// Returns a slot.
    pub fn release(&mut self) {
        debug_assert!(self.in_use > 0, "release without acquire");
        self.in_use = self.in_use.saturating_sub(1);
    }
    /// Slots in use.
    pub fn in_use(&self) -> u32 {
        self.in_use
    }
    /// Any slot free?
    pub fn has_free(&self) -> bool {
        self.in_use < self.max
    }
}

/// The activity-check interval that doubles after every round that did not
/// decide (10 s, 20 s, 40 s ... up to the maximum).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Millis,
    max: Millis,
    next: Millis,
}

impl Backoff {
    /// A fresh backoff.
    pub fn new(initial: Millis, max: Millis) -> Self {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }
    /// The delay to use now; the following one is doubled.
    pub fn next_delay(&mut self) -> Millis {
        let d = self.next;
        self.next = (self.next.saturating_mul(2)).min(self.max);
        d
    }
    /// Back to the initial delay.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// The recovery retry budget: attempts before FAILED.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    max: u32,
    used: u32,
}

impl RetryBudget {
    /// A budget of `max` attempts.
    pub fn new(max: u32) -> Self {
        RetryBudget { max, used: 0 }
    }
    /// Starts an attempt; returns its 1-based number.
    pub fn start_attempt(&mut self) -> u32 {
        self.used += 1;
        self.used
    }
    /// Attempts started.
    pub fn used(&self) -> u32 {
        self.used
    }
    /// Is another attempt allowed?
    pub fn attempts_left(&self) -> bool {
        self.used < self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{CannotTellReason, Window};

    fn rate() -> FenceRateConfig {
        FenceRateConfig {
            per_partition: 3,
            global: 5,
            window_ms: 3_600_000,
        }
    }

    #[test]
    fn quorum_gate_starts_closed_and_follows_quorum() {
        let mut g = QuorumGate::new(30_000);
        assert!(!g.is_open(0));
        assert!(g.set(true, 1_000));
        assert!(g.is_open(1_000));
        assert!(!g.set(true, 20_000), "a renewal is no change");
        assert!(g.is_open(49_999), "renewed at 20 s: open until 50 s");
        assert!(
            !g.is_open(50_000),
            "the lease ran out: closed without any report"
        );
        g.set(true, 60_000);
        assert!(g.is_open(60_000));
        g.set(false, 61_000);
        assert!(!g.is_open(61_000));
    }

    #[test]
    fn startup_grace_blocks_until_its_end_and_rearms() {
        let mut g = StartupGrace::new(1_000, 60_000);
        assert!(!g.is_open(1_000));
        assert!(!g.is_open(60_999));
        assert!(g.is_open(61_000));
        g.rearm(100_000, 60_000);
        assert!(!g.is_open(159_999));
        assert!(g.is_open(160_000));
        g.rearm(0, 10);
        assert_eq!(g.until(), 160_000, "rearm never shortens");
    }

    #[test]
    fn rate_cap_trips_at_the_limit_and_clears_after_the_window() {
        let c = ClusterId(1);
        let mut cap = FenceRateCap::new(rate());
        assert_eq!(cap.blocked(c, 0), None);
        assert!(cap.record(c, 10).is_empty());
        assert!(cap.record(c, 20).is_empty());
        assert_eq!(cap.record(c, 30), vec![RateScope::Partition(c)]);
        assert_eq!(cap.blocked(c, 40), Some(RateScope::Partition(c)));
        // Other partitions are not blocked by this partition's cap.
        assert_eq!(cap.blocked(ClusterId(2), 40), None);
        assert!(cap.expire(3_600_029).is_empty());
        assert_eq!(cap.expire(3_600_030), vec![RateScope::Partition(c)]);
        assert_eq!(
            cap.blocked(c, 3_600_030),
            Some(RateScope::Partition(c)).filter(|_| false)
        );
    }

    #[test]
    fn rate_cap_global_counts_all_partitions() {
        let mut cap = FenceRateCap::new(rate());
        for i in 0..4 {
            assert!(cap.record(ClusterId(i), u64::from(i)).is_empty());
        }
        assert_eq!(cap.record(ClusterId(9), 5), vec![RateScope::Global]);
        assert_eq!(cap.blocked(ClusterId(20), 6), Some(RateScope::Global));
    }

    #[test]
    fn rate_cap_acknowledge_resumes_and_forgets_earlier_fences() {
        let c = ClusterId(1);
        let mut cap = FenceRateCap::new(rate());
        for t in [1, 2, 3] {
            cap.record(c, t);
        }
        assert!(cap.blocked(c, 4).is_some());
        assert!(cap.acknowledge(RateScope::Partition(c), 5));
        assert_eq!(cap.blocked(c, 6), None);
        assert_eq!(cap.count(RateScope::Partition(c), 6), 0);
        assert!(!cap.acknowledge(RateScope::Partition(c), 7));
    }

    #[test]
    fn rate_cap_sliding_window_forgets_old_fences() {
        let c = ClusterId(1);
        let mut cap = FenceRateCap::new(FenceRateConfig {
            per_partition: 2,
            global: 100,
            window_ms: 1_000,
        });
        cap.record(c, 0);
        assert_eq!(cap.count(RateScope::Partition(c), 999), 1);
        assert_eq!(cap.count(RateScope::Partition(c), 1_000), 0);
    }

    fn mf() -> MassFailureConfig {
        MassFailureConfig {
            share: 0.5,
            window_ms: 60_000,
            cliff_drop_share: 0.5,
            min_hosts: 3,
        }
    }

    #[test]
    fn mass_failure_trips_on_share_of_suspects_and_clears_after_window() {
        let mut g = MassFailureGuard::new(mf());
        g.note_suspect(HostId(1), 0);
        g.note_suspect(HostId(2), 1_000);
        assert_eq!(
            g.evaluate(1_000, 4, 0),
            GuardChange::Unchanged,
            "2 of 4 is not more than half"
        );
        g.note_suspect(HostId(3), 2_000);
        assert!(matches!(g.evaluate(2_000, 4, 0), GuardChange::Tripped(_)));
        assert!(g.tripped().is_some());
        // Suspect entries expire at 60 s, then a quiet window must pass.
        assert_eq!(g.evaluate(61_000, 4, 0), GuardChange::Unchanged);
        assert_eq!(g.evaluate(62_000, 4, 0), GuardChange::Unchanged);
        assert_eq!(g.evaluate(122_000, 4, 0), GuardChange::Cleared);
    }

    #[test]
    fn mass_failure_same_host_twice_counts_once() {
        let mut g = MassFailureGuard::new(mf());
        for t in 0..10 {
            g.note_suspect(HostId(1), t);
        }
        assert_eq!(g.evaluate(10, 3, 0), GuardChange::Unchanged);
    }

    #[test]
    fn mass_failure_trips_on_unhealthy_share_and_ignores_small_partitions() {
        let mut g = MassFailureGuard::new(mf());
        assert!(matches!(g.evaluate(0, 5, 3), GuardChange::Tripped(_)));
        let mut small = MassFailureGuard::new(mf());
        assert_eq!(small.evaluate(0, 2, 2), GuardChange::Unchanged);
    }

    #[test]
    fn mass_failure_heartbeat_cliff_trips_and_recovers() {
        let mut g = MassFailureGuard::new(mf());
        g.note_census(10, 10);
        assert_eq!(g.evaluate(0, 10, 0), GuardChange::Unchanged);
        g.note_census(2, 10);
        assert!(matches!(
            g.evaluate(1, 10, 0),
            GuardChange::Tripped(MassFailureReason::HeartbeatCliff {
                before: 10,
                after: 2,
                ..
            })
        ));
        g.note_census(9, 10);
        assert_eq!(g.evaluate(2, 10, 0), GuardChange::Unchanged);
        assert_eq!(g.evaluate(60_001, 10, 0), GuardChange::Unchanged);
        assert_eq!(g.evaluate(60_002, 10, 0), GuardChange::Cleared);
    }

    fn sample(v: ActivityVerdict) -> EvidenceSample {
        sample_by(9, v)
    }

    /// Samples by rotating checkers (as the coordinator picks them).
    fn sample_by(checker: u32, v: ActivityVerdict) -> EvidenceSample {
        EvidenceSample {
            checker: HostId(checker),
            verdict: v,
            window: Window { from: 0, to: 1 },
        }
    }

    #[test]
    fn one_checker_never_convicts_alone() {
        let cfg = EvidenceConfig {
            dead_required: 3,
            max_samples: 4,
        };
        let mut e = ActivityEvidence::new(cfg);
        for _ in 0..3 {
            e.add(sample_by(1, ActivityVerdict::Dead));
        }
        assert_eq!(
            e.outcome(),
            None,
            "3 dead from one checker: one more sample"
        );
        e.add(sample_by(1, ActivityVerdict::Dead));
        assert_eq!(e.outcome(), Some(RoundOutcome::Inconclusive));
        let mut e = ActivityEvidence::new(cfg);
        e.add(sample_by(1, ActivityVerdict::Dead));
        e.add(sample_by(1, ActivityVerdict::Dead));
        e.add(sample_by(2, ActivityVerdict::Dead));
        assert_eq!(e.dead_checkers(), 2);
        assert_eq!(e.outcome(), Some(RoundOutcome::Dead));
    }

    #[test]
    fn evidence_needs_n_dead_of_m() {
        let cfg = EvidenceConfig {
            dead_required: 3,
            max_samples: 4,
        };
        let mut e = ActivityEvidence::new(cfg);
        e.add(sample_by(1, ActivityVerdict::Dead));
        e.add(sample_by(2, ActivityVerdict::Dead));
        assert_eq!(e.outcome(), None);
        e.add(sample_by(
            3,
            ActivityVerdict::CannotTell(CannotTellReason::Timeout),
        ));
        assert_eq!(e.outcome(), None);
        e.add(sample_by(4, ActivityVerdict::Dead));
        assert_eq!(e.outcome(), Some(RoundOutcome::Dead));
    }

    #[test]
    fn evidence_cannot_tell_never_counts_as_dead() {
        let cfg = EvidenceConfig {
            dead_required: 3,
            max_samples: 4,
        };
        let mut e = ActivityEvidence::new(cfg);
        e.add(sample(ActivityVerdict::CannotTell(
            CannotTellReason::CheckerStorageUnreadable,
        )));
        e.add(sample(ActivityVerdict::CannotTell(
            CannotTellReason::Timeout,
        )));
        assert_eq!(e.outcome(), Some(RoundOutcome::Inconclusive));
        assert_eq!(e.dead(), 0);
    }

    #[test]
    fn evidence_one_alive_sample_ends_the_round() {
        let cfg = EvidenceConfig {
            dead_required: 2,
            max_samples: 3,
        };
        let mut e = ActivityEvidence::new(cfg);
        e.add(sample(ActivityVerdict::Dead));
        e.add(sample(ActivityVerdict::Alive));
        assert_eq!(e.outcome(), Some(RoundOutcome::ActivitySeen));
    }

    #[test]
    fn backoff_doubles_to_the_maximum() {
        let mut b = Backoff::new(10_000, 250_000);
        let seq: Vec<_> = (0..7).map(|_| b.next_delay()).collect();
        assert_eq!(
            seq,
            vec![10_000, 20_000, 40_000, 80_000, 160_000, 250_000, 250_000]
        );
        b.reset();
        assert_eq!(b.next_delay(), 10_000);
    }

    #[test]
    fn concurrency_limit_and_retry_budget() {
        let mut l = ConcurrencyLimit::new(2);
        assert!(l.try_acquire());
        assert!(l.try_acquire());
        assert!(!l.try_acquire());
        l.release();
        assert!(l.has_free());
        let mut r = RetryBudget::new(2);
        assert!(r.attempts_left());
        assert_eq!(r.start_attempt(), 1);
        assert_eq!(r.start_attempt(), 2);
        assert!(!r.attempts_left());
    }
}
