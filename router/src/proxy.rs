//! The data plane. `/room/{id}`: find the owner (from the mirror), then
//! tunnel a WebSocket upgrade to `/iN/room/{id}` on it, or answer a plain
//! GET with 307. `/iN/room/{id}`: pass through to node N unchanged, so the
//! router can stand in for the load balancer.
//!
//! After the upgrade the router only copies bytes: frames, close codes and
//! pings pass through untouched, with no re-framing. Upstream failures are
//! the node's fault (502/503/504), never the client's.

use proto::ErrorCode;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::uri::{Authority, PathAndQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, Version, header};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use proto::record::NodeRecord;
use proto::{InstanceId, RoomId};
use service::error::ApiError;
use service::extract::RoomPath;
use service::server::PeerSlot;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::app::App;
use crate::ownership;

/// Bound on connecting to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on a node's answer to the forwarded request (the handshake).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a tunnel waits for the node after the client has closed its
/// side.
const HALF_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Redirects a legacy-path join follows (a room that moved during the join).
const MAX_REDIRECTS: usize = 2;

/// Headers that concern one hop only and are not forwarded (RFC 9110 §7.6.1);
/// `connection` and `upgrade` are put back for a WebSocket upgrade.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `GET /room/{id}`.
pub(crate) async fn legacy(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Result<Response, ApiError> {
    let rec = ownership::locate(&app, &room).await?;
    if !upgradable(&req)? {
        return Err(ApiError::redirect(rec.node, &room, req.uri().query()));
    }
    let path = service::error::location(rec.node, &room, req.uri().query());
    let node = live_node(&app, rec.node)?;
    forward_join(&app, &room, node, path, peer, req).await
}

/// `GET /iN/room/{id}` (any method, WebSocket or not): to node N as it is.
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
    forward(&app, &node, &path, peer, req).await
}

fn live_node(app: &App, id: InstanceId) -> Result<NodeRecord, ApiError> {
    app.mirror().nodes().nodes.get(&id).cloned().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NodeUnavailable,
            format!("node {id} is not registered (down or restarting); retry shortly"),
        )
    })
}

fn is_websocket(headers: &HeaderMap) -> bool {
    let has = |name, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
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

/// Sends `req` to `node` at `path`; for a WebSocket upgrade that the node
/// accepts, splices the two upgraded connections together.
async fn forward(
    app: &App,
    node: &NodeRecord,
    path: &str,
    peer: SocketAddr,
    mut req: Request,
) -> Result<Response, ApiError> {
    let client_upgrade = is_websocket(req.headers()).then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let slot = parts.extensions.get::<PeerSlot>().cloned();
    let resp = send(node, &parts.method, &parts.headers, path, peer, body).await?;
    Ok(splice(app, resp, client_upgrade, slot))
}

/// A WebSocket join on the legacy path, to the owner at `path`. A node that
/// answers 307 (the room just moved, and this router's mirror has not seen
/// it yet) is followed to the room's new node, since browsers' WebSocket
/// clients do not follow redirects.
async fn forward_join(
    app: &App,
    room: &RoomId,
    mut node: NodeRecord,
    mut path: String,
    peer: SocketAddr,
    mut req: Request,
) -> Result<Response, ApiError> {
    let client_upgrade = Some(hyper::upgrade::on(&mut req));
    let (parts, _) = req.into_parts();
    let slot = parts.extensions.get::<PeerSlot>().cloned();
    let mut redirects = 0;
    loop {
        let resp = send(
            &node,
            &parts.method,
            &parts.headers,
            &path,
            peer,
            Body::empty(),
        )
        .await?;
        let next = (resp.status() == StatusCode::TEMPORARY_REDIRECT && redirects < MAX_REDIRECTS)
            .then(|| {
                resp.headers()
                    .get(header::LOCATION)?
                    .to_str()
                    .ok()
                    .map(str::to_owned)
            })
            .flatten();
        let Some(location) = next else {
            return Ok(splice(app, resp, client_upgrade, slot));
        };
        let target = location
            .split('?')
            .next()
            .and_then(|p| proto::path::RoomPath::parse(p).ok());
        match target {
            Some(proto::path::RoomPath::Sharded { instance, room: r }) if &r == room => {
                node = live_node(app, instance)?;
                path = location;
                redirects += 1;
            }
            _ => return Ok(splice(app, resp, client_upgrade, slot)),
        }
    }
}

/// One request to a node on a fresh connection (upgrades need their own).
async fn send(
    node: &NodeRecord,
    method: &axum::http::Method,
    headers: &HeaderMap,
    path: &str,
    peer: SocketAddr,
    body: Body,
) -> Result<axum::http::Response<hyper::body::Incoming>, ApiError> {
    let authority = upstream_authority(&node.addr)
        .ok_or_else(|| bad_gateway(node, "its advertised address is not an http:// URL"))?;
    let websocket = is_websocket(headers);
    let mut headers = headers.clone();
    prepare_headers(&mut headers, &authority, peer, websocket);
    let path: PathAndQuery = path.parse().map_err(|e| ApiError::internal(&e))?;
    let mut req = axum::http::Request::builder()
        .method(method.clone())
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
    match tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(req)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(bad_gateway(node, &format!("request: {e}"))),
        Err(_) => Err(ApiError::new(
            ErrorCode::UpstreamTimeout,
            format!("node {} did not answer in {RESPONSE_TIMEOUT:?}", node.id),
        )),
    }
}

