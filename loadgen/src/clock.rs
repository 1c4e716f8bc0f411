//! The one process-wide clock: every send timestamp and every receive time
//! is nanoseconds since the same `Instant`, so latencies need no
//! synchronised wall clocks (sender and receivers are in this process).

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The instant all timestamps count from (fixed at first use).
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`] now.
pub fn now_ns() -> u64 {
    ns_at(Instant::now())
}

/// Nanoseconds from [`epoch`] to `at` (0 before it; saturates after ~584 years).
pub fn ns_at(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}
