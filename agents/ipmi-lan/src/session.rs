//! The public `Session`: open (authenticate + privilege), commands, close.

use std::time::{Duration, Instant};

use ipmi_rs::app::auth::GetChannelAuthenticationCapabilities;
use ipmi_rs::connection::{IpmiCommand, Message, NetFn};

use crate::crypto::CipherSuite;
use crate::error::step_completion_code_meaning;
use crate::lifecycle::{Phase, PhaseEvent};
use crate::message::{
    decode_response, decode_v15, encode_request, encode_request_to, encode_v15, Response, BMC_ADDR,
};
use crate::transport::{resolve, Transport, Verdict};
use crate::v15::V15State;
use crate::v20::V20State;
use crate::{
    ChassisControl, ConnectOptions, Interface, IpmiError, PacketStats, PowerState, Privilege, Step,
};

/// How IPMI messages are wrapped on the wire.
pub(crate) enum Framing {
    /// Outside a session: IPMI 1.5 header, no authentication, session 0.
    Plain,
    /// IPMI 1.5 session.
    V15(V15State),
    /// RMCP+ session.
    V20(V20State),
}

impl Framing {
    fn wrap(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            Framing::Plain => encode_v15(0, 0, 0, None, msg),
            Framing::V15(s) => s.wrap(msg),
            Framing::V20(s) => s.wrap(msg),
        }
    }

    /// The IPMI message of a reply, and the session sequence number to
    /// [`Framing::commit`] once the reply is accepted.
    fn unwrap(&self, p: &[u8]) -> Result<(Vec<u8>, Option<u32>), String> {
        match self {
            Framing::Plain => {
                let d = decode_v15(p)?;
                if d.session_id != 0 {
                    return Err("session packet while outside a session".into());
                }
                Ok((d.msg.to_vec(), None))
            }
            Framing::V15(s) => s.unwrap(p),
            Framing::V20(s) => s.unwrap(p),
        }
    }

    /// Moves the replay window past an accepted reply: only the reply that is
    /// used does, so a stray authenticated packet cannot shut out the answer.
    fn commit(&self, seq: Option<u32>) {
        match (self, seq) {
            (Framing::V15(s), Some(seq)) => s.commit(seq),
            (Framing::V20(s), Some(seq)) => s.commit(seq),
            _ => {}
        }
    }

    fn bmc_session_id(&self) -> Option<u32> {
        match self {
            Framing::Plain => None,
            Framing::V15(s) => Some(s.session_id()),
            Framing::V20(s) => Some(s.bmc_id),
        }
    }
}

/// Request sequence numbering for IPMI messages.
pub(crate) struct IpmiExchange {
    rq_seq: u8,
}

impl IpmiExchange {
    /// Sends `msg` (retransmitting the same request sequence number) and
    /// returns the matching response, whatever its completion code.
    pub fn exchange(
        &mut self,
        t: &mut Transport,
        framing: &Framing,
        step: Step,
        msg: &Message,
        deadline: Instant,
    ) -> Result<Response, IpmiError> {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        let rq_seq = self.rq_seq;
        let raw = encode_request(msg, rq_seq);
        let r = t.exchange(
            step,
            deadline,
            |_| framing.wrap(&raw),
            |p| match framing.unwrap(p) {
                Err(e) => Verdict::Ignore(e),
                Ok((m, seq)) => match decode_response(&m) {
                    Err(e) => Verdict::Ignore(e),
                    // Outside a session nothing is authenticated: a refusal
                    // may be forged, so it ends the step only at the deadline.
                    Ok(r)
                        if r.answers(msg, rq_seq)
                            && r.completion_code != 0
                            && matches!(framing, Framing::Plain) =>
                    {
                        Verdict::Unverified(IpmiError::CommandRefused {
                            step,
                            code: r.completion_code,
                            meaning: step_completion_code_meaning(step, r.completion_code),
                        })
                    }
                    Ok(r) if r.answers(msg, rq_seq) => {
                        framing.commit(seq);
                        Verdict::Accept(r)
                    }
                    Ok(r) => Verdict::Ignore(format!(
                        "reply to another request (seq {}, cmd 0x{:02x})",
                        r.rq_seq, r.cmd
                    )),
                },
            },
        )?;
        tracing::debug!(%step, cc = r.completion_code, "reply");
        Ok(r)
    }
}

