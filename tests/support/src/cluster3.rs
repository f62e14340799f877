//! A real three-node Corosync cluster on one machine, each node in network, mount and UTS
//! namespaces of its own, joined by a bridge inside a "switch" namespace.
//!
//! Addresses (10.99.0.N/24) exist only inside the namespaces this module creates; the root
//! namespace gets no interface and no route. Isolating node N takes its switch port down; healing
//! brings it up. Each node has private `/run`, `/etc/corosync`, `/var/lib/corosync`,
//! `/var/log/corosync` and `/dev/shm` (Corosync's pid file and libqb's ring buffers are at fixed
//! paths), kept alive by bind-mounted namespace files.
//!
//! Processes are started through `nsenter` (which does not fork for these namespaces, so the PID
//! is the program's own) and stopped by PID after checking that the PID still lives in the node's
//! network namespace. Dropping the [`Cluster3`] (also while a test panics) stops everything and
//! removes every namespace, mount and directory; a cluster left behind by a test process that was
//! killed outright is removed by the next [`Cluster3::start`].
//!
//! Only one cluster runs at a time on the machine: [`Cluster3::start`] takes the same lock as the
//! single-node [`crate::Cluster`].

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::kill;
pub use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::pacemaker::MachineLock;
use crate::peers::{require, wait_until};

/// Netns names start with this, then the owning test process's PID, `x` and a counter.
const PREFIX: &str = "hkt";
/// Where the per-cluster directories live.
const BASE_ROOT: &str = "/tmp";
/// The node subnet (inside the namespaces only).
const NET: &str = "10.99.0";
/// Nodes.
pub const NODES: [usize; 3] = [1, 2, 3];

/// A running three-node Corosync cluster. Dropping it tears everything down.
pub struct Cluster3 {
    tag: String,
    base: PathBuf,
    children: Vec<(usize, Child)>,
    torn_down: bool,
    _lock: MachineLock,
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn must(cmd: &mut Command) {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn netns_inode(name: &str) -> Option<u64> {
    fs::metadata(format!("/run/netns/{name}"))
        .ok()
        .map(|m| m.ino())
}

fn pid_netns_inode(pid: u32) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

fn is_mountpoint(path: &Path) -> bool {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.to_string_lossy();
    text.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == p))
}

fn corosync_conf(tag: &str, members: &[usize], two_node: bool) -> String {
    let mut s = format!(
        "totem {{\n    version: 2\n    cluster_name: {tag}\n    transport: knet\n    token: 1000\n    \
         crypto_cipher: none\n    crypto_hash: none\n}}\nnodelist {{\n"
    );
    for n in members {
        s.push_str(&format!(
            "    node {{\n        name: node{n}\n        nodeid: {n}\n        ring0_addr: {NET}.{n}\n    }}\n"
        ));
    }
    s.push_str("}\nquorum {\n    provider: corosync_votequorum\n");
    if two_node {
        s.push_str("    two_node: 1\n");
    }
    s.push_str(
        "}\n\
         logging {\n    to_logfile: yes\n    logfile: /var/log/corosync/corosync.log\n    \
         to_syslog: no\n    to_stderr: no\n    timestamp: hires\n}\n\
         system {\n    move_to_root_cgroup: no\n}\n",
    );
    s
}

/// Quorum as `corosync-quorumtool -s` reports it on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// "Quorate: Yes".
    pub quorate: bool,
    /// "Nodes: N".
    pub nodes: usize,
}

impl Cluster3 {
    /// Takes the machine-wide cluster lock, removes clusters left by dead test processes, builds
    /// the namespaces and starts Corosync on the three nodes; returns once all three are quorate
    /// with three members. Panics with the package to install when a peer is missing.
    pub fn start() -> Cluster3 {
        Cluster3::start_members(&NODES, false)
    }

    /// A two-node Corosync cluster (nodes 1 and 2, `two_node: 1` in votequorum) built the same
    /// way; node 3's namespaces exist but run nothing and are not in the nodelist.
    pub fn start_two_node() -> Cluster3 {
        Cluster3::start_members(&[1, 2], true)
    }

