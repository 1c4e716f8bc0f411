//! The `polling` transport: handshake, messages, invalid packets,
//! duplicate polls, heartbeat, ping timeout, closes, CORS, limits.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};

use super::super::{Close, CloseCause, Packet};
use super::{Harness, PING_INTERVAL, PING_TIMEOUT, config, open_packet};

fn code(body: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["code"].as_u64().unwrap()
}

#[tokio::test]
async fn a_handshake_opens_a_session() {
    let h = Harness::start(config()).await;
    let answer = h.get("EIO=4&transport=polling").await;
    assert_eq!(answer.status, StatusCode::OK);
    let open = open_packet(&answer.body);
    let mut keys: Vec<_> = open.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(open["pingInterval"], 300);
    assert_eq!(open["pingTimeout"], 200);
    assert_eq!(open["maxPayload"], 1_000_000);
    // 20 random bytes, base64url.
    assert_eq!(open["sid"].as_str().unwrap().len(), 27);
    assert_eq!(h.engine.sessions(), 1);
}

#[tokio::test]
async fn bad_queries_and_methods_are_refused_with_their_codes() {
    let h = Harness::start(config()).await;
    for (query, want) in [
        ("transport=polling", 5),
        ("EIO=abc&transport=polling", 5),
        ("EIO=4", 0),
        ("EIO=4&transport=abc", 0),
        ("EIO=4&transport=polling&sid=nope", 1),
    ] {
        let answer = h.get(query).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(code(&answer.body), want, "{query}");
    }
    for method in [Method::POST, Method::PUT] {
        let path = "/socket.io/?EIO=4&transport=polling";
        let answer = h.request(method, path, "", &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(code(&answer.body), 2);
    }
    // A session belongs to its room's path only.
    let sid = h.handshake().await;
    let path = format!("/other/?EIO=4&transport=polling&sid={sid}");
    let answer = h.request(Method::GET, &path, "", &[]).await;
    assert_eq!(code(&answer.body), 1);
}

#[tokio::test]
async fn text_and_binary_messages_go_both_ways() {
    let h = Harness::start(config()).await;
    for body in [
        "4hello",
        "4test1\x1e4test2\x1e4test3",
        "4hello\x1ebAQIDBA==",
    ] {
        let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
        let push = h.post(&q, body).await;
        assert_eq!((push.status, push.body.as_str()), (StatusCode::OK, "ok"));
        assert_eq!(push.headers["content-type"], "text/html");
        let poll = h.get(&q).await;
        assert_eq!((poll.status, poll.body.as_str()), (StatusCode::OK, body));
    }
}

#[tokio::test]
async fn an_invalid_packet_closes_the_session() {
    let h = Harness::start(config()).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    assert_eq!(h.post(&q, "abc").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.get(&q).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.closed().await, CloseCause::ProtocolError);
}

#[tokio::test]
async fn a_second_concurrent_poll_closes_the_session() {
    let h = Harness::start(config()).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    let first = h.get(&q);
    let second = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        h.get(&format!("{q}&t=burst")).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "1"));
    assert_eq!(second.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.get(&q).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.closed().await, CloseCause::ProtocolError);
}

#[tokio::test]
async fn pings_come_every_interval_and_pongs_keep_the_session() {
    let h = Harness::start(config()).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    for _ in 0..3 {
        let poll = h.get(&q).await;
        assert_eq!((poll.status, poll.body.as_str()), (StatusCode::OK, "2"));
        assert_eq!(h.post(&q, "3").await.status, StatusCode::OK);
    }
    assert_eq!(h.engine.sessions(), 1);
}

#[tokio::test]
async fn an_unanswered_ping_closes_the_session() {
    let h = Harness::start(config()).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    tokio::time::sleep(PING_INTERVAL + PING_TIMEOUT).await;
    assert_eq!(h.get(&q).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.closed().await, CloseCause::PingTimeout);
}

#[tokio::test]
async fn a_close_packet_ends_the_pending_poll_with_a_noop() {
    let h = Harness::start(config()).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    let (poll, push) = tokio::join!(h.get(&q), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        h.post(&q, "1").await
    });
    assert_eq!(push.status, StatusCode::OK);
    assert_eq!((poll.status, poll.body.as_str()), (StatusCode::OK, "6"));
    assert_eq!(h.get(&q).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.closed().await, CloseCause::ClientClose);
}

