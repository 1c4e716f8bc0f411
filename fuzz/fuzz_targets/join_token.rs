//! Join tokens: `proto::token::verify` on any token, room and time, and on
//! valid tokens altered byte by byte.
//!
//! The first input byte picks the mode.
//!
//! Even: free mode. Bytes 1..9 are `now` (little endian), byte 9 picks the
//! secrets tried (bit 0: the fuzz secret, bit 1: another one, bit 2: an
//! empty one; none set: the fuzz secret), the rest is text: its first line
//! is the room (`r` if that is not a valid id), the remainder the token.
//! Seeds carry real tokens signed with the fuzz secret, so libFuzzer's own
//! mutations alter valid tokens. Properties: no panic; an accepted token is
//! for this room, unexpired, and is exactly `v1.<payload>.<sig>` with `sig`
//! the canonical base64url of HMAC-SHA256(secret, payload) for one of the
//! secrets (no second spelling of a signature is accepted).
//!
//! Odd: structured mode. The claims (room, exp, name) come from the input,
//! are signed with the fuzz secret, and then up to 16 edits (flip a bit,
//! insert, delete or replace a byte) taken from the input are applied.
//! Property: the token verifies iff no edit changed it (checked with the
//! current secret alone and with a rotated pair).
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use proto::RoomId;
use proto::token::{self, Claims, TokenError};
use sha2::Sha256;

const SECRET: &[u8] = b"fuzz-secret-0123456789";
const OTHER: &[u8] = b"other-secret-9876543210";

fn mac_b64(secret: &[u8], payload: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    m.update(payload.as_bytes());
    B64.encode(m.finalize().into_bytes())
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, slot) in b.iter_mut().enumerate() {
        *slot = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fn free(data: &[u8]) {
    let now = u64_at(data, 1);
    let pick = data.get(9).copied().unwrap_or(0);
    let mut secrets: Vec<&[u8]> = Vec::new();
    if pick & 1 != 0 || pick & 7 == 0 {
        secrets.push(SECRET);
    }
    if pick & 2 != 0 {
        secrets.push(OTHER);
    }
    if pick & 4 != 0 {
        secrets.push(b"");
    }
    if pick & 8 != 0 {
        secrets.reverse();
    }
    let text = String::from_utf8_lossy(data.get(10..).unwrap_or_default());
    let (room, tok) = text.split_once('\n').unwrap_or(("r", &text));
    let room: RoomId = room.parse().unwrap_or_else(|_| "r".parse().unwrap());

    // The incarnation a token names: any, from the input.
    let created = u64::from(data.get(0).copied().unwrap_or(0));
    let result = token::verify(&secrets, tok, &room, created, now);
    // The error kinds stay within the documented set and codes.
    if let Err(e) = &result {
        assert!(matches!(
            e.code().as_str(),
            "invalid_token" | "token_expired" | "wrong_room" | "token_revoked"
        ));
    }
    let Ok(claims) = result else {
        return;
    };
    assert_eq!(claims.room, room);
    assert_eq!(claims.created, created);
    assert!(claims.exp > now);
    let parts: Vec<&str> = tok.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted {tok:?}");
    assert_eq!(parts[0], "v1");
    let canonical = secrets.iter().any(|s| mac_b64(s, parts[1]) == parts[2]);
    assert!(
        canonical,
        "accepted a token whose signature is not the canonical encoding of the MAC: {tok:?}"
    );
    // The payload decodes to the claims returned.
    let raw = B64.decode(parts[1]).unwrap();
    let decoded: Claims = serde_json::from_slice(&raw).unwrap();
    assert_eq!(decoded, claims);
}

/// A room id from input bytes: 1..=64 characters of the allowed alphabet.
fn room_from(bytes: &[u8]) -> RoomId {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let s: String = bytes
        .iter()
        .take(64)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    if s.is_empty() {
        "r".parse().unwrap()
    } else {
        s.parse().unwrap()
    }
}

fn structured(data: &[u8]) {
    // Layout after the mode byte: exp (8), room length (1), room bytes,
    // name length (1, 0xff = no name), name bytes, then edits of 3 bytes.
    let exp = u64_at(data, 1);
    let mut at = 9;
    let room_len = usize::from(data.get(at).copied().unwrap_or(1) % 65);
    at += 1;
    let room = room_from(
        data.get(at..(at + room_len).min(data.len()))
            .unwrap_or_default(),
    );
    at = (at + room_len).min(data.len());
    let name_len = data.get(at).copied().unwrap_or(0xff);
    at += 1;
    let name = if name_len == 0xff {
        None
    } else {
        let end = (at + usize::from(name_len)).min(data.len());
        let bytes = data.get(at..end).unwrap_or_default();
        at = end;
        Some(String::from_utf8_lossy(bytes).into_owned())
    };
    let edits = data.get(at..).unwrap_or_default();

    let created = exp.rotate_left(17);
    let claims = Claims {
        room: room.clone(),
        created,
        exp,
        name,
    };
    let signed = token::sign(SECRET, &claims);
    let now = exp.saturating_sub(1);
    if exp > 0 {
        assert_eq!(
            token::verify(&[SECRET], &signed, &room, created, now),
            Ok(claims.clone()),
            "a fresh token does not verify: {signed:?}"
        );
    }

    let mut bytes = signed.clone().into_bytes();
    for edit in edits.chunks_exact(3).take(16) {
        let (op, pos, val) = (edit[0], usize::from(edit[1]), edit[2]);
        match op % 4 {
            0 if !bytes.is_empty() => {
                let i = pos % bytes.len();
                bytes[i] ^= 1 << (val % 8);
            }
            1 => {
                let i = pos % (bytes.len() + 1);
                bytes.insert(i, val);
            }
            2 if !bytes.is_empty() => {
                let i = pos % bytes.len();
                bytes.remove(i);
            }
            3 if !bytes.is_empty() => {
                let i = pos % bytes.len();
                bytes[i] = val;
            }
            _ => {}
        }
    }
    let altered = String::from_utf8_lossy(&bytes).into_owned();
    for secrets in [&[SECRET][..], &[OTHER, SECRET][..]] {
        let result = token::verify(secrets, &altered, &room, created, now);
        if altered == signed {
            if exp > 0 {
                assert_eq!(result, Ok(claims.clone()));
            } else {
                assert_eq!(result, Err(TokenError::Expired));
            }
        } else {
            assert!(
                result.is_err(),
                "altered token accepted: {altered:?} (signed {signed:?}) -> {result:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data.first() {
        Some(mode) if mode % 2 == 1 => structured(data),
        _ => free(data),
    }
});
