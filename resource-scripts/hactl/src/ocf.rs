//! The OCF protocol as this agent speaks it: its actions and exit codes,
//! including the promotable-clone ones (promote, demote, notify; 8 =
//! running promoted). The environment (`OCF_RESKEY_CRM_meta_timeout`,
//! probes, instance) is read by kvm-host's [`kvm_host::ocf::OcfEnv`].

pub use kvm_host::ocf::{OcfRc, Outcome};

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
