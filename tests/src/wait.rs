//! Bounded polling: the only way tests wait for asynchronous state. No test
//! sleeps to let something happen; it states the condition and a bound
//! ([`eventually`]), or the condition and how long it must keep holding
//! ([`always`], for "still there until the TTL is up").

use std::time::Duration;

use tokio::time::Instant;

/// How often a condition is re-evaluated.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Bound on one evaluation of an [`always`] condition.
const EVAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `cond` (`async || ...` or `|| async { ... }`) every
/// [`POLL_INTERVAL`] until it holds or `timeout` passes;
/// whether it held. One evaluation that hangs is cut off at the deadline.
pub async fn wait_until(timeout: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        // `timeout_at` polls the condition before looking at the clock, so
        // a condition that is ready at the deadline still counts.
        if let Ok(true) = tokio::time::timeout_at(deadline, cond()).await {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep_until((now + POLL_INTERVAL).min(deadline)).await;
    }
}

/// Polls `cond` every [`POLL_INTERVAL`] until it holds; panics naming
/// `what` if it still does not after `timeout`.
pub async fn eventually(timeout: Duration, what: &str, cond: impl AsyncFnMut() -> bool) {
    if !wait_until(timeout, cond).await {
        panic!("timed out after {timeout:?} waiting until {what}");
    }
}

/// Checks `cond` every [`POLL_INTERVAL`] for `period` (first at once, last
/// at the end); panics naming `what` the first time it does not hold.
/// For properties over time, e.g. "the node stays registered for its TTL".
pub async fn always(period: Duration, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    let end = start + period;
    loop {
        match tokio::time::timeout(EVAL_TIMEOUT, cond()).await {
            Ok(true) => {}
            Ok(false) => panic!("{what} stopped holding after {:?}", start.elapsed()),
            Err(_) => panic!("checking that {what} took more than {EVAL_TIMEOUT:?}"),
        }
        let now = Instant::now();
        if now >= end {
            return;
        }
        tokio::time::sleep_until((now + POLL_INTERVAL).min(end)).await;
    }
}
