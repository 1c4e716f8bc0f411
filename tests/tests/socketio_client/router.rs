//! Several rooms on several nodes over polling, and through the router's
//! `/room/{id}/socket.io` (and `/iN/room/{id}/socket.io` passed through)
//! with no stickiness.

use serde_json::{Value, json};
use testkit::inproc::Cluster;

use crate::{check_exchange, run};

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

/// `exchange.mjs` over `transport` through router 0's path
/// `/room/{room}/socket.io`, in the room's own namespace (a classic
/// Socket.IO chat's `io("/room/ID", { path })`), on one of three nodes.
async fn exchange_through_the_router(transport: &str) -> Value {
    let cluster = Cluster::start(3, 1).await;
    let room = format!("via-{transport}");
    cluster.create_room(&room).await;
    let url = cluster.router(0).http().base().to_owned();
    let path = format!("/room/{room}/socket.io");
    let nsp = format!("/room/{room}");
    let args = [
        "--url",
        &url,
        "--path",
        &path,
        "--transport",
        transport,
        "--nsp",
        &nsp,
    ];
    let out = run("exchange", &args).await;
    check_exchange(&out, 5);
    out
}

#[tokio::test]
async fn polling_only_through_the_router() {
    let out = exchange_through_the_router("polling").await;
    let polling = json!({ "a": "polling", "b": "polling" });
    assert_eq!(out["first"], polling, "{out}");
    assert_eq!(out["transports"], polling, "{out}");
}

#[tokio::test]
async fn polling_then_the_upgrade_through_the_router() {
    let out = exchange_through_the_router("default").await;
    assert_eq!(
        out["first"],
        json!({ "a": "polling", "b": "polling" }),
        "{out}"
    );
    let ws = json!({ "a": "websocket", "b": "websocket" });
    assert_eq!(out["transports"], ws, "{out}");
}

#[tokio::test]
async fn websocket_only_through_the_router() {
    let out = exchange_through_the_router("websocket").await;
    let ws = json!({ "a": "websocket", "b": "websocket" });
    assert_eq!(out["first"], ws, "{out}");
    assert_eq!(out["transports"], ws, "{out}");
}
