//! The operator interface of the running daemon: the control socket's
//! handler, the event sinks and what the loop remembers per host for
//! `hactl-kvm hosts`.
//!
//! The socket server runs on its own tasks, but it never touches the core:
//! [`ControlPort::handle`] sends the request to the daemon's loop
//! ([`Msg::Control`]) and waits for the answer. The loop answers it between
//! two batches, with the same `execute` (journal first) as every other core
//! input, so there is exactly one path that changes the core.

use super::{Daemon, DaemonError, Msg};
use crate::clock::now_ms;
use crate::config::EventsConfig;
use crate::power::{PowerAnswer, PowerOp, PowerRequest};
use hactl_control::dispatch;
use hactl_control::time::now_unix_ms;
use hactl_control::{
    ControlError, ControlHandler, CoordinatorRole, EventHub, EventRecord, HealthSummary,
    JournalStatus, PeerCred, Reply, Request, RoleReport, RoundSummary,
};
use hactl_core::{
    Event, EvidenceSample, HostId, InactiveReason, Input, PowerReading, PowerState, RateScope,
    Record,
};
use hactl_events::{EventHook, HookConfig, JsonlConfig, JsonlSink, SyslogSink};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The answer channel of one control request.
pub(super) type ReplyTx = oneshot::Sender<Result<Reply, ControlError>>;

/// The [`ControlHandler`] the socket server calls: a sender into the loop.
pub(super) struct ControlPort {
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    pub(super) hub: Arc<EventHub>,
}

impl ControlHandler for ControlPort {
    async fn handle(&self, peer: PeerCred, request: Request) -> Result<Reply, ControlError> {
        let (reply, answer) = oneshot::channel();
        let stopping = || ControlError::Internal {
            detail: "the daemon is stopping".into(),
        };
        self.tx
            .send(Msg::Control {
                peer,
                request,
                reply,
            })
            .map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }

    async fn events(
        &self,
        _peer: PeerCred,
        since_unix_ms: Option<u64>,
        follow: bool,
    ) -> Result<mpsc::Receiver<EventRecord>, ControlError> {
        Ok(self.hub.subscribe(since_unix_ms, follow))
    }
}

/// What only the daemon knows about a host (not the core's state).
#[derive(Debug, Default, Clone)]
pub(super) struct HostSide {
    /// When the power state was last read (Unix ms).
    pub(super) power_read_at: Option<u64>,
    pub(super) last_health: Option<HealthSummary>,
    /// Samples of the activity round in progress.
    pub(super) round_samples: Vec<EvidenceSample>,
    pub(super) last_round: Option<RoundSummary>,
    /// Operations in flight, by name ("power off", "activity check" ...).
    pub(super) pending: Vec<&'static str>,
}

impl HostSide {
    pub(super) fn start(&mut self, what: &'static str) {
        self.pending.push(what);
    }
    pub(super) fn end(&mut self, what: &'static str) {
        if let Some(i) = self.pending.iter().position(|p| *p == what) {
            self.pending.remove(i);
        }
    }
}

/// The syslog, JSON-lines and hook sinks (each optional).
#[derive(Default)]
pub(super) struct Sinks {
    syslog: Option<SyslogSink>,
    jsonl: Option<JsonlSink>,
    hook: Option<EventHook>,
}

