//! Power drivers behind one trait: `ipmi` (in-process IPMI-over-LAN, one
//! session per operation), `fence-agent` (any `fence_*` agent, options on
//! stdin) and `script` (an operator script, contract below).
//!
//! Every request carries the coordinator epoch that issued it. Each driver
//! checks it against the highest epoch it has seen ([`EpochGuard`]) and
//! refuses older ones: a request from a superseded coordinator incarnation
//! must never reach a BMC. (The fencing token of the quorum lease will be
//! carried in the same field.)
//!
//! Drivers are blocking (BMC protocols and child processes with deadlines);
//! the runtime calls them on its blocking pool with a bounded concurrency.
//!
//! # Script contract
//!
//! `<script>` is run with no arguments; stdin carries `key=value` lines:
//! `action=status|off|on|cycle`, `host=<CloudStack host name>`,
//! `host_id=<CloudStack uuid>`, `ip=<host ip>`, `bmc_address=`, `bmc_port=`,
//! `bmc_username=`, `bmc_password=` (if known), `epoch=<n>`. Exit status 0 =
//! done (for `status`: stdout's first word is `on` or `off`); 1 = failed;
//! 2 = authentication refused; 3 = unreachable. The script must finish
//! before the operation's deadline or it is killed.

use crate::secrets::SecretString;
use hactl_core::{HostId, PowerFailure, PowerReading};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;

/// What to do to a chassis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerOp {
    /// Read power.
    Status,
    /// Hard power off.
    Off,
    /// Power on.
    On,
    /// Power cycle.
    Cycle,
}

impl PowerOp {
    /// fence-agent / script action name.
    pub fn action(self) -> &'static str {
        match self {
            PowerOp::Status => "status",
            PowerOp::Off => "off",
            PowerOp::On => "on",
            PowerOp::Cycle => "reboot",
        }
    }
}

/// One power request.
#[derive(Debug, Clone, Copy)]
pub struct PowerRequest {
    /// The host.
    pub host: HostId,
    /// The operation.
    pub op: PowerOp,
    /// The coordinator epoch (fencing token) that issued it.
    pub epoch: u32,
    /// When the operation must be over.
    pub deadline: Instant,
}

/// Where and how to reach one host's BMC.
#[derive(Debug, Clone)]
pub struct BmcTarget {
    /// CloudStack host name.
    pub host_name: String,
    /// CloudStack host uuid.
    pub host_uuid: String,
    /// Host IP.
    pub host_ip: String,
    /// BMC address.
    pub address: String,
    /// BMC port.
    pub port: u16,
    /// BMC user.
    pub username: String,
    /// BMC password.
    pub password: Option<SecretString>,
    /// BMC key Kg, hex.
    pub kg_hex: Option<SecretString>,
}

/// A successful answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAnswer {
    /// Power state read.
    State(PowerReading),
    /// The command was accepted.
    Accepted,
}

/// Why a power operation failed. Messages never contain a secret.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PowerError {
    /// No answer / connection refused.
    #[error("BMC unreachable: {0}")]
    Unreachable(String),
    /// Credentials refused.
    #[error("BMC refused the credentials: {0}")]
    AuthFailed(String),
    /// The BMC refused the command.
    #[error("BMC rejected the command: {0}")]
    Rejected(String),
    /// Deadline passed.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The request comes from an older coordinator epoch than one already seen.
    #[error("request of coordinator epoch {epoch} refused: epoch {current} already acts")]
    StaleEpoch {
        /// The request's epoch.
        epoch: u32,
        /// The highest epoch seen.
        current: u32,
    },
    /// The driver is not configured for this host.
    #[error("power driver not configured: {0}")]
    Config(String),
    /// This instance may not act now (standby, not quorate, stale fencing
    /// epoch, take-over grace): checked right before the BMC is touched.
    #[error("power action not authorized: {0}")]
    NotAuthorized(String),
}

impl PowerError {
    /// The core's classification.
    pub fn failure(&self) -> PowerFailure {
        match self {
            PowerError::Unreachable(_) | PowerError::Config(_) => PowerFailure::Unreachable,
            PowerError::AuthFailed(_) => PowerFailure::AuthFailed,
            PowerError::Rejected(_)
            | PowerError::StaleEpoch { .. }
            | PowerError::NotAuthorized(_) => PowerFailure::Rejected,
            PowerError::Timeout(_) => PowerFailure::Timeout,
        }
    }
    /// The core's reading for a failed status read.
    pub fn reading(&self) -> PowerReading {
        PowerReading::Unreachable
    }
}

