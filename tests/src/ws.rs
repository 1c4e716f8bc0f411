//! [`WsClient`]: the kit's one WebSocket client, speaking one JSON object
//! per text frame. Connecting returns tungstenite's error untouched, so a
//! test can assert on an HTTP refusal (`Error::Http(response)` with its
//! status, e.g. 404 or 307); every receive is bounded and panics with what
//! it was waiting for.
//!
//! Clients that must survive what they meet (the live traffic of
//! [`crate::traffic`], the fault phases of [`crate::faults`]) use the
//! `try_` forms, which return what went wrong instead of panicking, and
//! [`WsClient::read_frame`], which a `select!` may cancel.

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use tokio_tungstenite::tungstenite;

/// Bound on the TCP connect plus WebSocket handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound on sending one frame.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection under a [`WsClient`].
pub type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A connected WebSocket client.
pub struct WsClient {
    url: String,
    stream: Stream,
    response: Response,
}

impl WsClient {
    /// Connects to `url` (`ws://host:port/path`), at most [`CONNECT_TIMEOUT`];
    /// a timeout is an [`Error::Io`] of kind `TimedOut`.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with_headers(url, &[]).await
    }

    /// [`WsClient::connect`] with extra request headers (e.g.
    /// `Authorization`, `X-Forwarded-For`).
    pub async fn connect_with_headers(url: &str, headers: &[(&str, &str)]) -> Result<Self, Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .unwrap_or_else(|e| panic!("bad header name {name:?}: {e}"));
            let value = HeaderValue::from_str(value)
                .unwrap_or_else(|e| panic!("bad header value {value:?}: {e}"));
            request.headers_mut().append(name, value);
        }
        let connect = tokio_tungstenite::connect_async(request);
        let (stream, response) = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting to {url} took more than {CONNECT_TIMEOUT:?}"),
                )));
            }
        };
        Ok(Self {
            url: url.to_owned(),
            stream,
            response,
        })
    }

    /// Connects to `url` and reads its welcome, each within `timeout`: the
    /// client and the welcome, or what went wrong (a refusal with its status
    /// and body, a timeout, a first frame that is not a welcome). For
    /// clients that retry; [`join`] is the asserting form.
    pub async fn try_join(url: &str, timeout: Duration) -> Result<(Self, Value), String> {
        let connect = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| format!("joining {url} took more than {timeout:?}"))?;
        let (stream, response) = connect.map_err(|e| match e {
            Error::Http(resp) => format!(
                "joining {url}: HTTP {} {}",
                resp.status(),
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default())
            ),
            e => format!("joining {url}: {e}"),
        })?;
        let mut c = Self {
            url: url.to_owned(),
            stream,
            response,
        };
        let welcome = c
            .try_recv_json(timeout)
            .await
            .map_err(|e| format!("no welcome from {url}: {e}"))?;
        if welcome["type"] != "welcome" {
            return Err(format!(
                "first frame from {url} is not a welcome: {welcome}"
            ));
        }
        Ok((c, welcome))
    }

    /// The server's handshake answer (status 101 and its headers).
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The URL it connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one frame; panics if it cannot.
    pub async fn send(&mut self, msg: Message) {
        match tokio::time::timeout(SEND_TIMEOUT, self.stream.send(msg)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("sending to {}: {e}", self.url),
            Err(_) => panic!("sending to {} took more than {SEND_TIMEOUT:?}", self.url),
        }
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.send(Message::text(text.into())).await;
    }

    /// Sends `value` as one JSON text frame.
    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(value.to_string()).await;
    }

    /// Sends one frame within `timeout`: `None` if it took longer, else
    /// whether the socket took it.
    pub async fn try_send(&mut self, msg: Message, timeout: Duration) -> Option<Result<(), Error>> {
        tokio::time::timeout(timeout, self.stream.send(msg))
            .await
            .ok()
    }

    /// Starts the closing handshake without a code, as a client that just
    /// leaves, waiting at most `timeout`; whatever state the socket is in.
    pub async fn hang_up(&mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.stream.close(None)).await;
    }

    /// Starts the closing handshake with `code`.
    pub async fn close(&mut self, code: u16) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        // The server may have closed first; either way the socket is done.
        let _ = tokio::time::timeout(SEND_TIMEOUT, self.stream.close(Some(frame))).await;
    }

    /// The next frame of any kind, pings included, or `None` if nothing came
    /// within `timeout`; `Some(None)` when the stream ended.
    pub async fn next_frame(
        &mut self,
        timeout: Duration,
    ) -> Option<Option<Result<Message, Error>>> {
        tokio::time::timeout(timeout, self.stream.next()).await.ok()
    }

    /// The next frame of any kind, unbounded: for a `select!`, which may
    /// cancel it without losing a frame (and bounds it). `None` when the
    /// stream ended.
    pub async fn read_frame(&mut self) -> Option<Result<Message, Error>> {
        self.stream.next().await
    }

    /// The next text frame as JSON within `timeout`, skipping pings and
    /// pongs, or what came instead (nothing, a close, an error, not JSON).
    pub async fn try_recv_json(&mut self, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err(format!("nothing within {timeout:?}")),
                Ok(Some(Ok(Message::Text(t)))) => {
                    return serde_json::from_str(&t).map_err(|e| format!("not JSON ({e}): {t}"));
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(other) => return Err(format!("{other:?}")),
            }
        }
    }

    /// Its two halves, for a client that writes and reads at once (e.g. a
    /// flood); `SplitSink::reunite` puts them together again.
    pub fn split(self) -> (SplitSink<Stream, Message>, SplitStream<Stream>) {
        self.stream.split()
    }

    /// The next data or close frame within `timeout` (pings and pongs are
    /// skipped; tungstenite answers pings itself); `None` when the stream
    /// ended. Panics on timeout or a transport error.
    pub async fn recv_message(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(next) => next,
                Err(_) => panic!("no frame from {} within {timeout:?}", self.url),
            };
            match next {
                None => return None,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(msg)) => return Some(msg),
                Some(Err(e)) => panic!("reading from {}: {e}", self.url),
            }
        }
    }

    /// The next frame, which must be a JSON text frame, within `timeout`.
    /// Panics on timeout, a close, or anything else.
    pub async fn recv_json(&mut self, timeout: Duration) -> Value {
        match self.recv_message(timeout).await {
            Some(Message::Text(text)) => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("frame from {} is not JSON ({e}): {text}", self.url)),
            Some(Message::Close(frame)) => {
                panic!(
                    "{} closed ({frame:?}) while a JSON frame was expected",
                    self.url
                )
            }
            Some(other) => panic!(
                "expected a JSON text frame from {}, got {other:?}",
                self.url
            ),
            None => panic!(
                "{} ended the stream while a JSON frame was expected",
                self.url
            ),
        }
    }

    /// The first JSON frame whose `type` is `kind` within `timeout`,
    /// skipping frames of other types.
    pub async fn recv_until(&mut self, kind: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "no {kind:?} frame from {} within {timeout:?}; skipped {skipped:?}",
                    self.url
                );
            }
            let value = self.recv_json(left).await;
            if value.get("type").and_then(Value::as_str) == Some(kind) {
                return value;
            }
            skipped.push(value);
        }
    }

    /// Reads until the server closes, within `timeout`, skipping data
    /// frames: the close code, or `None` if the connection ended without a
    /// close frame (or one without a code). Panics on timeout.
    pub async fn expect_close(&mut self, timeout: Duration) -> Option<u16> {
        let deadline = Instant::now() + timeout;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(next) => next,
                Err(_) => panic!("{} did not close within {timeout:?}", self.url),
            };
            match next {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                // Reset without a closing handshake, or already closed.
                Some(Err(
                    Error::Io(_)
                    | Error::ConnectionClosed
                    | Error::AlreadyClosed
                    | Error::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                ))
                | None => return None,
                // Anything else is a broken stream of frames (a frame cut
                // short or interleaved with another), never a way to close.
                Some(Err(e)) => panic!("{}: the frames before the close are broken: {e}", self.url),
            }
        }
    }
}

