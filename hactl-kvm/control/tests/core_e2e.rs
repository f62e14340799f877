//! The control socket in front of a real decision core and a real journal:
//! a minimal daemon-side handler built from `hactl_control::dispatch`, a
//! client over the socket, and the journal file as ground truth.

use hactl_control::dispatch::{
    core_input, host_history, host_rows, operator_of, outcome, status_report,
};
use hactl_control::render::exit_code;
use hactl_control::{
    ControlClient, ControlError, ControlGroup, ControlHandler, ControlServer, EventRecord,
    JournalStatus, PeerCred, PowerRequest, Reply, Request, Response, ServerConfig, Target,
};
use hactl_core::{
    Action, Cluster, ClusterId, Config, Coordinator, HaState, Host, HostId, HostOverrides, Input,
    Inventory, Pod, PodId, RateScope, Record, ResourceState, Zone, ZoneId,
};
use hactl_journal::Journal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

struct Daemon {
    core: Mutex<Coordinator>,
    journal: Mutex<Journal>,
    records: Mutex<Vec<Record>>,
    now: Mutex<u64>,
    journal_path: PathBuf,
}

impl Daemon {
    /// Carries out a batch the way the runtime must: persist first.
    fn apply(&self, actions: &[Action]) {
        let mut j = self.journal.lock().unwrap();
        for a in actions {
            if let Action::Persist(r) = a {
                j.append(r).unwrap();
                self.records.lock().unwrap().push(r.clone());
            }
        }
    }

    fn feed(&self, input: Input) -> Vec<Action> {
        let mut now = self.now.lock().unwrap();
        *now += 1000;
        let actions = self.core.lock().unwrap().handle(*now, input);
        self.apply(&actions);
        actions
    }
}

