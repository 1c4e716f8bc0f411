//! The real `socket.io-client` 4.8 from npm, in Node, against room nodes
//! (and the router) in this process: each case runs one script of
//! `tests/browser/socketio/` with the room's URL and path on its command
//! line and asserts on the JSON line of results it prints. Scripts fail
//! (exit 1) only when something never happens; what happened is checked
//! here, value by value.
//!
//! Offsets: every delivered event ends with its seq as a string (the
//! recovery offset), which socket.io-client passes on to the handler as
//! its last argument; the expected argument lists below include it.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::ids::hrw;
use testkit::inproc::Cluster;
use testkit::{Proc, eventually};

/// Bound on one script run (each waits at most a few seconds per step).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound on a move: the script getting ready, the rebalance.
const MOVE_WAIT: Duration = Duration::from_secs(20);

/// The admin token of the router that moves rooms.
const ADMIN_TOKEN: &str = "admin-token-0123456789";

/// `tests/browser`, where the npm packages and the scripts are.
fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// `node socketio/<script>.mjs <args>`, started.
fn start(script: &str, args: &[&str]) -> Proc {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/socket.io-client").is_dir(),
        "socket.io-client is not installed: run `npm ci` in tests/browser"
    );
    Proc::program(script, "node")
        .arg(dir.join("socketio").join(format!("{script}.mjs")))
        .args(args)
        .spawn()
}

/// Waits for a started script to end: its result line, or a panic with
/// its output if it failed.
async fn result(script: &mut Proc) -> Value {
    let (status, log) = script.finish(SCRIPT_TIMEOUT).await;
    let line = log.lines().rev().find_map(|l| {
        serde_json::from_str::<Value>(l)
            .ok()
            .filter(|v| v.get("ok").is_some())
    });
    match line {
        Some(v) if status.success() && v["ok"] == true => v,
        _ => panic!("{} failed ({status}):\n{log}", script.label()),
    }
}

/// Runs `socketio/<script>.mjs` to its end: its result line.
async fn run(script: &str, args: &[&str]) -> Value {
    result(&mut start(script, args)).await
}

/// Creates `room` and returns the base URL of its owner and its Socket.IO
/// path there (`/iN/room/{room}/socket.io`).
async fn on_node(cluster: &Cluster, room: &str) -> (String, String) {
    let rec = cluster.create_room(room).await;
    let node = cluster.owner(room).await;
    let path = format!("/{}/room/{room}/socket.io", node.id());
    assert_eq!(rec["node"], node.id());
    (node.http().base().to_owned(), path)
}

/// The argument list of a delivered event: `args`, then the offset.
fn delivered(args: Value, seq: u64) -> Value {
    let mut all = args.as_array().expect("args is an array").clone();
    all.push(json!(seq.to_string()));
    Value::Array(all)
}

/// What `exchange.mjs` saw in a fresh room: `count` chat events acked with
/// seqs 1..=count and received by B with those offsets, none echoed to A,
/// and B's reply (seq count + 1) at A.
fn check_exchange(out: &Value, count: u64) {
    let acks: Vec<Value> = (1..=count).map(|seq| json!({ "seq": seq })).collect();
    assert_eq!(out["acks"], json!(acks), "{out}");
    let at_b: Vec<Value> = (0..count)
        .map(|i| delivered(json!(["hello", i, { "n": i }]), i + 1))
        .collect();
    assert_eq!(out["atB"], json!(at_b), "{out}");
    assert_eq!(out["atA"], json!([]), "a sender gets no echo: {out}");
    assert_eq!(out["replyAck"], json!({ "seq": count + 1 }), "{out}");
    assert_eq!(
        out["repliesAtA"],
        json!([delivered(json!(["hi alice"]), count + 1)]),
        "{out}"
    );
    let (a, b) = (&out["ids"]["a"], &out["ids"]["b"]);
    assert!(a.is_string() && b.is_string() && a != b, "{out}");
}

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

/// A client over `transport` loses its transport, misses 5 events and
/// reconnects: recovered, with exactly those 5 (in order, once, without
/// its own events), then live traffic.
async fn recovery_after_a_dropped_transport(transport: &str) {
    let cluster = Cluster::start(1, 1).await;
    let room = format!("recover-{transport}");
    let (url, path) = on_node(&cluster, &room).await;
    let args = ["--url", &url, "--path", &path, "--transport", transport];
    let out = run("recover", &args).await;
    assert_eq!(out["reason"], "transport close", "{out}");
    assert_eq!(out["before"]["recovered"], false, "{out}");
    assert_eq!(out["after"]["recovered"], true, "{out}");
    assert_eq!(out["after"]["id"], out["before"]["id"], "{out}");
    assert_eq!(out["after"]["pid"], out["before"]["pid"], "{out}");
    // m 0 is seq 1, A's own events 2..=4, the missed ones 5..=9, live 10.
    assert_eq!(out["ownAcks"], json!([2, 3, 4]), "{out}");
    assert_eq!(out["acks"], json!([1, 5, 6, 7, 8, 9, 10]), "{out}");
    assert_eq!(
        out["atA"],
        json!([
            [0, "1"],
            [1, "5"],
            [2, "6"],
            [3, "7"],
            [4, "8"],
            [5, "9"],
            [6, "10"]
        ]),
        "{out}"
    );
    assert_eq!(out["ownAtA"], json!([]), "no echo of its own events: {out}");
}

