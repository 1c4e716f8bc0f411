//! Moving rooms off nodes end to end (SPEC "Command line", README
//! "Operations"): `router drain iN` empties a node live, members following
//! `moved` lose nothing; a node killed with SIGKILL has its rooms failed over
//! by the routers' reconciler without anyone asking; a handoff interrupted by
//! the death of the old owner converges to exactly one owner; and
//! `POST /admin/rebalance` plans and moves with its auth and metrics.
//!
//! Each test starts its own cluster on free ports. Every wait is bounded
//! (`eventually` or a bounded receive); nothing sleeps to synchronise.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;
use proto::placement::Placement;
use proto::{InstanceId, RoomId};
use serde_json::{Value, json};
use testkit::cluster::TEST_LEASE_TTL;
use testkit::ws::tungstenite::Error;
use testkit::{Cluster, Http, WsClient, eventually, join, next, wait_until};
use tokio::time::Instant;

/// Bound on any one frame, handshake or state change.
const WAIT: Duration = Duration::from_secs(10);

/// The nodes' lease TTL in test clusters.
const TTL: Duration = Duration::from_secs(TEST_LEASE_TTL);

/// Bound on a dead node's rooms having a new owner: the TTL plus slack for
/// the reconciler (every second) and the mirrors.
const FAILOVER: Duration = Duration::from_secs(TEST_LEASE_TTL + 10);

/// Bound on one `router` command.
const COMMAND: Duration = Duration::from_secs(30);

/// The admin token of routers started with `--admin-token`.
const ADMIN: &str = "admin-token-0123456789";

// ---------------------------------------------------------------------------
// Helpers.

/// `c` (the room's only member) sends `body` and gets it back as `seq`.
async fn say(c: &mut WsClient, seq: u64, body: &Value) {
    c.send_json(&json!({"type": "send", "body": body})).await;
    let m = next(c, "message").await;
    assert_eq!(m["seq"], seq, "{m}");
    assert_eq!(&m["body"], body, "{m}");
}

/// The body of message `n` in `room`.
fn body(room: &str, n: u64) -> Value {
    json!({"room": room, "n": n})
}

/// Runs `router <args>` against the cluster until it exits; its exit status
/// and output.
async fn router_cmd(cluster: &Cluster, args: &[&str]) -> (ExitStatus, String) {
    cluster.run_router_command(args, COMMAND).await
}

/// A room's record from router `http` (200 asserted).
async fn record(http: &Http, room: &str) -> Value {
    let r = http.get(&format!("/rooms/{room}")).await;
    assert_eq!(r.status, 200, "GET /rooms/{room}: {}", r.text);
    r.body
}

/// The ids of the rooms router `http` lists on `node` (one page of 1000).
async fn listed_on(http: &Http, node: &str) -> Vec<String> {
    let r = http.get(&format!("/rooms?node={node}&limit=1000")).await;
    assert_eq!(r.status, 200, "GET /rooms?node={node}: {}", r.text);
    assert!(r.body.get("next").is_none(), "one page: {}", r.text);
    r.body["rooms"]
        .as_array()
        .expect("rooms array")
        .iter()
        .map(|v| v["id"].as_str().expect("room id").to_owned())
        .collect()
}

/// The entry for `node` in router `http`'s `GET /nodes`, if listed.
async fn node_view(http: &Http, node: &str) -> Option<Value> {
    let r = http.get("/nodes").await;
    assert_eq!(r.status, 200, "GET /nodes: {}", r.text);
    r.body
        .as_array()
        .expect("GET /nodes is an array")
        .iter()
        .find(|n| n["id"] == node)
        .cloned()
}

/// The value of sample `name` (exact metric name) whose labels include
/// `label` (e.g. `node="i1"`, or "" for any); 0 when there is none.
fn metric(text: &str, name: &str, label: &str) -> f64 {
    let mut total = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric_name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l),
            None => (series, ""),
        };
        if metric_name == name && labels.contains(label) {
            total += value.parse::<f64>().expect("numeric sample");
        }
    }
    total
}

/// `GET /metrics` of `http` as text.
async fn metrics(http: &Http) -> String {
    let r = http.get("/metrics").await;
    assert_eq!(r.status, 200, "GET /metrics: {}", r.text);
    r.text
}

/// `POST /admin/rebalance` on `base` with `body`, with `bearer` if given;
/// status and JSON answer.
async fn admin_rebalance(base: &str, bearer: Option<&str>, body: &Value) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .expect("HTTP client");
    let mut req = client.post(format!("{base}/admin/rebalance")).json(body);
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {base}/admin/rebalance: no answer: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("admin answer body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("admin answer is not JSON ({e}): {status} {text}"));
    (status, value)
}

