//! The Socket.IO v5 packet: `<type>[<attachments>-][<nsp>,][<ack id>][<JSON>]`.
//!
//! Decoding follows socket.io-parser's rules, because a packet it would
//! refuse must close the session here too (the official protocol suite
//! checks it): an unknown type, a payload that is not valid JSON or not of
//! the type's shape (CONNECT: an object; EVENT: an array whose first element
//! is a name or a number and not a reserved event), an ack id that is not a
//! number.

use serde_json::Value;
use serde_json::value::RawValue;
use thiserror::Error;

/// A packet's type, the first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `0`: join a namespace (client), or its acceptance (server).
    Connect,
    /// `1`: leave a namespace, or be made to leave it.
    Disconnect,
    /// `2`: an event with its arguments.
    Event,
    /// `3`: the answer to an event that asked for one.
    Ack,
    /// `4`: the namespace refused the client.
    ConnectError,
    /// `5`: an event whose arguments hold binary attachments.
    BinaryEvent,
    /// `6`: an ack whose arguments hold binary attachments.
    BinaryAck,
}

impl Kind {
    fn from_char(c: u8) -> Option<Self> {
        Some(match c {
            b'0' => Self::Connect,
            b'1' => Self::Disconnect,
            b'2' => Self::Event,
            b'3' => Self::Ack,
            b'4' => Self::ConnectError,
            b'5' => Self::BinaryEvent,
            b'6' => Self::BinaryAck,
            _ => return None,
        })
    }

    fn as_char(self) -> char {
        match self {
            Self::Connect => '0',
            Self::Disconnect => '1',
            Self::Event => '2',
            Self::Ack => '3',
            Self::ConnectError => '4',
            Self::BinaryEvent => '5',
            Self::BinaryAck => '6',
        }
    }

    fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }
}

/// Event names socket.io-client keeps for itself: a client may not emit
/// them.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// The namespace of a packet that names none.
pub const MAIN_NAMESPACE: &str = "/";

/// A decoded packet, borrowing from the text it came from.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// The type.
    pub kind: Kind,
    /// The namespace (`/` when the packet names none).
    pub nsp: &'a str,
    /// Binary attachments that follow (binary types only).
    pub attachments: usize,
    /// The ack id the sender waits on.
    pub id: Option<u64>,
    /// The JSON payload, checked to be of the type's shape.
    pub data: Option<&'a RawValue>,
}

/// Why a packet is not one socket.io-parser would accept.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PacketError {
    /// Empty, or a type outside 0-6.
    #[error("unknown packet type")]
    UnknownType,
    /// A binary packet without `<n>-`.
    #[error("illegal attachments")]
    IllegalAttachments,
    /// Not JSON, or not of the shape its type requires.
    #[error("invalid payload")]
    InvalidPayload,
}

