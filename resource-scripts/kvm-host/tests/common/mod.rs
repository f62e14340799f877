//! Shared helpers for the kvm-host integration tests: a private storage and
//! state directory per test, running the agent binary like execd does, and
//! finding the real peer tools.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

pub const AGENT: &str = env!("CARGO_BIN_EXE_kvm-host");

#[allow(unused_imports)] // not every test binary uses both
pub use test_support::ocf::{to_run, Run};

/// A temp tree: `storage-N/` directories and a `state/` directory, plus the
/// parameters that point the agent at them (no libvirt, no CloudStack agent,
/// temp dirs are not mount points).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub params: BTreeMap<String, String>,
    /// Extra non-OCF environment (e.g. the syslog socket override).
    pub env: BTreeMap<String, String>,
    pub instance: String,
}

impl Fixture {
    pub fn new(storages: usize) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("kvm-host-test-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut list = Vec::new();
        for i in 0..storages {
            let s = dir.path().join(format!("storage-{i}"));
            std::fs::create_dir(&s).unwrap();
            list.push(s.display().to_string());
        }
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let mut params = BTreeMap::new();
        params.insert("storage".into(), list.join(" "));
        params.insert("host_id".into(), "node-a".into());
        params.insert("heartbeat_interval".into(), "1".into());
        params.insert("require_mount".into(), "false".into());
        params.insert("libvirt_check".into(), "false".into());
        params.insert("cloudstack_agent_check".into(), "none".into());
        params.insert(
            "state_dir".into(),
            dir.path().join("state").display().to_string(),
        );
        Fixture {
            dir,
            params,
            env: BTreeMap::new(),
            instance: "hb-test".into(),
        }
    }

    pub fn storage(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("storage-{i}"))
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn heartbeat_file(&self, i: usize, host: &str) -> PathBuf {
        self.storage(i).join("KVMHA").join(format!("ocf-hb-{host}"))
    }

    pub fn pid_file(&self) -> PathBuf {
        self.state_dir()
            .join(format!("kvm-host-{}.pid", self.instance))
    }

    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.params.insert(k.into(), v.into());
        self
    }

    pub fn unset(&mut self, k: &str) -> &mut Self {
        self.params.remove(k);
        self
    }

    /// Runs an action as execd would: only the OCF environment, timeout in
    /// ms, interval (None = probe), and OCF_CHECK_LEVEL.
    pub fn action(
        &self,
        action: &str,
        interval_ms: Option<u64>,
        depth: Option<u32>,
        timeout_ms: u64,
    ) -> Run {
        let mut c = test_support::ocf::execd_command(
            AGENT,
            action,
            "kvm-host",
            &self.instance,
            interval_ms,
            timeout_ms,
        );
        if let Some(d) = depth {
            c.env("OCF_CHECK_LEVEL", d.to_string());
        }
        for (k, v) in &self.params {
            c.env(format!("OCF_RESKEY_{k}"), v);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        test_support::ocf::run_timed(&mut c)
    }

    pub fn start(&self) -> Run {
        self.action("start", None, None, 20_000)
    }
    pub fn stop(&self) -> Run {
        self.action("stop", None, None, 20_000)
    }
    pub fn monitor(&self, depth: u32) -> Run {
        self.action("monitor", Some(10_000), Some(depth), 20_000)
    }

    pub fn writer_pid(&self) -> i32 {
        std::fs::read_to_string(self.pid_file())
            .expect("pid file")
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Never leave a writer behind, whatever the test did.
        if self.pid_file().exists() {
            let _ = self.stop();
        }
    }
}

/// Reads a heartbeat record's counter (None if unreadable).
pub fn counter(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["counter"].as_u64()
}

/// Runs `kvm-host check-peer ARGS`.
pub fn check_peer(args: &[&str]) -> Run {
    let t0 = Instant::now();
    let out = Command::new(AGENT)
        .arg("check-peer")
        .args(args)
        .env("HA_LOGFACILITY", "none")
        .stdin(Stdio::null())
        .output()
        .expect("run check-peer");
    to_run(out, t0.elapsed())
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    kvm_host::state::is_alive(pid)
}

#[allow(unused_imports)] // not every test binary uses both
pub use test_support::peers::{require, wait_until};

pub use test_support::ocf::BinCopy as AgentCopy;

/// A copy of the agent in a fresh world-readable directory (for Pacemaker's
/// `hacluster` and ocf-tester's `nobody`).
pub fn agent_copy() -> AgentCopy {
    test_support::ocf::bin_copy(AGENT, "kvm-host")
}

/// Writes an executable shell script (a stand-in for virsh or systemctl).
pub fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A FUSE filesystem mounted over a directory and never served: every access
/// below it blocks in the kernel (state D), exactly like a dead NFS server
/// behind a hard mount. Dropping it detaches the mount and closes the FUSE
/// connection, which fails every blocked request with ENOTCONN.
pub struct DeadMount {
    target: PathBuf,
    fuse: Option<std::fs::File>,
}

impl DeadMount {
    pub fn over(target: &Path) -> DeadMount {
        use std::os::fd::AsRawFd;
        let fuse = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .unwrap_or_else(|e| panic!("/dev/fuse: {e} (the FUSE test needs root and the fuse kernel module; apt-get install -y fuse3)"));
        let opts = format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            fuse.as_raw_fd()
        );
        nix::mount::mount(
            Some("kvm-host-dead-storage"),
            target,
            Some("fuse.kvm-host-dead"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(opts.as_str()),
        )
        .unwrap_or_else(|e| panic!("mount FUSE over {}: {e}", target.display()));
        DeadMount {
            target: target.to_path_buf(),
            fuse: Some(fuse),
        }
    }
}

impl Drop for DeadMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH);
        drop(self.fuse.take());
    }
}
