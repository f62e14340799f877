//! hactl-kvm's operator interface over a local control socket.
//!
//! * [`protocol`]: the versioned JSON-lines request/response protocol; its
//!   payloads are the core's own types (`hactl_core`).
//! * [`server`]: a tokio Unix-socket server generic over a
//!   [`ControlHandler`] the daemon implements. The socket is mode 0660,
//!   group = the configured control group; every connection's kernel peer
//!   credentials (SO_PEERCRED) are checked: root or a member of that group,
//!   anyone else gets [`ControlError::PermissionDenied`] and nothing is read.
//!   There is deliberately no TCP listener.
//! * [`client`]: the client the CLI and scripts use.
//! * [`render`]: the CLI's human tables and JSON, and its exit codes.

pub mod access;
pub mod client;
pub mod dispatch;
pub mod hub;
pub mod protocol;
pub mod render;
pub mod server;
pub mod time;

pub use access::{is_allowed, ControlGroup, GroupError, PeerCred};
pub use client::{ClientError, ControlClient, DEFAULT_SOCKET};
pub use hub::{EventHub, DEFAULT_BACKLOG};
pub use protocol::*;
pub use server::{ControlHandler, ControlServer, ServerConfig, ServerError};
