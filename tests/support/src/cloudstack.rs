//! A CloudStack API double: a small HTTP server on 127.0.0.1 (ephemeral
//! port) that checks every request's signature as CloudStack's
//! `ApiServer.verifyRequest` does, answers in CloudStack's JSON shapes,
//! enforces CloudStack's preconditions, and records every accepted call.
//!
//! ```no_run
//! use test_support::cloudstack::{CloudStackDouble, DoubleHost};
//! let cs = CloudStackDouble::start().unwrap();
//! let zone = cs.add_zone("z1");
//! let pod = cs.add_pod("p1", &zone);
//! let cluster = cs.add_cluster("c1", &pod);
//! let host = cs.add_host(DoubleHost::kvm("h1", "127.0.0.11", &cluster));
//! cs.update_host(&host, |h| h.state = "Disconnected".into());
//! // ... point a client at cs.endpoint() with cs.api_key() / cs.secret_key()
//! assert!(cs.calls().iter().all(|c| c.command != "declareHostAsDegraded"));
//! ```
//!
//! Signature check (independent of the client crate): every parameter but
//! `signature`, sorted by name as received, values re-encoded like Java's
//! `URLEncoder` with `+` → `%20`, joined, lower-cased, HMAC-SHA1 with the
//! account's secret key, base64, compared in constant time. With
//! `signatureversion=3`, `expires` (`yyyy-MM-dd'T'HH:mm:ssZ`) is required
//! and must not be past. Failures get HTTP 401 with CloudStack's error body.
//!
//! Modelled commands: `listZones`, `listPods`, `listClusters`, `listHosts`
//! (filters `id`, `clusterid`, `podid`, `zoneid`, `type`, `hypervisor`,
//! `state`, `resourcestate`), all paged with `page`/`pagesize`;
//! `listConfigurations` (`name` as substring); `declareHostAsDegraded` and
//! `cancelHostAsDegraded` as async jobs; `queryAsyncJobResult`. Anything
//! else is answered 432 like an unknown command.

use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha1::Sha1;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// One accepted API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The `command` parameter.
    pub command: String,
    /// Every other parameter but `signature` (decoded), including `apikey`,
    /// `response`, `expires`, `signatureversion`.
    pub params: BTreeMap<String, String>,
}

/// A request the double refused before running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The `command` parameter, if any.
    pub command: Option<String>,
    /// Why (`bad signature`, `expired`, ...).
    pub reason: String,
}

/// A host as the double serves it. Fields are CloudStack's strings; change
/// them with [`CloudStackDouble::update_host`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleHost {
    /// UUID (assigned by [`CloudStackDouble::add_host`] when empty).
    pub id: String,
    /// Name.
    pub name: String,
    /// `Up`, `Alert`, `Disconnected`, `Down`, `Connecting` ...
    pub state: String,
    /// `Enabled`, `Maintenance`, `Degraded` ...
    pub resourcestate: String,
    /// Management IP.
    pub ipaddress: String,
    /// Cluster UUID (pod and zone follow from it).
    pub clusterid: String,
    /// `KVM`.
    pub hypervisor: String,
    /// `Routing`.
    pub host_type: String,
    /// Printed as CloudStack prints its ping counter.
    pub lastpinged: String,
    /// Management server UUID.
    pub managementserverid: String,
    /// OOBM enabled.
    pub oobm_enabled: bool,
    /// OOBM driver (`ipmitool`).
    pub oobm_driver: String,
    /// BMC address.
    pub oobm_address: String,
    /// BMC port (CloudStack sends it as a string).
    pub oobm_port: String,
    /// BMC user.
    pub oobm_username: String,
    /// `On`, `Off`, `Unknown`, `Disabled`.
    pub oobm_powerstate: String,
    /// CloudStack Host HA enabled.
    pub ha_enable: bool,
    /// CloudStack Host HA state.
    pub ha_state: String,
    /// CloudStack Host HA provider.
    pub ha_provider: String,
}

