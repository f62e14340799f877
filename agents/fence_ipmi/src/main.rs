//! fence_ipmi: a native IPMI fence agent, drop-in for fence_ipmilan.

fn main() -> std::process::ExitCode {
    fence_agent::run::main(&fence_ipmi::IpmiAgent)
}
