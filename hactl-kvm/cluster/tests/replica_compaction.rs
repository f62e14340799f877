//! Compaction of the replicated log: the `Replica` state machine of three members over a model of
//! CPG (one agreed-order stream per partition, every member of it delivering the whole stream;
//! virtual synchrony before every view change), each member writing a real `hactl-journal` file
//! exactly as `ClusterNode` does (append, atomic rewrite). The assertions judge those files.

use hactl_cluster::replica::{verify_chain, Action, Entry, EntryBody, NodeId, Replica, Role, Wire};
use hactl_cluster::Refusal;
use hactl_journal::Journal;
use std::collections::VecDeque;

const N: usize = 3;

fn id(i: usize) -> NodeId {
    i as NodeId + 1
}

struct Group {
    _dir: tempfile::TempDir,
    reps: Vec<Option<Replica>>,
    journals: Vec<Option<Journal>>,
    paths: Vec<std::path::PathBuf>,
    comp: [usize; N],
    /// (partition, sender, message) in agreed order.
    queue: VecDeque<(usize, usize, Wire)>,
    /// (member, seq) of every proposal reported durable.
    durable: Vec<(usize, u64)>,
    rejected: Vec<usize>,
    /// Every transfer multicast: (to, base, entries).
    transfers: Vec<(NodeId, u64, Vec<Entry>)>,
    next: u64,
}

impl Group {
    fn new() -> Group {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<_> = (0..N)
            .map(|i| dir.path().join(format!("replica-{}.journal", id(i))))
            .collect();
        let mut g = Group {
            reps: (0..N).map(|_| None).collect(),
            journals: (0..N).map(|_| None).collect(),
            paths,
            _dir: dir,
            comp: [0; N],
            queue: VecDeque::new(),
            durable: Vec::new(),
            rejected: Vec::new(),
            transfers: Vec::new(),
            next: 0,
        };
        for i in 0..N {
            g.open(i);
        }
        g.views();
        g
    }

    /// Starts member `i` from its journal file, as `ClusterNode::start` does.
    fn open(&mut self, i: usize) {
        let (j, replay) = Journal::open::<Entry>(&self.paths[i]).unwrap();
        verify_chain(&replay.records).unwrap();
        self.reps[i] = Some(Replica::new(id(i), N, replay.records));
        self.journals[i] = Some(j);
    }

    fn rep(&self, i: usize) -> &Replica {
        self.reps[i].as_ref().unwrap()
    }

