//! The data plane end to end: WebSocket joins through a router's legacy path
//! (`/room/ID`), through a router standing in for the load balancer
//! (`/iN/room/ID`) and straight at the owner node all land in the same room;
//! the refusals of routers and nodes before an upgrade (307, 404, 426, 503);
//! close codes and the tunnel gauge across the proxy; an owner that died.
//! Every case runs against its own cluster of real processes (etcd, three
//! room nodes, two routers).

use std::time::Duration;

use serde_json::json;
use testkit::ws::tungstenite::Error;
use testkit::{Cluster, Http, NodeProc, WsClient, eventually, join, metrics};

/// Bound on any one wait for asynchronous state.
const WAIT: Duration = Duration::from_secs(10);
/// The node's default frame limit (`--max-frame-bytes`).
const MAX_FRAME: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// Helpers.

/// A WebSocket connect to `url` that must be refused: the refusal's status
/// and error code. The code is read from the handshake answer's body when
/// tungstenite has it, else from the same request without the upgrade,
/// whose status must be the same.
async fn ws_refusal(url: &str) -> (u16, String) {
    let status = match testkit::ws::refusal(WsClient::connect(url).await, url) {
        (status, Some(code)) => return (status, code),
        (status, None) => status,
    };
    let plain = Http::new("")
        .get(&url.replacen("ws://", "http://", 1))
        .await;
    assert_eq!(
        plain.status, status,
        "{url} without upgrade: {}",
        plain.text
    );
    (
        status,
        plain.body["error"].as_str().unwrap_or("").to_owned(),
    )
}

/// `router_proxy_connections` of the router behind `http`.
async fn tunnels(http: &Http) -> f64 {
    let text = metrics::scrape(http).await;
    metrics::sum(&text, "router_proxy_connections")
        .unwrap_or_else(|| panic!("no router_proxy_connections in:\n{text}"))
}

/// Creates rooms `{prefix}0`, `{prefix}1`, … until one lands on node `n`
/// and one elsewhere; (the one on `n`, the other).
async fn rooms_on_and_off(cluster: &Cluster, prefix: &str, n: u16) -> (String, String) {
    let (mut on, mut off) = (None, None);
    for i in 0..200 {
        let id = format!("{prefix}{i}");
        let rec = cluster.create_room(&id).await;
        if rec["node"] == format!("i{n}") {
            on.get_or_insert(id);
        } else {
            off.get_or_insert(id);
        }
        if let (Some(on), Some(off)) = (&on, &off) {
            return (on.clone(), off.clone());
        }
    }
    panic!("200 rooms and none on i{n}, or all on it");
}

