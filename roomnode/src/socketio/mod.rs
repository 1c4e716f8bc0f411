//! Socket.IO v5 on every room, over the node's Engine.IO sessions
//! ([`crate::engineio`]): what `socket.io-client` 4.x speaks, with only its
//! `path` changed to `/iN/room/{id}/socket.io/`.
//!
//! A session is admitted to the path's room when it starts, with the same
//! checks as a native join ([`admission`]: wrong instance 404, another
//! owner 307, unknown 404, limits); a private room's token comes later,
//! in the CONNECT's `auth`, and is answered with CONNECT_ERROR. The
//! session then joins the room as a member whose way out is its Engine.IO
//! session ([`crate::room::sink`]).
//!
//! Layout: this file (the route and the admission), `inbound` (one
//! session's packets: CONNECT, events and their acks, DISCONNECT, binary
//! attachments), [`outbound`] (the packets the node sends, and a room
//! event encoded once per namespace spelling).

mod inbound;
pub(crate) mod outbound;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use service::extract::RoomPath;

use crate::engineio::{EngineConfig, Handler, Session};
use crate::member::admission::{self, ThisNode};
use crate::member::join_hook;
use crate::node::Node;

/// The path below a room's path where its Socket.IO sessions live.
pub(crate) const PATH_SUFFIX: &str = "/socket.io/";

/// Query parameters of a session's first request that the room reads
/// (the rest is Engine.IO's).
#[derive(Deserialize, Default)]
struct Params {
    /// A join token (also accepted in the CONNECT's `auth`).
    token: Option<String>,
    /// A display name (also accepted in the CONNECT's `auth`).
    name: Option<String>,
}

/// How the node's Engine.IO sessions behave, from its flags.
pub(crate) fn engine_config(config: &crate::Config) -> EngineConfig {
    EngineConfig {
        ping_interval: config.socketio_ping(),
        ping_timeout: config.ping_timeout,
        connect_timeout: config.connect_timeout,
        max_payload: config.max_frame_bytes,
        // A recovering member's replay is queued at once, on top of what
        // any member may have waiting.
        max_queue: config.max_queue + config.history,
        max_pending: config.max_handshakes,
        allowed_origins: config.allowed_origins.clone(),
    }
}

/// Every request on `/iN/room/{id}/socket.io/`: Engine.IO serves it; a
/// request that starts a session is admitted to the room first.
pub(crate) async fn serve(
    State(node): State<Node>,
    _: ThisNode,
    RoomPath(room): RoomPath,
    req: Request,
) -> Response {
    let raw_query = req.uri().query().map(str::to_owned);
    let headers = req.headers().clone();
    let engine = node.engine().clone();
    let scope = room.to_string();
    let open = async |_: &Arc<Session>| -> Result<Arc<dyn Handler>, Response> {
        let params: Params = raw_query
            .as_deref()
            .and_then(room_params)
            .unwrap_or_default();
        let req = admission::Request {
            room: &room,
            query: raw_query.as_deref(),
            headers: &headers,
            token: None,
            token_now: false,
            transport: Ok(()),
        };
        let admitted = admission::admit(&node, req)
            .await
            .map_err(|e| e.with_path_suffix(PATH_SUFFIX).into_response())?;
        let (query, credentials) = if node.hooks().is_some_and(|h| h.has_join()) {
            let query = join_hook::query_map(raw_query.as_deref());
            (query, join_hook::credentials(&headers))
        } else {
            Default::default()
        };
        let given_token = params
            .token
            .or_else(|| service::auth::bearer(&headers).map(str::to_owned));
        let handler = inbound::Member::new(
            node.clone(),
            admitted,
            inbound::Given {
                token: given_token,
                name: params.name,
                // Kept for the join hook only: an idle member pays for
                // what it holds (a whole `HeaderMap` pinned hyper's read
                // buffer: 6.5 KB each).
                query,
                headers: credentials,
            },
        );
        let handler: Arc<dyn Handler> = handler;
        Ok(handler)
    };
    engine.serve(req, &scope, open).await
}

/// The room's parameters in a query string; `None` when it cannot be read
/// (Engine.IO refuses such a request by itself).
fn room_params(query: &str) -> Option<Params> {
    axum::extract::Query::<Params>::try_from_uri(&format!("/?{query}").parse().ok()?)
        .ok()
        .map(|q| q.0)
}
