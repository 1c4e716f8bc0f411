//! What the node sends a Socket.IO member, as Engine.IO packets: the
//! CONNECT answer and its refusals, acks, DISCONNECT, and the room's
//! events. A room event is encoded once per namespace spelling
//! ([`Nsp`]) and the same packets go to every Socket.IO member
//! ([`Delivery`]); a native message is turned into an event only when the
//! room has a Socket.IO member to give it to.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use proto::RoomId;
use proto::socketio::bridge::Event;
use proto::socketio::packet::{Kind, MAIN_NAMESPACE, encode};
use proto::socketio::recovery;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::engineio::{Overflow, Packet, Session};
use crate::member::outlet::Outlet;

/// How a member named its room's namespace: `/` or `/room/{id}`. Both mean
/// the room of the session's path; packets to the member must use the
/// same spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nsp {
    Main,
    Room,
}

impl Nsp {
    /// The namespace a CONNECT names, if it is one of the room's.
    pub(crate) fn of(nsp: &str, room: &RoomId) -> Option<Self> {
        if nsp == MAIN_NAMESPACE {
            Some(Self::Main)
        } else if nsp.strip_prefix("/room/") == Some(room.as_str()) {
            Some(Self::Room)
        } else {
            None
        }
    }

    /// The namespace as written in packets.
    pub(crate) fn name(self, room: &RoomId) -> String {
        match self {
            Self::Main => MAIN_NAMESPACE.to_owned(),
            Self::Room => proto::path::legacy(room),
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Main => 0,
            Self::Room => 1,
        }
    }
}

/// A Socket.IO member as the room sees it: its session, the namespace
/// spelling its packets use, and the session's WebSocket when it was on
/// one at CONNECT (then the room writes to it directly; a session that
/// upgrades later goes through its lock).
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) session: Arc<Session>,
    pub(crate) nsp: Nsp,
    websocket: Option<Arc<Outlet>>,
}

impl Peer {
    pub(crate) fn new(session: Arc<Session>, nsp: Nsp) -> Self {
        let websocket = session.websocket();
        Self {
            session,
            nsp,
            websocket,
        }
    }

    /// Sends `packets` to the member (see [`Session::send`]).
    pub(crate) fn send(&self, packets: &[Arc<Packet>]) -> Result<(), Overflow> {
        match &self.websocket {
            Some(outlet) => self.session.send_via(outlet, packets),
            None => self.session.send(packets),
        }
    }
}

/// One text packet.
fn text(kind: Kind, nsp: &str, id: Option<u64>, json: &str) -> Arc<Packet> {
    Arc::new(Packet::text(encode(kind, nsp, 0, id, json)))
}

/// The CONNECT answer: `sid` (the member id) and `pid` (stream and member,
/// for recovery).
pub(crate) fn connected(nsp: &str, member: &str, stream: &str) -> Arc<Packet> {
    let json = serde_json::json!({ "sid": member, "pid": recovery::pid(stream, member) });
    text(Kind::Connect, nsp, None, &json.to_string())
}

/// A CONNECT_ERROR with Socket.IO's `{"message": …}` (and our `data.code`).
pub(crate) fn connect_error(nsp: &str, message: &str, code: Option<&str>) -> Arc<Packet> {
    let json = match code {
        Some(code) => serde_json::json!({ "message": message, "data": { "code": code } }),
        None => serde_json::json!({ "message": message }),
    };
    text(Kind::ConnectError, nsp, None, &json.to_string())
}

/// A DISCONNECT: the server ended the member's membership; socket.io-client
/// does not reconnect after it.
pub(crate) fn disconnect(nsp: &str) -> Arc<Packet> {
    text(Kind::Disconnect, nsp, None, "")
}

