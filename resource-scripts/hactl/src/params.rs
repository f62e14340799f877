//! The agent's parameters (`OCF_RESKEY_<name>`), their defaults, and the
//! syntax checks that make `validate-all` answer 6 (OCF_ERR_CONFIGURED).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Default values, shared with the meta-data so the two cannot drift apart.
pub mod defaults {
    /// Where the hactl-kvm package installs the daemon.
    pub const HACTL_KVM: &str = "/usr/sbin/hactl-kvm";
    /// The daemon's default control socket (hactl-control's `DEFAULT_SOCKET`).
    pub const SOCKET: &str = hactl_control::DEFAULT_SOCKET;
    /// resource-agents' tmpfiles.d directory (`$HA_RSCTMP`), emptied at boot.
    pub const STATE_DIR: &str = "/run/resource-agents";
    /// The daemon's stdout and stderr (its tracing log) are appended here.
    pub const LOG_FILE: &str = "/var/log/hactl-kvm/ocf-daemon.log";
}

/// A parameter that is inherently invalid (wrong syntax), on any node: the
/// same error, and so the same exit reasons, as kvm-host's.
pub use kvm_host::params::ParamError;

/// The parameter names this agent knows, in meta-data order.
pub const PARAM_NAMES: &[&str] = &["config", "hactl_kvm", "socket", "pid_file", "log_file"];

/// Everything the agent needs, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The daemon's configuration file (`hactl-kvm run --config`).
    pub config: PathBuf,
    /// The `hactl-kvm` program.
    pub hactl_kvm: PathBuf,
    /// The daemon's control socket (must match the configuration's).
    pub socket: PathBuf,
    /// Where the agent records the daemon it started.
    pub pid_file: PathBuf,
    /// Where the daemon's output goes.
    pub log_file: PathBuf,
}

type Lookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn get(lookup: Lookup, name: &str) -> Option<String> {
    lookup(&format!("OCF_RESKEY_{name}"))
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|s| !s.trim().is_empty())
}

fn absolute(name: &'static str, value: String) -> Result<PathBuf, ParamError> {
    let p = PathBuf::from(value.trim());
    if !p.is_absolute() {
        return Err(ParamError::Invalid {
            name,
            value,
            why: "must be an absolute path",
        });
    }
    if p.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(ParamError::Invalid {
            name,
            value,
            why: "must not contain '..'",
        });
    }
    Ok(p)
}

/// The PID file when the parameter is unset: `$HA_RSCTMP/hactl-<instance>.pid`
/// (clone instances "rsc:0" keep one file name).
pub fn default_pid_file(lookup: Lookup, instance: &str) -> PathBuf {
    let dir = lookup("HA_RSCTMP")
        .filter(|v| !v.is_empty() && Path::new(v).is_absolute())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(defaults::STATE_DIR));
    dir.join(format!("hactl-{}.pid", instance.replace('/', "_")))
}

/// The PID file `stop` and `monitor` use: the parameter if it is a usable
/// absolute path, else the default. Never fails, because stop must not.
pub fn pid_file_for_stop(lookup: Lookup, instance: &str) -> PathBuf {
    get(lookup, "pid_file")
        .and_then(|v| absolute("pid_file", v).ok())
        .unwrap_or_else(|| default_pid_file(lookup, instance))
}

impl Params {
    /// Reads and checks all parameters from `OCF_RESKEY_*` via `lookup`.
    pub fn from_lookup(lookup: Lookup, instance: &str) -> Result<Params, ParamError> {
        let config = absolute(
            "config",
            get(lookup, "config").ok_or(ParamError::Missing { name: "config" })?,
        )?;
        let hactl_kvm = absolute(
            "hactl_kvm",
            get(lookup, "hactl_kvm").unwrap_or_else(|| defaults::HACTL_KVM.into()),
        )?;
        let socket = absolute(
            "socket",
            get(lookup, "socket").unwrap_or_else(|| defaults::SOCKET.into()),
        )?;
        let pid_file = match get(lookup, "pid_file") {
            Some(v) => absolute("pid_file", v)?,
            None => default_pid_file(lookup, instance),
        };
        let log_file = absolute(
            "log_file",
            get(lookup, "log_file").unwrap_or_else(|| defaults::LOG_FILE.into()),
        )?;
        Ok(Params {
            config,
            hactl_kvm,
            socket,
            pid_file,
            log_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Params, ParamError> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Params::from_lookup(&|k: &str| map.get(k).cloned(), "rsc:0")
    }

    #[test]
    fn defaults_apply() {
        let p = parse(&[("OCF_RESKEY_config", "/etc/hactl-kvm/hactl.toml")]).unwrap();
        assert_eq!(p.hactl_kvm, PathBuf::from("/usr/sbin/hactl-kvm"));
        assert_eq!(p.socket, PathBuf::from("/run/hactl-kvm/control.sock"));
        assert_eq!(
            p.pid_file,
            PathBuf::from("/run/resource-agents/hactl-rsc:0.pid")
        );
        let p = parse(&[("OCF_RESKEY_config", "/c.toml"), ("HA_RSCTMP", "/tmp/ra")]).unwrap();
        assert_eq!(p.pid_file, PathBuf::from("/tmp/ra/hactl-rsc:0.pid"));
    }

    #[test]
    fn bad_values_are_rejected_with_their_name() {
        assert_eq!(parse(&[]), Err(ParamError::Missing { name: "config" }));
        for (k, v) in [
            ("OCF_RESKEY_config", "hactl.toml"),
            ("OCF_RESKEY_hactl_kvm", "hactl-kvm"),
            ("OCF_RESKEY_socket", "run/x.sock"),
            ("OCF_RESKEY_pid_file", "/run/../x.pid"),
            ("OCF_RESKEY_log_file", "x.log"),
        ] {
            let mut pairs = vec![("OCF_RESKEY_config", "/c.toml")];
            pairs.retain(|(kk, _)| *kk != k);
            pairs.push((k, v));
            let e = parse(&pairs).unwrap_err();
            let name = k.trim_start_matches("OCF_RESKEY_");
            assert!(e.to_string().starts_with(name), "{k}: {e}");
        }
    }

    #[test]
    fn stop_finds_a_pid_file_without_any_valid_parameter() {
        let none = |_: &str| None;
        assert_eq!(
            pid_file_for_stop(&none, "x"),
            PathBuf::from("/run/resource-agents/hactl-x.pid")
        );
        let bad = |k: &str| (k == "OCF_RESKEY_pid_file").then(|| OsString::from("rel"));
        assert_eq!(
            pid_file_for_stop(&bad, "x"),
            PathBuf::from("/run/resource-agents/hactl-x.pid")
        );
    }
}
