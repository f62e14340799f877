//! Virtual time and the event queue that orders everything the simulator does.
//!
//! Time is an integer count of milliseconds since the start of the run, so
//! two runs from the same seed order events identically (no float drift).
//! Ties are broken by insertion order (a sequence number), never by memory
//! address or hash order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;

/// A point on the simulator's monotonic virtual clock, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SimTime(pub u64);

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);

    pub fn from_secs(s: u64) -> SimTime {
        SimTime(s * 1000)
    }

    pub fn from_millis(ms: u64) -> SimTime {
        SimTime(ms)
    }

    pub fn as_millis(self) -> u64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    pub fn plus_ms(self, ms: u64) -> SimTime {
        SimTime(self.0.saturating_add(ms))
    }

    pub fn since(self, earlier: SimTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for SimTime {
    /// `T+HH:MM:SS.mmm`, the prefix of every timeline line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 % 1000;
        let total_s = self.0 / 1000;
        let (h, m, s) = (total_s / 3600, (total_s / 60) % 60, total_s % 60);
        write!(f, "T+{h:02}:{m:02}:{s:02}.{ms:03}")
    }
}

struct Scheduled<E> {
    at: SimTime,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl<E> Eq for Scheduled<E> {}
impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Scheduled<E> {
    /// Reversed so that `BinaryHeap` (a max-heap) pops the earliest event,
    /// and among equal times the one scheduled first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// A binary-heap event queue: O(log n) schedule and pop, FIFO among ties.
pub struct EventQueue<E> {
    heap: BinaryHeap<Scheduled<E>>,
    next_seq: u64,
    now: SimTime,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    pub fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
            now: SimTime::ZERO,
        }
    }

    /// The time of the event most recently popped.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `event` at `at`; an instant in the past is clamped to now so
    /// the clock never runs backwards.
    pub fn schedule(&mut self, at: SimTime, event: E) {
        let at = at.max(self.now);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Scheduled { at, seq, event });
    }

    pub fn schedule_in(&mut self, delay_ms: u64, event: E) {
        let at = self.now.plus_ms(delay_ms);
        self.schedule(at, event);
    }

    /// Pops the earliest event and advances the clock to it.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let s = self.heap.pop()?;
        debug_assert!(s.at >= self.now, "virtual clock went backwards");
        self.now = s.at;
        Some((s.at, s.event))
    }

    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|s| s.at)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_and_fifo_among_ties() {
        let mut q = EventQueue::new();
        q.schedule(SimTime(30), "c");
        q.schedule(SimTime(10), "a");
        q.schedule(SimTime(10), "b");
        q.schedule(SimTime(20), "x");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
        assert_eq!(order, vec!["a", "b", "x", "c"]);
    }

    #[test]
    fn past_events_are_clamped_to_now() {
        let mut q = EventQueue::new();
        q.schedule(SimTime(100), 1);
        assert_eq!(q.pop(), Some((SimTime(100), 1)));
        q.schedule(SimTime(5), 2);
        assert_eq!(q.pop(), Some((SimTime(100), 2)));
    }

    #[test]
    fn display_is_hms_millis() {
        assert_eq!(SimTime(3_723_004).to_string(), "T+01:02:03.004");
    }
}
