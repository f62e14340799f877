//! The power drivers against real peers: the in-process IPMI driver and the
//! fence-agent driver (Debian's fence_ipmilan, options on stdin) against
//! ipmi_sim, and the script driver with a script written here. Ground
//! truth is the BMC's power event log.

use hactl_core::{HostId, PowerReading};
use hactl_runtime::power::{
    BmcTarget, EpochGuard, FenceAgentDriver, IpmiDriver, PowerAnswer, PowerDriver, PowerError,
    PowerOp, PowerRequest, ScriptDriver,
};
use hactl_runtime::secrets::SecretString;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use test_support::{require, IpmiSim, PowerEvent};

fn target(sim: &IpmiSim, password: &str) -> BmcTarget {
    BmcTarget {
        host_name: "kvm1".into(),
        host_uuid: "u-1".into(),
        host_ip: "127.0.0.1".into(),
        address: "127.0.0.1".into(),
        port: sim.port(),
        username: "admin".into(),
        password: Some(SecretString::new(password)),
        kg_hex: None,
    }
}

fn req(op: PowerOp, epoch: u32) -> PowerRequest {
    PowerRequest {
        host: HostId(1),
        op,
        epoch,
        deadline: Instant::now() + Duration::from_secs(10),
    }
}

fn ipmi() -> IpmiDriver {
    IpmiDriver {
        cipher_suite: 3,
        privilege: ipmi_lan::Privilege::Administrator,
        retransmit: Duration::from_millis(500),
        guard: EpochGuard::default(),
    }
}

#[test]
fn ipmi_driver_reads_and_switches_power_and_refuses_a_stale_epoch() {
    let sim = IpmiSim::start();
    let d = ipmi();
    let t = target(&sim, "secret");
    assert_eq!(
        d.execute(&t, &req(PowerOp::Status, 2)),
        Ok(PowerAnswer::State(PowerReading::On))
    );
    assert_eq!(
        d.execute(&t, &req(PowerOp::Off, 2)),
        Ok(PowerAnswer::Accepted)
    );
    assert_eq!(
        d.execute(&t, &req(PowerOp::Status, 2)),
        Ok(PowerAnswer::State(PowerReading::Off))
    );
    // An older coordinator incarnation never reaches the BMC.
    assert!(matches!(
        d.execute(&t, &req(PowerOp::On, 1)),
        Err(PowerError::StaleEpoch {
            epoch: 1,
            current: 2
        })
    ));
    assert_eq!(sim.events(), vec![PowerEvent::Off]);
    assert_eq!(
        d.execute(&t, &req(PowerOp::On, 3)),
        Ok(PowerAnswer::Accepted)
    );
    assert_eq!(sim.events(), vec![PowerEvent::Off, PowerEvent::On]);
    // Wrong password: classified, no secret in the message, no power change.
    let e = d
        .execute(&target(&sim, "nope-pw"), &req(PowerOp::Off, 3))
        .unwrap_err();
    assert!(matches!(e, PowerError::AuthFailed(_)), "{e}");
    assert!(!e.to_string().contains("nope-pw"), "{e}");
    assert_eq!(sim.events(), vec![PowerEvent::Off, PowerEvent::On]);
}

#[test]
fn fence_agent_driver_runs_fence_ipmilan_with_options_on_stdin() {
    let agent = require("fence_ipmilan", "fence-agents");
    let sim = IpmiSim::start();
    let d = FenceAgentDriver {
        agent,
        // ipmitool defaults to cipher suite 17, which ipmi_sim lacks.
        options: vec![
            ("lanplus".into(), "1".into()),
            ("cipher".into(), "3".into()),
        ],
        guard: EpochGuard::default(),
    };
    let t = target(&sim, "secret");
    assert_eq!(
        d.execute(&t, &req(PowerOp::Status, 1)),
        Ok(PowerAnswer::State(PowerReading::On))
    );
    assert_eq!(
        d.execute(&t, &req(PowerOp::Off, 1)),
        Ok(PowerAnswer::Accepted)
    );
    assert_eq!(
        d.execute(&t, &req(PowerOp::Status, 1)),
        Ok(PowerAnswer::State(PowerReading::Off))
    );
    assert_eq!(sim.events(), vec![PowerEvent::Off]);
    let e = d
        .execute(&target(&sim, "nope-pw"), &req(PowerOp::On, 1))
        .unwrap_err();
    assert!(!e.to_string().contains("nope-pw"), "{e}");
    assert_eq!(sim.events(), vec![PowerEvent::Off]);
}

