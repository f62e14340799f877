//! A real Redfish service for tests: `sushy-emulator` (PyPI `sushy-tools`, its fake driver) on
//! a free loopback port, with TLS from a per-run [`TestCa`] and HTTP basic auth (an htpasswd
//! file with a bcrypt hash), and a fresh state directory.
//!
//! The emulator lives in a Python venv that `.ci/run` creates (`/opt/kvm-ha-venv`, or
//! `$KVM_HA_VENV`). Its fake driver applies a power change after a random 1-11 s; the tests start
//! it through a tiny launcher that pins that delay to its minimum (1 s) so a reboot test takes
//! seconds, not half a minute. Nothing else of the emulator is changed.
//!
//! Ground truth: [`SushyEmulator::power_state`] asks the emulator with Python's own HTTP client
//! (never our agent's), and [`SushyEmulator::reset_requests`] reads the reset POSTs and their
//! HTTP status from the emulator's request log.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::peers::{terminate, wait_until};
use crate::tls::TestCa;

/// The sushy-tools version `.ci/run` installs.
pub const SUSHY_TOOLS_VERSION: &str = "2.2.0";

/// The venv holding sushy-tools.
pub fn venv() -> PathBuf {
    std::env::var_os("KVM_HA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/kvm-ha-venv"))
}

/// The venv's python, or a panic naming the install command.
pub fn require_sushy() -> PathBuf {
    let py = venv().join("bin/python3");
    let ok = venv().join("bin/sushy-emulator").is_file()
        && Command::new(&py)
            .args(["-c", "import sushy_tools, bcrypt"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the test peer sushy-emulator is not installed in {}: run `apt-get install -y python3-venv && \
         python3 -m venv {0} && {0}/bin/pip install sushy-tools=={SUSHY_TOOLS_VERSION}` (or `bash .ci/run`)",
        venv().display()
    );
    py
}

/// One fake system of the emulator.
#[derive(Clone, Debug)]
pub struct FakeSystem {
    pub uuid: String,
    pub name: String,
    pub power_on: bool,
}

impl FakeSystem {
    pub fn new(n: u32, name: &str, power_on: bool) -> FakeSystem {
        FakeSystem {
            uuid: format!("27946b59-9e44-4fa7-8e91-f3527a1e{n:04x}"),
            name: name.into(),
            power_on,
        }
    }
    /// The resource path of this system.
    pub fn uri(&self) -> String {
        format!("/redfish/v1/Systems/{}", self.uuid)
    }
}

/// A reset request the emulator logged: its path and HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetRequest {
    pub path: String,
    pub status: u16,
}

/// A running sushy-emulator.
pub struct SushyEmulator {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    ca: TestCa,
    python: PathBuf,
    pub username: String,
    pub password: String,
    pub systems: Vec<FakeSystem>,
}

const LAUNCHER: &str = r#"
import sys
from sushy_tools.emulator.resources.systems import fakedriver
class _Minimum:
    @staticmethod
    def randint(low, high):
        return low
