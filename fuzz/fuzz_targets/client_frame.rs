//! `proto::wire::ClientMsg::decode` on any text a client can put in a frame.
//!
//! Properties:
//! - decoding never panics (bytes that are not UTF-8 are converted lossily,
//!   so every input is a frame a client could send);
//! - an accepted `send` keeps a body that is valid JSON, and the `message`
//!   frame the node builds around it is valid JSON whose `body` is that same
//!   value;
//! - only a JSON object whose `type` is `"send"` and that has a `body` is
//!   accepted.
//!
//! "Valid JSON" is checked twice: by the grammar (serde_json's
//! `IgnoredAny`, which is RFC 8259: a lone surrogate escape such as
//! `"\ud800"` is grammatical), and by building a `serde_json::Value`, which
//! refuses lone surrogates. The node relays bodies verbatim and does not
//! refuse them, so a strict parser at a receiving client can fail on a whole
//! frame; that is reported as a finding (see fuzz/README.md) and only
//! asserted with `ROOMROUTER_FUZZ_STRICT=1`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proto::RoomId;
use proto::wire::{ClientMsg, ServerMsg};
use serde::de::IgnoredAny;
use serde_json::Value;

fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("ROOMROUTER_FUZZ_STRICT").is_some_and(|v| v == "1"))
}

fn grammatical(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

fn check(text: &str) {
    let decoded = ClientMsg::decode(text);
    let Ok(ClientMsg::Send { body }) = decoded else {
        return;
    };
    let raw = body.get();
    assert!(
        grammatical(raw),
        "accepted body is not JSON: {raw:?} from {text:?}"
    );
    // Accepted frames are JSON objects with "type":"send" and a body.
    assert!(grammatical(text), "accepted frame is not JSON: {text:?}");
    assert!(
        text.trim_start().starts_with('{'),
        "accepted a non-object: {text:?}"
    );

    let room: RoomId = "fuzz-room".parse().unwrap();
    let frame = ServerMsg::Message {
        room: &room,
        seq: 7,
        from: "m1",
        name: Some("ann \"q\" \u{1F600}"),
        body: &body,
    }
    .encode();
    assert!(
        grammatical(&frame),
        "message frame is not JSON: {frame:?} (body {raw:?})"
    );

    // The stricter reading (lone surrogates refused): both the body and the
    // frame around it must agree, and the frame must carry the body as is.
    match serde_json::from_str::<Value>(raw) {
        Ok(value) => {
            let parsed: Value = serde_json::from_str(&frame).unwrap_or_else(|e| {
                panic!("frame {frame:?} does not parse ({e}) but its body does")
            });
            assert_eq!(parsed["type"], "message");
            assert_eq!(parsed["room"], "fuzz-room");
            assert_eq!(parsed["body"], value, "body changed in {frame:?}");
            // The original frame's type really was "send" (when the frame
            // as a whole is readable strictly: other fields may not be).
            if let Ok(original) = serde_json::from_str::<Value>(text) {
                assert_eq!(original["type"], "send", "accepted {text:?}");
            }
        }
        Err(e) => {
            assert!(
                serde_json::from_str::<Value>(&frame).is_err(),
                "frame parses but its body does not: {frame:?}"
            );
            if strict() {
                panic!(
                    "accepted a body that serde_json::Value refuses ({e}): {raw:?} from {text:?}"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&text);
});
