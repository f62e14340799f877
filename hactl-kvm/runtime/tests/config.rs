//! The shipped example configuration documents every key with its default;
//! bad input is refused with a clear error; the secrets file's owner/mode
//! rule holds.

use hactl_runtime::config::{ConfigFileError, RuntimeConfig};
use hactl_runtime::secrets::{Secrets, SecretsError};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const EXAMPLE: &str = include_str!("../../etc/hactl.toml");

fn expected_example() -> RuntimeConfig {
    let mut c: RuntimeConfig = toml::from_str(
        "[cloudstack]\nurl = \"https://cloudstack.example.org/client/api\"\napi_key = \"REPLACE-WITH-API-KEY\"\n",
    )
    .unwrap();
    // Only the two required keys differ from the built-in defaults.
    c.cloudstack.url = "https://cloudstack.example.org/client/api".into();
    c
}

#[test]
fn example_file_is_exactly_the_defaults_and_names_every_key() {
    let parsed = RuntimeConfig::parse(Path::new("hactl.toml"), EXAMPLE).expect("example parses");
    assert_eq!(parsed, expected_example());
    assert_eq!(parsed.core, hactl_core::Config::default());
    // Every key the defaults have is written out in the example (none is
    // left undocumented), and the example has no key the schema lacks.
    let raw: toml::Table = toml::from_str(EXAMPLE).unwrap();
    let defaults = toml::Table::try_from(expected_example()).unwrap();
    assert_eq!(raw, defaults);
}

#[test]
fn unknown_or_bad_keys_are_refused_with_their_name() {
    let base = "[cloudstack]\nurl = \"http://127.0.0.1:1/client/api\"\napi_key = \"k\"\n";
    let p = Path::new("t.toml");
    assert!(RuntimeConfig::parse(p, base).is_ok());
    let e = RuntimeConfig::parse(p, &format!("{base}[core]\nhealth_check_intervall_ms = 5\n"))
        .unwrap_err();
    assert!(
        matches!(&e, ConfigFileError::UnknownKey { key, .. } if key == "core.health_check_intervall_ms"),
        "{e}"
    );
    let e = RuntimeConfig::parse(
        p,
        &format!("{base}[core.evidence]\ndead_required = 5\nmax_samples = 4\n"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("dead_required"), "{e}");
    let e = RuntimeConfig::parse(p, "[cloudstack]\napi_key = \"k\"\n").unwrap_err();
    assert!(e.to_string().contains("url is required"), "{e}");
    let e = RuntimeConfig::parse(
        p,
        &format!("{base}[power]\ndriver = \"fence-agent\"\nagent = \"rm\"\n"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("fence_*"), "{e}");
    let e = RuntimeConfig::parse(p, &format!("{base}[power]\nprivilege = \"root\"\n")).unwrap_err();
    assert!(e.to_string().contains("privilege"), "{e}");
    let e =
        RuntimeConfig::parse(p, &format!("{base}[activity]\nmode = \"psychic\"\n")).unwrap_err();
    assert!(e.to_string().contains("mode"), "{e}");
    let ok = RuntimeConfig::parse(p, &format!("{base}[daemon]\nquorum = \"corosync\"\n")).unwrap();
    assert_eq!(ok.cluster.quorum_lease_ms, 2000);
    let e = RuntimeConfig::parse(
        p,
        &format!("{base}[cluster]\nquorum_lease_ms = 200\npoll_interval_ms = 200\n"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("cluster.poll_interval_ms"), "{e}");
    let e = RuntimeConfig::parse(p, &format!("{base}[cluster]\ngroup = \"\"\n")).unwrap_err();
    assert!(e.to_string().contains("cluster.group"), "{e}");
    let e = RuntimeConfig::parse(p, &format!("{base}[cluster]\nnodes = 3\n")).unwrap_err();
    assert!(e.to_string().contains("nodes"), "{e}");
}

#[test]
fn secrets_file_must_be_root_only_and_never_shows_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secrets.toml");
    std::fs::write(&f, "[cloudstack]\nsecret_key = \"s3cr3t\"\n[bmc]\npassword = \"pw\"\n[host.kvm1]\npassword = \"pw1\"\n").unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = Secrets::load(&f).unwrap_err();
        assert!(matches!(e, SecretsError::Mode { .. }), "{mode:o}: {e}");
        assert!(e.to_string().contains("0600"), "{e}");
    }
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = Secrets::load(&f).expect("0600 root-owned is accepted");
    assert_eq!(s.cloudstack.secret_key.expose(), "s3cr3t");
    assert_eq!(
        s.bmc_for("kvm1", "u1").password.as_ref().unwrap().expose(),
        "pw1"
    );
    assert_eq!(
        s.bmc_for("kvm2", "u2").password.as_ref().unwrap().expose(),
        "pw"
    );
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("s3cr3t") && !dbg.contains("pw1"), "{dbg}");
    // Not owned by root.
    nix::unistd::chown(&f, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let e = Secrets::load(&f).unwrap_err();
    assert!(matches!(e, SecretsError::Owner { uid: 65534, .. }), "{e}");
    // A syntax error does not echo the line (it may hold a secret).
    nix::unistd::chown(&f, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    std::fs::write(&f, "[cloudstack]\nsecret_key = \"s3cr3t\n").unwrap();
    let e = Secrets::load(&f).unwrap_err();
    assert!(!e.to_string().contains("s3cr3t"), "{e}");
}

#[test]
fn journal_directory_lock_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = hactl_runtime::lock::DirLock::acquire(dir.path()).unwrap();
    // flock locks belong to the open file description: a second open in this
    // process is refused like another process would be.
    let e = hactl_runtime::lock::DirLock::acquire(dir.path()).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("PID {}", std::process::id())),
        "{e}"
    );
    drop(first);
    hactl_runtime::lock::DirLock::acquire(dir.path()).expect("free again after release");
}
