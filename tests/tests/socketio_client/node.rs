//! Straight to a room's node at `/iN/room/{id}/socket.io`: each transport
//! setting, 500 events in order, binary arguments, private rooms, native
//! and Socket.IO members in one room.

use serde_json::{Value, json};
use testkit::inproc::Cluster;

use crate::{check_exchange, on_node, run};

#[tokio::test]
async fn websocket_only_straight_to_the_node() {
    let cluster = Cluster::start(1, 1).await;
    let (url, path) = on_node(&cluster, "ws-only").await;
    let args = ["--url", &url, "--path", &path, "--transport", "websocket"];
    let out = run("exchange", &args).await;
    check_exchange(&out, 5);
    let ws = json!({ "a": "websocket", "b": "websocket" });
    assert_eq!(out["first"], ws, "{out}");
    assert_eq!(out["transports"], ws, "{out}");

    // The room's own namespace is the same room.
    let (url, path) = on_node(&cluster, "ws-nsp").await;
    let nsp = ["--transport", "websocket", "--nsp", "/room/ws-nsp"];
    let out = run(
        "exchange",
        &[&["--url", &url, "--path", &path][..], &nsp].concat(),
    )
    .await;
    check_exchange(&out, 5);
}

#[tokio::test]
async fn polling_only_straight_to_the_node() {
    let cluster = Cluster::start(1, 1).await;
    let (url, path) = on_node(&cluster, "poll-only").await;
    let args = ["--url", &url, "--path", &path, "--transport", "polling"];
    let out = run("exchange", &args).await;
    check_exchange(&out, 5);
    let polling = json!({ "a": "polling", "b": "polling" });
    assert_eq!(out["first"], polling, "{out}");
    assert_eq!(out["transports"], polling, "{out}");
}

#[tokio::test]
async fn polling_then_the_upgrade_straight_to_the_node() {
    let cluster = Cluster::start(1, 1).await;
    let (url, path) = on_node(&cluster, "upgrade").await;
    let args = ["--url", &url, "--path", &path, "--transport", "default"];
    let out = run("exchange", &args).await;
    check_exchange(&out, 5);
    assert_eq!(
        out["first"],
        json!({ "a": "polling", "b": "polling" }),
        "{out}"
    );
    let ws = json!({ "a": "websocket", "b": "websocket" });
    assert_eq!(out["transports"], ws, "{out}");
}

/// 500 events emitted back to back reach a receiver on `transport` in
/// order: seqs 1..=500, each once, each with its own index.
async fn five_hundred_in_order(transport: &str) {
    let cluster = Cluster::start(1, 1).await;
    let room = format!("order-{transport}");
    let (url, path) = on_node(&cluster, &room).await;
    let args = ["--url", &url, "--path", &path, "--receiver", transport];
    let out = run("order", &args).await;
    assert_eq!(out["receiver"], transport, "{out}");
    let seqs: Vec<u64> = (1..=500).collect();
    assert_eq!(out["acked"], json!(seqs), "acks in emit order");
    let expected: Vec<Value> = (0..500u64)
        .map(|i| json!([i, (i + 1).to_string()]))
        .collect();
    assert_eq!(out["got"], json!(expected), "deliveries in seq order");
    assert_eq!(out["arity"], json!([2]), "index and offset, nothing else");
}

#[tokio::test]
async fn five_hundred_events_in_order_to_a_websocket_receiver() {
    five_hundred_in_order("websocket").await;
}

#[tokio::test]
async fn five_hundred_events_in_order_to_a_polling_receiver() {
    five_hundred_in_order("polling").await;
}

#[tokio::test]
async fn binary_arguments_arrive_byte_for_byte_and_as_base64_at_native_members() {
    let cluster = Cluster::start(1, 1).await;
    let (url, path) = on_node(&cluster, "binary").await;
    let ws = format!("{}/i1/room/binary", cluster.node(1).ws_base());
    let args = ["--url", &url, "--path", &path, "--native", &ws];
    let out = run("binary", &args).await;
    assert_eq!(out["acks"], json!([{ "seq": 1 }, { "seq": 2 }]), "{out}");
    let file = json!([
        { "hex": "000102ff" },
        { "name": "x.bin", "data": { "hex": "090807" } },
        [1, { "hex": "6869" }],
        "1"
    ]);
    for (member, transport) in [("b", "websocket"), ("c", "polling")] {
        let got = &out[member];
        assert_eq!(got["transport"], transport, "{out}");
        assert_eq!(got["file"], file, "{member}: {out}");
        let big = json!({
            "isBuffer": true,
            "length": 40000,
            "sha": out["sent"]["bigSha"],
            "rest": ["2"],
        });
        assert_eq!(got["big"], big, "{member}: {out}");
    }
    let native = &out["native"];
    assert_eq!(
        native["file"],
        json!({
            "seq": 1,
            "from": native["aId"],
            "body": {
                "event": "file",
                "args": [
                    { "_binary": "AAEC/w==" },
                    { "name": "x.bin", "data": { "_binary": "CQgH" } },
                    [1, { "_binary": "aGk=" }],
                ],
            },
        }),
        "{out}"
    );
    assert_eq!(
        native["big"],
        json!({
            "seq": 2,
            "event": "big",
            "arity": 1,
            "sha": out["sent"]["bigSha"],
            "length": 40000,
        }),
        "{out}"
    );
}

