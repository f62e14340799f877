//! Logging the way fence agents do (fencing.py §1.6): stderr (unless `--quiet`), syslog
//! (always, when a syslog socket exists), and `--debug-file`; WARNING and above unless
//! verbose, then DEBUG. Lines look like `2026-11-27 20:02:28,834 ERROR: Failed: ...`.
//!
//! Every line passes through a redaction filter that replaces registered secrets with
//! `[hidden]`, so a password or Kg key cannot leak even through a dependency's debug output.
//!
//! The logger is a [`log::Log`]; the `tracing` events of dependencies reach it through
//! tracing's `log` feature.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};
use syslog::{Facility, Formatter3164, LoggerBackend};

/// Environment variable naming the syslog socket to use instead of the standard ones.
pub const SYSLOG_SOCKET_ENV: &str = "FENCE_AGENT_SYSLOG_SOCKET";

struct State {
    level: LevelFilter,
    stderr: bool,
    debug_file: Option<File>,
    syslog: Option<syslog::Logger<LoggerBackend, Formatter3164>>,
    /// Longest first, no duplicates, zeroed when dropped.
    secrets: Vec<zeroize::Zeroizing<String>>,
    /// Captured lines (tests only).
    capture: Option<Vec<String>>,
}

/// The process-wide agent logger.
pub struct AgentLogger {
    state: Mutex<State>,
}

static LOGGER: OnceLock<AgentLogger> = OnceLock::new();

/// Install the logger (idempotent). Until [`AgentLogger::configure`] runs it writes WARNING
/// and above to stderr, like Python's implicit `basicConfig` during option parsing.
pub fn install(agent_name: &str) -> &'static AgentLogger {
    let mut fresh = false;
    let logger = LOGGER.get_or_init(|| {
        fresh = true;
        let formatter = Formatter3164 {
            facility: Facility::LOG_USER,
            hostname: None,
            process: agent_name.to_string(),
            pid: std::process::id(),
        };
        // The standard sockets (/dev/log, ...) unless SYSLOG_SOCKET_ENV names another one
        // (containers, tests). No syslog daemon: no syslog output, nothing else changes.
        let mut syslog = match std::env::var_os(SYSLOG_SOCKET_ENV) {
            Some(path) => syslog::unix_custom(formatter, path).ok(),
            None => syslog::unix(formatter).ok(),
        };
        // A stalled syslog daemon must never stall fencing: send without blocking and drop
        // the line if the socket is full (stderr and the debug file still get it).
        let nonblocking = match syslog.as_ref().map(|l| &l.backend) {
            Some(LoggerBackend::Unix(socket)) => socket.set_nonblocking(true).is_ok(),
            Some(LoggerBackend::UnixStream(stream)) => {
                stream.get_ref().set_nonblocking(true).is_ok()
            }
            Some(_) | None => true,
        };
        if !nonblocking {
            syslog = None;
        }
        AgentLogger {
            state: Mutex::new(State {
                level: LevelFilter::Warn,
                stderr: true,
                debug_file: None,
                syslog,
                secrets: Vec::new(),
                capture: None,
            }),
        }
    });
    if fresh {
        // Another logger may already be set (tests); ours then only serves direct calls.
        let _ = log::set_logger(logger);
        log::set_max_level(LevelFilter::Warn);
    }
    logger
}

/// The installed logger, if any.
pub fn logger() -> Option<&'static AgentLogger> {
    LOGGER.get()
}

/// Map a verbose level to a log level: 0 = WARNING, 1–2 = DEBUG, 3+ = TRACE (dependency
/// protocol detail).
pub fn level_for(verbose_level: u32) -> LevelFilter {
    match verbose_level {
        0 => LevelFilter::Warn,
        1 | 2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug | Level::Trace => "DEBUG",
    }
}

