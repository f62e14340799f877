//! fence_ipmi: a native IPMI fence agent, drop-in for fence_ipmilan.
//!
//! This library holds the agent's parameter table (every fence_ipmilan 4.12.1 parameter with
//! its default, plus `allow_unauthenticated` and its alias `allow_cipher_zero`), the option checks, and the [`PowerSession`] on top of
//! one `ipmi_lan::Session`; `fence-agent` does everything else.
//!
//! Parameters that only make sense for ipmitool (`ipmitool_path`, `ipmitool_timeout` as a
//! command-line flag, `use_sudo`, `sudo_path`) are accepted: `ipmitool_timeout` becomes the
//! retransmit interval of the native session (what ipmitool's `-N` is), the others are ignored
//! with a debug log line, since no external program is run.

use std::time::{Duration, Instant};

use fence_agent::param::std_params::{self, COMMON};
use fence_agent::{
    Action, AgentDocs, DeviceError, FenceAgent, Options, Param, ParamKind, PowerSession,
    PowerStatus, Secret, UsageError,
};
use ipmi_lan::{ChassisControl, ConnectOptions, Interface, IpmiError, PowerState, Privilege};

/// The IPMI agent.
#[derive(Clone, Copy, Debug, Default)]
pub struct IpmiAgent;

/// The names this agent answers to, with fence_ipmilan's descriptions (symlinks of
/// fence_ipmilan in fence-agents).
pub const SYMLINKS: [(&str, &str); 6] = [
    ("fence_ilo3", "Fence agent for HP iLO3"),
    ("fence_ilo4", "Fence agent for HP iLO4"),
    ("fence_ilo5", "Fence agent for HP iLO5"),
    ("fence_ipmilanplus", "Fence agent for IPMIv2 lanplus"),
    (
        "fence_imm",
        "Fence agent for IBM Integrated Management Module",
    ),
    ("fence_idrac", "Fence agent for Dell iDRAC"),
];

const LANPLUS: Param = Param::new(
    "lanplus",
    ParamKind::Flag,
    "Use Lanplus to improve security of connection",
)
.short('P')
.default("0");
const LANPLUS_ON: Param = LANPLUS.default("1");
const AUTH: Param = Param::new(
    "auth",
    ParamKind::Select(&["md5", "password", "none"]),
    "IPMI Lan Auth type.",
)
.short('A')
.hint("[auth]");
const CIPHER: Param = Param::new(
    "cipher",
    ParamKind::String,
    "Ciphersuite to use (same as ipmitool -C parameter)",
)
.short('C')
.hint("[cipher]");
const PRIVLVL: Param = Param::new(
    "privlvl",
    ParamKind::Select(&["callback", "user", "operator", "administrator"]),
    "Privilege level on IPMI device",
)
.short('L')
.hint("[level]")
.default("administrator");
const IPMITOOL_PATH: Param = Param::new(
    "ipmitool_path",
    ParamKind::String,
    "Path to ipmitool binary",
)
.hint("[path]")
.default("/usr/bin/ipmitool")
.order(200);
const IPMITOOL_TIMEOUT: Param = Param::new(
    "ipmitool_timeout",
    ParamKind::String,
    "Timeout (sec) for IPMI operation",
)
.hint("[timeout]")
.default("2")
.order(201);
const TARGET: Param = Param::new(
    "target",
    ParamKind::String,
    "Bridge IPMI requests to the remote target address",
)
.hint("[targetaddress]");
const HEXADECIMAL_KG: Param = Param::new(
    "hexadecimal_kg",
    ParamKind::String,
    "Hexadecimal-encoded Kg key for IPMIv2 authentication",
)
.hint("[key]")
.secret();
/// Our extension: sessions whose answers cannot be authenticated need an explicit opt-in.
const ALLOW_UNAUTHENTICATED: Param = Param::new(
    "allow_unauthenticated",
    ParamKind::Flag,
    "Allow IPMI sessions whose answers cannot be authenticated, so that anyone on the network could forge them: cipher suites 0 (any password accepted) and 1 (no integrity), IPMI 1.5 with per-message authentication disabled or authentication type none. fence_ipmi extension; without it these are refused",
)
.default("0");
/// The earlier name of `allow_unauthenticated` (it covered cipher suite 0 only); still accepted.
const ALLOW_CIPHER_ZERO: Param = Param::new(
    "allow_cipher_zero",
    ParamKind::Flag,
    "Same as allow_unauthenticated (its earlier name). fence_ipmi extension",
)
.default("0");
const POWER_WAIT_IPMI: Param = std_params::POWER_WAIT.default("2");
const POWER_WAIT_ILO3: Param = std_params::POWER_WAIT.default("4");
const IPPORT_IPMI: Param = std_params::IPPORT.default("623");