fakedriver.random = _Minimum
from sushy_tools.emulator import main
sys.argv[0] = 'sushy-emulator'
sys.exit(main.main())
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl SushyEmulator {
    /// One system, `node1`, powered on; user `admin` with a distinctive password.
    pub fn start() -> SushyEmulator {
        SushyEmulator::with_systems(vec![FakeSystem::new(1, "node1", true)])
    }

    pub fn with_systems(systems: Vec<FakeSystem>) -> SushyEmulator {
        let python = require_sushy();
        let ca = TestCa::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let username = "admin".to_string();
        let password = "Rf-Adm1n-5e7b".to_string();
        let out = Command::new(&python)
            .args([
                "-c",
                "import bcrypt,sys; print(sys.argv[1] + ':' + bcrypt.hashpw(sys.argv[2].encode(), bcrypt.gensalt(4)).decode())",
                &username,
                &password,
            ])
            .output()
            .expect("hash the password");
        assert!(
            out.status.success(),
            "bcrypt: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
        fs::write(dir.path().join("launch.py"), LAUNCHER).unwrap();
        let systems_py: Vec<String> = systems
            .iter()
            .map(|s| {
                format!(
                    "{{'uuid': '{}', 'name': '{}', 'power_state': '{}', 'external_notifier': False, 'nics': []}}",
                    s.uuid,
                    s.name,
                    if s.power_on { "On" } else { "Off" }
                )
            })
            .collect();
        // A port free when probed could be taken before the emulator binds it; then the start
        // fails loudly with the emulator's own message.
        let port = free_port();
        let state = dir.path().join("state");
        let config = format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_STATE_DIR = '{}'\n\
             SUSHY_EMULATOR_SSL_CERT = '{}'\nSUSHY_EMULATOR_SSL_KEY = '{}'\n\
             SUSHY_EMULATOR_AUTH_FILE = '{}'\nSUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\n",
            state.display(),
            ca.server_cert().display(),
            ca.server_key().display(),
            dir.path().join("htpasswd").display(),
            systems_py.join(", ")
        );
        let conf = dir.path().join("emulator.conf");
        fs::write(&conf, config).unwrap();
        let child = Command::new(&python)
            .arg(dir.path().join("launch.py"))
            .arg("--config")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.path().join("emulator.log")).unwrap())
            .stderr(fs::File::create(dir.path().join("emulator.err")).unwrap())
            .spawn()
            .expect("start sushy-emulator");
        let mut emu = SushyEmulator {
            child,
            port,
            dir,
            ca,
            python,
            username,
            password,
            systems,
        };
        let up = wait_until(Duration::from_secs(30), || {
            matches!(emu.child.try_wait(), Ok(Some(_)))
                || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up || !matches!(emu.child.try_wait(), Ok(None)) {
            let log = emu.log();
            terminate(&mut emu.child, Duration::from_secs(2));
            panic!("sushy-emulator did not start on port {port}:\n{log}");
        }
        emu
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn ca_file(&self) -> PathBuf {
        self.ca.ca_file()
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the emulator printed (its request log is on stderr).
    pub fn log(&self) -> String {
        let mut s = fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default();
        s.push_str(&fs::read_to_string(self.dir.path().join("emulator.err")).unwrap_or_default());
        s
    }

    /// The PowerState the emulator reports for a system, read with Python's urllib.
    pub fn power_state(&self, system: &FakeSystem) -> String {
        let script = r#"
import base64, json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
req = urllib.request.Request(sys.argv[1], headers={'Authorization': 'Basic ' + base64.b64encode(sys.argv[3].encode()).decode()})
print(json.load(urllib.request.urlopen(req, context=ctx, timeout=10))['PowerState'])
"#;
        let out = Command::new(&self.python)
            .args([
                "-c",
                script,
                &format!("https://127.0.0.1:{}{}", self.port, system.uri()),
                &self.ca.ca_file().display().to_string(),
                &format!("{}:{}", self.username, self.password),
            ])
            .output()
            .expect("ask the emulator");
        assert!(
            out.status.success(),
            "reading PowerState: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Wait until the emulator reports `state` for `system` (its fake driver applies changes
    /// after a delay); returns whether it did within `timeout`.
    pub fn wait_power_state(&self, system: &FakeSystem, state: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.power_state(system) == state)
    }

    /// The `ComputerSystem.Reset` POSTs the emulator logged, in order.
    pub fn reset_requests(&self) -> Vec<ResetRequest> {
        // Werkzeug colours every status but 200 with ANSI escapes: drop them first.
        let mut plain = String::new();
        let mut in_escape = false;
        for c in self.log().chars() {
            match (in_escape, c) {
                (false, '\u{1b}') => in_escape = true,
                (true, 'm') => in_escape = false,
                (true, _) => {}
                (false, c) => plain.push(c),
            }
        }
        plain
            .lines()
            .filter_map(|l| {
                let rest = l.split("\"POST ").nth(1)?;
                let (path, tail) = rest.split_once(' ')?;
                if !path.ends_with("/Actions/ComputerSystem.Reset") {
                    return None;
                }
                let status = tail
                    .split('"')
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()?;
                Some(ResetRequest {
                    path: path.to_string(),
                    status,
                })
            })
            .collect()
    }
}

impl Drop for SushyEmulator {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(3));
    }
}
