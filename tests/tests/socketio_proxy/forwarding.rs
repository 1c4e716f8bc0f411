//! What the router forwards on its Socket.IO paths, seen by stand-in nodes
//! that answer with what they received: the owner's path, the query as it
//! was, the method and body, the end-to-end headers both ways; refusals as
//! on the native path; a long poll; a room that has just moved; the body
//! bound; `socketio_path` in the API.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use testkit::ws::{self, tungstenite::Message};
use testkit::{Http, WsClient, eventually, metrics};

use super::{NODES, WAIT, a_room_on_each_node, post_text, record, requests, stand_ins};

/// A browser's origin, for CORS.
const ORIGIN: &str = "https://app.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_requests_reach_each_rooms_owner_with_the_path_rewritten_and_the_query_kept() {
    let (cluster, _nodes) = stand_ins().await;
    let http = cluster.router(0).http();
    let rooms = a_room_on_each_node(&cluster, "poll").await;
    for (room, node) in &rooms {
        let owner_path = format!("/{node}/room/{room}/socket.io/");
        let query = "EIO=4&transport=polling&t=PxZ1-a%20b";
        let get = http
            .raw(
                Method::GET,
                &format!("/room/{room}/socket.io/?{query}"),
                &[
                    ("origin", ORIGIN),
                    ("cookie", "io=abc"),
                    ("connection", "x-private"),
                    ("x-private", "for the router only"),
                ],
                None,
                WAIT,
            )
            .await;
        let seen = record(&get);
        assert_eq!(seen["upstream"], node.as_str(), "{room}");
        assert_eq!(seen["method"], "GET");
        assert_eq!(seen["path"], owner_path.as_str());
        assert_eq!(seen["query"], query);
        assert_eq!(seen["headers"]["cookie"], "io=abc");
        assert_eq!(seen["headers"]["origin"], ORIGIN);
        assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");
        assert!(seen["headers"].get("x-private").is_none(), "{seen}");
        // The node's answer headers, but not its hop-by-hop ones.
        assert_eq!(
            get.header("content-type"),
            Some("text/plain; charset=UTF-8")
        );
        assert_eq!(
            get.header("set-cookie"),
            Some("io=stand-in; Path=/; HttpOnly")
        );
        assert_eq!(get.header("access-control-allow-origin"), Some(ORIGIN));
        assert_eq!(get.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(get.header("x-hop"), None);
        assert_eq!(get.header("keep-alive"), None);

        let post = post_text(
            &http,
            &format!("/room/{room}/socket.io/?EIO=4&transport=polling&sid=s1"),
            "40\u{1e}42[\"chat\",\"hi\"]",
        )
        .await;
        let seen = record(&post);
        assert_eq!(
            (&seen["upstream"], &seen["method"], &seen["path"]),
            (&json!(node), &json!("POST"), &json!(owner_path))
        );
        assert_eq!(seen["query"], "EIO=4&transport=polling&sid=s1");
        assert_eq!(seen["body"], "40\u{1e}42[\"chat\",\"hi\"]");
        assert_eq!(seen["headers"]["content-type"], "text/plain;charset=UTF-8");

        let preflight = http
            .raw(
                Method::OPTIONS,
                &format!("/room/{room}/socket.io/?EIO=4&transport=polling&sid=s1"),
                &[
                    ("origin", ORIGIN),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "content-type"),
                ],
                None,
                WAIT,
            )
            .await;
        let seen = record(&preflight);
        assert_eq!(
            (&seen["upstream"], &seen["method"]),
            (&json!(node), &json!("OPTIONS"))
        );
        assert_eq!(seen["headers"]["access-control-request-method"], "POST");
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            Some(ORIGIN)
        );

        // socket.io-client adds the final slash, but a path without it is
        // the same endpoint.
        let bare = http
            .get(&format!("/room/{room}/socket.io?EIO=4&transport=polling"))
            .await;
        let seen = record(&bare);
        assert_eq!(
            (&seen["upstream"], &seen["path"]),
            (&json!(node), &json!(owner_path))
        );
        assert_eq!(seen["query"], "EIO=4&transport=polling");
    }

    let n = f64::from(NODES);
    for (route, status, count) in [
        ("GET /room/{room}/socket.io/", "200", n),
        ("POST /room/{room}/socket.io/", "200", n),
        ("OPTIONS /room/{room}/socket.io/", "200", n),
        ("GET /room/{room}/socket.io", "200", n),
    ] {
        assert_eq!(requests(&http, route, status).await, count, "{route}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_is_tunnelled_to_each_rooms_owner() {
    let (cluster, _nodes) = stand_ins().await;
    let base = cluster.router(0).ws_base();
    let http = cluster.router(0).http();
    let rooms = a_room_on_each_node(&cluster, "ws").await;
    let mut open = Vec::new();
    for (room, node) in &rooms {
        let query = "EIO=4&transport=websocket&sid=s2";
        let url = format!("{base}/room/{room}/socket.io/?{query}");
        let mut ws = WsClient::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let seen = ws.recv_json(WAIT).await;
        assert_eq!(seen["upstream"], node.as_str());
        assert_eq!(seen["method"], "GET");
        assert_eq!(seen["path"], format!("/{node}/room/{room}/socket.io/"));
        assert_eq!(seen["query"], query);
        assert_eq!(seen["headers"]["upgrade"], "websocket");
        // Engine.IO's probe, and back through the tunnel.
        ws.send_text("2probe").await;
        match ws.recv_message(WAIT).await {
            Some(Message::Text(t)) => assert_eq!(t.as_str(), "2probe"),
            other => panic!("expected the probe back, got {other:?}"),
        }
        open.push(ws);
    }
    let tunnels = async || metrics::sum(&metrics::scrape(&http).await, "router_proxy_connections");
    assert_eq!(tunnels().await, Some(f64::from(NODES)));
    assert_eq!(
        requests(&http, "GET /room/{room}/socket.io/", "101").await,
        f64::from(NODES)
    );
    drop(open);
    eventually(WAIT, "every tunnel closed", async || {
        tunnels().await == Some(0.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_socketio_paths_pass_through_unchanged() {
    let (cluster, _nodes) = stand_ins().await;
    let http = cluster.router(0).http();
    let rooms = a_room_on_each_node(&cluster, "pass").await;
    let (on_i1, _) = &rooms[0];
    // To the instance in the path, whoever owns the room: no lookup.
    let path = format!("/i2/room/{on_i1}/socket.io/");
    let seen = http.get(&format!("{path}?EIO=4&transport=polling")).await;
    let seen = record(&seen);
    assert_eq!(
        (&seen["upstream"], &seen["path"]),
        (&json!("i2"), &json!(path))
    );
    assert_eq!(seen["query"], "EIO=4&transport=polling");
    let post = post_text(
        &http,
        "/i3/room/anything/socket.io?EIO=4&transport=polling&sid=s3",
        "3",
    )
    .await;
    let seen = record(&post);
    assert_eq!(
        (&seen["upstream"], &seen["method"], &seen["path"]),
        (
            &json!("i3"),
            &json!("POST"),
            &json!("/i3/room/anything/socket.io")
        )
    );
    assert_eq!(
        (&seen["query"], &seen["body"]),
        (&json!("EIO=4&transport=polling&sid=s3"), &json!("3"))
    );

    let url = format!(
        "{}/i1/room/{on_i1}/socket.io/?EIO=4&transport=websocket",
        cluster.router(0).ws_base()
    );
    let mut ws = WsClient::connect(&url).await.expect("upgrade through /i1");
    let seen = ws.recv_json(WAIT).await;
    assert_eq!(seen["upstream"], "i1");
    assert_eq!(seen["path"], format!("/i1/room/{on_i1}/socket.io/"));
    assert_eq!(seen["query"], "EIO=4&transport=websocket");

    http.get("/i9/room/x/socket.io/?EIO=4&transport=polling")
        .await
        .assert_error(503, "node_unavailable");
    http.get("/i0/room/x/socket.io/")
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        requests(&http, "GET /{instance}/room/{room}/socket.io/", "200").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_rooms_and_bad_ids_are_refused_as_on_the_native_path() {
    let (cluster, _nodes) = stand_ins().await;
    let http = cluster.router(0).http();
    http.get("/room/nowhere")
        .await
        .assert_error(404, "unknown_room");
    for method in [Method::GET, Method::POST, Method::OPTIONS] {
        for path in ["/room/nowhere/socket.io/", "/room/nowhere/socket.io"] {
            http.raw(
                method.clone(),
                &format!("{path}?EIO=4&transport=polling"),
                &[],
                None,
                WAIT,
            )
            .await
            .assert_error(404, "unknown_room");
        }
        http.raw(method, "/room/bad%20id/socket.io/", &[], None, WAIT)
            .await
            .assert_error(400, "invalid_room_id");
    }
    let url = format!(
        "{}/room/nowhere/socket.io/?EIO=4&transport=websocket",
        cluster.router(0).ws_base()
    );
    assert_eq!(
        ws::refusal(WsClient::connect(&url).await, &url),
        (404, Some("unknown_room".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_outlasts_the_handshake_bound() {
    let (cluster, _nodes) = stand_ins().await;
    let rooms = a_room_on_each_node(&cluster, "long").await;
    let (room, node) = &rooms[1];
    // Above the 10 s a native handshake may take; a node holds a poll up
    // to its ping interval (25 s by default).
    let hold = Duration::from_secs(12);
    let began = Instant::now();
    let poll = cluster
        .router(0)
        .http()
        .raw(
            Method::GET,
            &format!(
                "/room/{room}/socket.io/?EIO=4&transport=polling&sid=s4&hold={}",
                hold.as_millis()
            ),
            &[],
            None,
            hold + WAIT,
        )
        .await;
    assert_eq!(record(&poll)["upstream"], node.as_str());
    assert!(
        began.elapsed() >= hold,
        "answered after {:?}",
        began.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_just_moved_is_followed_unless_the_request_has_a_body() {
    let (cluster, _nodes) = stand_ins().await;
    let http = cluster.router(0).http();
    let rooms = a_room_on_each_node(&cluster, "moved").await;
    // The owner answers 307 to i3, as a node does for a room that has
    // moved before this router's view of the store shows it.
    let (room, _) = &rooms[0];
    let query = "EIO=4&transport=polling&sid=s5";
    let poll = http
        .get(&format!("/room/{room}/socket.io/?{query}&redirect=i3"))
        .await;
    let seen = record(&poll);
    assert_eq!(seen["upstream"], "i3");
    assert_eq!(seen["path"], format!("/i3/room/{room}/socket.io/"));
    assert_eq!(seen["query"], query);

    let url = format!(
        "{}/room/{room}/socket.io/?EIO=4&transport=websocket&redirect=i2",
        cluster.router(0).ws_base()
    );
    let mut ws = WsClient::connect(&url).await.expect("upgrade, followed");
    let seen = ws.recv_json(WAIT).await;
    assert_eq!(
        (&seen["upstream"], &seen["query"]),
        (&json!("i2"), &json!("EIO=4&transport=websocket"))
    );

    // A body is streamed to the node, so it cannot be sent again: the
    // client gets the 307.
    let post = post_text(
        &http,
        &format!("/room/{room}/socket.io/?{query}&redirect=i3"),
        "40",
    )
    .await;
    assert_eq!(post.status, 307, "{}", post.text);
    assert_eq!(
        post.header("location"),
        Some(format!("/i3/room/{room}/socket.io/?{query}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_stream_through_up_to_the_bound() {
    let (cluster, _nodes) = stand_ins().await;
    let http = cluster.router(0).http();
    let rooms = a_room_on_each_node(&cluster, "body").await;
    let (room, node) = &rooms[2];
    let path = format!("/room/{room}/socket.io/?EIO=4&transport=polling&sid=s6");
    let fits = "x".repeat(1024 * 1024);
    let post = http.raw(Method::POST, &path, &[], Some(&fits), WAIT).await;
    let seen = record(&post);
    assert_eq!(seen["upstream"], node.as_str());
    assert_eq!(seen["body"].as_str().map(str::len), Some(fits.len()));
    let over = "x".repeat(1024 * 1024 + 1);
    http.raw(Method::POST, &path, &[], Some(&over), WAIT)
        .await
        .assert_error(413, "body_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_answers_carry_the_socketio_path() {
    let (cluster, _nodes) = stand_ins().await;
    let http: Http = cluster.router(0).http();
    let created = http.post_json("/rooms", &json!({"id": "sio"})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let node = created.body["node"].as_str().expect("node").to_owned();
    let socketio_path = format!("/{node}/room/sio/socket.io/");
    assert_eq!(created.body["socketio_path"], socketio_path.as_str());
    assert_eq!(created.body["path"], format!("/{node}/room/sio"));
    let again = http.post_json("/rooms", &json!({"id": "sio"})).await;
    assert_eq!(
        (again.status, &again.body["socketio_path"]),
        (200, &json!(socketio_path))
    );
    let got = http.get("/rooms/sio").await;
    assert_eq!(got.body["socketio_path"], socketio_path.as_str());
    eventually(WAIT, "the list shows the room", async || {
        http.get("/rooms").await.body["rooms"][0]["socketio_path"] == socketio_path.as_str()
    })
    .await;
    // The path it names reaches the owner, through the router too.
    let seen = http
        .get(&format!("{socketio_path}?EIO=4&transport=polling"))
        .await;
    assert_eq!(record(&seen)["upstream"], node.as_str());
}