/// Replace every occurrence of each secret by `[hidden]`, in one pass over `text`, trying the
/// longest secret first at each position: a secret inside another (or inside `[hidden]`) can
/// neither leave part of the longer one visible nor garble the replacement. There is no
/// minimum length: a one-character password hides every occurrence of that character.
pub fn redact<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut sorted: Vec<&str> = secrets
        .iter()
        .map(AsRef::as_ref)
        .filter(|s| !s.is_empty())
        .collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    if !sorted.iter().any(|s| text.contains(s)) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match sorted.iter().find(|s| rest.starts_with(**s)) {
            Some(s) => {
                out.push_str("[hidden]");
                rest = &rest[s.len()..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

impl AgentLogger {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set the level (from the verbose level) and whether stderr is used (`--quiet` off).
    pub fn configure(&self, level: LevelFilter, stderr: bool) {
        let mut st = self.lock();
        st.level = level;
        st.stderr = stderr;
        log::set_max_level(level);
    }

    /// Add the `--debug-file` sink (appending, as Python's FileHandler does).
    pub fn open_debug_file(&self, path: &Path) -> io::Result<()> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        self.lock().debug_file = Some(f);
        Ok(())
    }

    /// Register a secret that must never appear in any log line.
    pub fn add_secret(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut st = self.lock();
        if st.secrets.iter().any(|s| s.as_str() == secret) {
            return;
        }
        st.secrets.push(zeroize::Zeroizing::new(secret.to_string()));
        st.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Start capturing formatted lines in memory (for tests).
    pub fn start_capture(&self) {
        self.lock().capture = Some(Vec::new());
    }

    /// Take the captured lines.
    pub fn take_capture(&self) -> Vec<String> {
        self.lock().capture.take().unwrap_or_default()
    }

    fn emit(&self, level: Level, message: &str) {
        let mut st = self.lock();
        if level > st.level {
            return;
        }
        let message = redact(message, &st.secrets);
        let message = message.trim_end_matches('\n');
        let ts = chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f");
        let line = format!("{ts} {}: {message}\n", level_name(level));
        if let Some(c) = st.capture.as_mut() {
            c.push(line.clone());
        }
        if st.stderr {
            let _ = io::stderr().lock().write_all(line.as_bytes());
        }
        if let Some(f) = st.debug_file.as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
        if let Some(sl) = st.syslog.as_mut() {
            let msg = message.replace('\0', "\n");
            let _ = match level {
                Level::Error => sl.err(msg),
                Level::Warn => sl.warning(msg),
                Level::Info => sl.info(msg),
                Level::Debug | Level::Trace => sl.debug(msg),
            };
        }
    }
}

impl Log for AgentLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.lock().level
    }

    fn log(&self, record: &Record<'_>) {
        // Our own messages are written as they are; dependencies' records say where from.
        let own = record.module_path().map_or(true, |m| {
            m.starts_with("fence_agent") || m.starts_with("fence_ipmi")
        });
        let text = if own {
            record.args().to_string()
        } else {
            format!("{}: {}", record.target(), record.args())
        };
        self.emit(record.level(), &text);
    }

    fn flush(&self) {
        if let Some(f) = self.lock().debug_file.as_mut() {
            let _ = f.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_replaces_every_registered_secret() {
        let secrets = vec!["hunter2".to_string(), "00ff".to_string(), "ab".to_string()];
        assert_eq!(
            redact("pw hunter2 kg 00ff user ab", &secrets),
            "pw [hidden] kg [hidden] user [hidden]"
        );
    }

    #[test]
    fn redaction_is_longest_first_with_no_minimum_length() {
        // "pa" is inside "password1": registered first, it must not leave "ssword1" visible.
        let secrets = ["pa", "password1", "d", "x"];
        assert_eq!(
            redact("pw=password1 pa d xx", &secrets),
            "pw=[hidden] [hidden] [hidden] [hidden][hidden]"
        );
        // One-character secrets inside the replacement marker do not garble it.
        assert_eq!(redact("hi", &["h", "i", "d"]), "[hidden][hidden]");
        assert_eq!(redact("ümlaut ü", &["ü"]), "[hidden]mlaut [hidden]");
        assert_eq!(redact("nothing", &["zz"]), "nothing");
    }

    #[test]
    fn levels() {
        assert_eq!(level_for(0), LevelFilter::Warn);
        assert_eq!(level_for(1), LevelFilter::Debug);
        assert_eq!(level_for(5), LevelFilter::Trace);
    }

    #[test]
    fn logger_formats_filters_and_redacts() {
        // A private instance: the global logger is shared with parallel tests.
        let l = AgentLogger {
            state: Mutex::new(State {
                level: LevelFilter::Warn,
                stderr: false,
                debug_file: None,
                syslog: None,
                secrets: Vec::new(),
                capture: None,
            }),
        };
        l.add_secret("s3cr3t-pw");
        l.start_capture();
        l.emit(
            Level::Warn,
            "Parse error: something with s3cr3t-pw inside\n",
        );
        l.emit(Level::Info, "not shown at WARNING level");
        l.lock().level = LevelFilter::Debug;
        l.emit(Level::Debug, "now shown");
        let lines = l.take_capture();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with(" WARNING: Parse error: something with [hidden] inside\n"));
        assert!(lines[1].ends_with(" DEBUG: now shown\n"));
        // 2026-11-27 20:02:28,834 WARNING: ...
        let ts = &lines[0][..23];
        assert_eq!(ts.as_bytes()[19], b',');
        assert_eq!(ts.as_bytes()[4], b'-');
    }

    #[test]
    fn debug_file_receives_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.log");
        let l = AgentLogger {
            state: Mutex::new(State {
                level: LevelFilter::Debug,
                stderr: false,
                debug_file: None,
                syslog: None,
                secrets: vec![zeroize::Zeroizing::new("hunter22".to_string())],
                capture: None,
            }),
        };
        l.open_debug_file(&path).unwrap();
        l.emit(Level::Debug, "password is hunter22");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with(" DEBUG: password is [hidden]\n"), "{text}");
    }
}
