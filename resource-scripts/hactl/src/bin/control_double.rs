//! hactl-control-double: a stand-in for `hactl-kvm` in the agent's tests.
//! `run --config FILE [--standby]` serves the real control protocol (the
//! hactl-control server) on the socket FILE names, answering Role and
//! SetRole from a role it keeps in memory; `check-config --config FILE`
//! accepts or refuses FILE as hactl-kvm does (same output shape).
//!
//! FILE holds `key = value` lines: `socket` (required), `promotion_score`
//! (default 10), `in_sync` (default true), `refuse_promote` (a reason: every
//! promotion is refused with it), `fail_start` (print it and exit 1 at
//! once), `ignore_sigterm` (true: only SIGKILL ends it), `promote_delay_ms`
//! (a promotion is accepted at once but completes that much later, as a
//! Corosync promotion waits for the group to confirm the new epoch).
//! Every SetRole it receives is appended to `<socket>.requests`, the
//! tests' ground truth of what the agent asked.

use hactl_control::{
    ControlError, ControlGroup, ControlHandler, ControlServer, CoordinatorRole, EventRecord,
    PeerCred, Reply, Request, RoleReport, ServerConfig,
};
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

struct Double {
    role: Arc<Mutex<CoordinatorRole>>,
    promote_delay_ms: u64,
    epoch: Mutex<u64>,
    score: i64,
    in_sync: bool,
    refuse_promote: Option<String>,
    requests: PathBuf,
}

impl Double {
    fn report(&self, changed: Option<String>) -> RoleReport {
        RoleReport {
            role: *self.role.lock().unwrap(),
            quorum_provider: "standalone".into(),
            quorate: true,
            epoch: *self.epoch.lock().unwrap(),
            journal_head: 42,
            journal_committed: 42,
            in_sync: self.in_sync,
            promotion_score: self.score,
            changed,
        }
    }

    fn set_role(&self, want: CoordinatorRole) -> Result<Reply, ControlError> {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.requests)
        {
            let _ = writeln!(f, "SetRole {want:?}");
        }
        if want == CoordinatorRole::Active {
            if let Some(reason) = &self.refuse_promote {
                return Err(ControlError::Refused {
                    reason: reason.clone(),
                });
            }
        }
        let mut role = self.role.lock().unwrap();
        if want == CoordinatorRole::Active && *role != want && self.promote_delay_ms > 0 {
            let (shared, delay) = (self.role.clone(), self.promote_delay_ms);
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(delay));
                *shared.lock().unwrap() = CoordinatorRole::Active;
            });
            drop(role);
            return Ok(Reply::Role(self.report(Some("promotion pending".into()))));
        }
        let changed = if *role == want {
            None
        } else {
            *role = want;
            if want == CoordinatorRole::Active {
                *self.epoch.lock().unwrap() += 1;
            }
            Some(format!("now {want:?}"))
        };
        drop(role);
        Ok(Reply::Role(self.report(changed)))
    }
}

impl ControlHandler for Double {
    fn handle(
        &self,
        _peer: PeerCred,
        request: Request,
    ) -> impl Future<Output = Result<Reply, ControlError>> + Send {
        let out = match request {
            Request::Role => Ok(Reply::Role(self.report(None))),
            Request::SetRole { role } => self.set_role(role),
            other => Err(ControlError::Unsupported {
                detail: format!("the control double answers Role and SetRole only, not {other:?}"),
            }),
        };
        async move { out }
    }

    async fn events(
        &self,
        _peer: PeerCred,
        _since_unix_ms: Option<u64>,
        _follow: bool,
    ) -> Result<mpsc::Receiver<EventRecord>, ControlError> {
        Err(ControlError::Unsupported {
            detail: "no events".into(),
        })
    }
}

fn load(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut map = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("{}: line {}: expected key = value", path.display(), n + 1))?;
        map.insert(k.trim().to_string(), v.trim().to_string());
    }
    if !map.contains_key("socket") {
        return Err(format!("{}: socket is not set", path.display()));
    }
    Ok(map)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let config = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let (Some(cmd), Some(config)) = (args.get(1), config) else {
        eprintln!("usage: hactl-control-double run|check-config --config FILE [--standby]");
        std::process::exit(2);
    };
    let cfg = match load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hactl-kvm {cmd}: {e}");
            std::process::exit(1);
        }
    };
    match cmd.as_str() {
        "check-config" => {
            println!("CloudStack API: OK (0 KVM hosts)");
            println!("{:<24} {:<28} {:<24} POWER", "HOST", "CLOUDSTACK", "BMC");
        }
        "run" => serve(cfg, args.iter().any(|a| a == "--standby")),
        other => {
            eprintln!("hactl-control-double: unknown command {other}");
            std::process::exit(2);
        }
    }
}

fn serve(cfg: HashMap<String, String>, standby: bool) {
    if let Some(msg) = cfg.get("fail_start") {
        eprintln!("hactl-kvm run: {msg}");
        std::process::exit(1);
    }
    let socket = PathBuf::from(&cfg["socket"]);
    let double = Arc::new(Double {
        role: Arc::new(Mutex::new(if standby {
            CoordinatorRole::Standby
        } else {
            CoordinatorRole::Active
        })),
        promote_delay_ms: cfg
            .get("promote_delay_ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        epoch: Mutex::new(1),
        score: cfg
            .get("promotion_score")
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
        in_sync: cfg.get("in_sync").map(|v| v != "false").unwrap_or(true),
        refuse_promote: cfg.get("refuse_promote").cloned(),
        requests: socket.with_extension("requests"),
    });
    let ignore_sigterm = cfg
        .get("ignore_sigterm")
        .map(|v| v == "true")
        .unwrap_or(false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let group = ControlGroup::by_name("root").expect("group root");
        let server = ControlServer::bind(ServerConfig {
            path: socket,
            group,
        })
        .await
        .unwrap_or_else(|e| {
            eprintln!("hactl-kvm run: {e}");
            std::process::exit(1);
        });
        eprintln!("control double serving on {}", server.path().display());
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        let serving = tokio::spawn(server.serve(double));
        loop {
            term.recv().await;
            if !ignore_sigterm {
                break;
            }
            eprintln!("control double: SIGTERM ignored");
        }
        // Dropping the server task drops the listener, which removes the socket.
        serving.abort();
        let _ = serving.await;
        eprintln!("control double: stopped");
    });
}
