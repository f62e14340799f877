//! The BMC key Kg end to end: a real ipmi_sim configured with a BMC key (test-support's
//! `bmc_key`), fence_ipmi given `hexadecimal_kg` on stdin or `--hexadecimal-kg` on argv. The
//! right key fences; a wrong or missing key fails with exit 1 and a message naming the Kg,
//! never the key itself, and the host's power is untouched.

mod agent_common;

use agent_common::*;
use PowerEvent::{Off, On};

/// The BMC's key (ipmi_sim keeps 16 bytes).
const BMC_KG: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const WRONG_KG: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn kg_sim(power_on: bool) -> IpmiSim {
    IpmiSim::builder()
        .users(vec![test_support::SimUser::new(
            "admin",
            ADMIN_PASSWORD,
            "admin",
        )])
        .bmc_key(BMC_KG)
        .power_on(power_on)
        .start()
}

/// Neither key may appear anywhere, in any spelling.
fn assert_no_kg(texts: &[&str]) {
    for t in texts {
        let lower = t.to_lowercase();
        for key in [BMC_KG, WRONG_KG] {
            assert!(!lower.contains(key), "a Kg leaked into output:\n{t}");
        }
    }
    assert_no_secrets(texts);
}

#[test]
fn right_kg_on_stdin_fences() {
    let s = kg_sim(true);
    let kg = format!("hexadecimal_kg={BMC_KG}\n");
    let r = run_stdin(&stdin_for(
        &s,
        &format!("{kg}action=status\nverbose_level=3\n"),
    ));
    r.assert(0, "Status: ON\n");
    assert!(
        r.stderr.contains("RAKP"),
        "no protocol trace:\n{}",
        r.stderr
    );
    assert_no_kg(&[&r.stdout, &r.stderr]);
    run_stdin(&stdin_for(&s, &format!("{kg}action=off\n"))).assert(0, "Success: Powered OFF\n");
    assert_eq!(s.events(), [Off]);
    assert!(!s.power_is_on());
    run_stdin(&stdin_for(&s, &format!("{kg}action=status\n"))).assert(2, "Status: OFF\n");
    run_stdin(&stdin_for(&s, &format!("{kg}action=on\n"))).assert(0, "Success: Powered ON\n");
    assert_eq!(s.events(), [Off, On]);
    assert!(s.power_is_on());
}

#[test]
fn right_kg_on_argv_fences_in_any_hex_spelling() {
    let s = kg_sim(true);
    let kg = format!("--hexadecimal-kg={BMC_KG}");
    run_argv(&s, &[&kg, "-o", "status"]).assert(0, "Status: ON\n");
    let r = run_argv(&s, &[&kg, "-o", "reboot", "-v"]);
    r.assert(0, "Success: Rebooted\n");
    assert_no_kg(&[&r.stdout, &r.stderr]);
    assert_eq!(s.events(), [Off, On]);
    // 0x prefix and upper case are the same key.
    let upper = format!("--hexadecimal-kg=0x{}", BMC_KG.to_uppercase());
    run_argv(&s, &[&upper, "-o", "off"]).assert(0, "Success: Powered OFF\n");
    assert_eq!(s.events(), [Off, On, Off]);
}

fn assert_kg_failure(r: &Run, s: &IpmiSim) {
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{r:?}");
    assert!(
        r.stderr.contains("wrong or missing BMC key (Kg)"),
        "the cause is not named:\n{}",
        r.stderr
    );
    assert!(!r.stderr.contains("Success"), "{}", r.stderr);
    assert_no_kg(&[&r.stdout, &r.stderr]);
    assert!(s.events().is_empty(), "power changed: {:?}", s.events());
    assert!(s.power_is_on());
}

#[test]
fn wrong_kg_fails_naming_the_kg_without_showing_it() {
    let s = kg_sim(true);
    let r = run_stdin(&stdin_for(
        &s,
        &format!("hexadecimal_kg={WRONG_KG}\naction=off\nverbose_level=3\n"),
    ));
    assert_kg_failure(&r, &s);
    let kg = format!("--hexadecimal-kg={WRONG_KG}");
    let r = run_argv(&s, &[&kg, "-o", "reboot", "-vvv"]);
    assert_kg_failure(&r, &s);
}

#[test]
fn missing_kg_fails_naming_the_kg() {
    let s = kg_sim(true);
    let r = run_stdin(&stdin_for(&s, "action=off\nverbose=1\n"));
    assert_kg_failure(&r, &s);
    let r = run_argv(&s, &["-o", "reboot"]);
    assert_kg_failure(&r, &s);
    // An empty value is no key at all.
    let r = run_stdin(&stdin_for(&s, "hexadecimal_kg=\naction=off\n"));
    assert_kg_failure(&r, &s);
}
