//! The agent against Debian's own OCF tooling: `ocf-tester` (which validates
//! the meta-data against ra-api-1.dtd and runs the full action sequence,
//! including meta-data as user nobody) and `xmllint` with both schemas.

mod common;

use common::*;
use test_support::ocf;

#[test]
fn ocf_tester_passes() {
    require("ocf-tester", "resource-agents");
    require("xmllint", "libxml2-utils");
    let f = Fixture::new(1);
    let copy = agent_copy();
    let agent = copy.path.to_str().unwrap();
    let out = ocf::ocf_tester(&copy.path, "kvm-host-ocft", &f.params, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("{agent} passed all tests")),
        "ocf-tester failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // ocf-tester's migrate/reload probes must not have left a writer behind.
    let pid_file = f.state_dir().join("kvm-host-kvm-host-ocft.pid");
    assert!(
        !pid_file.exists(),
        "ocf-tester run left {} behind",
        pid_file.display()
    );
}

#[test]
fn metadata_is_valid_against_the_dtd_and_resource_agents_rng() {
    ocf::assert_metadata_valid(ocf::metadata(AGENT));
}

#[test]
fn metadata_runs_as_an_unprivileged_user_without_environment() {
    // Pacemaker runs meta-data as hacluster, ocf-tester as nobody.
    let agent = agent_copy();
    ocf::assert_metadata_as_nobody(&agent.path, &ocf::metadata(AGENT));
}
