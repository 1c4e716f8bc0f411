//! The router's HTTP API bodies, and the one error body every HTTP answer of
//! every component uses: `{"error":"<code>","message":"<text>"}`.

use serde::{Deserialize, Serialize};

use crate::id::{InstanceId, RoomId};
use crate::record::{NodeState, RoomRecord};

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `invalid_room_id`.
    pub error: String,
    /// Human-readable text.
    pub message: String,
}

/// `POST /rooms` body. Unknown fields are refused so typos surface.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    /// Wanted id; generated when absent.
    pub id: Option<String>,
    /// Whether joining needs a token.
    #[serde(default)]
    pub private: bool,
}

/// A room as the API shows it: its record plus where clients connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomView {
    /// The room.
    pub id: RoomId,
    /// Its owner.
    pub node: InstanceId,
    /// `/iN/room/ID`.
    pub path: String,
    /// `/iN/room/ID/socket.io/`: the `path` option of `socket.io-client`.
    pub socketio_path: String,
    /// Full WebSocket URL built from `--public-url` or the request's `Host`.
    pub ws_url: String,
    /// Owner epoch.
    pub epoch: u64,
    /// Joining needs a token.
    pub private: bool,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// A join token, only in the answer that created a private room.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token: Option<String>,
}

impl RoomView {
    /// The view of `rec`, with WebSocket URLs under `ws_base` (`ws://host`).
    pub fn new(rec: &RoomRecord, ws_base: &str) -> Self {
        let path = crate::path::sharded(rec.node, &rec.id);
        Self {
            ws_url: format!("{}{path}", ws_base.trim_end_matches('/')),
            path,
            socketio_path: crate::path::socketio(rec.node, &rec.id),
            id: rec.id.clone(),
            node: rec.node,
            epoch: rec.epoch,
            private: rec.private,
            created_at: rec.created_at,
            token: None,
        }
    }
}

/// `GET /rooms` answer: one page, and where the next starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomPage {
    /// Rooms in id order.
    pub rooms: Vec<RoomView>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next: Option<RoomId>,
}

/// One entry of `GET /nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Instance id.
    pub id: InstanceId,
    /// Where it is reached.
    pub addr: String,
    /// Placement weight.
    pub weight: f64,
    /// `active` or `draining`.
    pub state: NodeState,
    /// Rooms assigned to it in the store.
    pub rooms: u64,
}
