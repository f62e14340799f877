//! The core's records through the real journal: a coordinator rebuilt from
//! a journal with a torn last record starts, and counts the fences.

use hactl_core::*;
use hactl_journal::Journal;

fn fence_record(n: u64, at: Millis) -> Record {
    Record::FenceIssued {
        fence: FenceId(n),
        host: HostId(n as u32),
        cluster: ClusterId(0),
        attempt: 1,
        at,
        evidence: Evidence {
            host: HostId(n as u32),
            samples: vec![],
            dead_required: 3,
            decided_at: at,
        },
    }
}

#[test]
fn torn_journal_still_rebuilds_the_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    {
        let (mut j, _) = Journal::open::<Record>(&path).unwrap();
        j.append(&Record::Started { epoch: 1, at: 0 }).unwrap();
        for n in 1..=3 {
            j.append(&fence_record(n, n * 1000)).unwrap();
        }
        j.append(&Record::RateCapTripped {
            scope: RateScope::Partition(ClusterId(0)),
            at: 3000,
        })
        .unwrap();
    }
    // Crash while writing the next record: half of it lands.
    let full = std::fs::read(&path).unwrap();
    let extra = hactl_journal::encode(&fence_record(4, 4000)).unwrap();
    let mut torn = full.clone();
    torn.extend_from_slice(&extra[..extra.len() / 2]);
    std::fs::write(&path, &torn).unwrap();

    let (_j, replay) = Journal::open::<Record>(&path).unwrap();
    assert!(replay.torn_tail.is_some());
    assert_eq!(replay.records.len(), 5);
    let (core, actions) = Coordinator::recover(Config::default(), replay.records, 10_000).unwrap();
    assert_eq!(core.epoch(), 2);
    assert_eq!(core.fences_in_window(RateScope::Global, 10_000), 3);
    assert!(core.rate_cap_tripped(RateScope::Partition(ClusterId(0))));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Persist(Record::Started { epoch: 2, .. }))));
    assert_eq!(std::fs::read(&path).unwrap(), full, "torn tail cut off");
}