    /// What member `i`'s journal file holds.
    fn disk(&self, i: usize) -> Vec<Entry> {
        hactl_journal::inspect::<Entry>(&self.paths[i])
            .unwrap()
            .records
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    fn execute(&mut self, i: usize, actions: Vec<Action>) {
        for a in actions {
            let j = self.journals[i].as_mut().unwrap();
            match a {
                Action::Multicast(m) => {
                    if let Wire::Transfer { to, base, entries } = &m {
                        self.transfers.push((*to, *base, entries.clone()));
                    }
                    self.queue.push_back((self.comp[i], i, m));
                }
                Action::Append(e) => j.append(&e).unwrap(),
                Action::Compact(e) => j.rewrite(std::slice::from_ref(&e)).unwrap(),
                Action::Replace { .. } => {
                    let log = self.reps[i].as_ref().unwrap().log().to_vec();
                    j.rewrite(&log).unwrap();
                }
                Action::Durable { seq, .. } => self.durable.push((i, seq)),
                Action::Rejected { .. } => self.rejected.push(i),
                Action::RoleChanged(_) => {}
            }
        }
    }

    fn live(&self, c: usize) -> Vec<usize> {
        (0..N)
            .filter(|&i| self.reps[i].is_some() && self.comp[i] == c)
            .collect()
    }

    /// Delivers everything queued to every live member of the sender's partition, then lets
    /// every member report what it wrote, until nothing moves.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            while let Some((c, sender, msg)) = self.queue.pop_front() {
                for m in self.live(c) {
                    let a = self.reps[m]
                        .as_mut()
                        .unwrap()
                        .deliver(id(sender), msg.clone());
                    self.execute(m, a);
                }
            }
            for i in 0..N {
                if let Some(r) = self.reps[i].as_mut() {
                    let a = r.report_written();
                    self.execute(i, a);
                }
            }
            if self.queue.is_empty() {
                return;
            }
        }
        panic!("message storm");
    }

    /// Every live member sees a new view of its partition.
    fn views(&mut self) {
        self.settle();
        for i in 0..N {
            if self.reps[i].is_none() {
                continue;
            }
            let members: Vec<NodeId> = self.live(self.comp[i]).into_iter().map(id).collect();
            let a = self.reps[i].as_mut().unwrap().view_changed(members);
            self.execute(i, a);
        }
        self.settle();
    }

    fn partition(&mut self, comp: [usize; N]) {
        self.settle();
        self.comp = comp;
        self.views();
    }

    fn crash(&mut self, i: usize) {
        self.reps[i] = None;
        self.journals[i] = None;
        self.views();
    }

    fn restart(&mut self, i: usize) {
        self.open(i);
        self.views();
    }

    fn restart_empty(&mut self, i: usize) {
        std::fs::remove_file(&self.paths[i]).unwrap();
        self.restart(i);
    }

    fn promote(&mut self, i: usize) {
        let a = self.reps[i].as_mut().unwrap().promote().unwrap();
        self.execute(i, a);
        self.settle();
        assert_eq!(self.rep(i).role(), Role::Active);
    }

    fn propose(&mut self, i: usize) -> u64 {
        self.next += 1;
        let (_, a) = self.reps[i]
            .as_mut()
            .unwrap()
            .propose(format!("record {}", self.next))
            .unwrap();
        self.execute(i, a);
        self.settle();
        self.durable.last().unwrap().1
    }

    /// The active compacts at its head; returns the snapshot's seq once durable.
    fn snapshot(&mut self, i: usize) -> u64 {
        let head = self.rep(i).head();
        let (_, a) = self.reps[i]
            .as_mut()
            .unwrap()
            .propose_snapshot(head, format!("state at {head}"))
            .unwrap();
        let before = self.durable.len();
        self.execute(i, a);
        self.settle();
        assert_eq!(
            self.durable.len(),
            before + 1,
            "the snapshot became durable"
        );
        let seq = self.durable.last().unwrap().1;
        assert_eq!(seq, head + 1);
        seq
    }

    fn assert_identical_disks(&self, members: &[usize]) {
        let d0 = self.disk(members[0]);
        verify_chain(&d0).unwrap();
        for &m in &members[1..] {
            assert_eq!(self.disk(m), d0, "disk of node {} differs", id(m));
            assert_eq!(
                std::fs::read(&self.paths[m]).unwrap(),
                std::fs::read(&self.paths[members[0]]).unwrap(),
                "journal file of node {} differs byte for byte",
                id(m)
            );
        }
    }
}

fn is_snapshot(e: &Entry) -> bool {
    matches!(e.body, EntryBody::Snapshot { .. })
}

#[test]
fn every_member_compacts_at_the_same_seq() {
    let mut g = Group::new();
    g.promote(0);
    for _ in 0..6 {
        g.propose(0);
    }
    let big = std::fs::metadata(&g.paths[1]).unwrap().len();
    let s = g.snapshot(0);
    assert_eq!(s, 9, "epoch + confirm + 6 records, then the snapshot");
    for i in 0..N {
        let d = g.disk(i);
        assert_eq!(d.len(), 1, "node {}: {d:?}", id(i));
        assert_eq!(d[0].seq, s);
        assert!(is_snapshot(&d[0]));
        assert_eq!(g.rep(i).log(), d.as_slice());
    }
    g.assert_identical_disks(&[0, 1, 2]);
    assert!(std::fs::metadata(&g.paths[1]).unwrap().len() < big);
    // What the prefix meant survives: epoch, active, roles, and the log goes on after it.
    for i in 0..N {
        assert_eq!((g.rep(i).epoch(), g.rep(i).active()), (1, Some(1)));
    }
    assert_eq!(g.rep(0).role(), Role::Active);
    assert_eq!(g.propose(0), s + 1);
    g.assert_identical_disks(&[0, 1, 2]);
    assert!(g.rep(0).authorize_power(1, true).is_ok());
}

