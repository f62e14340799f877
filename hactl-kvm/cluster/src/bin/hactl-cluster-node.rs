//! `hactl-cluster-node`: runs one replication-group member and answers line commands on stdin
//! with one JSON line each on stdout. It stands in for the daemon's control socket in tests
//! (and lets an operator poke a group by hand) until `hactl-kvm run` embeds [`ClusterNode`].
//!
//! ```text
//! hactl-cluster-node --journal PATH [--cluster-size 3] [--group hactl-kvm] [--lease-ms 2000] [--poll-ms 200] [--grace-ms 4000]
//! commands: status | promote | propose TEXT | snapshot TEXT | authorize EPOCH | quit
//! (`snapshot TEXT` compacts the log at its current head into one entry carrying TEXT)
//! ```

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hactl_cluster::{ClusterNode, NodeConfig};
use serde_json::json;

const USAGE: &str = "usage: hactl-cluster-node --journal PATH [--cluster-size N] [--group NAME] [--lease-ms MS] [--poll-ms MS] [--grace-ms MS]";

fn parse(args: &[String]) -> Result<NodeConfig, String> {
    let mut cfg = NodeConfig {
        group: "hactl-kvm".into(),
        journal: PathBuf::new(),
        cluster_size: 3,
        quorum_lease: Duration::from_millis(2000),
        poll_interval: Duration::from_millis(200),
        takeover_grace: Duration::from_millis(4000),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        let number = |v: &String| {
            v.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{a}: not a positive number: {v:?}"))
        };
        match a.as_str() {
            "--journal" => cfg.journal = PathBuf::from(value()?),
            "--group" => cfg.group = value()?.clone(),
            "--cluster-size" => cfg.cluster_size = number(value()?)? as usize,
            "--lease-ms" => cfg.quorum_lease = Duration::from_millis(number(value()?)?),
            "--poll-ms" => cfg.poll_interval = Duration::from_millis(number(value()?)?),
            "--grace-ms" => cfg.takeover_grace = Duration::from_millis(number(value()?)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if cfg.journal.as_os_str().is_empty() {
        return Err("--journal is required".into());
    }
    if cfg.poll_interval >= cfg.quorum_lease {
        return Err("--poll-ms must be below --lease-ms (the lease is renewed by polling)".into());
    }
    Ok(cfg)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hactl-cluster-node: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let node = match ClusterNode::start(cfg) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("hactl-cluster-node: {e}");
            return ExitCode::from(1);
        }
    };
    let timeout = Duration::from_secs(10);
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (cmd, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let answer = match cmd {
            "status" => serde_json::to_value(node.status()).expect("status encodes"),
            "promote" => match node.promote(timeout) {
                Ok(()) => json!({"ok": true}),
                Err(e) => json!({"error": e.to_string()}),
            },
            "propose" => match node.propose(arg.to_string(), timeout) {
                Ok(seq) => json!({"ok": true, "seq": seq}),
                Err(e) => json!({"error": e.to_string()}),
            },
            "snapshot" => {
                let head = node.status().head;
                match node.propose_snapshot(head, arg.to_string(), timeout) {
                    Ok(seq) => json!({"ok": true, "seq": seq}),
                    Err(e) => json!({"error": e.to_string()}),
                }
            }
            "authorize" => match arg.parse::<u64>() {
                Ok(epoch) => match node.authorize_power(epoch) {
                    Ok(()) => json!({"ok": true}),
                    Err(e) => json!({"error": e.to_string()}),
                },
                Err(_) => json!({"error": format!("authorize needs an epoch number, got {arg:?}")}),
            },
            "quit" => break,
            other => json!({"error": format!("unknown command {other:?}")}),
        };
        let mut out = stdout.lock();
        if writeln!(out, "{answer}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}
