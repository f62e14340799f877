//! The systemd notification protocol (`sd_notify`): datagrams such as
//! `READY=1` to the socket named by `NOTIFY_SOCKET` (a path, or `@name` for
//! the abstract namespace). Without `NOTIFY_SOCKET` every call does nothing.
//! The watchdog is fed at half of `WATCHDOG_USEC` when `WATCHDOG_PID` is
//! unset or names this process.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A handle on the notification socket, if systemd gave one.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let bytes = path.as_encoded_bytes();
            let addr = if let Some(name) = bytes.strip_prefix(b"@") {
                SocketAddr::from_abstract_name(name).ok()?
            } else {
                SocketAddr::from_pathname(std::path::Path::new(&path)).ok()?
            };
            let sock = UnixDatagram::unbound().ok()?;
            Some((sock, addr))
        });
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .map_or(true, |p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|us| *us > 0 && pid_ok)
            .map(|us| Duration::from_micros(us / 2));
        Notifier { target, watchdog }
    }

    /// How often to send `WATCHDOG=1` (half the watchdog timeout), if asked.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends one state string (e.g. `READY=1`); errors are ignored (systemd
    /// going away must not stop the coordinator).
    pub fn notify(&self, state: &str) {
        if let Some((sock, addr)) = &self.target {
            if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
                tracing::debug!("sd_notify {state:?} failed: {e}");
            }
        }
    }
}
