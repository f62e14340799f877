//! The API double → client → mapping → the core: inventory changes made in
//! "CloudStack" (host added, removed, moved, put in maintenance, CloudStack
//! Host HA switched on) reach the core as `InventoryChange`s and the core's
//! own view follows.

use cloudstack_api::inventory::{
    diff, health_round, map_inventory, DefaultContext, IdMap, MappedInventory,
};
use cloudstack_api::{Client, ClientConfig, Credentials};
use hactl_core::{Action, Config, Coordinator, HaState, HealthOutcome, Input, PowerReading};
use test_support::cloudstack::{CloudStackDouble, DoubleHost};

async fn listing(c: &Client, ids: &mut IdMap) -> MappedInventory {
    let z = c.list_zones().await.unwrap();
    let p = c.list_pods().await.unwrap();
    let cl = c.list_clusters().await.unwrap();
    let h = c.list_kvm_hosts(None).await.unwrap();
    map_inventory(&z, &p, &cl, &h, &DefaultContext, ids)
}

/// Runs the core for 60 s of its time in 1 s steps, answering every power
/// read ON and every health check from `health` at once, so hosts settle.
fn settle(
    core: &mut Coordinator,
    mut pending: Vec<Action>,
    now: &mut u64,
    health: &dyn Fn(hactl_core::HostId) -> HealthOutcome,
) {
    for _ in 0..60 {
        loop {
            let inputs: Vec<Input> = pending
                .drain(..)
                .filter_map(|a| match a {
                    Action::ReadPower { op, .. } => Some(Input::PowerReadResult {
                        op,
                        reading: PowerReading::On,
                    }),
                    Action::RunHealthCheck { op, .. } => Some(Input::HealthResult {
                        op,
                        outcome: health(op.host),
                    }),
                    _ => None,
                })
                .collect();
            if inputs.is_empty() {
                break;
            }
            for i in inputs {
                pending.extend(core.handle(*now, i));
            }
        }
        *now += 1_000;
        pending.extend(core.handle(*now, Input::Tick));
    }
}

#[tokio::test]
async fn changes_in_cloudstack_reach_the_core() {
    let cs = CloudStackDouble::start().unwrap();
    let z = cs.add_zone("z");
    let p = cs.add_pod("p", &z);
    let c1 = cs.add_cluster("c1", &p);
    let c2 = cs.add_cluster("c2", &p);
    let h: Vec<String> = (0..9)
        .map(|i| {
            cs.add_host(DoubleHost::kvm(
                &format!("h{i}"),
                &format!("127.0.4.{i}"),
                if i < 6 { &c1 } else { &c2 },
            ))
        })
        .collect();
    let client = Client::new(ClientConfig::new(
        cs.endpoint(),
        Credentials::new(cs.api_key(), cs.secret_key()),
    ))
    .unwrap();
    let mut ids = IdMap::default();
    let first = listing(&client, &mut ids).await;
    let mut core = Coordinator::new(Config::default(), 0).unwrap();
    let mut now = 0;
    let mut pending = core.handle(now, Input::QuorumChanged { quorate: true });
    pending.extend(core.handle(now, Input::Inventory(first.inventory.clone())));
    settle(&mut core, pending, &mut now, &|_| HealthOutcome::Passed);
    for x in &first.hosts {
        assert_eq!(
            core.host(x.id).unwrap().ha,
            HaState::Available,
            "{}",
            x.name
        );
    }

    // Changes in CloudStack.
    let added = cs.add_host(DoubleHost::kvm("h6", "127.0.4.6", &c2));
    cs.remove_host(&h[0]);
    cs.move_host(&h[1], &c2);
    cs.update_host(&h[2], |x| x.resourcestate = "PrepareForMaintenance".into());
    cs.update_host(&h[3], |x| x.ha_enable = true);
    let second = listing(&client, &mut ids).await;
    let changes = diff(&first.inventory, &second.inventory);
    assert_eq!(changes.len(), 5, "{changes:?}");
    let mut pending = Vec::new();
    for ch in changes {
        pending.extend(core.handle(now, Input::InventoryChange(ch)));
    }
    settle(&mut core, pending, &mut now, &|_| HealthOutcome::Passed);
    let id = |u: &str| ids.host_id(u).unwrap();
    assert!(core.host(id(&h[0])).is_none(), "removed");
    assert_eq!(
        core.host(id(&h[1])).unwrap().cluster,
        ids.clone().cluster(&c2),
        "moved"
    );
    assert_eq!(
        core.host(id(&h[2])).unwrap().ha,
        HaState::Ineligible,
        "maintenance"
    );
    assert_eq!(
        core.host(id(&h[3])).unwrap().ha,
        HaState::Ineligible,
        "CloudStack Host HA"
    );
    assert_eq!(core.host(id(&h[4])).unwrap().ha, HaState::Available);
    // The added host is known to the core in its partition, and protected
    // like the hosts that were there: added to or moved into an
    // already-ACTIVE partition, it becomes AVAILABLE.
    assert_eq!(
        core.host(id(&added)).unwrap().cluster,
        ids.clone().cluster(&c2),
        "added"
    );
    assert_eq!(
        core.host(id(&added)).unwrap().ha,
        HaState::Available,
        "added"
    );
    assert_eq!(
        core.host(id(&h[1])).unwrap().ha,
        HaState::Available,
        "moved"
    );

    // One listHosts per cluster round feeds health; an agent in Alert is
    // no longer Available.
    cs.update_host(&h[6], |x| x.state = "Alert".into());
    let mut outcomes = std::collections::HashMap::new();
    for c in [&c1, &c2] {
        for (hid, o) in health_round(&client.list_kvm_hosts(Some(c)).await.unwrap(), &ids) {
            outcomes.insert(hid, o);
        }
    }
    assert_eq!(outcomes[&id(&h[6])], HealthOutcome::AgentUnreachable);
    settle(&mut core, Vec::new(), &mut now, &|host| {
        outcomes
            .get(&host)
            .copied()
            .unwrap_or(HealthOutcome::Passed)
    });
    assert_ne!(core.host(id(&h[6])).unwrap().ha, HaState::Available);
    assert_eq!(core.host(id(&h[7])).unwrap().ha, HaState::Available);
}