impl DoubleHost {
    /// A healthy KVM host (Up, Enabled, OOBM ipmitool enabled on
    /// `ip:623` user `admin`, CloudStack Host HA off).
    pub fn kvm(name: &str, ip: &str, cluster_uuid: &str) -> Self {
        DoubleHost {
            id: String::new(),
            name: name.into(),
            state: "Up".into(),
            resourcestate: "Enabled".into(),
            ipaddress: ip.into(),
            clusterid: cluster_uuid.into(),
            hypervisor: "KVM".into(),
            host_type: "Routing".into(),
            lastpinged: "1970-01-20T12:21:35+0000".into(),
            managementserverid: "6f9a1c2e-0000-4000-8000-00000000a001".into(),
            oobm_enabled: true,
            oobm_driver: "ipmitool".into(),
            oobm_address: ip.into(),
            oobm_port: "623".into(),
            oobm_username: "admin".into(),
            oobm_powerstate: "On".into(),
            ha_enable: false,
            ha_state: "Disabled".into(),
            ha_provider: String::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct Zone {
    id: String,
    name: String,
    allocationstate: String,
}

#[derive(Debug, Clone)]
struct Pod {
    id: String,
    name: String,
    zoneid: String,
    allocationstate: String,
}

/// A cluster as the double serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleCluster {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Pod UUID.
    pub podid: String,
    /// `Enabled` / `Disabled`.
    pub allocationstate: String,
    /// `Managed`, `Unmanaged` ...
    pub managedstate: String,
    /// `KVM`.
    pub hypervisortype: String,
}

#[derive(Debug, Clone)]
struct Job {
    command: String,
    polls_left: u32,
    /// Ok(jobresult) or Err((errorcode, errortext)).
    outcome: Result<Value, (u32, String)>,
}

#[derive(Default)]
struct State {
    zones: Vec<Zone>,
    pods: Vec<Pod>,
    clusters: Vec<DoubleCluster>,
    hosts: Vec<DoubleHost>,
    configurations: BTreeMap<String, String>,
    jobs: HashMap<String, Job>,
    calls: Vec<Call>,
    rejections: Vec<Rejection>,
    unreachable: bool,
    dropped: usize,
    delay: Duration,
    job_pending_polls: u32,
    next_uuid: u64,
}

impl State {
    fn uuid(&mut self, kind: u16) -> String {
        self.next_uuid += 1;
        format!(
            "{:08x}-{kind:04x}-4000-8000-{:012x}",
            0x6c5a_0000u32, self.next_uuid
        )
    }
}

struct Shared {
    state: Mutex<State>,
    api_key: String,
    secret_key: String,
    stop: AtomicBool,
}

/// The running double. Dropping it stops the server.
pub struct CloudStackDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl CloudStackDouble {
    /// Starts the double on 127.0.0.1 with a fresh random key pair.
    pub fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut seed = [0u8; 48];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
        let b64 = |b: &[u8]| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job_pending_polls: 1,
                configurations: default_configurations(),
                ..State::default()
            }),
            api_key: b64(&seed[..24]),
            secret_key: b64(&seed[24..]),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("cloudstack-double".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    {
                        let mut st = s.lock();
                        if st.unreachable {
                            st.dropped += 1;
                            drop(conn); // closed without a word
                            continue;
                        }
                    }
                    let s2 = s.clone();
                    let _ = std::thread::Builder::new()
                        .name("cloudstack-double-conn".into())
                        .spawn(move || serve_connection(&s2, conn));
                }
            })?;
        Ok(CloudStackDouble {
            shared,
            addr,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT/client/api`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/client/api", self.addr)
    }
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The admin account's API key.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }
    /// The admin account's secret key.
    pub fn secret_key(&self) -> &str {
        &self.shared.secret_key
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Adds an Enabled zone; returns its UUID.
    pub fn add_zone(&self, name: &str) -> String {
        let mut st = self.lock();
        let id = st.uuid(1);
        st.zones.push(Zone {
            id: id.clone(),
            name: name.into(),
            allocationstate: "Enabled".into(),
        });
        id
    }
    /// Adds an Enabled pod to a zone; returns its UUID.
    pub fn add_pod(&self, name: &str, zone_uuid: &str) -> String {
        let mut st = self.lock();
        let id = st.uuid(2);
        st.pods.push(Pod {
            id: id.clone(),
            name: name.into(),
            zoneid: zone_uuid.into(),
            allocationstate: "Enabled".into(),
        });
        id
    }
    /// Adds an Enabled, Managed KVM cluster to a pod; returns its UUID.
    pub fn add_cluster(&self, name: &str, pod_uuid: &str) -> String {
        let mut st = self.lock();
        let id = st.uuid(3);
        st.clusters.push(DoubleCluster {
            id: id.clone(),
            name: name.into(),
            podid: pod_uuid.into(),
            allocationstate: "Enabled".into(),
            managedstate: "Managed".into(),
            hypervisortype: "KVM".into(),
        });
        id
    }
    /// Sets a zone's `allocationstate`.
    pub fn set_zone_allocation(&self, zone_uuid: &str, state: &str) {
        let mut st = self.lock();
        let z = st.zones.iter_mut().find(|z| z.id == zone_uuid);
        z.expect("unknown zone").allocationstate = state.into();
    }
    /// Sets a pod's `allocationstate`.
    pub fn set_pod_allocation(&self, pod_uuid: &str, state: &str) {
        let mut st = self.lock();
        let p = st.pods.iter_mut().find(|p| p.id == pod_uuid);
        p.expect("unknown pod").allocationstate = state.into();
    }
    /// Changes a cluster.
    pub fn update_cluster(&self, cluster_uuid: &str, f: impl FnOnce(&mut DoubleCluster)) {
        let mut st = self.lock();
        f(st.clusters
            .iter_mut()
            .find(|c| c.id == cluster_uuid)
            .expect("unknown cluster"));
    }
    /// Removes a cluster (its hosts stay listed with a dangling cluster id
    /// unless removed too, as a race in CloudStack would show).
    pub fn remove_cluster(&self, cluster_uuid: &str) {
        self.lock().clusters.retain(|c| c.id != cluster_uuid);
    }
    /// Adds a host (assigns a UUID if `id` is empty); returns its UUID.
    pub fn add_host(&self, mut host: DoubleHost) -> String {
        let mut st = self.lock();
        if host.id.is_empty() {
            host.id = st.uuid(4);
        }
        let id = host.id.clone();
        st.hosts.push(host);
        id
    }
    /// Changes a host (state, resourcestate, lastpinged, OOBM, Host HA ...).
    pub fn update_host(&self, host_uuid: &str, f: impl FnOnce(&mut DoubleHost)) {
        let mut st = self.lock();
        f(st.hosts
            .iter_mut()
            .find(|h| h.id == host_uuid)
            .expect("unknown host"));
    }
    /// A copy of a host.
    pub fn host(&self, host_uuid: &str) -> Option<DoubleHost> {
        self.lock()
            .hosts
            .iter()
            .find(|h| h.id == host_uuid)
            .cloned()
    }
    /// Removes a host.
    pub fn remove_host(&self, host_uuid: &str) {
        self.lock().hosts.retain(|h| h.id != host_uuid);
    }
    /// Moves a host to another cluster.
    pub fn move_host(&self, host_uuid: &str, cluster_uuid: &str) {
        self.update_host(host_uuid, |h| h.clusterid = cluster_uuid.into());
    }
    /// Sets a global setting served by `listConfigurations`.
    pub fn set_configuration(&self, name: &str, value: &str) {
        self.lock().configurations.insert(name.into(), value.into());
    }
    /// While true, every connection is closed without an answer.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.lock().unreachable = unreachable;
    }
    /// Connections and requests dropped without an answer while unreachable.
    pub fn dropped(&self) -> usize {
        self.lock().dropped
    }
    /// Answers every request after this delay.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }
    /// How many `queryAsyncJobResult` polls answer "pending" before a job
    /// ends (default 1).
    pub fn set_job_pending_polls(&self, polls: u32) {
        self.lock().job_pending_polls = polls;
    }
    /// Every accepted call, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }
    /// The accepted calls of one command, in order.
    pub fn calls_of(&self, command: &str) -> Vec<Call> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.command == command)
            .cloned()
            .collect()
    }
    /// Every refused request, in order.
    pub fn rejections(&self) -> Vec<Rejection> {
        self.lock().rejections.clone()
    }
    /// Forgets the recorded calls and rejections.
    pub fn clear_calls(&self) {
        let mut st = self.lock();
        st.calls.clear();
        st.rejections.clear();
    }
}

impl Drop for CloudStackDouble {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn default_configurations() -> BTreeMap<String, String> {
    [
        ("ping.interval", "60"),
        ("ping.timeout", "2.5"),
        ("kvm.ha.activity.check.interval", "60"),
        ("outofbandmanagement.action.timeout", "60"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

// ----- HTTP ---------------------------------------------------------------

fn serve_connection(shared: &Shared, conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = conn.set_nodelay(true);
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut out = write_half;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        let (unreachable, delay) = {
            let mut st = shared.lock();
            st.dropped += usize::from(st.unreachable);
            (st.unreachable, st.delay)
        };
        if unreachable {
            return; // drop the connection without an answer
        }
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let (status, body) = handle(shared, &req);
        let reason = match status {
            200 => "OK",
            401 => "Unauthorized",
            404 => "Not Found",
            _ => "Error",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json;charset=utf-8\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if req.close { "Connection: close\r\n" } else { "" }
        );
        // One write: a separate small head would wait on Nagle + delayed ACK.
        let mut answer = head.into_bytes();
        answer.extend_from_slice(body.as_bytes());
        if out.write_all(&answer).is_err() {
            return;
        }
        if req.close {
            return;
        }
    }
}

struct Request {
    path: String,
    params: Vec<(String, String)>,
    close: bool,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let version = parts.next().unwrap_or("HTTP/1.0").to_string();
    let mut content_length = 0usize;
    let mut close = version == "HTTP/1.0";
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().ok()?;
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
    }
    let mut body = vec![0u8; content_length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut params = parse_form(query);
    if method == "POST" {
        params.extend(parse_form(&String::from_utf8_lossy(&body)));
    }
    Some(Request {
        path: path.to_string(),
        params,
        close,
    })
}

fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Java `URLEncoder.encode(v, "UTF-8")` then `+` → `%20`, as CloudStack
/// re-encodes values before checking the signature.
fn java_encode(v: &str) -> String {
    let mut out = String::new();
    for &c in v.as_bytes() {
        if c.is_ascii_alphanumeric() || b".-*_".contains(&c) {
            out.push(c as char);
        } else if c == b' ' {
            out.push_str("%20");
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses `yyyy-MM-dd'T'HH:mm:ssZ` (offset `+hhmm`) into seconds since the epoch.
fn parse_expires(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .ok()
        .map(|d| d.timestamp())
}

fn verify(shared: &Shared, params: &[(String, String)]) -> Result<(), String> {
    // The first value of a repeated name counts, as in the servlet API.
    let mut first: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in params {
        first.entry(k.as_str()).or_insert(v.as_str());
    }
    let get = |name: &str| {
        first
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let signature = get("signature").ok_or("no signature")?;
    let api_key = get("apikey").ok_or("no apikey")?;
    if !constant_time_eq(api_key.as_bytes(), shared.api_key.as_bytes()) {
        return Err("unknown apikey".into());
    }
    if get("signatureversion") == Some("3") {
        let expires = get("expires").ok_or("signatureversion 3 without expires")?;
        let at = parse_expires(expires).ok_or("unparsable expires")?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if at < now {
            return Err("expired".into());
        }
    }
    // BTreeMap<&str> iterates in byte order = Java's String order for ASCII.
    let unsigned = first
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("signature"))
        .map(|(k, v)| format!("{k}={}", java_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .to_lowercase();
    let mut mac = Hmac::<Sha1>::new_from_slice(shared.secret_key.as_bytes())
        .map_err(|_| "bad key".to_string())?;
    mac.update(unsigned.as_bytes());
    let computed = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    };
    if constant_time_eq(signature.as_bytes(), computed.as_bytes()) {
        Ok(())
    } else {
        Err("bad signature".into())
    }
}

fn error_body(
    command: Option<&str>,
    errorcode: u32,
    cserrorcode: Option<u32>,
    text: &str,
) -> String {
    let key = command.map_or("errorresponse".to_string(), |c| {
        format!("{}response", c.to_lowercase())
    });
    let mut inner = json!({"uuidList": [], "errorcode": errorcode, "errortext": text});
    if let Some(cs) = cserrorcode {
        inner["cserrorcode"] = json!(cs);
    }
    json!({ key: inner }).to_string()
}

fn handle(shared: &Shared, req: &Request) -> (u16, String) {
    let command = req
        .params
        .iter()
        .find(|(k, _)| k == "command")
        .map(|(_, v)| v.clone());
    if req.path != "/client/api" {
        return (404, error_body(None, 404, None, "not found"));
    }
    if let Err(reason) = verify(shared, &req.params) {
        shared.lock().rejections.push(Rejection {
            command: command.clone(),
            reason,
        });
        return (
            401,
            error_body(
                command.as_deref(),
                401,
                None,
                "unable to verify user credentials and/or request signature",
            ),
        );
    }
    let Some(command) = command else {
        return (
            431,
            error_body(None, 431, Some(9999), "no command specified"),
        );
    };
    let mut params = BTreeMap::new();
    for (k, v) in &req.params {
        if k != "signature" {
            params.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let mut st = shared.lock();
    st.calls.push(Call {
        command: command.clone(),
        params: params.clone(),
    });
    match run(&mut st, &command, &params) {
        Ok(body) => (
            200,
            json!({ format!("{}response", command.to_lowercase()): body }).to_string(),
        ),
        Err((code, cs, text)) => (code as u16, error_body(Some(&command), code, cs, &text)),
    }
}

type CmdResult = Result<Value, (u32, Option<u32>, String)>;

fn param_error(text: String) -> (u32, Option<u32>, String) {
    // InvalidParameterValueException: 431, cserrorcode 4350.
    (431, Some(4350), text)
}

fn paged(items: Vec<Value>, key: &str, params: &BTreeMap<String, String>) -> CmdResult {
    let count = items.len();
    let page: usize = match params.get("page") {
        None => 1,
        Some(p) => p
            .parse()
            .ok()
            .filter(|&p| p >= 1)
            .ok_or_else(|| param_error(format!("Unable to parse page: {p}")))?,
    };
    let size: usize = match params.get("pagesize") {
        None => 500,
        Some(s) => s
            .parse()
            .ok()
            .filter(|&s| s >= 1)
            .ok_or_else(|| param_error(format!("Unable to parse pagesize: {s}")))?,
    };
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    if count == 0 {
        return Ok(json!({}));
    }
    let mut m = Map::new();
    m.insert("count".into(), json!(count));
    if !slice.is_empty() {
        m.insert(key.into(), Value::Array(slice));
    }
    Ok(Value::Object(m))
}

fn host_json(st: &State, h: &DoubleHost) -> Value {
    let cluster = st.clusters.iter().find(|c| c.id == h.clusterid);
    let pod = cluster.and_then(|c| st.pods.iter().find(|p| p.id == c.podid));
    let zone = pod.and_then(|p| st.zones.iter().find(|z| z.id == p.zoneid));
    let mut oobm = json!({
        "enabled": h.oobm_enabled,
        "powerstate": if h.oobm_enabled { h.oobm_powerstate.as_str() } else { "Disabled" },
    });
    if !h.oobm_address.is_empty() {
        oobm["driver"] = json!(h.oobm_driver);
        oobm["address"] = json!(h.oobm_address);
        oobm["port"] = json!(h.oobm_port);
        oobm["username"] = json!(h.oobm_username);
        oobm["password"] = json!("x****");
    }
    let mut ha = json!({"hostid": h.id, "haenable": h.ha_enable, "hastate": h.ha_state});
    if !h.ha_provider.is_empty() {
        ha["haprovider"] = json!(h.ha_provider);
    }
    json!({
        "id": h.id, "name": h.name, "state": h.state, "resourcestate": h.resourcestate,
        "type": h.host_type, "hypervisor": h.hypervisor, "hypervisorversion": "8.0.0",
        "ipaddress": h.ipaddress, "clusterid": h.clusterid,
        "clustername": cluster.map(|c| c.name.as_str()).unwrap_or(""),
        "clustertype": "CloudManaged",
        "podid": pod.map(|p| p.id.as_str()).unwrap_or(""),
        "podname": pod.map(|p| p.name.as_str()).unwrap_or(""),
        "zoneid": zone.map(|z| z.id.as_str()).unwrap_or(""),
        "zonename": zone.map(|z| z.name.as_str()).unwrap_or(""),
        "lastpinged": h.lastpinged, "managementserverid": h.managementserverid,
        "hahost": false, "islocalstorageactive": false, "cpunumber": 16, "cpuspeed": 2400,
        "memorytotal": 68_719_476_736u64, "created": "2026-01-05T10:00:00+0000",
        "version": "4.20.1.0", "outofbandmanagement": oobm, "hostha": ha,
    })
}

fn run(st: &mut State, command: &str, p: &BTreeMap<String, String>) -> CmdResult {
    let filter =
        |name: &str, value: &str| p.get(name).map_or(true, |f| f.eq_ignore_ascii_case(value));
    match command {
        "listZones" => {
            let items = st
                .zones
                .iter()
                .filter(|z| filter("id", &z.id))
                .map(|z| json!({"id": z.id, "name": z.name, "allocationstate": z.allocationstate, "networktype": "Advanced"}))
                .collect();
            paged(items, "zone", p)
        }
        "listPods" => {
            let items = st
                .pods
                .iter()
                .filter(|x| filter("id", &x.id) && filter("zoneid", &x.zoneid))
                .map(|x| {
                    let zname = st.zones.iter().find(|z| z.id == x.zoneid).map(|z| z.name.clone());
                    json!({"id": x.id, "name": x.name, "zoneid": x.zoneid, "zonename": zname, "allocationstate": x.allocationstate})
                })
                .collect();
            paged(items, "pod", p)
        }
        "listClusters" => {
            let items = st
                .clusters
                .iter()
                .filter(|c| {
                    filter("id", &c.id)
                        && filter("podid", &c.podid)
                        && filter("hypervisor", &c.hypervisortype)
                })
                .map(|c| {
                    let pod = st.pods.iter().find(|x| x.id == c.podid);
                    json!({"id": c.id, "name": c.name, "podid": c.podid,
                        "podname": pod.map(|x| x.name.clone()),
                        "zoneid": pod.map(|x| x.zoneid.clone()),
                        "hypervisortype": c.hypervisortype, "clustertype": "CloudManaged",
                        "allocationstate": c.allocationstate, "managedstate": c.managedstate,
                        "cpuovercommitratio": "1", "memoryovercommitratio": "1"})
                })
                .collect();
            paged(items, "cluster", p)
        }
        "listHosts" => {
            let items = st
                .hosts
                .iter()
                // Cheap filters first: a cluster round must not render every host.
                .filter(|h| {
                    filter("id", &h.id)
                        && filter("clusterid", &h.clusterid)
                        && filter("type", &h.host_type)
                        && filter("hypervisor", &h.hypervisor)
                })
                .map(|h| host_json(st, h))
                .filter(|h| {
                    [
                        "id",
                        "clusterid",
                        "podid",
                        "zoneid",
                        "type",
                        "hypervisor",
                        "state",
                        "resourcestate",
                    ]
                    .iter()
                    .all(|k| filter(k, h[*k].as_str().unwrap_or("")))
                })
                .collect();
            paged(items, "host", p)
        }
        "listConfigurations" => {
            let name = p.get("name").map(String::as_str).unwrap_or("");
            let items = st
                .configurations
                .iter()
                .filter(|(k, _)| k.contains(name))
                .map(|(k, v)| json!({"name": k, "value": v, "category": "Advanced", "scope": "global", "isdynamic": true}))
                .collect();
            paged(items, "configuration", p)
        }
        "declareHostAsDegraded" | "cancelHostAsDegraded" => {
            let id = p
                .get("id")
                .ok_or_else(|| param_error("Unable to execute API command declarehostasdegraded due to missing parameter id".into()))?
                .clone();
            let declare = command == "declareHostAsDegraded";
            let idx = st
                .hosts
                .iter()
                .position(|h| h.id == id)
                .ok_or_else(|| param_error(format!("Unable to execute API command due to invalid value. Invalid parameter id value={id} due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class.")))?;
            let h = &st.hosts[idx];
            let outcome = if declare {
                if h.resourcestate == "Degraded" {
                    Err((
                        431,
                        format!(
                            "Host [id={}, name={}] is already in Degraded resource state",
                            h.id, h.name
                        ),
                    ))
                } else if h.state != "Alert" && h.state != "Disconnected" {
                    Err((431, format!("Cannot perform declare host [id={}, name={}] as 'Degraded' when host is in {} status", h.id, h.name, h.state)))
                } else {
                    Ok("Degraded")
                }
            } else if h.resourcestate != "Degraded" {
                Err((431, format!("Cannot perform cancelHostAsDegraded on host [id={}, name={}] when host is in {} resource state", h.id, h.name, h.resourcestate)))
            } else {
                Ok("Enabled")
            };
            let outcome = match outcome {
                Ok(rs) => {
                    st.hosts[idx].resourcestate = rs.into();
                    Ok(json!({"host": host_json(st, &st.hosts[idx])}))
                }
                Err(e) => Err(e),
            };
            let jobid = st.uuid(5);
            let polls_left = st.job_pending_polls;
            st.jobs.insert(
                jobid.clone(),
                Job {
                    command: command.into(),
                    polls_left,
                    outcome,
                },
            );
            Ok(json!({"jobid": jobid, "id": id}))
        }
        "queryAsyncJobResult" => {
            let jobid = p
                .get("jobid")
                .ok_or_else(|| param_error("missing parameter jobid".into()))?;
            let job = st
                .jobs
                .get_mut(jobid)
                .ok_or_else(|| param_error(format!("Unable to find job by id {jobid}")))?;
            let cmd = format!(
                "org.apache.cloudstack.api.command.admin.host.{}Cmd",
                upper_first(&job.command)
            );
            if job.polls_left > 0 {
                job.polls_left -= 1;
                return Ok(
                    json!({"jobid": jobid, "cmd": cmd, "jobstatus": 0, "jobprocstatus": 0, "jobresultcode": 0, "created": "2026-12-02T10:00:00+0000"}),
                );
            }
            Ok(match &job.outcome {
                Ok(result) => {
                    json!({"jobid": jobid, "cmd": cmd, "jobstatus": 1, "jobprocstatus": 0, "jobresultcode": 0, "jobresulttype": "object", "jobresult": result})
                }
                Err((code, text)) => {
                    json!({"jobid": jobid, "cmd": cmd, "jobstatus": 2, "jobprocstatus": 0, "jobresultcode": 530, "jobresulttype": "object", "jobresult": {"errorcode": code, "errortext": text}})
                }
            })
        }
        other => Err((
            432,
            Some(9999),
            format!("The given command:{other} does not exist or it is not available for user"),
        )),
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
