//! `router drain iN`: every room leaves the node live, its members follow
//! `moved` and lose nothing, and the node takes no new room; a drain that
//! would leave no active node, or names an unknown one, is refused.

use std::collections::BTreeMap;

use serde_json::json;
use testkit::ids::hrw;
use testkit::{Cluster, eventually, join, metrics, next};

use super::{WAIT, body, listed_on, node_view, router_cmd, say};

#[tokio::test]
async fn drain_moves_every_room_off_the_node_live_and_keeps_it_out_of_placement() {
    let cluster = Cluster::start(3, 1).await;
    let router = cluster.router(0).http();
    let ws = cluster.router(0).ws_base();

    let mut before: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..60 {
        let room = format!("d{i:02}");
        let rec = cluster.create_room(&room).await;
        assert_eq!(rec["epoch"], 1, "{rec}");
        before.insert(room, rec["node"].as_str().expect("node").to_owned());
    }
    let on_i2: Vec<String> = before
        .iter()
        .filter(|(_, n)| *n == "i2")
        .map(|(r, _)| r.clone())
        .collect();
    assert!(
        on_i2.len() >= 3,
        "60 rooms over 3 nodes put {on_i2:?} on i2"
    );

    // A live member in three of i2's rooms, through the router, with three
    // messages each.
    let mut members = Vec::new();
    for room in &on_i2[..3] {
        let (mut c, welcome) = join(&format!("{ws}/room/{room}")).await;
        assert_eq!(welcome["node"], "i2", "{welcome}");
        for n in 1..=3 {
            say(&mut c, n, &body(room, n)).await;
        }
        let stream = welcome["stream"].as_str().expect("stream").to_owned();
        members.push((room.clone(), c, stream));
    }

    let (status, out) = router_cmd(&cluster, &["drain", "i2"]).await;
    assert!(status.success(), "router drain i2 exited {status}:\n{out}");
    assert!(
        out.contains("i2 owns no rooms"),
        "the drain says i2 is empty:\n{out}"
    );

    // i2 owns nothing and takes nothing, and says so (once the router's
    // mirror has the nodes' writes).
    eventually(WAIT, "the router lists no room on i2", async || {
        listed_on(&router, "i2").await.is_empty()
    })
    .await;
    eventually(WAIT, "GET /nodes shows i2 draining and empty", async || {
        node_view(&router, "i2")
            .await
            .is_some_and(|n| n["state"] == "draining" && n["rooms"] == 0)
    })
    .await;

    // The members were told where their room went, and resuming there
    // replays exactly what they missed, on the same stream.
    for (room, c, stream) in &mut members {
        let moved = next(c, "moved").await;
        assert_eq!(c.expect_close(WAIT).await, Some(1000), "close after moved");
        let rec = cluster.record(room).await;
        let owner = rec["node"].as_str().expect("node").to_owned();
        assert_ne!(owner, "i2");
        assert_eq!(rec["epoch"], 2, "one change of owner: {rec}");
        assert_eq!(moved["path"], format!("/{owner}/room/{room}"), "{moved}");
        let url = format!(
            "{ws}{}?since=1&stream={stream}",
            moved["path"].as_str().expect("path")
        );
        let (mut again, welcome) = join(&url).await;
        assert_eq!(welcome["node"], owner.as_str(), "{welcome}");
        assert_eq!(welcome["stream"], stream.as_str(), "same stream: {welcome}");
        assert_eq!(welcome["seq"], 3, "{welcome}");
        for n in 2..=3 {
            let m = next(&mut again, "message").await;
            assert_eq!(m["seq"], n, "{m}");
            assert_eq!(m["body"], body(room, n), "{m}");
        }
        say(&mut again, 4, &body(room, 4)).await;
    }

    for id in ["i1", "i3"] {
        let view = node_view(&router, id).await.expect("listed");
        assert_eq!(view["state"], "active", "{view}");
    }

    // Every room is reachable on its record's node; rooms that were on
    // i1/i3 did not move, i2's went to their HRW owner among i1 and i3.
    for (room, was) in &before {
        let rec = cluster.record(room).await;
        let (_, welcome) = join(&format!("{ws}/room/{room}")).await;
        assert_eq!(welcome["node"], rec["node"], "{room}: {welcome} vs {rec}");
        if was == "i2" {
            assert_eq!(rec["node"], hrw(&[1, 3], room).as_str(), "{rec}");
            assert_eq!(rec["epoch"], 2, "{rec}");
        } else {
            assert_eq!(rec["node"], was.as_str(), "{room} stayed: {rec}");
            assert_eq!(rec["epoch"], 1, "{room} kept its epoch: {rec}");
        }
    }

    // The moves are counted on i2 and nothing failed.
    let m = metrics::scrape(&cluster.node(2).http()).await;
    assert_eq!(
        metrics::value(&m, "roomnode_rooms_moved_total", &[("node", "i2")]),
        on_i2.len() as f64,
        "{m}"
    );
    assert_eq!(
        metrics::value(&m, "roomnode_moves_failed_total", &[]),
        0.0,
        "{m}"
    );
    assert_eq!(
        metrics::value(&m, "roomnode_move_duration_seconds_count", &[]),
        on_i2.len() as f64,
        "{m}"
    );

    // New rooms never land on the draining node.
    for i in 0..30 {
        let rec = cluster.create_room(&format!("after{i:02}")).await;
        assert_ne!(rec["node"], "i2", "a new room on the draining node: {rec}");
    }
}

#[tokio::test]
async fn drain_refuses_an_unknown_node_and_the_last_active_node() {
    let cluster = Cluster::start(1, 1).await;
    let router = cluster.router(0).http();
    for i in 0..5 {
        cluster.create_room(&format!("k{i}")).await;
    }

    let (status, out) = router_cmd(&cluster, &["drain", "i9"]).await;
    assert!(!status.success(), "router drain i9 succeeded:\n{out}");
    assert!(
        out.contains("i9") && out.contains("not registered"),
        "the error names i9 and says it is not registered:\n{out}"
    );

    let (status, out) = router_cmd(&cluster, &["drain", "i1"]).await;
    assert!(!status.success(), "router drain i1 succeeded alone:\n{out}");
    assert!(
        out.contains("no active node is left"),
        "the error says nowhere is left:\n{out}"
    );

    // i1 keeps every room, at its epoch, and serves them.
    assert_eq!(listed_on(&router, "i1").await.len(), 5);
    for i in 0..5 {
        let room = format!("k{i}");
        let rec = cluster.record(&room).await;
        assert_eq!(rec["node"], "i1", "{rec}");
        assert_eq!(rec["epoch"], 1, "{rec}");
        let (_, welcome) = join(&format!("{}/room/{room}", cluster.router(0).ws_base())).await;
        assert_eq!(welcome["node"], "i1", "{welcome}");
    }

    // A refused drain leaves the cluster as it was: its only node still
    // takes new rooms (there is no command to undo "draining").
    let mut last = None;
    let usable = testkit::wait_until(WAIT, async || {
        let r = router
            .post_json("/rooms", &json!({"id": "after-refusal"}))
            .await;
        let ok = r.status == 201 && r.body["node"] == "i1";
        last = Some((r.status, r.text, node_view(&router, "i1").await));
        ok
    })
    .await;
    assert!(
        usable,
        "after the refused `router drain i1`, POST /rooms answers {:?}; GET /nodes has i1 as {:?}",
        last.as_ref().map(|l| (l.0, &l.1)),
        last.as_ref().map(|l| &l.2)
    );
}
