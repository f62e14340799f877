//! Faults the simulator injects into the world, and how each one changes it.

use std::fmt;

use crate::world::{ClusterIdx, HostIdx};

/// One change to the simulated world, applied at a virtual instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Kernel panic / hang: chassis stays ON, OS, agent and heartbeat stop.
    HostCrash {
        host: HostIdx,
    },
    /// The host's power feed fails and takes its BMC with it.
    HostAndBmcLosePower {
        host: HostIdx,
    },
    /// An operator restores the power feed of a host (and its BMC).
    PowerFeedRestored {
        host: HostIdx,
    },
    /// The CloudStack agent dies; the OS and the VMs keep running.
    AgentDown {
        host: HostIdx,
    },
    AgentUp {
        host: HostIdx,
    },
    /// The host alone loses its path to the cluster's NFS export.
    HostNfsDown {
        host: HostIdx,
    },
    HostNfsUp {
        host: HostIdx,
    },
    /// The cluster's NFS export stops answering for every host.
    ClusterNfsDown {
        cluster: ClusterIdx,
    },
    ClusterNfsUp {
        cluster: ClusterIdx,
    },
    BmcUnreachable {
        host: HostIdx,
    },
    BmcReachable {
        host: HostIdx,
    },
    /// Every BMC operation of the host takes this much longer.
    BmcSlow {
        host: HostIdx,
        extra_ms: u64,
    },
    BmcNormal {
        host: HostIdx,
    },
    /// The coordinator loses its data-network path to every host of a cluster.
    PartitionCluster {
        cluster: ClusterIdx,
    },
    HealCluster {
        cluster: ClusterIdx,
    },
    /// The coordinator loses its data-network path to one host.
    PartitionHost {
        host: HostIdx,
    },
    HealHost {
        host: HostIdx,
    },
    QuorumLost,
    QuorumRegained,
    /// The coordinator process dies; it restarts after `restart_after_ms`,
    /// rebuilt from its journal. With `tear_last_record` the last journal
    /// record is left half written, as by a crash during the write.
    CoordinatorCrash {
        restart_after_ms: u64,
        tear_last_record: bool,
    },
    /// Arms a coordinator crash that fires the instant the core next asks
    /// for a fencing power operation (before its result can come back).
    CoordinatorCrashOnNextFence {
        restart_after_ms: u64,
        tear_last_record: bool,
    },
    /// The coordinator machine's wall clock jumps (NTP step, operator).
    CoordinatorWallClockStep {
        delta_ms: i64,
    },
    /// A host's wall clock jumps, changing what it writes into its heartbeat.
    HostWallClockStep {
        host: HostIdx,
        delta_ms: i64,
    },
}

impl Fault {
    /// Whether this fault starts trouble (as opposed to clearing it); the
    /// stuck-state invariant measures quiet time from the last such fault.
    pub fn is_disruptive(&self) -> bool {
        !matches!(
            self,
            Fault::PowerFeedRestored { .. }
                | Fault::AgentUp { .. }
                | Fault::HostNfsUp { .. }
                | Fault::ClusterNfsUp { .. }
                | Fault::BmcReachable { .. }
                | Fault::BmcNormal { .. }
                | Fault::HealCluster { .. }
                | Fault::HealHost { .. }
                | Fault::QuorumRegained
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::HostCrash { host } => write!(f, "host h{host} crashes (chassis stays ON)"),
            Fault::HostAndBmcLosePower { host } => {
                write!(f, "host h{host} loses its power feed, BMC included")
            }
            Fault::PowerFeedRestored { host } => write!(f, "power feed of h{host} restored"),
            Fault::AgentDown { host } => write!(f, "agent on h{host} dies (VMs keep running)"),
            Fault::AgentUp { host } => write!(f, "agent on h{host} back"),
            Fault::HostNfsDown { host } => write!(f, "h{host} loses its NFS path"),
            Fault::HostNfsUp { host } => write!(f, "h{host} NFS path back"),
            Fault::ClusterNfsDown { cluster } => write!(f, "NFS of cluster c{cluster} goes away"),
            Fault::ClusterNfsUp { cluster } => write!(f, "NFS of cluster c{cluster} back"),
            Fault::BmcUnreachable { host } => write!(f, "BMC of h{host} unreachable"),
            Fault::BmcReachable { host } => write!(f, "BMC of h{host} reachable again"),
            Fault::BmcSlow { host, extra_ms } => {
                write!(f, "BMC of h{host} slow (+{} ms per operation)", extra_ms)
            }
            Fault::BmcNormal { host } => write!(f, "BMC of h{host} back to normal speed"),
            Fault::PartitionCluster { cluster } => {
                write!(
                    f,
                    "network partition: coordinator cut off from cluster c{cluster}"
                )
            }
            Fault::HealCluster { cluster } => write!(f, "partition of cluster c{cluster} healed"),
            Fault::PartitionHost { host } => {
                write!(f, "network partition: coordinator cut off from h{host}")
            }
            Fault::HealHost { host } => write!(f, "partition of h{host} healed"),
            Fault::QuorumLost => write!(f, "coordinator loses quorum"),
            Fault::QuorumRegained => write!(f, "coordinator regains quorum"),
            Fault::CoordinatorCrash {
                restart_after_ms,
                tear_last_record,
            } => write!(
                f,
                "coordinator crashes (restart in {} s{})",
                restart_after_ms / 1000,
                if *tear_last_record {
                    ", last journal record torn"
                } else {
                    ""
                }
            ),
            Fault::CoordinatorCrashOnNextFence { .. } => {
                write!(f, "armed: coordinator will crash at its next fence request")
            }
            Fault::CoordinatorWallClockStep { delta_ms } => {
                write!(f, "coordinator wall clock steps by {:+} s", delta_ms / 1000)
            }
            Fault::HostWallClockStep { host, delta_ms } => {
                write!(f, "h{host} wall clock steps by {:+} s", delta_ms / 1000)
            }
        }
    }
}
