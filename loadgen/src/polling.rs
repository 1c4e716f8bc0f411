//! Engine.IO's `polling` transport, the client side, for Socket.IO members
//! of a room node: what `socket.io-client` does with
//! `transports: ["polling"]`, minus the upgrade.
//!
//! The handshake is one GET of `…/socket.io/?EIO=4&transport=polling`,
//! answered with the open packet (its `sid`). Then two tasks per session,
//! each on its own keep-alive connection (as a browser holds them):
//! - the reader keeps one GET `…&sid=…` always pending; each answer is a
//!   payload of packets joined by `\x1e`, handed to the session in order;
//! - the writer POSTs what the session sends, the packets queued while a
//!   POST was in flight joined into the next one (the server refuses a
//!   second concurrent POST, so there is only ever one).
//!
//! A transport failure (a refused request, a non-`ok` POST, a broken
//! connection) ends the session: the session reads it as an error. The
//! tasks are owned by [`Polling`] and stop when it is dropped.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::engineio::{self, Packet};
use crate::net::Endpoint;
use crate::session::ConnectError;

/// Payloads read and not yet taken by the session.
const INCOMING_QUEUE: usize = 64;
/// Packets the session sent that wait for a POST.
const OUTGOING_QUEUE: usize = 256;
/// Most packets joined into one POST.
const MAX_PACKETS_PER_POST: usize = 64;
/// A GET waits at most the server's ping interval + ping timeout for
/// something to answer with; this is added to that.
const POLL_SLACK: Duration = Duration::from_secs(5);
/// One POST's limit.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// The Engine.IO close packet, sent when the session closes.
const CLOSE_PACKET: &str = "1";

/// Why a polling session failed after its handshake.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PollingError {
    /// A GET or POST was answered with this status.
    #[error("http status {0}")]
    Status(u16),
    /// A POST was answered 200 but not `ok`.
    #[error("POST answered {0:?}")]
    NotOk(String),
    /// The request failed (connection, timeout, body).
    #[error("{0}")]
    Request(String),
    /// The session's tasks are gone.
    #[error("transport tasks ended")]
    Gone,
}

/// One polling session: the packets read so far, the writer's queue, the
/// two tasks.
pub struct Polling {
    pending: VecDeque<String>,
    incoming: mpsc::Receiver<Result<String, PollingError>>,
    outgoing: Option<mpsc::Sender<String>>,
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
}

impl Polling {
    /// Opens a session at `endpoint` (`http://…/socket.io/?EIO=4&transport=polling`)
    /// from `source`; the open packet is the first packet [`Polling::next`]
    /// returns.
    pub async fn open(endpoint: &Endpoint, source: Option<Ipv4Addr>) -> Result<Self, ConnectError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .local_address(source.map(IpAddr::V4))
            .build()
            .map_err(|e| ConnectError::Protocol(format!("HTTP client: {e}")))?;
        let body = match get(&http, &endpoint.url, POST_TIMEOUT).await {
            Ok(body) => body,
            Err(PollingError::Status(s)) => return Err(ConnectError::Http(s)),
            Err(e) => return Err(ConnectError::Tcp(std::io::Error::other(e.to_string()))),
        };
        let open = match engineio::split_payload(&body).next().map(engineio::parse) {
            Some(Ok(Packet::Open(open))) => open,
            other => {
                return Err(ConnectError::Protocol(format!(
                    "expected an Engine.IO open packet, got {other:?}"
                )));
            }
        };
        let url = format!("{}&sid={}", endpoint.url, open.sid);
        let longest_poll =
            Duration::from_millis(open.ping_interval + open.ping_timeout) + POLL_SLACK;
        let (in_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let (out_tx, out_rx) = mpsc::channel(OUTGOING_QUEUE);
        let reader = tokio::spawn(read_loop(
            http.clone(),
            url.clone(),
            longest_poll,
            in_tx.clone(),
        ));
        let writer = tokio::spawn(write_loop(http, url, out_rx, in_tx));
        Ok(Self {
            pending: engineio::split_payload(&body).map(str::to_owned).collect(),
            incoming,
            outgoing: Some(out_tx),
            reader,
            writer: Some(writer),
        })
    }

    /// The next packet from the server; `Ok(None)` once the reader has
    /// stopped without an error. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<String>, PollingError> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Ok(Some(p));
            }
            match self.incoming.recv().await {
                Some(Ok(body)) => self
                    .pending
                    .extend(engineio::split_payload(&body).map(str::to_owned)),
                Some(Err(e)) => return Err(e),
                None => return Ok(None),
            }
        }
    }

    /// Queues one packet for the writer.
    pub async fn send(&mut self, packet: String) -> Result<(), PollingError> {
        let tx = self.outgoing.as_ref().ok_or(PollingError::Gone)?;
        tx.send(packet).await.map_err(|_| PollingError::Gone)
    }

    /// Sends the close packet and waits at most `timeout` for the writer
    /// to post it; the reader stops.
    pub async fn close(mut self, timeout: Duration) {
        if let Some(tx) = self.outgoing.take() {
            let _ = tx.try_send(CLOSE_PACKET.to_owned());
        }
        if let Some(writer) = self.writer.as_mut() {
            let _ = tokio::time::timeout(timeout, writer).await;
        }
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        self.reader.abort();
        if let Some(w) = &self.writer {
            w.abort();
        }
    }
}

/// Keeps one GET pending and hands each payload over, until a request
/// fails or the session is gone.
async fn read_loop(
    http: reqwest::Client,
    url: String,
    longest: Duration,
    tx: mpsc::Sender<Result<String, PollingError>>,
) {
    loop {
        let read = get(&http, &url, longest).await;
        let failed = read.is_err();
        if tx.send(read).await.is_err() || failed {
            return;
        }
    }
}

/// POSTs the queued packets, joined, one request at a time, until the
/// queue closes or a POST fails (reported to the session).
async fn write_loop(
    http: reqwest::Client,
    url: String,
    mut rx: mpsc::Receiver<String>,
    failures: mpsc::Sender<Result<String, PollingError>>,
) {
    while let Some(mut body) = rx.recv().await {
        let mut n = 1;
        while n < MAX_PACKETS_PER_POST {
            let Ok(more) = rx.try_recv() else { break };
            body.push(engineio::RECORD_SEPARATOR);
            body.push_str(&more);
            n += 1;
        }
        if let Err(e) = post(&http, &url, body).await {
            let _ = failures.send(Err(e)).await;
            return;
        }
    }
}

async fn get(http: &reqwest::Client, url: &str, timeout: Duration) -> Result<String, PollingError> {
    let resp = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(request_error)?;
    if !resp.status().is_success() {
        return Err(PollingError::Status(resp.status().as_u16()));
    }
    resp.text().await.map_err(request_error)
}

async fn post(http: &reqwest::Client, url: &str, body: String) -> Result<(), PollingError> {
    let resp = http
        .post(url)
        .timeout(POST_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .body(body)
        .send()
        .await
        .map_err(request_error)?;
    if !resp.status().is_success() {
        return Err(PollingError::Status(resp.status().as_u16()));
    }
    let text = resp.text().await.map_err(request_error)?;
    if text != "ok" {
        return Err(PollingError::NotOk(text.chars().take(64).collect()));
    }
    Ok(())
}

fn request_error(e: reqwest::Error) -> PollingError {
    PollingError::Request(e.to_string())
}
