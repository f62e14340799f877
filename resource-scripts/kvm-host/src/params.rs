//! The agent's parameters (`OCF_RESKEY_<name>`), their defaults, and the
//! syntax checks that make `validate-all` answer 6 (OCF_ERR_CONFIGURED).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Default values, shared with the meta-data so the two cannot drift apart.
pub mod defaults {
    // Three seconds: the coordinator samples 8 s activity windows (hactl-kvm/docs/model.md §5), and
    // check-peer only calls a host DEAD over a window of at least two intervals.
    pub const HEARTBEAT_INTERVAL_SECS: u64 = 3;
    pub const HEARTBEAT_DIR: &str = "KVMHA";
    pub const HEARTBEAT_MAX_AGE_SECS: u64 = 0;
    pub const REQUIRE_MOUNT: bool = true;
    pub const STATE_DIR: &str = "/run/resource-agents";
    pub const LIBVIRT_CHECK: bool = true;
    pub const LIBVIRT_URI: &str = "qemu:///system";
    pub const VIRSH_BINARY: &str = "virsh";
    pub const CLOUDSTACK_AGENT_CHECK: &str = "systemd";
    pub const CLOUDSTACK_AGENT_SERVICE: &str = "cloudstack-agent";
    pub const CLOUDSTACK_AGENT_PIDFILE: &str = "/var/run/cloudstack-agent.pid";
    pub const SYSTEMCTL_BINARY: &str = "systemctl";
}

/// Largest accepted `heartbeat_interval`, seconds: beyond an hour a heartbeat
/// says nothing useful about a host being alive.
pub const MAX_HEARTBEAT_INTERVAL_SECS: u64 = 3600;

/// A parameter that is inherently invalid (wrong syntax), on any node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("{name}: required parameter not set")]
    Missing { name: &'static str },
    #[error("{name}={value:?}: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: &'static str,
    },
}

/// How depth 10 checks the CloudStack agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCheck {
    /// `systemctl is-active <service>`.
    Systemd { service: String },
    /// The PID in this file names a live process.
    PidFile { path: PathBuf },
    /// Not checked.
    Off,
}

/// How depth 10 checks libvirt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibvirtCheck {
    /// `virsh --connect <uri> version` must answer in time.
    Virsh {
        binary: String,
        uri: String,
    },
    Off,
}

/// Everything the agent needs, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Mount points of the shared storages that carry the heartbeat.
    pub storage: Vec<PathBuf>,
    /// The name this host writes its heartbeat under.
    pub host_id: String,
    pub heartbeat_interval_secs: u64,
    /// Subdirectory of every storage holding the heartbeat files.
    pub heartbeat_dir: String,
    /// Age after which a heartbeat not written successfully counts as failed.
    pub heartbeat_max_age_secs: u64,
    /// Refuse to write unless each storage path is a mount point.
    pub require_mount: bool,
    pub state_dir: PathBuf,
    pub libvirt: LibvirtCheck,
    pub agent: AgentCheck,
    pub systemctl_binary: String,
}

/// The parameter names this agent knows, in meta-data order.
pub const PARAM_NAMES: &[&str] = &[
    "storage",
    "host_id",
    "heartbeat_interval",
    "heartbeat_dir",
    "heartbeat_max_age",
    "require_mount",
    "state_dir",
    "libvirt_check",
    "libvirt_uri",
    "virsh_binary",
    "cloudstack_agent_check",
    "cloudstack_agent_service",
    "cloudstack_agent_pidfile",
    "systemctl_binary",
];

/// Parses an OCF boolean. Strict, so that a typo is an error, not "false".
pub fn parse_bool(name: &'static str, value: &str) -> Result<bool, ParamError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ParamError::Invalid {
            name,
            value: value.to_string(),
            why: "not a boolean (true/false, yes/no, on/off, 1/0)",
        }),
    }
}

