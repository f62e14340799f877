//! kvm-host: the OCF resource agent for a KVM host's HA readiness and its
//! storage heartbeat (`ocf:cloudstack:kvm-host`), plus `check-peer`, the
//! neighbour activity check the coordinator runs against another host.
//!
//! Module map: [`ocf`] protocol, [`params`] parameters, [`metadata`] XML,
//! [`agent`] the actions, [`writer`] the heartbeat daemon, [`heartbeat`] the
//! on-storage format, [`reader`] and [`child`] deadline-bound I/O,
//! [`state`] local PID/status files, [`peer`] check-peer, [`log`] syslog.

pub mod agent;
pub mod child;
pub mod heartbeat;
pub mod log;
pub mod metadata;
pub mod ocf;
pub mod params;
pub mod peer;
pub mod reader;
pub mod state;
pub mod writer;
