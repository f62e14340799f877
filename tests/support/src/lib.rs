//! Starts and stops the real peers the tests run against: OpenIPMI `ipmi_sim` BMCs and a
//! single-node Pacemaker/Corosync cluster on loopback, a CloudStack API double
//! ([`cloudstack::CloudStackDouble`], an in-process HTTP server on 127.0.0.1), `sshd` on a
//! loopback port, and a programmable hostile fake BMC ([`FakeBmc`]) that sends exactly the bytes
//! a test asks for.
//!
//! Every peer is a process this crate started itself; it is stopped by its PID when the handle
//! is dropped (never by name). A missing peer binary is a test failure that says which Debian
//! package to install, never a silent skip.

pub mod cloudstack;
pub mod fake_bmc;
pub mod ipmi_sim;
pub mod pacemaker;
pub mod peers;
pub mod sshd;

pub use fake_bmc::FakeBmc;
pub use ipmi_sim::{IpmiSim, IpmiSimBuilder, PowerEvent, SimUser};
pub use pacemaker::Cluster;
pub use peers::require;
pub use sshd::Sshd;
