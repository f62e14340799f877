//! What monitor concludes from what it found, and what it tells Pacemaker
//! about this instance's promotion score. Pure: the action code gathers the
//! facts (PID file, process, control socket) and applies the result.

use crate::ocf::{OcfRc, Outcome};
use hactl_control::{CoordinatorRole, RoleReport};

/// The daemon process as the PID file and /proc show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Process {
    /// No PID file: never started here, or cleanly stopped.
    NoRecord,
    /// A PID file whose process is gone (crashed, killed).
    Gone { pid: i32 },
    /// The recorded process is alive and is ours.
    Alive { pid: i32 },
}

/// What the control socket said to `Role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Report(RoleReport),
    /// Nothing accepts connections on the socket.
    Unreachable(String),
    /// Connected but no (usable) answer in time, or a refusal.
    Failed(String),
    /// Not asked.
    NotAsked,
}

/// What to do with this node's promotion score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score {
    Set(i64),
    Remove,
}

/// Monitor's verdict. `socket` is only for the reasons.
pub fn monitor(process: &Process, answer: &Answer, socket: &str) -> (Outcome, Score) {
    match (process, answer) {
        (Process::NoRecord, Answer::Report(r)) => (
            Outcome::fail(
                OcfRc::ErrGeneric,
                format!(
                    "a hactl-kvm daemon this agent did not start answers on {socket} (role {:?}): stop it (systemctl stop hactl-kvm)",
                    r.role
                ),
            ),
            Score::Remove,
        ),
        (Process::NoRecord, _) => (Outcome::rc(OcfRc::NotRunning), Score::Remove),
        (Process::Gone { pid }, _) => (
            Outcome::fail(
                OcfRc::ErrGeneric,
                format!("hactl-kvm daemon (pid {pid}) is not running"),
            ),
            Score::Remove,
        ),
        (Process::Alive { pid }, Answer::Report(r)) => {
            let rc = match r.role {
                CoordinatorRole::Active => OcfRc::RunningPromoted,
                CoordinatorRole::Standby => OcfRc::Success,
            };
            // A replica still receiving its state transfer must not be
            // promoted, whatever score it asks for.
            let score = if r.promotion_score > 0 && r.in_sync {
                Score::Set(r.promotion_score)
            } else {
                Score::Remove
            };
            let _ = pid;
            (Outcome::rc(rc), score)
        }
        (Process::Alive { pid }, Answer::Unreachable(e)) => (
            Outcome::fail(
                OcfRc::ErrGeneric,
                format!("hactl-kvm daemon (pid {pid}) runs but nothing answers on {socket}: {e}"),
            ),
            Score::Remove,
        ),
        (Process::Alive { pid }, Answer::Failed(e)) => (
            Outcome::fail(
                OcfRc::ErrGeneric,
                format!("hactl-kvm daemon (pid {pid}) is stuck: {e}"),
            ),
            Score::Remove,
        ),
        (Process::Alive { pid }, Answer::NotAsked) => (
            Outcome::fail(
                OcfRc::ErrGeneric,
                format!("hactl-kvm daemon (pid {pid}): role not asked"),
            ),
            Score::Remove,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(role: CoordinatorRole, score: i64, in_sync: bool) -> Answer {
        Answer::Report(RoleReport {
            role,
            quorum_provider: "standalone".into(),
            quorate: true,
            epoch: 3,
            journal_head: 10,
            journal_committed: 10,
            in_sync,
            promotion_score: score,
            changed: None,
        })
    }

    /// Every (process, answer) class: exit code and score.
    #[test]
    fn monitor_table() {
        use CoordinatorRole::*;
        let alive = Process::Alive { pid: 10 };
        let cases: Vec<(Process, Answer, OcfRc, Score)> = vec![
            (
                Process::NoRecord,
                Answer::NotAsked,
                OcfRc::NotRunning,
                Score::Remove,
            ),
            (
                Process::NoRecord,
                Answer::Unreachable("x".into()),
                OcfRc::NotRunning,
                Score::Remove,
            ),
            (
                Process::NoRecord,
                report(Standby, 5, true),
                OcfRc::ErrGeneric,
                Score::Remove,
            ),
            (
                Process::Gone { pid: 9 },
                Answer::NotAsked,
                OcfRc::ErrGeneric,
                Score::Remove,
            ),
            (
                alive.clone(),
                report(Standby, 5, true),
                OcfRc::Success,
                Score::Set(5),
            ),
            (
                alive.clone(),
                report(Standby, 0, true),
                OcfRc::Success,
                Score::Remove,
            ),
            (
                alive.clone(),
                report(Standby, 5, false),
                OcfRc::Success,
                Score::Remove,
            ),
            (
                alive.clone(),
                report(Active, 7, true),
                OcfRc::RunningPromoted,
                Score::Set(7),
            ),
            (
                alive.clone(),
                report(Active, -1, true),
                OcfRc::RunningPromoted,
                Score::Remove,
            ),
            (
                alive.clone(),
                Answer::Unreachable("refused".into()),
                OcfRc::ErrGeneric,
                Score::Remove,
            ),
            (
                alive.clone(),
                Answer::Failed("timeout".into()),
                OcfRc::ErrGeneric,
                Score::Remove,
            ),
        ];
        for (p, a, rc, score) in cases {
            let (o, s) = monitor(&p, &a, "/s.sock");
            assert_eq!((o.rc, s), (rc, score), "{p:?} {a:?}: {o:?}");
            assert_eq!(o.reason.is_some(), rc == OcfRc::ErrGeneric, "{p:?} {a:?}");
        }
    }
}
