//! The library's metadata, for a table using every standard parameter, validates against
//! fence-agents' own RelaxNG schema (`xmllint --relaxng`).

use std::process::Command;

use fence_agent::metadata::{render, AgentDocs};
use fence_agent::param::std_params::*;
use fence_agent::{Action, Param, ParamKind};

const RNG: &str = "/usr/share/cluster/relaxng/metadata.rng";

fn xmllint_validates(xml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("meta.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("xmllint")
        .args(["--noout", "--relaxng", RNG])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run xmllint ({e}): apt-get install libxml2-utils"));
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn docs(actions: Vec<Action>) -> AgentDocs {
    AgentDocs {
        name: "fence_test".into(),
        shortdesc: "Fence agent for <tests> & \"quotes\"".into(),
        longdesc: "A longer text with 'quotes' & <angle brackets>.".into(),
        vendor_url: "https://example.invalid/".into(),
        symlinks: vec![("fence_test2".into(), "Alias".into())],
        actions,
    }
}

#[test]
fn every_standard_parameter_validates() {
    assert!(
        std::path::Path::new(RNG).exists(),
        "{RNG} is missing: apt-get install fence-agents"
    );
    let mut params = COMMON.to_vec();
    params.extend([
        IP,
        IPPORT.default("623"),
        USERNAME,
        PASSWORD,
        PASSWORD_SCRIPT,
        PLUG_AS_IP,
        PORT_AS_IP,
        METHOD,
        USE_SUDO,
        SUDO_PATH,
        Param::new("flavour", ParamKind::Select(&["a&b", "c\"d"]), "select <x>").default("a&b"),
    ]);
    let xml = render(&docs(Action::ALL.to_vec()), &params);
    xmllint_validates(&xml).unwrap();
}

#[test]
fn the_schema_check_catches_invalid_metadata() {
    // The validator really validates: metadata without any action is rejected.
    let xml = render(&docs(vec![]), &[IP]);
    assert!(xmllint_validates(&xml).is_err());
}
