//! WebSocket upgrades and frames: HTTP/1.0 upgrades refused through the
//! router as at the node, protocol violations closed with 1002 and bad
//! UTF-8 with 1007, and a join checked for its instance and room before its
//! query.

use std::time::Duration;

use serde_json::json;
use testkit::{Cluster, join};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::WAIT;
use super::raw::{CLIENT, UPGRADE_HEADERS, assert_refusal, client_frame, exchange, member_from};

#[tokio::test]
async fn http_1_0_upgrades_are_refused_through_the_router_as_at_the_node() {
    let cluster = Cluster::start(1, 1).await;
    cluster.create_room("old").await;
    let (node, router) = (cluster.node(1).port, cluster.router(0).port);
    for (port, path, what) in [
        (node, "/i1/room/old", "node"),
        (router, "/i1/room/old", "router, instance path"),
        (router, "/room/old", "router, legacy path"),
    ] {
        let req = format!("GET {path} HTTP/1.0\r\nHost: x\r\n{}\r\n", UPGRADE_HEADERS);
        let answer = exchange(port, req.as_bytes()).await;
        assert_refusal(&answer, 426, "upgrade_required", what);
    }
}

#[tokio::test]
async fn protocol_violations_close_with_1002_and_bad_utf8_with_1007() {
    let cluster = Cluster::start(1, 1).await;
    let path = cluster.create_room("strict").await["path"]
        .as_str()
        .expect("path")
        .to_owned();
    let (mut watcher, _) = join(&format!("{}{path}", cluster.node(1).ws_base())).await;
    let cases: [(&str, Vec<u8>, u16); 6] = [
        (
            "text frame with invalid UTF-8",
            client_frame(0x81, b"{\"x\":\"\xff\"}", true),
            1007,
        ),
        (
            "reserved data opcode 3",
            client_frame(0x83, b"x", true),
            1002,
        ),
        (
            "reserved control opcode 11",
            client_frame(0x8b, b"", true),
            1002,
        ),
        (
            "RSV1 set without an extension",
            client_frame(0xc1, b"{}", true),
            1002,
        ),
        (
            "unmasked client frame",
            client_frame(0x81, b"{}", false),
            1002,
        ),
        (
            "ping of 126 bytes",
            client_frame(0x89, &[b'p'; 126], true),
            1002,
        ),
    ];
    for port in [cluster.node(1).port, cluster.router(0).port] {
        for (what, frame, want) in &cases {
            let what = format!("{what} (port {port})");
            let mut ws = member_from(CLIENT, port, &path).await.expect("join");
            ws.s.write_all(frame).await.expect("write the frame");
            let at = Instant::now();
            let code = loop {
                match ws.frame().await.expect("read") {
                    Some((8, payload)) if payload.len() >= 2 => {
                        break Some(u16::from_be_bytes([payload[0], payload[1]]));
                    }
                    Some((8, _)) | None => break None,
                    Some(_) => {}
                }
            };
            assert_eq!(code, Some(*want), "{what}: the close code");
            assert!(
                ws.frame().await.expect("read").is_none(),
                "{what}: more after close"
            );
            let took = at.elapsed();
            assert!(
                took < Duration::from_secs(1),
                "{what}: ended after {took:?}"
            );
        }
    }
    // The room is fine: its other member is still there and hears a send.
    watcher
        .send_json(&json!({"type": "send", "body": "still here"}))
        .await;
    let m = watcher.recv_until("message", WAIT).await;
    assert_eq!(m["body"], "still here");
}

#[tokio::test]
async fn a_join_is_checked_for_its_instance_and_room_before_its_query() {
    let cluster = Cluster::start(1, 1).await;
    cluster.create_room("named").await;
    let name = "n".repeat(65);
    let node = cluster.node(1).port;
    for (path, status, code) in [
        (format!("/i2/room/named?name={name}"), 404, "wrong_instance"),
        (
            format!("/i1/room/bad.id?name={name}"),
            400,
            "invalid_room_id",
        ),
        (format!("/i1/room/named?name={name}"), 400, "invalid_name"),
    ] {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{UPGRADE_HEADERS}\r\n");
        assert_refusal(&exchange(node, req.as_bytes()).await, status, code, &path);
    }
}
