//! CloudStack's zones, pods, clusters and KVM hosts mapped onto the core's
//! [`Inventory`] (one HA partition per cluster), and a host's health taken
//! from its agent connection as CloudStack reports it. Pure: no I/O.
//!
//! # Objects
//!
//! | CloudStack | core | rule |
//! |---|---|---|
//! | zone `allocationstate` | `Zone.enabled` | `Enabled` → true; `Disabled` or anything else → false |
//! | pod `allocationstate` | `Pod.enabled` | same |
//! | cluster `allocationstate`, `managedstate` | `Cluster.enabled` | true only for `Enabled` **and** `Managed` (`PrepareUnmanaged`, `Unmanaged`, `PrepareUnmanagedError` or absent → false: do not act) |
//! | cluster `hypervisortype` | — | only `KVM` clusters (or absent) are mapped; others are not ours |
//! | (our configuration) | `Cluster.ha_enabled` | [`MapContext::partition_ha_enabled`] |
//! | UUIDs | `ZoneId`/`PodId`/`ClusterId`/`HostId` | [`IdMap`]: stable, never reused; persist it |
//!
//! A disabled zone or pod disables every partition in it (the core checks the
//! chain). A host in a cluster not listed gets a placeholder partition in the
//! core with HA off.
//!
//! # Hosts
//!
//! Hosts with `state` `Creating` or `Removed`, or `resourcestate` `Creating`,
//! are left out (not yet / no longer hosts; a host that disappears becomes
//! [`InventoryChange::RemoveHost`] in [`diff`]).
//!
//! | `resourcestate` | core `ResourceState` | HA state it leads to |
//! |---|---|---|
//! | `Enabled` | `Enabled` | eligible (if the rest allows) |
//! | `Disabled` | `Disabled` | INELIGIBLE |
//! | `PrepareForMaintenance`, `ErrorInPrepareForMaintenance`, `Maintenance`, `ErrorInMaintenance` | `Maintenance` | INELIGIBLE |
//! | `Error` | `Error` | INELIGIBLE |
//! | `Degraded`, declared by us ([`MapContext::declared_degraded_by_us`]) | `Enabled` | the fence/recovery flow goes on |
//! | `Degraded`, declared by someone else | `Error` | INELIGIBLE |
//! | any other value | `Error` | INELIGIBLE |
//!
//! | other host fields | core | rule |
//! |---|---|---|
//! | `hostha.haenable == true` | `oobm_enabled = false` | INELIGIBLE, reason [`Ineligible::CloudStackHostHa`]: CloudStack may fence the host itself, and two fencers for one host is the split brain we exist to prevent |
//! | power driver ([`MapContext::power_driver_configured`]; default: `outofbandmanagement.enabled` with an address) | `oobm_enabled` | no driver → INELIGIBLE ([`Ineligible::NoPowerDriver`]) |
//! | [`MapContext::has_vms`] (default true) | `has_vms` | |
//! | `clusterid` | `cluster` | a changed `clusterid` is a move (`UpsertHost` with the new cluster) |
//!
//! # Health (one `listHosts` per cluster round)
//!
//! | host `state` | [`HealthOutcome`] |
//! |---|---|
//! | `Up` | `Passed` |
//! | `Connecting` (agent connected, handshake running), `Rebalancing` (agent moving to another management server) | `Passed`: the agent is talking to CloudStack |
//! | `Alert`, `Disconnected`, `Down` | `AgentUnreachable` |
//! | `Error`, `Unknown`, any other value | `AgentUnhealthy` |
//! | `Creating`, `Removed` | none (not in the inventory) |
//!
//! A failed health check only makes a host SUSPECT; fencing needs the
//! storage-heartbeat activity checks as well, so mapping doubtful states to
//! failure costs checks, never a wrong fence. `lastpinged` is not used:
//! CloudStack prints an internal `ms >> 10` counter as a 1970 date, and its
//! own ping timeout already turns a silent agent into `Alert`.

use crate::types::{
    AllocationState, ClusterInfo, HostInfo, HostStatus, ManagedState, Pod as CsPod,
    ResourceState as CsResourceState, Zone as CsZone,
};
use hactl_core::{
    Cluster, ClusterId, HealthOutcome, Host, HostId, HostOverrides, Inventory, InventoryChange,
    Pod, PodId, ResourceState, Zone, ZoneId,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Stable UUID → core id assignment. Ids are handed out in order and never
/// reused. The core's journal names hosts by these ids, so the runtime must
/// persist this map (it is `Serialize`/`Deserialize`) and load it on start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    zones: BTreeMap<String, u32>,
    pods: BTreeMap<String, u32>,
    clusters: BTreeMap<String, u32>,
    hosts: BTreeMap<String, u32>,
    next: u32,
}

