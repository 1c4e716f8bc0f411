//! The data plane. `/room/{id}`: find the owner (from the mirror), then
//! tunnel a WebSocket upgrade to `/iN/room/{id}` on it, or answer a plain
//! GET with 307. `/room/{id}/socket.io/`: every request (polling GETs and
//! POSTs, preflights, WebSocket upgrades) to the owner's Socket.IO endpoint
//! `/iN/room/{id}/socket.io/`, since a polling client needs no redirect,
//! only its session's node. `/iN/room/{id}` and `/iN/room/{id}/socket.io/`:
//! pass through to node N unchanged, so the router can stand in for the
//! load balancer. One forwarding path serves them all; the query string is
//! always kept.
//!
//! Request and answer pass through with their status, headers (hop-by-hop
//! ones dropped) and body, streamed; a request body is bounded by
//! [`MAX_BODY_BYTES`]. After an upgrade the router only copies bytes:
//! frames, close codes and pings pass through untouched, with no
//! re-framing. Upstream failures are the node's fault (502/503/504), never
//! the client's.
//!
//! Layout: this file (the handlers, and forwarding a request to a node),
//! `headers` (what of a request's and an answer's headers passes),
//! `tunnel` (the bytes after an upgrade).

use proto::ErrorCode;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::request::Parts;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, StatusCode, Uri, Version, header};
use axum::response::Response;
use hyper::body::Body as _;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use proto::record::NodeRecord;
use proto::{InstanceId, RoomId};
use service::error::ApiError;
use service::extract::RoomPath;
use service::server::PeerSlot;
use tokio::net::TcpStream;

use crate::app::App;
use crate::ownership;
use headers::{is_websocket, prepare_headers, strip_hop_by_hop, upstream_authority};
use tunnel::tunnel;

mod headers;
mod tunnel;

/// Bound on connecting to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on a node's answer to a native join (the handshake).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a node's answer on its Socket.IO endpoint: a polling GET is
/// held until there is something to send or the next ping (the node's ping
/// interval, 25 s by default), so this is well above it, and above the 60 s
/// that nginx's and the ALB's defaults allow.
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest request body passed to a node: above what a polling POST may
/// carry (the node's `maxPayload`, `--max-frame-bytes`), and the
/// `client_max_body_size` of the deploy files' nginx.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Redirects a request on the legacy path follows (a room that moved
/// while it was on its way).
const MAX_REDIRECTS: usize = 2;

/// What a room path leads to on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `/iN/room/{id}`: the native join.
    Native,
    /// `/iN/room/{id}/socket.io/`: Engine.IO, polling or WebSocket.
    SocketIo,
}

impl Endpoint {
    /// The endpoint a request path names.
    fn of(path: &str) -> Self {
        if proto::path::socketio_base(path).is_some() {
            Self::SocketIo
        } else {
            Self::Native
        }
    }

    /// Its path for `room` on `instance`.
    fn path(self, instance: InstanceId, room: &RoomId) -> String {
        match self {
            Self::Native => proto::path::sharded(instance, room),
            Self::SocketIo => proto::path::socketio(instance, room),
        }
    }

    /// Bound on the node's answer (its head).
    fn timeout(self) -> Duration {
        match self {
            Self::Native => HANDSHAKE_TIMEOUT,
            Self::SocketIo => LONG_POLL_TIMEOUT,
        }
    }
}

/// `GET /room/{id}` and `/room/{id}/socket.io/` (any method): to the
/// room's owner at its path for the same endpoint. A native join that is
/// not a WebSocket upgrade is sent there with a 307 instead.
pub(crate) async fn legacy(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Result<Response, ApiError> {
    let endpoint = Endpoint::of(req.uri().path());
    let rec = ownership::locate(&app, &room).await?;
    if !upgradable(&req)? && endpoint == Endpoint::Native {
        return Err(ApiError::redirect(rec.node, &room, req.uri().query()));
    }
    let path = endpoint.path(rec.node, &room);
    let path = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let node = live_node(&app, rec.node)?;
    forward(&app, node, path, Some(&room), peer, req).await
}

/// `/iN/room/{id}` and `/iN/room/{id}/socket.io/` (any method, WebSocket
/// or not): to node N as it is.
pub(crate) async fn instance(
    State(app): State<App>,
    Path((instance, _room)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Result<Response, ApiError> {
    let instance: InstanceId = instance
        .parse()
        .map_err(|e: proto::IdError| ApiError::not_found(&e.to_string()))?;
    upgradable(&req)?;
    let node = live_node(&app, instance)?;
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    forward(&app, node, path, None, peer, req).await
}

fn live_node(app: &App, id: InstanceId) -> Result<NodeRecord, ApiError> {
    app.mirror().nodes().nodes.get(&id).cloned().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NodeUnavailable,
            format!("node {id} is not registered (down or restarting); retry shortly"),
        )
    })
}

