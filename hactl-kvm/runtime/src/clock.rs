//! The core's clock: CLOCK_BOOTTIME in milliseconds. Monotonic, counts
//! suspend, and keeps counting across daemon restarts within one boot, so
//! journaled times stay comparable after a restart (the core treats records
//! from "the future", i.e. from before a reboot, as issued now).

use hactl_core::Millis;
use nix::time::{clock_gettime, ClockId};

/// Milliseconds since boot.
pub fn now_ms() -> Millis {
    let ts = clock_gettime(ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME is always readable");
    ts.tv_sec() as u64 * 1000 + ts.tv_nsec() as u64 / 1_000_000
}
