//! fence_redfish: a native Redfish fence agent, drop-in for fence-agents' fence_redfish.

fn main() -> std::process::ExitCode {
    fence_agent::run::main(&fence_redfish::RedfishAgent)
}
