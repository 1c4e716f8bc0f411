//! [`Upstream`]: a stand-in for a room node that answers every request with
//! what reached it, so a test sees what a proxy in front of it (the router,
//! nginx) forwarded: method, path, query, headers and body. A plain request
//! gets 200 with that record as JSON, under the headers a Socket.IO polling
//! answer carries (a text content type, CORS, `Set-Cookie`) and hop-by-hop
//! ones a proxy must drop (`Keep-Alive`, `X-Hop` named by `Connection`). A
//! WebSocket upgrade gets 101, then the record as the first text frame,
//! then each text frame echoed back.
//!
//! Query parameters steer it: `hold=<ms>` delays the answer (a long poll
//! held by the node); `redirect=iK` answers 307 to the same path under
//! `/iK` with the rest of the query, as a node answers for a room that has
//! moved to iK.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use proto::record::{NodeRecord, NodeState};
use serde_json::{Map, Value, json};
use store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::ids;

/// Largest request body a stand-in reads (above the router's bound).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Lease of a stand-in registered as a node: it is never renewed, so it
/// outlasts any test.
const LEASE: Duration = Duration::from_secs(3600);

/// A stand-in node on 127.0.0.1; stops when dropped.
pub struct Upstream {
    name: String,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Starts one on a free port; `name` is in every record it answers.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound");
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::<str>::from(name));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            name: name.to_owned(),
            addr,
            task,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Registers it in `store` as room node `iN` (active, weight 1), so
    /// routers place rooms on it and send their clients to it.
    pub async fn register(&self, store: &Store, n: u16) {
        let node = NodeRecord {
            id: ids::iid(n),
            addr: self.url(),
            weight: 1.0,
            state: NodeState::Active,
        };
        store
            .register_node(&node, LEASE)
            .await
            .unwrap_or_else(|e| panic!("registering stand-in i{n}: {e}"));
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `name`'s value in a query string (undecoded).
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

async fn answer(State(name): State<Arc<str>>, mut req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    if let Some(ms) = param(&query, "hold").and_then(|ms| ms.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(to) = param(&query, "redirect") {
        return moved(&path, &query, to);
    }
    let headers: Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_owned(), Value::String(v))
        })
        .collect();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or("*")
        .to_owned();
    let websocket_key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()));
    let upgrade = websocket_key
        .is_some()
        .then(|| hyper::upgrade::on(&mut req));
    let body = axum::body::to_bytes(std::mem::take(req.body_mut()), MAX_BODY)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<unreadable body: {e}>"));
    let record = json!({
        "upstream": &*name,
        "method": req.method().as_str(),
        "path": path,
        "query": query,
        "headers": headers,
        "body": body,
    })
    .to_string();
    if let (Some(accept), Some(upgrade)) = (websocket_key, upgrade) {
        tokio::spawn(echo(upgrade, record));
        return (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, "upgrade".to_owned()),
                (header::UPGRADE, "websocket".to_owned()),
                (header::SEC_WEBSOCKET_ACCEPT, accept),
            ],
        )
            .into_response();
    }
    let mut resp = Response::new(Body::from(record));
    for (name, value) in [
        ("content-type", "text/plain; charset=UTF-8"),
        ("set-cookie", "io=stand-in; Path=/; HttpOnly"),
        ("access-control-allow-origin", origin.as_str()),
        ("access-control-allow-credentials", "true"),
        ("connection", "x-hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
    ] {
        resp.headers_mut()
            .insert(name, value.parse().expect("a valid header value"));
    }
    resp
}

/// 307 to `path` under instance `to`, the query kept but `redirect`.
fn moved(path: &str, query: &str, to: &str) -> Response {
    let rest = path
        .trim_start_matches('/')
        .split_once('/')
        .map_or("", |(_, r)| r);
    let query: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("redirect="))
        .collect();
    let location = format!("/{to}/{rest}?{}", query.join("&"));
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// After a 101: `record`, then every text frame back, until a close.
async fn echo(upgrade: hyper::upgrade::OnUpgrade, record: String) {
    let Ok(upgraded) = upgrade.await else { return };
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    if ws.send(Message::text(record)).await.is_err() {
        return;
    }
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            return;
        }
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}
