//! The `run` report: one struct serialised as the JSON file (its field names
//! are stable; `schema` changes if they do) and printed as a table.
//!
//! JSON fields (`schema` 1):
//! - `schema`, `kind` (`"run"`), `target`, `connect_mode` (roomrouter only),
//!   `protocol` (`native` or `socketio`), `transport` (Socket.IO only:
//!   `websocket` or `polling`), `sender_echo` (whether a sender gets its own
//!   message back; added later, absent from older reports), `run_id`
//! - `shape`: `rooms`, `members`, `senders` (per room), `rate_per_sender`,
//!   `payload_bytes`, `body_bytes`, `warmup_s`, `duration_s`, `drain_s`,
//!   `connections`, `sources`
//! - `connect`: `attempted`, `connected`, `failed`, `wall_s`, `rate_per_s`,
//!   `time_us` (percentiles of one connect + handshake)
//! - `send`: `senders_connected`, `offered_per_s`, `achieved_per_s`,
//!   `sent_in_window`, `sent_total`, `lag_us` (send time minus tick time,
//!   percentiles), `generator_lagged`
//! - `deliveries`: `offered_per_s` (senders × rate × receivers, where the
//!   receivers of a message are the members, one fewer without echo),
//!   `delivered_per_s`, `expected`, `received`, `lost`, `loss_ratio`,
//!   `surplus`, `gaps`, `duplicates`, `foreign`, `outside_window`
//! - `latency_us`: `samples`, `p50`, `p99`, `p999`, `max`, `mean`
//! - `errors`: see [`Errors`]
//! - `server` (with `--pids`, else `null`): `clock_ticks_per_s`, `pids`
//!   (`pid`, `cpu_s`, `rss_kb_start`, `rss_kb_end`), `cpu_s`,
//!   `us_per_delivery`, `core_pct`, `rss_kb_end`
//! - `generator`: `cpu_s`, `core_pct`, `nofile_limit`
//!
//! Percentile objects are [`Percentiles`]: `samples`, `p50`, `p99`, `p999`,
//! `max`, `mean`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::{ConnectMode, Target, Transport, WireProtocol};
use crate::errors::Errors;
use crate::stats::Percentiles;

/// Version of the JSON layout.
pub const SCHEMA: u32 = 1;

/// Everything `run` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// [`SCHEMA`].
    pub schema: u32,
    /// `"run"`.
    pub kind: &'static str,
    /// The system under test.
    pub target: Target,
    /// roomrouter's way in.
    pub connect_mode: Option<ConnectMode>,
    /// What the members spoke.
    pub protocol: WireProtocol,
    /// Socket.IO's Engine.IO transport.
    pub transport: Option<Transport>,
    /// Whether a sender got its own message back (counted as a delivery);
    /// without, a message is expected by the other members only.
    pub sender_echo: bool,
    /// Room ids are `lg-<run_id>-<k>`.
    pub run_id: String,
    /// What was asked.
    pub shape: Shape,
    /// Opening the connections.
    pub connect: ConnectStats,
    /// The generator's sending.
    pub send: SendStats,
    /// Deliveries and loss.
    pub deliveries: Deliveries,
    /// Delivery latency, µs.
    pub latency_us: Percentiles,
    /// Errors by kind.
    pub errors: Errors,
    /// Server processes (`--pids`).
    pub server: Option<ServerStats>,
    /// This process.
    pub generator: GeneratorStats,
}

/// The scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Shape {
    /// Rooms.
    pub rooms: usize,
    /// Members per room.
    pub members: usize,
    /// Senders per room.
    pub senders: usize,
    /// Messages/s per sender.
    pub rate_per_sender: f64,
    /// `--payload`.
    pub payload_bytes: usize,
    /// Actual body size of a typical message.
    pub body_bytes: usize,
    /// Warm-up, s.
    pub warmup_s: f64,
    /// Measured window, s.
    pub duration_s: f64,
    /// Wait for late deliveries, s.
    pub drain_s: f64,
    /// Rooms × members.
    pub connections: usize,
    /// Source addresses.
    pub sources: u8,
}

