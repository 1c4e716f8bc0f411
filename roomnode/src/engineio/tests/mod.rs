//! The engine served on a real listener (port 0, the node's own HTTP
//! loop) with an echo handler, driven by real HTTP and WebSocket clients:
//! the behaviours of the official suite's "Engine.IO protocol" part, and
//! the engine's own (limits, closes, shutdown).
//!
//! Layout: this file (the harness), `polling`, `websocket`, `upgrade`,
//! `suite` (the engine served for the official suite, run by hand).

mod polling;
mod suite;
mod upgrade;
mod websocket;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

use super::{CloseCause, Engine, EngineConfig, Handler, Message, Packet, Session};
use crate::metrics::Metrics;

/// The official suite's timings.
pub(super) const PING_INTERVAL: Duration = Duration::from_millis(300);
pub(super) const PING_TIMEOUT: Duration = Duration::from_millis(200);

/// Bound on any wait in these tests.
const WAIT: Duration = Duration::from_secs(5);

/// Closes reported, at most this many waiting.
const CLOSES: usize = 64;

pub(super) fn config() -> EngineConfig {
    EngineConfig {
        ping_interval: PING_INTERVAL,
        ping_timeout: PING_TIMEOUT,
        connect_timeout: Duration::from_secs(10),
        max_payload: 1_000_000,
        max_queue: 64,
        max_pending: 100,
        allowed_origins: Vec::new(),
    }
}

/// Sends every message back; reports its close.
struct Echo {
    closes: mpsc::Sender<CloseCause>,
}

impl Handler for Echo {
    fn on_message(&self, session: &Arc<Session>, msg: Message) {
        let packet = match msg {
            Message::Text(text) => Packet::text(text),
            Message::Binary(bytes) => Packet::binary(bytes),
        };
        let _ = session.send(&[Arc::new(packet)]);
    }

    fn on_close(&self, _: &Arc<Session>, cause: CloseCause) {
        let _ = self.closes.try_send(cause);
    }
}

struct Shared {
    engine: Engine,
    closes: mpsc::Sender<CloseCause>,
    opened: Mutex<Vec<Arc<Session>>>,
    /// Sessions are marked connected as they open.
    connect: bool,
}

/// An engine on a port, its sessions and closes.
pub(super) struct Harness {
    pub(super) addr: SocketAddr,
    pub(super) engine: Engine,
    shared: Arc<Shared>,
    closes: tokio::sync::Mutex<mpsc::Receiver<CloseCause>>,
    http: Client<HttpConnector, Full<Bytes>>,
    stop: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A session path's request: `/socket.io/` (and `/engine.io/`, the
/// engine.io-protocol suite's path) is room `lobby`'s, `/other/` room
/// `other`'s.
async fn session_path(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let scope = match req.uri().path() {
        "/other/" => "other",
        _ => "lobby",
    };
    let engine = shared.engine.clone();
    engine
        .serve(req, scope, async |session: &Arc<Session>| {
            shared.opened.lock().unwrap().push(session.clone());
            if shared.connect {
                session.mark_connected();
            }
            let echo: Arc<dyn Handler> = Arc::new(Echo {
                closes: shared.closes.clone(),
            });
            Ok(echo)
        })
        .await
}

/// An HTTP answer.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: String,
}

pub(super) type Ws = WebSocketStream<TcpStream>;

impl Harness {
    pub(super) async fn start(config: EngineConfig) -> Self {
        Self::start_with(config, true).await
    }

    /// With `connect` false, sessions are never marked connected.
    pub(super) async fn start_with(config: EngineConfig, connect: bool) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), config, connect).await
    }

    pub(super) async fn start_on(addr: SocketAddr, config: EngineConfig, connect: bool) -> Self {
        let metrics = Arc::new(Metrics::new("i1".parse().unwrap()));
        let engine = Engine::new(config, metrics);
        let (tx, rx) = mpsc::channel(CLOSES);
        let shared = Arc::new(Shared {
            engine: engine.clone(),
            closes: tx,
            opened: Mutex::new(Vec::new()),
            connect,
        });
        let app = Router::new()
            .route("/socket.io/", any(session_path))
            .route("/other/", any(session_path))
            .route("/engine.io/", any(session_path))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let until = stop.clone().cancelled_owned();
        tokio::spawn(service::server::serve(
            listener,
            app,
            until,
            Default::default(),
        ));
        Self {
            addr,
            engine,
            shared,
            closes: tokio::sync::Mutex::new(rx),
            http: Client::builder(TokioExecutor::new()).build_http(),
            stop,
        }
    }

    /// The sessions opened so far, in order.
    pub(super) fn session(&self, i: usize) -> Arc<Session> {
        self.shared.opened.lock().unwrap()[i].clone()
    }

    /// The next session close reported to a handler.
    pub(super) async fn closed(&self) -> CloseCause {
        let mut closes = self.closes.lock().await;
        tokio::time::timeout(WAIT, closes.recv())
            .await
            .expect("a close in time")
            .expect("the harness lives")
    }

    pub(super) async fn request(
        &self,
        method: Method,
        path_query: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path_query}", self.addr));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .unwrap();
        let resp = tokio::time::timeout(WAIT, self.http.request(req))
            .await
            .expect("an answer in time")
            .expect("an answer");
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// A GET on the lobby's session path with this query.
    pub(super) async fn get(&self, query: &str) -> Answer {
        let path = format!("/socket.io/?{query}");
        self.request(Method::GET, &path, "", &[]).await
    }

    pub(super) async fn post(&self, query: &str, body: &str) -> Answer {
        let path = format!("/socket.io/?{query}");
        self.request(Method::POST, &path, body, &[]).await
    }

    /// A new polling session's id.
    pub(super) async fn handshake(&self) -> String {
        let answer = self.get("EIO=4&transport=polling").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        open_packet(&answer.body)["sid"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A WebSocket on the lobby's session path with this query.
    pub(super) async fn ws(
        &self,
        query: &str,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let url = format!("ws://{}/socket.io/?{query}", self.addr);
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, stream))
            .await
            .expect("a handshake in time")?;
        Ok(ws)
    }
}

/// The open packet's JSON.
pub(super) fn open_packet(text: &str) -> serde_json::Value {
    assert!(text.starts_with('0'), "{text}");
    serde_json::from_str(&text[1..]).unwrap()
}

/// The next frame that is not a ping packet (`2`), within the bound.
pub(super) async fn next(ws: &mut Ws) -> Option<WsMessage> {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time");
        match frame {
            Some(Ok(WsMessage::Text(t))) if t.as_str() == "2" => continue,
            Some(Ok(msg)) => return Some(msg),
            Some(Err(_)) | None => return None,
        }
    }
}

/// The next text frame, pings included.
pub(super) async fn next_text(ws: &mut Ws) -> String {
    let frame = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a frame in time");
    match frame {
        Some(Ok(WsMessage::Text(t))) => t.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Reads until the server's close frame, then on (which sends the close
/// reply) until the server ends the connection; the close's code.
pub(super) async fn close_code(ws: &mut Ws) -> Option<u16> {
    let code = loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a close in time");
        match frame {
            Some(Ok(WsMessage::Close(frame))) => break frame.map(|f| f.code.into()),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    };
    let end = async { while ws.next().await.is_some() {} };
    tokio::time::timeout(WAIT, end)
        .await
        .expect("the server ends the connection after its close");
    code
}
