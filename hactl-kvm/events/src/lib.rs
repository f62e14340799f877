//! hactl-kvm's event sinks: where the core's events go besides the control
//! socket.
//!
//! * [`SyslogSink`]: RFC 5424 lines, facility LOG_DAEMON, to a datagram
//!   socket (`/dev/log` by default), with a stable MSGID per event kind
//!   ([`msgid`]) and host/partition/fence in structured data. Fence-related
//!   events are NOTICE or higher ([`severity`]), so existing syslog alerting
//!   sees them. Never blocks: a full socket drops the line and counts it.
//! * [`JsonlSink`]: one [`EventRecord`] JSON object per line, rotated by size.
//! * [`EventHook`]: the `on_event` script, run with the event JSON on stdin
//!   by a worker thread, bounded by a timeout after which its whole process
//!   group is killed; the caller only enqueues (bounded queue, drops counted).

mod hook;
mod jsonl;
mod syslog;

pub use hactl_control::EventRecord;
pub use hook::{EventHook, HookConfig, HookStats};
pub use jsonl::{JsonlConfig, JsonlSink};
pub use syslog::{msgid, severity, subjects, Severity, SyslogSink, DEFAULT_SYSLOG_SOCKET};
