//! fence_redfish: a native Redfish fence agent, drop-in for fence-agents' `fence_redfish`.
//!
//! This library holds the parameter table (every fence_redfish 4.12.1 parameter with its
//! name, aliases, type and default, plus `ssl_ca_file` and `auth_method`), the option checks,
//! and a [`PowerSession`] on the `redfish` client; `fence-agent` does everything else.
//!
//! Power semantics: off = `ForceOff`, on = `On`, reboot = `ForceOff`, confirmed Off, `On` (the
//! library's onoff sequence), diag = `Nmi`. Every reset's HTTP status is checked; an "already
//! in that state" refusal counts only when a status read confirms it. `PoweringOff` /
//! `PoweringOn` never read as the state being waited for. Without `systems_uri` the system is
//! discovered only when there is exactly one (or `plug` names one by Id or Name).

use std::path::PathBuf;
use std::time::Instant;

use fence_agent::param::std_params::{self, COMMON};
use fence_agent::{
    Action, AgentDocs, DeviceError, FenceAgent, Options, Param, ParamKind, Plug, PowerSession,
    PowerStatus, Secret, UsageError,
};
use redfish::{AuthMode, Client, PowerDriver, PowerState, RedfishError, Tls};

/// The Redfish agent.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedfishAgent;

const IPPORT_REDFISH: Param = std_params::IPPORT.default("443");
const USERNAME_REQUIRED: Param = std_params::USERNAME.required();
const PLUG: Param = Param {
    shortdesc: "With several systems and no systems_uri: the Id or Name of the system to fence (Pacemaker sends the node name). With --port-as-ip: IP address or hostname of fencing device",
    ..std_params::PLUG_AS_IP
};
const REDFISH_URI: Param = Param::new(
    "redfish_uri",
    ParamKind::String,
    "Base or starting Redfish URI",
)
.hint("[uri]")
.default("/redfish/v1")
.deprecated("redfish-uri");
const SYSTEMS_URI: Param = Param::new(
    "systems_uri",
    ParamKind::String,
    "Redfish Systems resource URI, i.e. /redfish/v1/Systems/System.Embedded.1",
)
.hint("[uri]")
.deprecated("systems-uri");
const SSL: Param = Param::new(
    "ssl",
    ParamKind::Flag,
    "Use SSL connection with verifying certificate",
)
.short('z')
.default("1");
const SSL_INSECURE: Param = Param::new(
    "ssl_insecure",
    ParamKind::Flag,
    "Use SSL connection without verifying certificate",
);
const SSL_SECURE: Param = Param::new(
    "ssl_secure",
    ParamKind::Flag,
    "Use SSL connection with verifying certificate",
);
const GNUTLSCLI_PATH: Param = Param::new(
    "gnutlscli_path",
    ParamKind::String,
    "Path to gnutls-cli binary",
)
.hint("[path]")
.default("/usr/bin/gnutls-cli")
.order(200);
/// Our extension: trust the CA certificates of this PEM file in addition to the system store.
const SSL_CA_FILE: Param = Param::new(
    "ssl_ca_file",
    ParamKind::String,
    "PEM file of CA certificates trusted in addition to the system store. fence_redfish (native) extension",
)
.hint("[path]");
/// Our extension: how to log in.
const AUTH_METHOD: Param = Param::new(
    "auth_method",
    ParamKind::Select(&["auto", "basic", "session"]),
    "auto: a Redfish session (deleted at the end) when the service offers SessionService, else HTTP basic auth. fence_redfish (native) extension",
)
.hint("[method]")
.default("auto");

/// The checked settings of one invocation.
#[derive(Clone, Debug)]
pub struct RedfishConfig {
    pub client: redfish::Config,
    pub systems_uri: Option<String>,
    /// The plug, when it may select a system (not with `port_as_ip`).
    pub plug: Option<String>,
    pub action: Action,
}

impl FenceAgent for RedfishAgent {
    type Config = RedfishConfig;
    type Session = RedfishSession;

