//! Validated options: the action, typed parameter values with their defaults, and the timing
//! derived from them (fencing.py's `check_input` / `_validate_input` / `_set_default_values`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::param::{Param, ParamKind};
use crate::parse::{parse_bool_word, Parsed};
use crate::secret::Secret;

/// The actions of the fence-agent API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    On,
    Off,
    Reboot,
    Status,
    Monitor,
    List,
    ListStatus,
    Metadata,
    Manpage,
    ValidateAll,
    Diag,
}

impl Action {
    pub const ALL: [Action; 11] = [
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
        Action::Diag,
    ];

    /// The action's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::On => "on",
            Action::Off => "off",
            Action::Reboot => "reboot",
            Action::Status => "status",
            Action::Monitor => "monitor",
            Action::List => "list",
            Action::ListStatus => "list-status",
            Action::Metadata => "metadata",
            Action::Manpage => "manpage",
            Action::ValidateAll => "validate-all",
            Action::Diag => "diag",
        }
    }

    /// Parse an action name: case-insensitive, `meta-data` is `metadata` (OCF compatibility).
    pub fn parse(name: &str) -> Option<Action> {
        let lower = name.to_ascii_lowercase();
        let lower = if lower == "meta-data" {
            "metadata".to_string()
        } else {
            lower
        };
        Action::ALL.into_iter().find(|a| a.as_str() == lower)
    }

    /// Actions before which fencing.py applies `delay`.
    pub fn is_delayed(self) -> bool {
        matches!(self, Action::Off | Action::Reboot)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// All timing parameters, already resolved (defaults, `disable_timeout`, Pacemaker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Wait before any device contact, for off/reboot only (fencing.py: `1 + delay` seconds
    /// after process start).
    pub delay: Duration,
    /// Sleep after each power command, before status polling.
    pub power_wait: Duration,
    /// `power_timeout`: both the number of status polls after a power command and the
    /// wall-clock limit of every single device operation. `None` = unlimited.
    pub power_timeout: Option<Duration>,
    /// `login_timeout`: limit for opening the session. `None` = unlimited.
    pub login_timeout: Option<Duration>,
    /// `shell_timeout` (kept for agents that talk to a shell; unused by IPMI).
    pub shell_timeout: Option<Duration>,
    /// Sleep between status polls.
    pub stonith_status_sleep: Duration,
    /// `retry_on`: extra power-on attempts.
    pub retry_on: u32,
    /// Whether `disable_timeout` is in force (given, or implied by Pacemaker's fencer).
    pub timeouts_disabled: bool,
}

impl Timing {
    /// Number of status polls allowed after a power command (`None` = unlimited), as
    /// fencing.py's counter-based loop uses `power_timeout`.
    pub fn status_poll_limit(&self) -> Option<u64> {
        self.power_timeout.map(|d| d.as_secs().max(1))
    }
}

