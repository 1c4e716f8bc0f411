//! Serving an axum app with the bounds `axum::serve` lacks, for both
//! binaries: a deadline on a request's head (a slow-loris client cannot
//! hold connections open before its WebSocket handshake) and on its body
//! (408), a cap on connections per client address, JSON refusals of
//! request targets and headers that are too large (414, 431), `TCP_NODELAY`
//! on every connection, the peer's address for handlers, and a graceful
//! stop that lets requests in flight finish.
//!
//! Layout: this file (the accept loop and each request's checks),
//! `peers` (connections per client address), `deadline` (the timed body).

mod deadline;
mod peers;

use proto::ErrorCode;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus::IntCounterVec;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::error::ApiError;
use deadline::{Deadline, Flag};
pub use peers::PeerSlot;
use peers::Peers;

/// Default bound on receiving a request's head (method, path, headers),
/// from when the server starts waiting for it (an idle keep-alive
/// connection included).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Default bound on receiving a request's body, from the end of its head.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest request target (path and query) answered, in bytes; a longer
/// one gets 414. Room paths are under a hundred bytes; nginx's default
/// buffer for a request line is 8 KiB too.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Most header fields in a request; more get 431.
pub const MAX_HEADERS: usize = 100;

/// Most bytes of header names and values in a request; more get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// hyper's own limit on header fields, above [`MAX_HEADERS`] so that our
/// check, which answers with the JSON error body, comes first. hyper
/// refuses what is beyond its limits (this, a head over its ~400 KiB
/// buffer, a target over 64 KiB, a request it cannot parse) itself, with
/// an empty body: it writes those answers in `Conn::on_parse_error` and
/// offers no hook to give them one.
const HYPER_MAX_HEADERS: usize = 256;

/// Pending connections the kernel queues for `accept`. The default of 128
/// overflows when thousands of clients reconnect at once (after a deploy or
/// a failover), and each overflow costs the client a one-second SYN retry.
pub const BACKLOG: u32 = 4096;

/// What bounds a server's clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bound on receiving a request's head.
    pub head: Duration,
    /// Bound on receiving a request's body, from the end of its head:
    /// past it the request is answered 408 and its connection closed.
    pub body: Duration,
    /// Most connections open at once from one client address (an IPv6
    /// /64), upgraded WebSockets included; more are closed as soon as they
    /// are accepted. 0: no limit. Behind a load balancer every connection
    /// comes from the balancer, so keep it 0 (or far above what one
    /// balancer address carries) there.
    pub per_ip: usize,
    /// Counts refusals by reason (`per_ip`, `body_timeout`,
    /// `head_too_large`), when given.
    pub rejected: Option<IntCounterVec>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            head: HEAD_TIMEOUT,
            body: BODY_TIMEOUT,
            per_ip: 0,
            rejected: None,
        }
    }
}

impl Limits {
    fn count(&self, reason: &str) {
        if let Some(rejected) = &self.rejected {
            rejected.with_label_values(&[reason]).inc();
        }
    }
}

/// A listener on `addr` with a [`BACKLOG`]-deep accept queue.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Pause after a failed `accept` (e.g. out of file descriptors), so the
/// loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` within `limits` until `shutdown` resolves,
/// then stops accepting and waits for the requests in flight (upgraded
/// connections are the caller's to end).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.head)
        .max_headers(HYPER_MAX_HEADERS);
    let peers = (limits.per_ip > 0).then(|| Peers::new(limits.per_ip));
    let limits = Arc::new(limits);
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match &peers {
            None => None,
            Some(peers) => match peers.admit(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    // Closed unread: the cheapest answer, and the one that
                    // frees the descriptor at once.
                    limits.count("per_ip");
                    tracing::debug!(peer = %peer, cap = limits.per_ip, "too many connections from this address; closed");
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        let (app, limits, request_slot) = (app.clone(), limits.clone(), slot.clone());
        let service = tower::service_fn(move |req: Request<Incoming>| {
            let (app, limits, slot) = (app.clone(), limits.clone(), request_slot.clone());
            async move { Ok::<_, Infallible>(answer(app, req, peer, slot, &limits).await) }
        });
        let conn = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            // The connection's place in its address's count, until it
            // ends (an upgrade holds a clone of its own).
            let _slot = slot;
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    stop.cancel();
    connections.close();
    connections.wait().await;
}

/// One request: checked for size, given the peer's address (and its
/// connection slot), its body put on the clock, then served by `app`.
async fn answer(
    app: Router,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
    slot: Option<PeerSlot>,
    limits: &Limits,
) -> Response {
    if let Err(refusal) = check_head(&req) {
        limits.count("head_too_large");
        return closing(refusal.into_response());
    }
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    if let Some(slot) = slot {
        parts.extensions.insert(slot);
    }
    if body.is_end_stream() {
        let req = Request::from_parts(parts, Body::new(body));
        return app.oneshot(req).await.unwrap_or_else(|e| match e {});
    }
    let expired = Flag::default();
    let body = Deadline::new(body, limits.body, expired.clone());
    let req = Request::from_parts(parts, Body::new(body));
    let resp = app.oneshot(req).await.unwrap_or_else(|e| match e {});
    if !expired.is_set() {
        return resp;
    }
    limits.count("body_timeout");
    tracing::debug!(peer = %peer, limit = ?limits.body, "request body too slow; 408");
    closing(
        ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} s",
                limits.body.as_secs_f64()
            ),
        )
        .into_response(),
    )
}

/// 414 for a request target over [`MAX_URI_BYTES`], 431 for headers over
/// [`MAX_HEADERS`] or [`MAX_HEADER_BYTES`]: the answers hyper would give
/// past its own (higher) limits, with the JSON error body.
fn check_head<B>(req: &Request<B>) -> Result<(), ApiError> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return Err(ApiError::new(
            ErrorCode::UriTooLong,
            format!("the request target is {target} bytes; at most {MAX_URI_BYTES}"),
        ));
    }
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "{} header fields, {bytes} bytes; at most {MAX_HEADERS} fields and {MAX_HEADER_BYTES} bytes",
                headers.len()
            ),
        ));
    }
    Ok(())
}

/// `resp`, with the connection closed after it.
fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    #[tokio::test]
    async fn clients_that_never_finish_a_request_head_or_body_are_dropped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route(
                "/",
                get(
                    |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>| async move {
                        peer.ip().to_string()
                    },
                ),
            )
            .route(
                "/echo",
                axum::routing::post(|body: String| async move { body }),
            );
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            app,
            stop.clone().cancelled_owned(),
            Limits {
                head: Duration::from_millis(200),
                body: Duration::from_millis(200),
                ..Limits::default()
            },
        ));

        // A whole request is answered, with the peer's address.
        let mut ok = TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        ok.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("127.0.0.1"),
            "{answer}"
        );

        // Half a head, then nothing: the server gives up on it.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        assert!(
            read.is_ok(),
            "the slow client was still connected after 5 s"
        );

        // A body that never ends: 408 with the JSON error, then closed.
        let mut trickle = TcpStream::connect(addr).await.unwrap();
        trickle
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
            .await
            .unwrap();
        let mut answer = String::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), trickle.read_to_string(&mut answer));
        assert!(read.await.is_ok(), "the trickled body was not cut off");
        assert!(
            answer.starts_with("HTTP/1.1 408") && answer.contains(r#""error":"request_timeout""#),
            "{answer}"
        );

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }
}
