//! Socket.IO on the room node, packet by packet (SPEC "Socket.IO clients";
//! the Engine.IO v4 and Socket.IO v5 protocol documents), in process
//! (`testkit::inproc`) with a raw client of our own: each case pins one
//! rule of the protocols or of the mapping onto rooms, with the exact
//! packets. The real `socket.io-client` is run against the same node by
//! `socketio_client.rs`; the Engine.IO transport's own rules are unit
//! tests of `roomnode::engineio`.
//!
//! Layout: this file (the raw client and helpers), `session.rs` (the
//! handshake's ownership answers, namespaces, malformed packets, the
//! connect timeout), `events.rs` (relay, offsets, acks, binary, native
//! members, polling), `recovery.rs` (connection state recovery over the
//! stream), `lifecycle.rs` (DISCONNECT, private rooms, deletion,
//! shutdown).

mod events;
mod lifecycle;
mod recovery;
mod session;

use std::time::Duration;

use serde_json::Value;
use testkit::WsClient;
use testkit::inproc::Cluster;
use testkit::ws::tungstenite::Message;

/// Bound on any one packet or state change.
const WAIT: Duration = Duration::from_secs(10);

/// A raw Engine.IO session over a WebSocket, answering pings.
struct Sio {
    ws: WsClient,
    /// The Engine.IO open packet's JSON.
    open: Value,
}

/// What the server sent, pings left out.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    /// An Engine.IO message packet's data (the Socket.IO packet).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// The Engine.IO close packet, or the WebSocket's end.
    Closed,
}

impl Sio {
    /// Opens a session on `ws://…/iN/room/{id}/socket.io/` and reads the
    /// open packet.
    async fn open(url: &str) -> Self {
        let url = format!("{url}?EIO=4&transport=websocket");
        let mut ws = WsClient::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
        let first = match ws.recv_message(WAIT).await {
            Some(Message::Text(t)) => t.to_string(),
            other => panic!("expected the open packet, got {other:?}"),
        };
        let open = first
            .strip_prefix('0')
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_else(|| panic!("not an open packet: {first}"));
        Self { ws, open }
    }

    /// Sends a Socket.IO packet (an Engine.IO message).
    async fn send(&mut self, packet: &str) {
        self.ws.send_text(format!("4{packet}")).await;
    }

    async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws.send(Message::Binary(bytes.to_vec().into())).await;
    }

    /// The next packet, answering pings on the way.
    async fn recv(&mut self) -> Got {
        loop {
            match self.ws.recv_message(WAIT).await {
                Some(Message::Text(t)) if t.as_str() == "2" => self.ws.send_text("3").await,
                Some(Message::Text(t)) if t.as_str() == "1" => return Got::Closed,
                Some(Message::Text(t)) => match t.strip_prefix('4') {
                    Some(p) => return Got::Text(p.to_owned()),
                    None => panic!("unexpected Engine.IO packet {t}"),
                },
                Some(Message::Binary(b)) => return Got::Binary(b.to_vec()),
                Some(Message::Close(_)) | None => return Got::Closed,
                Some(other) => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next packet, which must be text.
    async fn text(&mut self) -> String {
        match self.recv().await {
            Got::Text(t) => t,
            other => panic!("expected a text packet, got {other:?}"),
        }
    }

    /// Sends CONNECT to `nsp` (`""` for `/`) with `auth`; the answer.
    async fn connect(&mut self, nsp: &str, auth: Option<&Value>) -> String {
        let sep = if nsp.is_empty() { "" } else { "," };
        let auth = auth.map(Value::to_string).unwrap_or_default();
        self.send(&format!("0{nsp}{sep}{auth}")).await;
        self.text().await
    }

    /// Opens a session and connects to `/`; the CONNECT answer's JSON.
    async fn joined(url: &str, auth: Option<&Value>) -> (Self, Value) {
        let mut s = Self::open(url).await;
        let answer = s.connect("", auth).await;
        let json = answer
            .strip_prefix('0')
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_else(|| panic!("CONNECT refused: {answer}"));
        (s, json)
    }

    /// Whether the server ends the session next (skipping other packets).
    async fn closes(&mut self) -> bool {
        loop {
            if self.recv().await == Got::Closed {
                return true;
            }
        }
    }
}

/// The Socket.IO URL (`ws://…/iN/room/{id}/socket.io/`) of `room`, created
/// through the router, at its owner.
async fn sio_url(cluster: &Cluster, room: &str) -> String {
    let rec = cluster.create_room(room).await;
    let path = rec["path"].as_str().expect("path");
    format!("{}{path}/socket.io/", cluster.owner(room).await.ws_base())
}

/// The native WebSocket URL of `room` at its owner.
async fn native_url(cluster: &Cluster, room: &str) -> String {
    let rec = cluster.record(room).await;
    let path = rec["path"].as_str().expect("path");
    format!("{}{path}", cluster.owner(room).await.ws_base())
}

/// The JSON of a packet after its `prefix` (e.g. `42` or `3/room/x,7`).
fn json_after(packet: &str, prefix: &str) -> Value {
    let rest = packet
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{packet} does not start with {prefix}"));
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("{packet}: {e}"))
}
