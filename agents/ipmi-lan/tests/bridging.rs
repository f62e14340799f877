//! IPMB bridging (fence_ipmilan `target`, ipmitool `-t`) through a real
//! ipmi_sim that has a second management controller at 0x30.
//!
//! Bridged chassis commands cannot be tested here: this ipmi_sim crashes
//! when a chassis command is bridged to a controller without a chassis
//! (ipmitool -t 0x30 chassis power status does the same).

mod common;

use common::*;
use ipmi_lan::{ConnectOptions, IpmiError, Secret, Session, Step};
use ipmi_rs::connection::NetFn;
use test_support::IpmiSim;

const SECOND_MC: &str = "mc_add 0x30 0 no-device-sdrs 0x24 1 2 0x9f 0x1291 0xf03\nmc_enable 0x30\n";

fn opts(sim: &IpmiSim, target: Option<u8>) -> ConnectOptions {
    init_tracing();
    let mut o = ConnectOptions::new("127.0.0.1", "admin", Secret::from("secret"));
    o.port = sim.port();
    o.target = target;
    o
}

/// Get Device ID: (device revision, firmware major, firmware minor).
fn device_id(s: &mut Session) -> (u8, u8, u8) {
    let d = s
        .command(NetFn::App, 0x01, &[], secs(5))
        .expect("Get Device ID");
    (d[1] & 0x0f, d[2] & 0x7f, d[3])
}

#[test]
fn commands_reach_the_bridged_controller_not_the_bmc() {
    let sim = IpmiSim::builder().extra_emu_commands(SECOND_MC).start();
    let mut bmc = Session::open(&opts(&sim, None), secs(10)).unwrap();
    assert_eq!(device_id(&mut bmc), (3, 9, 0x08));
    bmc.close().unwrap();

    let mut bridged = Session::open(&opts(&sim, Some(0x30)), secs(10)).unwrap();
    assert_eq!(bridged.target(), Some(0x30));
    assert_eq!(device_id(&mut bridged), (4, 1, 0x02));
    // Set-up 5 pairs, then Send Message: request, acknowledgement and the
    // forwarded response.
    assert_eq!(bridged.stats().sent, 6);
    assert_eq!(bridged.stats().received, 7);
    bridged.close().unwrap();
}

#[test]
fn absent_bridge_target_is_reported_by_the_bmc() {
    let sim = IpmiSim::builder().extra_emu_commands(SECOND_MC).start();
    let mut s = Session::open(&opts(&sim, Some(0x40)), secs(10)).unwrap();
    let err = s.command(NetFn::App, 0x01, &[], secs(5)).unwrap_err();
    assert!(
        matches!(
            err,
            IpmiError::CommandRefused {
                step: Step::SendMessage,
                code: 0x83,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("no device at the target address"),
        "{err}"
    );
    s.close().unwrap();
}
