//! IPMI LAN message framing (IPMI 2.0 §13.8) and RMCP / IPMI 1.5 session
//! headers (§13.6).

use ipmi_rs::connection::{Message, NetFn};

/// Slave address of the BMC.
pub(crate) const BMC_ADDR: u8 = 0x20;
/// Software ID of a remote console (ipmitool uses the same).
pub(crate) const CONSOLE_SWID: u8 = 0x81;

/// RMCP header: version 6, reserved, no RMCP ACK, class IPMI.
pub(crate) const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xFF, 0x07];

/// Two's-complement checksum used twice in every IPMI LAN message.
pub(crate) fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

/// Encodes a request to the BMC as an IPMI LAN message.
pub(crate) fn encode_request(msg: &Message, rq_seq: u8) -> Vec<u8> {
    encode_request_to(msg, BMC_ADDR, CONSOLE_SWID, rq_seq)
}

/// Encodes a request to `rs_addr` from `rq_addr`.
pub(crate) fn encode_request_to(msg: &Message, rs_addr: u8, rq_addr: u8, rq_seq: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(7 + msg.data().len());
    v.push(rs_addr);
    v.push(msg.netfn().request_value() << 2); // LUN 0
    v.push(checksum(&v[0..2]));
    v.push(rq_addr);
    v.push((rq_seq & 0x3f) << 2);
    v.push(msg.cmd());
    v.extend_from_slice(msg.data());
    let c = checksum(&v[3..]);
    v.push(c);
    v
}

/// A decoded response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    /// Responder's address (the BMC, or the bridging target).
    pub rs_addr: u8,
    pub netfn: u8,
    pub rq_seq: u8,
    pub cmd: u8,
    pub completion_code: u8,
    pub data: Vec<u8>,
}

impl Response {
    /// Whether this is the answer to request `msg` sent with `rq_seq`.
    pub fn answers(&self, msg: &Message, rq_seq: u8) -> bool {
        self.rq_seq == (rq_seq & 0x3f)
            && self.cmd == msg.cmd()
            && self.netfn == NetFn::from(msg.netfn_raw()).response_value()
    }
}

/// Decodes an IPMI LAN response message, checking both checksums.
pub(crate) fn decode_response(b: &[u8]) -> Result<Response, String> {
    if b.len() < 8 {
        return Err(format!("IPMI message too short ({} bytes)", b.len()));
    }
    if checksum(&b[0..2]) != b[2] {
        return Err("bad IPMI header checksum".into());
    }
    if checksum(&b[3..b.len() - 1]) != b[b.len() - 1] {
        return Err("bad IPMI data checksum".into());
    }
    Ok(Response {
        rs_addr: b[3],
        netfn: b[1] >> 2,
        rq_seq: b[4] >> 2,
        cmd: b[5],
        completion_code: b[6],
        data: b[7..b.len() - 1].to_vec(),
    })
}

/// An IPMI 1.5 session packet (also used before any session exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V15Packet<'a> {
    pub auth_type: u8,
    pub seq: u32,
    pub session_id: u32,
    pub auth_code: Option<[u8; 16]>,
    pub msg: &'a [u8],
}

/// Builds RMCP header + IPMI 1.5 session header + message.
pub(crate) fn encode_v15(
    auth_type: u8,
    seq: u32,
    session_id: u32,
    auth_code: Option<&[u8; 16]>,
    msg: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + 10 + 16 + msg.len());
    v.extend_from_slice(&RMCP_HEADER);
    v.push(auth_type);
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&session_id.to_le_bytes());
    if let Some(code) = auth_code {
        v.extend_from_slice(code);
    }
    v.push(msg.len() as u8);
    v.extend_from_slice(msg);
    v
}

/// Parses an RMCP + IPMI 1.5 packet. Trailing bytes after the message (the
/// legacy pad some BMCs add) are ignored.
pub(crate) fn decode_v15(p: &[u8]) -> Result<V15Packet<'_>, String> {
    if p.len() < 14 || p[0] != 0x06 || p[3] != 0x07 {
        return Err("not an RMCP/IPMI packet".into());
    }
    let auth_type = p[4];
    if auth_type == 0x06 {
        return Err("RMCP+ packet where IPMI 1.5 was expected".into());
    }
    let seq = u32::from_le_bytes(p[5..9].try_into().unwrap());
    let session_id = u32::from_le_bytes(p[9..13].try_into().unwrap());
    let (auth_code, rest) = if auth_type == 0 {
        (None, &p[13..])
    } else {
        if p.len() < 30 {
            return Err("IPMI 1.5 packet too short for its auth code".into());
        }
        (Some(p[13..29].try_into().unwrap()), &p[29..])
    };
    let len = rest[0] as usize;
    if rest.len() < 1 + len {
        return Err("IPMI 1.5 message length exceeds packet".into());
    }
    Ok(V15Packet {
        auth_type,
        seq,
        session_id,
        auth_code,
        msg: &rest[1..1 + len],
    })
}

/// RMCP+ payload types.
pub(crate) mod payload {
    pub const IPMI: u8 = 0x00;
    pub const OPEN_SESSION_REQUEST: u8 = 0x10;
    pub const OPEN_SESSION_RESPONSE: u8 = 0x11;
    pub const RAKP1: u8 = 0x12;
    pub const RAKP2: u8 = 0x13;
    pub const RAKP3: u8 = 0x14;
    pub const RAKP4: u8 = 0x15;
}

