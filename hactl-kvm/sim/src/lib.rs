//! A deterministic data-center simulator that drives the real hactl-kvm core on a virtual clock with injected faults and checks safety invariants.
