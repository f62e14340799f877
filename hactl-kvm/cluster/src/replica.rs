//! The sans-IO replication state machine: one instance per coordinator, fed the CPG events
//! (view changes and agreed-order deliveries) and local requests, answering with actions for the
//! I/O layer to carry out in order.
//!
//! Every decision is a pure function of the agreed-order message stream and the replicated log, so
//! all members of a view decide the same: which proposal is accepted, who is active in which
//! epoch, who needs a state transfer and when the view is in sync again.
//!
//! The log is compacted by a `Snapshot` entry the active proposes like a record: every member
//! that writes it drops the entries before it, so a log starts at seq 1 or at its snapshot.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A Corosync node id.
pub type NodeId = u32;

/// A local proposal's number (the active instance's counter, not a log position).
pub type ProposalId = u64;

/// What a log entry carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryBody {
    /// A promotion: `active` drives the coordinator from this entry's epoch on.
    Epoch {
        /// The newly active node.
        active: NodeId,
    },
    /// The active of this entry's epoch confirms it: its promotion was written by a majority and
    /// by every member of its view. Only confirmed epochs rank logs in a sync round.
    Confirm,
    /// One of the active instance's journal records (opaque here: the core's record as JSON).
    Record {
        /// The record.
        payload: String,
    },
    /// A compaction: stands for every entry before it, which each member drops when it writes
    /// this one (its log then starts here). Only the active of a confirmed epoch proposes one, so
    /// it also stands for that epoch's `Epoch` and `Confirm` entries: it names the active and
    /// counts as the confirmation of its epoch when logs are ranked.
    Snapshot {
        /// The active of this entry's epoch.
        active: NodeId,
        /// What the active needs to carry on from here (opaque here: the daemon's compacted
        /// state as JSON).
        state: String,
    },
}

impl EntryBody {
    /// Whether this entry shows its epoch confirmed (a `Confirm`, or a snapshot, which only a
    /// confirmed active proposes).
    fn confirms(&self) -> bool {
        matches!(self, EntryBody::Confirm | EntryBody::Snapshot { .. })
    }
}

/// One entry of the replicated log, exactly as every member writes it to its journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position, from 1, without gaps.
    pub seq: u64,
    /// The fencing epoch in force when the entry was accepted (an `Epoch` entry carries its new one).
    pub epoch: u64,
    /// Content.
    pub body: EntryBody,
    /// Hash chain over every entry up to this one: two logs with the same `(seq, chain)` agree on
    /// their whole prefix, so a state transfer can send only the missing tail.
    pub chain: u64,
}

impl Entry {
    fn new(prev_chain: u64, seq: u64, epoch: u64, body: EntryBody) -> Entry {
        let mut h = Sha256::new();
        h.update(prev_chain.to_le_bytes());
        h.update(seq.to_le_bytes());
        h.update(epoch.to_le_bytes());
        h.update(serde_json::to_vec(&body).expect("entry body encodes"));
        let d = h.finalize();
        let chain = u64::from_le_bytes(d[..8].try_into().expect("8 bytes"));
        Entry {
            seq,
            epoch,
            body,
            chain,
        }
    }
}

/// Largest entry the log takes, as its journal encoding (JSON) counts bytes: the journal's record
/// limit. An entry over it could not be written by any member, and a member whose journal write
/// fails stops; so a proposal over it is refused before it is multicast, and one delivered anyway
/// is rejected by every member alike (the check reads only the message).
pub const MAX_ENTRY_BYTES: usize = hactl_journal::MAX_RECORD_LEN as usize;

/// What an entry's `seq`, `epoch` and `chain` fields add to its body's encoding at most (three
/// 20-digit numbers, their keys and braces: 94 bytes).
const ENTRY_FRAME_BYTES: usize = 128;