/// The ack of an accepted event: `[{"seq": N}]`.
pub(crate) fn ack_seq(nsp: &str, id: u64, seq: u64) -> Arc<Packet> {
    text(Kind::Ack, nsp, Some(id), &format!(r#"[{{"seq":{seq}}}]"#))
}

/// The ack of a refused event: `[{"error": code}]`.
pub(crate) fn ack_error(nsp: &str, id: u64, code: &str) -> Arc<Packet> {
    let json = serde_json::json!([{ "error": code }]);
    text(Kind::Ack, nsp, Some(id), &json.to_string())
}

/// The ack of an event the publish hook rejected:
/// `[{"error": "rejected", "reason": …}]`.
pub(crate) fn ack_rejected(nsp: &str, id: u64, reason: &str) -> Arc<Packet> {
    let json = serde_json::json!([{ "error": proto::wire::code::REJECTED, "reason": reason }]);
    text(Kind::Ack, nsp, Some(id), &json.to_string())
}

/// An event's packets: EVENT, or BINARY_EVENT and its attachments, with
/// the offset as the last argument. Only the first packet is counted as a
/// delivery.
pub(crate) fn event(
    nsp: &str,
    event: &Event,
    seq: u64,
    accepted: Option<Instant>,
) -> Vec<Arc<Packet>> {
    let array = event.to_json_array(Some(&recovery::offset(seq)));
    let n = event.attachments.len();
    let kind = if n == 0 {
        Kind::Event
    } else {
        Kind::BinaryEvent
    };
    let mut head = Packet::text(encode(kind, nsp, n, None, &array));
    if let Some(at) = accepted {
        head = head.accepted_at(at);
    }
    let mut packets = Vec::with_capacity(1 + n);
    packets.push(Arc::new(head));
    packets.extend(
        event
            .attachments
            .iter()
            .map(|a| Arc::new(Packet::binary(Bytes::copy_from_slice(a)))),
    );
    packets
}

/// Where a room message's event comes from.
pub(crate) enum Source<'a> {
    /// A Socket.IO member emitted it.
    Event(&'a Event),
    /// A native member sent this body.
    Body(&'a RawValue),
}

/// A room message on its way to the Socket.IO members: the event, made
/// from a native body at most once, and its packets, encoded at most once
/// per namespace spelling.
pub(crate) struct Delivery<'a> {
    room: &'a RoomId,
    pub(crate) seq: u64,
    /// The sender's room key: Socket.IO delivers to every other member.
    pub(crate) sender: u64,
    source: Source<'a>,
    accepted: Option<Instant>,
    parsed: OnceLock<Event>,
    packets: [OnceLock<Vec<Arc<Packet>>>; 2],
}

impl<'a> Delivery<'a> {
    pub(crate) fn new(
        room: &'a RoomId,
        seq: u64,
        sender: u64,
        source: Source<'a>,
        accepted: Option<Instant>,
    ) -> Self {
        Self {
            room,
            seq,
            sender,
            source,
            accepted,
            parsed: OnceLock::new(),
            packets: Default::default(),
        }
    }

    /// The packets for members connected with `nsp`.
    pub(crate) fn packets(&self, nsp: Nsp) -> &[Arc<Packet>] {
        self.packets[nsp.index()].get_or_init(|| {
            let ev = match self.source {
                Source::Event(ev) => ev,
                Source::Body(body) => self.parsed.get_or_init(|| event_of(body)),
            };
            event(&nsp.name(self.room), ev, self.seq, self.accepted)
        })
    }
}

/// The event a native body is delivered as.
fn event_of(body: &RawValue) -> Event {
    let value = serde_json::from_str(body.get()).unwrap_or(serde_json::Value::Null);
    Event::from_body(&value)
}

/// The parts of a kept `message` frame a replay needs.
#[derive(Deserialize)]
struct Kept<'a> {
    seq: u64,
    #[serde(borrow)]
    from: &'a str,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// The events of kept native `message` frames, as packets for a member
/// connected with `nsp`, leaving out those `member` sent itself (it never
/// got them live either).
pub(crate) fn replay(frames: &[impl AsRef<str>], nsp: &str, member: &str) -> Vec<Arc<Packet>> {
    let mut out = Vec::new();
    for frame in frames {
        let Ok(kept) = serde_json::from_str::<Kept<'_>>(frame.as_ref()) else {
            continue;
        };
        if kept.from != member {
            out.extend(event(nsp, &event_of(kept.body), kept.seq, None));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(packets: &[Arc<Packet>]) -> Vec<String> {
        packets.iter().map(|p| p.debug_text()).collect()
    }

    #[test]
    fn names_the_rooms_namespaces_only() {
        let room: RoomId = "lobby".parse().unwrap();
        assert_eq!(Nsp::of("/", &room), Some(Nsp::Main));
        assert_eq!(Nsp::of("/room/lobby", &room), Some(Nsp::Room));
        assert_eq!(Nsp::of("/room/other", &room), None);
        assert_eq!(Nsp::of("/custom", &room), None);
        assert_eq!(Nsp::Room.name(&room), "/room/lobby");
    }

    #[test]
    fn a_native_body_is_encoded_once_per_namespace() {
        let room: RoomId = "lobby".parse().unwrap();
        let body = RawValue::from_string(r#"{"event":"chat","args":["hi"]}"#.into()).unwrap();
        let d = Delivery::new(&room, 7, 1, Source::Body(&body), None);
        assert_eq!(texts(d.packets(Nsp::Main)), [r#"2["chat","hi","7"]"#]);
        assert_eq!(
            texts(d.packets(Nsp::Room)),
            [r#"2/room/lobby,["chat","hi","7"]"#]
        );
        assert!(Arc::ptr_eq(
            &d.packets(Nsp::Main)[0],
            &d.packets(Nsp::Main)[0]
        ));
    }

    #[test]
    fn binary_events_carry_their_attachments() {
        let ev = Event {
            name: "file".into(),
            args: vec![serde_json::json!({"_placeholder": true, "num": 0})],
            attachments: vec![vec![1, 2, 3]],
        };
        let p = event("/", &ev, 3, None);
        assert_eq!(
            texts(&p),
            [
                r#"51-["file",{"_placeholder":true,"num":0},"3"]"#,
                "b:010203"
            ]
        );
    }

    #[test]
    fn replays_leave_out_the_members_own_events() {
        let frames = [
            r#"{"type":"message","room":"r","seq":4,"from":"m1","body":"a"}"#,
            r#"{"type":"message","room":"r","seq":5,"from":"m2","body":"b"}"#,
        ];
        assert_eq!(
            texts(&replay(&frames, "/", "m1")),
            [r#"2["message","b","5"]"#]
        );
    }

    #[test]
    fn acks_and_refusals() {
        assert_eq!(ack_seq("/", 4, 9).debug_text(), r#"34[{"seq":9}]"#);
        assert_eq!(
            ack_error("/room/x", 4, "rate_limited").debug_text(),
            r#"3/room/x,4[{"error":"rate_limited"}]"#
        );
        assert_eq!(
            connect_error("/x", "Invalid namespace", None).debug_text(),
            r#"4/x,{"message":"Invalid namespace"}"#
        );
        assert_eq!(disconnect("/").debug_text(), "1");
    }
}
