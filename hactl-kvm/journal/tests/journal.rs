//! Journal round trips, torn tails at every byte offset, bit flips, reopen.

use hactl_journal::{Journal, JournalError, TornTail, HEADER_LEN, MAGIC};
use serde::{Deserialize, Serialize};
use std::fs;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rec {
    n: u32,
    text: String,
}

fn rec(n: u32) -> Rec {
    Rec {
        n,
        text: format!("record number {n} with some payload"),
    }
}

fn write_three(path: &std::path::Path) -> Vec<u64> {
    let (mut j, replay) = Journal::open::<Rec>(path).unwrap();
    assert!(replay.records.is_empty());
    let mut ends = vec![j.len()];
    for n in 0..3 {
        j.append(&rec(n)).unwrap();
        ends.push(j.len());
    }
    ends
}

#[test]
fn round_trip_and_reopen_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write_three(&path);
    let (mut j, replay) = Journal::open::<Rec>(&path).unwrap();
    assert_eq!(replay.records, vec![rec(0), rec(1), rec(2)]);
    assert_eq!(replay.torn_tail, None);
    j.append_all(&[rec(3), rec(4)]).unwrap();
    drop(j);
    let (_, replay) = Journal::open::<Rec>(&path).unwrap();
    assert_eq!(replay.records, (0..5).map(rec).collect::<Vec<_>>());
}

#[test]
fn new_journal_starts_with_magic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let (j, _) = Journal::open::<Rec>(&path).unwrap();
    assert!(j.is_empty());
    assert_eq!(&fs::read(&path).unwrap()[..], &MAGIC[..]);
}

#[test]
fn torn_last_record_at_every_byte_offset_is_cut_and_replay_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let ends = write_three(&path);
    let full = fs::read(&path).unwrap();
    let (last_start, last_end) = (ends[2] as usize, ends[3] as usize);
    for cut in last_start + 1..last_end {
        fs::write(&path, &full[..cut]).unwrap();
        let (mut j, replay) = Journal::open::<Rec>(&path).unwrap();
        assert_eq!(replay.records, vec![rec(0), rec(1)], "cut at {cut}");
        assert_eq!(
            replay.torn_tail,
            Some(TornTail {
                offset: last_start as u64,
                bytes: (cut - last_start) as u64
            }),
            "cut at {cut}"
        );
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            last_start as u64,
            "truncated"
        );
        // Appending after the cut works and replays.
        j.append(&rec(9)).unwrap();
        drop(j);
        let (_, replay) = Journal::open::<Rec>(&path).unwrap();
        assert_eq!(replay.records, vec![rec(0), rec(1), rec(9)]);
        assert_eq!(replay.torn_tail, None);
    }
}

#[test]
fn torn_magic_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    for cut in 0..MAGIC.len() {
        fs::write(&path, &MAGIC[..cut]).unwrap();
        let (mut j, replay) = Journal::open::<Rec>(&path).unwrap();
        assert!(replay.records.is_empty());
        j.append(&rec(1)).unwrap();
        drop(j);
        let (_, replay) = Journal::open::<Rec>(&path).unwrap();
        assert_eq!(replay.records, vec![rec(1)]);
    }
}

#[test]
fn bit_flip_in_a_middle_record_is_an_error_naming_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let ends = write_three(&path);
    let full = fs::read(&path).unwrap();
    let (start, end) = (ends[1] as usize, ends[2] as usize);
    for byte in start..end {
        for bit in [0u8, 3, 7] {
            let mut damaged = full.clone();
            damaged[byte] ^= 1 << bit;
            fs::write(&path, &damaged).unwrap();
            match Journal::open::<Rec>(&path) {
                Err(JournalError::Corrupt { offset, .. }) => {
                    assert_eq!(offset, start as u64, "byte {byte}")
                }
                other => panic!("byte {byte} bit {bit}: expected Corrupt, got {other:?}"),
            }
            // Nothing was changed on disk.
            assert_eq!(fs::read(&path).unwrap(), damaged);
        }
    }
}

#[test]
fn bit_flip_in_the_last_record_is_treated_as_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let ends = write_three(&path);
    let full = fs::read(&path).unwrap();
    let (start, end) = (ends[2] as usize, ends[3] as usize);
    for byte in start..end {
        let mut damaged = full.clone();
        damaged[byte] ^= 0x10;
        fs::write(&path, &damaged).unwrap();
        let (_, replay) = Journal::open::<Rec>(&path).unwrap();
        assert_eq!(replay.records, vec![rec(0), rec(1)], "byte {byte}");
        assert_eq!(replay.torn_tail.map(|t| t.offset), Some(start as u64));
    }
}