/// Counts bytes written to it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The bytes an entry with this body takes in the journal, at most.
fn entry_bytes(body: &EntryBody) -> usize {
    let mut n = ByteCount(0);
    serde_json::to_writer(&mut n, body).expect("entry body encodes");
    n.0 + ENTRY_FRAME_BYTES
}

/// Refuses a body whose entry would exceed [`MAX_ENTRY_BYTES`].
fn check_entry_size(body: &EntryBody) -> Result<(), Refusal> {
    let bytes = entry_bytes(body);
    if bytes > MAX_ENTRY_BYTES {
        return Err(Refusal::TooLarge {
            bytes,
            limit: MAX_ENTRY_BYTES,
        });
    }
    Ok(())
}

/// Why a stored log is not a valid replicated log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainError {
    /// The log does not start at seq 1 and does not start with a snapshot either.
    #[error("the log starts at seq {0} with an entry that is not a snapshot")]
    NoSnapshotAtStart(u64),
    /// Positions are not consecutive.
    #[error("entry at position {index} has seq {seq}, expected {expected}")]
    Gap {
        /// Index in the log.
        index: usize,
        /// Its seq.
        seq: u64,
        /// The seq it should have.
        expected: u64,
    },
    /// An entry's chain is not the hash of its predecessor's chain and its content.
    #[error("entry {0}: its chain does not follow from the entry before it")]
    Broken(u64),
}

/// Checks a stored log: consecutive positions, each entry's chain computed from the one before.
/// A compacted log starts with its snapshot entry, whose chain (over the dropped prefix) is taken
/// as given: it is the same on every member that wrote it, so the entries after it still chain
/// exactly as on an uncompacted member.
pub fn verify_chain(log: &[Entry]) -> Result<(), ChainError> {
    let Some(first) = log.first() else {
        return Ok(());
    };
    let mut prev = if first.seq == 1 {
        0
    } else if matches!(first.body, EntryBody::Snapshot { .. }) {
        first.chain
    } else {
        return Err(ChainError::NoSnapshotAtStart(first.seq));
    };
    for (index, e) in log.iter().enumerate() {
        let expected = first.seq + index as u64;
        if e.seq != expected {
            return Err(ChainError::Gap {
                index,
                seq: e.seq,
                expected,
            });
        }
        if index == 0 && first.seq != 1 {
            continue;
        }
        if Entry::new(prev, e.seq, e.epoch, e.body.clone()).chain != e.chain {
            return Err(ChainError::Broken(e.seq));
        }
        prev = e.chain;
    }
    Ok(())
}

/// A message multicast to the group in agreed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wire {
    /// The active instance proposes to compact the log: every member that accepts it replaces
    /// its entries `..= head` by one `Snapshot` entry at `head + 1`.
    Snapshot {
        /// The proposer's epoch.
        epoch: u64,
        /// The proposer's local number for it.
        proposal: ProposalId,
        /// The log head `state` was taken at: accepted only if the log still ends there, so the
        /// snapshot stands for exactly the entries it replaces.
        head: u64,
        /// The compacted state.
        state: String,
    },
    /// The active instance proposes a record in its epoch.
    Propose {
        /// The proposer's epoch.
        epoch: u64,
        /// The proposer's local number for it.
        proposal: ProposalId,
        /// The record.
        payload: String,
    },
    /// A member asks to become active, succeeding the epoch it saw.
    Claim {
        /// The epoch in force when the claim was sent.
        prev_epoch: u64,
    },
    /// Sent by every member after a view change: where its log stands.
    Hello {
        /// The epoch of its last `Confirm` entry (0: none).
        confirmed_epoch: u64,
        /// Its last entry of an epoch up to `confirmed_epoch` (a trailing unconfirmed promotion
        /// does not count).
        confirmed_head: u64,
        /// Its last entry's seq (0: empty).
        head: u64,
        /// Its last entry's chain (0: empty).
        chain: u64,
        /// Its current epoch.
        epoch: u64,
    },
    /// The newly active member confirms its epoch.
    Confirm {
        /// The epoch.
        epoch: u64,
    },
    /// The sender has written (and fsync'ed) its log up to `upto`.
    Written {
        /// Its last written seq.
        upto: u64,
    },
    /// The donor's log for one lagging member: entries `base+1 ..= donor head`.
    Transfer {
        /// Receiver.
        to: NodeId,
        /// The receiver keeps its entries `..= base` (0: replace the whole log).
        base: u64,
        /// The entries after `base` (with `base` 0: the donor's whole log, which starts with
        /// its snapshot once compacted).
        entries: Vec<Entry>,
    },
}

