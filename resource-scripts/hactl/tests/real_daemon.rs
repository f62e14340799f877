//! The agent driving the real `hactl-kvm run --standby` (standalone quorum)
//! against the CloudStack API double and an `ipmi_sim` BMC, as in
//! hactl-kvm/cli/tests/daemon_e2e.rs: `ocf-tester`, `crm_resource
//! --force-*`, and a single-node Pacemaker cluster running it as a
//! promotable clone. Ground truth: the daemon's role asked directly over its
//! socket, its process, and the BMC's power event log (nothing is fenced).

mod common;

use common::*;
use hactl_control::CoordinatorRole::{Active, Standby};
use kvm_host::heartbeat::{write_heartbeat, HeartbeatRecord};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use test_support::cloudstack::{CloudStackDouble, DoubleHost};
use test_support::IpmiSim;

const CORE: &str = r#"
[core]
health_check_interval_ms = 1000
health_check_timeout_ms = 800
power_poll_interval_ms = 2000
power_op_timeout_ms = 5000
activity_sample_window_ms = 3500
activity_check_timeout_ms = 6000
startup_grace_ms = 1000
min_available_hosts = 1
"#;

/// One daemon's world: API double with one healthy KVM host (BMC +
/// heartbeat), a configuration naming a private control socket.
struct World {
    f: Fixture,
    _cs: CloudStackDouble,
    bmc: IpmiSim,
    stop_writer: Arc<AtomicBool>,
}

