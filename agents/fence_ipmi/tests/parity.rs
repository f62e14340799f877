//! Side-by-side parity of `fence_ipmi` with Debian's `fence_ipmilan` (fence-agents 4.12.1).
//!
//! Every case of [`CASES`] is run twice, each time against a fresh OpenIPMI `ipmi_sim` in the
//! same initial state: once with the reference agent and once with ours. Both runs must give the
//! same stdout, the same exit code and the same sequence of power events in the simulator, unless
//! the case records a deliberate difference (with the reason). The table also pins the
//! reference's own outcome, so a drifting reference or a broken harness fails loudly instead of
//! making both sides "agree" on garbage.
//!
//! The table is rendered to `docs/fence_ipmi-parity.md`; `parity_doc_is_current` fails when
//! the file is stale (regenerate with `UPDATE_PARITY_DOC=1 cargo test -p fence_ipmi --test parity`).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::{IpmiSim, PowerEvent};

/// Initial chassis power of a case's simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Power {
    On,
    Off,
}

/// How the simulated BMC behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BmcMode {
    /// A working BMC whose power follows chassis control.
    Normal,
    /// Chassis control is acknowledged and logged, but the power never changes.
    IgnoresPowerChanges,
    /// Powers off when asked, but a power-on is acknowledged and never happens.
    IgnoresPowerOn,
    /// Nothing listens on the port: the kernel answers ICMP port unreachable at once.
    ClosedPort,
    /// A socket holds the port but never answers (a BMC that is down or filtered): a real
    /// timeout, no ICMP.
    Silent,
    /// The BMC opens sessions and reads power, but a chassis control blocks forever and
    /// ipmi_sim then answers nothing more (test-support's hang mode).
    HangsOnControl,
}

/// One case's BMC: a fresh `ipmi_sim`, or a port nobody listens on.
enum Bmc {
    Sim(IpmiSim),
    ClosedPort(u16),
    /// The socket is kept open (and never read) for the life of the case.
    Silent(std::net::UdpSocket),
}

impl Bmc {
    fn start(initial: Power, mode: BmcMode) -> Bmc {
        if mode == BmcMode::ClosedPort || mode == BmcMode::Silent {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind loopback UDP");
            if mode == BmcMode::Silent {
                return Bmc::Silent(socket);
            }
            return Bmc::ClosedPort(socket.local_addr().expect("local addr").port());
        }
        let sim = IpmiSim::builder().power_on(initial == Power::On).start();
        sim.set_ignores_power_changes(mode == BmcMode::IgnoresPowerChanges);
        sim.set_ignores_power_on(mode == BmcMode::IgnoresPowerOn);
        if mode == BmcMode::HangsOnControl {
            sim.set_chassis_hangs(true);
        }
        Bmc::Sim(sim)
    }

    fn port(&self) -> u16 {
        match self {
            Bmc::Sim(sim) => sim.port(),
            Bmc::ClosedPort(port) => *port,
            Bmc::Silent(socket) => socket.local_addr().expect("local addr").port(),
        }
    }

    /// Power events so far as "off" / "on" / "reset".
    fn events(&self) -> Vec<String> {
        let Bmc::Sim(sim) = self else {
            return Vec::new();
        };
        sim.events()
            .into_iter()
            .map(|e| match e {
                PowerEvent::Off => "off".to_string(),
                PowerEvent::On => "on".to_string(),
                PowerEvent::Reset => "reset".to_string(),
                PowerEvent::Other(other) => other,
            })
            .collect()
    }
}

/// Password of the simulator's `admin` user. It must never show up in our agent's output.
const PASSWORD: &str = "secret";
/// A deliberately wrong password, distinctive enough to grep for in our output.
const WRONG_PASSWORD: &str = "Wr0ngPassw0rd";
/// Cases checked at the same time within one test.
const PARALLEL_CASES: usize = 3;
/// A run that takes longer than this is killed and counted as a mismatch.
const RUN_LIMIT: Duration = Duration::from_secs(40);

/// How a case hands its options to the agent. `{PORT}` is replaced by the simulator's port.
#[derive(Clone, Copy)]
enum Input {
    /// Command-line arguments, split on single spaces.
    Argv(&'static str),
    /// `key=value` lines on stdin, no arguments (what Pacemaker does).
    Stdin(&'static str),
}

/// What one agent run produced, as far as parity is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    rc: i32,
    stdout: String,
    /// Power events the simulator saw, in order: "off", "on", "cycle"...
    events: Vec<String>,
}

/// The expected outcome written in the table.
#[derive(Clone, Copy)]
struct Expect {
    rc: i32,
    stdout: &'static str,
    events: &'static [&'static str],
}

/// How our agent relates to the reference for one case.
#[derive(Clone, Copy)]
enum Ours {
    /// Identical stdout, exit code and power events.
    Same,
    /// A deliberate, documented difference.
    Differs { expect: Expect, why: &'static str },
}

/// Substrings that Pacemaker's fencer greps in an agent's stderr (`stonith__result2rc`): when
/// the reference's stderr has one, ours must keep it so fenced maps the failure the same way.
const PACEMAKER_KEYWORDS: &[(&str, &[&str])] = &[
    (
        "Unrecognised action",
        &["unrecognised action", "unrecognized action"],
    ),
    ("timed out", &["timed out", "timeout"]),
];

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    input: Input,
    initial: Power,
    mode: BmcMode,
    /// After the agent exits, wait for the expected number of events (ipmi_sim finishes a
    /// chassis cycle by its own timer about 1 s later), then this long for any extra ones.
    settle_ms: u64,
    reference: Expect,
    ours: Ours,
    /// Why the Pacemaker stderr-keyword check does not apply to this case (a deliberate
    /// difference in the wording of the failure), if it does not.
    keyword_waiver: Option<&'static str>,
    /// Both agents must take at least this long (a `delay` that must really be waited out).
    min_elapsed_ms: u64,
}

