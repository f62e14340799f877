//! hactl-kvm: the KVM host HA coordinator's command line.
//!
//! Thin: parses the arguments with the library's parser and runs them (see the library's
//! docs for the exit statuses).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    hactl_kvm::run(hactl_kvm::Cli::parse())
}
