//! The room node's WebSocket protocol end to end (README "Wire protocol",
//! SPEC "Wire protocol" and "Limits"): real etcd, real `roomnode` and
//! `router` processes, real WebSocket clients, connected either straight to
//! the node or through the router's proxy.
//!
//! Each test starts its own cluster on free ports, so tests run in parallel.
//! Every wait is bounded; nothing sleeps to synchronise.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::ws::tungstenite::{Error, Message};
use testkit::{Cluster, WsClient, eventually, join, next};

/// Bound on any one frame, handshake or state change.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Helpers.

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

// ---------------------------------------------------------------------------
// Join, presence.

#[tokio::test]
async fn welcome_comes_first_and_presence_counts_members() {
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "lobby").await;
    let router = cluster.router(0).ws_base();
    let node = at_node(&cluster, &path, "lobby", "").await;

    // Through the router's proxy, with a name.
    let (mut a, wa) = join(&url(&router, &path, "name=alice")).await;
    assert_eq!(wa["room"], "lobby");
    assert_eq!(wa["node"], "i1");
    assert_eq!(wa["members"], 1);
    assert_eq!(wa["seq"], 0);
    let stream = wa["stream"].as_str().expect("stream").to_owned();
    assert!(!stream.is_empty());
    let ma = member(&wa);

    // Straight at the node, with a name.
    let (mut b, wb) = join(&format!("{node}?name=bob")).await;
    assert_eq!(wb["members"], 2);
    assert_eq!(wb["stream"], stream.as_str(), "one room, one stream");
    assert_eq!(wb["seq"], 0);
    let mb = member(&wb);
    assert_ne!(mb, ma);
    let j = next(&mut a, "joined").await;
    assert_eq!(
        j,
        json!({"type": "joined", "member": mb, "name": "bob", "members": 2})
    );

    // Without a name: no `name` field at all.
    let (mut c, wc) = join(&node).await;
    assert_eq!(wc["members"], 3);
    let mc = member(&wc);
    assert!(
        mc != ma && mc != mb,
        "member ids are distinct: {ma} {mb} {mc}"
    );
    for peer in [&mut a, &mut b] {
        let j = next(peer, "joined").await;
        assert_eq!(j, json!({"type": "joined", "member": mc, "members": 3}));
    }

    // Bob leaves: the other two see it, with his name and the new count.
    b.close(1000).await;
    for peer in [&mut a, &mut c] {
        let l = next(peer, "left").await;
        assert_eq!(
            l,
            json!({"type": "left", "member": mb, "name": "bob", "members": 2})
        );
    }

    // The name is echoed on messages too; no name, no field.
    // One after the other: a and c reach the node by different paths.
    send(&mut a, &json!("hi")).await;
    for peer in [&mut a, &mut c] {
        let m1 = next_message(peer, 1, &ma, &json!("hi")).await;
        assert_eq!(m1["name"], "alice");
        assert_eq!(m1["room"], "lobby");
    }
    send(&mut c, &json!("yo")).await;
    for peer in [&mut a, &mut c] {
        let m2 = next_message(peer, 2, &mc, &json!("yo")).await;
        assert!(m2.get("name").is_none(), "no name given, none echoed: {m2}");
    }
}

// ---------------------------------------------------------------------------
// Ordering.