impl IdMap {
    fn assign(map: &mut BTreeMap<String, u32>, next: &mut u32, uuid: &str) -> u32 {
        if let Some(&id) = map.get(uuid) {
            return id;
        }
        let id = *next;
        *next += 1;
        map.insert(uuid.to_string(), id);
        id
    }
    /// The zone's id (assigned on first sight).
    pub fn zone(&mut self, uuid: &str) -> ZoneId {
        ZoneId(Self::assign(&mut self.zones, &mut self.next, uuid))
    }
    /// The pod's id.
    pub fn pod(&mut self, uuid: &str) -> PodId {
        PodId(Self::assign(&mut self.pods, &mut self.next, uuid))
    }
    /// The cluster's id.
    pub fn cluster(&mut self, uuid: &str) -> ClusterId {
        ClusterId(Self::assign(&mut self.clusters, &mut self.next, uuid))
    }
    /// The host's id.
    pub fn host(&mut self, uuid: &str) -> HostId {
        HostId(Self::assign(&mut self.hosts, &mut self.next, uuid))
    }
    /// The UUID of a host id, if known.
    pub fn host_uuid(&self, id: HostId) -> Option<&str> {
        self.hosts
            .iter()
            .find(|(_, &v)| v == id.0)
            .map(|(k, _)| k.as_str())
    }
    /// The id of a host UUID, if known (never assigns).
    pub fn host_id(&self, uuid: &str) -> Option<HostId> {
        self.hosts.get(uuid).map(|&v| HostId(v))
    }
}

/// What the mapping needs from the coordinator's configuration and journal.
pub trait MapContext {
    /// HA enabled for this partition (our configuration). Default true.
    fn partition_ha_enabled(&self, _cluster: &ClusterInfo) -> bool {
        true
    }
    /// A power driver can fence this host. Default: CloudStack's OOBM is
    /// enabled for it with an address.
    fn power_driver_configured(&self, host: &HostInfo) -> bool {
        host.outofbandmanagement
            .as_ref()
            .is_some_and(|o| o.enabled && o.address.as_deref().is_some_and(|a| !a.is_empty()))
    }
    /// We declared this host Degraded ourselves (journaled hand-off to
    /// VM-HA), so its `Degraded` resource state is ours, not an operator's.
    fn declared_degraded_by_us(&self, _host_uuid: &str) -> bool {
        false
    }
    /// The host runs VMs. Default true (protect it).
    fn has_vms(&self, _host: &HostInfo) -> bool {
        true
    }
}

/// The defaults of [`MapContext`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultContext;
impl MapContext for DefaultContext {}

/// Why a host cannot be protected (for reports and events; the core only
/// sees the resulting flags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ineligible {
    /// CloudStack's own Host HA is enabled for the host (`hostha.haenable`).
    CloudStackHostHa,
    /// No power driver can fence the host.
    NoPowerDriver,
    /// Its resource state (maintenance, disabled, degraded by an operator ...).
    ResourceState(String),
    /// Its zone is disabled.
    ZoneDisabled,
    /// Its pod is disabled.
    PodDisabled,
    /// Its cluster is disabled.
    ClusterDisabled,
    /// Its cluster is not `Managed`.
    ClusterUnmanaged,
    /// Its cluster is not in the inventory (not listed or not KVM).
    ClusterUnknown,
    /// HA is off for its partition in our configuration.
    PartitionHaDisabled,
}

impl std::fmt::Display for Ineligible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ineligible::CloudStackHostHa => f.write_str(
                "CloudStack Host HA is enabled for this host (two fencers for one host); disable it to let hactl-kvm protect the host",
            ),
            Ineligible::NoPowerDriver => f.write_str("no power driver (out-of-band management) configured"),
            Ineligible::ResourceState(s) => write!(f, "resource state {s}"),
            Ineligible::ZoneDisabled => f.write_str("zone disabled"),
            Ineligible::PodDisabled => f.write_str("pod disabled"),
            Ineligible::ClusterDisabled => f.write_str("cluster disabled"),
            Ineligible::ClusterUnmanaged => f.write_str("cluster not managed"),
            Ineligible::ClusterUnknown => f.write_str("cluster unknown (not listed or not KVM)"),
            Ineligible::PartitionHaDisabled => f.write_str("HA disabled for this partition in the configuration"),
        }
    }
}

