//! A room's retained history: the latest encoded message frames, by seq, so
//! a reconnecting client can resume with `since` and miss nothing. Bounded
//! by count and by bytes, whichever binds first: a room's memory does not
//! depend on how large its senders make their messages.

use std::collections::VecDeque;

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// `since` asks for messages that are no longer retained.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Gap;

/// How much history a room keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryLimits {
    /// Most messages.
    pub(crate) count: usize,
    /// Most bytes of encoded frames.
    pub(crate) bytes: usize,
}

/// The ring of the latest frames. Seqs are contiguous: entry `i` holds seq
/// `oldest + i`.
pub(crate) struct History {
    frames: VecDeque<Utf8Bytes>,
    limits: HistoryLimits,
    /// Bytes of the frames held.
    bytes: usize,
    /// The seq of the newest message (0 before any).
    latest: u64,
}

impl History {
    pub(crate) fn new(limits: HistoryLimits) -> Self {
        Self {
            frames: VecDeque::with_capacity(limits.count.min(64)),
            limits,
            bytes: 0,
            latest: 0,
        }
    }

    /// A ring holding the newest of `frames` that fit, the newest of which
    /// has seq `latest` (a room moved here from another node).
    pub(crate) fn restore(limits: HistoryLimits, latest: u64, frames: Vec<Utf8Bytes>) -> Self {
        let mut ring = Self::new(limits);
        for frame in frames {
            ring.retain(frame);
        }
        ring.latest = latest;
        ring
    }

    /// Bytes of the frames held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps `frame` as the newest, dropping the oldest beyond the limits;
    /// a frame larger than the byte limit leaves the ring empty (seqs held
    /// must stay contiguous up to the newest).
    fn retain(&mut self, frame: Utf8Bytes) {
        if self.limits.count == 0 || frame.len() > self.limits.bytes {
            self.frames.clear();
            self.bytes = 0;
            return;
        }
        while self.frames.len() >= self.limits.count || self.bytes + frame.len() > self.limits.bytes
        {
            let Some(old) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= old.len();
        }
        self.bytes += frame.len();
        self.frames.push_back(frame);
    }

    /// Every retained frame, oldest first.
    pub(crate) fn frames(&self) -> Vec<Utf8Bytes> {
        self.frames.iter().cloned().collect()
    }

    /// The newest seq.
    pub(crate) fn latest(&self) -> u64 {
        self.latest
    }

    /// Takes the next seq for a frame that `encode` builds from it.
    pub(crate) fn push(&mut self, encode: impl FnOnce(u64) -> Utf8Bytes) -> (u64, Utf8Bytes) {
        self.latest += 1;
        let frame = encode(self.latest);
        self.retain(frame.clone());
        (self.latest, frame)
    }

    /// Every retained frame with seq > `since`, oldest first; [`Gap`] when
    /// some of them are no longer retained or `since` is in the future.
    pub(crate) fn since(&self, since: u64) -> Result<Vec<Utf8Bytes>, Gap> {
        if since > self.latest {
            return Err(Gap);
        }
        let missing = (self.latest - since) as usize;
        if missing > self.frames.len() {
            return Err(Gap);
        }
        Ok(self
            .frames
            .range(self.frames.len() - missing..)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(count: usize) -> HistoryLimits {
        HistoryLimits {
            count,
            bytes: usize::MAX,
        }
    }

    fn filled(capacity: usize, n: u64) -> History {
        let mut h = History::new(limits(capacity));
        for _ in 0..n {
            h.push(|seq| seq.to_string().into());
        }
        h
    }

    fn seqs(frames: Vec<Utf8Bytes>) -> Vec<u64> {
        frames.iter().map(|f| f.as_str().parse().unwrap()).collect()
    }

    #[test]
    fn replays_exactly_what_was_missed() {
        let h = filled(5, 3);
        assert_eq!(h.latest(), 3);
        assert_eq!(seqs(h.since(0).unwrap()), [1, 2, 3]);
        assert_eq!(seqs(h.since(2).unwrap()), [3]);
        assert!(h.since(3).unwrap().is_empty());
    }

    #[test]
    fn a_restored_ring_resumes_where_the_old_one_was() {
        let old = filled(5, 12);
        let mut new = History::restore(limits(3), old.latest(), old.frames());
        assert_eq!(seqs(new.since(9).unwrap()), [10, 11, 12]);
        assert_eq!(new.since(8), Err(Gap));
        assert_eq!(new.push(|seq| seq.to_string().into()).0, 13);
    }

    #[test]
    fn reports_gaps() {
        let h = filled(5, 12);
        assert_eq!(seqs(h.since(7).unwrap()), [8, 9, 10, 11, 12]);
        assert_eq!(h.since(6), Err(Gap));
        assert_eq!(h.since(13), Err(Gap));
        assert_eq!(filled(0, 2).since(1), Err(Gap));
        assert!(filled(0, 2).since(2).unwrap().is_empty());
    }

    #[test]
    fn bytes_bound_the_ring_as_well_as_the_count() {
        let mut h = History::new(HistoryLimits {
            count: 100,
            bytes: 10,
        });
        for _ in 0..8 {
            // "1".."8": one byte each
            h.push(|seq| seq.to_string().into());
        }
        assert_eq!(h.bytes(), 8);
        h.push(|_| "abcd".into()); // seq 9, four bytes: 1..=2 go
        assert_eq!(h.bytes(), 10);
        assert_eq!(h.since(2).unwrap().len(), 7);
        assert_eq!(h.since(1), Err(Gap));
        // Larger than the whole budget: nothing can be replayed, and the
        // seqs go on.
        h.push(|_| "x".repeat(11).into());
        assert_eq!((h.bytes(), h.latest()), (0, 10));
        assert_eq!(h.since(9), Err(Gap));
        assert!(h.since(10).unwrap().is_empty());
        h.push(|seq| seq.to_string().into());
        assert_eq!(seqs(h.since(10).unwrap()), [11]);
    }
}