/// A member's role, derived from the replicated log and its sync state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Not yet in sync with the group (start-up, or waiting for a state transfer).
    Joining,
    /// In sync, not active.
    Standby,
    /// In sync, named active by the last epoch entry (claimed by this incarnation), and that
    /// entry is durable and written by every member of the view.
    Active,
}

/// What the I/O layer must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Multicast to the group (agreed order).
    Multicast(Wire),
    /// Append and fsync one entry to the local journal.
    Append(Entry),
    /// Replace the local journal's entries after `base` by `entries` and fsync.
    Replace {
        /// Entries `..= base` stay.
        base: u64,
        /// The new entries after `base`.
        entries: Vec<Entry>,
    },
    /// A snapshot entry was accepted: replace the whole local journal by this one entry,
    /// atomically, and fsync.
    Compact(Entry),
    /// A local proposal is durable: delivered back through CPG and written (fsync'ed) by a
    /// majority of the configured nodes, this one included.
    Durable {
        /// The proposal.
        proposal: ProposalId,
        /// Its log position.
        seq: u64,
    },
    /// A local proposal was not accepted (epoch changed, view changing, or no majority).
    Rejected {
        /// The proposal.
        proposal: ProposalId,
    },
    /// This member's role changed.
    RoleChanged(Role),
}

/// Why a local request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// Only the active instance proposes records or acts.
    #[error("this instance is {0:?}, not active")]
    NotActive(Role),
    /// The view holds no majority of the configured nodes.
    #[error("the group view ({members} of {cluster_size} nodes) holds no majority")]
    NoMajority {
        /// Members in view.
        members: usize,
        /// Configured nodes.
        cluster_size: usize,
    },
    /// A view change is being synchronised.
    #[error("the group is synchronising after a view change")]
    Syncing,
    /// A power request carries an epoch other than the current one.
    #[error("stale fencing epoch {request} (current epoch is {current})")]
    StaleEpoch {
        /// The request's epoch.
        request: u64,
        /// This member's epoch.
        current: u64,
    },
    /// Corosync does not (or no longer, within the lease) confirm quorum.
    #[error("not quorate")]
    NotQuorate,
    /// Newly active: the take-over grace has not passed yet.
    #[error("active for {elapsed_ms} ms only; power actions wait for the take-over grace of {grace_ms} ms")]
    TakeoverGrace {
        /// Time since this member became active.
        elapsed_ms: u64,
        /// The grace.
        grace_ms: u64,
    },
    /// The member is not in sync and may not become active.
    #[error("this instance has not caught up with the group yet")]
    NotSynced,
    /// The proposed entry would be larger than any member's journal takes.
    #[error("the entry would take {bytes} bytes, over the limit of {limit} bytes per log entry")]
    TooLarge {
        /// The entry's encoded size (upper bound).
        bytes: usize,
        /// [`MAX_ENTRY_BYTES`].
        limit: usize,
    },
}

/// What a member said in its `Hello`.
#[derive(Debug, Clone, Copy)]
struct Hello {
    head: u64,
    chain: u64,
    confirmed_epoch: u64,
    confirmed_head: u64,
}

/// A view change being synchronised.
#[derive(Debug, Clone)]
struct SyncRound {
    /// Per member: (known committed, head, chain, epoch).
    hellos: BTreeMap<NodeId, Hello>,
    /// Members still waiting for their transfer (set once every hello is in).
    awaiting: Option<BTreeSet<NodeId>>,
}

