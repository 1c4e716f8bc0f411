//! The node's decoders for the fuzz targets (`fuzz/`): not part of the
//! node's API. Thin wrappers that trade the crate's own types for plain
//! public ones, so the harnesses see exactly what the node decodes.

use std::sync::Arc;

use bytes::Bytes;

use crate::engineio::packet::{self, Incoming, Kind, Message, Packet};

/// An Engine.IO packet as the node reads it from a client (and, for
/// [`engineio_encode_payload`], as the node's encoder writes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineIoPacket {
    /// `0`.
    Open,
    /// `1`.
    Close,
    /// `2` and its data.
    Ping(String),
    /// `3` and its data.
    Pong(String),
    /// `4` and the message.
    Text(String),
    /// A binary message (`b` and base64 in a polling payload).
    Binary(Vec<u8>),
    /// `5`.
    Upgrade,
    /// `6`.
    Noop,
}

impl From<Incoming> for EngineIoPacket {
    fn from(p: Incoming) -> Self {
        match p {
            Incoming::Open => Self::Open,
            Incoming::Close => Self::Close,
            Incoming::Ping(d) => Self::Ping(d),
            Incoming::Pong(d) => Self::Pong(d),
            Incoming::Message(Message::Text(t)) => Self::Text(t),
            Incoming::Message(Message::Binary(b)) => Self::Binary(b.to_vec()),
            Incoming::Upgrade => Self::Upgrade,
            Incoming::Noop => Self::Noop,
        }
    }
}

/// One packet in its text form: a WebSocket text frame (`polling` false)
/// or one packet of a polling payload; `None` where the node refuses it.
pub fn engineio_decode(text: &str, polling: bool) -> Option<EngineIoPacket> {
    packet::decode(text, polling).ok().map(Into::into)
}

/// A polling POST body; `None` where the node refuses it.
pub fn engineio_decode_payload(body: &str) -> Option<Vec<EngineIoPacket>> {
    let packets = packet::decode_payload(body).ok()?;
    Some(packets.into_iter().map(Into::into).collect())
}

/// The polling payload the node's encoder writes for `packets`.
pub fn engineio_encode_payload(packets: &[EngineIoPacket]) -> String {
    let packets: Vec<Arc<Packet>> = packets
        .iter()
        .map(|p| {
            Arc::new(match p {
                EngineIoPacket::Open => Packet::control(Kind::Open, ""),
                EngineIoPacket::Close => Packet::control(Kind::Close, ""),
                EngineIoPacket::Ping(d) => Packet::control(Kind::Ping, d),
                EngineIoPacket::Pong(d) => Packet::control(Kind::Pong, d),
                EngineIoPacket::Text(t) => Packet::text(t.as_str()),
                EngineIoPacket::Binary(b) => Packet::binary(Bytes::copy_from_slice(b)),
                EngineIoPacket::Upgrade => Packet::control(Kind::Upgrade, ""),
                EngineIoPacket::Noop => Packet::control(Kind::Noop, ""),
            })
        })
        .collect();
    packet::encode_payload(&packets)
}
