//! VM-HA hand-off to CloudStack, as a small journaled side-record (the
//! core has no record type for it): after a confirmed fence,
//! `declareHostAsDegraded` (so CloudStack restarts the host's HA VMs
//! elsewhere); after the host is back and AVAILABLE, `cancelHostAsDegraded`.
//!
//! Each step is journaled when it becomes due and again when it is done, so
//! a restarted daemon resumes what was due and never repeats what was done.
//! The API calls themselves are made idempotent by looking first: a host
//! already `Degraded` needs no declare, one no longer `Degraded` no cancel
//! (covers a crash between the call and its journal record).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One hand-off journal record. Hosts are CloudStack uuids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "record")]
pub enum HandoffRecord {
    /// A declare is owed (fence confirmed).
    DeclareDue {
        /// Host uuid.
        host: String,
    },
    /// CloudStack shows the host Degraded (declared by us).
    Declared {
        /// Host uuid.
        host: String,
    },
    /// Gave up on the declare (CloudStack never showed Alert/Disconnected).
    DeclareAbandoned {
        /// Host uuid.
        host: String,
        /// Why.
        reason: String,
    },
    /// A cancel is owed (host back and AVAILABLE).
    CancelDue {
        /// Host uuid.
        host: String,
    },
    /// CloudStack no longer shows the host Degraded.
    Cancelled {
        /// Host uuid.
        host: String,
    },
}

/// Where one host's hand-off stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffState {
    /// Declare owed.
    DeclareDue,
    /// Declared; the host is Degraded in CloudStack by our doing.
    Declared,
    /// Cancel owed.
    CancelDue,
}

/// Hand-off state of every host with one in progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handoffs {
    /// Host uuid -> state. Hosts without an entry have nothing owed.
    pub hosts: BTreeMap<String, HandoffState>,
}

impl Handoffs {
    /// Rebuilds the state from journal records. Pure.
    pub fn replay<'a>(records: impl IntoIterator<Item = &'a HandoffRecord>) -> Handoffs {
        let mut h = Handoffs::default();
        for r in records {
            h.apply(r);
        }
        h
    }

    /// Applies one record. Pure.
    pub fn apply(&mut self, r: &HandoffRecord) {
        match r {
            HandoffRecord::DeclareDue { host } => {
                self.hosts.insert(host.clone(), HandoffState::DeclareDue);
            }
            HandoffRecord::Declared { host } => {
                self.hosts.insert(host.clone(), HandoffState::Declared);
            }
            HandoffRecord::DeclareAbandoned { host, .. } | HandoffRecord::Cancelled { host } => {
                self.hosts.remove(host);
            }
            HandoffRecord::CancelDue { host } => {
                self.hosts.insert(host.clone(), HandoffState::CancelDue);
            }
        }
    }

    /// True when CloudStack's `Degraded` for this host is ours (declared or
    /// about to be cancelled): the inventory then treats it as Enabled.
    pub fn degraded_by_us(&self, host: &str) -> bool {
        matches!(
            self.hosts.get(host),
            Some(HandoffState::Declared | HandoffState::CancelDue | HandoffState::DeclareDue)
        )
    }

    /// The record for "fence confirmed", if a declare is not already owed
    /// or done.
    pub fn on_fence_confirmed(&self, host: &str) -> Option<HandoffRecord> {
        match self.hosts.get(host) {
            Some(HandoffState::DeclareDue | HandoffState::Declared) => None,
            _ => Some(HandoffRecord::DeclareDue { host: host.into() }),
        }
    }

    /// One record per host with a hand-off in progress: replaying them gives this state again
    /// (what a compaction of the replicated log keeps of the hand-off records).
    pub fn compact_records(&self) -> Vec<HandoffRecord> {
        self.hosts
            .iter()
            .map(|(host, state)| {
                let host = host.clone();
                match state {
                    HandoffState::DeclareDue => HandoffRecord::DeclareDue { host },
                    HandoffState::Declared => HandoffRecord::Declared { host },
                    HandoffState::CancelDue => HandoffRecord::CancelDue { host },
                }
            })
            .collect()
    }

    /// The record for "host AVAILABLE again", if a cancel is owed now.
    pub fn on_available(&self, host: &str) -> Option<HandoffRecord> {
        match self.hosts.get(host) {
            Some(HandoffState::Declared) => Some(HandoffRecord::CancelDue { host: host.into() }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_resumes_what_was_due_and_forgets_what_was_done() {
        let recs = vec![
            HandoffRecord::DeclareDue { host: "a".into() },
            HandoffRecord::DeclareDue { host: "b".into() },
            HandoffRecord::Declared { host: "b".into() },
            HandoffRecord::DeclareDue { host: "c".into() },
            HandoffRecord::Declared { host: "c".into() },
            HandoffRecord::CancelDue { host: "c".into() },
            HandoffRecord::Cancelled { host: "c".into() },
        ];
        let h = Handoffs::replay(&recs);
        assert_eq!(h.hosts.get("a"), Some(&HandoffState::DeclareDue));
        assert_eq!(h.hosts.get("b"), Some(&HandoffState::Declared));
        assert_eq!(h.hosts.get("c"), None);
        // Not repeated: a second confirmation of a declared host owes nothing.
        assert_eq!(h.on_fence_confirmed("b"), None);
        assert_eq!(h.on_fence_confirmed("a"), None);
        assert!(h.on_fence_confirmed("c").is_some());
        assert!(h.on_available("b").is_some());
        assert!(h.on_available("a").is_none());
    }
}
