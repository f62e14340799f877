//! The hactl-kvm decision core: power, partition and per-host HA state machines and safety gates as a sans-IO state machine.
