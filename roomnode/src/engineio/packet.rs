//! The Engine.IO v4 packet and the polling payload.
//!
//! A packet is its type digit followed by its data (`4hello`, `2`,
//! `3probe`). A binary message has no digit: on a WebSocket it is a binary
//! frame, in a polling payload `b` followed by the bytes in base64. A
//! payload is packets separated by `\x1e`.
//!
//! An outgoing [`Packet`] is built once and shared by every session it
//! goes to; its WebSocket frame is encoded on first use and kept (server
//! frames are unmasked, so the bytes are the same for every client).

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data as OpData, OpCode};

/// The packets' separator in a polling payload (ASCII record separator).
pub(crate) const SEPARATOR: char = '\x1e';

/// An Engine.IO packet type, sent as its digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `0`: the session's parameters, first thing the server sends.
    Open,
    /// `1`: the session ends.
    Close,
    /// `2`: the server's heartbeat (or the client's upgrade probe).
    Ping,
    /// `3`: the client's answer to a ping (or the server's to a probe).
    Pong,
    /// `4`: a message for the layer above.
    Message,
    /// `5`: the client switches to the probed WebSocket.
    Upgrade,
    /// `6`: nothing (ends a pending poll during an upgrade or a close).
    Noop,
}

impl Kind {
    fn digit(self) -> u8 {
        match self {
            Self::Open => b'0',
            Self::Close => b'1',
            Self::Ping => b'2',
            Self::Pong => b'3',
            Self::Message => b'4',
            Self::Upgrade => b'5',
            Self::Noop => b'6',
        }
    }

    fn from_digit(d: u8) -> Option<Self> {
        Some(match d {
            b'0' => Self::Open,
            b'1' => Self::Close,
            b'2' => Self::Ping,
            b'3' => Self::Pong,
            b'4' => Self::Message,
            b'5' => Self::Upgrade,
            b'6' => Self::Noop,
            _ => return None,
        })
    }
}

/// A message between the layer above and the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// A text message (the packet's data, without the `4`).
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// One outgoing packet, encoded once however many sessions it goes to.
#[derive(Debug)]
pub(crate) struct Packet {
    kind: Kind,
    data: Data,
    /// When the room accepted the message, for the delivery metrics.
    accepted: Option<Instant>,
    /// The WebSocket frame, built by the first WebSocket session that
    /// sends it.
    frame: OnceLock<Bytes>,
}

#[derive(Debug)]
enum Data {
    Text(String),
    Binary(Bytes),
}

impl Packet {
    /// A text message (`text` is the message, without the leading `4`).
    pub(crate) fn text(text: impl Into<String>) -> Self {
        Self::new(Kind::Message, Data::Text(text.into()))
    }

    /// A binary message.
    pub(crate) fn binary(bytes: Bytes) -> Self {
        Self::new(Kind::Message, Data::Binary(bytes))
    }

    /// The same packet, counted in the delivery metrics (delivered and
    /// latency since `at`) when it reaches a client.
    pub(crate) fn accepted_at(mut self, at: Instant) -> Self {
        self.accepted = Some(at);
        self
    }

    /// A packet of the engine's own (open, close, ping, pong, noop).
    pub(crate) fn control(kind: Kind, text: &str) -> Self {
        Self::new(kind, Data::Text(text.to_owned()))
    }

    fn new(kind: Kind, data: Data) -> Self {
        Self {
            kind,
            data,
            accepted: None,
            frame: OnceLock::new(),
        }
    }

    pub(super) fn accepted(&self) -> Option<Instant> {
        self.accepted
    }

    /// The packet as text: a text message with its `4`'s data, a binary
    /// one as `b:` and hex (tests).
    #[cfg(test)]
    pub(crate) fn debug_text(&self) -> String {
        match &self.data {
            Data::Text(text) => text.clone(),
            Data::Binary(bytes) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                format!("b:{hex}")
            }
        }
    }

    /// The packet as one WebSocket frame.
    pub(super) fn frame(&self) -> &Bytes {
        self.frame.get_or_init(|| match &self.data {
            Data::Text(text) => {
                let mut payload = Vec::with_capacity(1 + text.len());
                payload.push(self.kind.digit());
                payload.extend_from_slice(text.as_bytes());
                frame(OpCode::Data(OpData::Text), payload.into())
            }
            Data::Binary(bytes) => frame(OpCode::Data(OpData::Binary), bytes.clone()),
        })
    }

    /// Appends the packet's form in a polling payload.
    pub(super) fn encode_polling(&self, out: &mut String) {
        match &self.data {
            Data::Text(text) => {
                out.push(char::from(self.kind.digit()));
                out.push_str(text);
            }
            Data::Binary(bytes) => {
                out.push('b');
                B64.encode_string(bytes, out);
            }
        }
    }
}

/// A polling payload of `packets`.
pub(crate) fn encode_payload(packets: &[std::sync::Arc<Packet>]) -> String {
    let mut out = String::new();
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        p.encode_polling(&mut out);
    }
    out
}

