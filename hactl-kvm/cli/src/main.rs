//! hactl-kvm: the KVM host HA coordinator's command line.
//!
//! A thin shell over the library crates: it parses arguments, calls
//! `hactl_sim` / `hactl_runtime`, prints, and maps the outcome to an exit
//! status (simulate: 0 all invariants held, 1 an invariant was violated,
//! 2 bad arguments).

use clap::Parser;
use hactl_kvm_cli::{Cli, Command, SimulateArgs};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate(args) => simulate(args),
        Command::Run(args) => run(&args.config.config, args.standby),
        Command::CheckConfig(args) => check_config(&args.config),
        Command::Journal(args) => hactl_kvm_cli::journal_cmd::run(args),
        Command::Control(cmd) => hactl_kvm_cli::control_cmd::run(cmd),
        Command::ReadHeartbeat {
            file,
            require_mount_of,
        } => {
            println!(
                "{}",
                hactl_runtime::read_heartbeat_report(&file, require_mount_of.as_deref())
            );
            ExitCode::SUCCESS
        }
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
        println!("with --coordinators 2 or 3 (and every scenario above that does not fault the single coordinator itself):");
        for (name, what) in hactl_sim::CLUSTER_SCENARIOS {
            println!("{name:<width$}  {what}");
        }
        let classes: Vec<&str> = hactl_sim::FAULT_CLASSES.iter().map(|(_, n)| *n).collect();
        println!(
            "fault classes for --random --faults LIST: {}",
            classes.join(", ")
        );
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
        let classes = match hactl_sim::parse_fault_classes(&args.faults) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("hactl-kvm simulate: {e}");
                return ExitCode::from(2);
            }
        };
        let max_hosts = args.max_hosts.map_or(hosts, |m| m as usize);
        if max_hosts < hosts {
            eprintln!("hactl-kvm simulate: --max-hosts ({max_hosts}) is below --hosts ({hosts})");
            return ExitCode::from(2);
        }
        let instances = args.coordinators as usize;
        let breaks = hactl_sim::ClusterBreaks::default();
        if seeds == 1 {
            // A single seed is a replay: show it like a named scenario.
            let n = hosts + (args.first_seed % (max_hosts - hosts + 1) as u64) as usize;
            let rep = if instances > 1 {
                match hactl_sim::run_cluster_random(
                    args.first_seed,
                    n,
                    instances,
                    &classes,
                    breaks,
                    !args.json,
                ) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("hactl-kvm simulate: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                hactl_sim::run_random_with(args.first_seed, n, &classes, !args.json)
            };
            return report_run(&rep, args.json);
        }
        let rep = if instances > 1 {
            match hactl_sim::sweep_cluster(
                args.first_seed,
                seeds,
                hosts..=max_hosts,
                instances,
                &classes,
                breaks,
            ) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("hactl-kvm simulate: {e}");
                    return ExitCode::from(2);
                }
            }
        } else {
            hactl_sim::sweep_with(args.first_seed, seeds, hosts..=max_hosts, &classes)
        };
        if args.json {
            print_json(&rep);
        } else {
            if instances > 1 {
                println!("{instances} coordinator instances (replicated journal, Pacemaker promotion, instance faults): {} promotions, {} log compactions, {} snapshot transfers", rep.promotions, rep.compactions, rep.snapshot_transfers);
            }
            println!(
                "random sweep: seeds {}..{} on {} hosts: {} fences ({} raced a host resuming after the last look), {} dead hosts recovered, max time to recovery {}",
                rep.first_seed,
                rep.first_seed + rep.seeds,
                if rep.max_hosts > rep.hosts {
                    format!("{}-{}", rep.hosts, rep.max_hosts)
                } else {
                    rep.hosts.to_string()
                },
                rep.fences,
                rep.fence_races,
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
                    "replay one with: hactl-kvm simulate --random --seeds 1 --first-seed SEED \
                     (with the same --hosts/--max-hosts/--faults/--coordinators)"
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
    let instances = args.coordinators as usize;
    let rep = if instances > 1 {
        hactl_sim::run_cluster_scenario(
            name,
            args.seed,
            hosts,
            instances,
            hactl_sim::ClusterBreaks::default(),
            !args.json,
        )
    } else {
        run(name, args.seed, hosts, !args.json)
    };
    let rep = match rep {
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HACTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime starts")
}

fn run(config: &std::path::Path, standby: bool) -> ExitCode {
    init_logging();
    let opts = hactl_runtime::daemon::StartOptions { standby };
    let daemon = match hactl_runtime::Daemon::start_with(config, opts) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("hactl-kvm run: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime().block_on(daemon.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hactl-kvm run: {e}");
            ExitCode::from(1)
        }
    }
}

fn check_config(config: &std::path::Path) -> ExitCode {
    match runtime().block_on(hactl_runtime::check::check_config(config)) {
        Ok(report) => {
            print!("{report}");
            if report.all_reachable() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("hactl-kvm check-config: {e}");
            ExitCode::from(1)
        }
    }
}
