//! The agent as Pacemaker runs it: installed as `ocf:cloudstack:hactl`,
//! driven by `crm_resource --force-*` without a cluster, and as a
//! promotable clone in a real single-node Pacemaker cluster on loopback
//! (tests/support, under the MachineLock) that must promote it from the
//! promotion score the agent sets, demote it and stop it.
//!
//! The daemon is the control double here (the real daemon's roles are
//! tested in real_daemon.rs once `hactl-kvm run --standby` exists).

mod common;

use common::*;
use hactl_control::CoordinatorRole::{Active, Standby};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;
use test_support::ocf;

/// Both tests use the one install path: one at a time.
static INSTALL_LOCK: Mutex<()> = Mutex::new(());

/// Installs the built agent as `ocf:cloudstack:hactl` (removed on drop).
fn installed() -> ocf::InstalledAgent {
    ocf::InstalledAgent::new(AGENT, "hactl")
}

fn crm_resource(args: &[&str], options: &[(String, String)]) -> Run {
    ocf::crm_resource("hactl", args, options)
}

#[test]
fn crm_resource_force_actions_without_a_cluster() {
    let _serial = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let _installed = installed();
    let f = Fixture::new("");
    let options: Vec<(String, String)> = f.params.clone().into_iter().collect();

    let meta = Command::new(require("crm_resource", "pacemaker-cli-utils"))
        .args(["--show-metadata", "ocf:cloudstack:hactl"])
        .output()
        .unwrap();
    assert!(meta.status.success());
    assert!(String::from_utf8_lossy(&meta.stdout).contains("<action name=\"promote\""));

    assert_eq!(crm_resource(&["--validate"], &options).rc, 0);
    assert_eq!(crm_resource(&["--force-check"], &options).rc, 7);
    let start = crm_resource(&["--force-start"], &options);
    assert_eq!(start.rc, 0, "{start:?}");
    let pid = f.daemon_pid().expect("PID file");
    assert_eq!(role_of(&f.socket()).unwrap().role, Standby);
    assert_eq!(crm_resource(&["--force-check"], &options).rc, 0);

    let p = crm_resource(&["--force-promote"], &options);
    assert_eq!(p.rc, 0, "{p:?}");
    assert_eq!(role_of(&f.socket()).unwrap().role, Active);
    let c = crm_resource(&["--force-check"], &options);
    assert_eq!(c.rc, 8, "{c:?}");
    assert!(c.stdout.contains("promoted"), "{c:?}");

    let d = crm_resource(&["--force-demote"], &options);
    assert_eq!(d.rc, 0, "{d:?}");
    assert_eq!(role_of(&f.socket()).unwrap().role, Standby);
    assert_eq!(crm_resource(&["--force-check"], &options).rc, 0);

    let s = crm_resource(&["--force-stop"], &options);
    assert_eq!(s.rc, 0, "{s:?}");
    assert!(!alive(pid));
    assert!(!f.pid_file().exists());
    assert_eq!(crm_resource(&["--force-check"], &options).rc, 7);
    assert_eq!(crm_resource(&["--force-stop"], &options).rc, 0);
    assert_eq!(f.set_role_requests(), ["SetRole Active", "SetRole Standby"]);

    let mut bad = options.clone();
    bad.retain(|(k, _)| k != "config");
    let v = crm_resource(&["--validate"], &bad);
    assert_eq!(v.rc, 6, "{v:?}");
    assert!(
        format!("{}{}", v.stdout, v.stderr).contains("config: required parameter not set"),
        "{v:?}"
    );
}

/// This node's promotion score for `rsc` as the CIB's status section holds it.
fn promotion_score(cluster: &test_support::Cluster, rsc: &str) -> Option<String> {
    let out = cluster.run("cibadmin", &["--query", "--scope", "status"]);
    let xml = String::from_utf8_lossy(&out.stdout);
    let needle = format!("name=\"master-{rsc}\" value=\"");
    let start = xml.find(&needle)? + needle.len();
    Some(xml[start..].split('"').next()?.to_string())
}

#[test]
fn pacemaker_promotes_the_clone_from_its_score_demotes_and_stops_it() {
    let _serial = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let _installed = installed();
    let cluster = test_support::Cluster::start();
    let f = Fixture::new("promotion_score = 17");

    // The README's configuration: stop everything without quorum.
    configure_promotable_clone(
        &cluster,
        &f.params,
        "op monitor interval=2s role=Promoted timeout=10s \
         op monitor interval=3s role=Unpromoted timeout=10s",
    );

    let promoted = |s: &str| s.contains("Promoted: [ node1 ]");
    let (ok, status) = cluster.wait_for_status(Duration::from_secs(90), promoted);
    assert!(
        ok,
        "clone not promoted:\n{status}\n{}",
        cluster.pacemaker_log_tail(60)
    );
    // Ground truth: the daemon is active, and the score the agent set from
    // its RoleReport is in the CIB.
    assert_eq!(role_of(&f.socket()).expect("daemon answers").role, Active);
    assert_eq!(promotion_score(&cluster, "hactl").as_deref(), Some("17"));
    let pid = f.daemon_pid().expect("PID file");

    // Demote through the cluster.
    test_support::ocf::set_target_role(&cluster, "hactl-clone", "Unpromoted");
    let (ok, status) = cluster.wait_for_status(Duration::from_secs(60), |s| {
        s.contains("Unpromoted: [ node1 ]") || s.contains("Unpromoted (target-role): [ node1 ]")
    });
    assert!(
        ok,
        "clone not demoted:\n{status}\n{}",
        cluster.pacemaker_log_tail(60)
    );
    assert!(wait_until(Duration::from_secs(10), || role_of(&f.socket())
        .map(|r| r.role)
        == Some(Standby)));
    assert_eq!(f.daemon_pid(), Some(pid), "demote restarted the daemon");

    // Stop through the cluster: daemon gone, score removed.
    test_support::ocf::set_target_role(&cluster, "hactl-clone", "Stopped");
    let gone = wait_until(Duration::from_secs(60), || {
        !alive(pid) && !f.pid_file().exists()
    });
    assert!(
        gone,
        "daemon {pid} survived the cluster stop:\n{}",
        cluster.status()
    );
    assert!(
        wait_until(Duration::from_secs(10), || promotion_score(
            &cluster, "hactl"
        )
        .is_none()),
        "promotion score left after stop"
    );
    let requests = f.set_role_requests();
    assert_eq!(
        requests.first().map(String::as_str),
        Some("SetRole Active"),
        "{requests:?}"
    );
    assert!(
        requests.contains(&"SetRole Standby".to_string()),
        "{requests:?}"
    );
}
