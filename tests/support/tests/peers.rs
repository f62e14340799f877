//! The test-support crate's own checks: the peers start, answer, record events and stop.

use std::process::Command;
use std::time::Duration;

use test_support::{require, Cluster, IpmiSim, PowerEvent};

fn ipmitool(sim: &IpmiSim, host: &str, args: &[&str]) -> std::process::Output {
    let ipmitool = require("ipmitool", "ipmitool");
    let port = sim.port().to_string();
    // The password goes through the environment (-E), never argv.
    Command::new(ipmitool)
        .args([
            "-I", "lanplus", "-C", "3", "-H", host, "-p", &port, "-U", "admin", "-E",
        ])
        .args(args)
        .env("IPMI_PASSWORD", "secret")
        .output()
        .expect("run ipmitool")
}

#[test]
fn ipmi_sim_serves_ipv4_and_ipv6_and_records_power_events() {
    let sim = IpmiSim::start();
    let out = ipmitool(&sim, "127.0.0.1", &["chassis", "power", "status"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Chassis Power is on",
        "{out:?}"
    );
    let out = ipmitool(&sim, "::1", &["chassis", "power", "off"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!sim.power_is_on());
    assert_eq!(sim.events(), vec![PowerEvent::Off]);
    let out = ipmitool(&sim, "::1", &["chassis", "power", "status"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Chassis Power is off",
        "{out:?}"
    );
    sim.clear_events();
    sim.set_power(true);
    assert!(sim.power_is_on());
    assert!(sim.events().is_empty());
}

#[test]
fn ipmi_sim_hang_mode_silences_the_bmc_until_released() {
    let sim = IpmiSim::builder().power_on(false).start();
    sim.set_chassis_hangs(true);
    let ipmitool = require("ipmitool", "ipmitool");
    let port = sim.port().to_string();
    let started = std::time::Instant::now();
    let out = Command::new("timeout")
        .args(["8", ipmitool.to_str().unwrap()])
        .args([
            "-I",
            "lanplus",
            "-C",
            "3",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "admin",
            "-E",
        ])
        .args(["-N", "1", "-R", "2", "chassis", "power", "on"])
        .env("IPMI_PASSWORD", "secret")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a hung chassis control must not succeed: {out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(9));
    assert!(sim.events().is_empty());
    sim.set_chassis_hangs(false);
}

#[test]
fn pacemaker_single_node_cluster_comes_online_and_stops() {
    let cluster = Cluster::start();
    let status = cluster.status();
    assert!(status.contains("Online: [ node1 ]"), "{status}");
    let out = cluster.run(
        "crm_attribute",
        &["--type", "crm_config", "--name", "dc-deadtime", "--query"],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("value=2s"),
        "{out:?}"
    );
}

#[test]
fn ipmi_sim_can_ignore_power_requests() {
    let sim = IpmiSim::start();
    sim.set_ignores_power_changes(true);
    let out = ipmitool(&sim, "127.0.0.1", &["chassis", "power", "off"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        sim.power_is_on(),
        "the host must not follow an ignored power-off"
    );
    assert_eq!(sim.events(), vec![PowerEvent::Off]);
    sim.set_ignores_power_changes(false);
    sim.set_ignores_power_on(true);
    assert!(ipmitool(&sim, "127.0.0.1", &["chassis", "power", "off"])
        .status
        .success());
    assert!(!sim.power_is_on());
    assert!(ipmitool(&sim, "127.0.0.1", &["chassis", "power", "on"])
        .status
        .success());
    assert!(!sim.power_is_on(), "power-on is ignored in this mode");
    assert_eq!(
        sim.events(),
        vec![PowerEvent::Off, PowerEvent::Off, PowerEvent::On]
    );
}

#[test]
fn ipmi_sim_with_a_bmc_key_refuses_sessions_without_it() {
    let sim = IpmiSim::builder()
        .bmc_key("00112233445566778899aabbccddeeff")
        .start();
    assert!(std::fs::read_to_string(sim.dir().join("lan.conf"))
        .unwrap()
        .contains("bmc_key 00112233445566778899aabbccddeeff"));
    let out = ipmitool(&sim, "127.0.0.1", &["chassis", "power", "status"]);
    assert!(
        !out.status.success(),
        "a session without the Kg must fail: {out:?}"
    );
}
