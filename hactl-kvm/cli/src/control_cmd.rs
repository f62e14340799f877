//! The operator's subcommands: thin clients of the daemon's control socket
//! (`hactl_control`). Output: human tables, or `--json` (the protocol's
//! answer as is). Exit status (all of them): 0 done; 1 refused or failed
//! by the daemon, nothing changed; 2 bad usage, unknown host or partition,
//! or not confirmed; 3 the daemon cannot be reached or permission denied;
//! 4 protocol version mismatch.

use clap::{Args, Subcommand};
use hactl_control::render::{self, exit_code, EXIT_UNREACHABLE, EXIT_USAGE};
use hactl_control::{
    ControlClient, CoordinatorRole, PowerRequest, Request, Response, Target, DEFAULT_SOCKET,
};
use hactl_core::{ClusterId, HaState, HostId, RateScope};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct Common {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's answer as JSON.
    #[arg(long)]
    json: bool,
}

/// The control-socket clients of a running `hactl-kvm run` (its
/// `daemon.control_socket`; root or a member of `daemon.control_group`).
#[derive(Subcommand, Debug)]
pub enum ControlCommand {
    /// Quorum, partitions, hosts per HA state, rate cap, mass-failure guard, journal, uptime.
    ///
    /// Example: hactl-kvm status
    Status(Common),
    /// One line per host: HA state, CloudStack hastate, power, last checks, pending operation.
    ///
    /// Example: hactl-kvm hosts --partition cluster-2 --state SUSPECT
    Hosts {
        /// Only this partition (cluster-N or N).
        #[arg(long, value_parser = parse_cluster)]
        partition: Option<ClusterId>,
        /// Only hosts in this HA state (e.g. FAILED).
        #[arg(long, value_parser = parse_state)]
        state: Option<HaState>,
        #[command(flatten)]
        common: Common,
    },
    /// One host's history from the journal (transitions, fences and outcomes), oldest first.
    ///
    /// Example: hactl-kvm host host-3
    Host {
        /// The host (host-N or N).
        #[arg(value_parser = parse_host)]
        host: HostId,
        #[command(flatten)]
        common: Common,
    },
    /// The event stream, one line per event.
    ///
    /// Example: hactl-kvm events --since 1h --follow
    Events {
        /// Keep printing new events until interrupted.
        #[arg(long)]
        follow: bool,
        /// Only events since: a duration ago (30s, 10m, 2h, 1d) or Unix seconds.
        #[arg(long, value_parser = parse_since)]
        since: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Read or change a host's power through the core (quorum applies, journaled).
    ///
    /// off and cycle ask for confirmation unless --yes.
    ///
    /// Example: hactl-kvm power host-3 status
    Power {
        /// The host (host-N or N).
        #[arg(value_parser = parse_host)]
        host: HostId,
        /// status, on, off or cycle.
        #[arg(value_parser = parse_power)]
        op: PowerRequest,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Acknowledge a tripped fence-rate cap: fencing resumes in that scope.
    ///
    /// Example: hactl-kvm ack-cap cluster-2   (without a partition: the global cap)
    AckCap {
        /// The partition whose cap to acknowledge (default: the global cap).
        #[arg(value_parser = parse_cluster)]
        partition: Option<ClusterId>,
        #[command(flatten)]
        common: Common,
    },
    /// Confirm that a FAILED host is powered off (its BMC died with it).
    ///
    /// The host becomes FENCED and its VMs may be restarted elsewhere. Asks
    /// for confirmation unless --yes.
    ///
    /// Example: hactl-kvm confirm-off host-3
    ConfirmOff {
        /// The host (host-N or N).
        #[arg(value_parser = parse_host)]
        host: HostId,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Enable HA for a partition (cluster-N) or a host (host-N).
    ///
    /// Example: hactl-kvm enable cluster-2
    Enable {
        /// cluster-N or host-N.
        #[arg(value_parser = parse_target)]
        target: Target,
        #[command(flatten)]
        common: Common,
    },
    /// Disable HA for a partition (cluster-N) or a host (host-N).
    ///
    /// Example: hactl-kvm disable host-3
    Disable {
        /// cluster-N or host-N.
        #[arg(value_parser = parse_target)]
        target: Target,
        #[command(flatten)]
        common: Common,
    },
    /// Put a host into maintenance (on) or take it out (off).
    ///
    /// Example: hactl-kvm maintenance host-3 on
    Maintenance {
        /// The host (host-N or N).
        #[arg(value_parser = parse_host)]
        host: HostId,
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        mode: String,
        #[command(flatten)]
        common: Common,
    },
    /// This instance's coordinator role (active or standby, fencing epoch, replica, promotion
    /// score), or make it active (promote) or standby (demote). Both are idempotent; a replica
    /// that is still syncing is not promoted (the answer says why).
    ///
    /// Example: hactl-kvm role promote
    #[command(hide = true)]
    Role {
        /// status, promote or demote.
        #[arg(value_parser = ["status", "promote", "demote"], default_value = "status")]
        action: String,
        #[command(flatten)]
        common: Common,
    },
}

fn parse_id(s: &str, prefix: &str) -> Result<u32, String> {
    s.strip_prefix(prefix)
        .unwrap_or(s)
        .parse()
        .map_err(|_| format!("expected {prefix}N or N, got {s:?}"))
}

fn parse_host(s: &str) -> Result<HostId, String> {
    parse_id(s, "host-").map(HostId)
}

fn parse_cluster(s: &str) -> Result<ClusterId, String> {
    parse_id(s, "cluster-").map(ClusterId)
}

fn parse_target(s: &str) -> Result<Target, String> {
    if s.starts_with("host-") {
        parse_host(s).map(Target::Host)
    } else if s.starts_with("cluster-") {
        parse_cluster(s).map(Target::Partition)
    } else {
        Err(format!("expected cluster-N or host-N, got {s:?}"))
    }
}

fn parse_state(s: &str) -> Result<HaState, String> {
    HaState::ALL
        .into_iter()
        .find(|st| st.to_string().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            let names: Vec<String> = HaState::ALL.iter().map(|s| s.to_string()).collect();
            format!("unknown HA state {s:?} (one of {})", names.join(", "))
        })
}

fn parse_power(s: &str) -> Result<PowerRequest, String> {
    match s {
        "status" => Ok(PowerRequest::Status),
        "on" => Ok(PowerRequest::On),
        "off" => Ok(PowerRequest::Off),
        "cycle" => Ok(PowerRequest::Cycle),
        _ => Err(format!("expected status, on, off or cycle, got {s:?}")),
    }
}

/// `--since`: a duration ago (`30s`, `10m`, `2h`, `1d`) or Unix seconds;
/// returns Unix milliseconds.
fn parse_since(s: &str) -> Result<u64, String> {
    let bad = || format!("expected a duration ago (30s, 10m, 2h, 1d) or Unix seconds, got {s:?}");
    let unit = match s.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        Some('d') => 86_400,
        Some(c) if c.is_ascii_digit() => {
            return s.parse::<u64>().map(|v| v * 1000).map_err(|_| bad());
        }
        _ => return Err(bad()),
    };
    let n: u64 = s[..s.len() - 1].parse().map_err(|_| bad())?;
    Ok(hactl_control::time::now_unix_ms().saturating_sub(n * unit * 1000))
}

/// Asks on the terminal; without a terminal, never assumes yes.
fn confirm(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        eprintln!("hactl-kvm: {question} - not confirmed (no terminal; use --yes)");
        return false;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes")
}

pub fn run(cmd: ControlCommand) -> ExitCode {
    let (common, request) = match cmd {
        ControlCommand::Status(c) => (c, Request::Status),
        ControlCommand::Hosts {
            partition,
            state,
            common,
        } => (common, Request::Hosts { partition, state }),
        ControlCommand::Host { host, common } => (common, Request::HostHistory { host }),
        ControlCommand::Events {
            follow,
            since,
            common,
        } => (
            common,
            Request::Events {
                since_unix_ms: since,
                follow,
            },
        ),
        ControlCommand::Power {
            host,
            op,
            yes,
            common,
        } => {
            if op.is_disruptive()
                && !yes
                && !confirm(&format!(
                    "power {} {host}: this takes down everything running on it. Continue?",
                    if op == PowerRequest::Off {
                        "off"
                    } else {
                        "cycle"
                    }
                ))
            {
                return ExitCode::from(EXIT_USAGE);
            }
            (common, Request::Power { host, op })
        }
        ControlCommand::AckCap { partition, common } => (
            common,
            Request::AckCap {
                scope: partition.map_or(RateScope::Global, RateScope::Partition),
            },
        ),
        ControlCommand::ConfirmOff { host, yes, common } => {
            if !yes
                && !confirm(&format!(
                    "confirm that {host} is powered off (its VMs will be restarted elsewhere)?"
                ))
            {
                return ExitCode::from(EXIT_USAGE);
            }
            (common, Request::ConfirmOff { host })
        }
        ControlCommand::Enable { target, common } => (common, Request::Enable { target }),
        ControlCommand::Disable { target, common } => (common, Request::Disable { target }),
        ControlCommand::Role { action, common } => (
            common,
            match action.as_str() {
                "promote" => Request::SetRole {
                    role: CoordinatorRole::Active,
                },
                "demote" => Request::SetRole {
                    role: CoordinatorRole::Standby,
                },
                _ => Request::Role,
            },
        ),
        ControlCommand::Maintenance { host, mode, common } => (
            common,
            Request::Maintenance {
                host,
                on: mode == "on",
            },
        ),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hactl-kvm: cannot start the I/O runtime: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    rt.block_on(exchange(&common, request))
}

fn print(common: &Common, r: &Response) {
    if common.json {
        // One line per answer, so `events --json` is JSON lines.
        println!("{}", serde_json::to_string(r).unwrap_or_default());
    } else {
        let text = render::human_response(r);
        match r {
            Response::Err(_) => eprint!("{text}"),
            Response::Ok(_) => print!("{text}"),
        }
    }
}

async fn exchange(common: &Common, request: Request) -> ExitCode {
    let mut client = match ControlClient::connect(&common.socket).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hactl-kvm: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let answer = match request {
        Request::Events {
            since_unix_ms,
            follow,
        } => {
            client
                .events(since_unix_ms, follow, |rec| {
                    if common.json {
                        println!("{}", serde_json::to_string(&rec).unwrap_or_default());
                    } else {
                        println!("{}", render::event_line(&rec));
                    }
                    let _ = std::io::stdout().flush();
                })
                .await
        }
        other => client.request(other).await,
    };
    match answer {
        Ok(r) => {
            if !matches!(r, Response::Ok(hactl_control::Reply::EndOfStream)) {
                print(common, &r);
            }
            ExitCode::from(exit_code(&r))
        }
        Err(e) => {
            eprintln!("hactl-kvm: {e}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}
