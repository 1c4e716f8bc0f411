//! The node's HTTP surface: `GET /iN/room/{id}` (the WebSocket join, after
//! its [`admission`]), `/iN/room/{id}/socket.io/` (Socket.IO, [`socketio`]), `/healthz`, `/readyz`, `/metrics`, and the internal
//! routes ([`internal`]).

use axum::Router;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use proto::ErrorCode;
use proto::wire::{JoinParams, check_name};
use service::error::ApiError;
use service::extract::RoomPath;

use crate::cluster::internal;
use crate::member::admission::{self, ThisNode};
use crate::member::join_hook;
use crate::member::session;
use crate::member::upgrade::{NotWebSocket, Upgrade};
use crate::node::Node;
use crate::socketio;
use proto::hooks::Protocol;

/// The node's routes.
pub(crate) fn routes(node: Node) -> Router {
    Router::new()
        .route("/{instance}/room/{room}", get(join))
        .route("/{instance}/room/{room}/socket.io", any(socketio::serve))
        .route("/{instance}/room/{room}/socket.io/", any(socketio::serve))
        .merge(internal::routes(&node))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::middleware::map_response(service::error::json_errors))
        .with_state(node)
}

async fn healthz(State(node): State<Node>) -> Response {
    axum::Json(serde_json::json!({"status": "ok", "node": node.id()})).into_response()
}

/// Ready while registered, not shutting down, and its view of the store is
/// current.
async fn readyz(State(node): State<Node>) -> Response {
    match node.not_ready() {
        Some(err) => err.into_response(),
        None => {
            axum::Json(serde_json::json!({"status": "ready", "node": node.id()})).into_response()
        }
    }
}

async fn metrics(State(node): State<Node>) -> Response {
    let body = node.render_metrics();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        body,
    )
        .into_response()
}

/// `GET /iN/room/{id}`: checks, in order, the instance, the room id, the
/// query, then the admission (the node's state, the room's owner, limits
/// and token); then upgrades.
async fn join(
    State(node): State<Node>,
    _: ThisNode,
    RoomPath(room): RoomPath,
    RawQuery(raw_query): RawQuery,
    query: Result<Query<JoinParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<Upgrade, NotWebSocket>,
) -> Result<Response, ApiError> {
    let Query(mut params) =
        query.map_err(|e| ApiError::bad_request(ErrorCode::InvalidQuery, e.body_text()))?;
    if let Some(name) = &params.name {
        check_name(name)?;
    }
    let req = admission::Request {
        room: &room,
        query: raw_query.as_deref(),
        headers: &headers,
        token: params.token.as_deref(),
        token_now: true,
        transport: upgrade.as_ref().map(|_| ()).map_err(|e| ApiError::from(*e)),
    };
    let admitted = admission::admit(&node, req).await?;
    let join = join_hook::Join {
        room: &room,
        name: admitted.name(params.name.take()),
        query: join_hook::query_map(raw_query.as_deref()),
        headers: join_hook::credentials(&headers),
        protocol: Protocol::Native,
    };
    params.name = join_hook::ask(&node, join).await?;
    let upgrade = upgrade.map_err(ApiError::from)?;
    let config = node.websocket_config();
    let tracker = node.sessions().clone();
    Ok(upgrade.accept(config, &tracker, move |socket| {
        session::start(socket, node, admitted, params)
    }))
}