impl IpmiExchange {
    /// Sends `msg` to the IPMB address `target` behind the BMC, wrapped in
    /// Send Message with response tracking (IPMI 2.0 §22.7, ipmitool `-t`),
    /// and returns the target's response. The BMC first acknowledges the
    /// Send Message, then forwards the target's response under the outer
    /// request's sequence number.
    pub fn exchange_bridged(
        &mut self,
        t: &mut Transport,
        framing: &Framing,
        step: Step,
        target: u8,
        msg: &Message,
        deadline: Instant,
    ) -> Result<Response, IpmiError> {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        let rq_seq = self.rq_seq;
        // Inner IPMB request from the BMC's own address; channel 0 = IPMB.
        let mut data = vec![0x40];
        data.extend_from_slice(&encode_request_to(msg, target, BMC_ADDR, rq_seq));
        let send_message = Message::new_request(NetFn::App, 0x34, data);
        let raw = encode_request(&send_message, rq_seq);
        let r = t.exchange(
            step,
            deadline,
            |_| framing.wrap(&raw),
            |p| match framing
                .unwrap(p)
                .and_then(|(m, seq)| decode_response(&m).map(|r| (r, seq)))
            {
                Err(e) => Verdict::Ignore(e),
                Ok((r, seq)) if r.answers(&send_message, rq_seq) => {
                    if r.completion_code != 0 {
                        return Verdict::Fail(IpmiError::CommandRefused {
                            step: Step::SendMessage,
                            code: r.completion_code,
                            meaning: step_completion_code_meaning(
                                Step::SendMessage,
                                r.completion_code,
                            ),
                        });
                    }
                    // Some BMCs put the target's response in the data.
                    match decode_response(&r.data) {
                        Ok(inner) if inner.answers(msg, rq_seq) => {
                            framing.commit(seq);
                            Verdict::Accept(inner)
                        }
                        _ => Verdict::Ignore(
                            "Send Message acknowledged; waiting for the target's response".into(),
                        ),
                    }
                }
                Ok((r, seq)) if r.answers(msg, rq_seq) && r.rs_addr == target => {
                    framing.commit(seq);
                    Verdict::Accept(r)
                }
                Ok((r, _)) => Verdict::Ignore(format!(
                    "reply to another request (seq {}, cmd 0x{:02x})",
                    r.rq_seq, r.cmd
                )),
            },
        )?;
        tracing::debug!(%step, target, cc = r.completion_code, "bridged reply");
        Ok(r)
    }
}

/// The response data when the completion code is 0, else `CommandRefused`.
pub(crate) fn expect_ok(step: Step, r: Response) -> Result<Vec<u8>, IpmiError> {
    if r.completion_code == 0 {
        Ok(r.data)
    } else {
        Err(IpmiError::CommandRefused {
            step,
            code: r.completion_code,
            meaning: step_completion_code_meaning(step, r.completion_code),
        })
    }
}

/// One authenticated IPMI LAN session to a BMC.
///
/// Dropping it sends Close Session (best effort, bounded by a short budget
/// of its own: two retransmit intervals, at most 2 s), because BMCs have only
/// a handful of session slots.
pub struct Session {
    transport: Transport,
    framing: Framing,
    exchange: IpmiExchange,
    phase: Phase,
    interface: Interface,
    privilege: Privilege,
    cipher_suite: Option<u8>,
    close_budget: Duration,
    target: Option<u8>,
}