impl Sinks {
    pub(super) fn open(cfg: &EventsConfig) -> Result<Sinks, DaemonError> {
        let io = |what: String| move |source| DaemonError::Io { what, source };
        let syslog = (!cfg.syslog_socket.is_empty())
            .then(|| SyslogSink::new(&cfg.syslog_socket))
            .transpose()
            .map_err(io(format!("syslog socket {}", cfg.syslog_socket)))?;
        let jsonl = if cfg.file.is_empty() {
            None
        } else {
            let path = PathBuf::from(&cfg.file);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(io(format!("create the events directory {}", dir.display())))?;
            }
            Some(
                JsonlSink::open(JsonlConfig {
                    path,
                    max_bytes: cfg.file_max_bytes,
                    keep: cfg.file_keep,
                })
                .map_err(io(format!("events file {}", cfg.file)))?,
            )
        };
        let hook = (!cfg.on_event.is_empty()).then(|| {
            EventHook::start(HookConfig {
                program: PathBuf::from(&cfg.on_event),
                timeout: Duration::from_millis(cfg.on_event_timeout_ms),
                queue: cfg.on_event_queue,
            })
        });
        Ok(Sinks {
            syslog,
            jsonl,
            hook,
        })
    }

    /// Stops the hook: the run in progress ends (at most at its timeout),
    /// queued events are dropped, so SIGTERM never waits for a queue of
    /// hanging runs.
    pub(super) fn shutdown(&mut self) {
        if let Some(h) = self.hook.take() {
            let queued = h.stop();
            if queued > 0 {
                tracing::warn!("on_event hook: {queued} queued event(s) not delivered at shutdown");
            }
        }
    }
}

impl Daemon {
    /// Every core event: the control socket's hub, syslog, the events
    /// file, the hook and the metrics. None of them can block the loop:
    /// syslog is a non-blocking datagram, the hook only enqueues, the file
    /// is an append without fsync.
    pub(super) fn publish_event(&mut self, e: &Event) {
        let rec = self.hub.publish(e.clone());
        let partition = match e {
            Event::HaStateChanged { cluster, .. } | Event::FenceIssued { cluster, .. } => {
                Some(*cluster)
            }
            _ => hactl_events::subjects(e)
                .0
                .and_then(|h| self.core.host(h))
                .map(|v| v.cluster),
        };
        if let Some(s) = &self.sinks.syslog {
            s.send(&rec, partition);
        }
        if let Some(j) = &mut self.sinks.jsonl {
            if let Err(err) = j.write(&rec) {
                tracing::warn!("events file: {err}");
            }
        }
        if let Some(h) = &self.sinks.hook {
            if !h.submit(&rec) {
                tracing::warn!("on_event hook: queue full, event {} dropped", rec.seq);
            }
        }
        self.metrics.observe_event(e);
        match e {
            Event::ActivitySample {
                host,
                checker,
                verdict,
                window,
            } => self.side(*host).round_samples.push(EvidenceSample {
                checker: *checker,
                verdict: *verdict,
                window: *window,
            }),
            Event::ActivityRoundConcluded { host, outcome, .. } => {
                let side = self.side(*host);
                side.last_round = Some(RoundSummary {
                    at_unix_ms: rec.at_unix_ms,
                    outcome: *outcome,
                    samples: std::mem::take(&mut side.round_samples),
                });
            }
            _ => {}
        }
    }

    pub(super) fn side(&mut self, host: HostId) -> &mut HostSide {
        self.host_side.entry(host).or_default()
    }

    /// Notes what a result tells `hosts` (called before the core sees it).
    pub(super) fn note_input(&mut self, input: &Input) {
        let now = now_unix_ms();
        match input {
            Input::PowerReadResult { op, .. } => {
                let s = self.side(op.host);
                s.power_read_at = Some(now);
                s.end("power read");
            }
            Input::PowerActionResult { op, .. } => {
                let s = self.side(op.host);
                s.end("power off");
                s.end("power on");
                s.end("power cycle");
            }
            Input::HealthResult { op, outcome } => {
                self.side(op.host).last_health = Some(HealthSummary {
                    at_unix_ms: now,
                    outcome: *outcome,
                });
            }
            Input::ActivityResult { op, .. } => self.side(op.host).end("activity check"),
            _ => {}
        }
    }

