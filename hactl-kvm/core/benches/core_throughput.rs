//! Throughput of the decision core alone: 10,000 hosts in 500 clusters,
//! every operation answered after a short latency, a host crash every few
//! minutes. Prints inputs/s so the simulator benchmark's budget can be
//! split between core and world. Run: `cargo bench -p hactl-core`.
//! `HACTL_BENCH_HOURS` sets the virtual duration (default 2).

use hactl_core::*;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::time::Instant;

fn main() {
    let hours: u64 = std::env::var("HACTL_BENCH_HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let clusters = 500u32;
    let per = 20u32;
    let mut inv = Inventory::default();
    inv.zones.push(Zone {
        id: ZoneId(0),
        enabled: true,
    });
    inv.pods.push(Pod {
        id: PodId(0),
        zone: ZoneId(0),
        enabled: true,
    });
    for c in 0..clusters {
        inv.clusters.push(Cluster {
            id: ClusterId(c),
            pod: PodId(0),
            enabled: true,
            ha_enabled: true,
        });
        for k in 0..per {
            inv.hosts.push(Host {
                id: HostId(c * per + k),
                cluster: ClusterId(c),
                resource_state: ResourceState::Enabled,
                oobm_enabled: true,
                has_vms: true,
                overrides: HostOverrides::default(),
            });
        }
    }
    let mut core = Coordinator::new(Config::default(), 0).unwrap();
    let mut queue: BinaryHeap<Reverse<(u64, u64, usize)>> = BinaryHeap::new();
    let mut inputs: Vec<Option<Input>> = Vec::new();
    let mut seq = 0u64;
    let mut dead: HashSet<HostId> = HashSet::new();
    let mut out = Vec::with_capacity(64);
    let mut handled = 0u64;
    let mut fences = 0u64;
    let end = hours * 3_600_000;
    let started = Instant::now();
    let mut push =
        |queue: &mut BinaryHeap<_>, inputs: &mut Vec<Option<Input>>, at: u64, input: Input| {
            seq += 1;
            inputs.push(Some(input));
            queue.push(Reverse((at, seq, inputs.len() - 1)));
        };
    let mut now = 0u64;
    core.handle_into(0, Input::QuorumChanged { quorate: true }, &mut out);
    core.handle_into(0, Input::Inventory(inv), &mut out);
    let mut next_crash = 600_000u64;
    // The quorum provider renews the core's 30 s quorum lease.
    let mut next_quorum = 10_000u64;
    let mut crash_n = 0u32;
    loop {
        // Dispatch actions.
        for a in out.drain(..) {
            match a {
                Action::RunHealthCheck { op, .. } => {
                    if !dead.contains(&op.host) {
                        push(
                            &mut queue,
                            &mut inputs,
                            now + 20,
                            Input::HealthResult {
                                op,
                                outcome: HealthOutcome::Passed,
                            },
                        );
                    }
                }
                Action::RunActivityCheck {
                    op,
                    checker,
                    window_ms,
                    ..
                } => {
                    let verdict = if dead.contains(&op.host) {
                        ActivityVerdict::Dead
                    } else {
                        ActivityVerdict::Alive
                    };
                    push(
                        &mut queue,
                        &mut inputs,
                        now + window_ms,
                        Input::ActivityResult {
                            op,
                            checker,
                            verdict,
                            window: Window {
                                from: now,
                                to: now + window_ms,
                            },
                        },
                    );
                }
                Action::ReadPower { op, .. } => {
                    let reading = PowerReading::On;
                    push(
                        &mut queue,
                        &mut inputs,
                        now + 50,
                        Input::PowerReadResult { op, reading },
                    );
                }
                Action::PowerOff { op, .. } => {
                    fences += 1;
                    dead.remove(&op.host);
                    push(
                        &mut queue,
                        &mut inputs,
                        now + 50,
                        Input::PowerActionResult {
                            op,
                            outcome: PowerActionOutcome::Accepted,
                        },
                    );
                }
                Action::PowerOn { op, .. } | Action::PowerCycle { op, .. } => {
                    push(
                        &mut queue,
                        &mut inputs,
                        now + 50,
                        Input::PowerActionResult {
                            op,
                            outcome: PowerActionOutcome::Accepted,
                        },
                    );
                }
                Action::Emit(_) | Action::Persist(_) => {}
            }
        }
        let t_queue = queue.peek().map(|Reverse((t, _, _))| *t);
        let t_timer = core.next_timeout();
        let next = [t_queue, t_timer, Some(next_crash), Some(next_quorum)]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        if next > end {
            break;
        }
        now = next;
        if now == next_quorum {
            next_quorum += 10_000;
            core.handle_into(now, Input::QuorumChanged { quorate: true }, &mut out);
            handled += 1;
            continue;
        }
        if now == next_crash {
            dead.insert(HostId((crash_n * 7919) % (clusters * per)));
            crash_n += 1;
            next_crash += 300_000;
        }
        if t_queue == Some(now) {
            // Everything arriving at the same millisecond goes in one batch.
            let mut batch = Vec::new();
            while queue.peek().is_some_and(|Reverse((t, _, _))| *t == now) {
                let Reverse((_, _, i)) = queue.pop().unwrap();
                batch.push(inputs[i].take().unwrap());
            }
            handled += batch.len() as u64 - 1;
            core.handle_batch(now, batch, &mut out);
        } else {
            core.handle_into(now, Input::Tick, &mut out);
        }
        handled += 1;
        if inputs.len() > 1 << 20 && queue.is_empty() {
            inputs.clear();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "core_throughput: {} hosts, {} h virtual, {} inputs in {:.2} s wall = {:.0} inputs/s, fences {}",
        clusters * per,
        hours,
        handled,
        secs,
        handled as f64 / secs,
        fences
    );
}
