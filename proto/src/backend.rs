//! The server API the application's backend calls (SPEC "Server API and
//! hooks for the application's backend"): publish into a room as the
//! server, list and kick members, read history. The router answers it
//! (`/rooms/{id}/messages`, `/members`, `/history`, behind the admin token
//! or an API key) by calling the room's owner at the same paths under
//! `/internal` (behind the cluster key, like the moves), so the bodies
//! here are both the public API's and the node's.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::id::RoomId;

/// The member id of messages the server published.
pub const SERVER_MEMBER: &str = "server";

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW_SECS: u64 = 600;

/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

/// Most messages one history read returns (and its default).
pub const MAX_HISTORY_LIMIT: usize = 1000;

/// The node's route of a publish (the router's is the same without
/// `/internal`), and likewise below.
pub const MESSAGES_ROUTE: &str = "/internal/rooms/{room}/messages";
/// Listing members.
pub const MEMBERS_ROUTE: &str = "/internal/rooms/{room}/members";
/// Kicking a member.
pub const MEMBER_ROUTE: &str = "/internal/rooms/{room}/members/{member}";
/// Reading history.
pub const HISTORY_ROUTE: &str = "/internal/rooms/{room}/history";

/// A node route for `room` (and `member`).
pub fn internal_path(route: &str, room: &RoomId, member: Option<&str>) -> String {
    let path = route.replace("{room}", room.as_str());
    match member {
        Some(m) => path.replace("{member}", m),
        None => path,
    }
}

/// `POST /rooms/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// The message body, any JSON.
    pub body: Box<RawValue>,
    /// The Socket.IO event it is delivered as (default `"message"`); with
    /// it, the native body is `{"event": event, "args": [body]}` (the
    /// bridge's shape, so both protocols and replays agree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The same key within [`IDEMPOTENCY_WINDOW_SECS`] answers the first
    /// result again and delivers nothing twice (across live moves too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// 201 answer to a publish, with the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishAnswer {
    /// The message's seq in the room's stream.
    pub seq: u64,
    /// The room's stream.
    pub stream: String,
}

/// One member, as `GET /rooms/{id}/members` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Its member id (`m7`).
    pub member: String,
    /// Its display name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `websocket` (the native protocol), `socketio-websocket` or
    /// `socketio-polling`.
    pub transport: String,
    /// When it joined, Unix seconds.
    pub joined_at: u64,
}

/// `GET /rooms/{id}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// Oldest first.
    pub members: Vec<MemberView>,
}

/// Query of `GET /rooms/{id}/history`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only messages after this seq (default: the oldest retained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// At most this many (default and most: [`MAX_HISTORY_LIMIT`]); the
    /// oldest ones after `since` first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// One retained message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryMessage {
    /// Its seq.
    pub seq: u64,
    /// The sender's member id (`server` for the server's).
    pub from: String,
    /// The sender's name, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The body as accepted.
    pub body: Box<RawValue>,
}

/// `GET /rooms/{id}/history`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    /// The room's stream.
    pub stream: String,
    /// In seq order.
    pub messages: Vec<HistoryMessage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_paths_fill_the_routes() {
        let room: RoomId = "lobby".parse().unwrap();
        assert_eq!(
            internal_path(MEMBER_ROUTE, &room, Some("m3")),
            "/internal/rooms/lobby/members/m3"
        );
        assert_eq!(
            internal_path(HISTORY_ROUTE, &room, None),
            "/internal/rooms/lobby/history"
        );
    }

    #[test]
    fn a_publish_keeps_its_body_as_sent_and_refuses_unknown_fields() {
        let p: Publish = serde_json::from_str(r#"{"body":{"n":1.50},"event":"chat"}"#).unwrap();
        assert_eq!(p.body.get(), r#"{"n":1.50}"#);
        assert!(serde_json::from_str::<Publish>(r#"{"body":1,"bogus":2}"#).is_err());
    }
}
