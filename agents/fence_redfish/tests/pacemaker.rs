//! fence_redfish driven by a real Pacemaker 2.1.5: `stonith_admin --reboot` through a stonith
//! resource must really power-cycle a sushy-emulator system, with the password given to the
//! agent on stdin only.
//!
//! Pacemaker finds stonith agents only as `/usr/sbin/fence_*`, and `/usr/sbin/fence_redfish` is
//! Debian's script (the parity tests' reference), so ours is installed for the test's duration
//! as `/usr/sbin/fence_redfish_kvmha` (a symlink; the agent takes its name from argv[0]) and
//! removed afterwards if the test created it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use test_support::{require, Cluster, SushyEmulator};

const INSTALL_PATH: &str = "/usr/sbin/fence_redfish_kvmha";

struct InstalledAgent {
    created: bool,
}

impl InstalledAgent {
    fn install() -> InstalledAgent {
        let ours = PathBuf::from(env!("CARGO_BIN_EXE_fence_redfish"));
        let path = Path::new(INSTALL_PATH);
        let created = match std::fs::symlink_metadata(path) {
            Err(_) => true,
            Ok(meta) if meta.file_type().is_symlink() => false,
            Ok(_) => panic!("{INSTALL_PATH} is a regular file, not a test symlink; move it away"),
        };
        let tmp = path.with_file_name(format!(".fence_redfish_kvmha.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&ours, &tmp)
            .unwrap_or_else(|e| panic!("cannot create {} (run as root): {e}", tmp.display()));
        std::fs::rename(&tmp, path)
            .unwrap_or_else(|e| panic!("cannot install {INSTALL_PATH}: {e}"));
        InstalledAgent { created }
    }
}

impl Drop for InstalledAgent {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_file(INSTALL_PATH);
        }
    }
}

fn stonith_admin(args: &[&str]) -> Output {
    Command::new(require("stonith_admin", "pacemaker-cli-utils"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run stonith_admin")
}

fn text(out: &Output) -> String {
    format!(
        "rc={:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn pacemaker_reboots_node2_through_fence_redfish() {
    let _agent = InstalledAgent::install();
    let emu = SushyEmulator::start();
    let sys = emu.systems[0].clone();

    // Pacemaker sees our metadata under the installed name.
    let meta = stonith_admin(&["--metadata", "--agent", "fence_redfish_kvmha"]);
    assert!(meta.status.success(), "{}", text(&meta));
    assert!(String::from_utf8_lossy(&meta.stdout).contains("systems_uri"));

    let cluster = Cluster::start();
    let port = format!("ipport={}", emu.port());
    let password = format!("password={}", emu.password);
    let ca = format!("ssl_ca_file={}", emu.ca_file().display());
    cluster.crm_configure(&[
        "primitive",
        "fence-node2",
        "stonith:fence_redfish_kvmha",
        "params",
        "ip=127.0.0.1",
        &port,
        "username=admin",
        &password,
        &ca,
        "pcmk_host_list=node2",
        "op",
        "monitor",
        "interval=60s",
        "timeout=20s",
    ]);
    cluster.crm_configure(&["property", "stonith-enabled=true"]);
    let (started, status) = cluster.wait_for_status(Duration::from_secs(60), |s| {
        s.lines()
            .any(|l| l.contains("fence-node2") && l.contains("Started"))
    });
    assert!(
        started,
        "the stonith resource did not start:\n{status}\n{}",
        cluster.pacemaker_log_tail(60)
    );
    assert!(
        emu.reset_requests().is_empty(),
        "starting the device changed the power"
    );

    let reboot = stonith_admin(&["--reboot", "node2", "--timeout", "60"]);
    assert!(
        reboot.status.success(),
        "stonith_admin --reboot node2 failed: {}\n{}",
        text(&reboot),
        cluster.pacemaker_log_tail(80)
    );
    // Ground truth: the emulator saw two accepted resets (ForceOff, then On) and the system is on.
    let resets = emu.reset_requests();
    assert_eq!(
        resets.iter().map(|r| r.status).collect::<Vec<_>>(),
        [204, 204],
        "{resets:?}"
    );
    assert!(emu.wait_power_state(&sys, "On", Duration::from_secs(5)));
}
