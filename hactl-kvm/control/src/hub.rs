//! The daemon's event fan-out for the control socket: stamps each core
//! event with a sequence number and wall-clock time, keeps a bounded
//! backlog for `events --since`, and feeds `events --follow` streams.

use crate::protocol::EventRecord;
use crate::time::now_unix_ms;
use hactl_core::Event;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// Events kept for `events --since` by default.
pub const DEFAULT_BACKLOG: usize = 10_000;

/// Buffered events per follower before it is cut off as too slow.
const FOLLOW_BUFFER: usize = 1024;

struct Inner {
    seq: u64,
    backlog: VecDeque<EventRecord>,
}

/// Stamps, keeps and fans out events.
pub struct EventHub {
    inner: Mutex<Inner>,
    capacity: usize,
    live: broadcast::Sender<EventRecord>,
    lagged: Arc<AtomicU64>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl EventHub {
    /// A hub keeping the last `backlog` events.
    pub fn new(backlog: usize) -> Self {
        let (live, _) = broadcast::channel(FOLLOW_BUFFER);
        EventHub {
            inner: Mutex::new(Inner {
                seq: 0,
                backlog: VecDeque::with_capacity(backlog.min(1024)),
            }),
            capacity: backlog.max(1),
            live,
            lagged: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Stamps one event (next sequence number, now) and delivers it to the
    /// backlog and every follower. Never waits for a follower.
    pub fn publish(&self, event: Event) -> EventRecord {
        self.publish_at(event, now_unix_ms())
    }

    /// [`EventHub::publish`] with a given wall-clock time.
    pub fn publish_at(&self, event: Event, at_unix_ms: u64) -> EventRecord {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.seq += 1;
        let rec = EventRecord {
            seq: inner.seq,
            at_unix_ms,
            event,
        };
        if inner.backlog.len() == self.capacity {
            inner.backlog.pop_front();
        }
        inner.backlog.push_back(rec.clone());
        // No follower is not an error.
        let _ = self.live.send(rec.clone());
        rec
    }

    /// Followers cut off because they fell more than the buffer behind.
    pub fn lagged_followers(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }

    /// A stream for [`crate::ControlHandler::events`]: the backlog from
    /// `since_unix_ms` (all of it when `None`), then, with `follow`, every
    /// new event without gap or duplicate. A follower that falls behind by
    /// more than the buffer is ended (its stream closes; counted).
    /// Must be called inside a tokio runtime.
    pub fn subscribe(
        &self,
        since_unix_ms: Option<u64>,
        follow: bool,
    ) -> mpsc::Receiver<EventRecord> {
        // Snapshot and subscribe under the lock: nothing published in
        // between is lost or seen twice.
        let (backlog, live) = {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let backlog: Vec<EventRecord> = inner
                .backlog
                .iter()
                .filter(|r| since_unix_ms.map_or(true, |t| r.at_unix_ms >= t))
                .cloned()
                .collect();
            (backlog, follow.then(|| self.live.subscribe()))
        };
        let (tx, rx) = mpsc::channel(FOLLOW_BUFFER);
        let lagged = self.lagged.clone();
        tokio::spawn(async move {
            for r in backlog {
                if tx.send(r).await.is_err() {
                    return;
                }
            }
            let Some(mut live) = live else { return };
            loop {
                match live.recv().await {
                    Ok(r) => {
                        if tx.send(r).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        lagged.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        rx
    }
}