#[test]
fn an_empty_member_gets_the_snapshot_and_the_tail() {
    let mut g = Group::new();
    g.promote(0);
    for _ in 0..3 {
        g.propose(0);
    }
    let s = g.snapshot(0);
    g.propose(0);
    g.propose(0);
    g.crash(2);
    g.restart_empty(2);
    let (to, base, entries) = g.transfers.last().unwrap().clone();
    assert_eq!((to, base), (id(2), 0));
    assert_eq!(entries.len(), 3);
    assert!(is_snapshot(&entries[0]) && entries[0].seq == s);
    g.assert_identical_disks(&[0, 1, 2]);
    assert_eq!(g.rep(2).role(), Role::Standby);
    assert_eq!((g.rep(2).epoch(), g.rep(2).active()), (1, Some(1)));
}

#[test]
fn a_member_behind_the_snapshot_gets_the_snapshot_and_the_tail() {
    let mut g = Group::new();
    g.promote(0);
    g.propose(0);
    g.propose(0);
    g.partition([0, 0, 1]);
    let behind = g.disk(2);
    g.propose(0);
    let s = g.snapshot(0);
    g.propose(0);
    assert_eq!(g.disk(2), behind, "the cut-off member wrote nothing");
    g.transfers.clear();
    g.partition([0, 0, 0]);
    assert_eq!(g.transfers.len(), 1);
    let (to, base, entries) = g.transfers[0].clone();
    assert_eq!((to, base), (id(2), 0), "the whole compacted log");
    assert!(is_snapshot(&entries[0]) && entries[0].seq == s);
    g.assert_identical_disks(&[0, 1, 2]);
    assert_eq!(g.disk(2)[0].seq, s);
    assert_eq!(g.rep(2).role(), Role::Standby);
    assert_eq!(g.propose(0), s + 2);
    g.assert_identical_disks(&[0, 1, 2]);
}

#[test]
fn a_member_after_the_snapshot_gets_only_the_tail() {
    let mut g = Group::new();
    g.promote(0);
    g.propose(0);
    let s = g.snapshot(0);
    g.propose(0);
    g.partition([0, 0, 1]);
    let head2 = g.rep(2).head();
    g.propose(0);
    g.propose(0);
    g.transfers.clear();
    g.partition([0, 0, 0]);
    assert_eq!(g.transfers.len(), 1);
    let (to, base, entries) = g.transfers[0].clone();
    assert_eq!((to, base), (id(2), head2));
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![head2 + 1, head2 + 2]
    );
    assert!(!entries.iter().any(is_snapshot));
    g.assert_identical_disks(&[0, 1, 2]);
    assert_eq!(g.disk(2)[0].seq, s);
}

#[test]
fn members_restart_from_a_compacted_file() {
    let mut g = Group::new();
    g.promote(0);
    g.propose(0);
    g.propose(0);
    let s = g.snapshot(0);
    g.propose(0);
    // A standby restarts from its compacted file: in sync at once, no transfer.
    g.transfers.clear();
    g.crash(1);
    g.restart(1);
    assert!(g.transfers.is_empty(), "{:?}", g.transfers);
    assert_eq!(g.rep(1).role(), Role::Standby);
    assert_eq!(
        (g.rep(1).epoch(), g.rep(1).active(), g.rep(1).head()),
        (1, Some(1), s + 1)
    );
    // The whole group restarts: nobody resumes the old epoch; a new promotion follows it.
    for i in 0..N {
        g.reps[i] = None;
        g.journals[i] = None;
    }
    for i in 0..N {
        g.open(i);
    }
    g.views();
    assert!(g.transfers.is_empty(), "{:?}", g.transfers);
    for i in 0..N {
        assert_eq!(g.rep(i).role(), Role::Standby);
        assert_eq!(g.rep(i).epoch(), 1);
        assert!(g.rep(i).authorize_power(1, true).is_err());
    }
    g.promote(1);
    assert_eq!(g.rep(1).epoch(), 2);
    g.propose(1);
    g.assert_identical_disks(&[0, 1, 2]);
    assert_eq!(g.disk(0)[0].seq, s);
}

