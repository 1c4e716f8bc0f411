//! Keep-alive: the node pings quiet members (here every second) and drops
//! one that stays silent for two intervals, pong included; a member whose
//! client answers pings (as every WebSocket client does while it reads)
//! stays, however quiet the room.

use std::time::Duration;

use serde_json::json;
use testkit::ws::tungstenite::Message;
use testkit::{Cluster, WsClient};
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn quiet_members_are_pinged_and_silent_ones_dropped() {
    let cluster = Cluster::start_with(1, 1, &["--ping-interval", "1"]).await;
    cluster.create_room("quiet").await;
    let url = format!("{}/room/quiet", cluster.router(0).ws_base());
    let mut reader = WsClient::connect(&url).await.expect("join");
    assert_eq!(reader.recv_json(WAIT).await["type"], "welcome");
    let mut silent = WsClient::connect(&url).await.expect("join");

    // For 3.5 s the reader only reads: it sees pings (its client answers
    // them) and nothing ends its connection. The time passing is the test.
    let until = Instant::now() + Duration::from_millis(3500);
    let mut pings = 0;
    while Instant::now() < until {
        match reader.next_frame(until - Instant::now()).await {
            Some(Some(Ok(Message::Ping(_)))) => pings += 1,
            Some(Some(Ok(Message::Close(c)))) => {
                panic!("a member that answers pings was closed: {c:?}")
            }
            Some(None | Some(Err(_))) => panic!("the reader's connection ended"),
            _ => {}
        }
    }
    assert!(pings >= 2, "quiet member pinged {pings} times in 3.5 s");
    reader
        .send_json(&json!({"type": "send", "body": "still here"}))
        .await;
    let m = loop {
        let v = reader.recv_json(WAIT).await;
        if v["type"] == "message" {
            break v;
        }
    };
    assert_eq!(m["body"], "still here");

    // The silent client read nothing, so it never answered: it was dropped
    // with 1001 after two intervals.
    let mut close = None;
    while let Some(msg) = silent.recv_message(WAIT).await {
        if let Message::Close(frame) = msg {
            close = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(close, Some(1001));
}
