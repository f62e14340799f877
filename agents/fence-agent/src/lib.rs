//! The fence-agent API of ClusterLabs' fencing.py, implemented once for any agent: options,
//! actions, timing, metadata, logging, exit codes.
//!
//! An agent declares its parameter table ([`param::Param`], starting from
//! [`param::std_params`]), implements [`FenceAgent`] (checks its options and opens a
//! [`PowerSession`]), and calls [`run::main`]. The library reads options from argv or stdin
//! exactly like fencing.py, prints metadata/help, validates in fencing.py's order, logs to
//! stderr/syslog/debug file with secrets redacted, runs `password_script`, applies `delay`,
//! performs the action on one session with fencing.py's timing, and returns 0/1/2.

pub mod action;
pub mod agent;
pub mod logging;
pub mod metadata;
pub mod options;
pub mod param;
pub mod parse;
pub mod run;
pub mod secret;

pub use action::{Clock, Method, Outcome, RebootReport, SystemClock};
pub use agent::{DeviceError, FenceAgent, Plug, PowerSession, PowerStatus};
pub use metadata::AgentDocs;
pub use options::{Action, Options, Timing, UsageError};
pub use param::{Param, ParamKind};
pub use secret::Secret;