/// One mapped host: the core's id and what the runtime needs besides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMapping {
    /// Core id.
    pub id: HostId,
    /// CloudStack UUID.
    pub uuid: String,
    /// Name.
    pub name: String,
    /// Management IP (heartbeat file `hb-<ip>`).
    pub ipaddress: Option<String>,
    /// Core partition.
    pub cluster: ClusterId,
    /// Why it is not protected (empty: eligible as far as CloudStack goes).
    pub ineligible: Vec<Ineligible>,
    /// Health from its agent state (see the module table).
    pub health: HealthOutcome,
    /// The record it came from.
    pub info: HostInfo,
}

/// The result of [`map_inventory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedInventory {
    /// For `Input::Inventory`.
    pub inventory: Inventory,
    /// Per host, in the order of `inventory.hosts`.
    pub hosts: Vec<HostMapping>,
}

fn allocation_enabled(a: &AllocationState) -> bool {
    *a == AllocationState::Enabled
}

fn is_kvm_cluster(c: &ClusterInfo) -> bool {
    c.hypervisortype
        .as_deref()
        .map_or(true, |h| h.eq_ignore_ascii_case("KVM"))
}

/// The host is a host at all (not being created, not removed).
pub fn is_listed_host(h: &HostInfo) -> bool {
    !matches!(h.state, HostStatus::Creating | HostStatus::Removed)
        && h.resourcestate != CsResourceState::Creating
}

/// Core resource state of a host (see the module table).
pub fn resource_state(h: &HostInfo, ctx: &dyn MapContext) -> ResourceState {
    match &h.resourcestate {
        CsResourceState::Enabled => ResourceState::Enabled,
        CsResourceState::Disabled => ResourceState::Disabled,
        CsResourceState::PrepareForMaintenance
        | CsResourceState::ErrorInPrepareForMaintenance
        | CsResourceState::Maintenance
        | CsResourceState::ErrorInMaintenance => ResourceState::Maintenance,
        CsResourceState::Degraded if ctx.declared_degraded_by_us(&h.id) => ResourceState::Enabled,
        CsResourceState::Degraded
        | CsResourceState::Error
        | CsResourceState::Creating
        | CsResourceState::Other(_) => ResourceState::Error,
    }
}

/// Health of a host from its agent connection (see the module table).
pub fn health_of(h: &HostInfo) -> HealthOutcome {
    match h.state {
        HostStatus::Up | HostStatus::Connecting | HostStatus::Rebalancing => HealthOutcome::Passed,
        HostStatus::Alert | HostStatus::Disconnected | HostStatus::Down => {
            HealthOutcome::AgentUnreachable
        }
        HostStatus::Error
        | HostStatus::Unknown
        | HostStatus::Creating
        | HostStatus::Removed
        | HostStatus::Other(_) => HealthOutcome::AgentUnhealthy,
    }
}

/// Health results of one cluster round: one `listHosts clusterid=...` answer
/// → the outcome per known host. Hosts of the answer that `ids` does not
/// know, or that are not hosts any more, are left out; so are hosts of the
/// cluster missing from the answer (the caller must not invent a result for
/// them: the core times the check out itself).
pub fn health_round(hosts: &[HostInfo], ids: &IdMap) -> Vec<(HostId, HealthOutcome)> {
    hosts
        .iter()
        .filter(|h| is_listed_host(h))
        .filter_map(|h| ids.host_id(&h.id).map(|id| (id, health_of(h))))
        .collect()
}

