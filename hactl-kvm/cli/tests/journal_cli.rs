//! `hactl-kvm journal verify|dump|compact` on real journal files.

use hactl_core::{
    ClusterId, Config, Coordinator, Evidence, FenceId, FenceOutcome, HaState, HostId, Record,
    StateVersion,
};
use hactl_journal::Journal;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Output};

fn hactl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hactl-kvm"))
        .args(args)
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A journal of two hosts cycling through states many times, and one fence.
fn records() -> Vec<Record> {
    let mut v = vec![Record::Started { epoch: 1, at: 0 }];
    let mut version = [0u64; 3];
    let mut at = 0;
    for round in 0..20 {
        for host in 1..=2u32 {
            let seq = [
                (HaState::None, HaState::Initializing),
                (HaState::Initializing, HaState::Available),
                (HaState::Available, HaState::Suspect),
                (HaState::Suspect, HaState::Available),
            ];
            for (from, to) in seq {
                if round == 19 && host == 2 && to == HaState::Suspect {
                    break;
                }
                at += 1000;
                version[host as usize] += 1;
                v.push(Record::HaTransition {
                    host: HostId(host),
                    cluster: ClusterId(1),
                    from,
                    to,
                    version: StateVersion(version[host as usize]),
                    at,
                });
            }
        }
    }
    at += 1000;
    v.push(Record::FenceIssued {
        fence: FenceId((1 << 40) | 1),
        host: HostId(1),
        cluster: ClusterId(1),
        attempt: 1,
        at,
        evidence: Evidence {
            host: HostId(1),
            samples: vec![],
            dead_required: 3,
            decided_at: at,
        },
    });
    v.push(Record::FenceResolved {
        fence: FenceId((1 << 40) | 1),
        host: HostId(1),
        outcome: FenceOutcome::ConfirmedOff,
        at: at + 500,
    });
    // Host 1 ends FENCED (version 81), host 3 FAILED (version 5).
    v.push(Record::HaTransition {
        host: HostId(1),
        cluster: ClusterId(1),
        from: HaState::Available,
        to: HaState::Fenced,
        version: StateVersion(81),
        at: at + 600,
    });
    v.push(Record::HaTransition {
        host: HostId(3),
        cluster: ClusterId(2),
        from: HaState::Recovering,
        to: HaState::Failed,
        version: StateVersion(5),
        at: at + 700,
    });
    v
}

/// The state a core rebuilds from `records` once an inventory names the
/// hosts: (host, HA state, version) per host.
fn rebuilt(records: Vec<Record>, now: u64) -> Vec<(HostId, HaState, StateVersion)> {
    use hactl_core::{
        Cluster, Host, HostOverrides, Input, Inventory, Pod, PodId, ResourceState, Zone, ZoneId,
    };
    let (mut core, _) = Coordinator::recover(Config::default(), records, now).unwrap();
    let host = |id, cluster| Host {
        id: HostId(id),
        cluster: ClusterId(cluster),
        resource_state: ResourceState::Enabled,
        oobm_enabled: true,
        has_vms: true,
        overrides: HostOverrides::default(),
    };
    let cluster = |id| Cluster {
        id: ClusterId(id),
        pod: PodId(7),
        enabled: true,
        ha_enabled: true,
    };
    core.handle(
        now,
        Input::Inventory(Inventory {
            zones: vec![Zone {
                id: ZoneId(7),
                enabled: true,
            }],
            pods: vec![Pod {
                id: PodId(7),
                zone: ZoneId(7),
                enabled: true,
            }],
            clusters: vec![cluster(1), cluster(2)],
            hosts: vec![host(1, 1), host(2, 1), host(3, 2)],
        }),
    );
    core.hosts()
        .into_iter()
        .map(|h| (h.id, h.ha, h.version))
        .collect()
}

fn write_journal(path: &Path) -> Vec<Record> {
    let recs = records();
    let (mut j, _) = Journal::open::<Record>(path).unwrap();
    j.append_all(&recs).unwrap();
    recs
}

#[test]
fn verify_an_intact_journal() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("journal");
    let recs = write_journal(&p);
    let p = p.to_str().unwrap();
    let o = hactl(&["journal", "verify", p]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains(&format!("{} records", recs.len())),
        "{}",
        text(&o)
    );
    let o = hactl(&["journal", "verify", "--json", p]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["records"], recs.len());
    assert_eq!(v["rebuilds"], true);
    assert!(v["torn_tail"].is_null());
}

