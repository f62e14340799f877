//! The CLI's output: human tables (default) and JSON (`--json`), and the
//! exit codes every control subcommand uses.
//!
//! Exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (for state-changing commands: the core accepted and journaled it) |
//! | 1 | the daemon refused (the reason is printed) or failed; nothing was changed |
//! | 2 | bad usage: bad arguments, unknown host or partition, request rejected as malformed |
//! | 3 | the daemon cannot be reached, or permission denied (not root, not in the control group) |
//! | 4 | the CLI and the daemon speak different protocol versions |

use crate::protocol::{
    ControlError, CoordinatorRole, EventRecord, HostHistory, HostRow, RateCapStatus, Reply,
    Response, RoleReport, StatusReport,
};
use crate::time::human;
use hactl_core::{ActivityVerdict, Event, OperatorCommand, RateScope, Record, UserPowerOp};
use std::fmt::Write;

/// Success.
pub const EXIT_OK: u8 = 0;
/// Refused or failed by the daemon.
pub const EXIT_REFUSED: u8 = 1;
/// Bad usage.
pub const EXIT_USAGE: u8 = 2;
/// Daemon unreachable or permission denied.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Protocol version mismatch.
pub const EXIT_VERSION: u8 = 4;

/// The exit code for a daemon's answer.
pub fn exit_code(response: &Response) -> u8 {
    match response {
        Response::Ok(_) => EXIT_OK,
        Response::Err(e) => match e {
            ControlError::Refused { .. }
            | ControlError::Internal { .. }
            | ControlError::Unsupported { .. } => EXIT_REFUSED,
            ControlError::BadRequest { .. }
            | ControlError::UnknownHost { .. }
            | ControlError::UnknownPartition { .. } => EXIT_USAGE,
            ControlError::PermissionDenied { .. } => EXIT_UNREACHABLE,
            ControlError::VersionMismatch { .. } => EXIT_VERSION,
        },
    }
}