/// A host id becomes part of a file name on shared storage: keep it to a safe
/// alphabet so that no id can escape the heartbeat directory.
pub fn check_host_id(value: &str) -> Result<(), ParamError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if ok {
        Ok(())
    } else {
        Err(ParamError::Invalid {
            name: "host_id",
            value: value.to_string(),
            why: "must be 1-253 characters of [A-Za-z0-9._:-], not starting with '.'",
        })
    }
}

/// Checks a directory-name parameter (one path component).
fn check_component(name: &'static str, value: &str) -> Result<(), ParamError> {
    if value.is_empty() || value == "." || value == ".." || value.contains('/') {
        return Err(ParamError::Invalid {
            name,
            value: value.to_string(),
            why: "must be one path component (no '/', not '.' or '..')",
        });
    }
    Ok(())
}

fn absolute_path(name: &'static str, value: &str) -> Result<PathBuf, ParamError> {
    let p = Path::new(value);
    if !p.is_absolute() {
        return Err(ParamError::Invalid {
            name,
            value: value.to_string(),
            why: "must be an absolute path",
        });
    }
    Ok(p.to_path_buf())
}

/// Splits the `storage` list: whitespace or comma separated absolute paths.
pub fn parse_storage_list(value: &str) -> Result<Vec<PathBuf>, ParamError> {
    let mut out: Vec<PathBuf> = Vec::new();
    for item in value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let p = absolute_path("storage", item)?;
        if p.components().any(|c| c == std::path::Component::ParentDir) {
            return Err(ParamError::Invalid {
                name: "storage",
                value: value.to_string(),
                why: "paths must not contain '..'",
            });
        }
        if out.contains(&p) {
            return Err(ParamError::Invalid {
                name: "storage",
                value: value.to_string(),
                why: "the same mount point is listed twice",
            });
        }
        out.push(p);
    }
    if out.is_empty() {
        return Err(ParamError::Missing { name: "storage" });
    }
    Ok(out)
}

fn parse_secs(name: &'static str, value: &str, min: u64, max: u64) -> Result<u64, ParamError> {
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) => Err(ParamError::Invalid {
            name,
            value: value.to_string(),
            why: "out of range",
        }),
        Err(_) => Err(ParamError::Invalid {
            name,
            value: value.to_string(),
            why: "not a whole number of seconds",
        }),
    }
}

/// The state directory when the parameter is unset: `$HA_RSCTMP`, else
/// `/run/resource-agents` (what resource-agents' tmpfiles.d creates).
pub fn default_state_dir(lookup: &dyn Fn(&str) -> Option<OsString>) -> PathBuf {
    lookup("HA_RSCTMP")
        .filter(|v| !v.is_empty() && Path::new(v).is_absolute())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(defaults::STATE_DIR))
}

/// The host id when the parameter is unset: the Pacemaker node name, else the
/// kernel's node name.
pub fn default_host_id(lookup: &dyn Fn(&str) -> Option<OsString>) -> String {
    lookup("OCF_RESKEY_CRM_meta_on_node")
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            nix::sys::utsname::uname()
                .map(|u| u.nodename().to_string_lossy().into_owned())
                .unwrap_or_default()
        })
}

/// The state directory `stop` uses: the parameter if it is a usable absolute
/// path, else the default. Never fails, because stop must not.
pub fn state_dir_for_stop(lookup: &dyn Fn(&str) -> Option<OsString>) -> PathBuf {
    lookup("OCF_RESKEY_state_dir")
        .filter(|v| !v.is_empty() && Path::new(v).is_absolute())
        .map(PathBuf::from)
        .unwrap_or_else(|| default_state_dir(lookup))
}

