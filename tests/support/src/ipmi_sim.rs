//! A real BMC for tests: OpenIPMI's `ipmi_sim` on a free loopback UDP port.
//!
//! `ipmi_sim` does not simulate chassis power by itself; it asks a `chassis_control` program.
//! Ours is a small shell script that keeps the power state in a file and appends every `set`
//! it receives, with a timestamp, to an events log. Tests read that log to prove what really
//! happened to the "host" (an off followed by an on, no power action at all, ...), which is a
//! stronger check than the agent's own output.
//!
//! The simulator listens on both `127.0.0.1` and `::1` at the same port (two LAN channels), so one simulator serves
//! IPv4 and IPv6 tests. Each simulator has its own temporary directory and state dir, so any number
//! can run side by side.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::peers::{require, terminate, wait_until};

/// A user account on the simulated BMC.
#[derive(Clone, Debug)]
pub struct SimUser {
    pub name: String,
    pub password: String,
    /// `admin`, `operator` or `user` (ipmi_sim's words for the maximum privilege).
    pub privilege: String,
}

impl SimUser {
    pub fn new(name: &str, password: &str, privilege: &str) -> Self {
        SimUser {
            name: name.into(),
            password: password.into(),
            privilege: privilege.into(),
        }
    }
}

/// What the chassis-control script recorded: one `set` that ipmi_sim asked of the chassis.
#[derive(Clone, Debug, PartialEq)]
pub enum PowerEvent {
    /// `set power 0`: the host was powered off.
    Off,
    /// `set power 1`: the host was powered on.
    On,
    /// `set reset 1`: a hard reset (ipmi_sim does not change power for it).
    Reset,
    /// Any other `set` (boot device, identify, ...), verbatim.
    Other(String),
}

/// A power event with the wall-clock time (seconds since the epoch) the script logged it at.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedPowerEvent {
    pub at: f64,
    pub event: PowerEvent,
}

/// Builds an [`IpmiSim`]. Defaults: power on; users `admin`/`secret` (admin),
/// `operator`/`opsecret` (operator), `viewer`/`usersecret` (user); auth types none, md2, md5 and
/// straight allowed at every privilege level.
pub struct IpmiSimBuilder {
    users: Vec<SimUser>,
    power_on: bool,
    auths: String,
    priv_limit: String,
    bmc_key: Option<String>,
    extra_emu: String,
}

impl Default for IpmiSimBuilder {
    fn default() -> Self {
        IpmiSimBuilder {
            users: vec![
                SimUser::new("admin", "secret", "admin"),
                SimUser::new("operator", "opsecret", "operator"),
                SimUser::new("viewer", "usersecret", "user"),
            ],
            power_on: true,
            auths: "none md2 md5 straight".into(),
            priv_limit: "admin".into(),
            bmc_key: None,
            extra_emu: String::new(),
        }
    }
}

impl IpmiSimBuilder {
    /// Replaces the default users.
    pub fn users(mut self, users: Vec<SimUser>) -> Self {
        self.users = users;
        self
    }
    /// Adds one user to the list.
    pub fn user(mut self, name: &str, password: &str, privilege: &str) -> Self {
        self.users.push(SimUser::new(name, password, privilege));
        self
    }
    /// Initial chassis power.
    pub fn power_on(mut self, on: bool) -> Self {
        self.power_on = on;
        self
    }
    /// IPMI 1.5 authentication types the BMC allows (space separated: none md2 md5 straight).
    pub fn auths(mut self, auths: &str) -> Self {
        self.auths = auths.into();
        self
    }
    /// The channel's privilege limit (`user`, `operator`, `admin`).
    pub fn priv_limit(mut self, limit: &str) -> Self {
        self.priv_limit = limit.into();
        self
    }

    /// The BMC key Kg that RMCP+ sessions must use (32 hex digits: this ipmi_sim keeps 16 bytes).
    pub fn bmc_key(mut self, kg_hex: &str) -> Self {
        self.bmc_key = Some(kg_hex.into());
        self
    }
    /// Emulator commands run after the BMC's own, e.g. `mc_add 0x30 ...` and `mc_enable 0x30` for
    /// a second management controller to bridge to.
    pub fn extra_emu_commands(mut self, commands: &str) -> Self {
        self.extra_emu = commands.into();
        self
    }

