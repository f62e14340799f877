//! A programmable, possibly hostile, fake BMC: a UDP socket on loopback that receives the
//! client's datagrams and sends exactly the bytes a test asks for, when it asks — genuine
//! answers, forged ones, garbage, replays, or answers from another source port.
//!
//! It knows RMCP / IPMI 1.5 / RMCP+ framing and the IPMI message layout (checksums), and can
//! play an honest IPMI 1.5 MD5 BMC ([`Lan15Bmc`]); tests that need a genuine RMCP+ session
//! compute its keys themselves (with `ipmi_lan::crypto`), so this crate stays free of the code
//! under test.
//!
//! The test drives it from its own thread ([`FakeBmc::spawn`]) while the client under test
//! blocks in the test thread. Sockets close when the handle is dropped; nothing else is started.

use std::net::{SocketAddr, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

/// RMCP header: version 6, reserved, no ACK, class IPMI.
pub const RMCP_IPMI: [u8; 4] = [0x06, 0x00, 0xFF, 0x07];
/// RMCP header of class ASF (presence ping/pong), which is not IPMI.
pub const RMCP_ASF: [u8; 4] = [0x06, 0x00, 0xFF, 0x06];

/// The fake BMC's socket and what it has seen.
pub struct FakeBmc {
    socket: UdpSocket,
    /// A second socket on another port, for answers that come from the wrong place.
    other: UdpSocket,
    peer: Option<SocketAddr>,
    received: Vec<Vec<u8>>,
}

/// A request as the client framed it (IPMI 1.5 session or RMCP+).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The raw bytes.
    pub bytes: Vec<u8>,
}

impl Datagram {
    /// IPMI 1.5 session header fields: (auth type, sequence, session id, auth code, message).
    #[allow(clippy::type_complexity)]
    pub fn v15(&self) -> Option<(u8, u32, u32, Option<[u8; 16]>, Vec<u8>)> {
        let p = &self.bytes;
        if p.len() < 14 || p[..4] != RMCP_IPMI || p[4] == 0x06 {
            return None;
        }
        let seq = u32::from_le_bytes(p[5..9].try_into().ok()?);
        let id = u32::from_le_bytes(p[9..13].try_into().ok()?);
        let (code, rest) = if p[4] == 0 {
            (None, &p[13..])
        } else {
            (Some(p.get(13..29)?.try_into().ok()?), p.get(29..)?)
        };
        let len = *rest.first()? as usize;
        Some((p[4], seq, id, code, rest.get(1..1 + len)?.to_vec()))
    }

    /// RMCP+ fields: (payload type byte, session id, sequence, payload).
    pub fn v20(&self) -> Option<(u8, u32, u32, Vec<u8>)> {
        let p = &self.bytes;
        if p.len() < 16 || p[..4] != RMCP_IPMI || p[4] != 0x06 {
            return None;
        }
        let id = u32::from_le_bytes(p[6..10].try_into().ok()?);
        let seq = u32::from_le_bytes(p[10..14].try_into().ok()?);
        let len = u16::from_le_bytes(p[14..16].try_into().ok()?) as usize;
        Some((p[5], id, seq, p.get(16..16 + len)?.to_vec()))
    }
}

/// An IPMI request message's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpmiRequest {
    /// Request network function (even).
    pub netfn: u8,
    /// Request sequence number (6 bits).
    pub rq_seq: u8,
    /// Command.
    pub cmd: u8,
    /// Request data.
    pub data: Vec<u8>,
}

impl IpmiRequest {
    /// Parses `rsSA, netFn/LUN, chk, rqSA, rqSeq/LUN, cmd, data.., chk`.
    pub fn parse(m: &[u8]) -> Option<IpmiRequest> {
        if m.len() < 7 {
            return None;
        }
        Some(IpmiRequest {
            netfn: m[1] >> 2,
            rq_seq: m[4] >> 2,
            cmd: m[5],
            data: m[6..m.len() - 1].to_vec(),
        })
    }

    /// The response message to this request: completion code `cc`, then `data`.
    pub fn response(&self, cc: u8, data: &[u8]) -> Vec<u8> {
        ipmi_response(self.netfn | 1, self.rq_seq, self.cmd, cc, data)
    }
}

/// Two's-complement checksum of IPMI messages.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        .wrapping_neg()
}

/// An IPMI response message from the BMC (0x20) to the remote console (0x81), both checksums
/// right.
pub fn ipmi_response(netfn: u8, rq_seq: u8, cmd: u8, cc: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x81, netfn << 2];
    v.push(checksum(&v));
    v.extend_from_slice(&[0x20, (rq_seq & 0x3f) << 2, cmd, cc]);
    v.extend_from_slice(data);
    let c = checksum(&v[3..]);
    v.push(c);
    v
}

