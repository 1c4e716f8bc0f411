//! The internal endpoints that move rooms: `handoff` (on the owner: freeze a
//! batch of rooms, hand their state to the target, swap their owner in the
//! store, tell the members where to go; see [`super::handoff`]), `adopt` (on the
//! target: hold the state until the store names it owner) and `state`
//! (draining or active). They sit outside `/iN/room/*`, so no load-balancer
//! rule reaches them, and need the key derived from the cluster secret.
//!
//! The key is checked by a layer in front of every internal route, before
//! a byte of the body is read: an unauthenticated caller costs the node a
//! request head, not a parsed 100 MB body, and learns nothing of the
//! bodies' shape.
//!
//! The owner's side of a move is [`super::handoff`]; this file has the
//! routes, their authorization, the target's side (adopt) and `state`.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use proto::ErrorCode;
use proto::handoff::{AdoptAnswer, AdoptBatch, Adopted, RoomSnapshot, StateRequest};
use serde_json::{Value, json};

use crate::node::Node;
use service::auth::{bearer, secret_eq};
use service::error::ApiError;
use service::extract::RoomPath;

use super::handoff::handoff;

/// The internal routes, behind the key check. A snapshot is bounded by
/// the node's history limits (JSON-escaped, so twice), a batch adopt by
/// `ADOPT_BATCH_BYTES` of snapshots plus one more.
pub(crate) fn routes(node: &Node) -> Router<Node> {
    let config = node.config();
    let history = config
        .history_bytes
        .min(config.history.saturating_mul(config.max_frame_bytes));
    let snapshot_limit = history.saturating_mul(2) + (1 << 20);
    let adopt_limit = snapshot_limit.saturating_add(proto::handoff::ADOPT_BATCH_BYTES);
    Router::new()
        .route(proto::handoff::HANDOFF_PATH, post(handoff))
        .route(
            proto::handoff::ADOPT_ONE_ROUTE,
            post(adopt).layer(DefaultBodyLimit::max(snapshot_limit)),
        )
        .route(
            proto::handoff::ADOPT_PATH,
            post(adopt_batch).layer(DefaultBodyLimit::max(adopt_limit)),
        )
        .route(proto::handoff::STATE_PATH, post(set_state))
        .route(
            proto::replication::REPLICATE_PATH,
            get(move |node, upgrade| crate::replication::stream::serve(node, upgrade, adopt_limit)),
        )
        .merge(crate::backend::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            node.clone(),
            require_key,
        ))
}

/// Lets a request through only with the cluster key, before its body.
async fn require_key(
    State(node): State<Node>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    authorize(&node, req.headers())?;
    Ok(next.run(req).await)
}

/// Refuses a call without the cluster key.
fn authorize(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = node.internal_key() else {
        return Err(ApiError::new(
            ErrorCode::InternalDisabled,
            "this node has no --secret: moving rooms needs one".into(),
        ));
    };
    if bearer(headers).is_some_and(|given| secret_eq(given, key)) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Unauthorized,
            "internal endpoints need the cluster key".into(),
        ))
    }
}

/// `POST /internal/rooms/{id}/adopt`: one room's state (a batch of one).
pub(crate) async fn adopt(
    State(node): State<Node>,
    RoomPath(room): RoomPath,
    Json(snapshot): Json<RoomSnapshot>,
) -> Result<Json<Adopted>, ApiError> {
    if snapshot.room != room {
        return Err(ApiError::bad_request(
            ErrorCode::Mismatch,
            "the snapshot is of another room".into(),
        ));
    }
    if let Some(err) = node.not_ready() {
        return Err(err);
    }
    let answer = hold(&node, snapshot);
    match answer.reason {
        Some(refused) => Err(ApiError::new(ErrorCode::Stale, refused)),
        None => Ok(Json(answer)),
    }
}

/// `POST /internal/adopt`: several rooms' state; each is held (or refused,
/// say if a newer epoch of it is live here already) on its own.
pub(crate) async fn adopt_batch(
    State(node): State<Node>,
    Json(batch): Json<AdoptBatch>,
) -> Result<Json<AdoptAnswer>, ApiError> {
    if let Some(err) = node.not_ready() {
        return Err(err);
    }
    let rooms = batch
        .rooms
        .into_iter()
        .map(|snapshot| hold(&node, snapshot))
        .collect();
    Ok(Json(AdoptAnswer { rooms }))
}

/// Holds one room's state until the store names this node its owner; the
/// answer for that room.
fn hold(node: &Node, snapshot: RoomSnapshot) -> Adopted {
    let room = snapshot.room.clone();
    let refused = node.ownership().adopt(snapshot).err();
    Adopted {
        room,
        adopted: refused.is_none(),
        reason: refused.map(|r| r.0),
    }
}

/// `POST /internal/state`: `draining` takes the node out of placement (no
/// new rooms), `active` puts it back.
pub(crate) async fn set_state(
    State(node): State<Node>,
    Json(req): Json<StateRequest>,
) -> Result<Json<Value>, ApiError> {
    node.registration().set_state(req.state).await?;
    tracing::info!(node = %node.id(), state = ?req.state, "state changed");
    Ok(Json(json!({"node": node.id(), "state": req.state})))
}