/// The `moves` of an admin answer's plan, as (room, from, to, epoch).
fn moves(answer: &Value) -> Vec<(String, String, String, u64)> {
    answer["plan"]["moves"]
        .as_array()
        .unwrap_or_else(|| panic!("plan.moves in {answer}"))
        .iter()
        .map(|m| {
            (
                m["room"].as_str().expect("room").to_owned(),
                m["from"].as_str().expect("from").to_owned(),
                m["to"].as_str().expect("to").to_owned(),
                m["epoch"].as_u64().expect("epoch"),
            )
        })
        .collect()
}

/// The HRW owner of `room` among equal-weight nodes `ids`.
fn hrw(ids: &[u16], room: &str) -> String {
    let placement = Placement::new(
        ids.iter()
            .map(|&n| (InstanceId::new(n).expect("instance id"), 1.0)),
    );
    let room: RoomId = room.parse().expect("room id");
    placement.owner(&room).expect("some node").to_string()
}

/// A WebSocket join at `url` must be refused with a 307 to `location`.
async fn expect_redirect(url: &str, location: &str) {
    match WsClient::connect(url).await {
        Err(Error::Http(resp)) => {
            assert_eq!(resp.status(), 307, "joining {url}: {resp:?}");
            let got = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert_eq!(got, location, "307 from {url}");
        }
        Err(e) => panic!("joining {url}: expected a 307, got {e}"),
        Ok(mut c) => {
            let first = c.recv_json(WAIT).await;
            panic!("joining {url}: expected a 307 to {location}, got a connection: {first}")
        }
    }
}

// ---------------------------------------------------------------------------
// Drain.

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
        let rec = record(&router, room).await;
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
        let rec = record(&router, room).await;
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
    let m = metrics(&cluster.node(2).http()).await;
    assert_eq!(
        metric(&m, "roomnode_rooms_moved_total", "node=\"i2\""),
        on_i2.len() as f64,
        "{m}"
    );
    assert_eq!(metric(&m, "roomnode_moves_failed_total", ""), 0.0, "{m}");
    assert_eq!(
        metric(&m, "roomnode_move_duration_seconds_count", ""),
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
        let rec = record(&router, &room).await;
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

// ---------------------------------------------------------------------------
// Failover.

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
        let rec = record(&router, r).await;
        assert_eq!(rec["epoch"], 2, "{rec}");
        assert_eq!(
            rec["node"],
            hrw(&[1, 3], r).as_str(),
            "HRW over i1, i3: {rec}"
        );
    }
    let m = metrics(&router).await;
    assert_eq!(
        metric(&m, "router_failovers_total", ""),
        on_victim.len() as f64,
        "one failover per room of i2:\n{m}"
    );

    // The room lives again, on a new stream: its history died with i2.
    let owner = record(&router, &room).await["node"].clone();
    // (This member stays until the end, so no `left` reaches the next one.)
    let (_first, welcome) = join(&format!("{ws}/room/{room}")).await;
    assert_eq!(welcome["node"], owner, "{welcome}");
    assert_ne!(welcome["stream"], old_stream.as_str(), "{welcome}");
    assert_eq!(welcome["seq"], 0, "{welcome}");
    let (mut resumed, welcome) =
        join(&format!("{ws}/room/{room}?since=2&stream={old_stream}")).await;
    assert_eq!(welcome["node"], owner, "{welcome}");
    let gap = next(&mut resumed, "error").await;
    assert_eq!(gap["code"], "history_gap", "{gap}");
    say(&mut resumed, 1, &body(&room, 1)).await;
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
    let rec = record(&router, &room).await;
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

// ---------------------------------------------------------------------------
// POST /admin/rebalance.