/// Refuses requests from an epoch older than the newest seen.
#[derive(Debug, Default)]
pub struct EpochGuard {
    highest: AtomicU32,
}

impl EpochGuard {
    /// Admits `epoch` if it is not older than any admitted before.
    pub fn admit(&self, epoch: u32) -> Result<(), PowerError> {
        let prev = self.highest.fetch_max(epoch, Ordering::SeqCst);
        if epoch < prev {
            Err(PowerError::StaleEpoch {
                epoch,
                current: prev,
            })
        } else {
            Ok(())
        }
    }
}

/// One way of controlling chassis power.
pub trait PowerDriver: Send + Sync {
    /// Short name for logs (`ipmi`, `fence-agent`, `script`).
    fn name(&self) -> &'static str;
    /// Carries out `req` on `target`, blocking until done or the deadline.
    fn execute(&self, target: &BmcTarget, req: &PowerRequest) -> Result<PowerAnswer, PowerError>;
}

/// In-process IPMI-over-LAN (RMCP+), one session per operation.
#[derive(Debug)]
pub struct IpmiDriver {
    /// Cipher suite.
    pub cipher_suite: u8,
    /// Privilege.
    pub privilege: ipmi_lan::Privilege,
    /// Retransmit interval.
    pub retransmit: Duration,
    /// Epoch check.
    pub guard: EpochGuard,
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl PowerDriver for IpmiDriver {
    fn name(&self) -> &'static str {
        "ipmi"
    }

    fn execute(&self, target: &BmcTarget, req: &PowerRequest) -> Result<PowerAnswer, PowerError> {
        self.guard.admit(req.epoch)?;
        let password = target.password.as_ref().ok_or_else(|| {
            PowerError::Config(format!(
                "no BMC password for {} in the secrets file",
                target.host_name
            ))
        })?;
        let mut opts = ipmi_lan::ConnectOptions::new(
            target.address.clone(),
            target.username.clone(),
            ipmi_lan::Secret::new(password.expose().as_bytes().to_vec()),
        );
        opts.port = target.port;
        opts.cipher_suite = self.cipher_suite;
        opts.privilege = self.privilege;
        opts.retransmit_interval = self.retransmit;
        if let Some(kg) = &target.kg_hex {
            let bytes = decode_hex(kg.expose()).ok_or_else(|| {
                PowerError::Config(format!("the Kg of {} is not hexadecimal", target.host_name))
            })?;
            opts.kg = Some(ipmi_lan::Secret::new(bytes));
        }
        let classify = |e: ipmi_lan::IpmiError| {
            let m = e.to_string();
            if e.is_auth_failure() {
                PowerError::AuthFailed(m)
            } else if e.is_timeout() {
                PowerError::Timeout(m)
            } else if e.is_unreachable() {
                PowerError::Unreachable(m)
            } else {
                PowerError::Rejected(m)
            }
        };
        let mut session = ipmi_lan::Session::open(&opts, req.deadline).map_err(classify)?;
        let result = match req.op {
            PowerOp::Status => session.power_state(req.deadline).map(|s| {
                PowerAnswer::State(match s {
                    ipmi_lan::PowerState::On => PowerReading::On,
                    ipmi_lan::PowerState::Off => PowerReading::Off,
                })
            }),
            op => {
                let c = match op {
                    PowerOp::Off => ipmi_lan::ChassisControl::PowerDown,
                    PowerOp::On => ipmi_lan::ChassisControl::PowerUp,
                    _ => ipmi_lan::ChassisControl::PowerCycle,
                };
                session
                    .chassis_control(c, req.deadline)
                    .map(|()| PowerAnswer::Accepted)
            }
        };
        let _ = session.close();
        result.map_err(classify)
    }
}

