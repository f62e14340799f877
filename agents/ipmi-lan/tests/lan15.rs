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
fn straight_password_and_none_are_never_chosen_unless_asked_for() {
    // A BMC (or a forged capabilities reply) offering only straight password
    // must not get the password in clear by default: refused, naming auth=password.
    let sim = IpmiSim::builder().auths("straight").start();
    let o = lan15(&sim, "admin", "secret");
    let err = Session::open(&o, secs(10)).unwrap_err();
    assert!(
        matches!(err, IpmiError::AuthTypeUnsupported { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("auth=password"), "{err}");
    // Asked for explicitly: it works.
    let mut o = lan15(&sim, "admin", "secret");
    o.auth_type = Some(AuthType::Password);
    let mut s = Session::open(&o, secs(10)).expect("straight password when asked for");
    s.power_state(secs(5)).unwrap();
    s.close().unwrap();
    // Asking for MD5 is refused with the list of what the BMC offers.
    let mut o = lan15(&sim, "admin", "secret");
    o.auth_type = Some(AuthType::Md5);
    let err = Session::open(&o, secs(10)).unwrap_err();
    assert!(
        matches!(err, IpmiError::AuthTypeUnsupported { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("password"), "{err}");

    // Only "none" offered: refused by default, allowed with allow_unauthenticated.
    let sim = IpmiSim::builder().auths("none").start();
    let err = Session::open(&lan15(&sim, "admin", "secret"), secs(10)).unwrap_err();
    assert!(
        matches!(err, IpmiError::UnauthenticatedSessionRefused { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("allow_unauthenticated"), "{err}");
    let mut o = lan15(&sim, "admin", "secret");
    o.allow_unauthenticated = true;
    let mut s = Session::open(&o, secs(10)).expect("none with allow_unauthenticated");
    s.power_state(secs(5)).unwrap();
    s.close().unwrap();
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
    // The unknown-user refusal comes before any session: unauthenticated, so
    // it is believed only once the deadline passed without a better answer.
    let started = std::time::Instant::now();
    let err = Session::open(
        &lan15(&sim, "nobody", "secret"),
        std::time::Instant::now() + std::time::Duration::from_secs(2),
    )
    .unwrap_err();
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    assert!(
        matches!(err.claimed(), IpmiError::UnknownUser { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("possibly forged"), "{err}");

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
