//! The service: drives the sans-IO core with real I/O.
//!
//! * Timers: the loop sleeps until `Coordinator::next_timeout()` and ticks.
//! * Actions are carried out in order; every `Persist` is appended and
//!   fsync'ed through `hactl-journal` before any later action of the batch
//!   starts. Operations run as tasks (power and local activity checks on the
//!   blocking pool, each kind bounded by a semaphore) and send their result
//!   back with the action's `OpRef`.
//! * Health: the RunHealthCheck actions of one batch are answered with one
//!   `listHosts` per cluster. When CloudStack cannot be reached, the
//!   standalone quorum is withdrawn (no fencing while blind) until it
//!   answers again.
//! * Start-up: `Coordinator::recover` from the journal on disk.
//! * SIGTERM: no new operations; in-flight power operations finish or time
//!   out (results are journaled), the journal is closed, exit 0.
//! * SIGHUP: the configuration and secrets are re-read; an invalid one is
//!   rejected and the running one kept. `[core]` and `[daemon]` changes need
//!   a restart (said in the log).
//! * Roles ([`roles`]): only an active instance drives the core and acts;
//!   with `quorum = "corosync"` the core's journal is the CPG group's.

mod roles;
use roles::Roles;
pub use roles::{
    CoreJournal, HandoffJournal, PowerGate, RoleError, RoleStatus, StartOptions, REPLICA_FILE,
};

mod control;

use crate::activity::{self, LocalCheck, PeerSshCheck};
use crate::clock::now_ms;
use crate::config::{ActivityMode, DriverKind, RuntimeConfig};
use crate::handoff::{HandoffRecord, HandoffState, Handoffs};
use crate::lock::DirLock;
use crate::notify::Notifier;
use crate::power::{
    BmcTarget, EpochGuard, FenceAgentDriver, IpmiDriver, PowerAnswer, PowerDriver, PowerError,
    PowerOp, PowerRequest, RedfishDriver, ScriptDriver,
};
use crate::secrets::Secrets;
use cloudstack_api::inventory::{self as csinv, IdMap, MapContext};
use cloudstack_api::types::{ClusterInfo, HostInfo, Pod, Zone};
use cloudstack_api::{Client, ClientConfig, Credentials};
use hactl_control::{ControlGroup, ControlServer, EventHub, PeerCred, Request, ServerConfig};
use hactl_core::{
    Action, ActivityVerdict, CannotTellReason, ClusterId, Coordinator, Event, HaState, HostId,
    Input, Inventory, OpRef, PowerActionOutcome, PowerReading, Window,
};
use hactl_metrics::Metrics;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, Semaphore};