// ---------------------------------------------------------------------------
// One room, three ways in.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_room_joined_three_ways_is_one_room() {
    let cluster = Cluster::start(3, 2).await;
    let rec = cluster.create_room("hub").await;
    let path = rec["path"].as_str().unwrap().to_owned();
    let owner = cluster.owner("hub").await;

    let (mut legacy, w1) = join(&format!("{}/room/hub?name=b", cluster.router(1).ws_base())).await;
    let (mut sharded, w2) = join(&format!("{}{path}", cluster.router(0).ws_base())).await;
    let (mut direct, w3) = join(&format!("{}{path}", owner.ws_base())).await;
    for w in [&w1, &w2, &w3] {
        assert_eq!(w["room"], "hub");
        assert_eq!(w["node"], rec["node"], "{w}");
        assert_eq!(w["stream"], w1["stream"], "{w}");
        assert_eq!(w["seq"], 0);
    }
    assert!(w1["stream"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        [&w1["members"], &w2["members"], &w3["members"]],
        [&json!(1), &json!(2), &json!(3)]
    );
    let members = [&w1["member"], &w2["member"], &w3["member"]];
    assert!(
        members[0] != members[1] && members[1] != members[2] && members[0] != members[2],
        "member ids differ: {members:?}"
    );

    let body = json!({"text": "héllo", "n": [1, 2.5, null], "nested": {"ok": true}});
    legacy
        .send_json(&json!({"type": "send", "body": body}))
        .await;
    for ws in [&mut legacy, &mut sharded, &mut direct] {
        let msg = ws.recv_until("message", WAIT).await;
        assert_eq!(msg["seq"], 1, "{msg}");
        assert_eq!(msg["room"], "hub");
        assert_eq!(msg["body"], body);
        assert_eq!(msg["from"], w1["member"]);
        assert_eq!(msg["name"], "b");
    }

    // And back: the direct client sends, the proxied ones receive seq 2.
    direct
        .send_json(&json!({"type": "send", "body": "second"}))
        .await;
    for ws in [&mut legacy, &mut sharded, &mut direct] {
        let msg = ws.recv_until("message", WAIT).await;
        assert_eq!((&msg["seq"], &msg["body"]), (&json!(2), &json!("second")));
        assert_eq!(msg["from"], w3["member"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_messages_arrive_everywhere_in_order() {
    let cluster = Cluster::start(3, 2).await;
    let rec = cluster.create_room("stream").await;
    let path = rec["path"].as_str().unwrap().to_owned();
    let owner = cluster.owner("stream").await;
    let (mut sender, _) = join(&format!("{}{path}", cluster.router(0).ws_base())).await;
    let (legacy, _) = join(&format!("{}/room/stream", cluster.router(1).ws_base())).await;
    let (direct, _) = join(&format!("{}{path}", owner.ws_base())).await;

    let body =
        |i: u64| json!({"i": i, "text": format!("message {i}"), "pad": "x".repeat(i as usize)});
    let readers = [legacy, direct].map(|mut ws| {
        tokio::spawn(async move {
            let mut seqs = Vec::new();
            while seqs.len() < 200 {
                let msg = ws.recv_until("message", WAIT).await;
                let seq = msg["seq"].as_u64().expect("seq");
                assert_eq!(msg["body"], body(seq), "body of seq {seq}");
                seqs.push(seq);
            }
            seqs
        })
    });
    for i in 1..=200 {
        sender
            .send_json(&json!({"type": "send", "body": body(i)}))
            .await;
    }
    let mut own = Vec::new();
    while own.len() < 200 {
        let msg = sender.recv_until("message", WAIT).await;
        assert_eq!(msg["body"], body(msg["seq"].as_u64().unwrap()));
        own.push(msg["seq"].as_u64().unwrap());
    }
    let expected: Vec<u64> = (1..=200).collect();
    assert_eq!(own, expected, "the sender's own copies");
    for reader in readers {
        assert_eq!(reader.await.expect("reader"), expected);
    }
}

// ---------------------------------------------------------------------------
// Refusals before the upgrade.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_path_without_upgrade_redirects_to_the_owner() {
    let cluster = Cluster::start(3, 2).await;
    let rec = cluster.create_room("lobby").await;
    let node = rec["node"].as_str().unwrap();
    for router in &cluster.routers {
        let http = router.http();
        let r = http.get("/room/lobby?since=5&name=x").await;
        assert_eq!(r.status, 307, "{}", r.text);
        assert_eq!(
            r.header("location"),
            Some(format!("/{node}/room/lobby?since=5&name=x").as_str())
        );
        let r = http.get("/room/lobby").await;
        assert_eq!(r.status, 307, "{}", r.text);
        assert_eq!(
            r.header("location"),
            Some(format!("/{node}/room/lobby").as_str())
        );
    }

    let http = cluster.router(0).http();
    http.get("/room/nowhere")
        .await
        .assert_error(404, "unknown_room");
    let r = http.get("/room/bad%20id").await;
    r.assert_error(400, "invalid_room_id");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("[A-Za-z0-9_-]")
    );
    // The same refusals for a WebSocket.
    let ws = cluster.router(0).ws_base();
    assert_eq!(
        ws_refusal(&format!("{ws}/room/nowhere")).await,
        (404, "unknown_room".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_what_it_does_not_host() {
    let cluster = Cluster::start(3, 2).await;
    let (mine, theirs) = rooms_on_and_off(&cluster, "r", 1).await;
    let theirs_node = cluster.owner(&theirs).await.id();
    let node = cluster.node(1).http();

    let r = node.get(&format!("/i2/room/{mine}")).await;
    r.assert_error(404, "wrong_instance");
    let r = node.get(&format!("/i1/room/{theirs}?since=3&name=y")).await;
    assert_eq!(r.status, 307, "{}", r.text);
    assert_eq!(
        r.header("location"),
        Some(format!("/{theirs_node}/room/{theirs}?since=3&name=y").as_str())
    );
    let r = node.get(&format!("/i1/room/{theirs}")).await;
    assert_eq!(r.status, 307, "{}", r.text);
    assert_eq!(
        r.header("location"),
        Some(format!("/{theirs_node}/room/{theirs}").as_str())
    );
    node.get("/i1/room/nowhere")
        .await
        .assert_error(404, "unknown_room");
    node.get("/i1/room/bad%20id")
        .await
        .assert_error(400, "invalid_room_id");
    node.get(&format!("/i1/room/{mine}"))
        .await
        .assert_error(426, "upgrade_required");

    // The same answers to a WebSocket handshake.
    let base = cluster.node(1).ws_base();
    assert_eq!(
        ws_refusal(&format!("{base}/i2/room/{mine}")).await,
        (404, "wrong_instance".into())
    );
    assert_eq!(
        ws_refusal(&format!("{base}/i1/room/nowhere")).await,
        (404, "unknown_room".into())
    );
    match WsClient::connect(&format!("{base}/i1/room/{theirs}")).await {
        Err(Error::Http(resp)) => {
            assert_eq!(resp.status(), 307);
            assert_eq!(
                resp.headers().get("location").and_then(|v| v.to_str().ok()),
                Some(format!("/{theirs_node}/room/{theirs}").as_str())
            );
        }
        Err(e) => panic!("expected a 307, got {e}"),
        Ok(_) => panic!("expected a 307, got a connection"),
    }
    let (_ws, welcome) = join(&format!("{base}/i1/room/{mine}")).await;
    assert_eq!(welcome["node"], "i1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_passes_instance_paths_to_the_node() {
    let cluster = Cluster::start(3, 2).await;
    let (on2, elsewhere) = rooms_on_and_off(&cluster, "q", 2).await;
    let http = cluster.router(0).http();

    http.get("/i99/room/x")
        .await
        .assert_error(503, "node_unavailable");
    let ws = cluster.router(0).ws_base();
    assert_eq!(
        ws_refusal(&format!("{ws}/i99/room/x")).await,
        (503, "node_unavailable".into())
    );

    // The node's own answers come back through the router unchanged.
    http.get(&format!("/i2/room/{on2}"))
        .await
        .assert_error(426, "upgrade_required");
    http.get("/i2/room/nowhere")
        .await
        .assert_error(404, "unknown_room");
    let other = cluster.owner(&elsewhere).await.id();
    let r = http.get(&format!("/i2/room/{elsewhere}?name=z")).await;
    assert_eq!(r.status, 307, "{}", r.text);
    assert_eq!(
        r.header("location"),
        Some(format!("/{other}/room/{elsewhere}?name=z").as_str())
    );
    let r = http.get(&format!("/i1/room/{on2}")).await;
    assert_eq!(r.status, 307, "{}", r.text);
    let r = http.get(&format!("/i3/room/{on2}")).await;
    assert_eq!(r.status, 307, "{}", r.text);
    assert_eq!(
        r.header("location"),
        Some(format!("/i2/room/{on2}").as_str())
    );
    let r = http.get(&format!("/i2/room/{elsewhere}")).await;
    assert_eq!(r.status, 307);
}

// ---------------------------------------------------------------------------
// Through the tunnel.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_with_1009_through_the_proxy() {
    let cluster = Cluster::start(3, 2).await;
    let rec = cluster.create_room("big").await;
    let path = rec["path"].as_str().unwrap().to_owned();
    let ws = cluster.router(0).ws_base();
    let (mut big, _) = join(&format!("{ws}{path}")).await;
    let (mut bystander, _) = join(&format!("{ws}/room/big")).await;

    // A frame just under the limit passes.
    let fits = json!({"type": "send", "body": "f".repeat(MAX_FRAME - 100)});
    big.send_json(&fits).await;
    let msg = bystander.recv_until("message", WAIT).await;
    assert_eq!(msg["seq"], 1);
    assert_eq!(msg["body"].as_str().map(str::len), Some(MAX_FRAME - 100));

    let huge = json!({"type": "send", "body": "x".repeat(MAX_FRAME + 1)});
    big.send_json(&huge).await;
    assert_eq!(big.expect_close(WAIT).await, Some(1009));

    // The room goes on without it, and nothing of the frame was delivered.
    let left = bystander.recv_until("left", WAIT).await;
    assert_eq!(left["members"], 1);
    bystander
        .send_json(&json!({"type": "send", "body": "after"}))
        .await;
    let msg = bystander.recv_until("message", WAIT).await;
    assert_eq!((&msg["seq"], &msg["body"]), (&json!(2), &json!("after")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_is_answered_through_the_proxy() {
    let cluster = Cluster::start(3, 2).await;
    let rec = cluster.create_room("bye").await;
    let path = rec["path"].as_str().unwrap().to_owned();
    let owner = cluster.owner("bye").await;
    let (mut watcher, _) = join(&format!("{}{path}", owner.ws_base())).await;
    for (how, url) in [
        ("directly at the node", format!("{}{path}", owner.ws_base())),
        (
            "through the router",
            format!("{}{path}", cluster.router(0).ws_base()),
        ),
        (
            "through the legacy path",
            format!("{}/room/bye", cluster.router(1).ws_base()),
        ),
    ] {
        let (mut ws, _) = join(&url).await;
        assert_eq!(watcher.recv_until("joined", WAIT).await["members"], 2);
        // RFC 6455 5.5.1: the endpoint that receives a Close answers with one.
        ws.close(4000).await;
        assert_eq!(
            ws.expect_close(WAIT).await,
            Some(4000),
            "{how}: a client's close frame is not answered with a close frame"
        );
        assert_eq!(
            watcher.recv_until("left", WAIT).await["members"],
            1,
            "{how}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnel_gauge_follows_proxied_connections() {
    let cluster = Cluster::start(3, 2).await;
    let rec = cluster.create_room("gauge").await;
    let path = rec["path"].as_str().unwrap().to_owned();
    let owner = cluster.owner("gauge").await;
    let (r0, r1) = (cluster.router(0).http(), cluster.router(1).http());
    assert_eq!(tunnels(&r0).await, 0.0);

    let ws = cluster.router(0).ws_base();
    let (mut a, _) = join(&format!("{ws}{path}")).await;
    let (mut b, _) = join(&format!("{ws}/room/gauge")).await;
    // Not through router 0: counted nowhere but on the node.
    let (mut c, _) = join(&format!("{}{path}", owner.ws_base())).await;
    eventually(WAIT, "router 0 counts its two tunnels", async || {
        tunnels(&r0).await == 2.0
    })
    .await;
    assert_eq!(tunnels(&r1).await, 0.0, "router 1 tunnels nothing");
    let node_http = owner.http();
    let owner_id = owner.id();
    let members = async || {
        let text = metrics::scrape(&node_http).await;
        metrics::sum_with(&text, "roomnode_connections", &[("node", &owner_id)])
    };
    assert_eq!(members().await, Some(3.0));

    // A client that closes and goes away (the closing handshake itself is
    // `a_client_close_is_answered_through_the_proxy`).
    a.close(1000).await;
    drop(a);
    eventually(WAIT, "one tunnel closed", async || {
        tunnels(&r0).await == 1.0
    })
    .await;
    // Dropped without a closing handshake.
    drop(b);
    eventually(WAIT, "every tunnel closed", async || {
        tunnels(&r0).await == 0.0
    })
    .await;
    eventually(WAIT, "the node counts one member", async || {
        members().await == Some(1.0)
    })
    .await;
    c.close(1000).await;
    b = join(&format!("{ws}/room/gauge")).await.0;
    eventually(WAIT, "a new tunnel is counted", async || {
        tunnels(&r0).await == 1.0
    })
    .await;
    drop(b);
    eventually(WAIT, "back to zero", async || tunnels(&r0).await == 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owner_answers_503_on_its_path_and_the_room_fails_over() {
    let mut cluster = Cluster::start(3, 2).await;
    let rec = cluster.create_room("orphan").await;
    let path = rec["path"].as_str().unwrap().to_owned();
    let owner_id = rec["node"].as_str().unwrap().to_owned();
    let (mut member, _) = join(&format!("{}/room/orphan", cluster.router(0).ws_base())).await;

    let k = cluster
        .nodes
        .iter()
        .position(|n: &NodeProc| n.id() == owner_id)
        .expect("owner in cluster");
    cluster.nodes[k].proc.kill().await;
    // Its tunnel ends with the process, without a close frame.
    assert_eq!(member.expect_close(WAIT).await, None);
    // Until its lease runs out the router still knows it, but cannot reach it.
    let ws = cluster.router(0).ws_base();
    assert_eq!(
        ws_refusal(&format!("{ws}{path}")).await,
        (502, "upstream_unreachable".into())
    );

    for router in &cluster.routers {
        let http = router.http();
        eventually(WAIT, "the dead node's lease expires", async || {
            let nodes = http.get("/nodes").await.body;
            let ids: Vec<&str> = nodes
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["id"].as_str())
                .collect();
            ids.len() == 2 && !ids.contains(&owner_id.as_str())
        })
        .await;
    }
    assert_eq!(
        ws_refusal(&format!("{ws}{path}")).await,
        (503, "node_unavailable".into())
    );
    // The legacy path finds the room a new owner (failover, epoch 2).
    let (_rejoined, welcome) = join(&format!("{}/room/orphan", cluster.router(1).ws_base())).await;
    assert_ne!(welcome["node"], owner_id.as_str());
    let r = cluster.router(0).http().get("/rooms/orphan").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["node"], welcome["node"]);
    assert_eq!(r.body["epoch"], 2);
    // Rooms on the survivors are unaffected.
    let survivor = cluster
        .nodes
        .iter()
        .find(|n| n.id() != owner_id)
        .unwrap()
        .id();
    let (mut on_survivor, mut i) = (None, 0);
    while on_survivor.is_none() {
        let rec = cluster.create_room(&format!("alive{i}")).await;
        assert_ne!(rec["node"], owner_id.as_str(), "placed on a dead node");
        if rec["node"] == survivor.as_str() {
            on_survivor = Some(rec);
        }
        i += 1;
    }
    let rec = on_survivor.unwrap();
    let (_ws, welcome) = join(&format!("{ws}{}", rec["path"].as_str().unwrap())).await;
    assert_eq!(welcome["node"], survivor.as_str());
}
