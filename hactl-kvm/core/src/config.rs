//! Coordinator settings and their shipped defaults.
//!
//! The defaults are chosen so that a crashed host is confirmed powered off
//! within 60 s of virtual time (see `docs/model.md`, "Timing budget"):
//! health check every 10 s (3 s timeout) -> SUSPECT after at most 13 s; an
//! activity round of 3 dead samples of 8 s each (up to 4 samples) -> 24-32 s;
//! power refresh + off + confirming read -> a few seconds with a healthy BMC.
//! Worst case about 13 + 32 + 3 = 48 s.

use crate::ids::Millis;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// N-of-M activity evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceConfig {
    /// N: samples that must say "dead" (none may say "alive").
    pub dead_required: u32,
    /// M: samples at most per round.
    pub max_samples: u32,
}

/// Fence-rate cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceRateConfig {
    /// Fences per window per partition.
    pub per_partition: u32,
    /// Fences per window for the whole coordinator.
    pub global: u32,
    /// Sliding window length.
    pub window_ms: Millis,
}

/// Mass-failure guard.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MassFailureConfig {
    /// Trip when MORE than this share of a partition's hosts turned SUSPECT
    /// within `window_ms`, or currently fail health checks.
    pub share: f64,
    /// The "short window".
    pub window_ms: Millis,
    /// Trip when the share of fresh heartbeats drops by more than this in
    /// one census.
    pub cliff_drop_share: f64,
    /// Partitions with fewer hosts are not judged by the guard (one failure
    /// in a two-host cluster is not a mass failure).
    pub min_hosts: u32,
}

/// All settings. Times are milliseconds of the driver's monotonic clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Health check period, every host, every state.
    pub health_check_interval_ms: Millis,
    /// Health check time bound (a timeout is a failed check).
    pub health_check_timeout_ms: Millis,
    /// Power-state sync period.
    pub power_poll_interval_ms: Millis,
    /// Time bound of every power operation (global; per-host override in
    /// the inventory).
    pub power_op_timeout_ms: Millis,
    /// How long a checker watches the suspect's heartbeat per sample. Must
    /// exceed the heartbeat write period at least twice.
    pub activity_sample_window_ms: Millis,
    /// Time bound of one activity sample (a timeout is "cannot tell").
    pub activity_check_timeout_ms: Millis,
    /// Delay from entering SUSPECT to the first round.
    pub activity_first_delay_ms: Millis,
    /// Delay after the first round that did not decide "dead"; doubles
    /// after every such round (10 s, 20 s, 40 s ...).
    pub activity_backoff_initial_ms: Millis,
    /// Upper bound of that delay.
    pub activity_backoff_max_ms: Millis,
    /// N of M.
    pub evidence: EvidenceConfig,
    /// Recovery attempts before FAILED.
    pub max_recovery_attempts: u32,
    /// Delay between recovery attempts.
    pub recovery_retry_delay_ms: Millis,
    /// Power the host back on after a confirmed fence (power cycle).
    pub power_on_after_fence: bool,
    /// Quiet period after power-on (global; per-host override).
    pub quiet_period_ms: Millis,
    /// A host whose fence is confirmed less than this after its previous
    /// confirmed fence is left OFF (FENCED) for the operator instead of
    /// being powered on again: powering a host that fails again at once
    /// back on only feeds a per-host fence loop.
    pub refence_holdoff_ms: Millis,
    /// No fencing this long after the coordinator starts (or its clock jumps).
    pub startup_grace_ms: Millis,
    /// Fence-rate cap.
    pub fence_rate: FenceRateConfig,
    /// Mass-failure guard.
    pub mass_failure: MassFailureConfig,
    /// Hosts CHECKING at the same time, per coordinator.
    pub max_concurrent_activity_checks: u32,
    /// Hosts RECOVERING at the same time, per coordinator.
    pub max_concurrent_recoveries: u32,
    /// AVAILABLE hosts a partition needs to become ACTIVE.
    pub min_available_hosts: u32,
    /// A "quorate" report counts this long; the driver repeats it (at
    /// least every third of this) while the coordinator stays quorate.
    pub quorum_lease_ms: Millis,
    /// A host read OFF by routine power reads (not after our own
    /// power-off) is FENCED only when a second OFF read at least this
    /// long after the first agrees and no health check passed in between.
    pub fence_confirm_interval_ms: Millis,
    /// A forward jump of the driver clock beyond the next due timer plus
    /// this is a clock anomaly (fencing held off for a grace period).
    pub clock_jump_tolerance_ms: Millis,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            health_check_interval_ms: 10_000,
            health_check_timeout_ms: 3_000,
            power_poll_interval_ms: 60_000,
            power_op_timeout_ms: 10_000,
            activity_sample_window_ms: 8_000,
            activity_check_timeout_ms: 12_000,
            activity_first_delay_ms: 0,
            activity_backoff_initial_ms: 10_000,
            activity_backoff_max_ms: 250_000,
            evidence: EvidenceConfig {
                dead_required: 3,
                max_samples: 4,
            },
            max_recovery_attempts: 3,
            recovery_retry_delay_ms: 10_000,
            power_on_after_fence: true,
            quiet_period_ms: 240_000,
            refence_holdoff_ms: 3_600_000,
            startup_grace_ms: 60_000,
            fence_rate: FenceRateConfig {
                per_partition: 3,
                global: 3,
                window_ms: 3_600_000,
            },
            mass_failure: MassFailureConfig {
                share: 0.5,
                window_ms: 60_000,
                cliff_drop_share: 0.5,
                min_hosts: 3,
            },
            max_concurrent_activity_checks: 25,
            max_concurrent_recoveries: 5,
            min_available_hosts: 2,
            clock_jump_tolerance_ms: 60_000,
            quorum_lease_ms: 30_000,
            fence_confirm_interval_ms: 30_000,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// A duration that must be positive is zero.
    #[error("setting `{0}` must be greater than zero")]
    Zero(&'static str),
    /// N of M with N > M or N == 0.
    #[error("evidence needs 1 <= dead_required ({dead_required}) <= max_samples ({max_samples})")]
    Evidence {
        /// N.
        dead_required: u32,
        /// M.
        max_samples: u32,
    },
    /// A share outside (0, 1).
    #[error("setting `{name}` must be between 0 and 1 (exclusive), got {value}")]
    Share {
        /// Setting.
        name: &'static str,
        /// Value.
        value: f64,
    },
    /// The activity timeout must leave room for the window.
    #[error(
        "activity_check_timeout_ms ({timeout}) must exceed activity_sample_window_ms ({window})"
    )]
    ActivityTimeout {
        /// Timeout.
        timeout: Millis,
        /// Window.
        window: Millis,
    },
    /// Backoff bounds inverted.
    #[error("activity_backoff_max_ms ({max}) must be >= activity_backoff_initial_ms ({initial})")]
    Backoff {
        /// Initial.
        initial: Millis,
        /// Max.
        max: Millis,
    },
}

