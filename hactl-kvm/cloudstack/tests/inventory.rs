//! The inventory mapping: every state combination of the crate docs' tables,
//! id stability, changes, and the core's own verdict on the mapped hosts.

use cloudstack_api::inventory::{
    self, health_of, health_round, map_inventory, DefaultContext, IdMap, Ineligible, MapContext,
};
use cloudstack_api::{ClusterInfo, HostInfo, Pod, Zone};
use hactl_core::{
    Action, Config, Coordinator, HaState, HealthOutcome, Input, InventoryChange, PowerReading,
    ResourceState,
};
use serde_json::json;

fn zone(id: &str, alloc: &str) -> Zone {
    serde_json::from_value(json!({"id": id, "name": id, "allocationstate": alloc})).unwrap()
}
fn pod(id: &str, zone: &str, alloc: &str) -> Pod {
    serde_json::from_value(json!({"id": id, "name": id, "zoneid": zone, "allocationstate": alloc}))
        .unwrap()
}
fn cluster(id: &str, alloc: &str, managed: &str, hv: &str) -> ClusterInfo {
    serde_json::from_value(json!({"id": id, "name": id, "podid": "p1", "zoneid": "z1",
        "allocationstate": alloc, "managedstate": managed, "hypervisortype": hv}))
    .unwrap()
}
fn host(id: &str, cluster: &str, state: &str, rs: &str) -> HostInfo {
    serde_json::from_value(
        json!({"id": id, "name": id, "state": state, "resourcestate": rs,
        "clusterid": cluster, "podid": "p1", "zoneid": "z1", "ipaddress": "10.0.0.1",
        "type": "Routing", "hypervisor": "KVM",
        "outofbandmanagement": {"enabled": true, "address": "10.1.0.1", "port": "623",
            "driver": "ipmitool", "username": "admin", "powerstate": "On"},
        "hostha": {"haenable": false, "hastate": "Disabled"}}),
    )
    .unwrap()
}

fn one_cluster() -> (Vec<Zone>, Vec<Pod>, Vec<ClusterInfo>) {
    (
        vec![zone("z1", "Enabled")],
        vec![pod("p1", "z1", "Enabled")],
        vec![cluster("c1", "Enabled", "Managed", "KVM")],
    )
}

#[test]
fn resource_states() {
    let (z, p, c) = one_cluster();
    let table = [
        ("Enabled", ResourceState::Enabled),
        ("Disabled", ResourceState::Disabled),
        ("PrepareForMaintenance", ResourceState::Maintenance),
        ("ErrorInPrepareForMaintenance", ResourceState::Maintenance),
        ("Maintenance", ResourceState::Maintenance),
        ("ErrorInMaintenance", ResourceState::Maintenance),
        ("Error", ResourceState::Error),
        ("Degraded", ResourceState::Error),
        ("SomethingNew", ResourceState::Error),
    ];
    for (rs, want) in table {
        let mut ids = IdMap::default();
        let m = map_inventory(
            &z,
            &p,
            &c,
            &[host("h", "c1", "Up", rs)],
            &DefaultContext,
            &mut ids,
        );
        assert_eq!(m.inventory.hosts[0].resource_state, want, "{rs}");
        let flagged = m.hosts[0]
            .ineligible
            .contains(&Ineligible::ResourceState(rs.into()));
        assert_eq!(flagged, want != ResourceState::Enabled, "{rs}");
    }
    // Creating hosts are not hosts yet; Removed ones not any more.
    let mut ids = IdMap::default();
    let hosts = [
        host("a", "c1", "Creating", "Enabled"),
        host("b", "c1", "Removed", "Enabled"),
        host("c", "c1", "Up", "Creating"),
    ];
    let m = map_inventory(&z, &p, &c, &hosts, &DefaultContext, &mut ids);
    assert!(m.inventory.hosts.is_empty());
}

struct OursDegraded;
impl MapContext for OursDegraded {
    fn declared_degraded_by_us(&self, uuid: &str) -> bool {
        uuid == "ours"
    }
}

#[test]
fn degraded_by_us_keeps_the_flow_going() {
    let (z, p, c) = one_cluster();
    let hosts = [
        host("ours", "c1", "Disconnected", "Degraded"),
        host("theirs", "c1", "Disconnected", "Degraded"),
    ];
    let m = map_inventory(&z, &p, &c, &hosts, &OursDegraded, &mut IdMap::default());
    assert_eq!(m.inventory.hosts[0].resource_state, ResourceState::Enabled);
    assert!(m.hosts[0].ineligible.is_empty());
    assert_eq!(m.inventory.hosts[1].resource_state, ResourceState::Error);
}