fn none_if_zero(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Validated options. `Debug` shows secret parameters as `[hidden]`.
#[derive(Clone)]
pub struct Options {
    params: Vec<Param>,
    values: BTreeMap<&'static str, String>,
    explicit: BTreeSet<&'static str>,
    action: Action,
    verbose_level: u32,
    password: Option<Secret>,
    timeouts_disabled: bool,
}

impl Drop for Options {
    /// The values include the password and keys as given: zero them.
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for v in self.values.values_mut() {
            v.zeroize();
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .values
            .iter()
            .map(|(k, v)| {
                let secret = self.params.iter().any(|p| p.name == *k && p.secret);
                (*k, if secret { "[hidden]" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("Options")
            .field("action", &self.action)
            .field("values", &shown)
            .field("verbose_level", &self.verbose_level)
            .field("password", &self.password)
            .field("timeouts_disabled", &self.timeouts_disabled)
            .finish()
    }
}

/// The result of the first check phase: either documentation to print, or options to validate.
#[derive(Debug)]
pub enum Request {
    Help,
    Metadata,
    Version,
    Run(Box<Options>),
}

/// A user error that fencing.py reports through `fail_usage` (followed by "Please use '-h'").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// First phase of `check_input`: resolve the action, answer help/metadata/version before any
/// validation, compute the verbose level. Returns warnings to log (after logging is set up).
pub fn classify(
    params: &[Param],
    mut parsed: Parsed,
    warnings: &mut Vec<String>,
) -> Result<Request, UsageError> {
    warnings.append(&mut parsed.warnings);
    // process_input: with port_as_ip, the plug replaces the address.
    if parsed.values.get("port_as_ip").map(String::as_str) == Some("1") {
        if let Some(plug) = parsed.values.get("plug").cloned() {
            parsed.values.insert("ip", plug);
        }
    }
    let default_action = params
        .iter()
        .find(|p| p.name == "action")
        .and_then(|p| p.default)
        .unwrap_or("reboot");
    let action_text = parsed
        .values
        .get("action")
        .cloned()
        .unwrap_or_else(|| default_action.to_string());
    let action = Action::parse(&action_text);
    let flag = |name: &str| parsed.values.get(name).map(String::as_str) == Some("1");
    if flag("help") {
        return Ok(Request::Help);
    }
    if matches!(action, Some(Action::Metadata | Action::Manpage)) {
        return Ok(Request::Metadata);
    }
    if flag("version") {
        return Ok(Request::Version);
    }

    let mut verbose_level: i64 = match parsed.values.get("verbose_level") {
        Some(v) => v.trim().parse().unwrap_or(-1),
        None => i64::from(parsed.verbose_count),
    };
    if verbose_level < 0 {
        warnings.push(
            "Parse error: Option 'verbose_level' must be an integer greater than or equal to 0. Setting verbose_level to 0."
                .to_string(),
        );
        verbose_level = 0;
    }
    if verbose_level == 0 && flag("verbose") && parsed.values.contains_key("verbose_level") {
        warnings.push(
            "Parse error: Ignoring option 'verbose' because it conflicts with verbose_level=0"
                .to_string(),
        );
    }
    let Some(action) = action else {
        return Err(UsageError(format!(
            "Failed: Unrecognised action '{}'",
            action_text.to_ascii_lowercase()
        )));
    };

    let explicit: BTreeSet<&'static str> = parsed.values.keys().copied().collect();
    let mut values = std::mem::take(&mut parsed.values);
    for p in params {
        if let Some(d) = p.default {
            values.entry(p.name).or_insert_with(|| d.to_string());
        }
    }
    Ok(Request::Run(Box::new(Options {
        params: params.to_vec(),
        values,
        explicit,
        action,
        verbose_level: verbose_level as u32,
        password: None,
        timeouts_disabled: false,
    })))
}

fn python_list(choices: &[&str]) -> String {
    let items: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
    format!("[{}]", items.join(", "))
}

impl Options {
    /// Second phase (`_validate_input`): every problem, in fencing.py's order: address,
    /// choices, types; then the library's own range checks. `requires_address` is false for
    /// agents without a network address.
    pub fn validate(&self, requires_address: bool) -> Vec<UsageError> {
        let mut errors = Vec::new();
        if requires_address
            && self.params.iter().any(|p| p.name == "ip")
            && self.get("ip").map_or(true, str::is_empty)
        {
            errors.push(UsageError(
                "Failed: You have to enter fence address".to_string(),
            ));
        }
        for p in &self.params {
            if let ParamKind::Select(choices) = p.kind {
                if let Some(v) = self.values.get(p.name) {
                    if !choices.iter().any(|c| c.eq_ignore_ascii_case(v)) {
                        errors.push(UsageError(format!(
                            "Failed: You have to enter a valid choice for --{} from the valid values: {}",
                            p.long_option(),
                            python_list(choices)
                        )));
                    }
                }
            }
        }
        for p in &self.params {
            let Some(v) = self.values.get(p.name) else {
                continue;
            };
            match p.kind {
                ParamKind::Second
                    if parse_int(v).is_some_and(|n| n > 0) && parse_seconds(v).is_none() =>
                {
                    errors.push(UsageError(format!(
                        "Failed: The value you have entered for --{} is larger than {MAX_SECONDS} seconds (one day)",
                        p.long_option()
                    )))
                }
                ParamKind::Second if parse_seconds(v).is_none() => {
                    errors.push(UsageError(format!(
                    "Failed: The value you have entered for --{} is not a valid time in seconds",
                    p.long_option()
                )))
                }
                ParamKind::Integer if p.name != "verbose_level" && parse_int(v).is_none() => errors
                    .push(UsageError(format!(
                        "Failed: The value you have entered for --{} is not a valid integer",
                        p.long_option()
                    ))),
                _ => {}
            }
        }
        if let Some(n) = self.integer("retry_on") {
            if n < 0 {
                errors.push(UsageError(
                    "Failed: The value you have entered for --retry-on must be 0 or more"
                        .to_string(),
                ));
            }
        }
        errors
    }

    /// Apply `disable_timeout`, which Pacemaker's fencer implies (`PCMK_service`).
    pub fn apply_environment(&mut self, pcmk_service: Option<&str>) {
        let given = self.values.get("disable_timeout").cloned();
        let disabled = match given {
            Some(v) => parse_bool_word(&v) == Some(true),
            None => pcmk_service == Some("pacemaker-fenced"),
        };
        self.timeouts_disabled = disabled;
    }

    /// Set the password (from the `password` option or the output of `password_script`).
    pub fn set_password(&mut self, password: Secret) {
        self.password = Some(password);
    }

    pub fn action(&self) -> Action {
        self.action
    }

    /// Override the action (used by agents that map one action onto another).
    pub fn set_action(&mut self, action: Action) {
        self.action = action;
    }

    pub fn verbose_level(&self) -> u32 {
        self.verbose_level
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The value (given or default) of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether the parameter was given explicitly.
    pub fn is_set(&self, name: &str) -> bool {
        self.explicit.contains(name)
    }

    /// A flag's value (given or default).
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).and_then(parse_bool_word) == Some(true)
    }

    pub fn integer(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(parse_int)
    }

    pub fn seconds(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(parse_seconds)
    }

    /// A select value, lowercased.
    pub fn choice(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_ascii_lowercase)
    }

    /// The password, once resolved. Never log it.
    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// The raw `password` option (before `password_script` resolution).
    pub(crate) fn password_option(&self) -> Option<&str> {
        self.get("password")
    }

    /// The timing parameters with defaults and `disable_timeout` applied.
    pub fn timing(&self) -> Timing {
        let secs = |n: &str| self.seconds(n).unwrap_or(0);
        let disabled = self.timeouts_disabled;
        let limit = |n: &str| {
            if disabled {
                None
            } else {
                none_if_zero(secs(n))
            }
        };
        Timing {
            delay: Duration::from_secs(secs("delay")),
            power_wait: Duration::from_secs(secs("power_wait")),
            power_timeout: limit("power_timeout"),
            login_timeout: limit("login_timeout"),
            shell_timeout: limit("shell_timeout"),
            stonith_status_sleep: Duration::from_secs(secs("stonith_status_sleep")),
            retry_on: self
                .integer("retry_on")
                .unwrap_or(1)
                .clamp(0, u32::MAX as i64) as u32,
            timeouts_disabled: disabled,
        }
    }
}

/// Python `int()` of a string: optional sign, digits, surrounding whitespace allowed.
pub fn parse_int(v: &str) -> Option<i64> {
    let t = v.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// The largest accepted `second` value: one day. No fence operation waits that long, and a
/// bound keeps every deadline computed from a time value far from overflowing.
pub const MAX_SECONDS: u64 = 86_400;

/// A `second` value: an integer from 0 to [`MAX_SECONDS`] (fencing.py crashes later on
/// negative sleeps and on values too large for its clock; we reject them up front).
pub fn parse_seconds(v: &str) -> Option<u64> {
    parse_int(v)
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n <= MAX_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param::std_params::*;
    use crate::parse::{parse_args, parse_stdin};

    const PRIVLVL: Param = Param::new(
        "privlvl",
        ParamKind::Select(&["callback", "user", "operator", "administrator"]),
        "Privilege level on IPMI device",
    )
    .short('L')
    .hint("[level]")
    .default("administrator");

    fn table() -> Vec<Param> {
        let mut v = COMMON.to_vec();
        v.extend([
            IP, IPPORT, USERNAME, PASSWORD, PLUG_AS_IP, PORT_AS_IP, METHOD, PRIVLVL,
        ]);
        v
    }

    fn classify_stdin(s: &str) -> (Result<Request, UsageError>, Vec<String>) {
        let t = table();
        let mut w = Vec::new();
        let r = classify(&t, parse_stdin(&t, s.as_bytes()).unwrap(), &mut w);
        (r, w)
    }

    fn options(s: &str) -> Options {
        match classify_stdin(s).0.unwrap() {
            Request::Run(o) => *o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn action_names() {
        assert_eq!(Action::parse("STATUS"), Some(Action::Status));
        assert_eq!(Action::parse("meta-data"), Some(Action::Metadata));
        assert_eq!(Action::parse("list-status"), Some(Action::ListStatus));
        assert_eq!(Action::parse("enable"), None);
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert!(Action::Off.is_delayed() && Action::Reboot.is_delayed());
        assert!(!Action::On.is_delayed() && !Action::Diag.is_delayed());
    }

    #[test]
    fn default_action_is_reboot_and_defaults_fill_in() {
        let o = options("ip=x\n");
        assert_eq!(o.action(), Action::Reboot);
        assert_eq!(o.get("power_timeout"), Some("20"));
        assert!(!o.is_set("power_timeout"));
        assert_eq!(o.choice("privlvl").as_deref(), Some("administrator"));
    }

    #[test]
    fn docs_requests_come_before_validation() {
        // Metadata and help need no address and ignore bad values.
        assert!(matches!(
            classify_stdin("action=meta-data\npower_timeout=abc\n").0,
            Ok(Request::Metadata)
        ));
        assert!(matches!(
            classify_stdin("action=manpage\n").0,
            Ok(Request::Metadata)
        ));
        assert!(matches!(
            classify_stdin("help=1\naction=bogus\n").0,
            Ok(Request::Help)
        ));
        assert!(matches!(
            classify_stdin("version=1\n").0,
            Ok(Request::Version)
        ));
        // Help wins over metadata, metadata over version (fencing.py show_docs order).
        assert!(matches!(
            classify_stdin("help=1\naction=metadata\n").0,
            Ok(Request::Help)
        ));
        assert!(matches!(
            classify_stdin("version=1\naction=metadata\n").0,
            Ok(Request::Metadata)
        ));
    }

    #[test]
    fn unknown_action_is_reported_before_option_errors() {
        let (r, _) = classify_stdin("action=Explode\npower_timeout=abc\n");
        assert_eq!(r.unwrap_err().0, "Failed: Unrecognised action 'explode'");
    }

    #[test]
    fn validation_order_address_choices_types() {
        // address, then choices, then types in parameter-table order

        let o = options("privlvl=root\npower_wait=x\nipport=y\naction=status\n");
        let e: Vec<String> = o.validate(true).into_iter().map(|e| e.0).collect();
        assert_eq!(
            e,
            vec![
                "Failed: You have to enter fence address",
                "Failed: You have to enter a valid choice for --privlvl from the valid values: ['callback', 'user', 'operator', 'administrator']",
                "Failed: The value you have entered for --power-wait is not a valid time in seconds",
                "Failed: The value you have entered for --ipport is not a valid integer",
            ]
        );
    }

    #[test]
    fn choices_are_case_insensitive_and_negative_seconds_rejected() {
        let o = options("ip=x\nprivlvl=OPERATOR\nmethod=Cycle\n");
        assert!(o.validate(true).is_empty());
        assert_eq!(o.choice("method").as_deref(), Some("cycle"));
        let o = options("ip=x\npower_wait=-1\nretry_on=-2\n");
        assert_eq!(o.validate(true).len(), 2);
        let o = options("ip=x\ndelay= +3 \n");
        assert!(o.validate(true).is_empty());
        assert_eq!(o.timing().delay, Duration::from_secs(3));
    }

    #[test]
    fn verbose_level_rules() {
        assert_eq!(options("verbose=1\n").verbose_level(), 1);
        assert_eq!(options("verbose_level=3\n").verbose_level(), 3);
        let (r, w) = classify_stdin("verbose_level=x\n");
        let Ok(Request::Run(o)) = r else { panic!() };
        assert_eq!(o.verbose_level(), 0);
        assert!(w[0].contains("verbose_level"));
        let t = table();
        let mut w = Vec::new();
        let p = parse_args(&t, &["-vv".to_string()]).unwrap();
        let Ok(Request::Run(o)) = classify(&t, p, &mut w) else {
            panic!()
        };
        assert_eq!(o.verbose_level(), 2);
    }

    #[test]
    fn port_as_ip_moves_plug_to_ip_only_when_enabled() {
        assert_eq!(
            options("plug=10.0.0.9\nport_as_ip=1\n").get("ip"),
            Some("10.0.0.9")
        );
        let o = options("port=node1\nip=10.0.0.1\n");
        assert_eq!(o.get("ip"), Some("10.0.0.1"));
    }

    #[test]
    fn timing_defaults_and_disable_timeout() {
        let mut o = options("ip=x\n");
        o.apply_environment(None);
        let t = o.timing();
        assert_eq!(t.power_timeout, Some(Duration::from_secs(20)));
        assert_eq!(t.login_timeout, Some(Duration::from_secs(5)));
        assert_eq!(t.stonith_status_sleep, Duration::from_secs(1));
        assert_eq!(t.retry_on, 1);
        assert_eq!(t.status_poll_limit(), Some(20));
        assert!(!t.timeouts_disabled);

        // Under Pacemaker's fencer the internal timeouts are off ...
        o.apply_environment(Some("pacemaker-fenced"));
        let t = o.timing();
        assert!(t.timeouts_disabled);
        assert_eq!(t.power_timeout, None);
        assert_eq!(t.login_timeout, None);
        assert_eq!(t.status_poll_limit(), None);
        // ... but not under stonith_admin,
        o.apply_environment(Some("stonith_admin"));
        assert!(!o.timing().timeouts_disabled);
        // and an explicit disable_timeout wins over the environment.
        let mut o = options("ip=x\ndisable_timeout=false\n");
        o.apply_environment(Some("pacemaker-fenced"));
        assert!(!o.timing().timeouts_disabled);
        let mut o = options("ip=x\ndisable_timeout=YES\n");
        o.apply_environment(None);
        assert!(o.timing().timeouts_disabled);
        // power_timeout=0 means unlimited
        let mut o = options("ip=x\npower_timeout=0\n");
        o.apply_environment(None);
        assert_eq!(o.timing().power_timeout, None);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut o = options("ip=x\npassword=hunter2-pw\n");
        o.set_password(Secret::new("hunter2-pw".into()));
        let text = format!("{o:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("[hidden]"));
    }

    #[test]
    fn python_int_rules() {
        assert_eq!(parse_int(" 12 "), Some(12));
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("1.5"), None);
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("0x10"), None);
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("86400"), Some(86_400));
        assert_eq!(parse_seconds("86401"), None);
        assert_eq!(parse_seconds("99999999999999999999"), None);
    }
}
