//! The simulated data center: the ground truth the coordinator can only
//! observe through checks, and that the invariant checker judges it by.
//!
//! Heartbeats are modelled analytically rather than as one queue event per
//! write: a host that is writing writes at `since + k * period`, so "did the
//! heartbeat advance between t0 and t1" is O(1) and a 10,000-host day does
//! not cost 170 million heartbeat events.

use crate::clock::SimTime;

/// Index of a host in [`World::hosts`]; also its position in the core's inventory.
pub type HostIdx = usize;
/// Index of a cluster (the HA partition) in [`World::clusters`].
pub type ClusterIdx = usize;

/// Shape of the simulated data center.
#[derive(Debug, Clone)]
pub struct Topology {
    pub hosts: usize,
    pub hosts_per_cluster: usize,
    pub clusters_per_pod: usize,
    pub pods_per_zone: usize,
    pub vms_per_host: u32,
}

impl Topology {
    /// `hosts` hosts in clusters of at most `hosts_per_cluster`.
    pub fn new(hosts: usize, hosts_per_cluster: usize) -> Topology {
        Topology {
            hosts,
            hosts_per_cluster: hosts_per_cluster.max(1),
            clusters_per_pod: 5,
            pods_per_zone: 4,
            vms_per_host: 8,
        }
    }

    pub fn clusters(&self) -> usize {
        self.hosts.div_ceil(self.hosts_per_cluster).max(1)
    }
}

/// Chassis power as the BMC would report it if asked and able to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chassis {
    On,
    Off,
}

/// Where a host's operating system is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Running,
    /// Powered on, OS not yet up; completes at the stored instant.
    Booting,
    /// Kernel panic / hang: chassis still ON, nothing runs.
    Crashed,
    /// Chassis is off.
    Down,
}

#[derive(Debug, Clone)]
pub struct Bmc {
    /// Management network path from the coordinator to the BMC.
    pub reachable: bool,
    /// Added to every BMC operation (a slow BMC exceeds the core's timeout).
    pub extra_latency_ms: u64,
    /// The BMC shares the host's power feed and is dead while it is cut.
    pub powered: bool,
    /// bmc-lies-off: power reads answer OFF whatever the chassis does.
    pub lies_off: bool,
    /// bmc-stale-read: power reads answer this cached state.
    pub stale: Option<Chassis>,
    /// lost-power-ack: power operations execute but their answer is lost
    /// (the driver times out) or arrives after the timeout.
    pub loses_acks: bool,
    /// duplicate-power-op: every power operation executes twice (a
    /// retransmitted command).
    pub duplicates_ops: bool,
}

impl Bmc {
    /// What a power read answers for a chassis in state `chassis`.
    pub fn read(&self, chassis: Chassis) -> Chassis {
        if self.lies_off {
            Chassis::Off
        } else {
            self.stale.unwrap_or(chassis)
        }
    }
}

/// How many past writing spells a heartbeat remembers for judging fences
/// after the fact (a fence's evidence never reaches further back).
const SPELL_HISTORY: usize = 8;

/// Heartbeat writer of one host on its cluster's shared storage.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// `Some(t0)` while writing: writes land at `t0 + k * period`.
    pub writing_since: Option<SimTime>,
    /// Last write before the current writing spell began (or stopped).
    pub last_write_before: Option<SimTime>,
    /// Finished writing spells `[start, stop)`, most recent last.
    pub past_spells: std::collections::VecDeque<(SimTime, SimTime)>,
}

impl Heartbeat {
    /// Ground truth: did a write land in `(from, to]`? Exact as long as the
    /// interval lies within the remembered spells.
    pub fn advanced_between(&self, from: SimTime, to: SimTime, period_ms: u64) -> bool {
        let spell_has_write = |start: SimTime, stop: Option<SimTime>| {
            // First write strictly after `from`.
            let k = if from.0 >= start.0 {
                (from.0 - start.0) / period_ms + 1
            } else {
                0
            };
            let w = start.0 + k * period_ms;
            w <= to.0 && stop.map_or(true, |e| w < e.0)
        };
        self.writing_since.is_some_and(|s| spell_has_write(s, None))
            || self
                .past_spells
                .iter()
                .any(|&(s, e)| spell_has_write(s, Some(e)))
    }

    /// The instant of the last heartbeat write at or before `t`.
    pub fn last_write(&self, t: SimTime, period_ms: u64) -> Option<SimTime> {
        match self.writing_since {
            Some(t0) if t >= t0 => {
                let k = (t.0 - t0.0) / period_ms;
                Some(SimTime(t0.0 + k * period_ms))
            }
            _ => self.last_write_before,
        }
    }
}

