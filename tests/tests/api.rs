//! The router's HTTP API end to end: `POST/GET/DELETE /rooms`, pagination,
//! placement spread, the admin token, private rooms and their join tokens,
//! `GET /nodes`, health, readiness and metrics. Every case runs against its
//! own cluster of real processes (etcd, three room nodes, two routers).
//!
//! Lists and node counts come from each router's mirror of etcd, which
//! follows writes through a watch: those are awaited with `eventually`.
//! Single-room reads and writes are asserted at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use testkit::ws::tungstenite::Error;
use testkit::{Cluster, Http, Reply, WsClient, eventually, free_port};

/// Bound on any one wait for asynchronous state.
const WAIT: Duration = Duration::from_secs(10);
/// The admin token of the router that has one.
const ADMIN_TOKEN: &str = "admin-token-0123456789";
/// The rule every refused room id must name.
const ROOM_ID_RULE: &str = "[A-Za-z0-9_-]";

// ---------------------------------------------------------------------------
// Helpers.

/// Any request with a raw body and extra headers, which [`Http`] cannot send.
async fn raw(
    http: &Http,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .expect("HTTP client");
    let mut req = client.request(method.clone(), http.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("read body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| {
        if text.is_empty() {
            Value::Null
        } else {
            Value::String(text.clone())
        }
    });
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// Asserts `reply` is the error `code` with `status`.
#[track_caller]
fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (status, Some(code)),
        "expected {status} {code}, got {} {}",
        reply.status,
        reply.text
    );
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error without a message: {}",
        reply.text
    );
}

/// A WebSocket connect to `url` that the server must refuse: the refusal's
/// status and error code. The code comes from the handshake answer's body
/// when tungstenite has read it, else from the same request without the
/// upgrade (the node checks tokens before it asks for an upgrade), whose
/// status must then agree.
async fn ws_refusal(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let status = match testkit::ws::refusal(WsClient::connect_with_headers(url, headers).await, url)
    {
        (status, Some(code)) => return (status, code),
        (status, None) => status,
    };
    let http_url = url.replacen("ws://", "http://", 1);
    let plain = raw(&Http::new(""), Method::GET, &http_url, headers, None).await;
    assert_eq!(
        plain.status, status,
        "{url}: the plain GET is refused otherwise: {}",
        plain.text
    );
    (
        status,
        plain.body["error"].as_str().unwrap_or("").to_owned(),
    )
}

