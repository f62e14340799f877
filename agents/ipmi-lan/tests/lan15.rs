//! IPMI 1.5 ("lan") sessions against a real OpenIPMI ipmi_sim (loopback only).

mod common;

use std::time::Duration;

use common::*;
use ipmi_lan::{AuthType, ChassisControl, IpmiError, PacketStats, PowerState, Privilege, Session};
use test_support::{IpmiSim, PowerEvent};

#[test]
fn md5_straight_password_and_none_all_work() {
    let sim = IpmiSim::builder().auths("none md5 straight").start();
    for auth in [AuthType::Md5, AuthType::Password, AuthType::None] {
        let mut o = lan15(&sim, "admin", "secret");
        o.auth_type = Some(auth);
        let mut s = Session::open(&o, secs(10)).unwrap_or_else(|e| panic!("{auth}: {e}"));
        assert_eq!(s.cipher_suite(), None);
        assert_eq!(s.power_state(secs(5)).unwrap(), PowerState::On, "{auth}");
        // auth caps, challenge, activate, set privilege, status
        assert_eq!(
            s.stats(),
            PacketStats {
                sent: 5,
                received: 5
            },
            "{auth}"
        );
        s.close().unwrap_or_else(|e| panic!("{auth}: close: {e}"));
    }
}

#[test]
fn strongest_offered_auth_type_is_chosen_by_default() {
    // Only straight password offered: the default must pick it, and asking
    // for MD5 must be refused with the list of what the BMC offers.
    let sim = IpmiSim::builder().auths("straight").start();
    let o = lan15(&sim, "admin", "secret");
    let mut s = Session::open(&o, secs(10)).expect("straight password");
    s.power_state(secs(5)).unwrap();
    s.close().unwrap();

    let mut o = lan15(&sim, "admin", "secret");
    o.auth_type = Some(AuthType::Md5);
    let err = Session::open(&o, secs(10)).unwrap_err();
    assert!(
        matches!(err, IpmiError::AuthTypeUnsupported { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("password"), "{err}");
}

#[test]
fn chassis_control_over_ipmi_15() {
    let sim = IpmiSim::start();
    let mut s = Session::open(&lan15(&sim, "admin", "secret"), secs(10)).unwrap();
    s.chassis_control(ChassisControl::PowerDown, secs(5))
        .unwrap();
    assert_eq!(s.power_state(secs(5)).unwrap(), PowerState::Off);
    s.chassis_control(ChassisControl::PowerUp, secs(5)).unwrap();
    assert_eq!(s.power_state(secs(5)).unwrap(), PowerState::On);
    assert_eq!(
        sim.wait_for_events(2, Duration::from_secs(5)),
        vec![PowerEvent::Off, PowerEvent::On]
    );
    s.close().unwrap();
}

#[test]
fn operator_and_user_privileges() {
    let sim = IpmiSim::start();
    let o = with_privilege(lan15(&sim, "operator", "opsecret"), Privilege::Operator);
    let mut s = Session::open(&o, secs(10)).expect("operator");
    s.chassis_control(ChassisControl::PowerDown, secs(5))
        .unwrap();
    s.close().unwrap();
    assert_eq!(
        sim.wait_for_events(1, Duration::from_secs(5)),
        vec![PowerEvent::Off]
    );

    // Too high for the account: refused by name, with the reason.
    let err = Session::open(&lan15(&sim, "operator", "opsecret"), secs(10)).unwrap_err();
    assert!(
        matches!(
            err,
            IpmiError::PrivilegeRefused {
                requested: Privilege::Administrator,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("operator"), "{err}");

    let o = with_privilege(lan15(&sim, "viewer", "usersecret"), Privilege::User);
    let mut s = Session::open(&o, secs(10)).expect("user");
    assert_eq!(s.power_state(secs(5)).unwrap(), PowerState::Off);
    let err = s
        .chassis_control(ChassisControl::PowerUp, secs(5))
        .unwrap_err();
    assert_eq!(err.completion_code(), Some(0xD4), "{err}");
    s.close().unwrap();
    assert_eq!(sim.events(), vec![PowerEvent::Off]);
}

#[test]
fn wrong_user_and_wrong_password() {
    let sim = IpmiSim::start();
    let err = Session::open(&lan15(&sim, "nobody", "secret"), secs(10)).unwrap_err();
    assert!(matches!(err, IpmiError::UnknownUser { .. }), "{err:?}");

    let pw = "bad-password";
    for auth in [AuthType::Md5, AuthType::Password] {
        let mut o = lan15(&sim, "admin", pw);
        o.auth_type = Some(auth);
        let err = Session::open(&o, secs(10)).unwrap_err();
        assert!(
            matches!(err, IpmiError::WrongPassword { .. }),
            "{auth}: {err:?}"
        );
        assert!(!format!("{err} {err:?}").contains(pw));
    }
}

#[test]
fn ipv6_and_many_sessions_in_a_row() {
    let sim = IpmiSim::start();
    let mut o = lan15(&sim, "admin", "secret");
    o.host = "::1".into();
    for i in 0..80 {
        let mut s = Session::open(&o, secs(10)).unwrap_or_else(|e| panic!("#{i}: {e}"));
        s.power_state(secs(5)).unwrap();
        if i % 2 == 0 {
            s.close().unwrap();
        }
    }
}
