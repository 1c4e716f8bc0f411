//! The node's limits on what clients may take: connections and handshakes
//! in progress per node (a slot reserved before the upgrade), and joins per
//! room and messages per connection (token buckets). Each refusal is
//! answered clearly and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::Instant;

/// Things in progress at once (member connections, handshakes), bounded.
#[derive(Clone)]
pub(crate) struct Slots {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// A reserved connection; dropping it frees the slot.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Slots {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            open: Arc::default(),
            max,
        }
    }

    /// A slot, unless all are taken.
    pub(crate) fn reserve(&self) -> Option<Slot> {
        let reserved = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
        reserved.ok().map(|_| Slot(self.open.clone()))
    }
}

/// A token bucket: `rate` per second, up to `burst` at once.
pub(crate) struct RateLimit {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
    /// Refusals since the last accepted message.
    refused: u32,
}

/// What to do with one message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Take it.
    Accept,
    /// Refuse it; the connection stays.
    Refuse,
    /// Refuse it and close: the client ignores the refusals.
    Close,
}

impl RateLimit {
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            last: Instant::now(),
            rate: f64::from(rate),
            burst: f64::from(burst),
            refused: 0,
        }
    }

    /// Spends a token for one message, if there is one.
    pub(crate) fn check(&mut self) -> Verdict {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            return Verdict::Accept;
        }
        self.refused += 1;
        if self.rate <= 0.0 {
            return Verdict::Close;
        }
        if f64::from(self.refused) > self.burst {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

impl RateLimit {
    /// How long until the next token, as whole seconds (at least one), for
    /// a `Retry-After`.
    pub(crate) fn retry_after(&self) -> u64 {
        let missing = (1.0 - self.tokens).max(0.0);
        (missing / self.rate).ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn slots_are_bounded_and_freed() {
        let c = Slots::new(2);
        let (a, _b) = (c.reserve().unwrap(), c.reserve().unwrap());
        assert!(c.reserve().is_none());
        drop(a);
        assert!(c.reserve().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_refuses_then_closes_a_client_that_keeps_going() {
        let mut r = RateLimit::new(10, 3);
        for _ in 0..3 {
            assert_eq!(r.check(), Verdict::Accept);
        }
        assert_eq!(r.check(), Verdict::Refuse);
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(r.check(), Verdict::Accept);
        for _ in 0..3 {
            assert_eq!(r.check(), Verdict::Refuse);
        }
        assert_eq!(r.check(), Verdict::Close);
    }
}