#[tokio::test]
async fn interleaved_senders_give_everyone_one_gapless_order() {
    const PER_SENDER: u64 = 100;
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "busy").await;
    let node = at_node(&cluster, &path, "busy", "").await;
    let router = url(&cluster.router(0).ws_base(), &path, "");

    let (mut obs, _) = join(&router).await;
    let (mut a, wa) = join(&node).await;
    let (mut b, wb) = join(&router).await;
    let (ma, mb) = (member(&wa), member(&wb));
    // Presence first, so that afterwards only messages are expected.
    next(&mut obs, "joined").await;
    next(&mut obs, "joined").await;
    next(&mut a, "joined").await;

    // Bodies in odd formatting: they must come back byte for byte.
    let raw_body =
        |who: &str, i: u64| format!("{{ \"who\" : \"{who}\",\"i\":{i} , \"u\":\"\\u00e9 ✓\" }}");
    for i in 0..PER_SENDER {
        a.send_text(format!(
            "{{\"type\":\"send\",\"body\":{}}}",
            raw_body("a", i)
        ))
        .await;
        b.send_text(format!(
            "{{\"type\":\"send\",\"body\":{}}}",
            raw_body("b", i)
        ))
        .await;
    }

    let total = 2 * PER_SENDER;
    let mut seen: Vec<Vec<(u64, String, String)>> = Vec::new();
    for client in [&mut obs, &mut a, &mut b] {
        let mut next_i = [0u64, 0u64];
        let mut got = Vec::new();
        for expect_seq in 1..=total {
            let (raw, v) = next_raw(client).await;
            assert_eq!(v["type"], "message", "only messages now: {v}");
            assert_eq!(v["seq"], expect_seq, "seqs go up by exactly one: {v}");
            let from = v["from"].as_str().expect("from").to_owned();
            let (who, k) = if from == ma {
                ("a", 0)
            } else if from == mb {
                ("b", 1)
            } else {
                panic!("message from a stranger: {v}")
            };
            assert_eq!(v["body"]["who"], who, "sender and body agree: {v}");
            assert_eq!(v["body"]["i"], next_i[k], "each sender's order kept: {v}");
            let body = raw_body(who, next_i[k]);
            assert!(
                raw.contains(&format!("\"body\":{body}")),
                "body not passed through byte for byte: sent {body}, got {raw}"
            );
            next_i[k] += 1;
            got.push((expect_seq, from, body));
        }
        assert_eq!(next_i, [PER_SENDER, PER_SENDER]);
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1], "observer and sender a saw the same order");
    assert_eq!(seen[0], seen[2], "observer and sender b saw the same order");
}

// ---------------------------------------------------------------------------
// Resume.

#[tokio::test]
async fn resume_replays_exactly_what_was_missed_then_goes_live() {
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "resume").await;
    let node = at_node(&cluster, &path, "resume", "").await;
    let router_base = cluster.router(0).ws_base();

    let (mut sender, ws) = join(&node).await;
    let ms = member(&ws);
    let (mut a, wa) = join(&url(&router_base, &path, "")).await;
    let stream = wa["stream"].as_str().expect("stream").to_owned();
    next(&mut sender, "joined").await;
    for i in 1..=10 {
        send(&mut sender, &body(i)).await;
    }
    for i in 1..=10 {
        next_message(&mut a, i, &ms, &body(i)).await;
        next_message(&mut sender, i, &ms, &body(i)).await;
    }
    a.close(1000).await;
    next(&mut sender, "left").await;

    // Missed while away; the sender's own copies prove the node took them.
    for i in 11..=15 {
        send(&mut sender, &body(i)).await;
    }
    for i in 11..=15 {
        next_message(&mut sender, i, &ms, &body(i)).await;
    }

    // Back, through the router: welcome, 11..=15 in order, then live.
    let (mut a, wa) = join(&url(
        &router_base,
        &path,
        &format!("since=10&stream={stream}"),
    ))
    .await;
    assert_eq!(wa["seq"], 15);
    assert_eq!(wa["stream"], stream.as_str());
    for i in 11..=15 {
        next_message(&mut a, i, &ms, &body(i)).await;
    }
    // Up to date: nothing replayed, no error.
    let (mut current, wc) = join(&format!("{node}?since=15&stream={stream}")).await;
    assert_eq!(wc["seq"], 15);
    // Without `stream`, `since` refers to the current stream.
    let (mut nostream, wn) = join(&format!("{node}?since=13")).await;
    assert_eq!(wn["seq"], 15);
    next_message(&mut nostream, 14, &ms, &body(14)).await;
    next_message(&mut nostream, 15, &ms, &body(15)).await;
    next(&mut a, "joined").await;
    next(&mut a, "joined").await;
    next(&mut current, "joined").await;

    send(&mut sender, &body(16)).await;
    next_message(&mut a, 16, &ms, &body(16)).await;
    next_message(&mut current, 16, &ms, &body(16)).await;
    next_message(&mut nostream, 16, &ms, &body(16)).await;
}