/// Opening connections.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectStats {
    /// Attempts.
    pub attempted: u64,
    /// Successes.
    pub connected: u64,
    /// Failures (by kind in `errors`).
    pub failed: u64,
    /// First attempt to last outcome, s.
    pub wall_s: f64,
    /// `connected / wall_s`.
    pub rate_per_s: f64,
    /// One connection: TCP + WebSocket + protocol handshake, µs.
    pub time_us: Percentiles,
}

/// Sending.
#[derive(Debug, Clone, Serialize)]
pub struct SendStats {
    /// Senders that connected.
    pub senders_connected: u64,
    /// Senders × rate (as configured).
    pub offered_per_s: f64,
    /// Sent in the window / window.
    pub achieved_per_s: f64,
    /// Messages sent in the window.
    pub sent_in_window: u64,
    /// Messages sent in all (warm-up included).
    pub sent_total: u64,
    /// Actual send time minus scheduled tick, µs.
    pub lag_us: Percentiles,
    /// The generator could not keep the offered rate: achieved below 99 % of
    /// connected senders × rate, or p99 lag above one send period.
    pub generator_lagged: bool,
}

/// Deliveries.
#[derive(Debug, Clone, Serialize)]
pub struct Deliveries {
    /// Senders × rate × receivers per message (as configured: the
    /// members, or one fewer without echo).
    pub offered_per_s: f64,
    /// Received / window.
    pub delivered_per_s: f64,
    /// Sent in the window × receivers in the room (members connected, one
    /// fewer without echo).
    pub expected: u64,
    /// Measured deliveries received.
    pub received: u64,
    /// `expected - received`.
    pub lost: u64,
    /// `lost / expected`.
    pub loss_ratio: f64,
    /// `received - expected` when positive.
    pub surplus: u64,
    /// Holes in a sender's sequence seen by a receiver.
    pub gaps: u64,
    /// Repeated or out-of-order deliveries (not counted as received).
    pub duplicates: u64,
    /// Deliveries from senders of another room.
    pub foreign: u64,
    /// Deliveries of warm-up (or post-window) messages.
    pub outside_window: u64,
}

/// Server processes over the window.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStats {
    /// Unit of `/proc/<pid>/stat` times.
    pub clock_ticks_per_s: u64,
    /// Each process.
    pub pids: Vec<PidStats>,
    /// Σ CPU seconds.
    pub cpu_s: f64,
    /// CPU µs per delivery received.
    pub us_per_delivery: f64,
    /// CPU as % of one core over the window.
    pub core_pct: f64,
    /// Σ RSS at the end, KiB.
    pub rss_kb_end: u64,
}

/// One server process.
#[derive(Debug, Clone, Serialize)]
pub struct PidStats {
    /// Its pid.
    pub pid: u32,
    /// CPU seconds in the window.
    pub cpu_s: f64,
    /// RSS at the window's start, KiB.
    pub rss_kb_start: u64,
    /// RSS at its end, KiB.
    pub rss_kb_end: u64,
}

/// The generator itself over the window.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorStats {
    /// CPU seconds (all threads).
    pub cpu_s: f64,
    /// As % of one core.
    pub core_pct: f64,
    /// The open-file limit it ran with.
    pub nofile_limit: u64,
}

