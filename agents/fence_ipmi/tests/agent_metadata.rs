//! `fence_ipmi`'s metadata: valid against fence-agents' metadata.rng (xmllint), and a superset
//! of the live `fence_ipmilan -o metadata` with identical types, defaults, choices,
//! deprecated/obsoletes pairs and actions. Also help, version and the alias names.

mod agent_common;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use agent_common::*;
use quick_xml::events::Event;
use quick_xml::Reader;

const RNG: &str = "/usr/share/cluster/relaxng/metadata.rng";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct ParamInfo {
    content_type: String,
    default: Option<String>,
    deprecated: Option<String>,
    obsoletes: Option<String>,
    required: String,
    choices: Vec<String>,
}

#[derive(Debug, Default)]
struct Meta {
    name: String,
    params: BTreeMap<String, ParamInfo>,
    actions: Vec<(String, Option<String>)>,
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.try_get_attribute(name).unwrap().map(|a| {
        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .unwrap()
            .into_owned()
    })
}

fn parse(xml: &str) -> Meta {
    let mut r = Reader::from_str(xml);
    let mut m = Meta::default();
    let mut current: Option<String> = None;
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"resource-agent" => m.name = attr(&e, "name").unwrap(),
                b"parameter" => {
                    let name = attr(&e, "name").unwrap();
                    m.params.insert(
                        name.clone(),
                        ParamInfo {
                            deprecated: attr(&e, "deprecated"),
                            obsoletes: attr(&e, "obsoletes"),
                            required: attr(&e, "required").unwrap(),
                            ..Default::default()
                        },
                    );
                    current = Some(name);
                }
                b"content" => {
                    let p = m.params.get_mut(current.as_ref().unwrap()).unwrap();
                    p.content_type = attr(&e, "type").unwrap();
                    p.default = attr(&e, "default");
                }
                b"option" => {
                    let p = m.params.get_mut(current.as_ref().unwrap()).unwrap();
                    p.choices.push(attr(&e, "value").unwrap());
                }
                b"action" => m
                    .actions
                    .push((attr(&e, "name").unwrap(), attr(&e, "automatic"))),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    m
}

fn metadata_of(binary: &Path, args: &[&str]) -> String {
    let out = Command::new(binary).args(args).output().expect("run agent");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn reference_metadata() -> String {
    let agent = test_support::require("fence_ipmilan", "fence-agents");
    let out = Command::new(agent)
        .args(["-o", "metadata"])
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .expect("run fence_ipmilan");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn metadata_validates_against_fence_agents_schema() {
    let xmllint = test_support::require("xmllint", "libxml2-utils");
    assert!(
        Path::new(RNG).exists(),
        "{RNG} is missing: apt-get install fence-agents"
    );
    let dir = tempfile::tempdir().unwrap();
    for name in ["fence_ipmi", "fence_ilo3"] {
        let bin = dir.path().join(name);
        std::os::unix::fs::symlink(binary(), &bin).unwrap();
        let file = dir.path().join(format!("{name}.xml"));
        std::fs::write(&file, metadata_of(&bin, &["-o", "metadata"])).unwrap();
        let out = Command::new(&xmllint)
            .args(["--noout", "--relaxng", RNG])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name} metadata does not validate:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn metadata_is_a_superset_of_fence_ipmilan() {
    let reference = parse(&reference_metadata());
    let ours = parse(&metadata_of(&binary(), &["-o", "metadata"]));
    assert!(
        reference.params.len() > 30,
        "reference metadata parse failed"
    );
    for (name, want) in &reference.params {
        let got = ours
            .params
            .get(name)
            .unwrap_or_else(|| panic!("parameter {name} missing from fence_ipmi metadata"));
        assert_eq!(got, want, "parameter {name} differs");
    }
    let extra: Vec<&String> = ours
        .params
        .keys()
        .filter(|k| !reference.params.contains_key(*k))
        .collect();
    assert_eq!(
        extra,
        ["allow_cipher_zero", "allow_unauthenticated"],
        "unexpected extra parameters"
    );
    assert_eq!(ours.actions, reference.actions);
}

#[test]
fn metadata_through_stdin_and_manpage_is_the_same() {
    let argv = metadata_of(&binary(), &["-o", "metadata"]);
    let r = run_stdin("action=meta-data\n");
    r.assert(0, &argv);
    let r = run_stdin("action=metadata\n");
    r.assert(0, &argv);
    assert_eq!(metadata_of(&binary(), &["-o", "manpage"]), argv);
    // Metadata needs no address and ignores bad values, as fencing.py.
    run_stdin("action=metadata\npower_timeout=abc\n").assert(0, &argv);
}

#[test]
fn alias_names_change_name_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let reference = parse(&reference_metadata());
    for (alias, lanplus, power_wait) in [
        ("fence_ilo3", "1", "4"),
        ("fence_ipmilanplus", "1", "2"),
        ("fence_idrac", "0", "2"),
        ("fence_ipmilan", "0", "2"),
    ] {
        let bin = dir.path().join(alias);
        std::os::unix::fs::symlink(binary(), &bin).unwrap();
        let m = parse(&metadata_of(&bin, &["-o", "metadata"]));
        assert_eq!(m.name, alias);
        assert_eq!(
            m.params["lanplus"].default.as_deref(),
            Some(lanplus),
            "{alias}"
        );
        assert_eq!(
            m.params["power_wait"].default.as_deref(),
            Some(power_wait),
            "{alias}"
        );
        if alias == "fence_ipmilan" {
            assert_eq!(m.params, {
                let mut p = reference.params.clone();
                let ours = parse(&metadata_of(&binary(), &["-o", "metadata"])).params;
                for extra in ["allow_cipher_zero", "allow_unauthenticated"] {
                    p.insert(extra.into(), ours[extra].clone());
                }
                p
            });
        }
    }
}

#[test]
fn help_and_version() {
    let r = run_args(&["--help"]);
    assert_eq!(r.code, 0);
    assert!(r
        .stdout
        .starts_with("Usage:\n\tfence_ipmi [options]\nOptions:\n"));
    for opt in [
        "-a, --ip=[ip]",
        "--lanplus",
        "--allow-cipher-zero",
        "--power-timeout=[seconds]",
    ] {
        assert!(r.stdout.contains(opt), "--help lacks {opt}:\n{}", r.stdout);
    }
    let r = run_args(&["-V"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout.trim(), env!("CARGO_PKG_VERSION"));
}
