//! The client side: connect, send one request, read its answer(s).

use crate::protocol::{
    EventRecord, Reply, Request, RequestEnvelope, Response, ResponseEnvelope, PROTOCOL_VERSION,
};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// Where the daemon listens by default.
pub const DEFAULT_SOCKET: &str = "/run/hactl-kvm/control.sock";

/// Client-side failures (the daemon's own refusals arrive as
/// [`Response::Err`], not as this type).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to the daemon at {path}: {source} (is `hactl-kvm run` running, and are you root or in its control group?)")]
    Connect {
        /// Socket.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing failed.
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon closed the connection without a final answer.
    #[error("the daemon closed the connection before answering")]
    Closed,
    /// The daemon's line could not be decoded.
    #[error("undecodable answer from the daemon: {0}")]
    Decode(#[from] serde_json::Error),
    /// An answer for another request.
    #[error("answer for request {got}, expected {expected}")]
    WrongId {
        /// Expected id.
        expected: u64,
        /// Received id.
        got: u64,
    },
}

/// One connection to the daemon.
#[derive(Debug)]
pub struct ControlClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    line: String,
}

impl ControlClient {
    /// Connects to the socket.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        let (r, w) = stream.into_split();
        Ok(ControlClient {
            reader: BufReader::new(r),
            writer: w,
            next_id: 1,
            line: String::new(),
        })
    }

    /// Sends a request; returns its id.
    pub async fn send(&mut self, request: Request) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let env = RequestEnvelope {
            v: PROTOCOL_VERSION,
            id,
            request,
        };
        let mut line = serde_json::to_vec(&env)?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        self.writer.flush().await?;
        Ok(id)
    }

    /// Reads the next answer line (any id; a permission refusal has id 0).
    pub async fn next_response(&mut self) -> Result<ResponseEnvelope, ClientError> {
        self.line.clear();
        let n = self.reader.read_line(&mut self.line).await?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        Ok(serde_json::from_str(self.line.trim_end())?)
    }

    /// Sends a request and returns its (single) answer.
    pub async fn request(&mut self, request: Request) -> Result<Response, ClientError> {
        let id = self.send(request).await?;
        let env = self.next_response().await?;
        if env.id != id && env.id != 0 {
            return Err(ClientError::WrongId {
                expected: id,
                got: env.id,
            });
        }
        Ok(env.body)
    }

    /// Opens an event stream and calls `each` for every event until the
    /// stream ends; returns the final answer (EndOfStream or an error).
    pub async fn events<F: FnMut(EventRecord)>(
        &mut self,
        since_unix_ms: Option<u64>,
        follow: bool,
        mut each: F,
    ) -> Result<Response, ClientError> {
        let id = self
            .send(Request::Events {
                since_unix_ms,
                follow,
            })
            .await?;
        loop {
            let env = self.next_response().await?;
            if env.id != id && env.id != 0 {
                return Err(ClientError::WrongId {
                    expected: id,
                    got: env.id,
                });
            }
            match env.body {
                Response::Ok(Reply::Event(rec)) => each(rec),
                other => return Ok(other),
            }
        }
    }
}
