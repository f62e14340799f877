//! Who may use the control socket: root, or a member of one configured
//! group. The kernel's peer credentials (SO_PEERCRED) are the only input;
//! nothing the client says about itself is trusted.

use nix::unistd::{Gid, Group};
use std::path::PathBuf;

/// The peer's credentials as the kernel reported them when it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Effective user id.
    pub uid: u32,
    /// Effective primary group id.
    pub gid: u32,
    /// Process id (absent if the peer is in another PID namespace).
    pub pid: Option<i32>,
}

/// The control group, resolved once when the server starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlGroup {
    /// Name (for messages).
    pub name: String,
    /// Its gid.
    pub gid: u32,
}

/// Errors resolving the control group.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// No group of that name.
    #[error("control group {0:?} does not exist")]
    Unknown(String),
    /// The group database could not be read.
    #[error("cannot look up control group {name:?}: {source}")]
    Lookup {
        /// The name.
        name: String,
        /// Cause.
        #[source]
        source: nix::Error,
    },
}

impl ControlGroup {
    /// Resolves a group by name.
    pub fn by_name(name: &str) -> Result<Self, GroupError> {
        match Group::from_name(name) {
            Ok(Some(g)) => Ok(ControlGroup {
                name: name.to_string(),
                gid: g.gid.as_raw(),
            }),
            Ok(None) => Err(GroupError::Unknown(name.to_string())),
            Err(source) => Err(GroupError::Lookup {
                name: name.to_string(),
                source,
            }),
        }
    }

    /// A group by gid (its name looked up for messages; the number if none).
    pub fn by_gid(gid: u32) -> Self {
        let name = Group::from_gid(Gid::from_raw(gid))
            .ok()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_else(|| gid.to_string());
        ControlGroup { name, gid }
    }
}

/// The supplementary groups of a live process, read from
/// `/proc/PID/status` (SO_PEERCRED only carries the primary gid).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// True when the peer may use the socket: uid 0, primary gid = the
/// control group, or the control group among the process's supplementary
/// groups.
pub fn is_allowed(peer: &PeerCred, group: &ControlGroup) -> bool {
    if peer.uid == 0 || peer.gid == group.gid {
        return true;
    }
    match peer.pid {
        Some(pid) if pid > 0 => supplementary_groups(pid).contains(&group.gid),
        _ => false,
    }
}
