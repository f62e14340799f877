//! The whole life of one agent invocation, in fencing.py's order:
//! read options (argv, else stdin) → help/metadata/version → logging → action check →
//! validation (validate-all stops here) → debug file → password_script → delay → one session
//! → action → close → exit code 0/1/2.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::action::{
    perform, ActionError, Clock, Limits, Method, Outcome, RebootReport, SystemClock,
};
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
        if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
            log::error!("Failed: cannot read options from stdin: {e}");
            return ExitCode::from(1);
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
        Ok(Some(pw)) => {
            logger.add_secret(pw.expose());
            options.set_password(pw);
        }
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
        match r {
            RebootReport::OffButOnFailed { .. } | RebootReport::CycleWasOffOnFailed { .. } => {
                log::error!("Timed out waiting to power ON: {}", r.describe())
            }
            _ if r.is_abnormal() => log::warn!("Reboot: {}", r.describe()),
            _ => log::info!("Reboot: {}", r.describe()),
        }
    }
    if let Some(line) = outcome.stdout_line() {
        print(out, &line);
    }
    outcome.exit_code()
}

/// Errors of `password_script`.
#[derive(Debug, thiserror::Error)]
pub enum PasswordScriptError {
    #[error("Failed: cannot run password_script: {0}")]
    Spawn(std::io::Error),
    #[error("Failed: password_script exited with {0}")]
    Status(std::process::ExitStatus),
    #[error("Failed: password_script output is not valid UTF-8")]
    NotUtf8,
}

/// The password: `password_script` (run through `sh -c`, as fencing.py's `os.popen`; its
/// stdout with trailing whitespace removed) wins over `password`.
pub fn resolve_password(options: &Options) -> Result<Option<Secret>, PasswordScriptError> {
    if let Some(script) = options.get("password_script").filter(|s| !s.is_empty()) {
        log::debug!("running password_script");
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(PasswordScriptError::Spawn)?;
        if !output.status.success() {
            return Err(PasswordScriptError::Status(output.status));
        }
        let text = zeroize::Zeroizing::new(
            String::from_utf8(output.stdout).map_err(|_| PasswordScriptError::NotUtf8)?,
        );
        return Ok(Some(Secret::new(text.trim_end().to_string())));
    }
    Ok(options
        .password_option()
        .map(|p| Secret::new(p.to_string())))
}
