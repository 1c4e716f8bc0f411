//! Whether a client may join a room on this node, whatever protocol it
//! speaks (the native WebSocket, Socket.IO): the checks, their order, and
//! the places they reserve, in one place. Each refusal is an [`ApiError`]
//! (the join is answered before any upgrade), and those a client causes by
//! load are counted in `roomnode_rejected_total`.
//!
//! In order: the path names this node ([`ThisNode`]), the node takes
//! joins at all, the page's origin, a connection
//! slot and a handshake slot, the room's owner
//! ([`crate::cluster::ownership`]), the room's size and state, a private
//! room's join token, the request's transport, the room's join rate (last,
//! so a refused join costs the room nothing).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use proto::token::{self, Claims};
use proto::{ErrorCode, InstanceId, RoomId};
use service::error::ApiError;

use crate::member::limits::Slot;
use crate::node::Node;
use crate::room::Room;

/// A client asking to join a room.
pub(crate) struct Request<'a> {
    /// The room asked for.
    pub(crate) room: &'a RoomId,
    /// The request's query, kept in a redirect to the room's owner.
    pub(crate) query: Option<&'a str>,
    /// The request's headers: `Origin`, and `Authorization: Bearer` for a
    /// join token.
    pub(crate) headers: &'a HeaderMap,
    /// A join token given in the query (browsers cannot set headers on a
    /// WebSocket).
    pub(crate) token: Option<&'a str>,
    /// Whether a private room's token is checked now; a Socket.IO client
    /// gives it later, in its CONNECT, and is answered there
    /// ([`verify_token`]).
    pub(crate) token_now: bool,
    /// Whether the request can carry the connection it asks for (the
    /// native join: a WebSocket upgrade); if not, it is refused after the
    /// room's own checks.
    pub(crate) transport: Result<(), ApiError>,
}

/// A join that passed every check, holding its places.
pub(crate) struct Admitted {
    /// The room, hosted here.
    pub(crate) room: Arc<Room>,
    /// A private room's verified join token.
    pub(crate) claims: Option<Claims>,
    /// The member's place in the node's connection limit, held until it
    /// leaves.
    pub(crate) slot: Slot,
    /// Its place among the joins in progress, held until it is in the room.
    pub(crate) handshake: Slot,
}

impl Admitted {
    /// The member's name: its join token's, if that names one, else the
    /// one it asked for.
    pub(crate) fn name(&self, asked: Option<String>) -> Option<String> {
        self.claims.as_ref().and_then(|c| c.name.clone()).or(asked)
    }
}

/// A join path's `{instance}`, checked to be this node. An extractor, to
/// go before [`service::extract::RoomPath`]: another node's path is refused
/// as such before its room id is looked at.
pub(crate) struct ThisNode;

/// Name of the path parameter that holds the node's id (`/{instance}/room/…`).
const INSTANCE_PARAM: &str = "instance";

impl FromRequestParts<Node> for ThisNode {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, node: &Node) -> Result<Self, Response> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, node)
            .await
            .map_err(IntoResponse::into_response)?;
        let instance = params.get(INSTANCE_PARAM).ok_or_else(|| {
            ApiError::internal(&"route has no {instance} parameter").into_response()
        })?;
        let instance: InstanceId = instance
            .parse()
            .map_err(|e: proto::IdError| ApiError::not_found(&e.to_string()).into_response())?;
        if instance != node.id() {
            let message = format!("this is node {}, not {instance}", node.id());
            return Err(ApiError::new(ErrorCode::WrongInstance, message).into_response());
        }
        Ok(Self)
    }
}

/// Runs every check on `req`, in order (see the module's documentation).
pub(crate) async fn admit(node: &Node, req: Request<'_>) -> Result<Admitted, ApiError> {
    if let Some(err) = node.unavailable() {
        return Err(err);
    }
    check_origin(node, req.headers)?;
    let slot = reserve_connection(node)?;
    let handshake = reserve_handshake(node)?;
    let room = node
        .ownership()
        .resolve(node.mirror(), req.room, req.query)
        .await?;
    if room.is_full() {
        reject(node, "room_full");
        return Err(ApiError::new(
            ErrorCode::RoomFull,
            format!(
                "room {} has its limit of {} members",
                room.id(),
                node.config().max_members
            ),
        ));
    }
    if room.is_moving() {
        return Err(ApiError::new(
            ErrorCode::RoomMoving,
            format!(
                "room {} is moving to another node; retry in a moment",
                room.id()
            ),
        ));
    }
    let claims = if room.is_private() && req.token_now {
        let token = req.token.or(service::auth::bearer(req.headers));
        Some(verify_token(node, &room, token)?)
    } else {
        None
    };
    req.transport?;
    if let Err(wait) = room.admit_join() {
        reject(node, "join_rate");
        return Err(ApiError::busy(
            ErrorCode::JoinRateLimited,
            format!(
                "room {} admits {} joins per second; retry in {wait} s",
                room.id(),
                node.config().room_join_rate
            ),
            wait,
        ));
    }
    Ok(Admitted {
        room,
        claims,
        slot,
        handshake,
    })
}

/// Counts a refusal in `roomnode_rejected_total`.
fn reject(node: &Node, reason: &str) {
    node.metrics().rejected.with_label_values(&[reason]).inc();
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
    reject(node, "origin");
    Err(ApiError::new(
        ErrorCode::OriginNotAllowed,
        format!("pages from {origin} may not join rooms here"),
    ))
}

/// A connection slot, or 503 `node_full`.
fn reserve_connection(node: &Node) -> Result<Slot, ApiError> {
    node.connections().reserve().ok_or_else(|| {
        reject(node, "node_full");
        ApiError::new(
            ErrorCode::NodeFull,
            format!(
                "this node serves its limit of {} connections",
                node.config().max_connections
            ),
        )
    })
}

/// A handshake slot, or 503 `too_many_handshakes` (retry in a second).
fn reserve_handshake(node: &Node) -> Result<Slot, ApiError> {
    node.handshakes().reserve().ok_or_else(|| {
        reject(node, "handshakes");
        ApiError::busy(
            ErrorCode::TooManyHandshakes,
            format!(
                "this node has its limit of {} joins in progress",
                node.config().max_handshakes
            ),
            1,
        )
    })
}

/// A private room's join token (from the query or `Authorization: Bearer`,
/// or a Socket.IO CONNECT's `auth`), verified with the cluster secret: no
/// store round trip.
pub(crate) fn verify_token(
    node: &Node,
    room: &Room,
    token: Option<&str>,
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
    let Some(token) = token else {
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