/// The replication state machine of one member.
#[derive(Debug, Clone)]
pub struct Replica {
    me: NodeId,
    cluster_size: usize,
    log: Vec<Entry>,
    members: BTreeSet<NodeId>,
    synced: bool,
    round: Option<SyncRound>,
    next_proposal: ProposalId,
    role: Role,
    /// How far each node has reported its journal written (from `Written` and `Hello`).
    written: BTreeMap<NodeId, u64>,
    /// Where this member last reported its own journal written.
    reported: u64,
    /// This member's accepted proposals waiting to become durable: seq -> proposal.
    pending: BTreeMap<u64, ProposalId>,
    /// The epoch this incarnation claimed and was granted. A member that restarts is never
    /// active in an epoch it held before: it lost track of its proposals in flight, and reusing
    /// their log positions would give one position two different entries in one epoch.
    my_epoch: Option<u64>,
    /// Whether this incarnation has become active in `my_epoch` (it stays active through later
    /// view changes while that epoch lasts; members joining later need not have written it).
    activated: bool,
    /// A `Confirm` of this incarnation's epoch is on its way (cleared by a view change).
    confirm_sent: bool,
}

impl Replica {
    /// A member `me` of a cluster of `cluster_size` configured nodes, starting from the entries of
    /// its local journal. It is `Joining` until the first view in which it is found in sync.
    pub fn new(me: NodeId, cluster_size: usize, log: Vec<Entry>) -> Replica {
        Replica {
            me,
            cluster_size: cluster_size.max(1),
            log,
            members: BTreeSet::new(),
            synced: false,
            round: None,
            next_proposal: 1,
            role: Role::Joining,
            written: BTreeMap::new(),
            reported: 0,
            pending: BTreeMap::new(),
            my_epoch: None,
            activated: false,
            confirm_sent: false,
        }
    }

    /// This member's node id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The local log.
    pub fn log(&self) -> &[Entry] {
        &self.log
    }

    /// The first entry's seq (1 for an uncompacted log, the snapshot's seq after a compaction;
    /// 1 when empty).
    pub fn first_seq(&self) -> u64 {
        self.log.first().map_or(1, |e| e.seq)
    }

    /// The entry at `seq`, if the local log holds it (not before a compaction).
    fn entry_at(&self, seq: u64) -> Option<&Entry> {
        let first = self.first_seq();
        if seq < first {
            return None;
        }
        self.log.get((seq - first) as usize)
    }

    /// Last entry's seq (0 when empty).
    pub fn head(&self) -> u64 {
        self.log.last().map_or(0, |e| e.seq)
    }

    fn chain(&self) -> u64 {
        self.log.last().map_or(0, |e| e.chain)
    }

    /// The current fencing epoch (0 before the first promotion).
    pub fn epoch(&self) -> u64 {
        self.log.last().map_or(0, |e| e.epoch)
    }

    /// The node the log names active (None before the first promotion).
    pub fn active(&self) -> Option<NodeId> {
        self.log.iter().rev().find_map(|e| match e.body {
            EntryBody::Epoch { active } | EntryBody::Snapshot { active, .. } => Some(active),
            EntryBody::Record { .. } | EntryBody::Confirm => None,
        })
    }

    /// This member's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current CPG view.
    pub fn members(&self) -> &BTreeSet<NodeId> {
        &self.members
    }

    /// Whether a view change is being synchronised.
    pub fn syncing(&self) -> bool {
        self.round.is_some()
    }

    fn has_majority(&self) -> bool {
        self.members.len() * 2 > self.cluster_size
    }

    fn majority_refusal(&self) -> Refusal {
        Refusal::NoMajority {
            members: self.members.len(),
            cluster_size: self.cluster_size,
        }
    }

