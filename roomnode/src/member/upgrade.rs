//! The WebSocket handshake, done here rather than by axum's `ws` extractor
//! so the session owns the raw connection: after refusing an oversized frame
//! it must drain what the client is still sending, or the kernel answers
//! with a TCP reset and the client never sees the 1009 close frame.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::Response;
use proto::ErrorCode;
use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::task::TaskTracker;

use crate::member::conn::Conn;
use crate::member::outlet::Outlet;
use service::error::ApiError;
use service::server::PeerSlot;

/// The server side of an accepted WebSocket.
pub(crate) type Socket = WebSocketStream<Conn>;

/// A connection whose upgrade is done, before the WebSocket starts.
pub(crate) struct Accepted {
    /// The member's socket, shared by its reader and its [`Outlet`].
    pub(crate) io: Arc<TcpStream>,
    /// Bytes the client sent right after its request, already read.
    read: Vec<u8>,
    config: WebSocketConfig,
}

impl Accepted {
    /// The WebSocket over this connection, writing through `outlet`.
    pub(crate) async fn into_socket(self, outlet: Arc<Outlet>) -> Socket {
        let conn = Conn::new(self.io, outlet);
        WebSocketStream::from_partially_read(conn, self.read, Role::Server, Some(self.config)).await
    }
}

impl Accepted {
    /// The WebSocket straight on the connection, for a peer node's stream
    /// (no outlet: its writes are answers, one at a time).
    pub(crate) async fn into_plain_socket(self) -> WebSocketStream<TcpStream> {
        let io = Arc::into_inner(self.io).expect("an accepted connection has one handle");
        WebSocketStream::from_partially_read(io, self.read, Role::Server, Some(self.config)).await
    }
}

/// A valid WebSocket upgrade request, not yet answered.
pub(crate) struct Upgrade {
    accept: String,
    on_upgrade: OnUpgrade,
    /// The connection's place in its client address's count, held for as
    /// long as the session runs.
    slot: Option<PeerSlot>,
}

/// Why a request is not a WebSocket upgrade.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NotWebSocket(&'static str);

impl From<NotWebSocket> for ApiError {
    fn from(e: NotWebSocket) -> Self {
        ApiError::new(
            ErrorCode::UpgradeRequired,
            format!("join with a WebSocket upgrade: {}", e.0),
        )
    }
}

impl axum::response::IntoResponse for NotWebSocket {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = NotWebSocket;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, NotWebSocket> {
        if parts.method != Method::GET {
            return Err(NotWebSocket("a WebSocket upgrade must be a GET"));
        }
        if parts.version != Version::HTTP_11 {
            return Err(NotWebSocket("a WebSocket upgrade needs HTTP/1.1"));
        }
        if !has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !has_token(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err(NotWebSocket(
                "missing Connection: upgrade / Upgrade: websocket",
            ));
        }
        if parts
            .headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(NotWebSocket("Sec-WebSocket-Version must be 13"));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(NotWebSocket("missing Sec-WebSocket-Key"))?;
        let accept = derive_accept_key(key.as_bytes());
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(NotWebSocket("this connection cannot be upgraded"))?;
        let slot = parts.extensions.get::<PeerSlot>().cloned();
        Ok(Self {
            accept,
            on_upgrade,
            slot,
        })
    }
}

impl Upgrade {
    /// Answers 101 and runs `session` on the socket once the upgrade is done.
    /// The session runs on `tracker`, so shutdown can wait for it.
    pub(crate) fn accept<F, Fut>(
        self,
        config: WebSocketConfig,
        tracker: &TaskTracker,
        session: F,
    ) -> Response
    where
        F: FnOnce(Accepted) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let Self {
            accept,
            on_upgrade,
            slot,
        } = self;
        tracker.spawn(async move {
            let _slot = slot;
            match on_upgrade.await {
                // The node's HTTP server serves plain TCP streams, so the
                // downcast holds; the session needs the socket itself to
                // share it between its reader and its outlet.
                Ok(upgraded) => match upgraded.downcast::<TokioIo<TcpStream>>() {
                    Ok(parts) => {
                        // Copied, then dropped before the session starts:
                        // `read_buf` shares hyper's whole read buffer.
                        let hyper::upgrade::Parts { io, read_buf, .. } = parts;
                        let accepted = Accepted {
                            io: Arc::new(io.into_inner()),
                            read: read_buf.to_vec(),
                            config,
                        };
                        drop(read_buf);
                        session(accepted).await;
                    }
                    Err(_) => tracing::error!("upgraded connection is not a TCP stream"),
                },
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept)
            .body(axum::body::Body::empty())
            .expect("static response parts are valid")
    }
}
