//! Delivery bookkeeping: which deliveries count (the measured window), their
//! latency, per-sender sequence holes and duplicates at each receiver, the
//! expected-versus-received loss, and HDR histograms shared by many
//! connection tasks.

use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::body::Stamp;

/// Highest value a histogram keeps exactly (larger ones saturate): 60 s in µs.
pub const HISTOGRAM_MAX_US: u64 = 60_000_000;
/// Significant digits of every histogram.
const SIGFIG: u8 = 3;

/// The measured send window `[from_ns, to_ns)`: a message counts when its
/// send timestamp falls inside, wherever it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// End of warm-up.
    pub from_ns: u64,
    /// End of the measured window.
    pub to_ns: u64,
}

impl Window {
    /// Whether a message sent at `t_ns` counts.
    pub fn contains(&self, t_ns: u64) -> bool {
        (self.from_ns..self.to_ns).contains(&t_ns)
    }
}

/// What one receiving connection counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Receipts {
    /// Deliveries of messages sent in the window (first copies only).
    pub measured: u64,
    /// Deliveries of messages sent outside it (warm-up).
    pub outside: u64,
    /// Messages missing between two received ones of the same sender
    /// (counted when the later one is measured).
    pub gaps: u64,
    /// Deliveries whose sequence number was not above the last one seen from
    /// that sender (duplicates or reordering); not counted as received.
    pub duplicates: u64,
    /// Deliveries from a sender not in this receiver's room.
    pub foreign: u64,
}

impl Receipts {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Self) {
        self.measured += other.measured;
        self.outside += other.outside;
        self.gaps += other.gaps;
        self.duplicates += other.duplicates;
        self.foreign += other.foreign;
    }
}

/// One receiver's view of its room's senders.
#[derive(Debug, Clone)]
pub struct Tracker {
    first_sender: u32,
    /// Last sequence number seen per sender of the room; 0 = none yet.
    last: Vec<u64>,
    /// The counts so far.
    pub receipts: Receipts,
}

impl Tracker {
    /// A receiver in a room whose senders are `first_sender ..
    /// first_sender + senders`.
    pub fn new(first_sender: u32, senders: usize) -> Self {
        Self {
            first_sender,
            last: vec![0; senders],
            receipts: Receipts::default(),
        }
    }

    /// Notes a delivery read at `now_ns`; its latency in µs when it counts.
    /// `window` is `None` until the schedule is known (nothing counts then).
    pub fn observe(&mut self, stamp: Stamp, now_ns: u64, window: Option<Window>) -> Option<u64> {
        let idx = stamp.s.checked_sub(self.first_sender).map(|i| i as usize);
        let Some(last) = idx.and_then(|i| self.last.get_mut(i)) else {
            self.receipts.foreign += 1;
            return None;
        };
        let measured = window.is_some_and(|w| w.contains(stamp.t));
        if stamp.q <= *last {
            self.receipts.duplicates += 1;
            return None;
        }
        if measured && *last != 0 {
            self.receipts.gaps += stamp.q - *last - 1;
        }
        *last = stamp.q;
        if measured {
            self.receipts.measured += 1;
            Some(now_ns.saturating_sub(stamp.t) / 1000)
        } else {
            self.receipts.outside += 1;
            None
        }
    }
}

/// Expected versus received deliveries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Loss {
    /// Deliveries expected: every message sent in the window, to every
    /// member of its room connected when sending began (sender included).
    pub expected: u64,
    /// Deliveries received (measured, first copies).
    pub received: u64,
    /// `expected - received` (0 if more arrived than expected).
    pub lost: u64,
    /// `lost / expected` (0 when nothing was expected).
    pub loss_ratio: f64,
    /// `received - expected` when positive (members that connected late or
    /// a miscount; should be 0).
    pub surplus: u64,
}

impl Loss {
    /// The loss of `received` out of `expected`.
    pub fn new(expected: u64, received: u64) -> Self {
        let lost = expected.saturating_sub(received);
        Self {
            expected,
            received,
            lost,
            loss_ratio: if expected == 0 {
                0.0
            } else {
                lost as f64 / expected as f64
            },
            surplus: received.saturating_sub(expected),
        }
    }
}

/// Σ over rooms of (messages its senders sent in the window × its members).
pub fn expected_deliveries(sent_per_room: &[u64], members_per_room: &[u64]) -> u64 {
    sent_per_room
        .iter()
        .zip(members_per_room)
        .map(|(s, m)| s.saturating_mul(*m))
        .fold(0u64, u64::saturating_add)
}

/// An empty histogram of µs values, 1 µs .. 60 s at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // Fixed, valid bounds: this cannot fail.
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, SIGFIG)
        .unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// Histograms shared by many tasks: task `k` records into shard `k % n`, so
/// tasks rarely wait for one another and memory does not grow with the
/// number of connections.
#[derive(Debug)]
pub struct Shards {
    shards: Box<[Mutex<Histogram<u64>>]>,
}

