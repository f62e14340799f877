//! The operator subcommands against a control socket served by a real
//! decision core and journal (the daemon's side built from
//! `hactl_control::dispatch`), the journal file as ground truth.

use hactl_control::dispatch::{
    core_input, host_history, host_rows, operator_of, outcome, status_report,
};
use hactl_control::{
    ControlError, ControlGroup, ControlHandler, ControlServer, EventHub, EventRecord,
    JournalStatus, PeerCred, Reply, Request, ServerConfig,
};
use hactl_core::{
    Action, Cluster, ClusterId, Config, Coordinator, Host, HostId, HostOverrides, Input, Inventory,
    Pod, PodId, Record, ResourceState, Zone, ZoneId,
};
use hactl_journal::Journal;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

struct Daemon {
    core: Mutex<Coordinator>,
    journal: Mutex<Journal>,
    now: Mutex<u64>,
    journal_path: PathBuf,
    hub: EventHub,
}

impl Daemon {
    fn feed(&self, input: Input) -> Vec<Action> {
        let mut now = self.now.lock().unwrap();
        *now += 1000;
        let actions = self.core.lock().unwrap().handle(*now, input);
        self.apply(&actions);
        actions
    }
    fn apply(&self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::Persist(r) => self.journal.lock().unwrap().append(r).unwrap(),
                Action::Emit(e) => {
                    self.hub.publish(e.clone());
                }
                _ => {}
            }
        }
    }
    fn records(&self) -> Vec<Record> {
        hactl_journal::inspect::<Record>(&self.journal_path)
            .unwrap()
            .records
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }
}

impl ControlHandler for Daemon {
    async fn handle(&self, peer: PeerCred, request: Request) -> Result<Reply, ControlError> {
        match &request {
            Request::Status => Ok(Reply::Status(status_report(
                &self.core.lock().unwrap(),
                *self.now.lock().unwrap(),
                42,
                JournalStatus {
                    path: self.journal_path.display().to_string(),
                    bytes: std::fs::metadata(&self.journal_path).unwrap().len(),
                    last_compaction_unix_ms: None,
                },
            ))),
            Request::Hosts { partition, state } => Ok(Reply::Hosts {
                hosts: host_rows(&self.core.lock().unwrap(), *partition, *state),
            }),
            Request::HostHistory { host } => {
                Ok(Reply::HostHistory(host_history(&self.records(), *host)))
            }
            _ => {
                let input =
                    core_input(&self.core.lock().unwrap(), &request, operator_of(peer.uid))?;
                let actions = self.feed(input);
                outcome(&request, &actions)
            }
        }
    }
    async fn events(
        &self,
        _: PeerCred,
        since: Option<u64>,
        follow: bool,
    ) -> Result<mpsc::Receiver<EventRecord>, ControlError> {
        Ok(self.hub.subscribe(since, follow))
    }
}

fn inventory() -> Inventory {
    let host = |id| Host {
        id: HostId(id),
        cluster: ClusterId(1),
        resource_state: ResourceState::Enabled,
        oobm_enabled: true,
        has_vms: true,
        overrides: HostOverrides::default(),
    };
    Inventory {
        zones: vec![Zone {
            id: ZoneId(1),
            enabled: true,
        }],
        pods: vec![Pod {
            id: PodId(1),
            zone: ZoneId(1),
            enabled: true,
        }],
        clusters: vec![Cluster {
            id: ClusterId(1),
            pod: PodId(1),
            enabled: true,
            ha_enabled: true,
        }],
        hosts: vec![host(1), host(2), host(3)],
    }
}

