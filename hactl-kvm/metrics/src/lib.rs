//! hactl-kvm's metrics: a `prometheus-client` registry holding every
//! coordinator metric, the update API the daemon calls, and a small HTTP
//! endpoint serving the OpenMetrics exposition at `/metrics`.
//!
//! Metric names (all prefixed `hactl_`):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `hactl_hosts` | gauge | `state` (HA state) |
//! | `hactl_partitions` | gauge | `state` (partition state) |
//! | `hactl_power_reads_total` | counter | `result` (on, off, unknown, unreachable) |
//! | `hactl_power_read_duration_seconds` | histogram | |
//! | `hactl_health_check_duration_seconds` | histogram | |
//! | `hactl_activity_check_duration_seconds` | histogram | |
//! | `hactl_fences_issued_total` / `_confirmed_total` / `_failed_total` | counter | |
//! | `hactl_rate_cap_tripped` | gauge 0/1 | `scope` (global or the partition) |
//! | `hactl_mass_failure_active` | gauge 0/1 | `partition` |
//! | `hactl_quorate` | gauge 0/1 | |
//! | `hactl_journal_fsync_duration_seconds` | histogram | |
//!
//! The alert rules and the Grafana dashboard in `hactl-kvm/monitoring/` use
//! these names; a test checks that every name they use is exposed.

use hactl_core::{
    AttemptFailure, ClusterId, Event, HaState, PartitionState, PowerReading, RateScope,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::time::Duration;

mod http;
pub use http::{bind, serve, MetricsServerError, CONTENT_TYPE, DEFAULT_LISTEN};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabel {
    partition: String,
}

/// Every metric of the coordinator. Cheap to share (`Arc<Metrics>`); all
/// update methods take `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    hosts: Family<StateLabel, Gauge>,
    partitions: Family<StateLabel, Gauge>,
    power_reads: Family<ResultLabel, Counter>,
    power_read_seconds: Histogram,
    health_check_seconds: Histogram,
    activity_check_seconds: Histogram,
    fences_issued: Counter,
    fences_confirmed: Counter,
    fences_failed: Counter,
    rate_cap_tripped: Family<ScopeLabel, Gauge>,
    mass_failure: Family<PartitionLabel, Gauge>,
    quorate: Gauge,
    journal_fsync_seconds: Histogram,
}