#[test]
fn host_states_to_health() {
    let table = [
        ("Up", HealthOutcome::Passed),
        ("Connecting", HealthOutcome::Passed),
        ("Rebalancing", HealthOutcome::Passed),
        ("Alert", HealthOutcome::AgentUnreachable),
        ("Disconnected", HealthOutcome::AgentUnreachable),
        ("Down", HealthOutcome::AgentUnreachable),
        ("Error", HealthOutcome::AgentUnhealthy),
        ("Unknown", HealthOutcome::AgentUnhealthy),
        ("Whatever", HealthOutcome::AgentUnhealthy),
    ];
    for (state, want) in table {
        assert_eq!(
            health_of(&host("h", "c1", state, "Enabled")),
            want,
            "{state}"
        );
    }
    // One listHosts answer -> one outcome per known host; unknown and
    // removed hosts left out.
    let (z, p, c) = one_cluster();
    let mut ids = IdMap::default();
    map_inventory(
        &z,
        &p,
        &c,
        &[
            host("a", "c1", "Up", "Enabled"),
            host("b", "c1", "Up", "Enabled"),
        ],
        &DefaultContext,
        &mut ids,
    );
    let round = health_round(
        &[
            host("a", "c1", "Up", "Enabled"),
            host("b", "c1", "Alert", "Enabled"),
            host("new", "c1", "Up", "Enabled"),
        ],
        &ids,
    );
    assert_eq!(
        round,
        vec![
            (ids.host_id("a").unwrap(), HealthOutcome::Passed),
            (ids.host_id("b").unwrap(), HealthOutcome::AgentUnreachable)
        ]
    );
}

#[test]
fn cloudstack_host_ha_and_missing_power_make_ineligible() {
    let (z, p, c) = one_cluster();
    let mut ha = host("ha", "c1", "Up", "Enabled");
    ha.hostha.as_mut().unwrap().haenable = true;
    let mut no_oobm = host("no-oobm", "c1", "Up", "Enabled");
    no_oobm.outofbandmanagement.as_mut().unwrap().enabled = false;
    let mut no_addr = host("no-addr", "c1", "Up", "Enabled");
    no_addr.outofbandmanagement.as_mut().unwrap().address = None;
    let ok = host("ok", "c1", "Up", "Enabled");
    let m = map_inventory(
        &z,
        &p,
        &c,
        &[ha, no_oobm, no_addr, ok],
        &DefaultContext,
        &mut IdMap::default(),
    );
    assert_eq!(m.hosts[0].ineligible, vec![Ineligible::CloudStackHostHa]);
    assert!(!m.inventory.hosts[0].oobm_enabled);
    assert!(m.hosts[0].ineligible[0].to_string().contains("two fencers"));
    assert_eq!(m.hosts[1].ineligible, vec![Ineligible::NoPowerDriver]);
    assert_eq!(m.hosts[2].ineligible, vec![Ineligible::NoPowerDriver]);
    assert!(m.hosts[3].ineligible.is_empty());
    assert!(m.inventory.hosts[3].oobm_enabled);
}

#[test]
fn partitions_follow_allocation_and_managed_state() {
    let zones = vec![zone("z1", "Enabled"), zone("z2", "Disabled")];
    let pods = vec![pod("p1", "z1", "Enabled"), pod("p2", "z1", "Disabled")];
    let clusters = vec![
        cluster("ok", "Enabled", "Managed", "KVM"),
        cluster("off", "Disabled", "Managed", "KVM"),
        cluster("unmanaged", "Enabled", "Unmanaged", "KVM"),
        cluster("preparing", "Enabled", "PrepareUnmanaged", "KVM"),
        cluster("vmware", "Enabled", "Managed", "VMware"),
    ];
    let mut ids = IdMap::default();
    let hosts = [
        host("h-vmw", "vmware", "Up", "Enabled"),
        host("h-off", "off", "Up", "Enabled"),
    ];
    let m = map_inventory(&zones, &pods, &clusters, &hosts, &DefaultContext, &mut ids);
    let enabled: Vec<bool> = m.inventory.clusters.iter().map(|c| c.enabled).collect();
    assert_eq!(
        enabled,
        [true, false, false, false],
        "the VMware cluster is not ours"
    );
    assert_eq!(
        m.inventory
            .zones
            .iter()
            .map(|z| z.enabled)
            .collect::<Vec<_>>(),
        [true, false]
    );
    assert_eq!(
        m.inventory
            .pods
            .iter()
            .map(|p| p.enabled)
            .collect::<Vec<_>>(),
        [true, false]
    );
    assert_eq!(m.hosts[0].ineligible, vec![Ineligible::ClusterUnknown]);
    assert_eq!(m.hosts[1].ineligible, vec![Ineligible::ClusterDisabled]);
    // A cluster without managedstate is not acted on.
    let bare: ClusterInfo =
        serde_json::from_value(json!({"id": "x", "podid": "p1", "zoneid": "z1",
        "allocationstate": "Enabled"}))
        .unwrap();
    let m = map_inventory(&zones, &pods, &[bare], &[], &DefaultContext, &mut ids);
    assert!(!m.inventory.clusters[0].enabled);
    // HA off for a partition in our configuration.
    struct NoHa;
    impl MapContext for NoHa {
        fn partition_ha_enabled(&self, _: &ClusterInfo) -> bool {
            false
        }
    }
    let m = map_inventory(
        &zones,
        &pods,
        &clusters[..1],
        &[host("h", "ok", "Up", "Enabled")],
        &NoHa,
        &mut ids,
    );
    assert!(!m.inventory.clusters[0].ha_enabled);
    assert_eq!(m.hosts[0].ineligible, vec![Ineligible::PartitionHaDisabled]);
}

