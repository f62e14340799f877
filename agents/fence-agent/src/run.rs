//! The whole life of one agent invocation, in fencing.py's order:
//! read options (argv, else stdin) → help/metadata/version → logging → action check →
//! validation (validate-all stops here) → debug file → password_script → delay → one session
//! → action → close → exit code 0/1/2.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::action::{perform, ActionError, Clock, Limits, Method, Outcome, SystemClock};
use crate::agent::{FenceAgent, PowerSession};
use crate::logging::{self, level_for};
use crate::metadata;
use crate::options::{classify, Action, Options, Request, UsageError};
use crate::parse::{parse_args, parse_bool_word, parse_stdin, ParseError, Parsed};
use crate::secret::Secret;

/// Everything a run depends on from the outside world.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// Basename of argv[0].
    pub invoked_as: String,
    /// argv[1..]; when empty, options are read from `stdin`.
    pub args: Vec<String>,
    pub stdin: Vec<u8>,
    /// `PCMK_service` from the environment (`pacemaker-fenced` disables internal timeouts).
    pub pcmk_service: Option<String>,
    /// Process start, the reference point of `delay`.
    pub started: Instant,
}

const USAGE_HINT: &str = "Please use '-h' for usage";

/// Entry point for an agent binary: reads the real argv/stdin/environment and runs.
pub fn main<A: FenceAgent>(agent: &A) -> ExitCode {
    let started = Instant::now();
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    let invoked_as = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "fence_agent".into());
    let logger = logging::install(&invoked_as);
    let mut args = Vec::new();
    for a in argv {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(_) => {
                logger.configure(log::LevelFilter::Warn, true);
                log::error!("{}", ParseError::NotUtf8);
                log::error!("{USAGE_HINT}");
                return ExitCode::from(1);
            }
        }
    }
    let mut stdin = Vec::new();
    if args.is_empty() {
        match read_stdin_capped(std::io::stdin().lock(), &mut stdin) {
            Ok(()) => {}
            Err(e) => {
                log::error!("Failed: cannot read options from stdin: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let inv = Invocation {
        invoked_as,
        args,
        stdin,
        pcmk_service: std::env::var("PCMK_service").ok(),
        started,
    };
    let stdout = std::io::stdout();
    let code = run(agent, &inv, &mut stdout.lock(), &SystemClock);
    ExitCode::from(code)
}

/// The most bytes of options read from stdin: no fence request comes anywhere near it.
pub const STDIN_LIMIT: usize = 64 * 1024;

/// Reads all of `input` into `buf`, refusing more than [`STDIN_LIMIT`] bytes.
pub fn read_stdin_capped(input: impl Read, buf: &mut Vec<u8>) -> std::io::Result<()> {
    input.take(STDIN_LIMIT as u64 + 1).read_to_end(buf)?;
    if buf.len() > STDIN_LIMIT {
        buf.clear();
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("more than {STDIN_LIMIT} bytes (64 KiB); no fence request is that large"),
        ));
    }
    Ok(())
}

fn usage_failure(errors: &[String]) -> u8 {
    for e in errors {
        log::error!("{e}");
    }
    log::error!("{USAGE_HINT}");
    1
}