#[test]
fn script_driver_contract() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("power.sh");
    let log = dir.path().join("stdin.log");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat > {log}\ngrep -q '^bmc_password=pw$' {log} || exit 2\n\
             case \"$(sed -n 's/^action=//p' {log})\" in\n  status) echo off ;;\n  off) ;;\n  *) exit 3 ;;\nesac\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let d = ScriptDriver {
        script,
        guard: EpochGuard::default(),
    };
    let mut t = BmcTarget {
        host_name: "kvm1".into(),
        host_uuid: "u-1".into(),
        host_ip: "10.0.0.1".into(),
        address: "10.1.0.1".into(),
        port: 623,
        username: "admin".into(),
        password: Some(SecretString::new("pw")),
        kg_hex: None,
    };
    assert_eq!(
        d.execute(&t, &req(PowerOp::Status, 4)),
        Ok(PowerAnswer::State(PowerReading::Off))
    );
    assert_eq!(
        d.execute(&t, &req(PowerOp::Off, 4)),
        Ok(PowerAnswer::Accepted)
    );
    let stdin = std::fs::read_to_string(&log).unwrap();
    for line in [
        "action=off",
        "host=kvm1",
        "host_id=u-1",
        "ip=10.0.0.1",
        "bmc_address=10.1.0.1",
        "bmc_port=623",
        "bmc_username=admin",
        "epoch=4",
    ] {
        assert!(
            stdin.lines().any(|l| l == line),
            "{line} missing from {stdin}"
        );
    }
    assert!(matches!(
        d.execute(&t, &req(PowerOp::On, 4)),
        Err(PowerError::Unreachable(_))
    ));
    t.password = Some(SecretString::new("other"));
    assert!(matches!(
        d.execute(&t, &req(PowerOp::Off, 4)),
        Err(PowerError::AuthFailed(_))
    ));
}

/// The in-process Redfish driver against the Redfish double (HTTPS with a
/// per-run CA, sessions): ground truth is the double's own request log.
#[test]
fn redfish_driver_switches_power_over_a_verified_session_and_refuses_a_stale_epoch() {
    use hactl_runtime::power::RedfishDriver;
    use test_support::redfish_double::{DoubleBehaviour, RedfishDouble};
    let dbl = RedfishDouble::start(DoubleBehaviour {
        sessions: true,
        already_status: Some(409),
        ..DoubleBehaviour::default()
    });
    let t = |password: &str| BmcTarget {
        host_name: "node1".into(),
        host_uuid: "u-1".into(),
        host_ip: "127.0.0.1".into(),
        address: "127.0.0.1".into(),
        port: dbl.port(),
        username: dbl.behaviour.username.clone(),
        password: Some(SecretString::new(password)),
        kg_hex: None,
    };
    let good = t(&dbl.behaviour.password);
    let d = RedfishDriver {
        ca_file: Some(dbl.ca_file()),
        systems_uri: None,
        guard: EpochGuard::default(),
    };
    assert_eq!(
        d.execute(&good, &req(PowerOp::Status, 2)),
        Ok(PowerAnswer::State(PowerReading::On))
    );
    assert_eq!(
        d.execute(&good, &req(PowerOp::Off, 2)),
        Ok(PowerAnswer::Accepted)
    );
    assert_eq!(
        d.execute(&good, &req(PowerOp::Status, 2)),
        Ok(PowerAnswer::State(PowerReading::Off))
    );
    // An off on an off system: the BMC's 409 counts only after a read confirmed Off.
    assert_eq!(
        d.execute(&good, &req(PowerOp::Off, 2)),
        Ok(PowerAnswer::Accepted)
    );
    // An older coordinator incarnation never reaches the BMC.
    assert!(matches!(
        d.execute(&good, &req(PowerOp::On, 1)),
        Err(PowerError::StaleEpoch {
            epoch: 1,
            current: 2
        })
    ));
    assert_eq!(
        dbl.resets(),
        vec![("ForceOff".to_string(), 204), ("ForceOff".to_string(), 409)]
    );
    // Every login was a session, and every session was deleted again.
    let created = dbl
        .events()
        .iter()
        .filter(|e| e.str("session") == Some("created"))
        .count();
    let deleted = dbl
        .events()
        .iter()
        .filter(|e| e.str("session") == Some("deleted"))
        .count();
    assert_eq!((created, deleted), (4, 4));

    // Wrong password: classified, no secret in the message, no reset sent.
    let e = d.execute(&t("nope-pw"), &req(PowerOp::On, 3)).unwrap_err();
    assert!(matches!(e, PowerError::AuthFailed(_)), "{e}");
    assert!(!e.to_string().contains("nope-pw"), "{e}");
    // A BMC whose certificate the driver cannot verify is never acted on.
    let unverified = RedfishDriver {
        ca_file: None,
        systems_uri: None,
        guard: EpochGuard::default(),
    };
    let e = unverified.execute(&good, &req(PowerOp::On, 3)).unwrap_err();
    assert!(matches!(e, PowerError::Unreachable(_)), "{e}");
    assert_eq!(dbl.resets().len(), 2, "{:?}", dbl.resets());
    assert_eq!(
        d.execute(&good, &req(PowerOp::On, 3)),
        Ok(PowerAnswer::Accepted)
    );
    assert_eq!(dbl.resets().last(), Some(&("On".to_string(), 204)));
}
