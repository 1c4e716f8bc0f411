//! The room node's WebSocket protocol end to end (README "Wire protocol",
//! SPEC "Wire protocol" and "Limits"), in process (`testkit::inproc`: the
//! real `roomnode::run` and `router::run` on one memory store), with real
//! WebSocket clients connected either straight to the node or through the
//! router's proxy. Every case starts its own cluster on port-0 listeners;
//! every wait is bounded; nothing sleeps to synchronise.
//!
//! Layout: this file holds the helpers the cases share; the cases are by
//! topic: `membership.rs` (the welcome, presence, a deleted room's
//! members), `sequence.rs` (one gapless order for everyone, resume and
//! history gaps), `frames.rs` (malformed and oversized frames),
//! `delivery.rs` (slow consumers, back-to-back messages).

mod delivery;
mod frames;
mod membership;
mod sequence;

use std::time::Duration;

use serde_json::{Value, json};
use testkit::inproc::Cluster;
use testkit::ws::tungstenite::Message;
use testkit::{WsClient, next};

/// Bound on any one frame, handshake or state change.
const WAIT: Duration = Duration::from_secs(10);

/// `base` + `path` + `?query` (when not empty).
fn url(base: &str, path: &str, query: &str) -> String {
    if query.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{query}")
    }
}

/// Creates `room` through router 0; its sharded path (`/iN/room/ID`).
async fn create(cluster: &Cluster, room: &str) -> String {
    let rec = cluster.create_room(room).await;
    let path = rec["path"].as_str().expect("path in the room record");
    assert_eq!(
        path,
        format!("/{}/room/{room}", rec["node"].as_str().unwrap())
    );
    path.to_owned()
}

/// The `ws://` URL of `room` straight at its owner.
async fn at_node(cluster: &Cluster, path: &str, room: &str, query: &str) -> String {
    url(&cluster.owner(room).await.ws_base(), path, query)
}

/// The member id of a welcome (or joined/left/message `from`).
fn member(v: &Value) -> String {
    v["member"]
        .as_str()
        .unwrap_or_else(|| panic!("no member id in {v}"))
        .to_owned()
}

/// Sends `body` in a `send` frame.
async fn send(c: &mut WsClient, body: &Value) {
    c.send_json(&json!({"type": "send", "body": body})).await;
}

/// The very next frame, which must be the message `seq` from `from` with
/// `body`.
async fn next_message(c: &mut WsClient, seq: u64, from: &str, body: &Value) -> Value {
    let v = next(c, "message").await;
    assert_eq!(v["seq"], seq, "seq of {v}");
    assert_eq!(v["from"], from, "sender of {v}");
    assert_eq!(&v["body"], body, "body of {v}");
    v
}

/// The very next frame, which must be an `error` with `code`.
async fn next_error(c: &mut WsClient, code: &str) -> Value {
    let v = next(c, "error").await;
    assert_eq!(v["code"], code, "error code in {v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {v}"
    );
    v
}

/// A client's next text frame, raw and parsed.
async fn next_raw(c: &mut WsClient) -> (String, Value) {
    match c.recv_message(WAIT).await {
        Some(Message::Text(text)) => {
            let v = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}"));
            (text.to_string(), v)
        }
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// A valid `send` frame of exactly `len` bytes, its body a string.
fn send_frame_of_len(len: usize) -> String {
    let frame = format!(r#"{{"type":"send","body":"{}"}}"#, "y".repeat(len - 25));
    assert_eq!(frame.len(), len);
    frame
}

/// A numbered test body.
fn body(i: u64) -> Value {
    json!({"i": i, "text": "hé\"llo ✓", "list": [1, 2.5, null, true]})
}
