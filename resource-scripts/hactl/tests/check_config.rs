//! validate-all against the real `hactl-kvm check-config`: a configuration
//! it refuses is OCF_ERR_CONFIGURED with its reason; one it accepts is 0
//! even when the CloudStack API does not answer (nothing listens on the
//! port), because an unreachable peer is no fault of the parameters.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;

fn write_config(f: &Fixture) {
    let d = f.dir.path();
    let secrets = d.join("secrets.toml");
    std::fs::write(
        &secrets,
        "[cloudstack]\nsecret_key = \"s3cr3t-api\"\n[bmc]\npassword = \"s3cr3t-bmc\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Port 9 (discard) on loopback: nothing listens there in the test machine.
    std::fs::write(
        f.config(),
        format!(
            "[daemon]\njournal_dir = \"{}\"\nsecrets_file = \"{}\"\n[cloudstack]\nurl = \"http://127.0.0.1:9/client/api\"\napi_key = \"k\"\nrequest_timeout_ms = 1000\n[power]\nusername = \"admin\"\n",
            d.join("journal").display(),
            secrets.display()
        ),
    )
    .unwrap();
}

#[test]
fn validate_all_uses_hactl_kvm_check_config() {
    let mut f = Fixture::new("");
    f.set("hactl_kvm", hactl_kvm_binary().to_str().unwrap());
    write_config(&f);

    let v = f.action("validate-all", None, 20_000);
    assert_eq!(v.rc, 0, "{v:?}");
    assert!(
        v.stderr
            .contains("configuration accepted, but not every peer answered"),
        "{v:?}"
    );
    assert!(v.stderr.contains("CloudStack API: FAILED"), "{v:?}");

    // Secrets readable by others: refused, and the secret never shown.
    let secrets = f.dir.path().join("secrets.toml");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let v = f.action("validate-all", None, 20_000);
    assert_eq!(v.rc, 6, "{v:?}");
    let reason = v.exit_reason().unwrap();
    assert!(reason.contains("has mode 0644, must be 0600"), "{reason}");
    assert!(
        !v.stderr.contains("s3cr3t") && !v.stdout.contains("s3cr3t"),
        "{v:?}"
    );
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A TOML error: its first and last line make the reason.
    std::fs::write(f.config(), "[daemon\n").unwrap();
    let v = f.action("validate-all", None, 20_000);
    assert_eq!(v.rc, 6, "{v:?}");
    let reason = v.exit_reason().unwrap();
    assert!(
        reason.contains("hactl-kvm check-config refuses"),
        "{reason}"
    );
    assert!(reason.contains("TOML parse error at line 1"), "{reason}");
    // validate-all changed nothing: no journal, no daemon.
    assert!(!f.dir.path().join("journal").exists());
    assert!(!f.pid_file().exists());
}