/// Why the daemon did not start or stopped with an error.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// Configuration refused.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigFileError),
    /// Secrets refused.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    /// Journal directory locked by another daemon.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// Journal damaged or not writable.
    #[error(transparent)]
    Journal(#[from] hactl_journal::JournalError),
    /// The core refused to start.
    #[error("cannot rebuild the coordinator from the journal: {0}")]
    Recover(#[from] hactl_core::RecoverError),
    /// CloudStack client could not be built.
    #[error("CloudStack client: {0}")]
    Client(#[from] cloudstack_api::Error),
    /// The Corosync group could not be joined (quorum provider `corosync`).
    #[error("corosync: {0}")]
    Cluster(String),
    /// A replicated journal record did not become durable in time.
    #[error("journal record not durable in the group: {0}")]
    NotDurable(String),
    /// A compaction of the replicated journal did not become durable (nothing is lost: the
    /// log stays as it was, or every member compacted; it is tried again later).
    #[error("replicated journal not compacted: {0}")]
    NotCompacted(String),
    /// The control socket could not be served.
    #[error(transparent)]
    ControlSocket(#[from] hactl_control::ServerError),
    /// The control group does not exist.
    #[error("daemon.control_group: {0}")]
    ControlGroup(#[from] hactl_control::GroupError),
    /// The metrics endpoint could not be served.
    #[error(transparent)]
    Metrics(#[from] hactl_metrics::MetricsServerError),
    /// I/O.
    #[error("{what}: {source}")]
    Io {
        /// What.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Everything a task reports back to the loop.
enum Msg {
    Input(Input),
    Inventory(Result<Listing, String>),
    HealthRound {
        ops: Vec<OpRef>,
        result: Result<Vec<HostInfo>, String>,
    },
    Handoff(HandoffRecord),
    Census {
        cluster: ClusterId,
        samples: Vec<(HostId, Option<(u64, String)>)>,
    },
    /// A control-socket request, answered by the loop.
    Control {
        peer: PeerCred,
        request: Request,
        reply: control::ReplyTx,
    },
}

struct Listing {
    zones: Vec<Zone>,
    pods: Vec<Pod>,
    clusters: Vec<ClusterInfo>,
    hosts: Vec<HostInfo>,
}

/// Each host's last heartbeat (counter, incarnation) seen by a census.
type CensusSample = HashMap<HostId, (u64, String)>;

/// A mapped host as the loop knows it.
#[derive(Debug, Clone)]
struct HostEntry {
    uuid: String,
    name: String,
    ip: Option<String>,
    cluster_uuid: String,
    cluster_name: String,
    info: HostInfo,
}

pub(crate) struct Drivers {
    ipmi: IpmiDriver,
    fence_agent: FenceAgentDriver,
    script: ScriptDriver,
    redfish: RedfishDriver,
}

pub(crate) fn drivers_for_check(cfg: &RuntimeConfig) -> Drivers {
    build_drivers(cfg)
}

fn build_drivers(cfg: &RuntimeConfig) -> Drivers {
    Drivers {
        ipmi: IpmiDriver {
            cipher_suite: cfg.power.cipher_suite,
            privilege: cfg
                .power
                .privilege
                .parse()
                .unwrap_or(ipmi_lan::Privilege::Administrator),
            retransmit: Duration::from_millis(cfg.power.retransmit_ms),
            guard: EpochGuard::default(),
        },
        fence_agent: FenceAgentDriver {
            agent: PathBuf::from(&cfg.power.agent),
            options: cfg
                .power
                .agent_options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            guard: EpochGuard::default(),
        },
        script: ScriptDriver {
            script: cfg.power.script.clone(),
            guard: EpochGuard::default(),
        },
        redfish: RedfishDriver {
            ca_file: cfg.power.redfish_ca_file.clone(),
            systems_uri: Some(cfg.power.redfish_systems_uri.clone()).filter(|u| !u.is_empty()),
            guard: EpochGuard::default(),
        },
    }
}

impl Drivers {
    pub(crate) fn get(&self, kind: DriverKind) -> &dyn PowerDriver {
        match kind {
            DriverKind::Ipmi => &self.ipmi,
            DriverKind::FenceAgent => &self.fence_agent,
            DriverKind::Script => &self.script,
            DriverKind::Redfish => &self.redfish,
        }
    }
}

struct Ctx<'a> {
    cfg: &'a RuntimeConfig,
    handoffs: &'a Handoffs,
}

impl MapContext for Ctx<'_> {
    fn power_driver_configured(&self, host: &HostInfo) -> bool {
        let ov = self.cfg.host_override(&host.name, &host.id);
        if ov.is_some_and(|o| {
            o.bmc_address.is_some() || o.driver.is_some_and(|d| d != DriverKind::Ipmi)
        }) {
            return true;
        }
        host.outofbandmanagement
            .as_ref()
            .is_some_and(|o| o.enabled && o.address.as_deref().is_some_and(|a| !a.is_empty()))
    }
    fn declared_degraded_by_us(&self, host_uuid: &str) -> bool {
        self.handoffs.degraded_by_us(host_uuid)
    }
}

/// Names of the files in the journal directory.
pub const JOURNAL_FILE: &str = "journal";
/// The hand-off side journal.
pub const HANDOFF_FILE: &str = "handoff.journal";
/// The persisted CloudStack uuid -> core id map.
pub const IDS_FILE: &str = "ids.json";

fn load_ids(path: &Path) -> Result<IdMap, DaemonError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| DaemonError::Io {
            what: format!("{} is not a valid id map", path.display()),
            source: std::io::Error::other(e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(IdMap::default()),
        Err(source) => Err(DaemonError::Io {
            what: format!("read {}", path.display()),
            source,
        }),
    }
}

fn save_ids(path: &Path, ids: &IdMap) -> Result<(), DaemonError> {
    let io = |source| DaemonError::Io {
        what: format!("write {}", path.display()),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(ids).expect("id map serialises");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

pub(crate) fn client_for_check(
    cfg: &RuntimeConfig,
    secrets: &Secrets,
) -> Result<Client, DaemonError> {
    let mut cc = ClientConfig::new(
        cfg.cloudstack.url.clone(),
        Credentials::new(
            cfg.cloudstack.api_key.clone(),
            secrets.cloudstack.secret_key.expose().to_string(),
        ),
    );
    cc.ca_file = cfg.cloudstack.ca_file.clone();
    cc.request_timeout = Duration::from_millis(cfg.cloudstack.request_timeout_ms);
    Ok(Client::new(cc)?)
}

/// Fetches zones, pods, clusters and KVM hosts.
async fn fetch_listing(client: &Client) -> Result<Listing, cloudstack_api::Error> {
    Ok(Listing {
        zones: client.list_zones().await?,
        pods: client.list_pods().await?,
        clusters: client.list_clusters().await?,
        hosts: client.list_kvm_hosts(None).await?,
    })
}

/// The running daemon.
pub struct Daemon {
    config_path: PathBuf,
    cfg: RuntimeConfig,
    secrets: Secrets,
    core: Coordinator,
    journal: CoreJournal,
    roles: Roles,
    handoff_journal: HandoffJournal,
    handoffs: Handoffs,
    handoff_running: HashSet<String>,
    client: Arc<Client>,
    ids: IdMap,
    ids_path: PathBuf,
    hosts: HashMap<HostId, HostEntry>,
    inventory: Option<Inventory>,
    inventory_pending: bool,
    api_ok: bool,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    power_sem: Arc<Semaphore>,
    activity_sem: Arc<Semaphore>,
    drivers: Arc<Drivers>,
    in_flight_power: Arc<AtomicUsize>,
    stopping: bool,
    /// Last heartbeat census per cluster: when, and each host's last
    /// (counter, incarnation).
    census: HashMap<ClusterId, (u64, CensusSample)>,
    census_running: HashSet<ClusterId>,
    notifier: Notifier,
    started: Instant,
    /// Events for the control socket (backlog and followers).
    hub: Arc<EventHub>,
    metrics: Arc<Metrics>,
    sinks: control::Sinks,
    host_side: HashMap<HostId, control::HostSide>,
    last_compaction_unix_ms: Option<u64>,
    /// After a replicated compaction failed: not before this instant again.
    compact_retry_at: Option<std::time::Instant>,
    /// The journal's size right after this instance's last compaction.
    compacted_bytes: u64,
    /// Records in the journal file.
    journal_records: u64,
    _lock: DirLock,
}

impl Daemon {
    /// Loads everything and rebuilds the core from the journal. Refuses
    /// (with the reason) a bad configuration, a bad secrets file or a
    /// journal directory held by another daemon.
    pub fn start(config_path: &Path) -> Result<Daemon, DaemonError> {
        Self::start_with(config_path, StartOptions::default())
    }

    /// [`Daemon::start`], as standby when told (always with `quorum = "corosync"`).
    pub fn start_with(config_path: &Path, opts: StartOptions) -> Result<Daemon, DaemonError> {
        let cfg = RuntimeConfig::load(config_path)?;
        let secrets = Secrets::load(&cfg.daemon.secrets_file)?;
        let lock = DirLock::acquire(&cfg.daemon.journal_dir)?;
        let dir = cfg.daemon.journal_dir.clone();
        let (roles, journal, records, act_now) = Roles::open(&cfg, &dir, opts)?;
        let (handoff_journal, handoffs) = roles.open_handoffs(&cfg, &dir)?;
        let ids_path = dir.join(IDS_FILE);
        let ids = load_ids(&ids_path)?;
        let client = Arc::new(client_for_check(&cfg, &secrets)?);
        let n = records.len();
        // A standby's core is never driven (and its start records never written): promotion
        // rebuilds it from the journal.
        let (core, actions) = Coordinator::recover(cfg.core.clone(), records, now_ms())?;
        if act_now {
            tracing::info!(
                "coordinator epoch {} started from {} journal records in {}",
                core.epoch(),
                n,
                dir.display()
            );
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let sinks = control::Sinks::open(&cfg.events)?;
        let mut d = Daemon {
            config_path: config_path.to_path_buf(),
            power_sem: Arc::new(Semaphore::new(cfg.daemon.power_concurrency)),
            activity_sem: Arc::new(Semaphore::new(cfg.daemon.activity_concurrency)),
            drivers: Arc::new(build_drivers(&cfg)),
            cfg,
            secrets,
            core,
            journal,
            roles,
            handoff_journal,
            handoffs,
            handoff_running: HashSet::new(),
            client,
            ids,
            ids_path,
            hosts: HashMap::new(),
            inventory: None,
            inventory_pending: false,
            api_ok: true,
            tx,
            rx,
            in_flight_power: Arc::new(AtomicUsize::new(0)),
            stopping: false,
            census: HashMap::new(),
            census_running: HashSet::new(),
            notifier: Notifier::from_env(),
            started: Instant::now(),
            hub: Arc::new(EventHub::new(hactl_control::DEFAULT_BACKLOG)),
            metrics: Arc::new(Metrics::new()),
            sinks,
            host_side: HashMap::new(),
            last_compaction_unix_ms: None,
            compact_retry_at: None,
            compacted_bytes: 0,
            journal_records: n as u64,
            _lock: lock,
        };
        if act_now {
            d.execute(actions)?;
            let now = now_ms();
            let a = d.core.handle(now, Input::QuorumChanged { quorate: true });
            d.execute(a)?;
        }
        d.update_gauges();
        Ok(d)
    }

    /// Binds the control socket and the metrics endpoint and serves them
    /// on their own tasks. Called first in [`Daemon::run`]: binding the
    /// socket sets the process umask for a moment.
    async fn serve_operator_interface(
        &mut self,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, DaemonError> {
        let path = self.cfg.daemon.control_socket.clone();
        if let Some(dir) = path.parent() {
            if !dir.exists() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(dir)
                    .map_err(|source| DaemonError::Io {
                        what: format!("create the control socket's directory {}", dir.display()),
                        source,
                    })?;
            }
        }
        let server = ControlServer::bind(ServerConfig {
            path,
            group: ControlGroup::by_name(&self.cfg.daemon.control_group)?,
        })
        .await?;
        tracing::info!(
            "control socket {} (root and group {})",
            server.path().display(),
            self.cfg.daemon.control_group
        );
        let port = Arc::new(control::ControlPort {
            tx: self.tx.clone(),
            hub: self.hub.clone(),
        });
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = server.serve(port).await {
                tracing::error!("control socket stopped: {e}");
            }
        })];
        if !self.cfg.daemon.metrics_listen.is_empty() {
            let addr = self
                .cfg
                .daemon
                .metrics_listen
                .parse()
                .map_err(|e| DaemonError::Io {
                    what: format!("daemon.metrics_listen {}", self.cfg.daemon.metrics_listen),
                    source: std::io::Error::other(e),
                })?;
            let listener = hactl_metrics::bind(addr).await?;
            tracing::info!(
                "metrics endpoint http://{}/metrics",
                listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            );
            let metrics = self.metrics.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = hactl_metrics::serve(listener, metrics).await {
                    tracing::error!("metrics endpoint stopped: {e}");
                }
            }));
        }
        Ok(tasks)
    }

    /// Runs until SIGTERM/SIGINT; returns after a graceful stop.
    pub async fn run(mut self) -> Result<(), DaemonError> {
        use tokio::signal::unix::{signal, SignalKind};
        let sig = |k| {
            signal(k).map_err(|source| DaemonError::Io {
                what: "install signal handler".into(),
                source,
            })
        };
        let mut sigterm = sig(SignalKind::terminate())?;
        let mut sigint = sig(SignalKind::interrupt())?;
        let mut sighup = sig(SignalKind::hangup())?;
        let operator_tasks = self.serve_operator_interface().await?;
        let mut watchdog = self.notifier.watchdog_interval().map(tokio::time::interval);
        let mut inventory_timer =
            tokio::time::interval(Duration::from_millis(self.cfg.daemon.inventory_interval_ms));
        // The core's quorum gate is a lease (`quorum_lease_ms`): a standalone
        // provider renews it three times per lease while the API answers, so
        // a stalled daemon loop or an unreachable API closes the gate by itself.
        let mut quorum_renewal = tokio::time::interval(Duration::from_millis(
            (self.cfg.core.quorum_lease_ms / 3).max(100),
        ));
        let mut role_timer = tokio::time::interval(Roles::tick_interval(&self.cfg));
        self.notifier.notify("READY=1");
        tracing::info!("ready");
        loop {
            let sleep = match self.core.next_timeout().filter(|_| self.roles.acting()) {
                Some(t) => Duration::from_millis(t.saturating_sub(now_ms())),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                biased;
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
                _ = sighup.recv() => self.reload(),
                Some(msg) = self.rx.recv() => {
                    let mut msgs = vec![msg];
                    while let Ok(m) = self.rx.try_recv() {
                        msgs.push(m);
                    }
                    self.handle_msgs(msgs)?;
                }
                _ = tokio::time::sleep(sleep) => {
                    let a = self.core.handle(now_ms(), Input::Tick);
                    self.execute(a)?;
                }
                _ = async { match watchdog.as_mut() { Some(w) => { w.tick().await; } None => std::future::pending::<()>().await } } => {
                    self.notifier.notify("WATCHDOG=1");
                }
                _ = inventory_timer.tick() => self.spawn_inventory(),
                _ = role_timer.tick() => self.on_role_tick()?,
                _ = quorum_renewal.tick() => {
                    if self.api_ok && self.roles.renews_quorum() {
                        let a = self.core.handle(now_ms(), Input::QuorumChanged { quorate: true });
                        self.execute(a)?;
                    }
                }
            }
        }
        // No new control requests; the socket file goes with the server.
        for t in &operator_tasks {
            t.abort();
        }
        for t in operator_tasks {
            let _ = t.await;
        }
        self.shutdown().await
    }

    async fn shutdown(mut self) -> Result<(), DaemonError> {
        tracing::info!(
            "stopping: no new operations; waiting for {} in-flight power operation(s)",
            self.in_flight_power.load(Ordering::SeqCst)
        );
        self.notifier.notify("STOPPING=1");
        self.stopping = true;
        let until = Instant::now() + Duration::from_millis(self.cfg.daemon.shutdown_timeout_ms);
        while self.in_flight_power.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            if let Ok(Some(msg)) =
                tokio::time::timeout(Duration::from_millis(50), self.rx.recv()).await
            {
                let mut msgs = vec![msg];
                while let Ok(m) = self.rx.try_recv() {
                    msgs.push(m);
                }
                self.handle_msgs(msgs)?;
            }
        }
        // Results that arrived last.
        let mut msgs = Vec::new();
        while let Ok(m) = self.rx.try_recv() {
            msgs.push(m);
        }
        self.handle_msgs(msgs)?;
        let left = self.in_flight_power.load(Ordering::SeqCst);
        if left > 0 {
            tracing::warn!("stopped with {left} power operation(s) still running past the shutdown timeout; the journal makes the next start verify them");
        }
        // Requests that reached the loop after the server stopped.
        self.sinks.shutdown();
        drop(self.journal);
        drop(self.handoff_journal);
        tracing::info!("stopped; journal closed");
        Ok(())
    }

    fn reload(&mut self) {
        match RuntimeConfig::load(&self.config_path) {
            Err(e) => tracing::error!("reload refused, keeping the running configuration: {e}"),
            Ok(new) => match Secrets::load(&new.daemon.secrets_file) {
                Err(e) => {
                    tracing::error!("reload refused, keeping the running configuration: {e}")
                }
                Ok(secrets) => {
                    if new.core != self.cfg.core
                        || new.daemon != self.cfg.daemon
                        || new.events != self.cfg.events
                    {
                        tracing::warn!("reload: [core], [daemon] and [events] changes take effect at the next restart");
                    }
                    match client_for_check(&new, &secrets) {
                        Err(e) => tracing::error!(
                            "reload refused, keeping the running configuration: {e}"
                        ),
                        Ok(client) => {
                            self.client = Arc::new(client);
                            let core = self.cfg.core.clone();
                            let daemon = self.cfg.daemon.clone();
                            let events = self.cfg.events.clone();
                            self.cfg = new;
                            self.cfg.core = core;
                            self.cfg.daemon = daemon;
                            self.cfg.events = events;
                            self.drivers = Arc::new(build_drivers(&self.cfg));
                            self.secrets = secrets;
                            tracing::info!(
                                "configuration reloaded from {}",
                                self.config_path.display()
                            );
                            self.spawn_inventory();
                        }
                    }
                }
            },
        }
    }

    fn handle_msgs(&mut self, msgs: Vec<Msg>) -> Result<(), DaemonError> {
        let mut inputs = Vec::new();
        for m in msgs {
            match m {
                Msg::Input(i) => {
                    self.note_input(&i);
                    inputs.push(i)
                }
                Msg::Control {
                    peer,
                    request,
                    reply,
                } => {
                    // In order: what arrived before the request is decided
                    // first, so the answer reflects it.
                    self.run_batch(std::mem::take(&mut inputs))?;
                    self.on_control(peer, request, reply)?;
                }
                Msg::Inventory(r) => {
                    self.inventory_pending = false;
                    match r {
                        Ok(l) => {
                            self.set_api_ok(true, &mut inputs);
                            self.apply_listing(l, &mut inputs)?;
                        }
                        Err(e) => {
                            tracing::error!("CloudStack inventory not readable: {e}");
                            self.set_api_ok(false, &mut inputs);
                        }
                    }
                }
                Msg::Census { cluster, samples } => {
                    self.census_running.remove(&cluster);
                    if let Some(i) = self.note_census(cluster, samples) {
                        inputs.push(i);
                    }
                }
                Msg::HealthRound { ops, result } => match result {
                    Ok(hosts) => {
                        self.set_api_ok(true, &mut inputs);
                        if let Some(c) = ops.first().and_then(|op| self.core.host(op.host)) {
                            self.spawn_census(c.cluster);
                        }
                        let by_uuid: HashMap<&str, &HostInfo> =
                            hosts.iter().map(|h| (h.id.as_str(), h)).collect();
                        for op in ops {
                            let Some(e) = self.hosts.get(&op.host) else {
                                continue;
                            };
                            if let Some(h) = by_uuid.get(e.uuid.as_str()) {
                                if csinv::is_listed_host(h) {
                                    let i = Input::HealthResult {
                                        op,
                                        outcome: csinv::health_of(h),
                                    };
                                    self.note_input(&i);
                                    inputs.push(i);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!("CloudStack health round failed: {e}");
                        self.set_api_ok(false, &mut inputs);
                    }
                },
                Msg::Handoff(rec) => {
                    self.handoff_journal.append(&rec)?;
                    let host = match &rec {
                        HandoffRecord::DeclareDue { host }
                        | HandoffRecord::Declared { host }
                        | HandoffRecord::DeclareAbandoned { host, .. }
                        | HandoffRecord::CancelDue { host }
                        | HandoffRecord::Cancelled { host } => host.clone(),
                    };
                    tracing::info!(
                        "VM-HA hand-off: {}",
                        serde_json::to_string(&rec).unwrap_or_default()
                    );
                    self.handoffs.apply(&rec);
                    self.handoff_running.remove(&host);
                    self.reconcile_handoffs()?;
                    self.resume_handoffs();
                }
            }
        }
        if self.roles.acting() {
            self.run_batch(inputs)?;
        }
        self.reconcile_handoffs()?;
        self.resume_handoffs();
        self.maybe_compact()
    }

    /// Feeds a batch of inputs to the core and carries out its actions.
    fn run_batch(&mut self, inputs: Vec<Input>) -> Result<(), DaemonError> {
        if inputs.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        self.core.handle_batch(now_ms(), inputs, &mut out);
        self.execute(out)?;
        self.update_gauges();
        Ok(())
    }

    /// Rewrites the journal with the core's compact records once it is
    /// larger than configured. Only after an inventory was applied: the
    /// core's hosts (and so their restored states) come with it.
    fn maybe_compact(&mut self) -> Result<(), DaemonError> {
        // Read once: in corosync mode it is the replica's status, taken under its lock.
        let before = self.journal.len();
        if self.inventory.is_none() || before <= self.cfg.daemon.journal_compact_bytes {
            return Ok(());
        }
        if self.journal.replicated() {
            // Only the active compacts the group's log, and only from a core whose every record
            // is durable (each append waited for it), so its compact records are exactly what
            // the log holds; after a failure, not again for a while. A snapshot that is itself
            // over the threshold is not taken again until the log has doubled: every snapshot is
            // a group round trip and a rewrite on every member.
            if !self.roles.acting()
                || self
                    .compact_retry_at
                    .is_some_and(|t| std::time::Instant::now() < t)
                || before <= self.compacted_bytes.saturating_mul(2)
            {
                return Ok(());
            }
        }
        let records = self.core.compact_records(now_ms());
        match self.journal.rewrite(&records) {
            Err(DaemonError::NotCompacted(why)) => {
                tracing::warn!("{why}; trying again in 10 s");
                self.compact_retry_at =
                    Some(std::time::Instant::now() + std::time::Duration::from_secs(10));
                return Ok(());
            }
            done => done?,
        }
        self.compact_retry_at = None;
        self.compacted_bytes = self.journal.len();
        self.journal_records = records.len() as u64;
        self.last_compaction_unix_ms = Some(hactl_control::time::now_unix_ms());
        tracing::info!(
            "journal compacted: {before} -> {} bytes ({} records)",
            self.journal.len(),
            records.len()
        );
        Ok(())
    }

    /// Starts a heartbeat census of a `local`-mode cluster when the last
    /// one is at least one activity window old: every host's heartbeat read
    /// on the coordinator's mounts (abandonable reads).
    fn spawn_census(&mut self, cluster: ClusterId) {
        if self.stopping || self.census_running.contains(&cluster) {
            return;
        }
        let now = now_ms();
        if let Some((at, _)) = self.census.get(&cluster) {
            if now.saturating_sub(*at) < self.cfg.core.activity_sample_window_ms {
                return;
            }
        }
        let members: Vec<(HostId, &HostEntry)> = self
            .hosts
            .iter()
            .filter(|(id, _)| self.core.host(**id).is_some_and(|v| v.cluster == cluster))
            .map(|(id, e)| (*id, e))
            .collect();
        let Some((_, first)) = members.first() else {
            return;
        };
        let (mode, mounts) = self.mounts_for(&first.cluster_uuid, &first.cluster_name);
        if mode != ActivityMode::Local || mounts.is_empty() {
            return;
        }
        let mount = mounts[0].clone();
        let requests: Vec<(HostId, kvm_host::reader::ReadRequest)> = members
            .iter()
            .map(|(id, e)| {
                (
                    *id,
                    kvm_host::reader::ReadRequest {
                        file: kvm_host::heartbeat::heartbeat_path(
                            &mount,
                            &self.cfg.activity.heartbeat_dir,
                            &e.name,
                        ),
                        require_mount_of: self.cfg.activity.require_mount.then(|| mount.clone()),
                    },
                )
            })
            .collect();
        let reader = (!self.cfg.activity.reader.is_empty())
            .then(|| PathBuf::from(&self.cfg.activity.reader));
        let timeout = Duration::from_millis(self.cfg.activity.read_timeout_ms);
        self.census_running.insert(cluster);
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let reqs: Vec<_> = requests.iter().map(|(_, r)| r.clone()).collect();
            let results = kvm_host::reader::read_all_with(&reqs, Instant::now() + timeout, &|| {
                activity::reader_command(&reader)
            });
            let samples = requests
                .iter()
                .zip(results)
                .map(|((id, _), r)| {
                    let rec = match r {
                        kvm_host::reader::ReadResult::Report(
                            kvm_host::reader::ReadReport::Record { record },
                        ) => Some((record.counter, record.incarnation)),
                        _ => None,
                    };
                    (*id, rec)
                })
                .collect();
            let _ = tx.send(Msg::Census { cluster, samples });
        });
    }

    /// Compares a census with the previous one: a host is fresh when its
    /// heartbeat changed. No census is reported when nothing could be read
    /// (our own mount failing is not a cliff of the hosts).
    fn note_census(
        &mut self,
        cluster: ClusterId,
        samples: Vec<(HostId, Option<(u64, String)>)>,
    ) -> Option<Input> {
        let now = now_ms();
        let readable: HashMap<HostId, (u64, String)> = samples
            .iter()
            .filter_map(|(id, r)| r.clone().map(|r| (*id, r)))
            .collect();
        if readable.is_empty() {
            tracing::warn!("heartbeat census of {cluster}: nothing readable on this coordinator's mount; not counted");
            return None;
        }
        let previous = self.census.insert(cluster, (now, readable.clone()));
        let (_, prev) = previous?;
        let total = samples.len() as u32;
        let fresh = readable
            .iter()
            .filter(|(id, r)| prev.get(id).is_some_and(|p| p != *r))
            .count() as u32;
        tracing::debug!("heartbeat census of {cluster}: {fresh} of {total} fresh");
        Some(Input::HeartbeatCensus {
            cluster,
            fresh,
            total,
        })
    }

    fn set_api_ok(&mut self, ok: bool, inputs: &mut Vec<Input>) {
        if ok != self.api_ok {
            self.api_ok = ok;
            if ok {
                tracing::warn!("CloudStack API answers again: fencing may resume");
            } else {
                tracing::error!("CloudStack API unreachable: fencing suspended (quorum withdrawn) until it answers");
            }
            inputs.push(Input::QuorumChanged { quorate: ok });
        }
    }

    fn apply_listing(&mut self, l: Listing, inputs: &mut Vec<Input>) -> Result<(), DaemonError> {
        let before = self.ids.clone();
        let ctx = Ctx {
            cfg: &self.cfg,
            handoffs: &self.handoffs,
        };
        let mut mapped = csinv::map_inventory(
            &l.zones,
            &l.pods,
            &l.clusters,
            &l.hosts,
            &ctx,
            &mut self.ids,
        );
        if self.ids != before {
            // Journal records name hosts by these ids: durable before use.
            save_ids(&self.ids_path, &self.ids)?;
            self.journal.replicate_ids(&self.ids, self.roles.acting());
        }
        let cluster_names: HashMap<&str, &str> = l
            .clusters
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str()))
            .collect();
        for (host, m) in mapped.inventory.hosts.iter_mut().zip(&mapped.hosts) {
            if let Some(ov) = self.cfg.host_override(&m.name, &m.uuid) {
                host.overrides.power_op_timeout_ms = ov.power_op_timeout_ms;
                host.overrides.quiet_period_ms = ov.quiet_period_ms;
            }
        }
        self.hosts.clear();
        for m in &mapped.hosts {
            for why in &m.ineligible {
                if *why == csinv::Ineligible::CloudStackHostHa {
                    tracing::warn!("host {} ({}): {why}", m.name, m.uuid);
                }
            }
            let cluster_uuid = m.info.clusterid.clone().unwrap_or_default();
            self.hosts.insert(
                m.id,
                HostEntry {
                    uuid: m.uuid.clone(),
                    name: m.name.clone(),
                    ip: m.ipaddress.clone(),
                    cluster_name: cluster_names
                        .get(cluster_uuid.as_str())
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                    cluster_uuid,
                    info: m.info.clone(),
                },
            );
        }
        match &self.inventory {
            None => inputs.push(Input::Inventory(mapped.inventory.clone())),
            Some(old) => {
                for c in csinv::diff(old, &mapped.inventory) {
                    tracing::info!("inventory change: {c:?}");
                    inputs.push(Input::InventoryChange(c));
                }
            }
        }
        self.inventory = Some(mapped.inventory);
        self.resume_handoffs();
        Ok(())
    }

    fn spawn_inventory(&mut self) {
        if self.inventory_pending || self.stopping {
            return;
        }
        self.inventory_pending = true;
        let client = self.client.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let r = fetch_listing(&client).await.map_err(|e| e.to_string());
            let _ = tx.send(Msg::Inventory(r));
        });
    }

    /// Carries out the core's actions in order.
    fn execute(&mut self, actions: Vec<Action>) -> Result<(), DaemonError> {
        let mut health: BTreeMap<String, Vec<OpRef>> = BTreeMap::new();
        for a in actions {
            match a {
                Action::Persist(r) => {
                    let started = Instant::now();
                    match self.journal.append(&r) {
                        // Persist-before-act: nothing after a record that is not durable.
                        Err(DaemonError::NotDurable(why)) => {
                            self.deactivate(&why);
                            return Ok(());
                        }
                        done => done?,
                    }
                    self.metrics.observe_journal_fsync(started.elapsed());
                    self.journal_records += 1;
                }
                Action::Emit(e) => self.on_event(&e)?,
                _ if self.stopping => {}
                Action::RunHealthCheck { op, .. } => {
                    if let Some(h) = self.hosts.get(&op.host) {
                        health.entry(h.cluster_uuid.clone()).or_default().push(op);
                    }
                }
                Action::RunActivityCheck {
                    op,
                    checker,
                    window_ms,
                    timeout_ms,
                } => self.spawn_activity(op, checker, window_ms, timeout_ms),
                Action::ReadPower { op, timeout_ms } => {
                    self.spawn_power(op, PowerOp::Status, timeout_ms)
                }
                Action::PowerOff { op, timeout_ms, .. } => {
                    self.spawn_power(op, PowerOp::Off, timeout_ms)
                }
                Action::PowerOn { op, timeout_ms, .. } => {
                    self.spawn_power(op, PowerOp::On, timeout_ms)
                }
                Action::PowerCycle { op, timeout_ms } => {
                    self.spawn_power(op, PowerOp::Cycle, timeout_ms)
                }
            }
        }
        for (cluster, ops) in health {
            let client = self.client.clone();
            let tx = self.tx.clone();
            let metrics = self.metrics.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = client
                    .list_kvm_hosts(Some(&cluster))
                    .await
                    .map_err(|e| e.to_string());
                metrics.observe_health_check(started.elapsed());
                let _ = tx.send(Msg::HealthRound { ops, result });
            });
        }
        Ok(())
    }

    fn on_event(&mut self, e: &Event) -> Result<(), DaemonError> {
        let line = serde_json::to_string(e).unwrap_or_default();
        tracing::info!(target: "hactl_event", "{line}");
        self.publish_event(e);
        match e {
            Event::FenceConfirmed { host, .. } => {
                if let Some(h) = self.hosts.get(host) {
                    if let Some(rec) = self.handoffs.on_fence_confirmed(&h.uuid) {
                        self.handoff_journal.append(&rec)?;
                        self.handoffs.apply(&rec);
                        self.resume_handoffs();
                    }
                }
            }
            Event::HaStateChanged {
                host,
                to: HaState::Available,
                ..
            } => {
                if let Some(h) = self.hosts.get(host) {
                    if let Some(rec) = self.handoffs.on_available(&h.uuid) {
                        self.handoff_journal.append(&rec)?;
                        self.handoffs.apply(&rec);
                        self.resume_handoffs();
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A host declared degraded that is already AVAILABLE again (it came
    /// back while the declare was running, or before a restart) owes its
    /// cancel now.
    fn reconcile_handoffs(&mut self) -> Result<(), DaemonError> {
        let declared: Vec<String> = self
            .handoffs
            .hosts
            .iter()
            .filter(|(_, s)| **s == HandoffState::Declared)
            .map(|(h, _)| h.clone())
            .collect();
        for uuid in declared {
            let available = self
                .ids
                .host_id(&uuid)
                .and_then(|id| self.core.host(id))
                .is_some_and(|v| v.ha == HaState::Available);
            if available {
                if let Some(rec) = self.handoffs.on_available(&uuid) {
                    self.handoff_journal.append(&rec)?;
                    self.handoffs.apply(&rec);
                }
            }
        }
        Ok(())
    }

    /// Starts a task for every owed hand-off step that has none running.
    fn resume_handoffs(&mut self) {
        if self.stopping || !self.roles.acting() {
            return;
        }
        let owed: Vec<(String, HandoffState)> = self
            .handoffs
            .hosts
            .iter()
            .filter(|(h, s)| {
                matches!(s, HandoffState::DeclareDue | HandoffState::CancelDue)
                    && !self.handoff_running.contains(*h)
            })
            .map(|(h, s)| (h.clone(), *s))
            .collect();
        for (host, state) in owed {
            self.handoff_running.insert(host.clone());
            let client = self.client.clone();
            let tx = self.tx.clone();
            let wait = Duration::from_millis(self.cfg.cloudstack.degrade_wait_ms);
            let retry = Duration::from_millis(self.cfg.cloudstack.handoff_retry_ms);
            let cluster = self
                .hosts
                .values()
                .find(|e| e.uuid == host)
                .map(|e| e.cluster_uuid.clone());
            tokio::spawn(async move {
                let rec = match state {
                    HandoffState::DeclareDue => {
                        declare(&client, &host, cluster.as_deref(), wait, retry).await
                    }
                    _ => cancel(&client, &host, cluster.as_deref(), retry).await,
                };
                let _ = tx.send(Msg::Handoff(rec));
            });
        }
    }

    fn bmc_target(&self, host: HostId) -> Result<(BmcTarget, DriverKind), PowerError> {
        let e = self
            .hosts
            .get(&host)
            .ok_or_else(|| PowerError::Config(format!("{host} is not in the inventory")))?;
        target_for(&self.cfg, &self.secrets, &e.info)
    }

    fn spawn_power(&mut self, op: OpRef, kind: PowerOp, timeout_ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let req = PowerRequest {
            host: op.host,
            op: kind,
            epoch: self.core.epoch(),
            deadline,
        };
        let tx = self.tx.clone();
        let answer = move |r: Result<PowerAnswer, PowerError>| match kind {
            PowerOp::Status => Input::PowerReadResult {
                op,
                reading: match r {
                    Ok(PowerAnswer::State(s)) => s,
                    Ok(PowerAnswer::Accepted) => PowerReading::Unknown,
                    Err(e) => e.reading(),
                },
            },
            _ => Input::PowerActionResult {
                op,
                outcome: match r {
                    Ok(_) => PowerActionOutcome::Accepted,
                    Err(e) => PowerActionOutcome::Failed(e.failure()),
                },
            },
        };
        let (target, driver) = match self.bmc_target(op.host) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("power {:?} of {}: {e}", kind, op.host);
                let _ = tx.send(Msg::Input(answer(Err(e))));
                return;
            }
        };
        self.side(op.host).start(match kind {
            PowerOp::Status => "power read",
            PowerOp::Off => "power off",
            PowerOp::On => "power on",
            PowerOp::Cycle => "power cycle",
        });
        let sem = self.power_sem.clone();
        let drivers = self.drivers.clone();
        let gate = self.roles.gate();
        let in_flight = self.in_flight_power.clone();
        let metrics = self.metrics.clone();
        in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let permit = sem.acquire_owned().await;
            let r = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let started = Instant::now();
                // Right before the BMC: this instance still acts (and, with Corosync, in the
                // current fencing epoch, quorate within the lease).
                let r = gate
                    .authorize()
                    .and_then(|()| drivers.get(driver).execute(&target, &req));
                if kind == PowerOp::Status {
                    let reading = match &r {
                        Ok(PowerAnswer::State(s)) => *s,
                        Ok(PowerAnswer::Accepted) => PowerReading::Unknown,
                        Err(e) => e.reading(),
                    };
                    metrics.observe_power_read(reading, started.elapsed());
                }
                r.map_err(|e| {
                    tracing::error!(
                        "power {:?} of {} ({}, BMC {}:{}) failed: {e}",
                        req.op,
                        target.host_name,
                        req.host,
                        target.address,
                        target.port
                    );
                    e
                })
            })
            .await
            .unwrap_or_else(|e| Err(PowerError::Rejected(format!("driver panicked: {e}"))));
            match (&r, kind) {
                (Ok(a), PowerOp::Status) => {
                    tracing::debug!("power {:?} of {}: {:?}", kind, op.host, a)
                }
                (Ok(a), _) => tracing::info!("power {:?} of {}: {:?}", kind, op.host, a),
                _ => {}
            }
            let _ = tx.send(Msg::Input(answer(r)));
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn mounts_for(&self, cluster_uuid: &str, cluster_name: &str) -> (ActivityMode, Vec<PathBuf>) {
        let p = self.cfg.partition_override(cluster_name, cluster_uuid);
        let mode = p
            .and_then(|p| p.activity_mode)
            .unwrap_or(self.cfg.activity.mode);
        let mounts = match p {
            Some(p) if !p.mounts.is_empty() => p.mounts.values().cloned().collect(),
            _ => self.cfg.activity.mounts.values().cloned().collect(),
        };
        (mode, mounts)
    }

    fn spawn_activity(&mut self, op: OpRef, checker: HostId, window_ms: u64, timeout_ms: u64) {
        let tx = self.tx.clone();
        let started = now_ms();
        let cannot = |reason, why: String| {
            tracing::warn!("activity check of {}: {why}", op.host);
            Input::ActivityResult {
                op,
                checker,
                verdict: ActivityVerdict::CannotTell(reason),
                window: Window {
                    from: started,
                    to: started,
                },
            }
        };
        let Some(suspect) = self.hosts.get(&op.host).cloned() else {
            let _ = tx.send(Msg::Input(cannot(
                CannotTellReason::NoHeartbeatRecord,
                "not in the inventory".into(),
            )));
            return;
        };
        let (mode, mounts) = self.mounts_for(&suspect.cluster_uuid, &suspect.cluster_name);
        let window = Duration::from_millis(window_ms);
        let deadline = Duration::from_millis(timeout_ms);
        let sem = self.activity_sem.clone();
        let metrics = self.metrics.clone();
        self.side(op.host).start("activity check");
        match mode {
            ActivityMode::Local => {
                let check = LocalCheck {
                    mounts,
                    host: suspect.name.clone(),
                    heartbeat_dir: self.cfg.activity.heartbeat_dir.clone(),
                    window,
                    io_timeout: Duration::from_millis(self.cfg.activity.read_timeout_ms),
                    reader: (!self.cfg.activity.reader.is_empty())
                        .then(|| PathBuf::from(&self.cfg.activity.reader)),
                    cloudstack_hb_ip: self
                        .cfg
                        .activity
                        .cloudstack_heartbeat
                        .then(|| suspect.ip.clone())
                        .flatten(),
                    require_mount: self.cfg.activity.require_mount,
                };
                tokio::spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    let from = now_ms();
                    let (verdict, why) =
                        tokio::task::spawn_blocking(move || activity::run_local(&check))
                            .await
                            .unwrap_or((
                                ActivityVerdict::CannotTell(CannotTellReason::Timeout),
                                "local check panicked".into(),
                            ));
                    metrics.observe_activity_check(Duration::from_millis(now_ms() - from));
                    tracing::info!("activity of {} (local): {:?}: {why}", op.host, verdict);
                    let _ = tx.send(Msg::Input(Input::ActivityResult {
                        op,
                        checker,
                        verdict,
                        window: Window { from, to: now_ms() },
                    }));
                });
            }
            ActivityMode::Peer => {
                let Some(checker_ip) = self.hosts.get(&checker).and_then(|h| h.ip.clone()) else {
                    let _ = tx.send(Msg::Input(cannot(
                        CannotTellReason::CheckerUnreachable,
                        format!("checker {checker} has no address"),
                    )));
                    return;
                };
                let check = PeerSshCheck {
                    checker_ip,
                    host: suspect.name.clone(),
                    mounts,
                    heartbeat_dir: self.cfg.activity.heartbeat_dir.clone(),
                    window,
                    deadline,
                    ssh: self.cfg.activity.ssh.clone(),
                    require_mount: self.cfg.activity.require_mount,
                };
                tokio::spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    let from = now_ms();
                    let (verdict, why) = activity::run_peer(&check).await;
                    metrics.observe_activity_check(Duration::from_millis(now_ms() - from));
                    tracing::info!(
                        "activity of {} (peer {}): {:?}: {why}",
                        op.host,
                        checker,
                        verdict
                    );
                    let _ = tx.send(Msg::Input(Input::ActivityResult {
                        op,
                        checker,
                        verdict,
                        window: Window { from, to: now_ms() },
                    }));
                });
            }
        }
    }

    /// The coordinator (read-only), for reports.
    pub fn core(&self) -> &Coordinator {
        &self.core
    }

    /// Known cluster uuids (read-only).
    pub fn cluster_of(&self, host: HostId) -> Option<ClusterId> {
        self.core.host(host).map(|h| h.cluster)
    }
}

