//! A hostile network: test-support's programmable fake BMC answers with forged, malformed,
//! replayed and misdirected datagrams around (or instead of) the genuine answers. Whatever it
//! sends, a session ends in the genuine result, a refusal or a timeout: never a success the
//! real BMC did not give, never the password in clear.
//!
//! The genuine side is computed here from the password (an IPMI 1.5 MD5 BMC, and an RMCP+
//! BMC with cipher suite 2, whose keys come from `ipmi_lan::crypto`).

mod common;

use std::time::{Duration, Instant};

use ipmi_lan::crypto::{self, AuthAlgorithm, CipherSuite, RakpInputs};
use ipmi_lan::{AuthType, ChassisControl, ConnectOptions, Interface, IpmiError, PowerState};
use test_support::fake_bmc::{
    caps_data, ipmi_response, v15_packet, v20_add_trailer, v20_packet, Datagram, FakeBmc,
    IpmiRequest, Lan15Bmc, RMCP_ASF,
};

const PASSWORD: &str = "hostile-test-pw";
const WAIT: Duration = Duration::from_millis(1500);

fn opts(port: u16, interface: Interface, suite: u8) -> ConnectOptions {
    common::init_tracing();
    let mut o = ConnectOptions::new("127.0.0.1", "admin", PASSWORD.into());
    o.port = port;
    o.interface = interface;
    o.cipher_suite = suite;
    o.retransmit_interval = Duration::from_millis(200);
    o
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[test]
fn ipmi15_genuine_session_survives_garbage_wrong_lengths_and_other_ports() {
    let (port, bmc) = FakeBmc::spawn(|b| {
        let mut lan = Lan15Bmc::new(PASSWORD, false);
        while let Some(d) = b.recv(WAIT) {
            let Some(genuine) = lan.answer(&d) else {
                continue;
            };
            // Garbage first: empty, huge, ASF class, a length byte larger than the datagram,
            // every truncation of the genuine answer, and its length byte off by one.
            b.send(&[]);
            b.send(&vec![0xA5; 4000]);
            let mut asf = RMCP_ASF.to_vec();
            asf.extend_from_slice(&[0x00, 0x00, 0x11, 0xBE, 0x80, 0x00, 0x00, 0x00]);
            b.send(&asf);
            let mut long = genuine.clone();
            let len_at = if genuine[4] == 0 { 13 } else { 29 };
            long[len_at] = 0xFF;
            b.send(&long);
            for n in 0..genuine.len() {
                b.send(&genuine[..n]);
            }
            for delta in [1u8, 0xFF] {
                let mut off = genuine.clone();
                off[len_at] = off[len_at].wrapping_add(delta);
                b.send(&off);
            }
            // A reply from another port claiming the power is ON (genuine code and all).
            if let Some((_, r)) = Lan15Bmc::request(&d) {
                if (r.netfn, r.cmd) == (0x00, 0x01) {
                    let lie = r.response(0, &[1, 0, 0]);
                    b.send_from_other_port(&lan.session_reply(lan.out_seq + 1, &lie));
                }
            }
            b.send(&genuine);
        }
        lan.controls
    });
    let mut o = opts(port, Interface::Lan15, 3);
    o.auth_type = Some(AuthType::Md5);
    let mut s = ipmi_lan::Session::open(&o, deadline(10)).expect("genuine session");
    assert_eq!(s.power_state(deadline(5)).unwrap(), PowerState::Off);
    s.chassis_control(ChassisControl::PowerUp, deadline(5))
        .unwrap();
    assert_eq!(s.power_state(deadline(5)).unwrap(), PowerState::On);
    s.close().unwrap();
    assert_eq!(bmc.join().unwrap(), vec![1]);
}

#[test]
fn ipmi15_replayed_or_stale_sequence_numbers_are_dropped() {
    let (port, bmc) = FakeBmc::spawn(|b| {
        let mut lan = Lan15Bmc::new(PASSWORD, false);
        while let Some(d) = b.recv(WAIT) {
            let Some(genuine) = lan.answer(&d) else {
                continue;
            };
            if let Some((_, r)) = Lan15Bmc::request(&d) {
                if (r.netfn, r.cmd) == (0x00, 0x01) && lan.out_seq > 1 {
                    // Correctly authenticated, right request sequence, but a session sequence
                    // number already used (and one far behind): "power is ON".
                    let lie = r.response(0, &[1, 0, 0]);
                    b.send(&lan.session_reply(lan.out_seq - 1, &lie));
                    b.send(&lan.session_reply(1, &lie));
                }
            }
            b.send(&genuine);
        }
    });
    let mut o = opts(port, Interface::Lan15, 3);
    o.auth_type = Some(AuthType::Md5);
    let mut s = ipmi_lan::Session::open(&o, deadline(10)).expect("genuine session");
    for _ in 0..3 {
        assert_eq!(s.power_state(deadline(5)).unwrap(), PowerState::Off);
    }
    s.close().unwrap();
    bmc.join().unwrap();
}

/// A forger that does not know the password answers everything: capabilities of its choice,
/// a challenge, an Activate Session without (or with a garbage) auth code, and then every
/// command with "success". The client must never get a session out of it.
fn forger(
    mask: u8,
    per_message: bool,
    activate_auth: u8,
) -> (u16, std::thread::JoinHandle<FakeBmc>) {
    FakeBmc::spawn(move |b| {
        while let Some(d) = b.recv(WAIT) {
            let Some((_, r)) = Lan15Bmc::request(&d) else {
                continue;
            };
            let reply = match (r.netfn, r.cmd) {
                (0x06, 0x38) => r.response(0, &caps_data(mask, per_message)),
                (0x06, 0x39) => {
                    let mut data = 0x1111_2222u32.to_le_bytes().to_vec();
                    data.extend_from_slice(&[0x5a; 16]);
                    r.response(0, &data)
                }
                (0x06, 0x3A) => {
                    let mut data = vec![activate_auth];
                    data.extend_from_slice(&0x3333_4444u32.to_le_bytes());
                    data.extend_from_slice(&1u32.to_le_bytes());
                    data.push(4);
                    r.response(0, &data)
                }
                (0x06, 0x3B) => r.response(0, &[4]),
                (0x00, 0x01) => r.response(0, &[0, 0, 0]),
                _ => r.response(0, &[]),
            };
            let (_, _, id, _, _) = d.v15().unwrap();
            b.send(&v15_packet(0, 0, id, None, &reply));
            if activate_auth != 0 {
                b.send(&v15_packet(activate_auth, 0, id, Some(&[0x42; 16]), &reply));
            }
        }
        // Hand the datagrams back for inspection.
        let mut spent = FakeBmc::bind();
        std::mem::swap(&mut spent, b);
        spent
    })
}

fn assert_password_never_sent(b: &FakeBmc) {
    for d in b.received() {
        assert!(
            !d.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()),
            "the password went out in clear: {d:02x?}"
        );
    }
}