    fn params(&self, _invoked_as: &str) -> Vec<Param> {
        let mut params: Vec<Param> = COMMON.to_vec();
        params.extend([
            std_params::IP,
            IPPORT_REDFISH,
            USERNAME_REQUIRED,
            std_params::PASSWORD,
            std_params::PASSWORD_SCRIPT,
            PLUG,
            std_params::PORT_AS_IP,
            REDFISH_URI,
            SYSTEMS_URI,
            SSL,
            SSL_INSECURE,
            SSL_SECURE,
            GNUTLSCLI_PATH,
            SSL_CA_FILE,
            AUTH_METHOD,
        ]);
        params
    }

    fn docs(&self, invoked_as: &str) -> AgentDocs {
        AgentDocs {
            name: invoked_as.to_string(),
            shortdesc: "I/O Fencing agent for Redfish".into(),
            longdesc: "fence_redfish is an I/O Fencing agent which can be used with Out-of-Band \
                controllers that support Redfish APIs. These controllers provide remote access to \
                control power on a server. This native implementation checks every reset \
                request's answer, uses ForceOff/On (reboot: ForceOff, confirmed Off, On), and \
                never guesses among several systems."
                .into(),
            vendor_url: "http://www.dmtf.org".into(),
            symlinks: Vec::new(),
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

    fn supports_list(&self) -> bool {
        true
    }

    fn configure(&self, options: &Options) -> Result<RedfishConfig, Vec<UsageError>> {
        let mut errors = Vec::new();
        let mut fail = |m: String| errors.push(UsageError(format!("Failed: {m}")));
        let username = options.get("username").unwrap_or_default().to_string();
        if !options.is_set("username") {
            fail("You have to set login name".into());
        }
        if !options.is_set("password") && !options.is_set("password_script") {
            fail("You have to enter password or password script".into());
        }
        // fence_redfish: an address `host:port` (exactly one colon) carries the port.
        let mut host = options.get("ip").unwrap_or_default().trim().to_string();
        let mut port_text = options.get("ipport").unwrap_or("443").to_string();
        if host.matches(':').count() == 1 {
            let (h, p) = host.split_once(':').expect("one colon");
            port_text = p.to_string();
            host = h.to_string();
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = match port_text.trim().parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                fail(format!(
                    "The value you have entered for --ipport is not a valid TCP port (1-65535): '{port_text}'"
                ));
                0
            }
        };
        let service_root = options
            .get("redfish_uri")
            .unwrap_or("/redfish/v1")
            .to_string();
        if !service_root.starts_with('/') {
            fail(format!(
                "The value you have entered for --redfish-uri is not an absolute path: '{service_root}'"
            ));
        }
        let systems_uri = options
            .get("systems_uri")
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string());
        if let Some(s) = &systems_uri {
            if !s.starts_with('/') {
                fail(format!(
                    "The value you have entered for --systems-uri is not an absolute path: '{s}'"
                ));
            }
        }
        let insecure = options.flag("ssl_insecure");
        if insecure && options.flag("ssl_secure") {
            log::warn!("both ssl_insecure and ssl_secure given: the certificate is NOT verified (as fence_redfish)");
        }
        let ca_file = options
            .get("ssl_ca_file")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        if let Some(p) = &ca_file {
            if !p.is_file() {
                fail(format!(
                    "The value you have entered for --ssl-ca-file is not a readable file: '{}'",
                    p.display()
                ));
            }
        }
        if options.is_set("ssl") && !options.flag("ssl") {
            log::debug!("ssl=0 is ignored: Redfish is always spoken over HTTPS (as fence_redfish)");
        }
        if options.is_set("gnutlscli_path") {
            log::debug!("gnutlscli_path is ignored: no external program is run");
        }
        let auth = match options.choice("auth_method").as_deref() {
            Some("basic") => AuthMode::Basic,
            Some("session") => AuthMode::Session,
            _ => AuthMode::Auto,
        };
        let plug = if options.flag("port_as_ip") {
            None
        } else {
            options
                .get("plug")
                .filter(|p| !p.is_empty())
                .map(str::to_string)
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RedfishConfig {
            client: redfish::Config {
                host,
                port,
                service_root,
                username,
                // Filled in by `connect` (the password may come from password_script).
                password: Default::default(),
                tls: if insecure {
                    Tls::Insecure
                } else {
                    Tls::Verify { ca_file }
                },
                auth,
                on_secret: Some(redact_in_logs),
            },
            systems_uri,
            plug,
            action: options.action(),
        })
    }