async fn find_host(
    client: &Client,
    host: &str,
    cluster: Option<&str>,
) -> Result<Option<HostInfo>, String> {
    client
        .list_kvm_hosts(cluster)
        .await
        .map(|hs| hs.into_iter().find(|h| h.id == host))
        .map_err(|e| e.to_string())
}

async fn declare(
    client: &Client,
    host: &str,
    cluster: Option<&str>,
    wait: Duration,
    retry: Duration,
) -> HandoffRecord {
    use cloudstack_api::types::{HostStatus, ResourceState};
    let until = Instant::now() + wait;
    loop {
        match find_host(client, host, cluster).await {
            Ok(Some(h)) if h.resourcestate == ResourceState::Degraded => {
                return HandoffRecord::Declared { host: host.into() }
            }
            Ok(Some(h)) if matches!(h.state, HostStatus::Alert | HostStatus::Disconnected) => {
                match client.declare_host_as_degraded(host).await {
                    Ok(_) => return HandoffRecord::Declared { host: host.into() },
                    Err(e) => tracing::warn!("declareHostAsDegraded {host}: {e}; retrying"),
                }
            }
            Ok(Some(h)) => {
                if Instant::now() >= until {
                    return HandoffRecord::DeclareAbandoned {
                        host: host.into(),
                        reason: format!(
                            "CloudStack showed the host {} (not Alert or Disconnected) for {} s; its HA VMs are not handed off: check the host",
                            h.state.as_str(), wait.as_secs()
                        ),
                    };
                }
                tracing::info!(
                    "declareHostAsDegraded {host}: waiting for CloudStack to show it Alert or Disconnected (now {})",
                    h.state.as_str()
                );
            }
            Ok(None) => {
                return HandoffRecord::DeclareAbandoned {
                    host: host.into(),
                    reason: "host no longer listed by CloudStack".into(),
                }
            }
            Err(e) => tracing::warn!("declareHostAsDegraded {host}: {e}; retrying"),
        }
        tokio::time::sleep(retry).await;
    }
}