impl Config {
    /// Checks the settings for values that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("health_check_interval_ms", self.health_check_interval_ms),
            ("health_check_timeout_ms", self.health_check_timeout_ms),
            ("power_poll_interval_ms", self.power_poll_interval_ms),
            ("power_op_timeout_ms", self.power_op_timeout_ms),
            ("activity_sample_window_ms", self.activity_sample_window_ms),
            (
                "activity_backoff_initial_ms",
                self.activity_backoff_initial_ms,
            ),
            ("fence_rate.window_ms", self.fence_rate.window_ms),
            ("refence_holdoff_ms", self.refence_holdoff_ms),
            ("quorum_lease_ms", self.quorum_lease_ms),
            ("fence_confirm_interval_ms", self.fence_confirm_interval_ms),
            ("mass_failure.window_ms", self.mass_failure.window_ms),
            (
                "max_recovery_attempts",
                Millis::from(self.max_recovery_attempts),
            ),
            (
                "max_concurrent_activity_checks",
                Millis::from(self.max_concurrent_activity_checks),
            ),
            (
                "max_concurrent_recoveries",
                Millis::from(self.max_concurrent_recoveries),
            ),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        let e = self.evidence;
        if e.dead_required == 0 || e.dead_required > e.max_samples {
            return Err(ConfigError::Evidence {
                dead_required: e.dead_required,
                max_samples: e.max_samples,
            });
        }
        for (name, value) in [
            ("mass_failure.share", self.mass_failure.share),
            (
                "mass_failure.cliff_drop_share",
                self.mass_failure.cliff_drop_share,
            ),
        ] {
            if !(value > 0.0 && value < 1.0) {
                return Err(ConfigError::Share { name, value });
            }
        }
        if self.activity_check_timeout_ms <= self.activity_sample_window_ms {
            return Err(ConfigError::ActivityTimeout {
                timeout: self.activity_check_timeout_ms,
                window: self.activity_sample_window_ms,
            });
        }
        if self.activity_backoff_max_ms < self.activity_backoff_initial_ms {
            return Err(ConfigError::Backoff {
                initial: self.activity_backoff_initial_ms,
                max: self.activity_backoff_max_ms,
            });
        }
        Ok(())
    }
}