/// Bound on the welcome and on each frame [`next`] waits for.
const FRAME_WAIT: Duration = Duration::from_secs(10);

/// Joins at `url`; the client and its first frame, which must be `welcome`.
pub async fn join(url: &str) -> (WsClient, Value) {
    let mut c = WsClient::connect(url)
        .await
        .unwrap_or_else(|e| panic!("joining {url}: {e}"));
    let welcome = c.recv_json(FRAME_WAIT).await;
    assert_eq!(
        welcome["type"], "welcome",
        "first frame from {url}: {welcome}"
    );
    (c, welcome)
}

/// The very next frame, which must be of type `kind`.
pub async fn next(c: &mut WsClient, kind: &str) -> Value {
    let v = c.recv_json(FRAME_WAIT).await;
    assert_eq!(v["type"], kind, "expected a {kind:?} frame, got {v}");
    v
}

/// A join that must be refused before the upgrade: its HTTP status and
/// JSON body. Panics if the node admits it.
pub async fn refused_join(url: &str) -> (u16, Value) {
    match WsClient::connect(url).await {
        Err(Error::Http(resp)) => {
            let body = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (resp.status().as_u16(), body)
        }
        Ok(_) => panic!("{url} admitted a join that should be refused"),
        Err(e) => panic!("joining {url}: {e}"),
    }
}

/// The HTTP status of a refused handshake and the `error` code of its JSON
/// body, when tungstenite kept the body; panics if it was not refused.
pub fn refusal(result: Result<WsClient, Error>, url: &str) -> (u16, Option<String>) {
    match result {
        Err(Error::Http(resp)) => {
            let code = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                .and_then(|v| v["error"].as_str().map(str::to_owned));
            (resp.status().as_u16(), code)
        }
        Err(e) => panic!("{url}: expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("{url}: expected an HTTP refusal, got a connection"),
    }
}
