//! The server API for the application's backend (`proto::backend`):
//! `POST /rooms/{id}/messages`, `GET /rooms/{id}/members`,
//! `DELETE /rooms/{id}/members/{member}`, `GET /rooms/{id}/history`. Each
//! is passed to the room's owner at the same path under `/internal` with
//! the cluster key, and the owner's answer (status and JSON body) comes
//! back as it is. An owner that answers 307 (the room moved since this
//! router's view) is asked again at the node it names, once.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proto::backend::{HISTORY_ROUTE, MEMBER_ROUTE, MEMBERS_ROUTE, MESSAGES_ROUTE, internal_path};
use proto::{ErrorCode, InstanceId, RoomId};
use service::client::CallError;
use service::error::ApiError;
use service::extract::RoomPath;

use crate::app::App;
use crate::ownership;

/// A call to the room's owner: which route, for which member, and the
/// request's query and body.
struct Call<'a> {
    method: Method,
    route: &'a str,
    member: Option<&'a str>,
    query: Option<String>,
    body: Option<Bytes>,
}

pub(crate) async fn publish(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    body: Bytes,
) -> Result<Response, ApiError> {
    let call = Call {
        method: Method::POST,
        route: MESSAGES_ROUTE,
        member: None,
        query: None,
        body: Some(body),
    };
    relay(&app, &room, call).await
}

pub(crate) async fn members(
    State(app): State<App>,
    RoomPath(room): RoomPath,
) -> Result<Response, ApiError> {
    let call = Call {
        method: Method::GET,
        route: MEMBERS_ROUTE,
        member: None,
        query: None,
        body: None,
    };
    relay(&app, &room, call).await
}

pub(crate) async fn kick(
    State(app): State<App>,
    Path((room, member)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let room: RoomId = room.parse().map_err(ApiError::bad_id)?;
    let call = Call {
        method: Method::DELETE,
        route: MEMBER_ROUTE,
        member: Some(&member),
        query: None,
        body: None,
    };
    relay(&app, &room, call).await
}

pub(crate) async fn history(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let call = Call {
        method: Method::GET,
        route: HISTORY_ROUTE,
        member: None,
        query,
        body: None,
    };
    relay(&app, &room, call).await
}

/// Asks the room's owner (and, after a 307, the node it names).
async fn relay(app: &App, room: &RoomId, call: Call<'_>) -> Result<Response, ApiError> {
    let Some(client) = app.internal_client() else {
        return Err(ApiError::new(
            ErrorCode::InternalDisabled,
            "the server API needs the router to run with --secret (the cluster secret)".into(),
        ));
    };
    let mut path = internal_path(call.route, room, call.member);
    if let Some(q) = &call.query {
        path = format!("{path}?{q}");
    }
    let mut node = ownership::locate(app, room).await?.node;
    for attempt in 0..2 {
        let base = app
            .mirror()
            .nodes()
            .nodes
            .get(&node)
            .map(|n| n.addr.clone())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NodeUnavailable,
                    format!("node {node} is not registered (down or restarting); retry shortly"),
                )
            })?;
        let answer = client
            .relay(call.method.clone(), &base, &path, call.body.clone())
            .await
            .map_err(|e| unreachable(node, &e))?;
        if answer.status == StatusCode::TEMPORARY_REDIRECT
            && attempt == 0
            && let Some(next) = answer.location.as_deref().and_then(moved_to)
        {
            node = next;
            continue;
        }
        return Ok(reply(answer.status, answer.body));
    }
    Err(ApiError::busy(
        ErrorCode::RoomMoving,
        format!("room {room} is moving between nodes; retry"),
        1,
    ))
}

/// The node a redirect's `Location` (`/iN/room/ID…`) names.
fn moved_to(location: &str) -> Option<InstanceId> {
    location
        .trim_start_matches('/')
        .split('/')
        .next()?
        .parse()
        .ok()
}

fn reply(status: StatusCode, body: Bytes) -> Response {
    if body.is_empty() {
        return status.into_response();
    }
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn unreachable(node: InstanceId, e: &CallError) -> ApiError {
    ApiError::new(
        ErrorCode::UpstreamUnreachable,
        format!("node {node} did not answer: {e}"),
    )
}