#[tokio::test]
async fn admin_rebalance_needs_its_token_plans_and_moves() {
    let mut cluster = Cluster::start(2, 1).await;
    let router = cluster.router(0).http();
    let (status, refused) = admin_rebalance(router.base(), Some(ADMIN), &json!({})).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"], "admin_disabled", "{refused}");

    let mut before = BTreeMap::new();
    for i in 0..30 {
        let room = format!("a{i:02}");
        let rec = cluster.create_room(&room).await;
        before.insert(room, rec["node"].as_str().expect("node").to_owned());
    }
    cluster.add_node(3, &[]).await;
    cluster.add_router(&["--admin-token", ADMIN]).await;
    cluster.wait_nodes_seen(3).await;
    let admin = cluster.router(1).http().base().to_owned();

    let (status, refused) = admin_rebalance(&admin, None, &json!({"dry_run": true})).await;
    assert_eq!(status, 401, "no bearer: {refused}");
    let (status, refused) = admin_rebalance(
        &admin,
        Some("wrong-token-0123456789"),
        &json!({"dry_run": true}),
    )
    .await;
    assert_eq!(status, 403, "wrong bearer: {refused}");

    // A dry run plans moves onto i3 only and changes nothing.
    let (status, dry) = admin_rebalance(&admin, Some(ADMIN), &json!({"dry_run": true})).await;
    assert_eq!(status, 200, "{dry}");
    assert!(dry.get("summary").is_none(), "{dry}");
    let plan = moves(&dry);
    assert!(!plan.is_empty(), "adding i3 gives it rooms: {dry}");
    let expected: BTreeSet<String> = before
        .iter()
        .filter(|(r, _)| hrw(&[1, 2, 3], r) == "i3")
        .map(|(r, _)| r.clone())
        .collect();
    assert_eq!(
        plan.iter().map(|m| m.0.clone()).collect::<BTreeSet<_>>(),
        expected,
        "{dry}"
    );
    for (room, from, to, epoch) in &plan {
        assert_eq!(to, "i3");
        assert_eq!(from, &before[room]);
        assert_eq!(*epoch, 1);
    }
    assert_eq!(dry["plan"]["before"]["i3"], 0, "{dry}");
    assert_eq!(dry["plan"]["after"]["i3"], plan.len(), "{dry}");
    for (room, node) in &before {
        let rec = record(&router, room).await;
        assert_eq!(rec["node"], node.as_str(), "dry run moved {room}: {rec}");
        assert_eq!(rec["epoch"], 1, "{rec}");
    }
    let from_i1 = plan.iter().filter(|m| m.1 == "i1").count() as f64;
    let from_i2 = plan.iter().filter(|m| m.1 == "i2").count() as f64;
    for (n, label) in [(1, "node=\"i1\""), (2, "node=\"i2\"")] {
        let m = metrics(&cluster.node(n).http()).await;
        assert_eq!(metric(&m, "roomnode_rooms_moved_total", label), 0.0, "{m}");
    }

    // The real run moves exactly the plan.
    let (status, run) = admin_rebalance(&admin, Some(ADMIN), &json!({})).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["summary"]["moved"], plan.len(), "{run}");
    assert_eq!(run["summary"]["failed"], json!([]), "{run}");
    // The nodes wrote the moves; routers see them through their watch.
    for (room, from, _, _) in &plan {
        eventually(
            WAIT,
            &format!("router 0 has {room} on i3 at epoch 2"),
            async || {
                let rec = record(&router, room).await;
                rec["node"] == "i3" && rec["epoch"] == 2
            },
        )
        .await;
        let (_, welcome) = join(&format!("{}/room/{room}", cluster.router(0).ws_base())).await;
        assert_eq!(welcome["node"], "i3", "{room} was on {from}: {welcome}");
    }
    for (room, node) in &before {
        if !plan.iter().any(|m| &m.0 == room) {
            let rec = record(&router, room).await;
            assert_eq!(rec["node"], node.as_str(), "{room} was not planned: {rec}");
            assert_eq!(rec["epoch"], 1, "{rec}");
        }
    }

    // A second dry run plans nothing more (bounded wait: the admin router
    // learns of the nodes' writes through its watch, see the report).
    let mut dry = Value::Null;
    eventually(WAIT, "a second dry run plans no move", async || {
        let (status, answer) =
            admin_rebalance(&admin, Some(ADMIN), &json!({"dry_run": true})).await;
        assert_eq!(status, 200, "{answer}");
        dry = answer;
        moves(&dry).is_empty()
    })
    .await;
    assert_eq!(dry["plan"]["before"]["i3"], plan.len(), "{dry}");
    assert_eq!(dry["plan"]["after"]["i3"], plan.len(), "{dry}");

    let m1 = metrics(&cluster.node(1).http()).await;
    assert_eq!(
        metric(&m1, "roomnode_rooms_moved_total", "node=\"i1\""),
        from_i1,
        "{m1}"
    );
    let m2 = metrics(&cluster.node(2).http()).await;
    assert_eq!(
        metric(&m2, "roomnode_rooms_moved_total", "node=\"i2\""),
        from_i2,
        "{m2}"
    );
    for m in [&m1, &m2] {
        assert_eq!(metric(m, "roomnode_moves_failed_total", ""), 0.0, "{m}");
    }
}