#[test]
fn ipmi15_downgrade_attacks_end_in_refusal_or_timeout_never_success() {
    // (1) Only straight password offered: refused, the password is never sent.
    let (port, bmc) = forger(0x10, true, 4);
    let err = ipmi_lan::Session::open(&opts(port, Interface::Lan15, 3), deadline(3)).unwrap_err();
    assert!(
        matches!(err, IpmiError::AuthTypeUnsupported { .. }),
        "{err:?}"
    );
    assert_password_never_sent(&bmc.join().unwrap());

    // (2) Per-message authentication "disabled": every later answer would be unauthenticated.
    let (port, bmc) = forger(0x04, false, 0);
    let err = ipmi_lan::Session::open(&opts(port, Interface::Lan15, 3), deadline(3)).unwrap_err();
    assert!(
        matches!(err, IpmiError::UnauthenticatedSessionRefused { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("allow_unauthenticated"), "{err}");
    assert_password_never_sent(&bmc.join().unwrap());

    // (3) Only "none" offered.
    let (port, bmc) = forger(0x01, true, 0);
    let err = ipmi_lan::Session::open(&opts(port, Interface::Lan15, 3), deadline(3)).unwrap_err();
    assert!(
        matches!(err, IpmiError::UnauthenticatedSessionRefused { .. }),
        "{err:?}"
    );
    bmc.join().unwrap();

    // (4) MD5 with per-message authentication, but Activate Session answered without an auth
    // code (and with a wrong one): no session.
    for activate_auth in [0u8, 2] {
        let (port, bmc) = forger(0x04, true, activate_auth);
        let mut o = opts(port, Interface::Lan15, 3);
        o.auth_type = Some(AuthType::Md5);
        let started = Instant::now();
        let err = ipmi_lan::Session::open(&o, deadline(3)).unwrap_err();
        assert!(
            matches!(
                err,
                IpmiError::WrongPassword { .. } | IpmiError::Timeout { .. }
            ),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(4));
        assert_password_never_sent(&bmc.join().unwrap());
    }
}

#[test]
fn ipmi15_forged_refusals_before_the_session_wait_for_the_deadline() {
    // A forged "unknown user" for the challenge, then the genuine challenge: the session works.
    let (port, bmc) = FakeBmc::spawn(|b| {
        let mut lan = Lan15Bmc::new(PASSWORD, true);
        while let Some(d) = b.recv(WAIT) {
            let Some(genuine) = lan.answer(&d) else {
                continue;
            };
            if let Some((_, r)) = Lan15Bmc::request(&d) {
                if (r.netfn, r.cmd) == (0x06, 0x39) {
                    b.send(&v15_packet(0, 0, 0, None, &r.response(0x81, &[])));
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            b.send(&genuine);
        }
    });
    let mut o = opts(port, Interface::Lan15, 3);
    o.auth_type = Some(AuthType::Md5);
    let mut s = ipmi_lan::Session::open(&o, deadline(10)).expect("genuine challenge won");
    assert_eq!(s.power_state(deadline(5)).unwrap(), PowerState::On);
    s.close().unwrap();
    bmc.join().unwrap();
}

/// An honest RMCP+ BMC with cipher suite 2 (HMAC-SHA1 RAKP, HMAC-SHA1-96 integrity, no
/// encryption). `hooks` may send forged datagrams before each genuine answer.
struct LanPlusBmc {
    console_id: u32,
    bmc_id: u32,
    bmc_random: [u8; 16],
    guid: [u8; 16],
    console_random: [u8; 16],
    role: u8,
    username: Vec<u8>,
    k1: Vec<u8>,
    out_seq: u32,
    power_on: bool,
}

const SUITE2_MAC_LEN: usize = 12;

impl LanPlusBmc {
    fn new(power_on: bool) -> LanPlusBmc {
        LanPlusBmc {
            console_id: 0,
            bmc_id: 0x0BAD_CAFE,
            bmc_random: [0x77; 16],
            guid: [0xA1; 16],
            console_random: [0; 16],
            role: 0,
            username: Vec::new(),
            k1: Vec::new(),
            out_seq: 0,
            power_on,
        }
    }

    fn inputs(&self) -> RakpInputs<'_> {
        RakpInputs {
            console_session_id: self.console_id,
            bmc_session_id: self.bmc_id,
            console_random: self.console_random,
            bmc_random: self.bmc_random,
            bmc_guid: self.guid,
            role: self.role,
            username: &self.username,
        }
    }

    fn password20() -> [u8; 20] {
        let mut p = [0u8; 20];
        p[..PASSWORD.len()].copy_from_slice(PASSWORD.as_bytes());
        p
    }

    /// A MACed session packet carrying `msg`, with session sequence `seq`.
    fn session_packet(&self, seq: u32, msg: &[u8]) -> Vec<u8> {
        let suite = CipherSuite::from_id(2).unwrap();
        let mut p = v20_packet(0x40, self.console_id, seq, msg);
        let covered = v20_add_trailer(&mut p);
        p.extend_from_slice(&suite.integrity.mac(&self.k1, &covered));
        p
    }

    fn rakp2(&self, tag: u8, status: u8) -> Vec<u8> {
        let mut p = vec![tag, status, 0, 0];
        p.extend_from_slice(&self.console_id.to_le_bytes());
        p.extend_from_slice(&self.bmc_random);
        p.extend_from_slice(&self.guid);
        if status == 0 {
            p.extend_from_slice(&crypto::rakp2_auth_code(
                AuthAlgorithm::HmacSha1,
                &Self::password20(),
                &self.inputs(),
            ));
        }
        v20_packet(0x13, 0, 0, &p)
    }

    /// The genuine answer to `d`, and the IPMI request inside it (in-session only).
    fn answer(&mut self, d: &Datagram) -> Option<(Vec<u8>, Option<IpmiRequest>)> {
        if let Some((_, _, _, _, msg)) = d.v15() {
            // Get Channel Authentication Capabilities outside a session, IPMI 2.0 data.
            let r = IpmiRequest::parse(&msg)?;
            let data = vec![0x01, 0x80 | 0x04, 0, 0x02, 0, 0, 0, 0];
            return Some((v15_packet(0, 0, 0, None, &r.response(0, &data)), None));
        }
        let (pt, _id, _seq, payload) = d.v20()?;
        let suite = CipherSuite::from_id(2).unwrap();
        Some(match pt & 0x3f {
            0x10 => {
                self.console_id = u32::from_le_bytes(payload[4..8].try_into().unwrap());
                let mut p = vec![payload[0], 0, 4, 0];
                p.extend_from_slice(&self.console_id.to_le_bytes());
                p.extend_from_slice(&self.bmc_id.to_le_bytes());
                p.extend_from_slice(&[0, 0, 0, 8, suite.auth.code(), 0, 0, 0]);
                p.extend_from_slice(&[1, 0, 0, 8, suite.integrity.code(), 0, 0, 0]);
                p.extend_from_slice(&[2, 0, 0, 8, suite.confidentiality.code(), 0, 0, 0]);
                (v20_packet(0x11, 0, 0, &p), None)
            }
            0x12 => {
                self.console_random = payload[8..24].try_into().unwrap();
                self.role = payload[24];
                self.username = payload[28..28 + payload[27] as usize].to_vec();
                (self.rakp2(payload[0], 0), None)
            }
            0x14 => {
                let sik = crypto::session_integrity_key(
                    AuthAlgorithm::HmacSha1,
                    &Self::password20(),
                    &self.inputs(),
                );
                self.k1 = crypto::additional_key(AuthAlgorithm::HmacSha1, &sik, 1);
                let mut p = vec![payload[0], 0, 0, 0];
                p.extend_from_slice(&self.console_id.to_le_bytes());
                p.extend_from_slice(&crypto::rakp4_icv(
                    AuthAlgorithm::HmacSha1,
                    &sik,
                    &self.inputs(),
                ));
                (v20_packet(0x15, 0, 0, &p), None)
            }
            0x00 => {
                let r = IpmiRequest::parse(&payload)?;
                let data = match (r.netfn, r.cmd) {
                    (0x06, 0x3B) => vec![r.data[0]],
                    (0x00, 0x01) => vec![u8::from(self.power_on), 0, 0],
                    _ => vec![],
                };
                self.out_seq += 1;
                let p = self.session_packet(self.out_seq, &r.response(0, &data));
                (p, Some(r))
            }
            _ => return None,
        })
    }
}

#[test]
fn rakp2_forged_early_then_genuine_opens_the_session() {
    let (port, bmc) = FakeBmc::spawn(|b| {
        let mut plus = LanPlusBmc::new(true);
        while let Some(d) = b.recv(WAIT) {
            let Some((genuine, _)) = plus.answer(&d) else {
                continue;
            };
            if d.v20().is_some_and(|(pt, ..)| pt & 0x3f == 0x12) {
                let tag = d.v20().unwrap().3[0];
                // Wrong length, then a wrong HMAC, then a forged "unknown user" status.
                let mut short = genuine.clone();
                short.truncate(short.len() - 3);
                let len = (short.len() - 16) as u16;
                short[14..16].copy_from_slice(&len.to_le_bytes());
                b.send(&short);
                let mut bad = genuine.clone();
                *bad.last_mut().unwrap() ^= 0x01;
                b.send(&bad);
                b.send(&plus.rakp2(tag, 0x0D));
                std::thread::sleep(Duration::from_millis(50));
            }
            b.send(&genuine);
        }
    });
    let o = opts(port, Interface::LanPlus, 2);
    let mut s = ipmi_lan::Session::open(&o, deadline(10)).expect("genuine RAKP 2 won");
    assert_eq!(s.power_state(deadline(5)).unwrap(), PowerState::On);
    s.close().unwrap();
    bmc.join().unwrap();
}

#[test]
fn macd_session_packets_with_bad_contents_are_dropped() {
    let (port, bmc) = FakeBmc::spawn(|b| {
        let mut plus = LanPlusBmc::new(false);
        let mut replayable: Option<Vec<u8>> = None;
        while let Some(d) = b.recv(WAIT) {
            let Some((genuine, request)) = plus.answer(&d) else {
                continue;
            };
            if let Some(r) = request.filter(|r| (r.netfn, r.cmd) == (0x00, 0x01)) {
                let lie = r.response(0, &[1, 0, 0]);
                let next = plus.out_seq + 1;
                // Valid MAC, bad IPMI data checksum.
                let mut bad_sum = lie.clone();
                *bad_sum.last_mut().unwrap() ^= 0x01;
                b.send(&plus.session_packet(next, &bad_sum));
                // Valid MAC, a request netfn (even) instead of a response.
                b.send(
                    &plus.session_packet(next, &ipmi_response(0x00, r.rq_seq, 0x01, 0, &[1, 0, 0])),
                );
                // Valid MAC, wrong rq_seq.
                b.send(&plus.session_packet(
                    next,
                    &ipmi_response(0x01, (r.rq_seq + 1) & 0x3f, 0x01, 0, &[1, 0, 0]),
                ));
                // Inconsistent pad length, wrong next header, short MAC (MAC recomputed where it
                // can be, so only the framing is wrong).
                let mut p = v20_packet(0x40, plus.console_id, next, &lie);
                let covered = v20_add_trailer(&mut p);
                let pad_at = p.len() - 2;
                let mac_of = |bytes: &[u8]| {
                    CipherSuite::from_id(2)
                        .unwrap()
                        .integrity
                        .mac(&plus.k1, &bytes[4..])
                };
                let mut wrong_pad = p.clone();
                wrong_pad[pad_at] = wrong_pad[pad_at].wrapping_add(1);
                let m = mac_of(&wrong_pad);
                wrong_pad.extend_from_slice(&m);
                b.send(&wrong_pad);
                let mut wrong_next = p.clone();
                *wrong_next.last_mut().unwrap() = 0x06;
                let m = mac_of(&wrong_next);
                wrong_next.extend_from_slice(&m);
                b.send(&wrong_next);
                let mut short_mac = p.clone();
                let m = CipherSuite::from_id(2)
                    .unwrap()
                    .integrity
                    .mac(&plus.k1, &covered);
                short_mac.extend_from_slice(&m[..SUITE2_MAC_LEN - 2]);
                b.send(&short_mac);
                // A replay of an earlier genuine packet (old session sequence number).
                if let Some(old) = &replayable {
                    b.send(old);
                }
                // Right everything but an old session sequence number, claiming ON.
                b.send(&plus.session_packet(1, &lie));
                replayable = Some(genuine.clone());
            }
            b.send(&genuine);
        }
    });
    let o = opts(port, Interface::LanPlus, 2);
    let mut s = ipmi_lan::Session::open(&o, deadline(10)).expect("session");
    for _ in 0..3 {
        assert_eq!(s.power_state(deadline(5)).unwrap(), PowerState::Off);
    }
    s.close().unwrap();
    bmc.join().unwrap();
}

#[test]
fn forged_open_session_replies_neither_downgrade_nor_abort_the_login() {
    // Before the genuine Open Session response: a forged one proposing suite 1's algorithms
    // (no integrity), a forged "no free session slot" status, and one too short to parse.
    let (port, bmc) = FakeBmc::spawn(|b| {
        let mut plus = LanPlusBmc::new(true);
        while let Some(d) = b.recv(WAIT) {
            let Some((genuine, _)) = plus.answer(&d) else {
                continue;
            };
            if d.v20().is_some_and(|(pt, ..)| pt & 0x3f == 0x10) {
                let (_, _, _, payload) = d.v20().unwrap();
                let mut weak = vec![payload[0], 0, 4, 0];
                weak.extend_from_slice(&plus.console_id.to_le_bytes());
                weak.extend_from_slice(&0x0EE1_0EE1u32.to_le_bytes());
                weak.extend_from_slice(&[0, 0, 0, 8, 1, 0, 0, 0]);
                weak.extend_from_slice(&[1, 0, 0, 8, 0, 0, 0, 0]);
                weak.extend_from_slice(&[2, 0, 0, 8, 0, 0, 0, 0]);
                b.send(&v20_packet(0x11, 0, 0, &weak));
                let mut no_slot = vec![payload[0], 0x01, 0, 0];
                no_slot.extend_from_slice(&plus.console_id.to_le_bytes());
                b.send(&v20_packet(0x11, 0, 0, &no_slot));
                b.send(&v20_packet(0x11, 0, 0, &weak[..20]));
                std::thread::sleep(Duration::from_millis(50));
            }
            b.send(&genuine);
        }
    });
    let o = opts(port, Interface::LanPlus, 2);
    let mut s = ipmi_lan::Session::open(&o, deadline(10)).expect("genuine Open Session won");
    assert_eq!(s.cipher_suite(), Some(2));
    assert_eq!(s.power_state(deadline(5)).unwrap(), PowerState::On);
    s.close().unwrap();
    bmc.join().unwrap();
}