fn print(out: &mut dyn Write, text: &str) {
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Run one invocation; returns the exit code.
pub fn run<A: FenceAgent, C: Clock>(
    agent: &A,
    inv: &Invocation,
    out: &mut dyn Write,
    clock: &C,
) -> u8 {
    let logger = logging::install(&inv.invoked_as);
    let params = agent.params(&inv.invoked_as);

    let parsed: Result<Parsed, ParseError> = if inv.args.is_empty() {
        parse_stdin(&params, &inv.stdin)
    } else {
        parse_args(&params, &inv.args)
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => return usage_failure(&[e.to_string()]),
    };
    // Register secrets before anything can be logged about the options.
    for p in params.iter().filter(|p| p.secret) {
        if let Some(v) = parsed.values.get(p.name) {
            logger.add_secret(v);
        }
    }
    let quiet = parsed
        .values
        .get("quiet")
        .and_then(|v| parse_bool_word(v))
        .unwrap_or(false);
    logger.configure(log::LevelFilter::Warn, !quiet);

    let mut warnings = Vec::new();
    let request = classify(&params, parsed, &mut warnings);
    for w in &warnings {
        log::warn!("{w}");
    }
    let docs = agent.docs(&inv.invoked_as);
    let mut options: Options = match request {
        Err(e) => return usage_failure(&[e.0]),
        Ok(Request::Help) => {
            let default_action = params
                .iter()
                .find(|p| p.name == "action")
                .and_then(|p| p.default)
                .unwrap_or("reboot");
            print(
                out,
                &metadata::usage(&inv.invoked_as, &params, &docs.actions, default_action),
            );
            return 0;
        }
        Ok(Request::Metadata) => {
            print(out, &metadata::render(&docs, &params));
            return 0;
        }
        Ok(Request::Version) => {
            print(out, &agent.version());
            return 0;
        }
        Ok(Request::Run(o)) => *o,
    };

    logger.configure(level_for(options.verbose_level()), !quiet);
    options.apply_environment(inv.pcmk_service.as_deref());
    let action = options.action();
    if !agent.accepted_actions().contains(&action) {
        return usage_failure(&[format!("Failed: Unrecognised action '{action}'")]);
    }

    let mut errors: Vec<UsageError> = options.validate(true);
    let config = if errors.is_empty() {
        match agent.configure(&options) {
            Ok(c) => Some(c),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        }
    } else {
        None
    };
    if action == Action::ValidateAll {
        if errors.is_empty() {
            return 0;
        }
        let mut lines: Vec<String> = errors.into_iter().map(|e| e.0).collect();
        lines.push("validate-all failed".into());
        return usage_failure(&lines);
    }
    let Some(config) = config else {
        return usage_failure(&[errors.remove(0).0]);
    };

    if let Some(path) = options.get("debug_file").filter(|p| !p.is_empty()) {
        if let Err(e) = logger.open_debug_file(Path::new(path)) {
            log::error!("Unable to create file {path}: {e}");
            return usage_failure(&[format!("Failed: Unable to create file {path}")]);
        }
    }

    match resolve_password(&options) {
        Ok(Some(pw)) => options.set_password(pw),
        Ok(None) => {}
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    }

    if matches!(action, Action::List | Action::ListStatus) && !agent.supports_list() {
        print(out, "NOTICE: List option is not working on this device yet");
        return 0;
    }

    let limits = Limits {
        timing: agent.adjust_timing(&config, options.timing()),
        operation_limit_without_timeout: agent.operation_limit_without_timeout(&config),
    };
    if action.is_delayed() && !limits.timing.delay.is_zero() {
        // fencing.py: sleep until 1 + delay seconds after the process started.
        let until = inv.started + Duration::from_secs(1) + limits.timing.delay;
        let now = clock.now();
        if until > now {
            log::info!(
                "Delay {} second(s) before logging in to the fence device",
                (until - now).as_secs()
            );
            clock.sleep(until - now);
        }
    }

    let method = match options.choice("method").as_deref() {
        Some("cycle") => Method::Cycle,
        _ => Method::OnOff,
    };
    let login_limit = if options.is_set("login_timeout") && !limits.timing.timeouts_disabled {
        limits.timing.login_timeout
    } else {
        limits.timing.power_timeout
    }
    .unwrap_or(limits.operation_limit_without_timeout);

    log::debug!("opening a session to the fence device for action '{action}'");
    let mut session = match agent.connect(&config, options.password(), clock.now() + login_limit) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e} (while opening the session)");
            return 1;
        }
    };
    let result = if matches!(action, Action::List | Action::ListStatus) {
        list(&mut session, action, &limits, clock, out)
    } else {
        perform(&mut session, action, method, &limits, clock).map(|o| report(&o, out))
    };
    if let Err(e) = session.close(clock.now() + Duration::from_secs(2)) {
        log::debug!("closing the session failed: {e}");
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

fn list<S: PowerSession, C: Clock>(
    session: &mut S,
    action: Action,
    limits: &Limits,
    clock: &C,
    out: &mut dyn Write,
) -> Result<u8, ActionError> {
    let plugs = session
        .list(limits.operation_deadline(clock))
        .map_err(|source| ActionError::Device {
            step: crate::action::Step::ReadStatus,
            source,
        })?;
    for p in plugs {
        let line = if action == Action::ListStatus {
            let s = p.status.map_or("UNKNOWN", |s| s.upper());
            format!("{},{},{}", p.id, p.alias, s)
        } else {
            format!("{},{}", p.id, p.alias)
        };
        print(out, &line);
    }
    Ok(0)
}

fn report(outcome: &Outcome, out: &mut dyn Write) -> u8 {
    if let Outcome::Rebooted(r) = outcome {
        // fencing.py logs an ERROR when the power-on of a reboot fails, yet exits 0: the
        // machine is fenced. Same level here, with what really happened.
        if r.failed_to_power_on() {
            log::error!("Reboot: {}", r.describe());
        } else if r.is_abnormal() {
            log::warn!("Reboot: {}", r.describe());
        } else {
            log::info!("Reboot: {}", r.describe());
        }
    }
    if let Some(line) = outcome.stdout_line() {
        print(out, &line);
    }
    outcome.exit_code()
}

/// Errors of `password_script`. None carries the script's output.
#[derive(Debug, thiserror::Error)]
pub enum PasswordScriptError {
    #[error("Failed: cannot run password_script: {0}")]
    Spawn(std::io::Error),
    #[error("Failed: password_script exited with {0}")]
    Status(std::process::ExitStatus),
    #[error("Failed: password_script output is not valid UTF-8")]
    NotUtf8,
    #[error("Failed: password_script {script:?} printed no password (empty output)")]
    Empty { script: String },
    #[error("Failed: password_script {script:?} printed more than {limit} bytes; a password is far shorter")]
    TooLong { script: String, limit: usize },
    #[error("Failed: password_script {script:?} did not finish within {limit:?} (login_timeout); it was killed with its whole process group")]
    TimedOut { script: String, limit: Duration },
}

/// The most `password_script` may print on stdout (and the most of its stderr that is read).
pub const PASSWORD_SCRIPT_OUTPUT_LIMIT: usize = 4096;

/// How long `password_script` may run: `login_timeout` (its default when not given), never
/// less than one second, and not lifted by `disable_timeout` (a hung script must not hang the
/// fence).
fn password_script_limit(options: &Options) -> Duration {
    Duration::from_secs(options.seconds("login_timeout").unwrap_or(5).max(1))
}

/// Reads at most `limit + 1` bytes of `r` (so an overflow is visible), then drains the rest.
fn read_capped(mut r: impl Read, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = (&mut r).take(limit as u64 + 1).read_to_end(&mut out);
    let _ = std::io::copy(&mut r, &mut std::io::sink());
    out
}

/// The password: `password_script` (run through `sh -c`, as fencing.py's `os.popen`; its
/// stdout with trailing whitespace removed) wins over `password`.
///
/// The script runs in a process group of its own, for at most the login timeout
/// ([`password_script_limit`]); at the limit the whole group is killed (SIGKILL). Its stdout
/// is capped at [`PASSWORD_SCRIPT_OUTPUT_LIMIT`] bytes; empty output is an error, never an
/// empty password. Its stderr is not passed through: it is logged line by line (WARNING)
/// after its stdout has been registered as a secret with the logger, so a script that traces
/// itself (`set -x`) or echoes the password cannot put it on our stderr or in syslog.
pub fn resolve_password(options: &Options) -> Result<Option<Secret>, PasswordScriptError> {
    use std::os::unix::process::CommandExt;
    use std::sync::mpsc;

    let Some(script) = options.get("password_script").filter(|s| !s.is_empty()) else {
        return Ok(options
            .password_option()
            .map(|p| Secret::new(p.to_string())));
    };
    let limit = password_script_limit(options);
    log::debug!("running password_script (limit {limit:?})");
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(PasswordScriptError::Spawn)?;
    let group = child.id() as i32;
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    for (is_stdout, pipe) in [
        (
            true,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            false,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        let tx = tx.clone();
        if let Some(pipe) = pipe {
            std::thread::spawn(move || {
                let _ = tx.send((is_stdout, read_capped(pipe, PASSWORD_SCRIPT_OUTPUT_LIMIT)));
            });
        }
    }
    drop(tx);
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(PasswordScriptError::Spawn(e)),
        }
    };
    let kill_group = || {
        // SAFETY: kill(2) with a negative pid signals the process group we created for the
        // script (its leader is our child, not yet reaped while the group matters).
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    };
    let Some(status) = status else {
        kill_group();
        let _ = child.wait();
        return Err(PasswordScriptError::TimedOut {
            script: script.to_string(),
            limit,
        });
    };
    // Whatever the script left running in its group must not hold our pipes open.
    let mut stdout = zeroize::Zeroizing::new(Vec::new());
    let mut stderr = zeroize::Zeroizing::new(Vec::new());
    let mut pending = 2;
    while pending > 0 {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        match rx.recv_timeout(wait) {
            Ok((true, out)) => *stdout = out,
            Ok((false, err)) => *stderr = err,
            Err(_) => {
                kill_group();
                break;
            }
        }
        pending -= 1;
    }
    // Whatever it printed is the password (or part of it, if it failed): hide it first, as
    // text and as the lossy text its non-UTF-8 form would be logged as.
    if let Some(logger) = logging::logger() {
        let lossy = zeroize::Zeroizing::new(String::from_utf8_lossy(&stdout).into_owned());
        logger.add_secret(lossy.trim_end());
        // Each valid stretch of non-UTF-8 output too: stderr may echo any part of it.
        for part in lossy.split('\u{FFFD}') {
            logger.add_secret(part.trim());
        }
        if let Ok(pw) = std::str::from_utf8(&stdout) {
            logger.add_secret(pw.trim_end());
        }
    }
    let password = std::str::from_utf8(&stdout).map(str::trim_end);
    for line in String::from_utf8_lossy(&stderr).lines() {
        log::warn!("password_script: {line}");
    }
    if !status.success() {
        return Err(PasswordScriptError::Status(status));
    }
    if stdout.len() > PASSWORD_SCRIPT_OUTPUT_LIMIT {
        return Err(PasswordScriptError::TooLong {
            script: script.to_string(),
            limit: PASSWORD_SCRIPT_OUTPUT_LIMIT,
        });
    }
    let password = password.map_err(|_| PasswordScriptError::NotUtf8)?;
    if password.is_empty() {
        return Err(PasswordScriptError::Empty {
            script: script.to_string(),
        });
    }
    Ok(Some(Secret::new(password.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::tests::{FakeClock, FakeDevice};
    use crate::agent::{DeviceError, PowerStatus};
    use crate::metadata::AgentDocs;
    use crate::param::std_params::*;
    use crate::param::Param;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A session sharing its device with the test, recording `close`.
    struct Shared(Rc<RefCell<FakeDevice>>);

    impl PowerSession for Shared {
        fn get_power_status(&mut self, d: Instant) -> Result<PowerStatus, DeviceError> {
            self.0.borrow_mut().get_power_status(d)
        }
        fn set_power_status(&mut self, t: PowerStatus, d: Instant) -> Result<(), DeviceError> {
            self.0.borrow_mut().set_power_status(t, d)
        }
        fn close(self, _d: Instant) -> Result<(), DeviceError> {
            self.0.borrow().calls.borrow_mut().push("close".into());
            Ok(())
        }
    }

    struct Agent {
        device: Rc<RefCell<FakeDevice>>,
        /// (login deadline relative to the fake clock's now at connect, password)
        connects: RefCell<Vec<(Duration, Option<String>)>>,
        connect_error: Option<DeviceError>,
        clock_start: Instant,
    }

    impl Agent {
        fn new(power: PowerStatus, clock: &FakeClock) -> Agent {
            Agent {
                device: Rc::new(RefCell::new(FakeDevice::new(power))),
                connects: RefCell::new(Vec::new()),
                connect_error: None,
                clock_start: clock.now(),
            }
        }
        fn calls(&self) -> Vec<String> {
            self.device.borrow().calls()
        }
    }

    impl FenceAgent for Agent {
        type Config = ();
        type Session = Shared;
        fn params(&self, _: &str) -> Vec<Param> {
            let mut p = COMMON.to_vec();
            p.extend([
                IP,
                USERNAME,
                PASSWORD,
                PASSWORD_SCRIPT,
                PLUG_AS_IP,
                PORT_AS_IP,
                METHOD,
            ]);
            p
        }
        fn docs(&self, name: &str) -> AgentDocs {
            AgentDocs {
                name: name.into(),
                shortdesc: "test".into(),
                longdesc: "test".into(),
                vendor_url: String::new(),
                symlinks: vec![],
                actions: vec![Action::On, Action::Off, Action::Reboot, Action::Status],
            }
        }
        fn version(&self) -> String {
            "9.9".into()
        }
        fn configure(&self, _: &Options) -> Result<(), Vec<UsageError>> {
            Ok(())
        }
        fn connect(
            &self,
            _: &(),
            password: Option<&Secret>,
            deadline: Instant,
        ) -> Result<Shared, DeviceError> {
            // The fake clock has slept (delay) before connect; record the deadline relative
            // to the clock start plus the sleeps seen so far is done by the caller.
            self.connects.borrow_mut().push((
                deadline - self.clock_start,
                password.map(|p| p.expose().to_string()),
            ));
            if let Some(e) = &self.connect_error {
                return Err(e.clone());
            }
            Ok(Shared(self.device.clone()))
        }
    }

    fn invocation(stdin: &str, clock: &FakeClock, pcmk: Option<&str>) -> Invocation {
        Invocation {
            invoked_as: "fence_test".into(),
            args: vec![],
            stdin: stdin.as_bytes().to_vec(),
            pcmk_service: pcmk.map(str::to_string),
            started: clock.now(),
        }
    }

    fn go(agent: &Agent, stdin: &str, clock: &FakeClock, pcmk: Option<&str>) -> (u8, String) {
        let mut out = Vec::new();
        let code = run(agent, &invocation(stdin, clock, pcmk), &mut out, clock);
        (code, String::from_utf8(out).unwrap())
    }

    /// True while `pid` names a live (not zombie) process.
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => false,
            Ok(stat) => {
                // "pid (comm) S ...": the state follows the last ')'.
                let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start());
                !matches!(state.and_then(|r| r.chars().next()), Some('Z' | 'X') | None)
            }
        }
    }

    #[test]
    fn password_script_is_killed_with_its_group_at_login_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let c = FakeClock::new();
        let a = Agent::new(PowerStatus::On, &c);
        let started = Instant::now();
        let (code, out) = go(
            &a,
            &format!(
                "ip=x\naction=off\nlogin_timeout=1\npassword_script=sleep 60 & echo $! > {}; wait\n",
                pid_file.display()
            ),
            &c,
            None,
        );
        let took = started.elapsed();
        assert_eq!((code, out.as_str()), (1, ""));
        assert!(took >= Duration::from_secs(1), "{took:?}");
        assert!(took < Duration::from_secs(4), "not bounded: {took:?}");
        assert!(
            a.connects.borrow().is_empty(),
            "logged in without a password"
        );
        // Ground truth: the script's own child (the sleep) is gone too.
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !alive(pid)
        });
        assert!(gone, "the script's background sleep {pid} survived");
    }

    #[test]
    fn password_script_empty_or_huge_output_is_an_error_never_a_password() {
        for script in [
            "true",
            "printf '  \\n\\n'",
            "head -c 100000 /dev/zero | tr '\\\\0' x",
        ] {
            let c = FakeClock::new();
            let a = Agent::new(PowerStatus::On, &c);
            let (code, out) = go(
                &a,
                &format!("ip=x\naction=off\npassword=fallback\npassword_script={script}\n"),
                &c,
                None,
            );
            assert_eq!((code, out.as_str()), (1, ""), "{script}");
            assert!(a.connects.borrow().is_empty(), "{script}: logged in");
            assert!(a.calls().is_empty(), "{script}");
        }
    }

    #[test]
    fn stdin_is_capped_at_64_kib() {
        let mut buf = Vec::new();
        read_stdin_capped(&vec![b'#'; STDIN_LIMIT][..], &mut buf).unwrap();
        assert_eq!(buf.len(), STDIN_LIMIT);
        let mut buf = Vec::new();
        let err = read_stdin_capped(&vec![b'#'; STDIN_LIMIT + 1][..], &mut buf).unwrap_err();
        assert!(err.to_string().contains("64 KiB"), "{err}");
        assert!(buf.is_empty());
    }

    #[test]
    fn time_values_beyond_a_day_are_refused_before_any_arithmetic() {
        for opt in [
            "delay",
            "power_timeout",
            "login_timeout",
            "power_wait",
            "shell_timeout",
        ] {
            let c = FakeClock::new();
            let a = Agent::new(PowerStatus::On, &c);
            let (code, _) = go(
                &a,
                &format!("ip=x\naction=off\n{opt}=18446744073709551615\n"),
                &c,
                None,
            );
            assert_eq!(code, 1, "{opt}");
            assert!(a.connects.borrow().is_empty(), "{opt}");
            assert_eq!(c.elapsed(), Duration::ZERO, "{opt}");
        }
    }

    #[test]
    fn status_uses_one_session_and_closes_it() {
        let c = FakeClock::new();
        let a = Agent::new(PowerStatus::Off, &c);
        assert_eq!(
            go(&a, "ip=x\naction=status\n", &c, None),
            (2, "Status: OFF\n".into())
        );
        assert_eq!(a.calls(), ["status", "close"]);
        assert_eq!(a.connects.borrow().len(), 1);
    }

    #[test]
    fn docs_and_usage_errors_never_connect() {
        let c = FakeClock::new();
        let a = Agent::new(PowerStatus::On, &c);
        let (code, xml) = go(&a, "action=meta-data\n", &c, None);
        assert_eq!(code, 0);
        assert!(xml.contains("<resource-agent name=\"fence_test\""));
        let (code, help) = go(&a, "help=1\n", &c, None);
        assert_eq!(code, 0);
        assert!(help.starts_with("Usage:"));
        assert_eq!(go(&a, "version=1\n", &c, None), (0, "9.9\n".into()));
        assert_eq!(go(&a, "ip=x\naction=explode\n", &c, None).0, 1);
        assert_eq!(go(&a, "action=off\n", &c, None).0, 1, "no address");
        assert_eq!(
            go(&a, "ip=x\naction=validate-all\n", &c, None),
            (0, String::new())
        );
        assert_eq!(go(&a, "action=validate-all\n", &c, None).0, 1);
        assert_eq!(
            go(&a, "ip=x\naction=list\n", &c, None),
            (
                0,
                "NOTICE: List option is not working on this device yet\n".into()
            )
        );
        assert!(a.connects.borrow().is_empty());
        assert!(a.calls().is_empty());
    }

    #[test]
    fn delay_counts_from_process_start_for_off_and_reboot_only() {
        let c = FakeClock::new();
        let a = Agent::new(PowerStatus::On, &c);
        go(&a, "ip=x\naction=status\ndelay=3\n", &c, None);
        assert_eq!(c.elapsed(), Duration::ZERO);
        let c = FakeClock::new();
        let a = Agent::new(PowerStatus::On, &c);
        let (code, out) = go(&a, "ip=x\naction=off\ndelay=3\npower_wait=0\n", &c, None);
        assert_eq!((code, out.as_str()), (0, "Success: Powered OFF\n"));
        // 1 + delay seconds after start, then the off sequence (one poll, no sleeps left).
        assert_eq!(c.elapsed(), Duration::from_secs(4));
        // connect happened after the delay: deadline = 4 s + power_timeout 20 s
        assert_eq!(a.connects.borrow()[0].0, Duration::from_secs(24));
    }

    #[test]
    fn login_limit_follows_power_timeout_login_timeout_and_pacemaker() {
        let c = FakeClock::new();
        let a = Agent::new(PowerStatus::On, &c);
        go(&a, "ip=x\naction=status\n", &c, None);
        go(&a, "ip=x\naction=status\nlogin_timeout=7\n", &c, None);
        go(&a, "ip=x\naction=status\n", &c, Some("pacemaker-fenced"));
        go(
            &a,
            "ip=x\naction=status\nlogin_timeout=7\n",
            &c,
            Some("pacemaker-fenced"),
        );
        go(
            &a,
            "ip=x\naction=status\ndisable_timeout=false\n",
            &c,
            Some("pacemaker-fenced"),
        );
        go(&a, "ip=x\naction=status\n", &c, Some("stonith_admin"));
        let limits: Vec<u64> = a
            .connects
            .borrow()
            .iter()
            .map(|(d, _)| d.as_secs())
            .collect();
        assert_eq!(limits, [20, 7, 30, 30, 20, 20]);
    }

    #[test]
    fn password_script_wins_over_password() {
        let c = FakeClock::new();
        let a = Agent::new(PowerStatus::On, &c);
        go(&a, "ip=x\naction=status\npassword=a\n", &c, None);
        go(
            &a,
            "ip=x\naction=status\npassword=a\npassword_script=printf 'b  \\n\\n'\n",
            &c,
            None,
        );
        go(&a, "ip=x\naction=status\n", &c, None);
        let pws: Vec<Option<String>> = a.connects.borrow().iter().map(|(_, p)| p.clone()).collect();
        assert_eq!(pws, [Some("a".into()), Some("b".into()), None]);
        // a failing script stops before connecting
        assert_eq!(
            go(&a, "ip=x\naction=off\npassword_script=exit 4\n", &c, None).0,
            1
        );
        assert_eq!(a.connects.borrow().len(), 3);
    }

    #[test]
    fn failures_exit_1_and_still_close_the_session() {
        let c = FakeClock::new();
        let a = Agent::new(PowerStatus::On, &c);
        a.device.borrow_mut().fail_command = Some(DeviceError::Refused("no".into()));
        assert_eq!(go(&a, "ip=x\naction=off\n", &c, None), (1, String::new()));
        assert_eq!(a.calls(), ["status", "set OFF", "close"]);

        let mut a = Agent::new(PowerStatus::On, &c);
        a.connect_error = Some(DeviceError::LoginDenied("wrong password".into()));
        assert_eq!(go(&a, "ip=x\naction=off\n", &c, None), (1, String::new()));
        assert!(a.calls().is_empty());
    }
}
