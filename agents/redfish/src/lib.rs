//! A small blocking Redfish client for power control, shared by the `fence_redfish` agent and
//! (in-process, no child process) the coordinator's power driver.
//!
//! - HTTPS only. Certificates are verified against the system CA store (plus an optional CA
//!   file); [`Tls::Insecure`] skips the identity check only when asked for explicitly.
//! - Authentication: a `SessionService` session (`X-Auth-Token`, deleted again by
//!   [`Client::close`]) when the service root advertises one, else HTTP basic auth.
//! - Every request carries `Accept: application/json` and `OData-Version: 4.0` (some BMCs answer
//!   406 without them) and is bounded by the caller's deadline.
//! - [`Client::power`] is the power driver: [`PowerDriver::power_status`],
//!   [`PowerDriver::power_off`] (`ForceOff`), [`PowerDriver::power_on`] (`On`). The ResetType is
//!   checked against the system's allowable values first; an "already in that state" refusal
//!   (409, or 400 whose message says so) counts as done only when a status read confirms it.
//!
//! Secrets (password, session token) never appear in errors or log lines.
//!
//! In-process use (the coordinator's power driver), without a child process:
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use redfish::{AuthMode, Client, Config, PowerState, Tls};
//!
//! let config = Config {
//!     host: "10.0.0.21".into(),
//!     port: 443,
//!     service_root: "/redfish/v1".into(),
//!     username: "root".into(),
//!     password: String::from("secret").into(),
//!     tls: Tls::Verify { ca_file: None },
//!     auth: AuthMode::Auto,
//!     on_secret: None,
//! };
//! let deadline = Instant::now() + Duration::from_secs(20);
//! let mut client = Client::connect(&config, deadline)?;
//! let system = client.select_system(None, Some("kvm1"), deadline)?;
//! let mut power = client.power(system);
//! if power.power_status(deadline)? != PowerState::Off {
//!     power.power_off(deadline)?; // then poll power_status until Off
//! }
//! power.close(deadline)?;
//! # Ok::<(), redfish::RedfishError>(())
//! ```

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;
use thiserror::Error;
use zeroize::Zeroizing;

/// Largest response body read (a BMC answering more for a system resource is broken).
const MAX_BODY: u64 = 4 * 1024 * 1024;

/// How the server's certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Verify against the system CA store and, if given, the certificates of a PEM file.
    Verify { ca_file: Option<PathBuf> },
    /// Do not verify the server's identity (the handshake signatures are still checked).
    Insecure,
}

/// How to log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// A session when the service root advertises `Links.Sessions`, else basic auth.
    Auto,
    /// Basic auth on every request.
    Basic,
    /// A session; fail if the service has none.
    Session,
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Config {
    /// Host name, IPv4 or IPv6 address (without brackets).
    pub host: String,
    pub port: u16,
    /// The service root path, normally `/redfish/v1`.
    pub service_root: String,
    pub username: String,
    pub password: Zeroizing<String>,
    pub tls: Tls,
    pub auth: AuthMode,
    /// Called with every secret the client derives (the basic-auth header value, a session
    /// token) before any request carries it, so a caller's logger can redact it (the HTTP
    /// library's own debug log prints request headers).
    pub on_secret: Option<fn(&str)>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("service_root", &self.service_root)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Why a Redfish operation failed. Texts name the cause; none contains a secret.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RedfishError {
    #[error("TLS failure talking to {url}: {detail}")]
    Tls { url: String, detail: String },
    #[error("{url} is unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("timed out waiting for {url}")]
    TimedOut { url: String },
    #[error("login refused by the BMC (HTTP {status} for {url}): {message}")]
    LoginDenied {
        url: String,
        status: u16,
        message: String,
    },
    #[error("no such resource: {url} (HTTP 404): {message}")]
    NotFound { url: String, message: String },
    #[error("HTTP {status} from {method} {url}: {message}")]
    Http {
        method: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    #[error("unexpected answer from {url}: {detail}")]
    Protocol { url: String, detail: String },
    #[error("the system {system} does not allow ResetType {wanted} (allowed: {})", allowed.join(", "))]
    ResetTypeNotAllowed {
        system: String,
        wanted: String,
        allowed: Vec<String>,
    },
    #[error("{0}")]
    SystemSelection(String),
    #[error("the service has no SessionService to log in to")]
    NoSessionService,
    #[error("cannot use the CA file {path}: {detail}")]
    CaFile { path: String, detail: String },
}

impl RedfishError {
    /// Whether this is the BMC refusing credentials.
    pub fn is_login_denied(&self) -> bool {
        matches!(self, RedfishError::LoginDenied { .. })
    }
}

/// A system's power state as Redfish reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
    /// Transitional: neither on nor off yet (fence-agents PR #253: never read it as done).
    PoweringOn,
    PoweringOff,
    Paused,
    /// Absent or a value this client does not know.
    Other(String),
}

impl PowerState {
    fn parse(text: &str) -> PowerState {
        match text.trim() {
            "On" => PowerState::On,
            "Off" => PowerState::Off,
            "PoweringOn" => PowerState::PoweringOn,
            "PoweringOff" => PowerState::PoweringOff,
            "Paused" => PowerState::Paused,
            other => PowerState::Other(other.to_string()),
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PowerState::On => f.write_str("On"),
            PowerState::Off => f.write_str("Off"),
            PowerState::PoweringOn => f.write_str("PoweringOn"),
            PowerState::PoweringOff => f.write_str("PoweringOff"),
            PowerState::Paused => f.write_str("Paused"),
            PowerState::Other(s) => write!(f, "{s:?}"),
        }
    }
}

/// One member of the Systems collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemRef {
    /// The resource path, e.g. `/redfish/v1/Systems/437XR1138R2`.
    pub uri: String,
    pub id: String,
    pub name: String,
    pub power: PowerState,
}