/// Whether `req` asks for a WebSocket upgrade; an error when it does over
/// HTTP/1.0, which cannot upgrade (RFC 6455 4.1 needs HTTP/1.1): passed
/// on, the node would accept and the client would get 101 and then the
/// end of its connection. Refused as the node refuses it.
fn upgradable(req: &Request) -> Result<bool, ApiError> {
    if !is_websocket(req.headers()) {
        return Ok(false);
    }
    if req.version() != Version::HTTP_11 {
        return Err(ApiError::new(
            ErrorCode::UpgradeRequired,
            "join with a WebSocket upgrade: a WebSocket upgrade needs HTTP/1.1".into(),
        ));
    }
    Ok(true)
}

fn bad_gateway(node: &NodeRecord, what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UpstreamUnreachable,
        format!("node {} did not answer: {what}", node.id),
    )
    .with_detail(format_args!("node address {}", node.addr))
}

/// A client's request on its way to a node: what stays the same when it
/// follows a redirect.
struct Outbound {
    parts: Parts,
    peer: SocketAddr,
    /// Bound on the node's answer.
    timeout: Duration,
}

/// Sends `req` to `node` at `path` (query included) and answers with the
/// node's answer; for a WebSocket upgrade that the node accepts, splices
/// the two upgraded connections together. With `follow`, a node that
/// answers 307 to the same room's same endpoint elsewhere (the room just
/// moved, and this router's mirror has not seen it yet) is followed, since
/// WebSocket and polling clients do not follow redirects well; a request
/// with a body is not, as its body is streamed and cannot be sent twice.
async fn forward(
    app: &App,
    mut node: NodeRecord,
    mut path: String,
    follow: Option<&RoomId>,
    peer: SocketAddr,
    mut req: Request,
) -> Result<Response, ApiError> {
    let client_upgrade = is_websocket(req.headers()).then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut body = Some(bounded(body, &parts.headers)?);
    let follow = follow.filter(|_| body.as_ref().is_some_and(|b| b.is_end_stream()));
    let slot = parts.extensions.get::<PeerSlot>().cloned();
    let out = Outbound {
        timeout: Endpoint::of(parts.uri.path()).timeout(),
        parts,
        peer,
    };
    let mut redirects = 0;
    loop {
        let body = body.take().unwrap_or_else(Body::empty);
        let resp = send(app, &node, &out, &path, body).await?;
        let next = follow
            .filter(|_| redirects < MAX_REDIRECTS)
            .and_then(|room| moved_to(&resp, &path, room));
        let Some((instance, location)) = next else {
            return Ok(splice(app, resp, client_upgrade, slot));
        };
        node = live_node(app, instance)?;
        path = location;
        redirects += 1;
    }
}

/// Where a 307 from a node sends a request for `room` at `path`: the
/// instance and the `Location`, when it is the same room's same endpoint.
fn moved_to<B>(
    resp: &axum::http::Response<B>,
    path: &str,
    room: &RoomId,
) -> Option<(InstanceId, String)> {
    if resp.status() != StatusCode::TEMPORARY_REDIRECT {
        return None;
    }
    let location = resp.headers().get(header::LOCATION)?.to_str().ok()?;
    let target = location.split('?').next()?;
    let endpoint = Endpoint::of(target);
    if endpoint != Endpoint::of(path.split('?').next()?) {
        return None;
    }
    let base = proto::path::socketio_base(target).unwrap_or(target);
    match proto::path::RoomPath::parse(base).ok()? {
        proto::path::RoomPath::Sharded { instance, room: r } if &r == room => {
            Some((instance, location.to_owned()))
        }
        _ => None,
    }
}

/// The request body, refused when it says it is over [`MAX_BODY_BYTES`]
/// and cut off when it turns out to be.
fn bounded(body: Body, headers: &HeaderMap) -> Result<Body, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    Ok(Body::new(http_body_util::Limited::new(
        body,
        MAX_BODY_BYTES,
    )))
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::BodyTooLarge,
        format!("a request body on a room path may be {MAX_BODY_BYTES} bytes at most"),
    )
}

/// Whether sending failed on the client's body: over [`MAX_BODY_BYTES`]
/// (413), or broken off (400); `None` when it is the node's fault.
fn body_fault(e: &hyper::Error) -> Option<ApiError> {
    if !e.is_user() {
        return None;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return Some(too_large());
        }
        cause = c.source();
    }
    Some(ApiError::bad_request(
        ErrorCode::BadRequest,
        format!("the request body could not be read: {e}"),
    ))
}

