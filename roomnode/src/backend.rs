//! The node's side of the server API (`proto::backend`): the router calls
//! the room's owner at `/internal/rooms/{id}/messages`, `/members`,
//! `/members/{member}` and `/history`, behind the cluster key like the
//! internal routes that move rooms. The room must be this node's: another
//! owner is a 307 (the router follows it), an unknown room a 404.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use proto::ErrorCode;
use proto::RoomId;
use proto::backend::{
    HISTORY_ROUTE, History, HistoryQuery, MAX_HISTORY_LIMIT, MAX_IDEMPOTENCY_KEY, MEMBER_ROUTE,
    MEMBERS_ROUTE, MESSAGES_ROUTE, Members, Publish, PublishAnswer,
};
use serde_json::value::RawValue;
use service::error::ApiError;
use service::extract::RoomPath;
use std::sync::Arc;

use crate::node::Node;
use crate::room::{Refused, Room};

/// The routes; the caller puts them behind the key check.
pub(crate) fn routes() -> Router<Node> {
    Router::new()
        .route(MESSAGES_ROUTE, post(publish))
        .route(MEMBERS_ROUTE, get(members))
        .route(MEMBER_ROUTE, delete(kick))
        .route(HISTORY_ROUTE, get(history))
}

/// The room, hosted here (activated if the store names this node owner).
async fn hosted(node: &Node, room: &RoomId) -> Result<Arc<Room>, ApiError> {
    node.ownership().resolve(node.mirror(), room, None).await
}

async fn publish(
    State(node): State<Node>,
    RoomPath(room): RoomPath,
    req: Result<Json<Publish>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) =
        req.map_err(|e| ApiError::bad_request(ErrorCode::InvalidBody, e.body_text()))?;
    if req
        .idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY)
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} bytes"),
        ));
    }
    let body = match &req.event {
        // The bridge's shape: Socket.IO members get the event `event`.
        Some(event) => {
            let text = format!(
                r#"{{"event":{},"args":[{}]}}"#,
                serde_json::Value::String(event.clone()),
                req.body.get()
            );
            RawValue::from_string(text).map_err(|e| ApiError::internal(&e))?
        }
        None => req.body,
    };
    let max = node.config().max_frame_bytes;
    if body.get().len() > max {
        return Err(ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("a message body may take {max} bytes (--max-frame-bytes)"),
        ));
    }
    let room = hosted(&node, &room).await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let receipt = Box::new(move |result| {
        let _ = tx.send(result);
    });
    room.publish_as_server(&body, req.idempotency_key.as_deref(), receipt)
        .map_err(|r| refused(&room, r))?;
    // The answer waits until the message counts (its replica holds it).
    match rx.await {
        Ok(Ok(seq)) => {
            let answer = PublishAnswer {
                seq,
                stream: room.stream().to_owned(),
            };
            Ok((StatusCode::CREATED, Json(answer)).into_response())
        }
        Ok(Err(r)) => Err(refused(&room, r)),
        Err(_) => Err(refused(&room, Refused::Closed)),
    }
}

/// The error answer for a publish the room refused.
fn refused(room: &Room, why: Refused) -> ApiError {
    match why {
        Refused::Moving => ApiError::busy(
            ErrorCode::RoomMoving,
            format!("room {} is moving to another node; retry", room.id()),
            1,
        ),
        Refused::Closed | Refused::Full => ApiError::busy(
            ErrorCode::RoomMoving,
            format!("room {} has just left this node; retry", room.id()),
            1,
        ),
        Refused::NotAccepted => ApiError::busy(
            ErrorCode::NotAccepted,
            format!(
                "room {}'s replica cannot confirm messages now; the message was not accepted; retry",
                room.id()
            ),
            1,
        ),
    }
}

async fn members(
    State(node): State<Node>,
    RoomPath(room): RoomPath,
) -> Result<Json<Members>, ApiError> {
    let room = hosted(&node, &room).await?;
    Ok(Json(Members {
        members: room.member_views(),
    }))
}

async fn kick(
    State(node): State<Node>,
    Path((room, member)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let room: RoomId = room.parse().map_err(ApiError::bad_id)?;
    let room = hosted(&node, &room).await?;
    if room.kick(&member) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            ErrorCode::UnknownMember,
            format!("room {} has no member {member}", room.id()),
        ))
    }
}

async fn history(
    State(node): State<Node>,
    RoomPath(room): RoomPath,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<History>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(ErrorCode::InvalidQuery, e.body_text()))?;
    let limit = q.limit.unwrap_or(MAX_HISTORY_LIMIT);
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("limit must be 1 to {MAX_HISTORY_LIMIT}"),
        ));
    }
    let room = hosted(&node, &room).await?;
    let (stream, messages) = room.history_page(q.since, limit);
    Ok(Json(History { stream, messages }))
}
