//! UDP request/response with retransmission, bounded by a deadline.

use std::io::ErrorKind;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use crate::{IpmiError, PacketStats, Step};

/// What a reply checker decided about one received datagram.
pub(crate) enum Verdict<T> {
    /// Not the reply we wait for (stray, duplicate, forged): keep waiting.
    Ignore(String),
    /// The reply.
    Accept(T),
    /// A genuine reply that ends the exchange with an error.
    Fail(IpmiError),
    /// A reply that fails authentication (key exchange code, ICV): it may be
    /// forged or corrupted, so keep listening for a short grace (at most
    /// [`SUSPECT_GRACE`], never past this attempt's window) and fail with
    /// this error only if no acceptable reply arrives by then. A forger
    /// racing the BMC must then also beat the genuine reply by the grace.
    Suspect(IpmiError),
    /// An error answer that carries no authentication at all (an RMCP+
    /// status, a completion code before the session): anyone could have sent
    /// it, so keep retransmitting and listening until the deadline, and only
    /// then report it, as [`IpmiError::Unverified`].
    Unverified(IpmiError),
}

/// How long a reply that failed authentication waits for a genuine one
/// (see [`Verdict::Suspect`]). A BMC answers a request in milliseconds, so a
/// genuine reply racing a forged one arrives well within this.
pub(crate) const SUSPECT_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// The largest datagram read; anything longer is truncated by the kernel and
/// fails the decoders' length checks.
const MAX_DATAGRAM: usize = 2048;

/// A connected UDP socket to one BMC.
pub(crate) struct Transport {
    socket: UdpSocket,
    addr: SocketAddr,
    interval: Duration,
    stats: PacketStats,
    buf: Vec<u8>,
}

/// Resolves `host` (name, IPv4 or IPv6 literal, optionally in brackets) to
/// at least one address, in resolver order.
pub(crate) fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, IpmiError> {
    let h = host.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    if h.is_empty() {
        return Err(IpmiError::InvalidOptions("empty BMC host".into()));
    }
    let resolved = (h, port)
        .to_socket_addrs()
        .map_err(|e| IpmiError::Resolve {
            host: host.to_string(),
            detail: e.to_string(),
        })?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in resolved {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(IpmiError::Resolve {
            host: host.to_string(),
            detail: "no address".into(),
        });
    }
    Ok(addrs)
}

fn is_unreachable(kind: ErrorKind, raw: Option<i32>) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset | ErrorKind::AddrNotAvailable
    ) || matches!(
        raw,
        Some(libc_errno::ENETUNREACH)
            | Some(libc_errno::EHOSTUNREACH)
            | Some(libc_errno::EHOSTDOWN)
    )
}

/// Linux errno values (avoids a libc dependency for three constants).
mod libc_errno {
    pub const ENETUNREACH: i32 = 101;
    pub const EHOSTUNREACH: i32 = 113;
    pub const EHOSTDOWN: i32 = 112;
}

impl Transport {
    /// Opens a UDP socket connected to the BMC (so ICMP errors are reported).
    pub fn connect(addr: SocketAddr, interval: Duration) -> Result<Transport, IpmiError> {
        let step = Step::GetChannelAuthCapabilities;
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let socket = UdpSocket::bind(local).map_err(|source| IpmiError::Io { step, source })?;
        socket.connect(addr).map_err(|source| {
            if is_unreachable(source.kind(), source.raw_os_error()) {
                IpmiError::Unreachable { addr, step, source }
            } else {
                IpmiError::Io { step, source }
            }
        })?;
        Ok(Transport {
            socket,
            addr,
            interval: interval.max(Duration::from_millis(10)),
            stats: PacketStats::default(),
            buf: vec![0; MAX_DATAGRAM],
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn stats(&self) -> PacketStats {
        self.stats
    }

    fn io_error(&self, step: Step, source: std::io::Error) -> IpmiError {
        if is_unreachable(source.kind(), source.raw_os_error()) {
            IpmiError::Unreachable {
                addr: self.addr,
                step,
                source,
            }
        } else {
            IpmiError::Io { step, source }
        }
    }

    /// Sends one datagram without waiting for anything.
    pub fn send_only(&mut self, step: Step, packet: &[u8]) -> Result<(), IpmiError> {
        self.socket
            .send(packet)
            .map_err(|e| self.io_error(step, e))?;
        self.stats.sent += 1;
        Ok(())
    }

    /// Sends `build(attempt)` and waits for a datagram `check` accepts,
    /// resending every retransmit interval until `deadline`.
    pub fn exchange<T>(
        &mut self,
        step: Step,
        deadline: Instant,
        mut build: impl FnMut(u32) -> Vec<u8>,
        mut check: impl FnMut(&[u8]) -> Verdict<T>,
    ) -> Result<T, IpmiError> {
        let started = Instant::now();
        let mut attempts = 0u32;
        // A reply that failed authentication, and when its grace ends.
        let mut suspect: Option<(IpmiError, Instant)> = None;
        // The first unauthenticated error answer, reported only at the deadline.
        let mut unverified: Option<IpmiError> = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                tracing::debug!(%step, attempts, "deadline reached");
                if let Some((e, _)) = suspect {
                    return Err(e);
                }
                if let Some(e) = unverified {
                    return Err(IpmiError::Unverified {
                        step,
                        source: Box::new(e),
                    });
                }
                return Err(IpmiError::Timeout {
                    addr: self.addr,
                    step,
                    elapsed: now - started,
                    attempts,
                });
            }
            let packet = build(attempts);
            attempts += 1;
            tracing::trace!(%step, attempt = attempts, len = packet.len(), "send");
            self.socket
                .send(&packet)
                .map_err(|e| self.io_error(step, e))?;
            self.stats.sent += 1;
            let resend_at = (now + self.interval).min(deadline);
            loop {
                let now = Instant::now();
                let wake = match &suspect {
                    Some((_, until)) => resend_at.min(*until),
                    None => resend_at,
                };
                if now >= wake {
                    if let Some((e, until)) = suspect.take() {
                        if now >= until {
                            return Err(e);
                        }
                        suspect = Some((e, until));
                    }
                    break;
                }
                self.socket
                    .set_read_timeout(Some(wake - now))
                    .map_err(|source| IpmiError::Io { step, source })?;
                match self.socket.recv(&mut self.buf) {
                    Ok(n) => {
                        self.stats.received += 1;
                        match check(&self.buf[..n]) {
                            Verdict::Accept(t) => return Ok(t),
                            Verdict::Fail(e) => return Err(e),
                            Verdict::Suspect(e) => {
                                tracing::debug!(%step, error = %e, "reply fails authentication; waiting briefly for a genuine one");
                                if suspect.is_none() {
                                    let until = (Instant::now() + SUSPECT_GRACE.min(self.interval))
                                        .min(deadline);
                                    suspect = Some((e, until));
                                }
                            }
                            Verdict::Unverified(e) => {
                                tracing::debug!(%step, error = %e, "unauthenticated error answer; waiting for an authenticated one until the deadline");
                                unverified.get_or_insert(e);
                            }
                            Verdict::Ignore(why) => {
                                tracing::debug!(%step, %why, "ignoring datagram");
                            }
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        continue;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(self.io_error(step, e)),
                }
            }
        }
    }
}