/// One host. `repr(C)` with the fields every health check reads first, so
/// a check touches one cache line of a host (the benchmark's 10,000 hosts
/// are read in random order and do not fit in cache).
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Host {
    pub cluster: ClusterIdx,
    pub chassis: Chassis,
    pub os: Os,
    pub agent_up: bool,
    /// The host's own path to its cluster's NFS export.
    pub nfs_ok: bool,
    /// Data-network path between the coordinator and this host's agent.
    pub net_ok: bool,
    /// The chassis-and-BMC power feed is cut (bmc-dead-with-host).
    pub feed_cut: bool,
    pub vms: u32,
    pub bmc: Bmc,
    /// Increases every time the host is killed by a fault; identifies one
    /// failure episode.
    pub failure_epoch: u32,
    /// When the current failure episode began (host stopped doing useful work
    /// while its chassis stayed ON or lost power by fault), cleared when the
    /// chassis is confirmed off/cycled by the coordinator or repaired.
    pub dead_since: Option<SimTime>,
    /// Skew of this host's wall clock (what it writes into its heartbeat file).
    pub wall_offset_ms: i64,
    /// checker-wrong: as a checker, this host answers the opposite of the
    /// truth (DEAD for a live host, ALIVE for a dead one) this often, in
    /// percent.
    pub checker_wrong_pct: u32,
    /// Ground truth: an operator put the host into maintenance (it may be
    /// worked on; it must not be fenced).
    pub maintenance: bool,
    /// What the CloudStack API reports (lags `maintenance`: a stale
    /// inventory); the core is told this.
    pub api_maintenance: bool,
    pub heartbeat: Heartbeat,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub pod: usize,
    pub zone: usize,
    pub hosts: std::ops::Range<HostIdx>,
    /// The cluster's NFS export answers.
    pub nfs_ok: bool,
    /// Data-network partition between the coordinator and every host here.
    pub partitioned: bool,
    /// storage-slow: heartbeat reads take longer than an activity sample
    /// window (checks time out: cannot tell).
    pub storage_slow: bool,
    /// Since when a whole-partition outage has been in force.
    pub outage_since: Option<SimTime>,
}

/// Everything true about the data center at the current instant.
#[derive(Debug, Clone)]
pub struct World {
    pub hosts: Vec<Host>,
    pub clusters: Vec<Cluster>,
    /// Ground truth: the coordinator is in the quorate partition.
    pub quorate: bool,
    /// When it last lost quorum (None while quorate).
    pub quorum_lost_at: Option<SimTime>,
    /// The quorum provider reports (false: quorum-provider-dies, silent).
    pub quorum_provider_alive: bool,
    /// The highest coordinator epoch the BMC driver has seen on a power
    /// action: the fencing token; lower ones are refused.
    pub fencing_token: u32,
    pub heartbeat_period_ms: u64,
    /// Offset of the coordinator's wall clock from virtual time (clock steps).
    pub coordinator_wall_offset_ms: i64,
}

impl World {
    pub fn new(topo: &Topology, heartbeat_period_ms: u64) -> World {
        let n_clusters = topo.clusters();
        let mut clusters = Vec::with_capacity(n_clusters);
        let mut hosts = Vec::with_capacity(topo.hosts);
        for c in 0..n_clusters {
            let first = c * topo.hosts_per_cluster;
            let last = ((c + 1) * topo.hosts_per_cluster).min(topo.hosts);
            let pod = c / topo.clusters_per_pod;
            clusters.push(Cluster {
                name: format!("c{c}"),
                pod,
                zone: pod / topo.pods_per_zone,
                hosts: first..last,
                nfs_ok: true,
                partitioned: false,
                storage_slow: false,
                outage_since: None,
            });
            for h in first..last {
                hosts.push(Host {
                    name: format!("h{h}"),
                    cluster: c,
                    chassis: Chassis::On,
                    os: Os::Running,
                    agent_up: true,
                    nfs_ok: true,
                    net_ok: true,
                    vms: topo.vms_per_host,
                    bmc: Bmc {
                        reachable: true,
                        extra_latency_ms: 0,
                        powered: true,
                        lies_off: false,
                        stale: None,
                        loses_acks: false,
                        duplicates_ops: false,
                    },
                    heartbeat: Heartbeat::default(),
                    failure_epoch: 0,
                    dead_since: None,
                    wall_offset_ms: 0,
                    checker_wrong_pct: 0,
                    maintenance: false,
                    api_maintenance: false,
                    feed_cut: false,
                });
            }
        }
        World {
            hosts,
            clusters,
            quorate: true,
            quorum_lost_at: None,
            quorum_provider_alive: true,
            fencing_token: 0,
            heartbeat_period_ms,
            coordinator_wall_offset_ms: 0,
        }
    }

    /// Whether the host's heartbeat writer can write right now.
    pub fn should_write(&self, h: HostIdx) -> bool {
        let host = &self.hosts[h];
        host.chassis == Chassis::On
            && host.os == Os::Running
            && host.nfs_ok
            && self.clusters[host.cluster].nfs_ok
    }

