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
}

pub fn decode(bytes: &[u8]) -> Replay {
    let mut records = Vec::new();
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
            Ok(r) => records.push(r),
            Err(_) => break,
        }
        at += 8 + len;
    }
    Replay {
        records,
        torn_tail: (at < bytes.len()).then(|| bytes.len() - at),
    }
}
