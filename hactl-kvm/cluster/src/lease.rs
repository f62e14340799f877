//! The quorum lease: Corosync's answer "quorate" is trusted only for a bounded time after it was
//! last given. A provider that stops answering (a hung corosync, a dispatch thread stuck in IPC)
//! therefore turns into "not quorate" when the lease runs out, without anyone having to notice
//! the hang. Sans-IO: the caller passes the time.

use std::time::{Duration, Instant};

/// The last quorum answer and when it was given.
#[derive(Debug, Clone)]
pub struct QuorumLease {
    lease: Duration,
    last: Option<(Instant, bool)>,
}

impl QuorumLease {
    /// A lease of `lease`; nothing is known yet (not quorate).
    pub fn new(lease: Duration) -> QuorumLease {
        QuorumLease { lease, last: None }
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The provider answered at `now`: quorate or not.
    pub fn observe(&mut self, now: Instant, quorate: bool) {
        self.last = Some((now, quorate));
    }

    /// Quorate at `now`: the last answer said so and it is younger than the lease.
    pub fn is_quorate(&self, now: Instant) -> bool {
        match self.last {
            Some((at, q)) => q && now.saturating_duration_since(at) < self.lease,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_is_not_quorate() {
        let l = QuorumLease::new(Duration::from_secs(2));
        assert!(!l.is_quorate(Instant::now()));
    }

    #[test]
    fn quorate_answer_expires_after_the_lease() {
        let t0 = Instant::now();
        let mut l = QuorumLease::new(Duration::from_secs(2));
        l.observe(t0, true);
        assert!(l.is_quorate(t0));
        assert!(l.is_quorate(t0 + Duration::from_millis(1999)));
        assert!(!l.is_quorate(t0 + Duration::from_secs(2)));
        l.observe(t0 + Duration::from_secs(3), true);
        assert!(l.is_quorate(t0 + Duration::from_secs(4)));
    }

    #[test]
    fn not_quorate_answer_is_not_quorate_at_once() {
        let t0 = Instant::now();
        let mut l = QuorumLease::new(Duration::from_secs(2));
        l.observe(t0, true);
        l.observe(t0 + Duration::from_millis(10), false);
        assert!(!l.is_quorate(t0 + Duration::from_millis(10)));
    }
}
