//! The criterion settings every micro-benchmark of the workspace shares
//! (proto's, store's and roomnode's benches include this file), so their
//! figures are taken the same way.

use std::time::Duration;

use criterion::Criterion;

/// 1 s warm-up, 5 s measured.
pub(crate) fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}
