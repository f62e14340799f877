//! Logging the way shell agents do: syslog facility `daemon`, tag
//! `kvm-host(<instance>)[<pid>]`; warnings and errors also on stderr, which
//! pacemaker-execd copies into its log.
//!
//! Messages go to the syslog datagram socket without blocking: a stalled
//! syslog daemon (full receive queue) must never stall a monitor or the
//! heartbeat writer, so a message that does not fit is dropped.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use syslog::{Facility, Formatter3164, LogFormat, Severity};

/// Overrides the syslog socket (tests point it at a socket they read).
pub const SYSLOG_SOCKET_ENV: &str = "KVM_HOST_SYSLOG_SOCKET";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

pub struct Logger {
    syslog: Option<(UnixDatagram, Formatter3164)>,
    stderr: bool,
    /// The agent's name in the stderr prefix and the syslog tag.
    agent: String,
}

fn connect(path: &PathBuf) -> Option<UnixDatagram> {
    let sock = UnixDatagram::unbound().ok()?;
    sock.connect(path).ok()?;
    sock.set_nonblocking(true).ok()?;
    Some(sock)
}

impl Logger {
    /// `stderr`: also print warnings and errors on stderr (agent actions; the
    /// daemon has no stderr). Syslog is skipped when Pacemaker says the log
    /// facility is `none` (crm_resource without a cluster does).
    pub fn new(instance: &str, stderr: bool) -> Logger {
        Logger::for_agent("kvm-host", instance, stderr)
    }

    /// As [`Logger::new`] for another agent of this suite (the tag becomes
    /// `<agent>(<instance>)[<pid>]`).
    pub fn for_agent(agent: &str, instance: &str, stderr: bool) -> Logger {
        let facility_off = ["HA_LOGFACILITY", "HA_logfacility", "PCMK_logfacility"]
            .iter()
            .any(|k| std::env::var(k).map(|v| v == "none").unwrap_or(false));
        let socket = match std::env::var_os(SYSLOG_SOCKET_ENV) {
            Some(path) => Some(PathBuf::from(path)),
            None if facility_off => None,
            None => Some(PathBuf::from("/dev/log")),
        };
        Logger::with_socket_for(agent, instance, stderr, socket)
    }

    /// A logger sending to the syslog datagram socket at `socket` (if any).
    pub fn with_socket(instance: &str, stderr: bool, socket: Option<PathBuf>) -> Logger {
        Logger::with_socket_for("kvm-host", instance, stderr, socket)
    }

    /// As [`Logger::with_socket`], tagged with another agent's name.
    pub fn with_socket_for(
        agent: &str,
        instance: &str,
        stderr: bool,
        socket: Option<PathBuf>,
    ) -> Logger {
        let socket = socket.as_ref().and_then(connect);
        let formatter = Formatter3164 {
            facility: Facility::LOG_DAEMON,
            hostname: None,
            process: format!("{agent}({instance})"),
            pid: std::process::id(),
        };
        Logger {
            syslog: socket.map(|s| (s, formatter)),
            stderr,
            agent: agent.to_string(),
        }
    }

    pub fn log(&self, level: Level, msg: &str) {
        if self.stderr && level != Level::Info {
            let tag = if level == Level::Error {
                "ERROR"
            } else {
                "WARNING"
            };
            eprintln!("{}: {tag}: {msg}", self.agent);
        }
        if let Some((sock, formatter)) = &self.syslog {
            let severity = match level {
                Level::Info => Severity::LOG_INFO,
                Level::Warning => Severity::LOG_WARNING,
                Level::Error => Severity::LOG_ERR,
            };
            let mut line = Vec::with_capacity(128 + msg.len());
            if formatter.format(&mut line, severity, msg).is_ok() {
                // WouldBlock (queue full) or no listener: drop, never wait.
                let _ = sock.send(&line);
            }
        }
    }

    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg)
    }
    pub fn warn(&self, msg: &str) {
        self.log(Level::Warning, msg)
    }
    pub fn error(&self, msg: &str) {
        self.log(Level::Error, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_syslog_queue_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let reader = UnixDatagram::bind(&path).unwrap();
        let log = Logger::with_socket("t", false, Some(path.clone()));
        let t0 = std::time::Instant::now();
        for i in 0..5000 {
            log.error(&format!("message {i}"));
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
        let mut buf = [0u8; 512];
        let n = reader.recv(&mut buf).unwrap();
        let first = String::from_utf8_lossy(&buf[..n]);
        assert!(first.starts_with("<27>"), "{first}");
        assert!(first.contains("kvm-host(t)"), "{first}");
        assert!(first.contains("message 0"), "{first}");
    }
}
