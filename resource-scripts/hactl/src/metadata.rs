//! The agent's meta-data XML.
//!
//! As kvm-host (reference ocf.md §2.5, "variant A"): a DOCTYPE and only
//! markup the old ra-api-1.dtd accepts, so Debian's ocf-tester passes, while
//! claiming OCF 1.1; monitor roles are spelled `Promoted`/`Unpromoted`, which
//! both the DTD and resource-agents' metadata.rng accept. No parameter is
//! reloadable: a change means stop + start.

use crate::params::defaults as d;

/// The XML printed by `meta-data`. Pure: same output for any environment.
pub fn metadata_xml() -> String {
    format!(
        r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="hactl" version="{agent_version}">
<version>1.1</version>
<longdesc lang="en">
Runs the hactl-kvm coordinator ("hactl-kvm run --config config --standby") on a
CloudStack management node, as a promotable clone: every started instance is a
standby replica; the one Pacemaker promotes becomes the active coordinator, the
only one that fences and recovers KVM hosts.

start launches the daemon in its own session, records it in pid_file (PID and
process start time) and returns once its control socket answers. promote and
demote ask the daemon to become active or standby over the control socket; a
refusal (for example a replica still receiving its state transfer) fails the
action with the daemon's reason. monitor returns 0 for a standby, 8 for the
active instance, 7 when stopped, and fails when the daemon is gone or its socket
does not answer in time; it also sets this node's promotion score from the
daemon's own report (how current its journal replica is), so Pacemaker promotes
the most up-to-date one. stop sends SIGTERM and SIGKILL at the operation's
deadline; it needs only pid_file.

Configure it with promoted-max=1, no-quorum-policy=stop and a stonith device for
the management nodes.
</longdesc>
<shortdesc lang="en">hactl-kvm coordinator (promotable clone)</shortdesc>
<parameters>
<parameter name="config" unique="0" required="1">
<longdesc lang="en">
The daemon's configuration file (hactl-kvm run --config). validate-all runs
"hactl-kvm check-config" on it.
</longdesc>
<shortdesc lang="en">hactl-kvm configuration file</shortdesc>
<content type="string" default="" />
</parameter>
<parameter name="hactl_kvm" unique="0" required="0">
<longdesc lang="en">The hactl-kvm program (absolute path).</longdesc>
<shortdesc lang="en">hactl-kvm program</shortdesc>
<content type="string" default="{hactl_kvm}" />
</parameter>
<parameter name="socket" unique="0" required="0">
<longdesc lang="en">
The daemon's control socket; must be the one its configuration names.
</longdesc>
<shortdesc lang="en">Control socket</shortdesc>
<content type="string" default="{socket}" />
</parameter>
<parameter name="pid_file" unique="0" required="0">
<longdesc lang="en">
Where the agent records the daemon it started. Default: $HA_RSCTMP (else
{state_dir})/hactl-&lt;resource instance&gt;.pid.
</longdesc>
<shortdesc lang="en">PID file</shortdesc>
<content type="string" default="" />
</parameter>
<parameter name="log_file" unique="0" required="0">
<longdesc lang="en">The daemon's standard output and error are appended to this file.</longdesc>
<shortdesc lang="en">Daemon log file</shortdesc>
<content type="string" default="{log_file}" />
</parameter>
</parameters>
<actions>
<action name="start" timeout="60s" />
<action name="stop" timeout="60s" />
<action name="promote" timeout="60s" />
<action name="demote" timeout="60s" />
<action name="monitor" timeout="30s" interval="10s" depth="0" role="Promoted" />
<action name="monitor" timeout="30s" interval="11s" depth="0" role="Unpromoted" />
<action name="notify" timeout="5s" />
<action name="validate-all" timeout="60s" />
<action name="meta-data" timeout="5s" />
</actions>
</resource-agent>
"#,
        agent_version = env!("CARGO_PKG_VERSION"),
        hactl_kvm = d::HACTL_KVM,
        socket = d::SOCKET,
        state_dir = d::STATE_DIR,
        log_file = d::LOG_FILE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_is_described_once() {
        let xml = metadata_xml();
        for name in crate::params::PARAM_NAMES {
            let tag = format!("<parameter name=\"{name}\"");
            assert_eq!(xml.matches(&tag).count(), 1, "{name}");
        }
        assert_eq!(
            xml.matches("<parameter ").count(),
            crate::params::PARAM_NAMES.len()
        );
        assert!(xml.contains("<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">"));
        assert!(!xml.contains("reload"));
        for a in ["start", "stop", "promote", "demote", "monitor", "notify"] {
            assert!(xml.contains(&format!("<action name=\"{a}\"")), "{a}");
        }
    }
}
