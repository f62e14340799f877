//! hactl: the OCF resource agent that runs hactl-kvm as a promotable clone.
//!
//! Thin entry point: argv[1] is the OCF action; all logic is in the library.

use hactl_ocf::agent::Agent;
use hactl_ocf::ocf::{Action, OcfRc};
use kvm_host::log::Logger;
use kvm_host::ocf::{exit_reason_line, OcfEnv};
use std::time::Instant;

const USAGE: &str =
    "usage: hactl {start|stop|monitor|promote|demote|notify|meta-data|validate-all}";

fn main() {
    let started = Instant::now();
    let Some(name) = std::env::args().nth(1) else {
        eprintln!("{USAGE}");
        std::process::exit(OcfRc::ErrArgs.code());
    };
    let Some(action) = Action::parse(&name) else {
        eprintln!("{USAGE}");
        eprintln!(
            "{}",
            exit_reason_line(&format!("{name}: action not supported"))
        );
        std::process::exit(OcfRc::ErrUnimplemented.code());
    };
    match action {
        Action::MetaData => {
            print!("{}", hactl_ocf::metadata::metadata_xml());
            std::process::exit(0);
        }
        Action::Usage => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        _ => {}
    }
    let env = OcfEnv::from_lookup(|k| std::env::var_os(k));
    let log = Logger::for_agent("hactl", &env.instance, true);
    let lookup = |k: &str| std::env::var_os(k);
    let outcome = Agent {
        env,
        lookup: &lookup,
        log: &log,
        started,
    }
    .run(action);
    if let Some(reason) = &outcome.reason {
        eprintln!("{}", exit_reason_line(reason));
    }
    std::process::exit(outcome.rc.code());
}
