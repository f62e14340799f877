//! Starts and stops the real peers the tests run against, all on loopback: OpenIPMI `ipmi_sim`
//! BMCs, a single-node Pacemaker/Corosync cluster, a CloudStack API double
//! ([`cloudstack::CloudStackDouble`], an in-process HTTP server with real signature checks),
//! `sshd` on a loopback port, a programmable hostile fake BMC ([`FakeBmc`]) that sends exactly the
//! bytes a test asks for, sushy-emulator (Redfish), a small Redfish test double, and a three-node Corosync
//! cluster in network namespaces the test creates ([`Cluster3`]). Module [`ocf`] runs an OCF resource
//! agent the way execd, `crm_resource`, `ocf-tester` and `xmllint` do, for both agents' tests.
//!
//! Every peer is a process this crate started itself; it is stopped by its PID when the handle
//! is dropped (never by name). A missing peer binary is a test failure that says which Debian
//! package to install, never a silent skip.

pub mod cloudstack;
pub mod cluster3;
pub mod fake_bmc;
pub mod ipmi_sim;
pub mod ocf;
pub mod pacemaker;
pub mod peers;
pub mod promtool;
pub mod redfish_double;
pub mod sshd;
pub mod sushy;
pub mod tls;

pub use cluster3::{Cluster3, QuorumStatus};
pub use fake_bmc::FakeBmc;
pub use ipmi_sim::{IpmiSim, IpmiSimBuilder, PowerEvent, SimUser};
pub use pacemaker::{Cluster, MachineLock};
pub use peers::require;
pub use redfish_double::{DoubleBehaviour, DoubleEvent, RedfishDouble};
pub use sshd::Sshd;
pub use sushy::{FakeSystem, SushyEmulator};
pub use tls::TestCa;
