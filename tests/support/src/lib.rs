//! Starts and stops the real peers the tests run against: OpenIPMI `ipmi_sim` BMCs and a
//! single-node Pacemaker/Corosync cluster on loopback, a three-node Corosync cluster in network
//! namespaces.
//!
//! Every peer is a process this crate started itself; it is stopped by its PID when the handle
//! is dropped (never by name). A missing peer binary is a test failure that says which Debian
//! package to install, never a silent skip.

pub mod cluster3;
pub mod ipmi_sim;
pub mod pacemaker;
pub mod peers;

pub use cluster3::{Cluster3, QuorumStatus};
pub use ipmi_sim::{IpmiSim, IpmiSimBuilder, PowerEvent, SimUser};
pub use pacemaker::Cluster;
pub use peers::require;
