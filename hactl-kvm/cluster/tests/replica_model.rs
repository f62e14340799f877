//! The replica state machine against a model of CPG: three members, partitions, crashes,
//! restarts (with their journal or with an empty disk), promotions and proposals in random
//! order. Each member delivers its view's agreed-order stream at its own pace; before a view
//! change the members that stay deliver the rest of it (virtual synchrony), a crashing member
//! loses what it had not delivered.
//!
//! Invariants after every step, judged on the members' disks (the journals they wrote):
//! - an entry reported durable, or under which a member acted, stays at its position on a
//!   majority of disks for ever (uncommitted entries of a crashed active may be replaced);
//! - a proposal reported durable is on the disks of a majority of the nodes;
//! - a member acts only once its epoch entry is on the disks of a majority;
//! - at most one member passes the power check at any time, and each epoch names one active;
//! - after everything heals and restarts, every member is in sync with identical journals.

use hactl_cluster::replica::{verify_chain, Action, Entry, EntryBody, NodeId, Replica, Role, Wire};
use proptest::prelude::*;

const N: usize = 3;

/// What the model records as proposed for a snapshot.
const SNAPSHOT: &str = "<snapshot>";

#[derive(Debug, Clone)]
enum Op {
    Propose(usize),
    Promote(usize),
    Deliver(usize),
    Report(usize),
    Partition([usize; N]),
    Crash(usize),
    Restart(usize),
    RestartEmpty(usize),
    /// The member, if active, compacts its log at its head.
    Compact(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..N).prop_map(Op::Propose),
        2 => (0..N).prop_map(Op::Promote),
        8 => (0..N).prop_map(Op::Deliver),
        4 => (0..N).prop_map(Op::Report),
        1 => [0..2usize, 0..2usize, 0..2usize].prop_map(Op::Partition),
        1 => (0..N).prop_map(Op::Crash),
        1 => (0..N).prop_map(Op::Restart),
        1 => (0..N).prop_map(Op::RestartEmpty),
        1 => (0..N).prop_map(Op::Compact),
    ]
}

struct World {
    replicas: [Option<Replica>; N],
    disks: [Vec<Entry>; N],
    comp: [usize; N],
    /// Per component, the agreed-order stream of the current view; each member delivers it at
    /// its own pace (`cursor`).
    streams: [Vec<(usize, Wire)>; N],
    cursor: [usize; N],
    next_payload: u64,
    epoch_holders: Vec<(u64, NodeId)>,
    /// Entries that were reported durable, or under which a member acted: they must stay, at
    /// their position, on a majority of disks for ever.
    /// (seq, chain): the chain names the entry and everything before it.
    committed: Vec<(u64, u64)>,
    /// What each member proposed: (member, proposal id) -> the record, or `SNAPSHOT`.
    proposed: std::collections::HashMap<(usize, u64), String>,
}

fn id(i: usize) -> NodeId {
    i as NodeId + 1
}

/// The model's snapshot state: the (seq, chain) of every entry the snapshot replaces, so that
/// the invariants can tell a committed entry compacted into a snapshot from one that was lost.
fn covered(log: &[Entry]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for e in log {
        if let EntryBody::Snapshot { state, .. } = &e.body {
            out.extend(serde_json::from_str::<Vec<(u64, u64)>>(state).expect("model state"));
        }
        out.push((e.seq, e.chain));
    }
    out
}

/// Whether `disk` holds the entry `(seq, chain)` at its position, or a snapshot that replaced it.
fn holds(disk: &[Entry], (seq, chain): (u64, u64)) -> bool {
    disk.iter().any(|d| (d.seq, d.chain) == (seq, chain))
        || disk.first().is_some_and(|f| match &f.body {
            EntryBody::Snapshot { state, .. } => serde_json::from_str::<Vec<(u64, u64)>>(state)
                .expect("model state")
                .contains(&(seq, chain)),
            _ => false,
        })
}

