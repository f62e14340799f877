//! A real single-node Pacemaker + Corosync cluster on loopback, for tests.
//!
//! Only one cluster fits on a machine (`/var/lib/pacemaker/cib` and the IPC names are global), so
//! [`Cluster::start`] first takes an exclusive `flock` that every test process shares: tests that
//! need the cluster run one after another, whichever test binary they are in, while all other
//! tests go on in parallel.
//!
//! The CIB is seeded fresh on every start with `dc-deadtime=2s` (the node is DC in about 4 s instead
//! of 20 s) and `stonith-enabled=false`; tests add what they need with `crm configure` or
//! `cibadmin`. Stopping is by PID, pacemakerd first (it stops its daemons), then corosync.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{chown, Group, User};

use crate::peers::{require, terminate, wait_until};

/// The lock every test process takes before it starts a cluster.
const LOCK_FILE: &str = "/tmp/hactl-kvm-tests-pacemaker.lock";
/// Pacemaker's CIB directory (fixed by the Debian build).
const CIB_DIR: &str = "/var/lib/pacemaker/cib";
/// The node's name in corosync.conf.
pub const NODE_NAME: &str = "node1";

/// The machine-wide lock shared by every test that needs the machine's single cluster slot (this
/// single-node cluster and the three-node [`crate::Cluster3`] alike) or
/// changes what is installed on the machine (the installed-package tests hold it from install to
/// removal, so no cluster test ever sees a half-installed package). Released when dropped.
pub struct MachineLock(#[allow(dead_code)] Flock<File>);

impl MachineLock {
    /// Waits until no other test process holds the lock, then takes it.
    pub fn acquire() -> MachineLock {
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_FILE)
            .unwrap_or_else(|e| panic!("cannot open {LOCK_FILE}: {e}"));
        let lock = Flock::lock(lock_file, FlockArg::LockExclusive)
            .unwrap_or_else(|(_, e)| panic!("cannot lock {LOCK_FILE}: {e}"));
        MachineLock(lock)
    }
}

/// A running single-node cluster. Dropping it stops the cluster and releases the lock.
pub struct Cluster {
    pacemakerd: Option<Child>,
    corosync: Option<Child>,
    dir: tempfile::TempDir,
    lock: Option<MachineLock>,
}

impl Cluster {
    /// Takes the machine-wide cluster lock (waiting for other tests), starts corosync and
    /// pacemakerd, and waits until `node1` is online and DC. Panics with a clear message when a peer
    /// is missing, a cluster we did not start is already running, or start-up fails.
    pub fn start() -> Cluster {
        // Name a missing peer before waiting for the lock.
        require("corosync", "corosync");
        require("pacemakerd", "pacemaker");
        Cluster::start_locked(MachineLock::acquire())
    }

    /// As [`Cluster::start`], under a [`MachineLock`] the caller already holds.
    pub fn start_locked(lock: MachineLock) -> Cluster {
        let corosync_bin = require("corosync", "corosync");
        let pacemakerd_bin = require("pacemakerd", "pacemaker");
        require("crm_mon", "pacemaker-cli-utils");
        // A three-node cluster left by a killed test would look like a foreign corosync.
        crate::cluster3::remove_stale_clusters();

        if let Some(pid) = running_process(&["pacemakerd", "corosync"]) {
            panic!(
                "a Pacemaker/Corosync process (PID {pid}) that this test did not start is already \
                 running; the tests need the machine's single cluster slot. Stop it first."
            );
        }

        let dir = tempfile::Builder::new()
            .prefix("pcmk-test-")
            .tempdir()
            .expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(dir.path().join("corosync.conf"), corosync_conf(dir.path()))
            .expect("corosync.conf");
        seed_cib(Path::new(CIB_DIR));

        let mut cluster = Cluster {
            pacemakerd: None,
            corosync: None,
            dir,
            lock: Some(lock),
        };
        cluster.corosync = Some(
            Command::new(corosync_bin)
                .arg("-f")
                .arg("-c")
                .arg(cluster.dir.path().join("corosync.conf"))
                .stdin(Stdio::null())
                .stdout(cluster.log_file("corosync.out"))
                .stderr(cluster.log_file("corosync.out"))
                .spawn()
                .expect("start corosync"),
        );
        if !wait_until(Duration::from_secs(15), || {
            Command::new("corosync-quorumtool")
                .arg("-s")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        }) {
            panic!(
                "corosync did not become quorate within 15 s; its log:\n{}",
                cluster.corosync_log()
            );
        }
        cluster.pacemakerd = Some(
            Command::new(pacemakerd_bin)
                .arg("-f")
                .env("PCMK_logfile", cluster.pacemaker_log_path())
                .env("PCMK_debug", "no")
                .stdin(Stdio::null())
                .stdout(cluster.log_file("pacemakerd.out"))
                .stderr(cluster.log_file("pacemakerd.out"))
                .spawn()
                .expect("start pacemakerd"),
        );
        let online = format!("Online: [ {NODE_NAME} ]");
        if !wait_until(Duration::from_secs(60), || {
            let out = Command::new("crm_mon").arg("-1").output();
            matches!(out, Ok(o) if o.status.success()
                && String::from_utf8_lossy(&o.stdout).contains(&online)
                && String::from_utf8_lossy(&o.stdout).contains("Current DC: node1"))
        }) {
            panic!(
                "pacemaker did not bring {NODE_NAME} online within 60 s; log tail:\n{}",
                cluster.pacemaker_log_tail(60)
            );
        }
        cluster
    }

