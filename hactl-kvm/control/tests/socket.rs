//! The control socket against real kernel peers: clients running as other
//! users (python3 processes that drop to uid/gid `nobody`), the socket's
//! file mode and group, SO_PEERCRED checks, and the protocol's error paths.

use hactl_control::{
    ControlClient, ControlError, ControlGroup, ControlHandler, ControlServer, EventRecord,
    JournalStatus, PeerCred, Reply, Request, Response, ServerConfig, ServerError, StatusReport,
};
use hactl_core::{ClusterId, Event, HostId};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The group used as control group: `daemon` (gid 1), present on Debian.
const GROUP: &str = "daemon";
const GROUP_GID: u32 = 1;
/// `nobody`/`nogroup`.
const NOBODY: u32 = 65534;

/// A stand-in for the daemon: records who asked what, answers from fixed data.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(PeerCred, Request)>>,
}

fn status_report() -> StatusReport {
    StatusReport {
        quorate: true,
        epoch: 3,
        uptime_s: 61,
        partitions: vec![],
        counts: BTreeMap::new(),
        rate_caps: vec![],
        journal: JournalStatus {
            path: "/var/lib/hactl-kvm/journal".into(),
            bytes: 8,
            last_compaction_unix_ms: None,
        },
    }
}

impl ControlHandler for Recorder {
    async fn handle(&self, peer: PeerCred, request: Request) -> Result<Reply, ControlError> {
        self.calls.lock().unwrap().push((peer, request.clone()));
        match request {
            Request::Status => Ok(Reply::Status(status_report())),
            Request::ConfirmOff { host } if host == HostId(9) => {
                Err(ControlError::UnknownHost { host })
            }
            Request::ConfirmOff { .. } => Err(ControlError::Refused {
                reason: "host-1 is AVAILABLE, not FAILED".into(),
            }),
            _ => Err(ControlError::Unsupported {
                detail: "not in this test".into(),
            }),
        }
    }

