//! Talking to the daemon over its control socket (hactl-control's client):
//! `Role` and `SetRole`, each bounded by the action's deadline.

use hactl_control::{
    ClientError, ControlClient, ControlError, CoordinatorRole, Reply, Request, Response, RoleReport,
};
use std::path::Path;
use std::time::Instant;

/// Why a role request got no role report.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// Nothing accepts connections on the socket (not started, or gone).
    #[error("{0}")]
    Unreachable(ClientError),
    /// Connected, but no answer before the deadline: a stuck daemon.
    #[error("control socket {socket} did not answer {request} within {ms} ms")]
    NoAnswer {
        socket: String,
        request: &'static str,
        ms: u128,
    },
    /// The daemon answered with a refusal (its own reason).
    #[error("{0}")]
    Refused(ControlError),
    /// The connection broke or the answer was not a role report.
    #[error("{0}")]
    Protocol(String),
}

impl RoleError {
    /// True when nothing listens on the socket at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RoleError::Unreachable(_))
    }
}

async fn exchange(socket: &Path, request: Request) -> Result<RoleReport, RoleError> {
    let mut client = ControlClient::connect(socket)
        .await
        .map_err(RoleError::Unreachable)?;
    match client.request(request).await {
        Ok(Response::Ok(Reply::Role(report))) => Ok(report),
        Ok(Response::Ok(other)) => Err(RoleError::Protocol(format!(
            "unexpected answer to a role request: {other:?}"
        ))),
        Ok(Response::Err(e)) => Err(RoleError::Refused(e)),
        Err(e) => Err(RoleError::Protocol(e.to_string())),
    }
}

fn run(socket: &Path, request: Request, deadline: Instant) -> Result<RoleReport, RoleError> {
    let name = match request {
        Request::SetRole { .. } => "SetRole",
        _ => "Role",
    };
    let budget = deadline.saturating_duration_since(Instant::now());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RoleError::Protocol(format!("cannot start the client runtime: {e}")))?;
    let outcome =
        rt.block_on(async { tokio::time::timeout(budget, exchange(socket, request)).await });
    // Dropping the runtime drops the connection; nothing waits for the daemon.
    drop(rt);
    outcome.unwrap_or_else(|_| {
        Err(RoleError::NoAnswer {
            socket: socket.display().to_string(),
            request: name,
            ms: budget.as_millis(),
        })
    })
}

/// Asks the daemon for its role.
pub fn role(socket: &Path, deadline: Instant) -> Result<RoleReport, RoleError> {
    run(socket, Request::Role, deadline)
}

/// Asks the daemon to become `role`; the answer is its role afterwards.
pub fn set_role(
    socket: &Path,
    role: CoordinatorRole,
    deadline: Instant,
) -> Result<RoleReport, RoleError> {
    run(socket, Request::SetRole { role }, deadline)
}