    /// After each batch: the gauges that follow the core's state.
    pub(super) fn update_gauges(&self) {
        self.metrics.set_host_counts(&self.core.state_counts());
        let mut clusters: Vec<_> = self.core.hosts().iter().map(|h| h.cluster).collect();
        clusters.sort();
        clusters.dedup();
        let partitions: Vec<_> = clusters
            .iter()
            .filter_map(|c| self.core.partition(*c))
            .collect();
        self.metrics
            .set_partition_states(partitions.iter().map(|p| p.state));
        self.metrics.set_quorate(self.core.is_quorate());
        // From the core's state, not only from events: a cap or guard
        // restored from the journal at start shows at once.
        self.metrics.set_rate_cap_tripped(
            RateScope::Global,
            self.core.rate_cap_tripped(RateScope::Global),
        );
        for p in &partitions {
            let scope = RateScope::Partition(p.id);
            self.metrics
                .set_rate_cap_tripped(scope, self.core.rate_cap_tripped(scope));
            self.metrics.set_mass_failure(
                p.id,
                p.reasons
                    .iter()
                    .any(|r| matches!(r, InactiveReason::MassFailure(_))),
            );
        }
    }

    /// Answers one control request, in the loop. A power read answers
    /// later, from its task; everything else at once.
    pub(super) fn on_control(
        &mut self,
        peer: PeerCred,
        request: Request,
        reply: ReplyTx,
    ) -> Result<(), DaemonError> {
        let answer = match request {
            Request::Status => Ok(Reply::Status(dispatch::status_report(
                &self.core,
                now_ms(),
                self.started.elapsed().as_secs(),
                self.journal_status(),
            ))),
            Request::Hosts { partition, state } => {
                let mut hosts = dispatch::host_rows(&self.core, partition, state);
                for row in &mut hosts {
                    row.name = self.hosts.get(&row.view.id).map(|e| e.name.clone());
                    if let Some(s) = self.host_side.get(&row.view.id) {
                        row.power_read_at_unix_ms = s.power_read_at;
                        row.last_health = s.last_health;
                        row.last_round = s.last_round.clone();
                        row.pending = (!s.pending.is_empty()).then(|| s.pending.join(", "));
                    }
                }
                Ok(Reply::Hosts { hosts })
            }
            Request::HostHistory { host } => self.host_history(host),
            Request::Events { .. } => Err(ControlError::BadRequest {
                detail: "events are streamed by the server, not the loop".into(),
            }),
            Request::Power {
                host,
                op: hactl_control::PowerRequest::Status,
            } => {
                if self.core.host(host).is_none() {
                    Err(ControlError::UnknownHost { host })
                } else {
                    self.spawn_operator_read(host, reply);
                    return Ok(());
                }
            }
            Request::Role => Ok(Reply::Role(self.role_report())),
            Request::SetRole { role } => self.set_role(role).map(Reply::Role),
            request => return self.operator_command(peer, request, reply),
        };
        let _ = reply.send(answer);
        Ok(())
    }

    /// A state-changing command: into the core like any input, its actions
    /// carried out (journal first), then what they mean for the operator.
    fn operator_command(
        &mut self,
        peer: PeerCred,
        request: Request,
        reply: ReplyTx,
    ) -> Result<(), DaemonError> {
        if !self.roles.acting() {
            let _ = reply.send(Err(ControlError::Refused {
                reason: "this coordinator instance is standby: send the command to the active one (hactl-kvm role status)".into(),
            }));
            return Ok(());
        }
        let by = dispatch::operator_of(peer.uid);
        let input = match dispatch::core_input(&self.core, &request, by) {
            Ok(i) => i,
            Err(e) => {
                let _ = reply.send(Err(e));
                return Ok(());
            }
        };
        tracing::info!(
            "operator command from uid {} (pid {:?}): {}",
            peer.uid,
            peer.pid,
            serde_json::to_string(&request).unwrap_or_default()
        );
        let actions = self.core.handle(now_ms(), input);
        let answer = dispatch::outcome(&request, &actions);
        match self.execute(actions) {
            Ok(()) => {
                let _ = reply.send(answer);
                self.update_gauges();
                Ok(())
            }
            Err(e) => {
                let _ = reply.send(Err(ControlError::Internal {
                    detail: e.to_string(),
                }));
                Err(e)
            }
        }
    }

