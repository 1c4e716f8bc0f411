//! Live moves under Socket.IO traffic through the router path: a
//! rebalance (in process) and `router drain` (the real binaries), member
//! ids across a move, and a failover to the replica after SIGKILL.

use serde_json::{Value, json};
use testkit::ids::hrw;
use testkit::inproc::Cluster;
use testkit::{Proc, eventually};

use std::time::Duration;

use crate::{result, start};

/// Bound on a move: the script getting ready, the rebalance.
const MOVE_WAIT: Duration = Duration::from_secs(20);

/// The admin token of the router that moves rooms.
const ADMIN_TOKEN: &str = "admin-token-0123456789";

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

/// The owner killed (SIGKILL) under Socket.IO traffic: the room fails
/// over to its replica, which goes on with the same stream, so both
/// clients come back through the router with their ids and `pid`s,
/// `recovered` is true, and every acked tick reached A once, with no gap.
#[tokio::test]
async fn a_killed_owner_under_socketio_traffic_loses_nothing_and_recovers() {
    let mut cluster = testkit::Cluster::start(2, 1).await;
    let router = cluster.router(0).http();
    let (room, _) = testkit::cluster::create_room_on(&router, "failing", "i1").await;
    let path = format!("/room/{room}/socket.io");
    let mut script = start_ready("move", &["--url", router.base(), "--path", &path]).await;
    cluster.node_mut(1).proc.kill().await;
    let out = result(&mut script).await;
    assert_eq!(cluster.record(&room).await["node"], "i2");
    check_move(&out);
}
