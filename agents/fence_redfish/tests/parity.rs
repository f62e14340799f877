//! Parity with Debian's `fence_redfish` (fence-agents 4.12.1): a table of inputs, each run by
//! the reference and by ours against sushy-emulator in the same initial state (a fresh emulator
//! per agent when the input changes power), comparing exit code, stdout and the power state of
//! every system afterwards as the emulator reports it. Rows marked `Differs` are deliberate and
//! say why; for them ours must give exactly the stated result (and the reference must differ).
//!
//! The table is rendered to `docs/fence_redfish-parity.md`; `parity_doc_is_current` fails when
//! the file is stale (regenerate with `UPDATE_PARITY_DOC=1 cargo test -p fence_redfish --test parity`).

mod common;
use std::path::Path;
use std::time::Duration;

use common::*;
use test_support::{FakeSystem, SushyEmulator};

#[derive(Clone, Copy)]
enum Input {
    Argv(&'static str),
    Stdin(&'static str),
}

#[derive(Clone, Copy)]
enum Expect {
    Same,
    /// Ours gives (rc, stdout, powers after); why.
    Differs(i32, &'static str, &'static str, &'static str),
}

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    /// Initial power of each system (`on`/`off`); two entries = two systems.
    systems: &'static [bool],
    input: Input,
    /// Whether the input may change power (then each agent gets its own emulator).
    changes_power: bool,
    /// Trust the test CA (REQUESTS_CA_BUNDLE for the reference, SSL_CERT_FILE for ours).
    trust_ca: bool,
    expect: Expect,
}

const fn case(
    name: &'static str,
    systems: &'static [bool],
    input: Input,
    changes_power: bool,
) -> Case {
    Case {
        name,
        systems,
        input,
        changes_power,
        trust_ca: true,
        expect: Expect::Same,
    }
}

const ON: &[bool] = &[true];
const OFF: &[bool] = &[false];
const TWO_ON: &[bool] = &[true, true];

// $A = --ip=127.0.0.1 --ipport={PORT} --username=admin --password={PW}; $S = the same as stdin lines.
const CASES: &[Case] = &[
    case("status when on", ON, Input::Argv("$A -o status"), false),
    case("status when off", OFF, Input::Stdin("$S\naction=status"), false),
    case("off when on", ON, Input::Argv("$A -o off"), true),
    case("off when off", OFF, Input::Stdin("$S\naction=off"), true),
    case("on when off", OFF, Input::Argv("$A -o on"), true),
    case("on when on", ON, Input::Stdin("$S\naction=on"), true),
    case("reboot when on", ON, Input::Argv("$A -o reboot"), true),
    case("reboot when off", OFF, Input::Stdin("$S\naction=reboot"), true),
    case("default action (reboot) from stdin", ON, Input::Stdin("$S"), true),
    case("monitor", OFF, Input::Argv("$A -o monitor"), false),
    case("validate-all", ON, Input::Argv("$A -o validate-all"), false),
    case("ip:port form", ON, Input::Stdin("ip=127.0.0.1:{PORT}\nusername=admin\npassword={PW}\naction=status"), false),
    case("old names (ipaddr, login, passwd, systems-uri)", ON, Input::Stdin("ipaddr=127.0.0.1\nipport={PORT}\nlogin=admin\npasswd={PW}\nsystems-uri={URI1}\naction=status"), false),
    case("systems_uri by name (the emulator answers 307)", ON, Input::Argv("$A --systems-uri=/redfish/v1/Systems/node1 -o status"), false),
    case("plug (node name from Pacemaker) with one system", ON, Input::Stdin("$S\nport=node1\naction=off"), true),
    case("wrong password", ON, Input::Argv("--ip=127.0.0.1 --ipport={PORT} --username=admin --password=wrong -o off"), true),
    case("unknown systems_uri", ON, Input::Argv("$A --systems-uri=/redfish/v1/Systems/nope -o off"), true),
    case("systems_uri picks the first of two", TWO_ON, Input::Argv("$A --systems-uri={URI1} -o off"), true),
    Case { trust_ca: false, ..case("untrusted certificate", ON, Input::Argv("$A -o off"), true) },
    Case { trust_ca: false, ..case("untrusted certificate with ssl_insecure", ON, Input::Stdin("$S\nssl_insecure=1\naction=status"), false) },
    case("no username", ON, Input::Stdin("ip=127.0.0.1\nipport={PORT}\npassword={PW}\naction=status"), false),
    Case {
        expect: Expect::Differs(1, "", "on, on", "fence-agents silently fences the LAST system of the collection; ours refuses and lists the systems (use systems_uri or plug)"),
        ..case("two systems, no systems_uri", TWO_ON, Input::Argv("$A -o off"), true)
    },
    Case {
        expect: Expect::Differs(1, "", "on", "sushy answers 501 to Nmi; fence-agents never checks the reset's HTTP status and prints Success; ours reports the BMC's refusal"),
        ..case("diag (501 Not Implemented)", ON, Input::Argv("$A -o diag"), true)
    },
    Case {
        expect: Expect::Differs(0, "27946b59-9e44-4fa7-8e91-f3527a1e0001,node1\n27946b59-9e44-4fa7-8e91-f3527a1e0002,node2\n", "on, on", "ours lists the systems (Id, Name); not advertised in the metadata, so Pacemaker never uses it for host lists"),
        ..case("list", TWO_ON, Input::Argv("$A -o list"), false)
    },
    Case {
        expect: Expect::Differs(1, "", "on", "a stdin line without '=': fence-agents warns and runs the default action, reboot; ours refuses malformed input and changes nothing"),
        ..case("malformed stdin line", ON, Input::Stdin("$S\naction status"), true)
    },
];

fn reference() -> std::path::PathBuf {
    test_support::require("fence_redfish", "fence-agents python3-requests")
}

fn systems_of(c: &Case) -> Vec<FakeSystem> {
    c.systems
        .iter()
        .enumerate()
        .map(|(i, on)| FakeSystem::new(i as u32 + 1, &format!("node{}", i + 1), *on))
        .collect()
}

fn expand(text: &str, emu: &SushyEmulator) -> String {
    let a = "--ip=127.0.0.1 --ipport={PORT} --username=admin --password={PW}";
    let s = "ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword={PW}";
    text.replace("$A", a)
        .replace("$S", s)
        .replace("{PORT}", &emu.port().to_string())
        .replace("{PW}", &emu.password)
        .replace("{URI1}", &emu.systems[0].uri())
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    code: i32,
    stdout: String,
    powers: String,
}

fn run_on(program: &Path, c: &Case, emu: &SushyEmulator) -> (Outcome, String) {
    let mut env = Vec::new();
    if c.trust_ca {
        let ca = emu.ca_file().display().to_string();
        env.push(("REQUESTS_CA_BUNDLE", ca.clone()));
        env.push(("SSL_CERT_FILE", ca));
    } else {
        // An empty bundle: neither agent trusts the test CA.
        env.push(("SSL_CERT_FILE", "/nonexistent".to_string()));
    }
    let r = match c.input {
        Input::Argv(a) => {
            let argv: Vec<String> = expand(a, emu)
                .split_whitespace()
                .map(String::from)
                .collect();
            run_program(program, &argv, None, &env)
        }
        Input::Stdin(s) => run_program(program, &[], Some(&format!("{}\n", expand(s, emu))), &env),
    };
    // Let a pending change of the emulator's fake driver (1 s) apply before judging.
    if c.changes_power {
        std::thread::sleep(Duration::from_millis(1500));
    }
    let powers = emu
        .systems
        .iter()
        .map(|s| emu.power_state(s).to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(", ");
    assert!(
        !r.stderr.contains(&emu.password) || program != binary(),
        "password leaked"
    );
    (
        Outcome {
            code: r.code,
            stdout: r.stdout,
            powers,
        },
        r.stderr,
    )
}

fn run_case(c: &Case) -> (Outcome, Outcome) {
    let emu = SushyEmulator::with_systems(systems_of(c));
    let (theirs, _) = run_on(&reference(), c, &emu);
    let fresh;
    let emu2 = if c.changes_power {
        fresh = SushyEmulator::with_systems(systems_of(c));
        &fresh
    } else {
        &emu
    };
    let (ours, stderr) = run_on(&binary(), c, emu2);
    if ours.code == 1 {
        assert!(
            !stderr.trim().is_empty(),
            "{}: a failure of ours must explain itself",
            c.name
        );
    }
    (theirs, ours)
}

fn cell(o: &Outcome) -> String {
    let out = if o.stdout.trim().is_empty() {
        "(empty)".to_string()
    } else {
        format!("`{}`", o.stdout.trim().replace('\n', "` `"))
    };
    format!("{} \\| {} \\| {}", o.code, out, o.powers)
}

fn input_text(i: Input) -> String {
    match i {
        Input::Argv(a) => format!("argv `{a}`"),
        Input::Stdin(s) => format!("stdin `{}`", s.replace('\n', " ")),
    }
}

fn render(rows: &[(Case, Outcome, Outcome)]) -> String {
    let mut s = String::from(
        "# fence_redfish parity with fence-agents' fence_redfish 4.12.1\n\n\
         Generated from the table in `agents/fence_redfish/tests/parity.rs` \
         (`UPDATE_PARITY_DOC=1 cargo test -p fence_redfish --test parity`). Each row runs Debian's \
         `fence_redfish` and ours against sushy-emulator (fake driver, TLS, basic auth) in the same \
         initial state and compares exit code, stdout and the power state of every system \
         afterwards as the emulator reports it. Rows marked **differs** are deliberate.\n\n\
         `$A` = `--ip=127.0.0.1 --ipport={PORT} --username=admin --password={PW}`; `$S` = the same as \
         stdin lines. The test CA is trusted through the environment (`REQUESTS_CA_BUNDLE` / \
         `SSL_CERT_FILE`) except in the \"untrusted certificate\" rows.\n\n\
         | case | systems before | input | fence_redfish rc \\| stdout \\| power after | ours |\n|---|---|---|---|---|\n",
    );
    for (c, theirs, ours) in rows {
        let before = c
            .systems
            .iter()
            .map(|on| if *on { "on" } else { "off" })
            .collect::<Vec<_>>()
            .join(", ");
        let verdict = match c.expect {
            Expect::Same => "same".to_string(),
            Expect::Differs(_, _, _, why) => format!("**differs**: {} — {why}", cell(ours)),
        };
        s.push_str(&format!(
            "| {} | {before} | {} | {} | {verdict} |\n",
            c.name,
            input_text(c.input),
            cell(theirs)
        ));
    }
    s
}

#[test]
fn parity_with_fence_redfish() {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    // Two cases at a time: most of the time is waiting for the emulator.
    for pair in CASES.chunks(2) {
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = pair.iter().map(|c| s.spawn(move || run_case(c))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("case panicked"))
                .collect()
        });
        for (c, (theirs, ours)) in pair.iter().zip(results) {
            match c.expect {
                Expect::Same if theirs != ours => failures.push(format!(
                    "{}: fence_redfish {theirs:?}, ours {ours:?}",
                    c.name
                )),
                Expect::Differs(code, stdout, powers, _) => {
                    let want = Outcome {
                        code,
                        stdout: stdout.into(),
                        powers: powers.into(),
                    };
                    if ours != want || theirs == ours {
                        failures.push(format!(
                            "{}: expected ours {want:?} (and different from fence_redfish), got ours {ours:?}, fence_redfish {theirs:?}",
                            c.name
                        ));
                    }
                }
                _ => {}
            }
            rows.push((*c, theirs, ours));
        }
    }
    assert!(
        failures.is_empty(),
        "parity failures:\n{}",
        failures.join("\n")
    );
    let rendered = render(&rows);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/fence_redfish-parity.md");
    if std::env::var_os("UPDATE_PARITY_DOC").is_some() {
        std::fs::write(&path, &rendered).expect("write docs/fence_redfish-parity.md");
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == rendered,
        "{} is stale: run UPDATE_PARITY_DOC=1 cargo test -p fence_redfish --test parity",
        path.display()
    );
}