/// RMCP + IPMI 1.5 session header + message (the length byte is `msg.len()`).
pub fn v15_packet(
    auth_type: u8,
    seq: u32,
    session_id: u32,
    auth_code: Option<&[u8; 16]>,
    msg: &[u8],
) -> Vec<u8> {
    let mut v = RMCP_IPMI.to_vec();
    v.push(auth_type);
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&session_id.to_le_bytes());
    if let Some(c) = auth_code {
        v.extend_from_slice(c);
    }
    v.push(msg.len() as u8);
    v.extend_from_slice(msg);
    v
}

/// RMCP+ header + payload, no trailer (pre-session messages, or the part a MAC covers from
/// byte 4 on once the trailer is added by the test).
pub fn v20_packet(payload_type: u8, session_id: u32, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = RMCP_IPMI.to_vec();
    v.push(0x06);
    v.push(payload_type);
    v.extend_from_slice(&session_id.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// Appends the RMCP+ integrity trailer (pad to a multiple of 4 from byte 4, pad length, next
/// header 0x07) and returns the bytes a MAC must cover (from byte 4 on).
pub fn v20_add_trailer(packet: &mut Vec<u8>) -> Vec<u8> {
    let covered = packet.len() - 4 + 2;
    let pad = (4 - covered % 4) % 4;
    packet.extend(std::iter::repeat(0xFF).take(pad));
    packet.push(pad as u8);
    packet.push(0x07);
    packet[4..].to_vec()
}

fn padded16(pw: &str) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..pw.len()].copy_from_slice(pw.as_bytes());
    p
}

/// The IPMI 1.5 MD5 auth code (IPMI 2.0 §22.17.1).
pub fn md5_code(pw: &[u8; 16], session_id: u32, seq: u32, msg: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(pw);
    h.update(session_id.to_le_bytes());
    h.update(msg);
    h.update(seq.to_le_bytes());
    h.update(pw);
    h.finalize().into()
}

/// Channel authentication capabilities: `mask` of auth types (0x01 none, 0x04 MD5, 0x10
/// straight), per-message authentication on or off.
pub fn caps_data(mask: u8, per_message: bool) -> Vec<u8> {
    vec![
        0x01,
        mask,
        if per_message { 0 } else { 0x10 },
        0,
        0,
        0,
        0,
        0,
    ]
}

/// An honest IPMI 1.5 BMC with MD5 and per-message authentication, power as given.
pub struct Lan15Bmc {
    pw: [u8; 16],
    temp_id: u32,
    session_id: u32,
    /// The last session sequence number it sent.
    pub out_seq: u32,
    /// Chassis power.
    pub power_on: bool,
    /// Answer Chassis Control with this completion code instead of doing it, per control byte
    /// (e.g. 0x02 cycle -> 0xD5, what some BMCs answer).
    pub refuse: Vec<(u8, u8)>,
    /// Chassis controls it accepted.
    pub controls: Vec<u8>,
}

impl Lan15Bmc {
    /// A BMC whose only user has `password`, with the chassis power as given.
    pub fn new(password: &str, power_on: bool) -> Lan15Bmc {
        Lan15Bmc {
            pw: padded16(password),
            refuse: Vec::new(),
            temp_id: 0x1111_2222,
            session_id: 0x3333_4444,
            out_seq: 0,
            power_on,
            controls: Vec::new(),
        }
    }

    /// The request inside a client datagram.
    pub fn request(d: &Datagram) -> Option<(u32, IpmiRequest)> {
        let (_, _, id, _, msg) = d.v15()?;
        Some((id, IpmiRequest::parse(&msg)?))
    }

    /// A reply inside the session, authenticated with `seq`.
    pub fn session_reply(&self, seq: u32, msg: &[u8]) -> Vec<u8> {
        let code = md5_code(&self.pw, self.session_id, seq, msg);
        v15_packet(2, seq, self.session_id, Some(&code), msg)
    }

