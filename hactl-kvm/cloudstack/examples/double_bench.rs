//! Benchmark of one coordinator polling cycle against the CloudStack API
//! double with 2,000 KVM hosts in 20 clusters: the full inventory listing
//! (zones, pods, clusters, hosts, mapped onto the core) and a health round
//! (one `listHosts clusterid=...` per cluster, mapped to outcomes).
//!
//! `cargo run --release -p cloudstack-api --example double_bench -- [hosts] [clusters] [rounds]`

use cloudstack_api::inventory::{health_round, map_inventory, DefaultContext, IdMap};
use cloudstack_api::{Client, ClientConfig, Credentials};
use std::time::{Duration, Instant};
use test_support::cloudstack::{CloudStackDouble, DoubleHost};

fn cpu_time() -> Duration {
    // utime + stime of this process (the double runs in it too).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ = 100 on Linux
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let hosts = *args.first().unwrap_or(&2000);
    let clusters = *args.get(1).unwrap_or(&20);
    let rounds = *args.get(2).unwrap_or(&20);
    let cs = CloudStackDouble::start().expect("double starts");
    let zone = cs.add_zone("zone1");
    let pod = cs.add_pod("pod1", &zone);
    let cids: Vec<String> = (0..clusters)
        .map(|c| cs.add_cluster(&format!("c{c}"), &pod))
        .collect();
    for h in 0..hosts {
        let ip = format!("127.1.{}.{}", h / 256, h % 256);
        cs.add_host(DoubleHost::kvm(
            &format!("kvm{h}"),
            &ip,
            &cids[(h % clusters) as usize],
        ));
    }
    let client = Client::new(ClientConfig::new(
        cs.endpoint(),
        Credentials::new(cs.api_key(), cs.secret_key()),
    ))
    .unwrap();
    let mut ids = IdMap::default();

    let (t0, c0) = (Instant::now(), cpu_time());
    let mut mapped_hosts = 0;
    for _ in 0..rounds {
        let z = client.list_zones().await.unwrap();
        let p = client.list_pods().await.unwrap();
        let c = client.list_clusters().await.unwrap();
        let h = client.list_kvm_hosts(None).await.unwrap();
        mapped_hosts = map_inventory(&z, &p, &c, &h, &DefaultContext, &mut ids)
            .hosts
            .len();
    }
    let (inv_wall, inv_cpu) = (t0.elapsed() / rounds, (cpu_time() - c0) / rounds);

    let (t0, c0) = (Instant::now(), cpu_time());
    let mut outcomes = 0;
    for _ in 0..rounds {
        outcomes = 0;
        for cid in &cids {
            let h = client.list_kvm_hosts(Some(cid)).await.unwrap();
            outcomes += health_round(&h, &ids).len();
        }
    }
    let (health_wall, health_cpu) = (t0.elapsed() / rounds, (cpu_time() - c0) / rounds);

    println!("hosts={hosts} clusters={clusters} rounds={rounds} mapped={mapped_hosts} outcomes={outcomes}");
    println!("inventory listing: wall {inv_wall:?} cpu {inv_cpu:?} per round (client + double in one process)");
    println!(
        "health round ({clusters} listHosts): wall {health_wall:?} cpu {health_cpu:?} per round"
    );
    println!("peak RSS {} MiB (client + double)", peak_rss_kib() / 1024);
    assert_eq!(mapped_hosts as u32, hosts);
    assert_eq!(outcomes as u32, hosts);
}
