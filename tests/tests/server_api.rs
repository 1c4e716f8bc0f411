//! The server API for the application's backend (SPEC "Server API and
//! hooks for the application's backend"), in process: publish as the
//! server (once per idempotency key, across a live move too), members,
//! kick (native and Socket.IO), history, and the credentials on each.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use testkit::ids::hrw;
use testkit::inproc::Cluster;
use testkit::ws::join;
use testkit::{Http, next};

const ADMIN: &str = "admin-token-0123456789";
const KEY_OLD: &str = "api-key-old-0123456789";
const KEY_NEW: &str = "api-key-new-0123456789";

/// One node (and a second one added later by some tests), one router with
/// an admin token and two API keys.
async fn cluster() -> Cluster {
    let mut cluster = Cluster::start(1, 0).await;
    cluster
        .add_router(|c| {
            c.admin_token = Some(ADMIN.parse().unwrap());
            c.api_keys = vec![KEY_OLD.parse().unwrap(), KEY_NEW.parse().unwrap()];
        })
        .await;
    cluster
}

/// A request with `Authorization: Bearer <token>`.
async fn call(
    router: &Http,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let r = router.call(method, path, token, body.as_ref()).await;
    (r.status, r.body)
}

async fn native(cluster: &Cluster, room: &str, name: &str) -> (testkit::WsClient, Value) {
    let rec = cluster.record(room).await;
    let url = format!(
        "{}{}?name={name}",
        cluster.owner(room).await.ws_base(),
        rec["path"].as_str().unwrap()
    );
    join(&url).await
}

#[tokio::test]
async fn every_endpoint_needs_the_admin_token_or_an_api_key() {
    let cluster = cluster().await;
    cluster.create_room("auth").await;
    let router = cluster.router(0).http();
    let endpoints = [
        (
            Method::POST,
            "/rooms/auth/messages",
            Some(json!({"body": 1})),
        ),
        (Method::GET, "/rooms/auth/members", None),
        (Method::DELETE, "/rooms/auth/members/m9", None),
        (Method::GET, "/rooms/auth/history", None),
    ];
    for (method, path, body) in endpoints {
        let (status, v) = call(&router, method.clone(), path, None, body.clone()).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (401, Some("unauthorized")),
            "{method} {path}"
        );
        let (status, v) = call(
            &router,
            method.clone(),
            path,
            Some("nope-0123456789"),
            body.clone(),
        )
        .await;
        assert_eq!(
            (status, v["error"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}"
        );
        for token in [ADMIN, KEY_OLD, KEY_NEW] {
            let (status, v) = call(&router, method.clone(), path, Some(token), body.clone()).await;
            assert!(
                [200, 201, 404].contains(&status) && v["error"] != "forbidden",
                "{method} {path} with {token}: {status} {v}"
            );
        }
    }
}

