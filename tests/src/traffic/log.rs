//! What the live clients record: [`Progress`], published while a client
//! runs, for the test's waits; [`ClientLog`], returned when it ends, for
//! the verdict ([`crate::verdict`]): every message received, per stream
//! ([`Segment`], [`Got`]), every body sent, and how each connection
//! ([`Conn`]) ended.

use std::collections::BTreeSet;

use serde_json::Value;
use tokio::time::Instant;

/// A client's state as the test's waits see it.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    /// In its room right now.
    pub connected: bool,
    /// The router slot of the current connection.
    pub via: usize,
    /// The node of the current connection.
    pub node: String,
    /// The stream of the current connection.
    pub stream: String,
    /// The last seq seen in that stream.
    pub last_seq: u64,
    /// Own bodies sent and not yet seen accepted.
    pub pending: usize,
    /// Own bodies seen accepted, in total.
    pub accepted: u64,
    /// Own bodies seen accepted on the current connection.
    pub accepted_here: usize,
    /// Connections made (the first join included).
    pub connections: usize,
    /// The anomalies so far (see [`ClientLog::anomalies`]).
    pub anomalies: Vec<String>,
}

impl Progress {
    /// Connections made after the first join.
    pub fn rejoins(&self) -> usize {
        self.connections.saturating_sub(1)
    }
}

/// One received room message: its seq and the body `{"c","n"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Got {
    /// Its seq in its stream.
    pub seq: u64,
    /// The sending client's id.
    pub c: u64,
    /// The sending client's counter.
    pub n: u64,
}

impl Got {
    /// A `message` frame whose body is `{"c","n"}`, or `None` if `v` is
    /// not one.
    pub fn from_message(v: &Value) -> Option<Self> {
        Some(Self {
            seq: v["seq"].as_u64()?,
            c: v["body"]["c"].as_u64()?,
            n: v["body"]["n"].as_u64()?,
        })
    }
}

/// Messages of one stream, as one client saw them.
#[derive(Debug, Default, Clone)]
pub struct Segment {
    /// The stream.
    pub stream: String,
    /// Every `message` in it, in arrival order.
    pub got: Vec<Got>,
    /// When each of `got` arrived.
    pub arrived: Vec<Instant>,
    /// Nodes that served this client in this stream.
    pub nodes: BTreeSet<String>,
}

/// One connection of a client.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The router slot it went through.
    pub via: usize,
    /// The node that welcomed it.
    pub node: String,
    /// When and how it ended, e.g. `close 1012`, `eof`, `moved /i4/room/x`,
    /// `resync`, `finished`.
    pub ended: Option<(Instant, String)>,
}

/// What a client saw and did, returned when its task ends.
#[derive(Debug, Default)]
pub struct ClientLog {
    /// The client's id, `c` of its bodies.
    pub id: u64,
    /// Its room.
    pub room: String,
    /// What it received, one segment per stream, in order.
    pub segments: Vec<Segment>,
    /// Bodies sent, by `n`: 0..sent.
    pub sent: u64,
    /// When each body was first sent, by `n`.
    pub sent_at: Vec<Instant>,
    /// Bodies sent again because a replay showed them not accepted, in
    /// order.
    pub resent: Vec<u64>,
    /// Its connections, in order.
    pub conns: Vec<Conn>,
    /// Welcomes into another stream than the one before.
    pub stream_changes: usize,
    /// `error` `history_gap` frames.
    pub history_gaps: usize,
    /// `error` `unavailable` frames (a fenced node's goodbye).
    pub unavailable: usize,
    /// `error` `room_moving` answers.
    pub room_moving: usize,
    /// `error` `not_accepted` answers (the room's replica could not
    /// confirm: a fenced owner's pending messages). Resent like the
    /// `room_moving` ones.
    pub not_accepted: usize,
    /// Bodies found unaccepted when a connection ended that no
    /// `room_moving` answered: they crossed `moved` on the wire or sat
    /// unread when the old owner closed. Resent like the refused ones.
    pub unanswered: usize,
    /// Paths of `moved` frames.
    pub moved_to: Vec<String>,
    /// Close codes right after `moved`.
    pub move_closes: Vec<Option<u16>>,
    /// Joins dropped at once to replay a new stream from its start.
    pub resyncs: usize,
    /// Join attempts that failed (router down, node refusing).
    pub join_failures: usize,
    /// Sends that failed on the socket (a connection ending under them).
    pub failed_sends: usize,
    /// Everything that breaks the protocol as README states it, or that
    /// the run's [`Expect`](super::Expect) rules out.
    pub anomalies: Vec<String>,
}

impl ClientLog {
    /// How the connections ended, e.g. `close 1012`, `eof`.
    pub fn ends(&self) -> Vec<&str> {
        self.conns
            .iter()
            .filter_map(|c| c.ended.as_ref().map(|(_, why)| why.as_str()))
            .collect()
    }

    /// Every `message` received, in arrival order, across streams.
    pub fn got(&self) -> Vec<Got> {
        self.segments
            .iter()
            .flat_map(|s| s.got.iter().copied())
            .collect()
    }

    /// The streams it was in, in order.
    pub fn streams(&self) -> Vec<&str> {
        self.segments.iter().map(|s| s.stream.as_str()).collect()
    }
}
