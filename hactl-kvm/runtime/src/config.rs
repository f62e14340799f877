//! The daemon's configuration file (TOML): global settings, the core's
//! timing, per-partition and per-host overrides. Every key and its default
//! is documented in `hactl-kvm/etc/hactl.toml`, which a test parses.
//!
//! Unknown keys are errors (a misspelt safety setting must not be silently
//! ignored): the file is decoded, encoded back, and every key of the input
//! must survive the round trip.

use hactl_core::{Config as CoreConfig, ConfigError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Where `hactl-kvm run` looks for its configuration by default.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hactl-kvm/hactl.toml";
/// Where the secrets file is by default.
pub const DEFAULT_SECRETS_PATH: &str = "/etc/hactl-kvm/secrets.toml";
/// Where the journal and its lock live by default.
pub const DEFAULT_JOURNAL_DIR: &str = "/var/lib/hactl-kvm";

/// The control socket's group by default: root's own, so that out of the
/// box only root may use the socket; a site names its operators' group.
pub const DEFAULT_CONTROL_GROUP: &str = "root";
/// The events file by default.
pub const DEFAULT_EVENTS_FILE: &str = "/var/log/hactl-kvm/events.jsonl";

/// `[events]`: where the core's events go besides the control socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// The syslog datagram socket (RFC 5424, LOG_DAEMON); empty: none.
    pub syslog_socket: String,
    /// The JSON-lines events file; empty: none.
    pub file: String,
    /// Rotate the events file before it grows beyond this many bytes.
    pub file_max_bytes: u64,
    /// Rotated events files kept (`.1` newest).
    pub file_keep: u32,
    /// A program run per event with the event's JSON on stdin; empty: none.
    pub on_event: String,
    /// The hook's run is killed (with its process group) after this long.
    pub on_event_timeout_ms: u64,
    /// Events waiting for the hook before new ones are dropped (counted).
    pub on_event_queue: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            syslog_socket: hactl_events::DEFAULT_SYSLOG_SOCKET.into(),
            file: DEFAULT_EVENTS_FILE.into(),
            file_max_bytes: 16 << 20,
            file_keep: 5,
            on_event: String::new(),
            on_event_timeout_ms: 10_000,
            on_event_queue: 256,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read configuration {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("configuration {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// A key the schema does not know (probably misspelt).
    #[error("configuration {path}: unknown key `{key}`")]
    UnknownKey {
        /// File.
        path: PathBuf,
        /// Dotted key.
        key: String,
    },
    /// The core refuses the timing.
    #[error("configuration {path}: [core] {source}")]
    Core {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: ConfigError,
    },
    /// A value that cannot work.
    #[error("configuration {path}: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Quorum provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuorumProvider {
    /// One management node: its own quorum only (warned about at start).
    Standalone,
    /// Two or three management nodes: votequorum decides, the core's journal
    /// is replicated over CPG (`[cluster]`), one instance is active.
    Corosync,
}

/// `[cluster]`: the Corosync group (used only with `quorum = "corosync"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's Corosync node id: 0 = take whatever the local Corosync
    /// says (`cpg_local_get`); any other value is checked against it at
    /// start (a configuration copied to the wrong node is refused).
    pub node_id: u32,
    /// Management nodes in the Corosync nodelist (a group view needs more
    /// than half of them); checked against the running Corosync at start.
    pub cluster_size: usize,
    /// The CPG group every instance joins.
    pub group: String,
    /// votequorum's "quorate" is trusted this long after it was last given.
    pub quorum_lease_ms: u64,
    /// votequorum is asked this often (renews the lease).
    pub poll_interval_ms: u64,
    /// A newly active instance waits this long before any power action
    /// (must exceed Corosync's effective token + consensus timeouts, read
    /// from its cmap at start; a shorter grace is refused).
    pub takeover_grace_ms: u64,
    /// A journal record not durable (written by a majority) within this
    /// long makes the active instance stop acting.
    pub propose_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: 0,
            cluster_size: 3,
            group: "hactl-kvm".into(),
            quorum_lease_ms: 2_000,
            poll_interval_ms: 200,
            takeover_grace_ms: 4_000,
            propose_timeout_ms: 5_000,
        }
    }
}