macro_rules! lanplus {
    () => {
        "--ip=127.0.0.1 --ipport={PORT} --username=admin --password=secret --lanplus --cipher=3"
    };
}
const LANPLUS: &str = lanplus!();

macro_rules! argv {
    ($($part:expr),+ $(,)?) => {
        Input::Argv(concat!($($part),+))
    };
}

const fn expect(rc: i32, stdout: &'static str, events: &'static [&'static str]) -> Expect {
    Expect { rc, stdout, events }
}

const fn case(
    name: &'static str,
    input: Input,
    initial: Power,
    reference: Expect,
    ours: Ours,
) -> Case {
    Case {
        name,
        input,
        initial,
        mode: BmcMode::Normal,
        settle_ms: 0,
        reference,
        ours,
        keyword_waiver: None,
        min_elapsed_ms: 0,
    }
}

const fn with_mode(mut c: Case, mode: BmcMode) -> Case {
    c.mode = mode;
    c
}

const fn at_least_ms(mut c: Case, ms: u64) -> Case {
    c.min_elapsed_ms = ms;
    c
}

const fn waive_keywords(mut c: Case, why: &'static str) -> Case {
    c.keyword_waiver = Some(why);
    c
}

/// Our stderr for a port nobody listens on, where the kernel refuses at once.
const REFUSED: &str = "fence_ipmilan says `Connection timed out` only because its 2 s \
                       power_timeout killed ipmitool; ours sees the ICMP port-unreachable at once \
                       and says `device unreachable ... Connection refused`";

const fn settled(mut c: Case, ms: u64) -> Case {
    c.settle_ms = ms;
    c
}

use Ours::Same;
use Power::{Off, On};

const ON: &str = "Status: ON\n";
const OFF: &str = "Status: OFF\n";
const NO_LIST: &str = "NOTICE: List option is not working on this device yet\n";

/// The parity table. `LANPLUS` is `--ip --ipport --username --password --lanplus --cipher=3`.
static CASES: &[Case] = &[
    // ---- actions, command line ----
    case("status when on", argv!(lanplus!(), " -o status"), On, expect(0, ON, &[]), Same),
    case("status when off", argv!(lanplus!(), " -o status"), Off, expect(2, OFF, &[]), Same),
    case(
        "on when off",
        argv!(lanplus!(), " -o on --power-wait=0"),
        Off,
        expect(0, "Success: Powered ON\n", &["on"]),
        Same,
    ),
    case(
        "on when on",
        argv!(lanplus!(), " -o on --power-wait=0"),
        On,
        expect(0, "Success: Already ON\n", &[]),
        Same,
    ),
    case(
        "off when on",
        argv!(lanplus!(), " -o off --power-wait=0"),
        On,
        expect(0, "Success: Powered OFF\n", &["off"]),
        Same,
    ),
    case(
        "off when off",
        argv!(lanplus!(), " -o off --power-wait=0"),
        Off,
        expect(0, "Success: Already OFF\n", &[]),
        Same,
    ),
    case(
        "reboot when on, power_wait=0",
        argv!(lanplus!(), " -o reboot --power-wait=0"),
        On,
        expect(0, "Success: Rebooted\n", &["off", "on"]),
        Same,
    ),
    case(
        "reboot when off, power_wait=0",
        argv!(lanplus!(), " -o reboot --power-wait=0"),
        Off,
        expect(0, "Success: Rebooted\n", &["on"]),
        Same,
    ),
    settled(
        case(
            "reboot method=cycle when on",
            argv!(lanplus!(), " -o reboot --method=cycle --power-wait=0"),
            On,
            expect(0, "Success: Rebooted\n", &["off", "on"]),
            Same,
        ),
        1200,
    ),
    settled(
        case(
            "reboot method=cycle when off",
            argv!(lanplus!(), " -o reboot --method=cycle --power-wait=0"),
            Off,
            // ipmi_sim accepts a cycle while off (real BMCs answer 0xD5, bug #596).
            expect(0, "Success: Rebooted\n", &["off", "on"]),
            Ours::Differs {
                expect: expect(0, "Success: Rebooted\n", &["on"]),
                why: "fence-agents #596: a cycle on a host that is already off fails on real \
                      BMCs (0xD5) and fencing loops forever; we power it on instead",
            },
        ),
        1200,
    ),
    case("monitor when on", argv!(lanplus!(), " -o monitor"), On, expect(0, "", &[]), Same),
    case("monitor when off", argv!(lanplus!(), " -o monitor"), Off, expect(0, "", &[]), Same),
    case("validate-all", argv!(lanplus!(), " -o validate-all"), On, expect(0, "", &[]), Same),
    case("list", argv!(lanplus!(), " -o list"), On, expect(0, NO_LIST, &[]), Same),
    case("list-status", argv!(lanplus!(), " -o list-status"), On, expect(0, NO_LIST, &[]), Same),
    waive_keywords(
        case(
            "diag (ipmi_sim rejects it with 0xCC)",
            argv!(lanplus!(), " -o diag --power-wait=0"),
            On,
            expect(1, "", &[]),
            Same,
        ),
        "fence_ipmilan reports every failed cycle/diag as the misleading `Connection timed out`; \
         ours names the BMC's completion code (0xCC, invalid data field)",
    ),
    at_least_ms(
        case(
            "delay=1 before off",
            argv!(lanplus!(), " -o off --delay=1 --power-wait=0"),
            On,
            expect(0, "Success: Powered OFF\n", &["off"]),
            Same,
        ),
        1000,
    ),
    // ---- command-line syntax ----
    case(
        "short options, uppercase action",
        argv!("-a 127.0.0.1 -u {PORT} -l admin -p secret -P -C 3 -o STATUS"),
        On,
        expect(0, ON, &[]),
        Same,
    ),
    case(
        "IPMI 1.5 (no lanplus)",
        argv!("--ip=127.0.0.1 --ipport={PORT} --username=admin --password=secret -o status"),
        Off,
        expect(2, OFF, &[]),
        Same,
    ),
    case(
        "-vvv status",
        argv!(lanplus!(), " -o status -vvv"),
        Off,
        expect(2, OFF, &[]),
        Same,
    ),
    case(
        "leftover positional argument is ignored",
        argv!(lanplus!(), " -o status extra"),
        On,
        expect(0, ON, &[]),
        Same,
    ),
    case(
        "unknown option",
        argv!(lanplus!(), " -o off --zzz"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "--plug without --port-as-ip",
        argv!(lanplus!(), " -o off -n node2"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "unrecognised action",
        argv!(lanplus!(), " -o frobnicate"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "validate-all without ip",
        argv!("--ipport={PORT} --username=admin --password=secret --lanplus --cipher=3 -o validate-all"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "non-numeric power_wait",
        argv!(lanplus!(), " -o off --power-wait=soon"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    // ---- failures against the BMC ----
    case(
        "wrong password, status",
        argv!("--ip=127.0.0.1 --ipport={PORT} --username=admin --password=Wr0ngPassw0rd --lanplus --cipher=3 -o status"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "wrong password, reboot",
        argv!("--ip=127.0.0.1 --ipport={PORT} --username=admin --password=Wr0ngPassw0rd --lanplus --cipher=3 -o reboot --power-wait=0"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    waive_keywords(
        with_mode(
            case(
                "closed port, status",
                argv!(lanplus!(), " -o status --power-timeout=2 --login-timeout=1 --ipmitool-timeout=1"),
                On,
                expect(1, "", &[]),
                Same,
            ),
            BmcMode::ClosedPort,
        ),
        REFUSED,
    ),
    waive_keywords(
        with_mode(
            case(
                "closed port, reboot",
                argv!(lanplus!(), " -o reboot --power-wait=0 --power-timeout=2 --login-timeout=1 --ipmitool-timeout=1"),
                On,
                expect(1, "", &[]),
                Same,
            ),
            BmcMode::ClosedPort,
        ),
        REFUSED,
    ),
    waive_keywords(
        with_mode(
            case(
                "closed port, monitor",
                argv!(lanplus!(), " -o monitor --power-timeout=2 --login-timeout=1 --ipmitool-timeout=1"),
                On,
                expect(1, "", &[]),
                Same,
            ),
            BmcMode::ClosedPort,
        ),
        REFUSED,
    ),
    with_mode(
        case(
            "silent BMC, status",
            argv!(lanplus!(), " -o status --power-timeout=2 --login-timeout=1 --ipmitool-timeout=1"),
            On,
            expect(1, "", &[]),
            Same,
        ),
        BmcMode::Silent,
    ),
    with_mode(
        case(
            "silent BMC, reboot",
            argv!(lanplus!(), " -o reboot --power-wait=0 --power-timeout=2 --login-timeout=1 --ipmitool-timeout=1"),
            On,
            expect(1, "", &[]),
            Same,
        ),
        BmcMode::Silent,
    ),
    with_mode(
        case(
            "stdin silent BMC, off",
            Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\naction=off\npower_timeout=2\nlogin_timeout=1\nipmitool_timeout=1\n"),
            On,
            expect(1, "", &[]),
            Same,
        ),
        BmcMode::Silent,
    ),
    with_mode(
        case(
            "BMC hangs on the chassis command, off",
            argv!(lanplus!(), " -o off --power-wait=0 --power-timeout=2 --login-timeout=1 --ipmitool-timeout=1"),
            On,
            expect(1, "", &[]),
            Same,
        ),
        BmcMode::HangsOnControl,
    ),
    with_mode(
        case(
            "power off never takes effect",
            argv!(lanplus!(), " -o off --power-wait=0 --power-timeout=2"),
            On,
            expect(1, "", &["off"]),
            Same,
        ),
        BmcMode::IgnoresPowerChanges,
    ),
    with_mode(
        case(
            "reboot whose off never takes effect",
            argv!(lanplus!(), " -o reboot --power-wait=0 --power-timeout=2"),
            On,
            expect(1, "", &["off"]),
            Same,
        ),
        BmcMode::IgnoresPowerChanges,
    ),
    with_mode(
        case(
            "reboot whose power-on never takes effect",
            argv!(lanplus!(), " -o reboot --power-wait=0 --power-timeout=2"),
            On,
            // 4.12.1 logs `Timed out waiting to power ON` and still reports success (§1.3).
            expect(0, "Success: Rebooted\n", &["off", "on"]),
            Same,
        ),
        BmcMode::IgnoresPowerOn,
    ),
    with_mode(
        case(
            "power on never takes effect (1 + retry_on attempts)",
            argv!(lanplus!(), " -o on --power-wait=0 --power-timeout=1"),
            Off,
            expect(1, "", &["on", "on"]),
            Same,
        ),
        BmcMode::IgnoresPowerChanges,
    ),
    // ---- transports, privileges, cipher suites ----
    case(
        "IPv6 ::1",
        argv!("--ip=::1 --ipport={PORT} --username=admin --password=secret --lanplus --cipher=3 -o status"),
        On,
        expect(0, ON, &[]),
        Same,
    ),
    case(
        "IPMI 1.5 with auth=MD5 (uppercase choice)",
        argv!("--ip=127.0.0.1 --ipport={PORT} --username=admin --password=secret --auth=MD5 -o off --power-wait=0"),
        On,
        expect(0, "Success: Powered OFF\n", &["off"]),
        Same,
    ),
    case(
        "operator account, privlvl=operator, reboot",
        argv!("--ip=127.0.0.1 --ipport={PORT} --username=operator --password=opsecret --privlvl=operator --lanplus --cipher=3 -o reboot --power-wait=0"),
        On,
        expect(0, "Success: Rebooted\n", &["off", "on"]),
        Same,
    ),
    case(
        "user-privilege account cannot power off",
        argv!("--ip=127.0.0.1 --ipport={PORT} --username=viewer --password=usersecret --privlvl=user --lanplus --cipher=3 -o off --power-wait=0 --power-timeout=2"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "cipher suite 1",
        argv!("--ip=127.0.0.1 --ipport={PORT} --username=admin --password=secret --lanplus --cipher=1 -o status"),
        On,
        expect(0, ON, &[]),
        Ours::Differs {
            expect: expect(1, "", &[]),
            why: "cipher suite 1 has no integrity protection after login, so every answer \
                  (the power state, the power-off acknowledgement) could be forged; ours \
                  refuses it unless allow_unauthenticated=1 is given",
        },
    ),
    case(
        "cipher suite 1 with allow_unauthenticated=1 (unknown key to fence_ipmilan)",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=1\nallow_unauthenticated=1\naction=status\n"),
        On,
        expect(0, ON, &[]),
        Same,
    ),
    case(
        "cipher suite 17 (SHA-256, which this ipmi_sim lacks)",
        argv!("--ip=127.0.0.1 --ipport={PORT} --username=admin --password=secret --lanplus --cipher=17 -o status"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "unknown user",
        argv!("--ip=127.0.0.1 --ipport={PORT} --username=nobody --password=secret --lanplus --cipher=3 -o status"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "ipport out of range",
        argv!("--ip=127.0.0.1 --ipport=70000 --username=admin --password=secret --lanplus --cipher=3 -o status --power-timeout=2"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "negative power_wait with status",
        argv!(lanplus!(), " -o status --power-wait=-1"),
        On,
        // 4.12.1 only checks power_wait when it sleeps, so a status passes.
        expect(0, ON, &[]),
        Ours::Differs {
            expect: expect(1, "", &[]),
            why: "every time value is validated up front, whatever the action: a \
                  configuration that would break the next reboot fails its status/monitor now",
        },
    ),
    case(
        "invalid method",
        argv!(lanplus!(), " -o reboot --method=bogus"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    // ---- stdin (Pacemaker's way) ----
    case(
        "stdin status",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\naction=status\n"),
        Off,
        expect(2, OFF, &[]),
        Same,
    ),
    case(
        "stdin deprecated aliases ipaddr/login/passwd",
        Input::Stdin("ipaddr=127.0.0.1\nipport={PORT}\nlogin=admin\npasswd=secret\nlanplus=1\ncipher=3\naction=status\n"),
        On,
        expect(0, ON, &[]),
        Same,
    ),
    case(
        "stdin as fenced sends a reboot (nodename, port)",
        Input::Stdin("nodename=node2\nip=127.0.0.1\nusername=admin\npassword=secret\naction=reboot\nlanplus=1\nport=node2\nipport={PORT}\ncipher=3\npower_wait=0\n"),
        On,
        expect(0, "Success: Rebooted\n", &["off", "on"]),
        Same,
    ),
    case(
        "stdin off, plug= and quoted value",
        Input::Stdin("ip=\"127.0.0.1\"\nipport={PORT}\nusername=admin\npassword=\"secret\"\nlanplus=1\ncipher=3\nplug=node2\naction=off\npower_wait=0\n"),
        On,
        expect(0, "Success: Powered OFF\n", &["off"]),
        Same,
    ),
    case(
        "stdin on, uppercase action and yes/true booleans",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=yes\ncipher=3\naction=ON\npower_wait=0\n"),
        Off,
        expect(0, "Success: Powered ON\n", &["on"]),
        Same,
    ),
    case(
        "stdin unknown key, comment and blank lines",
        Input::Stdin("# a comment\n\nip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nbogus=1\nlanplus=1\ncipher=3\naction=status\n"),
        On,
        expect(0, ON, &[]),
        Same,
    ),
    case(
        "stdin line without '=' among valid ones",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nthis line has no equals\nlanplus=1\ncipher=3\naction=status\n"),
        On,
        expect(0, ON, &[]),
        Ours::Differs {
            expect: expect(1, "", &[]),
            why: "a malformed line is a hard error (exit 1, BMC untouched): 4.12.1 warns and \
                  goes on, which turns a mangled action line into the default action, reboot \
                  (next row)",
        },
    ),
    case(
        "stdin mangled action line (no '=')",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\npower_wait=0\naction status\n"),
        On,
        // 4.12.1 ignores the line and runs the default action.
        expect(0, "Success: Rebooted\n", &["off", "on"]),
        Ours::Differs {
            expect: expect(1, "", &[]),
            why: "a malformed line is a hard error: fence_ipmilan reboots the host here",
        },
    ),
    case(
        "cipher suite 0 (no authentication) with a wrong password",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=Wr0ngPassw0rd\nlanplus=1\ncipher=0\naction=off\npower_wait=0\n"),
        On,
        // ipmi_sim (like many BMCs) accepts any password with suite 0.
        expect(0, "Success: Powered OFF\n", &["off"]),
        Ours::Differs {
            expect: expect(1, "", &[]),
            why: "cipher suite 0 authenticates nothing; ours refuses it unless \
                  allow_unauthenticated=1 (alias allow_cipher_zero=1) is given",
        },
    ),
    case(
        "cipher suite 0 with allow_cipher_zero=1 (unknown key to fence_ipmilan)",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=0\nallow_cipher_zero=1\naction=status\n"),
        On,
        expect(0, ON, &[]),
        Same,
    ),
    case(
        "stdin password_script, lanplus=TRUE, verbose=1",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword_script=echo secret\nlanplus=TRUE\ncipher=3\naction=status\nverbose=1\n"),
        On,
        expect(0, ON, &[]),
        Same,
    ),
    case(
        "stdin verbose reboot (debug output must not leak the password)",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\naction=reboot\npower_wait=0\nverbose=1\nverbose_level=3\n"),
        On,
        expect(0, "Success: Rebooted\n", &["off", "on"]),
        Same,
    ),
    case(
        "stdin misspelt password key (its value must not be echoed)",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npasswrd=secret\nlanplus=1\ncipher=3\naction=status\n"),
        On,
        // fence_ipmilan warns `Ignoring unknown option 'passwrd=secret'`, value included.
        expect(1, "", &[]),
        Same,
    ),
    case(
        "stdin repeated key: last wins",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=Wr0ngPassw0rd\npassword=secret\nlanplus=1\ncipher=3\naction=status\n"),
        On,
        expect(0, ON, &[]),
        Same,
    ),
    case(
        "stdin port_as_ip takes the address from port",
        Input::Stdin("port_as_ip=1\nport=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\naction=status\n"),
        On,
        expect(0, ON, &[]),
        Same,
    ),
    case(
        "stdin boolean without a valid value keeps the default (IPMI 1.5)",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=maybe\naction=status\n"),
        On,
        expect(0, ON, &[]),
        Same,
    ),
    case(
        "stdin spaces around '=' make the key unknown",
        Input::Stdin("ip = 127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\naction=off\n"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "stdin option= (documented synonym of action)",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\noption=status\npower_wait=0\n"),
        On,
        // 4.12.1 ignores option= as unknown and runs the default action: reboot.
        expect(0, "Success: Rebooted\n", &["off", "on"]),
        Ours::Differs {
            expect: expect(0, ON, &[]),
            why: "FenceAgentAPI documents option= as a synonym of action=; 4.12.1 ignores it \
                  and reboots the host instead of reporting its status",
        },
    ),
    case(
        "stdin empty: no address, nothing happens",
        Input::Stdin(""),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "stdin non-integer ipport",
        Input::Stdin("ip=127.0.0.1\nipport=abc\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\naction=off\n"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "stdin invalid privlvl",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\nprivlvl=king\naction=off\n"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "stdin unrecognised action",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\naction=enable\n"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    case(
        "stdin list",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\naction=list\n"),
        On,
        expect(0, NO_LIST, &[]),
        Same,
    ),
    case(
        "stdin wrong password, off",
        Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=Wr0ngPassw0rd\nlanplus=1\ncipher=3\naction=off\n"),
        On,
        expect(1, "", &[]),
        Same,
    ),
    waive_keywords(
        with_mode(
            case(
                "stdin closed port, off",
                Input::Stdin("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\naction=off\npower_timeout=2\nlogin_timeout=1\nipmitool_timeout=1\n"),
                On,
                expect(1, "", &[]),
                Same,
            ),
            BmcMode::ClosedPort,
        ),
        REFUSED,
    ),
];

// ------------------------------------------------------------------------------------------
// Running one agent
// ------------------------------------------------------------------------------------------

/// Which agent runs a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Agent {
    Reference,
    Ours,
}

struct Run {
    outcome: Outcome,
    stderr: String,
    elapsed: Duration,
}

fn reference_binary() -> PathBuf {
    let path = PathBuf::from("/usr/sbin/fence_ipmilan");
    assert!(
        path.is_file(),
        "the reference agent {} is missing: apt-get install fence-agents ipmitool",
        path.display()
    );
    assert!(
        Path::new("/usr/bin/ipmitool").is_file(),
        "ipmitool is missing (fence_ipmilan needs it): apt-get install ipmitool"
    );
    path
}

fn our_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fence_ipmi"))
}

fn substitute(template: &str, port: u16) -> String {
    template.replace("{PORT}", &port.to_string())
}

/// Runs `program` with the case's input and a hard time limit; returns (rc, stdout, stderr).
fn run_agent(program: &Path, input: Input, port: u16) -> (i32, String, String, Duration) {
    let mut cmd = Command::new(program);
    cmd.env("PYTHONWARNINGS", "ignore")
        .env_remove("PCMK_service")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin_text = match input {
        Input::Argv(args) => {
            cmd.args(substitute(args, port).split(' '));
            String::new()
        }
        Input::Stdin(text) => substitute(text, port),
    };
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Write from a thread: an agent that does not read stdin must not block us.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(stdin_text.as_bytes());
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let rc = loop {
        if let Some(status) = child.try_wait().expect("wait for agent") {
            break status.code().unwrap_or(-1);
        }
        if started.elapsed() > RUN_LIMIT {
            // Our own child, killed by its PID.
            let _ = child.kill();
            let _ = child.wait();
            break -9;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    let _ = writer.join();
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    (rc, out, err, elapsed)
}

fn run_case(case: &Case, agent: Agent) -> Run {
    let program = match agent {
        Agent::Reference => reference_binary(),
        Agent::Ours => our_binary(),
    };
    let bmc = Bmc::start(case.initial, case.mode);
    let (rc, stdout, stderr, elapsed) = run_agent(&program, case.input, bmc.port());
    if case.settle_ms > 0 {
        // ipmi_sim finishes a cycle by its own timer: wait (bounded) until the events the table
        // expects of this agent are in, then a little longer so extra events would show too.
        let expected = match (agent, case.ours) {
            (Agent::Ours, Ours::Differs { expect, .. }) => expect.events.len(),
            _ => case.reference.events.len(),
        };
        let deadline = Instant::now() + Duration::from_secs(6);
        while bmc.events().len() < expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(case.settle_ms));
    }
    let events = bmc.events();
    Run {
        outcome: Outcome { rc, stdout, events },
        stderr,
        elapsed,
    }
}

fn expected_outcome(e: &Expect) -> Outcome {
    Outcome {
        rc: e.rc,
        stdout: e.stdout.to_string(),
        events: e.events.iter().map(|s| s.to_string()).collect(),
    }
}

/// Checks one case; returns a description of every mismatch.
fn check_case(case: &Case) -> Vec<String> {
    let (reference, ours) = std::thread::scope(|s| {
        let r = s.spawn(|| run_case(case, Agent::Reference));
        let o = s.spawn(|| run_case(case, Agent::Ours));
        (r.join().expect("reference run"), o.join().expect("our run"))
    });
    let mut problems = Vec::new();
    let name = case.name;
    let want_ref = expected_outcome(&case.reference);
    if reference.outcome != want_ref {
        problems.push(format!(
            "[{name}] HARNESS/REFERENCE DRIFT: fence_ipmilan gave {:?} (stderr {:?}), the table says {:?}",
            reference.outcome, reference.stderr, want_ref
        ));
    }
    let want_ours = match case.ours {
        Ours::Same => reference.outcome.clone(),
        Ours::Differs { ref expect, .. } => expected_outcome(expect),
    };
    if ours.outcome != want_ours {
        problems.push(format!(
            "[{name}] fence_ipmi gave rc={} stdout={:?} events={:?} in {:?}, expected rc={} stdout={:?} events={:?}{}; our stderr: {:?}",
            ours.outcome.rc,
            ours.outcome.stdout,
            ours.outcome.events,
            ours.elapsed,
            want_ours.rc,
            want_ours.stdout,
            want_ours.events,
            if matches!(case.ours, Ours::Same) { " (as fence_ipmilan)" } else { " (deliberate difference)" },
            ours.stderr
        ));
    }
    for (who, run) in [("fence_ipmilan", &reference), ("fence_ipmi", &ours)] {
        if run.elapsed < Duration::from_millis(case.min_elapsed_ms) {
            problems.push(format!(
                "[{name}] {who} took {:?}, less than the {} ms the case requires",
                run.elapsed, case.min_elapsed_ms
            ));
        }
    }
    // Pacemaker reads a few words of stderr; keep them.
    let our_err = ours.stderr.to_lowercase();
    for (ref_word, accepted) in PACEMAKER_KEYWORDS {
        if case.keyword_waiver.is_some() {
            break;
        }
        if reference.stderr.contains(ref_word) && !accepted.iter().any(|w| our_err.contains(w)) {
            problems.push(format!(
                "[{name}] fence_ipmilan's stderr says {ref_word:?} (Pacemaker maps it), ours does not: {:?}",
                ours.stderr
            ));
        }
    }
    // Failures must say why (a deliberately clearer stderr than the reference's).
    if ours.outcome.rc == 1 && ours.stderr.trim().is_empty() {
        problems.push(format!("[{name}] fence_ipmi failed with an empty stderr"));
    }
    // Secrets never leak into our output.
    for secret in [PASSWORD, WRONG_PASSWORD] {
        if ours.outcome.stdout.contains(secret) || ours.stderr.contains(secret) {
            problems.push(format!(
                "[{name}] fence_ipmi printed a password ({secret:?}) on stdout or stderr"
            ));
        }
    }
    problems
}

fn check_all(filter: impl Fn(&Case) -> bool) {
    reference_binary();
    let cases: Vec<&Case> = CASES.iter().filter(|c| filter(c)).collect();
    assert!(!cases.is_empty(), "no parity case selected");
    // Cases are independent (own simulators, own ports) and mostly wait on timers: run a few
    // at a time, report in table order.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, Vec<String>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..PARALLEL_CASES)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(case) = cases.get(i) else { break };
                        done.push((i, check_case(case)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("parity worker"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    let problems: Vec<String> = results.into_iter().flat_map(|(_, p)| p).collect();
    assert!(
        problems.is_empty(),
        "{} parity mismatch(es):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn is_stdin(c: &Case) -> bool {
    matches!(c.input, Input::Stdin(_))
}

fn is_failure_mode(c: &Case) -> bool {
    !matches!(c.mode, BmcMode::Normal)
}

#[test]
fn parity_command_line_against_a_working_bmc() {
    check_all(|c| !is_stdin(c) && !is_failure_mode(c));
}

#[test]
fn parity_command_line_against_a_failing_bmc() {
    check_all(|c| !is_stdin(c) && is_failure_mode(c));
}

#[test]
fn parity_stdin() {
    check_all(is_stdin);
}

/// Parameters our metadata has and fence_ipmilan's has not, on purpose.
const EXTRA_PARAMETERS: &[(&str, &str)] = &[
    (
        "allow_unauthenticated",
        "sessions whose answers cannot be authenticated (cipher suites 0 and 1, IPMI 1.5 with \
         per-message authentication disabled or auth type none) are refused unless this is set",
    ),
    (
        "allow_cipher_zero",
        "the earlier name of allow_unauthenticated, still accepted",
    ),
];

/// The metadata is not byte-identical (our agent has its own name and description), but every
/// parameter and action Pacemaker, pcs and crmsh read must be the same.
#[test]
fn parity_metadata_parameters_and_actions() {
    let (rc, reference, _, _) = run_agent(&reference_binary(), Input::Argv("-o metadata"), 0);
    assert_eq!(rc, 0, "fence_ipmilan -o metadata failed");
    let (rc, ours, err, _) = run_agent(&our_binary(), Input::Argv("-o metadata"), 0);
    assert_eq!(rc, 0, "fence_ipmi -o metadata failed: {err}");
    let attrs = |xml: &str, element: &str| -> Vec<String> {
        let needle = format!("<{element} name=\"");
        xml.match_indices(&needle)
            .map(|(i, _)| {
                let rest = &xml[i + needle.len()..];
                rest[..rest.find('"').unwrap_or(rest.len())].to_string()
            })
            .collect()
    };
    let ours_without_extras: Vec<String> = attrs(&ours, "parameter")
        .into_iter()
        .filter(|p| !EXTRA_PARAMETERS.iter().any(|(name, _)| name == p))
        .collect();
    assert_eq!(
        ours_without_extras,
        attrs(&reference, "parameter"),
        "parameter names/order differ from fence_ipmilan (deliberate extras excluded)"
    );
    for (extra, _) in EXTRA_PARAMETERS {
        assert!(
            attrs(&ours, "parameter").iter().any(|p| p == extra),
            "the documented extra parameter {extra} is gone: update EXTRA_PARAMETERS and the doc"
        );
    }
    assert_eq!(
        attrs(&ours, "action"),
        attrs(&reference, "action"),
        "actions differ from fence_ipmilan"
    );
    // Same via stdin (the way fenced asks), as meta-data (OCF spelling) and as manpage.
    for input in [
        Input::Stdin("action=metadata\n"),
        Input::Stdin("action=meta-data\n"),
        Input::Argv("-o meta-data"),
        Input::Argv("-o manpage"),
    ] {
        let (rc, again, err, _) = run_agent(&our_binary(), input, 0);
        assert_eq!(rc, 0, "{}: {err}", show_input(input));
        assert_eq!(
            again,
            ours,
            "{} differs from -o metadata",
            show_input(input)
        );
    }
}

/// Each `<parameter>`'s name with its content type, `default`, `required`, `deprecated` and
/// `obsoletes` attributes, from fence-agents metadata XML (flat, one element per line).
fn parameter_facts(xml: &str) -> Vec<String> {
    let attr = |tag: &str, name: &str| -> String {
        let needle = format!(" {name}=\"");
        tag.find(&needle)
            .map(|i| {
                let rest = &tag[i + needle.len()..];
                rest[..rest.find('"').unwrap_or(rest.len())].to_string()
            })
            .unwrap_or_default()
    };
    xml.split("<parameter ")
        .skip(1)
        .map(|block| {
            let block = &block[..block.find("</parameter>").unwrap_or(block.len())];
            // `split` ate the space before the first attribute; put it back for `attr`.
            let head = format!(" {}", &block[..block.find('>').unwrap_or(block.len())]);
            let content = block
                .find("<content ")
                .map(|i| &block[i..i + block[i..].find('>').unwrap_or(0)])
                .unwrap_or("");
            format!(
                "{} type={} default={:?} required={} deprecated={} obsoletes={}",
                attr(&head, "name"),
                attr(content, "type"),
                attr(content, "default"),
                attr(&head, "required"),
                attr(&head, "deprecated"),
                attr(&head, "obsoletes"),
            )
        })
        .collect()
}

/// Invoked under another name (Debian ships these as copies of fence_ipmilan; upstream as
/// symlinks), the agent changes defaults: lanplus=1 for fence_ipmilanplus/ilo3/4/5, power_wait=4
/// for fence_ilo3. Ours, run through a symlink of that name, must describe the same defaults,
/// types and required/deprecated/obsoletes flags as the reference does.
#[test]
fn parity_metadata_defaults_under_every_invoked_name() {
    let dir = std::env::temp_dir().join(format!("fence-parity-names-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut problems = Vec::new();
    for name in [
        "fence_ipmilan",
        "fence_ipmilanplus",
        "fence_ilo3",
        "fence_ilo4",
        "fence_ilo5",
        "fence_imm",
        "fence_idrac",
    ] {
        let reference = Path::new("/usr/sbin").join(name);
        assert!(
            reference.is_file(),
            "{} is missing: apt-get install fence-agents",
            reference.display()
        );
        let ours = dir.join(name);
        std::os::unix::fs::symlink(our_binary(), &ours).expect("symlink our binary");
        let (rc, ref_xml, _, _) = run_agent(&reference, Input::Argv("-o metadata"), 0);
        assert_eq!(rc, 0, "{name} -o metadata failed");
        let (rc, our_xml, err, _) = run_agent(&ours, Input::Argv("-o metadata"), 0);
        assert_eq!(rc, 0, "fence_ipmi as {name} -o metadata failed: {err}");
        if !our_xml.contains(&format!("<resource-agent name=\"{name}\"")) {
            problems.push(format!(
                "as {name}: the root element does not carry name=\"{name}\""
            ));
        }
        let ours_facts: Vec<String> = parameter_facts(&our_xml)
            .into_iter()
            .filter(|f| {
                !EXTRA_PARAMETERS
                    .iter()
                    .any(|(n, _)| f.starts_with(&format!("{n} ")))
            })
            .collect();
        let ref_facts = parameter_facts(&ref_xml);
        assert!(ref_facts.len() > 30, "could not read {name}'s parameters");
        // Guard the parser: the per-name defaults must be visible in the facts it extracts.
        let lanplus_default = if name.starts_with("fence_ilo") || name == "fence_ipmilanplus" {
            "1"
        } else {
            "0"
        };
        let power_wait_default = if name == "fence_ilo3" { "4" } else { "2" };
        for expected in [
            format!("lanplus type=boolean default=\"{lanplus_default}\" "),
            format!("power_wait type=second default=\"{power_wait_default}\" "),
        ] {
            assert!(
                ref_facts.iter().any(|f| f.starts_with(&expected)),
                "{name}: expected `{expected}` among {ref_facts:?}"
            );
        }
        for (theirs, mine) in ref_facts.iter().zip(&ours_facts) {
            if theirs != mine {
                problems.push(format!(
                    "as {name}: fence_ipmilan has `{theirs}`, ours `{mine}`"
                ));
            }
        }
        if ref_facts.len() != ours_facts.len() {
            problems.push(format!(
                "as {name}: {} parameters, fence_ipmilan {}",
                ours_facts.len(),
                ref_facts.len()
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        problems.is_empty(),
        "metadata differences:\n{}",
        problems.join("\n")
    );
}

// ------------------------------------------------------------------------------------------
// The table as documentation
// ------------------------------------------------------------------------------------------

fn show_expect(e: &Expect) -> String {
    let stdout = if e.stdout.is_empty() {
        "(empty)".to_string()
    } else {
        format!("`{}`", e.stdout.trim_end().replace('|', "\\|"))
    };
    let events = if e.events.is_empty() {
        "none".to_string()
    } else {
        e.events.join(", ")
    };
    format!("{} | {} | {}", e.rc, stdout, events)
}

fn show_input(input: Input) -> String {
    match input {
        Input::Argv(a) => format!(
            "argv `{}`",
            a.replace(LANPLUS, "$LANPLUS").replace('|', "\\|")
        ),
        Input::Stdin("") => "stdin (empty)".to_string(),
        Input::Stdin(s) => format!(
            "stdin `{}`",
            s.trim_end()
                .replace("ip=127.0.0.1\nipport={PORT}\nusername=admin\npassword=secret\nlanplus=1\ncipher=3\n", "$BASE ")
                .replace('\n', " ")
                .replace('|', "\\|")
        ),
    }
}

fn render_doc() -> String {
    let mut doc = String::new();
    doc.push_str(
        "# fence_ipmi parity with fence_ipmilan (fence-agents 4.12.1)\n\n\
         Generated from the table in `agents/fence_ipmi/tests/parity.rs` \
         (`UPDATE_PARITY_DOC=1 cargo test -p fence_ipmi --test parity`). Each row runs \
         Debian's `fence_ipmilan` and our `fence_ipmi` against their own fresh OpenIPMI \
         `ipmi_sim` in the same initial state, and checks exit code, stdout and the power events \
         the simulator logged. Rows marked **differs** are deliberate.\n\n\
         `$LANPLUS` = `--ip=127.0.0.1 --ipport={PORT} --username=admin --password=secret --lanplus --cipher=3`; \
         `$BASE` = stdin lines `ip=127.0.0.1 ipport={PORT} username=admin password=secret lanplus=1 cipher=3`.\n\n\
         Also checked on every row: when fence_ipmilan's stderr contains `Unrecognised action` or \
         `timed out` (words Pacemaker's fencer maps to EOPNOTSUPP / ETIME), ours contains them too; \
         every failure of ours (exit 1) explains itself on stderr (ours names the cause, e.g. a \
         rejected password or no answer from the BMC, where fence_ipmilan says \
         `Unable to obtain correct plug status`); no password ever appears in our stdout or stderr. \
         Separate tests check that both agents' metadata list the same parameters and actions in \
         the same order, and that under every invoked name (`fence_ipmilan`, `fence_ipmilanplus`, \
         `fence_ilo3/4/5`, `fence_imm`, `fence_idrac`) each parameter has the same type, default \
         and required/deprecated/obsoletes flags.\n\n\
         | case | BMC | power before | input | fence_ipmilan rc \\| stdout \\| events | fence_ipmi |\n\
         |---|---|---|---|---|---|\n",
    );
    for c in CASES {
        let bmc = match c.mode {
            BmcMode::Normal => "ipmi_sim",
            BmcMode::ClosedPort => "closed port",
            BmcMode::Silent => "silent (never answers)",
            BmcMode::HangsOnControl => "hangs on chassis control",
            BmcMode::IgnoresPowerChanges => "ignores power changes",
            BmcMode::IgnoresPowerOn => "powers off, ignores power on",
        };
        let power = match c.initial {
            On => "on",
            Off => "off",
        };
        let mut ours = match c.ours {
            Ours::Same => "same".to_string(),
            Ours::Differs { expect, why } => {
                format!(
                    "**differs**: {} — {}",
                    show_expect(&expect).replace(" | ", " \\| "),
                    why.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            }
        };
        if let Some(why) = c.keyword_waiver {
            let _ = write!(
                ours,
                "; stderr wording differs: {}",
                why.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
        let name = if c.min_elapsed_ms > 0 {
            format!("{} (both take >= {} ms)", c.name, c.min_elapsed_ms)
        } else {
            c.name.to_string()
        };
        let _ = writeln!(
            doc,
            "| {} | {} | {} | {} | {} | {} |",
            name,
            bmc,
            power,
            show_input(c.input),
            show_expect(&c.reference).replace(" | ", " \\| "),
            ours
        );
    }
    doc.push_str(
        "\nMetadata: same parameters in the same order and the same actions as fence_ipmilan, \
         plus these deliberate extras:\n\n",
    );
    for (name, why) in EXTRA_PARAMETERS {
        let _ = writeln!(doc, "- `{name}`: {why}");
    }
    doc
}

#[test]
fn parity_doc_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/fence_ipmi-parity.md");
    let rendered = render_doc();
    if std::env::var_os("UPDATE_PARITY_DOC").is_some() {
        std::fs::write(&path, &rendered).expect("write docs/fence_ipmi-parity.md");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == rendered,
        "{} is stale: run UPDATE_PARITY_DOC=1 cargo test -p fence_ipmi --test parity",
        path.display()
    );
}
