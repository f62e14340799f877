//! The session lifecycle as an explicit state machine.
//!
//! Transition table (anything not listed is a bug and is refused):
//!
//! | from        | event            | to        | why                                             |
//! |-------------|------------------|-----------|-------------------------------------------------|
//! | `Handshake` | `Established`    | `Active`  | RAKP / Activate Session and privilege succeeded |
//! | `Handshake` | `HandshakeFailed`| `Closed`  | nothing to close, or half-open session closed   |
//! | `Handshake` | `CloseSent`      | `Closed`  | half-open session (BMC id known) closed         |
//! | `Active`    | `CommandDone`    | `Active`  | a command (even a refused one) keeps it open    |
//! | `Active`    | `CloseSent`      | `Closed`  | Close Session sent (answered or not)            |
//! | `Closed`    | –                | –         | terminal                                        |

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Authenticating; no commands yet.
    Handshake,
    /// Authenticated: commands may be sent.
    Active,
    /// Close Session sent (or nothing to close). Terminal.
    Closed,
}

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseEvent {
    /// The session is authenticated at the requested privilege.
    Established,
    /// Authentication failed before a BMC session existed.
    HandshakeFailed,
    /// A command exchange finished (successfully or not).
    CommandDone,
    /// Close Session was sent.
    CloseSent,
}

impl Phase {
    /// All phases, for exhaustive tests.
    pub const ALL: [Phase; 3] = [Phase::Handshake, Phase::Active, Phase::Closed];

    /// The next phase, or `None` when the event is not allowed here.
    pub fn next(self, event: PhaseEvent) -> Option<Phase> {
        use Phase::*;
        use PhaseEvent::*;
        match (self, event) {
            (Handshake, Established) => Some(Active),
            (Handshake, HandshakeFailed) => Some(Closed),
            (Handshake, CloseSent) => Some(Closed),
            (Active, CommandDone) => Some(Active),
            (Active, CloseSent) => Some(Closed),
            (Handshake, CommandDone) | (Active, Established) | (Active, HandshakeFailed) => None,
            (Closed, _) => None,
        }
    }

    /// Whether a Close Session still has to be sent when leaving this phase.
    pub fn needs_close(self) -> bool {
        self == Phase::Active
    }
}

impl PhaseEvent {
    /// All events, for exhaustive tests.
    pub const ALL: [PhaseEvent; 4] = [
        PhaseEvent::Established,
        PhaseEvent::HandshakeFailed,
        PhaseEvent::CommandDone,
        PhaseEvent::CloseSent,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_table_is_exactly_the_documented_one() {
        use Phase::*;
        use PhaseEvent::*;
        let expected = [
            (Handshake, Established, Some(Active)),
            (Handshake, HandshakeFailed, Some(Closed)),
            (Handshake, CommandDone, None),
            (Handshake, CloseSent, Some(Closed)),
            (Active, Established, None),
            (Active, HandshakeFailed, None),
            (Active, CommandDone, Some(Active)),
            (Active, CloseSent, Some(Closed)),
            (Closed, Established, None),
            (Closed, HandshakeFailed, None),
            (Closed, CommandDone, None),
            (Closed, CloseSent, None),
        ];
        assert_eq!(expected.len(), Phase::ALL.len() * PhaseEvent::ALL.len());
        for (from, ev, to) in expected {
            assert_eq!(from.next(ev), to, "{from:?} + {ev:?}");
        }
    }

    #[test]
    fn only_active_sessions_need_closing() {
        for p in Phase::ALL {
            assert_eq!(p.needs_close(), p == Phase::Active);
        }
    }
}
