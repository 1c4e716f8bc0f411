//! A room's retained history: the last N encoded message frames, by seq, so
//! a reconnecting client can resume with `since` and miss nothing.

use std::collections::VecDeque;

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// `since` asks for messages that are no longer retained.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Gap;

/// The ring of the latest frames. Seqs are contiguous: entry `i` holds seq
/// `oldest + i`.
pub(crate) struct History {
    frames: VecDeque<Utf8Bytes>,
    capacity: usize,
    /// The seq of the newest message (0 before any).
    latest: u64,
}

impl History {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            frames: VecDeque::with_capacity(capacity.min(64)),
            capacity,
            latest: 0,
        }
    }

    /// A ring holding `frames`, the newest of which has seq `latest` (a
    /// room moved here from another node).
    pub(crate) fn restore(capacity: usize, latest: u64, mut frames: Vec<Utf8Bytes>) -> Self {
        let keep = frames.len().min(capacity);
        frames.drain(..frames.len() - keep);
        Self {
            frames: frames.into(),
            capacity,
            latest,
        }
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
        if self.capacity > 0 {
            if self.frames.len() == self.capacity {
                self.frames.pop_front();
            }
            self.frames.push_back(frame.clone());
        }
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

    fn filled(capacity: usize, n: u64) -> History {
        let mut h = History::new(capacity);
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
        let mut new = History::restore(3, old.latest(), old.frames());
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
}