impl World {
    fn new() -> World {
        let mut w = World {
            replicas: std::array::from_fn(|i| Some(Replica::new(id(i), N, Vec::new()))),
            disks: std::array::from_fn(|_| Vec::new()),
            comp: [0; N],
            streams: std::array::from_fn(|_| Vec::new()),
            cursor: [0; N],
            next_payload: 0,
            epoch_holders: Vec::new(),
            committed: Vec::new(),
            proposed: std::collections::HashMap::new(),
        };
        w.announce_views(&[0, 1, 2]);
        w
    }

    fn members(&self, c: usize) -> Vec<usize> {
        (0..N)
            .filter(|&i| self.replicas[i].is_some() && self.comp[i] == c)
            .collect()
    }

    fn announce_views(&mut self, nodes: &[usize]) {
        for &i in nodes {
            if self.replicas[i].is_none() {
                continue;
            }
            let members: Vec<NodeId> = self.members(self.comp[i]).into_iter().map(id).collect();
            let actions = self.replicas[i].as_mut().unwrap().view_changed(members);
            self.execute(i, actions, &mut Vec::new());
        }
    }

    fn execute(&mut self, i: usize, actions: Vec<Action>, durable: &mut Vec<(usize, u64, u64)>) {
        for a in actions {
            match a {
                Action::Multicast(m) => self.streams[self.comp[i]].push((i, m)),
                Action::Append(e) => {
                    assert_eq!(
                        e.seq,
                        self.disks[i].last().map_or(1, |l| l.seq + 1),
                        "append without gap"
                    );
                    self.disks[i].push(e)
                }
                Action::Replace { base, entries } => {
                    self.disks[i].retain(|e| e.seq <= base);
                    self.disks[i].extend(entries);
                }
                Action::Compact(e) => self.disks[i] = vec![e],
                Action::Durable { proposal, seq } => durable.push((i, proposal, seq)),
                Action::Rejected { .. } | Action::RoleChanged(_) => {}
            }
        }
    }

    fn pending(&self, i: usize) -> bool {
        self.replicas[i].is_some() && self.cursor[i] < self.streams[self.comp[i]].len()
    }

    /// Member `i` delivers the next message of its view's stream.
    fn deliver(&mut self, i: usize) {
        if !self.pending(i) {
            return;
        }
        let (sender, msg) = self.streams[self.comp[i]][self.cursor[i]].clone();
        self.cursor[i] += 1;
        let actions = self.replicas[i].as_mut().unwrap().deliver(id(sender), msg);
        let mut durable = Vec::new();
        self.execute(i, actions, &mut durable);
        self.check_durable(durable);
    }

    /// A proposal reported durable is on the disks of a majority of the nodes.
    fn check_durable(&mut self, durable: Vec<(usize, u64, u64)>) {
        for (at, proposal, seq) in durable {
            // The entry at that position is the one proposed (unless compacted since).
            if let Some(e) = self.disks[at].iter().find(|e| e.seq == seq) {
                let expected = self.proposed.get(&(at, proposal)).expect("proposed");
                let found = match &e.body {
                    EntryBody::Record { payload } => payload.as_str(),
                    EntryBody::Snapshot { .. } => SNAPSHOT,
                    _ => "another entry",
                };
                assert_eq!(found, expected, "durable seq {seq} at node {}", id(at));
            }
            // On the reporting member's disk, or already compacted into its snapshot.
            let entry = covered(&self.disks[at])
                .into_iter()
                .find(|&(s, _)| s == seq)
                .expect("a durable entry is on the disk of the member it was reported to");
            self.committed.push(entry);
            let holders = (0..N).filter(|&m| holds(&self.disks[m], entry)).count();
            assert!(
                holders * 2 > N,
                "durable seq {seq} at node {} is on {holders} disks only",
                id(at)
            );
        }
    }

    fn report(&mut self, i: usize) {
        if let Some(r) = self.replicas[i].as_mut() {
            let actions = r.report_written();
            let mut durable = Vec::new();
            self.execute(i, actions, &mut durable);
            self.check_durable(durable);
        }
    }

    fn flush(&mut self) {
        for _ in 0..100_000 {
            let Some(i) = (0..N).find(|&i| self.pending(i)) else {
                for i in 0..N {
                    self.report(i);
                }
                if !(0..N).any(|i| self.pending(i)) {
                    return;
                }
                continue;
            };
            self.deliver(i);
        }
        panic!("message storm: streams never drained");
    }