/// How activity (is the suspect's heartbeat advancing?) is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityMode {
    /// The core's chosen checker host runs `kvm-host check-peer` over SSH.
    Peer,
    /// The coordinator reads the heartbeat files on its own mounts.
    Local,
}

/// Which power driver a host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriverKind {
    /// In-process IPMI-over-LAN.
    Ipmi,
    /// An installed `fence_*` agent, options on stdin.
    FenceAgent,
    /// An operator script (see the README for its contract).
    Script,
    /// In-process Redfish over HTTPS (the `redfish` crate fence_redfish uses).
    Redfish,
}

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// Journal directory (locked exclusively by the running daemon).
    pub journal_dir: PathBuf,
    /// Secrets file (root-owned, mode 0600).
    pub secrets_file: PathBuf,
    /// Quorum provider.
    pub quorum: QuorumProvider,
    /// Re-read the inventory from CloudStack this often.
    pub inventory_interval_ms: u64,
    /// Power reads running at the same time (one slow BMC must not delay
    /// the others; this bounds the threads and sockets used).
    pub power_concurrency: usize,
    /// Activity checks running at the same time.
    pub activity_concurrency: usize,
    /// On SIGTERM, wait at most this long for in-flight operations.
    pub shutdown_timeout_ms: u64,
    /// Rewrite the journal with only the records that rebuild the current
    /// state (`Coordinator::compact_records`) when it grows beyond this.
    pub journal_compact_bytes: u64,
    /// The control socket (`hactl-kvm status`, `hosts`, ... connect here).
    pub control_socket: PathBuf,
    /// Besides root, members of this group may use the control socket.
    pub control_group: String,
    /// The `/metrics` endpoint's address; empty: no endpoint.
    pub metrics_listen: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            journal_dir: DEFAULT_JOURNAL_DIR.into(),
            secrets_file: DEFAULT_SECRETS_PATH.into(),
            quorum: QuorumProvider::Standalone,
            inventory_interval_ms: 60_000,
            power_concurrency: 32,
            activity_concurrency: 32,
            shutdown_timeout_ms: 30_000,
            journal_compact_bytes: 16 << 20,
            control_socket: hactl_control::DEFAULT_SOCKET.into(),
            control_group: DEFAULT_CONTROL_GROUP.into(),
            metrics_listen: hactl_metrics::DEFAULT_LISTEN.into(),
        }
    }
}

/// `[cloudstack]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudStackConfig {
    /// API endpoint, e.g. `https://cloud.example.org/client/api`.
    pub url: String,
    /// The API key of the account (the secret key is in the secrets file).
    pub api_key: String,
    /// Extra CA certificates (PEM) to trust for HTTPS.
    pub ca_file: Option<PathBuf>,
    /// Time bound of one API request.
    pub request_timeout_ms: u64,
    /// After declareHostAsDegraded is due, wait this long for CloudStack to
    /// show the host Alert or Disconnected (it refuses otherwise).
    pub degrade_wait_ms: u64,
    /// Retry a failed declare/cancel after this long.
    pub handoff_retry_ms: u64,
}

impl Default for CloudStackConfig {
    fn default() -> Self {
        CloudStackConfig {
            url: String::new(),
            api_key: String::new(),
            ca_file: None,
            request_timeout_ms: 10_000,
            degrade_wait_ms: 600_000,
            handoff_retry_ms: 10_000,
        }
    }
}

