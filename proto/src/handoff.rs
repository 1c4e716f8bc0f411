//! The node-to-node and operator-to-node contract for moving rooms: the
//! internal endpoints' paths, bodies and authentication. These endpoints are
//! never under `/iN/room/*`, so a load balancer's per-instance rules do not
//! expose them, and they need the cluster key.

use serde::{Deserialize, Serialize};

use crate::id::{InstanceId, RoomId};
use crate::token::Secret;

/// `POST {node}/internal/rooms/{id}/handoff`: asks the owner to move a room.
pub fn handoff_path(room: &RoomId) -> String {
    format!("/internal/rooms/{room}/handoff")
}

/// `POST {node}/internal/rooms/{id}/adopt`: gives a target a room's state.
pub fn adopt_path(room: &RoomId) -> String {
    format!("/internal/rooms/{room}/adopt")
}

/// `POST {node}/internal/state` with a [`StateRequest`]: the node stops (or
/// starts again) taking new rooms.
pub const STATE_PATH: &str = "/internal/state";

/// Body of a state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRequest {
    /// `draining` or `active`.
    pub state: crate::record::NodeState,
}

/// The bearer credential of the internal endpoints, derived from the cluster
/// secret so the secret that signs join tokens never travels.
pub fn internal_key(secret: &Secret) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"roomrouter internal v1");
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Body of a handoff request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffRequest {
    /// The new owner.
    pub to: InstanceId,
    /// The epoch the caller saw; the move happens only from this epoch.
    pub epoch: u64,
}

/// Answer to a successful handoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffDone {
    /// The room.
    pub room: RoomId,
    /// Old owner.
    pub from: InstanceId,
    /// New owner.
    pub to: InstanceId,
    /// The new epoch.
    pub epoch: u64,
    /// Members told to reconnect.
    pub members: usize,
    /// Messages of history carried over.
    pub history: usize,
}

/// Everything a room is, handed from its old owner to its new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSnapshot {
    /// The room.
    pub room: RoomId,
    /// The epoch the new owner will hold it at.
    pub epoch: u64,
    /// The message stream: unchanged by a live move.
    pub stream: String,
    /// The latest seq.
    pub seq: u64,
    /// The retained message frames, oldest first, with seqs up to `seq`.
    pub history: Vec<String>,
}
