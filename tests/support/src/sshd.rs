//! An OpenSSH `sshd` on a loopback port, for checks a coordinator runs on
//! hosts over SSH. It runs in the foreground (`-D`) as a child of the test
//! and is stopped by its PID on drop. Key authentication only; the test
//! gets a client key and a known_hosts file that pins the server's key.

use crate::peers::{require, terminate};
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running sshd.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

fn keygen(path: &Path) {
    let keygen = require("ssh-keygen", "openssh-client");
    let st = Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs");
    assert!(st.success(), "ssh-keygen failed");
}

impl Sshd {
    /// Starts sshd on 127.0.0.1 with fresh host and client keys; waits until
    /// it accepts connections.
    pub fn start() -> Sshd {
        let sshd = require("sshd", "openssh-server");
        fs::create_dir_all("/run/sshd").expect("privilege separation directory /run/sshd");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        fs::set_permissions(d.join("client_key"), fs::Permissions::from_mode(0o600)).unwrap();
        let host_pub = fs::read_to_string(d.join("host_key.pub")).unwrap();
        let mut last = String::new();
        for _ in 0..20 {
            let port = {
                let l = TcpListener::bind("127.0.0.1:0").expect("free port");
                l.local_addr().unwrap().port()
            };
            let cfg = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\nAuthorizedKeysFile {ak}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\n",
                hk = d.join("host_key").display(),
                pid = d.join("sshd.pid").display(),
                ak = d.join("authorized_keys").display(),
            );
            fs::write(d.join("sshd_config"), cfg).unwrap();
            let fields: Vec<&str> = host_pub.split_whitespace().collect();
            fs::write(
                d.join("known_hosts"),
                format!("[127.0.0.1]:{port} {} {}\n", fields[0], fields[1]),
            )
            .unwrap();
            let mut child = Command::new(&sshd)
                .arg("-D")
                .arg("-f")
                .arg(d.join("sshd_config"))
                .arg("-E")
                .arg(d.join("sshd.log"))
                .stdin(Stdio::null())
                .spawn()
                .expect("sshd starts");
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sshd { child, dir, port };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            terminate(&mut child, Duration::from_secs(2));
            last = fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
        }
        panic!("sshd did not start: {last}");
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The client's private key (its public half is authorized for root).
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }
    /// A known_hosts file pinning this server's host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }
    /// sshd's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
    /// The PID (a process this crate started).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(2));
    }
}