/// Cipher suite used when none is given: 3 (HMAC-SHA1, AES-128), as ipmitool's choice on most
/// BMCs; if the BMC rejects it, 17 (HMAC-SHA256) is tried.
pub const DEFAULT_CIPHER_SUITE: u8 = 3;
const FALLBACK_CIPHER_SUITE: u8 = 17;

/// The checked IPMI settings of one invocation.
#[derive(Clone, Debug)]
pub struct IpmiConfig {
    pub host: String,
    pub port: u16,
    pub interface: Interface,
    pub username: String,
    pub privilege: Privilege,
    /// `None`: not given (try [`DEFAULT_CIPHER_SUITE`], then 17).
    pub cipher_suite: Option<u8>,
    /// `allow_unauthenticated` (or its alias `allow_cipher_zero`) was set.
    pub allow_unauthenticated: bool,
    pub auth_type: Option<ipmi_lan::AuthType>,
    /// The Kg key as the hexadecimal text given (checked).
    pub kg: Option<Secret>,
    pub retransmit_interval: Duration,
    pub target: Option<u8>,
}

impl IpmiAgent {
    fn lanplus_by_default(invoked_as: &str) -> bool {
        matches!(
            invoked_as,
            "fence_ilo3" | "fence_ilo4" | "fence_ilo5" | "fence_ipmilanplus"
        )
    }
}

impl FenceAgent for IpmiAgent {
    type Config = IpmiConfig;
    type Session = IpmiSession;

    fn params(&self, invoked_as: &str) -> Vec<Param> {
        let mut params: Vec<Param> = COMMON
            .iter()
            .copied()
            .map(|p| match p.name {
                "power_wait" if invoked_as == "fence_ilo3" => POWER_WAIT_ILO3,
                "power_wait" => POWER_WAIT_IPMI,
                _ => p,
            })
            .collect();
        params.extend([
            std_params::IP,
            IPPORT_IPMI,
            std_params::USERNAME,
            std_params::PASSWORD,
            std_params::PASSWORD_SCRIPT,
            std_params::PLUG_AS_IP,
            std_params::PORT_AS_IP,
            std_params::METHOD,
            std_params::USE_SUDO,
            std_params::SUDO_PATH,
            if Self::lanplus_by_default(invoked_as) {
                LANPLUS_ON
            } else {
                LANPLUS
            },
            AUTH,
            CIPHER,
            PRIVLVL,
            IPMITOOL_PATH,
            IPMITOOL_TIMEOUT,
            TARGET,
            HEXADECIMAL_KG,
            ALLOW_UNAUTHENTICATED,
            ALLOW_CIPHER_ZERO,
        ]);
        params
    }

    fn docs(&self, invoked_as: &str) -> AgentDocs {
        let shortdesc = SYMLINKS
            .iter()
            .find(|(n, _)| *n == invoked_as)
            .map_or("Fence agent for IPMI", |(_, d)| d);
        AgentDocs {
            name: invoked_as.to_string(),
            shortdesc: shortdesc.to_string(),
            longdesc: "fence_ipmi is a Power Fencing agent which can be used with machines \
                controlled by IPMI. It speaks IPMI over LAN itself (IPMI 1.5 \"lan\" and IPMI 2.0 \
                \"lanplus\"), with one session per action, and does not need ipmitool. \
                WARNING! With method=cycle the agent might report success before the node is \
                powered off. You should use -m/method onoff if your fence device works \
                correctly with that option."
                .to_string(),
            vendor_url: String::new(),
            symlinks: SYMLINKS
                .iter()
                .map(|(n, d)| (n.to_string(), d.to_string()))
                .collect(),
            actions: vec![
                Action::On,
                Action::Off,
                Action::Reboot,
                Action::Status,
                Action::Monitor,
                Action::Metadata,
                Action::Manpage,
                Action::ValidateAll,
                Action::Diag,
            ],
        }
    }

    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    fn accepted_actions(&self) -> Vec<Action> {
        Action::ALL.to_vec()
    }

