//! hactl-kvm: the KVM host HA coordinator's command line.

fn main() {}
