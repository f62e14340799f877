//! fence_redfish's metadata: valid against fence-agents' metadata.rng (xmllint), and a superset
//! of the live `fence_redfish -o metadata` with identical types, defaults, required flags,
//! deprecated/obsoletes pairs and actions. Also help and version.

mod common;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
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

fn metadata_of(args: &[&str]) -> String {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run agent");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn reference_metadata() -> String {
    let agent = test_support::require("fence_redfish", "fence-agents python3-requests");
    let out = Command::new(agent)
        .args(["-o", "metadata"])
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .expect("run fence_redfish");
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
    let file = dir.path().join("fence_redfish.xml");
    std::fs::write(&file, metadata_of(&["-o", "metadata"])).unwrap();
    let out = Command::new(&xmllint)
        .args(["--noout", "--relaxng", RNG])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "metadata does not validate:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metadata_is_a_superset_of_fence_redfish() {
    let reference = parse(&reference_metadata());
    let ours = parse(&metadata_of(&["-o", "metadata"]));
    assert!(
        reference.params.len() > 30,
        "reference metadata parse failed"
    );
    assert_eq!(ours.name, reference.name);
    for (name, want) in &reference.params {
        let got = ours
            .params
            .get(name)
            .unwrap_or_else(|| panic!("parameter {name} missing from our metadata"));
        assert_eq!(got, want, "parameter {name} differs");
    }
    let extra: Vec<&String> = ours
        .params
        .keys()
        .filter(|k| !reference.params.contains_key(*k))
        .collect();
    assert_eq!(
        extra,
        ["auth_method", "ssl_ca_file"],
        "unexpected extra parameters"
    );
    assert_eq!(ours.actions, reference.actions);
}

#[test]
fn metadata_through_stdin_and_manpage_is_the_same() {
    let argv = metadata_of(&["-o", "metadata"]);
    let r = run_program(&binary(), &[], Some("action=meta-data\n"), &[]);
    r.assert(0, &argv);
    assert_eq!(metadata_of(&["-o", "manpage"]), argv);
}

#[test]
fn usage_errors_change_nothing_and_name_the_problem() {
    for (input, message) in [
        (
            "action=status\nip=127.0.0.1\npassword=x\n",
            "Failed: You have to set login name",
        ),
        (
            "action=status\nip=127.0.0.1\nusername=a\n",
            "Failed: You have to enter password or password script",
        ),
        (
            "action=status\nusername=a\npassword=x\n",
            "Failed: You have to enter fence address",
        ),
        (
            "action=status\nip=127.0.0.1:99999\nusername=a\npassword=x\n",
            "not a valid TCP port",
        ),
        (
            "action=status\nip=h\nusername=a\npassword=x\nsystems_uri=Systems/1\n",
            "not an absolute path",
        ),
        (
            "action=status\nip=h\nusername=a\npassword=x\nauth_method=kerberos\n",
            "valid choice for --auth-method",
        ),
        (
            "action=frobnicate\nip=h\nusername=a\npassword=x\n",
            "Unrecognised action 'frobnicate'",
        ),
    ] {
        let r = run_program(&binary(), &[], Some(input), &[]);
        r.assert(1, "");
        assert!(r.stderr.contains(message), "{input:?}: {}", r.stderr);
    }
    let r = args(&[
        "-a".into(),
        "h".into(),
        "-l".into(),
        "a".into(),
        "-p".into(),
        "x".into(),
        "-o".into(),
        "validate-all".into(),
    ]);
    r.assert(0, "");
}

#[test]
fn help_and_version() {
    let r = args(&["--help".to_string()]);
    assert_eq!(r.code, 0);
    for opt in [
        "-a, --ip=[ip]",
        "--ssl-insecure",
        "--systems-uri=[uri]",
        "--ssl-ca-file=[path]",
    ] {
        assert!(r.stdout.contains(opt), "--help lacks {opt}:\n{}", r.stdout);
    }
    let r = args(&["-V".to_string()]);
    assert_eq!((r.code, r.stdout.trim()), (0, env!("CARGO_PKG_VERSION")));
}