    /// Starts the simulator and waits until it listens. Panics with a clear message on failure.
    pub fn start(self) -> IpmiSim {
        let program = require("ipmi_sim", "openipmi");
        let mut last_output = String::new();
        // A port that was free when we probed it can be taken before ipmi_sim binds it (tests run
        // in parallel); ipmi_sim then exits at once, and we try another port.
        for _attempt in 0..20 {
            let port = free_udp_port();
            let dir = tempfile::Builder::new()
                .prefix("ipmi-sim-")
                .tempdir()
                .expect("tempdir");
            self.write_files(dir.path(), port);
            let out = fs::File::create(dir.path().join("ipmi_sim.out")).expect("log file");
            let child = Command::new(&program)
                .arg("-n")
                .arg("-c")
                .arg(dir.path().join("lan.conf"))
                .arg("-f")
                .arg(dir.path().join("emu.cmd"))
                .arg("-s")
                .arg(dir.path().join("state"))
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            let mut sim = IpmiSim { child, dir, port };
            let listening = wait_until(Duration::from_secs(10), || {
                sim.has_exited() || (udp_port_bound(port, false) && udp_port_bound(port, true))
            });
            if listening && !sim.has_exited() {
                return sim;
            }
            last_output =
                fs::read_to_string(sim.dir.path().join("ipmi_sim.out")).unwrap_or_default();
            sim.stop_process();
        }
        panic!("ipmi_sim did not start listening on a loopback port after 20 attempts; its output:\n{last_output}");
    }

    fn write_files(&self, dir: &Path, port: u16) {
        fs::create_dir_all(dir.join("state")).expect("state dir");
        fs::write(dir.join("power"), if self.power_on { "1\n" } else { "0\n" })
            .expect("power file");
        fs::write(dir.join("events.log"), "").expect("events file");
        let script = dir.join("chassis.sh");
        fs::write(&script, CHASSIS_SCRIPT).expect("chassis script");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");

        let mut lan = String::new();
        lan.push_str("name \"testbmc\"\nset_working_mc 0x20\n");
        // This ipmi_sim takes one address per LAN channel: IPv4 on channel 1, IPv6 on channel 2.
        for (channel, addr) in [(1, "127.0.0.1"), (2, "::1")] {
            lan.push_str(&format!("  startlan {channel}\n    addr {addr} {port}\n"));
            lan.push_str(&format!("    priv_limit {}\n", self.priv_limit));
            for level in ["callback", "user", "operator", "admin"] {
                lan.push_str(&format!("    allowed_auths_{level} {}\n", self.auths));
            }
            lan.push_str("    guid a123456789abcdefa123456789abcdef\n");
            if let Some(kg) = &self.bmc_key {
                lan.push_str(&format!("    bmc_key {kg}\n"));
            }
            lan.push_str("  endlan\n");
        }
        lan.push_str(&format!("  chassis_control \"{}\"\n", script.display()));
        for (i, u) in self.users.iter().enumerate() {
            // User 1 is ipmi_sim's anonymous user; named users start at 2.
            lan.push_str(&format!(
                "  user {} true \"{}\" \"{}\" {} 10 {}\n",
                i + 2,
                u.name,
                u.password,
                u.privilege,
                self.auths
            ));
        }
        fs::write(dir.join("lan.conf"), lan).expect("lan.conf");
        fs::write(
            dir.join("emu.cmd"),
            format!(
                "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n{}",
                self.extra_emu
            ),
        )
        .expect("emu file");
    }
}

/// The chassis-control program ipmi_sim runs as `chassis.sh get power` / `chassis.sh set power 0|1` / ...
///
/// Modes, switched by files the test writes: `ignore-power` logs power requests but leaves the
/// power as it is (a BMC whose host does not follow its commands), `ignore-power-on` does so only
/// for power-on; `hang` makes every `set` block forever (the BMC
/// accepted the session but never answers the chassis command: ipmi_sim is single-threaded, so it
/// then answers nothing at all); `delay` holds a number of seconds to sleep before each `set`.
/// The blocking `sleep` records its PID so the test can end it by PID.
const CHASSIS_SCRIPT: &str = r#"#!/bin/sh
d=$(dirname "$0")
case "$1" in
get)
    case "$2" in
    power) echo "power:$(cat "$d/power")" ;;
    esac
    ;;
set)
    if [ -f "$d/delay" ]; then sleep "$(cat "$d/delay")"; fi
    if [ -f "$d/hang" ]; then
        sleep 3600 &
        echo $! > "$d/hang.pid"
        wait
        exit 0
    fi
    shift
    echo "$(date +%s.%N) $*" >> "$d/events.log"
    case "$1 $2" in
    "power 0") [ -f "$d/ignore-power" ] || echo 0 > "$d/power" ;;
    "power 1") [ -f "$d/ignore-power" ] || [ -f "$d/ignore-power-on" ] || echo 1 > "$d/power" ;;
    esac
    ;;
esac
exit 0
"#;

/// A running `ipmi_sim`, stopped by PID on drop.
pub struct IpmiSim {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl fmt::Debug for IpmiSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpmiSim")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl IpmiSim {
    pub fn builder() -> IpmiSimBuilder {
        IpmiSimBuilder::default()
    }

    /// A simulator with the default users, powered on.
    pub fn start() -> IpmiSim {
        IpmiSimBuilder::default().start()
    }

    /// The UDP port it listens on (both 127.0.0.1 and ::1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The simulator's PID (a process this crate started).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory with lan.conf, the power file and the events log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Current chassis power as the chassis-control script keeps it.
    pub fn power_is_on(&self) -> bool {
        fs::read_to_string(self.dir.path().join("power"))
            .map(|s| s.trim() == "1")
            .unwrap_or(false)
    }