/// An RMCP+ packet (IPMI 2.0 session header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V20Packet<'a> {
    pub payload_type: u8,
    pub encrypted: bool,
    pub authenticated: bool,
    pub session_id: u32,
    pub seq: u32,
    pub payload: &'a [u8],
    /// Bytes covered by the integrity MAC (session header through next header).
    pub integrity_data: &'a [u8],
    pub auth_code: &'a [u8],
}

/// Builds an RMCP+ packet without trailer (pre-session or unauthenticated).
pub(crate) fn encode_v20_plain(
    payload_type: u8,
    session_id: u32,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + payload.len());
    v.extend_from_slice(&RMCP_HEADER);
    v.push(0x06);
    v.push(payload_type);
    v.extend_from_slice(&session_id.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// Parses an RMCP+ packet; `mac_len` is the AuthCode length when the packet
/// is flagged authenticated.
pub(crate) fn decode_v20(p: &[u8], mac_len: usize) -> Result<V20Packet<'_>, String> {
    if p.len() < 16 || p[0] != 0x06 || p[3] != 0x07 {
        return Err("not an RMCP/IPMI packet".into());
    }
    if p[4] != 0x06 {
        return Err(format!("not an RMCP+ packet (auth type 0x{:02x})", p[4]));
    }
    let pt = p[5];
    let payload_type = pt & 0x3f;
    if payload_type == 0x02 {
        return Err("OEM payloads are not supported".into());
    }
    let session_id = u32::from_le_bytes(p[6..10].try_into().unwrap());
    let seq = u32::from_le_bytes(p[10..14].try_into().unwrap());
    let len = u16::from_le_bytes(p[14..16].try_into().unwrap()) as usize;
    if p.len() < 16 + len {
        return Err("RMCP+ payload length exceeds packet".into());
    }
    let payload = &p[16..16 + len];
    let authenticated = pt & 0x40 != 0;
    let (integrity_data, auth_code) = if authenticated {
        if p.len() < 16 + len + 2 + mac_len {
            return Err("RMCP+ packet too short for its trailer".into());
        }
        let end = p.len() - mac_len;
        if p[end - 1] != 0x07 {
            return Err("bad RMCP+ next-header byte".into());
        }
        let pad = p[end - 2] as usize;
        if 16 + len + pad + 2 != end {
            return Err("inconsistent RMCP+ integrity pad".into());
        }
        (&p[4..end], &p[end..])
    } else {
        (&p[4..16 + len], &p[0..0])
    };
    Ok(V20Packet {
        payload_type,
        encrypted: pt & 0x80 != 0,
        authenticated,
        session_id,
        seq,
        payload,
        integrity_data,
        auth_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_matches_ipmitool_get_chassis_status_bytes() {
        let m = Message::new_request(NetFn::Chassis, 0x01, vec![]);
        let b = encode_request(&m, 1);
        // rsSA, netFn/LUN, chk, rqSA, rqSeq/LUN, cmd, chk
        assert_eq!(b, vec![0x20, 0x00, 0xe0, 0x81, 0x04, 0x01, 0x7a]);
    }

    #[test]
    fn response_round_trip() {
        let mut r = vec![0x81, 0x01 << 2];
        r.push(checksum(&r));
        r.extend_from_slice(&[0x20, 5 << 2, 0x01, 0x00, 0x01, 0x00, 0x00]);
        let c = checksum(&r[3..]);
        r.push(c);
        let d = decode_response(&r).unwrap();
        assert_eq!(d.rq_seq, 5);
        assert_eq!(d.data, vec![1, 0, 0]);
        assert!(d.answers(&Message::new_request(NetFn::Chassis, 1, vec![]), 5));
        assert!(!d.answers(&Message::new_request(NetFn::Chassis, 1, vec![]), 6));
        r[7] ^= 1;
        assert!(decode_response(&r).is_err());
    }

    #[test]
    fn v15_round_trip() {
        let p = encode_v15(2, 7, 9, Some(&[1; 16]), &[1, 2, 3]);
        let d = decode_v15(&p).unwrap();
        assert_eq!((d.auth_type, d.seq, d.session_id), (2, 7, 9));
        assert_eq!(d.auth_code, Some([1; 16]));
        assert_eq!(d.msg, &[1, 2, 3]);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever arrives on the socket, decoding never panics.
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_v15(&bytes);
            let _ = decode_v20(&bytes, 12);
            let _ = decode_v20(&bytes, 16);
            let _ = decode_response(&bytes);
        }

        /// Structured but random RMCP+ headers never panic either.
        #[test]
        fn rmcp_plus_shaped_garbage_never_panics(
            pt in any::<u8>(),
            len in any::<u16>(),
            tail in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut p = vec![0x06, 0x00, 0xff, 0x07, 0x06, pt];
            p.extend_from_slice(&[0; 8]);
            p.extend_from_slice(&len.to_le_bytes());
            p.extend_from_slice(&tail);
            let _ = decode_v20(&p, 12);
        }

        /// Requests we encode decode back with both checksums valid.
        #[test]
        fn request_checksums_hold(cmd in any::<u8>(), seq in 0u8..64, data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let m = Message::new_request(NetFn::App, cmd, data.clone());
            let b = encode_request(&m, seq);
            prop_assert_eq!(checksum(&b[0..2]), b[2]);
            prop_assert_eq!(checksum(&b[3..b.len() - 1]), b[b.len() - 1]);
            prop_assert_eq!(&b[6..b.len() - 1], &data[..]);
        }
    }
}