    fn connect(
        &self,
        config: &RedfishConfig,
        password: Option<&Secret>,
        deadline: Instant,
    ) -> Result<RedfishSession, DeviceError> {
        let mut client_config = config.client.clone();
        client_config.password = password
            .map(|p| p.expose().to_string())
            .unwrap_or_default()
            .into();
        log::debug!(
            "connecting to https://{}:{}{} as {:?}",
            client_config.host,
            client_config.port,
            client_config.service_root,
            client_config.username
        );
        let mut client = Client::connect(&client_config, deadline).map_err(device_error)?;
        let system = if matches!(config.action, Action::List | Action::ListStatus) {
            String::new()
        } else {
            match client.select_system(
                config.systems_uri.as_deref(),
                config.plug.as_deref(),
                deadline,
            ) {
                Ok(s) => s,
                Err(e) => {
                    let _ = client.close(deadline);
                    return Err(device_error(e));
                }
            }
        };
        log::debug!("system: {system}");
        Ok(RedfishSession {
            driver: client.power(system),
            action: config.action,
            requested: None,
        })
    }
}

/// Register a secret the client derived (basic-auth value, session token) with the agent's
/// redacting logger.
fn redact_in_logs(secret: &str) {
    if let Some(logger) = fence_agent::logging::logger() {
        logger.add_secret(secret);
    }
}

/// Map the client's error to the agent API's cause categories (text kept: it names the cause).
pub fn device_error(e: RedfishError) -> DeviceError {
    let text = e.to_string();
    match e {
        RedfishError::LoginDenied { .. } => DeviceError::LoginDenied(text),
        RedfishError::Unreachable { .. } => DeviceError::Unreachable(text),
        RedfishError::TimedOut { .. } => DeviceError::TimedOut(text),
        RedfishError::Http { .. } => DeviceError::Refused(text),
        RedfishError::ResetTypeNotAllowed { .. } | RedfishError::NoSessionService => {
            DeviceError::Unsupported(text)
        }
        _ => DeviceError::Other(text),
    }
}

/// One connection (and session, if any) used for every request of the action.
pub struct RedfishSession {
    driver: PowerDriver,
    action: Action,
    /// The target of the last power request: a transitional state reads as "not there yet".
    requested: Option<PowerStatus>,
}

fn opposite(s: PowerStatus) -> PowerStatus {
    match s {
        PowerStatus::On => PowerStatus::Off,
        PowerStatus::Off => PowerStatus::On,
    }
}

/// How a power state reads for the fence-agent engine. `On`/`Off` are what they say. Anything
/// else (PoweringOn/Off, Paused, unknown) is never the state being waited for: after a request
/// it reads as the opposite of its target; before any request it reads so that off/reboot send
/// ForceOff and on sends On; status, monitor and diag report it as an error.
pub fn effective_status(
    state: &PowerState,
    requested: Option<PowerStatus>,
    action: Action,
) -> Result<PowerStatus, DeviceError> {
    match state {
        PowerState::On => Ok(PowerStatus::On),
        PowerState::Off => Ok(PowerStatus::Off),
        other => {
            let not_done = match (requested, action) {
                (Some(target), _) => opposite(target),
                (None, Action::Off | Action::Reboot) => PowerStatus::On,
                (None, Action::On) => PowerStatus::Off,
                (None, _) => {
                    return Err(DeviceError::Other(format!(
                        "the power state is {other}: neither ON nor OFF"
                    )))
                }
            };
            log::info!(
                "PowerState {other} is not a final state; treated as not yet {}",
                opposite(not_done)
            );
            Ok(not_done)
        }
    }
}

