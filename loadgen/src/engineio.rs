//! Just enough Engine.IO v4 and Socket.IO v4/v5 to be a chat client of the
//! Socket.IO + Redis baseline and of a room node's Socket.IO endpoint
//! (`<room path>/socket.io/`), over WebSocket (one packet per text frame)
//! or long-polling (packets joined by `\x1e` in an HTTP body; see
//! `crate::polling`).
//!
//! Engine.IO: one packet per WebSocket text frame, the first character its
//! type: `0` open (`0{"sid",…,"pingInterval","pingTimeout","maxPayload"}`,
//! the server's first frame), `1` close, `2` ping (from the server in v4; the
//! client answers `3` pong with the same data), `3` pong, `4` message, `5`
//! upgrade, `6` noop.
//!
//! Socket.IO rides in Engine.IO messages: `4` then its own packet type,
//! `[<attachments>-][<namespace>,][<ack id>][<JSON>]`: `0` connect (the
//! client sends `40` for the main namespace; the server answers
//! `40{"sid":…}`), `1` disconnect, `2` event (`42["name",args…]`), `3` ack,
//! `4` connect error (`44{"message":…}`), `5`/`6` binary event/ack (not
//! used here).
//!
//! The conversation: server `0{…}` → client `40` → server `40{…}` → client
//! `42["join","<room>"]`; then the client emits `42["chat",<body>]` and the
//! server broadcasts `42["chat",<body>]` to every member of the room, the
//! sender included; the server pings with `2`, the client answers `3`.
//!
//! On a room node the path names the room, so there is no `join`: after
//! `40` → `40{"sid","pid"}` the client emits `42["chat",<body>]` and every
//! *other* member gets `42["chat",<body>,"<seq>"]` (the offset last, for
//! connection state recovery); the sender gets nothing back.

use std::borrow::Cow;

use serde::Deserialize;

/// Path and query of the WebSocket endpoint, appended to a server URL.
pub const PATH_QUERY: &str = "/socket.io/?EIO=4&transport=websocket";
/// A room node's Socket.IO path, appended to the room's path.
pub const NODE_SUFFIX: &str = "/socket.io/";
/// The query opening a WebSocket session.
pub const QUERY_WEBSOCKET: &str = "?EIO=4&transport=websocket";
/// The query opening a polling session (its requests add `&sid=…`).
pub const QUERY_POLLING: &str = "?EIO=4&transport=polling";
/// Separates the packets of a polling payload.
pub const RECORD_SEPARATOR: char = '\x1e';
/// Client → server: connect to the main namespace.
pub const CONNECT: &str = "40";
/// The event carrying chat messages both ways.
pub const CHAT_EVENT: &str = "chat";

/// One Engine.IO packet, borrowing from the frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// The handshake.
    Open(Open),
    /// The server closes the session.
    Close,
    /// A heartbeat to answer with [`pong`] (its data, usually empty).
    Ping(&'a str),
    /// A heartbeat answer.
    Pong,
    /// A Socket.IO packet.
    Message(SioPacket<'a>),
    /// Transport upgrade (polling only).
    Upgrade,
    /// Nothing.
    Noop,
}

/// The Engine.IO open packet's fields that matter here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Open {
    /// Session id.
    pub sid: String,
    /// How often the server pings, ms.
    #[serde(default)]
    pub ping_interval: u64,
    /// How long the server waits for a pong, ms.
    #[serde(default)]
    pub ping_timeout: u64,
    /// Largest packet the server takes, bytes.
    #[serde(default)]
    pub max_payload: u64,
}

/// One Socket.IO packet (main or other namespace).
#[derive(Debug, PartialEq, Eq)]
pub enum SioPacket<'a> {
    /// Connected to a namespace (`data` is the JSON object after it).
    Connect {
        /// The namespace, `/` for the main one.
        nsp: &'a str,
        /// `{"sid":…}` or empty.
        data: &'a str,
    },
    /// Disconnected from a namespace.
    Disconnect {
        /// The namespace.
        nsp: &'a str,
    },
    /// An event: `args` is the JSON array `["name", arg, …]`.
    Event {
        /// The namespace.
        nsp: &'a str,
        /// Acknowledgement id, when the sender wants one.
        ack: Option<u64>,
        /// The JSON array.
        args: &'a str,
    },
    /// The namespace refused the connection (`data`: `{"message":…}`).
    ConnectError {
        /// The namespace.
        nsp: &'a str,
        /// The JSON error.
        data: &'a str,
    },
    /// Acks and binary packets, which this client never asks for.
    Other(u8),
}

