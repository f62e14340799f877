//! The coordinator's append-only, fsync'ed journal of transitions and fence
//! attempts, with torn-record detection on replay.
//!
//! # File format
//!
//! ```text
//! magic   "HACTLJ1\n"                                   8 bytes
//! record  len: u32 LE | crc32(payload): u32 LE | crc32(len|crc): u32 LE | payload (JSON)
//! record  ...
//! ```
//!
//! The header carries its own checksum so that a damaged length is never
//! trusted. Every append is written with one `write` and made durable with
//! `fdatasync` before [`Journal::append`] returns; creating the file also
//! fsyncs its directory.
//!
//! # Replay
//!
//! [`Journal::open`] reads every record. A damaged **last** record (the file
//! ends inside it, or it fails a checksum and no intact record follows it,
//! or the tail is zero-filled) is a torn write from a crash: it is reported
//! in [`Replay::torn_tail`], cut off, and start-up continues. Damage followed
//! by intact records is an error naming the byte offset: the journal is then
//! not trusted and nothing is changed.
//!
//! The journal is generic over the record type (anything serde can write).

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The 8-byte file header.
pub const MAGIC: &[u8; 8] = b"HACTLJ1\n";
/// Bytes of a record header.
pub const HEADER_LEN: usize = 12;
/// Largest payload accepted (a sanity bound, far above any real record).
pub const MAX_RECORD_LEN: u32 = 16 << 20;