    fn host_history(&self, host: HostId) -> Result<Reply, ControlError> {
        if self.core.host(host).is_none() {
            return Err(ControlError::UnknownHost { host });
        }
        // The loop is the journal's only writer, so this read sees every
        // record appended so far and no half-written one.
        let records: Vec<Record> = self
            .journal
            .records()
            .map_err(|detail| ControlError::Internal { detail })?;
        Ok(Reply::HostHistory(dispatch::host_history(&records, host)))
    }

    fn journal_status(&self) -> JournalStatus {
        JournalStatus {
            path: self.journal.path().display().to_string(),
            bytes: self.journal.len(),
            last_compaction_unix_ms: self.last_compaction_unix_ms,
        }
    }

    /// `power HOST status`: a read through the host's driver, outside the
    /// core (it changes nothing), bounded by the core's power-op timeout.
    fn spawn_operator_read(&mut self, host: HostId, reply: ReplyTx) {
        let (target, driver) = match self.bmc_target(host) {
            Ok(t) => t,
            Err(e) => {
                let _ = reply.send(Err(ControlError::Unsupported {
                    detail: e.to_string(),
                }));
                return;
            }
        };
        let req = PowerRequest {
            host,
            op: PowerOp::Status,
            epoch: self.core.epoch(),
            deadline: Instant::now() + Duration::from_millis(self.cfg.core.power_op_timeout_ms),
        };
        let sem = self.power_sem.clone();
        let drivers = self.drivers.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let permit = sem.acquire_owned().await;
            let r = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let started = Instant::now();
                let r = drivers.get(driver).execute(&target, &req);
                let reading = match &r {
                    Ok(PowerAnswer::State(s)) => *s,
                    Ok(PowerAnswer::Accepted) => PowerReading::Unknown,
                    Err(e) => e.reading(),
                };
                metrics.observe_power_read(reading, started.elapsed());
                r
            })
            .await;
            let answer = match r {
                Ok(Ok(PowerAnswer::State(s))) => Ok(Reply::PowerRead {
                    host,
                    power: match s {
                        PowerReading::On => PowerState::On,
                        PowerReading::Off => PowerState::Off,
                        PowerReading::Unknown | PowerReading::Unreachable => PowerState::Unknown,
                    },
                    read_at_unix_ms: now_unix_ms(),
                }),
                Ok(Ok(PowerAnswer::Accepted)) => Err(ControlError::Internal {
                    detail: "the driver answered a read without a state".into(),
                }),
                Ok(Err(e)) => Err(ControlError::Internal {
                    detail: format!("power read of {host}: {e}"),
                }),
                Err(e) => Err(ControlError::Internal {
                    detail: format!("power read of {host}: {e}"),
                }),
            };
            let _ = reply.send(answer);
        });
    }

    /// This instance's role (see `daemon/roles.rs`).
    pub(super) fn role_report(&self) -> RoleReport {
        let r = self.role_status();
        RoleReport {
            role: if r.active {
                CoordinatorRole::Active
            } else {
                CoordinatorRole::Standby
            },
            quorum_provider: r.quorum_provider.into(),
            quorate: if r.quorum_provider == "standalone" {
                self.core.is_quorate()
            } else {
                r.quorate
            },
            epoch: r.epoch,
            journal_head: if r.quorum_provider == "standalone" {
                self.journal_records
            } else {
                r.journal_head
            },
            journal_committed: if r.quorum_provider == "standalone" {
                // One instance: what is fsynced here is durable everywhere.
                self.journal_records
            } else {
                r.journal_committed
            },
            in_sync: r.in_sync,
            promotion_score: r.promotion_score,
            changed: None,
        }
    }

    /// A role change (idempotent); the report says what changed, a refusal why.
    pub(super) fn set_role(&mut self, role: CoordinatorRole) -> Result<RoleReport, ControlError> {
        match self.change_role(role == CoordinatorRole::Active) {
            Ok(changed) => {
                let mut r = self.role_report();
                r.changed = Some(changed);
                Ok(r)
            }
            Err(e) => Err(ControlError::Refused {
                reason: e.to_string(),
            }),
        }
    }
}
