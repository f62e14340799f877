//! `check-peer`: the neighbour activity check. Reads another host's heartbeat
//! on each storage twice across a window and answers ALIVE, DEAD or
//! CANNOT-TELL, comparing only what the peer wrote (counter, incarnation),
//! never anybody's clock.

use crate::heartbeat::{heartbeat_path, HeartbeatRecord};
use crate::reader::{read_all_with, ReadReport, ReadRequest, ReadResult};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The answer, also the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// The heartbeat changed during the window: the peer is writing.
    #[serde(rename = "ALIVE")]
    Alive,
    /// Every storage was read twice and none changed over a window of at
    /// least two of the peer's intervals.
    #[serde(rename = "DEAD")]
    Dead,
    /// No evidence either way: a storage unreadable from here, no heartbeat
    /// file, a window too short. The coordinator must not fence on this.
    #[serde(rename = "CANNOT-TELL")]
    CannotTell,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Alive => "ALIVE",
            Verdict::Dead => "DEAD",
            Verdict::CannotTell => "CANNOT-TELL",
        }
    }

    /// Exit status of `kvm-host check-peer` (2 is taken by usage errors).
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Alive => 0,
            Verdict::Dead => 10,
            Verdict::CannotTell => 11,
        }
    }
}

/// One storage's samples and what they say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageFinding {
    pub storage: PathBuf,
    pub verdict: Verdict,
    pub detail: String,
    pub first_counter: Option<u64>,
    pub second_counter: Option<u64>,
}

/// The full answer, printed with `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerReport {
    pub host: String,
    pub verdict: Verdict,
    pub window_ms: u64,
    pub storages: Vec<StorageFinding>,
}

/// What to check.
#[derive(Debug, Clone)]
pub struct PeerCheck {
    pub storage: Vec<PathBuf>,
    pub host: String,
    pub heartbeat_dir: String,
    /// None: twice the peer's advertised interval, plus one second.
    pub window: Option<Duration>,
    /// Deadline of each read.
    pub io_timeout: Duration,
    pub require_mount: bool,
}

fn describe(result: &ReadResult) -> String {
    match result {
        ReadResult::Report(ReadReport::Record { record }) => format!("counter {}", record.counter),
        ReadResult::Report(ReadReport::NotMounted { message }) => {
            format!("cannot read storage: {message}")
        }
        ReadResult::Report(ReadReport::Missing { message }) => {
            format!("no heartbeat file ({message})")
        }
        ReadResult::Report(ReadReport::Unreadable { message }) => {
            format!("cannot read storage: {message}")
        }
        ReadResult::TimedOut { after_ms, .. } => {
            format!("cannot read storage: read did not finish within {after_ms} ms (hung?)")
        }
        ReadResult::StillBlocked { pid } => {
            format!("cannot read storage: an earlier read (pid {pid}) is still blocked")
        }
        ReadResult::Failed(m) => format!("cannot read storage: {m}"),
    }
}

fn record(result: &ReadResult) -> Option<&HeartbeatRecord> {
    match result {
        ReadResult::Report(ReadReport::Record { record }) => Some(record),
        _ => None,
    }
}

/// The decision for one storage, from its two samples. Pure.
pub fn judge_storage(
    host: &str,
    window: Duration,
    first: &ReadResult,
    second: &ReadResult,
) -> (Verdict, String) {
    let (a, b) = match (record(first), record(second)) {
        (Some(a), Some(b)) => (a, b),
        (None, _) => return (Verdict::CannotTell, describe(first)),
        (_, None) => return (Verdict::CannotTell, describe(second)),
    };
    if a.host != host || b.host != host {
        return (
            Verdict::CannotTell,
            format!("heartbeat file names host {:?}, not {host:?}", b.host),
        );
    }
    if a.counter != b.counter || a.incarnation != b.incarnation {
        return (
            Verdict::Alive,
            format!(
                "counter {} -> {} within {} ms",
                a.counter,
                b.counter,
                window.as_millis()
            ),
        );
    }
    let needed = Duration::from_secs(2 * a.interval_secs.max(b.interval_secs));
    if window < needed {
        return (
            Verdict::CannotTell,
            format!(
                "unchanged, but the window ({} ms) is shorter than two of the peer's intervals ({} s)",
                window.as_millis(),
                a.interval_secs
            ),
        );
    }
    (
        Verdict::Dead,
        format!(
            "counter {} unchanged for {} ms",
            a.counter,
            window.as_millis()
        ),
    )
}

/// Combines per-storage verdicts: any ALIVE wins; DEAD needs every storage
/// to say DEAD; anything else cannot tell. Pure.
pub fn combine(verdicts: &[Verdict]) -> Verdict {
    if verdicts.contains(&Verdict::Alive) {
        Verdict::Alive
    } else if !verdicts.is_empty() && verdicts.iter().all(|v| *v == Verdict::Dead) {
        Verdict::Dead
    } else {
        Verdict::CannotTell
    }
}