impl RunReport {
    /// The human table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let s = &self.shape;
        let mut mode = self
            .connect_mode
            .map(|m| format!(" connect={}", serde_plain(&m)))
            .unwrap_or_default();
        let _ = write!(mode, " protocol={}", serde_plain(&self.protocol));
        if let Some(t) = self.transport {
            let _ = write!(mode, " transport={}", serde_plain(&t));
        }
        if !self.sender_echo {
            mode.push_str(" (no echo: members - 1 receive each message)");
        }
        let _ = writeln!(
            o,
            "loadgen run   target={}{mode} run={}",
            serde_plain(&self.target),
            self.run_id
        );
        let _ = writeln!(
            o,
            "shape         {} rooms × {} members, {} senders/room at {}/s, body {} B, warm-up {} s, window {} s",
            s.rooms,
            s.members,
            s.senders,
            s.rate_per_sender,
            s.body_bytes,
            s.warmup_s,
            s.duration_s
        );
        let c = &self.connect;
        let _ = writeln!(
            o,
            "connections   {}/{} in {:.2} s ({:.0}/s); one: p50 {} p99 {} max {}",
            c.connected,
            c.attempted,
            c.wall_s,
            c.rate_per_s,
            us(c.time_us.p50),
            us(c.time_us.p99),
            us(c.time_us.max)
        );
        let d = &self.send;
        let _ = writeln!(
            o,
            "sending       offered {:.1} msg/s, achieved {:.1} msg/s; lag p99 {} max {}{}",
            d.offered_per_s,
            d.achieved_per_s,
            us(d.lag_us.p99),
            us(d.lag_us.max),
            if d.generator_lagged {
                "  ** GENERATOR LAGGED **"
            } else {
                ""
            }
        );
        let v = &self.deliveries;
        let _ = writeln!(
            o,
            "deliveries    offered {:.0}/s, delivered {:.0}/s; expected {}, received {}, lost {} ({:.4} %), gaps {}, duplicates {}",
            v.offered_per_s,
            v.delivered_per_s,
            v.expected,
            v.received,
            v.lost,
            v.loss_ratio * 100.0,
            v.gaps,
            v.duplicates
        );
        let l = &self.latency_us;
        let _ = writeln!(
            o,
            "latency       p50 {}  p99 {}  p999 {}  max {}  (n = {})",
            us(l.p50),
            us(l.p99),
            us(l.p999),
            us(l.max),
            l.samples
        );
        let _ = writeln!(o, "errors        {}", error_line(&self.errors));
        if let Some(sv) = &self.server {
            let pids: Vec<String> = sv.pids.iter().map(|p| p.pid.to_string()).collect();
            let _ = writeln!(
                o,
                "server        pids {}: cpu {:.2} s ({:.1} % of a core), {:.2} µs/delivery, rss {:.1} MiB",
                pids.join(","),
                sv.cpu_s,
                sv.core_pct,
                sv.us_per_delivery,
                sv.rss_kb_end as f64 / 1024.0
            );
        }
        let g = &self.generator;
        let _ = writeln!(
            o,
            "generator     cpu {:.2} s ({:.1} % of a core), open-file limit {}",
            g.cpu_s, g.core_pct, g.nofile_limit
        );
        o
    }
}

/// A µs value for people: `850 µs`, `12.3 ms`, `1.20 s`.
pub fn us(v: u64) -> String {
    match v {
        0..1_000 => format!("{v} µs"),
        1_000..1_000_000 => format!("{:.1} ms", v as f64 / 1e3),
        _ => format!("{:.2} s", v as f64 / 1e6),
    }
}

/// The non-zero error counts, `none` if there are none.
pub fn error_line(e: &Errors) -> String {
    let counts = [
        ("connect_tcp", e.connect_tcp),
        ("connect_timeout", e.connect_timeout),
        ("connect_http", e.connect_http),
        ("connect_websocket", e.connect_websocket),
        ("connect_protocol", e.connect_protocol),
        ("closed_by_server", e.closed_by_server),
        ("read_errors", e.read_errors),
        ("send_errors", e.send_errors),
        ("rate_limited", e.rate_limited),
        ("error_frames_other", e.error_frames_other),
        ("unparsed_frames", e.unparsed_frames),
    ];
    let mut parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n != 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    for (k, map) in [
        ("http_statuses", &e.http_statuses),
        ("close_codes", &e.close_codes),
        ("error_codes", &e.error_codes),
    ] {
        if !map.is_empty() {
            let inner: Vec<String> = map.iter().map(|(c, n)| format!("{c}:{n}")).collect();
            parts.push(format!("{k}={{{}}}", inner.join(",")));
        }
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}

/// A unit enum's serde name.
fn serde_plain<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(us(850), "850 µs");
        assert_eq!(us(12_345), "12.3 ms");
        assert_eq!(us(1_200_000), "1.20 s");
    }

    #[test]
    fn error_line_lists_what_happened() {
        let mut e = Errors::default();
        assert_eq!(error_line(&e), "none");
        e.rate_limited = 3;
        e.closed(Some(1008));
        assert_eq!(
            error_line(&e),
            "closed_by_server=1 rate_limited=3 close_codes={1008:1}"
        );
    }
}