    fn configure(&self, options: &Options) -> Result<IpmiConfig, Vec<UsageError>> {
        let mut errors = Vec::new();
        let mut fail = |m: String| errors.push(UsageError(format!("Failed: {m}")));

        let host = options.get("ip").unwrap_or_default().to_string();
        let port = match options.integer("ipport") {
            Some(p) if (1..=65535).contains(&p) => p as u16,
            _ => {
                fail(
                    "The value you have entered for --ipport is not a valid UDP port (1-65535)"
                        .into(),
                );
                0
            }
        };
        let interface = if options.flag("lanplus") {
            Interface::LanPlus
        } else {
            Interface::Lan15
        };
        let privilege: Privilege = options
            .choice("privlvl")
            .and_then(|p| p.parse().ok())
            .unwrap_or(Privilege::Administrator);
        let allow_unauthenticated =
            options.flag("allow_unauthenticated") || options.flag("allow_cipher_zero");
        let cipher_suite = match options.get("cipher").filter(|c| !c.trim().is_empty()) {
            None => None,
            Some(c) => match c.trim().parse::<u8>() {
                Ok(n) if [0, 1, 2, 3, 17].contains(&n) => Some(n),
                _ => {
                    fail(format!(
                        "The value you have entered for --cipher is not a supported cipher suite (0, 1, 2, 3 or 17): '{c}'"
                    ));
                    None
                }
            },
        };
        if cipher_suite == Some(0) && interface == Interface::LanPlus && !allow_unauthenticated {
            fail(
                "cipher suite 0 authenticates nothing (the BMC accepts any password); refusing it. \
                 Set allow_unauthenticated=1 (--allow-unauthenticated; alias allow_cipher_zero) if you really want it"
                    .into(),
            );
        }
        if cipher_suite == Some(1) && interface == Interface::LanPlus && !allow_unauthenticated {
            fail(
                "cipher suite 1 has no integrity protection: every answer after login could be forged; refusing it. \
                 Set allow_unauthenticated=1 (--allow-unauthenticated) if you really want it"
                    .into(),
            );
        }
        let auth_type = options
            .choice("auth")
            .and_then(|a| a.parse::<ipmi_lan::AuthType>().ok());
        let kg = match options.get("hexadecimal_kg").filter(|k| !k.is_empty()) {
            None => None,
            Some(hex) => match decode_hex(hex).map(zeroize::Zeroizing::new) {
                // Kept as the hexadecimal text; decoded again when the session is opened.
                Some(bytes) if bytes.len() <= 20 => {
                    register_kg_spellings(hex, &bytes);
                    Some(Secret::new(hex.to_string()))
                }
                _ => {
                    fail("The value you have entered for --hexadecimal-kg is not a hexadecimal key of at most 20 bytes (40 hex digits)".into());
                    None
                }
            },
        };
        if kg.is_some() && interface == Interface::Lan15 {
            log::warn!("hexadecimal_kg is only used with lanplus; ignored for IPMI 1.5");
        }
        let retransmit_interval = match options
            .get("ipmitool_timeout")
            .and_then(|t| t.trim().parse::<f64>().ok())
        {
            Some(s) if s > 0.0 && s <= 3600.0 => Duration::from_secs_f64(s),
            _ => {
                fail("The value you have entered for --ipmitool-timeout is not a positive number of seconds".into());
                Duration::from_secs(2)
            }
        };
        let target = match options.get("target").filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => match parse_ipmb_address(t) {
                Some(a) => Some(a),
                None => {
                    fail(format!(
                        "The value you have entered for --target is not an IPMB address (0x00-0xff): '{t}'"
                    ));
                    None
                }
            },
        };
        for ignored in ["ipmitool_path", "use_sudo", "sudo_path"] {
            if options.is_set(ignored) {
                log::debug!(
                    "{ignored} is ignored: fence_ipmi speaks IPMI itself and runs no external program"
                );
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(IpmiConfig {
            host,
            port,
            interface,
            username: options.get("username").unwrap_or_default().to_string(),
            privilege,
            cipher_suite,
            allow_unauthenticated,
            auth_type,
            kg,
            retransmit_interval,
            target,
        })
    }

    fn connect(
        &self,
        config: &IpmiConfig,
        password: Option<&Secret>,
        deadline: Instant,
    ) -> Result<IpmiSession, DeviceError> {
        let suites: &[u8] = match (config.interface, config.cipher_suite) {
            (_, Some(s)) => &[s],
            (Interface::LanPlus, None) => &[DEFAULT_CIPHER_SUITE, FALLBACK_CIPHER_SUITE],
            // IPMI 1.5 has no cipher suites; the value is not used.
            (Interface::Lan15, None) => &[DEFAULT_CIPHER_SUITE],
        };
        // One set of options for every suite tried: only the suite changes.
        let mut opts = connect_options(config, password)?;
        let session = open_first_accepted(suites, |suite| {
            opts.cipher_suite = suite;
            log::debug!(
                "opening IPMI {} session to {} port {} as user {:?}, privilege {}, cipher suite {}",
                match config.interface {
                    Interface::LanPlus => "2.0 (lanplus)",
                    Interface::Lan15 => "1.5 (lan)",
                },
                config.host,
                config.port,
                config.username,
                config.privilege,
                suite
            );
            ipmi_lan::Session::open(&opts, deadline)
        })?;
        Ok(IpmiSession { session })
    }

    fn operation_limit_without_timeout(&self, config: &IpmiConfig) -> Duration {
        // What ipmitool gives itself with -N <interval> and its default 4 retries on lanplus
        // (measured: 28 s with -N 2); never less than 30 s.
        (config.retransmit_interval * 14).max(Duration::from_secs(30))
    }
}

/// ipmi-lan's options for this configuration (cipher suite: [`DEFAULT_CIPHER_SUITE`]).
fn connect_options(
    config: &IpmiConfig,
    password: Option<&Secret>,
) -> Result<ConnectOptions, DeviceError> {
    let kg = match &config.kg {
        None => None,
        // `configure` checked the text; never fall back to "no key" silently.
        Some(hex) => Some(ipmi_lan::Secret::new(decode_hex(hex.expose()).ok_or_else(
            || DeviceError::Other("hexadecimal_kg is not a hexadecimal key".into()),
        )?)),
    };
    Ok(ConnectOptions {
        host: config.host.clone(),
        port: config.port,
        interface: config.interface,
        username: config.username.clone(),
        password: ipmi_lan::Secret::new(
            password
                .map(|p| p.expose().as_bytes().to_vec())
                .unwrap_or_default(),
        ),
        kg,
        privilege: config.privilege,
        cipher_suite: DEFAULT_CIPHER_SUITE,
        allow_unauthenticated: config.allow_unauthenticated,
        auth_type: config.auth_type,
        retransmit_interval: config.retransmit_interval,
        target: config.target,
    })
}

/// Open a session with the first of `suites` the BMC accepts. The next suite is tried only when
/// the BMC turned the previous one down ([`IpmiError::is_cipher_suite_rejection`]: it refused
/// the proposal, or ignored Open Session, which ipmi_sim and real BMCs also do when their session
/// table is full); any other error is the real cause and ends the attempt at once. When every
/// suite is turned down, the error carries each suite's reason, so the operator sees e.g. "no
/// free session slot" rather than only the last suite's rejection.
pub fn open_first_accepted<S>(
    suites: &[u8],
    mut open: impl FnMut(u8) -> Result<S, IpmiError>,
) -> Result<S, DeviceError> {
    let mut rejections: Vec<IpmiError> = Vec::new();
    for (i, &suite) in suites.iter().enumerate() {
        match open(suite) {
            Ok(session) => return Ok(session),
            Err(e) if e.is_cipher_suite_rejection() => {
                if i + 1 < suites.len() {
                    log::info!("{e}; trying the next cipher suite");
                }
                rejections.push(e);
            }
            // The real cause (wrong password, deadline, ...): another suite would not help.
            Err(e) => return Err(device_error(e)),
        }
    }
    match rejections.len() {
        0 => Err(DeviceError::Other("no cipher suite to try".into())),
        1 => Err(device_error(rejections.remove(0))),
        _ => Err(DeviceError::Other(format!(
            "the BMC accepted none of the cipher suites tried ({}): {}",
            suites
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            rejections
                .iter()
                .map(IpmiError::to_string)
                .collect::<Vec<_>>()
                .join("; then ")
        ))),
    }
}

/// Registers with the logger every spelling of the Kg a log line could carry: as given, without
/// its `0x`, in lower and upper case, and the decoded bytes when they are text.
fn register_kg_spellings(given: &str, decoded: &[u8]) {
    let Some(logger) = fence_agent::logging::logger() else {
        return;
    };
    let t = given.trim();
    let bare = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    for s in [given, t, bare] {
        logger.add_secret(s);
        logger.add_secret(&zeroize::Zeroizing::new(s.to_ascii_lowercase()));
        logger.add_secret(&zeroize::Zeroizing::new(s.to_ascii_uppercase()));
    }
    if let Ok(text) = std::str::from_utf8(decoded) {
        logger.add_secret(text);
    }
}

/// Decode a hexadecimal string (an optional `0x` prefix allowed, even length).
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if t.is_empty() || t.len() % 2 != 0 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).ok())
        .collect()
}

