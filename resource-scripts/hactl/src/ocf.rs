//! The OCF protocol as this agent speaks it: its actions and exit codes,
//! including the promotable-clone ones (promote, demote, notify; 8 =
//! running promoted). The environment (`OCF_RESKEY_CRM_meta_timeout`,
//! probes, instance) is read by kvm-host's [`kvm_host::ocf::OcfEnv`].

/// OCF exit codes this agent returns.
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
    /// Monitor: running and promoted (the active coordinator).
    RunningPromoted = 8,
}

impl OcfRc {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The actions argv[1] may name. Anything else is [`OcfRc::ErrUnimplemented`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Monitor,
    Promote,
    Demote,
    Notify,
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
            "promote" => Action::Promote,
            "demote" => Action::Demote,
            "notify" => Action::Notify,
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
            Action::Promote => "promote",
            Action::Demote => "demote",
            Action::Notify => "notify",
            Action::MetaData => "meta-data",
            Action::ValidateAll => "validate-all",
            Action::Usage => "usage",
        }
    }
}

/// An action's result: the OCF exit code and, for failures, why.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_and_unknown_ones_are_refused() {
        for a in [
            "start",
            "stop",
            "monitor",
            "promote",
            "demote",
            "notify",
            "meta-data",
            "validate-all",
        ] {
            assert_eq!(Action::parse(a).unwrap().name(), a);
        }
        assert_eq!(Action::parse("status"), Some(Action::Monitor));
        assert_eq!(Action::parse("reload-agent"), None);
        assert_eq!(Action::parse("migrate_to"), None);
        assert_eq!(OcfRc::RunningPromoted.code(), 8);
    }
}
