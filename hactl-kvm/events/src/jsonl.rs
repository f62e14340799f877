//! A JSON-lines event file with size-based rotation.

use hactl_control::EventRecord;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Settings of the events file.
#[derive(Debug, Clone)]
pub struct JsonlConfig {
    /// The file (rotated files get `.1`, `.2` ... appended; `.1` is newest).
    pub path: PathBuf,
    /// Rotate before a line would make the file larger than this.
    pub max_bytes: u64,
    /// Rotated files kept (at least 1).
    pub keep: u32,
}

/// The open events file.
#[derive(Debug)]
pub struct JsonlSink {
    config: JsonlConfig,
    file: File,
    len: u64,
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl JsonlSink {
    /// Opens (or creates, mode 0640) the file for appending.
    pub fn open(mut config: JsonlConfig) -> std::io::Result<Self> {
        config.keep = config.keep.max(1);
        let file = Self::open_file(&config.path)?;
        let len = file.metadata()?.len();
        Ok(JsonlSink { config, file, len })
    }

    fn open_file(path: &Path) -> std::io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let p = &self.config.path;
        let _ = std::fs::remove_file(rotated(p, self.config.keep));
        for n in (1..self.config.keep).rev() {
            let from = rotated(p, n);
            if from.exists() {
                std::fs::rename(&from, rotated(p, n + 1))?;
            }
        }
        std::fs::rename(p, rotated(p, 1))?;
        self.file = Self::open_file(p)?;
        self.len = 0;
        Ok(())
    }

    /// Appends one event as a line (one `write`), rotating first if the
    /// line would take the file over `max_bytes`.
    pub fn write(&mut self, rec: &EventRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if self.len > 0 && self.len + line.len() as u64 > self.config.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.len += line.len() as u64;
        Ok(())
    }

    /// Bytes in the current file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the current file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
