//! Limits with clear answers: members per room, connections per node,
//! messages per connection, browser origins. Each refusal says why and is
//! counted in `roomnode_rejected_total{reason}`.

use std::time::Duration;

use serde_json::json;
use testkit::ws::tungstenite::{Error, Message};
use testkit::{Cluster, WsClient, metrics};

const WAIT: Duration = Duration::from_secs(10);

async fn join(url: &str, headers: &[(&str, &str)]) -> Result<WsClient, Error> {
    let mut c = WsClient::connect_with_headers(url, headers).await?;
    assert_eq!(c.recv_json(WAIT).await["type"], "welcome");
    Ok(c)
}

/// The status and error code of a refused handshake.
fn refusal(result: Result<WsClient, Error>) -> (u16, String) {
    let (status, code) = testkit::ws::refusal(result, "join");
    (status, code.unwrap_or_default())
}

/// `roomnode_rejected_total` of i1 for `reason`.
async fn rejected(cluster: &Cluster, reason: &str) -> f64 {
    let text = cluster.node(1).http().get("/metrics").await.text;
    let labels = [("reason", reason), ("node", "i1")];
    metrics::value(&text, "roomnode_rejected_total", &labels)
}

#[tokio::test]
async fn rooms_and_nodes_have_member_and_connection_limits() {
    let cluster =
        Cluster::start_with(1, 1, &["--max-members", "2", "--max-connections", "3"]).await;
    let ws = cluster.node(1).ws_base();
    cluster.create_room("small").await;
    cluster.create_room("other").await;
    let _a = join(&format!("{ws}/i1/room/small"), &[]).await.unwrap();
    let _b = join(&format!("{ws}/i1/room/small"), &[]).await.unwrap();
    assert_eq!(
        refusal(join(&format!("{ws}/i1/room/small"), &[]).await),
        (503, "room_full".into())
    );
    let _c = join(&format!("{ws}/i1/room/other"), &[]).await.unwrap();
    assert_eq!(
        refusal(join(&format!("{ws}/i1/room/other"), &[]).await),
        (503, "node_full".into())
    );
    assert_eq!(rejected(&cluster, "room_full").await, 1.0);
    assert_eq!(rejected(&cluster, "node_full").await, 1.0);
    // A slot frees when its member leaves.
    drop(_c);
    testkit::eventually(WAIT, "a freed slot takes a new member", async || {
        join(&format!("{ws}/i1/room/other"), &[]).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_flooding_client_is_refused_then_closed() {
    let cluster = Cluster::start_with(1, 1, &["--rate", "5", "--burst", "5"]).await;
    cluster.create_room("flood").await;
    let mut c = join(&format!("{}/i1/room/flood", cluster.node(1).ws_base()), &[])
        .await
        .unwrap();
    for n in 0..8 {
        c.send_json(&json!({"type": "send", "body": n})).await;
    }
    let (mut accepted, mut limited) = (0, 0);
    for _ in 0..8 {
        let v = c.recv_json(WAIT).await;
        match v["type"].as_str() {
            Some("message") => accepted += 1,
            Some("error") if v["code"] == "rate_limited" => limited += 1,
            _ => panic!("unexpected {v}"),
        }
    }
    assert!(
        (5..=6).contains(&accepted),
        "accepted {accepted} of a burst of 5"
    );
    assert_eq!(accepted + limited, 8);
    // Keeping at it past another burst of refusals ends the connection.
    for n in 0..20 {
        c.send_json(&json!({"type": "send", "body": n})).await;
    }
    let mut close = None;
    while let Some(msg) = c.recv_message(WAIT).await {
        if let Message::Close(frame) = msg {
            close = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(close, Some(1008));
}

#[tokio::test]
async fn only_allowed_browser_origins_may_join() {
    let cluster =
        Cluster::start_with(1, 1, &["--allowed-origins", "https://chat.example.com"]).await;
    cluster.create_room("web").await;
    let url = format!("{}/i1/room/web", cluster.node(1).ws_base());
    assert!(
        join(&url, &[("Origin", "https://chat.example.com")])
            .await
            .is_ok()
    );
    assert!(
        join(&url, &[]).await.is_ok(),
        "clients without Origin are not browsers"
    );
    assert_eq!(
        refusal(join(&url, &[("Origin", "https://evil.example")]).await),
        (403, "origin_not_allowed".into())
    );
    assert_eq!(rejected(&cluster, "origin").await, 1.0);
}