    fn start_members(members: &[usize], two_node: bool) -> Cluster3 {
        require("corosync", "corosync");
        require("corosync-quorumtool", "corosync");
        require("ip", "iproute2");
        require("nsenter", "util-linux");
        require("unshare", "util-linux");
        let lock = MachineLock::acquire();
        remove_stale_clusters();

        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("{PREFIX}{}x{k}", std::process::id());
        let base = PathBuf::from(BASE_ROOT).join(format!("{tag}-cluster"));
        let mut c = Cluster3 {
            tag,
            base,
            children: Vec::new(),
            torn_down: false,
            _lock: lock,
        };
        c.build(members, two_node);
        for &n in members {
            c.start_corosync(n);
        }
        let ok = wait_until(Duration::from_secs(30), || {
            members.iter().all(|&n| {
                c.quorum(n)
                    == Some(QuorumStatus {
                        quorate: true,
                        nodes: members.len(),
                    })
            })
        });
        assert!(
            ok,
            "the {} corosync nodes did not form a quorate cluster within 30 s; node1 log:\n{}",
            members.len(),
            c.corosync_log(1)
        );
        c
    }

    fn ns_dir(&self) -> PathBuf {
        self.base.join("ns")
    }

    fn netns(&self, n: usize) -> String {
        format!("{}n{n}", self.tag)
    }

    fn switch(&self) -> String {
        format!("{}sw", self.tag)
    }

    /// The directory of node `n` on the host (its `/run`, `/etc/corosync`, logs, ...).
    pub fn node_dir(&self, n: usize) -> PathBuf {
        self.base.join(format!("node{n}"))
    }

    /// A scratch directory of node `n` for the test's own files (visible inside the node too).
    pub fn data_dir(&self, n: usize) -> PathBuf {
        self.node_dir(n).join("data")
    }

    fn build(&mut self, members: &[usize], two_node: bool) {
        let nsd = self.ns_dir();
        fs::create_dir_all(&nsd).expect("create ns dir");
        // Namespace files may only be bind-mounted onto a private mount.
        must(Command::new("mount").arg("--bind").arg(&nsd).arg(&nsd));
        must(Command::new("mount").arg("--make-private").arg(&nsd));
        let sw = self.switch();
        must(Command::new("ip").args(["netns", "add", &sw]));
        self.quiet_ipv6(&sw);
        must(Command::new("ip").args(["-n", &sw, "link", "set", "lo", "up"]));
        must(Command::new("ip").args(["-n", &sw, "link", "add", "br0", "type", "bridge"]));
        must(Command::new("ip").args(["-n", &sw, "link", "set", "br0", "up"]));
        for n in NODES {
            let d = self.node_dir(n);
            for sub in ["etc", "run", "lib", "log", "data"] {
                fs::create_dir_all(d.join(sub)).expect("node dir");
            }
            pacemaker_dirs(&d);
            fs::write(
                d.join("etc/corosync.conf"),
                corosync_conf(&self.tag, members, two_node),
            )
            .expect("corosync.conf");
            // The node names resolve inside the nodes (crmsh checks a node it is told about).
            let mut hosts = String::from("127.0.0.1 localhost\n");
            for m in NODES {
                hosts.push_str(&format!("{NET}.{m} node{m}\n"));
            }
            fs::write(d.join("hosts"), hosts).expect("hosts");
            let ns = self.netns(n);
            must(Command::new("ip").args(["netns", "add", &ns]));
            self.quiet_ipv6(&ns);
            let veth = format!("veth{n}");
            must(Command::new("ip").args([
                "-n", &sw, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]));
            must(Command::new("ip").args(["-n", &sw, "link", "set", &veth, "master", "br0", "up"]));
            must(Command::new("ip").args(["-n", &ns, "link", "set", "lo", "up"]));
            must(Command::new("ip").args([
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{NET}.{n}/24"),
                "dev",
                "eth0",
            ]));
            must(Command::new("ip").args(["-n", &ns, "link", "set", "eth0", "up"]));

            let mnt = nsd.join(format!("mnt{n}"));
            let uts = nsd.join(format!("uts{n}"));
            File::create(&mnt).expect("mnt ns file");
            File::create(&uts).expect("uts ns file");
            let d = d.display();
            let nsd_s = nsd.display();
            // Inside the new mount namespace: drop the copies of other namespaces' bind mounts
            // (they would pin those namespaces), then give the node its private directories.
            let script = format!(
                "set -e
                 if mountpoint -q /run/netns; then umount -l /run/netns; fi
                 umount -l {nsd_s}
                 mount --bind {d}/run /run
                 mount --bind {d}/etc /etc/corosync
                 mount --bind {d}/lib /var/lib/corosync
                 mkdir -p /var/log/corosync
                 mount --bind {d}/log /var/log/corosync
                 mkdir -p /var/lib/pacemaker /var/log/pacemaker
                 mount --bind {d}/pcmk /var/lib/pacemaker
                 mount --bind {d}/pcmklog /var/log/pacemaker
                 mount -t tmpfs -o mode=1777,size=64m {tag}shm{n} /dev/shm
                 mount --bind {d}/hosts /etc/hosts
                 hostname node{n}",
                tag = self.tag
            );
            must(
                Command::new("unshare")
                    .arg(format!("--mount={}", mnt.display()))
                    .arg(format!("--uts={}", uts.display()))
                    .args(["--propagation", "private", "sh", "-c", &script]),
            );
        }
    }

