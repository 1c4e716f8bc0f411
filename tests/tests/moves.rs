//! Live moves end to end: `router rebalance` after adding a node hands rooms
//! over with their history, and members who follow `moved` lose nothing.

use std::time::Duration;

use serde_json::json;
use testkit::{Cluster, join};

const WAIT: Duration = Duration::from_secs(10);

/// Runs `router <args>` against the cluster, which must succeed; its output.
async fn router_cmd(cluster: &Cluster, args: &[&str]) -> String {
    let (status, log) = cluster
        .run_router_command(args, Duration::from_secs(60))
        .await;
    assert!(status.success(), "router {args:?} failed:\n{log}");
    log
}

#[tokio::test]
async fn rebalance_moves_rooms_live_with_their_history() {
    let mut cluster = Cluster::start(1, 1).await;
    let ws = cluster.router(0).ws_base();
    let mut members = Vec::new();
    for i in 0..12 {
        let room = format!("r{i}");
        cluster.create_room(&room).await;
        let (mut c, welcome) = join(&format!("{ws}/room/{room}")).await;
        for n in 1..=3 {
            c.send_json(&json!({"type": "send", "body": n})).await;
            assert_eq!(c.recv_json(WAIT).await["seq"], n);
        }
        members.push((room, c, welcome["stream"].as_str().unwrap().to_owned()));
    }
    cluster.add_node(2, &[]).await;
    cluster.wait_nodes_seen(2).await;

    let dry = router_cmd(&cluster, &["rebalance", "--dry-run"]).await;
    assert!(dry.contains("dry run: nothing moved"), "{dry}");
    let out = router_cmd(&cluster, &["rebalance"]).await;
    assert!(out.contains("0 failed"), "{out}");

    let mut moved = 0;
    for (room, c, stream) in &mut members {
        let rec = cluster
            .router(0)
            .http()
            .get(&format!("/rooms/{room}"))
            .await
            .body;
        if rec["node"] == "i1" {
            assert_eq!(rec["epoch"], 1);
            continue;
        }
        moved += 1;
        assert_eq!(rec["epoch"], 2);
        let m = c.recv_json(WAIT).await;
        assert_eq!(m["type"], "moved", "{m}");
        assert_eq!(m["path"], format!("/i2/room/{room}"));
        assert_eq!(c.expect_close(WAIT).await, Some(1000));
        let url = format!(
            "{ws}{}?since=1&stream={stream}",
            m["path"].as_str().unwrap()
        );
        let (mut again, welcome) = join(&url).await;
        assert_eq!(welcome["node"], "i2");
        assert_eq!(welcome["stream"], stream.as_str());
        assert_eq!(welcome["seq"], 3);
        for n in 2..=3 {
            assert_eq!(again.recv_json(WAIT).await["seq"], n);
        }
        again.send_json(&json!({"type": "send", "body": 4})).await;
        assert_eq!(again.recv_json(WAIT).await["seq"], 4);
    }
    assert!(moved > 0, "some rooms moved to i2");
    let again = router_cmd(&cluster, &["rebalance"]).await;
    assert!(again.contains("0 room(s) to move"), "{again}");
}
