//! Encoding of journal records on the simulated disk, with torn-tail
//! detection on replay.
//!
//! Frame: 4-byte little-endian payload length, 4-byte FNV-1a checksum of
//! the payload, then the payload (the record as JSON). A frame that is cut
//! short or whose checksum does not match ends the replay: it is a record
//! whose write was interrupted, so neither it nor anything after it counts.

use hactl_core::Record;

pub fn encode(rec: &Record) -> Vec<u8> {
    let payload = serde_json::to_vec(rec).expect("journal records always serialise");
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&fnv1a(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

fn fnv1a(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &x in b {
        h ^= u32::from(x);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

pub struct Replay {
    pub records: Vec<Record>,
    /// Bytes after the last intact record, if any.
    pub torn_tail: Option<usize>,
    /// Length of the intact prefix: where the next append must start.
    pub valid_len: usize,
    /// Start offset of every intact record.
    pub record_starts: Vec<usize>,
}

pub fn decode(bytes: &[u8]) -> Replay {
    let mut records = Vec::new();
    let mut record_starts = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 8 {
            break;
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let sum = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if rest.len() < 8 + len {
            break;
        }
        let payload = &rest[8..8 + len];
        if fnv1a(payload) != sum {
            break;
        }
        match serde_json::from_slice(payload) {
            Ok(r) => {
                records.push(r);
                record_starts.push(at);
            }
            Err(_) => break,
        }
        at += 8 + len;
    }
    Replay {
        records,
        torn_tail: (at < bytes.len()).then(|| bytes.len() - at),
        valid_len: at,
        record_starts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_detected_and_the_intact_prefix_kept() {
        let a = encode(&Record::Started { epoch: 1, at: 5 });
        let b = encode(&Record::Started { epoch: 2, at: 9 });
        let mut disk = a.clone();
        disk.extend_from_slice(&b[..b.len() / 2]);
        let r = decode(&disk);
        assert_eq!(r.records, vec![Record::Started { epoch: 1, at: 5 }]);
        assert_eq!(r.valid_len, a.len());
        assert_eq!(r.torn_tail, Some(b.len() / 2));
        // A flipped byte in the last record is caught by the checksum.
        let mut disk = a.clone();
        disk.extend_from_slice(&b);
        let n = disk.len();
        disk[n - 2] ^= 0x20;
        assert_eq!(decode(&disk).records.len(), 1);
        // Clean journal.
        let mut disk = a.clone();
        disk.extend_from_slice(&b);
        let r = decode(&disk);
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.torn_tail, None);
        assert_eq!(r.record_starts, vec![0, a.len()]);
    }
}