    /// The genuine answer to `d`.
    pub fn answer(&mut self, d: &Datagram) -> Option<Vec<u8>> {
        let (_, r) = Self::request(d)?;
        Some(match (r.netfn, r.cmd) {
            (0x06, 0x38) => v15_packet(0, 0, 0, None, &r.response(0, &caps_data(0x15, true))),
            (0x06, 0x39) => {
                let mut data = self.temp_id.to_le_bytes().to_vec();
                data.extend_from_slice(&[0x5a; 16]);
                v15_packet(0, 0, 0, None, &r.response(0, &data))
            }
            (0x06, 0x3A) => {
                // Our outbound sequence starts where the console asked.
                self.out_seq = u32::from_le_bytes(r.data[18..22].try_into().unwrap());
                let mut data = vec![2];
                data.extend_from_slice(&self.session_id.to_le_bytes());
                data.extend_from_slice(&1u32.to_le_bytes());
                data.push(4);
                let msg = r.response(0, &data);
                let code = md5_code(&self.pw, self.temp_id, 0, &msg);
                v15_packet(2, 0, self.temp_id, Some(&code), &msg)
            }
            _ => {
                let data = match (r.netfn, r.cmd) {
                    (0x06, 0x3B) => vec![r.data[0]],
                    (0x00, 0x01) => vec![u8::from(self.power_on), 0, 0],
                    (0x00, 0x02) => {
                        if let Some((_, cc)) = self.refuse.iter().find(|(c, _)| *c == r.data[0]) {
                            self.out_seq += 1;
                            return Some(self.session_reply(self.out_seq, &r.response(*cc, &[])));
                        }
                        self.controls.push(r.data[0]);
                        self.power_on = r.data[0] == 1;
                        vec![]
                    }
                    _ => vec![],
                };
                self.out_seq += 1;
                self.session_reply(self.out_seq, &r.response(0, &data))
            }
        })
    }
}

impl FakeBmc {
    /// Binds a fresh loopback port (and a second one for wrong-port answers).
    pub fn bind() -> FakeBmc {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind fake BMC");
        let other = UdpSocket::bind("127.0.0.1:0").expect("bind fake BMC's other port");
        FakeBmc {
            socket,
            other,
            peer: None,
            received: Vec::new(),
        }
    }

    /// The UDP port the client must talk to.
    pub fn port(&self) -> u16 {
        self.socket.local_addr().expect("local addr").port()
    }

    /// Runs `script` with this BMC on a thread of its own; returns the port and the thread,
    /// whose result is what the script returns (the test joins it after the client is done).
    pub fn spawn<T: Send + 'static>(
        script: impl FnOnce(&mut FakeBmc) -> T + Send + 'static,
    ) -> (u16, JoinHandle<T>) {
        let mut bmc = FakeBmc::bind();
        let port = bmc.port();
        (port, std::thread::spawn(move || script(&mut bmc)))
    }

    /// The next datagram from the client, or None after `timeout`. Remembers the sender.
    pub fn recv(&mut self, timeout: Duration) -> Option<Datagram> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            self.socket.set_read_timeout(Some(left)).ok()?;
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    self.peer = Some(from);
                    self.received.push(buf[..n].to_vec());
                    return Some(Datagram {
                        bytes: buf[..n].to_vec(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }

    /// The next datagram that `accept` likes (others are dropped), or None after `timeout`.
    pub fn recv_matching(
        &mut self,
        timeout: Duration,
        mut accept: impl FnMut(&Datagram) -> bool,
    ) -> Option<Datagram> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let d = self.recv(left)?;
            if accept(&d) {
                return Some(d);
            }
        }
    }

    /// Sends `bytes` to the client (the sender of the last datagram).
    pub fn send(&self, bytes: &[u8]) {
        let peer = self.peer.expect("the client has not sent anything yet");
        self.socket.send_to(bytes, peer).expect("send to client");
    }

    /// Sends `bytes` to the client from another port of this host (a reply from the wrong
    /// source, which the client must ignore).
    pub fn send_from_other_port(&self, bytes: &[u8]) {
        let peer = self.peer.expect("the client has not sent anything yet");
        self.other.send_to(bytes, peer).expect("send to client");
    }

    /// Every datagram received so far (to check, e.g., that no password went out in clear).
    pub fn received(&self) -> &[Vec<u8>] {
        &self.received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_helpers_round_trip() {
        let m = ipmi_response(0x07, 5, 0x38, 0, &[1, 2]);
        assert_eq!(checksum(&m[0..2]), m[2]);
        assert_eq!(checksum(&m[3..m.len() - 1]), m[m.len() - 1]);
        let p = v15_packet(2, 7, 9, Some(&[3; 16]), &m);
        let d = Datagram { bytes: p };
        assert_eq!(d.v15(), Some((2, 7, 9, Some([3; 16]), m.clone())));
        let p = v20_packet(0x40, 1, 2, &m);
        let d = Datagram { bytes: p };
        assert_eq!(d.v20(), Some((0x40, 1, 2, m)));
        let mut p = v20_packet(0x40, 1, 2, &[0; 5]);
        let covered = v20_add_trailer(&mut p);
        assert_eq!((p.len() - 4) % 4, 0);
        assert_eq!(covered, p[4..]);
    }

    #[test]
    fn sends_and_receives_on_loopback() {
        let (port, bmc) = FakeBmc::spawn(|b| {
            let d = b.recv(Duration::from_secs(5)).expect("datagram");
            b.send(&d.bytes);
            b.send_from_other_port(b"other");
            b.received().len()
        });
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.send_to(b"ping", ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"ping"[..], port));
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"other");
        assert_ne!(from.port(), port);
        assert_eq!(bmc.join().unwrap(), 1);
    }
}
