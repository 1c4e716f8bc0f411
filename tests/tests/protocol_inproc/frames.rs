//! What a member may send: a malformed frame gets `bad_frame` and the
//! connection stays usable; one over the frame limit closes with 1009.

use serde_json::json;
use testkit::inproc::Cluster;
use testkit::ws::tungstenite::Message;
use testkit::{join, next};

use crate::{
    WAIT, at_node, body, create, member, next_error, next_message, next_raw, send,
    send_frame_of_len, url,
};

#[tokio::test]
async fn malformed_frames_get_bad_frame_and_the_connection_stays_usable() {
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "junk").await;
    let node = at_node(&cluster, &path, "junk", "").await;
    let (mut a, wa) = join(&node).await;
    let ma = member(&wa);
    let (mut b, _) = join(&url(&cluster.router(0).ws_base(), &path, "")).await;
    next(&mut a, "joined").await;

    for bad in [
        "not json",
        r#"{"type":"shout"}"#,
        r#"{"type":"send"}"#,
        r#"{"body":1}"#,
        "[1,2]",
    ] {
        a.send_text(bad).await;
        let e = next_error(&mut a, "bad_frame").await;
        assert_eq!(
            e.as_object().map(|o| o.len()),
            Some(3),
            "type, code, message: {e}"
        );
    }
    a.send(Message::binary(vec![0u8, 1, 2, 3])).await;
    next_error(&mut a, "bad_frame").await;

    // Still usable; `null` is a body; unknown extra fields are ignored.
    a.send_text(r#"{"type":"send","body":null}"#).await;
    a.send_text(r#"{"type":"send","body":{"k":[]},"extra":"ignored"}"#)
        .await;
    for c in [&mut a, &mut b] {
        // b saw none of a's errors: its next frame is the first message.
        let (raw, m) = next_raw(c).await;
        assert_eq!(m["type"], "message", "{m}");
        assert_eq!(m["seq"], 1);
        assert_eq!(m["from"], ma.as_str());
        assert!(
            m.as_object().is_some_and(|o| o.contains_key("body")) && m["body"].is_null(),
            "body null is kept: {raw}"
        );
        next_message(c, 2, &ma, &json!({"k": []})).await;
    }
}

/// The protocol is one JSON *object* per frame: an array whose elements
/// happen to line up with a `send` (type, body) is not a frame.
#[tokio::test]
async fn a_json_array_is_not_a_frame() {
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "arrays").await;
    let node = at_node(&cluster, &path, "arrays", "").await;
    let (mut a, wa) = join(&node).await;
    let ma = member(&wa);
    a.send_text(r#"["send", 5]"#).await;
    let v = a.recv_json(WAIT).await;
    assert_eq!(v["type"], "error", "an array frame was accepted: {v}");
    assert_eq!(v["code"], "bad_frame", "{v}");
    send(&mut a, &json!(6)).await;
    next_message(&mut a, 1, &ma, &json!(6)).await;
}

#[tokio::test]
async fn oversized_frame_closes_1009_and_the_room_goes_on() {
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "big").await;
    let node = at_node(&cluster, &path, "big", "").await;
    let router = url(&cluster.router(0).ws_base(), &path, "");
    let (mut big, wbig) = join(&node).await;
    let (mut b, wb) = join(&node).await;
    let (mut c, _) = join(&router).await;
    let (mbig, mb) = (member(&wbig), member(&wb));
    next(&mut big, "joined").await;
    next(&mut big, "joined").await;
    next(&mut b, "joined").await;

    big.send_text(send_frame_of_len(70_000)).await;
    assert_eq!(
        big.expect_close(WAIT).await,
        Some(1009),
        "frame over 64 KiB"
    );

    for peer in [&mut b, &mut c] {
        let l = next(peer, "left").await;
        assert_eq!(l["member"], mbig.as_str());
        assert_eq!(l["members"], 2);
    }
    send(&mut b, &body(1)).await;
    next_message(&mut b, 1, &mb, &body(1)).await;
    next_message(&mut c, 1, &mb, &body(1)).await;
}

#[tokio::test]
async fn max_frame_bytes_is_configurable() {
    let cluster = Cluster::start_with(1, 1, |c| c.max_frame_bytes = 1024).await;
    let path = create(&cluster, "small").await;
    let node = at_node(&cluster, &path, "small", "").await;
    let (mut a, wa) = join(&node).await;
    let ma = member(&wa);

    a.send_text(send_frame_of_len(900)).await;
    let m = next(&mut a, "message").await;
    assert_eq!(m["seq"], 1);
    assert_eq!(m["from"], ma.as_str());
    assert_eq!(m["body"].as_str().map(str::len), Some(900 - 25));

    a.send_text(send_frame_of_len(2_000)).await;
    assert_eq!(
        a.expect_close(WAIT).await,
        Some(1009),
        "frame over --max-frame-bytes"
    );
}