fn validate(opts: &ConnectOptions) -> Result<Option<CipherSuite>, IpmiError> {
    if opts.port == 0 {
        return Err(IpmiError::InvalidOptions("port 0".into()));
    }
    if opts.username.len() > 16 {
        return Err(IpmiError::InvalidOptions(format!(
            "user name is {} bytes; IPMI allows at most 16",
            opts.username.len()
        )));
    }
    if let Some(t) = opts.target {
        if t & 1 != 0 || t == BMC_ADDR {
            return Err(IpmiError::InvalidOptions(format!(
                "bridging target 0x{t:02x} is not a valid IPMB slave address (even, not the BMC's 0x20)"
            )));
        }
    }
    match opts.interface {
        Interface::Lan15 => {
            if opts.password.len() > 16 {
                return Err(IpmiError::InvalidOptions(format!(
                    "password is {} bytes; IPMI 1.5 allows at most 16 (use lanplus for up to 20)",
                    opts.password.len()
                )));
            }
            if opts.kg.is_some() {
                return Err(IpmiError::InvalidOptions(
                    "a BMC key (Kg) only applies to IPMI 2.0 (lanplus)".into(),
                ));
            }
            Ok(None)
        }
        Interface::LanPlus => {
            if opts.password.len() > 20 {
                return Err(IpmiError::InvalidOptions(format!(
                    "password is {} bytes; IPMI 2.0 allows at most 20",
                    opts.password.len()
                )));
            }
            if let Some(kg) = &opts.kg {
                if kg.len() > 20 || kg.is_empty() {
                    return Err(IpmiError::InvalidOptions(format!(
                        "BMC key (Kg) is {} bytes; it must be 1 to 20",
                        kg.len()
                    )));
                }
            }
            let suite = CipherSuite::from_id(opts.cipher_suite)?;
            if suite.id == 0 && !opts.allow_unauthenticated {
                return Err(IpmiError::CipherZeroRefused);
            }
            if suite.integrity == crate::crypto::IntegrityAlgorithm::None
                && !opts.allow_unauthenticated
            {
                return Err(IpmiError::UnauthenticatedSessionRefused {
                    detail: format!(
                        "cipher suite {} has no integrity algorithm: every answer after login could be forged",
                        suite.id
                    ),
                });
            }
            Ok(Some(suite))
        }
    }
}

impl Session {
    /// Authenticates to the BMC and sets the requested privilege level.
    ///
    /// Every request is retransmitted each `opts.retransmit_interval` until
    /// `deadline`. A half-open session is closed before an error is returned.
    ///
    /// A host name with several addresses (e.g. `localhost`: `::1` and
    /// `127.0.0.1`) is tried address by address while the first request is
    /// refused outright (ICMP unreachable).
    pub fn open(opts: &ConnectOptions, deadline: Instant) -> Result<Session, IpmiError> {
        let suite = validate(opts)?;
        let addrs = resolve(&opts.host, opts.port)?;
        Self::open_any(&addrs, opts, suite, deadline)
    }

