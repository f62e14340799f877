//! hactl-kvm: the KVM host HA coordinator's command line.
//!
//! A thin shell over the library crates: it parses arguments, calls
//! `hactl_sim`, prints, and maps the outcome to an exit status
//! (0 all invariants held, 1 an invariant was violated, 2 bad arguments).

use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};

mod control_cmd;
mod journal_cmd;

#[derive(Parser, Debug)]
#[command(
    name = "hactl-kvm",
    version,
    about = "KVM host HA and fencing coordinator",
    long_about = "KVM host HA and fencing coordinator.\n\n\
        The `simulate` command runs the real decision core against a simulated data \
        center on a virtual clock and checks its safety invariants."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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

    /// Verify, dump or compact a stopped daemon's journal (offline).
    Journal(journal_cmd::JournalArgs),

    #[command(flatten)]
    Control(control_cmd::ControlCommand),
}

#[derive(clap::Args, Debug)]
struct SimulateArgs {
    /// Run one built-in scenario (see --list).
    #[arg(long, value_name = "NAME")]
    scenario: Option<String>,

    /// Run a sweep of seeded random fault schedules.
    #[arg(long, requires = "seeds")]
    random: bool,

    /// Name every built-in scenario with a one-line description.
    #[arg(long)]
    list: bool,

    /// Run the large benchmark (10,000 hosts, 500 clusters, 24 h virtual,
    /// background faults) and print wall time, peak RSS and events/s.
    #[arg(long)]
    bench: bool,

    /// Seed of the run (same seed, same run).
    #[arg(long, default_value_t = 1, conflicts_with_all = ["random", "list"])]
    seed: u64,

    /// Number of random seeds to run (with --random).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    seeds: Option<u64>,

    /// First seed of a random sweep (with --random).
    #[arg(long, value_name = "S", default_value_t = 0, requires = "random")]
    first_seed: u64,

    /// Number of hosts (scenario default when omitted; 5 for --random).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(3..=100_000), conflicts_with = "list")]
    hosts: Option<u64>,

    /// Virtual hours the benchmark simulates (with --bench).
    #[arg(long, value_name = "H", default_value_t = 24, requires = "bench",
          value_parser = clap::value_parser!(u64).range(1..=720))]
    virtual_hours: u64,

    /// Print a JSON summary instead of the timeline.
    #[arg(long, conflicts_with = "list")]
    json: bool,

    /// UNSAFE, for demonstrating the invariant checker only: run the core
    /// with its quorum gate switched off.
    #[arg(long, hide = true, requires = "scenario")]
    no_quorum_gate: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate(args) => simulate(args),
        Command::Journal(args) => journal_cmd::run(args),
        Command::Control(cmd) => control_cmd::run(cmd),
    }
}

fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("hactl-kvm: cannot encode the summary as JSON: {e}"),
    }
}

fn simulate(args: SimulateArgs) -> ExitCode {
    let hosts = args.hosts.map(|h| h as usize);
    if args.list {
        let width = hactl_sim::SCENARIOS
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(0);
        for (name, what) in hactl_sim::SCENARIOS {
            println!("{name:<width$}  {what}");
        }
        return ExitCode::SUCCESS;
    }
    if args.bench {
        let mut cfg = hactl_sim::BenchConfig::default();
        if let Some(h) = hosts {
            cfg.hosts = h;
        }
        cfg.seed = args.seed;
        cfg.virtual_hours = args.virtual_hours;
        let rep = hactl_sim::bench(&cfg);
        if args.json {
            print_json(&rep);
        } else {
            print!("{}", rep.human());
        }
        return if rep.violations == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    if args.random {
        let seeds = args.seeds.unwrap_or(1);
        let hosts = hosts.unwrap_or(5);
        if seeds == 1 {
            // A single seed is a replay: show it like a named scenario.
            let rep = hactl_sim::run_random(args.first_seed, hosts, !args.json);
            return report_run(&rep, args.json);
        }
        let rep = hactl_sim::sweep(args.first_seed, seeds, hosts);
        if args.json {
            print_json(&rep);
        } else {
            println!(
                "random sweep: seeds {}..{} on {} hosts: {} fences, {} dead hosts recovered, max time to recovery {}",
                rep.first_seed,
                rep.first_seed + rep.seeds,
                rep.hosts,
                rep.fences,
                rep.recoveries,
                rep.max_time_to_recovery_s.map(|v| format!("{v:.1} s")).unwrap_or_else(|| "n/a".into())
            );
            if rep.passed() {
                println!("invariants: all held on every seed");
            } else {
                println!(
                    "invariants: {} VIOLATED on seeds {:?}",
                    rep.violations.len(),
                    rep.failed_seeds
                );
                for v in &rep.violations {
                    println!(
                        "  seed {} at {:.1} s {:?} {}: {}",
                        v.seed,
                        v.violation.at_s,
                        v.violation.invariant,
                        v.violation.host.as_deref().unwrap_or("-"),
                        v.violation.detail
                    );
                }
                println!(
                    "replay one with: hactl-kvm simulate --random --seeds 1 --first-seed SEED"
                );
            }
        }
        return if rep.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    let name = args.scenario.as_deref().unwrap_or_default();
    let run = if args.no_quorum_gate {
        hactl_sim::run_scenario_without_quorum_gate
    } else {
        hactl_sim::run_scenario
    };
    let rep = match run(name, args.seed, hosts, !args.json) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hactl-kvm simulate: {e}");
            return ExitCode::from(2);
        }
    };
    report_run(&rep, args.json)
}

fn report_run(rep: &hactl_sim::RunReport, json: bool) -> ExitCode {
    if json {
        print_json(rep);
    } else {
        for l in &rep.timeline {
            println!("{l}");
        }
        println!();
        print!("{}", rep.human_summary());
    }
    if rep.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