/// What a system resource says about power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemPower {
    pub state: PowerState,
    /// `Actions.#ComputerSystem.Reset.target`.
    pub reset_target: Option<String>,
    /// The allowable ResetTypes, when the system lists them.
    pub allowed_reset_types: Option<Vec<String>>,
}

/// How a reset request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetAnswer {
    /// 2xx.
    Accepted,
    /// 409, or 400 whose message says the system is already in that state. The caller must
    /// confirm with a status read before treating it as done.
    AlreadyInState { status: u16, message: String },
}

enum Auth {
    Basic(Zeroizing<String>),
    Session {
        token: Zeroizing<String>,
        /// The session resource to delete at the end.
        location: Option<String>,
    },
}

/// One connection to a Redfish service: TLS settings, credentials, and a session if any.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    service_root: String,
    root: Value,
    auth: Auth,
    /// Requests sent (for the debug log and the benchmark).
    requests: u32,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

fn remaining(url: &str, deadline: Instant) -> Result<Duration, RedfishError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(RedfishError::TimedOut {
            url: url.to_string(),
        });
    }
    Ok(left)
}

/// The message of a Redfish error body (`error.message`, then the first extended info), else a
/// short excerpt of the body.
pub fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let err = &v["error"];
        let mut parts = Vec::new();
        if let Some(m) = err["message"].as_str() {
            parts.push(m.to_string());
        }
        if let Some(infos) = err["@Message.ExtendedInfo"].as_array() {
            for i in infos {
                if let Some(m) = i["Message"].as_str() {
                    if !parts.iter().any(|p| p == m) {
                        parts.push(m.to_string());
                    }
                }
            }
        }
        if !parts.is_empty() {
            return parts.join(" ");
        }
    }
    let t: String = body.trim().chars().take(200).collect();
    if t.is_empty() {
        "(no message)".into()
    } else {
        t
    }
}

