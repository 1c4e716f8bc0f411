//! Connection state recovery and its limits: a dropped transport
//! recovers what it missed, another stream recovers nothing, a deleted
//! room disconnects its clients for good.

use serde_json::{Value, json};
use testkit::inproc::Cluster;

use crate::{on_node, run};

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
