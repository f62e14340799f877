//! The power actions (fencing.py's `fence_action` and `set_multi_power_fn`) on one open
//! [`PowerSession`], with fencing.py's timing:
//!
//! | action          | sequence                                                             | attempts      |
//! |-----------------|----------------------------------------------------------------------|---------------|
//! | status/monitor  | status                                                               | 1             |
//! | on              | status; if OFF: [on, sleep power_wait, poll status]                  | 1 + retry_on  |
//! | off             | status; if ON: [off, sleep power_wait, poll status]                  | 1             |
//! | reboot (onoff)  | status; if ON: off sequence (must succeed); then on sequence         | retry_on (on) |
//! | reboot (cycle)  | status; if ON: [cycle] then sleep power_wait and read status;        | 1 + retry_on  |
//! |                 | if OFF: the on sequence instead (fence-agents issue #596)            |               |
//! | diag            | status; [diag], sleep power_wait                                     | 1 + retry_on  |
//!
//! Polling after a power command is counter-based like fencing.py: at most `power_timeout`
//! polls, `stonith_status_sleep` apart (unlimited when timeouts are disabled). Each single
//! device operation is bounded by `power_timeout` of wall-clock time.
//!
//! A reboot whose power-on phase fails is still a success (the machine was fenced), as in
//! fencing.py; the report says what really happened.

use std::fmt;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::agent::{DeviceError, PowerSession, PowerStatus};
use crate::options::{Action, Timing};

/// Time source and sleeper (a fake one in tests).
pub trait Clock {
    fn now(&self) -> Instant;
    fn sleep(&self, d: Duration);
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration) {
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }
}

/// How `reboot` is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Power off, verify, power on (default).
    OnOff,
    /// One hardware power cycle.
    Cycle,
}

/// Timing plus the bound of one operation when `power_timeout` is unlimited.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub timing: Timing,
    pub operation_limit_without_timeout: Duration,
}

impl Limits {
    /// Deadline for one device operation starting now.
    pub fn operation_deadline(&self, clock: &impl Clock) -> Instant {
        clock.now()
            + self
                .timing
                .power_timeout
                .unwrap_or(self.operation_limit_without_timeout)
    }
}

/// What a step of an action was doing when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    ReadStatus,
    Command(PowerStatus),
    Poll(PowerStatus),
    Cycle,
    Diag,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::ReadStatus => f.write_str("reading the power status"),
            Step::Command(s) => write!(f, "requesting power {s}"),
            Step::Poll(s) => write!(f, "waiting for power {s}"),
            Step::Cycle => f.write_str("requesting a power cycle"),
            Step::Diag => f.write_str("requesting a diagnostic interrupt"),
        }
    }
}

/// Why an action failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ActionError {
    #[error("{source} (while {step})")]
    Device { step: Step, source: DeviceError },
    #[error("Failed: Timed out waiting to power {0}")]
    TimedOutWaiting(PowerStatus),
    #[error("Failed: action '{0}' is not handled by the power engine")]
    NotAPowerAction(Action),
}

/// How a reboot went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RebootReport {
    /// Powered off (verified), then on (verified).
    OffThenOn,
    /// Was already off; powered on (verified).
    WasOffThenOn,
    /// The machine is off (verified or already), but powering it on failed.
    OffButOnFailed { was_off: bool, reason: String },
    /// The power cycle was accepted; the status read afterwards (if it worked).
    Cycled { status_after: Option<PowerStatus> },
    /// `method=cycle` on a machine that was off: powered on instead (issue #596).
    CycleWasOffThenOn,
    /// `method=cycle` on a machine that was off and could not be powered on (it stays off).
    CycleWasOffOnFailed { reason: String },
    /// The device refused the power cycle; powered off (verified) then on (verified) instead.
    CycleRefusedOffThenOn { refusal: String },
    /// The device refused the power cycle; powered off (verified), but powering on failed.
    CycleRefusedOnFailed { refusal: String, reason: String },
    /// A diagnostic interrupt was sent.
    Diag,
}

/// The end of a reboot report whose power-on failed: fencing succeeded, the host needs a hand.
const LEFT_OFF: &str =
    "The host was left OFF: fencing succeeded, but it will not come back by itself";