/// `[activity]` (and per partition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivityConfig {
    /// `peer` or `local`.
    pub mode: ActivityMode,
    /// Directory of heartbeat files on each primary storage.
    pub heartbeat_dir: String,
    /// Also accept CloudStack's own `KVMHA/hb-<host ip>` file as evidence.
    pub cloudstack_heartbeat: bool,
    /// Time bound of one heartbeat read (local mode).
    pub read_timeout_ms: u64,
    /// Require each storage path to be a mount point (a path that is not
    /// mounted gives CANNOT-TELL, never DEAD from an empty directory).
    pub require_mount: bool,
    /// Program that reads one heartbeat file for `local` mode
    /// (`<program> read-heartbeat --file F`); empty = this binary.
    pub reader: String,
    /// Storage pool (CloudStack name or id) -> its mount path on the
    /// coordinator (local mode) or on the hosts (peer mode).
    pub mounts: BTreeMap<String, PathBuf>,
    /// SSH settings for `peer` mode.
    pub ssh: SshConfig,
}

impl Default for ActivityConfig {
    fn default() -> Self {
        ActivityConfig {
            mode: ActivityMode::Peer,
            heartbeat_dir: "KVMHA".into(),
            cloudstack_heartbeat: false,
            read_timeout_ms: 2_000,
            require_mount: true,
            reader: String::new(),
            mounts: BTreeMap::new(),
            ssh: SshConfig::default(),
        }
    }
}

/// `[activity.ssh]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshConfig {
    /// The ssh client.
    pub program: PathBuf,
    /// Remote user.
    pub user: String,
    /// SSH port of the hosts.
    pub port: u16,
    /// Private key.
    pub identity_file: PathBuf,
    /// known_hosts file (host keys are checked strictly).
    pub known_hosts: PathBuf,
    /// `kvm-host` on the hosts.
    pub kvm_host: String,
    /// SSH connect timeout.
    pub connect_timeout_ms: u64,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            program: "ssh".into(),
            user: "root".into(),
            port: 22,
            identity_file: "/etc/hactl-kvm/id_ed25519".into(),
            known_hosts: "/etc/hactl-kvm/known_hosts".into(),
            kvm_host: "/usr/sbin/kvm-host".into(),
            connect_timeout_ms: 3_000,
        }
    }
}

/// `[power]` (and per host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PowerConfig {
    /// `ipmi`, `fence-agent`, `script` or `redfish`.
    pub driver: DriverKind,
    /// BMC user when CloudStack's out-of-band management has none.
    pub username: String,
    /// BMC UDP port when CloudStack has none.
    pub port: u16,
    /// RMCP+ cipher suite (ipmi).
    pub cipher_suite: u8,
    /// IPMI privilege level (ipmi): `user`, `operator`, `administrator`.
    pub privilege: String,
    /// Retransmit interval (ipmi).
    pub retransmit_ms: u64,
    /// Fence agent program (fence-agent driver), e.g. `fence_redfish`.
    pub agent: String,
    /// Extra `key=value` options for the agent (on its stdin).
    pub agent_options: BTreeMap<String, String>,
    /// Script path (script driver).
    pub script: PathBuf,
    /// Redfish: PEM file of CA certificates trusted besides the system store
    /// (verification is never turned off).
    pub redfish_ca_file: Option<PathBuf>,
    /// Redfish: the system's resource path; empty = the only system of the
    /// service, or the one whose Id or Name is the CloudStack host name.
    pub redfish_systems_uri: String,
}

impl Default for PowerConfig {
    fn default() -> Self {
        PowerConfig {
            driver: DriverKind::Ipmi,
            username: String::new(),
            port: 623,
            cipher_suite: 3,
            privilege: "administrator".into(),
            retransmit_ms: 1_000,
            agent: String::new(),
            agent_options: BTreeMap::new(),
            script: PathBuf::new(),
            redfish_ca_file: None,
            redfish_systems_uri: String::new(),
        }
    }
}

/// `[[partition]]`: overrides for one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionOverride {
    /// CloudStack cluster name or id.
    pub cluster: String,
    /// Activity mode for this cluster.
    pub activity_mode: Option<ActivityMode>,
    /// Extra pool -> mount entries for this cluster.
    #[serde(default)]
    pub mounts: BTreeMap<String, PathBuf>,
}

