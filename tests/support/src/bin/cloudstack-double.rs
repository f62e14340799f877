//! Runs the CloudStack API double standalone (for benchmarks): one zone, one
//! pod, `--clusters` clusters and `--hosts` KVM hosts spread over them, with
//! BMC addresses 127.0.0.1 and ports from `--bmc-base-port` up. Prints the
//! endpoint and keys, then serves until killed.
//!
//! `cloudstack-double [--hosts N] [--clusters N] [--bmc-base-port P]`
//!
//! Standard input takes commands, one per line: `state HOSTNAME STATE`
//! sets a host's agent state (e.g. `state kvm0000 Disconnected`), for the
//! daemon benchmark's crash.

use std::io::Write;
use test_support::cloudstack::{CloudStackDouble, DoubleHost};

fn main() {
    let mut hosts = 2000u32;
    let mut clusters = 20u32;
    let mut bmc_base_port = 20000u32;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> u32 {
            match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => v,
                None => {
                    eprintln!("cloudstack-double: {name} needs a number");
                    std::process::exit(2);
                }
            }
        };
        match a.as_str() {
            "--hosts" => hosts = value("--hosts"),
            "--clusters" => clusters = value("--clusters").max(1),
            "--bmc-base-port" => bmc_base_port = value("--bmc-base-port"),
            other => {
                eprintln!("cloudstack-double: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let cs = CloudStackDouble::start().unwrap_or_else(|e| {
        eprintln!("cloudstack-double: cannot start: {e}");
        std::process::exit(1);
    });
    let zone = cs.add_zone("zone1");
    let pod = cs.add_pod("pod1", &zone);
    let cluster_ids: Vec<String> = (0..clusters)
        .map(|c| cs.add_cluster(&format!("cluster{c}"), &pod))
        .collect();
    let mut by_name = std::collections::HashMap::new();
    for h in 0..hosts {
        let ip = format!("127.{}.{}.{}", 1 + h / 65536, (h / 256) % 256, h % 256);
        let mut host = DoubleHost::kvm(
            &format!("kvm{h:04}"),
            &ip,
            &cluster_ids[(h % clusters) as usize],
        );
        host.oobm_address = "127.0.0.1".into();
        host.oobm_port = (bmc_base_port + h).to_string();
        let name = host.name.clone();
        by_name.insert(name, cs.add_host(host));
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "endpoint={}", cs.endpoint());
    let _ = writeln!(out, "apikey={}", cs.api_key());
    let _ = writeln!(out, "secretkey={}", cs.secret_key());
    let _ = out.flush();
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["state", name, state] => match by_name.get(*name) {
                Some(uuid) => cs.update_host(uuid, |h| h.state = state.to_string()),
                None => eprintln!("cloudstack-double: no host {name:?}"),
            },
            [] => {}
            _ => eprintln!("cloudstack-double: unknown command {line:?}"),
        }
    }
    // Standard input closed: keep serving until killed.
    loop {
        std::thread::park();
    }
}