    /// Changes membership. Virtual synchrony: the members that stay deliver what was sent in
    /// their old view before the new view; a member that crashes loses what it had not
    /// delivered yet (`crash`: the change happens before that delivery).
    fn regroup(&mut self, crash: bool, change: impl FnOnce(&mut World)) {
        let before: Vec<Vec<usize>> = (0..N).map(|i| self.view_of(i)).collect();
        if crash {
            change(self);
            self.flush();
        } else {
            self.flush();
            change(self);
        }
        self.streams = std::array::from_fn(|_| Vec::new());
        self.cursor = [0; N];
        let changed: Vec<usize> = (0..N)
            .filter(|&i| self.replicas[i].is_some() && self.view_of(i) != before[i])
            .collect();
        self.announce_views(&changed);
    }

    fn view_of(&self, i: usize) -> Vec<usize> {
        if self.replicas[i].is_none() {
            return Vec::new();
        }
        self.members(self.comp[i])
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Propose(i) => {
                self.next_payload += 1;
                let p = format!("record-{}", self.next_payload);
                if let Some(r) = self.replicas[i].as_mut() {
                    if let Ok((id, actions)) = r.propose(p.clone()) {
                        self.proposed.insert((i, id), p);
                        self.execute(i, actions, &mut Vec::new());
                    }
                }
            }
            Op::Promote(i) => {
                if let Some(r) = self.replicas[i].as_mut() {
                    if let Ok(actions) = r.promote() {
                        self.execute(i, actions, &mut Vec::new());
                    }
                }
            }
            Op::Compact(i) => {
                if let Some(r) = self.replicas[i].as_mut() {
                    let state = serde_json::to_string(&covered(r.log())).unwrap();
                    if let Ok((id, actions)) = r.propose_snapshot(r.head(), state) {
                        self.proposed.insert((i, id), SNAPSHOT.into());
                        self.execute(i, actions, &mut Vec::new());
                    }
                }
            }
            Op::Deliver(i) => self.deliver(i),
            Op::Report(i) => self.report(i),
            Op::Partition(p) => self.regroup(false, |w| w.comp = p),
            Op::Crash(i) => self.regroup(true, |w| w.replicas[i] = None),
            Op::Restart(i) => {
                if self.replicas[i].is_none() {
                    let disk = self.disks[i].clone();
                    self.regroup(false, |w| {
                        w.replicas[i] = Some(Replica::new(id(i), N, disk))
                    });
                }
            }
            Op::RestartEmpty(i) => {
                // A journal lost and the member restarted empty. Survivable while every other
                // member is up, together and in sync (a disk replaced in a healthy cluster);
                // losing the journals of a majority loses durable entries by definition, so the
                // model never does that.
                self.flush();
                let healthy = (0..N).filter(|&j| j != i).all(|j| {
                    self.replicas[j]
                        .as_ref()
                        .is_some_and(|r| !r.syncing() && r.role() != Role::Joining)
                        && self.comp[j] == self.comp[i]
                });
                if !healthy {
                    return;
                }
                self.regroup(true, |w| w.replicas[i] = None);
                self.disks[i].clear();
                self.regroup(false, |w| {
                    w.replicas[i] = Some(Replica::new(id(i), N, Vec::new()))
                });
            }
        }
    }

    fn check(&mut self) {
        for a in 0..N {
            if let Some(r) = &self.replicas[a] {
                assert_eq!(r.log(), &self.disks[a][..], "node {} memory != disk", id(a));
            }
            verify_chain(&self.disks[a]).expect("every disk's chain verifies");
            let mut epoch = self.disks[a]
                .first()
                .filter(|f| matches!(f.body, EntryBody::Snapshot { .. }))
                .map_or(0, |f| f.epoch);
            for e in &self.disks[a] {
                if let EntryBody::Epoch { .. } = e.body {
                    assert_eq!(e.epoch, epoch + 1, "epochs step by one");
                }
                assert!(e.epoch == epoch || e.epoch == epoch + 1);
                epoch = e.epoch;
            }
        }
        for &e in &self.committed {
            let holders = (0..N).filter(|&m| holds(&self.disks[m], e)).count();
            assert!(
                holders * 2 > N,
                "committed {e:?} is on {holders} disks only"
            );
        }
        // Power check: quorate iff the member's component holds a majority (votequorum's view).
        let authorized: Vec<(NodeId, u64)> = (0..N)
            .filter_map(|i| {
                let r = self.replicas[i].as_ref()?;
                let quorate = self.members(self.comp[i]).len() * 2 > N;
                r.authorize_power(r.epoch(), quorate)
                    .ok()
                    .map(|_| (id(i), r.epoch()))
            })
            .collect();
        assert!(
            authorized.len() <= 1,
            "two members may fence: {authorized:?}"
        );
        for &(node, epoch) in &authorized {
            let r = self.replicas[node as usize - 1].as_ref().unwrap();
            // (Compacted away: the snapshot of this epoch stands for it, checked below.)
            if let Some(entry) = r
                .log()
                .iter()
                .rfind(|e| matches!(e.body, EntryBody::Epoch { .. }))
            {
                self.committed.push((entry.seq, entry.chain));
            }
            let holders = (0..N)
                .filter(|&m| {
                    self.disks[m].iter().any(|e| {
                        e.epoch == epoch
                            && match &e.body {
                                EntryBody::Epoch { active } => *active == node,
                                EntryBody::Snapshot { active, .. } => *active == node,
                                _ => false,
                            }
                    })
                })
                .count();
            assert!(
                holders * 2 > N,
                "node {node} acts in epoch {epoch}, on {holders} disks only"
            );
            match self.epoch_holders.iter().find(|(e, _)| *e == epoch) {
                Some(&(_, holder)) => {
                    assert_eq!(holder, node, "epoch {epoch} authorized two nodes")
                }
                None => self.epoch_holders.push((epoch, node)),
            }
        }
        // A stale epoch never passes.
        for r in self.replicas.iter().flatten() {
            if r.epoch() > 0 {
                assert!(r.authorize_power(r.epoch() - 1, true).is_err());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn committed_entries_survive_and_one_member_fences(ops in prop::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        w.check();
        for op in &ops {
            w.apply(op);
            w.check();
        }
        // Heal everything, restart what is down: all members end in sync, identical.
        w.regroup(false, |w| w.comp = [0; N]);
        for i in 0..N {
            w.apply(&Op::Restart(i));
        }
        w.flush();
        w.check();
        for i in 0..N {
            let r = w.replicas[i].as_ref().unwrap();
            prop_assert_ne!(r.role(), Role::Joining, "node {} still joining", id(i));
            prop_assert!(!r.syncing());
            prop_assert_eq!(&w.disks[i], &w.disks[0]);
        }
        // And the group still works: someone can be promoted and replicate a record.
        let actions = w.replicas[1].as_mut().unwrap().promote().unwrap();
        w.execute(1, actions, &mut Vec::new());
        w.flush();
        prop_assert_eq!(w.replicas[1].as_ref().unwrap().role(), Role::Active);
        let (pid, actions) = w.replicas[1].as_mut().unwrap().propose("last".into()).unwrap();
        w.proposed.insert((1, pid), "last".into());
        w.execute(1, actions, &mut Vec::new());
        w.flush();
        w.check();
        for i in 0..N {
            let last_is_ours = matches!(&w.disks[i].last().unwrap().body,
                EntryBody::Record { payload } if payload == "last");
            prop_assert!(last_is_ours);
        }
    }
}

/// The scenarios of the netns test, step by step, without the network.
#[test]
fn promotion_replication_isolation_and_heal() {
    let mut w = World::new();
    w.flush();
    for i in 0..N {
        assert_eq!(w.replicas[i].as_ref().unwrap().role(), Role::Standby);
    }
    w.apply(&Op::Promote(0));
    w.flush();
    assert_eq!(w.replicas[0].as_ref().unwrap().role(), Role::Active);
    assert_eq!(w.replicas[0].as_ref().unwrap().epoch(), 1);
    for _ in 0..5 {
        w.apply(&Op::Propose(0));
    }
    w.flush();
    w.check();
    assert_eq!(w.disks[1].len(), 7);
    assert_eq!(w.disks[1], w.disks[2]);

    // Isolate the active: it keeps its role on paper but may not act; the others promote.
    w.apply(&Op::Partition([1, 0, 0]));
    w.flush();
    let old = w.replicas[0].as_ref().unwrap();
    assert_eq!(
        old.authorize_power(1, false),
        Err(hactl_cluster::Refusal::NotQuorate)
    );
    assert!(
        old.authorize_power(1, true).is_err(),
        "a minority view may not act"
    );
    assert!(w.replicas[0]
        .as_mut()
        .unwrap()
        .propose("lost".into())
        .is_err());
    w.apply(&Op::Promote(1));
    w.flush();
    let new = w.replicas[1].as_ref().unwrap();
    assert_eq!((new.role(), new.epoch()), (Role::Active, 2));
    assert!(new.authorize_power(2, true).is_ok());
    assert!(matches!(
        new.authorize_power(1, true),
        Err(hactl_cluster::Refusal::StaleEpoch {
            request: 1,
            current: 2
        })
    ));
    w.apply(&Op::Propose(1));
    w.flush();
    w.check();

    // Heal: the old active catches up by a tail transfer and is a standby in epoch 2.
    w.apply(&Op::Partition([0, 0, 0]));
    w.flush();
    w.check();
    let back = w.replicas[0].as_ref().unwrap();
    assert_eq!((back.role(), back.epoch()), (Role::Standby, 2));
    assert_eq!(w.disks[0], w.disks[1]);

    // A late joiner with an empty disk gets the whole log.
    w.apply(&Op::Crash(2));
    w.apply(&Op::RestartEmpty(2));
    w.flush();
    w.check();
    assert_eq!(w.disks[2], w.disks[1]);
    assert_eq!(w.replicas[2].as_ref().unwrap().role(), Role::Standby);
}

/// Regression: node 1's claim is delivered by node 1 but not by node 2, which crashes before
/// delivering it, so node 1's disk holds a promotion no majority saw. Nodes 2 and 3 then promote
/// node 2 in the same epoch number. When all meet again, node 1's unconfirmed promotion must not
/// rank its log above the confirmed one (it did before promotions were confirmed).
#[test]
fn a_promotion_no_majority_saw_never_wins_a_sync_round() {
    let mut w = World::new();
    for op in [
        Op::Partition([0, 0, 1]),
        Op::Promote(0),
        Op::Crash(1),
        Op::Partition([1, 0, 0]),
        Op::Restart(1),
        Op::RestartEmpty(0),
        Op::Promote(1),
        Op::Crash(0),
        Op::Partition([0, 0, 0]),
        Op::Restart(0),
    ] {
        w.apply(&op);
        w.check();
    }
    w.flush();
    w.check();
}

/// A promoted member does not act while the former active, still in its view but slow, has not
/// delivered the promotion: it waits until every member of the view has written it.
#[test]
fn the_new_active_waits_for_a_slow_former_active_to_step_down() {
    let mut w = World::new();
    w.flush();
    w.apply(&Op::Promote(0));
    w.flush();
    assert_eq!(w.replicas[0].as_ref().unwrap().role(), Role::Active);
    // Node 2 claims; nodes 2 and 3 deliver and report everything, node 1 delivers nothing.
    w.apply(&Op::Promote(1));
    for _ in 0..40 {
        for i in [1, 2] {
            w.apply(&Op::Deliver(i));
            w.apply(&Op::Report(i));
        }
        w.check();
    }
    let new = w.replicas[1].as_ref().unwrap();
    assert_eq!(new.epoch(), 2);
    assert_ne!(new.role(), Role::Active, "acts before node 1 stepped down");
    // Once node 1 catches up, it steps down and node 2 takes over.
    w.flush();
    w.check();
    assert_eq!(w.replicas[0].as_ref().unwrap().role(), Role::Standby);
    assert_eq!(w.replicas[1].as_ref().unwrap().role(), Role::Active);
}

/// A log made longer by a promotion no majority saw must not beat a log holding a committed
/// record: logs rank by their last confirmed epoch, then entries up to it.
#[test]
fn an_unconfirmed_promotion_does_not_make_a_log_more_up_to_date() {
    let mut w = World::new();
    w.flush();
    w.apply(&Op::Promote(2));
    w.flush();
    assert_eq!(w.replicas[2].as_ref().unwrap().role(), Role::Active);
    // Node 3 is cut off; node 1 claims in {1,2}, delivers its own claim, node 2 crashes before.
    w.apply(&Op::Partition([0, 0, 1]));
    w.apply(&Op::Promote(0));
    w.apply(&Op::Deliver(0));
    w.apply(&Op::Crash(1));
    // Node 2 comes back next to node 3, which is still active in epoch 1 and commits a record.
    w.apply(&Op::Partition([0, 1, 1]));
    w.apply(&Op::Restart(1));
    w.flush();
    w.apply(&Op::Propose(2));
    w.flush();
    w.check();
    let len = w.disks[2].len();
    assert!(matches!(w.disks[2][len - 1].body, EntryBody::Record { .. }));
    assert_eq!(w.disks[0].len(), len, "same length: a tie on head alone");
    // All meet: the committed record survives.
    w.apply(&Op::Partition([0, 0, 0]));
    w.flush();
    w.check();
    assert_eq!(w.disks[0], w.disks[2]);
}

/// Found by the coordinator simulator (`hactl-sim --coordinators 2`): the active's proposal is
/// delivered and written by both members, but the `Written` reports are lost with the view (the
/// ring re-forms with the same members). Both hellos then show the entry on both disks and no
/// member appends anything more, so no `Written` ever follows: the sync round itself must
/// declare the proposal durable, or an active that proposes one record at a time waits forever.
#[test]
fn a_proposal_on_every_disk_before_a_view_change_becomes_durable_in_the_sync_round() {
    // Agreed-order delivery of `queue` to both members, carrying out their actions.
    fn pump(reps: &mut [Replica; 2], queue: &mut Vec<(NodeId, Wire)>, durable: &mut Vec<u64>) {
        while !queue.is_empty() {
            let (from, msg) = queue.remove(0);
            for (i, r) in reps.iter_mut().enumerate() {
                let mut acts = r.deliver(from, msg.clone());
                acts.extend(r.report_written());
                for a in acts {
                    match a {
                        Action::Multicast(w) => queue.push((i as NodeId + 1, w)),
                        Action::Durable { proposal, .. } if i == 0 => durable.push(proposal),
                        _ => {}
                    }
                }
            }
        }
    }
    fn view_change(reps: &mut [Replica; 2], queue: &mut Vec<(NodeId, Wire)>) {
        for (i, r) in reps.iter_mut().enumerate() {
            for a in r.view_changed([1, 2]) {
                if let Action::Multicast(w) = a {
                    queue.push((i as NodeId + 1, w));
                }
            }
        }
    }
    let mut reps = [
        Replica::new(1, 2, Vec::new()),
        Replica::new(2, 2, Vec::new()),
    ];
    let (mut queue, mut durable) = (Vec::new(), Vec::new());
    view_change(&mut reps, &mut queue);
    pump(&mut reps, &mut queue, &mut durable);
    for a in reps[0].promote().expect("promote") {
        if let Action::Multicast(w) = a {
            queue.push((1, w));
        }
    }
    pump(&mut reps, &mut queue, &mut durable);
    assert_eq!(reps[0].role(), Role::Active);
    let (p, acts) = reps[0].propose("record".into()).expect("propose");
    for a in acts {
        if let Action::Multicast(w) = a {
            queue.push((1, w));
        }
    }
    // Deliver the proposal to both, write it, and lose every `Written` with the old view.
    let (from, msg) = queue.remove(0);
    for r in reps.iter_mut() {
        let _ = r.deliver(from, msg.clone());
        let _ = r.report_written();
    }
    assert!(durable.is_empty());
    queue.clear();
    view_change(&mut reps, &mut queue);
    pump(&mut reps, &mut queue, &mut durable);
    assert_eq!(reps[0].head(), reps[1].head());
    assert_eq!(
        durable,
        vec![p],
        "the proposal on both disks never became durable"
    );
}
