//! IPMI 1.5 ("lan"): Get Session Challenge, Activate Session and per-message
//! MD5 / straight password / none authentication.
//!
//! ipmi-rs 0.6 fails here with `AuthcodeError` because it checks a reply's
//! MD5 over the message *plus its length byte (and legacy pad)*; the spec
//! (§22.17.1) covers the message bytes only, which is what we do.

use std::cell::Cell;
use std::time::Instant;

use ipmi_rs::app::auth::GetChannelAuthenticationCapabilities;
use ipmi_rs::connection::IpmiCommand;
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use crate::message::{decode_v15, encode_v15};
use crate::secret::Padded;
use crate::session::{expect_ok, Framing, IpmiExchange};
use crate::transport::Transport;
use crate::v20::random;
use crate::{AuthType, ConnectOptions, IpmiError, Step};

/// An IPMI 1.5 session's authentication state.
pub(crate) struct V15State {
    auth: AuthType,
    session_id: u32,
    seq: Cell<u32>,
    /// During Activate Session the sequence number stays 0.
    fixed_seq: bool,
    /// Highest session sequence number of an authenticated reply so far:
    /// a reply must carry a higher one (replays are dropped).
    last_inbound: Cell<u32>,
    password: Padded<16>,
}

impl V15State {
    fn auth_code(&self, session_id: u32, seq: u32, msg: &[u8]) -> Option<[u8; 16]> {
        match self.auth {
            AuthType::None => None,
            AuthType::Password => Some(self.password.0),
            AuthType::Md5 => {
                let mut h = Md5::new();
                h.update(self.password.0);
                h.update(session_id.to_le_bytes());
                h.update(msg);
                h.update(seq.to_le_bytes());
                h.update(self.password.0);
                Some(h.finalize().into())
            }
        }
    }

    pub fn wrap(&self, msg: &[u8]) -> Vec<u8> {
        let seq = if self.fixed_seq {
            0
        } else {
            let s = self.seq.get();
            self.seq.set(s.wrapping_add(1).max(1));
            s
        };
        let code = self.auth_code(self.session_id, seq, msg);
        encode_v15(self.auth.code(), seq, self.session_id, code.as_ref(), msg)
    }

    /// Checks and opens a reply; returns the message and the session sequence
    /// number to [`V15State::commit`] if the reply is the one accepted.
    pub fn unwrap(&self, p: &[u8]) -> Result<(Vec<u8>, Option<u32>), String> {
        let d = decode_v15(p)?;
        if d.session_id != self.session_id {
            return Err(format!("packet for another session 0x{:08x}", d.session_id));
        }
        if self.auth == AuthType::None {
            // Unauthenticated by the operator's explicit choice (auth=none or
            // allow_unauthenticated): nothing to check.
            return Ok((d.msg.to_vec(), None));
        }
        // Inside an authenticated session (Activate Session included) every
        // reply carries our auth type and a valid code: an unauthenticated or
        // differently authenticated reply may be forged.
        if d.auth_type != self.auth.code() {
            return Err(format!(
                "reply with auth type {} in a session authenticated with {}",
                d.auth_type, self.auth
            ));
        }
        let (Some(code), Some(mine)) = (d.auth_code, self.auth_code(d.session_id, d.seq, d.msg))
        else {
            return Err("reply without an auth code in an authenticated session".into());
        };
        if !bool::from(code.ct_eq(&mine)) {
            return Err("reply auth code does not match our password".into());
        }
        if self.fixed_seq {
            return Ok((d.msg.to_vec(), None));
        }
        if d.seq <= self.last_inbound.get() {
            return Err(format!(
                "replayed or stale session sequence number {} (last {})",
                d.seq,
                self.last_inbound.get()
            ));
        }
        Ok((d.msg.to_vec(), Some(d.seq)))
    }

    /// Moves the replay window past the accepted reply's sequence number.
    pub fn commit(&self, seq: u32) {
        self.last_inbound.set(self.last_inbound.get().max(seq));
    }
}