    /// Re-derives whether host `h` is writing its heartbeat after any change
    /// of its state; must be called after every mutation that can affect it.
    /// `phase_ms` staggers the first write so hosts do not write in lockstep.
    pub fn refresh_heartbeat(&mut self, h: HostIdx, now: SimTime, phase_ms: u64) {
        let period = self.heartbeat_period_ms;
        let writing = self.should_write(h);
        let hb = &mut self.hosts[h].heartbeat;
        match (hb.writing_since.is_some(), writing) {
            (false, true) => {
                hb.writing_since = Some(now.plus_ms(phase_ms % period));
            }
            (true, false) => {
                hb.last_write_before = hb.last_write(now, period);
                if let Some(s) = hb.writing_since.take() {
                    if hb.past_spells.len() == SPELL_HISTORY {
                        hb.past_spells.pop_front();
                    }
                    hb.past_spells.push_back((s, now));
                }
            }
            _ => {}
        }
    }

    pub fn last_write(&self, h: HostIdx, t: SimTime) -> Option<SimTime> {
        self.hosts[h]
            .heartbeat
            .last_write(t, self.heartbeat_period_ms)
    }

    /// The host can read its cluster's shared storage (to act as a checker).
    pub fn can_read_storage(&self, h: HostIdx) -> bool {
        let host = &self.hosts[h];
        self.agent_answers(h) && host.nfs_ok && self.clusters[host.cluster].nfs_ok
    }

    /// The coordinator can talk to the host's agent over the data network.
    pub fn agent_reachable(&self, h: HostIdx) -> bool {
        let host = &self.hosts[h];
        host.net_ok && !self.clusters[host.cluster].partitioned
    }

    /// The agent answers and reports itself (and its storage) healthy: exactly when the host
    /// can read its cluster's storage.
    pub fn agent_healthy(&self, h: HostIdx) -> bool {
        self.can_read_storage(h)
    }

    /// The agent process can answer at all (it may answer "unhealthy").
    pub fn agent_answers(&self, h: HostIdx) -> bool {
        let host = &self.hosts[h];
        host.chassis == Chassis::On && host.os == Os::Running && host.agent_up
    }

    /// Peers of `h` in its cluster that could check its activity now:
    /// running, agent answering and reachable, storage readable.
    pub fn possible_checkers(&self, h: HostIdx) -> usize {
        self.clusters[self.hosts[h].cluster]
            .hosts
            .clone()
            .filter(|&x| {
                x != h
                    && !self.hosts[x].maintenance
                    && !self.hosts[x].api_maintenance
                    && self.agent_answers(x)
                    && self.agent_reachable(x)
                    && self.can_read_storage(x)
            })
            .count()
    }

    pub fn bmc_answers(&self, h: HostIdx) -> bool {
        let bmc = &self.hosts[h].bmc;
        bmc.reachable && bmc.powered
    }

    /// A whole-partition outage is in force: the cluster's storage is gone
    /// or the coordinator is cut off from every host in it.
    pub fn partition_outage(&self, c: ClusterIdx) -> bool {
        let cl = &self.clusters[c];
        !cl.nfs_ok || cl.partitioned || cl.hosts.clone().all(|h| !self.hosts[h].net_ok)
    }

    /// Hosts in the cluster that are dead right now (ground truth).
    pub fn dead_in_cluster(&self, c: ClusterIdx) -> usize {
        self.clusters[c]
            .hosts
            .clone()
            .filter(|&h| self.hosts[h].dead_since.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_writes_on_period_and_stops() {
        let topo = Topology::new(2, 10);
        let mut w = World::new(&topo, 5_000);
        w.refresh_heartbeat(0, SimTime(0), 1_000);
        assert_eq!(w.last_write(0, SimTime(999)), None);
        assert_eq!(w.last_write(0, SimTime(1_000)), Some(SimTime(1_000)));
        assert_eq!(w.last_write(0, SimTime(12_000)), Some(SimTime(11_000)));
        w.hosts[0].os = Os::Crashed;
        w.refresh_heartbeat(0, SimTime(13_000), 1_000);
        assert_eq!(w.last_write(0, SimTime(60_000)), Some(SimTime(11_000)));
        let hb = &w.hosts[0].heartbeat;
        assert!(hb.advanced_between(SimTime(0), SimTime(1_000), 5_000));
        assert!(hb.advanced_between(SimTime(6_000), SimTime(11_000), 5_000));
        assert!(!hb.advanced_between(SimTime(6_000), SimTime(10_999), 5_000));
        assert!(!hb.advanced_between(SimTime(11_000), SimTime(60_000), 5_000));
        w.hosts[0].os = Os::Running;
        w.refresh_heartbeat(0, SimTime(70_000), 0);
        assert!(w.hosts[0]
            .heartbeat
            .advanced_between(SimTime(60_000), SimTime(70_000), 5_000));
        assert!(!w.hosts[0]
            .heartbeat
            .advanced_between(SimTime(60_000), SimTime(69_999), 5_000));
    }

    #[test]
    fn topology_builds_clusters_pods_zones() {
        let topo = Topology::new(10_000, 20);
        let w = World::new(&topo, 5_000);
        assert_eq!(w.clusters.len(), 500);
        assert_eq!(w.hosts.len(), 10_000);
        assert_eq!(w.clusters[499].hosts, 9_980..10_000);
        assert_eq!(w.clusters[499].pod, 99);
        assert_eq!(w.clusters[499].zone, 24);
    }
}
