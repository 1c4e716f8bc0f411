//! Moving rooms off nodes end to end (SPEC "Command line", README
//! "Operations"): `router drain iN` empties a node live, members following
//! `moved` lose nothing; a node killed with SIGKILL has its rooms failed over
//! by the routers' reconciler without anyone asking; a handoff interrupted by
//! the death of the old owner converges to exactly one owner; and
//! `POST /admin/rebalance` plans and moves with its auth and metrics.
//!
//! Each test starts its own cluster on free ports. Every wait is bounded
//! (`eventually` or a bounded receive); nothing sleeps to synchronise.
//!
//! Layout: this file holds what the tests share; `drain.rs`, `failover.rs`
//! (a killed node, an interrupted move) and `admin.rs` the tests.

mod admin;
mod drain;
mod failover;

use std::process::ExitStatus;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::cluster::TEST_LEASE_TTL;
use testkit::ws::tungstenite::Error;
use testkit::{Cluster, Http, WsClient, next};

/// Bound on any one frame, handshake or state change.
const WAIT: Duration = Duration::from_secs(10);

/// The nodes' lease TTL in test clusters.
const TTL: Duration = Duration::from_secs(TEST_LEASE_TTL);

/// Bound on a dead node's rooms having a new owner: the TTL plus slack for
/// the reconciler (every second) and the mirrors.
const FAILOVER: Duration = Duration::from_secs(TEST_LEASE_TTL + 10);

/// Bound on one `router` command.
const COMMAND: Duration = Duration::from_secs(30);

/// The admin token of routers started with `--admin-token`.
const ADMIN: &str = "admin-token-0123456789";

// ---------------------------------------------------------------------------
// Helpers.

/// `c` (the room's only member) sends `body` and gets it back as `seq`.
async fn say(c: &mut WsClient, seq: u64, body: &Value) {
    c.send_json(&json!({"type": "send", "body": body})).await;
    let m = next(c, "message").await;
    assert_eq!(m["seq"], seq, "{m}");
    assert_eq!(&m["body"], body, "{m}");
}

/// The body of message `n` in `room`.
fn body(room: &str, n: u64) -> Value {
    json!({"room": room, "n": n})
}

/// Runs `router <args>` against the cluster until it exits; its exit status
/// and output.
async fn router_cmd(cluster: &Cluster, args: &[&str]) -> (ExitStatus, String) {
    cluster.run_router_command(args, COMMAND).await
}

/// The ids of the rooms router `http` lists on `node` (one page of 1000).
async fn listed_on(http: &Http, node: &str) -> Vec<String> {
    let r = http.get(&format!("/rooms?node={node}&limit=1000")).await;
    assert_eq!(r.status, 200, "GET /rooms?node={node}: {}", r.text);
    assert!(r.body.get("next").is_none(), "one page: {}", r.text);
    r.body["rooms"]
        .as_array()
        .expect("rooms array")
        .iter()
        .map(|v| v["id"].as_str().expect("room id").to_owned())
        .collect()
}

/// The entry for `node` in router `http`'s `GET /nodes`, if listed.
async fn node_view(http: &Http, node: &str) -> Option<Value> {
    let r = http.get("/nodes").await;
    assert_eq!(r.status, 200, "GET /nodes: {}", r.text);
    r.body
        .as_array()
        .expect("GET /nodes is an array")
        .iter()
        .find(|n| n["id"] == node)
        .cloned()
}

/// `POST /admin/rebalance` on `base` with `body`, with `bearer` if given;
/// status and JSON answer.
async fn admin_rebalance(base: &str, bearer: Option<&str>, body: &Value) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .expect("HTTP client");
    let mut req = client.post(format!("{base}/admin/rebalance")).json(body);
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {base}/admin/rebalance: no answer: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("admin answer body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("admin answer is not JSON ({e}): {status} {text}"));
    (status, value)
}

/// The `moves` of an admin answer's plan, as (room, from, to, epoch).
fn moves(answer: &Value) -> Vec<(String, String, String, u64)> {
    answer["plan"]["moves"]
        .as_array()
        .unwrap_or_else(|| panic!("plan.moves in {answer}"))
        .iter()
        .map(|m| {
            (
                m["room"].as_str().expect("room").to_owned(),
                m["from"].as_str().expect("from").to_owned(),
                m["to"].as_str().expect("to").to_owned(),
                m["epoch"].as_u64().expect("epoch"),
            )
        })
        .collect()
}

/// A WebSocket join at `url` must be refused with a 307 to `location`.
async fn expect_redirect(url: &str, location: &str) {
    match WsClient::connect(url).await {
        Err(Error::Http(resp)) => {
            assert_eq!(resp.status(), 307, "joining {url}: {resp:?}");
            let got = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert_eq!(got, location, "307 from {url}");
        }
        Err(e) => panic!("joining {url}: expected a 307, got {e}"),
        Ok(mut c) => {
            let first = c.recv_json(WAIT).await;
            panic!("joining {url}: expected a 307 to {location}, got a connection: {first}")
        }
    }
}
