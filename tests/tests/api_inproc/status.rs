//! `GET /nodes`, health and readiness, and the routers' and nodes'
//! `/metrics`.

use std::collections::BTreeMap;

use serde_json::json;
use testkit::eventually;
use testkit::inproc::Cluster;
use testkit::metrics::{sum, sum_with};

use crate::{WAIT, join};

/// The value of metric `name` of node `id` (`iN`) in `text`, if exported.
fn on(text: &str, name: &str, id: &str) -> Option<f64> {
    sum_with(text, name, &[("node", id)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_lists_every_live_node() {
    let cluster = Cluster::start(3, 2).await;
    for router in &cluster.routers {
        let r = router.http().get("/nodes").await;
        assert_eq!(r.status, 200, "{}", r.text);
        let mut nodes = r.body.as_array().expect("array").clone();
        nodes.sort_by_key(|n| n["id"].as_str().unwrap().to_owned());
        assert_eq!(nodes.len(), 3, "{}", r.text);
        for (node, proc) in nodes.iter().zip(&cluster.nodes) {
            assert_eq!(node["id"], proc.id());
            assert_eq!(node["addr"], format!("http://127.0.0.1:{}", proc.port));
            assert_eq!(node["state"], "active");
            assert_eq!(node["weight"].as_f64(), Some(1.0));
            assert_eq!(node["rooms"], 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_200() {
    let cluster = Cluster::start(3, 2).await;
    let https = cluster
        .routers
        .iter()
        .map(|r| r.http())
        .chain(cluster.nodes.iter().map(|n| n.http()));
    for http in https {
        for path in ["/healthz", "/readyz"] {
            let r = http.get(path).await;
            assert_eq!(r.status, 200, "{} {path}: {}", http.base(), r.text);
        }
    }
    let r = cluster.router(0).http().get("/no/such/endpoint").await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_metrics_are_prometheus_text() {
    let cluster = Cluster::start(3, 2).await;
    let http = cluster.router(0).http();
    for i in 0..4 {
        cluster.create_room(&format!("m{i}")).await;
    }
    assert_eq!(http.get("/rooms/m0").await.status, 200);
    eventually(WAIT, "router_rooms counts the 4 rooms", async || {
        let text = http.get("/metrics").await.text;
        (1..=3)
            .map(|n| sum_with(&text, "router_rooms", &[("node", &format!("i{n}"))]).unwrap_or(-1.0))
            .sum::<f64>()
            == 4.0
    })
    .await;
    let r = http.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        r.header("content-type")
    );
    let text = &r.text;
    for n in 1..=3 {
        assert!(
            sum_with(text, "router_rooms", &[("node", &format!("i{n}"))]).is_some(),
            "router_rooms for i{n} missing:\n{text}"
        );
    }
    assert_eq!(sum(text, "router_nodes"), Some(3.0), "{text}");
    assert_eq!(sum(text, "router_proxy_connections"), Some(0.0), "{text}");
    assert!(text.contains("router_requests_total{"), "{text}");
    assert!(
        text.contains("# TYPE router_requests_total counter"),
        "{text}"
    );
    // A request shows up in the counter with its route and status.
    assert!(
        text.lines().any(|l| l.starts_with("router_requests_total{")
            && l.contains("status=\"201\"")
            && l.contains("/rooms")),
        "no 201 on /rooms counted:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_metrics_count_rooms_connections_and_messages() {
    let cluster = Cluster::start(3, 2).await;
    let mut placed: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..9 {
        let rec = cluster.create_room(&format!("n{i}")).await;
        *placed
            .entry(rec["node"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for node in &cluster.nodes {
        let http = node.http();
        let id = node.id();
        let want = placed.get(&id).copied().unwrap_or(0) as f64;
        let what = format!("roomnode_rooms{{node=\"{id}\"}} == {want}");
        eventually(WAIT, &what, async || {
            on(&http.get("/metrics").await.text, "roomnode_rooms", &id) == Some(want)
        })
        .await;
    }

    // One member sends one message: counted where the room lives.
    let owner = cluster.owner("n0").await;
    let id = owner.id();
    let path = format!("/{id}/room/n0");
    let (mut ws, _) = join(&format!("{}{path}", owner.ws_base()), &[]).await;
    ws.send_json(&json!({"type": "send", "body": 1})).await;
    assert_eq!(ws.recv_until("message", WAIT).await["seq"], 1);
    let http = owner.http();
    // The counters may be bumped just after the frame is written.
    let delivered = "roomnode_messages_delivered_total";
    let latency = "roomnode_delivery_latency_seconds_count";
    eventually(WAIT, "the delivery is counted", async || {
        let text = http.get("/metrics").await.text;
        on(&text, delivered, &id) == Some(1.0) && on(&text, latency, &id) == Some(1.0)
    })
    .await;
    let r = http.get("/metrics").await;
    assert_eq!(r.status, 200);
    let text = &r.text;
    assert_eq!(on(text, "roomnode_active_rooms", &id), Some(1.0), "{text}");
    assert_eq!(on(text, "roomnode_connections", &id), Some(1.0), "{text}");
    assert_eq!(
        on(text, "roomnode_messages_received_total", &id),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        on(text, "roomnode_messages_delivered_total", &id),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        on(text, "roomnode_slow_consumers_total", &id),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "roomnode_delivery_latency_seconds_bucket{{node=\"{id}\",le=\"+Inf\"}} 1"
        )),
        "{text}"
    );
    assert_eq!(
        on(text, "roomnode_delivery_latency_seconds_count", &id),
        Some(1.0),
        "{text}"
    );
}
