//! Starts and stops the real peers the tests run against: OpenIPMI ipmi_sim BMCs and a single-node Pacemaker/Corosync cluster on loopback.
