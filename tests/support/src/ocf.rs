//! Running an OCF resource agent the way its real users do, shared by the agents' tests
//! (resource-scripts/hactl and resource-scripts/kvm-host): as pacemaker-execd calls an action
//! (only the OCF environment), through `crm_resource --force-*`, installed where Pacemaker
//! looks for `ocf:cloudstack:NAME`, under Debian's `ocf-tester`, and its meta-data checked
//! with `xmllint` against both of resource-agents' schemas.

use crate::peers::require;
use crate::Cluster;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where Pacemaker looks for the agents of provider `cloudstack`.
pub const PROVIDER_DIR: &str = "/usr/lib/ocf/resource.d/cloudstack";

/// Result of one agent (or `crm_resource`) invocation.
#[derive(Debug)]
pub struct Run {
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    /// The last `ocf-exit-reason:` line, as Pacemaker would record it.
    pub fn exit_reason(&self) -> Option<String> {
        self.stderr
            .lines()
            .rev()
            .find_map(|l| l.split_once("ocf-exit-reason:").map(|(_, r)| r.to_string()))
    }
}

pub fn to_run(out: Output, took: Duration) -> Run {
    Run {
        rc: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
    }
}

/// The command execd would run for `action` of agent binary `agent`: a cleared environment
/// with only PATH, the OCF variables, the operation timeout in ms and the interval (None =
/// a probe or a non-recurring action). The caller adds the `OCF_RESKEY_*` parameters.
pub fn execd_command(
    agent: &str,
    action: &str,
    resource_type: &str,
    instance: &str,
    interval_ms: Option<u64>,
    timeout_ms: u64,
) -> Command {
    let mut c = Command::new(agent);
    c.arg(action)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", "1")
        .env("OCF_RESOURCE_INSTANCE", instance)
        .env("OCF_RESOURCE_TYPE", resource_type)
        .env("OCF_RESKEY_CRM_meta_timeout", timeout_ms.to_string())
        .env("HA_LOGFACILITY", "none")
        .stdin(Stdio::null());
    if let Some(i) = interval_ms {
        c.env("OCF_RESKEY_CRM_meta_interval", i.to_string());
    }
    c
}

/// Runs a command and times it.
pub fn run_timed(c: &mut Command) -> Run {
    let t0 = Instant::now();
    let out = c.output().expect("run agent");
    to_run(out, t0.elapsed())
}