fn choose_auth(
    opts: &ConnectOptions,
    caps: &ipmi_rs::app::auth::ChannelAuthenticationCapabilities,
) -> Result<AuthType, IpmiError> {
    let offered = |a: AuthType| match a {
        AuthType::None => caps.none,
        AuthType::Md5 => caps.md5,
        AuthType::Password => caps.key,
    };
    let list = [AuthType::Md5, AuthType::Password, AuthType::None]
        .into_iter()
        .filter(|a| offered(*a))
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    match opts.auth_type {
        Some(a) if offered(a) => Ok(a),
        Some(a) => Err(IpmiError::AuthTypeUnsupported {
            detail: format!("asked for {a}, BMC offers [{list}] at this privilege"),
        }),
        // Only MD5 is chosen without being asked for: straight password
        // would send the password in clear, and none authenticates nothing
        // (the offer itself is unauthenticated and may be forged).
        None if caps.md5 => Ok(AuthType::Md5),
        None if caps.none && opts.allow_unauthenticated => Ok(AuthType::None),
        None if caps.none && !caps.key => Err(IpmiError::UnauthenticatedSessionRefused {
            detail: format!("the BMC offers IPMI 1.5 authentication types [{list}], none of which authenticates its answers"),
        }),
        None if caps.key => Err(IpmiError::AuthTypeUnsupported {
            detail: format!("BMC offers [{list}]; straight password sends the password in clear and is used only when asked for (auth=password)"),
        }),
        None => Err(IpmiError::AuthTypeUnsupported {
            detail: format!("BMC offers [{list}] (md2/OEM are not implemented)"),
        }),
    }
}

/// Authenticates with Get Session Challenge + Activate Session. On success
/// the session is at User level; the caller raises the privilege.
pub(crate) fn handshake(
    t: &mut Transport,
    x: &mut IpmiExchange,
    opts: &ConnectOptions,
    deadline: Instant,
) -> Result<V15State, IpmiError> {
    let priv_code = opts.privilege.code();
    let caps_msg: ipmi_rs::connection::Message = GetChannelAuthenticationCapabilities::new(
        ipmi_rs::connection::Channel::Current,
        ipmi_rs::app::auth::PrivilegeLevel::Callback,
    )
    .into();
    // ipmi-rs sets the "IPMI 2.0 extended data" bit; an IPMI 1.5 request
    // asks without it, with our real privilege level.
    let caps_msg = ipmi_rs::connection::Message::new_request(
        caps_msg.netfn(),
        caps_msg.cmd(),
        vec![0x0E, priv_code],
    );
    let step = Step::GetChannelAuthCapabilities;
    let r = x.exchange(t, &Framing::Plain, step, &caps_msg, deadline)?;
    let data = expect_ok(step, r)?;
    let caps =
        GetChannelAuthenticationCapabilities::parse_success_response(&data).map_err(|_| {
            IpmiError::Protocol {
                step,
                detail: format!("{} bytes of authentication capabilities", data.len()),
            }
        })?;
    let auth = choose_auth(opts, &caps)?;
    tracing::debug!(%auth, "IPMI 1.5 authentication type chosen");
    // With per-message authentication disabled the BMC sends its answers
    // after Activate Session without an auth code: anyone could forge them.
    let per_message = caps.per_message_authentication_enabled;
    tracing::debug!(per_message, "IPMI 1.5 per-message authentication");
    if auth != AuthType::None && !per_message && !opts.allow_unauthenticated {
        return Err(IpmiError::UnauthenticatedSessionRefused {
            detail: "the BMC says IPMI 1.5 per-message authentication is disabled, so its answers after login would carry no auth code".into(),
        });
    }

    // Get Session Challenge.
    let step = Step::GetSessionChallenge;
    let mut user = [0u8; 16];
    user[..opts.username.len()].copy_from_slice(opts.username.as_bytes());
    let mut d = vec![auth.code()];
    d.extend_from_slice(&user);
    let msg = ipmi_rs::connection::Message::new_request(ipmi_rs::connection::NetFn::App, 0x39, d);
    let r = match x.exchange(t, &Framing::Plain, step, &msg, deadline) {
        Err(IpmiError::Unverified { step, source })
            if matches!(source.completion_code(), Some(0x81 | 0x82)) =>
        {
            return Err(IpmiError::Unverified {
                step,
                source: Box::new(IpmiError::UnknownUser {
                    username: opts.username.clone(),
                }),
            })
        }
        other => other?,
    };
    let data = expect_ok(step, r)?;
    if data.len() < 20 {
        return Err(IpmiError::Protocol {
            step,
            detail: format!("session challenge of {} bytes", data.len()),
        });
    }
    let temp_id = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let challenge: [u8; 16] = data[4..20].try_into().unwrap();

    // Activate Session, authenticated with the temporary session id.
    let step = Step::ActivateSession;
    let activating = V15State {
        auth,
        session_id: temp_id,
        seq: Cell::new(0),
        fixed_seq: true,
        last_inbound: Cell::new(0),
        password: opts.password.padded::<16>(),
    };
    let outbound_seq = u32::from_le_bytes(random::<4>()).max(1);
    let mut d = vec![auth.code(), priv_code];
    d.extend_from_slice(&challenge);
    d.extend_from_slice(&outbound_seq.to_le_bytes());
    let msg = ipmi_rs::connection::Message::new_request(ipmi_rs::connection::NetFn::App, 0x3A, d);
    let framing = Framing::V15(activating);
    // The BMC just answered the challenge, so it is alive: a few
    // retransmissions are enough to tell a bad password from packet loss.
    let activate_deadline = deadline.min(Instant::now() + t.interval() * 3);
    let r = match x.exchange(t, &framing, step, &msg, activate_deadline) {
        // A BMC silently drops a request whose auth code is wrong: after a
        // successful challenge for this user, silence means a bad password.
        Err(IpmiError::Timeout { .. })
            if auth != AuthType::None && activate_deadline < deadline =>
        {
            return Err(IpmiError::WrongPassword {
                username: opts.username.clone(),
                detail:
                    "no answer to Activate Session after the challenge: BMCs drop requests with a bad auth code (or, rarely, when out of session slots)",
            })
        }
        other => other?,
    };
    match r.completion_code {
        0x81..=0x83 => return Err(IpmiError::NoSessionSlot { step }),
        0x86 => {
            return Err(IpmiError::PrivilegeRefused {
                requested: opts.privilege,
                username: opts.username.clone(),
                detail: "requested maximum privilege exceeds the user or channel limit".into(),
            })
        }
        _ => {}
    }
    let data = expect_ok(step, r)?;
    if data.len() < 10 {
        return Err(IpmiError::Protocol {
            step,
            detail: format!("Activate Session reply of {} bytes", data.len()),
        });
    }
    if data[0] & 0x0f != auth.code() {
        return Err(IpmiError::Protocol {
            step,
            detail: format!(
                "BMC activated the session with auth type {} instead of the {auth} asked for",
                AuthType::from_code(data[0] & 0x0f)
                    .map_or_else(|| (data[0] & 0x0f).to_string(), |a| a.to_string())
            ),
        });
    }
    let session_id = u32::from_le_bytes(data[1..5].try_into().unwrap());
    let inbound_seq = u32::from_le_bytes(data[5..9].try_into().unwrap()).max(1);
    tracing::debug!(
        session_id = format_args!("0x{session_id:08x}"),
        max_priv = data[9],
        "IPMI 1.5 session activated"
    );
    // With per-message authentication disabled (allowed above only with
    // allow_unauthenticated) the BMC expects and sends unauthenticated
    // messages after activation, as ipmitool does.
    Ok(V15State {
        auth: if per_message { auth } else { AuthType::None },
        session_id,
        seq: Cell::new(inbound_seq),
        fixed_seq: false,
        last_inbound: Cell::new(0),
        password: opts.password.padded::<16>(),
    })
}

