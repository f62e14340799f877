//! hactl-kvm: the KVM host HA coordinator's command line (argument
//! definitions; `main.rs` runs them).
//!
//! A thin shell over the library crates: it parses arguments, calls
//! `hactl_sim`, prints, and maps the outcome to an exit status
//! (0 all invariants held, 1 an invariant was violated, 2 bad arguments).

use clap::{ArgGroup, CommandFactory, Parser, Subcommand};

pub mod control_cmd;
pub mod journal_cmd;

#[derive(Parser, Debug)]
#[command(
    name = "hactl-kvm",
    version,
    about = "KVM host HA and fencing coordinator",
    long_about = "KVM host HA and fencing coordinator.\n\n\
        The `run` command is the coordinator service; `check-config` validates its \
        configuration and reaches every peer once; `simulate` runs the real decision \
        core against a simulated data center on a virtual clock and checks its \
        safety invariants."
)]
pub struct Cli {
    #[command(subcommand)]
    /// The subcommand.
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the decision core against a deterministic simulated data center.
    ///
    /// Exit status: 0 when every invariant held, 1 when any was violated,
    /// 2 on bad arguments.
    #[command(group(
        ArgGroup::new("mode")
            .required(true)
            .args(["scenario", "random", "list", "bench"])
    ))]
    Simulate(SimulateArgs),

    /// Run the coordinator as a service against CloudStack, the BMCs and
    /// the shared storage (SIGTERM stops it, SIGHUP reloads the configuration).
    ///
    /// Exit status: 0 after a clean stop, 1 when it cannot start or fails.
    Run(RunArgs),

    /// Validate the configuration and secrets, reach the CloudStack API once
    /// and every BMC once (power status only) and print what was found.
    ///
    /// Exit status: 0 only if everything was reachable; 1 otherwise.
    CheckConfig(ConfigArgs),

    /// Internal: read one heartbeat file (the `local` activity check runs
    /// this in a child process so a hung mount cannot hold the daemon).
    #[command(hide = true)]
    ReadHeartbeat {
        /// The heartbeat file.
        #[arg(long)]
        file: std::path::PathBuf,
        /// Require this storage to be a mount point.
        #[arg(long)]
        require_mount_of: Option<std::path::PathBuf>,
    },

    /// Verify, dump or compact a stopped daemon's journal (offline).
    Journal(journal_cmd::JournalArgs),

    #[command(flatten)]
    Control(control_cmd::ControlCommand),
}

/// `--config FILE`.
#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    /// The configuration file.
    #[arg(long, value_name = "FILE", default_value = "/etc/hactl-kvm/hactl.toml")]
    pub config: std::path::PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Start as standby: keep the journal, drive nothing, act on nothing
    /// until promoted (`hactl-kvm role promote`). With quorum = "corosync"
    /// every instance starts standby anyway.
    #[arg(long)]
    pub standby: bool,
}

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Run one built-in scenario (see --list).
    #[arg(long, value_name = "NAME")]
    pub scenario: Option<String>,

    /// Run a sweep of seeded random fault schedules.
    #[arg(long, requires = "seeds")]
    pub random: bool,

    /// Name every built-in scenario with a one-line description.
    #[arg(long)]
    pub list: bool,

    /// Run the large benchmark (10,000 hosts, 500 clusters, 24 h virtual,
    /// background faults) and print wall time, peak RSS and events/s.
    #[arg(long)]
    pub bench: bool,

    /// Seed of the run (same seed, same run).
    #[arg(long, default_value_t = 1, conflicts_with_all = ["random", "list"])]
    pub seed: u64,

    /// Number of random seeds to run (with --random).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: Option<u64>,

    /// First seed of a random sweep (with --random).
    #[arg(long, value_name = "S", default_value_t = 0, requires = "random")]
    pub first_seed: u64,

    /// Number of hosts (scenario default when omitted; 5 for --random).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(3..=100_000), conflicts_with = "list")]
    pub hosts: Option<u64>,

    /// With --random: seed S runs on HOSTS + S % (MAX - HOSTS + 1) hosts.
    #[arg(long, value_name = "MAX", requires = "random",
          value_parser = clap::value_parser!(u64).range(3..=100_000))]
    pub max_hosts: Option<u64>,

    /// Fault classes a random schedule draws from, comma-separated
    /// (default: all). `--list` names them.
    #[arg(long, value_name = "LIST", requires = "random", default_value = "all")]
    pub faults: String,

    /// Virtual hours the benchmark simulates (with --bench).
    #[arg(long, value_name = "H", default_value_t = 24, requires = "bench",
          value_parser = clap::value_parser!(u64).range(1..=720))]
    pub virtual_hours: u64,

    /// Print a JSON summary instead of the timeline.
    #[arg(long, conflicts_with = "list")]
    pub json: bool,

    /// UNSAFE, for demonstrating the invariant checker only: run the core
    /// with its quorum gate switched off.
    #[arg(long, hide = true, requires = "scenario")]
    pub no_quorum_gate: bool,

    /// Coordinator instances: 1 (the single coordinator) or 2-3 (each a
    /// core, a replica and a journal, with CPG, quorum and Pacemaker
    /// promotion simulated; instance faults join the random schedules).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=3),
          conflicts_with_all = ["bench", "no_quorum_gate"])]
    pub coordinators: u64,
}

/// The whole command line as a `clap::Command` (man pages and shell
/// completions are generated from it).
pub fn command() -> clap::Command {
    Cli::command()
}