/// `[[host]]`: overrides for one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostOverride {
    /// CloudStack host name or id.
    pub host: String,
    /// Power driver.
    pub driver: Option<DriverKind>,
    /// BMC address (overrides CloudStack's out-of-band management).
    pub bmc_address: Option<String>,
    /// BMC port.
    pub bmc_port: Option<u16>,
    /// BMC user.
    pub bmc_username: Option<String>,
    /// Time bound of this host's power operations.
    pub power_op_timeout_ms: Option<u64>,
    /// Quiet period after this host is powered on.
    pub quiet_period_ms: Option<u64>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// `[daemon]`.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// `[cloudstack]`.
    #[serde(default)]
    pub cloudstack: CloudStackConfig,
    /// `[cluster]` (quorum provider `corosync`).
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// `[core]`: the decision core's timing and guards.
    #[serde(default)]
    pub core: CoreConfig,
    /// `[activity]`.
    #[serde(default)]
    pub activity: ActivityConfig,
    /// `[power]`.
    #[serde(default)]
    pub power: PowerConfig,
    /// `[events]`.
    #[serde(default)]
    pub events: EventsConfig,
    /// `[[partition]]`.
    #[serde(default, rename = "partition", skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionOverride>,
    /// `[[host]]`.
    #[serde(default, rename = "host", skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostOverride>,
}

