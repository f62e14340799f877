//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use ipmi_lan::{ConnectOptions, Interface, Privilege, Secret};
use test_support::IpmiSim;

/// Logs protocol steps when RUST_LOG is set (e.g. RUST_LOG=ipmi_lan=debug).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// lanplus options for `sim` with the given user, password and cipher suite.
pub fn lanplus(sim: &IpmiSim, user: &str, password: &str, suite: u8) -> ConnectOptions {
    init_tracing();
    let mut o = ConnectOptions::new("127.0.0.1", user, Secret::from(password));
    o.port = sim.port();
    o.cipher_suite = suite;
    o.retransmit_interval = Duration::from_millis(300);
    o
}

/// IPMI 1.5 options.
pub fn lan15(sim: &IpmiSim, user: &str, password: &str) -> ConnectOptions {
    let mut o = lanplus(sim, user, password, 3);
    o.interface = Interface::Lan15;
    o
}

pub fn with_privilege(mut o: ConnectOptions, p: Privilege) -> ConnectOptions {
    o.privilege = p;
    o
}

pub fn secs(n: u64) -> Instant {
    Instant::now() + Duration::from_secs(n)
}
