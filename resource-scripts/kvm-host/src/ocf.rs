//! The OCF resource-agent protocol: actions, exit codes, check levels and the
//! environment Pacemaker (or ocf-tester, or crm_resource) hands to an action.

use std::ffi::OsString;
use std::time::Duration;

/// OCF exit codes (OCF 1.1 table) the agents of this workspace return.
/// kvm-host never returns 8 (it has no roles); the hactl agent returns it
/// from monitor for the promoted instance. 9/190/191 are used by none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OcfRc {
    Success = 0,
    ErrGeneric = 1,
    ErrArgs = 2,
    ErrUnimplemented = 3,
    ErrPerm = 4,
    ErrInstalled = 5,
    ErrConfigured = 6,
    NotRunning = 7,
    /// Monitor: running and promoted.
    RunningPromoted = 8,
}

impl OcfRc {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// An action's result: the OCF exit code and, for failures, why (the
/// `ocf-exit-reason:` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub rc: OcfRc,
    pub reason: Option<String>,
}

impl Outcome {
    pub fn rc(rc: OcfRc) -> Outcome {
        Outcome { rc, reason: None }
    }
    pub fn ok() -> Outcome {
        Outcome::rc(OcfRc::Success)
    }
    pub fn fail(rc: OcfRc, reason: impl Into<String>) -> Outcome {
        Outcome {
            rc,
            reason: Some(reason.into()),
        }
    }
}

/// The actions argv[1] may name. Anything else is [`OcfRc::ErrUnimplemented`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Monitor,
    MetaData,
    ValidateAll,
    Usage,
}

impl Action {
    /// Parses an OCF action name; `status` is the legacy alias of monitor.
    pub fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "start" => Action::Start,
            "stop" => Action::Stop,
            "monitor" | "status" => Action::Monitor,
            "meta-data" => Action::MetaData,
            "validate-all" => Action::ValidateAll,
            "usage" | "help" | "methods" => Action::Usage,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::MetaData => "meta-data",
            Action::ValidateAll => "validate-all",
            Action::Usage => "usage",
        }
    }
}

/// The monitor depths this agent implements. A requested level that is not
/// implemented maps to the next lower one (OCF 1.1: "the RA should perform
/// the next lower level supported").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckLevel {
    /// The heartbeat writer process is alive and ours.
    Processes = 0,
    /// Also: libvirt answers and the CloudStack agent service is active.
    Services = 10,
    /// Also: the heartbeat was written and read back on every storage in time.
    Storage = 20,
}

impl CheckLevel {
    /// Maps `OCF_CHECK_LEVEL` to a level; unset, empty or unparsable means 0.
    pub fn from_env_value(value: Option<&str>) -> CheckLevel {
        let n: u64 = value.and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        match n {
            0..=9 => CheckLevel::Processes,
            10..=19 => CheckLevel::Services,
            _ => CheckLevel::Storage,
        }
    }
}

/// Pacemaker's default operation timeout, used when `OCF_RESKEY_CRM_meta_timeout`
/// is absent (a bare command-line call).
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(20);

/// What the caller told us about this invocation, besides the parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcfEnv {
    /// `OCF_RESOURCE_INSTANCE`, or "default" when called as a plain script.
    pub instance: String,
    /// `OCF_RESKEY_CRM_meta_timeout`: the time after which execd SIGKILLs us.
    pub op_timeout: Duration,
    /// `OCF_RESKEY_CRM_meta_interval` unset or 0: a probe.
    pub is_probe: bool,
    pub check_level: CheckLevel,
    /// `OCF_TESTER_FAIL_HAVE_BINARY`: ocf-tester asks us to behave as if the
    /// external binaries (virsh, systemctl) were missing.
    pub pretend_binaries_missing: bool,
}