/// Node 3 is cut off with the uncompacted log of epoch 1; nodes 1 and 2 compact. When all meet,
/// the compacted logs (their snapshot stands for epoch 1's confirmation) must win the sync round
/// over node 3's log, which still holds the `Confirm` entry; otherwise the durable snapshot and
/// the records after it would be overwritten.
#[test]
fn a_sync_round_after_compaction_ranks_the_compacted_log_first() {
    let mut g = Group::new();
    g.promote(0);
    g.propose(0);
    g.partition([0, 0, 1]);
    let s = g.snapshot(0);
    let r = g.propose(0);
    g.partition([0, 0, 0]);
    g.assert_identical_disks(&[0, 1, 2]);
    assert_eq!(g.disk(2)[0].seq, s);
    assert_eq!(g.disk(2).last().unwrap().seq, r);
    assert_eq!(g.rep(0).role(), Role::Active);

    // A promotion in a new epoch after compaction, cut off before it was confirmed: it must not
    // outrank the compacted log of the confirmed epoch.
    g.partition([0, 1, 1]);
    assert_eq!(g.rep(1).epoch(), 1);
    let a = g.reps[1].as_mut().unwrap().promote().unwrap();
    g.execute(1, a);
    g.settle();
    assert_eq!(
        g.rep(1).role(),
        Role::Active,
        "nodes 2 and 3 promote node 2"
    );
    g.propose(1);
    g.partition([0, 0, 0]);
    g.assert_identical_disks(&[0, 1, 2]);
    assert_eq!(g.rep(0).epoch(), 2);
    assert_eq!(g.rep(0).role(), Role::Standby);
}

#[test]
fn a_snapshot_from_a_standby_or_a_stale_epoch_is_refused() {
    let mut g = Group::new();
    g.promote(0);
    g.propose(0);
    let head = g.rep(1).head();
    assert!(matches!(
        g.reps[1]
            .as_mut()
            .unwrap()
            .propose_snapshot(head, "x".into()),
        Err(Refusal::NotActive(Role::Standby))
    ));
    let before: Vec<_> = (0..N).map(|i| g.disk(i)).collect();
    // A forged snapshot from a standby, in the current epoch at the current head.
    g.queue.push_back((
        0,
        1,
        Wire::Snapshot {
            epoch: 1,
            proposal: 1,
            head,
            state: "forged".into(),
        },
    ));
    // The active's, taken at a head the log no longer ends at.
    g.queue.push_back((
        0,
        0,
        Wire::Snapshot {
            epoch: 1,
            proposal: 99,
            head: head - 1,
            state: "old".into(),
        },
    ));
    g.settle();
    assert_eq!((0..N).map(|i| g.disk(i)).collect::<Vec<_>>(), before);
    assert_eq!(g.rejected, vec![1, 0]);

    // Node 1 claims again (epoch 2); a snapshot it multicast in epoch 1 arrives after that.
    let a = g.reps[0].as_mut().unwrap().promote().unwrap();
    g.execute(0, a);
    g.settle();
    assert_eq!((g.rep(0).epoch(), g.rep(0).role()), (2, Role::Active));
    let before: Vec<_> = (0..N).map(|i| g.disk(i)).collect();
    g.queue.push_back((
        0,
        0,
        Wire::Snapshot {
            epoch: 1,
            proposal: 98,
            head: g.rep(0).head(),
            state: "epoch 1".into(),
        },
    ));
    g.settle();
    assert_eq!((0..N).map(|i| g.disk(i)).collect::<Vec<_>>(), before);
    assert_eq!(g.rejected, vec![1, 0, 0]);

    // Node 2 takes over in epoch 3 while node 1 is cut off; node 1's snapshot of epoch 2,
    // multicast after it rejoins, is refused by everyone.
    g.partition([1, 0, 0]);
    g.promote(1);
    g.propose(1);
    g.partition([0, 0, 0]);
    let before: Vec<_> = (0..N).map(|i| g.disk(i)).collect();
    let head = g.rep(0).head();
    assert!(g.reps[0]
        .as_mut()
        .unwrap()
        .propose_snapshot(head, "stale".into())
        .is_err());
    g.queue.push_back((
        0,
        0,
        Wire::Snapshot {
            epoch: 2,
            proposal: 100,
            head,
            state: "stale".into(),
        },
    ));
    g.settle();
    assert_eq!((0..N).map(|i| g.disk(i)).collect::<Vec<_>>(), before);
    assert!(!g.disk(0).iter().any(is_snapshot));
}

