//! Failover without anyone asking: a node killed with SIGKILL has its rooms
//! moved by the routers' reconciler once its lease expires, to their
//! replicas, which go on with the same stream; and a handoff
//! interrupted by the death of the old owner converges to exactly one
//! owner.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;
use testkit::ids::hrw;
use testkit::{Cluster, eventually, join, metrics, next, wait_until};
use tokio::time::Instant;

use super::{
    ADMIN, FAILOVER, TTL, WAIT, admin_rebalance, body, expect_redirect, listed_on, moves,
    node_view, router_cmd, say,
};

#[tokio::test]
async fn a_killed_nodes_rooms_are_failed_over_by_the_reconciler() {
    let mut cluster = Cluster::start(3, 1).await;
    let router = cluster.router(0).http();
    let ws = cluster.router(0).ws_base();

    let mut on_victim = Vec::new();
    for i in 0..30 {
        let room = format!("f{i:02}");
        if cluster.create_room(&room).await["node"] == "i2" {
            on_victim.push(room);
        }
    }
    assert!(!on_victim.is_empty(), "30 rooms put none on i2");
    let room = on_victim[0].clone();
    let (mut member, welcome) = join(&format!("{ws}/room/{room}")).await;
    assert_eq!(welcome["node"], "i2");
    let old_stream = welcome["stream"].as_str().expect("stream").to_owned();
    for n in 1..=3 {
        say(&mut member, n, &body(&room, n)).await;
    }

    let killed = Instant::now();
    cluster.node_mut(2).proc.kill().await;
    // The member's tunnel ends with its node; it does not come back, so no
    // one touches the victim's rooms until the list below is empty.
    member.expect_close(WAIT).await;
    drop(member);

    eventually(
        FAILOVER,
        "the router lists no room on the killed i2",
        async || listed_on(&router, "i2").await.is_empty(),
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took >= TTL - Duration::from_secs(1),
        "rooms left i2 after {took:?}, before its lease could expire"
    );

    for r in &on_victim {
        let rec = cluster.record(r).await;
        assert_eq!(rec["epoch"], 2, "{rec}");
        assert_eq!(
            rec["node"],
            hrw(&[1, 3], r).as_str(),
            "HRW over i1, i3: {rec}"
        );
    }
    let m = metrics::scrape(&router).await;
    assert_eq!(
        metrics::value(&m, "router_failovers_total", &[]),
        on_victim.len() as f64,
        "one failover per room of i2:\n{m}"
    );

    // The room lives again on its replica, the same stream going on: its
    // history was copied there before any message counted.
    let owner = cluster.record(&room).await["node"].clone();
    // (This member stays until the end, so no `left` reaches the next one.)
    let (_first, welcome) = join(&format!("{ws}/room/{room}")).await;
    assert_eq!(welcome["node"], owner, "{welcome}");
    assert_eq!(welcome["stream"], old_stream.as_str(), "{welcome}");
    assert_eq!(welcome["seq"], 3, "{welcome}");
    let (mut resumed, welcome) =
        join(&format!("{ws}/room/{room}?since=2&stream={old_stream}")).await;
    assert_eq!(welcome["node"], owner, "{welcome}");
    let replayed = next(&mut resumed, "message").await;
    assert_eq!(
        (replayed["seq"].clone(), replayed["body"].clone()),
        (json!(3), body(&room, 3)),
        "{replayed}"
    );
    say(&mut resumed, 4, &body(&room, 4)).await;
}

// ---------------------------------------------------------------------------
// A move interrupted by the death of the old owner.

