//! Virtual time and the event queue that orders everything the simulator does.
//!
//! Time is an integer count of milliseconds since the start of the run, so
//! two runs from the same seed order events identically (no float drift).
//! Ties are broken by insertion order (a sequence number), never by memory
//! address or hash order.

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

/// A heap entry packed into one integer: time (high 64 bits), insertion
/// sequence (next 40 bits) and slab slot (low 24 bits). Comparing the
/// integers orders by time, then FIFO among ties; 16 bytes per entry keeps
/// heap sifts cheap, and the events themselves stay put in a slab.
type Key = std::cmp::Reverse<u128>;

const SLOT_BITS: u32 = 24;
const SEQ_BITS: u32 = 40;

fn pack(at: SimTime, seq: u64, slot: u32) -> Key {
    std::cmp::Reverse(
        (u128::from(at.0) << 64)
            | (u128::from(seq & ((1 << SEQ_BITS) - 1)) << SLOT_BITS)
            | u128::from(slot),
    )
}

fn unpack(k: &Key) -> (SimTime, u32) {
    let v = k.0;
    (
        SimTime((v >> 64) as u64),
        (v & ((1 << SLOT_BITS) - 1)) as u32,
    )
}

/// A binary-heap event queue: O(log n) schedule and pop, FIFO among ties.
pub struct EventQueue<E> {
    heap: BinaryHeap<Key>,
    slab: Vec<Option<E>>,
    free: Vec<u32>,
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
            slab: Vec::new(),
            free: Vec::new(),
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
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(event);
                s
            }
            None => {
                self.slab.push(Some(event));
                (self.slab.len() - 1) as u32
            }
        };
        assert!(
            (slot as usize) < (1 << SLOT_BITS),
            "more than 16 million pending events"
        );
        self.heap.push(pack(at, seq, slot));
    }

    pub fn schedule_in(&mut self, delay_ms: u64, event: E) {
        let at = self.now.plus_ms(delay_ms);
        self.schedule(at, event);
    }

    /// Pops the earliest event and advances the clock to it.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let k = self.heap.pop()?;
        let (at, slot) = unpack(&k);
        debug_assert!(at >= self.now, "virtual clock went backwards");
        self.now = at;
        let e = self.slab[slot as usize]
            .take()
            .expect("scheduled slot holds its event");
        self.free.push(slot);
        Some((at, e))
    }

    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|k| unpack(k).0)
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
    fn near_and_far_events_interleave_in_time_then_fifo_order() {
        let mut q = EventQueue::new();
        let mut rng = 0x1234_5678_u64;
        let mut expect = Vec::new();
        for n in 0..5_000u64 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Mix of same-ms ties, near (< 16.4 s) and far (minutes) events.
            let at = match rng % 4 {
                0 => 1_000,
                1 => (rng >> 20) % 16_000,
                2 => (rng >> 20) % 400_000,
                _ => 16_384 + (rng >> 20) % 3,
            };
            let at = at.max(q.now().0);
            q.schedule(SimTime(at), n);
            expect.push((at, n));
            // Pop now and then so `now` moves while events are pending.
            if n % 7 == 0 {
                expect.sort();
                let (t, e) = q.pop().unwrap();
                assert_eq!((t.0, e), expect.remove(0));
            }
        }
        expect.sort();
        let got: Vec<_> = std::iter::from_fn(|| q.pop())
            .map(|(t, e)| (t.0, e))
            .collect();
        assert_eq!(got, expect);
        assert!(q.is_empty());
    }

    #[test]
    fn display_is_hms_millis() {
        assert_eq!(SimTime(3_723_004).to_string(), "T+01:02:03.004");
    }
}
