//! An indexed 4-ary min-heap of per-host wake-up times: one slot per host,
//! updated in place (no stale entries), so the timer queue never grows
//! beyond the number of hosts. Four children per node halves the depth of a
//! binary heap; rescheduling a host (the common operation) sinks it.

use crate::ids::Millis;

const ABSENT: u32 = u32::MAX;
const D: usize = 4;

/// Wake-up times keyed by a dense index.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerQueue {
    heap: Vec<(Millis, u32)>,
    pos: Vec<u32>,
}

impl TimerQueue {
    /// The time scheduled for `key`, if any.
    pub(crate) fn get(&self, key: u32) -> Option<Millis> {
        let p = *self.pos.get(key as usize)?;
        (p != ABSENT).then(|| self.heap[p as usize].0)
    }

    /// Schedules `key` at `t` (replacing any earlier schedule).
    pub(crate) fn set(&mut self, key: u32, t: Millis) {
        let k = key as usize;
        if self.pos.len() <= k {
            self.pos.resize(k + 1, ABSENT);
        }
        let p = self.pos[k];
        if p == ABSENT {
            self.heap.push((t, key));
            let i = self.heap.len() - 1;
            self.pos[k] = i as u32;
            self.sift_up(i);
        } else {
            let i = p as usize;
            let old = self.heap[i].0;
            self.heap[i].0 = t;
            if t < old {
                self.sift_up(i);
            } else {
                self.sift_down(i);
            }
        }
    }

    /// Unschedules `key`.
    pub(crate) fn remove(&mut self, key: u32) {
        let Some(&p) = self.pos.get(key as usize) else {
            return;
        };
        if p == ABSENT {
            return;
        }
        let i = p as usize;
        let last = self.heap.len() - 1;
        self.swap(i, last);
        self.heap.pop();
        self.pos[key as usize] = ABSENT;
        if i < self.heap.len() {
            self.sift_down(i);
            self.sift_up(i);
        }
    }

    /// The earliest entry.
    pub(crate) fn peek(&self) -> Option<(Millis, u32)> {
        self.heap.first().copied()
    }

    fn less(&self, a: usize, b: usize) -> bool {
        self.heap[a] < self.heap[b]
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].1 as usize] = a as u32;
        self.pos[self.heap[b].1 as usize] = b as u32;
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / D;
            if self.less(i, parent) {
                self.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let first = D * i + 1;
            if first >= n {
                break;
            }
            let mut m = first;
            for c in first + 1..(first + D).min(n) {
                if self.less(c, m) {
                    m = c;
                }
            }
            if self.less(m, i) {
                self.swap(m, i);
                i = m;
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_one_entry_per_key_in_time_order() {
        let mut q = TimerQueue::default();
        q.set(3, 30);
        q.set(1, 10);
        q.set(2, 20);
        q.set(1, 40); // update moves it back
        assert_eq!(q.peek(), Some((20, 2)));
        q.remove(2);
        assert_eq!(q.peek(), Some((30, 3)));
        q.set(3, 5);
        assert_eq!(q.peek(), Some((5, 3)));
        assert_eq!(q.get(1), Some(40));
        q.remove(3);
        q.remove(3);
        assert_eq!(q.peek(), Some((40, 1)));
        q.remove(1);
        assert_eq!(q.peek(), None);
        assert_eq!(q.get(1), None);
    }

    #[test]
    fn random_operations_match_a_naive_model() {
        let mut q = TimerQueue::default();
        let mut model = std::collections::BTreeMap::new();
        let mut x = 12345u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = (x % 50) as u32;
            let t = (x >> 8) % 1000;
            if x % 5 == 0 {
                q.remove(key);
                model.remove(&key);
            } else {
                q.set(key, t);
                model.insert(key, t);
            }
            let min = model.iter().map(|(k, t)| (*t, *k)).min();
            assert_eq!(q.peek(), min);
        }
    }
}

/// Host id -> slot. Ids are usually small and dense (database ids), so a
/// plain vector indexed by id is used up to a bound, a hash map beyond it:
/// result lookups are the hottest path of the coordinator.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdIndex {
    dense: Vec<u32>,
    sparse: std::collections::HashMap<u32, u32>,
}

const DENSE_LIMIT: u32 = 1 << 22;

impl IdIndex {
    pub(crate) fn get(&self, id: u32) -> Option<usize> {
        if id < DENSE_LIMIT {
            match self.dense.get(id as usize) {
                Some(&v) if v != ABSENT => Some(v as usize),
                _ => None,
            }
        } else {
            self.sparse.get(&id).map(|&v| v as usize)
        }
    }

    pub(crate) fn insert(&mut self, id: u32, slot: usize) {
        if id < DENSE_LIMIT {
            if self.dense.len() <= id as usize {
                self.dense.resize(id as usize + 1, ABSENT);
            }
            self.dense[id as usize] = slot as u32;
        } else {
            self.sparse.insert(id, slot as u32);
        }
    }
}
