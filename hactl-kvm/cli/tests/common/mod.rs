//! The world around one `hactl-kvm run` on loopback, shared by the
//! end-to-end tests: the CloudStack API double, one `ipmi_sim` BMC per host,
//! kvm-host heartbeat writers on a temporary directory (the primary
//! storage), the daemon's configuration, its log and its control socket.
#![allow(dead_code)]

pub mod cluster;

use kvm_host::heartbeat::{write_heartbeat, HeartbeatRecord};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use test_support::cloudstack::{CloudStackDouble, DoubleHost};
use test_support::peers::wait_until;
use test_support::{IpmiSim, PowerEvent};

/// A kvm-host heartbeat writer for one host (kvm-host's own write code,
/// interval 1 s), stoppable.
pub struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(storage: &Path, host: &str, first_counter: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, storage, host) = (stop.clone(), storage.to_path_buf(), host.to_string());
        let thread = std::thread::spawn(move || {
            let mut counter = first_counter;
            while !s.load(Ordering::SeqCst) {
                counter += 1;
                let rec = HeartbeatRecord {
                    format: 1,
                    host: host.clone(),
                    counter,
                    incarnation: format!("test-{host}"),
                    written_unix_ms: 0,
                    interval_secs: 1,
                };
                // Errors only once the test tears the directory down.
                let _ = write_heartbeat(&storage, "KVMHA", false, &rec);
                std::thread::sleep(Duration::from_millis(1000));
            }
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Host {
    pub name: String,
    pub uuid: String,
    pub bmc: IpmiSim,
    pub writer: Option<Writer>,
}

/// The world around one daemon.
pub struct World {
    /// The `[activity]` part of the configuration.
    pub activity: String,
    /// Extra `[daemon]` keys (after the harness's own).
    pub daemon_extra: String,
    /// `daemon.journal_compact_bytes`.
    pub compact_bytes: u64,
    /// `daemon.metrics_listen` (default: no endpoint).
    pub metrics_listen: String,
    /// The `[core]` part of the configuration (default [`CORE`]).
    pub core: String,
    /// The `[events]` part of the configuration.
    pub events: String,
    pub dir: tempfile::TempDir,
    pub cs: CloudStackDouble,
    pub hosts: Vec<Host>,
    pub daemon: Option<Child>,
}

thread_local! {
    /// Set by a test before building its World: also accept CloudStack's
    /// own `KVMHA/hb-<ip>` heartbeat as evidence.
    pub static CS_HB: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub const CORE: &str = r#"
[core]
health_check_interval_ms = 1000
health_check_timeout_ms = 800
power_poll_interval_ms = 2000
power_op_timeout_ms = 5000
activity_sample_window_ms = 3500
activity_check_timeout_ms = 6000
activity_backoff_initial_ms = 1000
activity_backoff_max_ms = 4000
recovery_retry_delay_ms = 1000
quiet_period_ms = 2000
startup_grace_ms = 1000
min_available_hosts = 2
[core.evidence]
dead_required = 2
max_samples = 3
[core.fence_rate]
per_partition = 3
global = 3
window_ms = 3600000
[core.mass_failure]
share = 0.5
window_ms = 10000
cliff_drop_share = 0.5
min_hosts = 3
"#;

impl World {
    /// `n` healthy hosts with BMCs and heartbeats, BMC password `password`.
    pub fn new(n: usize, password: &str) -> World {
        Self::with_activity(n, password, None)
    }

    /// With `sshd`: `peer` activity checks over SSH to the hosts (all on
    /// 127.0.0.1, reaching that sshd); without: `local` checks.
    pub fn with_activity(n: usize, password: &str, sshd: Option<&test_support::Sshd>) -> World {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("storage")).unwrap();
        let cs = CloudStackDouble::start().expect("API double starts");
        let z = cs.add_zone("z1");
        let p = cs.add_pod("p1", &z);
        let c = cs.add_cluster("c1", &p);
        let mut hosts = Vec::new();
        for i in 0..n {
            let name = format!("kvm{}", i + 1);
            let bmc = IpmiSim::start();
            let ip = match sshd {
                Some(_) => "127.0.0.1".to_string(),
                None => format!("127.0.0.{}", i + 10),
            };
            let mut h = DoubleHost::kvm(&name, &ip, &c);
            h.oobm_address = "127.0.0.1".into();
            h.oobm_port = bmc.port().to_string();
            let uuid = cs.add_host(h);
            let writer = Some(Writer::start(&dir.path().join("storage"), &name, 0));
            hosts.push(Host {
                name,
                uuid,
                bmc,
                writer,
            });
        }
        let storage = dir.path().join("storage");
        let activity = match sshd {
            None => format!(
                "[activity]\nmode = \"local\"\nrequire_mount = false\nread_timeout_ms = 1000\ncloudstack_heartbeat = {}\n[activity.mounts]\nprimary = \"{}\"\n",
                CS_HB.with(|c| c.get()),
                storage.display()
            ),
            Some(s) => {
                let kvm_host = Path::new(env!("CARGO_BIN_EXE_hactl-kvm")).with_file_name("kvm-host");
                assert!(
                    kvm_host.is_file(),
                    "{} is missing: build it first (cargo build -p kvm-host; tests/run builds the workspace)",
                    kvm_host.display()
                );
                format!(
                    "[activity]\nmode = \"peer\"\nrequire_mount = false\n[activity.mounts]\nprimary = \"{}\"\n[activity.ssh]\nport = {}\nidentity_file = \"{}\"\nknown_hosts = \"{}\"\nkvm_host = \"{}\"\n",
                    storage.display(),
                    s.port(),
                    s.client_key().display(),
                    s.known_hosts().display(),
                    kvm_host.display()
                )
            }
        };
        let events = format!(
            "[events]\nsyslog_socket = \"\"\nfile = \"{}\"\n",
            dir.path().join("events.jsonl").display()
        );
        let w = World {
            activity,
            daemon_extra: String::new(),
            compact_bytes: 500,
            metrics_listen: String::new(),
            core: CORE.to_string(),
            events,
            dir,
            cs,
            hosts,
            daemon: None,
        };
        w.write_config(password, 0o600);
        w
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hactl.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    pub fn write_config(&self, password: &str, secrets_mode: u32) {
        let d = self.dir.path();
        let secrets = d.join("secrets.toml");
        fs::write(
            &secrets,
            format!(
                "[cloudstack]\nsecret_key = \"{}\"\n[bmc]\npassword = \"{password}\"\n",
                self.cs.secret_key()
            ),
        )
        .unwrap();
        fs::set_permissions(&secrets, fs::Permissions::from_mode(secrets_mode)).unwrap();
        let cfg = format!(
            r#"
[daemon]
journal_dir = "{journal}"
secrets_file = "{secrets}"
inventory_interval_ms = 1000
shutdown_timeout_ms = 10000
# Compact after nearly every batch: every test also runs (and restarts) on compacted journals.
journal_compact_bytes = {compact}
control_socket = "{socket}"
control_group = "root"
metrics_listen = "{metrics}"
{daemon_extra}
{events}
{peers}"#,
            journal = d.join("journal").display(),
            socket = d.join("control.sock").display(),
            daemon_extra = self.daemon_extra,
            compact = self.compact_bytes,
            metrics = self.metrics_listen,
            events = self.events,
            secrets = secrets.display(),
            peers = self.peers_config(),
        );
        fs::write(self.config_path(), cfg).unwrap();
    }

    /// The configuration's [cloudstack], [activity], [power] and [core]
    /// sections: how a daemon of this world reaches its peers.
    pub fn peers_config(&self) -> String {
        format!(
            r#"[cloudstack]
url = "{url}"
api_key = "{key}"
request_timeout_ms = 2000
degrade_wait_ms = 30000
handoff_retry_ms = 500
{activity}
[power]
username = "admin"
retransmit_ms = 2500
{core}"#,
            url = self.cs.endpoint(),
            key = self.cs.api_key(),
            activity = self.activity,
            core = self.core,
        )
    }

    pub fn spawn_daemon(&self) -> Child {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
            .arg("run")
            .arg("--config")
            .arg(self.config_path())
            .env(
                "HACTL_LOG",
                std::env::var("HACTL_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("daemon starts")
    }

    pub fn start_daemon(&mut self) {
        self.daemon = Some(self.spawn_daemon());
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Waits until the daemon reports `n` hosts AVAILABLE (ever).
    pub fn wait_available(&self, n: usize) {
        assert!(
            wait_until(Duration::from_secs(30), || self
                .count(r#""to":"AVAILABLE""#)
                >= n),
            "hosts never became AVAILABLE; daemon log:\n{}",
            self.log()
        );
    }

    pub fn stop_daemon(&mut self) -> std::process::ExitStatus {
        let mut child = self.daemon.take().expect("daemon running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < until, "daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Host `i` crashes: its heartbeat stops and CloudStack loses its agent.
    pub fn crash(&mut self, i: usize) {
        self.hosts[i].writer.as_mut().unwrap().stop();
        let uuid = self.hosts[i].uuid.clone();
        self.cs
            .update_host(&uuid, |h| h.state = "Disconnected".into());
    }

    /// Host `i` is back: its heartbeat advances again and CloudStack shows it Up.
    pub fn revive(&mut self, i: usize) {
        let storage = self.dir.path().join("storage");
        let name = self.hosts[i].name.clone();
        self.hosts[i].writer = Some(Writer::start(&storage, &name, 1000));
        let uuid = self.hosts[i].uuid.clone();
        self.cs.update_host(&uuid, |h| h.state = "Up".into());
    }

    /// Waits until the daemon's log contains `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) {
        assert!(
            wait_until(within, || self.log().contains(needle)),
            "never logged {needle}; log:\n{}",
            self.log()
        );
    }

    /// Host `i`'s BMC applies exactly one off then one on, and nothing more
    /// within two further seconds.
    pub fn assert_fenced_once(&self, i: usize) {
        let events = self.hosts[i]
            .bmc
            .wait_for_events(2, Duration::from_secs(60));
        assert_eq!(
            events,
            vec![PowerEvent::Off, PowerEvent::On],
            "log:\n{}",
            self.log()
        );
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(
            self.hosts[i].bmc.events(),
            vec![PowerEvent::Off, PowerEvent::On]
        );
    }

    pub fn calls(&self, command: &str, host: &str) -> usize {
        self.cs
            .calls_of(command)
            .iter()
            .filter(|c| c.params.get("id").map(String::as_str) == Some(host))
            .count()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl World {
    /// The daemon's control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    /// The daemon's journal file.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.path().join("journal").join("journal")
    }

    /// Waits for the control socket to answer.
    pub fn wait_socket(&self) {
        assert!(
            wait_until(Duration::from_secs(30), || {
                std::os::unix::net::UnixStream::connect(self.socket()).is_ok()
            }),
            "control socket {} never answered; daemon log:\n{}",
            self.socket().display(),
            self.log()
        );
    }

    /// Runs `hactl-kvm ARGS --socket <the daemon's>`.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .stdin(Stdio::null())
            .output()
            .expect("hactl-kvm runs")
    }
}
