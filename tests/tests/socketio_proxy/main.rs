//! The router's Socket.IO paths, in process (`testkit::inproc`):
//! `/room/{id}/socket.io/` passed to the room's owner at
//! `/iN/room/{id}/socket.io/` for every method and both transports, query
//! kept; `/iN/room/{id}/socket.io/` passed through unchanged; `socketio_path`
//! in the room API's answers.
//!
//! Layout: this file holds the helpers the cases share; the cases are in
//! `forwarding.rs` (what reaches the node, checked on stand-in nodes that
//! answer with what they received: `testkit::Upstream`) and `engineio.rs`
//! (Engine.IO sessions through the router to real room nodes).

mod engineio;
mod forwarding;

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use testkit::inproc::Cluster;
use testkit::{Http, Reply, Upstream, metrics};

/// Bound on any one wait for asynchronous state or one answer.
const WAIT: Duration = Duration::from_secs(10);

/// Nodes (real or stand-ins) in each case's cluster.
const NODES: u16 = 3;

/// A cluster of one router and no room node, with [`NODES`] stand-ins
/// registered as `i1`..: rooms are placed on them, so the router sends
/// their clients to them.
async fn stand_ins() -> (Cluster, Vec<Upstream>) {
    let cluster = Cluster::start(0, 1).await;
    let mut nodes = Vec::new();
    for n in 1..=NODES {
        let node = Upstream::start(&format!("i{n}")).await;
        node.register(cluster.store(), n).await;
        nodes.push(node);
    }
    cluster.wait_nodes_seen(NODES.into()).await;
    (cluster, nodes)
}

/// Creates rooms `{prefix}0`, `{prefix}1`, … until every node `i1`..`iN`
/// of the cluster has one: `(room, node)` in node order.
async fn a_room_on_each_node(cluster: &Cluster, prefix: &str) -> Vec<(String, String)> {
    let mut found: Vec<Option<String>> = vec![None; NODES.into()];
    for i in 0..500 {
        let room = format!("{prefix}{i}");
        let rec = cluster.create_room(&room).await;
        let node = rec["node"].as_str().expect("node field");
        let n: usize = node[1..].parse().expect("an instance id");
        found[n - 1].get_or_insert(room);
        if found.iter().all(Option::is_some) {
            return found
                .into_iter()
                .enumerate()
                .map(|(k, room)| (room.expect("found"), format!("i{}", k + 1)))
                .collect();
        }
    }
    panic!("500 rooms and not one on each of {NODES} nodes");
}

/// What a stand-in says reached it (its answer's JSON body).
#[track_caller]
fn record(reply: &Reply) -> &Value {
    assert_eq!(reply.status, 200, "not a stand-in's answer: {}", reply.text);
    assert!(reply.body["upstream"].is_string(), "{}", reply.text);
    &reply.body
}

/// A polling POST as Engine.IO sends it: `body` as text to `path` (query
/// included).
async fn post_text(http: &Http, path: &str, body: &str) -> Reply {
    let text = [("content-type", "text/plain;charset=UTF-8")];
    http.raw(Method::POST, path, &text, Some(body), WAIT).await
}

/// `router_requests_total` of the router behind `http` for `route` and
/// `status`.
async fn requests(http: &Http, route: &str, status: &str) -> f64 {
    let text = metrics::scrape(http).await;
    metrics::value(
        &text,
        "router_requests_total",
        &[("route", route), ("status", status)],
    )
}
