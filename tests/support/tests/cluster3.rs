//! The three-node namespace cluster itself: quorum follows isolation and healing, and teardown
//! (also after a panic) leaves no namespace, mount, directory or process behind.

use std::path::Path;
use std::time::{Duration, Instant};

use test_support::cluster3::NODES;
use test_support::{Cluster3, QuorumStatus};

fn leftovers(netns: &[String], base: &Path, pids: &[u32]) -> Vec<String> {
    let mut found = Vec::new();
    for ns in netns {
        if Path::new(&format!("/run/netns/{ns}")).exists() {
            found.push(format!("netns {ns}"));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let b = base.to_string_lossy();
    for l in mounts.lines() {
        if l.contains(b.as_ref()) {
            found.push(format!("mount {l}"));
        }
    }
    if base.exists() {
        found.push(format!("directory {}", base.display()));
    }
    for p in pids {
        if Path::new(&format!("/proc/{p}")).exists() {
            found.push(format!("process {p}"));
        }
    }
    found
}

fn corosync_pids(c: &Cluster3) -> Vec<u32> {
    NODES
        .iter()
        .filter_map(|&n| std::fs::read_to_string(c.node_dir(n).join("run/corosync.pid")).ok())
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn wait_quorum(c: &Cluster3, n: usize, want: QuorumStatus, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let got = c.quorum(n);
        if got.as_ref() == Some(&want) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "node{n}: expected {want:?} within {limit:?}, last {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn isolate_and_heal_move_quorum_and_down_leaves_nothing() {
    // What a test process killed outright would leave: a namespace and directory tagged with a
    // PID that cannot be alive (above pid_max). Starting a cluster removes them.
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stale = format!("hkt{}x0", pid_max + 1);
    let stale_dir = std::path::PathBuf::from(format!("/tmp/{stale}-cluster"));
    std::fs::create_dir_all(stale_dir.join("node1")).unwrap();
    let added = std::process::Command::new("ip")
        .args(["netns", "add", &format!("{stale}sw")])
        .status()
        .unwrap();
    assert!(added.success());

    let c = Cluster3::start();
    let left = leftovers(&[format!("{stale}sw")], &stale_dir, &[]);
    assert!(left.is_empty(), "stale cluster not removed: {left:?}");
    let netns = c.netns_names();
    let base = c.base_dir().to_path_buf();
    let pids = corosync_pids(&c);
    assert_eq!(pids.len(), 3, "each node has its own /run/corosync.pid");
    // The cluster's addresses exist only inside its namespaces, never in the root one.
    let addrs = std::process::Command::new("ip")
        .args(["-o", "addr"])
        .output()
        .unwrap();
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(
        !addrs.contains("10.99.0."),
        "root namespace has a cluster address: {addrs}"
    );
    let eth0 = c.exec(1, &["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(String::from_utf8_lossy(&eth0.stdout).contains("10.99.0.1/24"));
    let hostname = c.exec(2, &["hostname"]);
    assert_eq!(String::from_utf8_lossy(&hostname.stdout).trim(), "node2");

    c.isolate(3);
    let lost = wait_quorum(
        &c,
        3,
        QuorumStatus {
            quorate: false,
            nodes: 1,
        },
        Duration::from_secs(15),
    );
    for n in [1, 2] {
        wait_quorum(
            &c,
            n,
            QuorumStatus {
                quorate: true,
                nodes: 2,
            },
            Duration::from_secs(15),
        );
    }
    eprintln!("isolated node3 not quorate after {lost:?}");
    c.heal(3);
    for n in NODES {
        wait_quorum(
            &c,
            n,
            QuorumStatus {
                quorate: true,
                nodes: 3,
            },
            Duration::from_secs(15),
        );
    }
    c.down();
    let left = leftovers(&netns, &base, &pids);
    assert!(left.is_empty(), "teardown left: {left:?}");
}

#[test]
fn a_panicking_test_still_tears_the_cluster_down() {
    let seen = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let c = Cluster3::start();
        *seen.lock().unwrap() = Some((
            c.netns_names(),
            c.base_dir().to_path_buf(),
            corosync_pids(&c),
        ));
        panic!("a test failing while the cluster runs");
    }));
    assert!(r.is_err());
    let (netns, base, pids) = seen.into_inner().unwrap().expect("cluster started");
    let left = leftovers(&netns, &base, &pids);
    assert!(left.is_empty(), "teardown after panic left: {left:?}");
}