/// Joins `url`; the welcome frame.
async fn join(url: &str, headers: &[(&str, &str)]) -> (WsClient, Value) {
    let mut ws = WsClient::connect_with_headers(url, headers)
        .await
        .unwrap_or_else(|e| panic!("join {url}: {e}"));
    let welcome = ws.recv_json(WAIT).await;
    assert_eq!(welcome["type"], "welcome", "first frame of {url}");
    (ws, welcome)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Every room of `GET /rooms` (optionally of one node), following `next`
/// with pages of `limit`; checks each page's order and `next`.
async fn list_all(http: &Http, node: Option<&str>, limit: usize) -> Vec<Value> {
    let filter = node.map(|n| format!("&node={n}")).unwrap_or_default();
    let mut rooms = Vec::new();
    let mut after = String::new();
    loop {
        let page = http
            .get(&format!("/rooms?limit={limit}{filter}{after}"))
            .await;
        assert_eq!(page.status, 200, "GET /rooms: {}", page.text);
        let batch = page.body["rooms"].as_array().expect("rooms array").clone();
        assert!(batch.len() <= limit, "page longer than {limit}");
        let ids: Vec<&str> = batch.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert!(ids.is_sorted(), "page not in id order: {ids:?}");
        rooms.extend(batch.iter().cloned());
        match page.body.get("next") {
            None => return rooms,
            Some(next) => {
                assert_eq!(
                    Some(next),
                    batch.last().map(|r| &r["id"]),
                    "next is the last id"
                );
                after = format!("&after={}", next.as_str().unwrap());
            }
        }
    }
}

/// The sample value of the metric line that starts with `series ` in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Creates a private room through router 0; its record (with `token`).
async fn create_private(cluster: &Cluster, id: &str) -> Value {
    let r = cluster
        .router(0)
        .http()
        .post_json("/rooms", &json!({"id": id, "private": true}))
        .await;
    assert_eq!(r.status, 201, "POST private {id}: {}", r.text);
    assert_eq!(r.body["private"], true);
    assert!(
        r.body["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("v1.")),
        "private room without a token: {}",
        r.text
    );
    r.body
}

// ---------------------------------------------------------------------------
// POST /rooms.

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

// ---------------------------------------------------------------------------
// GET /rooms, GET /rooms/{id}.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_list_pages_through_every_room_in_id_order() {
    let cluster = Cluster::start(3, 2).await;
    let http = cluster.router(0).http();
    // Created in reverse so that id order is not creation order.
    let ids: Vec<String> = (0..25).rev().map(|i| format!("pg-{i:02}")).collect();
    for id in &ids {
        cluster.create_room(id).await;
    }
    let expected: Vec<String> = ids.iter().rev().cloned().collect();
    eventually(WAIT, "the router lists all 25 rooms", async || {
        http.get("/rooms?limit=1000").await.body["rooms"]
            .as_array()
            .map(Vec::len)
            == Some(25)
    })
    .await;

    let first = http.get("/rooms?limit=10").await;
    assert_eq!(first.status, 200, "{}", first.text);
    let first_ids: Vec<&str> = first.body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(first_ids, expected[..10]);
    assert_eq!(first.body["next"], "pg-09");
    let room = &first.body["rooms"][0];
    assert_eq!(
        room["path"],
        format!("/{}/room/pg-00", room["node"].as_str().unwrap())
    );
    assert_eq!(room["epoch"], 1);

    let all = list_all(&http, None, 10).await;
    let all_ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(all_ids, expected, "pages in order, no gap, no duplicate");
    let last = http.get("/rooms?limit=10&after=pg-19").await;
    assert_eq!(last.body["rooms"].as_array().unwrap().len(), 5);
    assert!(
        last.body.get("next").is_none(),
        "last page has no next: {}",
        last.text
    );

    let mut union = BTreeSet::new();
    for n in 1..=3 {
        let node = format!("i{n}");
        let owned: BTreeSet<&str> = all
            .iter()
            .filter(|r| r["node"] == node.as_str())
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        let listed = list_all(&http, Some(&node), 4).await;
        let listed: BTreeSet<String> = listed
            .iter()
            .map(|r| {
                assert_eq!(r["node"], node.as_str(), "node filter leaks {r}");
                r["id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(listed, owned.iter().map(|s| s.to_string()).collect());
        union.extend(listed);
    }
    assert_eq!(union.len(), 25);

    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "node=bad",
        "node=i0",
        "after=a%20b",
    ] {
        let r = http.get(&format!("/rooms?{bad}")).await;
        assert_eq!(r.status, 400, "GET /rooms?{bad}: {}", r.text);
        assert!(r.body["error"].is_string(), "{bad}: {}", r.text);
    }
    assert_eq!(http.get("/rooms?limit=1000").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_room_refuses_unknown_and_bad_ids() {
    let cluster = Cluster::start(3, 2).await;
    let http = cluster.router(1).http();
    assert_error(&http.get("/rooms/nobody-here").await, 404, "unknown_room");
    let r = http.get("/rooms/bad%20id").await;
    assert_error(&r, 400, "invalid_room_id");
    assert!(r.body["message"].as_str().unwrap().contains(ROOM_ID_RULE));
    assert_error(
        &http.delete("/rooms/bad%20id").await,
        400,
        "invalid_room_id",
    );
    assert_error(
        &http.delete("/rooms/nobody-here").await,
        404,
        "unknown_room",
    );
}

// ---------------------------------------------------------------------------
// DELETE /rooms/{id} and the admin token.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_closes_the_room_and_forgets_it() {
    let cluster = Cluster::start(3, 2).await;
    cluster.create_room("doomed").await;
    let base = cluster.router(0).ws_base();
    let (mut member, _) = join(&format!("{base}/room/doomed"), &[]).await;
    let (mut other, _) = join(&format!("{}/room/doomed", cluster.router(1).ws_base()), &[]).await;

    let http = cluster.router(0).http();
    let r = http.delete("/rooms/doomed").await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.text, "", "204 has no body");
    // At once on the router that deleted it is
    // `a_deleted_room_is_gone_at_once_where_it_was_deleted`.
    eventually(WAIT, "GET answers 404 after the DELETE", async || {
        http.get("/rooms/doomed").await.status == 404
    })
    .await;
    assert_error(&http.get("/rooms/doomed").await, 404, "unknown_room");
    assert_error(&http.delete("/rooms/doomed").await, 404, "unknown_room");

    for ws in [&mut member, &mut other] {
        let err = ws.recv_until("error", WAIT).await;
        assert_eq!(err["code"], "room_closed", "{err}");
        assert_eq!(ws.expect_close(WAIT).await, Some(1000));
    }
    let http1 = cluster.router(1).http();
    eventually(WAIT, "router 1 forgets the room", async || {
        http1.get("/rooms/doomed").await.status == 404
    })
    .await;
}

/// Read-your-writes: once `DELETE` answered 204, the same router must not
/// serve the room any more. Its reads come from a mirror fed by an etcd
/// watch, so a stale answer shows only sometimes; fifty rounds make a miss
/// all but certain to show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_room_is_gone_at_once_where_it_was_deleted() {
    let cluster = Cluster::start(3, 2).await;
    let http = cluster.router(0).http();
    for i in 0..50 {
        let id = format!("rw{i}");
        cluster.create_room(&id).await;
        assert_eq!(http.get(&format!("/rooms/{id}")).await.status, 200);
        let r = http.delete(&format!("/rooms/{id}")).await;
        assert_eq!(r.status, 204, "{}", r.text);
        let r = http.get(&format!("/rooms/{id}")).await;
        assert_eq!(
            r.status, 404,
            "round {i}: GET /rooms/{id} right after its DELETE answered 204 on the same router: {}",
            r.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_guards_deletion_and_minting() {
    let mut cluster = Cluster::start(3, 2).await;
    cluster.add_router(&["--admin-token", ADMIN_TOKEN]).await;
    let guarded = cluster.router(2).http();
    cluster.create_room("guarded").await;
    create_private(&cluster, "vault").await;

    let wrong = ("authorization", "Bearer not-the-admin-token");
    let right_value = format!("Bearer {ADMIN_TOKEN}");
    let right = ("authorization", right_value.as_str());
    let basic = ("authorization", "Basic YWRtaW46YWRtaW4=");

    let r = raw(&guarded, Method::DELETE, "/rooms/guarded", &[], None).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.body["error"].is_string(), "{}", r.text);
    let r = raw(&guarded, Method::DELETE, "/rooms/guarded", &[basic], None).await;
    assert_eq!(r.status, 401, "a non-bearer scheme: {}", r.text);
    let r = raw(&guarded, Method::DELETE, "/rooms/guarded", &[wrong], None).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        cluster.router(0).http().get("/rooms/guarded").await.status,
        200,
        "still there"
    );

    let mint = Some("{\"ttl_secs\": 60}");
    let r = raw(&guarded, Method::POST, "/rooms/vault/tokens", &[], mint).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = raw(
        &guarded,
        Method::POST,
        "/rooms/vault/tokens",
        &[wrong],
        mint,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = raw(
        &guarded,
        Method::POST,
        "/rooms/vault/tokens",
        &[right],
        mint,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body["token"].is_string());

    // Reads and creation stay open.
    assert_eq!(guarded.get("/rooms/guarded").await.status, 200);
    assert_eq!(
        guarded
            .post_json("/rooms", &json!({"id": "open"}))
            .await
            .status,
        201
    );

    let r = raw(&guarded, Method::DELETE, "/rooms/guarded", &[right], None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        guarded.get("/rooms/guarded").await.status,
        404,
        "deleted with the right token"
    );
}

// ---------------------------------------------------------------------------
// Private rooms.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_rooms_need_a_valid_token_for_that_room() {
    let cluster = Cluster::start(3, 2).await;
    let p1 = create_private(&cluster, "p1").await;
    let p2 = create_private(&cluster, "p2").await;
    let url = p1["ws_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&cluster.router(0).ws_base()), "{url}");
    let token = p1["token"].as_str().unwrap();

    assert_eq!(ws_refusal(&url, &[]).await, (401, "token_required".into()));

    let (mut ws, welcome) = join(&format!("{url}?token={token}"), &[]).await;
    assert_eq!(welcome["room"], "p1");
    assert_eq!(welcome["node"], p1["node"]);

    // Flip one character of the signature.
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig: Vec<u8> = sig.bytes().collect();
    sig[0] = if sig[0] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{head}.{}", String::from_utf8(sig).unwrap());
    assert_eq!(
        ws_refusal(&format!("{url}?token={tampered}"), &[]).await,
        (401, "invalid_token".into())
    );
    assert_eq!(
        ws_refusal(&format!("{url}?token=garbage"), &[]).await,
        (401, "invalid_token".into())
    );

    let other = p2["token"].as_str().unwrap();
    assert_eq!(
        ws_refusal(&format!("{url}?token={other}"), &[]).await,
        (403, "wrong_room".into())
    );

    // The header instead of the query, at the node itself too.
    let bearer = format!("Bearer {token}");
    let (_ws2, welcome) = join(&url, &[("authorization", &bearer)]).await;
    assert_eq!(welcome["room"], "p1");
    assert_eq!(welcome["members"], 2);
    let owner = cluster.owner("p1").await;
    let direct = format!("{}{}", owner.ws_base(), p1["path"].as_str().unwrap());
    assert_eq!(
        ws_refusal(&direct, &[]).await,
        (401, "token_required".into())
    );
    let (_ws3, welcome) = join(&direct, &[("authorization", &bearer)]).await;
    assert_eq!(welcome["members"], 3);
    let joined = ws.recv_until("joined", WAIT).await;
    assert_eq!(joined["members"], 2);

    // The legacy path goes through the same check.
    let legacy = format!("{}/room/p1", cluster.router(1).ws_base());
    assert_eq!(
        ws_refusal(&legacy, &[]).await,
        (401, "token_required".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minted_token_binds_its_name() {
    let cluster = Cluster::start(3, 2).await;
    let p1 = create_private(&cluster, "p1").await;
    let url = p1["ws_url"].as_str().unwrap().to_owned();
    let http = cluster.router(1).http();
    let before = now_secs();
    let r = http
        .post_json("/rooms/p1/tokens", &json!({"name": "zed", "ttl_secs": 60}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let minted = r.body["token"].as_str().expect("token").to_owned();
    let expires = r.body["expires_at"].as_u64().expect("expires_at");
    assert!(
        (before + 60..=now_secs() + 60).contains(&expires),
        "expires_at {expires} is not now + 60"
    );

    let (mut watcher, _) = join(
        &format!("{url}?token={}", p1["token"].as_str().unwrap()),
        &[],
    )
    .await;
    let (mut zed, welcome) = join(&format!("{url}?token={minted}&name=other"), &[]).await;
    assert_eq!(welcome["room"], "p1");
    let joined = watcher.recv_until("joined", WAIT).await;
    assert_eq!(joined["name"], "zed", "the token's name wins: {joined}");
    assert_eq!(joined["member"], welcome["member"]);

    zed.send_json(&json!({"type": "send", "body": "hi"})).await;
    for ws in [&mut watcher, &mut zed] {
        let msg = ws.recv_until("message", WAIT).await;
        assert_eq!(
            (&msg["name"], &msg["body"], &msg["seq"]),
            (&json!("zed"), &json!("hi"), &json!(1))
        );
    }

    // Bad mint requests.
    let r = http
        .post_json("/rooms/p1/tokens", &json!({"ttl_secs": 0}))
        .await;
    assert_eq!(r.status, 400, "ttl 0: {}", r.text);
    let r = http
        .post_json("/rooms/p1/tokens", &json!({"name": "n".repeat(65)}))
        .await;
    assert_eq!(r.status, 400, "name over 64: {}", r.text);
    let r = http
        .post_json("/rooms/p1/tokens", &json!({"nom": "typo"}))
        .await;
    assert_error(&r, 400, "invalid_body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_token_expires() {
    let cluster = Cluster::start(3, 2).await;
    let p1 = create_private(&cluster, "p1").await;
    let url = p1["ws_url"].as_str().unwrap().to_owned();
    let r = cluster
        .router(0)
        .http()
        .post_json("/rooms/p1/tokens", &json!({"ttl_secs": 1}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let expires = r.body["expires_at"].as_u64().unwrap();
    assert!(expires <= now_secs() + 1, "expires_at {expires}");
    let with_token = format!("{url}?token={}", r.body["token"].as_str().unwrap());
    eventually(
        WAIT,
        "the 1 s token is refused as expired",
        async || match WsClient::connect(&with_token).await {
            Ok(_) => false,
            Err(Error::Http(resp)) if resp.status() == 401 => true,
            Err(e) => panic!("unexpected refusal of an expiring token: {e}"),
        },
    )
    .await;
    assert_eq!(
        ws_refusal(&with_token, &[]).await,
        (401, "token_expired".into())
    );
    assert!(now_secs() >= expires, "refused before its expiry {expires}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_only_for_private_rooms() {
    let cluster = Cluster::start(3, 2).await;
    cluster.create_room("public").await;
    let http = cluster.router(0).http();
    let r = http.post_json("/rooms/public/tokens", &json!({})).await;
    assert_error(&r, 400, "not_private");
    let r = http.post_json("/rooms/ghost/tokens", &json!({})).await;
    assert_error(&r, 404, "unknown_room");
    let r = http.post_json("/rooms/a%20b/tokens", &json!({})).await;
    assert_error(&r, 400, "invalid_room_id");
    // A repeat POST of a private room returns the record without a new token.
    let p = create_private(&cluster, "p1").await;
    let again = http
        .post_json("/rooms", &json!({"id": "p1", "private": true}))
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["private"], true);
    assert_eq!(again.body["node"], p["node"]);
    assert!(again.body.get("token").is_none(), "{}", again.text);
    // And a public room needs none, even when one is passed.
    let (_ws, welcome) = join(
        &format!("{}/room/public?token=whatever", cluster.router(0).ws_base()),
        &[],
    )
    .await;
    assert_eq!(welcome["room"], "public");
}

// ---------------------------------------------------------------------------
// GET /nodes, health, metrics.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_lists_every_live_node() {
    let cluster = Cluster::start(3, 2).await;
    for router in &cluster.routers {
        let r = router.http().get("/nodes").await;
        assert_eq!(r.status, 200, "{}", r.text);
        let mut nodes = r.body.as_array().expect("array").clone();
        nodes.sort_by_key(|n| n["id"].as_str().unwrap().to_owned());
        assert_eq!(nodes.len(), 3, "{}", r.text);
        for (node, proc) in nodes.iter().zip(&cluster.nodes) {
            assert_eq!(node["id"], proc.id());
            assert_eq!(node["addr"], format!("http://127.0.0.1:{}", proc.port));
            assert_eq!(node["state"], "active");
            assert_eq!(node["weight"].as_f64(), Some(1.0));
            assert_eq!(node["rooms"], 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_200() {
    let cluster = Cluster::start(3, 2).await;
    let https = cluster
        .routers
        .iter()
        .map(|r| r.http())
        .chain(cluster.nodes.iter().map(|n| n.http()));
    for http in https {
        for path in ["/healthz", "/readyz"] {
            let r = http.get(path).await;
            assert_eq!(r.status, 200, "{} {path}: {}", http.base(), r.text);
        }
    }
    let r = cluster.router(0).http().get("/no/such/endpoint").await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_metrics_are_prometheus_text() {
    let cluster = Cluster::start(3, 2).await;
    let http = cluster.router(0).http();
    for i in 0..4 {
        cluster.create_room(&format!("m{i}")).await;
    }
    assert_eq!(http.get("/rooms/m0").await.status, 200);
    eventually(WAIT, "router_rooms counts the 4 rooms", async || {
        let text = http.get("/metrics").await.text;
        (1..=3)
            .map(|n| sample(&text, &format!("router_rooms{{node=\"i{n}\"}}")).unwrap_or(-1.0))
            .sum::<f64>()
            == 4.0
    })
    .await;
    let r = http.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        r.header("content-type")
    );
    let text = &r.text;
    for n in 1..=3 {
        assert!(
            sample(text, &format!("router_rooms{{node=\"i{n}\"}}")).is_some(),
            "router_rooms for i{n} missing:\n{text}"
        );
    }
    assert_eq!(sample(text, "router_nodes"), Some(3.0), "{text}");
    assert_eq!(
        sample(text, "router_proxy_connections"),
        Some(0.0),
        "{text}"
    );
    assert!(text.contains("router_requests_total{"), "{text}");
    assert!(
        text.contains("# TYPE router_requests_total counter"),
        "{text}"
    );
    // A request shows up in the counter with its route and status.
    assert!(
        text.lines().any(|l| l.starts_with("router_requests_total{")
            && l.contains("status=\"201\"")
            && l.contains("/rooms")),
        "no 201 on /rooms counted:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_metrics_count_rooms_connections_and_messages() {
    let cluster = Cluster::start(3, 2).await;
    let mut placed: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..9 {
        let rec = cluster.create_room(&format!("n{i}")).await;
        *placed
            .entry(rec["node"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for node in &cluster.nodes {
        let http = node.http();
        let want = placed.get(&node.id()).copied().unwrap_or(0) as f64;
        let series = format!("roomnode_rooms{{node=\"{}\"}}", node.id());
        eventually(WAIT, &format!("{series} == {want}"), async || {
            sample(&http.get("/metrics").await.text, &series) == Some(want)
        })
        .await;
    }

    // One member sends one message: counted where the room lives.
    let owner = cluster.owner("n0").await;
    let id = owner.id();
    let path = format!("/{id}/room/n0");
    let (mut ws, _) = join(&format!("{}{path}", owner.ws_base()), &[]).await;
    ws.send_json(&json!({"type": "send", "body": 1})).await;
    assert_eq!(ws.recv_until("message", WAIT).await["seq"], 1);
    let http = owner.http();
    let label = format!("{{node=\"{id}\"}}");
    // The counters may be bumped just after the frame is written.
    let delivered = format!("roomnode_messages_delivered_total{label}");
    let latency = format!("roomnode_delivery_latency_seconds_count{label}");
    eventually(WAIT, "the delivery is counted", async || {
        let text = http.get("/metrics").await.text;
        sample(&text, &delivered) == Some(1.0) && sample(&text, &latency) == Some(1.0)
    })
    .await;
    let r = http.get("/metrics").await;
    assert_eq!(r.status, 200);
    let text = &r.text;
    assert_eq!(
        sample(text, &format!("roomnode_active_rooms{label}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(text, &format!("roomnode_connections{label}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(text, &format!("roomnode_messages_received_total{label}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(text, &format!("roomnode_messages_delivered_total{label}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(text, &format!("roomnode_slow_consumers_total{label}")),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "roomnode_delivery_latency_seconds_bucket{{node=\"{id}\",le=\"+Inf\"}} 1"
        )),
        "{text}"
    );
    assert_eq!(
        sample(
            text,
            &format!("roomnode_delivery_latency_seconds_count{label}")
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_to_their_own_listener() {
    let mut cluster = Cluster::start(3, 2).await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    cluster.add_router(&["--metrics-listen", &addr]).await;
    let public = cluster.router(2).http();
    let r = public.get("/metrics").await;
    assert_eq!(r.status, 404, "{}", r.text);
    let private = Http::new(format!("http://{addr}"));
    let http = private.clone();
    eventually(WAIT, "the metrics listener lists 3 nodes", async || {
        let r = http.get("/metrics").await;
        r.status == 200 && sample(&r.text, "router_nodes") == Some(3.0)
    })
    .await;
    // The API stays on the public listener only.
    assert_eq!(public.get("/nodes").await.status, 200);
    assert_eq!(private.get("/nodes").await.status, 404);
}