impl Shards {
    /// `n` (at least 1) empty shards.
    pub fn new(n: usize) -> Self {
        Self {
            shards: (0..n.max(1)).map(|_| Mutex::new(histogram())).collect(),
        }
    }

    /// Records `value_us` (saturating at the histogram's maximum).
    pub fn record(&self, key: usize, value_us: u64) {
        let shard = &self.shards[key % self.shards.len()];
        shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(value_us.min(HISTOGRAM_MAX_US));
    }

    /// All shards merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in &self.shards {
            let h = shard.lock().unwrap_or_else(PoisonError::into_inner);
            // Same bounds everywhere: addition cannot fail.
            let _ = all.add(&*h);
        }
        all
    }
}

/// The usual percentiles of a µs histogram.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Values recorded.
    pub samples: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest (at histogram precision).
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// The percentiles of `h` (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            samples: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        from_ns: 1_000_000,
        to_ns: 2_000_000,
    };

    fn stamp(s: u32, q: u64, t: u64) -> Stamp {
        Stamp { s, q, t }
    }

    #[test]
    fn only_messages_sent_in_the_window_count() {
        let mut t = Tracker::new(10, 2);
        // Before the schedule is known, and during warm-up: not measured.
        assert_eq!(t.observe(stamp(10, 1, 500_000), 600_000, None), None);
        assert_eq!(t.observe(stamp(10, 2, 900_000), 950_000, Some(W)), None);
        // Sent in the window, read later: measured, latency in µs.
        assert_eq!(
            t.observe(stamp(10, 3, 1_500_000), 1_750_000, Some(W)),
            Some(250)
        );
        // Arriving after the window still counts by its send time.
        assert_eq!(
            t.observe(stamp(11, 1, 1_999_999), 2_100_000, Some(W)),
            Some(100)
        );
        // Sent after the window: not measured.
        assert_eq!(t.observe(stamp(11, 2, 2_000_000), 2_000_010, Some(W)), None);
        assert_eq!(t.receipts.measured, 2);
        assert_eq!(t.receipts.outside, 3);
        assert_eq!(t.receipts.gaps, 0);
    }

    #[test]
    fn holes_duplicates_and_strangers_are_counted() {
        let mut t = Tracker::new(0, 1);
        assert!(
            t.observe(stamp(0, 1, 1_100_000), 1_200_000, Some(W))
                .is_some()
        );
        // 2, 3 and 4 never arrive.
        assert!(
            t.observe(stamp(0, 5, 1_300_000), 1_400_000, Some(W))
                .is_some()
        );
        assert_eq!(t.receipts.gaps, 3);
        // A repeat of 5 and an older one are duplicates, not deliveries.
        assert_eq!(t.observe(stamp(0, 5, 1_300_000), 1_500_000, Some(W)), None);
        assert_eq!(t.observe(stamp(0, 4, 1_250_000), 1_500_000, Some(W)), None);
        assert_eq!(t.receipts.duplicates, 2);
        // Sender 1 is not in this room.
        assert_eq!(t.observe(stamp(1, 1, 1_300_000), 1_500_000, Some(W)), None);
        assert_eq!(t.receipts.foreign, 1);
        assert_eq!(t.receipts.measured, 2);
        // A latency never goes negative.
        assert_eq!(
            t.observe(stamp(0, 6, 1_600_000), 1_500_000, Some(W)),
            Some(0)
        );
    }

    #[test]
    fn the_first_message_seen_sets_the_baseline() {
        // A receiver that joined late sees a sender from q = 7 on: no gap.
        let mut t = Tracker::new(0, 1);
        t.observe(stamp(0, 7, 1_100_000), 1_200_000, Some(W));
        t.observe(stamp(0, 8, 1_100_000), 1_200_000, Some(W));
        assert_eq!(t.receipts.gaps, 0);
    }

    #[test]
    fn loss_is_expected_minus_received() {
        // Room 0: 100 messages × 5 members; room 1: 10 × 3 (two members
        // failed to connect).
        let expected = expected_deliveries(&[100, 10], &[5, 3]);
        assert_eq!(expected, 530);
        let loss = Loss::new(expected, 477);
        assert_eq!(loss.lost, 53);
        assert!((loss.loss_ratio - 0.1).abs() < 1e-9);
        assert_eq!(loss.surplus, 0);
        let none = Loss::new(0, 0);
        assert_eq!(none.loss_ratio, 0.0);
        let over = Loss::new(10, 12);
        assert_eq!((over.lost, over.surplus), (0, 2));
    }

    #[test]
    fn shards_merge_into_percentiles() {
        let shards = Shards::new(4);
        for v in 1..=1000u64 {
            shards.record(v as usize, v);
        }
        shards.record(0, u64::MAX);
        let p = Percentiles::of(&shards.merged());
        assert_eq!(p.samples, 1001);
        assert!((499..=501).contains(&p.p50), "{p:?}");
        assert!((989..=992).contains(&p.p99), "{p:?}");
        assert!(p.max >= HISTOGRAM_MAX_US, "saturated, {p:?}");
        assert_eq!(Percentiles::of(&histogram()), Percentiles::default());
    }
}
