//! Coordinator high availability on Corosync: who may act, and a journal every coordinator holds.
//!
//! - [`corosync_conf`]: what the local Corosync runs with (token, consensus, nodelist), and the
//!   check of the `[cluster]` settings against it at start.
//! - [`lease`]: Corosync's quorum answer, trusted only within a lease.
//! - [`replica`]: the sans-IO replication state machine: a CPG group in which exactly one member is
//!   active in a fencing epoch, its journal records replicated in agreed order and durable once
//!   delivered back and written, state transfer to lagging members, and the epoch check every
//!   power request passes.
//! - [`node`]: the thin Corosync I/O layer (libcpg + libvotequorum through `rust-corosync`) that
//!   runs a [`replica::Replica`] and a [`hactl_journal::Journal`] on a thread of its own.
//!
//! The argument why two members can never fence in the same epoch is in
//! `hactl-kvm/docs/replication.md`.

pub mod corosync_conf;
pub mod lease;
pub mod node;
pub mod replica;

pub use lease::QuorumLease;
pub use node::{ClusterNode, NodeConfig, NodeError, NodeStatus};
pub use replica::{
    verify_chain, Action, ChainError, Entry, EntryBody, NodeId, ProposalId, Refusal, Replica, Role,
    Wire, MAX_ENTRY_BYTES,
};
