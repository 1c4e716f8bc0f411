//! The upgrade from polling to WebSocket: the probe, the pending poll's
//! `6`, the queue moving over in order, and what a session refuses once
//! upgraded.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::super::{CloseCause, Packet, Transport};
use super::{Harness, close_code, config, next, next_text};

#[tokio::test]
async fn a_probe_ends_the_pending_poll_and_the_queue_moves_over() {
    let h = Harness::start(config()).await;
    let sid = h.handshake().await;
    let q = format!("EIO=4&transport=polling&sid={sid}");
    let session = h.session(0);
    let poll = h.get(&q);
    let probe = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut ws = h
            .ws(&format!("EIO=4&transport=websocket&sid={sid}"))
            .await
            .unwrap();
        ws.send(WsMessage::text("2probe")).await.unwrap();
        assert_eq!(next_text(&mut ws).await, "3probe");
        ws
    };
    let (poll, mut ws) = tokio::join!(poll, probe);
    assert_eq!((poll.status, poll.body.as_str()), (StatusCode::OK, "6"));
    // Probed: polls get `6`, and packets wait for the WebSocket.
    session.send(&[Arc::new(Packet::text("a"))]).unwrap();
    assert_eq!(h.get(&q).await.body, "6");
    session.send(&[Arc::new(Packet::text("b"))]).unwrap();
    assert_eq!(session.transport(), Transport::Polling);
    ws.send(WsMessage::text("5")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(WsMessage::text("4a")));
    assert_eq!(next(&mut ws).await, Some(WsMessage::text("4b")));
    assert_eq!(session.transport(), Transport::WebSocket);
    ws.send(WsMessage::text("4hello")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(WsMessage::text("4hello")));
}

#[tokio::test]
async fn polling_requests_are_refused_after_the_upgrade() {
    let h = Harness::start(config()).await;
    let sid = h.handshake().await;
    let q = format!("EIO=4&transport=polling&sid={sid}");
    let mut ws = h
        .ws(&format!("EIO=4&transport=websocket&sid={sid}"))
        .await
        .unwrap();
    ws.send(WsMessage::text("2probe")).await.unwrap();
    ws.send(WsMessage::text("5")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "3probe");
    assert_eq!(h.get(&q).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.post(&q, "4x").await.status, StatusCode::BAD_REQUEST);
    ws.send(WsMessage::text("4hello")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(WsMessage::text("4hello")));
    assert_eq!(h.engine.sessions(), 1);
}

#[tokio::test]
async fn a_second_websocket_for_an_upgraded_session_is_closed() {
    let h = Harness::start(config()).await;
    let sid = h.handshake().await;
    let ws_query = format!("EIO=4&transport=websocket&sid={sid}");
    let mut ws = h.ws(&ws_query).await.unwrap();
    ws.send(WsMessage::text("2probe")).await.unwrap();
    ws.send(WsMessage::text("5")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "3probe");
    let mut second = h.ws(&ws_query).await.unwrap();
    assert_eq!(close_code(&mut second).await, Some(1008));
    ws.send(WsMessage::text("4hello")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(WsMessage::text("4hello")));
}

#[tokio::test]
async fn a_failed_probe_leaves_the_session_on_polling() {
    let h = Harness::start(config()).await;
    let sid = h.handshake().await;
    let q = format!("EIO=4&transport=polling&sid={sid}");
    let mut ws = h
        .ws(&format!("EIO=4&transport=websocket&sid={sid}"))
        .await
        .unwrap();
    ws.send(WsMessage::text("4nope")).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1008));
    assert_eq!(h.post(&q, "4still").await.status, StatusCode::OK);
    assert_eq!(h.get(&q).await.body, "4still");
    assert_eq!(h.session(0).transport(), Transport::Polling);
}

#[tokio::test]
async fn an_upgraded_session_keeps_its_heartbeat() {
    let h = Harness::start(config()).await;
    let sid = h.handshake().await;
    let mut ws = h
        .ws(&format!("EIO=4&transport=websocket&sid={sid}"))
        .await
        .unwrap();
    ws.send(WsMessage::text("2probe")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "3probe");
    ws.send(WsMessage::text("5")).await.unwrap();
    // The first ping may have been queued before the upgrade.
    assert_eq!(next_text(&mut ws).await, "2");
    ws.send(WsMessage::text("3")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "2");
    // Unanswered, the next one ends it.
    assert_eq!(close_code(&mut ws).await, Some(1001));
    assert_eq!(h.closed().await, CloseCause::PingTimeout);
}
