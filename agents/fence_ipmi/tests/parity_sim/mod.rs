//! A fresh OpenIPMI `ipmi_sim` BMC per parity run, on a free loopback UDP port.
//!
//! Local stand-in while `test_support::ipmi_sim` is being written; the interface is kept
//! narrow (start, port, events) so the parity table does not care which one runs it.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    On,
    Off,
}

/// How the simulated BMC behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BmcMode {
    /// A working BMC whose power follows chassis control.
    Normal,
    /// Chassis control is logged and acknowledged, but the power never changes.
    IgnoresPowerChanges,
    /// Nothing listens on the port at all.
    Absent,
}

/// One simulator, stopped (by PID) and cleaned up on drop.
pub struct Bmc {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

const CHASSIS_SCRIPT: &str = r#"#!/bin/sh
# chassis.sh DIR MODE get power | set KIND VALUE
dir="$1"; mode="$2"; shift 2
case "$1" in
get) v=$(cat "$dir/power" 2>/dev/null || echo 0); echo "power:$v" ;;
set) echo "$2 $3" >> "$dir/events"
     if [ "$2" = power ] && [ "$mode" = normal ]; then echo "$3" > "$dir/power"; fi ;;
esac
"#;

fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP port");
    socket.local_addr().expect("local addr").port()
}

fn unique_dir() -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("fence-parity-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state")).expect("create simulator dir");
    dir
}

/// An RMCP/ASF presence ping; ipmi_sim answers it once its LAN interface is up.
fn answers_ping(port: u16) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    let ping = [6u8, 0, 0xff, 6, 0, 0, 0x11, 0xbe, 0x80, 0, 0, 0];
    if socket.send_to(&ping, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(socket.recv_from(&mut buf), Ok((n, _)) if n >= 8)
}

impl Bmc {
    pub fn start(initial: Power, mode: BmcMode) -> Bmc {
        let dir = unique_dir();
        let port = free_udp_port();
        let power = match initial {
            Power::On => "1",
            Power::Off => "0",
        };
        std::fs::write(dir.join("power"), format!("{power}\n")).expect("write power file");
        std::fs::write(dir.join("events"), "").expect("write events file");
        if mode == BmcMode::Absent {
            return Bmc {
                port,
                dir,
                child: None,
            };
        }
        assert!(
            std::path::Path::new("/usr/bin/ipmi_sim").is_file(),
            "ipmi_sim is missing: apt-get install openipmi"
        );
        let script = dir.join("chassis.sh");
        std::fs::write(&script, CHASSIS_SCRIPT).expect("write chassis script");
        let mode_word = match mode {
            BmcMode::Normal => "normal",
            _ => "ignore",
        };
        let lan = format!(
            "name \"parity\"\n\
             set_working_mc 0x20\n\
             startlan 1\n\
               addr 127.0.0.1 {port}\n\
               priv_limit admin\n\
               allowed_auths_callback none md2 md5 straight\n\
               allowed_auths_user none md2 md5 straight\n\
               allowed_auths_operator none md2 md5 straight\n\
               allowed_auths_admin none md2 md5 straight\n\
               guid a123456789abcdefa123456789abcdef\n\
             endlan\n\
             chassis_control \"/bin/sh {script} {dir} {mode_word}\"\n\
             user 2 true \"admin\" \"secret\" admin 10 none md2 md5 straight\n",
            script = script.display(),
            dir = dir.display(),
        );
        std::fs::write(dir.join("lan.conf"), lan).expect("write lan.conf");
        std::fs::write(
            dir.join("emu"),
            "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n",
        )
        .expect("write emulator file");
        let child = Command::new("/usr/bin/ipmi_sim")
            .arg("-n")
            .arg("-c")
            .arg(dir.join("lan.conf"))
            .arg("-f")
            .arg(dir.join("emu"))
            .arg("-s")
            .arg(dir.join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ipmi_sim");
        let bmc = Bmc {
            port,
            dir,
            child: Some(child),
        };
        let started = Instant::now();
        while !answers_ping(port) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "ipmi_sim on 127.0.0.1:{port} did not come up"
            );
        }
        bmc
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The power events so far, as "off" / "on" / "reset" / other raw `KIND VALUE` lines.
    pub fn events(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.join("events")).unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with("boot") && !l.starts_with("identify"))
            .map(|l| match l.trim() {
                "power 0" => "off".to_string(),
                "power 1" => "on".to_string(),
                "reset 1" => "reset".to_string(),
                other => other.to_string(),
            })
            .collect()
    }
}

impl Drop for Bmc {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