impl RebootReport {
    /// A sentence for the log saying what really happened.
    pub fn describe(&self) -> String {
        match self {
            RebootReport::OffThenOn => "powered OFF (verified) then ON (verified)".into(),
            RebootReport::WasOffThenOn => "was already OFF; powered ON (verified)".into(),
            RebootReport::OffButOnFailed { was_off, reason } => format!(
                "{}, but powering ON failed: {reason}. {LEFT_OFF}",
                if *was_off { "was already OFF" } else { "powered OFF (verified)" }
            ),
            RebootReport::Cycled { status_after: Some(s) } => {
                format!("power cycle accepted by the device; power is {s} after power_wait")
            }
            RebootReport::Cycled { status_after: None } => {
                "power cycle accepted by the device; power status afterwards unknown".into()
            }
            RebootReport::CycleWasOffThenOn => {
                "was already OFF, so no power cycle was sent; powered ON (verified)".into()
            }
            RebootReport::CycleWasOffOnFailed { reason } => format!(
                "was already OFF, so no power cycle was sent, but powering ON failed: {reason}. {LEFT_OFF}"
            ),
            RebootReport::CycleRefusedOffThenOn { refusal } => format!(
                "the device refused the power cycle ({refusal}); powered OFF (verified) then ON (verified) instead"
            ),
            RebootReport::CycleRefusedOnFailed { refusal, reason } => format!(
                "the device refused the power cycle ({refusal}); powered OFF (verified) instead, but powering ON failed: {reason}. {LEFT_OFF}"
            ),
            RebootReport::Diag => "diagnostic interrupt accepted by the device".into(),
        }
    }

    /// Whether the machine was meant to be powered on again and is still off.
    pub fn failed_to_power_on(&self) -> bool {
        matches!(
            self,
            RebootReport::OffButOnFailed { .. }
                | RebootReport::CycleWasOffOnFailed { .. }
                | RebootReport::CycleRefusedOnFailed { .. }
        )
    }

    /// Whether the report is worth a WARNING (something did not go as planned).
    pub fn is_abnormal(&self) -> bool {
        matches!(
            self,
            RebootReport::OffButOnFailed { .. }
                | RebootReport::CycleWasOffOnFailed { .. }
                | RebootReport::CycleWasOffThenOn
                | RebootReport::CycleRefusedOffThenOn { .. }
                | RebootReport::CycleRefusedOnFailed { .. }
                | RebootReport::Cycled {
                    status_after: Some(PowerStatus::Off) | None
                }
        )
    }
}

/// The successful result of an action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Status(PowerStatus),
    Monitored(PowerStatus),
    Already(PowerStatus),
    Powered(PowerStatus),
    Rebooted(RebootReport),
}

impl Outcome {
    /// The stdout line fencing.py prints (none for monitor).
    pub fn stdout_line(&self) -> Option<String> {
        match self {
            Outcome::Status(s) => Some(format!("Status: {s}")),
            Outcome::Monitored(_) => None,
            Outcome::Already(s) => Some(format!("Success: Already {s}")),
            Outcome::Powered(s) => Some(format!("Success: Powered {s}")),
            Outcome::Rebooted(_) => Some("Success: Rebooted".into()),
        }
    }

    /// The exit code: 0, except 2 for `status` when the power is off.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Status(PowerStatus::Off) => 2,
            _ => 0,
        }
    }
}

fn dev(step: Step) -> impl FnOnce(DeviceError) -> ActionError {
    move |source| ActionError::Device { step, source }
}

