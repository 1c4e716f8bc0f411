//! The `websocket` transport: handshake, messages, invalid packets,
//! heartbeat, ping timeout, closes, limits, slow consumers, shutdown.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::super::{Close, CloseCause, Packet, Transport};
use super::{Harness, close_code, config, next, next_text, open_packet};

async fn open(h: &Harness) -> super::Ws {
    let mut ws = h.ws("EIO=4&transport=websocket").await.unwrap();
    open_packet(&next_text(&mut ws).await);
    ws
}

#[tokio::test]
async fn a_fresh_websocket_opens_with_the_open_packet() {
    let h = Harness::start(config()).await;
    let mut ws = h.ws("EIO=4&transport=websocket").await.unwrap();
    let open = open_packet(&next_text(&mut ws).await);
    assert_eq!(open["upgrades"], serde_json::json!([]));
    assert_eq!(open["pingInterval"], 300);
    assert_eq!(open["maxPayload"], 1_000_000);
    assert_eq!(h.session(0).transport(), Transport::WebSocket);
    assert_eq!(h.session(0).sid(), open["sid"]);
}

#[tokio::test]
async fn bad_queries_are_refused_before_the_upgrade() {
    let h = Harness::start(config()).await;
    for query in [
        "transport=websocket",
        "EIO=abc&transport=websocket",
        "EIO=4",
        "EIO=4&transport=abc",
        "EIO=4&transport=websocket&sid=nope",
    ] {
        let err = h.ws(query).await.unwrap_err();
        let tokio_tungstenite::tungstenite::Error::Http(resp) = err else {
            panic!("{query}: {err:?}");
        };
        assert_eq!(resp.status(), 400, "{query}");
    }
    assert_eq!(h.engine.sessions(), 0);
}

#[tokio::test]
async fn text_and_binary_messages_are_echoed() {
    let h = Harness::start(config()).await;
    let mut ws = open(&h).await;
    ws.send(WsMessage::text("4hello")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(WsMessage::text("4hello")));
    let bytes = Bytes::from_static(&[1, 2, 3, 4]);
    ws.send(WsMessage::Binary(bytes.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(WsMessage::Binary(bytes)));
}

#[tokio::test]
async fn an_invalid_packet_closes_the_session() {
    let h = Harness::start(config()).await;
    let mut ws = open(&h).await;
    ws.send(WsMessage::text("abc")).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1002));
    assert_eq!(h.closed().await, CloseCause::ProtocolError);
}

#[tokio::test]
async fn pings_come_every_interval_and_pongs_keep_the_session() {
    let h = Harness::start(config()).await;
    let mut ws = open(&h).await;
    for _ in 0..3 {
        assert_eq!(next_text(&mut ws).await, "2");
        ws.send(WsMessage::text("3")).await.unwrap();
    }
    assert_eq!(h.engine.sessions(), 1);
}

#[tokio::test]
async fn an_unanswered_ping_closes_the_session() {
    let h = Harness::start(config()).await;
    let started = tokio::time::Instant::now();
    let mut ws = open(&h).await;
    assert_eq!(close_code(&mut ws).await, Some(1001));
    assert!(started.elapsed() >= super::PING_INTERVAL + super::PING_TIMEOUT);
    assert_eq!(h.closed().await, CloseCause::PingTimeout);
}

#[tokio::test]
async fn a_close_packet_closes_the_websocket() {
    let h = Harness::start(config()).await;
    let mut ws = open(&h).await;
    ws.send(WsMessage::text("1")).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1000));
    assert_eq!(h.closed().await, CloseCause::ClientClose);
}

#[tokio::test]
async fn server_closes_with_and_without_the_close_packet() {
    let h = Harness::start(config()).await;
    let mut ws = open(&h).await;
    h.session(0).send(&[Arc::new(Packet::text("bye"))]).unwrap();
    h.session(0).close(Close::Packet);
    assert_eq!(next(&mut ws).await, Some(WsMessage::text("4bye")));
    assert_eq!(next(&mut ws).await, Some(WsMessage::text("1")));
    assert_eq!(close_code(&mut ws).await, Some(1000));
    assert_eq!(h.closed().await, CloseCause::Server);

    let mut ws = open(&h).await;
    h.session(1).close(Close::Transport);
    assert_eq!(close_code(&mut ws).await, Some(1012));
    assert_eq!(h.closed().await, CloseCause::Server);
}

#[tokio::test]
async fn a_message_over_max_payload_closes_with_1009() {
    let mut c = config();
    c.max_payload = 1000;
    let h = Harness::start(c).await;
    let mut ws = open(&h).await;
    let big = format!("4{}", "x".repeat(1000));
    ws.send(WsMessage::text(big)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1009));
    assert_eq!(h.closed().await, CloseCause::TooLarge);
}

#[tokio::test]
async fn a_client_that_does_not_read_is_dropped_as_a_slow_consumer() {
    let mut c = config();
    c.max_queue = 4;
    let h = Harness::start(c).await;
    let _ws = open(&h).await;
    let session = h.session(0);
    let packet = Arc::new(Packet::text("x".repeat(64 * 1024)));
    // The socket's buffers take a few megabytes; then the outlet queues.
    let overflowed = (0..10_000).any(|_| session.send(std::slice::from_ref(&packet)).is_err());
    assert!(overflowed);
    assert_eq!(h.closed().await, CloseCause::SlowConsumer);
}

#[tokio::test]
async fn shutdown_closes_every_session_without_a_close_packet() {
    let h = Harness::start(config()).await;
    let mut ws = open(&h).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    let shutdown = async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        h.engine.shutdown().await;
    };
    let (poll, code, ()) = tokio::join!(h.get(&q), close_code(&mut ws), shutdown);
    assert_eq!(poll.body, "6");
    assert_eq!(code, Some(1001));
    assert_eq!(h.closed().await, CloseCause::Shutdown);
    assert_eq!(h.closed().await, CloseCause::Shutdown);
    assert_eq!(h.engine.sessions(), 0);
    let refused = h.get("EIO=4&transport=polling").await;
    assert_eq!(refused.status, 503);
}
