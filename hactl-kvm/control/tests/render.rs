//! The CLI's rendering of fixed answers: tables, JSON and exit codes.

use hactl_control::render::{self, exit_code};
use hactl_control::{
    ControlError, EventRecord, HealthSummary, HistoryEntry, HostHistory, HostRow, JournalStatus,
    RateCapStatus, Reply, Response, RoundSummary, StatusReport,
};
use hactl_core::{
    ActivityVerdict, CannotTellReason, ClusterId, Event, EvidenceSample, FenceId, FenceOutcome,
    HaState, HealthOutcome, HostId, HostView, InactiveReason, MassFailureReason, PartitionState,
    PartitionView, PowerState, RateScope, Record, RoundOutcome, StateVersion, Window,
};
use std::collections::BTreeMap;

const T0: u64 = 1_796_242_503_042; // 2026-12-02 20:15:03 UTC

fn status() -> StatusReport {
    let mut counts = BTreeMap::new();
    counts.insert(HaState::Available, 5);
    counts.insert(HaState::Failed, 1);
    counts.insert(HaState::Suspect, 0);
    StatusReport {
        quorate: true,
        epoch: 4,
        uptime_s: 3725,
        partitions: vec![
            PartitionView {
                id: ClusterId(1),
                state: PartitionState::Active,
                reasons: vec![],
            },
            PartitionView {
                id: ClusterId(2),
                state: PartitionState::Inactive,
                reasons: vec![InactiveReason::MassFailure(
                    MassFailureReason::SuspectShare {
                        affected: 4,
                        total: 6,
                    },
                )],
            },
        ],
        counts,
        rate_caps: vec![
            RateCapStatus {
                scope: RateScope::Global,
                fences_in_window: 1,
                limit: 3,
                tripped: false,
            },
            RateCapStatus {
                scope: RateScope::Partition(ClusterId(1)),
                fences_in_window: 3,
                limit: 3,
                tripped: true,
            },
        ],
        journal: JournalStatus {
            path: "/var/lib/hactl-kvm/journal".into(),
            bytes: 4096,
            last_compaction_unix_ms: Some(T0),
        },
    }
}

#[test]
fn status_table_names_quorum_caps_guard_and_partitions() {
    let out = render::human_response(&Response::Ok(Reply::Status(status())));
    let expected = "\
quorum:       quorate
coordinator:  epoch 4, up 1h 2m 5s
journal:      /var/lib/hactl-kvm/journal (4096 bytes, last compaction 2026-12-02 20:15:03)
hosts:        AVAILABLE 5, FAILED 1
rate cap:     global: 1/3 fences in window
rate cap:     cluster-1: 3/3 fences in window - TRIPPED, fencing stopped (hactl-kvm ack-cap)
mass failure: cluster-2 (fencing held)

PARTITION  STATE     REASONS
cluster-1  ACTIVE
cluster-2  INACTIVE  mass failure: 4 of 6 hosts suspect
";
    assert_eq!(out, expected);
    let mut s = status();
    s.quorate = false;
    assert!(
        render::status(&s).starts_with("quorum:       NOT QUORATE - no power action possible\n")
    );
}

fn row() -> HostRow {
    HostRow {
        view: HostView {
            id: HostId(3),
            cluster: ClusterId(1),
            ha: HaState::Suspect,
            version: StateVersion(7),
            power: PowerState::On,
            healthy: Some(false),
            cloudstack_hastate: "Suspect".into(),
            recovering: false,
            power_on_owed: false,
            allows_ha_allocation: false,
            allows_non_ha_allocation: true,
        },
        name: Some("kvm3".into()),
        power_read_at_unix_ms: Some(T0),
        last_health: Some(HealthSummary {
            at_unix_ms: T0,
            outcome: HealthOutcome::AgentUnreachable,
        }),
        last_round: Some(RoundSummary {
            at_unix_ms: T0,
            outcome: RoundOutcome::Inconclusive,
            samples: vec![
                EvidenceSample {
                    checker: HostId(1),
                    verdict: ActivityVerdict::Dead,
                    window: Window {
                        from: 1000,
                        to: 9000,
                    },
                },
                EvidenceSample {
                    checker: HostId(2),
                    verdict: ActivityVerdict::CannotTell(CannotTellReason::Timeout),
                    window: Window {
                        from: 1000,
                        to: 9000,
                    },
                },
            ],
        }),
        pending: Some("activity round".into()),
    }
}