/// Run one power action on an open session.
pub fn perform<S: PowerSession, C: Clock>(
    session: &mut S,
    action: Action,
    method: Method,
    limits: &Limits,
    clock: &C,
) -> Result<Outcome, ActionError> {
    let retry_on = limits.timing.retry_on;
    let status = read_status(session, limits, clock)?;
    match action {
        Action::Status => Ok(Outcome::Status(status)),
        Action::Monitor => Ok(Outcome::Monitored(status)),
        Action::On | Action::Off => {
            let target = if action == Action::On {
                PowerStatus::On
            } else {
                PowerStatus::Off
            };
            if status == target {
                return Ok(Outcome::Already(target));
            }
            let attempts = if target == PowerStatus::On {
                1 + retry_on
            } else {
                1
            };
            if set_power(session, target, attempts, limits, clock)? {
                Ok(Outcome::Powered(target))
            } else {
                Err(ActionError::TimedOutWaiting(target))
            }
        }
        Action::Reboot => match method {
            Method::OnOff => {
                let was_off = status == PowerStatus::Off;
                if !was_off && !set_power(session, PowerStatus::Off, 1, limits, clock)? {
                    return Err(ActionError::TimedOutWaiting(PowerStatus::Off));
                }
                let report = match set_power(session, PowerStatus::On, retry_on, limits, clock) {
                    Ok(true) if was_off => RebootReport::WasOffThenOn,
                    Ok(true) => RebootReport::OffThenOn,
                    Ok(false) => RebootReport::OffButOnFailed {
                        was_off,
                        reason: "Timed out waiting to power ON".into(),
                    },
                    Err(e) => RebootReport::OffButOnFailed {
                        was_off,
                        reason: e.to_string(),
                    },
                };
                Ok(Outcome::Rebooted(report))
            }
            Method::Cycle => {
                if status == PowerStatus::Off {
                    let report =
                        match set_power(session, PowerStatus::On, 1 + retry_on, limits, clock) {
                            Ok(true) => RebootReport::CycleWasOffThenOn,
                            Ok(false) => RebootReport::CycleWasOffOnFailed {
                                reason: "Timed out waiting to power ON".into(),
                            },
                            Err(e) => RebootReport::CycleWasOffOnFailed {
                                reason: e.to_string(),
                            },
                        };
                    return Ok(Outcome::Rebooted(report));
                }
                // Some BMCs refuse a power cycle outright (IPMI 0xCC, 0xD5): that answer will
                // not change, so fall back at once to off (confirmed OFF) and on.
                let mut refusal: Option<DeviceError> = None;
                attempt(
                    session,
                    1 + retry_on,
                    Step::Cycle,
                    limits,
                    clock,
                    |s, d| match s.power_cycle(d) {
                        Err(e @ (DeviceError::Refused(_) | DeviceError::Unsupported(_))) => {
                            refusal = Some(e);
                            Ok(())
                        }
                        other => other,
                    },
                )?;
                if let Some(refusal) = refusal {
                    log::warn!(
                        "the device refused the power cycle ({refusal}); falling back to power OFF, confirming OFF, then power ON"
                    );
                    if !set_power(session, PowerStatus::Off, 1, limits, clock)? {
                        return Err(ActionError::TimedOutWaiting(PowerStatus::Off));
                    }
                    let refusal = refusal.to_string();
                    let report = match set_power(session, PowerStatus::On, retry_on, limits, clock)
                    {
                        Ok(true) => RebootReport::CycleRefusedOffThenOn { refusal },
                        Ok(false) => RebootReport::CycleRefusedOnFailed {
                            refusal,
                            reason: "Timed out waiting to power ON".into(),
                        },
                        Err(e) => RebootReport::CycleRefusedOnFailed {
                            refusal,
                            reason: e.to_string(),
                        },
                    };
                    return Ok(Outcome::Rebooted(report));
                }
                clock.sleep(limits.timing.power_wait);
                let status_after = session
                    .get_power_status(limits.operation_deadline(clock))
                    .ok();
                Ok(Outcome::Rebooted(RebootReport::Cycled { status_after }))
            }
        },
        Action::Diag => {
            attempt(session, 1 + retry_on, Step::Diag, limits, clock, |s, d| {
                s.diag(d)
            })?;
            clock.sleep(limits.timing.power_wait);
            Ok(Outcome::Rebooted(RebootReport::Diag))
        }
        other => Err(ActionError::NotAPowerAction(other)),
    }
}

fn read_status<S: PowerSession, C: Clock>(
    session: &mut S,
    limits: &Limits,
    clock: &C,
) -> Result<PowerStatus, ActionError> {
    session
        .get_power_status(limits.operation_deadline(clock))
        .map_err(dev(Step::ReadStatus))
}

/// Up to `attempts` tries of a one-shot command (cycle, diag). A timeout ends at once, as
/// fencing.py's killed ipmitool does; other errors are retried.
fn attempt<S: PowerSession, C: Clock>(
    session: &mut S,
    attempts: u32,
    step: Step,
    limits: &Limits,
    clock: &C,
    mut op: impl FnMut(&mut S, Instant) -> Result<(), DeviceError>,
) -> Result<(), ActionError> {
    let mut last = DeviceError::Other("no attempt was made (retry_on)".into());
    for n in 1..=attempts.max(1) {
        match op(session, limits.operation_deadline(clock)) {
            Ok(()) => return Ok(()),
            Err(e @ DeviceError::TimedOut(_)) => return Err(dev(step)(e)),
            Err(e) => {
                log::warn!("attempt {n} of {attempts} failed while {step}: {e}");
                last = e;
            }
        }
    }
    Err(dev(step)(last))
}

