//! What an agent implements: a [`FenceAgent`] (its parameter table, documentation, option
//! checks and how to open a session) and a [`PowerSession`] that lives for the whole action,
//! so every command of e.g. a reboot (status, off, status, on, status) uses one connection.

use std::fmt;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::metadata::AgentDocs;
use crate::options::{Action, Options, Timing, UsageError};
use crate::param::Param;
use crate::secret::Secret;

/// The power state of the fenced machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PowerStatus {
    On,
    Off,
}

impl PowerStatus {
    /// `ON` / `OFF`, as printed in `Status: ON`.
    pub fn upper(self) -> &'static str {
        match self {
            PowerStatus::On => "ON",
            PowerStatus::Off => "OFF",
        }
    }
}

impl fmt::Display for PowerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.upper())
    }
}

/// Why a device operation failed. The text names the real cause and never contains a secret.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The device rejected the credentials (user name, password, Kg).
    #[error("Unable to connect/login to fencing device: {0}")]
    LoginDenied(String),
    /// Nothing answered (no route, port closed, host down).
    #[error("Unable to connect/login to fencing device: device unreachable: {0}")]
    Unreachable(String),
    /// The device did not answer within the time limit. The text contains "timed out",
    /// which Pacemaker maps to ETIME.
    #[error("Connection timed out: {0}")]
    TimedOut(String),
    /// The account's privilege level does not allow the operation.
    #[error("Failed: insufficient privilege: {0}")]
    InsufficientPrivilege(String),
    /// The device answered with an error for this command.
    #[error("Failed: command refused by device: {0}")]
    Refused(String),
    /// The device or agent cannot do this.
    #[error("Failed: operation not supported: {0}")]
    Unsupported(String),
    /// Anything else (protocol violations, local I/O errors).
    #[error("Failed: {0}")]
    Other(String),
}

/// An open connection to the fencing device, used for every command of one action.
pub trait PowerSession {
    fn get_power_status(&mut self, deadline: Instant) -> Result<PowerStatus, DeviceError>;
    /// Ask the device to switch power; success means the request was accepted, the library
    /// verifies the result by polling the status.
    fn set_power_status(
        &mut self,
        target: PowerStatus,
        deadline: Instant,
    ) -> Result<(), DeviceError>;
    /// A hardware power cycle (`method=cycle`), if the device has one.
    fn power_cycle(&mut self, _deadline: Instant) -> Result<(), DeviceError> {
        Err(DeviceError::Unsupported("power cycle".into()))
    }
    /// A diagnostic interrupt (NMI, action `diag`), if the device has one.
    fn diag(&mut self, _deadline: Instant) -> Result<(), DeviceError> {
        Err(DeviceError::Unsupported("diagnostic interrupt".into()))
    }
    /// The plugs of a multi-plug device: (id, alias, status).
    fn list(&mut self, _deadline: Instant) -> Result<Vec<Plug>, DeviceError> {
        Err(DeviceError::Unsupported("list".into()))
    }
    /// End the session (also called after errors).
    fn close(self, deadline: Instant) -> Result<(), DeviceError>;
}

/// One plug of a multi-plug device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plug {
    pub id: String,
    pub alias: String,
    pub status: Option<PowerStatus>,
}

/// A fence agent: its parameters and documentation, and how to reach its device.
pub trait FenceAgent {
    /// The agent-specific configuration, checked from the options.
    type Config;
    type Session: PowerSession;

    /// The parameter table. `invoked_as` is the basename of argv[0] (aliases may change
    /// defaults, as fence_ilo3 does).
    fn params(&self, invoked_as: &str) -> Vec<Param>;
    /// Metadata/help documentation.
    fn docs(&self, invoked_as: &str) -> AgentDocs;
    /// The text of `--version`.
    fn version(&self) -> String;
    /// Actions accepted on input (metadata lists [`AgentDocs::actions`]).
    fn accepted_actions(&self) -> Vec<Action> {
        vec![
            Action::On,
            Action::Off,
            Action::Reboot,
            Action::Status,
            Action::Monitor,
            Action::List,
            Action::ListStatus,
            Action::Metadata,
            Action::Manpage,
            Action::ValidateAll,
        ]
    }
    /// Whether the device has plugs to list (otherwise list prints fencing.py's NOTICE).
    fn supports_list(&self) -> bool {
        false
    }
    /// Agent-specific checks after the generic ones; no I/O, the password is not known yet.
    /// Also run by `validate-all`.
    fn configure(&self, options: &Options) -> Result<Self::Config, Vec<UsageError>>;
    /// Open the session. `deadline` bounds the whole login.
    fn connect(
        &self,
        config: &Self::Config,
        password: Option<&Secret>,
        deadline: Instant,
    ) -> Result<Self::Session, DeviceError>;
    /// The bound of one device operation when internal timeouts are disabled (power_timeout=0
    /// or under Pacemaker's fencer): the device protocol's own give-up time.
    fn operation_limit_without_timeout(&self, _config: &Self::Config) -> Duration {
        Duration::from_secs(30)
    }
    /// Timing adjustments (e.g. the agent's own idea of power_wait); default: unchanged.
    fn adjust_timing(&self, _config: &Self::Config, timing: Timing) -> Timing {
        timing
    }
}