/// Why a frame is not a packet.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An empty frame.
    #[error("empty Engine.IO frame")]
    Empty,
    /// An Engine.IO type outside `0..=6`.
    #[error("unknown Engine.IO packet type {0:?}")]
    EngineType(char),
    /// An open packet whose JSON is not the handshake.
    #[error("bad Engine.IO open packet: {0}")]
    Open(String),
    /// A message without a Socket.IO type, or one outside `0..=6`.
    #[error("bad Socket.IO packet type")]
    SocketType,
    /// A namespace without the `,` that ends it.
    #[error("Socket.IO namespace without ','")]
    Namespace,
}

/// Parses one text frame.
pub fn parse(frame: &str) -> Result<Packet<'_>, ParseError> {
    let mut chars = frame.chars();
    let kind = chars.next().ok_or(ParseError::Empty)?;
    let rest = chars.as_str();
    Ok(match kind {
        '0' => {
            Packet::Open(serde_json::from_str(rest).map_err(|e| ParseError::Open(e.to_string()))?)
        }
        '1' => Packet::Close,
        '2' => Packet::Ping(rest),
        '3' => Packet::Pong,
        '4' => Packet::Message(parse_socket(rest)?),
        '5' => Packet::Upgrade,
        '6' => Packet::Noop,
        other => return Err(ParseError::EngineType(other)),
    })
}

/// Parses a Socket.IO packet (what follows the Engine.IO `4`).
fn parse_socket(s: &str) -> Result<SioPacket<'_>, ParseError> {
    let kind = *s.as_bytes().first().ok_or(ParseError::SocketType)?;
    let mut rest = &s[1..];
    if matches!(kind, b'5' | b'6') {
        return Ok(SioPacket::Other(kind - b'0'));
    }
    let nsp = if rest.starts_with('/') {
        let comma = rest.find(',').ok_or(ParseError::Namespace)?;
        let nsp = &rest[..comma];
        rest = &rest[comma + 1..];
        nsp
    } else {
        "/"
    };
    Ok(match kind {
        b'0' => SioPacket::Connect { nsp, data: rest },
        b'1' => SioPacket::Disconnect { nsp },
        b'2' => {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let ack = rest[..digits].parse().ok();
            SioPacket::Event {
                nsp,
                ack,
                args: &rest[digits..],
            }
        }
        b'3' => SioPacket::Other(3),
        b'4' => SioPacket::ConnectError { nsp, data: rest },
        _ => return Err(ParseError::SocketType),
    })
}

/// An event's name and its first argument, from the `args` of an
/// [`SioPacket::Event`]: `["name", arg, …]` (further arguments, such as a
/// room node's offset, are skipped).
pub fn event<'a, T: Deserialize<'a>>(args: &'a str) -> serde_json::Result<(Cow<'a, str>, T)> {
    let mut de = serde_json::Deserializer::from_str(args);
    let pair = serde::Deserializer::deserialize_seq(&mut de, FirstTwo(std::marker::PhantomData))?;
    de.end()?;
    Ok(pair)
}

/// Visits a JSON array's first two elements and skips the rest.
struct FirstTwo<'a, T>(std::marker::PhantomData<(&'a (), T)>);

impl<'a, T: Deserialize<'a>> serde::de::Visitor<'a> for FirstTwo<'a, T> {
    type Value = (Cow<'a, str>, T);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event array [\"name\", arg, ...]")
    }

    fn visit_seq<A: serde::de::SeqAccess<'a>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        let name: BorrowedName<'a> = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let arg = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(1, &self))?;
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok((name.0, arg))
    }
}

/// An event name, borrowed unless it has escapes.
#[derive(Deserialize)]
struct BorrowedName<'a>(#[serde(borrow)] Cow<'a, str>);

/// The packets of a polling payload (one, or several joined by `\x1e`).
pub fn split_payload(body: &str) -> impl Iterator<Item = &str> {
    body.split(RECORD_SEPARATOR)
}

/// The pong answering a ping that carried `data`.
pub fn pong(data: &str) -> String {
    format!("3{data}")
}

/// `42["join","<room>"]`.
pub fn join(room: &str) -> String {
    // A room id is [A-Za-z0-9_-]; serde escapes anything else anyway.
    format!(
        "42[\"join\",{}]",
        serde_json::Value::String(room.to_owned())
    )
}