/// Journal errors. Each names the file and, for damage, the byte offset.
#[derive(Debug, Error)]
pub enum JournalError {
    /// An I/O operation failed.
    #[error("journal {path}: {op} failed: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the journal magic.
    #[error("journal {path}: not a hactl journal (bad magic)")]
    BadMagic {
        /// File.
        path: PathBuf,
    },
    /// A record before the last one is damaged.
    #[error("journal {path}: corrupt record at byte offset {offset}: {detail}; refusing to continue (inspect or restore the file)")]
    Corrupt {
        /// File.
        path: PathBuf,
        /// Offset of the record header.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// A record passed its checksum but could not be decoded.
    #[error("journal {path}: record at byte offset {offset} cannot be decoded: {source}")]
    Decode {
        /// File.
        path: PathBuf,
        /// Offset of the record header.
        offset: u64,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// A record could not be encoded.
    #[error("journal {path}: record cannot be encoded: {source}")]
    Encode {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// A record is larger than [`MAX_RECORD_LEN`].
    #[error("journal {path}: record of {len} bytes exceeds the limit of {MAX_RECORD_LEN}")]
    TooLarge {
        /// File.
        path: PathBuf,
        /// Size.
        len: usize,
    },
}

/// A torn last record that replay cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Where the torn record started (the file now ends here).
    pub offset: u64,
    /// Bytes removed.
    pub bytes: u64,
}

/// What replay found.
#[derive(Debug)]
pub struct Replay<T> {
    /// Every intact record, in order.
    pub records: Vec<T>,
    /// A torn last record, if one was cut off.
    pub torn_tail: Option<TornTail>,
}

/// What a read-only look at a journal found ([`inspect`]).
#[derive(Debug)]
pub struct Inspection<T> {
    /// Every intact record with the byte offset of its header, in order.
    pub records: Vec<(u64, T)>,
    /// A torn last record that [`Journal::open`] would cut off (not cut here).
    pub torn_tail: Option<TornTail>,
    /// File size in bytes.
    pub bytes: u64,
}

/// Reads a journal without changing it (for offline verify and dump):
/// the same checks as [`Journal::open`], but a torn tail is only reported.
/// Damage followed by intact records is [`JournalError::Corrupt`].
pub fn inspect<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<Inspection<T>, JournalError> {
    let path = path.as_ref();
    let buf = std::fs::read(path).map_err(|source| JournalError::Io {
        path: path.to_path_buf(),
        op: "read",
        source,
    })?;
    let bytes = buf.len() as u64;
    if buf.len() < MAGIC.len() {
        if MAGIC.starts_with(&buf) {
            return Ok(Inspection {
                records: Vec::new(),
                torn_tail: Some(TornTail { offset: 0, bytes }),
                bytes,
            });
        }
        return Err(JournalError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    if &buf[..MAGIC.len()] != MAGIC {
        return Err(JournalError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    let mut records = Vec::new();
    let mut off = MAGIC.len();
    let mut torn_tail = None;
    while off < buf.len() {
        match scan_one(&buf, off) {
            Scan::Record { payload, end } => {
                let rec = serde_json::from_slice(&buf[payload]).map_err(|source| {
                    JournalError::Decode {
                        path: path.to_path_buf(),
                        offset: off as u64,
                        source,
                    }
                })?;
                records.push((off as u64, rec));
                off = end;
            }
            Scan::Corrupt(detail) if valid_record_follows(&buf, off + 1) => {
                return Err(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    offset: off as u64,
                    detail,
                })
            }
            Scan::Torn | Scan::Corrupt(_) => {
                torn_tail = Some(TornTail {
                    offset: off as u64,
                    bytes: (buf.len() - off) as u64,
                });
                break;
            }
        }
    }
    Ok(Inspection {
        records,
        torn_tail,
        bytes,
    })
}

/// An open journal, positioned for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
}

fn header(payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[4..8].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let hc = crc32fast::hash(&h[0..8]);
    h[8..12].copy_from_slice(&hc.to_le_bytes());
    h
}

/// Encodes one record as it is stored (header + payload).
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, serde_json::Error> {
    let payload = serde_json::to_vec(record)?;
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    buf.extend_from_slice(&header(&payload));
    buf.extend_from_slice(&payload);
    Ok(buf)
}

enum Scan {
    /// A whole record: payload range and end offset.
    Record {
        payload: std::ops::Range<usize>,
        end: usize,
    },
    /// The rest of the file is a torn last record.
    Torn,
    /// Damage before the end.
    Corrupt(String),
}

fn scan_one(buf: &[u8], off: usize) -> Scan {
    let rest = &buf[off..];
    if rest.len() < HEADER_LEN {
        return Scan::Torn;
    }
    let h = &rest[..HEADER_LEN];
    let hc = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if crc32fast::hash(&h[0..8]) != hc {
        if rest.iter().all(|&b| b == 0) {
            // Zero-filled tail: the file grew but the data never landed.
            return Scan::Torn;
        }
        return Scan::Corrupt("record header checksum mismatch".into());
    }
    let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
    if len > MAX_RECORD_LEN {
        return Scan::Corrupt(format!("record length {len} exceeds the limit"));
    }
    let end = HEADER_LEN + len as usize;
    if rest.len() < end {
        // A valid header whose payload did not fully land.
        return Scan::Torn;
    }
    let payload = &rest[HEADER_LEN..end];
    if crc32fast::hash(payload) != crc {
        if rest.len() == end {
            return Scan::Torn;
        }
        return Scan::Corrupt("record payload checksum mismatch".into());
    }
    Scan::Record {
        payload: off + HEADER_LEN..off + end,
        end: off + end,
    }
}

/// Is there an intact record starting anywhere at or after `from`?
fn valid_record_follows(buf: &[u8], from: usize) -> bool {
    (from..buf.len()).any(|p| matches!(scan_one(buf, p), Scan::Record { .. }))
}

/// Replays the records after the magic: every intact record, where the
/// intact prefix ends, and the torn tail cut off (if any). Shared by the
/// file journal and [`MemJournal`], so both follow the same rules.
fn replay_records<T: DeserializeOwned>(
    buf: &[u8],
    path: &Path,
) -> Result<(Vec<T>, usize, Option<TornTail>), JournalError> {
    let mut records = Vec::new();
    let mut off = MAGIC.len();
    let mut torn_tail = None;
    while off < buf.len() {
        match scan_one(buf, off) {
            Scan::Record { payload, end } => {
                let rec = serde_json::from_slice(&buf[payload]).map_err(|source| {
                    JournalError::Decode {
                        path: path.to_path_buf(),
                        offset: off as u64,
                        source,
                    }
                })?;
                records.push(rec);
                off = end;
            }
            Scan::Torn => {
                torn_tail = Some(TornTail {
                    offset: off as u64,
                    bytes: (buf.len() - off) as u64,
                });
                break;
            }
            Scan::Corrupt(_) if !valid_record_follows(buf, off + 1) => {
                // Damaged, and nothing intact after it: this was the
                // last record, torn or scribbled by the crash.
                torn_tail = Some(TornTail {
                    offset: off as u64,
                    bytes: (buf.len() - off) as u64,
                });
                break;
            }
            Scan::Corrupt(detail) => {
                return Err(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    offset: off as u64,
                    detail,
                })
            }
        }
    }
    Ok((records, off, torn_tail))
}

/// The name a [`MemJournal`] uses in its errors.
pub const MEMORY_PATH: &str = "<memory>";

/// A journal kept in memory, byte for byte the file format of [`Journal`]
/// and replayed by the same code: the simulator keeps its coordinator's
/// journal in one, so the format the daemon restarts from is the one the
/// simulation sweeps prove (torn tails included).
#[derive(Debug, Clone)]
pub struct MemJournal {
    bytes: Vec<u8>,
    /// Start offset of every intact record.
    starts: Vec<usize>,
}

impl Default for MemJournal {
    fn default() -> Self {
        Self::new()
    }
}

impl MemJournal {
    /// An empty journal (the magic only).
    pub fn new() -> Self {
        MemJournal {
            bytes: MAGIC.to_vec(),
            starts: Vec::new(),
        }
    }

    /// Replays `bytes` as [`Journal::open`] replays a file (an empty or
    /// partially written magic is an empty journal) and returns the journal,
    /// its torn tail cut off, positioned for appending.
    pub fn replay<T: DeserializeOwned>(
        bytes: Vec<u8>,
    ) -> Result<(MemJournal, Replay<T>), JournalError> {
        let path = Path::new(MEMORY_PATH);
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) {
            // As for a file that exists: its creation was interrupted.
            let torn_tail = Some(TornTail {
                offset: 0,
                bytes: bytes.len() as u64,
            });
            let replay = Replay {
                records: Vec::new(),
                torn_tail,
            };
            return Ok((MemJournal::new(), replay));
        }
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(JournalError::BadMagic {
                path: path.to_path_buf(),
            });
        }
        let (records, end, torn_tail) = replay_records(&bytes, path)?;
        let mut bytes = bytes;
        bytes.truncate(end);
        let mut starts = Vec::with_capacity(records.len());
        let mut off = MAGIC.len();
        while off < end {
            starts.push(off);
            match scan_one(&bytes, off) {
                Scan::Record { end, .. } => off = end,
                _ => unreachable!("the intact prefix scans as records"),
            }
        }
        Ok((MemJournal { bytes, starts }, Replay { records, torn_tail }))
    }

    /// Appends one record.
    pub fn append<T: Serialize>(&mut self, record: &T) -> Result<(), JournalError> {
        let buf = encode(record).map_err(|source| JournalError::Encode {
            path: PathBuf::from(MEMORY_PATH),
            source,
        })?;
        if buf.len() - HEADER_LEN > MAX_RECORD_LEN as usize {
            return Err(JournalError::TooLarge {
                path: PathBuf::from(MEMORY_PATH),
                len: buf.len() - HEADER_LEN,
            });
        }
        self.starts.push(self.bytes.len());
        self.bytes.extend_from_slice(&buf);
        Ok(())
    }

    /// Cuts the last record in half, as a crash during its write leaves it
    /// (for fault injection). False if there is no record.
    pub fn tear_last_record(&mut self) -> bool {
        let Some(start) = self.starts.pop() else {
            return false;
        };
        let len = self.bytes.len() - start;
        self.bytes.truncate(start + len / 2);
        true
    }

    /// Appends the first half of a copy of the last record: a write the
    /// crash interrupted (for fault injection). False if there is no record.
    pub fn append_torn_copy_of_last(&mut self) -> bool {
        let Some(&start) = self.starts.last() else {
            return false;
        };
        let rec = self.bytes[start..].to_vec();
        self.bytes.extend_from_slice(&rec[..rec.len() / 2]);
        true
    }

    /// The journal's bytes (what the file would hold).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes in the journal, magic included.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when no record was ever appended.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() == MAGIC.len()
    }