impl ControlHandler for Daemon {
    async fn handle(&self, peer: PeerCred, request: Request) -> Result<Reply, ControlError> {
        match &request {
            Request::Status => {
                let core = self.core.lock().unwrap();
                let bytes = std::fs::metadata(&self.journal_path).unwrap().len();
                Ok(Reply::Status(status_report(
                    &core,
                    *self.now.lock().unwrap(),
                    1,
                    JournalStatus {
                        path: self.journal_path.display().to_string(),
                        bytes,
                        last_compaction_unix_ms: None,
                    },
                )))
            }
            Request::Hosts { partition, state } => Ok(Reply::Hosts {
                hosts: host_rows(&self.core.lock().unwrap(), *partition, *state),
            }),
            Request::HostHistory { host } => Ok(Reply::HostHistory(host_history(
                &self.records.lock().unwrap(),
                *host,
            ))),
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
        _peer: PeerCred,
        _since: Option<u64>,
        _follow: bool,
    ) -> Result<mpsc::Receiver<EventRecord>, ControlError> {
        let (_tx, rx) = mpsc::channel(1);
        Ok(rx)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_go_through_the_core_and_its_refusals_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("journal");
    let (journal, _) = Journal::open::<Record>(&journal_path).unwrap();
    let core = Coordinator::new(Config::default(), 0).unwrap();
    let daemon = Arc::new(Daemon {
        records: Mutex::new(Vec::new()),
        journal: Mutex::new(journal),
        now: Mutex::new(0),
        journal_path: journal_path.clone(),
        core: Mutex::new(core),
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
    let mut c = ControlClient::connect(&sock).await.unwrap();

    // status and hosts: the core's own views.
    let Response::Ok(Reply::Status(s)) = c.request(Request::Status).await.unwrap() else {
        panic!("no status")
    };
    assert!(s.quorate);
    assert_eq!(s.counts.values().sum::<u32>(), 3);
    assert_eq!(s.rate_caps[0].scope, RateScope::Global);
    assert_eq!(s.rate_caps[0].limit, 3);
    assert_eq!(s.partitions.len(), 1);
    let r = c
        .request(Request::Hosts {
            partition: Some(ClusterId(1)),
            state: None,
        })
        .await
        .unwrap();
    let Response::Ok(Reply::Hosts { hosts }) = r else {
        panic!("{r:?}")
    };
    assert_eq!(hosts.len(), 3);
    let state = hosts[0].view.ha;
    let r = c
        .request(Request::Hosts {
            partition: None,
            state: Some(HaState::Failed),
        })
        .await
        .unwrap();
    assert_eq!(r, Response::Ok(Reply::Hosts { hosts: vec![] }));

    // The core refuses to confirm off a host that is not FAILED.
    let r = c
        .request(Request::ConfirmOff { host: HostId(1) })
        .await
        .unwrap();
    assert_eq!(
        r,
        Response::Err(ControlError::Refused {
            reason: format!("host-1: host is {state}, only a FAILED host can be confirmed off")
        })
    );
    assert_eq!(exit_code(&r), 1);
    let r = c
        .request(Request::ConfirmOff { host: HostId(99) })
        .await
        .unwrap();
    assert_eq!(
        r,
        Response::Err(ControlError::UnknownHost { host: HostId(99) })
    );
    assert_eq!(exit_code(&r), 2);

    // A power-on is accepted; a second operation on the same host is not.
    let r = c
        .request(Request::Power {
            host: HostId(2),
            op: PowerRequest::On,
        })
        .await
        .unwrap();
    let Response::Ok(Reply::Applied { changes, .. }) = &r else {
        panic!("{r:?}")
    };
    assert_eq!(changes.len(), 1);
    assert!(
        changes[0].starts_with("host-2: power on requested"),
        "{changes:?}"
    );
    let r = c
        .request(Request::Power {
            host: HostId(2),
            op: PowerRequest::Off,
        })
        .await
        .unwrap();
    assert_eq!(
        r,
        Response::Err(ControlError::Refused {
            reason: "host-2: another power operation on this host is pending".into()
        })
    );

    // ack-cap is journaled: the journal file holds the record.
    let r = c
        .request(Request::AckCap {
            scope: RateScope::Global,
        })
        .await
        .unwrap();
    let Response::Ok(Reply::Applied { journaled, .. }) = r else {
        panic!("{r:?}")
    };
    assert!(journaled);
    let on_disk = hactl_journal::inspect::<Record>(&journal_path).unwrap();
    assert!(matches!(
        on_disk.records.last().unwrap().1,
        Record::RateCapAcknowledged {
            scope: RateScope::Global,
            ..
        }
    ));

    // Without quorum no power action.
    daemon.feed(Input::QuorumChanged { quorate: false });
    let r = c
        .request(Request::Power {
            host: HostId(3),
            op: PowerRequest::Off,
        })
        .await
        .unwrap();
    assert_eq!(
        r,
        Response::Err(ControlError::Refused {
            reason: "host-3: coordinator is not quorate: no power actions".into()
        })
    );

    // enable of a host no operator disabled: nothing changes, nothing is
    // journaled, and the answer says so.
    let before = hactl_journal::inspect::<Record>(&journal_path)
        .unwrap()
        .records
        .len();
    let r = c
        .request(Request::Enable {
            target: Target::Host(HostId(1)),
        })
        .await
        .unwrap();
    let Response::Ok(Reply::Applied { changes, journaled }) = &r else {
        panic!("{r:?}")
    };
    assert!(!journaled);
    assert!(changes[0].starts_with("nothing changed"), "{changes:?}");
    let on_disk = hactl_journal::inspect::<Record>(&journal_path).unwrap();
    assert_eq!(on_disk.records.len(), before);
    // disable: journaled with who ran it (this test's own uid, from the
    // kernel's peer credentials).
    let r = c
        .request(Request::Disable {
            target: Target::Host(HostId(1)),
        })
        .await
        .unwrap();
    let Response::Ok(Reply::Applied { changes, journaled }) = &r else {
        panic!("{r:?}")
    };
    assert!(journaled);
    assert!(
        changes[0].starts_with("host-1: HA disabled by "),
        "{changes:?}"
    );
    let uid = nix::unistd::getuid().as_raw();
    let on_disk = hactl_journal::inspect::<Record>(&journal_path).unwrap();
    assert!(
        on_disk.records[before..].iter().any(|(_, r)| matches!(
            r,
            Record::OperatorCommand {
                by,
                command: hactl_core::OperatorCommand::SetOverride { on: true, .. },
                ..
            } if by.uid == uid
        )),
        "{:?}",
        &on_disk.records[before..]
    );

    // host history: host-1's journal records only.
    let Response::Ok(Reply::HostHistory(h)) = c
        .request(Request::HostHistory { host: HostId(1) })
        .await
        .unwrap()
    else {
        panic!()
    };
    // Exactly host-1's records in the journal file, in file order.
    let expected: Vec<Record> = hactl_journal::inspect::<Record>(&journal_path)
        .unwrap()
        .records
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| match r {
            Record::OperatorCommand { command, .. } => {
                hactl_control::dispatch::command_host(command) == Some(HostId(1))
            }
            r => serde_json::to_value(r).unwrap().get("host") == Some(&serde_json::json!(1)),
        })
        .collect();
    let got: Vec<Record> = h.entries.into_iter().map(|e| e.record).collect();
    assert_eq!(got, expected);
    task.abort();
}