#[test]
fn verify_reports_a_torn_tail_and_damage_without_changing_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("journal");
    write_journal(&p);
    // Torn: half a record at the end.
    let mut bytes = std::fs::read(&p).unwrap();
    let extra = hactl_journal::encode(&Record::Started { epoch: 2, at: 1 }).unwrap();
    bytes.extend_from_slice(&extra[..extra.len() / 2]);
    std::fs::write(&p, &bytes).unwrap();
    let o = hactl(&["journal", "verify", p.to_str().unwrap()]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    assert!(text(&o).contains("torn last record"), "{}", text(&o));
    assert_eq!(std::fs::read(&p).unwrap(), bytes, "verify changed the file");

    // Damage in the first record, intact records after it.
    let mut damaged = bytes.clone();
    damaged[hactl_journal::MAGIC.len() + hactl_journal::HEADER_LEN + 3] ^= 0x55;
    std::fs::write(&p, &damaged).unwrap();
    let o = hactl(&["journal", "verify", p.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        text(&o).contains("corrupt record at byte offset 8"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&p).unwrap(), damaged);

    std::fs::write(&p, b"not a journal at all").unwrap();
    let o = hactl(&["journal", "verify", p.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(text(&o).contains("bad magic"), "{}", text(&o));

    let o = hactl(&[
        "journal",
        "verify",
        dir.path().join("absent").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o));
}

#[test]
fn dump_lists_records_and_filters_by_host() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("journal");
    let recs = write_journal(&p);
    let o = hactl(&[
        "journal",
        "dump",
        "--json",
        "--host",
        "1",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: Vec<&Record> = recs
        .iter()
        .filter(|r| match r {
            Record::HaTransition { host, .. }
            | Record::FenceIssued { host, .. }
            | Record::FenceResolved { host, .. } => *host == HostId(1),
            _ => false,
        })
        .collect();
    assert_eq!(lines.len(), expected.len());
    for (l, r) in lines.iter().zip(expected) {
        let back: Record = serde_json::from_value(l["record"].clone()).unwrap();
        assert_eq!(&back, r);
    }
    let offsets: Vec<u64> = lines
        .iter()
        .map(|l| l["offset"].as_u64().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]));
    let o = hactl(&["journal", "dump", p.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        recs.len()
    );
}

#[test]
fn compact_keeps_the_state_and_the_fence_and_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("journal");
    let recs = write_journal(&p);
    let now = recs.iter().map(Record::at).max().unwrap();
    let before = rebuilt(recs.clone(), now);
    assert_eq!(
        before,
        vec![
            (HostId(1), HaState::Fenced, StateVersion(81)),
            (HostId(2), HaState::None, StateVersion(78)),
            (HostId(3), HaState::Failed, StateVersion(5)),
        ]
    );
    let size_before = std::fs::metadata(&p).unwrap().len();

    let o = hactl(&["journal", "compact", p.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let size_after = std::fs::metadata(&p).unwrap().len();
    assert!(
        size_after < size_before / 4,
        "{size_before} -> {size_after}"
    );

    let (_, replay) = Journal::open::<Record>(&p).unwrap();
    assert_eq!(rebuilt(replay.records.clone(), now), before);
    // The fence stays (rate cap and re-fence hold-off count it), the
    // epoch never goes back.
    assert!(replay.records.iter().any(|r| matches!(
        r,
        Record::FenceResolved {
            outcome: FenceOutcome::ConfirmedOff,
            ..
        }
    )));
    assert_eq!(replay.records[0], Record::Started { epoch: 1, at: now });
    let o = hactl(&["journal", "verify", p.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
}

#[test]
fn compact_refuses_a_locked_or_damaged_journal_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("journal");
    write_journal(&p);
    let bytes = std::fs::read(&p).unwrap();
    // A running daemon holds the lock.
    let holder = std::fs::File::open(&p).unwrap();
    // SAFETY: flock on an owned descriptor.
    assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
    let o = hactl(&["journal", "compact", p.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("is the daemon running?"), "{}", text(&o));
    assert_eq!(std::fs::read(&p).unwrap(), bytes);
    drop(holder);

    let mut damaged = bytes.clone();
    damaged[hactl_journal::MAGIC.len() + hactl_journal::HEADER_LEN + 3] ^= 0x55;
    std::fs::write(&p, &damaged).unwrap();
    let o = hactl(&["journal", "compact", p.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert_eq!(std::fs::read(&p).unwrap(), damaged);
    assert!(!dir.path().join("journal.compact.tmp").exists());
}
