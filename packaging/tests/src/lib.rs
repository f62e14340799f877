//! packaging-tests: helpers for the installed-package tests (`tests/installed.rs`).
//!
//! The tests build the packages themselves with `packaging/build.sh` (one release build, shared
//! by every test of the process through [`packages`]), install them into this machine with
//! apt-get/dpkg (or into a scratch root with rpm), check them with the real tools and remove them
//! again. Everything that installs holds test-support's [`test_support::MachineLock`], the lock
//! the Pacemaker tests take, so no cluster test sees a half-installed package.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The workspace version (the packages' version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version of the rebuilt package the upgrade tests install over [`VERSION`].
pub fn upgrade_version() -> String {
    format!("{VERSION}+upgrade1")
}

/// stdout, stderr and status of a finished command, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "rc={:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `program args` (stdin closed) and returns its output.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the packages with `packaging/build.sh` into `out` (with `version`, if given).
fn build(out: &Path, version: Option<&str>) -> Result<(), String> {
    for (program, package) in [
        ("dpkg-deb", "dpkg"),
        ("dpkg-shlibdeps", "dpkg-dev"),
        ("rpmbuild", "rpm"),
        ("objcopy", "binutils"),
    ] {
        if test_support::peers::find_in_path(program).is_none() {
            return Err(format!(
                "{program} not found: apt-get install {package} (packaging/build.sh needs it)"
            ));
        }
    }
    let mut cmd = Command::new("bash");
    cmd.arg(workspace().join("packaging/build.sh"))
        .env("PKG_OUT", out)
        .stdin(Stdio::null());
    if let Some(v) = version {
        cmd.env("PKG_VERSION", v);
    }
    let result = cmd
        .output()
        .map_err(|e| format!("cannot run build.sh: {e}"))?;
    if result.status.success() {
        Ok(())
    } else {
        Err(format!("packaging/build.sh failed: {}", text(&result)))
    }
}

/// The packages of the workspace version, built once per test process.
pub fn packages() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let out = workspace().join("target/packages");
        build(&out, None).map(|()| out)
    });
    match built {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The packages rebuilt with [`upgrade_version`], built once per test process (after
/// [`packages`], so the release binaries are already there).
pub fn upgrade_packages() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    packages();
    let built = BUILT.get_or_init(|| {
        let out = workspace().join("target/packages-upgrade");
        build(&out, Some(&upgrade_version())).map(|()| out)
    });
    match built {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The .deb of `name` in `dir`.
pub fn deb(dir: &Path, name: &str, version: &str) -> PathBuf {
    let arch = run_ok("dpkg", &["--print-architecture"]);
    let p = dir.join(format!("{name}_{version}_{}.deb", arch.trim()));
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// The .rpm of `name` in `dir`.
pub fn rpm(dir: &Path, name: &str, version: &str) -> PathBuf {
    let arch = std::env::consts::ARCH;
    let p = dir.join(format!("{name}-{version}-1.{arch}.rpm"));
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// dpkg's status of a package ("install ok installed", "deinstall ok config-files", or "" when
/// dpkg does not know it).
pub fn dpkg_status(name: &str) -> String {
    let out = run("dpkg-query", &["-W", "-f=${Status}", name]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `apt-get ARGS` (waiting for another apt/dpkg to finish), which must succeed.
pub fn apt_get(args: &[&str]) -> String {
    test_support::require("apt-get", "apt");
    let mut full = vec![
        "-y",
        "-q",
        "-o",
        "DPkg::Lock::Timeout=300",
        "--no-install-recommends",
    ];
    full.extend_from_slice(args);
    run_ok("apt-get", &full)
}

/// Purges `name` if dpkg knows it in any state (a leftover of an interrupted run).
pub fn purge_if_present(name: &str) {
    if !dpkg_status(name).is_empty() {
        apt_get(&["purge", name]);
    }
}

/// Purges the named packages when dropped, so a failing test leaves the machine as it found it.
pub struct PurgeOnDrop(pub &'static [&'static str]);

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        for name in self.0 {
            if !dpkg_status(name).is_empty() {
                let _ = run(
                    "apt-get",
                    &["-y", "-q", "-o", "DPkg::Lock::Timeout=300", "purge", name],
                );
            }
        }
    }
}

/// The regular files and symlinks a .deb carries (`dpkg-deb -c`), as absolute paths.
pub fn deb_files(deb: &Path) -> Vec<String> {
    let listing = run_ok("dpkg-deb", &["-c", deb.to_str().expect("utf-8 path")]);
    listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_string())
        .collect()
}

/// `systemd-analyze verify UNIT`: its exit status alone is not enough (it exits 0 on unknown
/// keys and unparsable values, printing "ignoring"), so any output fails too.
pub fn verify_unit(unit: &Path) -> Result<(), String> {
    let program = test_support::require("systemd-analyze", "systemd");
    let out = Command::new(program)
        .arg("verify")
        .arg(unit)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() && out.stdout.is_empty() && out.stderr.is_empty() {
        Ok(())
    } else {
        Err(text(&out))
    }
}