impl RuntimeConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<RuntimeConfig, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates configuration text (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<RuntimeConfig, ConfigFileError> {
        let parse_err = |message: String| ConfigFileError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let raw: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        let config: RuntimeConfig =
            toml::from_str(text).map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        let back = toml::Table::try_from(&config).map_err(|e| parse_err(e.to_string()))?;
        if let Some(key) = unknown_key(&raw, &back, "") {
            return Err(ConfigFileError::UnknownKey {
                path: path.to_path_buf(),
                key,
            });
        }
        config.validate(path)?;
        Ok(config)
    }

    /// Checks values that cannot work.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigFileError> {
        let invalid = |message: String| ConfigFileError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        self.core
            .validate()
            .map_err(|source| ConfigFileError::Core {
                path: path.to_path_buf(),
                source,
            })?;
        if self.cloudstack.url.is_empty() {
            return Err(invalid("[cloudstack] url is required".into()));
        }
        if !(self.cloudstack.url.starts_with("http://")
            || self.cloudstack.url.starts_with("https://"))
        {
            return Err(invalid(format!(
                "[cloudstack] url {:?} must start with http:// or https://",
                self.cloudstack.url
            )));
        }
        if self.cloudstack.api_key.is_empty() {
            return Err(invalid("[cloudstack] api_key is required".into()));
        }
        for (name, v) in [
            (
                "daemon.inventory_interval_ms",
                self.daemon.inventory_interval_ms,
            ),
            (
                "daemon.power_concurrency",
                self.daemon.power_concurrency as u64,
            ),
            (
                "daemon.activity_concurrency",
                self.daemon.activity_concurrency as u64,
            ),
            (
                "cloudstack.request_timeout_ms",
                self.cloudstack.request_timeout_ms,
            ),
            (
                "cloudstack.handoff_retry_ms",
                self.cloudstack.handoff_retry_ms,
            ),
            ("activity.read_timeout_ms", self.activity.read_timeout_ms),
            ("power.retransmit_ms", self.power.retransmit_ms),
            ("cluster.cluster_size", self.cluster.cluster_size as u64),
            ("cluster.poll_interval_ms", self.cluster.poll_interval_ms),
            ("cluster.takeover_grace_ms", self.cluster.takeover_grace_ms),
            (
                "cluster.propose_timeout_ms",
                self.cluster.propose_timeout_ms,
            ),
            ("events.file_max_bytes", self.events.file_max_bytes),
            ("events.file_keep", u64::from(self.events.file_keep)),
            (
                "events.on_event_timeout_ms",
                self.events.on_event_timeout_ms,
            ),
            ("events.on_event_queue", self.events.on_event_queue as u64),
        ] {
            if v == 0 {
                return Err(invalid(format!("{name} must be greater than zero")));
            }
        }
        if self.cluster.poll_interval_ms >= self.cluster.quorum_lease_ms {
            return Err(invalid(format!(
                "cluster.poll_interval_ms ({}) must be below cluster.quorum_lease_ms ({}): polling renews the lease",
                self.cluster.poll_interval_ms, self.cluster.quorum_lease_ms
            )));
        }
        if self.cluster.group.is_empty() || self.cluster.group.len() > 127 {
            return Err(invalid(
                "cluster.group must be 1 to 127 bytes (a CPG group name)".into(),
            ));
        }
        let uses = |k: DriverKind| {
            self.power.driver == k || self.hosts.iter().any(|h| h.driver == Some(k))
        };
        if uses(DriverKind::FenceAgent) && !self.power.agent.starts_with("fence_") {
            return Err(invalid(format!(
                "[power] agent {:?} must name a fence_* agent for the fence-agent driver",
                self.power.agent
            )));
        }
        if uses(DriverKind::Script) && !self.power.script.is_absolute() {
            return Err(invalid(
                "[power] script must be an absolute path for the script driver".into(),
            ));
        }
        if self.power.privilege.parse::<ipmi_lan::Privilege>().is_err() {
            return Err(invalid(format!(
                "[power] privilege {:?} is not one of user, operator, administrator",
                self.power.privilege
            )));
        }
        if !self.daemon.metrics_listen.is_empty()
            && self
                .daemon
                .metrics_listen
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(invalid(format!(
                "daemon.metrics_listen {:?} is not an address:port (e.g. 127.0.0.1:9643; empty for no endpoint)",
                self.daemon.metrics_listen
            )));
        }
        if !self.daemon.control_socket.is_absolute() {
            return Err(invalid(
                "daemon.control_socket must be an absolute path".into(),
            ));
        }
        if self.daemon.control_group.is_empty() {
            return Err(invalid("daemon.control_group must name a group".into()));
        }
        if !self.events.on_event.is_empty() && !Path::new(&self.events.on_event).is_absolute() {
            return Err(invalid(
                "events.on_event must be an absolute path (it is run without a shell)".into(),
            ));
        }
        for h in &self.hosts {
            if h.power_op_timeout_ms == Some(0) || h.quiet_period_ms == Some(0) {
                return Err(invalid(format!(
                    "[[host]] {}: times must be greater than zero",
                    h.host
                )));
            }
        }
        Ok(())
    }

    /// The override entry for a host (by CloudStack name or id).
    pub fn host_override(&self, name: &str, id: &str) -> Option<&HostOverride> {
        self.hosts.iter().find(|h| h.host == name || h.host == id)
    }

    /// The override entry for a cluster (by CloudStack name or id).
    pub fn partition_override(&self, name: &str, id: &str) -> Option<&PartitionOverride> {
        self.partitions
            .iter()
            .find(|p| p.cluster == name || p.cluster == id)
    }
}

/// The first key of `input` that does not survive decoding (dotted path).
fn unknown_key(input: &toml::Table, decoded: &toml::Table, prefix: &str) -> Option<String> {
    for (k, v) in input {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let Some(d) = decoded.get(k) else {
            return Some(path);
        };
        match (v, d) {
            (toml::Value::Table(a), toml::Value::Table(b)) => {
                if let Some(p) = unknown_key(a, b, &path) {
                    return Some(p);
                }
            }
            (toml::Value::Array(a), toml::Value::Array(b)) => {
                for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                    if let (toml::Value::Table(x), toml::Value::Table(y)) = (x, y) {
                        if let Some(p) = unknown_key(x, y, &format!("{path}[{i}]")) {
                            return Some(p);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    None
}
