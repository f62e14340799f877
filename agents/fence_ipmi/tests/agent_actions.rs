//! Every power action of `fence_ipmi` against a real ipmi_sim: output, exit code and the
//! simulator's actual power events.

mod agent_common;
use agent_common::*;


#[test]
fn status_on_and_off_stdin() {
    let s = sim(true);
    run_stdin(&stdin_for(&s, "action=status\n")).assert(0, "Status: ON\n");
    s.set_power(false);
    run_stdin(&stdin_for(&s, "action=status\n")).assert(2, "Status: OFF\n");
    assert!(
        s.events().is_empty(),
        "status changed power: {:?}",
        s.events()
    );
}
