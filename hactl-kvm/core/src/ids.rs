//! Identifiers and the time unit shared by every part of the core.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Monotonic time in milliseconds, supplied by whoever drives the core (the
/// runtime or the simulator). The core never reads a clock itself.
pub type Millis = u64;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// A zone (CloudStack `zone`), the outermost partition level.
    ZoneId,
    "zone-"
);
id_type!(
    /// A pod inside a zone.
    PodId,
    "pod-"
);
id_type!(
    /// A cluster: the HA partition. Hosts of one cluster share storage and
    /// check each other's activity.
    ClusterId,
    "cluster-"
);
id_type!(
    /// A KVM host.
    HostId,
    "host-"
);

/// Identifies one operation (health check, activity check, power read or
/// power action) the core asked for. The high 24 bits are the coordinator
/// epoch (incremented on every restart), so results addressed to a previous
/// incarnation never match an operation of the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpId(pub u64);

impl OpId {
    /// Builds an id from a coordinator epoch and a sequence number.
    pub fn new(epoch: u32, seq: u64) -> Self {
        OpId((u64::from(epoch) << 40) | (seq & ((1 << 40) - 1)))
    }
    /// The coordinator epoch that issued this id.
    pub fn epoch(self) -> u32 {
        (self.0 >> 40) as u32
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op-{}.{}", self.epoch(), self.0 & ((1 << 40) - 1))
    }
}

/// Identifies one fence attempt (a power-off issued to recover a host). Same
/// epoch layout as [`OpId`]; it is what the fence log and the rate cap count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FenceId(pub u64);

impl fmt::Display for FenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fence-{}.{}", self.0 >> 40, self.0 & ((1 << 40) - 1))
    }
}

/// The version of a host's HA state: incremented on every HA transition and
/// persisted, so it keeps growing across coordinator restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StateVersion(pub u64);

/// What every operation the core asks for carries, and what its result must
/// echo back: which operation, on which host, for which HA state version. A
/// result whose operation is no longer pending, or whose host has since moved
/// to another state version, is discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OpRef {
    /// The operation.
    pub id: OpId,
    /// The host the operation is about (for an activity check: the suspect).
    pub host: HostId,
    /// The host's HA state version when the operation was started.
    pub version: StateVersion,
}