#[tokio::test]
async fn a_websocket_client_recovers_what_it_missed_after_a_dropped_transport() {
    recovery_after_a_dropped_transport("websocket").await;
}

#[tokio::test]
async fn a_polling_client_recovers_what_it_missed_after_a_dropped_transport() {
    recovery_after_a_dropped_transport("polling").await;
}

#[tokio::test]
async fn another_stream_is_not_recovered() {
    let cluster = Cluster::start(1, 1).await;
    let (url, path) = on_node(&cluster, "streams").await;
    let router = cluster.router(0).http().base().to_owned();
    let args = [
        "--url", &url, "--path", &path, "--router", &router, "--room", "streams",
    ];
    let out = run("stream_change", &args).await;

    // A forged pid: a new member, and B's two events meanwhile (seqs 2
    // and 3) are not replayed.
    let forged = &out["forged"];
    assert_eq!(forged["after"]["recovered"], false, "{out}");
    assert_ne!(forged["after"]["id"], forged["before"]["id"], "{out}");
    let stream = |pid: &Value| {
        pid.as_str()
            .and_then(|p| p.split_once('~'))
            .map(|s| s.0.to_owned())
    };
    assert_eq!(
        stream(&forged["after"]["pid"]),
        stream(&forged["before"]["pid"]),
        "{out}"
    );
    assert_eq!(forged["atA"], json!([[0, "1"], [3, "4"]]), "{out}");

    // Deleted and created again: a new stream, nothing recovered (B's
    // first event in the new room, seq 1, is not replayed to A).
    let deleted = &out["deleted"];
    assert_eq!(deleted["deleteStatus"], 204, "{out}");
    assert_eq!(deleted["createStatus"], 201, "{out}");
    let server = json!(["io server disconnect", "io server disconnect"]);
    assert_eq!(deleted["reasons"], server, "{out}");
    assert_eq!(deleted["firstAck"], json!({ "seq": 1 }), "{out}");
    assert_eq!(deleted["after"]["recovered"], false, "{out}");
    let old = stream(&deleted["before"]["pid"]);
    let new = stream(&deleted["after"]["pid"]);
    assert!(new.is_some() && new != old, "{out}");
    assert_eq!(new, stream(&deleted["bPid"]), "{out}");
    assert_eq!(deleted["atA"], json!([[5, "2"]]), "{out}");
}

#[tokio::test]
async fn a_deleted_room_disconnects_its_clients_for_good() {
    let cluster = Cluster::start(1, 1).await;
    let (url, path) = on_node(&cluster, "doomed").await;
    let router = cluster.router(0).http().base().to_owned();
    let args = [
        "--url", &url, "--path", &path, "--router", &router, "--room", "doomed",
    ];
    let out = run("deleted", &args).await;
    assert_eq!(out["deleteStatus"], 204, "{out}");
    let both = |v: Value| json!({ "a": v, "b": v });
    // One "disconnect" each, for the DISCONNECT packet: a close packet in
    // the same poll answer is handled first by socket.io-client (its
    // Socket.IO packets go through a microtask), which would report
    // "transport close" before "io server disconnect".
    let server = json!(["io server disconnect"]);
    assert_eq!(out["reasons"], both(server), "{out}");
    assert_eq!(out["attempts"], both(json!(0)), "no reconnection: {out}");
    assert_eq!(out["connects"], both(json!(0)), "no reconnection: {out}");
    assert_eq!(out["active"], both(json!(false)), "{out}");
    assert_eq!(
        out["late"],
        json!({ "message": "websocket error", "data": null }),
        "the path is gone: {out}"
    );
}

/// What `rooms.mjs` saw in each of `rooms`: 3 acked events (seqs 1..=3)
/// received in order, in that room only, over polling.
fn check_rooms(out: &Value, rooms: &[String]) {
    for room in rooms {
        let got: Vec<Value> = (0..3u64)
            .map(|i| json!([room, i, (i + 1).to_string()]))
            .collect();
        assert_eq!(
            out[room.as_str()],
            json!({ "acks": [1, 2, 3], "got": got, "transports": ["polling", "polling"] }),
            "{room}: {out}"
        );
    }
}