    async fn events(
        &self,
        peer: PeerCred,
        since_unix_ms: Option<u64>,
        follow: bool,
    ) -> Result<mpsc::Receiver<EventRecord>, ControlError> {
        self.calls.lock().unwrap().push((
            peer,
            Request::Events {
                since_unix_ms,
                follow,
            },
        ));
        let (tx, rx) = mpsc::channel(8);
        for seq in 1..=3u64 {
            tx.send(EventRecord {
                seq,
                at_unix_ms: 1_796_242_503_000 + seq,
                event: Event::MassFailureCleared {
                    cluster: ClusterId(seq as u32),
                },
            })
            .await
            .unwrap();
        }
        Ok(rx)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    handler: Arc<Recorder>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start() -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("hactl-control")
        .tempdir()
        .unwrap();
    // Other users must be able to reach the socket inode (the socket's own
    // mode is what protects it).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("control.sock");
    let server = ControlServer::bind(ServerConfig {
        path: path.clone(),
        group: ControlGroup::by_name(GROUP).unwrap(),
    })
    .await
    .unwrap();
    let handler = Arc::new(Recorder::default());
    let task = tokio::spawn(server.serve(handler.clone()));
    Fixture {
        _dir: dir,
        path,
        handler,
        task,
    }
}

/// Connects as another user with python3 and sends a status request;
/// returns the first answer line, or `EACCES` when connect() was refused.
fn python_client(path: &Path, uid: u32, gid: u32, groups: &[u32]) -> String {
    let python = test_support::require("python3", "python3");
    let script = r#"
import os, socket, sys
path, uid, gid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
groups = [int(g) for g in sys.argv[4].split(",") if g]
os.setgroups(groups); os.setgid(gid); os.setuid(uid)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(path)
except PermissionError:
    print("EACCES"); sys.exit(0)
try:
    s.sendall(b'{"v":1,"id":7,"request":"status"}\n')
except (BrokenPipeError, ConnectionResetError):
    pass  # a refused peer may be cut off early; its answer is still readable
print(s.makefile("rb").readline().decode().strip())
"#;
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let out = Command::new(python)
        .args(["-c", script])
        .arg(path)
        .arg(uid.to_string())
        .arg(gid.to_string())
        .arg(groups.join(","))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn python_client_async(path: PathBuf, uid: u32, gid: u32, groups: Vec<u32>) -> String {
    tokio::task::spawn_blocking(move || python_client(&path, uid, gid, &groups))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_is_mode_0660_with_the_control_group() {
    let f = start().await;
    let meta = std::fs::metadata(&f.path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), GROUP_GID);
    assert_eq!(meta.uid(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_gets_status_and_is_recorded_as_uid_0() {
    let f = start().await;
    let mut c = ControlClient::connect(&f.path).await.unwrap();
    let r = c.request(Request::Status).await.unwrap();
    assert_eq!(r, Response::Ok(Reply::Status(status_report())));
    // A refusal carries the handler's reason; the connection stays usable.
    let r = c
        .request(Request::ConfirmOff { host: HostId(1) })
        .await
        .unwrap();
    assert_eq!(
        r,
        Response::Err(ControlError::Refused {
            reason: "host-1 is AVAILABLE, not FAILED".into()
        })
    );
    let calls = f.handler.calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0.uid, 0);
    assert_eq!(calls[0].0.pid, Some(std::process::id() as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_cannot_even_connect_through_the_file_mode() {
    let f = start().await;
    let line = python_client_async(f.path.clone(), NOBODY, NOBODY, vec![]).await;
    assert_eq!(line, "EACCES");
    assert!(f.handler.calls.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_credentials_refuse_a_non_member_even_if_the_mode_is_opened() {
    let f = start().await;
    // A mis-set mode (or an ACL) must not open the door: SO_PEERCRED decides.
    std::fs::set_permissions(&f.path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let line = python_client_async(f.path.clone(), NOBODY, NOBODY, vec![]).await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["err"]["error"], "permission_denied", "{line}");
    assert_eq!(v["err"]["uid"], NOBODY);
    assert_eq!(v["err"]["group"], GROUP);
    assert!(
        f.handler.calls.lock().unwrap().is_empty(),
        "a refused peer's request reached the handler"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_are_allowed_by_primary_or_supplementary_group() {
    let f = start().await;
    let by_primary = python_client_async(f.path.clone(), NOBODY, GROUP_GID, vec![]).await;
    let v: serde_json::Value = serde_json::from_str(&by_primary).unwrap();
    assert_eq!(v["ok"]["reply"], "status", "{by_primary}");
    assert_eq!(v["id"], 7);
    let by_supplementary =
        python_client_async(f.path.clone(), NOBODY, NOBODY, vec![GROUP_GID]).await;
    let v: serde_json::Value = serde_json::from_str(&by_supplementary).unwrap();
    assert_eq!(v["ok"]["reply"], "status", "{by_supplementary}");
    let calls = f.handler.calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|(p, _)| p.uid == NOBODY));
}

async fn raw_exchange(path: &Path, line: &str) -> serde_json::Value {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let s = tokio::net::UnixStream::connect(path).await.unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(line.as_bytes()).await.unwrap();
    let mut out = String::new();
    BufReader::new(r).read_line(&mut out).await.unwrap();
    serde_json::from_str(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_get_typed_errors_and_change_nothing() {
    let f = start().await;
    let v = raw_exchange(&f.path, "{\"v\":2,\"id\":5,\"request\":\"status\"}\n").await;
    assert_eq!(v["err"]["error"], "version_mismatch");
    assert_eq!(v["err"]["server"], 1);
    assert_eq!(v["err"]["client"], 2);
    assert_eq!(v["id"], 5);
    let v = raw_exchange(
        &f.path,
        "{\"v\":2,\"id\":6,\"request\":\"from_the_future\"}\n",
    )
    .await;
    assert_eq!(v["err"]["error"], "version_mismatch");
    let v = raw_exchange(&f.path, "{\"v\":1,\"id\":8,\"request\":\"reboot_all\"}\n").await;
    assert_eq!(v["err"]["error"], "bad_request");
    assert_eq!(v["id"], 8);
    let v = raw_exchange(&f.path, "not json\n").await;
    assert_eq!(v["err"]["error"], "bad_request");
    let long = format!("{}\n", "x".repeat(hactl_control::MAX_REQUEST_LINE + 10));
    let v = raw_exchange(&f.path, &long).await;
    assert_eq!(v["err"]["error"], "bad_request");
    assert!(f.handler.calls.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_then_end_of_stream() {
    let f = start().await;
    let mut c = ControlClient::connect(&f.path).await.unwrap();
    let mut got = Vec::new();
    let end = c
        .events(Some(5), false, |rec| got.push(rec.seq))
        .await
        .unwrap();
    assert_eq!(got, vec![1, 2, 3]);
    assert_eq!(end, Response::Ok(Reply::EndOfStream));
    let calls = f.handler.calls.lock().unwrap();
    assert_eq!(
        calls[0].1,
        Request::Events {
            since_unix_ms: Some(5),
            follow: false
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_replaces_a_stale_socket_but_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let group = ControlGroup::by_name(GROUP).unwrap();
    let cfg = |p: &Path| ServerConfig {
        path: p.to_path_buf(),
        group: group.clone(),
    };
    // A regular file is never replaced.
    let file = dir.path().join("file");
    std::fs::write(&file, "keep me").unwrap();
    let err = ControlServer::bind(cfg(&file)).await.unwrap_err();
    assert!(matches!(err, ServerError::NotASocket(_)), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    // A live socket is another daemon.
    let live = dir.path().join("live.sock");
    let first = ControlServer::bind(cfg(&live)).await.unwrap();
    let err = ControlServer::bind(cfg(&live)).await.unwrap_err();
    assert!(matches!(err, ServerError::InUse(_)), "{err}");
    drop(first);
    // A stale socket (nobody listening) is replaced.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let s = ControlServer::bind(cfg(&stale)).await.unwrap();
    assert!(ControlClient::connect(s.path()).await.is_ok());
    // An unknown group is a clear error.
    let e = ControlGroup::by_name("no-such-group-hactl").unwrap_err();
    assert_eq!(
        e.to_string(),
        "control group \"no-such-group-hactl\" does not exist"
    );
}