#[tokio::test]
async fn foreign_stream_or_future_seq_is_a_history_gap() {
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "gap").await;
    let node = at_node(&cluster, &path, "gap", "").await;
    let (mut sender, ws) = join(&node).await;
    let ms = member(&ws);
    let stream = ws["stream"].as_str().expect("stream").to_owned();
    assert_ne!(stream, "deadbeef");
    for i in 1..=3 {
        send(&mut sender, &body(i)).await;
    }
    for i in 1..=3 {
        next_message(&mut sender, i, &ms, &body(i)).await;
    }

    // Another stream: welcome, history_gap, then live traffic.
    let (mut foreign, wf) = join(&format!("{node}?since=3&stream=deadbeef")).await;
    assert_eq!(wf["seq"], 3);
    assert_eq!(wf["stream"], stream.as_str());
    next_error(&mut foreign, "history_gap").await;

    // A seq the room has not reached yet.
    let (mut future, wfu) = join(&format!("{node}?since=99&stream={stream}")).await;
    assert_eq!(wfu["seq"], 3);
    next_error(&mut future, "history_gap").await;

    next(&mut foreign, "joined").await;
    send(&mut sender, &body(4)).await;
    next_message(&mut foreign, 4, &ms, &body(4)).await;
    next_message(&mut future, 4, &ms, &body(4)).await;
}

#[tokio::test]
async fn since_older_than_the_history_is_a_gap_within_it_a_replay() {
    let cluster = Cluster::start_with(1, 1, &["--history", "5"]).await;
    let path = create(&cluster, "short").await;
    let node = at_node(&cluster, &path, "short", "").await;
    let (mut sender, ws) = join(&node).await;
    let ms = member(&ws);
    let stream = ws["stream"].as_str().expect("stream").to_owned();
    for i in 1..=20 {
        send(&mut sender, &body(i)).await;
    }
    for i in 1..=20 {
        next_message(&mut sender, i, &ms, &body(i)).await;
    }

    let (mut old, wo) = join(&format!("{node}?since=2&stream={stream}")).await;
    assert_eq!(wo["seq"], 20);
    next_error(&mut old, "history_gap").await;
    // 15..=20 is six messages; only five are kept.
    let (mut edge, _) = join(&format!("{node}?since=14&stream={stream}")).await;
    next_error(&mut edge, "history_gap").await;

    let (mut recent, wr) = join(&format!("{node}?since=15&stream={stream}")).await;
    assert_eq!(wr["seq"], 20);
    for i in 16..=20 {
        next_message(&mut recent, i, &ms, &body(i)).await;
    }
    send(&mut sender, &body(21)).await;
    for c in [&mut old, &mut edge, &mut recent] {
        let m = c.recv_until("message", WAIT).await;
        assert_eq!(m["seq"], 21, "live traffic after the gap or replay: {m}");
        assert_eq!(m["body"], body(21));
    }
}

// ---------------------------------------------------------------------------
// Malformed and oversized frames.

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
    let cluster = Cluster::start_with(1, 1, &["--max-frame-bytes", "1024"]).await;
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

// ---------------------------------------------------------------------------
// Slow consumers.

/// Reads `c`'s frames until it has seen message `upto`: messages must come
/// in order from `from` with body `{"i": seq, ..}`; the only other frame
/// allowed is `slow`'s `left`, whose arrival is recorded in `left`.
async fn read_firehose(
    c: &mut WsClient,
    who: &str,
    seen: &mut u64,
    upto: u64,
    from: &str,
    slow: &str,
    left: &mut bool,
) {
    while *seen < upto {
        let v = c.recv_json(WAIT).await;
        match v["type"].as_str() {
            Some("message") => {
                *seen += 1;
                assert_eq!(v["seq"], *seen, "{who}: seqs in order, no gap: {v}");
                assert_eq!(v["from"], from, "{who}: sender of {v}");
                assert_eq!(v["body"]["i"], *seen, "{who}: body intact");
            }
            Some("left") if !*left => {
                assert_eq!(v["member"], slow, "{who}: only the slow one leaves: {v}");
                assert_eq!(v["members"], 2, "{who}: {v}");
                *left = true;
            }
            _ => panic!("{who}: unexpected frame {v}"),
        }
    }
}