#[tokio::test]
async fn a_move_interrupted_by_the_old_owners_death_converges_to_one_owner() {
    let mut cluster = Cluster::start(2, 1).await;
    let router = cluster.router(0).http();
    let ws = cluster.router(0).ws_base();
    for i in 0..60 {
        cluster.create_room(&format!("m{i:02}")).await;
    }
    cluster.add_node(3, &[]).await;
    cluster.add_router(&["--admin-token", ADMIN]).await;
    cluster.wait_nodes_seen(3).await;
    let admin = cluster.router(1).http().base().to_owned();

    // Only i1 gives rooms to i3: i2's candidates are deleted, so that after
    // i1's death nothing is left to rebalance.
    let (status, dry) = admin_rebalance(&admin, Some(ADMIN), &json!({"dry_run": true})).await;
    assert_eq!(status, 200, "{dry}");
    for (room, from, to, _) in moves(&dry) {
        assert_eq!(to, "i3", "scale-out moves only onto the new node: {dry}");
        if from == "i2" {
            assert_eq!(router.delete(&format!("/rooms/{room}")).await.status, 204);
        }
    }
    let mut plan = Vec::new();
    eventually(WAIT, "the admin plan moves only i1's rooms", async || {
        let (_, dry) = admin_rebalance(&admin, Some(ADMIN), &json!({"dry_run": true})).await;
        plan = moves(&dry);
        plan.iter().all(|m| m.1 == "i1")
    })
    .await;
    assert!(!plan.is_empty(), "some room of i1 wants i3");
    let (room, _, _, epoch) = plan[0].clone();
    assert_eq!(epoch, 1);

    // A member with history in R.
    let (mut member, welcome) = join(&format!("{ws}/room/{room}")).await;
    assert_eq!(welcome["node"], "i1");
    let old_stream = welcome["stream"].as_str().expect("stream").to_owned();
    for n in 1..=2 {
        say(&mut member, n, &body(&room, n)).await;
    }

    // i3 stops answering, so i1's adopt call hangs with R frozen; i1 dies
    // mid-handoff; i3 resumes (well within its lease).
    assert!(cluster.node(3).proc.signal(Signal::SIGSTOP));
    let stopped_at = Instant::now();
    let task = tokio::spawn({
        let admin = admin.clone();
        async move { admin_rebalance(&admin, Some(ADMIN), &json!({"max_moves": 1})).await }
    });
    let i1 = cluster.node(1).http();
    let frozen = wait_until(WAIT, async || {
        let r = i1.get(&format!("/i1/room/{room}")).await;
        r.status == 503 && r.body["error"] == "room_moving"
    })
    .await;
    if !frozen {
        assert!(cluster.node(3).proc.signal(Signal::SIGCONT));
        panic!(
            "R ({room}) did not freeze on i1 within {WAIT:?} of POST /admin/rebalance {{max_moves: 1}}\n\
             --- i1 ---\n{}\n--- admin router ---\n{}",
            cluster.node(1).proc.log_tail(30),
            cluster.router(1).proc.log_tail(30)
        );
    }
    cluster.node_mut(1).proc.kill().await;
    assert!(cluster.node(3).proc.signal(Signal::SIGCONT));
    let killed = Instant::now();
    // Short enough that i3 keeps its lease (renewed every TTL/10, fenced
    // past TTL minus a margin): the failover then has i2 and i3 to choose.
    let stopped = stopped_at.elapsed();

    let (status, answer) = tokio::time::timeout(WAIT, task)
        .await
        .expect("the admin rebalance answers once i1 is dead")
        .expect("admin task");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["summary"]["moved"], 0, "{answer}");
    assert_eq!(
        answer["summary"]["failed"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    drop(member);

    // Convergence: one live owner, a higher epoch, and every other node
    // points there.
    eventually(FAILOVER, "R and i1's rooms have a live owner", async || {
        listed_on(&router, "i1").await.is_empty()
    })
    .await;
    let rec = cluster.record(&room).await;
    let owner = rec["node"].as_str().expect("node").to_owned();
    assert!(owner == "i2" || owner == "i3", "{rec}");
    assert!(rec["epoch"].as_u64().expect("epoch") > 1, "{rec}");
    assert_eq!(
        owner,
        hrw(&[2, 3], &room),
        "HRW over i2, i3 (i3 was stopped for {stopped:?}): {rec}"
    );
    assert!(
        node_view(&router, "i1").await.is_none(),
        "i1 is gone {:?} after its death",
        killed.elapsed()
    );

    let (mut again, welcome) = join(&format!("{ws}/room/{room}?since=0&stream={old_stream}")).await;
    assert_eq!(welcome["node"], owner.as_str(), "{welcome}");
    if welcome["stream"] == old_stream.as_str() {
        // i3 kept the adopted snapshot: the history is whole.
        assert_eq!(welcome["seq"], 2, "{welcome}");
        for n in 1..=2 {
            let m = next(&mut again, "message").await;
            assert_eq!(m["seq"], n, "{m}");
            assert_eq!(m["body"], body(&room, n), "{m}");
        }
        say(&mut again, 3, &body(&room, 3)).await;
    } else {
        // A new stream: the history is gone, and the client is told.
        assert_eq!(welcome["seq"], 0, "{welcome}");
        let gap = next(&mut again, "error").await;
        assert_eq!(gap["code"], "history_gap", "{gap}");
        say(&mut again, 1, &body(&room, 1)).await;
    }
    let owner_node = cluster
        .nodes
        .iter()
        .find(|n| n.id() == owner)
        .expect("owner in cluster");
    let (_, direct) = join(&format!("{}/{owner}/room/{room}", owner_node.ws_base())).await;
    assert_eq!(direct["node"], owner.as_str(), "{direct}");
    for other in cluster.nodes.iter().filter(|n| n.n != 1 && n.id() != owner) {
        expect_redirect(
            &format!("{}/{}/room/{room}", other.ws_base(), other.id()),
            &format!("/{owner}/room/{room}"),
        )
        .await;
    }

    // Settled: nothing left to move, nothing fails (once the admin router's
    // mirror has the failovers too).
    let admin_http = cluster.router(1).http();
    eventually(WAIT, "the admin router lists no room on i1", async || {
        listed_on(&admin_http, "i1").await.is_empty()
    })
    .await;
    let (status, again) = admin_rebalance(&admin, Some(ADMIN), &json!({})).await;
    assert_eq!(status, 200, "{again}");
    assert!(moves(&again).is_empty(), "{again}");
    assert_eq!(again["plan"]["orphaned"], 0, "{again}");
    assert_eq!(again["summary"]["moved"], 0, "{again}");
    assert_eq!(again["summary"]["failed"], json!([]), "{again}");
    let (status, out) = router_cmd(&cluster, &["rebalance"]).await;
    assert!(status.success(), "router rebalance exited {status}:\n{out}");
    assert!(out.contains("plan: 0 room(s) to move"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
}