/// Maps a full listing (see the module tables).
pub fn map_inventory(
    zones: &[CsZone],
    pods: &[CsPod],
    clusters: &[ClusterInfo],
    hosts: &[HostInfo],
    ctx: &dyn MapContext,
    ids: &mut IdMap,
) -> MappedInventory {
    let mut inv = Inventory::default();
    let mut zone_enabled = HashMap::new();
    for z in zones {
        let id = ids.zone(&z.id);
        let enabled = allocation_enabled(&z.allocationstate);
        zone_enabled.insert(z.id.as_str(), enabled);
        inv.zones.push(Zone { id, enabled });
    }
    let mut pod_enabled = HashMap::new();
    for p in pods {
        let id = ids.pod(&p.id);
        let enabled = allocation_enabled(&p.allocationstate);
        pod_enabled.insert(p.id.as_str(), enabled);
        inv.pods.push(Pod {
            id,
            zone: ids.zone(&p.zoneid),
            enabled,
        });
    }
    let mut cluster_info: HashMap<&str, &ClusterInfo> = HashMap::new();
    for c in clusters.iter().filter(|c| is_kvm_cluster(c)) {
        cluster_info.insert(c.id.as_str(), c);
        inv.clusters.push(Cluster {
            id: ids.cluster(&c.id),
            pod: ids.pod(&c.podid),
            enabled: allocation_enabled(&c.allocationstate)
                && c.managedstate == Some(ManagedState::Managed),
            ha_enabled: ctx.partition_ha_enabled(c),
        });
    }
    let mut mapped = Vec::new();
    for h in hosts.iter().filter(|h| is_listed_host(h)) {
        let Some(cluster_uuid) = h.clusterid.as_deref() else {
            continue; // a Routing host always has a cluster; skip a broken record
        };
        let mut why = Vec::new();
        match cluster_info.get(cluster_uuid) {
            None => why.push(Ineligible::ClusterUnknown),
            Some(c) => {
                if zone_enabled.get(c.zoneid.as_str()) == Some(&false) {
                    why.push(Ineligible::ZoneDisabled);
                }
                if pod_enabled.get(c.podid.as_str()) == Some(&false) {
                    why.push(Ineligible::PodDisabled);
                }
                if !allocation_enabled(&c.allocationstate) {
                    why.push(Ineligible::ClusterDisabled);
                }
                if c.managedstate != Some(ManagedState::Managed) {
                    why.push(Ineligible::ClusterUnmanaged);
                }
                if !ctx.partition_ha_enabled(c) {
                    why.push(Ineligible::PartitionHaDisabled);
                }
            }
        }
        let rs = resource_state(h, ctx);
        if rs != ResourceState::Enabled {
            why.push(Ineligible::ResourceState(h.resourcestate.to_string()));
        }
        let cs_ha = h.hostha.as_ref().is_some_and(|ha| ha.haenable);
        if cs_ha {
            why.push(Ineligible::CloudStackHostHa);
        }
        let power = ctx.power_driver_configured(h);
        if !power {
            why.push(Ineligible::NoPowerDriver);
        }
        let id = ids.host(&h.id);
        let cluster = ids.cluster(cluster_uuid);
        inv.hosts.push(Host {
            id,
            cluster,
            resource_state: rs,
            oobm_enabled: power && !cs_ha,
            has_vms: ctx.has_vms(h),
            overrides: HostOverrides::default(),
        });
        mapped.push(HostMapping {
            id,
            uuid: h.id.clone(),
            name: h.name.clone(),
            ipaddress: h.ipaddress.clone(),
            cluster,
            ineligible: why,
            health: health_of(h),
            info: h.clone(),
        });
    }
    MappedInventory {
        inventory: inv,
        hosts: mapped,
    }
}

/// The changes that turn `old` into `new`: upserts of new or changed zones,
/// pods, clusters and hosts (a moved host is an upsert with its new
/// cluster), then removals of hosts, then of clusters. Zones and pods that
/// disappear need no change (the core has no removal for them; their
/// clusters are removed).
pub fn diff(old: &Inventory, new: &Inventory) -> Vec<InventoryChange> {
    let mut out = Vec::new();
    let old_zones: HashMap<_, _> = old.zones.iter().map(|z| (z.id, z)).collect();
    for z in &new.zones {
        if old_zones.get(&z.id) != Some(&z) {
            out.push(InventoryChange::UpsertZone(z.clone()));
        }
    }
    let old_pods: HashMap<_, _> = old.pods.iter().map(|p| (p.id, p)).collect();
    for p in &new.pods {
        if old_pods.get(&p.id) != Some(&p) {
            out.push(InventoryChange::UpsertPod(p.clone()));
        }
    }
    let old_clusters: HashMap<_, _> = old.clusters.iter().map(|c| (c.id, c)).collect();
    for c in &new.clusters {
        if old_clusters.get(&c.id) != Some(&c) {
            out.push(InventoryChange::UpsertCluster(c.clone()));
        }
    }
    let old_hosts: HashMap<_, _> = old.hosts.iter().map(|h| (h.id, h)).collect();
    for h in &new.hosts {
        if old_hosts.get(&h.id) != Some(&h) {
            out.push(InventoryChange::UpsertHost(h.clone()));
        }
    }
    let new_hosts: std::collections::HashSet<_> = new.hosts.iter().map(|h| h.id).collect();
    for h in &old.hosts {
        if !new_hosts.contains(&h.id) {
            out.push(InventoryChange::RemoveHost(h.id));
        }
    }
    let new_clusters: std::collections::HashSet<_> = new.clusters.iter().map(|c| c.id).collect();
    for c in &old.clusters {
        if !new_clusters.contains(&c.id) {
            out.push(InventoryChange::RemoveCluster(c.id));
        }
    }
    out
}