    /// The highest seq written by a majority of the configured nodes (0: none). Every entry up
    /// to it is on a majority of disks, so every majority view holds a member that has it.
    pub fn committed(&self) -> u64 {
        let mut heads: Vec<u64> = self.written.values().copied().collect();
        heads.sort_unstable_by(|a, b| b.cmp(a));
        let need = self.cluster_size / 2 + 1;
        heads.get(need - 1).copied().unwrap_or(0).min(self.head())
    }

    /// Whether every member of the current view has written up to `seq`. A promoted member
    /// waits for this before it acts: the former active, if still in the view, has then delivered
    /// the promotion and stepped down.
    fn view_has_written(&self, seq: u64) -> bool {
        self.members
            .iter()
            .all(|m| self.written.get(m).copied().unwrap_or(0) >= seq)
    }

    /// (epoch of the last `Confirm` entry, last seq of an epoch up to it): how up to date a log
    /// is. A promotion that never got confirmed (a majority may never have seen it) ranks nothing.
    fn rank(&self) -> (u64, u64) {
        let ce = self
            .log
            .iter()
            .rev()
            .find(|e| e.body.confirms())
            .map_or(0, |e| e.epoch);
        let ch = self
            .log
            .iter()
            .rev()
            .find(|e| e.epoch <= ce)
            .map_or(0, |e| e.seq);
        (ce, ch)
    }

    fn confirmed_current(&self) -> bool {
        self.log
            .iter()
            .rev()
            .take_while(|e| !matches!(e.body, EntryBody::Epoch { .. }))
            .any(|e| e.body.confirms())
    }

    fn epoch_seq(&self) -> u64 {
        self.log
            .iter()
            .rev()
            .find(|e| matches!(e.body, EntryBody::Epoch { .. } | EntryBody::Snapshot { .. }))
            .map_or(0, |e| e.seq)
    }

    /// Reports how far this member's journal is written, if it advanced since the last report.
    /// The I/O layer calls it after carrying out a batch of actions (appends are fsync'ed by
    /// then), so one `Written` covers many entries.
    pub fn report_written(&mut self) -> Vec<Action> {
        if self.head() == self.reported {
            return Vec::new();
        }
        self.reported = self.head();
        vec![Action::Multicast(Wire::Written {
            upto: self.reported,
        })]
    }

    fn on_committed(&mut self, out: &mut Vec<Action>) {
        let c = self.committed();
        while let Some((&seq, &proposal)) = self.pending.first_key_value() {
            if seq > c {
                break;
            }
            self.pending.remove(&seq);
            out.push(Action::Durable { proposal, seq });
        }
        self.update_role(out);
    }

    fn update_role(&mut self, out: &mut Vec<Action>) {
        let mine = self.synced
            && self.round.is_none()
            && self.active() == Some(self.me)
            && self.my_epoch == Some(self.epoch());
        if mine
            && !self.confirmed_current()
            && !self.confirm_sent
            && self.committed() >= self.epoch_seq()
            && self.view_has_written(self.epoch_seq())
        {
            // The former active, if in the view, has stepped down: confirm the epoch.
            self.confirm_sent = true;
            out.push(Action::Multicast(Wire::Confirm {
                epoch: self.epoch(),
            }));
        }
        let role = if !self.synced {
            Role::Joining
        } else if self.active() == Some(self.me)
            && self.my_epoch == Some(self.epoch())
            && (self.activated
                || (self.confirmed_current() && self.committed() >= self.confirm_seq()))
        {
            self.activated = true;
            Role::Active
        } else {
            Role::Standby
        };
        if role != self.role {
            self.role = role;
            out.push(Action::RoleChanged(role));
        }
    }

    fn confirm_seq(&self) -> u64 {
        self.log
            .iter()
            .rev()
            .find(|e| e.body.confirms())
            .map_or(0, |e| e.seq)
    }

    fn append(&mut self, epoch: u64, body: EntryBody, out: &mut Vec<Action>) -> u64 {
        let seq = self.head() + 1;
        let e = Entry::new(self.chain(), seq, epoch, body);
        self.log.push(e.clone());
        out.push(Action::Append(e));
        seq
    }

