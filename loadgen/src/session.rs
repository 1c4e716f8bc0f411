//! One client connection and its framing, for either target: opening it
//! (TCP from a chosen source, WebSocket handshake or a polling session, the
//! protocol's own handshake), sending a stamped message, and reading only
//! what a receiver needs (the stamp of a delivery, the code of an error
//! frame). Socket.IO heartbeats are answered here.

use std::borrow::Cow;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::body::{BodyWriter, Stamp};
use crate::config::Transport;
use crate::engineio::{self, Packet, SioPacket};
use crate::net::{self, Endpoint};
use crate::polling::{Polling, PollingError};

/// How long closing may take at the end of a run.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Which wire protocol a session speaks.
#[derive(Debug, Clone)]
pub enum Protocol {
    /// roomrouter's JSON frames: `welcome` first, `send`/`message`.
    Roomrouter,
    /// Socket.IO v4/v5: the baseline's (which joins a room by an event
    /// after connecting) or a room node's (the path names the room).
    SocketIo {
        /// The room to join with `42["join",room]`, for the baseline.
        join: Option<Arc<str>>,
        /// The Engine.IO transport: the endpoint's URL is `ws://` for
        /// `websocket`, `http://` for `polling`.
        transport: Transport,
    },
}

/// Why a send or a read failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The WebSocket failed.
    #[error("websocket: {0}")]
    WebSocket(#[from] WsError),
    /// The polling session failed.
    #[error("polling: {0}")]
    Polling(#[from] PollingError),
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect failed (refused, unreachable, no ports, no descriptors).
    #[error("tcp: {0}")]
    Tcp(std::io::Error),
    /// The whole attempt took longer than the connect timeout.
    #[error("timed out")]
    Timeout,
    /// The server answered the upgrade with this HTTP status.
    #[error("http status {0}")]
    Http(u16),
    /// The WebSocket handshake failed otherwise.
    #[error("websocket: {0}")]
    WebSocket(WsError),
    /// The protocol's own handshake failed (no welcome, Socket.IO refusal).
    #[error("protocol: {0}")]
    Protocol(String),
}

/// What a read produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A chat message carrying a stamp.
    Delivery(Stamp),
    /// A roomrouter `error` frame with this code (the connection stays).
    ErrorFrame(String),
    /// The server ended the session (close frame code, if any).
    Closed(Option<u16>),
    /// A frame this client does not need (presence, pings, pongs).
    Other,
    /// A frame it could not understand.
    Unparsed,
}

/// An open session.
pub struct Session {
    link: Link,
    protocol: Protocol,
    out: String,
}

/// What carries a session's frames.
#[expect(
    clippy::large_enum_variant,
    reason = "one per connection, in its task; nearly all are WebSockets"
)]
enum Link {
    WebSocket(WebSocketStream<TcpStream>),
    Polling(Polling),
}

/// One text frame (or packet) read, or the end.
enum Read {
    Text(Utf8Bytes),
    Closed(Option<u16>),
    Other,
}

/// The roomrouter frame fields a client reads.
#[derive(Deserialize)]
struct RoomFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    body: Option<Stamp>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
}

impl Session {
    /// Connects and completes both handshakes within `timeout`.
    pub async fn open(
        endpoint: &Endpoint,
        source: Option<Ipv4Addr>,
        protocol: Protocol,
        timeout: Duration,
    ) -> Result<Self, ConnectError> {
        tokio::time::timeout(timeout, Self::open_inner(endpoint, source, protocol))
            .await
            .unwrap_or(Err(ConnectError::Timeout))
    }

    async fn open_inner(
        endpoint: &Endpoint,
        source: Option<Ipv4Addr>,
        protocol: Protocol,
    ) -> Result<Self, ConnectError> {
        let link = match protocol {
            Protocol::SocketIo {
                transport: Transport::Polling,
                ..
            } => Link::Polling(Polling::open(endpoint, source).await?),
            _ => Link::WebSocket(Self::websocket(endpoint, source).await?),
        };
        let mut s = Self {
            link,
            protocol,
            out: String::new(),
        };
        s.handshake().await?;
        Ok(s)
    }

    async fn websocket(
        endpoint: &Endpoint,
        source: Option<Ipv4Addr>,
    ) -> Result<WebSocketStream<TcpStream>, ConnectError> {
        let tcp = net::connect_tcp(endpoint.peer, source)
            .await
            .map_err(ConnectError::Tcp)?;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(&endpoint.url, tcp, Some(net::ws_config()))
                .await
                .map_err(|e| match e {
                    WsError::Http(resp) => ConnectError::Http(resp.status().as_u16()),
                    other => ConnectError::WebSocket(other),
                })?;
        Ok(ws)
    }

