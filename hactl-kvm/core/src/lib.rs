//! The hactl-kvm decision core: power, partition and per-host HA state
//! machines and safety gates as a sans-IO state machine.
//!
//! The core does no I/O and reads no clock. Its driver (the production
//! runtime, or the simulator in `hactl-sim`) feeds it [`Input`]s with the
//! current monotonic time and carries out the [`Action`]s it returns:
//!
//! ```
//! use hactl_core::{Action, Config, Coordinator, Input};
//! let mut core = Coordinator::new(Config::default(), 0).unwrap();
//! let actions: Vec<Action> = core.handle(0, Input::QuorumChanged { quorate: true });
//! // ... carry out the actions, feed back results, and call
//! // `handle(now, Input::Tick)` no later than `core.next_timeout()`.
//! # let _ = actions;
//! ```
//!
//! * Every operation the core asks for ([`Action::RunHealthCheck`],
//!   [`Action::RunActivityCheck`], [`Action::ReadPower`], power actions)
//!   carries an [`OpRef`]: operation id, host and the host's HA state
//!   version. The result must echo it; results for operations that timed out,
//!   for a previous coordinator incarnation, or for a state the host has
//!   since left are discarded.
//! * Actions are ordered. A [`Action::Persist`] must be durable (the journal
//!   fsyncs it) before later actions of the same batch are carried out.
//! * Restarting = [`Coordinator::recover`] with the journal's records; it
//!   returns the coordinator and its start-up actions. A fresh coordinator's
//!   start-up actions come from [`Coordinator::start_actions`].
//! * The core starts **not quorate**: send [`Input::QuorumChanged`] first,
//!   then the [`Input::Inventory`]. Quorum is a lease: a "quorate" report
//!   opens the power gates for [`Config::quorum_lease_ms`] (30 s), so the
//!   driver repeats `QuorumChanged { quorate: true }` (e.g. every 10 s)
//!   while it stays quorate; a silent provider closes the gates.
//! * Every [`OpRef`]'s id carries the coordinator's epoch
//!   ([`OpId::epoch`]): the fencing token. A driver that knows the current
//!   epoch (it holds the journal) refuses power actions of an older one, so
//!   a superseded coordinator that still runs cannot act.
//! * Inputs arriving at the same time may be fed together with
//!   [`Coordinator::handle_batch`]; [`Coordinator::handle_into`] avoids
//!   allocating a new action vector per call.
//! * Read-only views for reports and the CLI: [`Coordinator::host`],
//!   [`Coordinator::hosts`], [`Coordinator::partition`],
//!   [`Coordinator::state_counts`]; [`Coordinator::compact_records`] for
//!   journal compaction.
//! * [`Subscribers`] fans [`Action::Emit`] events out to any number of sinks.
//!
//! Shipped defaults (see [`Config`]): health check every 10 s (3 s timeout),
//! activity samples of 8 s, 3 of 4 dead, power operations 10 s, 3 recovery
//! attempts, startup grace 60 s, 3 fences per hour per partition and
//! globally, mass-failure share 50 % within 60 s, quorum lease 30 s, two
//! OFF reads 30 s apart to call a host FENCED without our own power-off
//! (the full table: `hactl-kvm/docs/model.md` §5a, tested against
//! [`Config::default`]). A crashed host is confirmed off in about 30-48 s.
//!
//! The model (states, transitions, events, deviations from the design and
//! the mapping onto CloudStack's `hostha.hastate`) is documented in
//! `hactl-kvm/docs/model.md`; the transition functions live in [`fsm`] and
//! the safety gates in [`gates`].

pub mod config;
pub mod coordinator;
pub mod event;
pub mod fsm;
pub mod gates;
pub mod ids;
pub mod inventory;
pub mod io;
pub mod record;
mod timers;

pub use config::{Config, ConfigError, EvidenceConfig, FenceRateConfig, MassFailureConfig};
pub use coordinator::{Coordinator, HostView, PartitionView, RecoverError, SelfTestGate};
pub use event::{
    AttemptFailure, Event, FailedReason, GateBlock, InactiveReason, MassFailureReason,
    OffConfirmation, RateCapClearedBy, RoundOutcome, Subscribers,
};
pub use fsm::{
    HaContext, HaState, HaTrigger, Outcome, PartitionState, PartitionTrigger, PowerState,
    RecoveryPhase, RecoveryStep,
};
pub use ids::{ClusterId, FenceId, HostId, Millis, OpId, OpRef, PodId, StateVersion, ZoneId};
pub use inventory::{
    Cluster, Host, HostOverrides, Inventory, InventoryChange, Pod, ResourceState, Zone,
};
pub use io::{
    Action, ActivityVerdict, CannotTellReason, Evidence, EvidenceSample, HealthOutcome, Input,
    Operator, OperatorCommand, OperatorOverride, OverrideScope, PowerActionOutcome, PowerFailure,
    PowerOffReason, PowerOnReason, PowerReading, RateScope, UserPowerOp, Window,
};
pub use record::{FenceOutcome, Record};
