//! The agent's meta-data XML.
//!
//! Deliberate choice (reference ocf.md §2.5, "variant A"): the document
//! carries `<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">` and uses only
//! markup that the old ra-api-1.dtd accepts, so Debian's ocf-tester passes;
//! it still claims OCF `<version>1.1</version>`. No parameter is
//! `reloadable` and there is no `reload-agent` action: a parameter change
//! means stop + start, which for this agent is cheap (restart of the writer).

use crate::params::defaults as d;

fn bool01(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// The XML printed by `meta-data`. Pure: same output for any environment.
pub fn metadata_xml() -> String {
    format!(
        r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="kvm-host" version="{agent_version}">
<version>1.1</version>
<longdesc lang="en">
Marks a KVM host as HA-ready and keeps its heartbeat on shared storage.

start launches a heartbeat writer that, every heartbeat_interval seconds, writes
the file &lt;storage&gt;/&lt;heartbeat_dir&gt;/ocf-hb-&lt;host_id&gt; on every configured storage:
a JSON record with a counter that only grows and the writer's own timestamp,
written to a temporary file, fsynced, renamed over the old one and read back.
Another host decides "alive" by seeing the counter change across a window
("kvm-host check-peer"), without comparing clocks.

monitor depth 0 checks that the writer process runs; depth 10 also that libvirt
answers and the CloudStack agent is active; depth 20 also that the heartbeat was
written and read back on every storage within heartbeat_max_age. All storage
I/O runs in child processes with deadlines derived from the operation timeout,
so a hung NFS mount makes monitor fail in time instead of hanging.

A lost storage is reported (monitor error, exit reason, syslog), never acted on:
this agent never reboots the host or kills VMs. Fencing is the coordinator's job.
</longdesc>
<shortdesc lang="en">KVM host HA readiness and storage heartbeat</shortdesc>
<parameters>
<parameter name="storage" unique="0" required="1">
<longdesc lang="en">
Mount points of the shared storages (NFS primary storage) that carry this host's
heartbeat, separated by spaces or commas. Each must be mounted (see require_mount).
</longdesc>
<shortdesc lang="en">Heartbeat storage mount points</shortdesc>
<content type="string" default="" />
</parameter>
<parameter name="host_id" unique="0" required="0">
<longdesc lang="en">
The name this host's heartbeat file carries (characters A-Z a-z 0-9 . _ : -).
Default: the Pacemaker node name, or the kernel node name outside Pacemaker.
The coordinator passes the same value to "kvm-host check-peer --host".
</longdesc>
<shortdesc lang="en">Host id in the heartbeat file name</shortdesc>
<content type="string" default="" />
</parameter>
<parameter name="heartbeat_interval" unique="0" required="0">
<longdesc lang="en">
Seconds between two heartbeat writes (1 to {max_interval}). A reader needs a
window of at least twice this value to call the host dead.
</longdesc>
<shortdesc lang="en">Heartbeat interval (seconds)</shortdesc>
<content type="integer" default="{interval}" />
</parameter>
<parameter name="heartbeat_dir" unique="0" required="0">
<longdesc lang="en">
Directory inside each storage that holds the heartbeat files (one path component;
created if missing).
</longdesc>
<shortdesc lang="en">Heartbeat directory on the storage</shortdesc>
<content type="string" default="{hb_dir}" />
</parameter>
<parameter name="heartbeat_max_age" unique="0" required="0">
<longdesc lang="en">
Seconds after the last successful write (and read back) of a storage's heartbeat
after which monitor at depth 20 fails. 0 means three heartbeat intervals.
</longdesc>
<shortdesc lang="en">Heartbeat staleness limit (seconds)</shortdesc>
<content type="integer" default="{max_age}" />
</parameter>
<parameter name="require_mount" unique="0" required="0">
<longdesc lang="en">
Write and read a storage's heartbeat only if its path is listed as a mount point
in /proc/self/mountinfo, so that an unmounted NFS share is reported instead of
silently writing to the local disk below the mount point.
</longdesc>
<shortdesc lang="en">Require storage paths to be mount points</shortdesc>
<content type="boolean" default="{require_mount}" />
</parameter>
<parameter name="state_dir" unique="0" required="0">
<longdesc lang="en">
Local directory (tmpfs, emptied at boot) for the writer's PID file and status
files. Default: $HA_RSCTMP, else /run/resource-agents.
</longdesc>
<shortdesc lang="en">Local state directory</shortdesc>
<content type="string" default="{state_dir}" />
</parameter>
<parameter name="libvirt_check" unique="0" required="0">
<longdesc lang="en">
At monitor depth 10 and above, check that libvirt answers
("virsh --connect libvirt_uri version" within the operation deadline).
</longdesc>
<shortdesc lang="en">Check libvirt at depth 10</shortdesc>
<content type="boolean" default="{libvirt_check}" />
</parameter>
<parameter name="libvirt_uri" unique="0" required="0">
<longdesc lang="en">libvirt connection URI for the depth-10 check.</longdesc>
<shortdesc lang="en">libvirt URI</shortdesc>
<content type="string" default="{libvirt_uri}" />
</parameter>
<parameter name="virsh_binary" unique="0" required="0">
<longdesc lang="en">virsh command (name looked up in PATH, or absolute path).</longdesc>
<shortdesc lang="en">virsh command</shortdesc>
<content type="string" default="{virsh}" />
</parameter>
<parameter name="cloudstack_agent_check" unique="0" required="0">
<longdesc lang="en">
How monitor at depth 10 and above checks the CloudStack agent: "systemd"
(systemctl is-active cloudstack_agent_service), "pidfile" (the PID in
cloudstack_agent_pidfile is a live process) or "none".
</longdesc>
<shortdesc lang="en">CloudStack agent check (systemd, pidfile, none)</shortdesc>
<content type="string" default="{agent_check}" />
</parameter>
<parameter name="cloudstack_agent_service" unique="0" required="0">
<longdesc lang="en">systemd unit of the CloudStack agent.</longdesc>
<shortdesc lang="en">CloudStack agent service</shortdesc>
<content type="string" default="{agent_service}" />
</parameter>
<parameter name="cloudstack_agent_pidfile" unique="0" required="0">
<longdesc lang="en">PID file of the CloudStack agent (cloudstack_agent_check=pidfile).</longdesc>
<shortdesc lang="en">CloudStack agent PID file</shortdesc>
<content type="string" default="{agent_pidfile}" />
</parameter>
<parameter name="systemctl_binary" unique="0" required="0">
<longdesc lang="en">systemctl command (name looked up in PATH, or absolute path).</longdesc>
<shortdesc lang="en">systemctl command</shortdesc>
<content type="string" default="{systemctl}" />
</parameter>
</parameters>
<actions>
<action name="start" timeout="30s" />
<action name="stop" timeout="30s" />
<action name="monitor" timeout="30s" interval="10s" depth="0" />
<action name="monitor" timeout="30s" interval="60s" depth="10" />
<action name="monitor" timeout="30s" interval="30s" depth="20" />
<action name="validate-all" timeout="10s" />
<action name="meta-data" timeout="5s" />
</actions>
</resource-agent>
"#,
        agent_version = env!("CARGO_PKG_VERSION"),
        max_interval = crate::params::MAX_HEARTBEAT_INTERVAL_SECS,
        interval = d::HEARTBEAT_INTERVAL_SECS,
        hb_dir = d::HEARTBEAT_DIR,
        max_age = d::HEARTBEAT_MAX_AGE_SECS,
        require_mount = bool01(d::REQUIRE_MOUNT),
        state_dir = d::STATE_DIR,
        libvirt_check = bool01(d::LIBVIRT_CHECK),
        libvirt_uri = d::LIBVIRT_URI,
        virsh = d::VIRSH_BINARY,
        agent_check = d::CLOUDSTACK_AGENT_CHECK,
        agent_service = d::CLOUDSTACK_AGENT_SERVICE,
        agent_pidfile = d::CLOUDSTACK_AGENT_PIDFILE,
        systemctl = d::SYSTEMCTL_BINARY,
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
    }
}