#[tokio::test]
async fn a_reader_that_never_reads_is_cut_off_and_no_one_else_suffers() {
    /// Messages per round. The queue (16) counts frames, not bytes, so a
    /// burst larger than it would overflow even a member that reads: each
    /// round is read back by both readers before the next.
    const BATCH: u64 = 8;
    /// About 4 KiB per message: the node's send buffer to the silent member
    /// plus its receive buffer (a few MiB on loopback) fill within about a
    /// hundred rounds. (Each round costs a delayed ACK while the node's
    /// sockets keep Nagle on; see `back_to_back_messages_are_not_held_back`.)
    const PAD: usize = 4 * 1024;
    /// Upper bound on messages sent before the slow member must be gone.
    const LIMIT: u64 = 8_000;
    /// Rounds sent after the slow member is gone.
    const AFTER: u64 = 4;

    let cluster = Cluster::start_with(1, 1, &["--max-queue", "16"]).await;
    let path = create(&cluster, "firehose").await;
    let node = at_node(&cluster, &path, "firehose", "").await;
    let (mut obs, _) = join(&node).await;
    let (mut fast, wf) = join(&node).await;
    let mf = member(&wf);
    let (mut slow, wslow) = join(&node).await;
    let mslow = member(&wslow);
    next(&mut obs, "joined").await;
    next(&mut obs, "joined").await;
    next(&mut fast, "joined").await;

    let pad = "z".repeat(PAD);
    let (mut sent, mut got_fast, mut got_obs) = (0u64, 0u64, 0u64);
    let (mut left_fast, mut left_obs) = (false, false);
    let mut rounds_after = 0;
    while rounds_after < AFTER {
        assert!(
            sent < LIMIT,
            "the member that never reads was still in the room after {LIMIT} messages"
        );
        if left_fast && left_obs {
            rounds_after += 1;
        }
        for _ in 0..BATCH {
            sent += 1;
            send(&mut fast, &json!({"i": sent, "pad": pad})).await;
        }
        read_firehose(
            &mut fast,
            "sender",
            &mut got_fast,
            sent,
            &mf,
            &mslow,
            &mut left_fast,
        )
        .await;
        read_firehose(
            &mut obs,
            "observer",
            &mut got_obs,
            sent,
            &mf,
            &mslow,
            &mut left_obs,
        )
        .await;
    }

    // The silent member: whatever was buffered, then close 1008, or, if not
    // even the close frame fit into its buffers, the end of the connection.
    let code = slow.expect_close(WAIT).await;
    assert!(
        code.is_none() || code == Some(1008),
        "slow consumer closed with {code:?}, expected 1008"
    );

    let http = cluster.owner("firehose").await.http();
    eventually(WAIT, "roomnode_slow_consumers_total is 1", async || {
        http.get("/metrics")
            .await
            .text
            .lines()
            .any(|l| l == r#"roomnode_slow_consumers_total{node="i1"} 1"#)
    })
    .await;
}

/// Two messages sent back to back come back without waiting for a delayed
/// ACK, straight from the node and through the router. Browsers send
/// WebSocket frames with TCP_NODELAY, so both frames can reach the node in
/// one read; if a socket on the way back keeps Nagle's algorithm on, the
/// second echo is held until the client acknowledges the first (40 ms on
/// Linux, up to 200 ms elsewhere), which a real-time room cannot afford.
#[tokio::test]
async fn back_to_back_messages_are_not_held_back() {
    const ROUNDS: u64 = 50;
    // A round takes well under a millisecond on loopback; 10 ms a round
    // leaves room for a loaded machine and is a quarter of a delayed ACK.
    const BOUND: Duration = Duration::from_millis(10 * ROUNDS);
    let cluster = Cluster::start(1, 1).await;
    let path = create(&cluster, "burst").await;
    let direct = at_node(&cluster, &path, "burst", "").await;
    let proxied = url(&cluster.router(0).ws_base(), &path, "");
    let mut slow = Vec::new();
    let mut seq = 0;
    for (how, at) in [
        ("straight from the node", direct),
        ("through the router", proxied),
    ] {
        let mut a = BrowserLike::join(&at).await;
        let started = std::time::Instant::now();
        for _ in 0..ROUNDS {
            a.send(&body(seq + 1)).await;
            a.send(&body(seq + 2)).await;
            for _ in 0..2 {
                seq += 1;
                let v = a.recv().await;
                assert_eq!(v["type"], "message", "{v}");
                assert_eq!(v["seq"], seq, "{v}");
                assert_eq!(v["body"], body(seq), "{v}");
            }
        }
        let took = started.elapsed();
        if took >= BOUND {
            slow.push(format!("{how}: {took:?}"));
        }
    }
    assert!(
        slow.is_empty(),
        "{ROUNDS} rounds of two back-to-back messages took longer than {BOUND:?} ({}): \
         the second echo waits for a delayed ACK (TCP_NODELAY not set on accepted sockets?)",
        slow.join("; ")
    );
}

/// A WebSocket client with TCP_NODELAY on its side, as browsers have (the
/// kit's client keeps Nagle's algorithm, which hides the node's).
struct BrowserLike {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl BrowserLike {
    /// Joins at `url` and reads the welcome.
    async fn join(url: &str) -> Self {
        let connect = tokio_tungstenite::connect_async_with_config(url, None, true);
        let (ws, _) = tokio::time::timeout(WAIT, connect)
            .await
            .unwrap_or_else(|_| panic!("joining {url} took more than {WAIT:?}"))
            .unwrap_or_else(|e| panic!("joining {url}: {e}"));
        let mut c = Self { ws };
        let welcome = c.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        c
    }

    /// Sends `body` in a `send` frame.
    async fn send(&mut self, body: &Value) {
        use futures_util::SinkExt;
        let frame = json!({"type": "send", "body": body}).to_string();
        tokio::time::timeout(WAIT, self.ws.send(Message::text(frame)))
            .await
            .expect("sending in time")
            .expect("sending");
    }

    /// The next text frame as JSON.
    async fn recv(&mut self) -> Value {
        use futures_util::StreamExt;
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {WAIT:?}"))
                .expect("the connection ended")
                .expect("reading a frame");
            if let Message::Text(text) = frame {
                return serde_json::from_str(&text).expect("a JSON frame");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Deletion.

#[tokio::test]
async fn deleting_a_room_closes_its_members_and_refuses_rejoining() {
    let cluster = Cluster::start(2, 1).await;
    let path = create(&cluster, "doomed").await;
    let node = at_node(&cluster, &path, "doomed", "").await;
    let router = url(&cluster.router(0).ws_base(), &path, "");
    let (mut a, _) = join(&router).await;
    let (mut b, _) = join(&node).await;
    next(&mut a, "joined").await;

    let del = cluster.router(0).http().delete("/rooms/doomed").await;
    assert_eq!(del.status, 204, "DELETE /rooms/doomed: {}", del.text);
    for c in [&mut a, &mut b] {
        next_error(c, "room_closed").await;
        assert_eq!(c.expect_close(WAIT).await, Some(1000));
    }

    match WsClient::connect(&node).await {
        Err(Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 404, "rejoining a deleted room");
            let body = resp.body().as_deref().map(String::from_utf8_lossy);
            assert!(
                body.as_deref().is_some_and(|b| b.contains("unknown_room")),
                "404 body names the reason: {body:?}"
            );
        }
        Ok(_) => panic!("joined a deleted room"),
        Err(e) => panic!("rejoining a deleted room: {e}"),
    }
    let get = cluster.router(0).http().get("/rooms/doomed").await;
    assert_eq!(get.status, 404);
}
