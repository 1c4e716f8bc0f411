//! `POST /rooms`: the record and its repeat, generated ids, refused ids and
//! bodies, two routers racing on the same ids, and spread over equal nodes.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::json;
use testkit::inproc::Cluster;
use testkit::{Reply, eventually};

use crate::{ROOM_ID_RULE, WAIT, assert_error, list_all, now_secs, raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_answers_201_with_the_record_then_200_with_the_same() {
    let cluster = Cluster::start(3, 2).await;
    let router = cluster.router(0);
    let before = now_secs();
    let r = router
        .http()
        .post_json("/rooms", &json!({"id": "lobby"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let b = &r.body;
    assert_eq!(b["id"], "lobby");
    let node = b["node"].as_str().expect("node");
    assert!(["i1", "i2", "i3"].contains(&node), "node {node}");
    assert_eq!(b["path"], format!("/{node}/room/lobby"));
    assert_eq!(
        b["ws_url"],
        format!("ws://127.0.0.1:{}/{node}/room/lobby", router.port)
    );
    assert_eq!(b["epoch"], 1);
    assert_eq!(b["private"], false);
    assert!(b.get("token").is_none(), "a public room has no token");
    let created = b["created_at"].as_u64().expect("created_at");
    assert!(
        (before..=now_secs()).contains(&created),
        "created_at {created} is not now"
    );

    let again = router
        .http()
        .post_json("/rooms", &json!({"id": "lobby"}))
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body, r.body, "the repeat returns the same record");

    // The other router knows it too, with its own Host in ws_url.
    let other = cluster.router(1);
    let there = other
        .http()
        .post_json("/rooms", &json!({"id": "lobby"}))
        .await;
    assert_eq!(there.status, 200, "{}", there.text);
    assert_eq!(there.body["node"], node);
    assert_eq!(there.body["created_at"], created);
    assert_eq!(
        there.body["ws_url"],
        format!("ws://127.0.0.1:{}/{node}/room/lobby", other.port)
    );
    let get = other.http().get("/rooms/lobby").await;
    assert_eq!(get.status, 200, "{}", get.text);
    assert_eq!(get.body, there.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_without_an_id_generates_one() {
    let cluster = Cluster::start(3, 2).await;
    let http = cluster.router(0).http();
    let no_body = raw(&http, Method::POST, "/rooms", &[], None).await;
    let empty = http.post_json("/rooms", &json!({})).await;
    let mut ids = BTreeSet::new();
    for r in [&no_body, &empty] {
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.body["id"].as_str().expect("generated id");
        assert!(
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "generated id {id:?} breaks the rule"
        );
        assert_eq!(
            r.body["path"],
            format!("/{}/room/{id}", r.body["node"].as_str().unwrap())
        );
        assert_eq!(r.body["epoch"], 1);
        let get = http.get(&format!("/rooms/{id}")).await;
        assert_eq!(get.status, 200, "the generated room exists: {}", get.text);
        ids.insert(id.to_owned());
    }
    assert_eq!(ids.len(), 2, "two creations, two ids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_bad_ids_and_bodies() {
    let cluster = Cluster::start(3, 2).await;
    let http = cluster.router(0).http();
    for bad in ["a b", "", &"x".repeat(65), "é", "a/b", "a.b"] {
        let r = http.post_json("/rooms", &json!({"id": bad})).await;
        assert_error(&r, 400, "invalid_room_id");
        assert!(
            r.body["message"].as_str().unwrap().contains(ROOM_ID_RULE),
            "message for {bad:?} does not name the rule: {}",
            r.text
        );
    }
    // 64 characters is still fine.
    let longest = "y".repeat(64);
    let r = http.post_json("/rooms", &json!({"id": longest})).await;
    assert_eq!(r.status, 201, "{}", r.text);

    for body in [
        "{\"id\":",
        "not json",
        "[1,2]",
        "{\"id\": 5}",
        "{\"private\": \"yes\"}",
    ] {
        let r = raw(&http, Method::POST, "/rooms", &[], Some(body)).await;
        assert_error(&r, 400, "invalid_body");
    }
    let r = http
        .post_json("/rooms", &json!({"id": "typo", "privat": true}))
        .await;
    assert_error(&r, 400, "invalid_body");
    let r = http.get("/rooms/typo").await;
    assert_error(&r, 404, "unknown_room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routers_creating_the_same_rooms_agree_on_one_owner() {
    let cluster = Cluster::start(3, 2).await;
    let (a, b) = (cluster.router(0).http(), cluster.router(1).http());
    let ids: Vec<String> = (0..30).map(|i| format!("race-{i:02}")).collect();
    // Every id from both routers at once, all ids at once.
    let answers: Vec<Reply> = join_all(ids.iter().map(|id| {
        let body = json!({ "id": id });
        let (a, b) = (&a, &b);
        async move {
            let (ra, rb) = tokio::join!(a.post_json("/rooms", &body), b.post_json("/rooms", &body));
            [ra, rb]
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    for (id, pair) in ids.iter().zip(answers.chunks(2)) {
        let mut statuses = [pair[0].status, pair[1].status];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 201],
            "{id}: {} / {}",
            pair[0].text,
            pair[1].text
        );
        for field in ["id", "node", "path", "epoch", "created_at"] {
            assert_eq!(pair[0].body[field], pair[1].body[field], "{id}: {field}");
        }
    }
    for (id, pair) in ids.iter().zip(answers.chunks(2)) {
        let (ga, gb) = (
            a.get(&format!("/rooms/{id}")).await,
            b.get(&format!("/rooms/{id}")).await,
        );
        assert_eq!((ga.status, gb.status), (200, 200), "{id}");
        assert_eq!(ga.body["node"], pair[0].body["node"], "{id}");
        assert_eq!(gb.body["node"], pair[0].body["node"], "{id}");
        assert_eq!(ga.body["epoch"], 1);
        assert_eq!(gb.body["created_at"], ga.body["created_at"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_spread_over_equal_nodes_and_counts_agree() {
    let cluster = Cluster::start(3, 2).await;
    let http = cluster.router(0).http();
    let answers: Vec<Reply> = futures_util::stream::iter(0..300)
        .map(|i| {
            let http = http.clone();
            async move {
                http.post_json("/rooms", &json!({"id": format!("s{i:03}")}))
                    .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut placed: BTreeMap<String, u64> = BTreeMap::new();
    for r in &answers {
        assert_eq!(r.status, 201, "{}", r.text);
        *placed
            .entry(r.body["node"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(placed.len(), 3, "every node gets rooms: {placed:?}");
    for (node, n) in &placed {
        assert!((60..=140).contains(n), "{node} got {n} of 300: {placed:?}");
    }

    for router in &cluster.routers {
        let http = router.http();
        eventually(WAIT, "GET /nodes counts every room", async || {
            let nodes = http.get("/nodes").await.body;
            let counts: BTreeMap<String, u64> = nodes
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| {
                    (
                        n["id"].as_str().unwrap().to_owned(),
                        n["rooms"].as_u64().unwrap(),
                    )
                })
                .collect();
            counts == placed
        })
        .await;
    }
    let mut total = 0;
    for (node, n) in &placed {
        let rooms = list_all(&http, Some(node), 37).await;
        assert_eq!(rooms.len() as u64, *n, "GET /rooms?node={node}");
        assert!(rooms.iter().all(|r| r["node"] == node.as_str()));
        total += rooms.len();
    }
    assert_eq!(total, 300);
}