/// The state of one power change (fencing.py's `async_set_multi_power_fn`), as an explicit
/// state machine. Device errors are not events: a failed command or a timed-out read ends the
/// whole action with that error.
///
/// | state                | event           | next state                                        |
/// |----------------------|-----------------|---------------------------------------------------|
/// | (start)              |                 | `SendCommand{1}`, or `GaveUp` if attempts = 0     |
/// | `SendCommand{a}`     | CommandAccepted | `Settle{a}` (sleep power_wait)                    |
/// | `Settle{a}`          | Settled         | `Poll{a,1}`                                       |
/// | `Poll{a,n}`          | SawTarget       | `Reached`                                         |
/// | `Poll{a,n}`          | SawOther        | `Backoff{a,n}` (sleep stonith_status_sleep)       |
/// | `Backoff{a,n}`       | Slept           | `Poll{a,n+1}` if no poll limit or n < limit       |
/// |                      |                 | else `SendCommand{a+1}` if a < attempts           |
/// |                      |                 | else `GaveUp`                                     |
/// | `Reached`, `GaveUp`  | any             | none (terminal)                                   |
///
/// Any other (state, event) pair is invalid (`None`). A status read that fails without timing
/// out counts as `SawOther`, as fencing.py's unparsable ipmitool output does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerChange {
    SendCommand { attempt: u32 },
    Settle { attempt: u32 },
    Poll { attempt: u32, poll: u64 },
    Backoff { attempt: u32, poll: u64 },
    Reached,
    GaveUp,
}

/// What happened in a [`PowerChange`] state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerChangeEvent {
    CommandAccepted,
    Settled,
    SawTarget,
    SawOther,
    Slept,
}

/// The limits of one power change: command attempts and status polls per attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerChangePlan {
    pub attempts: u32,
    /// `None`: poll until the target is seen (timeouts disabled).
    pub poll_limit: Option<u64>,
}

impl PowerChangePlan {
    pub fn start(&self) -> PowerChange {
        if self.attempts == 0 {
            PowerChange::GaveUp
        } else {
            PowerChange::SendCommand { attempt: 1 }
        }
    }

    /// The transition table above.
    pub fn next(&self, state: PowerChange, event: PowerChangeEvent) -> Option<PowerChange> {
        use PowerChange as S;
        use PowerChangeEvent as E;
        match (state, event) {
            (S::SendCommand { attempt }, E::CommandAccepted) => Some(S::Settle { attempt }),
            (S::Settle { attempt }, E::Settled) => Some(S::Poll { attempt, poll: 1 }),
            (S::Poll { .. }, E::SawTarget) => Some(S::Reached),
            (S::Poll { attempt, poll }, E::SawOther) => Some(S::Backoff { attempt, poll }),
            (S::Backoff { attempt, poll }, E::Slept) => {
                Some(if self.poll_limit.map_or(true, |limit| poll < limit) {
                    S::Poll {
                        attempt,
                        poll: poll + 1,
                    }
                } else if attempt < self.attempts {
                    S::SendCommand {
                        attempt: attempt + 1,
                    }
                } else {
                    S::GaveUp
                })
            }
            _ => None,
        }
    }
}

