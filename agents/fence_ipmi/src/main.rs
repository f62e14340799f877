//! fence_ipmi: a native IPMI fence agent, drop-in for fence_ipmilan.

fn main() {}
