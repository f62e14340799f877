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

/// An ipmi_sim with options test-support's builder lacks (a BMC key Kg, a
/// second management controller for IPMB bridging), started here for now.
/// User admin/secret only, no chassis-control script. Stopped by PID on drop.
pub struct KgSim {
    child: std::process::Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl KgSim {
    /// `kg_hex`: 32 hex digits (this ipmi_sim stores a 16-byte key).
    pub fn start(kg_hex: &str) -> KgSim {
        Self::start_with(&format!("    bmc_key {kg_hex}\n"), "")
    }

    /// `lan_lines` go into the LAN section, `emu_lines` after the BMC's.
    pub fn start_with(lan_lines: &str, emu_lines: &str) -> KgSim {
        use std::fs;
        let program = test_support::require("ipmi_sim", "openipmi");
        for _ in 0..20 {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(dir.path().join("state")).unwrap();
            let auths = "none md5 straight";
            let mut lan = format!(
                "name \"kgbmc\"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 {port}\n    priv_limit admin\n"
            );
            for level in ["callback", "user", "operator", "admin"] {
                lan.push_str(&format!("    allowed_auths_{level} {auths}\n"));
            }
            lan.push_str("    guid a123456789abcdefa123456789abcdef\n");
            lan.push_str(lan_lines);
            lan.push_str("  endlan\n");
            lan.push_str(&format!(
                "  user 2 true \"admin\" \"secret\" admin 10 {auths}\n"
            ));
            fs::write(dir.path().join("lan.conf"), lan).unwrap();
            fs::write(
                dir.path().join("emu.cmd"),
                format!("mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n{emu_lines}"),
            )
            .unwrap();
            let out = fs::File::create(dir.path().join("out")).unwrap();
            let child = std::process::Command::new(&program)
                .arg("-n")
                .arg("-c")
                .arg(dir.path().join("lan.conf"))
                .arg("-f")
                .arg(dir.path().join("emu.cmd"))
                .arg("-s")
                .arg(dir.path().join("state"))
                .stdin(std::process::Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .expect("start ipmi_sim");
            let mut sim = KgSim { child, dir, port };
            let needle = format!(":{port:04X}");
            let up = test_support::peers::wait_until(Duration::from_secs(10), || {
                fs::read_to_string("/proc/net/udp")
                    .map(|t| {
                        t.lines().any(|l| {
                            l.split_whitespace()
                                .nth(1)
                                .is_some_and(|a| a.ends_with(&needle))
                        })
                    })
                    .unwrap_or(false)
                    || matches!(sim.child.try_wait(), Ok(Some(_)))
            });
            if up && matches!(sim.child.try_wait(), Ok(None)) {
                return sim;
            }
            let log = fs::read_to_string(sim.dir.path().join("out")).unwrap_or_default();
            eprintln!("ipmi_sim with bmc_key did not start on port {port}: {log}");
        }
        panic!("ipmi_sim with a bmc_key did not start");
    }
}

impl Drop for KgSim {
    fn drop(&mut self) {
        test_support::peers::terminate(&mut self.child, Duration::from_secs(5));
    }
}
