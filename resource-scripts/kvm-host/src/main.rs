//! kvm-host: the OCF resource agent for a KVM host's HA readiness and its storage heartbeat.
//!
//! Thin entry point: argv[1] is an OCF action (start, stop, monitor,
//! meta-data, validate-all) or one of the tool subcommands (check-peer, and
//! the internal heartbeat-writer / read-heartbeat). All logic is in the library.

use clap::{Parser, Subcommand};
use kvm_host::agent::Agent;
use kvm_host::log::Logger;
use kvm_host::ocf::{exit_reason_line, Action, OcfEnv, OcfRc};
use kvm_host::params::{check_host_id, parse_bool};
use kvm_host::peer::{check_peer, PeerCheck};
use kvm_host::reader::read_report;
use kvm_host::state::StateFiles;
use kvm_host::writer::{self, WriterConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "kvm-host", version, about = "KVM host HA agent tools")]
struct Cli {
    #[command(subcommand)]
    tool: Tool,
}

#[derive(Subcommand)]
enum Tool {
    /// Is another host writing its heartbeat? Prints ALIVE, DEAD or CANNOT-TELL;
    /// exits 0, 10 or 11 (2 on bad usage).
    CheckPeer {
        /// Storage mount point to read the peer's heartbeat from (repeatable).
        #[arg(long, required = true)]
        storage: Vec<PathBuf>,
        /// The peer's host_id.
        #[arg(long)]
        host: String,
        /// Directory inside each storage holding the heartbeat files.
        #[arg(long, default_value = kvm_host::params::defaults::HEARTBEAT_DIR)]
        heartbeat_dir: String,
        /// Seconds between the two samples; default: twice the peer's interval + 1.
        #[arg(long)]
        window: Option<u64>,
        /// Deadline of each storage read, seconds.
        #[arg(long, default_value_t = 10)]
        io_timeout: u64,
        /// Do not require each storage to be a mount point.
        #[arg(long)]
        no_require_mount: bool,
        /// Print the whole report as JSON instead of one word.
        #[arg(long)]
        json: bool,
    },
    /// Internal: the heartbeat writer daemon, started by `start`.
    #[command(hide = true)]
    HeartbeatWriter {
        #[arg(long)]
        instance: String,
        #[arg(long)]
        state_dir: PathBuf,
        #[arg(long)]
        host: String,
        #[arg(long)]
        interval: u64,
        #[arg(long)]
        heartbeat_dir: String,
        #[arg(long)]
        require_mount: String,
        #[arg(long, required = true)]
        storage: Vec<PathBuf>,
    },
    /// Internal: read one heartbeat file, print a JSON report.
    #[command(hide = true)]
    ReadHeartbeat {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        require_mount_of: Option<PathBuf>,
    },
}

const USAGE: &str = "usage: kvm-host {start|stop|monitor|meta-data|validate-all}\n       kvm-host check-peer --storage DIR --host ID [--window SECS] [--json]";

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let Some(first) = args.get(1).map(|a| a.to_string_lossy().into_owned()) else {
        eprintln!("{USAGE}");
        std::process::exit(OcfRc::ErrArgs.code());
    };
    if matches!(
        first.as_str(),
        "check-peer" | "heartbeat-writer" | "read-heartbeat" | "--help" | "-h" | "--version" | "-V"
    ) {
        run_tool(Cli::parse_from(&args).tool);
    }
    std::process::exit(run_ocf(&first));
}

fn run_ocf(action_name: &str) -> i32 {
    let Some(action) = Action::parse(action_name) else {
        eprintln!("{USAGE}");
        eprintln!(
            "{}",
            exit_reason_line(&format!("{action_name}: action not supported"))
        );
        return OcfRc::ErrUnimplemented.code();
    };
    match action {
        Action::MetaData => {
            print!("{}", kvm_host::metadata::metadata_xml());
            return 0;
        }
        Action::Usage => {
            println!("{USAGE}");
            return 0;
        }
        _ => {}
    }
    let started = Instant::now();
    let env = OcfEnv::from_lookup(|k| std::env::var_os(k));
    let log = Logger::new(&env.instance, true);
    let lookup = |k: &str| std::env::var_os(k);
    let agent = Agent {
        env,
        lookup: &lookup,
        log: &log,
        started,
    };
    let outcome = agent.run(action);
    if let Some(reason) = &outcome.reason {
        eprintln!("{}", exit_reason_line(reason));
    }
    outcome.rc.code()
}

fn run_tool(tool: Tool) -> ! {
    match tool {
        Tool::CheckPeer {
            storage,
            host,
            heartbeat_dir,
            window,
            io_timeout,
            no_require_mount,
            json,
        } => {
            if let Err(e) = check_host_id(&host) {
                eprintln!("kvm-host check-peer: {e}");
                std::process::exit(2);
            }
            if let Some(bad) = storage.iter().find(|s| !s.is_absolute()) {
                eprintln!(
                    "kvm-host check-peer: --storage {}: must be an absolute path",
                    bad.display()
                );
                std::process::exit(2);
            }
            if heartbeat_dir.is_empty() || heartbeat_dir.contains('/') {
                eprintln!("kvm-host check-peer: --heartbeat-dir must be one path component");
                std::process::exit(2);
            }
            let report = check_peer(&PeerCheck {
                storage,
                host,
                heartbeat_dir,
                window: window.map(Duration::from_secs),
                io_timeout: Duration::from_secs(io_timeout.max(1)),
                require_mount: !no_require_mount,
            });
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("report serialises")
                );
            } else {
                println!("{}", report.verdict.word());
                for f in &report.storages {
                    eprintln!(
                        "{}: {}: {}",
                        f.storage.display(),
                        f.verdict.word(),
                        f.detail
                    );
                }
            }
            std::process::exit(report.verdict.exit_code());
        }
        Tool::HeartbeatWriter {
            instance,
            state_dir,
            host,
            interval,
            heartbeat_dir,
            require_mount,
            storage,
        } => {
            let require_mount = parse_bool("require_mount", &require_mount).unwrap_or(true);
            writer::run(WriterConfig {
                state: StateFiles::new(&state_dir, &instance),
                host,
                interval: Duration::from_secs(interval.max(1)),
                heartbeat_dir,
                require_mount,
                storage,
            })
        }
        Tool::ReadHeartbeat {
            file,
            require_mount_of,
        } => {
            let report = read_report(&file, require_mount_of.as_deref());
            println!(
                "{}",
                serde_json::to_string(&report).expect("report serialises")
            );
            std::process::exit(0);
        }
    }
}
