//! The event hub behind `events [--since] [--follow]`, through the socket.

use hactl_control::{
    ControlClient, ControlError, ControlGroup, ControlHandler, ControlServer, EventHub,
    EventRecord, PeerCred, Reply, Request, Response, ServerConfig,
};
use hactl_core::Event;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

struct Daemon {
    hub: EventHub,
}

impl ControlHandler for Daemon {
    async fn handle(&self, _: PeerCred, _: Request) -> Result<Reply, ControlError> {
        Err(ControlError::Unsupported {
            detail: "events only".into(),
        })
    }
    async fn events(
        &self,
        _: PeerCred,
        since: Option<u64>,
        follow: bool,
    ) -> Result<mpsc::Receiver<EventRecord>, ControlError> {
        Ok(self.hub.subscribe(since, follow))
    }
}

fn q(quorate: bool) -> Event {
    Event::QuorumChanged { quorate }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_since_then_follow_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Arc::new(Daemon {
        hub: EventHub::new(3),
    });
    for t in 1..=5u64 {
        daemon.hub.publish_at(q(t % 2 == 0), t * 1000);
    }
    let sock = dir.path().join("c.sock");
    let server = ControlServer::bind(ServerConfig {
        path: sock.clone(),
        group: ControlGroup::by_gid(0),
    })
    .await
    .unwrap();
    let task = tokio::spawn(server.serve(daemon.clone()));

    // The backlog holds the last 3; --since filters by wall-clock time.
    let mut c = ControlClient::connect(&sock).await.unwrap();
    let mut seqs = Vec::new();
    let end = c.events(None, false, |r| seqs.push(r.seq)).await.unwrap();
    assert_eq!(end, Response::Ok(Reply::EndOfStream));
    assert_eq!(seqs, vec![3, 4, 5]);
    let mut seqs = Vec::new();
    c.events(Some(4000), false, |r| seqs.push(r.seq))
        .await
        .unwrap();
    assert_eq!(seqs, vec![4, 5]);

    // --follow: backlog, then live events in order, none lost.
    let mut f = ControlClient::connect(&sock).await.unwrap();
    let id = f
        .send(Request::Events {
            since_unix_ms: Some(5000),
            follow: true,
        })
        .await
        .unwrap();
    let first = f.next_response().await.unwrap();
    assert_eq!(first.id, id);
    let Response::Ok(Reply::Event(r)) = first.body else {
        panic!()
    };
    assert_eq!(r.seq, 5);
    let publisher = daemon.clone();
    tokio::spawn(async move {
        for t in 6..=50u64 {
            publisher.hub.publish_at(q(true), t * 1000);
        }
    });
    for want in 6..=50u64 {
        let env = tokio::time::timeout(Duration::from_secs(10), f.next_response())
            .await
            .expect("a followed event")
            .unwrap();
        let Response::Ok(Reply::Event(r)) = env.body else {
            panic!("{env:?}")
        };
        assert_eq!(r.seq, want);
    }
    assert_eq!(daemon.hub.lagged_followers(), 0);
    task.abort();
}