    /// The CPG view changed to `members` (which includes this member).
    pub fn view_changed(&mut self, members: impl IntoIterator<Item = NodeId>) -> Vec<Action> {
        let mut out = Vec::new();
        self.members = members.into_iter().collect();
        self.round = Some(SyncRound {
            hellos: BTreeMap::new(),
            awaiting: None,
        });
        self.confirm_sent = false;
        let (confirmed_epoch, confirmed_head) = self.rank();
        out.push(Action::Multicast(Wire::Hello {
            confirmed_epoch,
            confirmed_head,
            head: self.head(),
            chain: self.chain(),
            epoch: self.epoch(),
        }));
        out
    }

    /// Asks to become active (the explicit promote standing in for Pacemaker's).
    pub fn promote(&mut self) -> Result<Vec<Action>, Refusal> {
        if !self.synced {
            return Err(Refusal::NotSynced);
        }
        if !self.has_majority() {
            return Err(self.majority_refusal());
        }
        Ok(vec![Action::Multicast(Wire::Claim {
            prev_epoch: self.epoch(),
        })])
    }

    /// What every local proposal (a record or a snapshot) must pass before it is multicast:
    /// this member is active, in a majority view, with no round open, and the entry fits the
    /// journal. Numbers the proposal.
    fn new_proposal(&mut self, body: &EntryBody) -> Result<ProposalId, Refusal> {
        if self.role != Role::Active {
            return Err(Refusal::NotActive(self.role));
        }
        if !self.has_majority() {
            return Err(self.majority_refusal());
        }
        if self.round.is_some() {
            return Err(Refusal::Syncing);
        }
        check_entry_size(body)?;
        let proposal = self.next_proposal;
        self.next_proposal += 1;
        Ok(proposal)
    }

    /// Whether every member accepts `body` from `sender` in `epoch`: no round open, in sync, a
    /// majority view, the sender the confirmed active of the current epoch, and an entry that
    /// fits the journal. Every member sees the same message, so all decide alike (an oversized
    /// one is rejected everywhere instead of failing to be written).
    fn accepts_proposal(&self, sender: NodeId, epoch: u64, body: &EntryBody) -> bool {
        self.round.is_none()
            && self.synced
            && self.has_majority()
            && epoch == self.epoch()
            && self.active() == Some(sender)
            && self.confirmed_current()
            && check_entry_size(body).is_ok()
    }

    /// Proposes a record; it is durable when [`Action::Durable`] names the returned id.
    pub fn propose(&mut self, payload: String) -> Result<(ProposalId, Vec<Action>), Refusal> {
        let body = EntryBody::Record { payload };
        let proposal = self.new_proposal(&body)?;
        let EntryBody::Record { payload } = body else {
            unreachable!("built above")
        };
        Ok((
            proposal,
            vec![Action::Multicast(Wire::Propose {
                epoch: self.epoch(),
                proposal,
                payload,
            })],
        ))
    }

    /// Proposes to compact the log into one snapshot entry carrying `state`, which must be what
    /// the entries up to `head` amount to: the group accepts it only while the log still ends at
    /// `head`, and it lands at `head + 1`. Durable like a record; every member that writes it
    /// drops the entries before it.
    pub fn propose_snapshot(
        &mut self,
        head: u64,
        state: String,
    ) -> Result<(ProposalId, Vec<Action>), Refusal> {
        let body = EntryBody::Snapshot {
            active: self.me,
            state,
        };
        let proposal = self.new_proposal(&body)?;
        let EntryBody::Snapshot { state, .. } = body else {
            unreachable!("built above")
        };
        Ok((
            proposal,
            vec![Action::Multicast(Wire::Snapshot {
                epoch: self.epoch(),
                proposal,
                head,
                state,
            })],
        ))
    }