/// An IPMB address as ipmitool's `-t` takes it: `0x82` or decimal.
pub fn parse_ipmb_address(text: &str) -> Option<u8> {
    let t = text.trim();
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u8::from_str_radix(h, 16).ok()
    } else {
        t.parse().ok()
    }
}

/// Map ipmi-lan's error to the agent API's cause categories (text kept: it names the cause).
pub fn device_error(e: IpmiError) -> DeviceError {
    let text = e.to_string();
    if e.is_timeout() {
        return DeviceError::TimedOut(text);
    }
    if e.is_unreachable() {
        return DeviceError::Unreachable(text);
    }
    // An unverified answer (possibly forged, see IpmiError::Unverified) is classified by what
    // it claimed; its text says it was not authenticated.
    match e.claimed() {
        IpmiError::PrivilegeRefused { .. } => DeviceError::InsufficientPrivilege(text),
        IpmiError::CommandRefused { code: 0xD4, .. } => DeviceError::InsufficientPrivilege(text),
        IpmiError::CommandRefused { .. } => DeviceError::Refused(text),
        e if e.is_auth_failure() => DeviceError::LoginDenied(text),
        IpmiError::Unsupported(_) => DeviceError::Unsupported(text),
        _ => DeviceError::Other(text),
    }
}

/// One IPMI session, used for every command of the action.
pub struct IpmiSession {
    session: ipmi_lan::Session,
}

