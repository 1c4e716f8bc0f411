//! The node's HTTP surface: `GET /iN/room/{id}` (the WebSocket join, after
//! the ownership checks), `/healthz`, `/readyz`, `/metrics`.

use proto::ErrorCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use proto::token::{self, Claims};
use proto::wire::{JoinParams, check_name};
use proto::{InstanceId, RoomId};
use tracing::Instrument;

use crate::cluster::internal;
use crate::member::close::CloseReason;
use crate::member::limits::{RateLimit, Slot};
use crate::member::outlet::{Outlet, OutletConfig};
use crate::member::session;
use crate::member::upgrade::{Accepted, NotWebSocket, Upgrade};
use crate::node::Node;
use crate::room::{JoinRequest, Refused, Room};
use futures_util::SinkExt;
use service::error::ApiError;
use tokio_tungstenite::tungstenite::Message;

/// The node's routes.
pub(crate) fn routes(node: Node) -> Router {
    Router::new()
        .route("/{instance}/room/{room}", get(join))
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
    match node.unavailable().or_else(|| node.stale_view()) {
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
/// query, the node's own state, the room's owner; then upgrades.
async fn join(
    State(node): State<Node>,
    Path((instance, room)): Path<(String, String)>,
    RawQuery(raw_query): RawQuery,
    query: Result<Query<JoinParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<Upgrade, NotWebSocket>,
) -> Result<Response, ApiError> {
    let instance: InstanceId = instance
        .parse()
        .map_err(|e: proto::IdError| ApiError::not_found(&e.to_string()))?;
    if instance != node.id() {
        return Err(ApiError::new(
            ErrorCode::WrongInstance,
            format!("this is node {}, not {instance}", node.id()),
        ));
    }
    let room: RoomId = room.parse().map_err(ApiError::bad_id)?;
    let Query(mut params) =
        query.map_err(|e| ApiError::bad_request(ErrorCode::InvalidQuery, e.body_text()))?;
    if let Some(name) = &params.name {
        check_name(name)?;
    }
    if let Some(err) = node.unavailable() {
        return Err(err);
    }
    check_origin(&node, &headers)?;
    let slot = node.reserve_connection()?;
    let handshake = node.reserve_handshake()?;
    let hosted = node
        .ownership()
        .resolve(node.mirror(), &room, raw_query.as_deref())
        .await?;
    if hosted.is_full() {
        node.metrics()
            .rejected
            .with_label_values(&["room_full"])
            .inc();
        return Err(ApiError::new(
            ErrorCode::RoomFull,
            format!(
                "room {room} has its limit of {} members",
                node.config().max_members
            ),
        ));
    }
    if hosted.is_moving() {
        return Err(ApiError::new(
            ErrorCode::RoomMoving,
            format!("room {room} is moving to another node; retry in a moment"),
        ));
    }
    if hosted.is_private() {
        let claims = check_token(&node, &hosted, &params, &headers)?;
        if claims.name.is_some() {
            params.name = claims.name;
        }
    }
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            ErrorCode::UpgradeRequired,
            format!("join with a WebSocket upgrade: {}", e.reason()),
        )
    })?;
    if let Err(wait) = hosted.admit_join() {
        node.metrics()
            .rejected
            .with_label_values(&["join_rate"])
            .inc();
        return Err(ApiError::busy(
            ErrorCode::JoinRateLimited,
            format!(
                "room {room} admits {} joins per second; retry in {wait} s",
                node.config().room_join_rate
            ),
            wait,
        ));
    }
    let config = node.websocket_config();
    let tracker = node.sessions().clone();
    Ok(upgrade.accept(config, &tracker, move |socket| {
        enter(socket, node, hosted, params, (slot, handshake))
    }))
}

/// A private room's join token, from `?token=` (browsers cannot set headers
/// on a WebSocket) or `Authorization: Bearer`, verified with the cluster
/// secret: no store round trip.
fn check_token(
    node: &Node,
    room: &Room,
    params: &JoinParams,
    headers: &HeaderMap,
) -> Result<Claims, ApiError> {
    let config = node.config();
    let secrets: Vec<&[u8]> = [&config.secret, &config.previous_secret]
        .into_iter()
        .flatten()
        .map(|s| s.expose().as_bytes())
        .collect();
    if secrets.is_empty() {
        return Err(ApiError::new(
            ErrorCode::PrivateRoomsDisabled,
            "this node has no --secret to verify join tokens".into(),
        ));
    }
    let bearer = service::auth::bearer(headers);
    let Some(token) = params.token.as_deref().or(bearer) else {
        return Err(ApiError::new(
            ErrorCode::TokenRequired,
            format!(
                "room {} is private: pass a join token as ?token= or Authorization: Bearer",
                room.id()
            ),
        ));
    };
    let now = store::store::unix_now();
    token::verify(&secrets, token, room.id(), room.created_at(), now)
        .map_err(|e| ApiError::new(e.code(), e.to_string()))
}

/// Refuses a browser page from an origin not on `--allowed-origins`.
fn check_origin(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    let allowed = &node.config().allowed_origins;
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return Ok(());
    };
    if allowed.is_empty() || allowed.iter().any(|a| a == origin) {
        return Ok(());
    }
    node.metrics().rejected.with_label_values(&["origin"]).inc();
    Err(ApiError::new(
        ErrorCode::OriginNotAllowed,
        format!("pages from {origin} may not join rooms here"),
    ))
}

/// The member's session; `slot` holds its place in the node's connection
/// limit until it ends, `handshake` its place among joins in progress until
/// it is in the room.
async fn enter(
    accepted: Accepted,
    node: Node,
    room: Arc<Room>,
    params: JoinParams,
    (slot, handshake): (Slot, Slot),
) {
    let config = node.config();
    let outlet_config = OutletConfig {
        max_queue: config.max_queue,
        direct: config.flush_window().is_none(),
    };
    let outlet = Arc::new(Outlet::new(
        Some(accepted.io.clone()),
        outlet_config,
        node.metrics(),
    ));
    let mut socket = accepted.into_socket(outlet.clone()).await;
    let req = JoinRequest {
        name: params.name.as_deref(),
        since: params.since,
        stream: params.stream.as_deref(),
    };
    let joined = room.join(req, &outlet);
    drop(handshake);
    let key = match joined {
        Ok(key) => key,
        // Full, closed or frozen between the checks and the upgrade: the
        // client tries again (through the router).
        Err(refused) => {
            let reason = match refused {
                Refused::Full => CloseReason::room_full(),
                Refused::Closed | Refused::Moving => CloseReason::room_gone(),
            };
            let _ = socket.send(Message::Close(Some(reason.frame()))).await;
            return;
        }
    };
    let span = tracing::debug_span!("member", room = %room.id(), node = %node.id());
    let settings = session::Settings {
        ping: config.ping(),
        rate: RateLimit::new(config.rate, config.burst),
        lease: node.registration().clone(),
    };
    session::run(socket, room, key, node.metrics(), settings)
        .instrument(span)
        .await;
    drop(slot);
}