impl World {
    fn new() -> World {
        let hactl_kvm = hactl_kvm_binary();
        let mut f = Fixture::new("");
        let d = f.dir.path().to_path_buf();
        std::fs::create_dir(d.join("storage")).unwrap();
        let cs = CloudStackDouble::start().expect("API double starts");
        let z = cs.add_zone("z1");
        let p = cs.add_pod("p1", &z);
        let c = cs.add_cluster("c1", &p);
        let bmc = IpmiSim::start();
        let mut h = DoubleHost::kvm("kvm1", "127.0.0.10", &c);
        h.oobm_address = "127.0.0.1".into();
        h.oobm_port = bmc.port().to_string();
        cs.add_host(h);
        let stop_writer = Arc::new(AtomicBool::new(false));
        {
            let (stop, storage) = (stop_writer.clone(), d.join("storage"));
            std::thread::spawn(move || {
                let mut counter = 0;
                while !stop.load(Ordering::SeqCst) {
                    counter += 1;
                    let rec = HeartbeatRecord {
                        format: 1,
                        host: "kvm1".into(),
                        counter,
                        incarnation: "test-kvm1".into(),
                        written_unix_ms: 0,
                        interval_secs: 1,
                    };
                    let _ = write_heartbeat(&storage, "KVMHA", false, &rec);
                    std::thread::sleep(Duration::from_millis(1000));
                }
            });
        }
        let secrets = d.join("secrets.toml");
        std::fs::write(
            &secrets,
            format!(
                "[cloudstack]\nsecret_key = \"{}\"\n[bmc]\npassword = \"secret\"\n",
                cs.secret_key()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(
            f.config(),
            format!(
                r#"
[daemon]
journal_dir = "{journal}"
secrets_file = "{secrets}"
control_socket = "{socket}"
metrics_listen = ""
inventory_interval_ms = 1000
shutdown_timeout_ms = 10000
[cloudstack]
url = "{url}"
api_key = "{key}"
request_timeout_ms = 2000
[activity]
mode = "local"
require_mount = false
read_timeout_ms = 1000
[activity.mounts]
primary = "{storage}"
[power]
username = "admin"
retransmit_ms = 2500
{CORE}"#,
                journal = d.join("journal").display(),
                secrets = secrets.display(),
                socket = f.socket().display(),
                url = cs.endpoint(),
                key = cs.api_key(),
                storage = d.join("storage").display(),
            ),
        )
        .unwrap();
        f.set("hactl_kvm", hactl_kvm.to_str().unwrap());
        World {
            f,
            _cs: cs,
            bmc,
            stop_writer,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.f.log_file()).unwrap_or_default()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_writer.store(true, Ordering::SeqCst);
    }
}

#[test]
fn real_daemon_start_promote_demote_stop() {
    let w = World::new();
    let f = &w.f;
    assert_eq!(f.action("validate-all", None, 30_000).rc, 0);
    let r = f.action("start", None, 30_000);
    assert_eq!(r.rc, 0, "{r:?}\n{}", w.log());
    let pid = f.daemon_pid().unwrap();
    let before = role_of(&f.socket()).expect("the daemon answers Role");
    assert_eq!(before.role, Standby, "run --standby starts a standby");
    assert_eq!(f.monitor().rc, 0);

    let p = f.action("promote", None, 30_000);
    assert_eq!(p.rc, 0, "{p:?}\n{}", w.log());
    let after = role_of(&f.socket()).unwrap();
    assert_eq!(after.role, Active);
    assert!(after.epoch >= before.epoch, "{before:?} -> {after:?}");
    assert_eq!(f.monitor().rc, 8);
    assert_eq!(
        f.action("promote", None, 30_000).rc,
        0,
        "promote is idempotent"
    );
    assert_eq!(
        role_of(&f.socket()).unwrap().epoch,
        after.epoch,
        "a second promote bumped the epoch"
    );

    let d = f.action("demote", None, 30_000);
    assert_eq!(d.rc, 0, "{d:?}\n{}", w.log());
    assert_eq!(role_of(&f.socket()).unwrap().role, Standby);
    assert_eq!(f.monitor().rc, 0);
    // A promotion after a demotion acts under a new fencing epoch.
    assert_eq!(f.action("promote", None, 30_000).rc, 0);
    let again = role_of(&f.socket()).unwrap();
    assert_eq!(again.role, Active);
    assert!(again.epoch > after.epoch, "{after:?} -> {again:?}");
    assert_eq!(f.action("demote", None, 30_000).rc, 0);
    assert_eq!(f.monitor().rc, 0);

    let s = f.action("stop", None, 30_000);
    assert_eq!(s.rc, 0, "{s:?}");
    // The figures the README quotes (printed, never asserted: timing is the
    // machine's, not the agent's contract).
    println!(
        "hactl agent with the real daemon: start {} ms, promote {} ms, demote {} ms, stop {} ms",
        r.took.as_millis(),
        p.took.as_millis(),
        d.took.as_millis(),
        s.took.as_millis()
    );
    assert!(!alive(pid));
    assert!(!f.socket().exists(), "the daemon left its socket behind");
    assert_eq!(f.monitor().rc, 7);
    // A healthy host was never fenced by any of this.
    assert!(
        w.bmc.events().is_empty(),
        "BMC events: {:?}",
        w.bmc.events()
    );
}

#[test]
fn ocf_tester_passes_against_the_real_daemon() {
    require("ocf-tester", "resource-agents");
    let w = World::new();
    let copy = bin_copy(AGENT, "hactl");
    // ocf-tester's default operation timeout (20 s) applies to every action.
    let out = test_support::ocf::ocf_tester(&copy.path, "hactl-real", &w.f.params, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("passed all tests"),
        "ocf-tester failed ({}):\n{stdout}\n{}\ndaemon log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        w.log()
    );
    assert!(
        !stdout.contains("does not support promotable clones"),
        "{stdout}"
    );
    assert!(!w.f.pid_file().exists());
    assert!(w.bmc.events().is_empty());
}

fn crm_resource(args: &[&str], options: &[(String, String)]) -> Run {
    let mut args = args.to_vec();
    args.extend(["--timeout", "30"]);
    test_support::ocf::crm_resource("hactl", &args, options)
}

/// Installs the agent as ocf:cloudstack:hactl for crm_resource and
/// Pacemaker (test install, removed on drop; a real install is refused).
fn installed() -> test_support::ocf::InstalledAgent {
    test_support::ocf::InstalledAgent::new(AGENT, "hactl")
}

/// crm_resource's force actions and then a Pacemaker promotable clone, one
/// after the other under the machine lock (both use the one install path).
#[test]
fn crm_resource_and_pacemaker_run_the_real_daemon() {
    let lock = test_support::MachineLock::acquire();
    let _installed = installed();
    let w = World::new();
    let f = &w.f;
    let options: Vec<(String, String)> = f.params.clone().into_iter().collect();

    assert_eq!(crm_resource(&["--force-check"], &options).rc, 7);
    let s = crm_resource(&["--force-start"], &options);
    assert_eq!(s.rc, 0, "{s:?}\n{}", w.log());
    assert_eq!(role_of(&f.socket()).unwrap().role, Standby);
    let p = crm_resource(&["--force-promote"], &options);
    assert_eq!(p.rc, 0, "{p:?}\n{}", w.log());
    assert_eq!(role_of(&f.socket()).unwrap().role, Active);
    assert_eq!(crm_resource(&["--force-check"], &options).rc, 8);
    let d = crm_resource(&["--force-demote"], &options);
    assert_eq!(d.rc, 0, "{d:?}");
    assert_eq!(role_of(&f.socket()).unwrap().role, Standby);
    assert_eq!(crm_resource(&["--force-check"], &options).rc, 0);
    let pid = f.daemon_pid().unwrap();
    assert_eq!(crm_resource(&["--force-stop"], &options).rc, 0);
    assert!(!alive(pid));
    assert_eq!(crm_resource(&["--force-check"], &options).rc, 7);

    // The same daemon configuration as a promotable clone.
    let cluster = test_support::Cluster::start_locked(lock);
    configure_promotable_clone(&cluster, &f.params, "op start timeout=30s op promote timeout=30s op monitor interval=2s role=Promoted timeout=10s op monitor interval=3s role=Unpromoted timeout=10s");
    let (ok, status) = cluster.wait_for_status(Duration::from_secs(90), |s| {
        s.contains("Promoted: [ node1 ]")
    });
    assert!(
        ok,
        "clone not promoted:\n{status}\n{}\ndaemon log:\n{}",
        cluster.pacemaker_log_tail(60),
        w.log()
    );
    let report = role_of(&f.socket()).expect("daemon answers");
    assert_eq!(report.role, Active);
    let pid = f.daemon_pid().unwrap();

    test_support::ocf::set_target_role(&cluster, "hactl-clone", "Stopped");
    assert!(
        wait_until(Duration::from_secs(60), || !alive(pid)
            && !f.pid_file().exists()),
        "daemon {pid} survived the cluster stop:\n{}",
        cluster.status()
    );
    assert!(
        w.bmc.events().is_empty(),
        "BMC events: {:?}",
        w.bmc.events()
    );
}