    /// Intact records appended or replayed.
    pub fn records(&self) -> usize {
        self.starts.len()
    }
}

impl Journal {
    fn io<'a>(
        path: &'a Path,
        op: &'static str,
    ) -> impl FnOnce(std::io::Error) -> JournalError + 'a {
        move |source| JournalError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    /// Opens (or creates) the journal at `path` and replays it.
    pub fn open<T: DeserializeOwned>(
        path: impl AsRef<Path>,
    ) -> Result<(Journal, Replay<T>), JournalError> {
        let path = path.as_ref();
        if !path.exists() {
            return Ok((
                Self::create(path)?,
                Replay {
                    records: Vec::new(),
                    torn_tail: None,
                },
            ));
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(Self::io(path, "open"))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(Self::io(path, "read"))?;
        if buf.len() < MAGIC.len() {
            // Crashed while creating: only a prefix of the magic (or
            // nothing) landed.
            if MAGIC.starts_with(&buf) {
                file.set_len(0).map_err(Self::io(path, "truncate"))?;
                file.seek(SeekFrom::Start(0))
                    .map_err(Self::io(path, "seek"))?;
                file.write_all(MAGIC).map_err(Self::io(path, "write"))?;
                file.sync_all().map_err(Self::io(path, "fsync"))?;
                return Ok((
                    Journal {
                        path: path.to_path_buf(),
                        file,
                        len: MAGIC.len() as u64,
                    },
                    Replay {
                        records: Vec::new(),
                        torn_tail: Some(TornTail {
                            offset: 0,
                            bytes: buf.len() as u64,
                        }),
                    },
                ));
            }
            return Err(JournalError::BadMagic {
                path: path.to_path_buf(),
            });
        }
        if &buf[..MAGIC.len()] != MAGIC {
            return Err(JournalError::BadMagic {
                path: path.to_path_buf(),
            });
        }
        let (records, off, torn_tail) = replay_records(&buf, path)?;
        if torn_tail.is_some() {
            file.set_len(off as u64)
                .map_err(Self::io(path, "truncate torn tail"))?;
            file.sync_all().map_err(Self::io(path, "fsync"))?;
        }
        file.seek(SeekFrom::Start(off as u64))
            .map_err(Self::io(path, "seek"))?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                len: off as u64,
            },
            Replay { records, torn_tail },
        ))
    }

    fn create(path: &Path) -> Result<Journal, JournalError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(Self::io(path, "create"))?;
        file.write_all(MAGIC).map_err(Self::io(path, "write"))?;
        file.sync_all().map_err(Self::io(path, "fsync"))?;
        sync_dir(path)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            len: MAGIC.len() as u64,
        })
    }

    /// Appends one record and makes it durable before returning.
    pub fn append<T: Serialize>(&mut self, record: &T) -> Result<(), JournalError> {
        self.append_all(std::slice::from_ref(record))
    }

    /// Appends several records with a single write and a single fsync.
    pub fn append_all<T: Serialize>(&mut self, records: &[T]) -> Result<(), JournalError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for r in records {
            let payload = serde_json::to_vec(r).map_err(|source| JournalError::Encode {
                path: self.path.clone(),
                source,
            })?;
            if payload.len() > MAX_RECORD_LEN as usize {
                return Err(JournalError::TooLarge {
                    path: self.path.clone(),
                    len: payload.len(),
                });
            }
            buf.extend_from_slice(&header(&payload));
            buf.extend_from_slice(&payload);
        }
        let path = self.path.clone();
        if let Err(e) = self.file.write_all(&buf) {
            // Leave no half-written record behind if we can help it.
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(Self::io(&path, "append")(e));
        }
        self.file.sync_data().map_err(Self::io(&path, "fsync"))?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Replaces the whole journal with `records` (compaction): written to a
    /// temporary file, fsynced, renamed over the journal, directory fsynced.
    pub fn rewrite<T: Serialize>(&mut self, records: &[T]) -> Result<(), JournalError> {
        let tmp = self.path.with_extension("compact.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut j = Self::create(&tmp)?;
        j.append_all(records)?;
        drop(j);
        std::fs::rename(&tmp, &self.path).map_err(Self::io(&self.path, "rename"))?;
        sync_dir(&self.path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(Self::io(&self.path, "reopen"))?;
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(Self::io(&self.path, "seek"))?;
        self.file = file;
        self.len = len;
        Ok(())
    }

    /// Bytes in the journal.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no record was ever appended.
    pub fn is_empty(&self) -> bool {
        self.len == MAGIC.len() as u64
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn sync_dir(path: &Path) -> Result<(), JournalError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| JournalError::Io {
            path: dir.to_path_buf(),
            op: "fsync directory",
            source,
        })
}
