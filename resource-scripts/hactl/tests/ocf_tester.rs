//! The agent against Debian's own OCF tooling: `ocf-tester` (meta-data
//! against ra-api-1.dtd, meta-data as user nobody, and the full action
//! sequence including promote/demote) with the control double as the
//! daemon, and `xmllint` with both schemas.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn ocf_tester_passes_with_promote_and_demote() {
    let tester = require("ocf-tester", "resource-agents");
    require("xmllint", "libxml2-utils");
    let f = Fixture::new("");
    let copy = bin_copy(AGENT, "hactl");
    let agent = copy.path.to_str().unwrap();
    let mut cmd = Command::new(tester);
    cmd.arg("-v").arg("-n").arg("hactl-ocft");
    for (k, v) in &f.params {
        cmd.arg("-o").arg(format!("{k}={v}"));
    }
    let out = cmd
        .arg(agent)
        .env("HA_LOGFACILITY", "none")
        .output()
        .unwrap();
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

fn metadata() -> Vec<u8> {
    let out = Command::new(AGENT)
        .arg("meta-data")
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    out.stdout
}

fn xmllint(args: &[&str], input: &[u8]) -> (bool, String) {
    let mut child = Command::new(require("xmllint", "libxml2-utils"))
        .args(args)
        .arg("-")
        .current_dir("/usr/share/resource-agents")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn metadata_is_valid_against_the_dtd_and_resource_agents_rng() {
    let rng = std::path::Path::new("/usr/share/resource-agents/metadata.rng");
    assert!(
        rng.exists(),
        "{} missing: apt-get install -y resource-agents",
        rng.display()
    );
    let xml = metadata();
    let (ok, err) = xmllint(&["--noout", "--valid"], &xml);
    assert!(ok, "ra-api-1.dtd rejects the meta-data: {err}");
    let without_doctype: Vec<u8> = String::from_utf8(xml)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("DOCTYPE"))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes();
    let (ok, err) = xmllint(
        &["--noout", "--relaxng", rng.to_str().unwrap()],
        &without_doctype,
    );
    assert!(ok, "metadata.rng rejects the meta-data: {err}");
}

#[test]
fn metadata_runs_as_an_unprivileged_user_without_environment() {
    let agent = bin_copy(AGENT, "hactl");
    let out = Command::new("su")
        .args(["nobody", "-s", "/bin/sh", "-c"])
        .arg(format!("env -i {} meta-data", agent.path.display()))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, metadata());
}
