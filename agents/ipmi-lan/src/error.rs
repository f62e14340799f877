//! Typed errors that name the real cause for the operator (never a secret).

use std::net::SocketAddr;
use std::time::Duration;

use crate::Privilege;

/// The protocol step a request belonged to, for error messages and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Get Channel Authentication Capabilities (before any session).
    GetChannelAuthCapabilities,
    /// RMCP+ Open Session request/response.
    OpenSession,
    /// RAKP message 1 / 2.
    Rakp1,
    /// RAKP message 3 / 4.
    Rakp3,
    /// IPMI 1.5 Get Session Challenge.
    GetSessionChallenge,
    /// IPMI 1.5 Activate Session.
    ActivateSession,
    /// Set Session Privilege Level.
    SetSessionPrivilege,
    /// Get Chassis Status.
    GetChassisStatus,
    /// Chassis Control.
    ChassisControl,
    /// Send Message (IPMB bridging).
    SendMessage,
    /// Close Session.
    CloseSession,
    /// A raw command sent through [`crate::Session::command`].
    Command {
        /// Network function.
        netfn: u8,
        /// Command number.
        cmd: u8,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::GetChannelAuthCapabilities => {
                f.write_str("Get Channel Authentication Capabilities")
            }
            Step::OpenSession => f.write_str("RMCP+ Open Session"),
            Step::Rakp1 => f.write_str("RAKP 1/2"),
            Step::Rakp3 => f.write_str("RAKP 3/4"),
            Step::GetSessionChallenge => f.write_str("Get Session Challenge"),
            Step::ActivateSession => f.write_str("Activate Session"),
            Step::SetSessionPrivilege => f.write_str("Set Session Privilege Level"),
            Step::GetChassisStatus => f.write_str("Get Chassis Status"),
            Step::ChassisControl => f.write_str("Chassis Control"),
            Step::SendMessage => f.write_str("Send Message (bridging)"),
            Step::CloseSession => f.write_str("Close Session"),
            Step::Command { netfn, cmd } => {
                write!(f, "command netfn 0x{netfn:02x} cmd 0x{cmd:02x}")
            }
        }
    }
}

