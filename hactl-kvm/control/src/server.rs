//! The control socket server: a Unix stream socket, mode 0660, owned by
//! root and the control group, one task per connection, every connection's
//! peer credentials checked before any request is read.

use crate::access::{is_allowed, ControlGroup, PeerCred};
use crate::protocol::{
    ControlError, EventRecord, Reply, Request, RequestEnvelope, Response, ResponseEnvelope,
    MAX_REQUEST_LINE, PROTOCOL_VERSION,
};
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// What the daemon implements to answer requests.
pub trait ControlHandler: Send + Sync + 'static {
    /// Answers one request (everything except [`Request::Events`]). The
    /// server has already checked the peer's credentials; `peer` is passed
    /// on so that state-changing commands are journaled with who ran them.
    fn handle(
        &self,
        peer: PeerCred,
        request: Request,
    ) -> impl Future<Output = Result<Reply, ControlError>> + Send;

    /// Opens an event stream: the backlog since `since_unix_ms`, then (with
    /// `follow`) live events. The server forwards every record until the
    /// sender side is dropped, then sends [`Reply::EndOfStream`].
    fn events(
        &self,
        peer: PeerCred,
        since_unix_ms: Option<u64>,
        follow: bool,
    ) -> impl Future<Output = Result<mpsc::Receiver<EventRecord>, ControlError>> + Send;
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Socket path (its directory must exist).
    pub path: PathBuf,
    /// Group allowed besides root; the socket's group.
    pub group: ControlGroup,
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Something other than a stale socket is at the path.
    #[error("control socket {0}: the path exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// Another daemon answers on the socket.
    #[error("control socket {0}: another daemon is listening there")]
    InUse(PathBuf),
    /// An I/O step failed.
    #[error("control socket {path}: {op}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        op: &'static str,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A bound control socket.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    config: ServerConfig,
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> ServerError + 'a {
    move |source| ServerError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

impl ControlServer {
    /// Binds the socket: replaces a stale socket (nobody listening), refuses
    /// to replace anything else, then sets group and mode 0660. The socket
    /// is created under a umask of 0o177 so it is never reachable by others,
    /// not even between bind and chmod. The umask is process-wide: call this
    /// at start-up, before other threads create files.
    pub async fn bind(config: ServerConfig) -> Result<Self, ServerError> {
        use std::os::unix::fs::FileTypeExt;
        let path = config.path.clone();
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if !meta.file_type().is_socket() {
                return Err(ServerError::NotASocket(path));
            }
            if UnixStream::connect(&path).await.is_ok() {
                return Err(ServerError::InUse(path));
            }
            std::fs::remove_file(&path).map_err(io_err(&path, "remove stale socket"))?;
        }
        // SAFETY: umask only changes this process's file-creation mask.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(&path);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old) };
        let listener = bound.map_err(io_err(&path, "bind"))?;
        nix::unistd::chown(
            &path,
            None,
            Some(nix::unistd::Gid::from_raw(config.group.gid)),
        )
        .map_err(|e| ServerError::Io {
            path: path.clone(),
            op: "chown to the control group",
            source: e.into(),
        })?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
            .map_err(io_err(&path, "chmod 0660"))?;
        Ok(ControlServer { listener, config })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Serves connections until the task is dropped or the listener fails.
    pub async fn serve<H: ControlHandler>(self, handler: Arc<H>) -> Result<(), ServerError> {
        let group = Arc::new(self.config.group.clone());
        loop {
            let (stream, _) = self
                .listener
                .accept()
                .await
                .map_err(io_err(&self.config.path, "accept"))?;
            let handler = handler.clone();
            let group = group.clone();
            tokio::spawn(async move {
                let _ = serve_connection(stream, &group, handler).await;
            });
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config.path);
    }
}

async fn write_line<W: AsyncWrite + Unpin>(
    w: &mut W,
    id: u64,
    body: Response,
) -> std::io::Result<()> {
    let env = ResponseEnvelope {
        v: PROTOCOL_VERSION,
        id,
        body,
    };
    let mut line = serde_json::to_vec(&env).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await
}

/// The request id, if the line has one, so even a refusal is correlated.
fn id_of(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("id").and_then(|i| i.as_u64()))
        .unwrap_or(0)
}

async fn serve_connection<H: ControlHandler>(
    stream: UnixStream,
    group: &ControlGroup,
    handler: Arc<H>,
) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let peer = PeerCred {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
    };
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    if !is_allowed(&peer, group) {
        // Answer once, without reading or acting on anything the peer sent.
        let err = ControlError::PermissionDenied {
            uid: peer.uid,
            group: group.name.clone(),
        };
        write_line(&mut write, 0, Response::Err(err)).await?;
        write.shutdown().await?;
        // Drain (and ignore) what the peer already sent, briefly, so that
        // closing with unread data does not reset the connection before
        // the peer has read why it was refused.
        let mut sink = tokio::io::sink();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            tokio::io::copy(&mut reader.take(MAX_REQUEST_LINE as u64), &mut sink),
        )
        .await;
        return Ok(());
    }
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_REQUEST_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if buf.len() > MAX_REQUEST_LINE {
            let err = ControlError::BadRequest {
                detail: format!("request line longer than {MAX_REQUEST_LINE} bytes"),
            };
            return write_line(&mut write, 0, Response::Err(err)).await;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let env: RequestEnvelope = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                let id = id_of(line);
                // A request of another version may not parse as ours:
                // name the version problem rather than the parse error.
                let v = serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("v").and_then(|v| v.as_u64()));
                let err = match v {
                    Some(v) if v != u64::from(PROTOCOL_VERSION) => ControlError::VersionMismatch {
                        server: PROTOCOL_VERSION,
                        client: v as u32,
                    },
                    _ => ControlError::BadRequest {
                        detail: e.to_string(),
                    },
                };
                write_line(&mut write, id, Response::Err(err)).await?;
                continue;
            }
        };
        if env.v != PROTOCOL_VERSION {
            let err = ControlError::VersionMismatch {
                server: PROTOCOL_VERSION,
                client: env.v,
            };
            write_line(&mut write, env.id, Response::Err(err)).await?;
            continue;
        }
        match env.request {
            Request::Events {
                since_unix_ms,
                follow,
            } => match handler.events(peer, since_unix_ms, follow).await {
                Ok(mut rx) => {
                    while let Some(rec) = rx.recv().await {
                        write_line(&mut write, env.id, Response::Ok(Reply::Event(rec))).await?;
                    }
                    write_line(&mut write, env.id, Response::Ok(Reply::EndOfStream)).await?;
                }
                Err(e) => write_line(&mut write, env.id, Response::Err(e)).await?,
            },
            req => {
                let answer = handler.handle(peer, req).await;
                write_line(&mut write, env.id, answer.into()).await?;
            }
        }
    }
}