/// Runs the check: sample, wait the window, sample again.
pub fn check_peer(check: &PeerCheck) -> PeerReport {
    check_peer_with(check, &crate::child::self_command)
}

/// [`check_peer`] reading through another reader program (see
/// [`crate::reader::read_all_with`]).
pub fn check_peer_with(
    check: &PeerCheck,
    reader: &dyn Fn() -> std::process::Command,
) -> PeerReport {
    let requests: Vec<ReadRequest> = check
        .storage
        .iter()
        .map(|s| ReadRequest {
            file: heartbeat_path(s, &check.heartbeat_dir, &check.host),
            require_mount_of: check.require_mount.then(|| s.clone()),
        })
        .collect();
    let first = read_all_with(&requests, Instant::now() + check.io_timeout, reader);
    // The window counts from the end of the first sample to the start of the
    // second: the least time the peer certainly had to write.
    let first_done = Instant::now();
    let window = check.window.unwrap_or_else(|| {
        let interval = first
            .iter()
            .filter_map(record)
            .map(|r| r.interval_secs)
            .max()
            .unwrap_or(0);
        Duration::from_secs(2 * interval + 1)
    });
    // Only worth waiting if some storage answered.
    let (second, observed) = if first.iter().any(|r| record(r).is_some()) {
        std::thread::sleep(window);
        let observed = first_done.elapsed();
        (
            read_all_with(&requests, Instant::now() + check.io_timeout, reader),
            observed,
        )
    } else {
        (first.clone(), Duration::ZERO)
    };
    let storages: Vec<StorageFinding> = check
        .storage
        .iter()
        .zip(first.iter().zip(second.iter()))
        .map(|(s, (a, b))| {
            let (verdict, detail) = judge_storage(&check.host, observed, a, b);
            StorageFinding {
                storage: s.clone(),
                verdict,
                detail,
                first_counter: record(a).map(|r| r.counter),
                second_counter: record(b).map(|r| r.counter),
            }
        })
        .collect();
    let verdict = combine(&storages.iter().map(|f| f.verdict).collect::<Vec<_>>());
    PeerReport {
        host: check.host.clone(),
        verdict,
        window_ms: observed.as_millis() as u64,
        storages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(counter: u64, inc: &str) -> ReadResult {
        ReadResult::Report(ReadReport::Record {
            record: HeartbeatRecord {
                format: 1,
                host: "kvm2".into(),
                counter,
                incarnation: inc.into(),
                written_unix_ms: 0,
                interval_secs: 2,
            },
        })
    }

    const W: Duration = Duration::from_secs(5);

    #[test]
    fn judge_table() {
        use Verdict::*;
        let missing = ReadResult::Report(ReadReport::Missing {
            message: "x".into(),
        });
        let hung = ReadResult::TimedOut {
            after_ms: 100,
            pid: 1,
        };
        let unmounted = ReadResult::Report(ReadReport::NotMounted {
            message: "x".into(),
        });
        let cases: Vec<(ReadResult, ReadResult, Duration, Verdict)> = vec![
            (rec(1, "a"), rec(2, "a"), W, Alive),
            (rec(5, "a"), rec(1, "b"), W, Alive), // new writer
            (rec(1, "a"), rec(1, "a"), W, Dead),
            (rec(1, "a"), rec(1, "a"), Duration::from_secs(3), CannotTell), // < 2 intervals
            (rec(1, "a"), hung.clone(), W, CannotTell),
            (hung.clone(), hung, W, CannotTell),
            (missing.clone(), missing, W, CannotTell),
            (unmounted.clone(), unmounted, W, CannotTell),
            (ReadResult::Failed("x".into()), rec(1, "a"), W, CannotTell),
        ];
        for (a, b, w, want) in cases {
            let (got, detail) = judge_storage("kvm2", w, &a, &b);
            assert_eq!(got, want, "{a:?} {b:?} {w:?}: {detail}");
        }
        let (got, _) = judge_storage("other", W, &rec(1, "a"), &rec(2, "a"));
        assert_eq!(got, CannotTell);
    }

    #[test]
    fn combine_table() {
        use Verdict::*;
        assert_eq!(combine(&[]), CannotTell);
        assert_eq!(combine(&[Dead]), Dead);
        assert_eq!(combine(&[Dead, Dead]), Dead);
        assert_eq!(combine(&[Dead, CannotTell]), CannotTell);
        assert_eq!(combine(&[Dead, Alive]), Alive);
        assert_eq!(combine(&[CannotTell, Alive]), Alive);
        assert_eq!(combine(&[CannotTell]), CannotTell);
    }

    #[test]
    fn exit_codes_are_distinct_from_usage_errors() {
        assert_eq!(Verdict::Alive.exit_code(), 0);
        assert_eq!(Verdict::Dead.exit_code(), 10);
        assert_eq!(Verdict::CannotTell.exit_code(), 11);
    }
}