#[tokio::test]
async fn a_server_publish_reaches_everyone_once_per_idempotency_key() {
    let cluster = cluster().await;
    cluster.create_room("pub").await;
    let router = cluster.router(0).http();
    let (mut a, _) = native(&cluster, "pub", "ann").await;

    let body = json!({"body": {"text": "maintenance at noon"}, "idempotency_key": "k1"});
    let (status, first) = call(
        &router,
        Method::POST,
        "/rooms/pub/messages",
        Some(KEY_OLD),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["seq"], 1);
    let m = next(&mut a, "message").await;
    assert_eq!(
        (m["seq"].as_u64(), m["from"].as_str()),
        (Some(1), Some("server"))
    );
    assert_eq!(m["body"], json!({"text": "maintenance at noon"}));

    // The same key: the first answer, nothing delivered.
    let (status, again) = call(
        &router,
        Method::POST,
        "/rooms/pub/messages",
        Some(KEY_NEW),
        Some(body),
    )
    .await;
    assert_eq!((status, &again), (201, &first));
    // With an event: the native body is the bridge's shape.
    let (status, evented) = call(
        &router,
        Method::POST,
        "/rooms/pub/messages",
        Some(ADMIN),
        Some(json!({"body": "hi", "event": "notice"})),
    )
    .await;
    assert_eq!((status, evented["seq"].as_u64()), (201, Some(2)));
    let m = next(&mut a, "message").await;
    assert_eq!(m["body"], json!({"event": "notice", "args": ["hi"]}));

    // Bad bodies.
    for bad in [
        json!({}),
        json!({"body": 1, "extra": 2}),
        json!({"body": 1, "idempotency_key": ""}),
    ] {
        let (status, v) = call(
            &router,
            Method::POST,
            "/rooms/pub/messages",
            Some(ADMIN),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    let (status, v) = call(
        &router,
        Method::POST,
        "/rooms/nope/messages",
        Some(ADMIN),
        Some(json!({"body": 1})),
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (404, Some("unknown_room")));
}

#[tokio::test]
async fn an_idempotency_key_survives_a_live_move() {
    let mut cluster = cluster().await;
    let room = (0..)
        .map(|k| format!("mv{k}"))
        .find(|r| hrw(&[1, 2], r) == "i2")
        .unwrap();
    cluster.create_room(&room).await;
    let router = cluster.router(0).http();
    let path = format!("/rooms/{room}/messages");
    let body = json!({"body": "once", "idempotency_key": "move-key"});
    let (status, first) = call(
        &router,
        Method::POST,
        &path,
        Some(ADMIN),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 201, "{first}");

    cluster.add_node(2, |_| {}).await;
    cluster.wait_nodes_seen(2).await;
    let (status, moved) = call(
        &router,
        Method::POST,
        "/admin/rebalance",
        Some(ADMIN),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, moved["summary"]["moved"].as_u64()),
        (200, Some(1)),
        "{moved}"
    );
    assert_eq!(cluster.record(&room).await["node"], "i2");

    let (status, again) = call(&router, Method::POST, &path, Some(ADMIN), Some(body)).await;
    assert_eq!(
        (status, &again),
        (201, &first),
        "answered from the new owner"
    );
    let (_, history) = call(
        &router,
        Method::GET,
        &format!("/rooms/{room}/history"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        history["messages"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
    assert_eq!(history["stream"], first["stream"]);
}

#[tokio::test]
async fn members_kick_and_history() {
    let cluster = cluster().await;
    cluster.create_room("mk").await;
    let router = cluster.router(0).http();
    let (mut a, wa) = native(&cluster, "mk", "ann").await;
    let (mut b, wb) = native(&cluster, "mk", "bob").await;
    a.send_json(&json!({"type": "send", "body": "one"})).await;
    // Two connections: "two" is sent once "one" is in, so its seq is 2.
    b.recv_until("message", Duration::from_secs(10)).await;
    b.send_json(&json!({"type": "send", "body": "two"})).await;

    let (status, members) = call(
        &router,
        Method::GET,
        "/rooms/mk/members",
        Some(KEY_OLD),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let list = members["members"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{members}");
    assert_eq!(list[0]["member"], wa["member"]);
    assert_eq!(list[0]["name"], "ann");
    assert_eq!(list[0]["transport"], "websocket");
    assert!(list[1]["joined_at"].as_u64().unwrap() > 1_700_000_000);

    let member = wb["member"].as_str().unwrap();
    let (status, _) = call(
        &router,
        Method::DELETE,
        &format!("/rooms/mk/members/{member}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let kicked = b.recv_until("error", Duration::from_secs(10)).await;
    assert_eq!(kicked["code"], "kicked");
    assert_eq!(b.expect_close(Duration::from_secs(10)).await, Some(1008));
    let left = a.recv_until("left", Duration::from_secs(10)).await;
    assert_eq!(left["member"], member);
    let (status, v) = call(
        &router,
        Method::DELETE,
        &format!("/rooms/mk/members/{member}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (404, Some("unknown_member")));

    let (status, h) = call(
        &router,
        Method::GET,
        "/rooms/mk/history?since=1",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(
        h["messages"],
        json!([{"seq": 2, "from": wb["member"], "name": "bob", "body": "two"}])
    );
    let (_, all) = call(
        &router,
        Method::GET,
        "/rooms/mk/history?limit=1",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(all["messages"][0]["body"], "one");
    let (status, _) = call(
        &router,
        Method::GET,
        "/rooms/mk/history?limit=0",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 400);
}