impl Params {
    /// Reads and checks all parameters from `OCF_RESKEY_*` via `lookup`.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<OsString>) -> Result<Params, ParamError> {
        let get = |name: &str| -> Option<String> {
            lookup(&format!("OCF_RESKEY_{name}"))
                .map(|v| v.to_string_lossy().into_owned())
                .filter(|s| !s.trim().is_empty())
        };
        let storage = parse_storage_list(&get("storage").unwrap_or_default())?;
        let host_id = get("host_id").unwrap_or_else(|| default_host_id(lookup));
        check_host_id(&host_id)?;
        let heartbeat_interval_secs = match get("heartbeat_interval") {
            Some(v) => parse_secs("heartbeat_interval", &v, 1, MAX_HEARTBEAT_INTERVAL_SECS)?,
            None => defaults::HEARTBEAT_INTERVAL_SECS,
        };
        let heartbeat_dir = get("heartbeat_dir").unwrap_or_else(|| defaults::HEARTBEAT_DIR.into());
        check_component("heartbeat_dir", &heartbeat_dir)?;
        let heartbeat_max_age_secs = match get("heartbeat_max_age") {
            Some(v) => parse_secs("heartbeat_max_age", &v, 0, 24 * 3600)?,
            None => defaults::HEARTBEAT_MAX_AGE_SECS,
        };
        if heartbeat_max_age_secs != 0 && heartbeat_max_age_secs < heartbeat_interval_secs {
            return Err(ParamError::Invalid {
                name: "heartbeat_max_age",
                value: heartbeat_max_age_secs.to_string(),
                why: "must be 0 (automatic) or at least heartbeat_interval",
            });
        }
        let require_mount = match get("require_mount") {
            Some(v) => parse_bool("require_mount", &v)?,
            None => defaults::REQUIRE_MOUNT,
        };
        let state_dir = match get("state_dir") {
            Some(v) => absolute_path("state_dir", &v)?,
            None => default_state_dir(lookup),
        };
        let libvirt_on = match get("libvirt_check") {
            Some(v) => parse_bool("libvirt_check", &v)?,
            None => defaults::LIBVIRT_CHECK,
        };
        let libvirt = if libvirt_on {
            LibvirtCheck::Virsh {
                binary: get("virsh_binary").unwrap_or_else(|| defaults::VIRSH_BINARY.into()),
                uri: get("libvirt_uri").unwrap_or_else(|| defaults::LIBVIRT_URI.into()),
            }
        } else {
            LibvirtCheck::Off
        };
        let agent_mode = get("cloudstack_agent_check")
            .unwrap_or_else(|| defaults::CLOUDSTACK_AGENT_CHECK.into());
        let agent = match agent_mode.trim() {
            "systemd" => {
                let service = get("cloudstack_agent_service")
                    .unwrap_or_else(|| defaults::CLOUDSTACK_AGENT_SERVICE.into());
                if service.starts_with('-') || service.chars().any(char::is_whitespace) {
                    return Err(ParamError::Invalid {
                        name: "cloudstack_agent_service",
                        value: service,
                        why: "not a systemd unit name",
                    });
                }
                AgentCheck::Systemd { service }
            }
            "pidfile" => AgentCheck::PidFile {
                path: absolute_path(
                    "cloudstack_agent_pidfile",
                    &get("cloudstack_agent_pidfile")
                        .unwrap_or_else(|| defaults::CLOUDSTACK_AGENT_PIDFILE.into()),
                )?,
            },
            "none" => AgentCheck::Off,
            _ => {
                return Err(ParamError::Invalid {
                    name: "cloudstack_agent_check",
                    value: agent_mode,
                    why: "must be one of systemd, pidfile, none",
                })
            }
        };
        let systemctl_binary =
            get("systemctl_binary").unwrap_or_else(|| defaults::SYSTEMCTL_BINARY.into());
        Ok(Params {
            storage,
            host_id,
            heartbeat_interval_secs,
            heartbeat_dir,
            heartbeat_max_age_secs,
            require_mount,
            state_dir,
            libvirt,
            agent,
            systemctl_binary,
        })
    }

    /// The age after which a storage whose heartbeat was not written counts as
    /// failed: the parameter, or three intervals (one late write is tolerated).
    pub fn effective_max_age_secs(&self) -> u64 {
        if self.heartbeat_max_age_secs == 0 {
            3 * self.heartbeat_interval_secs
        } else {
            self.heartbeat_max_age_secs
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Params, ParamError> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (format!("OCF_RESKEY_{k}"), OsString::from(v)))
            .collect();
        Params::from_lookup(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply() {
        let p = parse(&[("storage", "/mnt/a"), ("host_id", "kvm1")]).unwrap();
        assert_eq!(p.storage, vec![PathBuf::from("/mnt/a")]);
        assert_eq!(p.heartbeat_interval_secs, 3);
        assert_eq!(p.effective_max_age_secs(), 9);
        assert_eq!(p.heartbeat_dir, "KVMHA");
        assert!(p.require_mount);
        assert_eq!(p.state_dir, PathBuf::from("/run/resource-agents"));
        assert_eq!(
            p.libvirt,
            LibvirtCheck::Virsh {
                binary: "virsh".into(),
                uri: "qemu:///system".into()
            }
        );
        assert_eq!(
            p.agent,
            AgentCheck::Systemd {
                service: "cloudstack-agent".into()
            }
        );
    }

    #[test]
    fn storage_list_forms() {
        let p = parse(&[("storage", " /a, /b\t/c "), ("host_id", "h")]).unwrap();
        assert_eq!(p.storage.len(), 3);
        assert_eq!(
            parse(&[("host_id", "h")]),
            Err(ParamError::Missing { name: "storage" })
        );
        assert!(parse(&[("storage", "rel/path"), ("host_id", "h")]).is_err());
        assert!(parse(&[("storage", "/a /a"), ("host_id", "h")]).is_err());
        assert!(parse(&[("storage", "/a/../b"), ("host_id", "h")]).is_err());
    }

    #[test]
    fn bad_values_are_rejected_with_their_name() {
        let cases: &[(&str, &str, &str)] = &[
            ("heartbeat_interval", "0", "heartbeat_interval"),
            ("heartbeat_interval", "5s", "heartbeat_interval"),
            ("heartbeat_interval", "3601", "heartbeat_interval"),
            ("host_id", "../etc", "host_id"),
            ("host_id", "a/b", "host_id"),
            ("heartbeat_dir", "a/b", "heartbeat_dir"),
            ("require_mount", "maybe", "require_mount"),
            ("libvirt_check", "enabled", "libvirt_check"),
            ("state_dir", "run", "state_dir"),
            (
                "cloudstack_agent_check",
                "upstart",
                "cloudstack_agent_check",
            ),
            ("heartbeat_max_age", "2", "heartbeat_max_age"),
        ];
        for (k, v, expect) in cases {
            let mut pairs = vec![("storage", "/mnt/a"), ("host_id", "h")];
            pairs.retain(|(name, _)| name != k);
            pairs.push((k, v));
            match parse(&pairs) {
                Err(ParamError::Invalid { name, .. }) => assert_eq!(name, *expect, "{k}={v}"),
                other => panic!("{k}={v}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn check_modes() {
        let p = parse(&[
            ("storage", "/a"),
            ("host_id", "h"),
            ("libvirt_check", "false"),
            ("cloudstack_agent_check", "pidfile"),
            ("cloudstack_agent_pidfile", "/tmp/x.pid"),
        ])
        .unwrap();
        assert_eq!(p.libvirt, LibvirtCheck::Off);
        assert_eq!(
            p.agent,
            AgentCheck::PidFile {
                path: "/tmp/x.pid".into()
            }
        );
        let p = parse(&[
            ("storage", "/a"),
            ("host_id", "h"),
            ("cloudstack_agent_check", "none"),
        ])
        .unwrap();
        assert_eq!(p.agent, AgentCheck::Off);
    }

    #[test]
    fn host_id_defaults_to_node_name() {
        let map: HashMap<String, OsString> = [
            ("OCF_RESKEY_storage", "/a"),
            ("OCF_RESKEY_CRM_meta_on_node", "node1"),
            ("HA_RSCTMP", "/run/x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
        let p = Params::from_lookup(&|k: &str| map.get(k).cloned()).unwrap();
        assert_eq!(p.host_id, "node1");
        assert_eq!(p.state_dir, PathBuf::from("/run/x"));
    }
}
