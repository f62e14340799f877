//! The agent as Pacemaker runs it: installed as `ocf:cloudstack:kvm-host`,
//! driven by `crm_resource --force-*` without a cluster, and as a resource of
//! a real single-node Pacemaker cluster on loopback that must notice a
//! killed heartbeat writer and restart it.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;
use test_support::ocf;

/// Both tests use the one install path: one at a time.
static INSTALL_LOCK: Mutex<()> = Mutex::new(());

/// Installs the built agent as `ocf:cloudstack:kvm-host` (removed on drop).
fn installed() -> ocf::InstalledAgent {
    ocf::InstalledAgent::new(AGENT, "kvm-host")
}

fn crm_resource(args: &[&str], options: &[(String, String)]) -> Run {
    ocf::crm_resource("kvm-host", args, options)
}

#[test]
fn crm_resource_force_actions_without_a_cluster() {
    let _serial = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let _installed = installed();
    let f = Fixture::new(1);
    let options: Vec<(String, String)> = f.params.clone().into_iter().collect();
    // crm_resource names the instance "test".
    let pid_file = f.state_dir().join("kvm-host-test.pid");
    let hb = f.heartbeat_file(0, "node-a");

    let meta = Command::new(require("crm_resource", "pacemaker-cli-utils"))
        .args(["--show-metadata", "ocf:cloudstack:kvm-host"])
        .output()
        .unwrap();
    assert!(meta.status.success());
    assert!(
        String::from_utf8_lossy(&meta.stdout).contains("<parameter name=\"heartbeat_interval\"")
    );

    let v = crm_resource(&["--validate"], &options);
    assert_eq!(v.rc, 0, "{v:?}");
    let check = crm_resource(&["--force-check"], &options);
    assert_eq!(check.rc, 7, "{check:?}");

    let start = crm_resource(&["--force-start"], &options);
    assert_eq!(start.rc, 0, "{start:?}");
    assert!(pid_file.exists());
    let c1 = counter(&hb).expect("heartbeat after start");
    for level in ["--force-check=0", "--force-check=20"] {
        let r = crm_resource(&[level], &options);
        assert_eq!(r.rc, 0, "{level}: {r:?}");
    }
    assert!(wait_until(Duration::from_secs(5), || counter(&hb)
        .unwrap_or(0)
        > c1));

    // A depth-10 failure through crm_resource shows the exit reason.
    let mut broken = options.clone();
    broken.retain(|(k, _)| k != "libvirt_check");
    broken.push(("libvirt_check".into(), "true".into()));
    broken.push(("virsh_binary".into(), "/bin/false".into()));
    let r = crm_resource(&["--force-check=10"], &broken);
    assert_eq!(r.rc, 1, "{r:?}");
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("libvirt (qemu:///system) does not answer"),
        "{r:?}"
    );

    let stop = crm_resource(&["--force-stop"], &options);
    assert_eq!(stop.rc, 0, "{stop:?}");
    assert!(!pid_file.exists());
    assert_eq!(crm_resource(&["--force-check"], &options).rc, 7);
    assert_eq!(crm_resource(&["--force-stop"], &options).rc, 0);

    let mut bad = options.clone();
    bad.retain(|(k, _)| k != "storage");
    let v = crm_resource(&["--validate"], &bad);
    assert_eq!(v.rc, 6, "{v:?}");
    assert!(
        format!("{}{}", v.stdout, v.stderr).contains("storage: required parameter not set"),
        "{v:?}"
    );
}

fn state_pid(state_dir: &Path, instance: &str) -> Option<i32> {
    std::fs::read_to_string(state_dir.join(format!("kvm-host-{instance}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn pacemaker_runs_the_agent_and_restarts_a_killed_writer() {
    let _serial = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let _installed = installed();
    let cluster = test_support::Cluster::start();
    let f = Fixture::new(1);
    let node = cluster.node_name();
    let state_dir: PathBuf = f.state_dir();
    let hb = f.heartbeat_file(0, node);

    let primitive = ocf::primitive_args(
        "hostha",
        "ocf:cloudstack:kvm-host",
        // host_id defaults to the node name
        f.params.iter().filter(|(k, _)| *k != "host_id"),
        "op monitor interval=2s timeout=10s OCF_CHECK_LEVEL=20",
    );
    let args: Vec<&str> = primitive.iter().map(String::as_str).collect();
    cluster.crm_configure(&args);

    let cib = cluster.run("cibadmin", &["--query", "--scope", "resources"]);
    let cib = String::from_utf8_lossy(&cib.stdout);
    assert!(
        cib.contains("name=\"OCF_CHECK_LEVEL\" value=\"20\""),
        "the monitor op does not carry OCF_CHECK_LEVEL=20:\n{cib}"
    );
    let started = |s: &str| s.contains("ocf:cloudstack:kvm-host") && s.contains("Started node1");
    let (ok, status) = cluster.wait_for_status(Duration::from_secs(60), started);
    assert!(
        ok,
        "resource not started:\n{status}\n{}",
        cluster.pacemaker_log_tail(40)
    );
    let first_pid = state_pid(&state_dir, "hostha").expect("writer PID file");
    assert!(alive(first_pid));
    let c1 = counter(&hb).expect("heartbeat written under the node name");
    assert!(wait_until(Duration::from_secs(5), || counter(&hb)
        .unwrap_or(0)
        > c1));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    let reason = format!("heartbeat writer (pid {first_pid}) is not running");
    let (ok, status) = cluster.wait_for_status(Duration::from_secs(60), |s| {
        s.contains(&reason)
            && started(s)
            && state_pid(&state_dir, "hostha")
                .map(|p| p != first_pid && alive(p))
                .unwrap_or(false)
    });
    assert!(
        ok,
        "killed writer not detected and restarted:\n{status}\n{}",
        cluster.pacemaker_log_tail(60)
    );
    let second_pid = state_pid(&state_dir, "hostha").unwrap();
    let c2 = counter(&hb).unwrap();
    assert!(wait_until(Duration::from_secs(5), || counter(&hb)
        .unwrap_or(0)
        > c2));

    // Stop through the cluster; the writer must be gone afterwards.
    cluster.crm_configure(&["property", "stop-all-resources=true"]);
    let gone = wait_until(Duration::from_secs(60), || {
        !alive(second_pid) && state_pid(&state_dir, "hostha").is_none()
    });
    assert!(
        gone,
        "writer {second_pid} survived the cluster stop:\n{}",
        cluster.status()
    );
}
