//! `fence_ipmi` driven by a real Pacemaker 2.1.5: discovery, metadata, validation, and a
//! `stonith_admin --reboot` that must really power-cycle an `ipmi_sim` BMC.
//!
//! Pacemaker finds stonith agents only as `/usr/sbin/fence_*`, so the tests install the built
//! binary there as a symlink for their duration ([`InstalledAgent`]), and remove it afterwards
//! only if they created it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use test_support::{require, Cluster, IpmiSim, PowerEvent, SimUser};

/// Where Pacemaker 2.1.5 looks for stonith agents.
const INSTALL_PATH: &str = "/usr/sbin/fence_ipmi";
/// A password distinctive enough to grep for in process lists and logs.
const PASSWORD: &str = "Pcmk-Parity-S3cret";
/// A wrong password for the failing device, just as distinctive.
const WRONG_PASSWORD: &str = "Pcmk-Wr0ng-Passw0rd";

fn our_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fence_ipmi"))
}

/// What this test process did to `/usr/sbin/fence_ipmi`, so it can undo exactly that.
enum Installed {
    /// The path already pointed at our binary: leave it alone.
    AlreadyOurs,
    /// We created the symlink: remove it.
    Created,
    /// A symlink to another build was there: put it back.
    Replaced(PathBuf),
}

/// `/usr/sbin/fence_ipmi` -> our binary while at least one test of this process needs it.
struct InstalledAgent;

static INSTALL_STATE: Mutex<(usize, Option<Installed>)> = Mutex::new((0, None));

impl InstalledAgent {
    fn install() -> InstalledAgent {
        let ours = our_binary();
        let mut state = INSTALL_STATE.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == 0 {
            let path = Path::new(INSTALL_PATH);
            let how = match std::fs::symlink_metadata(path) {
                Err(_) => Installed::Created,
                Ok(meta) if meta.file_type().is_symlink() => {
                    let target = std::fs::read_link(path).expect("read symlink");
                    if target == ours {
                        Installed::AlreadyOurs
                    } else {
                        Installed::Replaced(target)
                    }
                }
                Ok(_) => panic!(
                    "{INSTALL_PATH} is a regular file, not a symlink to a build: this test would \
                     exercise that instead of {}; move it away first",
                    ours.display()
                ),
            };
            if !matches!(how, Installed::AlreadyOurs) {
                swap_symlink(&ours, path);
            }
            state.1 = Some(how);
        }
        state.0 += 1;
        InstalledAgent
    }
}

