//! The internal endpoints that move rooms: `handoff` (on the owner: freeze,
//! hand the state to the target, swap the owner in the store, tell the
//! members where to go), `adopt` (on the target: hold the state until the
//! store names it owner) and `state` (draining or active). They sit outside `/iN/room/*`, so no
//! load-balancer rule reaches them, and need the key derived from the
//! cluster secret.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use proto::RoomId;
use proto::handoff::{HandoffDone, HandoffRequest, RoomSnapshot, StateRequest, adopt_path};
use proto::record::{NodeState, RoomRecord};
use serde_json::{Value, json};
use store::StoreError;
use tokio::time::Instant;

use crate::auth::{bearer, secret_eq};
use crate::error::ApiError;
use crate::node::Node;
use crate::room::{CloseReason, Refused, Room};

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

/// `POST /internal/rooms/{id}/handoff`.
pub(crate) async fn handoff(
    State(node): State<Node>,
    Path(room): Path<String>,
    headers: HeaderMap,
    Json(req): Json<HandoffRequest>,
) -> Result<Json<HandoffDone>, ApiError> {
    authorize(&node, &headers)?;
    let room: RoomId = room.parse().map_err(ApiError::bad_id)?;
    if let Some(err) = node.unavailable().or_else(|| node.stale_view()) {
        return Err(err);
    }
    if req.to == node.id() {
        return Err(ApiError::bad_request(
            "same_node",
            format!("room {room} is already on {}", node.id()),
        ));
    }
    let rec = node.store().room(&room).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_room",
            format!("room {room} does not exist"),
        )
    })?;
    if rec.node != node.id() || rec.epoch != req.epoch {
        return Err(conflict(
            "stale",
            format!(
                "room {room} is on {} at epoch {}, not on {} at {}",
                rec.node,
                rec.epoch,
                node.id(),
                req.epoch
            ),
        ));
    }
    let target = node.mirror().nodes().nodes.get(&req.to).cloned();
    let target = match target {
        Some(t) if t.state == NodeState::Active => t,
        Some(_) => {
            return Err(conflict(
                "target_draining",
                format!("{} is draining", req.to),
            ));
        }
        None => {
            return Err(conflict(
                "target_unavailable",
                format!("{} is not registered", req.to),
            ));
        }
    };
    let Some(client) = node.internal_client() else {
        return Err(conflict(
            "internal_disabled",
            "this node has no --secret".into(),
        ));
    };

    // Hosting the room (even if nobody is in it) and freezing it means no
    // join or message can slip in that the snapshot would miss.
    let hosted = node.rooms().activate(&rec);
    let snapshot = hosted.freeze(rec.epoch + 1).map_err(|r| match r {
        Refused::Moving => conflict("already_moving", format!("room {room} is already moving")),
        Refused::Closed | Refused::Full => {
            conflict("stale", format!("room {room} just closed here"))
        }
    })?;
    let frozen = Frozen {
        at: Instant::now(),
        history: snapshot.history.len(),
        // Counted now: once the swap lands, this node's own watch may close
        // the room before the answer is written.
        members: hosted.members(),
        room: hosted.clone(),
    };
    let adopted: Result<Value, _> = client
        .post(&target.addr, &adopt_path(&room), &snapshot)
        .await;
    if let Err(e) = adopted {
        return Err(failed(
            &node,
            &hosted,
            ApiError::new(StatusCode::BAD_GATEWAY, "adopt_failed", e.to_string()),
        ));
    }
    match node.store().move_room(&room, rec.epoch, req.to).await {
        Ok(moved) => Ok(Json(finish(&node, &frozen, &moved))),
        Err(StoreError::Unavailable(e)) => {
            // The swap may or may not have happened. Serving on could mean
            // two owners; closing is safe: clients come back through the
            // router, which asks the store.
            tracing::warn!(room = %room, error = %e, "move outcome unknown; closing the room here");
            node.rooms().remove(&hosted, &CloseReason::fenced());
            node.metrics().moves_failed.inc();
            Err(ApiError::store_unavailable(&e))
        }
        Err(e) => Err(failed(&node, &hosted, e.into())),
    }
}

/// A room frozen for its move.
struct Frozen {
    room: Arc<Room>,
    at: Instant,
    history: usize,
    members: usize,
}

/// The move committed: members learn the new path, after everything already
/// queued for them.
fn finish(node: &Node, frozen: &Frozen, moved: &RoomRecord) -> HandoffDone {
    let Frozen {
        room: hosted,
        at,
        history,
        members,
    } = frozen;
    let (history, members) = (*history, *members);
    let path = proto::path::sharded(moved.node, &moved.id);
    node.rooms().remove(hosted, &CloseReason::moved(&path));
    let m = node.metrics();
    m.moves.inc();
    m.move_duration.observe(at.elapsed().as_secs_f64());
    tracing::info!(room = %moved.id, to = %moved.node, epoch = moved.epoch, members, history, "room handed off");
    HandoffDone {
        room: moved.id.clone(),
        from: node.id(),
        to: moved.node,
        epoch: moved.epoch,
        members,
        history,
    }
}

/// The move did not happen: the room goes on here.
fn failed(node: &Node, hosted: &Room, err: ApiError) -> ApiError {
    hosted.unfreeze();
    node.metrics().moves_failed.inc();
    tracing::warn!(room = %hosted.id(), error = err.code(), "handoff failed; room stays here");
    err
}

/// `POST /internal/rooms/{id}/adopt`.
pub(crate) async fn adopt(
    State(node): State<Node>,
    Path(room): Path<String>,
    headers: HeaderMap,
    Json(snapshot): Json<RoomSnapshot>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"room": room, "adopted": true})))
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