#[test]
fn hosts_table_has_one_row_per_host_with_evidence() {
    let mut idle = row();
    idle.view.id = HostId(4);
    idle.view.ha = HaState::Available;
    idle.view.cloudstack_hastate = "Available".into();
    idle.power_read_at_unix_ms = None;
    idle.last_health = None;
    idle.last_round = None;
    idle.pending = None;
    idle.name = None;
    let out = render::human_response(&Response::Ok(Reply::Hosts {
        hosts: vec![row(), idle],
    }));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("HOST    NAME  PARTITION  HA         CLOUDSTACK  POWER"),
        "{out}"
    );
    assert_eq!(
        lines[1],
        "host-3  kvm3  cluster-1  SUSPECT    Suspect     ON @2026-12-02 20:15:03  agent_unreachable @2026-12-02 20:15:03  \
inconclusive @2026-12-02 20:15:03 [host-1:dead/8000ms host-2:cannot-tell(timeout)/8000ms]  activity round"
    );
    let cells: Vec<&str> = lines[2]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        [
            "host-4",
            "-",
            "cluster-1",
            "AVAILABLE",
            "Available",
            "ON",
            "-",
            "-",
            "-"
        ]
    );
    // Columns line up under their headers.
    for (header, cell1) in [
        ("LAST HEALTH", "agent_unreachable"),
        ("PENDING", "activity round"),
    ] {
        assert_eq!(lines[0].find(header), lines[1].find(cell1), "{out}");
    }
    let dashes: Vec<Option<usize>> = lines[2].match_indices('-').map(|(p, _)| Some(p)).collect();
    let headers: Vec<Option<usize>> = ["LAST HEALTH", "LAST ACTIVITY ROUND", "PENDING"]
        .iter()
        .map(|h| lines[0].find(h))
        .collect();
    // The last three '-' are the empty cells (host-4 has its own '-').
    assert_eq!(dashes[dashes.len() - 3..], headers[..], "{out}");
}

#[test]
fn host_history_lists_records_oldest_first() {
    let h = HostHistory {
        host: HostId(3),
        entries: vec![
            HistoryEntry {
                at: 1000,
                record: Record::HaTransition {
                    host: HostId(3),
                    cluster: ClusterId(1),
                    from: HaState::Checking,
                    to: HaState::Recovering,
                    version: StateVersion(8),
                    at: 1000,
                },
            },
            HistoryEntry {
                at: 2000,
                record: Record::FenceResolved {
                    fence: FenceId((1 << 40) | 2),
                    host: HostId(3),
                    outcome: FenceOutcome::ConfirmedOff,
                    at: 2000,
                },
            },
        ],
    };
    assert_eq!(
        render::history(&h),
        "host-3\nAT(ms)  WHAT\n1000    CHECKING -> RECOVERING (version 8)\n2000    fence-1.2 resolved: confirmed_off\n"
    );
    let empty = HostHistory {
        host: HostId(9),
        entries: vec![],
    };
    assert_eq!(render::history(&empty), "host-9: no journal records\n");
}

#[test]
fn event_line_is_time_kind_fields() {
    let rec = EventRecord {
        seq: 1,
        at_unix_ms: T0,
        event: Event::QuorumChanged { quorate: false },
    };
    assert_eq!(
        render::event_line(&rec),
        "2026-12-02 20:15:03 quorum_changed {\"quorate\":false}"
    );
}

#[test]
fn applied_changes_and_errors_and_exit_codes() {
    let applied = Response::Ok(Reply::Applied {
        changes: vec!["host-3: FAILED -> FENCED (operator confirmed off)".into()],
        journaled: true,
    });
    assert_eq!(
        render::human_response(&applied),
        "changed: host-3: FAILED -> FENCED (operator confirmed off)\n"
    );
    assert_eq!(exit_code(&applied), 0);
    let cases = [
        (
            ControlError::Refused {
                reason: "not quorate".into(),
            },
            1,
            "error: refused: not quorate\n",
        ),
        (
            ControlError::UnknownHost { host: HostId(9) },
            2,
            "error: unknown host host-9\n",
        ),
        (
            ControlError::PermissionDenied {
                uid: 1000,
                group: "hactl".into(),
            },
            3,
            "error: permission denied: uid 1000 is neither root nor a member of group hactl\n",
        ),
        (
            ControlError::VersionMismatch {
                server: 1,
                client: 2,
            },
            4,
            "error: protocol version mismatch: the daemon speaks 1, the client sent 2\n",
        ),
    ];
    for (err, code, text) in cases {
        let r = Response::Err(err);
        assert_eq!(exit_code(&r), code);
        assert_eq!(render::human_response(&r), text);
    }
}

#[test]
fn json_output_round_trips_to_the_same_answer() {
    for r in [
        Response::Ok(Reply::Status(status())),
        Response::Ok(Reply::Hosts { hosts: vec![row()] }),
        Response::Err(ControlError::Refused { reason: "x".into() }),
    ] {
        let text = render::json(&r);
        let back: Response = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }
    let v: serde_json::Value =
        serde_json::from_str(&render::json(&Response::Ok(Reply::Status(status())))).unwrap();
    assert_eq!(v["ok"]["reply"], "status");
    assert_eq!(v["ok"]["counts"]["FAILED"], 1);
}
