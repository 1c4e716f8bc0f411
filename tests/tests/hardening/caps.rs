//! Connection caps per client address: over its cap an address is refused,
//! by the router and by the node, while other addresses are served.

use std::net::Ipv4Addr;

use testkit::{Cluster, Http, eventually, free_port, metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::WAIT;
use super::raw::{CLIENT, OTHER, connect_from, member_from, parse};

/// A plain `GET /healthz` from `from`: its status, or `None` when the
/// connection was closed without an answer.
async fn healthz_from(from: Ipv4Addr, port: u16) -> Option<u16> {
    let mut s = connect_from(from, port).await.ok()?;
    let req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    s.write_all(req).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    (!raw.is_empty()).then(|| parse(&raw).status)
}

#[tokio::test]
async fn an_address_over_its_cap_is_refused_while_the_router_serves_others() {
    let mut cluster = Cluster::start(1, 0).await;
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let args = [
        "--max-connections-per-ip",
        "4",
        "--metrics-listen",
        &metrics_addr,
    ];
    let router = cluster.add_router(&args).await.port;
    let path = cluster.create_room("capped").await["path"]
        .as_str()
        .expect("path")
        .to_owned();

    // Four proxied WebSockets hold the address's four connections.
    let mut members = Vec::new();
    for _ in 0..4 {
        members.push(member_from(CLIENT, router, &path).await.expect("member"));
    }
    assert_eq!(
        healthz_from(CLIENT, router).await,
        None,
        "a fifth connection"
    );
    assert_eq!(
        healthz_from(OTHER, router).await,
        Some(200),
        "another address"
    );
    let text = metrics::scrape(&Http::new(format!("http://{metrics_addr}"))).await;
    assert!(
        metrics::sum_with(&text, "router_rejected_total", &[("reason", "per_ip")])
            .is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // One member leaves: its slot is free again.
    drop(members.pop());
    eventually(WAIT, "the address may connect again", async || {
        healthz_from(CLIENT, router).await == Some(200)
    })
    .await;
}

#[tokio::test]
async fn an_address_over_its_cap_is_refused_by_the_node() {
    let cluster = Cluster::start_with(1, 1, &["--max-connections-per-ip", "2"]).await;
    let path = cluster.create_room("capped").await["path"]
        .as_str()
        .expect("path")
        .to_owned();
    let node = cluster.node(1).port;
    let _a = member_from(CLIENT, node, &path).await.expect("first");
    let _b = member_from(CLIENT, node, &path).await.expect("second");
    assert!(member_from(CLIENT, node, &path).await.is_err(), "a third");
    assert_eq!(healthz_from(OTHER, node).await, Some(200));
}