    /// Sets the power state directly (not through IPMI: no event is logged).
    pub fn set_power(&self, on: bool) {
        fs::write(
            self.dir.path().join("power"),
            if on { "1\n" } else { "0\n" },
        )
        .expect("power file");
    }

    /// Every `set` the BMC applied to the chassis since start (or since [`Self::clear_events`]).
    pub fn timed_events(&self) -> Vec<TimedPowerEvent> {
        let text = fs::read_to_string(self.dir.path().join("events.log")).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let (ts, rest) = line.split_once(' ')?;
                let event = match rest.trim() {
                    "power 0" => PowerEvent::Off,
                    "power 1" => PowerEvent::On,
                    "reset 1" => PowerEvent::Reset,
                    other => PowerEvent::Other(other.to_string()),
                };
                Some(TimedPowerEvent {
                    at: ts.parse().ok()?,
                    event,
                })
            })
            .collect()
    }

    /// The power events without times, ignoring boot-device and identify requests.
    pub fn events(&self) -> Vec<PowerEvent> {
        self.timed_events()
            .into_iter()
            .map(|e| e.event)
            .filter(|e| !matches!(e, PowerEvent::Other(_)))
            .collect()
    }

    /// Forgets the events logged so far.
    pub fn clear_events(&self) {
        fs::write(self.dir.path().join("events.log"), "").expect("events file");
    }

    /// Waits up to `timeout` for the event log to hold at least `n` power events.
    pub fn wait_for_events(&self, n: usize, timeout: Duration) -> Vec<PowerEvent> {
        wait_until(timeout, || self.events().len() >= n);
        self.events()
    }

    /// Makes every chassis `set` block forever (true) or behave again (false). While a `set`
    /// blocks, ipmi_sim answers nothing at all: a BMC that accepted the session and then went
    /// silent.
    pub fn set_chassis_hangs(&self, hang: bool) {
        let path = self.dir.path().join("hang");
        if hang {
            fs::write(path, "").expect("hang file");
        } else {
            let _ = fs::remove_file(path);
            self.release_hung_script();
        }
    }

    /// Makes the BMC accept and log power requests without the host following them (true), or
    /// behave again (false).
    pub fn set_ignores_power_changes(&self, ignore: bool) {
        self.set_mode_file("ignore-power", ignore);
    }

    /// Makes the BMC accept and log power-on requests without the host powering on (the host
    /// still powers off), or behave again.
    pub fn set_ignores_power_on(&self, ignore: bool) {
        self.set_mode_file("ignore-power-on", ignore);
    }

    fn set_mode_file(&self, name: &str, present: bool) {
        let path = self.dir.path().join(name);
        if present {
            fs::write(path, "").expect("mode file");
        } else {
            let _ = fs::remove_file(path);
        }
    }

    /// Delays every chassis `set` by `delay` (a slow BMC); zero removes the delay.
    pub fn set_chassis_delay(&self, delay: Duration) {
        let path = self.dir.path().join("delay");
        if delay.is_zero() {
            let _ = fs::remove_file(path);
        } else {
            let mut f = fs::File::create(path).expect("delay file");
            write!(f, "{:.3}", delay.as_secs_f64()).expect("delay file");
        }
    }

    /// ipmi_sim's own output (errors about the configuration, mostly).
    pub fn output(&self) -> String {
        fs::read_to_string(self.dir.path().join("ipmi_sim.out")).unwrap_or_default()
    }

    fn release_hung_script(&self) {
        let pid_file = self.dir.path().join("hang.pid");
        if let Ok(text) = fs::read_to_string(&pid_file) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                // This `sleep` was started by our chassis script, itself started by our ipmi_sim.
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let _ = fs::remove_file(pid_file);
        }
    }

    fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn stop_process(&mut self) {
        let _ = fs::remove_file(self.dir.path().join("hang"));
        self.release_hung_script();
        terminate(&mut self.child, Duration::from_secs(5));
    }

    /// Stops the simulator now (dropping it does the same).
    pub fn stop(mut self) {
        self.stop_process();
    }
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        self.stop_process();
    }
}

/// A UDP port that is free on both 127.0.0.1 and ::1 right now.
fn free_udp_port() -> u16 {
    loop {
        let v4 = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = v4.local_addr().expect("local addr").port();
        if std::net::UdpSocket::bind(("::1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether some socket is bound to UDP `port` (per /proc/net/udp or udp6).
fn udp_port_bound(port: u16, v6: bool) -> bool {
    let file = if v6 {
        "/proc/net/udp6"
    } else {
        "/proc/net/udp"
    };
    let needle = format!(":{port:04X}");
    fs::read_to_string(file)
        .map(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|local| local.ends_with(&needle))
            })
        })
        .unwrap_or(false)
}
