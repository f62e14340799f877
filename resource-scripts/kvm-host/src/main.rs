//! kvm-host: the OCF resource agent for a KVM host's HA readiness and its storage heartbeat.

fn main() {}