/// One request to a node on a fresh connection (upgrades need their own).
/// Given up, with 503, when the router stops meanwhile.
async fn send(
    app: &App,
    node: &NodeRecord,
    out: &Outbound,
    path: &str,
    body: Body,
) -> Result<axum::http::Response<hyper::body::Incoming>, ApiError> {
    let authority = upstream_authority(&node.addr)
        .ok_or_else(|| bad_gateway(node, "its advertised address is not an http:// URL"))?;
    let websocket = is_websocket(&out.parts.headers);
    let mut headers = out.parts.headers.clone();
    prepare_headers(&mut headers, &authority, out.peer, websocket);
    let path: PathAndQuery = path.parse().map_err(|e| ApiError::internal(&e))?;
    let mut req = axum::http::Request::builder()
        .method(out.parts.method.clone())
        .uri(Uri::from(path))
        .body(body)
        .map_err(|e| ApiError::internal(&e))?;
    *req.headers_mut() = headers;

    let connect = TcpStream::connect(authority.as_str());
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(bad_gateway(node, &format!("connect: {e}"))),
        Err(_) => return Err(bad_gateway(node, "connect timed out")),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| bad_gateway(node, &format!("handshake: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    let answer = tokio::select! {
        answer = tokio::time::timeout(out.timeout, sender.send_request(req)) => answer,
        () = app.stopping().cancelled() => {
            return Err(ApiError::new(
                ErrorCode::ShuttingDown,
                "the router is shutting down; retry".into(),
            ));
        }
    };
    match answer {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            Err(body_fault(&e).unwrap_or_else(|| bad_gateway(node, &format!("request: {e}"))))
        }
        Err(_) => Err(ApiError::new(
            ErrorCode::UpstreamTimeout,
            format!("node {} did not answer in {:?}", node.id, out.timeout),
        )),
    }
}

/// The node's answer for the client, without its hop-by-hop headers; a
/// 101 starts the tunnel, which holds the client connection's `slot` in
/// its address's count while it lasts.
fn splice(
    app: &App,
    mut resp: axum::http::Response<hyper::body::Incoming>,
    client_upgrade: Option<OnUpgrade>,
    slot: Option<PeerSlot>,
) -> Response {
    let upgraded = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop(resp.headers_mut(), upgraded);
    if upgraded && let Some(client) = client_upgrade {
        let upstream = hyper::upgrade::on(&mut resp);
        let tunnel = tunnel(app.clone(), client, upstream);
        app.tunnels().spawn(async move {
            let _slot = slot;
            tunnel.await;
        });
    }
    resp.map(Body::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socketio_paths_are_their_own_endpoint() {
        assert_eq!(Endpoint::of("/room/a/socket.io/"), Endpoint::SocketIo);
        assert_eq!(Endpoint::of("/i2/room/a/socket.io"), Endpoint::SocketIo);
        assert_eq!(Endpoint::of("/i2/room/a"), Endpoint::Native);
        let (i2, room) = ("i2".parse().unwrap(), "a".parse().unwrap());
        assert_eq!(Endpoint::SocketIo.path(i2, &room), "/i2/room/a/socket.io/");
        assert_eq!(Endpoint::Native.path(i2, &room), "/i2/room/a");
        // A long poll is held up to the node's ping interval (25 s).
        assert!(Endpoint::SocketIo.timeout() >= Duration::from_secs(60));
    }

    #[test]
    fn a_redirect_is_followed_only_to_the_same_room_and_endpoint() {
        let redirect = |location: &str| {
            axum::http::Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(header::LOCATION, location)
                .body(())
                .unwrap()
        };
        let room: RoomId = "a".parse().unwrap();
        let sio = "/i1/room/a/socket.io/?EIO=4&transport=websocket";
        let to = "/i3/room/a/socket.io/?EIO=4&transport=websocket";
        assert_eq!(
            moved_to(&redirect(to), sio, &room),
            Some(("i3".parse().unwrap(), to.to_owned()))
        );
        assert_eq!(
            moved_to(&redirect("/i3/room/a?since=1"), "/i1/room/a", &room),
            Some(("i3".parse().unwrap(), "/i3/room/a?since=1".to_owned()))
        );
        for (location, path) in [
            ("/i3/room/a", sio),
            ("/i3/room/a/socket.io/", "/i1/room/a"),
            ("/i3/room/b/socket.io/", sio),
            ("/elsewhere", sio),
        ] {
            assert_eq!(
                moved_to(&redirect(location), path, &room),
                None,
                "{location}"
            );
        }
    }
}