    /// How far this member has reported its journal written (entries up to it are fsync'ed).
    pub fn written(&self) -> u64 {
        self.reported
    }

    /// The fencing-epoch check every power request passes: only the active member, in a majority
    /// view that is in sync, confirmed quorate by Corosync (`quorate`, within its lease), with a
    /// request issued in the current epoch.
    pub fn authorize_power(&self, request_epoch: u64, quorate: bool) -> Result<(), Refusal> {
        if self.role != Role::Active {
            return Err(Refusal::NotActive(self.role));
        }
        if !quorate {
            return Err(Refusal::NotQuorate);
        }
        if !self.has_majority() {
            return Err(self.majority_refusal());
        }
        if self.round.is_some() {
            return Err(Refusal::Syncing);
        }
        if request_epoch != self.epoch() {
            return Err(Refusal::StaleEpoch {
                request: request_epoch,
                current: self.epoch(),
            });
        }
        Ok(())
    }

    /// A message delivered by CPG in agreed order from `sender`.
    pub fn deliver(&mut self, sender: NodeId, msg: Wire) -> Vec<Action> {
        let mut out = Vec::new();
        match msg {
            Wire::Hello {
                confirmed_epoch,
                confirmed_head,
                head,
                chain,
                epoch: _,
            } => self.on_hello(
                sender,
                Hello {
                    head,
                    chain,
                    confirmed_epoch,
                    confirmed_head,
                },
                &mut out,
            ),
            Wire::Confirm { epoch } => {
                let accept = self.round.is_none()
                    && self.synced
                    && self.has_majority()
                    && epoch == self.epoch()
                    && self.active() == Some(sender)
                    && !self.confirmed_current();
                if accept {
                    self.append(epoch, EntryBody::Confirm, &mut out);
                    self.update_role(&mut out);
                }
            }
            Wire::Transfer { to, base, entries } => self.on_transfer(to, base, entries, &mut out),
            Wire::Written { upto } => {
                self.written.insert(sender, upto);
                self.on_committed(&mut out);
            }
            Wire::Propose {
                epoch,
                proposal,
                payload,
            } => {
                let body = EntryBody::Record { payload };
                if self.accepts_proposal(sender, epoch, &body) {
                    let seq = self.append(epoch, body, &mut out);
                    if sender == self.me {
                        self.pending.insert(seq, proposal);
                    }
                } else if sender == self.me {
                    out.push(Action::Rejected { proposal });
                }
            }
            Wire::Snapshot {
                epoch,
                proposal,
                head,
                state,
            } => {
                // The same rule as a record's, and the log must still end where the state was
                // taken.
                let body = EntryBody::Snapshot {
                    active: sender,
                    state,
                };
                if self.accepts_proposal(sender, epoch, &body) && head == self.head() && head > 0 {
                    let seq = head + 1;
                    let e = Entry::new(self.chain(), seq, epoch, body);
                    self.log = vec![e.clone()];
                    out.push(Action::Compact(e));
                    if sender == self.me {
                        self.pending.insert(seq, proposal);
                    }
                } else if sender == self.me {
                    out.push(Action::Rejected { proposal });
                }
            }
            Wire::Claim { prev_epoch } => {
                let accept = self.round.is_none()
                    && self.synced
                    && self.has_majority()
                    && prev_epoch == self.epoch()
                    && self.members.contains(&sender);
                if accept {
                    self.append(
                        prev_epoch + 1,
                        EntryBody::Epoch { active: sender },
                        &mut out,
                    );
                    if sender == self.me {
                        self.my_epoch = Some(prev_epoch + 1);
                    }
                    self.activated = false;
                    self.confirm_sent = false;
                    self.update_role(&mut out);
                }
            }
        }
        out
    }