#[test]
fn zero_filled_tail_is_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write_three(&path);
    let mut full = fs::read(&path).unwrap();
    full.extend_from_slice(&[0u8; 4096]);
    fs::write(&path, &full).unwrap();
    let (_, replay) = Journal::open::<Rec>(&path).unwrap();
    assert_eq!(replay.records.len(), 3);
    assert_eq!(replay.torn_tail.map(|t| t.bytes), Some(4096));
}

#[test]
fn bad_magic_is_refused_and_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    fs::write(&path, b"something else entirely").unwrap();
    assert!(matches!(
        Journal::open::<Rec>(&path),
        Err(JournalError::BadMagic { .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), b"something else entirely");
}

#[test]
fn undecodable_record_with_valid_checksum_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    {
        let (mut j, _) = Journal::open::<Rec>(&path).unwrap();
        j.append(&"not a Rec").unwrap();
    }
    match Journal::open::<Rec>(&path) {
        Err(JournalError::Decode { offset, .. }) => assert_eq!(offset, MAGIC.len() as u64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rewrite_compacts_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write_three(&path);
    let (mut j, _) = Journal::open::<Rec>(&path).unwrap();
    j.rewrite(&[rec(7)]).unwrap();
    j.append(&rec(8)).unwrap();
    drop(j);
    let (_, replay) = Journal::open::<Rec>(&path).unwrap();
    assert_eq!(replay.records, vec![rec(7), rec(8)]);
    assert!(!dir.path().join("j.compact.tmp").exists());
}

#[test]
fn record_header_layout() {
    let bytes = hactl_journal::encode(&rec(1)).unwrap();
    let len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    assert_eq!(bytes.len(), HEADER_LEN + len);
}

/// The in-memory journal holds exactly the bytes the file journal writes,
/// and replays a torn tail at every cut the same way.
#[test]
fn memory_journal_is_the_file_format_and_replays_like_it() {
    use hactl_journal::MemJournal;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write_three(&path);
    let file_bytes = fs::read(&path).unwrap();
    let mut mem = MemJournal::new();
    for n in 0..3 {
        mem.append(&rec(n)).unwrap();
    }
    assert_eq!(mem.bytes(), &file_bytes[..]);
    assert_eq!(mem.records(), 3);
    for cut in 0..file_bytes.len() {
        let (m, mem_replay) = MemJournal::replay::<Rec>(file_bytes[..cut].to_vec()).unwrap();
        fs::write(&path, &file_bytes[..cut]).unwrap();
        let (j, file_replay) = Journal::open::<Rec>(&path).unwrap();
        assert_eq!(mem_replay.records, file_replay.records, "cut at {cut}");
        assert_eq!(mem_replay.torn_tail, file_replay.torn_tail, "cut at {cut}");
        assert_eq!(
            m.len() as u64,
            j.len().max(MAGIC.len() as u64),
            "cut at {cut}"
        );
    }
    // Tearing the last record, or appending half a copy of it, loses
    // exactly that write on replay; appends continue after the cut.
    let mut torn = mem.clone();
    assert!(torn.tear_last_record());
    let (mut after, replay) = MemJournal::replay::<Rec>(torn.bytes().to_vec()).unwrap();
    assert_eq!(replay.records, vec![rec(0), rec(1)]);
    assert!(replay.torn_tail.is_some());
    after.append(&rec(9)).unwrap();
    let (_, replay) = MemJournal::replay::<Rec>(after.bytes().to_vec()).unwrap();
    assert_eq!(replay.records, vec![rec(0), rec(1), rec(9)]);
    assert_eq!(replay.torn_tail, None);
    let mut copy = mem.clone();
    assert!(copy.append_torn_copy_of_last());
    let (_, replay) = MemJournal::replay::<Rec>(copy.bytes().to_vec()).unwrap();
    assert_eq!(replay.records, vec![rec(0), rec(1), rec(2)]);
    assert!(replay.torn_tail.is_some());
    // A damaged record followed by intact ones is refused, as from a file.
    let mut bad = mem.bytes().to_vec();
    bad[MAGIC.len() + HEADER_LEN + 2] ^= 0x40;
    assert!(matches!(
        MemJournal::replay::<Rec>(bad),
        Err(JournalError::Corrupt { .. })
    ));
    assert!(matches!(
        MemJournal::replay::<Rec>(b"not a journal".to_vec()),
        Err(JournalError::BadMagic { .. })
    ));
}
