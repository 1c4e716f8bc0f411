//! Errors by kind, counted per connection and summed for the report. The
//! field names are part of the JSON report.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::session::ConnectError;

/// The roomrouter error code for a message over the per-connection rate.
pub const RATE_LIMITED: &str = "rate_limited";
/// Most distinct codes kept per map (the rest go under `other`).
const MAX_CODES: usize = 32;

/// Every kind of failure the generator tells apart.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// TCP connect failed (refused, no ports, no descriptors, …).
    pub connect_tcp: u64,
    /// A connection attempt exceeded `--connect-timeout`.
    pub connect_timeout: u64,
    /// The upgrade was answered with a non-101 HTTP status (see `http_statuses`).
    pub connect_http: u64,
    /// The WebSocket handshake failed otherwise.
    pub connect_websocket: u64,
    /// The protocol's handshake failed (no `welcome`; Socket.IO refused).
    pub connect_protocol: u64,
    /// The server closed a connection during the run (see `close_codes`).
    pub closed_by_server: u64,
    /// A read failed (reset, protocol violation).
    pub read_errors: u64,
    /// A send failed.
    pub send_errors: u64,
    /// `error` frames with code `rate_limited` (message not accepted).
    pub rate_limited: u64,
    /// Other `error` frames (see `error_codes`).
    pub error_frames_other: u64,
    /// Frames the generator could not parse.
    pub unparsed_frames: u64,
    /// HTTP statuses of refused upgrades.
    pub http_statuses: BTreeMap<String, u64>,
    /// Close codes of server closes (`none` without a close frame).
    pub close_codes: BTreeMap<String, u64>,
    /// Codes of `error` frames other than `rate_limited`.
    pub error_codes: BTreeMap<String, u64>,
}

impl Errors {
    /// Counts a failed connection attempt.
    pub fn connect_failed(&mut self, e: &ConnectError) {
        match e {
            ConnectError::Tcp(_) => self.connect_tcp += 1,
            ConnectError::Timeout => self.connect_timeout += 1,
            ConnectError::Http(status) => {
                self.connect_http += 1;
                bump(&mut self.http_statuses, &status.to_string(), 1);
            }
            ConnectError::WebSocket(_) => self.connect_websocket += 1,
            ConnectError::Protocol(_) => self.connect_protocol += 1,
        }
    }

    /// Counts a close by the server.
    pub fn closed(&mut self, code: Option<u16>) {
        self.closed_by_server += 1;
        let key = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
        bump(&mut self.close_codes, &key, 1);
    }

    /// Counts an `error` frame.
    pub fn error_frame(&mut self, code: &str) {
        if code == RATE_LIMITED {
            self.rate_limited += 1;
        } else {
            self.error_frames_other += 1;
            bump(&mut self.error_codes, code, 1);
        }
    }

    /// Failed connection attempts of every kind.
    pub fn connect_failures(&self) -> u64 {
        self.connect_tcp
            + self.connect_timeout
            + self.connect_http
            + self.connect_websocket
            + self.connect_protocol
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Self) {
        self.connect_tcp += other.connect_tcp;
        self.connect_timeout += other.connect_timeout;
        self.connect_http += other.connect_http;
        self.connect_websocket += other.connect_websocket;
        self.connect_protocol += other.connect_protocol;
        self.closed_by_server += other.closed_by_server;
        self.read_errors += other.read_errors;
        self.send_errors += other.send_errors;
        self.rate_limited += other.rate_limited;
        self.error_frames_other += other.error_frames_other;
        self.unparsed_frames += other.unparsed_frames;
        for (map, theirs) in [
            (&mut self.http_statuses, &other.http_statuses),
            (&mut self.close_codes, &other.close_codes),
            (&mut self.error_codes, &other.error_codes),
        ] {
            for (k, n) in theirs {
                bump(map, k, *n);
            }
        }
    }
}

/// Adds `n` under `key`, or under `other` once the map is full.
fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    let key: String = key.chars().take(64).collect();
    if map.len() >= MAX_CODES && !map.contains_key(&key) {
        *map.entry("other".to_owned()).or_default() += n;
    } else {
        *map.entry(key).or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_counted_and_summed() {
        let mut a = Errors::default();
        a.error_frame("rate_limited");
        a.error_frame("room_moving");
        a.closed(Some(1008));
        a.closed(None);
        a.connect_failed(&ConnectError::Http(503));
        a.connect_failed(&ConnectError::Timeout);
        let mut total = Errors::default();
        total.add(&a);
        total.add(&a);
        assert_eq!(total.rate_limited, 2);
        assert_eq!(total.error_frames_other, 2);
        assert_eq!(total.error_codes["room_moving"], 2);
        assert_eq!(total.close_codes["1008"], 2);
        assert_eq!(total.close_codes["none"], 2);
        assert_eq!(total.http_statuses["503"], 2);
        assert_eq!(total.connect_failures(), 4);
    }

    #[test]
    fn codes_are_bounded() {
        let mut e = Errors::default();
        for i in 0..100 {
            e.error_frame(&format!("code{i}"));
        }
        assert_eq!(e.error_codes.len(), MAX_CODES + 1);
        assert_eq!(e.error_codes["other"], 100 - MAX_CODES as u64);
    }
}
