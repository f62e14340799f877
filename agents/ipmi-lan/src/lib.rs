//! IPMI-over-LAN client sessions: one authenticated session to a BMC (RMCP+
//! "lanplus" with cipher suites 2/3/17, 0/1 only when unauthenticated
//! answers are allowed, Kg and an explicit privilege level, or IPMI 1.5
//! "lan"), chassis power status and control, always closed.
//!
//! ipmi-rs 0.6 supplies the message, NetFn and completion-code types and the
//! Get Channel Authentication Capabilities parser; the session layer is ours
//! because ipmi-rs cannot be parameterised (cipher suite 3 only, no Kg, fixed
//! administrator privilege, an IPMI 1.5 reply check that includes the length
//! byte in the MD5 input and so always fails, no Close Session on drop).
//!
//! Behaviour worth knowing:
//! - One session per [`Session::open`]: Get Channel Authentication
//!   Capabilities, Open Session, RAKP 1/2, RAKP 3/4, Set Session Privilege
//!   (skipped at User level): 5 request/response pairs, then one pair per
//!   command and one for Close Session. A status query is 14 UDP packets, a
//!   whole reboot (status, off, status, on, status) 22; fence_ipmilan needs
//!   110 for the reboot.
//! - Every request is retransmitted each `retransmit_interval` until the
//!   caller's deadline. Replies are matched by request sequence number,
//!   command, session id, auth code / integrity MAC (compared in constant
//!   time) and a replay window (the session sequence number must exceed the
//!   last accepted one); anything else is ignored and logged at debug level.
//! - Nothing unauthenticated decides anything when the session is meant to
//!   be authenticated: cipher suites 0 and 1, IPMI 1.5 with per-message
//!   authentication disabled, and auth type none not asked for are refused
//!   unless [`ConnectOptions::allow_unauthenticated`]; straight password is
//!   used only when asked for; the Activate Session reply must carry a valid
//!   auth code. An error answer that carries no authentication (an RMCP+
//!   status, a completion code before the session) is kept while the step
//!   goes on, and reported as [`IpmiError::Unverified`] only at the deadline.
//!   A RAKP reply whose key exchange code does not verify waits at most
//!   250 ms for a genuine one before a wrong password / Kg is reported.
//! - A BMC that answered Get Channel Authentication Capabilities but stays
//!   silent for three Open Session (or IPMI 1.5 Activate Session) attempts
//!   is reported at once ([`IpmiError::OpenSessionIgnored`],
//!   [`IpmiError::WrongPassword`]) instead of waiting for the deadline:
//!   ipmi_sim drops unsupported cipher suites, requests beyond its 63
//!   session slots, and IPMI 1.5 requests with a bad auth code silently.
//! - Close Session runs on its own short budget (two retransmit intervals,
//!   100 ms to 2 s), also from `Drop` and after a failed command, because it
//!   must happen even when the caller's deadline has passed.
//! - RAKP 1 asks for the privilege explicitly with the name-only lookup
//!   bit, as ipmitool does. Note that OpenIPMI's ipmi_sim 2.0.33 then grants
//!   levels above the account's limit (seen: a `user` account got operator
//!   and could power off, an `operator` got administrator; ipmitool gets the
//!   same); it enforces the limit for IPMI 1.5 and for username/privilege
//!   lookup only.
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use ipmi_lan::{ConnectOptions, Session, PowerState};
//! let opts = ConnectOptions::new("127.0.0.1", "admin", "secret".into());
//! let deadline = Instant::now() + Duration::from_secs(10);
//! let mut s = Session::open(&opts, deadline)?;
//! let on = s.power_state(deadline)? == PowerState::On;
//! s.close()?;
//! # Ok::<(), ipmi_lan::IpmiError>(())
//! ```

use std::str::FromStr;
use std::time::Duration;

pub mod crypto;
mod error;
mod lifecycle;
mod message;
mod secret;
mod session;
mod transport;
mod v15;
mod v20;

pub use error::{
    completion_code_meaning, rmcp_plus_status_meaning, step_completion_code_meaning, IpmiError,
    Step,
};
pub use lifecycle::{Phase, PhaseEvent};
pub use secret::Secret;
pub use session::Session;

