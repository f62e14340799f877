//! One management node's `hactl-kvm run` with `quorum = "corosync"` on a `test_support::Cluster3`
//! node, for the coordinator-HA end-to-end tests: its configuration (the [`World`]'s peers), its
//! start inside the node's namespaces, its log, its replica file and its control socket.

use super::World;
use serde_json::Value;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use test_support::peers::wait_until;
use test_support::Cluster3;

/// Corosync `quorum_lease_ms` of the test daemons.
pub const LEASE_MS: u64 = 2000;
/// `takeover_grace_ms` of the test daemons.
pub const GRACE_MS: u64 = 4000;

/// Prints how far into the test a phase ended.
pub fn phase(t0: Instant, what: &str) {
    eprintln!("[{:>6.2} s] {what}", t0.elapsed().as_secs_f64());
}

/// Makes the World's API double and BMCs reachable on every node's loopback.
pub fn forward_peers(c: &Cluster3, w: &World, nodes: &[usize]) {
    for &n in nodes {
        c.forward_tcp(n, w.cs.addr().port());
        for h in &w.hosts {
            c.forward_udp(n, h.bmc.port());
        }
    }
}

/// The nodes whose daemon logged a fence since its offset in `offsets` (indexed by node - 1).
pub fn fenced_since(nodes: &[Node], offsets: &[usize]) -> Vec<usize> {
    nodes
        .iter()
        .filter(|n| n.count_since(offsets[n.n - 1], r#""event":"fence_issued""#) > 0)
        .map(|n| n.n)
        .collect()
}

/// Host `i` crashes; its BMC must show exactly one off and one on (waited for up to 60 s), and
/// only node `fencer` may have logged a fence since `offsets`.
pub fn crash_and_expect_one_fence_by(
    w: &mut World,
    i: usize,
    nodes: &[Node],
    offsets: &[usize],
    fencer: usize,
) {
    let name = w.hosts[i].name.clone();
    w.crash(i);
    let events = w.hosts[i].bmc.wait_for_events(2, Duration::from_secs(60));
    assert_eq!(
        events,
        vec![test_support::PowerEvent::Off, test_support::PowerEvent::On],
        "BMC of {name}; node{fencer}'s log:\n{}",
        nodes[fencer - 1].log()
    );
    assert_eq!(
        fenced_since(nodes, offsets),
        vec![fencer],
        "who fenced {name}"
    );
}

/// One management node's daemon.
pub struct Node {
    pub n: usize,
    /// Its directory (journal, socket, log) as the test sees it.
    pub dir: PathBuf,
    pub pid: Option<u32>,
}

impl Node {
    /// A daemon the test starts itself, its files in the test's directory.
    pub fn new(w: &World, n: usize) -> Node {
        Node::with_daemon_keys(w, n, "")
    }

    /// As [`Node::new`], with more `[daemon]` keys (`key = value` lines).
    pub fn with_daemon_keys(w: &World, n: usize, daemon_keys: &str) -> Node {
        let dir = w.dir.path().join(format!("node{n}"));
        Node::configured(w, n, dir.clone(), &dir.display().to_string(), daemon_keys)
    }

    /// A daemon in `dir` (on the host) that sees its directory as `seen_as` (inside the node).
    pub fn configured(w: &World, n: usize, dir: PathBuf, seen_as: &str, daemon_keys: &str) -> Node {
        fs::create_dir_all(&dir).unwrap();
        let cfg = format!(
            r#"
[daemon]
journal_dir = "{seen_as}/journal"
secrets_file = "{secrets}"
quorum = "corosync"
inventory_interval_ms = 1000
shutdown_timeout_ms = 10000
control_socket = "{seen_as}/control.sock"
control_group = "root"
metrics_listen = ""
{daemon_keys}
[events]
syslog_socket = ""
file = "{seen_as}/events.jsonl"
[cluster]
node_id = {n}
cluster_size = 3
group = "hactl-e2e"
quorum_lease_ms = {LEASE_MS}
poll_interval_ms = 200
takeover_grace_ms = {GRACE_MS}
propose_timeout_ms = 3000
{peers}"#,
            secrets = w.dir.path().join("secrets.toml").display(),
            peers = w.peers_config(),
        );
        fs::write(dir.join("hactl.toml"), cfg).unwrap();
        Node { n, dir, pid: None }
    }

    /// Starts `hactl-kvm run` inside node `n` (stopped by PID at the cluster's teardown).
    pub fn start(&mut self, c: &mut Cluster3) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .unwrap();
        let mut cmd = c.command(self.n, env!("CARGO_BIN_EXE_hactl-kvm"));
        cmd.arg("run")
            .arg("--config")
            .arg(self.dir.join("hactl.toml"))
            .env("HACTL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.pid = Some(c.spawn(self.n, cmd));
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn replica_path(&self) -> PathBuf {
        self.dir.join("journal/replica.journal")
    }

    pub fn replica(&self) -> Vec<u8> {
        fs::read(self.replica_path()).unwrap_or_default()
    }

    /// The replica file's entries, as JSON.
    pub fn entries(&self) -> Vec<Value> {
        hactl_journal::inspect::<Value>(self.replica_path())
            .expect("replica journal readable")
            .records
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    /// `hactl-kvm ARGS --json` against this node's socket: the answer, or the error.
    pub fn ask(&self, args: &[&str]) -> Result<Value, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
            .args(args)
            .args(["--json", "--socket"])
            .arg(self.dir.join("control.sock"))
            .stdin(Stdio::null())
            .output()
            .expect("hactl-kvm runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if v.get("ok").is_some() => Ok(v["ok"].clone()),
            Ok(v) => Err(v.to_string()),
            Err(_) => Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr))),
        }
    }

    /// `hactl-kvm role ACTION --json`.
    pub fn role(&self, action: &str) -> Result<Value, String> {
        self.ask(&["role", action])
    }

    /// Polls `role status` until `cond` holds; panics with the daemon's log after `limit`.
    pub fn wait_role(&self, what: &str, limit: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            if let Ok(v) = self.role("status") {
                if cond(&v) {
                    return v;
                }
            }
            assert!(
                t0.elapsed() < limit,
                "node{}: not {what} within {limit:?}: {:?}\nlog:\n{}",
                self.n,
                self.role("status"),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Promotes (retrying while the replica is still syncing) and waits until active; returns the
    /// fencing epoch.
    pub fn promote(&self) -> u64 {
        let t0 = Instant::now();
        while let Err(e) = self.role("promote") {
            eprintln!("node{}: promote refused (retrying): {e}", self.n);
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "node{}: promote refused for 20 s: {e}",
                self.n
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let v = self.wait_role("active", Duration::from_secs(20), |v| v["role"] == "active");
        v["epoch"].as_u64().unwrap()
    }

    /// Waits for `needle` in the log past `offset`; returns how long it took.
    pub fn wait_log(&self, offset: usize, needle: &str, limit: Duration) -> Duration {
        self.wait_log_any(offset, &[needle], limit)
    }

    /// Waits for any of `needles` in the log past `offset`; returns how long it took.
    pub fn wait_log_any(&self, offset: usize, needles: &[&str], limit: Duration) -> Duration {
        let t0 = Instant::now();
        let needle = needles.join(" | ");
        assert!(
            wait_until(limit, || self
                .log()
                .get(offset..)
                .is_some_and(|l| needles.iter().any(|n| l.contains(n)))),
            "node{}: no {needle:?} within {limit:?}; log:\n{}",
            self.n,
            self.log()
        );
        t0.elapsed()
    }

    /// Waits (30 s at most) until the log past `offset` holds at least `n` host transitions to
    /// AVAILABLE (the daemon drives the core).
    pub fn wait_available(&self, offset: usize, n: usize) {
        assert!(
            wait_until(Duration::from_secs(30), || self
                .count_since(offset, r#""to":"AVAILABLE""#)
                >= n),
            "node{}: fewer than {n} hosts AVAILABLE; log:\n{}",
            self.n,
            self.log()
        );
    }

    /// How many times the log past `offset` contains `needle`.
    pub fn count_since(&self, offset: usize, needle: &str) -> usize {
        self.log()
            .get(offset..)
            .map_or(0, |l| l.matches(needle).count())
    }
}
