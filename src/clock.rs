//! The wall clock that latencies are measured with: one reading for the whole process, with
//! the correction a shard applies once it knows its offset to the publisher's clock.
//!
//! A latency is the receive time on this machine minus the intended publish time on the
//! publisher's: across machines that difference includes the offset between their clocks,
//! which a shard measures (`shard::clock`) and removes here before anything is recorded.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use crate::payload::unix_us;

/// Test-only: shifts every wall-clock reading of this process by this many milliseconds, so
/// that a test can run a shard whose clock is off by a known amount.
pub const TEST_SKEW_ENV: &str = "PUSHBENCH_TEST_CLOCK_SKEW_MS";

/// µs added to every receive time: the publisher's clock minus this machine's (0 unsharded).
static CORRECTION_US: AtomicI64 = AtomicI64::new(0);

fn skew_us() -> i64 {
    static SKEW: OnceLock<i64> = OnceLock::new();
    *SKEW.get_or_init(|| {
        std::env::var(TEST_SKEW_ENV)
            .ok()
            .and_then(|ms| ms.trim().parse::<i64>().ok())
            .map_or(0, |ms| ms * 1000)
    })
}

/// `t` as this process's clock reads it (shifted by the test skew, if any).
pub fn skewed(t: SystemTime) -> SystemTime {
    let skew = skew_us();
    let by = Duration::from_micros(skew.unsigned_abs());
    if skew >= 0 { t + by } else { t - by }
}

/// This process's clock now, µs since the epoch.
pub fn local_us() -> i64 {
    unix_us(skewed(SystemTime::now())) as i64
}

/// Sets the correction applied to receive times from now on.
pub fn set_correction_us(us: i64) {
    CORRECTION_US.store(us, Ordering::Relaxed);
}

/// A receive time on the publisher's clock, µs since the epoch.
pub fn received_us(at: SystemTime) -> u64 {
    let local = unix_us(skewed(at)) as i64;
    local
        .saturating_add(CORRECTION_US.load(Ordering::Relaxed))
        .max(0) as u64
}