    fn on_hello(&mut self, sender: NodeId, hello: Hello, out: &mut Vec<Action>) {
        let head = hello.head;
        let in_view = self.members.contains(&sender);
        if in_view {
            // What a member reports after a view change is what its disk holds now (it may have
            // restarted with less than it reported before).
            self.written.insert(sender, head);
        }
        let Some(round) = self.round.as_mut() else {
            return;
        };
        if round.awaiting.is_some() || !in_view {
            return;
        }
        round.hellos.insert(sender, hello);
        let hellos = round.hellos.clone();
        if hellos.len() < self.members.len() || !self.has_majority() {
            // A minority view never syncs: nobody in it may accept or act.
            return;
        }
        // Every member's hello is in: all members pick the same donor, the most up-to-date log:
        // highest confirmed epoch, then the most entries up to that epoch, then the lowest node
        // id. A promotion that was never confirmed may exist on a minority only and ranks
        // nothing; entries of one confirmed epoch come from its single active in agreed order, so
        // of two logs with the same confirmed epoch the one with more such entries extends the
        // other. (Being "in sync before" says nothing: a member may have missed entries while
        // partitioned away.)
        let (&donor, d) = hellos
            .iter()
            .max_by(|(a_id, a), (b_id, b)| {
                (a.confirmed_epoch, a.confirmed_head)
                    .cmp(&(b.confirmed_epoch, b.confirmed_head))
                    .then(b_id.cmp(a_id))
            })
            .expect("at least one hello");
        let (dhead, dchain) = (d.head, d.chain);
        let lagging: BTreeSet<NodeId> = hellos
            .iter()
            .filter(|(_, h)| (h.head, h.chain) != (dhead, dchain))
            .map(|(&n, _)| n)
            .collect();
        if self.me == donor {
            debug_assert_eq!(self.head(), dhead);
            for (&n, h) in &hellos {
                let (head, chain) = (h.head, h.chain);
                if !lagging.contains(&n) {
                    continue;
                }
                // Only the tail when the member's head is an entry this log still holds with
                // the same chain; a member behind this log's snapshot (or diverged) gets the
                // whole log, snapshot first, and replaces its own.
                let prefix_ok = head > 0
                    && head <= dhead
                    && self.entry_at(head).map(|e| e.chain) == Some(chain);
                let base = if prefix_ok { head } else { 0 };
                let from = if prefix_ok {
                    (head + 1 - self.first_seq()) as usize
                } else {
                    0
                };
                out.push(Action::Multicast(Wire::Transfer {
                    to: n,
                    base,
                    entries: self.log[from..].to_vec(),
                }));
            }
        }
        self.synced = !lagging.contains(&self.me);
        if lagging.is_empty() {
            self.round = None;
        } else if let Some(round) = self.round.as_mut() {
            round.awaiting = Some(lagging);
        }
        self.close_round(out);
    }

    /// After a sync round's hello or transfer: once the round is closed, the hellos' heads (what
    /// each member's disk holds, corrected by the transfers) may already commit a pending
    /// proposal whose `Written` reports were lost with the old view; nobody sends another
    /// `Written` for entries already on disk, so it must be declared durable here.
    fn close_round(&mut self, out: &mut Vec<Action>) {
        if self.round.is_none() {
            self.on_committed(out);
        } else {
            self.update_role(out);
        }
    }

    fn on_transfer(&mut self, to: NodeId, base: u64, entries: Vec<Entry>, out: &mut Vec<Action>) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let Some(awaiting) = round.awaiting.as_mut() else {
            return;
        };
        if !awaiting.remove(&to) {
            return;
        }
        // Whatever the receiver held past `base` is being replaced.
        let w = self.written.entry(to).or_insert(0);
        *w = (*w).min(base);
        if to == self.me {
            self.reported = self.reported.min(base);
            self.pending.retain(|&seq, _| seq <= base);
            self.log.retain(|e| e.seq <= base);
            self.log.extend(entries.iter().cloned());
            out.push(Action::Replace { base, entries });
            self.synced = true;
        }
        if awaiting.is_empty() {
            self.round = None;
        }
        self.close_round(out);
    }
}
