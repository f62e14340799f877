//! Shared helpers for the hactl agent's tests: a private directory per test,
//! the control double (real control protocol, scripted role) as the daemon,
//! and running the agent binary the way pacemaker-execd does.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const AGENT: &str = env!("CARGO_BIN_EXE_hactl");
pub const DOUBLE: &str = env!("CARGO_BIN_EXE_hactl-control-double");

#[allow(unused_imports)]
pub use test_support::peers::{require, wait_until};

#[allow(unused_imports)] // not every test binary uses both
pub use test_support::ocf::{to_run, Run};

/// A temp directory with a daemon configuration, and the agent parameters
/// that point at it (daemon = the control double unless changed).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub params: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub instance: String,
}

impl Fixture {
    /// The control double with `extra` config lines.
    pub fn new(extra: &str) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("hactl-ocf-test-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut f = Fixture {
            params: BTreeMap::new(),
            env: BTreeMap::new(),
            instance: "hactl-test".into(),
            dir,
        };
        std::fs::write(
            f.config(),
            format!("socket = {}\n{extra}\n", f.socket().display()),
        )
        .unwrap();
        let p = [
            ("config", f.config()),
            ("hactl_kvm", PathBuf::from(DOUBLE)),
            ("socket", f.socket()),
            ("pid_file", f.pid_file()),
            ("log_file", f.log_file()),
        ];
        for (k, v) in p {
            f.params.insert(k.into(), v.display().to_string());
        }
        f
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("hactl.conf")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("hactl.pid")
    }
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }
    /// The SetRole requests the double received (ground truth).
    pub fn set_role_requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.socket().with_extension("requests"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
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
    /// ms, interval (None = probe).
    pub fn action(&self, action: &str, interval_ms: Option<u64>, timeout_ms: u64) -> Run {
        let mut c = test_support::ocf::execd_command(
            AGENT,
            action,
            "hactl",
            &self.instance,
            interval_ms,
            timeout_ms,
        );
        for (k, v) in &self.params {
            c.env(format!("OCF_RESKEY_{k}"), v);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        test_support::ocf::run_timed(&mut c)
    }

    pub fn start(&self) -> Run {
        self.action("start", None, 20_000)
    }
    pub fn stop(&self) -> Run {
        self.action("stop", None, 20_000)
    }
    pub fn monitor(&self) -> Run {
        self.action("monitor", Some(10_000), 20_000)
    }
    pub fn probe(&self) -> Run {
        self.action("monitor", None, 20_000)
    }

    /// The PID the agent recorded.
    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Never leave a daemon behind, whatever the test did: SIGKILL the
        // recorded PID (it is ours: a child of an agent we ran).
        if let Some(pid) = self.daemon_pid() {
            if alive(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGCONT,
                );
                let _ = self.stop();
                if alive(pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    kvm_host::state::is_alive(pid)
}

pub fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
}

/// Asks the daemon on `socket` for its role directly (not through the agent).
pub fn role_of(socket: &Path) -> Option<hactl_control::RoleReport> {
    hactl_ocf::control::role(socket, Instant::now() + Duration::from_secs(5)).ok()
}

#[allow(unused_imports)]
pub use test_support::ocf::{bin_copy, BinCopy};

/// The real `hactl-kvm` next to this crate's binaries in the target dir.
pub fn hactl_kvm_binary() -> PathBuf {
    let p = Path::new(AGENT).with_file_name("hactl-kvm");
    assert!(
        p.is_file(),
        "{} is missing: build it first (cargo build -p hactl-kvm; tests/run builds the workspace)",
        p.display()
    );
    p
}

/// Configures `hactl` as the README's promotable clone on `cluster`
/// (test_support::ocf::promotable_clone_commands).
pub fn configure_promotable_clone(
    cluster: &test_support::Cluster,
    params: &BTreeMap<String, String>,
    ops: &str,
) {
    for command in
        test_support::ocf::promotable_clone_commands("hactl", "ocf:cloudstack:hactl", params, ops)
    {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        cluster.crm_configure(&args);
    }
}