#[tokio::test]
async fn three_rooms_on_three_nodes_with_polling_clients() {
    let cluster = Cluster::start(3, 1).await;
    let router = cluster.router(0).http();
    let mut rooms = Vec::new();
    let mut args = Vec::new();
    for n in 1..=3u16 {
        let node = cluster.node(n);
        let (room, _) = testkit::cluster::create_room_on(&router, "spread", &node.id()).await;
        let path = format!("/{}/room/{room}/socket.io", node.id());
        args.push("--room".to_owned());
        args.push(format!("{room},{},{path}", node.http().base()));
        rooms.push(room);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("rooms", &args).await;
    check_rooms(&out, &rooms);
}

#[tokio::test]
async fn polling_clients_through_two_routers_need_no_stickiness() {
    let cluster = Cluster::start(3, 2).await;
    let router = cluster.router(0).http();
    let spread = format!(
        "{},{}",
        cluster.router(0).http().base(),
        cluster.router(1).http().base()
    );
    let mut rooms = Vec::new();
    let mut args = vec!["--spread".to_owned(), spread];
    for n in 1..=3u16 {
        let id = cluster.node(n).id();
        let (room, _) = testkit::cluster::create_room_on(&router, "via", &id).await;
        args.push("--room".to_owned());
        args.push(format!("{room},proxy,/room/{room}/socket.io"));
        rooms.push(room);
    }
    // The instance path passes through the router unchanged.
    let (room, _) = testkit::cluster::create_room_on(&router, "direct", "i2").await;
    args.push("--room".to_owned());
    args.push(format!("{room},proxy,/i2/room/{room}/socket.io"));
    rooms.push(room);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("rooms", &args).await;
    check_rooms(&out, &rooms);
    let requests = out["proxy"]["requests"].as_array().expect("requests");
    assert!(
        requests.iter().all(|r| r.as_u64() > Some(10)),
        "both routers carried requests: {out}"
    );
    assert!(
        out["proxy"]["everywhere"].as_u64() >= Some(4),
        "polling sessions had requests on both routers: {out}"
    );
}

/// Starts `socketio/<script>.mjs` and waits until it prints its ready
/// line (or fails).
async fn start_ready(script: &str, args: &[&str]) -> Proc {
    let script = start(script, args);
    eventually(MOVE_WAIT, "the script is ready", async || {
        let log = script.log();
        log.contains(r#"{"ready":true}"#) || log.contains(r#""ok":false"#)
    })
    .await;
    script
}

/// An in-process cluster (nodes i1 and i2, a router with the admin token)
/// and a room on i1 that a rebalance moves to i2.
async fn cluster_with_a_room_to_move() -> (Cluster, String) {
    let mut cluster = Cluster::start(1, 0).await;
    cluster
        .add_router(|c| c.admin_token = Some(ADMIN_TOKEN.parse().expect("admin token")))
        .await;
    let room = (0..)
        .map(|k| format!("moving{k}"))
        .find(|r| hrw(&[1, 2], r) == "i2")
        .expect("some room goes to i2");
    assert_eq!(cluster.create_room(&room).await["node"], "i1");
    cluster.add_node(2, |_| {}).await;
    cluster.wait_nodes_seen(2).await;
    (cluster, room)
}

/// `POST /admin/rebalance` on router 0: the room moves to i2.
async fn rebalance(cluster: &Cluster, room: &str) {
    let router = cluster.router(0).http().base().to_owned();
    let answer = reqwest::Client::new()
        .post(format!("{router}/admin/rebalance"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({}))
        .timeout(MOVE_WAIT)
        .send()
        .await
        .expect("POST /admin/rebalance");
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.expect("JSON answer");
    assert_eq!(answer["summary"]["moved"], 1, "{answer}");
    assert_eq!(cluster.record(room).await["node"], "i2");
}

/// What `move.mjs` saw around a move: both clients came back once,
/// recovered; every acked tick reached A exactly once, in order, and A
/// got a gapless run of seqs (nothing accepted was lost).
fn check_move(out: &Value) {
    for k in ["a", "s"] {
        let log = out["log"][k].as_array().expect("log");
        assert_eq!(log.len(), 2, "{k}: one disconnect, one reconnect: {out}");
        // A WebSocket is closed; a poll gets `6` and the next one an
        // unknown sid (socket.io's own server would send `1`, "transport
        // close"): either way the client reconnects by itself.
        let reasons = match k {
            "s" => &["transport close"][..],
            _ => &["transport close", "transport error"][..],
        };
        assert!(
            log[0]["disconnect"]
                .as_str()
                .is_some_and(|r| reasons.contains(&r)),
            "{k}: {out}"
        );
        let before = &out["before"][k];
        assert_eq!(log[1]["connect"], before["id"], "{k} keeps its id: {out}");
        assert_eq!(log[1]["pid"], before["pid"], "{k} keeps its pid: {out}");
        assert_eq!(log[1]["recovered"], true, "{k}: {out}");
    }
    let sent = out["sent"].as_array().expect("sent");
    let acked: Vec<(u64, u64)> = sent
        .iter()
        .filter_map(|e| Some((e["i"].as_u64()?, e["seq"].as_u64()?)))
        .collect();
    assert!(acked.len() >= 15, "{out}");
    assert!(
        acked.windows(2).all(|w| w[0].1 < w[1].1),
        "acked seqs grow with i: {acked:?}"
    );
    for e in sent {
        assert!(
            e.get("seq").is_some() || e["error"] == "room_moving" || e.get("lost").is_some(),
            "a tick is acked, refused while moving, or unanswered: {e}"
        );
    }
    let got: Vec<(u64, u64)> = out["got"]
        .as_array()
        .expect("got")
        .iter()
        .map(|g| (g[0].as_u64().expect("i"), g[1].as_u64().expect("seq")))
        .collect();
    let first = got.first().expect("A got ticks").1;
    let seqs: Vec<u64> = got.iter().map(|g| g.1).collect();
    let gapless: Vec<u64> = (first..first + got.len() as u64).collect();
    assert_eq!(seqs, gapless, "A's seqs: once each, in order, no gap");
    for tick in &acked {
        assert!(got.contains(tick), "acked tick {tick:?} reached A: {out}");
    }
}

#[tokio::test]
async fn a_rebalance_under_socketio_traffic_loses_nothing_and_recovers() {
    let (cluster, room) = cluster_with_a_room_to_move().await;
    let url = cluster.router(0).http().base().to_owned();
    let path = format!("/room/{room}/socket.io");
    let mut script = start_ready("move", &["--url", &url, "--path", &path]).await;
    rebalance(&cluster, &room).await;
    check_move(&result(&mut script).await);
}

/// A client that joins the new owner before the moved members come back
/// must not take one of their member ids: those ids are their `pid`s, and
/// the replay leaves out a member's own events by id.
#[tokio::test]
async fn a_newcomer_after_a_move_does_not_take_a_moved_members_id() {
    let (cluster, room) = cluster_with_a_room_to_move().await;
    let url = cluster.router(0).http().base().to_owned();
    let path = format!("/room/{room}/socket.io");
    let mut script = start_ready("newcomer", &["--url", &url, "--path", &path]).await;
    rebalance(&cluster, &room).await;
    let out = result(&mut script).await;
    let (a, s) = (&out["before"]["a"], &out["before"]["s"]);
    assert!(
        out["newcomer"] != a["id"] && out["newcomer"] != s["id"],
        "the newcomer has an id of its own: {out}"
    );
    for (k, before) in [("a", a), ("s", s)] {
        let after = &out["after"][k];
        assert_eq!(after["recovered"], true, "{k}: {out}");
        assert_eq!(after["id"], before["id"], "{k}: {out}");
    }
    // hello is seq 1, m 0..=4 are 2..=6; A missed 1..=3 while away.
    assert_eq!(
        out["atA"],
        json!([[0, "2"], [1, "3"], [2, "4"], [3, "5"], [4, "6"]]),
        "{out}"
    );
}

/// The real binaries and `router drain`, with the node's heartbeat flags
/// as durations: the clients live through several 300 ms ping cycles,
/// then the drain moves their room and they recover with nothing lost.
#[tokio::test]
async fn a_drain_under_socketio_traffic_loses_nothing_and_recovers() {
    let flags = [
        "--ping-interval",
        "300ms",
        "--ping-timeout",
        "200ms",
        "--connect-timeout",
        "1s",
    ];
    let cluster = testkit::Cluster::start_with(2, 1, &flags).await;
    let router = cluster.router(0).http();
    let (room, _) = testkit::cluster::create_room_on(&router, "drained", "i1").await;
    let path = format!("/room/{room}/socket.io");
    let mut script = start_ready("move", &["--url", router.base(), "--path", &path]).await;
    let out = cluster.router_ok(&["drain", "i1"]).await;
    assert!(out.contains("i1 owns no rooms"), "{out}");
    assert_eq!(cluster.record(&room).await["node"], "i2");
    let out = result(&mut script).await;
    assert_eq!(
        out["ping"],
        json!({ "interval": 300, "timeout": 200 }),
        "{out}"
    );
    check_move(&out);
}