/// The default RMCP port.
pub const DEFAULT_PORT: u16 = 623;

/// Which IPMI LAN protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// IPMI 1.5 ("lan", ipmitool `-I lan`).
    Lan15,
    /// IPMI 2.0 RMCP+ ("lanplus", ipmitool `-I lanplus`).
    LanPlus,
}

/// Session privilege level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Privilege {
    /// Callback (1).
    Callback,
    /// User (2): read-only; cannot control power.
    User,
    /// Operator (3): enough for chassis control.
    Operator,
    /// Administrator (4).
    Administrator,
}

impl Privilege {
    /// The IPMI encoding (1..=4).
    pub fn code(self) -> u8 {
        match self {
            Privilege::Callback => 1,
            Privilege::User => 2,
            Privilege::Operator => 3,
            Privilege::Administrator => 4,
        }
    }

    /// Decodes the IPMI encoding.
    pub fn from_code(code: u8) -> Option<Privilege> {
        match code & 0x0f {
            1 => Some(Privilege::Callback),
            2 => Some(Privilege::User),
            3 => Some(Privilege::Operator),
            4 => Some(Privilege::Administrator),
            _ => None,
        }
    }
}

impl std::fmt::Display for Privilege {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Privilege::Callback => "callback",
            Privilege::User => "user",
            Privilege::Operator => "operator",
            Privilege::Administrator => "administrator",
        })
    }
}

/// Error for an unknown privilege level / authentication type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?} (expected one of: {expected})")]
pub struct ParseNameError {
    what: &'static str,
    given: String,
    expected: &'static str,
}

impl FromStr for Privilege {
    type Err = ParseNameError;

    /// Accepts fence_ipmilan's `privlvl` values (case-insensitive) and
    /// ipmitool's short forms.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "callback" => Ok(Privilege::Callback),
            "user" => Ok(Privilege::User),
            "operator" => Ok(Privilege::Operator),
            "administrator" | "admin" => Ok(Privilege::Administrator),
            _ => Err(ParseNameError {
                what: "privilege level",
                given: s.to_string(),
                expected: "callback, user, operator, administrator",
            }),
        }
    }
}

/// IPMI 1.5 authentication type (fence_ipmilan `auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// No authentication code.
    None,
    /// MD5 digest of password, session and message.
    Md5,
    /// The password in clear ("straight password / key").
    Password,
}

impl AuthType {
    pub(crate) fn code(self) -> u8 {
        match self {
            AuthType::None => 0,
            AuthType::Md5 => 2,
            AuthType::Password => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<AuthType> {
        match code {
            0 => Some(AuthType::None),
            2 => Some(AuthType::Md5),
            4 => Some(AuthType::Password),
            _ => None,
        }
    }
}

impl FromStr for AuthType {
    type Err = ParseNameError;

    /// Accepts fence_ipmilan's `auth` values: md5, password, none.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "md5" => Ok(AuthType::Md5),
            "password" | "straight" => Ok(AuthType::Password),
            "none" => Ok(AuthType::None),
            _ => Err(ParseNameError {
                what: "authentication type",
                given: s.to_string(),
                expected: "md5, password, none",
            }),
        }
    }
}

impl std::fmt::Display for AuthType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthType::None => "none",
            AuthType::Md5 => "md5",
            AuthType::Password => "password",
        })
    }
}