/// Creates private room `room` through router 0: its record (with the
/// join token).
async fn create_private(cluster: &Cluster, room: &str) -> Value {
    let r = cluster
        .router(0)
        .http()
        .post_json("/rooms", &json!({ "id": room, "private": true }))
        .await;
    assert_eq!(r.status, 201, "POST /rooms {room} private: {}", r.text);
    r.body
}

#[tokio::test]
async fn private_rooms_refuse_missing_tampered_and_foreign_tokens_and_admit_valid_ones() {
    let cluster = Cluster::start(1, 1).await;
    let rec = create_private(&cluster, "vault").await;
    let other = create_private(&cluster, "attic").await;
    let token = rec["token"].as_str().expect("a private room's token");
    // Flip the signature's first character.
    let (head, sig) = token.rsplit_once('.').expect("payload.signature");
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{head}.{flipped}{}", &sig[1..]);
    let url = cluster.node(1).http().base().to_owned();
    let args = [
        "--url",
        &url,
        "--path",
        "/i1/room/vault/socket.io",
        "--token",
        token,
        "--tampered",
        &tampered,
        "--other",
        other["token"].as_str().expect("token"),
    ];
    let out = run("private", &args).await;
    let refused = &out["refused"];
    let required = json!({
        "message": "room vault is private: pass a join token as auth: { token }",
        "data": { "code": "token_required" },
    });
    assert_eq!(refused["none"], required, "{out}");
    assert_eq!(refused["noneName"], required, "{out}");
    assert_eq!(refused["pollingNone"], required, "{out}");
    assert_eq!(
        refused["tampered"],
        json!({
            "message": "token signature does not verify",
            "data": { "code": "invalid_token" },
        }),
        "{out}"
    );
    assert_eq!(
        refused["other"],
        json!({
            "message": "token is for another room",
            "data": { "code": "wrong_room" },
        }),
        "{out}"
    );
    assert_eq!(
        refused["namespace"],
        json!({ "message": "Invalid namespace", "data": null }),
        "{out}"
    );
    assert_eq!(out["acked"], json!({ "seq": 1 }), "{out}");
    assert_eq!(out["atB"], json!(["secret", "1"]), "{out}");
}

/// Native member N and Socket.IO member S (over `transport`) in one room:
/// each sees the other's messages with the same seqs.
async fn native_and_socketio_in_one_room(transport: &str) {
    let cluster = Cluster::start(1, 1).await;
    let room = format!("mixed-{transport}");
    let (url, path) = on_node(&cluster, &room).await;
    let ws = format!("{}/i1/room/{room}", cluster.node(1).ws_base());
    let args = [
        "--url",
        &url,
        "--path",
        &path,
        "--native",
        &ws,
        "--transport",
        transport,
    ];
    let out = run("native", &args).await;
    let n = out["welcome"]["member"].clone();
    let s = out["sid"].clone();
    assert_eq!(out["welcome"]["seq"], 0, "{out}");
    assert_eq!(out["acked"], json!({ "seq": 1 }), "{out}");
    let message = |seq: u64, from: &Value, body: Value| json!({ "type": "message", "room": room, "seq": seq, "from": from, "body": body });
    assert_eq!(
        out["atNative"],
        json!([
            { "type": "joined", "member": s, "name": "sio", "members": 2 },
            {
                "type": "message",
                "room": room,
                "seq": 1,
                "from": s,
                "name": "sio",
                "body": { "event": "chat", "args": ["from socket.io", { "x": 1 }] },
            },
            message(2, &n, json!({ "text": "from native" })),
            message(3, &n, json!({ "event": "shout", "args": [1, "two", null] })),
            message(4, &n, json!({ "event": "bin", "args": [{ "_binary": "AQID" }] })),
        ]),
        "{out}"
    );
    assert_eq!(
        out["atSocketIo"],
        json!([
            ["message", { "text": "from native" }, "2"],
            ["shout", 1, "two", null, "3"],
            ["bin", { "hex": "010203" }, "4"],
        ]),
        "{out}"
    );
}

#[tokio::test]
async fn native_and_websocket_members_see_each_other() {
    native_and_socketio_in_one_room("websocket").await;
}

#[tokio::test]
async fn native_and_polling_members_see_each_other() {
    native_and_socketio_in_one_room("polling").await;
}