impl PowerSession for IpmiSession {
    fn get_power_status(&mut self, deadline: Instant) -> Result<PowerStatus, DeviceError> {
        let state = self.session.power_state(deadline).map_err(device_error)?;
        log::debug!("chassis power is {state:?}");
        Ok(match state {
            PowerState::On => PowerStatus::On,
            PowerState::Off => PowerStatus::Off,
        })
    }

    fn set_power_status(
        &mut self,
        target: PowerStatus,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let control = match target {
            PowerStatus::On => ChassisControl::PowerUp,
            PowerStatus::Off => ChassisControl::PowerDown,
        };
        log::info!("chassis power {target}");
        self.session
            .chassis_control(control, deadline)
            .map_err(device_error)
    }

    fn power_cycle(&mut self, deadline: Instant) -> Result<(), DeviceError> {
        log::info!("chassis power cycle");
        self.session
            .chassis_control(ChassisControl::PowerCycle, deadline)
            .map_err(device_error)
    }

    fn diag(&mut self, deadline: Instant) -> Result<(), DeviceError> {
        log::info!("chassis power diag (diagnostic interrupt)");
        self.session
            .chassis_control(ChassisControl::Diag, deadline)
            .map_err(device_error)
    }

    fn close(self, _deadline: Instant) -> Result<(), DeviceError> {
        let (result, stats) = self.session.close_with_stats();
        let result = result.map_err(device_error);
        log::debug!(
            "IPMI session closed ({}); packets sent {}, received {}",
            if result.is_ok() {
                "acknowledged"
            } else {
                "not acknowledged"
            },
            stats.sent,
            stats.received
        );
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_ipmb() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 0xff, 0x10]));
        assert_eq!(decode_hex("0xAB"), Some(vec![0xab]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(parse_ipmb_address("0x82"), Some(0x82));
        assert_eq!(parse_ipmb_address("32"), Some(32));
        assert_eq!(parse_ipmb_address("0x100"), None);
    }

    fn ignored(suite: u8) -> IpmiError {
        IpmiError::OpenSessionIgnored { suite, attempts: 3 }
    }

    #[test]
    fn a_suite_ignored_by_the_bmc_falls_back_to_the_next() {
        // ipmi_sim (and real BMCs) turn a suite down by ignoring Open Session.
        let mut tried = Vec::new();
        let r = open_first_accepted(&[3, 17], |s| {
            tried.push(s);
            if s == 3 {
                Err(ignored(3))
            } else {
                Ok(s)
            }
        });
        assert_eq!((r, tried), (Ok(17), vec![3, 17]));

        let mut tried = Vec::new();
        let r = open_first_accepted(&[3, 17], |s| {
            tried.push(s);
            if s == 3 {
                Err(IpmiError::CipherSuiteUnsupported {
                    suite: 3,
                    detail: "offered other algorithms".into(),
                })
            } else {
                Ok(s)
            }
        });
        assert_eq!((r, tried), (Ok(17), vec![3, 17]));
    }

    #[test]
    fn other_errors_are_the_cause_and_stop_the_fallback() {
        let mut tried = Vec::new();
        let r: Result<(), _> = open_first_accepted(&[3, 17], |s| {
            tried.push(s);
            Err(IpmiError::WrongPassword {
                username: "admin".into(),
                detail: "RAKP 2 key exchange code mismatch",
            })
        });
        assert_eq!(tried, [3]);
        assert!(matches!(r, Err(DeviceError::LoginDenied(_))), "{r:?}");
    }

    #[test]
    fn every_suite_turned_down_names_each_reason() {
        let r: Result<(), _> = open_first_accepted(&[3, 17], |s| Err(ignored(s)));
        let text = r.unwrap_err().to_string();
        assert!(
            text.contains("accepted none of the cipher suites tried (3, 17)")
                && text.contains("for cipher suite 3:")
                && text.contains("for cipher suite 17:")
                && text.contains("no free session slot"),
            "{text}"
        );
        // One suite given explicitly: its own error, unchanged.
        let r: Result<(), _> = open_first_accepted(&[17], |s| Err(ignored(s)));
        assert_eq!(r.unwrap_err(), device_error(ignored(17)));
    }

    #[test]
    fn aliases_change_defaults_like_fence_ipmilan() {
        let a = IpmiAgent;
        let get = |name: &str, p: &str| {
            a.params(name)
                .into_iter()
                .find(|x| x.name == p)
                .and_then(|x| x.default)
        };
        assert_eq!(get("fence_ipmi", "lanplus"), Some("0"));
        assert_eq!(get("fence_ipmilan", "power_wait"), Some("2"));
        assert_eq!(get("fence_ilo3", "lanplus"), Some("1"));
        assert_eq!(get("fence_ilo3", "power_wait"), Some("4"));
        assert_eq!(get("fence_ipmilanplus", "lanplus"), Some("1"));
        assert_eq!(get("fence_idrac", "lanplus"), Some("0"));
    }
}