impl V15State {
    pub fn session_id(&self) -> u32 {
        self.session_id
    }
}

/// Property tests of the IPMI 1.5 session decoder (see v20.rs's `fuzz` for the rest): no
/// panic on any datagram, and no change to a genuine MD5-authenticated reply is accepted.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn state(auth: AuthType, fixed_seq: bool) -> V15State {
        V15State {
            auth,
            session_id: 0x0102_0304,
            seq: Cell::new(1),
            fixed_seq,
            last_inbound: Cell::new(0),
            password: crate::Secret::from("pw").padded::<16>(),
        }
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(3000),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn session_decoder_never_panics(
            auth_type in prop_oneof![Just(0u8), Just(2), Just(4), any::<u8>()],
            id in prop_oneof![Just(0x0102_0304u32), any::<u32>()],
            tail in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut p = vec![0x06, 0x00, 0xff, 0x07, auth_type, 1, 0, 0, 0];
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&tail);
            for auth in [AuthType::None, AuthType::Md5, AuthType::Password] {
                for fixed in [false, true] {
                    let _ = state(auth, fixed).unwrap(&p);
                }
            }
        }

        #[test]
        fn no_change_to_a_genuine_reply_is_accepted(
            msg in proptest::collection::vec(any::<u8>(), 0..40),
            edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
            cut in any::<Option<usize>>(),
        ) {
            // A "reply" is wrapped the way the BMC does: same session, our password.
            let genuine = state(AuthType::Md5, false).wrap(&msg);
            let mut p = genuine.clone();
            // Bytes 1 and 2 of the RMCP header are outside the auth code and unused.
            for (at, x) in edits {
                let i = if at % 2 == 0 { 0 } else { 3 + at % (p.len() - 3) };
                p[i] ^= x;
            }
            if let Some(c) = cut {
                p.truncate(c % (p.len() + 1));
            }
            if let Ok((m, _)) = state(AuthType::Md5, false).unwrap(&p) {
                prop_assert!(m == msg && p[4..] == genuine[4..], "a changed reply was accepted");
            }
        }
    }
}
