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
    /// The BMC reads OFF while the chassis is ON.
    BmcLiesOff {
        host: HostIdx,
    },
    BmcHonest {
        host: HostIdx,
    },
    /// The BMC answers power reads from a stale cache (the state at the
    /// fault).
    BmcStaleRead {
        host: HostIdx,
    },
    BmcFresh {
        host: HostIdx,
    },
    /// Power operations execute but their answers are lost or late.
    PowerAcksLost {
        host: HostIdx,
    },
    PowerAcksBack {
        host: HostIdx,
    },
    /// Power operations execute twice (retransmission).
    PowerOpsDuplicated {
        host: HostIdx,
    },
    PowerOpsSingle {
        host: HostIdx,
    },
    /// The host, as an activity checker, answers wrong `pct` % of the time.
    CheckerWrong {
        host: HostIdx,
        pct: u32,
    },
    CheckerRight {
        host: HostIdx,
    },
    /// The quorum provider goes silent while the coordinator loses quorum:
    /// the last report it gave was "quorate".
    QuorumProviderDies,
    /// The provider is back (and the coordinator quorate again).
    QuorumProviderBack,
    /// Heartbeat reads on the cluster's storage outlast a sample window.
    StorageSlow {
        cluster: ClusterIdx,
    },
    StorageNormal {
        cluster: ClusterIdx,
    },
    /// An operator puts the host into maintenance at once; the API reports
    /// it `api_lag_ms` later (a stale inventory).
    MaintenanceStarted {
        host: HostIdx,
        api_lag_ms: u64,
    },
    MaintenanceEnded {
        host: HostIdx,
        api_lag_ms: u64,
    },
    /// The coordinator is superseded: a new instance recovers from its
    /// journal and takes over while the old one keeps running and acting
    /// (it stops after `zombie_for_ms`).
    ZombieCoordinator {
        zombie_for_ms: u64,
    },
    /// Several coordinator instances (`--coordinators`): the network cuts
    /// one instance (None: the active one) off from every other instance
    /// for `for_ms`; it keeps its paths to the hosts, BMCs and the API.
    /// Cutting the active one off leaves it running as a zombie.
    CoordinatorIsolated {
        instance: Option<usize>,
        for_ms: u64,
    },
    /// One instance (None: the active one) loses its quorum service for
    /// `for_ms`: no answer, its quorum lease runs out.
    CoordinatorQuorumCut {
        instance: Option<usize>,
        for_ms: u64,
    },
    /// One instance process (None: the active one) dies and restarts after
    /// `restart_after_ms` from its local journal.
    CoordinatorInstanceCrash {
        instance: Option<usize>,
        restart_after_ms: u64,
    },
    /// Arms a crash of the active instance at its next fencing request
    /// (mid-recovery), restarting after `restart_after_ms`.
    ActiveCrashOnNextFence {
        restart_after_ms: u64,
    },
    /// Pacemaker promotes the most current standby while the active one is
    /// alive and connected (a false monitor failure whose demote is lost).
    ForcedPromotion,
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
                | Fault::BmcHonest { .. }
                | Fault::BmcFresh { .. }
                | Fault::PowerAcksBack { .. }
                | Fault::PowerOpsSingle { .. }
                | Fault::CheckerRight { .. }
                | Fault::QuorumProviderBack
                | Fault::StorageNormal { .. }
                | Fault::MaintenanceEnded { .. }
        )
    }
}

fn instance_name(i: Option<usize>) -> String {
    i.map_or_else(|| "(the active one)".to_string(), |i| format!("c{}", i + 1))
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
            Fault::BmcLiesOff { host } => {
                write!(f, "BMC of h{host} reads OFF while the chassis is ON")
            }
            Fault::BmcHonest { host } => write!(f, "BMC of h{host} reads the chassis again"),
            Fault::BmcStaleRead { host } => {
                write!(f, "BMC of h{host} answers reads from a stale cache")
            }
            Fault::BmcFresh { host } => write!(f, "BMC of h{host} reads fresh again"),
            Fault::PowerAcksLost { host } => {
                write!(
                    f,
                    "power operations on h{host} execute but their answers are lost"
                )
            }
            Fault::PowerAcksBack { host } => write!(f, "power answers of h{host} arrive again"),
            Fault::PowerOpsDuplicated { host } => {
                write!(f, "power operations on h{host} execute twice")
            }
            Fault::PowerOpsSingle { host } => write!(f, "power operations on h{host} execute once"),
            Fault::CheckerWrong { host, pct } => {
                write!(f, "h{host} as checker answers wrong {pct} % of the time")
            }
            Fault::CheckerRight { host } => write!(f, "h{host} as checker answers right again"),
            Fault::QuorumProviderDies => {
                write!(
                    f,
                    "quorum provider goes silent (last said quorate) and quorum is lost"
                )
            }
            Fault::QuorumProviderBack => write!(f, "quorum provider back, quorum regained"),
            Fault::StorageSlow { cluster } => {
                write!(
                    f,
                    "storage of c{cluster} slow: heartbeat reads outlast the sample window"
                )
            }
            Fault::StorageNormal { cluster } => write!(f, "storage of c{cluster} normal again"),
            Fault::MaintenanceStarted { host, api_lag_ms } => write!(
                f,
                "h{host} put into maintenance (the API reports it {} s later)",
                api_lag_ms / 1000
            ),
            Fault::MaintenanceEnded { host, api_lag_ms } => write!(
                f,
                "h{host} out of maintenance (the API reports it {} s later)",
                api_lag_ms / 1000
            ),
            Fault::ZombieCoordinator { zombie_for_ms } => write!(
                f,
                "a new coordinator takes over from the journal; the old one keeps running for {} s",
                zombie_for_ms / 1000
            ),
            Fault::CoordinatorIsolated { instance, for_ms } => write!(
                f,
                "network: coordinator instance {} cut off from the other instances for {} s",
                instance_name(*instance),
                for_ms / 1000
            ),
            Fault::CoordinatorQuorumCut { instance, for_ms } => write!(
                f,
                "coordinator instance {} loses its quorum service for {} s",
                instance_name(*instance),
                for_ms / 1000
            ),
            Fault::CoordinatorInstanceCrash {
                instance,
                restart_after_ms,
            } => write!(
                f,
                "coordinator instance {} dies (restart in {} s)",
                instance_name(*instance),
                restart_after_ms / 1000
            ),
            Fault::ActiveCrashOnNextFence { restart_after_ms } => write!(
                f,
                "armed: the active coordinator instance dies at its next fence request (restart in {} s)",
                restart_after_ms / 1000
            ),
            Fault::ForcedPromotion => write!(
                f,
                "Pacemaker promotes a standby while the active instance is alive (lost demote)"
            ),
        }
    }
}
