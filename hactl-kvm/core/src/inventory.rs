//! The data-center inventory the core is told about: zones, pods, clusters
//! (the HA partitions) and hosts, with the flags that decide eligibility.

use crate::ids::{ClusterId, HostId, Millis, PodId, ZoneId};
use serde::{Deserialize, Serialize};

/// A zone and whether it is enabled (CloudStack `allocationstate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    /// Zone id.
    pub id: ZoneId,
    /// `allocationstate == Enabled`.
    pub enabled: bool,
}

/// A pod and whether it is enabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// Pod id.
    pub id: PodId,
    /// The zone containing the pod.
    pub zone: ZoneId,
    /// `allocationstate == Enabled`.
    pub enabled: bool,
}

/// A cluster, the HA partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Cluster id.
    pub id: ClusterId,
    /// The pod containing the cluster.
    pub pod: PodId,
    /// `allocationstate == Enabled` (and managed).
    pub enabled: bool,
    /// HA enabled for this partition by the administrator.
    pub ha_enabled: bool,
}

/// CloudStack's host resource state, reduced to what matters for HA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceState {
    /// Enabled: may take work and be protected.
    Enabled,
    /// Disabled by the administrator.
    Disabled,
    /// PrepareForMaintenance, Maintenance, ErrorInMaintenance: all count as
    /// maintenance, which makes a host INELIGIBLE.
    Maintenance,
    /// Error or Degraded (declared by the administrator): not eligible.
    Error,
}

/// Per-host overrides of global settings ("global with per-host override").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOverrides {
    /// Overrides [`crate::Config::power_op_timeout_ms`].
    #[serde(default)]
    pub power_op_timeout_ms: Option<Millis>,
    /// Overrides [`crate::Config::quiet_period_ms`].
    #[serde(default)]
    pub quiet_period_ms: Option<Millis>,
}

/// A KVM host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Host id.
    pub id: HostId,
    /// The cluster (HA partition) the host belongs to.
    pub cluster: ClusterId,
    /// Resource state (maintenance etc.).
    pub resource_state: ResourceState,
    /// Out-of-band management (BMC) configured and enabled: a host that
    /// cannot be fenced cannot be protected, so without it the host is
    /// INELIGIBLE.
    pub oobm_enabled: bool,
    /// The host runs at least one VM on shared storage. A host without VMs
    /// is still AVAILABLE (it can take HA VMs and check peers) but is never
    /// fenced: there is nothing to recover, and no VM activity to observe.
    pub has_vms: bool,
    /// Per-host overrides.
    #[serde(default)]
    pub overrides: HostOverrides,
}

/// The full inventory. Sending a snapshot replaces what the core knew:
/// objects not in the snapshot are removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Zones.
    pub zones: Vec<Zone>,
    /// Pods.
    pub pods: Vec<Pod>,
    /// Clusters.
    pub clusters: Vec<Cluster>,
    /// Hosts.
    pub hosts: Vec<Host>,
}

/// One incremental inventory change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryChange {
    /// Add or update a zone.
    UpsertZone(Zone),
    /// Add or update a pod.
    UpsertPod(Pod),
    /// Add or update a cluster (including its HA-enabled flag).
    UpsertCluster(Cluster),
    /// Add or update a host (maintenance, has-VMs, overrides ...).
    UpsertHost(Host),
    /// Remove a host from management.
    RemoveHost(HostId),
    /// Remove a cluster; its hosts are removed with it.
    RemoveCluster(ClusterId),
}
