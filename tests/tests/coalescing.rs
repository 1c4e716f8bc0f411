//! Write coalescing (`--flush-window-ms`): frames held back for the window
//! still all arrive, in order, and a close still comes after them.

use std::time::Duration;

use serde_json::json;
use testkit::Cluster;
use testkit::ws::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn held_back_frames_all_arrive_in_order_before_the_close() {
    let cluster = Cluster::start_with(1, 1, &["--flush-window-ms", "30"]).await;
    cluster.create_room("batched").await;
    let url = format!("{}/i1/room/batched", cluster.node(1).ws_base());
    let mut a = testkit::WsClient::connect(&url).await.expect("join");
    assert_eq!(a.recv_json(WAIT).await["type"], "welcome");
    let mut b = testkit::WsClient::connect(&url).await.expect("join");
    assert_eq!(b.recv_json(WAIT).await["type"], "welcome");
    assert_eq!(a.recv_json(WAIT).await["type"], "joined");
    for n in 1..=100 {
        a.send_json(&json!({"type": "send", "body": n})).await;
    }
    for c in [&mut a, &mut b] {
        for n in 1..=100u64 {
            let m = c.recv_json(WAIT).await;
            assert_eq!(
                (m["seq"].as_u64(), m["body"].as_u64()),
                (Some(n), Some(n)),
                "{m}"
            );
        }
    }
    // A few more, then the room is deleted: they come before the close.
    for n in 101..=105 {
        a.send_json(&json!({"type": "send", "body": n})).await;
    }
    let seen = loop {
        // Delete once b has the first of them, so some are still held back.
        let m = b.recv_json(WAIT).await;
        if m["seq"] == 101 {
            break 101;
        }
    };
    assert_eq!(
        cluster
            .router(0)
            .http()
            .delete("/rooms/batched")
            .await
            .status,
        204
    );
    let mut last = seen;
    let mut close = None;
    while let Some(msg) = b.recv_message(WAIT).await {
        match msg {
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "message" {
                    assert_eq!(v["seq"].as_u64(), Some(last + 1), "{v}");
                    last += 1;
                }
            }
            Message::Close(f) => {
                close = f.map(|f| u16::from(f.code));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(last, 105, "every accepted message arrived before the close");
    assert_eq!(close, Some(1000));
}
