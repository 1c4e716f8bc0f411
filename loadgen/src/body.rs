//! The message body every sender sends and every receiver reads back:
//! `{"s":<sender>,"q":<seq>,"t":<ns>,"p":"xxxx…"}`. `s` is the sender's id
//! (unique in the run), `q` its sequence number (1, 2, …), `t` the send time
//! in nanoseconds since the process-wide [`crate::clock`] epoch, and `p`
//! padding that brings the body to about `--payload` bytes.

use std::fmt::Write as _;

use serde::Deserialize;

/// What the padding leaves for the other fields: `{"s":,"q":,"t":,"p":""}`
/// (22 bytes) plus typical digits (sender 3, seq 4, timestamp 11).
const FIXED_BYTES: usize = 40;

/// The fields a receiver needs; the padding is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Stamp {
    /// Sender id.
    pub s: u32,
    /// The sender's sequence number, from 1.
    pub q: u64,
    /// Send time, ns since the clock epoch.
    pub t: u64,
}

/// Builds bodies of about a given size without allocating per message.
#[derive(Debug, Clone)]
pub struct BodyWriter {
    pad: String,
}

impl BodyWriter {
    /// Bodies of about `payload` bytes (at least the fixed fields).
    pub fn new(payload: usize) -> Self {
        Self {
            pad: "x".repeat(payload.saturating_sub(FIXED_BYTES)),
        }
    }

    /// Appends the body of `stamp` to `out`.
    pub fn write(&self, out: &mut String, stamp: Stamp) {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            r#"{{"s":{},"q":{},"t":{},"p":"{}"}}"#,
            stamp.s, stamp.q, stamp.t, self.pad
        );
    }

    /// The body of `stamp` as a new string.
    pub fn body(&self, stamp: Stamp) -> String {
        let mut s = String::with_capacity(self.pad.len() + FIXED_BYTES + 8);
        self.write(&mut s, stamp);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trips_and_has_about_the_size() {
        let w = BodyWriter::new(200);
        let stamp = Stamp {
            s: 123,
            q: 4567,
            t: 12_345_678_901,
        };
        let body = w.body(stamp);
        assert_eq!(serde_json::from_str::<Stamp>(&body).unwrap(), stamp);
        assert!((195..=205).contains(&body.len()), "{}", body.len());
        // Tiny payloads still carry the fields.
        let tiny = BodyWriter::new(0).body(stamp);
        assert_eq!(serde_json::from_str::<Stamp>(&tiny).unwrap(), stamp);
    }
}