#[test]
fn a_log_that_does_not_start_with_a_snapshot_or_has_a_broken_chain_is_refused() {
    let mut g = Group::new();
    g.promote(0);
    g.propose(0);
    g.propose(0);
    let full = g.disk(0);
    verify_chain(&full).unwrap();
    assert!(
        verify_chain(&full[1..]).is_err(),
        "a prefix cut without snapshot"
    );
    let mut bad = full.clone();
    if let EntryBody::Record { payload } = &mut bad[3].body {
        payload.push('!');
    }
    assert!(verify_chain(&bad).is_err());
    g.snapshot(0);
    g.propose(0);
    verify_chain(&g.disk(0)).unwrap();
}

/// An entry over the journal's record limit cannot be written by any member, and a member whose
/// journal write fails stops: an oversized record or snapshot is refused before it is multicast,
/// and one delivered anyway (forged, or from another version) is rejected by every member alike,
/// leaving every journal file as it was. The largest snapshot under the limit is written by all.
#[test]
fn an_entry_over_the_journal_record_limit_is_refused_and_rejected_by_every_member() {
    let mut g = Group::new();
    g.promote(0);
    g.propose(0);
    let limit = hactl_cluster::MAX_ENTRY_BYTES;
    let head = g.rep(0).head();
    let active = g.reps[0].as_mut().unwrap();
    assert!(matches!(
        active.propose("r".repeat(limit)),
        Err(Refusal::TooLarge { limit: l, .. }) if l == limit
    ));
    assert!(matches!(
        active.propose_snapshot(head, "s".repeat(limit)),
        Err(Refusal::TooLarge { .. })
    ));
    // Escaping counts: a payload of quotes takes twice its length in the journal.
    assert!(matches!(
        active.propose("\"".repeat(limit / 2 + 1)),
        Err(Refusal::TooLarge { .. })
    ));

    let before: Vec<_> = (0..N).map(|i| g.disk(i)).collect();
    g.queue.push_back((
        0,
        0,
        Wire::Propose {
            epoch: 1,
            proposal: 90,
            payload: "r".repeat(limit),
        },
    ));
    g.queue.push_back((
        0,
        0,
        Wire::Snapshot {
            epoch: 1,
            proposal: 91,
            head,
            state: "s".repeat(limit),
        },
    ));
    g.settle();
    assert_eq!((0..N).map(|i| g.disk(i)).collect::<Vec<_>>(), before);
    assert_eq!(g.rejected, vec![0, 0]);
    assert_eq!(g.rep(0).role(), Role::Active);

    // Just under the limit: accepted, and every journal takes it.
    let state = "s".repeat(limit - 200);
    let (_, a) = g.reps[0]
        .as_mut()
        .unwrap()
        .propose_snapshot(head, state.clone())
        .unwrap();
    g.execute(0, a);
    g.settle();
    assert_eq!(g.durable.last().unwrap().1, head + 1);
    g.assert_identical_disks(&[0, 1, 2]);
    assert!(
        matches!(&g.disk(2)[..], [Entry { body: EntryBody::Snapshot { state: s, .. }, .. }] if *s == state)
    );
    assert!(g.propose(0) > head + 1, "the log goes on");
}