/// Runs a program with stdin lines and a deadline; returns (status, stdout).
fn run_with_stdin(
    program: &PathBuf,
    stdin_text: &str,
    deadline: Instant,
) -> Result<(i32, String), PowerError> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| PowerError::Config(format!("cannot run {}: {e}", program.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(stdin_text.as_bytes());
    }
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(out) = stdout.as_mut() {
            let _ = std::io::Read::read_to_string(out, &mut s);
        }
        let mut e = String::new();
        if let Some(err) = stderr.as_mut() {
            let _ = std::io::Read::read_to_string(err, &mut e);
        }
        // stdout, then the last meaningful stderr line (the agent's cause).
        let cause = e
            .lines()
            .rev()
            .find(|l| {
                !l.trim().is_empty()
                    && !l.contains("Warning")
                    && !l.trim_start().starts_with("from ")
            })
            .unwrap_or("")
            .trim()
            .to_string();
        (s, cause)
    });
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let (out, cause) = reader.join().unwrap_or_default();
                let out = if status.success() {
                    out
                } else {
                    format!("{out}{cause}")
                };
                return Ok((status.code().unwrap_or(1), out));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.wait();
                return Err(PowerError::Timeout(format!(
                    "{} did not finish in time and was killed",
                    program.display()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                return Err(PowerError::Rejected(format!(
                    "waiting for {}: {e}",
                    program.display()
                )))
            }
        }
    }
}

/// Any installed `fence_*` agent, options on stdin (never argv, so no
/// password in `ps`).
#[derive(Debug)]
pub struct FenceAgentDriver {
    /// The agent (name on PATH or a path).
    pub agent: PathBuf,
    /// Extra options.
    pub options: Vec<(String, String)>,
    /// Epoch check.
    pub guard: EpochGuard,
}

impl PowerDriver for FenceAgentDriver {
    fn name(&self) -> &'static str {
        "fence-agent"
    }

    fn execute(&self, target: &BmcTarget, req: &PowerRequest) -> Result<PowerAnswer, PowerError> {
        self.guard.admit(req.epoch)?;
        let mut s = format!(
            "action={}\nip={}\nipport={}\nusername={}\n",
            req.op.action(),
            target.address,
            target.port,
            target.username
        );
        if let Some(p) = &target.password {
            s.push_str(&format!("password={}\n", p.expose()));
        }
        let left = req.deadline.saturating_duration_since(Instant::now());
        s.push_str(&format!("power_timeout={}\n", left.as_secs().max(1)));
        for (k, v) in &self.options {
            s.push_str(&format!("{k}={v}\n"));
        }
        let (code, out) = run_with_stdin(&self.agent, &s, req.deadline)?;
        match (req.op, code) {
            (PowerOp::Status, 0) => Ok(PowerAnswer::State(PowerReading::On)),
            (PowerOp::Status, 2) => Ok(PowerAnswer::State(PowerReading::Off)),
            (_, 0) => Ok(PowerAnswer::Accepted),
            (_, c) => Err(PowerError::Rejected(format!(
                "{} exited {c}: {}",
                self.agent.display(),
                out.lines().last().unwrap_or("")
            ))),
        }
    }
}

/// An operator script (contract in the module docs).
#[derive(Debug)]
pub struct ScriptDriver {
    /// The script.
    pub script: PathBuf,
    /// Epoch check.
    pub guard: EpochGuard,
}

impl PowerDriver for ScriptDriver {
    fn name(&self) -> &'static str {
        "script"
    }

    fn execute(&self, target: &BmcTarget, req: &PowerRequest) -> Result<PowerAnswer, PowerError> {
        self.guard.admit(req.epoch)?;
        let action = match req.op {
            PowerOp::Cycle => "cycle",
            op => op.action(),
        };
        let mut s = format!(
            "action={action}\nhost={}\nhost_id={}\nip={}\nbmc_address={}\nbmc_port={}\nbmc_username={}\nepoch={}\n",
            target.host_name, target.host_uuid, target.host_ip, target.address, target.port, target.username, req.epoch
        );
        if let Some(p) = &target.password {
            s.push_str(&format!("bmc_password={}\n", p.expose()));
        }
        let (code, out) = run_with_stdin(&self.script, &s, req.deadline)?;
        let what = format!("{} exited {code}", self.script.display());
        match code {
            0 if req.op == PowerOp::Status => {
                match out
                    .split_whitespace()
                    .next()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("on") => Ok(PowerAnswer::State(PowerReading::On)),
                    Some("off") => Ok(PowerAnswer::State(PowerReading::Off)),
                    _ => Ok(PowerAnswer::State(PowerReading::Unknown)),
                }
            }
            0 => Ok(PowerAnswer::Accepted),
            2 => Err(PowerError::AuthFailed(what)),
            3 => Err(PowerError::Unreachable(what)),
            _ => Err(PowerError::Rejected(what)),
        }
    }
}