impl<'a> Packet<'a> {
    /// Decodes a packet; see the module doc for what is refused.
    pub fn decode(text: &'a str) -> Result<Self, PacketError> {
        let bytes = text.as_bytes();
        let kind = bytes
            .first()
            .and_then(|c| Kind::from_char(*c))
            .ok_or(PacketError::UnknownType)?;
        let mut rest = &text[1..];
        let mut attachments = 0;
        if kind.is_binary() {
            let dash = rest.find('-').ok_or(PacketError::IllegalAttachments)?;
            attachments = rest[..dash]
                .parse()
                .map_err(|_| PacketError::IllegalAttachments)?;
            rest = &rest[dash + 1..];
        }
        let mut nsp = MAIN_NAMESPACE;
        if rest.starts_with('/') {
            let end = rest.find(',').unwrap_or(rest.len());
            nsp = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or("");
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let id = if digits > 0 {
            Some(
                rest[..digits]
                    .parse()
                    .map_err(|_| PacketError::InvalidPayload)?,
            )
        } else {
            None
        };
        rest = &rest[digits..];
        let data = if rest.is_empty() {
            None
        } else {
            let raw: &RawValue =
                serde_json::from_str(rest).map_err(|_| PacketError::InvalidPayload)?;
            Some(raw)
        };
        let packet = Self {
            kind,
            nsp,
            attachments,
            id,
            data,
        };
        packet.check_shape()?;
        Ok(packet)
    }

    fn check_shape(&self) -> Result<(), PacketError> {
        let value = match self.data {
            Some(raw) => Some(
                serde_json::from_str::<Value>(raw.get())
                    .map_err(|_| PacketError::InvalidPayload)?,
            ),
            None => None,
        };
        let ok = match (self.kind, &value) {
            (Kind::Connect, None) => true,
            (Kind::Connect, Some(v)) => v.is_object(),
            (Kind::Disconnect, v) => v.is_none(),
            (Kind::ConnectError, Some(v)) => v.is_object() || v.is_string(),
            (Kind::Event | Kind::BinaryEvent, Some(Value::Array(args))) => match args.first() {
                Some(Value::Number(_)) => true,
                Some(Value::String(name)) => !RESERVED_EVENTS.contains(&name.as_str()),
                _ => false,
            },
            (Kind::Ack | Kind::BinaryAck, Some(v)) => v.is_array(),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(PacketError::InvalidPayload)
        }
    }

    /// The event's name, for an event packet.
    pub fn event_name(&self) -> Option<String> {
        let raw = self.data?;
        let args: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
        let first = args.first()?;
        serde_json::from_str::<Value>(first.get())
            .ok()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
    }
}

/// Encodes a packet: `kind`, binary attachment count (binary kinds), the
/// namespace (omitted when it is `/`), the ack id, then `json` as is.
pub fn encode(kind: Kind, nsp: &str, attachments: usize, id: Option<u64>, json: &str) -> String {
    let mut out = String::with_capacity(json.len() + nsp.len() + 16);
    out.push(kind.as_char());
    if kind.is_binary() {
        out.push_str(&attachments.to_string());
        out.push('-');
    }
    if nsp != MAIN_NAMESPACE {
        out.push_str(nsp);
        out.push(',');
    }
    if let Some(id) = id {
        out.push_str(&id.to_string());
    }
    out.push_str(json);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(p: &Packet<'_>) -> Option<String> {
        p.data.map(|d| d.get().to_owned())
    }

    #[test]
    fn decodes_the_packets_the_client_sends() {
        let p = Packet::decode("0").unwrap();
        assert_eq!((p.kind, p.nsp, p.id), (Kind::Connect, "/", None));
        let p = Packet::decode(r#"0/room/lobby,{"token":"t"}"#).unwrap();
        assert_eq!(p.nsp, "/room/lobby");
        assert_eq!(data(&p).as_deref(), Some(r#"{"token":"t"}"#));
        let p = Packet::decode("0/random").unwrap();
        assert_eq!(p.nsp, "/random");
        let p = Packet::decode(r#"2456["chat",1,"2"]"#).unwrap();
        assert_eq!((p.kind, p.id), (Kind::Event, Some(456)));
        assert_eq!(p.event_name().as_deref(), Some("chat"));
        let p = Packet::decode(
            r#"52-789["m",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        )
        .unwrap();
        assert_eq!(
            (p.kind, p.attachments, p.id),
            (Kind::BinaryEvent, 2, Some(789))
        );
        let p = Packet::decode("1/room/lobby,").unwrap();
        assert_eq!((p.kind, p.nsp), (Kind::Disconnect, "/room/lobby"));
    }

    #[test]
    fn refuses_what_socket_io_parser_refuses() {
        assert_eq!(Packet::decode("").unwrap_err(), PacketError::UnknownType);
        assert_eq!(Packet::decode("abc").unwrap_err(), PacketError::UnknownType);
        assert_eq!(
            Packet::decode("2{}").unwrap_err(),
            PacketError::InvalidPayload
        );
        assert_eq!(
            Packet::decode(r#"2abc["m",1]"#).unwrap_err(),
            PacketError::InvalidPayload
        );
        assert_eq!(
            Packet::decode(r#"2["connect"]"#).unwrap_err(),
            PacketError::InvalidPayload
        );
        assert_eq!(
            Packet::decode("2[]").unwrap_err(),
            PacketError::InvalidPayload
        );
        assert_eq!(
            Packet::decode("0[1]").unwrap_err(),
            PacketError::InvalidPayload
        );
        assert_eq!(
            Packet::decode("1{}").unwrap_err(),
            PacketError::InvalidPayload
        );
        assert_eq!(
            Packet::decode(r#"5["m"]"#).unwrap_err(),
            PacketError::IllegalAttachments
        );
        assert_eq!(
            Packet::decode(r#"5x-["m"]"#).unwrap_err(),
            PacketError::IllegalAttachments
        );
    }

    #[test]
    fn encodes_round_trip() {
        let text = encode(Kind::BinaryEvent, "/room/a", 2, Some(7), r#"["m",1]"#);
        assert_eq!(text, r#"52-/room/a,7["m",1]"#);
        let p = Packet::decode(&text).unwrap();
        assert_eq!(
            (p.kind, p.nsp, p.attachments, p.id),
            (Kind::BinaryEvent, "/room/a", 2, Some(7))
        );
        assert_eq!(
            encode(Kind::Connect, "/", 0, None, r#"{"sid":"x"}"#),
            r#"0{"sid":"x"}"#
        );
        assert_eq!(
            encode(
                Kind::ConnectError,
                "/random",
                0,
                None,
                r#"{"message":"Invalid namespace"}"#
            ),
            r#"4/random,{"message":"Invalid namespace"}"#
        );
    }
}