#[test]
fn ids_are_stable_and_never_reused() {
    let (z, p, mut c) = one_cluster();
    c.push(cluster("c2", "Enabled", "Managed", "KVM"));
    let mut ids = IdMap::default();
    let first = map_inventory(
        &z,
        &p,
        &c,
        &[
            host("a", "c1", "Up", "Enabled"),
            host("b", "c1", "Up", "Enabled"),
        ],
        &DefaultContext,
        &mut ids,
    );
    let saved = serde_json::to_string(&ids).unwrap();
    let mut restored: IdMap = serde_json::from_str(&saved).unwrap();
    // After a restart, b is gone and c is new; a keeps its id, c gets a fresh one.
    let second = map_inventory(
        &z,
        &p,
        &c,
        &[
            host("c", "c1", "Up", "Enabled"),
            host("a", "c2", "Up", "Enabled"),
        ],
        &DefaultContext,
        &mut restored,
    );
    let id_of =
        |m: &inventory::MappedInventory, u: &str| m.hosts.iter().find(|h| h.uuid == u).unwrap().id;
    assert_eq!(id_of(&first, "a"), id_of(&second, "a"));
    assert_ne!(id_of(&second, "c"), id_of(&first, "b"));
    assert_eq!(restored.host_uuid(id_of(&first, "b")), Some("b"));
    // The changes: c added, a moved, b removed.
    let changes = inventory::diff(&first.inventory, &second.inventory);
    let a = id_of(&first, "a");
    let c2 = restored.cluster("c2");
    assert!(changes
        .iter()
        .any(|ch| matches!(ch, InventoryChange::UpsertHost(h) if h.id == a && h.cluster == c2)));
    assert!(changes
        .iter()
        .any(|ch| matches!(ch, InventoryChange::UpsertHost(h) if h.id == id_of(&second, "c"))));
    assert!(changes.contains(&InventoryChange::RemoveHost(id_of(&first, "b"))));
    assert_eq!(changes.len(), 3, "{changes:?}");
    // Maintenance is an update; no change means no InventoryChange.
    assert!(inventory::diff(&second.inventory, &second.inventory).is_empty());
    let third = map_inventory(
        &z,
        &p,
        &c,
        &[
            host("c", "c1", "Up", "Maintenance"),
            host("a", "c2", "Up", "Enabled"),
        ],
        &DefaultContext,
        &mut restored,
    );
    let changes = inventory::diff(&second.inventory, &third.inventory);
    assert!(
        matches!(&changes[..], [InventoryChange::UpsertHost(h)] if h.resource_state == ResourceState::Maintenance)
    );
    // A cluster that disappears is removed.
    let fourth = map_inventory(
        &z,
        &p,
        &c[..1],
        &[host("c", "c1", "Up", "Enabled")],
        &DefaultContext,
        &mut restored,
    );
    assert!(inventory::diff(&third.inventory, &fourth.inventory)
        .contains(&InventoryChange::RemoveCluster(c2)));
}

/// The core itself judges the mapped hosts: the one with CloudStack's Host
/// HA on is INELIGIBLE, its neighbours are not.
#[test]
fn the_core_holds_a_cloudstack_ha_host_ineligible() {
    let (z, p, c) = one_cluster();
    let mut hosts: Vec<HostInfo> = (0..3)
        .map(|i| host(&format!("h{i}"), "c1", "Up", "Enabled"))
        .collect();
    hosts[0].hostha.as_mut().unwrap().haenable = true;
    let m = map_inventory(&z, &p, &c, &hosts, &DefaultContext, &mut IdMap::default());
    let mut core = Coordinator::new(Config::default(), 0).unwrap();
    let mut pending = core.handle(0, Input::QuorumChanged { quorate: true });
    pending.extend(core.handle(0, Input::Inventory(m.inventory.clone())));
    let mut now = 0;
    for _ in 0..20 {
        let mut inputs = Vec::new();
        for a in pending.drain(..) {
            match a {
                Action::ReadPower { op, .. } => inputs.push(Input::PowerReadResult {
                    op,
                    reading: PowerReading::On,
                }),
                Action::RunHealthCheck { op, .. } => inputs.push(Input::HealthResult {
                    op,
                    outcome: HealthOutcome::Passed,
                }),
                _ => {}
            }
        }
        for i in inputs {
            pending.extend(core.handle(now, i));
        }
        now += 5_000;
        pending.extend(core.handle(now, Input::Tick));
    }
    assert_eq!(core.host(m.hosts[0].id).unwrap().ha, HaState::Ineligible);
    for h in &m.hosts[1..] {
        assert_eq!(
            core.host(h.id).unwrap().ha,
            HaState::Available,
            "{}",
            h.uuid
        );
    }
}
