//! `hactl-kvm check-config`: validates the configuration and secrets,
//! reaches the CloudStack API once and every host's BMC once (power status
//! only, never a power change), and reports what it found.

use crate::config::RuntimeConfig;
use crate::daemon::DaemonError;
use crate::power::{PowerAnswer, PowerOp, PowerRequest};
use crate::secrets::Secrets;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One row of the report.
#[derive(Debug, Clone)]
pub struct HostCheck {
    /// Host name.
    pub name: String,
    /// CloudStack state / resource state.
    pub cloudstack: String,
    /// BMC address:port.
    pub bmc: String,
    /// Power read, or why not.
    pub power: Result<String, String>,
}

/// The report.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The API answered (or why not).
    pub api: Result<usize, String>,
    /// Per host.
    pub hosts: Vec<HostCheck>,
}

impl CheckReport {
    /// True when the API and every BMC answered.
    pub fn all_reachable(&self) -> bool {
        self.api.is_ok() && self.hosts.iter().all(|h| h.power.is_ok())
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.api {
            Ok(n) => writeln!(f, "CloudStack API: OK ({n} KVM hosts)")?,
            Err(e) => writeln!(f, "CloudStack API: FAILED: {e}")?,
        }
        writeln!(f, "{:<24} {:<28} {:<24} POWER", "HOST", "CLOUDSTACK", "BMC")?;
        for h in &self.hosts {
            let p = match &h.power {
                Ok(s) => s.clone(),
                Err(e) => format!("FAILED: {e}"),
            };
            writeln!(f, "{:<24} {:<28} {:<24} {p}", h.name, h.cloudstack, h.bmc)?;
        }
        Ok(())
    }
}

/// Runs the checks. Errors are refusals of the configuration or secrets;
/// unreachable peers are in the report.
pub async fn check_config(path: &Path) -> Result<CheckReport, DaemonError> {
    let cfg = RuntimeConfig::load(path)?;
    let secrets = Secrets::load(&cfg.daemon.secrets_file)?;
    let client = crate::daemon::client_for_check(&cfg, &secrets)?;
    let hosts = match client.list_kvm_hosts(None).await {
        Ok(h) => h,
        Err(e) => {
            return Ok(CheckReport {
                api: Err(e.to_string()),
                hosts: Vec::new(),
            })
        }
    };
    let drivers = Arc::new(crate::daemon::drivers_for_check(&cfg));
    let mut tasks = Vec::new();
    for h in &hosts {
        let target = crate::daemon::target_for(&cfg, &secrets, h);
        let name = h.name.clone();
        let cs = format!("{}/{}", h.state.as_str(), h.resourcestate);
        let drivers = drivers.clone();
        let timeout = Duration::from_millis(cfg.core.power_op_timeout_ms);
        tasks.push(tokio::task::spawn_blocking(move || match target {
            Err(e) => HostCheck {
                name,
                cloudstack: cs,
                bmc: "-".into(),
                power: Err(e.to_string()),
            },
            Ok((t, kind)) => {
                let req = PowerRequest {
                    host: hactl_core::HostId(0),
                    op: PowerOp::Status,
                    epoch: 0,
                    deadline: Instant::now() + timeout,
                };
                let power = match drivers.get(kind).execute(&t, &req) {
                    Ok(PowerAnswer::State(s)) => Ok(format!("{s:?}")),
                    Ok(PowerAnswer::Accepted) => Ok("answered".into()),
                    Err(e) => Err(e.to_string()),
                };
                HostCheck {
                    name,
                    cloudstack: cs,
                    bmc: format!("{}:{}", t.address, t.port),
                    power,
                }
            }
        }));
    }
    let mut rows = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            rows.push(r);
        }
    }
    Ok(CheckReport {
        api: Ok(hosts.len()),
        hosts: rows,
    })
}
