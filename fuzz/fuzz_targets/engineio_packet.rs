//! The node's Engine.IO v4 decoders (`roomnode/src/engineio/packet.rs`,
//! through `roomnode::fuzzing`): one packet as a WebSocket text frame or
//! a polling packet, and a whole polling POST body.
//!
//! Input: bytes, converted lossily to text (the node refuses a body or a
//! frame that is not UTF-8 before decoding). The text is read two ways.
//!
//! As it is, a frame and a body. Properties:
//! - nothing panics, and the work is bounded: a payload has one packet per
//!   `\x1e`-separated part, and what they carry (text, or binary decoded
//!   from base64) is no longer than the body;
//! - one packet is accepted iff its first byte is a type digit `0`-`6`, or,
//!   in a polling payload only, `b` followed by padded base64; a WebSocket
//!   frame never yields a binary message (those come as binary frames);
//! - `2`, `3` and `4` keep the rest of the text, byte for byte, as data;
//! - `decode_payload` is `decode(_, polling)` on each part, all or nothing;
//! - re-encoding an accepted payload with the node's encoder gives back the
//!   body, except the data after `0`, `1`, `5` and `6`, which is dropped:
//!   so base64 has one spelling (no other padding, no trailing bits).
//!
//! As packets to send: each `\x1e`-separated part is one packet, its first
//! character the type (`0`-`6`, or `b`: the rest of the part, as bytes, is
//! a binary message; any other: the whole part is a text message).
//! Property: the node's encoder (`encode_payload`) writes a payload that
//! `decode_payload` reads back as the same packets, and each text packet's
//! WebSocket form (digit and data) decodes to the same packet. The data of
//! a text packet cannot hold `\x1e` (Engine.IO's own rule), which the
//! splitting guarantees.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomnode::fuzzing::{
    EngineIoPacket as P, engineio_decode, engineio_decode_payload, engineio_encode_payload,
};

const SEPARATOR: char = '\x1e';

/// The bytes a packet carries.
fn carried(p: &P) -> usize {
    match p {
        P::Ping(d) | P::Pong(d) | P::Text(d) => d.len(),
        P::Binary(b) => b.len(),
        P::Open | P::Close | P::Upgrade | P::Noop => 0,
    }
}

/// One packet, decoded both ways.
fn one(text: &str) {
    let first = text.as_bytes().first().copied();
    let data = text.get(1..);
    let ws = engineio_decode(text, false);
    let poll = engineio_decode(text, true);
    let digit = first.is_some_and(|b| (b'0'..=b'6').contains(&b));
    assert_eq!(ws.is_some(), digit, "frame {text:?} -> {ws:?}");
    assert!(
        !matches!(ws, Some(P::Binary(_))),
        "binary from a text frame"
    );
    if first == Some(b'b') {
        if let Some(P::Binary(bytes)) = &poll {
            assert!(bytes.len() <= text.len(), "{text:?}");
        } else {
            assert_eq!(poll, None, "{text:?}");
        }
    } else {
        assert_eq!(poll, ws, "polling and WebSocket differ on {text:?}");
    }
    if let Some(p) = &ws {
        let data = data.expect("an accepted packet starts with an ASCII digit");
        match (first, p) {
            (Some(b'0'), P::Open)
            | (Some(b'1'), P::Close)
            | (Some(b'5'), P::Upgrade)
            | (Some(b'6'), P::Noop) => {}
            (Some(b'2'), P::Ping(d)) | (Some(b'3'), P::Pong(d)) | (Some(b'4'), P::Text(d)) => {
                assert_eq!(d, data, "{text:?}");
            }
            _ => panic!("{text:?} decoded as {p:?}"),
        }
    }
}

/// The polling form the node's encoder gives `part`'s packet: the data of
/// data-less types dropped.
fn canonical(part: &str) -> &str {
    match part.as_bytes().first() {
        Some(b'0' | b'1' | b'5' | b'6') => &part[..1],
        _ => part,
    }
}

fn as_body(body: &str) {
    let parts: Vec<&str> = body.split(SEPARATOR).collect();
    let decoded = engineio_decode_payload(body);
    let one_by_one: Option<Vec<P>> = parts.iter().map(|p| engineio_decode(p, true)).collect();
    assert_eq!(decoded, one_by_one, "payload {body:?}");
    let Some(packets) = decoded else {
        return;
    };
    assert_eq!(packets.len(), parts.len());
    assert!(packets.iter().map(carried).sum::<usize>() <= body.len());
    let again = engineio_encode_payload(&packets);
    let expected: Vec<&str> = parts.iter().map(|p| canonical(p)).collect();
    assert_eq!(again, expected.join("\x1e"), "re-encoded {body:?}");
}

/// `part` read as a packet to send.
fn to_send(part: &str) -> P {
    let mut chars = part.chars();
    let first = chars.next();
    let data = || chars.as_str().to_owned();
    match first {
        Some('0') => P::Open,
        Some('1') => P::Close,
        Some('2') => P::Ping(data()),
        Some('3') => P::Pong(data()),
        Some('4') => P::Text(data()),
        Some('5') => P::Upgrade,
        Some('6') => P::Noop,
        Some('b') => P::Binary(data().into_bytes()),
        _ => P::Text(part.to_owned()),
    }
}

fn round_trip(text: &str) {
    let packets: Vec<P> = text.split(SEPARATOR).map(to_send).collect();
    let body = engineio_encode_payload(&packets);
    let back = engineio_decode_payload(&body);
    assert_eq!(
        back.as_ref(),
        Some(&packets),
        "encoded {packets:?} as {body:?}"
    );
    for p in &packets {
        let frame = match p {
            P::Ping(d) => format!("2{d}"),
            P::Pong(d) => format!("3{d}"),
            P::Text(d) => format!("4{d}"),
            _ => continue,
        };
        assert_eq!(engineio_decode(&frame, false).as_ref(), Some(p));
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    one(&text);
    as_body(&text);
    round_trip(&text);
});