/// Everything needed to open a session.
#[derive(Debug)]
pub struct ConnectOptions {
    /// BMC host: a name, an IPv4 literal or an IPv6 literal (brackets allowed).
    pub host: String,
    /// UDP port, normally 623.
    pub port: u16,
    /// IPMI 1.5 or 2.0.
    pub interface: Interface,
    /// User name (at most 16 bytes; empty = anonymous/null user).
    pub username: String,
    /// Password (at most 20 bytes for lanplus, 16 for IPMI 1.5).
    pub password: Secret,
    /// BMC key Kg as raw bytes (at most 20; lanplus only). The caller decodes
    /// fence_ipmilan's `hexadecimal_kg`.
    pub kg: Option<Secret>,
    /// Privilege level asked for the session.
    pub privilege: Privilege,
    /// RMCP+ cipher suite: 0, 1, 2, 3 or 17 (ignored for IPMI 1.5).
    pub cipher_suite: u8,
    /// Allow sessions whose answers cannot be authenticated: cipher suite 0
    /// (no authentication at all: any password works) and 1 (no integrity
    /// after login), IPMI 1.5 with per-message authentication disabled, and
    /// IPMI 1.5 authentication type none chosen without being asked for.
    /// Without it these are refused ([`IpmiError::CipherZeroRefused`],
    /// [`IpmiError::UnauthenticatedSessionRefused`]).
    pub allow_unauthenticated: bool,
    /// IPMI 1.5 authentication type; `None` = MD5 if the BMC offers it
    /// (none only with `allow_unauthenticated`; straight password, which
    /// sends the password in clear, only when asked for).
    pub auth_type: Option<AuthType>,
    /// Wait this long for a reply before sending a request again.
    pub retransmit_interval: Duration,
    /// IPMB address to bridge chassis commands to (ipmitool `-t`): they are
    /// wrapped in Send Message on channel 0 with response tracking. Session
    /// set-up and Close Session stay with the BMC.
    pub target: Option<u8>,
}

impl ConnectOptions {
    /// Options with the usual defaults: port 623, lanplus, cipher suite 3,
    /// administrator, no Kg, 1 s retransmit interval, no bridging.
    pub fn new(host: impl Into<String>, username: impl Into<String>, password: Secret) -> Self {
        ConnectOptions {
            host: host.into(),
            port: DEFAULT_PORT,
            interface: Interface::LanPlus,
            username: username.into(),
            password,
            kg: None,
            privilege: Privilege::Administrator,
            cipher_suite: 3,
            allow_unauthenticated: false,
            auth_type: None,
            retransmit_interval: Duration::from_secs(1),
            target: None,
        }
    }
}

/// Chassis power as reported by Get Chassis Status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    /// Power is on.
    On,
    /// Power is off.
    Off,
}

/// A Chassis Control operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChassisControl {
    /// Power down (hard off).
    PowerDown,
    /// Power up.
    PowerUp,
    /// Power cycle (off, then on after a BMC-defined delay).
    PowerCycle,
    /// Hard reset (power stays on).
    HardReset,
    /// Pulse a diagnostic interrupt (NMI), fence_ipmilan's `diag`.
    Diag,
    /// Soft shutdown via ACPI.
    SoftShutdown,
}

impl ChassisControl {
    /// The Chassis Control request data byte.
    pub fn code(self) -> u8 {
        match self {
            ChassisControl::PowerDown => 0x00,
            ChassisControl::PowerUp => 0x01,
            ChassisControl::PowerCycle => 0x02,
            ChassisControl::HardReset => 0x03,
            ChassisControl::Diag => 0x04,
            ChassisControl::SoftShutdown => 0x05,
        }
    }
}

/// UDP packets exchanged by a session so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketStats {
    /// Datagrams sent (including retransmissions).
    pub sent: u64,
    /// Datagrams received (including stray or duplicate ones).
    pub received: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_parses_fence_ipmilan_values() {
        for (s, p) in [
            ("callback", Privilege::Callback),
            ("user", Privilege::User),
            ("OPERATOR", Privilege::Operator),
            ("administrator", Privilege::Administrator),
            ("ADMINISTRATOR", Privilege::Administrator),
        ] {
            assert_eq!(s.parse::<Privilege>().unwrap(), p);
            assert_eq!(Privilege::from_code(p.code()), Some(p));
        }
        assert!("root".parse::<Privilege>().is_err());
    }

    #[test]
    fn auth_type_parses_fence_ipmilan_values() {
        assert_eq!("MD5".parse::<AuthType>().unwrap(), AuthType::Md5);
        assert_eq!("password".parse::<AuthType>().unwrap(), AuthType::Password);
        assert_eq!("none".parse::<AuthType>().unwrap(), AuthType::None);
        assert!("md2".parse::<AuthType>().is_err());
        for a in [AuthType::None, AuthType::Md5, AuthType::Password] {
            assert_eq!(AuthType::from_code(a.code()), Some(a));
        }
    }
}
