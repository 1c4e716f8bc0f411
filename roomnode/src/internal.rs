//! The internal endpoints that move rooms: `handoff` (on the owner: freeze a
//! batch of rooms, hand their state to the target, swap their owner in the
//! store, tell the members where to go; see [`handoff`]), `adopt` (on the
//! target: hold the state until the store names it owner) and `state`
//! (draining or active). They sit outside `/iN/room/*`, so no load-balancer
//! rule reaches them, and need the key derived from the cluster secret.
//!
//! Layout: this file (authorization, adopt, state), [`handoff`] (the owner's
//! side of a move).

mod handoff;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use proto::RoomId;
use proto::handoff::{AdoptAnswer, AdoptBatch, Adopted, RoomSnapshot, StateRequest};
use serde_json::{Value, json};

use crate::auth::{bearer, secret_eq};
use crate::error::ApiError;
use crate::node::Node;

pub(crate) use handoff::handoff;

/// Refuses a call without the cluster key.
fn authorize(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = node.internal_key() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "internal_disabled",
            "this node has no --secret: moving rooms needs one".into(),
        ));
    };
    if bearer(headers).is_some_and(|given| secret_eq(given, key)) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "internal endpoints need the cluster key".into(),
        ))
    }
}

fn conflict(code: &str, message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

/// `POST /internal/rooms/{id}/adopt`: one room's state (a batch of one).
pub(crate) async fn adopt(
    State(node): State<Node>,
    Path(room): Path<String>,
    headers: HeaderMap,
    Json(snapshot): Json<RoomSnapshot>,
) -> Result<Json<Adopted>, ApiError> {
    authorize(&node, &headers)?;
    let room: RoomId = room.parse().map_err(ApiError::bad_id)?;
    if snapshot.room != room {
        return Err(ApiError::bad_request(
            "mismatch",
            "the snapshot is of another room".into(),
        ));
    }
    if let Some(err) = node.unavailable().or_else(|| node.stale_view()) {
        return Err(err);
    }
    node.rooms()
        .adopt(snapshot)
        .map_err(|e| conflict("stale", e.0))?;
    Ok(Json(Adopted {
        room,
        adopted: true,
        reason: None,
    }))
}

/// `POST /internal/adopt`: several rooms' state; each is held (or refused,
/// say if a newer epoch of it is live here already) on its own.
pub(crate) async fn adopt_batch(
    State(node): State<Node>,
    headers: HeaderMap,
    Json(batch): Json<AdoptBatch>,
) -> Result<Json<AdoptAnswer>, ApiError> {
    authorize(&node, &headers)?;
    if let Some(err) = node.unavailable().or_else(|| node.stale_view()) {
        return Err(err);
    }
    let rooms = batch
        .rooms
        .into_iter()
        .map(|snapshot| {
            let room = snapshot.room.clone();
            match node.rooms().adopt(snapshot) {
                Ok(()) => Adopted {
                    room,
                    adopted: true,
                    reason: None,
                },
                Err(refused) => Adopted {
                    room,
                    adopted: false,
                    reason: Some(refused.0),
                },
            }
        })
        .collect();
    Ok(Json(AdoptAnswer { rooms }))
}

/// `POST /internal/state`: `draining` takes the node out of placement (no
/// new rooms), `active` puts it back.
pub(crate) async fn set_state(
    State(node): State<Node>,
    headers: HeaderMap,
    Json(req): Json<StateRequest>,
) -> Result<Json<Value>, ApiError> {
    authorize(&node, &headers)?;
    node.registration().set_state(req.state).await?;
    tracing::info!(node = %node.id(), state = ?req.state, "state changed");
    Ok(Json(json!({"node": node.id(), "state": req.state})))
}
