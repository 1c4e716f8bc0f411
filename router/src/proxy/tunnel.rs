//! The tunnel after a WebSocket upgrade: bytes copied both ways between
//! the client's and the node's TCP connections, counted in
//! `router_proxy_connections`.

use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::app::App;

/// How long a tunnel waits for the node after the client has closed its
/// side.
const HALF_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Copies bytes both ways until either side closes or the router stops.
pub(super) async fn tunnel(app: App, client: OnUpgrade, upstream: OnUpgrade) {
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