    async fn handshake(&mut self) -> Result<(), ConnectError> {
        let proto = |m: String| ConnectError::Protocol(m);
        match self.protocol.clone() {
            Protocol::Roomrouter => {
                let text = self.next_text().await?;
                let frame: RoomFrame<'_> = serde_json::from_str(&text)
                    .map_err(|e| proto(format!("first frame is not JSON: {e}")))?;
                if frame.kind != "welcome" {
                    return Err(proto(format!("expected welcome, got {:?}", frame.kind)));
                }
            }
            Protocol::SocketIo { join, .. } => {
                let text = self.next_text().await?;
                match engineio::parse(&text) {
                    Ok(Packet::Open(_)) => {}
                    other => return Err(proto(format!("expected Engine.IO open, got {other:?}"))),
                }
                self.send_text(engineio::CONNECT.to_owned()).await?;
                loop {
                    let text = self.next_text().await?;
                    match engineio::parse(&text) {
                        Ok(Packet::Message(SioPacket::Connect { nsp: "/", .. })) => break,
                        Ok(Packet::Ping(data)) => {
                            let pong = engineio::pong(data);
                            self.send_text(pong).await?;
                        }
                        Ok(Packet::Message(SioPacket::ConnectError { data, .. })) => {
                            return Err(proto(format!("connect refused: {data}")));
                        }
                        other => return Err(proto(format!("expected 40, got {other:?}"))),
                    }
                }
                if let Some(room) = join {
                    self.send_text(engineio::join(&room)).await?;
                }
            }
        }
        Ok(())
    }

    /// The next text frame during the handshake.
    async fn next_text(&mut self) -> Result<String, ConnectError> {
        loop {
            match self.read().await {
                Ok(Read::Text(t)) => return Ok(t.as_str().to_owned()),
                Ok(Read::Closed(code)) => {
                    return Err(ConnectError::Protocol(format!(
                        "closed during handshake (code {code:?})"
                    )));
                }
                Ok(Read::Other) => continue,
                Err(TransportError::WebSocket(e)) => return Err(ConnectError::WebSocket(e)),
                Err(e) => return Err(ConnectError::Protocol(e.to_string())),
            }
        }
    }

    async fn send_text(&mut self, text: String) -> Result<(), ConnectError> {
        self.write(text).await.map_err(|e| match e {
            TransportError::WebSocket(e) => ConnectError::WebSocket(e),
            e => ConnectError::Protocol(e.to_string()),
        })
    }

    /// Writes one text frame (WebSocket) or queues one packet (polling).
    async fn write(&mut self, text: String) -> Result<(), TransportError> {
        match &mut self.link {
            Link::WebSocket(ws) => Ok(ws.send(Message::text(text)).await?),
            Link::Polling(p) => Ok(p.send(text).await?),
        }
    }

    /// The next text frame or packet. Cancel-safe.
    async fn read(&mut self) -> Result<Read, TransportError> {
        match &mut self.link {
            Link::WebSocket(ws) => Ok(match ws.next().await {
                None => Read::Closed(None),
                Some(m) => match m? {
                    Message::Text(t) => Read::Text(t),
                    Message::Close(frame) => Read::Closed(frame.map(|f| u16::from(f.code))),
                    _ => Read::Other,
                },
            }),
            Link::Polling(p) => Ok(p
                .next()
                .await?
                .map_or(Read::Closed(None), |t| Read::Text(t.into()))),
        }
    }

    /// Sends one message carrying `stamp`, its body built by `body`.
    pub async fn send(&mut self, body: &BodyWriter, stamp: Stamp) -> Result<(), TransportError> {
        self.out.clear();
        match self.protocol {
            Protocol::Roomrouter => {
                self.out.push_str(r#"{"type":"send","body":"#);
                body.write(&mut self.out, stamp);
                self.out.push('}');
            }
            Protocol::SocketIo { .. } => {
                engineio::write_chat(&mut self.out, |out| body.write(out, stamp));
            }
        }
        // The buffer is kept for the next message; the frame gets a copy.
        let frame = self.out.clone();
        self.write(frame).await
    }

    /// Reads the next frame. Cancel-safe except for a Socket.IO pong being
    /// written, which tungstenite keeps buffered and writes with the next
    /// frame (polling: queued for the writer).
    pub async fn next(&mut self) -> Result<Incoming, TransportError> {
        let text = match self.read().await? {
            Read::Text(t) => t,
            Read::Closed(code) => return Ok(Incoming::Closed(code)),
            Read::Other => return Ok(Incoming::Other),
        };
        Ok(match &self.protocol {
            Protocol::Roomrouter => decode_room(&text),
            Protocol::SocketIo { .. } => {
                let (incoming, reply) = decode_socketio(&text);
                if let Some(reply) = reply {
                    self.write(reply).await?;
                }
                incoming
            }
        })
    }

    /// Closes with 1000 (polling: the close packet), waiting at most
    /// [`CLOSE_TIMEOUT`].
    pub async fn close(self) {
        match self.link {
            Link::WebSocket(mut ws) => {
                let frame = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "done".into(),
                };
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await;
            }
            Link::Polling(p) => p.close(CLOSE_TIMEOUT).await,
        }
    }
}