/// Points `link` at `target` atomically (a new symlink renamed over the old path).
fn swap_symlink(target: &Path, link: &Path) {
    let tmp = link.with_file_name(format!(".fence_ipmi.test-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .unwrap_or_else(|e| panic!("cannot create {} (run as root): {e}", tmp.display()));
    std::fs::rename(&tmp, link)
        .unwrap_or_else(|e| panic!("cannot install {}: {e}", link.display()));
}

impl Drop for InstalledAgent {
    fn drop(&mut self) {
        let mut state = INSTALL_STATE.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        if state.0 == 0 {
            match state.1.take() {
                Some(Installed::Created) => {
                    let _ = std::fs::remove_file(INSTALL_PATH);
                }
                Some(Installed::Replaced(previous)) => {
                    swap_symlink(&previous, Path::new(INSTALL_PATH))
                }
                Some(Installed::AlreadyOurs) | None => {}
            }
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "rc={:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stonith_admin(args: &[&str]) -> Output {
    let program = require("stonith_admin", "pacemaker-cli-utils");
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run stonith_admin")
}

/// `name="..."` values of every `<element ...>` in `xml`, in document order.
fn names_of(xml: &str, element: &str) -> Vec<String> {
    let needle = format!("<{element} name=\"");
    xml.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &xml[i + needle.len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_string()
        })
        .collect()
}

fn xmllint(args: &[&str], stdin_xml: &str) -> Output {
    use std::io::Write;
    let program = require("xmllint", "libxml2-utils");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xmllint");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin_xml.as_bytes())
        .expect("feed xmllint");
    child.wait_with_output().expect("xmllint output")
}

/// Discovery, metadata and validation go through Pacemaker's own tools without a cluster.
#[test]
fn pacemaker_discovers_describes_and_validates_fence_ipmi() {
    let _agent = InstalledAgent::install();

    let installed = stonith_admin(&["--list-installed"]);
    assert!(installed.status.success(), "{}", text(&installed));
    assert!(
        String::from_utf8_lossy(&installed.stdout)
            .lines()
            .any(|l| l.trim() == "fence_ipmi"),
        "stonith_admin --list-installed does not list fence_ipmi:\n{}",
        text(&installed)
    );

    // Our raw metadata validates against the fence-agents schema.
    let raw = Command::new(our_binary())
        .args(["-o", "metadata"])
        .output()
        .expect("run fence_ipmi -o metadata");
    assert!(raw.status.success(), "{}", text(&raw));
    let raw_xml = String::from_utf8_lossy(&raw.stdout).into_owned();
    let rng = "/work/shared/reference/fence-agents-metadata.rng";
    let rng = if Path::new(rng).is_file() {
        rng.to_string()
    } else {
        "/usr/share/cluster/relaxng/metadata.rng".to_string()
    };
    assert!(
        Path::new(&rng).is_file(),
        "no fence-agents metadata schema found: apt-get install fence-agents"
    );
    let valid = xmllint(&["--noout", "--relaxng", &rng, "-"], &raw_xml);
    assert!(
        valid.status.success(),
        "fence_ipmi -o metadata does not validate against {rng}:\n{}",
        text(&valid)
    );

    // Pacemaker reads it (and rewrites it: required=0 on action/plug/port, start/stop added).
    let meta = stonith_admin(&["--metadata", "--agent", "fence_ipmi"]);
    assert!(meta.status.success(), "{}", text(&meta));
    let ours = String::from_utf8_lossy(&meta.stdout).into_owned();
    let wellformed = xmllint(&["--noout", "-"], &ours);
    assert!(
        wellformed.status.success(),
        "stonith_admin's metadata is not well-formed XML:\n{}",
        text(&wellformed)
    );
    assert!(
        ours.contains("<resource-agent name=\"fence_ipmi\""),
        "unexpected root element in:\n{ours}"
    );
    let reference = stonith_admin(&["--metadata", "--agent", "fence_ipmilan"]);
    assert!(
        reference.status.success(),
        "fence_ipmilan via stonith_admin (apt-get install fence-agents): {}",
        text(&reference)
    );
    let reference = String::from_utf8_lossy(&reference.stdout).into_owned();
    // allow_unauthenticated and its alias allow_cipher_zero are our deliberate extras (see
    // docs/fence_ipmi-parity.md).
    let ours_params: Vec<String> = names_of(&ours, "parameter")
        .into_iter()
        .filter(|p| p != "allow_cipher_zero" && p != "allow_unauthenticated")
        .collect();
    assert_eq!(
        ours_params,
        names_of(&reference, "parameter"),
        "Pacemaker sees different parameters for fence_ipmi and fence_ipmilan"
    );
    assert_eq!(
        names_of(&ours, "action"),
        names_of(&reference, "action"),
        "Pacemaker sees different actions for fence_ipmi and fence_ipmilan"
    );

    // validate-all through the fencer's library (stdin, dummy target node1).
    let sim = IpmiSim::start();
    let port = format!("ipport={}", sim.port());
    let ok = stonith_admin(&[
        "--validate",
        "--agent",
        "fence_ipmi",
        "-o",
        "ip=127.0.0.1",
        "-o",
        &port,
        "-o",
        "username=admin",
        "-o",
        "password=secret",
        "-o",
        "lanplus=1",
        "-o",
        "cipher=3",
    ]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("Validation of fence_ipmi succeeded"),
        "{}",
        text(&ok)
    );
    let bad = stonith_admin(&[
        "--validate",
        "--agent",
        "fence_ipmi",
        "-o",
        &port,
        "-o",
        "username=admin",
        "-o",
        "password=secret",
        "-o",
        "privlvl=king",
    ]);
    assert!(
        !bad.status.success(),
        "validation without ip and with privlvl=king passed: {}",
        text(&bad)
    );
    assert!(
        sim.events().is_empty(),
        "validation touched the BMC: {:?}",
        sim.events()
    );
}

/// Every process whose executable is our agent, with its command line and environment.
fn agent_processes(binary: &Path) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let exe = std::fs::read_link(entry.path().join("exe")).ok()?;
            if exe != binary {
                return None;
            }
            let mut seen = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            seen.extend(std::fs::read(entry.path().join("environ")).unwrap_or_default());
            Some((pid, String::from_utf8_lossy(&seen).replace('\0', " ")))
        })
        .collect()
}