#[tokio::test]
async fn a_poll_read_after_the_close_packet_still_gets_a_noop_once() {
    let h = Harness::start(config()).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    assert_eq!(h.post(&q, "1").await.status, StatusCode::OK);
    let late = h.get(&q).await;
    assert_eq!((late.status, late.body.as_str()), (StatusCode::OK, "6"));
    assert_eq!(h.get(&q).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.closed().await, CloseCause::ClientClose);
}

#[tokio::test]
async fn a_server_close_flushes_then_sends_the_close_packet() {
    let h = Harness::start(config()).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    let session = h.session(0);
    session.send(&[Arc::new(Packet::text("bye"))]).unwrap();
    session.close(Close::Packet);
    assert_eq!(h.closed().await, CloseCause::Server);
    // The next polls still get them, within the linger: what was queued,
    // then the close packet on its own.
    assert_eq!(h.get(&q).await.body, "4bye");
    assert_eq!(h.get(&q).await.body, "1");
    assert_eq!(h.get(&q).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_server_close_answers_the_pending_poll_then_the_next_with_the_close_packet() {
    let h = Harness::start(config()).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    let session = h.session(0);
    let (first, ()) = tokio::join!(h.get(&q), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        session.send(&[Arc::new(Packet::text("bye"))]).unwrap();
        session.close(Close::Packet);
    });
    assert_eq!(first.body, "4bye");
    assert_eq!(h.get(&q).await.body, "1");
    assert_eq!(h.get(&q).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_transport_close_answers_the_pending_poll_with_a_noop() {
    let h = Harness::start(config()).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    let (poll, ()) = tokio::join!(h.get(&q), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        h.session(0).close(Close::Transport);
    });
    assert_eq!(poll.body, "6");
    assert_eq!(h.closed().await, CloseCause::Server);
    assert_eq!(h.get(&q).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_client_that_stops_polling_is_dropped_past_the_queue_bound() {
    let mut c = config();
    c.max_queue = 4;
    let h = Harness::start(c).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    let session = h.session(0);
    let packet = Arc::new(Packet::text("x"));
    for _ in 0..4 {
        session.send(std::slice::from_ref(&packet)).unwrap();
    }
    assert!(session.send(&[packet]).is_err());
    assert_eq!(h.closed().await, CloseCause::SlowConsumer);
    assert_eq!(h.get(&q).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_body_over_max_payload_is_refused_and_closes_the_session() {
    let mut c = config();
    c.max_payload = 1000;
    let h = Harness::start(c).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    let big = format!("4{}", "x".repeat(1000));
    let answer = h.post(&q, &big).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h.closed().await, CloseCause::TooLarge);
    assert_eq!(h.get(&q).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn allowed_origins_get_cors_headers_and_others_403() {
    let mut c = config();
    c.allowed_origins = vec!["https://app.example".into()];
    let h = Harness::start(c).await;
    let path = "/socket.io/?EIO=4&transport=polling";
    let ok = h
        .request(Method::GET, path, "", &[("origin", "https://app.example")])
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(ok.headers["access-control-allow-credentials"], "true");
    let preflight = h
        .request(
            Method::OPTIONS,
            path,
            "",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-headers", "content-type"),
            ],
        )
        .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        preflight.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let refused = h
        .request(Method::GET, path, "", &[("origin", "https://evil.example")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(code(&refused.body), 4);
    assert_eq!(h.engine.sessions(), 1);
}

#[tokio::test]
async fn a_session_not_connected_in_time_is_closed() {
    let mut c = config();
    c.connect_timeout = Duration::from_millis(150);
    let h = Harness::start_with(c, false).await;
    let q = format!("EIO=4&transport=polling&sid={}", h.handshake().await);
    let poll = h.get(&q).await;
    assert_eq!(poll.body, "1");
    assert_eq!(h.closed().await, CloseCause::ConnectTimeout);
}

#[tokio::test]
async fn sessions_waiting_to_connect_are_bounded() {
    let mut c = config();
    c.max_pending = 1;
    let h = Harness::start_with(c, false).await;
    h.handshake().await;
    let answer = h.get("EIO=4&transport=polling").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    // Connected, it no longer counts.
    h.session(0).mark_connected();
    h.handshake().await;
}