    fn quiet_ipv6(&self, ns: &str) {
        // IPv4 only: keeps the segment free of IPv6 link-local chatter.
        let _ = run(Command::new("ip").args([
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]));
    }

    /// A command that runs `program` inside node `n`'s network, mount and UTS namespaces.
    pub fn command(&self, n: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let nsd = self.ns_dir();
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.netns(n)))
            .arg(format!("--mount={}", nsd.join(format!("mnt{n}")).display()))
            .arg(format!("--uts={}", nsd.join(format!("uts{n}")).display()))
            .arg("--wd=/")
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `args` inside node `n` and returns its output.
    pub fn exec(&self, n: usize, args: &[&str]) -> Output {
        let mut c = self.command(n, args[0]);
        c.args(&args[1..]);
        run(&mut c)
    }

    /// Starts a long-running process inside node `n`; it is stopped by PID at teardown, or
    /// earlier by [`Cluster3::stop`]. Returns its PID.
    pub fn spawn(&mut self, n: usize, mut cmd: Command) -> u32 {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?} in node{n}: {e}"));
        let pid = child.id();
        self.children.push((n, child));
        pid
    }

    /// Starts `cmd` (from [`Cluster3::command`]) in node `n` with piped stdin/stdout, and keeps
    /// its PID for teardown. The caller takes the pipes from the returned child handle's fields
    /// via [`Cluster3::take_pipes`].
    pub fn spawn_piped(&mut self, n: usize, mut cmd: Command) -> u32 {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        self.spawn(n, cmd)
    }

    /// The stdin/stdout pipes of a process started with [`Cluster3::spawn_piped`].
    pub fn take_pipes(
        &mut self,
        pid: u32,
    ) -> (std::process::ChildStdin, std::process::ChildStdout) {
        let child = self
            .children
            .iter_mut()
            .find(|(_, c)| c.id() == pid)
            .map(|(_, c)| c)
            .expect("a process this cluster started");
        (
            child.stdin.take().expect("piped stdin"),
            child.stdout.take().expect("piped stdout"),
        )
    }

    fn start_corosync(&mut self, n: usize) {
        let mut cmd = self.command(n, "corosync");
        let out = File::create(self.node_dir(n).join("corosync.out")).expect("corosync.out");
        cmd.arg("-f")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out);
        let pid = self.spawn(n, cmd);
        let ok = wait_until(Duration::from_secs(10), || {
            self.exec(n, &["corosync-cfgtool", "-s"]).status.success()
        });
        assert!(
            ok,
            "corosync (PID {pid}) on node{n} does not answer; its output:\n{}\nlog:\n{}",
            fs::read_to_string(self.node_dir(n).join("corosync.out")).unwrap_or_default(),
            self.corosync_log(n)
        );
    }

    /// Whether `pid` is alive and lives in node `n`'s network namespace (i.e. is really ours).
    fn ours(&self, pid: u32, n: usize) -> bool {
        let ns = netns_inode(&self.netns(n));
        ns.is_some() && pid_netns_inode(pid) == ns
    }

    /// Stops a process this cluster started: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, pid: u32, grace: Duration) {
        let Some(i) = self.children.iter().position(|(_, c)| c.id() == pid) else {
            return;
        };
        let (n, mut child) = self.children.remove(i);
        if matches!(child.try_wait(), Ok(None)) && self.ours(pid, n) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The PID of node `n`'s corosync.
    pub fn corosync_pid(&self, n: usize) -> u32 {
        self.children
            .iter()
            .find(|(m, c)| *m == n && self.is_corosync(c.id()))
            .map(|(_, c)| c.id())
            .unwrap_or_else(|| panic!("corosync of node{n} is not running"))
    }

    /// Sends `signal` to a process this cluster started in node `n` (e.g. SIGSTOP/SIGCONT to make
    /// corosync hang), after checking it still lives in that node's network namespace.
    pub fn signal(&self, n: usize, pid: u32, signal: Signal) {
        assert!(
            self.children.iter().any(|(m, c)| *m == n && c.id() == pid) && self.ours(pid, n),
            "PID {pid} is not a process of node{n} that this cluster started"
        );
        kill(Pid::from_raw(pid as i32), signal).expect("kill");
    }

    /// Sends SIGKILL to a process this cluster started (a crash), and reaps it.
    pub fn kill(&mut self, pid: u32) {
        self.stop(pid, Duration::ZERO);
    }

    /// Runs `f` on a thread that entered node `n`'s network namespace: the sockets it creates
    /// belong to that namespace (and stay there when the thread ends).
    pub fn in_netns<T: Send + 'static>(
        &self,
        n: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/run/netns/{}", self.netns(n));
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        })
        .join()
        .expect("netns thread")
    }

    /// Makes TCP `127.0.0.1:port` inside node `n` reach `127.0.0.1:port` of the test's own
    /// namespace (a peer such as the CloudStack API double), over a path that [`Cluster3::isolate`]
    /// does not cut: only the Corosync ring is isolated, the node still reaches its peers.
    pub fn forward_tcp(&self, n: usize, port: u16) {
        let listener = self.in_netns(n, move || {
            std::net::TcpListener::bind(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port} in node{n}: {e}"))
        });
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                let Ok(outbound) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (inbound.try_clone(), outbound.try_clone()),
                    (outbound.try_clone(), inbound.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
    }

    /// Makes UDP `127.0.0.1:port` inside node `n` reach `127.0.0.1:port` of the test's own
    /// namespace (an `ipmi_sim` BMC): one upstream socket per client address, answers relayed
    /// back to it. Like [`Cluster3::forward_tcp`], not cut by [`Cluster3::isolate`].
    pub fn forward_udp(&self, n: usize, port: u16) {
        use std::collections::HashMap;
        use std::net::{SocketAddr, UdpSocket};
        let inside = self.in_netns(n, move || {
            UdpSocket::bind(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("bind udp 127.0.0.1:{port} in node{n}: {e}"))
        });
        std::thread::spawn(move || {
            let mut upstream: HashMap<SocketAddr, UdpSocket> = HashMap::new();
            let mut buf = [0u8; 65536];
            loop {
                let Ok((len, client)) = inside.recv_from(&mut buf) else {
                    return;
                };
                if let std::collections::hash_map::Entry::Vacant(slot) = upstream.entry(client) {
                    let Ok(up) = UdpSocket::bind("127.0.0.1:0") else {
                        continue;
                    };
                    if up.connect(("127.0.0.1", port)).is_err() {
                        continue;
                    }
                    let (Ok(back), Ok(reply_to)) = (up.try_clone(), inside.try_clone()) else {
                        continue;
                    };
                    std::thread::spawn(move || {
                        let mut b = [0u8; 65536];
                        while let Ok(l) = back.recv(&mut b) {
                            let _ = reply_to.send_to(&b[..l], client);
                        }
                    });
                    slot.insert(up);
                }
                let _ = upstream[&client].send(&buf[..len]);
            }
        });
    }

    /// Cuts node `n` off the switch.
    pub fn isolate(&self, n: usize) {
        must(Command::new("ip").args([
            "-n",
            &self.switch(),
            "link",
            "set",
            &format!("veth{n}"),
            "down",
        ]));
    }

    /// Reconnects node `n`.
    pub fn heal(&self, n: usize) {
        must(Command::new("ip").args([
            "-n",
            &self.switch(),
            "link",
            "set",
            &format!("veth{n}"),
            "up",
        ]));
    }

    /// `corosync-quorumtool -s` on node `n`, or None when it does not answer.
    pub fn quorum(&self, n: usize) -> Option<QuorumStatus> {
        let mut c = self.command(n, "timeout");
        c.args(["5", "corosync-quorumtool", "-s"]);
        let out = run(&mut c);
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        };
        Some(QuorumStatus {
            quorate: field("Quorate")? == "Yes",
            nodes: field("Nodes")?.parse().ok()?,
        })
    }

    /// Node `n`'s corosync log.
    pub fn corosync_log(&self, n: usize) -> String {
        fs::read_to_string(self.node_dir(n).join("log/corosync.log")).unwrap_or_default()
    }

    /// Starts Pacemaker on the three nodes (each with a fresh CIB: `dc-deadtime=2s`,
    /// `stonith-enabled=false`) and waits until all three are online with a DC elected.
    /// Stopped before Corosync at teardown. Panics with the package to install when Pacemaker
    /// is missing.
    pub fn start_pacemaker(&mut self) {
        let pacemakerd = require("pacemakerd", "pacemaker");
        require("crm_mon", "pacemaker-cli-utils");
        for n in NODES {
            let d = self.node_dir(n);
            crate::pacemaker::seed_cib(&d.join("pcmk/cib"));
            let out = File::create(d.join("pacemakerd.out")).expect("pacemakerd.out");
            let mut cmd = self.command(n, &pacemakerd);
            cmd.env("PCMK_logfile", "/var/log/pacemaker/pacemaker.log")
                .env("PCMK_debug", "no")
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out);
            self.spawn(n, cmd);
        }
        let (ok, status) = self.wait_for_status(1, Duration::from_secs(90), |s| {
            s.contains("Online: [ node1 node2 node3 ]")
                && s.contains("Current DC: node")
                && s.contains("partition with quorum")
        });
        assert!(
            ok,
            "Pacemaker did not bring the three nodes online with a DC within 90 s:\n{status}\n\
             node1's pacemaker log (tail):\n{}",
            self.pacemaker_log_tail(1, 60)
        );
    }

    /// `crm_mon -1 -r` on node `n`.
    pub fn crm_mon(&self, n: usize) -> String {
        let out = self.exec(n, &["crm_mon", "-1", "-r"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `crm_mon` on node `n` until `cond(output)` holds or `timeout` passes; returns
    /// whether it held and the last output.
    pub fn wait_for_status(
        &self,
        n: usize,
        timeout: Duration,
        mut cond: impl FnMut(&str) -> bool,
    ) -> (bool, String) {
        let mut last = String::new();
        let ok = wait_until(timeout, || {
            last = self.crm_mon(n);
            cond(&last)
        });
        (ok, last)
    }

    /// `crm ARGS` on node `n`, panicking with crm's output when it fails.
    pub fn crm(&self, n: usize, args: &[&str]) {
        require("crm", "crmsh");
        let mut full = vec!["crm"];
        full.extend_from_slice(args);
        let out = self.exec(n, &full);
        crate::pacemaker::assert_crm_succeeded(&format!("{} on node{n}", full.join(" ")), &out);
    }

    /// The last `lines` lines of node `n`'s Pacemaker log.
    pub fn pacemaker_log_tail(&self, n: usize, lines: usize) -> String {
        crate::pacemaker::log_tail(&self.node_dir(n).join("pcmklog/pacemaker.log"), lines)
    }

    /// Netns names of this cluster (for tests that check the teardown).
    pub fn netns_names(&self) -> Vec<String> {
        let mut v: Vec<String> = NODES.iter().map(|&n| self.netns(n)).collect();
        v.push(self.switch());
        v
    }

    /// The base directory on the host.
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        // Our own processes first (test programs, then corosync), by PID.
        let pids: Vec<(usize, u32, bool)> = self
            .children
            .iter()
            .map(|(n, c)| (*n, c.id(), self.is_corosync(c.id())))
            .collect();
        // Pacemaker first, all nodes at once: it stops its resources (and needs Corosync for
        // that), then the test's other programs.
        let pcmk: Vec<(usize, u32)> = pids
            .iter()
            .filter(|&&(n, pid, _)| is_pacemakerd(pid) && self.ours(pid, n))
            .map(|&(n, pid, _)| (n, pid))
            .collect();
        for &(_, pid) in &pcmk {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        for &(_, pid) in &pcmk {
            self.stop(pid, Duration::from_secs(60));
        }
        for &(_, pid, is_cs) in &pids {
            if !is_cs {
                self.stop(pid, Duration::from_secs(2));
            }
        }
        for &(_, pid, is_cs) in &pids {
            if is_cs {
                self.stop(pid, Duration::from_secs(15));
            }
        }
        destroy(&self.tag, &self.base);
    }

    fn is_corosync(&self, pid: u32) -> bool {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "corosync")
    }

    /// Stops everything and removes the namespaces now (dropping does the same).
    pub fn down(mut self) {
        self.teardown();
    }
}

impl Drop for Cluster3 {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn is_pacemakerd(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "pacemakerd")
}

/// Pacemaker's private directories of one node (bind-mounted inside it on `/var/lib/pacemaker`
/// and `/var/log/pacemaker`; `/run/crm` lives in its private `/run`), owned by `hacluster` as
/// the daemons need when the user exists (it comes with the pacemaker package).
fn pacemaker_dirs(d: &Path) {
    let subs = [
        "pcmk/cib",
        "pcmk/pengine",
        "pcmk/blackbox",
        "pcmk/cores",
        "pcmklog",
        "run/crm",
    ];
    for sub in subs {
        fs::create_dir_all(d.join(sub)).expect("pacemaker dir");
    }
    let uid = nix::unistd::User::from_name("hacluster")
        .ok()
        .flatten()
        .map(|u| u.uid);
    let gid = nix::unistd::Group::from_name("haclient")
        .ok()
        .flatten()
        .map(|g| g.gid);
    if uid.is_none() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    for sub in ["pcmk"].iter().chain(subs.iter()) {
        let p = d.join(sub);
        nix::unistd::chown(&p, uid, gid).expect("chown pacemaker dir to hacluster:haclient");
        let mode = if *sub == "pcmklog" { 0o770 } else { 0o750 };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod pacemaker dir");
    }
}

/// Removes what a cluster tagged `tag` left: processes inside its namespaces (all started by
/// that cluster), its namespace mounts, namespaces and directory.
fn destroy(tag: &str, base: &Path) {
    for n in NODES {
        let ns = format!("{tag}n{n}");
        if netns_inode(&ns).is_none() {
            continue;
        }
        // Anything still inside the node's network namespace was started by this cluster.
        for round in 0..50 {
            let out = run(Command::new("ip").args(["netns", "pids", &ns]));
            let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            if pids.is_empty() {
                break;
            }
            let sig = if round < 20 {
                Signal::SIGTERM
            } else {
                Signal::SIGKILL
            };
            if round % 10 == 0 {
                for p in pids {
                    let _ = kill(Pid::from_raw(p), sig);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let nsd = base.join("ns");
    for n in NODES {
        for f in [format!("mnt{n}"), format!("uts{n}")] {
            let p = nsd.join(f);
            if is_mountpoint(&p) {
                let _ = run(Command::new("umount").arg(&p));
            }
        }
        let ns = format!("{tag}n{n}");
        if netns_inode(&ns).is_some() {
            let _ = run(Command::new("ip").args(["netns", "del", &ns]));
        }
    }
    let sw = format!("{tag}sw");
    if netns_inode(&sw).is_some() {
        let _ = run(Command::new("ip").args(["netns", "del", &sw]));
    }
    if is_mountpoint(&nsd) {
        let _ = run(Command::new("umount").arg(&nsd));
    }
    let _ = fs::remove_dir_all(base);
}

/// Removes clusters whose owning test process is gone (killed before it could clean up).
pub(crate) fn remove_stale_clusters() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    let mut tags: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| {
            let tag = name
                .strip_suffix("sw")
                .or_else(|| name.strip_suffix(&['1', '2', '3'][..])?.strip_suffix('n'))?;
            tag.strip_prefix(PREFIX)?.split_once('x')?;
            Some(tag.to_string())
        })
        .collect();
    tags.sort();
    tags.dedup();
    for tag in tags {
        let pid: i32 = tag[PREFIX.len()..]
            .split_once('x')
            .and_then(|(p, _)| p.parse().ok())
            .unwrap_or(0);
        if pid as u32 == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        destroy(
            &tag,
            &PathBuf::from(BASE_ROOT).join(format!("{tag}-cluster")),
        );
    }
}
