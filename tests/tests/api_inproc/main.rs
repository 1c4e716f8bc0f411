//! The router's HTTP API end to end, in process (`testkit::inproc`: the
//! real `roomnode::run` and `router::run` on one memory store, three room
//! nodes and two routers per case): `POST/GET/DELETE /rooms`, pagination,
//! placement spread, the admin token, private rooms and their join tokens,
//! `GET /nodes`, health, readiness and metrics. The cases that need the real
//! binaries or a real etcd are in `api_processes.rs`.
//!
//! Lists and node counts come from each router's mirror of the store, which
//! follows writes through a watch: those are awaited with `eventually`.
//! Single-room reads and writes are asserted at once.
//!
//! Layout: this file holds the helpers the cases share; the cases are by
//! topic: `create.rs` (`POST /rooms`, placement), `list.rs` (`GET /rooms`
//! and `/rooms/{id}`), `delete.rs` (`DELETE` and the admin token),
//! `private.rs` (private rooms and join tokens), `status.rs` (`/nodes`,
//! health, readiness, metrics).

mod create;
mod delete;
mod list;
mod private;
mod status;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{Value, json};
use testkit::inproc::Cluster;
use testkit::{Http, Reply, WsClient};

/// Bound on any one wait for asynchronous state.
const WAIT: Duration = Duration::from_secs(10);
/// The admin token of the router that has one.
const ADMIN_TOKEN: &str = "admin-token-0123456789";
/// The rule every refused room id must name.
const ROOM_ID_RULE: &str = "[A-Za-z0-9_-]";

/// Any request with a raw body and extra headers, which [`Http`] cannot send.
async fn raw(
    http: &Http,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .expect("HTTP client");
    let mut req = client.request(method.clone(), http.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("read body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| {
        if text.is_empty() {
            Value::Null
        } else {
            Value::String(text.clone())
        }
    });
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// Asserts `reply` is the error `code` with `status`, with a message.
#[track_caller]
fn assert_error(reply: &Reply, status: u16, code: &str) {
    reply.assert_error(status, code);
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error without a message: {}",
        reply.text
    );
}

/// A WebSocket connect to `url` that the server must refuse: the refusal's
/// status and error code. The code comes from the handshake answer's body
/// when tungstenite has read it, else from the same request without the
/// upgrade (the node checks tokens before it asks for an upgrade), whose
/// status must then agree.
async fn ws_refusal(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let status = match testkit::ws::refusal(WsClient::connect_with_headers(url, headers).await, url)
    {
        (status, Some(code)) => return (status, code),
        (status, None) => status,
    };
    let http_url = url.replacen("ws://", "http://", 1);
    let plain = raw(&Http::new(""), Method::GET, &http_url, headers, None).await;
    assert_eq!(
        plain.status, status,
        "{url}: the plain GET is refused otherwise: {}",
        plain.text
    );
    (
        status,
        plain.body["error"].as_str().unwrap_or("").to_owned(),
    )
}

/// Joins `url`; the welcome frame.
async fn join(url: &str, headers: &[(&str, &str)]) -> (WsClient, Value) {
    let mut ws = WsClient::connect_with_headers(url, headers)
        .await
        .unwrap_or_else(|e| panic!("join {url}: {e}"));
    let welcome = ws.recv_json(WAIT).await;
    assert_eq!(welcome["type"], "welcome", "first frame of {url}");
    (ws, welcome)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Every room of `GET /rooms` (optionally of one node), following `next`
/// with pages of `limit`; checks each page's order and `next`.
async fn list_all(http: &Http, node: Option<&str>, limit: usize) -> Vec<Value> {
    let filter = node.map(|n| format!("&node={n}")).unwrap_or_default();
    let mut rooms = Vec::new();
    let mut after = String::new();
    loop {
        let page = http
            .get(&format!("/rooms?limit={limit}{filter}{after}"))
            .await;
        assert_eq!(page.status, 200, "GET /rooms: {}", page.text);
        let batch = page.body["rooms"].as_array().expect("rooms array").clone();
        assert!(batch.len() <= limit, "page longer than {limit}");
        let ids: Vec<&str> = batch.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert!(ids.is_sorted(), "page not in id order: {ids:?}");
        rooms.extend(batch.iter().cloned());
        match page.body.get("next") {
            None => return rooms,
            Some(next) => {
                assert_eq!(
                    Some(next),
                    batch.last().map(|r| &r["id"]),
                    "next is the last id"
                );
                after = format!("&after={}", next.as_str().unwrap());
            }
        }
    }
}

/// Creates a private room through router 0; its record (with `token`).
async fn create_private(cluster: &Cluster, id: &str) -> Value {
    let r = cluster
        .router(0)
        .http()
        .post_json("/rooms", &json!({"id": id, "private": true}))
        .await;
    assert_eq!(r.status, 201, "POST private {id}: {}", r.text);
    assert_eq!(r.body["private"], true);
    assert!(
        r.body["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("v1.")),
        "private room without a token: {}",
        r.text
    );
    r.body
}
