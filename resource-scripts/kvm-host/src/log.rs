//! Logging the way shell agents do: syslog facility `daemon`, tag
//! `kvm-host(<instance>)[<pid>]`; warnings and errors also on stderr, which
//! pacemaker-execd copies into its log.

use std::sync::Mutex;
use syslog::{Facility, Formatter3164, Logger as SysLogger, LoggerBackend};

/// Overrides the syslog socket (tests point it at a socket they read).
pub const SYSLOG_SOCKET_ENV: &str = "KVM_HOST_SYSLOG_SOCKET";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

pub struct Logger {
    syslog: Option<Mutex<SysLogger<LoggerBackend, Formatter3164>>>,
    stderr: bool,
}

impl Logger {
    /// `stderr`: also print warnings and errors on stderr (agent actions; the
    /// daemon has no stderr). Syslog is skipped when Pacemaker says the log
    /// facility is `none` (crm_resource without a cluster does).
    pub fn new(instance: &str, stderr: bool) -> Logger {
        let facility_off = ["HA_LOGFACILITY", "HA_logfacility", "PCMK_logfacility"]
            .iter()
            .any(|k| std::env::var(k).map(|v| v == "none").unwrap_or(false));
        let custom_socket = std::env::var_os(SYSLOG_SOCKET_ENV);
        let formatter = Formatter3164 {
            facility: Facility::LOG_DAEMON,
            hostname: None,
            process: format!("kvm-host({instance})"),
            pid: std::process::id(),
        };
        let syslog = match custom_socket {
            Some(path) => syslog::unix_custom(formatter, path).ok(),
            None if facility_off => None,
            None => syslog::unix(formatter).ok(),
        };
        Logger {
            syslog: syslog.map(Mutex::new),
            stderr,
        }
    }

    pub fn log(&self, level: Level, msg: &str) {
        if self.stderr && level != Level::Info {
            let tag = if level == Level::Error {
                "ERROR"
            } else {
                "WARNING"
            };
            eprintln!("kvm-host: {tag}: {msg}");
        }
        if let Some(s) = &self.syslog {
            if let Ok(mut s) = s.lock() {
                let _ = match level {
                    Level::Info => s.info(msg),
                    Level::Warning => s.warning(msg),
                    Level::Error => s.err(msg),
                };
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