async fn cancel(
    client: &Client,
    host: &str,
    cluster: Option<&str>,
    retry: Duration,
) -> HandoffRecord {
    use cloudstack_api::types::ResourceState;
    loop {
        match find_host(client, host, cluster).await {
            Ok(Some(h)) if h.resourcestate != ResourceState::Degraded => {
                return HandoffRecord::Cancelled { host: host.into() }
            }
            Ok(None) => return HandoffRecord::Cancelled { host: host.into() },
            Ok(Some(_)) => match client.cancel_host_as_degraded(host).await {
                Ok(_) => return HandoffRecord::Cancelled { host: host.into() },
                Err(e) => tracing::warn!("cancelHostAsDegraded {host}: {e}; retrying"),
            },
            Err(e) => tracing::warn!("cancelHostAsDegraded {host}: {e}; retrying"),
        }
        tokio::time::sleep(retry).await;
    }
}

/// Where and how to reach a host's BMC: our `[[host]]` override, else
/// CloudStack's out-of-band management fields, else `[power]`; the
/// password and Kg from the secrets file.
pub(crate) fn target_for(
    cfg: &RuntimeConfig,
    secrets: &Secrets,
    info: &HostInfo,
) -> Result<(BmcTarget, DriverKind), PowerError> {
    let ov = cfg.host_override(&info.name, &info.id);
    let oobm = info.outofbandmanagement.clone().unwrap_or_default();
    let address = ov
        .and_then(|o| o.bmc_address.clone())
        .or(oobm.address.clone().filter(|a| !a.is_empty()))
        .ok_or_else(|| PowerError::Config(format!("no BMC address for {}", info.name)))?;
    let port = ov
        .and_then(|o| o.bmc_port)
        .or(oobm.port.as_deref().and_then(|p| p.parse().ok()))
        .unwrap_or(cfg.power.port);
    let username = ov
        .and_then(|o| o.bmc_username.clone())
        .or(oobm.username.clone().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| cfg.power.username.clone());
    let sec = secrets.bmc_for(&info.name, &info.id);
    let driver = ov.and_then(|o| o.driver).unwrap_or(cfg.power.driver);
    Ok((
        BmcTarget {
            host_name: info.name.clone(),
            host_uuid: info.id.clone(),
            host_ip: info.ipaddress.clone().unwrap_or_default(),
            address,
            port,
            username,
            password: sec.password.clone().or(secrets.bmc.password.clone()),
            kg_hex: sec.kg_hex.clone().or(secrets.bmc.kg_hex.clone()),
        },
        driver,
    ))
}