/// The full path: a stonith resource for node2 on an ipmi_sim, fenced by `stonith_admin --reboot`.
#[test]
fn pacemaker_reboots_node2_through_fence_ipmi() {
    let _agent = InstalledAgent::install();
    let sim = IpmiSim::builder()
        .users(vec![SimUser::new("admin", PASSWORD, "admin")])
        .start();
    let cluster = Cluster::start();

    let port = format!("ipport={}", sim.port());
    let password = format!("password={PASSWORD}");
    cluster.crm_configure(&[
        "primitive",
        "fence-node2",
        "stonith:fence_ipmi",
        "params",
        "ip=127.0.0.1",
        &port,
        "username=admin",
        &password,
        "lanplus=1",
        "cipher=3",
        "pcmk_host_list=node2",
        "op",
        "monitor",
        "interval=60s",
        "timeout=20s",
    ]);
    cluster.crm_configure(&["property", "stonith-enabled=true"]);
    let (started, status) = cluster.wait_for_status(Duration::from_secs(60), |s| {
        s.lines()
            .any(|l| l.contains("fence-node2") && l.contains("Started"))
    });
    assert!(
        started,
        "the stonith resource did not start (its start runs our monitor):\n{status}\n{}",
        cluster.pacemaker_log_tail(60)
    );
    // Starting ran `monitor` (a status read) only.
    assert!(
        sim.events().is_empty(),
        "starting the device changed the power: {:?}",
        sim.events()
    );

    // Watch the process list while Pacemaker runs the agent.
    let binary = std::fs::canonicalize(our_binary()).expect("canonical binary path");
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (mut sightings, mut leaks) = (0usize, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                for (pid, seen) in agent_processes(&binary) {
                    sightings += 1;
                    if seen.contains(PASSWORD) {
                        leaks.push(format!("PID {pid}: {seen}"));
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (sightings, leaks)
        })
    };
    let reboot = stonith_admin(&["--reboot", "node2", "--timeout", "60"]);
    stop.store(true, Ordering::Relaxed);
    let (sightings, leaks) = watcher.join().expect("process watcher");

    assert!(
        reboot.status.success(),
        "stonith_admin --reboot node2 failed: {}\n{}",
        text(&reboot),
        cluster.pacemaker_log_tail(80)
    );
    let events = sim.wait_for_events(2, Duration::from_secs(5));
    assert_eq!(
        events,
        vec![PowerEvent::Off, PowerEvent::On],
        "the simulator did not see off then on"
    );
    assert!(sim.power_is_on(), "node2 was left powered off");

    let history = stonith_admin(&["--history", "node2"]);
    assert!(
        String::from_utf8_lossy(&history.stdout).contains("successful"),
        "fencing history does not record the reboot as successful: {}",
        text(&history)
    );

    // Secrets: not in any agent process's argv/environment, not in what fenced logged of the
    // agent's output. (Pacemaker itself logs CIB diffs with nvpair values; that is the CIB's
    // business and excluded: only fencer/agent lines are checked.)
    assert!(
        sightings > 0,
        "never saw a fence_ipmi process while fencing ran, so the argv check proved nothing"
    );
    assert!(
        leaks.is_empty(),
        "password visible in the process list: {leaks:?}"
    );
    // Fencing (off) and unfencing (on) go through the same device.
    sim.clear_events();
    let fence = stonith_admin(&["--fence", "node2", "--timeout", "60"]);
    assert!(
        fence.status.success(),
        "stonith_admin --fence node2: {}",
        text(&fence)
    );
    assert_eq!(
        sim.wait_for_events(1, Duration::from_secs(5)),
        vec![PowerEvent::Off]
    );
    assert!(!sim.power_is_on(), "node2 is still on after --fence");
    let unfence = stonith_admin(&["--unfence", "node2", "--timeout", "60"]);
    assert!(
        unfence.status.success(),
        "stonith_admin --unfence node2: {}",
        text(&unfence)
    );
    assert_eq!(
        sim.wait_for_events(2, Duration::from_secs(5)),
        vec![PowerEvent::Off, PowerEvent::On]
    );

    // A device whose BMC rejects the password: fencing node3 must fail, touch nothing, and
    // the fencer's log must carry our agent's explanation, without the (wrong) password.
    let sim3 = IpmiSim::builder()
        .users(vec![SimUser::new("admin", PASSWORD, "admin")])
        .start();
    let port3 = format!("ipport={}", sim3.port());
    let wrong = format!("password={WRONG_PASSWORD}");
    cluster.crm_configure(&[
        "primitive",
        "fence-node3",
        "stonith:fence_ipmi",
        "params",
        "ip=127.0.0.1",
        &port3,
        "username=admin",
        &wrong,
        "lanplus=1",
        "cipher=3",
        "pcmk_host_list=node3",
    ]);
    let failed = stonith_admin(&["--reboot", "node3", "--timeout", "30"]);
    assert!(
        !failed.status.success(),
        "fencing node3 with a wrong password succeeded: {}",
        text(&failed)
    );
    assert!(
        sim3.events().is_empty(),
        "a failed fencing changed node3's power: {:?}",
        sim3.events()
    );
    let log = cluster.pacemaker_log();
    let agent_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("fence_ipmi[") && l.contains("stderr"))
        .collect();
    assert!(
        !agent_lines.is_empty(),
        "the fencer logged no stderr of fence_ipmi for the failure:\n{}",
        cluster.pacemaker_log_tail(80)
    );

    let leaking: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(PASSWORD) || l.contains(WRONG_PASSWORD))
        .filter(|l| l.contains("fence_ipmi[") || l.contains("pacemaker-fenced"))
        .collect();
    assert!(
        leaking.is_empty(),
        "a password appears in fencer/agent log lines:\n{}",
        leaking.join("\n")
    );
}
