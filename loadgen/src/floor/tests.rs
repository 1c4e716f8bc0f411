//! The floor's framing, and small runs with and without a relay.

use std::time::Duration;

use super::*;

#[test]
fn frames_have_websocket_server_framing() {
    assert_eq!(ws_text_frame(b"hi"), [0x81, 2, b'h', b'i']);
    let mid = ws_text_frame(&[b'x'; 300]);
    assert_eq!(&mid[..4], &[0x81, 126, 0x01, 0x2C]);
    assert_eq!(mid.len(), 304);
    let big = ws_text_frame(&vec![b'x'; 70_000]);
    assert_eq!(&big[..2], &[0x81, 127]);
    assert_eq!(u64::from_be_bytes(big[2..10].try_into().unwrap()), 70_000);
}

#[test]
fn message_text_is_a_node_message() {
    let text = message_text(64);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "message");
    assert!(v["body"]["p"].is_string());
}

#[tokio::test]
async fn a_small_floor_runs() {
    let args = FloorArgs {
        sockets: 4,
        rate: 2000.0,
        payload: 64,
        duration: Duration::from_millis(300),
        sources: 2,
        frames_per_write: 1,
        burst: 1,
        relay: false,
        json: None,
    };
    let r = run(&args, 0).await.unwrap();
    assert!(r.frames_written > 300, "{r:?}");
    assert_eq!(r.write_errors, 0);
    assert_eq!(r.writes, r.frames_written);
    assert_eq!(r.bytes_read, r.frames_written * r.frame_bytes as u64);
    assert!(r.relay.is_none());
    let v = serde_json::to_value(&r).unwrap();
    assert!(v["relay"].is_null() && v["frames_per_write"] == 1, "{v}");
}

#[tokio::test]
async fn frames_go_k_per_write() {
    let args = FloorArgs {
        sockets: 3,
        rate: 4000.0,
        payload: 64,
        duration: Duration::from_millis(300),
        sources: 1,
        frames_per_write: 4,
        burst: 3,
        relay: false,
        json: None,
    };
    let r = run(&args, 0).await.unwrap();
    assert!(r.frames_written > 600, "{r:?}");
    assert_eq!(r.frames_written, 4 * r.writes, "{r:?}");
    assert_eq!(r.writes % 3, 0, "whole bursts: {r:?}");
    assert_eq!(r.write_errors, 0);
    assert_eq!(r.bytes_read, r.frames_written * r.frame_bytes as u64);
}

#[tokio::test]
async fn a_small_relay_moves_every_byte() {
    let args = FloorArgs {
        sockets: 5,
        rate: 3000.0,
        payload: 200,
        duration: Duration::from_millis(300),
        sources: 1,
        frames_per_write: 2,
        burst: 5,
        relay: true,
        json: None,
    };
    let r = run(&args, 0).await.unwrap();
    let relay = r.relay.expect("a relay report");
    let written = r.frames_written * r.frame_bytes as u64;
    assert!(r.frames_written > 400, "{r:?}");
    assert_eq!(relay.bytes, written, "{r:?}");
    assert_eq!(r.bytes_read, written, "{r:?}");
    assert_eq!(relay.unfinished, 0);
    assert_eq!(relay.write_errors + relay.read_errors + r.write_errors, 0);
    assert!(relay.reads > 0 && relay.wakeups > 0 && relay.frames_per_read > 0.0);
    let v = serde_json::to_value(&r).unwrap();
    assert!(v["relay"]["us_per_frame"].is_number(), "{v}");
    assert!(v["relay"]["reads"].is_number(), "{v}");
}
