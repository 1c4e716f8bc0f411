//! [`WsClient`]: a WebSocket client for tests, speaking one JSON object per
//! text frame. Connecting returns tungstenite's error untouched, so a test
//! can assert on an HTTP refusal (`Error::Http(response)` with its status,
//! e.g. 404 or 307); every receive is bounded and panics with what it was
//! waiting for.

use std::time::Duration;

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

/// A connected WebSocket client.
pub struct WsClient {
    url: String,
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
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

    /// The server's handshake answer (status 101 and its headers).
    pub fn response(&self) -> &Response {
        &self.response
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
