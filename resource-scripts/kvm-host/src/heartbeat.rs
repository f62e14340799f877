//! The heartbeat file on shared storage: its format, its atomic write, and
//! its read. Every function here may block forever on a hung NFS mount, so
//! callers run them in a thread or child process they can abandon.

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Version of the on-storage format; readers refuse other values.
pub const FORMAT_VERSION: u32 = 1;

/// Largest heartbeat file a reader accepts (a real one is ~200 bytes).
const MAX_RECORD_BYTES: u64 = 4096;

/// One heartbeat, as stored in `<storage>/<heartbeat_dir>/ocf-hb-<host>`.
///
/// A reader decides "alive" by comparing two samples taken across a window:
/// the `counter` (or the `incarnation`) changed. No clock is compared: the
/// timestamp is the writer's own, for humans only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRecord {
    pub format: u32,
    pub host: String,
    /// Strictly increases with every write by one writer; a new writer
    /// continues from the value it finds.
    pub counter: u64,
    /// Identifies the writer process (boot id and PID): a change means a new
    /// writer, which is also activity.
    pub incarnation: String,
    /// The writer's wall clock at the write, milliseconds since the epoch.
    pub written_unix_ms: u64,
    /// The writer's interval: a reader needs a window of at least twice this.
    pub interval_secs: u64,
}

impl HeartbeatRecord {
    /// One JSON line.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("record serialises");
        v.push(b'\n');
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<HeartbeatRecord, String> {
        let rec: HeartbeatRecord =
            serde_json::from_slice(bytes).map_err(|e| format!("not a heartbeat record: {e}"))?;
        if rec.format != FORMAT_VERSION {
            return Err(format!("unsupported heartbeat format {}", rec.format));
        }
        Ok(rec)
    }
}

/// Why a heartbeat could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("{storage} is not a mount point (storage not mounted?)")]
    NotMounted { storage: PathBuf },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error("{path}: read back counter {found}, wrote {wrote} (another writer for this host?)")]
    ReadBackMismatch {
        path: PathBuf,
        wrote: u64,
        found: u64,
    },
}

impl HeartbeatError {
    /// True when the file simply does not exist (as opposed to unreadable).
    pub fn is_missing(&self) -> bool {
        matches!(self, HeartbeatError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> HeartbeatError + 'a {
    move |source| HeartbeatError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Where one host's heartbeat lives on one storage.
pub fn heartbeat_path(storage: &Path, heartbeat_dir: &str, host: &str) -> PathBuf {
    storage.join(heartbeat_dir).join(format!("ocf-hb-{host}"))
}

fn temp_path(storage: &Path, heartbeat_dir: &str, host: &str) -> PathBuf {
    storage
        .join(heartbeat_dir)
        .join(format!(".ocf-hb-{host}.tmp"))
}

/// Unescapes the octal escapes (`\040` for a space) of /proc/self/mountinfo.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let value = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(value as u8);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points listed in a mountinfo text (field 5 of each line).
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|f| PathBuf::from(unescape_mount_field(f)))
        .collect()
}

/// Whether `path` is listed as a mount point. Reads only /proc, never the
/// storage itself, so it cannot hang on a dead NFS server.
pub fn is_mount_point(path: &Path) -> Result<bool, HeartbeatError> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(io_err("read", Path::new("/proc/self/mountinfo")))?;
    let wanted: PathBuf = path.components().collect();
    Ok(mount_points(&info).contains(&wanted))
}

/// Writes `record` atomically (temp file, fsync, rename, fsync of the
/// directory) and reads it back. Creates the heartbeat directory if needed,
/// never the storage mount point itself.
pub fn write_heartbeat(
    storage: &Path,
    heartbeat_dir: &str,
    require_mount: bool,
    record: &HeartbeatRecord,
) -> Result<(), HeartbeatError> {
    if require_mount && !is_mount_point(storage)? {
        return Err(HeartbeatError::NotMounted {
            storage: storage.to_path_buf(),
        });
    }
    let dir = storage.join(heartbeat_dir);
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("mkdir", &dir)(e)),
    }
    let tmp = temp_path(storage, heartbeat_dir, &record.host);
    let path = heartbeat_path(storage, heartbeat_dir, &record.host);
    {
        // No O_EXCL: a stale temp file from a killed writer is reused.
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(&record.encode())
            .map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", &dir))?;
    let back = read_heartbeat(&path)?;
    if back != *record {
        return Err(HeartbeatError::ReadBackMismatch {
            path,
            wrote: record.counter,
            found: back.counter,
        });
    }
    Ok(())
}

/// Reads and decodes one heartbeat file.
pub fn read_heartbeat(path: &Path) -> Result<HeartbeatRecord, HeartbeatError> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err("open", path))?;
    let mut buf = Vec::new();
    f.take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io_err("read", path))?;
    if buf.len() as u64 > MAX_RECORD_BYTES {
        return Err(HeartbeatError::Corrupt {
            path: path.to_path_buf(),
            why: "larger than any heartbeat record".into(),
        });
    }
    HeartbeatRecord::decode(&buf).map_err(|why| HeartbeatError::Corrupt {
        path: path.to_path_buf(),
        why,
    })
}

/// Milliseconds on CLOCK_BOOTTIME: monotonic, shared by all processes of
/// this host, counts suspend. Used for every local age comparison.
pub fn boot_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}

/// Wall clock, for the informational timestamp only.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// This boot's id, so that an incarnation is unique across reboots.
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-boot".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(counter: u64) -> HeartbeatRecord {
        HeartbeatRecord {
            format: FORMAT_VERSION,
            host: "kvm1".into(),
            counter,
            incarnation: "b:1".into(),
            written_unix_ms: 1,
            interval_secs: 5,
        }
    }

    #[test]
    fn record_round_trips_and_rejects_garbage() {
        let r = rec(7);
        assert_eq!(HeartbeatRecord::decode(&r.encode()).unwrap(), r);
        assert!(HeartbeatRecord::decode(b"1700000000\n").is_err());
        let mut other = rec(1);
        other.format = 2;
        assert!(HeartbeatRecord::decode(&other.encode()).is_err());
    }

    #[test]
    fn write_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        write_heartbeat(dir.path(), "KVMHA", false, &rec(1)).unwrap();
        write_heartbeat(dir.path(), "KVMHA", false, &rec(2)).unwrap();
        let p = heartbeat_path(dir.path(), "KVMHA", "kvm1");
        assert_eq!(read_heartbeat(&p).unwrap().counter, 2);
        assert!(!temp_path(dir.path(), "KVMHA", "kvm1").exists());
    }

    #[test]
    fn unmounted_storage_is_refused_and_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_heartbeat(dir.path(), "KVMHA", true, &rec(1)).unwrap_err();
        assert!(matches!(err, HeartbeatError::NotMounted { .. }), "{err}");
        assert!(!dir.path().join("KVMHA").exists());
    }

    #[test]
    fn missing_file_is_distinguished() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_heartbeat(&dir.path().join("nope")).unwrap_err();
        assert!(err.is_missing());
    }

    #[test]
    fn mountinfo_parsing() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    40 22 0:35 / /mnt/with\\040space rw - nfs srv:/x rw\n";
        let mps = mount_points(info);
        assert_eq!(
            mps,
            vec![PathBuf::from("/"), PathBuf::from("/mnt/with space")]
        );
        assert!(is_mount_point(Path::new("/")).unwrap());
        assert!(is_mount_point(Path::new("/proc/")).unwrap());
    }
}
