//! One power-status action, ours vs ipmitool (what fence_ipmilan runs), on
//! the same ipmi_sim in the same run; prints medians, the ratio and packets.
//!
//! `cargo bench -p ipmi-lan` (needs ipmi_sim and ipmitool installed).
//! The password reaches ipmitool through a file (`-f`), never argv.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipmi_lan::{ChassisControl, ConnectOptions, PowerState, Secret, Session};
use test_support::IpmiSim;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let ipmitool = test_support::require("ipmitool", "ipmitool");
    let sim = IpmiSim::start();
    let mut opts = ConnectOptions::new("127.0.0.1", "admin", Secret::from("secret"));
    opts.port = sim.port();
    let deadline = || Instant::now() + Duration::from_secs(10);

    // Ours: open + Get Chassis Status + close, in-process.
    let runs = 300;
    let mut ours = Vec::with_capacity(runs);
    let mut packets = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let mut s = Session::open(&opts, deadline()).expect("open");
        assert_eq!(s.power_state(deadline()).unwrap(), PowerState::On);
        let st = s.stats();
        s.close().expect("close");
        ours.push(t.elapsed());
        packets = st.sent + st.received + 2; // + the Close Session pair
    }

    // Reference: ipmitool -C 3 chassis power status (one process per action,
    // exactly as fence_ipmilan runs it).
    let dir = tempfile::tempdir().unwrap();
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, "secret").unwrap();
    let port = sim.port().to_string();
    let pw = pwfile.to_str().unwrap();
    let args = [
        "-I",
        "lanplus",
        "-H",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "admin",
        "-f",
        pw,
        "-C",
        "3",
        "-L",
        "ADMINISTRATOR",
        "-N",
        "2",
        "chassis",
        "power",
        "status",
    ];
    let ref_runs = 60;
    let mut theirs = Vec::with_capacity(ref_runs);
    for _ in 0..ref_runs {
        let t = Instant::now();
        let out = Command::new(&ipmitool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ipmitool");
        theirs.push(t.elapsed());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Chassis Power is on"),
            "ipmitool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A whole reboot (status, off, status, on, status) in one session.
    let t = Instant::now();
    let mut s = Session::open(&opts, deadline()).unwrap();
    s.power_state(deadline()).unwrap();
    s.chassis_control(ChassisControl::PowerDown, deadline())
        .unwrap();
    s.power_state(deadline()).unwrap();
    s.chassis_control(ChassisControl::PowerUp, deadline())
        .unwrap();
    s.power_state(deadline()).unwrap();
    let st = s.stats();
    s.close().unwrap();
    let reboot = t.elapsed();
    let reboot_packets = st.sent + st.received + 2;

    let (o, r) = (median(ours), median(theirs));
    println!("power status, one action (median of {runs} / {ref_runs} runs):");
    println!(
        "  ipmi-lan session (in-process)   {:>9.3} ms, {packets} UDP packets",
        o.as_secs_f64() * 1e3
    );
    println!("  ipmitool -I lanplus -C 3        {:>9.3} ms, 22 UDP packets (reference: 11 request/response pairs)", r.as_secs_f64() * 1e3);
    println!(
        "  ratio ipmi-lan / ipmitool       {:>9.3}",
        o.as_secs_f64() / r.as_secs_f64()
    );
    println!(
        "reboot without power waits, one session: {:.3} ms, {reboot_packets} UDP packets",
        reboot.as_secs_f64() * 1e3
    );
    println!(
        "  fence_ipmilan reboot: 110 UDP packets (5 ipmitool sessions); ratio {:.2}",
        reboot_packets as f64 / 110.0
    );
}