    fn open_any(
        addrs: &[std::net::SocketAddr],
        opts: &ConnectOptions,
        suite: Option<CipherSuite>,
        deadline: Instant,
    ) -> Result<Session, IpmiError> {
        let mut last = None;
        for &addr in addrs {
            match Self::open_at(addr, opts, suite, deadline) {
                Err(
                    e @ IpmiError::Unreachable {
                        step: Step::GetChannelAuthCapabilities,
                        ..
                    },
                ) => {
                    tracing::debug!(%addr, error = %e, "trying the next address");
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| IpmiError::InvalidOptions("no BMC address".into())))
    }

    fn open_at(
        addr: std::net::SocketAddr,
        opts: &ConnectOptions,
        suite: Option<CipherSuite>,
        deadline: Instant,
    ) -> Result<Session, IpmiError> {
        tracing::debug!(%addr, interface = ?opts.interface, privilege = %opts.privilege, "opening IPMI session");
        let transport = Transport::connect(addr, opts.retransmit_interval)?;
        let close_budget = (opts.retransmit_interval * 2)
            .min(Duration::from_secs(2))
            .max(Duration::from_millis(100));
        let mut s = Session {
            transport,
            framing: Framing::Plain,
            exchange: IpmiExchange { rq_seq: 0 },
            phase: Phase::Handshake,
            interface: opts.interface,
            privilege: opts.privilege,
            cipher_suite: suite.map(|c| c.id),
            close_budget,
            target: opts.target,
        };
        let established = match suite {
            Some(suite) => s.handshake_v20(opts, suite, deadline),
            None => crate::v15::handshake(&mut s.transport, &mut s.exchange, opts, deadline)
                .map(|st| s.framing = Framing::V15(st)),
        };
        if let Err(e) = established {
            s.phase = s
                .phase
                .next(PhaseEvent::HandshakeFailed)
                .expect("handshake");
            return Err(e);
        }
        // The BMC now holds a session: from here on, errors close it.
        if let Err(e) = s.raise_privilege(opts, deadline) {
            let _ = s.send_close();
            return Err(e);
        }
        s.phase = s.phase.next(PhaseEvent::Established).expect("handshake");
        Ok(s)
    }

    fn handshake_v20(
        &mut self,
        opts: &ConnectOptions,
        suite: CipherSuite,
        deadline: Instant,
    ) -> Result<(), IpmiError> {
        let step = Step::GetChannelAuthCapabilities;
        // Channel "current" with the IPMI 2.0 extended-data bit, our privilege.
        let msg = Message::new_request(NetFn::App, 0x38, vec![0x8E, opts.privilege.code()]);
        let r =
            self.exchange
                .exchange(&mut self.transport, &Framing::Plain, step, &msg, deadline)?;
        let data = expect_ok(step, r)?;
        let caps =
            GetChannelAuthenticationCapabilities::parse_success_response(&data).map_err(|_| {
                IpmiError::Protocol {
                    step,
                    detail: format!("{} bytes of authentication capabilities", data.len()),
                }
            })?;
        if data[1] & 0x80 == 0 || !caps.ipmi2_connections_supported {
            return Err(IpmiError::LanPlusUnsupported);
        }
        if caps.kg_status && opts.kg.is_none() {
            tracing::debug!("BMC reports a non-zero Kg but none was given");
        }
        let st = crate::v20::handshake(&mut self.transport, opts, suite, deadline)?;
        self.framing = Framing::V20(st);
        Ok(())
    }

    fn raise_privilege(
        &mut self,
        opts: &ConnectOptions,
        deadline: Instant,
    ) -> Result<(), IpmiError> {
        // Sessions start at User level (IPMI 2.0 §13.17 / §22.18).
        if opts.privilege <= Privilege::User {
            return Ok(());
        }
        let step = Step::SetSessionPrivilege;
        let msg = Message::new_request(NetFn::App, 0x3B, vec![opts.privilege.code()]);
        let r = self
            .exchange
            .exchange(&mut self.transport, &self.framing, step, &msg, deadline)?;
        let refused = |detail: &str| IpmiError::PrivilegeRefused {
            requested: opts.privilege,
            username: opts.username.clone(),
            detail: detail.to_string(),
        };
        match r.completion_code {
            0x80 => Err(refused("level not available for this user")),
            0x81 => Err(refused("level exceeds the user's or channel's limit")),
            0x82 => Err(refused("cannot disable user level authentication")),
            _ => {
                let data = expect_ok(step, r)?;
                let granted = data.first().and_then(|b| Privilege::from_code(*b));
                if granted != Some(opts.privilege) {
                    return Err(refused(&format!("BMC granted {granted:?}")));
                }
                Ok(())
            }
        }
    }

    /// Sends a command inside the session (bridged to the target when one is
    /// set); returns the response data when the completion code is 0.
    pub fn command(
        &mut self,
        netfn: NetFn,
        cmd: u8,
        data: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, IpmiError> {
        let step = Step::Command {
            netfn: netfn.request_value(),
            cmd,
        };
        self.command_step(
            step,
            Message::new_request(netfn, cmd, data.to_vec()),
            deadline,
        )
    }

    fn command_step(
        &mut self,
        step: Step,
        msg: Message,
        deadline: Instant,
    ) -> Result<Vec<u8>, IpmiError> {
        if self.phase != Phase::Active {
            return Err(IpmiError::Protocol {
                step,
                detail: "session is not active".into(),
            });
        }
        let r = match self.target {
            Some(target) => self.exchange.exchange_bridged(
                &mut self.transport,
                &self.framing,
                step,
                target,
                &msg,
                deadline,
            ),
            None => {
                self.exchange
                    .exchange(&mut self.transport, &self.framing, step, &msg, deadline)
            }
        };
        self.phase = self.phase.next(PhaseEvent::CommandDone).expect("active");
        expect_ok(step, r?)
    }

    /// Reads the chassis power state (Get Chassis Status).
    pub fn power_state(&mut self, deadline: Instant) -> Result<PowerState, IpmiError> {
        let step = Step::GetChassisStatus;
        let data = self.command_step(
            step,
            Message::new_request(NetFn::Chassis, 0x01, vec![]),
            deadline,
        )?;
        let first = *data.first().ok_or_else(|| IpmiError::Protocol {
            step,
            detail: "empty Get Chassis Status reply".into(),
        })?;
        Ok(if first & 0x01 != 0 {
            PowerState::On
        } else {
            PowerState::Off
        })
    }

    /// Sends Chassis Control. Success means the BMC accepted the request,
    /// not that the power has changed yet.
    pub fn chassis_control(
        &mut self,
        c: ChassisControl,
        deadline: Instant,
    ) -> Result<(), IpmiError> {
        tracing::debug!(control = ?c, "chassis control");
        self.command_step(
            Step::ChassisControl,
            Message::new_request(NetFn::Chassis, 0x02, vec![c.code()]),
            deadline,
        )
        .map(|_| ())
    }

    /// Sends Close Session and waits (briefly) for the answer.
    pub fn close(self) -> Result<(), IpmiError> {
        self.close_with_stats().0
    }

    /// Like [`Session::close`], and also returns the packets of the whole session, Close Session
    /// included (what [`Session::stats`] cannot show once the session is gone).
    pub fn close_with_stats(mut self) -> (Result<(), IpmiError>, PacketStats) {
        let result = self.send_close();
        (result, self.transport.stats())
    }

    fn send_close(&mut self) -> Result<(), IpmiError> {
        let Some(id) = self.framing.bmc_session_id() else {
            return Ok(());
        };
        if self.phase == Phase::Closed {
            return Ok(());
        }
        let step = Step::CloseSession;
        let msg = Message::new_request(NetFn::App, 0x3C, id.to_le_bytes().to_vec());
        let deadline = Instant::now() + self.close_budget;
        let r = self
            .exchange
            .exchange(&mut self.transport, &self.framing, step, &msg, deadline);
        self.phase = self
            .phase
            .next(PhaseEvent::CloseSent)
            .unwrap_or(Phase::Closed);
        tracing::debug!(ok = r.is_ok(), "session closed");
        expect_ok(step, r?).map(|_| ())
    }

    /// Packets sent and received so far.
    pub fn stats(&self) -> PacketStats {
        self.transport.stats()
    }

    /// The privilege level the session runs at.
    pub fn privilege(&self) -> Privilege {
        self.privilege
    }

    /// IPMI 1.5 or 2.0.
    pub fn interface(&self) -> Interface {
        self.interface
    }

    /// The RMCP+ cipher suite (None for IPMI 1.5).
    pub fn cipher_suite(&self) -> Option<u8> {
        self.cipher_suite
    }

    /// The IPMB address commands are bridged to, if any.
    pub fn target(&self) -> Option<u8> {
        self.target
    }

    /// Where the session is in its lifecycle.
    pub fn phase(&self) -> Phase {
        self.phase
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.phase.needs_close() {
            if let Err(e) = self.send_close() {
                tracing::debug!(error = %e, "best-effort Close Session on drop failed");
            }
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("bmc", &self.transport.addr())
            .field("interface", &self.interface)
            .field("privilege", &self.privilege)
            .field("cipher_suite", &self.cipher_suite)
            .field("phase", &self.phase)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    #[test]
    fn refused_address_falls_through_to_the_next_one() {
        // What a host name with two addresses looks like when the BMC only
        // listens on the second: 127.0.0.2 refuses (ICMP port unreachable).
        let sim = test_support::IpmiSim::start();
        let mut opts = ConnectOptions::new("unused", "admin", Secret::from("secret"));
        opts.port = sim.port();
        let refused: std::net::SocketAddr = ([127, 0, 0, 2], sim.port()).into();
        let good: std::net::SocketAddr = ([127, 0, 0, 1], sim.port()).into();
        let suite = validate(&opts).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let started = Instant::now();
        let mut s =
            Session::open_any(&[refused, good], &opts, suite, deadline).expect("second address");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(s.power_state(deadline).unwrap(), PowerState::On);
        s.close().unwrap();
        let err = Session::open_any(&[refused], &opts, suite, deadline).unwrap_err();
        assert!(err.is_unreachable(), "{err}");
    }
}