/// In-process Redfish over HTTPS, one login (session or basic auth) per
/// operation, on the same client as `fence_redfish`: off is `ForceOff`, on is
/// `On`, a cycle `ForceRestart`; a reset the BMC answers "already in that
/// state" counts only after a status read confirmed it (the client does that).
#[derive(Debug)]
pub struct RedfishDriver {
    /// CA certificates trusted besides the system store.
    pub ca_file: Option<PathBuf>,
    /// The system's resource path; `None` = the service's only system, or the
    /// one whose Id or Name is the host's name.
    pub systems_uri: Option<String>,
    /// Epoch check.
    pub guard: EpochGuard,
}

impl PowerDriver for RedfishDriver {
    fn name(&self) -> &'static str {
        "redfish"
    }

    fn execute(&self, target: &BmcTarget, req: &PowerRequest) -> Result<PowerAnswer, PowerError> {
        self.guard.admit(req.epoch)?;
        let password = target.password.as_ref().ok_or_else(|| {
            PowerError::Config(format!(
                "no BMC password for {} in the secrets file",
                target.host_name
            ))
        })?;
        let config = redfish::Config {
            host: target.address.clone(),
            port: target.port,
            service_root: "/redfish/v1".into(),
            username: target.username.clone(),
            password: zeroize::Zeroizing::new(password.expose().to_string()),
            tls: redfish::Tls::Verify {
                ca_file: self.ca_file.clone(),
            },
            auth: redfish::AuthMode::Auto,
            on_secret: None,
        };
        let classify = |e: redfish::RedfishError| {
            let m = e.to_string();
            match e {
                redfish::RedfishError::LoginDenied { .. } => PowerError::AuthFailed(m),
                redfish::RedfishError::TimedOut { .. } => PowerError::Timeout(m),
                // An unverified BMC identity is never acted on.
                redfish::RedfishError::Unreachable { .. }
                | redfish::RedfishError::Tls { .. }
                | redfish::RedfishError::CaFile { .. } => PowerError::Unreachable(m),
                _ => PowerError::Rejected(m),
            }
        };
        let mut client = redfish::Client::connect(&config, req.deadline).map_err(classify)?;
        let uri = match client.select_system(
            self.systems_uri.as_deref(),
            Some(&target.host_name),
            req.deadline,
        ) {
            Ok(uri) => uri,
            Err(e) => {
                let _ = client.close(req.deadline);
                return Err(classify(e));
            }
        };
        // Every path ends the login (a Redfish session is deleted), also on error.
        let result = match req.op {
            PowerOp::Off | PowerOp::On => {
                let mut power = client.power(uri);
                let r = if req.op == PowerOp::Off {
                    power.power_off(req.deadline)
                } else {
                    power.power_on(req.deadline)
                };
                let _ = power.close(req.deadline);
                // Accepted, or "already" confirmed by a read: the core reads back anyway.
                return r.map(|_| PowerAnswer::Accepted).map_err(classify);
            }
            PowerOp::Status => client.system_power(&uri, req.deadline).map(|p| {
                PowerAnswer::State(match p.state {
                    redfish::PowerState::On => PowerReading::On,
                    redfish::PowerState::Off => PowerReading::Off,
                    // PoweringOff/On and the rest are never read as done.
                    _ => PowerReading::Unknown,
                })
            }),
            PowerOp::Cycle => client
                .system_power(&uri, req.deadline)
                .and_then(|power| client.reset(&uri, &power, "ForceRestart", req.deadline))
                .map(|_| PowerAnswer::Accepted),
        };
        let _ = client.close(req.deadline);
        result.map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_guard_refuses_older_epochs() {
        let g = EpochGuard::default();
        assert!(g.admit(3).is_ok());
        assert!(g.admit(3).is_ok());
        assert_eq!(
            g.admit(2),
            Err(PowerError::StaleEpoch {
                epoch: 2,
                current: 3
            })
        );
        assert!(g.admit(4).is_ok());
    }

    #[test]
    fn hex_kg() {
        assert_eq!(decode_hex("0a0B"), Some(vec![10, 11]));
        assert_eq!(decode_hex("0x01"), Some(vec![1]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