/// `--json` output: the answer exactly as the protocol carries it, pretty.
pub fn json(response: &Response) -> String {
    serde_json::to_string_pretty(response).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Human output of any answer (errors as one `error: ...` line).
pub fn human_response(response: &Response) -> String {
    match response {
        Response::Err(e) => format!("error: {e}\n"),
        Response::Ok(reply) => match reply {
            Reply::Status(s) => status(s),
            Reply::Hosts { hosts: h } => hosts(h),
            Reply::HostHistory(h) => history(h),
            Reply::Role(r) => role(r),
            Reply::Event(e) => event_line(e) + "\n",
            Reply::EndOfStream => String::new(),
            Reply::PowerRead {
                host,
                power,
                read_at_unix_ms,
            } => format!("{host}: power {power} (read {})\n", human(*read_at_unix_ms)),
            Reply::Applied { changes, journaled } => {
                let mut out = String::new();
                for c in changes {
                    let _ = writeln!(out, "changed: {c}");
                }
                if !journaled {
                    out.push_str("warning: the change was not journaled\n");
                }
                out
            }
        },
    }
}

/// `hactl-kvm role`: one line per fact, the change first when there is one.
fn role(r: &RoleReport) -> String {
    let mut out = String::new();
    if let Some(c) = &r.changed {
        let _ = writeln!(out, "changed: {c}");
    }
    let role = match r.role {
        CoordinatorRole::Active => "active",
        CoordinatorRole::Standby => "standby",
    };
    let _ = writeln!(out, "role: {role} (epoch {})", r.epoch);
    let _ = writeln!(
        out,
        "quorum: {} ({})",
        if r.quorate { "quorate" } else { "NOT quorate" },
        r.quorum_provider
    );
    let _ = writeln!(
        out,
        "journal: {} records, {} committed{}",
        r.journal_head,
        r.journal_committed,
        if r.in_sync {
            ""
        } else {
            ", state transfer running"
        }
    );
    let _ = writeln!(out, "promotion score: {}", r.promotion_score);
    out
}

/// Left-aligned columns, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

fn scope(s: &RateScope) -> String {
    match s {
        RateScope::Global => "global".into(),
        RateScope::Partition(c) => c.to_string(),
    }
}

fn cap(c: &RateCapStatus) -> String {
    format!(
        "{}: {}/{} fences in window{}",
        scope(&c.scope),
        c.fences_in_window,
        c.limit,
        if c.tripped {
            " - TRIPPED, fencing stopped (hactl-kvm ack-cap)"
        } else {
            ""
        }
    )
}

fn reasons(r: &[hactl_core::InactiveReason]) -> String {
    use hactl_core::{InactiveReason as R, MassFailureReason as M};
    r.iter()
        .map(|r| match r {
            R::ClusterDisabled => "cluster disabled".to_string(),
            R::PodDisabled => "pod disabled".into(),
            R::ZoneDisabled => "zone disabled".into(),
            R::TooFewAvailableHosts {
                available,
                required,
            } => format!("{available} AVAILABLE hosts, {required} required"),
            R::MassFailure(M::SuspectShare { affected, total }) => {
                format!("mass failure: {affected} of {total} hosts suspect")
            }
            R::MassFailure(M::HeartbeatCliff {
                before,
                after,
                total,
            }) => format!("mass failure: fresh heartbeats {before} -> {after} of {total}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `hactl-kvm status`.
pub fn status(s: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "quorum:       {}",
        if s.quorate {
            "quorate"
        } else {
            "NOT QUORATE - no power action possible"
        }
    );
    let _ = writeln!(
        out,
        "coordinator:  epoch {}, up {}",
        s.epoch,
        duration(s.uptime_s)
    );
    let _ = writeln!(
        out,
        "journal:      {} ({} bytes, last compaction {})",
        s.journal.path,
        s.journal.bytes,
        s.journal
            .last_compaction_unix_ms
            .map(human)
            .unwrap_or_else(|| "never".into())
    );
    let counts: Vec<String> = s
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(st, n)| format!("{st} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "hosts:        {}",
        if counts.is_empty() {
            "none".into()
        } else {
            counts.join(", ")
        }
    );
    for c in &s.rate_caps {
        let _ = writeln!(out, "rate cap:     {}", cap(c));
    }
    let mass = s.mass_failure_partitions();
    let _ = writeln!(
        out,
        "mass failure: {}",
        if mass.is_empty() {
            "none".into()
        } else {
            mass.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
                + " (fencing held)"
        }
    );
    out.push('\n');
    let rows: Vec<Vec<String>> = s
        .partitions
        .iter()
        .map(|p| vec![p.id.to_string(), p.state.to_string(), reasons(&p.reasons)])
        .collect();
    out.push_str(&table(&["PARTITION", "STATE", "REASONS"], &rows));
    out
}

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else {
        format!("{m}m {s}s")
    }
}

fn verdict(v: &ActivityVerdict) -> String {
    match v {
        ActivityVerdict::Alive => "alive".into(),
        ActivityVerdict::Dead => "dead".into(),
        ActivityVerdict::CannotTell(r) => format!("cannot-tell({})", snake(r)),
    }
}

/// A serde enum's wire name (snake_case), for compact table cells.
fn snake<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// `hactl-kvm hosts`.
pub fn hosts(rows: &[HostRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let v = &r.view;
            vec![
                v.id.to_string(),
                r.name.clone().unwrap_or_else(|| "-".into()),
                v.cluster.to_string(),
                v.ha.to_string(),
                v.cloudstack_hastate.clone(),
                match r.power_read_at_unix_ms {
                    Some(t) => format!("{} @{}", v.power, human(t)),
                    None => v.power.to_string(),
                },
                r.last_health
                    .map(|h| format!("{} @{}", snake(&h.outcome), human(h.at_unix_ms)))
                    .unwrap_or_else(|| "-".into()),
                r.last_round
                    .as_ref()
                    .map(|round| {
                        let samples: Vec<String> = round
                            .samples
                            .iter()
                            .map(|s| {
                                format!(
                                    "{}:{}/{}ms",
                                    s.checker,
                                    verdict(&s.verdict),
                                    s.window.to.saturating_sub(s.window.from)
                                )
                            })
                            .collect();
                        format!(
                            "{} @{} [{}]",
                            snake(&round.outcome),
                            human(round.at_unix_ms),
                            samples.join(" ")
                        )
                    })
                    .unwrap_or_else(|| "-".into()),
                r.pending.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "HOST",
            "NAME",
            "PARTITION",
            "HA",
            "CLOUDSTACK",
            "POWER",
            "LAST HEALTH",
            "LAST ACTIVITY ROUND",
            "PENDING",
        ],
        &cells,
    )
}

fn record_line(r: &Record) -> String {
    match r {
        Record::Started { epoch, .. } => format!("coordinator started (epoch {epoch})"),
        Record::HaTransition {
            from, to, version, ..
        } => format!("{from} -> {to} (version {})", version.0),
        Record::PartitionTransition {
            cluster, from, to, ..
        } => format!("partition {cluster}: {from} -> {to}"),
        Record::FenceIssued {
            fence,
            attempt,
            evidence,
            ..
        } => format!(
            "{fence} issued (attempt {attempt}): {} of {} samples dead, {} required",
            evidence.dead_samples(),
            evidence.samples.len(),
            evidence.dead_required
        ),
        Record::FenceResolved { fence, outcome, .. } => {
            format!("{fence} resolved: {}", snake(outcome))
        }
        Record::PowerOnOwed { owed, .. } => {
            if *owed {
                "power-on owed (recovery cycle)".into()
            } else {
                "power-on settled".into()
            }
        }
        Record::RateCapTripped { scope: s, .. } => format!("rate cap {} tripped", scope(s)),
        Record::RateCapAcknowledged { scope: s, .. } => {
            format!("rate cap {} acknowledged", scope(s))
        }
        Record::OperatorCommand { by, command, .. } => {
            format!("operator {by}: {}", command_text(command))
        }
    }
}

/// `hactl-kvm host NAME`: one line per journal record, oldest first.
pub fn history(h: &HostHistory) -> String {
    if h.entries.is_empty() {
        return format!("{}: no journal records\n", h.host);
    }
    let rows: Vec<Vec<String>> = h
        .entries
        .iter()
        .map(|e| vec![format!("{}", e.at), record_line(&e.record)])
        .collect();
    format!("{}\n{}", h.host, table(&["AT(ms)", "WHAT"], &rows))
}

/// One event, one line: time, kind, then its fields as JSON.
pub fn event_line(e: &EventRecord) -> String {
    let mut v = serde_json::to_value(&e.event).unwrap_or_default();
    let kind = v
        .as_object_mut()
        .and_then(|o| o.remove("event"))
        .and_then(|k| k.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    format!("{} {} {}", human(e.at_unix_ms), kind, v)
}

/// The kind name of an event (its serde tag), e.g. `fence_issued`.
pub fn event_kind(e: &Event) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v.get("event").and_then(|k| k.as_str().map(str::to_string)))
        .unwrap_or_else(|| "unknown".into())
}

/// An operator command, in words.
fn command_text(c: &OperatorCommand) -> String {
    match c {
        OperatorCommand::AcknowledgeRateCap { scope: s } => {
            format!("acknowledged rate cap {}", scope(s))
        }
        OperatorCommand::ConfirmHostOff { host } => format!("confirmed {host} off"),
        OperatorCommand::UserPower { host, op } => format!(
            "power {} {host}",
            match op {
                UserPowerOp::On => "on",
                UserPowerOp::Off => "off",
                UserPowerOp::Restart => "cycle",
            }
        ),
        OperatorCommand::SetOverride { setting, on } => format!(
            "{} {}",
            crate::dispatch::override_text(setting),
            if *on { "set" } else { "cleared" }
        ),
    }
}