async fn hactl(sock: &Path, args: &[&str]) -> Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.push("--socket".into());
    all.push(sock.display().to_string());
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
            .args(&all)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_subcommands_against_a_real_core() {
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("journal");
    let (journal, _) = Journal::open::<Record>(&journal_path).unwrap();
    let daemon = Arc::new(Daemon {
        core: Mutex::new(Coordinator::new(Config::default(), 0).unwrap()),
        journal: Mutex::new(journal),
        now: Mutex::new(0),
        journal_path: journal_path.clone(),
        hub: EventHub::new(100),
    });
    let start = daemon.core.lock().unwrap().start_actions();
    daemon.apply(&start);
    daemon.feed(Input::QuorumChanged { quorate: true });
    daemon.feed(Input::Inventory(inventory()));
    let sock = dir.path().join("control.sock");
    let server = ControlServer::bind(ServerConfig {
        path: sock.clone(),
        group: ControlGroup::by_gid(0),
    })
    .await
    .unwrap();
    let task = tokio::spawn(server.serve(daemon.clone()));

    let o = hactl(&sock, &["status"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        out(&o).starts_with("quorum:       quorate\n"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("rate cap:     global: 0/3 fences in window\n"));
    let o = hactl(&sock, &["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"]["reply"], "status");
    assert_eq!(v["ok"]["uptime_s"], 42);

    let o = hactl(&sock, &["hosts"]).await;
    assert_eq!(out(&o).lines().count(), 4, "{}", out(&o));
    let o = hactl(&sock, &["hosts", "--state", "failed"]).await;
    assert_eq!(out(&o).lines().count(), 1, "{}", out(&o));

    // Refused by the core: exit 1, its reason on stderr, nothing journaled.
    let before = daemon.records().len();
    let o = hactl(&sock, &["confirm-off", "host-1", "--yes"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("only a FAILED host can be confirmed off"),
        "{}",
        err(&o)
    );
    // Not confirmed (no terminal, no --yes): nothing is sent.
    let o = hactl(&sock, &["power", "host-2", "off"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("use --yes"), "{}", err(&o));
    assert_eq!(daemon.records().len(), before);
    // Unknown host: exit 2.
    let o = hactl(&sock, &["power", "host-9", "on"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(err(&o), "error: unknown host host-9\n");

    let o = hactl(&sock, &["power", "host-2", "off", "--yes"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        out(&o).starts_with("changed: host-2: power off requested"),
        "{}",
        out(&o)
    );

    let o = hactl(&sock, &["ack-cap"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let records = daemon.records();
    assert!(matches!(
        records.last().unwrap(),
        Record::RateCapAcknowledged { .. }
    ));
    // Who ran it, journaled just before.
    assert!(matches!(
        &records[records.len() - 2],
        Record::OperatorCommand { by, .. } if by.uid == nix::unistd::getuid().as_raw()
    ));

    let o = hactl(&sock, &["disable", "cluster-1"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        out(&o).starts_with("changed: cluster-1: HA disabled by "),
        "{}",
        out(&o)
    );
    let o = hactl(&sock, &["enable", "cluster-7"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(err(&o), "error: unknown partition cluster-7\n");

    // Events: the user power request above is in the stream.
    let o = hactl(&sock, &["events"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(
        out(&o).contains(" user_power_requested {\"host\":2,\"op\":\"off\"}"),
        "{}",
        out(&o)
    );
    let o = hactl(&sock, &["events", "--json", "--since", "1h"]).await;
    let recs: Vec<EventRecord> = out(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(recs.iter().any(|r| matches!(
        r.event,
        hactl_core::Event::UserPowerRequested {
            host: HostId(2),
            ..
        }
    )));

    let o = hactl(&sock, &["host", "1", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"]["reply"], "host_history");

    // Bad usage and no daemon.
    let o = hactl(&sock, &["power", "host-x", "off"]).await;
    assert_eq!(o.status.code(), Some(2));
    let o = hactl(&dir.path().join("absent.sock"), &["status"]).await;
    assert_eq!(o.status.code(), Some(3));
    assert!(
        err(&o).contains("cannot connect to the daemon"),
        "{}",
        err(&o)
    );
    task.abort();
}
