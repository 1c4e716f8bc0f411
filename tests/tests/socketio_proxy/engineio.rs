//! Engine.IO sessions through the router to real room nodes: a polling
//! session opened on the router path continues at the owner node itself
//! (the session lives there, so nothing needs to be sticky), and a
//! WebSocket session opens through both router paths. These need the
//! node's Socket.IO endpoint. The last case holds whatever the node
//! answers: the router's answer on a Socket.IO path is the owner's own.

use reqwest::Method;
use serde_json::Value;
use testkit::inproc::Cluster;
use testkit::ws::tungstenite::Message;
use testkit::{Http, Reply, WsClient};

use super::{NODES, WAIT, a_room_on_each_node, post_text};

/// The Engine.IO open packet of a handshake answer (`0{"sid",…}`).
#[track_caller]
fn open_packet(text: &str) -> Value {
    let json = text
        .strip_prefix('0')
        .unwrap_or_else(|| panic!("not an Engine.IO open packet: {text:?}"));
    let open: Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("open packet is not JSON ({e}): {text:?}"));
    assert!(
        open["sid"].as_str().is_some_and(|s| !s.is_empty()),
        "{open}"
    );
    assert!(open["pingInterval"].is_u64(), "{open}");
    open
}

/// A polling request of an Engine.IO v4 session on `path` (`/…/socket.io/`):
/// a GET, or with `body` a POST.
async fn poll(http: &Http, path: &str, sid: Option<&str>, body: Option<&str>) -> Reply {
    let mut url = format!("{path}?EIO=4&transport=polling");
    if let Some(sid) = sid {
        url = format!("{url}&sid={sid}");
    }
    match body {
        Some(body) => post_text(http, &url, body).await,
        None => http.raw(Method::GET, &url, &[], None, WAIT).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_sessions_through_the_router_live_on_each_rooms_owner() {
    let cluster = Cluster::start(NODES, 1).await;
    let router = cluster.router(0).http();
    for (room, node) in a_room_on_each_node(&cluster, "p").await {
        let handshake = poll(&router, &format!("/room/{room}/socket.io/"), None, None).await;
        assert_eq!(handshake.status, 200, "{room}: {}", handshake.text);
        let open = open_packet(&handshake.text);
        let sid = open["sid"].as_str().expect("sid");
        assert!(
            open["upgrades"]
                .as_array()
                .is_some_and(|u| u.iter().any(|t| t == "websocket")),
            "{open}"
        );
        // CONNECT to the room's namespace through the router…
        let connect = poll(
            &router,
            &format!("/room/{room}/socket.io/"),
            Some(sid),
            Some("40"),
        )
        .await;
        assert_eq!(
            (connect.status, connect.text.as_str()),
            (200, "ok"),
            "{room}"
        );
        // …and its answer from the owner itself: the session is there.
        let owner = cluster.node(node[1..].parse().expect("iN")).http();
        let sio_path = format!("/{node}/room/{room}/socket.io/");
        let answer = poll(&owner, &sio_path, Some(sid), None).await;
        assert_eq!(answer.status, 200, "{room}: {}", answer.text);
        assert!(answer.text.starts_with("40"), "{room}: {:?}", answer.text);
        // The instance path through the router reaches the same node.
        let again = poll(&router, &sio_path, None, None).await;
        assert_eq!(again.status, 200, "{room}: {}", again.text);
        assert_ne!(open_packet(&again.text)["sid"].as_str(), Some(sid));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sessions_open_through_both_router_paths() {
    let cluster = Cluster::start(NODES, 1).await;
    let base = cluster.router(0).ws_base();
    for (room, node) in a_room_on_each_node(&cluster, "w").await {
        for path in [
            format!("/room/{room}/socket.io/"),
            format!("/{node}/room/{room}/socket.io/"),
        ] {
            let url = format!("{base}{path}?EIO=4&transport=websocket");
            let mut ws = WsClient::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            let text = |m: Option<Message>| match m {
                Some(Message::Text(t)) => t.as_str().to_owned(),
                other => panic!("{url}: expected a text frame, got {other:?}"),
            };
            open_packet(&text(ws.recv_message(WAIT).await));
            ws.send_text("40").await;
            let connected = text(ws.recv_message(WAIT).await);
            assert!(connected.starts_with("40"), "{url}: {connected:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routers_answer_on_a_socketio_path_is_the_owners_own() {
    let cluster = Cluster::start(NODES, 1).await;
    let router = cluster.router(0).http();
    for (room, node) in a_room_on_each_node(&cluster, "same").await {
        let owner = cluster.node(node[1..].parse().expect("iN")).http();
        let sio_path = format!("/{node}/room/{room}/socket.io/");
        let preflight: &[(&str, &str)] = &[
            ("origin", "http://localhost:3000"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ];
        // A preflight, an unsupported protocol version, an unknown session.
        for (method, query, headers) in [
            (Method::OPTIONS, "EIO=4&transport=polling", preflight),
            (Method::GET, "EIO=3&transport=polling", &[][..]),
            (Method::GET, "EIO=4&transport=polling&sid=nope", &[][..]),
        ] {
            let direct = owner
                .raw(
                    method.clone(),
                    &format!("{sio_path}?{query}"),
                    headers,
                    None,
                    WAIT,
                )
                .await;
            for path in [&format!("/room/{room}/socket.io/"), &sio_path] {
                let proxied = router
                    .raw(
                        method.clone(),
                        &format!("{path}?{query}"),
                        headers,
                        None,
                        WAIT,
                    )
                    .await;
                let what = format!("{method} {path}?{query}");
                assert_eq!(proxied.status, direct.status, "{what}: {}", proxied.text);
                assert_eq!(proxied.text, direct.text, "{what}");
                for (name, value) in &direct.headers {
                    let name = name.as_str();
                    if name == "content-type" || name.starts_with("access-control-") {
                        assert_eq!(
                            proxied.headers.get(name),
                            Some(value),
                            "{what}: header {name}"
                        );
                    }
                }
            }
        }
    }
}