/// Appends `42["chat",` + the body written by `body` + `]` to `out`.
pub fn write_chat(out: &mut String, body: impl FnOnce(&mut String)) {
    out.push_str("42[\"");
    out.push_str(CHAT_EVENT);
    out.push_str("\",");
    body(out);
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Stamp;

    #[test]
    fn open_packet() {
        let p = parse(r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#).unwrap();
        assert_eq!(
            p,
            Packet::Open(Open {
                sid: "lv_VI97HAXpY6yYWAAAC".into(),
                ping_interval: 25000,
                ping_timeout: 20000,
                max_payload: 1_000_000,
            })
        );
        assert!(matches!(parse("0{}"), Err(ParseError::Open(_))));
    }

    #[test]
    fn heartbeat_and_control_packets() {
        assert_eq!(parse("2"), Ok(Packet::Ping("")));
        assert_eq!(pong(""), "3");
        assert_eq!(parse("2probe"), Ok(Packet::Ping("probe")));
        assert_eq!(pong("probe"), "3probe");
        assert_eq!(parse("3"), Ok(Packet::Pong));
        assert_eq!(parse("1"), Ok(Packet::Close));
        assert_eq!(parse("6"), Ok(Packet::Noop));
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("9"), Err(ParseError::EngineType('9')));
        assert_eq!(parse("4"), Err(ParseError::SocketType));
        assert_eq!(parse("49"), Err(ParseError::SocketType));
    }

    #[test]
    fn socket_packets() {
        assert_eq!(
            parse(r#"40{"sid":"abc"}"#),
            Ok(Packet::Message(SioPacket::Connect {
                nsp: "/",
                data: r#"{"sid":"abc"}"#
            }))
        );
        assert_eq!(
            parse(r#"40/admin,{"sid":"x"}"#),
            Ok(Packet::Message(SioPacket::Connect {
                nsp: "/admin",
                data: r#"{"sid":"x"}"#
            }))
        );
        assert_eq!(
            parse("41"),
            Ok(Packet::Message(SioPacket::Disconnect { nsp: "/" }))
        );
        assert_eq!(
            parse(r#"44{"message":"Not authorized"}"#),
            Ok(Packet::Message(SioPacket::ConnectError {
                nsp: "/",
                data: r#"{"message":"Not authorized"}"#
            }))
        );
        assert_eq!(
            parse(r#"4212["chat",{}]"#),
            Ok(Packet::Message(SioPacket::Event {
                nsp: "/",
                ack: Some(12),
                args: r#"["chat",{}]"#
            }))
        );
        assert_eq!(
            parse("451-[\"x\"]"),
            Ok(Packet::Message(SioPacket::Other(5)))
        );
        assert_eq!(parse("40/admin"), Err(ParseError::Namespace));
    }

    #[test]
    fn chat_round_trip() {
        let w = crate::body::BodyWriter::new(100);
        let stamp = Stamp { s: 3, q: 9, t: 42 };
        let mut frame = String::new();
        write_chat(&mut frame, |out| w.write(out, stamp));
        assert!(frame.starts_with(r#"42["chat",{"s":3,"#), "{frame}");
        let Ok(Packet::Message(SioPacket::Event {
            args, ack: None, ..
        })) = parse(&frame)
        else {
            panic!("{frame}")
        };
        let (name, got): (_, Stamp) = event(args).unwrap();
        assert_eq!(name, "chat");
        assert_eq!(got, stamp);
        // Other events have other names; malformed args are errors.
        let (name, _): (_, serde_json::Value) = event(r#"["joined",{"n":1}]"#).unwrap();
        assert_eq!(name, "joined");
        assert!(event::<Stamp>(r#"{"s":1}"#).is_err());
        assert!(event::<Stamp>(r#"["chat"]"#).is_err());
        // A room node appends the offset; more arguments are skipped too.
        let (name, got): (_, Stamp) = event(r#"["chat",{"s":3,"q":9,"t":42},"17"]"#).unwrap();
        assert_eq!((name.as_ref(), got), ("chat", stamp));
        let (_, got): (_, Stamp) = event(r#"["chat",{"s":3,"q":9,"t":42},"17",[1,{}]]"#).unwrap();
        assert_eq!(got, stamp);
    }

    #[test]
    fn polling_payloads_split_on_the_record_separator() {
        let packets: Vec<&str> = split_payload("2\x1e42[\"chat\",{}]\x1e6").collect();
        assert_eq!(packets, ["2", r#"42["chat",{}]"#, "6"]);
        assert_eq!(split_payload("40").collect::<Vec<_>>(), ["40"]);
    }

    #[test]
    fn join_frame() {
        assert_eq!(join("lg-abc-7"), r#"42["join","lg-abc-7"]"#);
    }
}