fn scope_label(scope: RateScope) -> ScopeLabel {
    ScopeLabel {
        scope: match scope {
            RateScope::Global => "global".into(),
            RateScope::Partition(c) => c.to_string(),
        },
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered; host and partition state
    /// gauges start at 0 for every state, the global rate cap at 0.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hactl");
        let m = Metrics {
            hosts: Family::default(),
            partitions: Family::default(),
            power_reads: Family::default(),
            // 5 ms .. ~41 s: a BMC answers in tens of ms, a slow one in seconds.
            power_read_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            // 5 ms .. ~20 s (health check timeout 3 s by default).
            health_check_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            // 0.5 s .. 64 s (activity windows are 8 s by default).
            activity_check_seconds: Histogram::new(exponential_buckets(0.5, 2.0, 8)),
            fences_issued: Counter::default(),
            fences_confirmed: Counter::default(),
            fences_failed: Counter::default(),
            rate_cap_tripped: Family::default(),
            mass_failure: Family::default(),
            quorate: Gauge::default(),
            // 50 us .. ~0.8 s.
            journal_fsync_seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 15)),
            registry: Registry::default(),
        };
        registry.register("hosts", "Hosts per HA state", m.hosts.clone());
        registry.register(
            "partitions",
            "Partitions (clusters) per partition state",
            m.partitions.clone(),
        );
        registry.register(
            "power_reads",
            "Chassis power reads through the BMC, by result",
            m.power_reads.clone(),
        );
        registry.register(
            "power_read_duration_seconds",
            "Latency of chassis power reads",
            m.power_read_seconds.clone(),
        );
        registry.register(
            "health_check_duration_seconds",
            "Latency of host health checks",
            m.health_check_seconds.clone(),
        );
        registry.register(
            "activity_check_duration_seconds",
            "Latency of activity checks (including their window)",
            m.activity_check_seconds.clone(),
        );
        registry.register(
            "fences_issued",
            "Fence power-offs issued",
            m.fences_issued.clone(),
        );
        registry.register(
            "fences_confirmed",
            "Fences confirmed by a chassis OFF read",
            m.fences_confirmed.clone(),
        );
        registry.register(
            "fences_failed",
            "Fence attempts that failed after the power-off was issued",
            m.fences_failed.clone(),
        );
        registry.register(
            "rate_cap_tripped",
            "1 while a fence-rate cap stops fencing in its scope",
            m.rate_cap_tripped.clone(),
        );
        registry.register(
            "mass_failure_active",
            "1 while the mass-failure guard holds fencing in a partition",
            m.mass_failure.clone(),
        );
        registry.register(
            "quorate",
            "1 when the coordinator is in the quorate partition",
            m.quorate.clone(),
        );
        registry.register(
            "journal_fsync_duration_seconds",
            "Latency of journal appends including fdatasync",
            m.journal_fsync_seconds.clone(),
        );
        for s in HaState::ALL {
            m.hosts
                .get_or_create(&StateLabel {
                    state: s.to_string(),
                })
                .set(0);
        }
        for s in PartitionState::ALL {
            m.partitions
                .get_or_create(&StateLabel {
                    state: s.to_string(),
                })
                .set(0);
        }
        m.rate_cap_tripped
            .get_or_create(&scope_label(RateScope::Global))
            .set(0);
        Metrics { registry, ..m }
    }

    /// Sets the hosts-per-HA-state gauges (states missing from `counts` are 0).
    pub fn set_host_counts(&self, counts: &BTreeMap<HaState, u32>) {
        for s in HaState::ALL {
            let n = counts.get(&s).copied().unwrap_or(0);
            self.hosts
                .get_or_create(&StateLabel {
                    state: s.to_string(),
                })
                .set(i64::from(n));
        }
    }

    /// Sets the partitions-per-state gauges from the partitions' states.
    pub fn set_partition_states<I: IntoIterator<Item = PartitionState>>(&self, states: I) {
        let mut counts: BTreeMap<PartitionState, i64> = BTreeMap::new();
        for s in states {
            *counts.entry(s).or_default() += 1;
        }
        for s in PartitionState::ALL {
            self.partitions
                .get_or_create(&StateLabel {
                    state: s.to_string(),
                })
                .set(counts.get(&s).copied().unwrap_or(0));
        }
    }

    /// One power read finished.
    pub fn observe_power_read(&self, reading: PowerReading, took: Duration) {
        let result = match reading {
            PowerReading::On => "on",
            PowerReading::Off => "off",
            PowerReading::Unknown => "unknown",
            PowerReading::Unreachable => "unreachable",
        };
        self.power_reads
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
        self.power_read_seconds.observe(took.as_secs_f64());
    }

    /// One health check finished (any outcome).
    pub fn observe_health_check(&self, took: Duration) {
        self.health_check_seconds.observe(took.as_secs_f64());
    }

    /// One activity check finished (any verdict).
    pub fn observe_activity_check(&self, took: Duration) {
        self.activity_check_seconds.observe(took.as_secs_f64());
    }

    /// One journal append (write + fdatasync) finished.
    pub fn observe_journal_fsync(&self, took: Duration) {
        self.journal_fsync_seconds.observe(took.as_secs_f64());
    }

    /// Sets quorum (also kept by [`Metrics::observe_event`]).
    pub fn set_quorate(&self, quorate: bool) {
        self.quorate.set(i64::from(quorate));
    }

    /// Sets a rate cap's state (at start-up from the recovered core; later
    /// kept by [`Metrics::observe_event`]).
    pub fn set_rate_cap_tripped(&self, scope: RateScope, tripped: bool) {
        self.rate_cap_tripped
            .get_or_create(&scope_label(scope))
            .set(i64::from(tripped));
    }

    /// Sets a partition's mass-failure state.
    pub fn set_mass_failure(&self, cluster: ClusterId, active: bool) {
        self.mass_failure
            .get_or_create(&PartitionLabel {
                partition: cluster.to_string(),
            })
            .set(i64::from(active));
    }

    /// Updates the counters and state gauges an event changes: fences,
    /// rate cap, mass failure, quorum. Call it for every emitted event.
    pub fn observe_event(&self, event: &Event) {
        match event {
            Event::FenceIssued { .. } => {
                self.fences_issued.inc();
            }
            Event::FenceConfirmed { fence: Some(_), .. } => {
                self.fences_confirmed.inc();
            }
            // A refresh that could not read power fails before any
            // power-off was issued: not a failed fence.
            Event::RecoveryAttemptFailed { failure, .. }
                if *failure != AttemptFailure::RefreshUnknown =>
            {
                self.fences_failed.inc();
            }
            Event::RateCapReached { scope, .. } => self.set_rate_cap_tripped(*scope, true),
            Event::RateCapCleared { scope, .. } => self.set_rate_cap_tripped(*scope, false),
            Event::MassFailureDetected { cluster, .. } => self.set_mass_failure(*cluster, true),
            Event::MassFailureCleared { cluster } => self.set_mass_failure(*cluster, false),
            Event::QuorumChanged { quorate } => self.set_quorate(*quorate),
            _ => {}
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
