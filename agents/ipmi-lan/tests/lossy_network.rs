//! Retransmission and reply matching through a hostile loopback relay in
//! front of a real ipmi_sim: it drops requests and replies, answers every
//! request with garbage datagrams first, sends a corrupted copy of every
//! reply before it, and delivers every reply twice.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use ipmi_lan::{ChassisControl, PowerState, Session};
use test_support::{IpmiSim, PowerEvent};

struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
}

impl Relay {
    /// Drops request number n when `n % drop_request_every == 0` and reply
    /// number n when `n % drop_reply_every == 1` (deterministic, so a failure
    /// reproduces).
    fn start(bmc_port: u16, drop_request_every: u64, drop_reply_every: u64) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(("127.0.0.1", bmc_port)).unwrap();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        }
        let port = front.local_addr().unwrap().port();
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let (front2, back2) = (front.try_clone().unwrap(), back.try_clone().unwrap());

        let (c, st, d) = (client.clone(), stop.clone(), dropped.clone());
        let up = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut n = 0u64;
            while !st.load(Ordering::Relaxed) {
                let Ok((len, from)) = front.recv_from(&mut buf) else {
                    continue;
                };
                *c.lock().unwrap() = Some(from);
                n += 1;
                // A stray datagram (not RMCP at all) and a forged RMCP+
                // packet for a random session precede every answer.
                let _ = front.send_to(b"garbage", from);
                let mut forged = vec![0x06, 0x00, 0xff, 0x07, 0x06, 0xc0];
                forged.extend_from_slice(&[0x55; 30]);
                let _ = front.send_to(&forged, from);
                if n % drop_request_every == 0 {
                    d.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let _ = back.send(&buf[..len]);
            }
        });
        let (c, st, d) = (client, stop.clone(), dropped.clone());
        let down = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut n = 0u64;
            while !st.load(Ordering::Relaxed) {
                let Ok(len) = back2.recv(&mut buf) else {
                    continue;
                };
                n += 1;
                if n % drop_reply_every == 1 {
                    d.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if let Some(to) = *c.lock().unwrap() {
                    // A corrupted copy (bad MAC, or bad checksum without
                    // integrity), then the reply, then a duplicate.
                    let mut bad = buf[..len].to_vec();
                    *bad.last_mut().unwrap() ^= 0x01;
                    let _ = front2.send_to(&bad, to);
                    let _ = front2.send_to(&buf[..len], to);
                    let _ = front2.send_to(&buf[..len], to); // duplicate
                }
            }
        });
        Relay {
            port,
            stop,
            threads: vec![up, down],
            dropped,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn sessions_survive_loss_duplicates_and_garbage() {
    let sim = IpmiSim::start();
    let relay = Relay::start(sim.port(), 3, 5);
    for suite in [3u8, 1] {
        let mut o = lanplus(&sim, "admin", "secret", suite);
        o.port = relay.port;
        o.allow_unauthenticated = suite == 1;
        o.retransmit_interval = Duration::from_millis(100);
        let mut s = Session::open(&o, secs(10)).unwrap_or_else(|e| panic!("suite {suite}: {e}"));
        assert_eq!(s.power_state(secs(5)).unwrap(), PowerState::On);
        s.chassis_control(ChassisControl::PowerDown, secs(5))
            .unwrap();
        assert_eq!(s.power_state(secs(5)).unwrap(), PowerState::Off);
        s.chassis_control(ChassisControl::PowerUp, secs(5)).unwrap();
        assert_eq!(s.power_state(secs(5)).unwrap(), PowerState::On);
        let st = s.stats();
        // 10 exchanges: some requests were sent again, and for each sent
        // request 2 junk datagrams plus a corrupted and up to 2 good copies of the reply came back.
        assert!(st.sent > 10, "no retransmission happened: {st:?}");
        assert!(st.received > 3 * st.sent, "{st:?}");
        close_tolerating_lost_reply(s);
    }
    assert!(relay.dropped.load(Ordering::Relaxed) > 0);
    // Retransmitted chassis controls may run twice, but never anything else.
    let ev = sim.events();
    assert!(!ev.is_empty());
    assert_eq!(ev.first(), Some(&PowerEvent::Off));
    assert_eq!(ev.last(), Some(&PowerEvent::On));
    assert!(sim.power_is_on());
}

#[test]
fn ipmi_15_survives_loss_duplicates_and_garbage() {
    let sim = IpmiSim::start();
    let relay = Relay::start(sim.port(), 4, 6);
    let mut o = lan15(&sim, "admin", "secret");
    o.port = relay.port;
    o.retransmit_interval = Duration::from_millis(100);
    for _ in 0..3 {
        let mut s = Session::open(&o, secs(10)).expect("open through lossy relay");
        assert_eq!(s.power_state(secs(5)).unwrap(), PowerState::On);
        close_tolerating_lost_reply(s);
    }
    assert!(relay.dropped.load(Ordering::Relaxed) > 0);
}

/// When the reply to Close Session is lost, the BMC has already forgotten
/// the session and ignores the retransmission: a timeout is then expected.
fn close_tolerating_lost_reply(s: Session) {
    if let Err(e) = s.close() {
        assert!(e.is_timeout(), "{e}");
    }
}
