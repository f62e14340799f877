//! hactl: the OCF resource agent `ocf:cloudstack:hactl` that runs the
//! hactl-kvm coordinator as a Pacemaker promotable clone.
//!
//! Module map: [`ocf`] actions and exit codes, [`params`] parameters,
//! [`metadata`] XML, [`pidfile`] recognising the daemon we started,
//! [`control`] Role/SetRole over the control socket, [`decide`] monitor's
//! verdict and promotion score (pure), [`agent`] the actions.
//! Environment parsing, deadline-bound children and logging are kvm-host's.

pub mod agent;
pub mod control;
pub mod decide;
pub mod metadata;
pub mod ocf;
pub mod params;
pub mod pidfile;