    /// The only node's name.
    pub fn node_name(&self) -> &'static str {
        NODE_NAME
    }

    /// The directory holding corosync.conf and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of pacemaker's detail log (`PCMK_logfile`).
    pub fn pacemaker_log_path(&self) -> PathBuf {
        self.dir.path().join("pacemaker.log")
    }

    /// The last `n` lines of pacemaker's log, for assertion messages.
    pub fn pacemaker_log_tail(&self, n: usize) -> String {
        log_tail(&self.pacemaker_log_path(), n)
    }

    /// The whole pacemaker log.
    pub fn pacemaker_log(&self) -> String {
        fs::read_to_string(self.pacemaker_log_path()).unwrap_or_default()
    }

    /// corosync's log file.
    pub fn corosync_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("corosync.log")).unwrap_or_default()
    }

    /// Runs a command (a cluster CLI such as `crm`, `cibadmin`, `stonith_admin`) and returns its output.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// `crm configure ARGS...`, panicking with crm's output if it fails.
    pub fn crm_configure(&self, args: &[&str]) {
        require("crm", "crmsh");
        let mut full = vec!["configure"];
        full.extend_from_slice(args);
        let out = self.run("crm", &full);
        assert_crm_succeeded(&format!("crm {}", full.join(" ")), &out);
    }

    /// `crm_mon -1` output (and whether it succeeded).
    pub fn status(&self) -> String {
        let out = self.run("crm_mon", &["-1", "-r"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `crm_mon` until `cond(output)` holds or `timeout` passes; returns the last output and
    /// whether it held.
    pub fn wait_for_status(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&str) -> bool,
    ) -> (bool, String) {
        let mut last = String::new();
        let ok = wait_until(timeout, || {
            last = self.status();
            cond(&last)
        });
        (ok, last)
    }

    fn log_file(&self, name: &str) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(name))
            .expect("log file")
    }

    /// Stops the cluster now (dropping it does the same).
    pub fn stop(self) {}

    /// Stops the cluster and hands back the machine lock, for a test that still has to undo
    /// what it installed.
    pub fn stop_keeping_lock(mut self) -> MachineLock {
        self.stop_processes();
        self.lock.take().expect("a running cluster holds the lock")
    }

    fn stop_processes(&mut self) {
        // pacemakerd stops its own daemons (and their resources) on SIGTERM; give it time.
        if let Some(mut p) = self.pacemakerd.take() {
            terminate(&mut p, Duration::from_secs(60));
        }
        if let Some(mut c) = self.corosync.take() {
            terminate(&mut c, Duration::from_secs(15));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_processes();
    }
}

fn corosync_conf(dir: &Path) -> String {
    format!(
        "totem {{\n    version: 2\n    cluster_name: hactltest\n    transport: knet\n    \
         crypto_cipher: none\n    crypto_hash: none\n}}\n\
         nodelist {{\n    node {{\n        ring0_addr: 127.0.0.1\n        name: {NODE_NAME}\n        nodeid: 1\n    }}\n}}\n\
         quorum {{\n    provider: corosync_votequorum\n}}\n\
         logging {{\n    to_logfile: yes\n    logfile: {}\n    to_syslog: no\n    to_stderr: no\n    timestamp: on\n}}\n",
        dir.join("corosync.log").display()
    )
}

/// Replaces the CIB in `cib_dir` with a fresh one: no resources, fast DC election, fencing off.
/// (The three-node cluster seeds each node's private CIB directory with it too.)
pub(crate) fn seed_cib(cib_dir: &Path) {
    fs::create_dir_all(cib_dir).expect("cib dir");
    for entry in fs::read_dir(cib_dir).expect("read cib dir").flatten() {
        let _ = fs::remove_file(entry.path());
    }
    let cib = r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-dc-deadtime" name="dc-deadtime" value="2s"/>
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
"#;
    let path = cib_dir.join("cib.xml");
    fs::write(&path, cib).expect("write cib.xml");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod cib.xml");
    let uid = User::from_name("hacluster").ok().flatten().map(|u| u.uid);
    let gid = Group::from_name("haclient").ok().flatten().map(|g| g.gid);
    chown(&path, uid, gid).expect("chown cib.xml to hacluster:haclient");
}

/// The PID of a running process whose command name is one of `names`, if any.
fn running_process(names: &[&str]) -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = fs::read_to_string(entry.path().join("comm")).ok()?;
        names.contains(&comm.trim()).then_some(pid)
    })
}

/// The last `n` lines of the log file at `path` ("" when it cannot be read).
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Panics with crm's status and output when the crm command `what` failed.
pub(crate) fn assert_crm_succeeded(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