/// A server WebSocket frame (unmasked, final).
fn frame(opcode: OpCode, payload: Bytes) -> Bytes {
    let frame = Frame::message(payload, opcode, true);
    let mut out = Vec::with_capacity(frame.len());
    frame
        .format(&mut out)
        .expect("writing to a Vec cannot fail");
    out.into()
}

/// A WebSocket text frame of `text` (a control packet sent once).
pub(super) fn text_frame(text: &str) -> Bytes {
    frame(
        OpCode::Data(OpData::Text),
        Bytes::copy_from_slice(text.as_bytes()),
    )
}

/// A packet from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// `1`: the client ends the session.
    Close,
    /// `2` with its data (`probe` on an upgrade).
    Ping(String),
    /// `3` with its data.
    Pong(String),
    /// `4…` or a binary message.
    Message(Message),
    /// `5`.
    Upgrade,
    /// `6`.
    Noop,
    /// `0`: never valid from a client, but well formed.
    Open,
}

/// A packet that is not Engine.IO v4.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Engine.IO packet")]
pub(crate) struct Malformed;

/// Decodes one packet in its text form (a WebSocket text frame, or one
/// packet of a polling payload, where `b` starts a base64 binary message).
pub(crate) fn decode(text: &str, polling: bool) -> Result<Incoming, Malformed> {
    let Some(&first) = text.as_bytes().first() else {
        return Err(Malformed);
    };
    // Not `&text[1..]`: a first character of several bytes would panic.
    let data = text.get(1..).ok_or(Malformed)?;
    if polling && first == b'b' {
        let bytes = B64.decode(data).map_err(|_| Malformed)?;
        return Ok(Incoming::Message(Message::Binary(bytes.into())));
    }
    Ok(match Kind::from_digit(first).ok_or(Malformed)? {
        Kind::Open => Incoming::Open,
        Kind::Close => Incoming::Close,
        Kind::Ping => Incoming::Ping(data.to_owned()),
        Kind::Pong => Incoming::Pong(data.to_owned()),
        Kind::Message => Incoming::Message(Message::Text(data.to_owned())),
        Kind::Upgrade => Incoming::Upgrade,
        Kind::Noop => Incoming::Noop,
    })
}

/// Decodes a whole polling payload; one bad packet spoils it all.
pub(crate) fn decode_payload(body: &str) -> Result<Vec<Incoming>, Malformed> {
    body.split(SEPARATOR).map(|p| decode(p, true)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn payloads_decode_text_and_base64_binary() {
        let got = decode_payload("4hello\x1ebAQIDBA==\x1e3\x1e2probe\x1e1\x1e6\x1e5\x1e4").unwrap();
        assert_eq!(
            got,
            [
                Incoming::Message(Message::Text("hello".into())),
                Incoming::Message(Message::Binary(Bytes::from_static(&[1, 2, 3, 4]))),
                Incoming::Pong(String::new()),
                Incoming::Ping("probe".into()),
                Incoming::Close,
                Incoming::Noop,
                Incoming::Upgrade,
                Incoming::Message(Message::Text(String::new())),
            ]
        );
    }

    #[test]
    fn malformed_packets_spoil_the_payload() {
        for bad in ["", "abc", "4a\x1e", "7", "b!!!", "4ok\x1e9"] {
            assert_eq!(decode_payload(bad), Err(Malformed), "{bad:?}");
        }
        // A WebSocket text frame starting with `b` is not base64.
        assert_eq!(decode("bAQID", false), Err(Malformed));
        // A first character of several bytes is refused, not a panic
        // (found by fuzz/regressions/engineio_packet/multibyte_first_char).
        for bad in ["\u{fffd}", "é4", "€", "\u{1f600}x"] {
            assert_eq!(decode(bad, false), Err(Malformed), "{bad:?}");
            assert_eq!(decode(bad, true), Err(Malformed), "{bad:?}");
        }
        assert_eq!(decode_payload("4ok\x1eé"), Err(Malformed));
    }

    #[test]
    fn packets_encode_for_polling_and_websocket() {
        let text = Arc::new(Packet::text("hé"));
        let bin = Arc::new(Packet::binary(Bytes::from_static(&[1, 2, 3, 4])));
        let ping = Arc::new(Packet::control(Kind::Ping, ""));
        assert_eq!(
            encode_payload(&[text.clone(), bin.clone(), ping.clone()]),
            "4hé\x1ebAQIDBA==\x1e2"
        );
        assert_eq!(&text.frame()[..], b"\x81\x044h\xc3\xa9");
        assert_eq!(&bin.frame()[..], b"\x82\x04\x01\x02\x03\x04");
        assert_eq!(&ping.frame()[..], b"\x81\x012");
        assert_eq!(&text_frame("3probe")[..], b"\x81\x063probe");
        // Built once.
        assert!(std::ptr::eq(text.frame().as_ptr(), text.frame().as_ptr()));
    }
}