/// The node's answer for the client; a 101 starts the tunnel, which holds
/// the client connection's `slot` in its address's count while it lasts.
fn splice(
    app: &App,
    mut resp: axum::http::Response<hyper::body::Incoming>,
    client_upgrade: Option<OnUpgrade>,
    slot: Option<PeerSlot>,
) -> Response {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client) = client_upgrade
    {
        let upstream = hyper::upgrade::on(&mut resp);
        let tunnel = tunnel(app.clone(), client, upstream);
        app.tunnels().spawn(async move {
            let _slot = slot;
            tunnel.await;
        });
    }
    resp.map(Body::new)
}

/// `host:port` of an `http://host:port` node address.
fn upstream_authority(addr: &str) -> Option<Authority> {
    let uri: Uri = addr.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let authority = uri.authority()?.clone();
    if authority.port().is_some() {
        Some(authority)
    } else {
        format!("{}:80", authority.host()).parse().ok()
    }
}

fn prepare_headers(
    headers: &mut HeaderMap,
    upstream: &Authority,
    peer: SocketAddr,
    websocket: bool,
) {
    let connection_tokens: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    let upgrade = headers.get(header::UPGRADE).cloned();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .map(str::to_owned)
        .chain(connection_tokens)
    {
        headers.remove(name.as_str());
    }
    if websocket && let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
    if let Some(host) = headers.remove(header::HOST) {
        headers.insert("x-forwarded-host", host);
    }
    if let Ok(h) = HeaderValue::from_str(upstream.as_str()) {
        headers.insert(header::HOST, h);
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", v);
    }
}

/// Copies bytes both ways until either side closes or the router stops.
async fn tunnel(app: App, client: OnUpgrade, upstream: OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let (Some((client, client_early)), Some((upstream, upstream_early))) =
        (tcp(client), tcp(upstream))
    else {
        tracing::error!("upgraded connection is not a TCP stream");
        return;
    };
    // The sockets themselves, not hyper's boxed `Upgraded` halves behind
    // a lock: each direction is a plain read-then-write loop.
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut upstream_rx, mut upstream_tx) = upstream.into_split();
    let gauge = &app.metrics().proxy_connections;
    gauge.inc();
    let to_node = async move {
        let sent = upstream_tx.write_all(&client_early).await.is_ok();
        drop(client_early);
        if sent {
            let _ = tokio::io::copy(&mut client_rx, &mut upstream_tx).await;
        }
        let _ = upstream_tx.shutdown().await;
    };
    let to_client = async move {
        let sent = client_tx.write_all(&upstream_early).await.is_ok();
        drop(upstream_early);
        if sent {
            let _ = tokio::io::copy(&mut upstream_rx, &mut client_tx).await;
        }
        let _ = client_tx.shutdown().await;
    };
    tokio::pin!(to_node, to_client);
    // The node closing ends the tunnel: nothing useful can follow. The
    // client closing first leaves the node a moment to finish its side
    // (its close reply).
    let client_closed_first = tokio::select! {
        () = &mut to_client => false,
        () = &mut to_node => true,
        () = app.stopping().cancelled() => false,
    };
    if client_closed_first {
        tokio::select! {
            _ = tokio::time::timeout(HALF_CLOSE_GRACE, &mut to_client) => {}
            () = app.stopping().cancelled() => {}
        }
    }
    gauge.dec();
}

/// The TCP connection under an upgrade, and the bytes hyper read past the
/// HTTP head (the node's `welcome` often arrives with its 101). Both the
/// router's server and its client to the nodes run on plain TCP streams.
/// The bytes are copied: `read_buf` shares hyper's whole read buffer, which
/// would otherwise live as long as the tunnel.
fn tcp(upgraded: hyper::upgrade::Upgraded) -> Option<(TcpStream, Vec<u8>)> {
    let hyper::upgrade::Parts { io, read_buf, .. } =
        upgraded.downcast::<TokioIo<TcpStream>>().ok()?;
    Some((io.into_inner(), read_buf.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_become_authorities() {
        assert_eq!(
            upstream_authority("http://10.0.0.5:9000").unwrap().as_str(),
            "10.0.0.5:9000"
        );
        assert_eq!(
            upstream_authority("http://node-1").unwrap().as_str(),
            "node-1:80"
        );
        assert!(upstream_authority("https://node-1").is_none());
        assert!(upstream_authority("nonsense").is_none());
    }

    #[test]
    fn websocket_upgrades_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_websocket(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!is_websocket(&h));
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_but_the_upgrade_kept() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, x-secret"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("5"));
        h.insert(header::HOST, HeaderValue::from_static("public.example"));
        let up: Authority = "10.0.0.5:9000".parse().unwrap();
        prepare_headers(&mut h, &up, "1.2.3.4:5".parse().unwrap(), true);
        assert!(h.get("x-secret").is_none() && h.get("keep-alive").is_none());
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::HOST], "10.0.0.5:9000");
        assert_eq!(h["x-forwarded-host"], "public.example");
        assert_eq!(h["x-forwarded-for"], "1.2.3.4");
    }
}