impl OcfEnv {
    /// Reads the OCF environment through `lookup` (normally `std::env::var_os`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> OcfEnv {
        let get = |k: &str| lookup(k).map(|v| v.to_string_lossy().into_owned());
        let instance = get("OCF_RESOURCE_INSTANCE")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let op_timeout = get("OCF_RESKEY_CRM_meta_timeout")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_OP_TIMEOUT);
        let is_probe = get("OCF_RESKEY_CRM_meta_interval")
            .map(|v| v.trim().parse::<u64>().map(|n| n == 0).unwrap_or(true))
            .unwrap_or(true);
        let check_level = CheckLevel::from_env_value(
            get("OCF_CHECK_LEVEL")
                .or_else(|| get("OCF_RESKEY_OCF_CHECK_LEVEL"))
                .as_deref(),
        );
        let pretend_binaries_missing = get("OCF_TESTER_FAIL_HAVE_BINARY")
            .map(|v| v == "1")
            .unwrap_or(false);
        OcfEnv {
            instance,
            op_timeout,
            is_probe,
            check_level,
            pretend_binaries_missing,
        }
    }

    /// The time this action may spend on its own work: the operation timeout
    /// minus a safety margin (a fifth, at least one second) so that we answer
    /// before execd's SIGKILL, which would leave no exit reason at all.
    pub fn work_budget(&self) -> Duration {
        let margin = (self.op_timeout / 5).max(Duration::from_secs(1));
        self.op_timeout
            .checked_sub(margin)
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(500))
    }
}

/// Formats the line Pacemaker parses from stderr: it keeps the last one,
/// truncated to 128 characters, so keep the essential first.
pub fn exit_reason_line(reason: &str) -> String {
    let one_line: String = reason
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    format!("ocf-exit-reason:{one_line}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> OcfEnv {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        OcfEnv::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn check_levels_round_down_to_implemented_ones() {
        assert_eq!(CheckLevel::from_env_value(None), CheckLevel::Processes);
        assert_eq!(CheckLevel::from_env_value(Some("")), CheckLevel::Processes);
        assert_eq!(CheckLevel::from_env_value(Some("x")), CheckLevel::Processes);
        assert_eq!(CheckLevel::from_env_value(Some("5")), CheckLevel::Processes);
        assert_eq!(CheckLevel::from_env_value(Some("10")), CheckLevel::Services);
        assert_eq!(CheckLevel::from_env_value(Some("15")), CheckLevel::Services);
        assert_eq!(CheckLevel::from_env_value(Some("20")), CheckLevel::Storage);
        assert_eq!(CheckLevel::from_env_value(Some("99")), CheckLevel::Storage);
    }

    #[test]
    fn probe_is_interval_unset_or_zero() {
        assert!(env(&[]).is_probe);
        assert!(env(&[("OCF_RESKEY_CRM_meta_interval", "0")]).is_probe);
        assert!(!env(&[("OCF_RESKEY_CRM_meta_interval", "10000")]).is_probe);
    }

    #[test]
    fn timeout_and_budget() {
        let e = env(&[("OCF_RESKEY_CRM_meta_timeout", "5000")]);
        assert_eq!(e.op_timeout, Duration::from_secs(5));
        assert_eq!(e.work_budget(), Duration::from_secs(4));
        let e = env(&[]);
        assert_eq!(e.op_timeout, DEFAULT_OP_TIMEOUT);
        assert_eq!(e.work_budget(), Duration::from_secs(16));
        let e = env(&[("OCF_RESKEY_CRM_meta_timeout", "600")]);
        assert_eq!(e.work_budget(), Duration::from_millis(500));
        assert_eq!(e.instance, "default");
    }

    #[test]
    fn actions_parse() {
        assert_eq!(Action::parse("status"), Some(Action::Monitor));
        assert_eq!(Action::parse("reload-agent"), None);
        assert_eq!(Action::parse("promote"), None);
        for a in ["start", "stop", "monitor", "meta-data", "validate-all"] {
            assert_eq!(Action::parse(a).unwrap().name(), a);
        }
    }

    #[test]
    fn exit_reason_is_one_line() {
        assert_eq!(exit_reason_line("a\nb"), "ocf-exit-reason:a b");
    }
}