impl PowerSession for RedfishSession {
    fn get_power_status(&mut self, deadline: Instant) -> Result<PowerStatus, DeviceError> {
        let state = self.driver.power_status(deadline).map_err(device_error)?;
        effective_status(&state, self.requested, self.action)
    }

    fn set_power_status(
        &mut self,
        target: PowerStatus,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        self.requested = Some(target);
        let r = match target {
            PowerStatus::Off => self.driver.power_off(deadline),
            PowerStatus::On => self.driver.power_on(deadline),
        };
        r.map(|_| ()).map_err(device_error)
    }

    fn diag(&mut self, deadline: Instant) -> Result<(), DeviceError> {
        self.driver.nmi(deadline).map_err(device_error)
    }

    fn list(&mut self, deadline: Instant) -> Result<Vec<Plug>, DeviceError> {
        let systems = self
            .driver
            .client()
            .systems(deadline)
            .map_err(device_error)?;
        Ok(systems
            .into_iter()
            .map(|s| Plug {
                status: match s.power {
                    PowerState::On => Some(PowerStatus::On),
                    PowerState::Off => Some(PowerStatus::Off),
                    _ => None,
                },
                id: s.id,
                alias: s.name,
            })
            .collect())
    }

    fn close(self, deadline: Instant) -> Result<(), DeviceError> {
        self.driver.close(deadline).map_err(|e| {
            // A session left behind uses one of the BMC's few session slots until it expires.
            log::warn!("the Redfish session could not be deleted: {e}");
            device_error(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitional_states_never_read_as_the_awaited_state() {
        use PowerState::*;
        for t in [PoweringOff, PoweringOn, Paused, Other("x".into())] {
            // After a request: never the target.
            assert_eq!(
                effective_status(&t, Some(PowerStatus::Off), Action::Off),
                Ok(PowerStatus::On)
            );
            assert_eq!(
                effective_status(&t, Some(PowerStatus::On), Action::Reboot),
                Ok(PowerStatus::Off)
            );
            // Before: off/reboot will send ForceOff, on will send On.
            assert_eq!(effective_status(&t, None, Action::Off), Ok(PowerStatus::On));
            assert_eq!(
                effective_status(&t, None, Action::Reboot),
                Ok(PowerStatus::On)
            );
            assert_eq!(effective_status(&t, None, Action::On), Ok(PowerStatus::Off));
            assert!(effective_status(&t, None, Action::Status).is_err());
            assert!(effective_status(&t, None, Action::Monitor).is_err());
        }
        assert_eq!(
            effective_status(&On, Some(PowerStatus::Off), Action::Off),
            Ok(PowerStatus::On)
        );
        assert_eq!(
            effective_status(&Off, None, Action::Status),
            Ok(PowerStatus::Off)
        );
    }

    #[test]
    fn every_reference_parameter_is_in_the_table() {
        let names: Vec<&str> = RedfishAgent
            .params("fence_redfish")
            .iter()
            .map(|p| p.name)
            .collect();
        for n in [
            "action",
            "ip",
            "ipport",
            "username",
            "password",
            "password_script",
            "plug",
            "redfish_uri",
            "systems_uri",
            "ssl",
            "ssl_insecure",
            "ssl_secure",
            "quiet",
            "verbose",
            "verbose_level",
            "debug_file",
            "version",
            "help",
            "plug_separator",
            "delay",
            "disable_timeout",
            "login_timeout",
            "port_as_ip",
            "power_timeout",
            "power_wait",
            "shell_timeout",
            "stonith_status_sleep",
            "retry_on",
            "gnutlscli_path",
        ] {
            assert!(names.contains(&n), "{n} missing");
        }
    }
}