/// Everything that can go wrong talking to a BMC.
///
/// Messages never contain the password or the Kg.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpmiError {
    /// The options cannot work (too long user name, port 0, ...).
    #[error("invalid IPMI options: {0}")]
    InvalidOptions(String),

    /// The host name did not resolve.
    #[error("cannot resolve BMC host {host:?}: {detail}")]
    Resolve {
        /// The name as given.
        host: String,
        /// Resolver message.
        detail: String,
    },

    /// ICMP port/host unreachable, connection refused, no route.
    #[error("BMC {addr} unreachable during {step}: {source}")]
    Unreachable {
        /// Address tried.
        addr: SocketAddr,
        /// Step that failed.
        step: Step,
        /// The OS error.
        source: std::io::Error,
    },

    /// No (valid) answer before the deadline.
    #[error("BMC {addr} did not answer {step} within {elapsed:?} ({attempts} attempt(s))")]
    Timeout {
        /// Address tried.
        addr: SocketAddr,
        /// Step that timed out.
        step: Step,
        /// Time spent on this step.
        elapsed: Duration,
        /// Packets sent for this step.
        attempts: u32,
    },

    /// The BMC does not know this user name.
    #[error("BMC rejected user name {username:?} (unknown user)")]
    UnknownUser {
        /// The user name (not a secret).
        username: String,
    },

    /// The password does not match the user's.
    #[error("wrong password for user {username:?} ({detail})")]
    WrongPassword {
        /// The user name.
        username: String,
        /// How it was detected.
        detail: &'static str,
    },

    /// The BMC key Kg does not match the BMC's.
    #[error("wrong or missing BMC key (Kg): {detail}")]
    WrongKg {
        /// How it was detected.
        detail: &'static str,
    },

    /// The BMC refused the requested privilege level.
    #[error("privilege level {requested} refused for user {username:?}: {detail}")]
    PrivilegeRefused {
        /// What was asked.
        requested: Privilege,
        /// The user name.
        username: String,
        /// The BMC's reason.
        detail: String,
    },

    /// The BMC does not support the requested cipher suite.
    #[error("cipher suite {suite} not supported by the BMC: {detail}")]
    CipherSuiteUnsupported {
        /// Requested suite.
        suite: u8,
        /// BMC's reason.
        detail: String,
    },

    /// The BMC answers outside a session but ignores Open Session.
    #[error("BMC answered Get Channel Authentication Capabilities but ignored {attempts} Open Session request(s) for cipher suite {suite}: it does not support that suite, or it has no free session slot")]
    OpenSessionIgnored {
        /// Requested suite.
        suite: u8,
        /// Requests sent.
        attempts: u32,
    },

    /// Cipher suite 0 (no authentication at all) was asked but not allowed.
    #[error("cipher suite 0 (no authentication, any password accepted) refused; allow it explicitly if you really want it")]
    CipherZeroRefused,

    /// A session whose answers could not be authenticated (cipher suite 1, IPMI 1.5 with
    /// per-message authentication disabled or authentication type none, straight password
    /// chosen without being asked for) was refused: anyone on the network could forge them.
    #[error("refusing an IPMI session whose answers cannot be authenticated: {detail}; set allow_unauthenticated (fence_ipmi: allow_unauthenticated=1, alias allow_cipher_zero=1) only if you accept that anyone on the network can forge the BMC's answers")]
    UnauthenticatedSessionRefused {
        /// What made it unauthenticated.
        detail: String,
    },

    /// The only answer to a login step was an error status that carries no authentication
    /// (RMCP+ Open Session / RAKP status, IPMI 1.5 completion code before the session): it
    /// may have been forged, and no authenticated answer came before the deadline.
    #[error("{source} [unauthenticated answer to {step}, possibly forged: no authenticated answer came before the deadline]")]
    Unverified {
        /// Step the error answered.
        step: Step,
        /// The error the answer carried.
        source: Box<IpmiError>,
    },

    /// This crate does not know the cipher suite.
    #[error("cipher suite {0} is not implemented (supported: 0, 1, 2, 3, 17)")]
    CipherSuiteUnknown(u8),

    /// The BMC offers no IPMI 1.5 authentication type we can use.
    #[error("BMC offers no usable IPMI 1.5 authentication type ({detail})")]
    AuthTypeUnsupported {
        /// What was offered / asked.
        detail: String,
    },

    /// The BMC does not do IPMI 2.0 (lanplus).
    #[error("BMC does not support IPMI 2.0 / RMCP+ (lanplus); try IPMI 1.5 (lan)")]
    LanPlusUnsupported,

    /// The BMC has no free session slot.
    #[error("BMC has no free session slot ({step})")]
    NoSessionSlot {
        /// Step that failed.
        step: Step,
    },

    /// The BMC answered a command with a non-zero completion code.
    #[error("BMC refused {step}: completion code 0x{code:02x} ({meaning})")]
    CommandRefused {
        /// Step (command) refused.
        step: Step,
        /// Completion code.
        code: u8,
        /// Human meaning of the code.
        meaning: String,
    },

    /// RMCP+ status code not covered by a more precise variant.
    #[error("BMC rejected {step}: RMCP+ status 0x{status:02x} ({meaning})")]
    RmcpPlusStatus {
        /// Step.
        step: Step,
        /// Status code.
        status: u8,
        /// Meaning.
        meaning: &'static str,
    },

    /// Malformed or inconsistent reply.
    #[error("protocol error during {step}: {detail}")]
    Protocol {
        /// Step.
        step: Step,
        /// What was wrong.
        detail: String,
    },

    /// Any other socket error.
    #[error("network I/O error during {step}: {source}")]
    Io {
        /// Step.
        step: Step,
        /// OS error.
        source: std::io::Error,
    },

    /// A feature this crate does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl IpmiError {
    /// True when the BMC did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, IpmiError::Timeout { .. })
    }

    /// The error an unverified answer carried, or this error itself.
    pub fn claimed(&self) -> &IpmiError {
        match self {
            IpmiError::Unverified { source, .. } => source.claimed(),
            e => e,
        }
    }

    /// True when the BMC could not be reached at all (refused, no route,
    /// name not resolved).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            IpmiError::Unreachable { .. } | IpmiError::Resolve { .. }
        )
    }

    /// True for credential problems (user, password, Kg, privilege).
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self.claimed(),
            IpmiError::UnknownUser { .. }
                | IpmiError::WrongPassword { .. }
                | IpmiError::WrongKg { .. }
                | IpmiError::PrivilegeRefused { .. }
        )
    }

    /// True for errors in the caller's options, detected before any packet.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            IpmiError::InvalidOptions(_)
                | IpmiError::CipherZeroRefused
                | IpmiError::UnauthenticatedSessionRefused { .. }
                | IpmiError::CipherSuiteUnknown(_)
                | IpmiError::Unsupported(_)
        )
    }

    /// True when another cipher suite might work: the BMC refused the
    /// proposal, or ignored Open Session altogether (which some BMCs, like
    /// ipmi_sim, do for suites they lack, and also when they are full).
    pub fn is_cipher_suite_rejection(&self) -> bool {
        matches!(
            self.claimed(),
            IpmiError::CipherSuiteUnsupported { .. } | IpmiError::OpenSessionIgnored { .. }
        )
    }

    /// The completion code when the BMC refused a command.
    pub fn completion_code(&self) -> Option<u8> {
        match self {
            IpmiError::CommandRefused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Meaning of an IPMI completion code (generic codes from the spec, and
/// ipmi-rs' classification for the rest).
pub fn completion_code_meaning(code: u8) -> String {
    use ipmi_rs::connection::CompletionErrorCode as C;
    let s = match code {
        0x00 => "success",
        0xC0 => "node busy",
        0xC1 => "invalid command",
        0xC2 => "command invalid for given LUN",
        0xC3 => "timeout while processing command",
        0xC4 => "out of space",
        0xC5 => "reservation cancelled or invalid",
        0xC6 => "request data truncated",
        0xC7 => "request data length invalid",
        0xC8 => "request data field length limit exceeded",
        0xC9 => "parameter out of range",
        0xCA => "cannot return number of requested data bytes",
        0xCB => "requested sensor, data or record not present",
        0xCC => "invalid data field in request",
        0xCD => "command illegal for specified sensor or record type",
        0xCE => "command response could not be provided",
        0xCF => "cannot execute duplicated request",
        0xD0 => "SDR repository in update mode",
        0xD1 => "device in firmware update mode",
        0xD2 => "BMC initialization in progress",
        0xD3 => "destination unavailable",
        0xD4 => "insufficient privilege level",
        0xD5 => "command not supported in present state",
        0xD6 => "command sub-function disabled or unavailable",
        0xFF => "unspecified error",
        _ => {
            return match C::try_from(code) {
                Ok(C::Oem(_)) => "OEM-specific code".to_string(),
                Ok(C::CommandSpecific(_)) => "command-specific code".to_string(),
                _ => "reserved code".to_string(),
            }
        }
    };
    s.to_string()
}

/// Meaning of a completion code for one step, including the
/// command-specific codes of the commands this crate sends.
pub fn step_completion_code_meaning(step: Step, code: u8) -> String {
    let specific = match (step, code) {
        (Step::SendMessage, 0x80) => "invalid session handle",
        (Step::SendMessage, 0x81) => "lost arbitration on the IPMB",
        (Step::SendMessage, 0x82) => "IPMB bus error",
        (Step::SendMessage, 0x83) => "NAK on write: no device at the target address",
        (Step::SetSessionPrivilege, 0x80) => "level not available for this user",
        (Step::SetSessionPrivilege, 0x81) => "level exceeds the user's or channel's limit",
        (Step::SetSessionPrivilege, 0x82) => "cannot disable user level authentication",
        (Step::CloseSession, 0x87) => "invalid session ID",
        (Step::CloseSession, 0x88) => "invalid session handle",
        (Step::GetSessionChallenge, 0x81) => "invalid user name",
        (Step::GetSessionChallenge, 0x82) => "null user name not enabled",
        (Step::ActivateSession, 0x81) => "no session slot available",
        (Step::ActivateSession, 0x82) => "no slot available for the given user",
        (Step::ActivateSession, 0x83) => {
            "no slot available to support the user at the requested privilege"
        }
        (Step::ActivateSession, 0x84) => "session sequence number out of range",
        (Step::ActivateSession, 0x85) => "invalid session ID in request",
        (Step::ActivateSession, 0x86) => {
            "requested maximum privilege exceeds the user or channel limit"
        }
        _ => return completion_code_meaning(code),
    };
    specific.to_string()
}

/// Meaning of an RMCP+ / RAKP status code (IPMI 2.0 table 13-15).
pub fn rmcp_plus_status_meaning(status: u8) -> &'static str {
    match status {
        0x00 => "no errors",
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session ID",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session ID",
        0x09 => "invalid role",
        0x0A => "unauthorized role or privilege level requested",
        0x0B => "insufficient resources to create a session at the requested role",
        0x0C => "invalid name length",
        0x0D => "unauthorized name",
        0x0E => "unauthorized GUID",
        0x0F => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "reserved status code",
    }
}
