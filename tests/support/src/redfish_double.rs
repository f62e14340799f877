//! A small Redfish service double (Python standard library, HTTPS with a per-run [`TestCa`])
//! for what sushy-emulator cannot do: a 409 or 400 "already in that state" answer, visible
//! `PoweringOff`/`PoweringOn` transitions, slow answers, SessionService sessions, refused
//! ResetTypes, and BMCs that want `Accept`/`OData-Version` headers (406 otherwise).
//!
//! Every request it answers is appended to an events file ([`RedfishDouble::events`]): the
//! ground truth the tests judge by (which resets were sent, with which auth and headers, which
//! sessions were created and deleted).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::peers::{require, terminate};
use crate::tls::TestCa;

const SCRIPT: &str = include_str!("redfish_double.py");

/// How the double behaves.
#[derive(Clone, Debug)]
pub struct DoubleBehaviour {
    /// (Id, Name, PowerState) of each system; `PoweringOff`/`PoweringOn` start a transition
    /// that ends after `transition_secs`.
    pub systems: Vec<(String, String, String)>,
    /// Offer SessionService (`Links.Sessions`).
    pub sessions: bool,
    /// Answer session creation with this HTTP status (a service that advertises sessions but
    /// cannot create one).
    pub session_post_status: Option<u16>,
    /// The answer to a reset into the current state (or during a transition): 409, 400, or
    /// `None` for 204 (what sushy-emulator does).
    pub already_status: Option<u16>,
    /// Seconds a system spends in PoweringOff/PoweringOn after a reset.
    pub transition_secs: f64,
    /// Seconds before every answer.
    pub delay_secs: f64,
    /// `ResetType@Redfish.AllowableValues`; `None` leaves it out.
    pub allowed: Option<Vec<String>>,
    /// ResetTypes answered with this HTTP status.
    pub refuse: Vec<(String, u16)>,
    /// The first this-many reads of a system say `On` whatever its state (a BMC whose status
    /// lags behind its power).
    pub report_on_for_reads: u32,
    /// Answer 406 without `Accept: application/json` and `OData-Version: 4.0`.
    pub require_odata_headers: bool,
    pub username: String,
    pub password: String,
}

impl Default for DoubleBehaviour {
    fn default() -> Self {
        DoubleBehaviour {
            systems: vec![("1".into(), "node1".into(), "On".into())],
            sessions: false,
            session_post_status: None,
            already_status: None,
            transition_secs: 0.0,
            delay_secs: 0.0,
            allowed: Some(
                ["On", "ForceOff", "GracefulShutdown", "ForceRestart", "Nmi"]
                    .map(String::from)
                    .to_vec(),
            ),
            refuse: Vec::new(),
            report_on_for_reads: 0,
            require_odata_headers: true,
            username: "admin".into(),
            password: "Dbl-Pw-4a1f".into(),
        }
    }
}

/// One request the double answered.
#[derive(Clone, Debug)]
pub struct DoubleEvent(pub Value);

impl DoubleEvent {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0[key].as_str()
    }
    pub fn status(&self) -> u16 {
        self.0["status"].as_u64().unwrap_or(0) as u16
    }
}

/// A running double.
pub struct RedfishDouble {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    ca: TestCa,
    pub behaviour: DoubleBehaviour,
}

impl RedfishDouble {
    pub fn start(behaviour: DoubleBehaviour) -> RedfishDouble {
        let python = require("python3", "python3");
        let ca = TestCa::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = json!({
            "username": behaviour.username,
            "password": behaviour.password,
            "sessions": behaviour.sessions,
            "session_post_status": behaviour.session_post_status,
            "systems": behaviour.systems.iter().map(|(i, n, p)| json!({"id": i, "name": n, "power": p})).collect::<Vec<_>>(),
            "already_status": behaviour.already_status,
            "transition_secs": behaviour.transition_secs,
            "delay_secs": behaviour.delay_secs,
            "allowed": behaviour.allowed,
            "refuse": Value::Object(
                behaviour
                    .refuse
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect(),
            ),
            "require_odata_headers": behaviour.require_odata_headers,
            "report_on_for_reads": behaviour.report_on_for_reads,
        });
        std::fs::write(dir.path().join("double.py"), SCRIPT).unwrap();
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        std::fs::write(dir.path().join("events.jsonl"), "").unwrap();
        let mut child = Command::new(python)
            .arg(dir.path().join("double.py"))
            .arg(dir.path().join("config.json"))
            .arg(dir.path().join("events.jsonl"))
            .arg(ca.server_cert())
            .arg(ca.server_key())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("double.err")).unwrap())
            .spawn()
            .expect("start the Redfish double");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let port: u16 = match line.trim().parse() {
            Ok(p) => p,
            Err(_) => {
                terminate(&mut child, Duration::from_secs(1));
                panic!(
                    "the Redfish double did not start: {}",
                    std::fs::read_to_string(dir.path().join("double.err")).unwrap_or_default()
                );
            }
        };
        RedfishDouble {
            child,
            port,
            dir,
            ca,
            behaviour,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn ca_file(&self) -> PathBuf {
        self.ca.ca_file()
    }

    /// Every request answered so far, in order.
    pub fn events(&self) -> Vec<DoubleEvent> {
        std::fs::read_to_string(self.dir.path().join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .map(DoubleEvent)
            .collect()
    }

    /// The ResetTypes requested, with the HTTP status each got.
    pub fn resets(&self) -> Vec<(String, u16)> {
        self.events()
            .iter()
            .filter_map(|e| e.str("reset").map(|r| (r.to_string(), e.status())))
            .collect()
    }
}

impl Drop for RedfishDouble {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(2));
    }
}
