//! The replication stream between an owner and one replica node
//! ([`proto::replication`]): one WebSocket per node pair, opened by the
//! owner, carrying one [`Batch`] and then its [`Ack`] at a time.
//!
//! A long-lived connection rather than an HTTP request per batch: at the
//! rates rooms send (a few hundred messages a second per node pair) a
//! batch is usually one message, so the per-batch cost is the whole cost
//! of replication, and a request through the pooled client, the router and
//! the key check costs several times two frames on an open socket.
//!
//! The owner's side is [`Stream`] (used by [`super::link`]); the
//! replica's, [`serve`]. The key is checked once, on the upgrade, by the
//! internal routes' layer.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use proto::replication::{Ack, Batch};
use service::client::{InternalClient, ReplicaSocket};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::member::upgrade::Upgrade;
use crate::node::Node;

/// Bound on closing a stream politely.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The owner's end of the stream to one replica: connected on first use,
/// and again after any failure (a failed round trip drops the connection,
/// so an answer that comes late never meets a later batch).
pub(super) struct Stream {
    client: InternalClient,
    open: Option<(String, ReplicaSocket)>,
}

impl Stream {
    pub(super) fn new(client: InternalClient) -> Self {
        Self { client, open: None }
    }

    /// Sends batch `number` (`body`, its JSON) to the replica at `addr` and
    /// reads its answer, connecting first if need be, all `within` the
    /// bound. Any failure, the bound's too, drops the connection: an answer
    /// still on its way must not be read as the next batch's.
    pub(super) async fn round_trip(
        &mut self,
        addr: &str,
        number: u64,
        body: String,
        within: Duration,
    ) -> Result<Ack, String> {
        let answer = tokio::time::timeout(within, self.exchange(addr, number, body))
            .await
            .unwrap_or_else(|_| Err(format!("no answer in {within:?}")));
        if answer.is_err() {
            self.open = None;
        }
        answer
    }

    async fn exchange(&mut self, addr: &str, number: u64, body: String) -> Result<Ack, String> {
        if self.open.as_ref().is_none_or(|(a, _)| a != addr) {
            let socket = self
                .client
                .open_replication(addr)
                .await
                .map_err(|e| e.to_string())?;
            tracing::debug!(replica = addr, "replication stream open");
            self.open = Some((addr.to_owned(), socket));
        }
        let (_, socket) = self.open.as_mut().expect("just opened");
        socket
            .send(Message::text(body))
            .await
            .map_err(|e| format!("sending: {e}"))?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    let ack: Ack = serde_json::from_str(t.as_str())
                        .map_err(|e| format!("unreadable answer: {e}"))?;
                    return if ack.batch == number {
                        Ok(ack)
                    } else {
                        Err(format!("answer to batch {} for batch {number}", ack.batch))
                    };
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(match frame {
                        Some(f) => format!("closed by the replica: {} {}", f.code, f.reason),
                        None => "closed by the replica".to_owned(),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("reading: {e}")),
                None => return Err("connection closed".to_owned()),
            }
        }
    }
}

/// `GET /internal/replicate`: an owner's stream. Each batch is applied to
/// the copies and answered, in order, until the owner closes it or this
/// node stops. `max_bytes` bounds one batch (a copy is a room's history).
pub(crate) async fn serve(
    State(node): State<Node>,
    upgrade: Upgrade,
    max_bytes: usize,
) -> Response {
    let config = node
        .websocket_config()
        .max_message_size(Some(max_bytes))
        .max_frame_size(Some(max_bytes));
    let tracker = node.sessions().clone();
    upgrade.accept(config, &tracker, move |accepted| async move {
        let socket = accepted.into_plain_socket().await;
        answer(node, socket).await;
    })
}

async fn answer(node: Node, mut socket: WebSocketStream<TcpStream>) {
    let stop = node.stopping().clone();
    let close = loop {
        let msg = tokio::select! {
            m = socket.next() => m,
            () = stop.cancelled() => break Some((CloseCode::Away, "the replica is stopping".to_owned())),
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Binary(_))) => {
                break Some((CloseCode::Unsupported, "batches are text frames".to_owned()));
            }
            Some(Ok(Message::Close(_))) | None => break None,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "replication stream broken");
                return;
            }
        };
        let batch: Batch<'_> = match serde_json::from_str(text.as_str()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "not a replication batch; closing the stream");
                break Some((CloseCode::Invalid, format!("not a replication batch: {e}")));
            }
        };
        let ack = node.replication().copies().apply(batch, node.rooms());
        let json = serde_json::to_string(&ack).expect("acks serialize");
        if let Err(e) = socket.send(Message::text(json)).await {
            tracing::debug!(error = %e, "replication stream broken");
            return;
        }
    };
    let frame = close.map(|(code, reason)| CloseFrame {
        code,
        reason: reason.into(),
    });
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(frame)).await;
}