/// Verifies handshake signatures but not the certificate chain or name (`ssl_insecure`).
#[derive(Debug)]
struct NoIdentityCheck(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoIdentityCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls configuration for `tls`.
pub fn tls_config(tls: &Tls) -> Result<rustls::ClientConfig, RedfishError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| RedfishError::Tls {
            url: String::new(),
            detail: e.to_string(),
        })?;
    let config = match tls {
        Tls::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoIdentityCheck(provider)))
            .with_no_client_auth(),
        Tls::Verify { ca_file } => {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                log::debug!("system CA store: {e}");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            log::debug!("system CA store: {added} certificates ({ignored} unusable)");
            if let Some(path) = ca_file {
                let shown = path.display().to_string();
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .map_err(|e| RedfishError::CaFile {
                        path: shown.clone(),
                        detail: e.to_string(),
                    })?
                    .collect::<Result<_, _>>()
                    .map_err(|e| RedfishError::CaFile {
                        path: shown.clone(),
                        detail: e.to_string(),
                    })?;
                if certs.is_empty() {
                    return Err(RedfishError::CaFile {
                        path: shown,
                        detail: "no PEM certificate in it".into(),
                    });
                }
                for c in certs {
                    roots.add(c).map_err(|e| RedfishError::CaFile {
                        path: shown.clone(),
                        detail: e.to_string(),
                    })?;
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(config)
}

fn join_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl Client {
    /// Read the service root and log in (a session if the service has one and `auth` allows,
    /// else basic auth). Credentials are checked by the first authenticated request.
    pub fn connect(config: &Config, deadline: Instant) -> Result<Client, RedfishError> {
        let tls = Arc::new(tls_config(&config.tls)?);
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls)
            // Redirects are followed by `send` itself: ureq drops the credentials on a redirect.
            .redirects(0)
            .user_agent(concat!("kvm-ha-redfish/", env!("CARGO_PKG_VERSION")))
            .build();
        let base = format!("https://{}:{}", join_host(&config.host), config.port);
        let basic = Zeroizing::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                config.username,
                config.password.as_str()
            ))
        ));
        if let Some(register) = config.on_secret {
            register(basic.trim_start_matches("Basic "));
            register(&basic);
        }
        let mut client = Client {
            agent,
            base,
            service_root: config.service_root.clone(),
            root: Value::Null,
            auth: Auth::Basic(basic),
            requests: 0,
        };
        // The service root needs no authentication by the standard; some BMCs want it anyway.
        let root_path = config.service_root.clone();
        client.root = match client.request_json("GET", &root_path, None, false, deadline) {
            Err(RedfishError::LoginDenied { .. }) => {
                client.request_json("GET", &root_path, None, true, deadline)?
            }
            other => other?,
        };
        let sessions = client.root["Links"]["Sessions"]["@odata.id"]
            .as_str()
            .map(str::to_string);
        match (config.auth, sessions) {
            (AuthMode::Basic, _) | (AuthMode::Auto, None) => {}
            (AuthMode::Session, None) => return Err(RedfishError::NoSessionService),
            (AuthMode::Session, Some(path)) => client.login(&path, config, deadline)?,
            (AuthMode::Auto, Some(path)) => match client.login(&path, config, deadline) {
                Ok(()) => {}
                // Wrong credentials, TLS or transport problems are the answer; a service that
                // advertises sessions but cannot create one still takes basic auth.
                Err(e @ (RedfishError::Http { .. } | RedfishError::Protocol { .. })) => {
                    log::info!("no Redfish session ({e}); using basic auth");
                }
                Err(e) => return Err(e),
            },
        }
        Ok(client)
    }

    fn login(
        &mut self,
        path: &str,
        config: &Config,
        deadline: Instant,
    ) -> Result<(), RedfishError> {
        let body = Zeroizing::new(
            serde_json::json!({"UserName": config.username, "Password": config.password.as_str()})
                .to_string(),
        );
        let (status, headers, text) = self.send("POST", path, Some(&body), false, deadline)?;
        if !(200..300).contains(&status) {
            return Err(RedfishError::Http {
                method: "POST",
                url: self.url(path),
                status,
                message: error_message(&text),
            });
        }
        let token = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("X-Auth-Token"))
            .map(|(_, v)| v.clone());
        let location = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Location"))
            .map(|(_, v)| v.clone());
        match token {
            Some(t) if !t.is_empty() => {
                if let Some(register) = config.on_secret {
                    register(&t);
                }
                log::debug!("Redfish session created (HTTP {status}): {location:?}");
                self.auth = Auth::Session {
                    token: Zeroizing::new(t),
                    location,
                };
                Ok(())
            }
            _ => Err(RedfishError::Protocol {
                url: self.url(path),
                detail: "session created without an X-Auth-Token header".into(),
            }),
        }
    }

    /// Whether a session (rather than basic auth) is in use.
    pub fn has_session(&self) -> bool {
        matches!(self.auth, Auth::Session { .. })
    }

    /// The number of HTTP requests sent so far.
    pub fn requests_sent(&self) -> u32 {
        self.requests
    }

    /// The service root document.
    pub fn service_root(&self) -> &Value {
        &self.root
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    /// Send one request; returns status, headers and body of any HTTP answer (errors only for
    /// transport failures and 401/403).
    #[allow(clippy::type_complexity)]
    fn send(
        &mut self,
        method: &'static str,
        path: &str,
        body: Option<&str>,
        authenticated: bool,
        deadline: Instant,
    ) -> Result<(u16, Vec<(String, String)>, String), RedfishError> {
        let mut path = path.to_string();
        // GETs follow redirects within the same service (some BMCs, and sushy for a system
        // addressed by name, answer 307 with the canonical path), at most 3.
        for _ in 0..3 {
            let answer = self.send_once(method, &path, body, authenticated, deadline)?;
            if method != "GET" || !matches!(answer.0, 301 | 302 | 303 | 307 | 308) {
                return Ok(answer);
            }
            let location = answer
                .1
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Location"))
                .map(|(_, v)| v.clone());
            match location {
                Some(l) if l.starts_with('/') => path = l,
                Some(l) if l.starts_with(&format!("{}/", self.base)) => {
                    path = l[self.base.len()..].to_string()
                }
                _ => return Ok(answer),
            }
            log::debug!("redirected to {path}");
        }
        Err(RedfishError::Protocol {
            url: self.url(&path),
            detail: "too many redirects".into(),
        })
    }

    #[allow(clippy::type_complexity)]
    fn send_once(
        &mut self,
        method: &'static str,
        path: &str,
        body: Option<&str>,
        authenticated: bool,
        deadline: Instant,
    ) -> Result<(u16, Vec<(String, String)>, String), RedfishError> {
        let url = self.url(path);
        let left = remaining(&url, deadline)?;
        let mut req = self
            .agent
            .request(method, &url)
            .timeout(left)
            .set("Accept", "application/json")
            .set("OData-Version", "4.0");
        if authenticated {
            req = match &self.auth {
                Auth::Basic(h) => req.set("Authorization", h),
                Auth::Session { token, .. } => req.set("X-Auth-Token", token),
            };
        }
        self.requests += 1;
        log::debug!("{method} {url}");
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(b),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(transport_error(&url, &t, deadline)),
        };
        let status = resp.status();
        let headers: Vec<(String, String)> = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
            .collect();
        let mut text = String::new();
        resp.into_reader()
            .take(MAX_BODY)
            .read_to_string(&mut text)
            .map_err(|e| {
                if Instant::now() >= deadline {
                    RedfishError::TimedOut { url: url.clone() }
                } else {
                    RedfishError::Protocol {
                        url: url.clone(),
                        detail: format!("reading the answer: {e}"),
                    }
                }
            })?;
        log::debug!("{method} {url}: HTTP {status}");
        if status == 401 || status == 403 {
            return Err(RedfishError::LoginDenied {
                url,
                status,
                message: error_message(&text),
            });
        }
        Ok((status, headers, text))
    }

    fn request_json(
        &mut self,
        method: &'static str,
        path: &str,
        body: Option<&str>,
        authenticated: bool,
        deadline: Instant,
    ) -> Result<Value, RedfishError> {
        let (status, _, text) = self.send(method, path, body, authenticated, deadline)?;
        let url = self.url(path);
        match status {
            200..=299 => serde_json::from_str(&text).map_err(|e| RedfishError::Protocol {
                url,
                detail: format!("not JSON: {e}"),
            }),
            404 => Err(RedfishError::NotFound {
                url,
                message: error_message(&text),
            }),
            _ => Err(RedfishError::Http {
                method,
                url,
                status,
                message: error_message(&text),
            }),
        }
    }

    /// GET a resource (authenticated) as JSON.
    pub fn get(&mut self, path: &str, deadline: Instant) -> Result<Value, RedfishError> {
        self.request_json("GET", path, None, true, deadline)
    }

    /// The members of the Systems collection, with their Id, Name and power state.
    pub fn systems(&mut self, deadline: Instant) -> Result<Vec<SystemRef>, RedfishError> {
        let members = self.system_members(deadline)?;
        let mut out = Vec::new();
        for uri in members {
            let sys = self.get(&uri, deadline)?;
            out.push(SystemRef {
                id: sys["Id"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| uri.rsplit('/').next().unwrap_or_default().to_string()),
                name: sys["Name"].as_str().unwrap_or_default().to_string(),
                power: PowerState::parse(sys["PowerState"].as_str().unwrap_or_default()),
                uri,
            });
        }
        Ok(out)
    }

    /// The resource paths of the Systems collection's members.
    pub fn system_members(&mut self, deadline: Instant) -> Result<Vec<String>, RedfishError> {
        let collection = self.root["Systems"]["@odata.id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| RedfishError::Protocol {
                url: self.url(&self.service_root.clone()),
                detail: "the service root has no Systems collection".into(),
            })?;
        let coll = self.get(&collection, deadline)?;
        let members: Vec<String> = coll["Members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|x| x["@odata.id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(members)
    }

    /// The system to act on: `systems_uri` if given; else the one whose Id, Name or path is
    /// `plug`; else the only member. Several members and no choice is an error listing them
    /// (fence-agents picks the last one silently).
    pub fn select_system(
        &mut self,
        systems_uri: Option<&str>,
        plug: Option<&str>,
        deadline: Instant,
    ) -> Result<String, RedfishError> {
        if let Some(uri) = systems_uri {
            // An unknown system shows as NotFound at the first status read.
            return Ok(uri.to_string());
        }
        let members = self.system_members(deadline)?;
        if let [one] = members.as_slice() {
            // Pacemaker always sends the node name as plug; with one system it selects nothing.
            if let Some(p) = plug {
                log::debug!("plug {p:?} not needed: the service has one system, {one}");
            }
            return Ok(one.clone());
        }
        let systems = self.systems(deadline)?;
        let listing = || {
            systems
                .iter()
                .map(|s| format!("{} (Id {}, Name {:?})", s.uri, s.id, s.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(p) = plug {
            let found: Vec<&SystemRef> = systems
                .iter()
                .filter(|s| s.id == p || s.name == p || s.uri == p)
                .collect();
            return match found.as_slice() {
                [one] => Ok(one.uri.clone()),
                [] => Err(RedfishError::SystemSelection(format!(
                    "no system with Id or Name {p:?}; the service has: {}",
                    listing()
                ))),
                _ => Err(RedfishError::SystemSelection(format!(
                    "several systems match {p:?}: {}; use systems_uri",
                    found
                        .iter()
                        .map(|s| s.uri.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            };
        }
        match systems.as_slice() {
            [one] => Ok(one.uri.clone()),
            [] => Err(RedfishError::SystemSelection(
                "the service lists no system".into(),
            )),
            _ => Err(RedfishError::SystemSelection(format!(
                "the service has {} systems; choose one with systems_uri or plug (Id or Name): {}",
                systems.len(),
                listing()
            ))),
        }
    }

    /// Power state and reset action of one system.
    pub fn system_power(
        &mut self,
        system_uri: &str,
        deadline: Instant,
    ) -> Result<SystemPower, RedfishError> {
        let sys = self.get(system_uri, deadline)?;
        let state = match sys["PowerState"].as_str() {
            Some(s) => PowerState::parse(s),
            None => PowerState::Other(String::new()),
        };
        let reset = &sys["Actions"]["#ComputerSystem.Reset"];
        let reset_target = reset["target"].as_str().map(str::to_string);
        let mut allowed = reset["ResetType@Redfish.AllowableValues"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            });
        if allowed.is_none() {
            if let Some(info) = reset["@Redfish.ActionInfo"].as_str().map(str::to_string) {
                allowed = self.action_info_reset_types(&info, deadline);
            }
        }
        Ok(SystemPower {
            state,
            reset_target,
            allowed_reset_types: allowed,
        })
    }

    fn action_info_reset_types(&mut self, uri: &str, deadline: Instant) -> Option<Vec<String>> {
        let info = match self.get(uri, deadline) {
            Ok(v) => v,
            Err(e) => {
                log::debug!("ActionInfo {uri} unreadable ({e}); ResetTypes not checked");
                return None;
            }
        };
        info["Parameters"].as_array()?.iter().find_map(|p| {
            (p["Name"].as_str() == Some("ResetType")).then(|| {
                p["AllowableValues"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            })
        })
    }

    /// POST `ComputerSystem.Reset` with `reset_type`, after checking it against the allowable
    /// values (when the system lists them). Any non-2xx answer is an error with the BMC's
    /// message, except an "already in that state" answer, returned for the caller to confirm.
    pub fn reset(
        &mut self,
        system_uri: &str,
        power: &SystemPower,
        reset_type: &str,
        deadline: Instant,
    ) -> Result<ResetAnswer, RedfishError> {
        if let Some(allowed) = &power.allowed_reset_types {
            if !allowed.iter().any(|a| a == reset_type) {
                return Err(RedfishError::ResetTypeNotAllowed {
                    system: system_uri.to_string(),
                    wanted: reset_type.to_string(),
                    allowed: allowed.clone(),
                });
            }
        }
        let target = power
            .reset_target
            .clone()
            .unwrap_or_else(|| format!("{system_uri}/Actions/ComputerSystem.Reset"));
        let body = serde_json::json!({ "ResetType": reset_type }).to_string();
        log::info!("POST {target} ResetType={reset_type}");
        let (status, _, text) = self.send("POST", &target, Some(&body), true, deadline)?;
        let message = error_message(&text);
        match status {
            200..=299 => Ok(ResetAnswer::Accepted),
            409 => Ok(ResetAnswer::AlreadyInState { status, message }),
            400 if message.to_ascii_lowercase().contains("already") => {
                Ok(ResetAnswer::AlreadyInState { status, message })
            }
            _ => Err(RedfishError::Http {
                method: "POST",
                url: self.url(&target),
                status,
                message,
            }),
        }
    }

    /// A power driver for one system on this connection.
    pub fn power(self, system_uri: String) -> PowerDriver {
        PowerDriver {
            client: self,
            system_uri,
            cached: None,
        }
    }

    /// Delete the session, if one was created. Basic auth has nothing to end.
    pub fn close(mut self, deadline: Instant) -> Result<(), RedfishError> {
        let location = match &self.auth {
            Auth::Session { location, .. } => location.clone(),
            Auth::Basic(_) => return Ok(()),
        };
        let Some(location) = location else {
            log::debug!("the session has no Location to delete");
            return Ok(());
        };
        let (status, _, text) = self.send("DELETE", &location, None, true, deadline)?;
        if (200..300).contains(&status) {
            log::debug!("Redfish session deleted");
            Ok(())
        } else {
            Err(RedfishError::Http {
                method: "DELETE",
                url: self.url(&location),
                status,
                message: error_message(&text),
            })
        }
    }
}

fn transport_error(url: &str, t: &ureq::Transport, deadline: Instant) -> RedfishError {
    // ureq's text starts with the URL, which the error already names.
    let full = t.to_string();
    let detail = full
        .strip_prefix(&format!("{url}: "))
        .unwrap_or(&full)
        .to_string();
    let lower = detail.to_ascii_lowercase();
    if Instant::now() >= deadline || lower.contains("timed out") {
        return RedfishError::TimedOut {
            url: url.to_string(),
        };
    }
    if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("invalid peer")
        || lower.contains("corrupt message")
    {
        return RedfishError::Tls {
            url: url.to_string(),
            detail,
        };
    }
    RedfishError::Unreachable {
        url: url.to_string(),
        detail,
    }
}

/// Power control of one system, for an agent or the coordinator (in-process).
pub struct PowerDriver {
    client: Client,
    system_uri: String,
    /// The reset target and allowable values of the last read.
    cached: Option<SystemPower>,
}

/// How a power request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PowerRequest {
    /// The BMC accepted the reset; the caller verifies by polling the status.
    Accepted,
    /// The BMC refused because the system is already in the target state, and a status read
    /// confirmed that state.
    AlreadyConfirmed { status: u16, message: String },
    /// The BMC refused because the system is already on its way there (`PoweringOff` for an
    /// off): the caller verifies by polling the status, as after an accepted request.
    InTransition { status: u16, message: String },
}

impl PowerDriver {
    /// The system's resource path.
    pub fn system_uri(&self) -> &str {
        &self.system_uri
    }

    /// The underlying client (e.g. for listing systems).
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Read the power state.
    pub fn power_status(&mut self, deadline: Instant) -> Result<PowerState, RedfishError> {
        let p = self.client.system_power(&self.system_uri, deadline)?;
        let state = p.state.clone();
        log::debug!("PowerState of {} is {state}", self.system_uri);
        self.cached = Some(p);
        Ok(state)
    }

    /// `ForceOff` (never a graceful shutdown: fencing must not depend on the OS).
    pub fn power_off(&mut self, deadline: Instant) -> Result<PowerRequest, RedfishError> {
        self.request("ForceOff", PowerState::Off, deadline)
    }

    /// `On`.
    pub fn power_on(&mut self, deadline: Instant) -> Result<PowerRequest, RedfishError> {
        self.request("On", PowerState::On, deadline)
    }

    /// `Nmi` (diagnostic interrupt); nothing to confirm.
    pub fn nmi(&mut self, deadline: Instant) -> Result<(), RedfishError> {
        let power = self.power_info(deadline)?;
        match self
            .client
            .reset(&self.system_uri, &power, "Nmi", deadline)?
        {
            ResetAnswer::Accepted => Ok(()),
            ResetAnswer::AlreadyInState { status, message } => Err(RedfishError::Http {
                method: "POST",
                url: self.client.url(power.reset_target.as_deref().unwrap_or("")),
                status,
                message,
            }),
        }
    }

    fn power_info(&mut self, deadline: Instant) -> Result<SystemPower, RedfishError> {
        match &self.cached {
            Some(p) => Ok(p.clone()),
            None => {
                self.power_status(deadline)?;
                Ok(self.cached.clone().expect("just read"))
            }
        }
    }

    fn request(
        &mut self,
        reset_type: &str,
        target: PowerState,
        deadline: Instant,
    ) -> Result<PowerRequest, RedfishError> {
        let power = self.power_info(deadline)?;
        match self
            .client
            .reset(&self.system_uri, &power, reset_type, deadline)?
        {
            ResetAnswer::Accepted => Ok(PowerRequest::Accepted),
            ResetAnswer::AlreadyInState { status, message } => {
                let now = self.power_status(deadline)?;
                if now == target {
                    log::info!(
                        "the BMC refused {reset_type} with HTTP {status} ({message}); the system is {now}, as wanted"
                    );
                    Ok(PowerRequest::AlreadyConfirmed { status, message })
                } else if (target == PowerState::Off && now == PowerState::PoweringOff)
                    || (target == PowerState::On && now == PowerState::PoweringOn)
                {
                    log::info!(
                        "the BMC refused {reset_type} with HTTP {status} ({message}); the system is {now}, waiting for {target}"
                    );
                    Ok(PowerRequest::InTransition { status, message })
                } else {
                    Err(RedfishError::Http {
                        method: "POST",
                        url: self
                            .client
                            .url(power.reset_target.as_deref().unwrap_or(&self.system_uri)),
                        status,
                        message: format!("{message} (the system is {now}, not {target})"),
                    })
                }
            }
        }
    }

    /// End the connection (deletes the session, if any).
    pub fn close(self, deadline: Instant) -> Result<(), RedfishError> {
        self.client.close(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_the_redfish_error_body() {
        let body = r#"{"error":{"code":"Base.1.0.GeneralError","message":"A general error has occurred.","@Message.ExtendedInfo":[{"Message":"The requested power state is already in effect."}]}}"#;
        assert_eq!(
            error_message(body),
            "A general error has occurred. The requested power state is already in effect."
        );
        assert_eq!(error_message(""), "(no message)");
        assert_eq!(error_message("Not Implemented"), "Not Implemented");
    }

    #[test]
    fn power_states_parse_and_transitional_ones_stay_distinct() {
        assert_eq!(PowerState::parse("On"), PowerState::On);
        assert_eq!(PowerState::parse(" Off "), PowerState::Off);
        assert_eq!(PowerState::parse("PoweringOff"), PowerState::PoweringOff);
        assert_eq!(PowerState::parse("PoweringOn"), PowerState::PoweringOn);
        assert_eq!(
            PowerState::parse("Weird"),
            PowerState::Other("Weird".into())
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(join_host("::1"), "[::1]");
        assert_eq!(join_host("127.0.0.1"), "127.0.0.1");
        assert_eq!(join_host("bmc.example"), "bmc.example");
    }

    #[test]
    fn config_debug_hides_the_password() {
        let c = Config {
            host: "h".into(),
            port: 443,
            service_root: "/redfish/v1".into(),
            username: "u".into(),
            password: Zeroizing::new("s3cret-value".into()),
            tls: Tls::Insecure,
            auth: AuthMode::Auto,
            on_secret: None,
        };
        assert!(!format!("{c:?}").contains("s3cret-value"));
    }
}