/// Drive a [`PowerChange`] on the session. Ok(false) = never reached the target.
fn set_power<S: PowerSession, C: Clock>(
    session: &mut S,
    target: PowerStatus,
    attempts: u32,
    limits: &Limits,
    clock: &C,
) -> Result<bool, ActionError> {
    let t = &limits.timing;
    let plan = PowerChangePlan {
        attempts,
        poll_limit: t.status_poll_limit(),
    };
    let mut state = plan.start();
    loop {
        let event = match state {
            PowerChange::Reached => return Ok(true),
            PowerChange::GaveUp => return Ok(false),
            PowerChange::SendCommand { .. } => {
                session
                    .set_power_status(target, limits.operation_deadline(clock))
                    .map_err(dev(Step::Command(target)))?;
                PowerChangeEvent::CommandAccepted
            }
            PowerChange::Settle { .. } => {
                clock.sleep(t.power_wait);
                PowerChangeEvent::Settled
            }
            PowerChange::Poll { .. } => {
                match session.get_power_status(limits.operation_deadline(clock)) {
                    Ok(s) if s == target => PowerChangeEvent::SawTarget,
                    Ok(_) => PowerChangeEvent::SawOther,
                    Err(e @ DeviceError::TimedOut(_)) => return Err(dev(Step::Poll(target))(e)),
                    Err(e) => {
                        log::warn!("power status read failed while waiting for {target}: {e}");
                        PowerChangeEvent::SawOther
                    }
                }
            }
            PowerChange::Backoff { .. } => {
                clock.sleep(t.stonith_status_sleep);
                PowerChangeEvent::Slept
            }
        };
        state = plan
            .next(state, event)
            .expect("set_power only produces the event its state expects");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// A clock that only moves when slept on.
    pub struct FakeClock {
        start: Instant,
        elapsed: Cell<Duration>,
    }
    impl FakeClock {
        pub fn new() -> FakeClock {
            FakeClock {
                start: Instant::now(),
                elapsed: Cell::new(Duration::ZERO),
            }
        }
        pub fn elapsed(&self) -> Duration {
            self.elapsed.get()
        }
    }
    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.start + self.elapsed.get()
        }
        fn sleep(&self, d: Duration) {
            self.elapsed.set(self.elapsed.get() + d);
        }
    }

    /// A simulated machine: power state, how many polls a change takes to show, scripted
    /// failures, and a log of every call.
    pub struct FakeDevice {
        pub power: PowerStatus,
        pending: Option<(PowerStatus, u32)>,
        /// Polls a requested change needs before it becomes visible (None = never).
        pub settle_polls: Option<u32>,
        pub fail_status: Option<DeviceError>,
        pub fail_command: Option<DeviceError>,
        pub fail_cycle: Option<DeviceError>,
        pub calls: RefCell<Vec<String>>,
    }

    impl FakeDevice {
        pub fn new(power: PowerStatus) -> FakeDevice {
            FakeDevice {
                power,
                pending: None,
                settle_polls: Some(0),
                fail_status: None,
                fail_command: None,
                fail_cycle: None,
                calls: RefCell::new(Vec::new()),
            }
        }
        pub fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl PowerSession for FakeDevice {
        fn get_power_status(&mut self, _d: Instant) -> Result<PowerStatus, DeviceError> {
            self.calls.borrow_mut().push("status".into());
            if let Some(e) = &self.fail_status {
                return Err(e.clone());
            }
            if let Some((target, left)) = self.pending {
                if left == 0 {
                    self.power = target;
                    self.pending = None;
                } else {
                    self.pending = Some((target, left - 1));
                }
            }
            Ok(self.power)
        }
        fn set_power_status(&mut self, t: PowerStatus, _d: Instant) -> Result<(), DeviceError> {
            self.calls.borrow_mut().push(format!("set {t}"));
            if let Some(e) = &self.fail_command {
                return Err(e.clone());
            }
            self.pending = self.settle_polls.map(|n| (t, n));
            Ok(())
        }
        fn power_cycle(&mut self, _d: Instant) -> Result<(), DeviceError> {
            self.calls.borrow_mut().push("cycle".into());
            if let Some(e) = &self.fail_cycle {
                return Err(e.clone());
            }
            Ok(())
        }
        fn close(self, _d: Instant) -> Result<(), DeviceError> {
            Ok(())
        }
    }

    pub fn limits() -> Limits {
        Limits {
            timing: Timing {
                delay: Duration::ZERO,
                power_wait: Duration::from_secs(2),
                power_timeout: Some(Duration::from_secs(20)),
                login_timeout: Some(Duration::from_secs(5)),
                shell_timeout: Some(Duration::from_secs(3)),
                stonith_status_sleep: Duration::from_secs(1),
                retry_on: 1,
                timeouts_disabled: false,
            },
            operation_limit_without_timeout: Duration::from_secs(30),
        }
    }

    fn run(dev: &mut FakeDevice, action: Action, method: Method) -> Result<Outcome, ActionError> {
        perform(dev, action, method, &limits(), &FakeClock::new())
    }

    use PowerStatus::{Off, On};

    #[test]
    fn status_and_monitor() {
        let mut d = FakeDevice::new(On);
        let o = run(&mut d, Action::Status, Method::OnOff).unwrap();
        assert_eq!(
            (o.stdout_line().unwrap().as_str(), o.exit_code()),
            ("Status: ON", 0)
        );
        let mut d = FakeDevice::new(Off);
        let o = run(&mut d, Action::Status, Method::OnOff).unwrap();
        assert_eq!(
            (o.stdout_line().unwrap().as_str(), o.exit_code()),
            ("Status: OFF", 2)
        );
        let o = run(&mut d, Action::Monitor, Method::OnOff).unwrap();
        assert_eq!((o.stdout_line(), o.exit_code()), (None, 0));
        assert_eq!(d.calls(), ["status", "status"]);
    }

    #[test]
    fn off_and_on_with_timing() {
        let mut d = FakeDevice::new(On);
        let c = FakeClock::new();
        let o = perform(&mut d, Action::Off, Method::OnOff, &limits(), &c).unwrap();
        assert_eq!(o.stdout_line().unwrap(), "Success: Powered OFF");
        assert_eq!(d.calls(), ["status", "set OFF", "status"]);
        assert_eq!(c.elapsed(), Duration::from_secs(2), "power_wait only");

        let o = run(&mut d, Action::Off, Method::OnOff).unwrap();
        assert_eq!(o.stdout_line().unwrap(), "Success: Already OFF");
        let o = run(&mut d, Action::On, Method::OnOff).unwrap();
        assert_eq!(o.stdout_line().unwrap(), "Success: Powered ON");
        let o = run(&mut d, Action::On, Method::OnOff).unwrap();
        assert_eq!(o.stdout_line().unwrap(), "Success: Already ON");
    }

    #[test]
    fn polling_is_counter_based_and_off_has_one_attempt() {
        let mut d = FakeDevice::new(On);
        d.settle_polls = None; // the machine never turns off
        let c = FakeClock::new();
        let mut l = limits();
        l.timing.power_timeout = Some(Duration::from_secs(3));
        let e = perform(&mut d, Action::Off, Method::OnOff, &l, &c).unwrap_err();
        assert_eq!(e.to_string(), "Failed: Timed out waiting to power OFF");
        assert_eq!(
            d.calls(),
            ["status", "set OFF", "status", "status", "status"]
        );
        // power_wait 2 + 3 polls × 1 s
        assert_eq!(c.elapsed(), Duration::from_secs(5));
    }

    #[test]
    fn on_tries_one_plus_retry_on_times() {
        let mut d = FakeDevice::new(Off);
        d.settle_polls = None;
        let mut l = limits();
        l.timing.power_timeout = Some(Duration::from_secs(2));
        let e = perform(&mut d, Action::On, Method::OnOff, &l, &FakeClock::new()).unwrap_err();
        assert_eq!(e, ActionError::TimedOutWaiting(On));
        let sets = d.calls().iter().filter(|c| *c == "set ON").count();
        assert_eq!(sets, 2);
    }

    #[test]
    fn slow_change_is_seen_by_a_later_poll() {
        let mut d = FakeDevice::new(On);
        d.settle_polls = Some(3);
        let o = run(&mut d, Action::Off, Method::OnOff).unwrap();
        assert_eq!(o, Outcome::Powered(Off));
        assert_eq!(d.calls().len(), 2 + 4);
    }

    #[test]
    fn reboot_onoff_sequence() {
        let mut d = FakeDevice::new(On);
        let c = FakeClock::new();
        let o = perform(&mut d, Action::Reboot, Method::OnOff, &limits(), &c).unwrap();
        assert_eq!(o, Outcome::Rebooted(RebootReport::OffThenOn));
        assert_eq!(o.stdout_line().unwrap(), "Success: Rebooted");
        assert_eq!(
            d.calls(),
            ["status", "set OFF", "status", "set ON", "status"]
        );
        assert_eq!(c.elapsed(), Duration::from_secs(4));
    }

    #[test]
    fn reboot_of_an_off_machine_only_powers_on() {
        let mut d = FakeDevice::new(Off);
        let o = run(&mut d, Action::Reboot, Method::OnOff).unwrap();
        assert_eq!(o, Outcome::Rebooted(RebootReport::WasOffThenOn));
        assert_eq!(d.calls(), ["status", "set ON", "status"]);
    }

    #[test]
    fn reboot_succeeds_when_only_power_on_fails() {
        let mut d = FakeDevice::new(On);
        let mut l = limits();
        l.timing.power_timeout = Some(Duration::from_secs(1));
        // Off works, then the machine refuses to come back.
        struct Stuck(FakeDevice);
        impl PowerSession for Stuck {
            fn get_power_status(&mut self, d: Instant) -> Result<PowerStatus, DeviceError> {
                self.0.get_power_status(d)
            }
            fn set_power_status(&mut self, t: PowerStatus, d: Instant) -> Result<(), DeviceError> {
                if t == On {
                    return Err(DeviceError::Refused("0xd5".into()));
                }
                self.0.set_power_status(t, d)
            }
            fn close(self, d: Instant) -> Result<(), DeviceError> {
                self.0.close(d)
            }
        }
        d.settle_polls = Some(0);
        let mut s = Stuck(d);
        let o = perform(&mut s, Action::Reboot, Method::OnOff, &l, &FakeClock::new()).unwrap();
        let Outcome::Rebooted(r) = o else { panic!() };
        assert!(r.is_abnormal());
        assert!(
            r.describe().contains("powering ON failed") && r.describe().contains("left OFF"),
            "{}",
            r.describe()
        );
        assert!(r.failed_to_power_on());
        assert_eq!(s.0.power, Off);
    }

    #[test]
    fn reboot_fails_when_power_off_is_not_confirmed() {
        let mut d = FakeDevice::new(On);
        d.settle_polls = None;
        let mut l = limits();
        l.timing.power_timeout = Some(Duration::from_secs(2));
        let e = perform(&mut d, Action::Reboot, Method::OnOff, &l, &FakeClock::new()).unwrap_err();
        assert_eq!(e, ActionError::TimedOutWaiting(Off));
        assert!(!d.calls().contains(&"set ON".to_string()));
    }

    #[test]
    fn cycle_on_a_running_machine() {
        let mut d = FakeDevice::new(On);
        let c = FakeClock::new();
        let o = perform(&mut d, Action::Reboot, Method::Cycle, &limits(), &c).unwrap();
        assert_eq!(
            o,
            Outcome::Rebooted(RebootReport::Cycled {
                status_after: Some(On)
            })
        );
        assert_eq!(d.calls(), ["status", "cycle", "status"]);
        assert_eq!(c.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn cycle_on_an_off_machine_powers_it_on_instead() {
        let mut d = FakeDevice::new(Off);
        let o = run(&mut d, Action::Reboot, Method::Cycle).unwrap();
        assert_eq!(o, Outcome::Rebooted(RebootReport::CycleWasOffThenOn));
        assert_eq!(d.calls(), ["status", "set ON", "status"]);
        assert_eq!(d.power, On);
    }

    #[test]
    fn a_refused_cycle_falls_back_to_off_confirm_on_and_says_so() {
        for refusal in [
            DeviceError::Refused("completion code 0xd5".into()),
            DeviceError::Unsupported("completion code 0xcc".into()),
        ] {
            let mut d = FakeDevice::new(On);
            d.fail_cycle = Some(refusal);
            let o = run(&mut d, Action::Reboot, Method::Cycle).unwrap();
            let calls = d.calls();
            assert_eq!(&calls[..3], ["status", "cycle", "set OFF"], "{calls:?}");
            let on = calls
                .iter()
                .position(|c| c == "set ON")
                .expect("powered on");
            assert!(
                calls[3..on].iter().any(|c| c == "status"),
                "OFF not confirmed before on: {calls:?}"
            );
            assert_eq!(d.power, On);
            let Outcome::Rebooted(r) = &o else {
                panic!("{o:?}")
            };
            assert!(
                matches!(r, RebootReport::CycleRefusedOffThenOn { .. }),
                "{r:?}"
            );
            assert!(
                r.describe().contains("refused the power cycle"),
                "{}",
                r.describe()
            );
            assert!(r.is_abnormal() && !r.failed_to_power_on());
            assert_eq!(o.stdout_line().as_deref(), Some("Success: Rebooted"));
        }
        // Timeouts are not refusals: no retry, no fallback.
        let mut d = FakeDevice::new(On);
        d.fail_cycle = Some(DeviceError::TimedOut("no answer".into()));
        let e = run(&mut d, Action::Reboot, Method::Cycle).unwrap_err();
        assert_eq!(d.calls(), ["status", "cycle"]);
        assert!(e.to_string().contains("timed out"), "{e}");
        // Other failures are retried, then reported.
        let mut d = FakeDevice::new(On);
        d.fail_cycle = Some(DeviceError::Other("garbled".into()));
        let e = run(&mut d, Action::Reboot, Method::Cycle).unwrap_err();
        assert_eq!(d.calls(), ["status", "cycle", "cycle"]);
        assert!(e.to_string().contains("garbled"), "{e}");
    }

    #[test]
    fn status_errors_name_the_cause_and_stop_before_any_command() {
        for action in [Action::Off, Action::On, Action::Reboot, Action::Status] {
            let mut d = FakeDevice::new(On);
            d.fail_status = Some(DeviceError::LoginDenied("wrong password".into()));
            let e = run(&mut d, action, Method::OnOff).unwrap_err();
            assert!(e.to_string().contains("wrong password"));
            assert!(e.to_string().contains("reading the power status"));
            assert_eq!(d.calls(), ["status"]);
        }
    }

    #[test]
    fn command_errors_stop_at_once() {
        let mut d = FakeDevice::new(On);
        d.fail_command = Some(DeviceError::InsufficientPrivilege("USER level".into()));
        let e = run(&mut d, Action::Off, Method::OnOff).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Failed: insufficient privilege: USER level (while requesting power OFF)"
        );
        assert_eq!(d.calls(), ["status", "set OFF"]);
    }

    #[test]
    fn unlimited_polling_when_timeouts_are_disabled() {
        let mut d = FakeDevice::new(On);
        d.settle_polls = Some(100);
        let mut l = limits();
        l.timing.power_timeout = None;
        let o = perform(&mut d, Action::Off, Method::OnOff, &l, &FakeClock::new()).unwrap();
        assert_eq!(o, Outcome::Powered(Off));
    }

    const ALL_EVENTS: [PowerChangeEvent; 5] = [
        PowerChangeEvent::CommandAccepted,
        PowerChangeEvent::Settled,
        PowerChangeEvent::SawTarget,
        PowerChangeEvent::SawOther,
        PowerChangeEvent::Slept,
    ];

    fn all_states(max_attempt: u32, max_poll: u64) -> Vec<PowerChange> {
        let mut v = vec![PowerChange::Reached, PowerChange::GaveUp];
        for attempt in 1..=max_attempt {
            v.push(PowerChange::SendCommand { attempt });
            v.push(PowerChange::Settle { attempt });
            for poll in 1..=max_poll {
                v.push(PowerChange::Poll { attempt, poll });
                v.push(PowerChange::Backoff { attempt, poll });
            }
        }
        v
    }

    /// Every (state, event) pair, for several plans, against the documented table.
    #[test]
    fn power_change_transition_table_is_exhaustive() {
        use PowerChange as S;
        use PowerChangeEvent as E;
        for attempts in 0..=3u32 {
            for poll_limit in [None, Some(1u64), Some(2), Some(3)] {
                let plan = PowerChangePlan {
                    attempts,
                    poll_limit,
                };
                assert_eq!(
                    plan.start(),
                    if attempts == 0 {
                        S::GaveUp
                    } else {
                        S::SendCommand { attempt: 1 }
                    }
                );
                for state in all_states(attempts.max(1), 4) {
                    for event in ALL_EVENTS {
                        let want = match (state, event) {
                            (S::SendCommand { attempt }, E::CommandAccepted) => {
                                Some(S::Settle { attempt })
                            }
                            (S::Settle { attempt }, E::Settled) => {
                                Some(S::Poll { attempt, poll: 1 })
                            }
                            (S::Poll { .. }, E::SawTarget) => Some(S::Reached),
                            (S::Poll { attempt, poll }, E::SawOther) => {
                                Some(S::Backoff { attempt, poll })
                            }
                            (S::Backoff { attempt, poll }, E::Slept) => Some(match poll_limit {
                                Some(l) if poll >= l && attempt < attempts => S::SendCommand {
                                    attempt: attempt + 1,
                                },
                                Some(l) if poll >= l => S::GaveUp,
                                _ => S::Poll {
                                    attempt,
                                    poll: poll + 1,
                                },
                            }),
                            _ => None,
                        };
                        assert_eq!(
                            plan.next(state, event),
                            want,
                            "{plan:?} {state:?} {event:?}"
                        );
                    }
                }
            }
        }
    }

    /// A host that never changes: attempts × poll_limit polls, then GaveUp.
    #[test]
    fn power_change_gives_up_after_attempts_times_polls() {
        for attempts in 1..=3u32 {
            for limit in 1..=4u64 {
                let plan = PowerChangePlan {
                    attempts,
                    poll_limit: Some(limit),
                };
                let (mut state, mut commands, mut polls) = (plan.start(), 0, 0);
                while !matches!(state, PowerChange::GaveUp | PowerChange::Reached) {
                    let ev = match state {
                        PowerChange::SendCommand { .. } => {
                            commands += 1;
                            PowerChangeEvent::CommandAccepted
                        }
                        PowerChange::Settle { .. } => PowerChangeEvent::Settled,
                        PowerChange::Poll { .. } => {
                            polls += 1;
                            PowerChangeEvent::SawOther
                        }
                        PowerChange::Backoff { .. } => PowerChangeEvent::Slept,
                        _ => unreachable!(),
                    };
                    state = plan.next(state, ev).unwrap();
                }
                assert_eq!(state, PowerChange::GaveUp);
                assert_eq!((commands, polls), (attempts, u64::from(attempts) * limit));
            }
        }
    }

    #[test]
    fn operation_deadline_uses_power_timeout_or_the_agent_bound() {
        let c = FakeClock::new();
        let mut l = limits();
        assert_eq!(l.operation_deadline(&c) - c.now(), Duration::from_secs(20));
        l.timing.power_timeout = None;
        assert_eq!(l.operation_deadline(&c) - c.now(), Duration::from_secs(30));
    }
}