/// A copy of a binary in a fresh world-readable directory: Pacemaker runs meta-data as
/// `hacluster` and ocf-tester as `nobody`, who may not reach the build directory (of a clone
/// under a private home, say).
pub struct BinCopy {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn bin_copy(src: &str, name: &str) -> BinCopy {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{name}-bin-"))
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join(name);
    std::fs::copy(src, &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    BinCopy { _dir: dir, path }
}

/// A copy of agent binary `src` installed (0755) as `ocf:cloudstack:NAME`, as the package
/// does; removes on drop only what it created. A leftover test install (its hidden marker
/// file present: Pacemaker ignores dot files) is replaced; a real install is never touched.
/// One install path per agent: the caller serialises the tests that use it.
pub struct InstalledAgent {
    installed: PathBuf,
    marker: PathBuf,
    created_dir: bool,
}

impl InstalledAgent {
    pub fn new(src: &str, name: &str) -> InstalledAgent {
        let created_dir = !Path::new(PROVIDER_DIR).exists();
        if created_dir {
            std::fs::create_dir_all(PROVIDER_DIR).expect("create OCF provider dir (run as root)");
            std::fs::set_permissions(PROVIDER_DIR, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let installed = Path::new(PROVIDER_DIR).join(name);
        let marker = Path::new(PROVIDER_DIR).join(format!(".{name}.test-install"));
        if installed.symlink_metadata().is_ok() && !marker.exists() {
            panic!(
                "{} exists and was not installed by these tests; \
                 it is not ours to replace: remove it and re-run",
                installed.display()
            );
        }
        std::fs::write(&marker, format!("installed by {name} agent tests\n")).unwrap();
        let tmp = PathBuf::from(format!("{}.tmp", installed.display()));
        std::fs::copy(src, &tmp).expect("copy agent");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &installed).expect("install agent");
        InstalledAgent {
            installed,
            marker,
            created_dir,
        }
    }
}

impl Drop for InstalledAgent {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.installed);
        let _ = std::fs::remove_file(&self.marker);
        if self.created_dir {
            let _ = std::fs::remove_dir(PROVIDER_DIR);
        }
    }
}

/// `crm_resource ARGS` for `ocf:cloudstack:AGENT` with `options` as `--option k=v`.
pub fn crm_resource(agent: &str, args: &[&str], options: &[(String, String)]) -> Run {
    let bin = require("crm_resource", "pacemaker-cli-utils");
    let mut c = Command::new(bin);
    c.args(args).args([
        "--class",
        "ocf",
        "--provider",
        "cloudstack",
        "--agent",
        agent,
    ]);
    for (k, v) in options {
        c.arg("--option").arg(format!("{k}={v}"));
    }
    let t0 = Instant::now();
    let out = c.output().expect("run crm_resource");
    to_run(out, t0.elapsed())
}

/// Runs Debian's `ocf-tester` (`-v` if `verbose`) on the agent at `agent` as instance
/// `instance` with `params`.
pub fn ocf_tester(
    agent: &Path,
    instance: &str,
    params: &BTreeMap<String, String>,
    verbose: bool,
) -> Output {
    let tester = require("ocf-tester", "resource-agents");
    let mut cmd = Command::new(tester);
    if verbose {
        cmd.arg("-v");
    }
    cmd.arg("-n").arg(instance);
    for (k, v) in params {
        cmd.arg("-o").arg(format!("{k}={v}"));
    }
    cmd.arg(agent)
        .env("HA_LOGFACILITY", "none")
        .output()
        .unwrap()
}

/// The agent's meta-data, run with an empty environment; exit code 0 asserted.
pub fn metadata(agent: &str) -> Vec<u8> {
    let out = Command::new(agent)
        .arg("meta-data")
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    out.stdout
}

/// `xmllint ARGS -` on `input`, from resource-agents' directory (where ra-api-1.dtd is):
/// whether it accepted, and its stderr.
pub fn xmllint(args: &[&str], input: &[u8]) -> (bool, String) {
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

/// Asserts that `xml` is valid against ra-api-1.dtd and (without its DOCTYPE line) against
/// resource-agents' metadata.rng.
pub fn assert_metadata_valid(xml: Vec<u8>) {
    let rng = Path::new("/usr/share/resource-agents/metadata.rng");
    assert!(
        rng.exists(),
        "{} missing: apt-get install -y resource-agents",
        rng.display()
    );
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

/// Asserts that the agent copy at `agent` prints `expected` for meta-data as user `nobody`
/// with an empty environment (Pacemaker runs meta-data as hacluster, ocf-tester as nobody).
pub fn assert_metadata_as_nobody(agent: &Path, expected: &[u8]) {
    let out = Command::new("su")
        .args(["nobody", "-s", "/bin/sh", "-c"])
        .arg(format!("env -i {} meta-data", agent.display()))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, expected);
}

/// Sets the `target-role` meta attribute of resource `rsc` in `cluster` to `role` (Started,
/// Stopped, Unpromoted, ...) with `crm_resource`; asserts that it succeeded.
pub fn set_target_role(cluster: &Cluster, rsc: &str, role: &str) {
    let out = cluster.run(
        "crm_resource",
        &[
            "--resource",
            rsc,
            "--set-parameter",
            "target-role",
            "--meta",
            "--parameter-value",
            role,
        ],
    );
    assert!(out.status.success(), "{out:?}");
}

/// The `crm configure` words of `primitive ID AGENT params K=V... OPS`: `ops` is the
/// operations as one line (`op monitor interval=2s timeout=10s ...`), split at spaces.
pub fn primitive_args<'a>(
    id: &str,
    agent: &str,
    params: impl IntoIterator<Item = (&'a String, &'a String)>,
    ops: &str,
) -> Vec<String> {
    let mut words: Vec<String> = vec!["primitive".into(), id.into(), agent.into(), "params".into()];
    for (k, v) in params {
        words.push(format!("{k}={v}"));
    }
    words.extend(ops.split(' ').map(String::from));
    words
}

/// The `crm configure` commands (as word lists, in order) of the README's promotable clone of
/// the hactl agent: the property `no-quorum-policy=stop`, the primitive `id` of `agent` with
/// these parameters and `ops`, and its clone `<id>-clone` with one promoted instance and
/// notifications on.
pub fn promotable_clone_commands<'a>(
    id: &str,
    agent: &str,
    params: impl IntoIterator<Item = (&'a String, &'a String)>,
    ops: &str,
) -> Vec<Vec<String>> {
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    vec![
        words(&["property", "no-quorum-policy=stop"]),
        primitive_args(id, agent, params, ops),
        words(&[
            "clone",
            &format!("{id}-clone"),
            id,
            "meta",
            "promotable=true",
            "promoted-max=1",
            "notify=true",
        ]),
    ]
}