/// Presence frames are most of what a big room sends while members join and
/// leave; the node writes `type` first, so they are recognised without a
/// parse.
const PRESENCE_PREFIXES: [&str; 2] = [r#"{"type":"joined""#, r#"{"type":"left""#];

/// What a roomrouter text frame means to a receiver.
pub fn decode_room(text: &str) -> Incoming {
    if PRESENCE_PREFIXES.iter().any(|p| text.starts_with(p)) {
        return Incoming::Other;
    }
    match serde_json::from_str::<RoomFrame<'_>>(text) {
        Ok(RoomFrame {
            body: Some(stamp),
            kind,
            ..
        }) if kind == "message" => Incoming::Delivery(stamp),
        Ok(RoomFrame { kind, code, .. }) if kind == "error" => {
            Incoming::ErrorFrame(code.map(Cow::into_owned).unwrap_or_default())
        }
        Ok(_) => Incoming::Other,
        Err(_) => Incoming::Unparsed,
    }
}

/// How a chat event's arguments begin.
const CHAT_ARGS: &str = r#"["chat","#;

/// What a Socket.IO text frame means to a receiver, and the frame to answer
/// with (a pong).
pub fn decode_socketio(text: &str) -> (Incoming, Option<String>) {
    let incoming = match engineio::parse(text) {
        // Only chat events are parsed; the server writes `["chat",` verbatim.
        Ok(Packet::Message(SioPacket::Event { args, .. })) if args.starts_with(CHAT_ARGS) => {
            match engineio::event::<Stamp>(args) {
                Ok((_, stamp)) => Incoming::Delivery(stamp),
                Err(_) => Incoming::Unparsed,
            }
        }
        Ok(Packet::Ping(data)) => return (Incoming::Other, Some(engineio::pong(data))),
        Ok(Packet::Close | Packet::Message(SioPacket::Disconnect { .. })) => Incoming::Closed(None),
        Ok(Packet::Message(SioPacket::ConnectError { data, .. })) => {
            Incoming::ErrorFrame(format!("connect_error {data}"))
        }
        Ok(_) => Incoming::Other,
        Err(_) => Incoming::Unparsed,
    };
    (incoming, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp { s: 7, q: 3, t: 99 };

    #[test]
    fn roomrouter_frames() {
        let msg = r#"{"type":"message","room":"r","seq":12,"from":"m3","name":"a","body":{"s":7,"q":3,"t":99,"p":"xx"}}"#;
        assert_eq!(decode_room(msg), Incoming::Delivery(STAMP));
        let err = r#"{"type":"error","code":"rate_limited","message":"slow down"}"#;
        assert_eq!(
            decode_room(err),
            Incoming::ErrorFrame("rate_limited".into())
        );
        for other in [
            r#"{"type":"joined","member":"m9","members":4}"#,
            r#"{"type":"left","member":"m9","members":3}"#,
            r#"{"type":"welcome","room":"r","node":"i1","member":"m1","members":1,"seq":0,"stream":"s"}"#,
        ] {
            assert_eq!(decode_room(other), Incoming::Other, "{other}");
        }
        // A message whose body is not ours, and garbage.
        let foreign = r#"{"type":"message","room":"r","seq":1,"from":"m1","body":"hello"}"#;
        assert_eq!(decode_room(foreign), Incoming::Unparsed);
        assert_eq!(decode_room("nope"), Incoming::Unparsed);
    }

    #[test]
    fn socketio_frames() {
        let chat = r#"42["chat",{"s":7,"q":3,"t":99,"p":"xx"}]"#;
        assert_eq!(decode_socketio(chat), (Incoming::Delivery(STAMP), None));
        assert_eq!(decode_socketio("2"), (Incoming::Other, Some("3".into())));
        assert_eq!(decode_socketio("41"), (Incoming::Closed(None), None));
        assert_eq!(decode_socketio("1"), (Incoming::Closed(None), None));
        assert_eq!(
            decode_socketio(r#"42["typing",{}]"#),
            (Incoming::Other, None)
        );
        assert_eq!(
            decode_socketio(r#"42["chat","text"]"#),
            (Incoming::Unparsed, None)
        );
        assert_eq!(decode_socketio("x"), (Incoming::Unparsed, None));
    }
}
