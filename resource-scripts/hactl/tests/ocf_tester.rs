//! The agent against Debian's own OCF tooling: `ocf-tester` (meta-data
//! against ra-api-1.dtd, meta-data as user nobody, and the full action
//! sequence including promote/demote) with the control double as the
//! daemon, and `xmllint` with both schemas.

mod common;

use common::*;
use test_support::ocf;

#[test]
fn ocf_tester_passes_with_promote_and_demote() {
    require("ocf-tester", "resource-agents");
    require("xmllint", "libxml2-utils");
    let f = Fixture::new("");
    let copy = bin_copy(AGENT, "hactl");
    let agent = copy.path.to_str().unwrap();
    let out = ocf::ocf_tester(&copy.path, "hactl-ocft", &f.params, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("{agent} passed all tests")),
        "ocf-tester failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // It exercised the promotable-clone actions (not "optional, unsupported").
    assert!(
        !stdout.contains("does not support promotable clones"),
        "{stdout}"
    );
    assert!(!stdout.contains("partially supports"), "{stdout}");
    // ...and the daemon really was asked, in ocf-tester 4.12's order: its
    // probes of demote and promote, then demote, promote, demote, demote
    // again, promote, promote again, demote.
    let asked = f.set_role_requests();
    assert_eq!(
        asked,
        [
            "SetRole Standby",
            "SetRole Active",
            "SetRole Standby",
            "SetRole Active",
            "SetRole Standby",
            "SetRole Standby",
            "SetRole Active",
            "SetRole Active",
            "SetRole Standby"
        ],
        "{stdout}"
    );
    assert!(!f.pid_file().exists(), "ocf-tester left a daemon running");
}

#[test]
fn metadata_is_valid_against_the_dtd_and_resource_agents_rng() {
    ocf::assert_metadata_valid(ocf::metadata(AGENT));
}

#[test]
fn metadata_runs_as_an_unprivileged_user_without_environment() {
    let agent = bin_copy(AGENT, "hactl");
    ocf::assert_metadata_as_nobody(&agent.path, &ocf::metadata(AGENT));
}
