//! The node-to-node and operator-to-node contract for moving rooms: the
//! internal endpoints' paths, bodies and authentication. These endpoints are
//! never under `/iN/room/*`, so a load balancer's per-instance rules do not
//! expose them, and they need the cluster key.

use serde::{Deserialize, Serialize};

use crate::id::{InstanceId, RoomId};
use crate::token::Secret;

// The internal routes: each constant is both the node's axum route and
// (but for `ADOPT_ONE_ROUTE`, whose path `adopt_path` builds) the path the
// client calls, so the two cannot drift apart.

/// `POST {owner}/internal/handoff` with a [`HandoffBatch`]: asks a room's
/// owner to move some of its rooms to one target, answered with a
/// [`HandoffAnswer`] (one outcome per room).
pub const HANDOFF_PATH: &str = "/internal/handoff";

/// `POST {target}/internal/adopt` with an [`AdoptBatch`]: gives a target
/// several rooms' state at once, answered with an [`AdoptAnswer`].
pub const ADOPT_PATH: &str = "/internal/adopt";

/// The route of [`adopt_path`]: one room's snapshot, a batch of one.
pub const ADOPT_ONE_ROUTE: &str = "/internal/rooms/{room}/adopt";

/// `POST {target}/internal/rooms/{room}/adopt` with one [`RoomSnapshot`]: a
/// batch of one (what a move of a single room sends), answered with an
/// [`Adopted`].
pub fn adopt_path(room: &RoomId) -> String {
    ADOPT_ONE_ROUTE.replace("{room}", room.as_str())
}

/// Most rooms a [`HandoffBatch`] may name. Callers send batches of one
/// store transaction's worth (`store::store::ROOMS_PER_TXN`); the bound
/// only keeps a request's work finite.
pub const MAX_HANDOFF_ROOMS: usize = 1000;

/// Snapshot bytes (JSON) an owner freezes and sends in one adopt request
/// before it commits them. Empty rooms take a few hundred bytes each, so a
/// whole batch goes at once; a room's history can reach `--history` ×
/// `--max-frame-bytes` (1000 × 64 KiB), so rooms with long histories go a
/// few (or one) at a time. One adopt body is at most this plus one room's
/// snapshot, which bounds both the owner's memory per request and the
/// target's body limit.
pub const ADOPT_BATCH_BYTES: usize = 8 << 20;

/// `POST {node}/internal/state` with a [`StateRequest`]: the node stops (or
/// starts again) taking new rooms, answered with a [`StateAnswer`].
pub const STATE_PATH: &str = "/internal/state";

/// Body of a state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRequest {
    /// `draining` or `active`.
    pub state: crate::record::NodeState,
}

/// Answer to a state change: the node and the state it is in now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateAnswer {
    /// The node.
    pub node: InstanceId,
    /// Its state now.
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

/// Body of a handoff request: move these rooms to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffBatch {
    /// The new owner of every room of the batch.
    pub to: InstanceId,
    /// The rooms, each with the epoch the caller saw.
    pub rooms: Vec<HandoffRoom>,
}

/// One room of a [`HandoffBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffRoom {
    /// The room.
    pub room: RoomId,
    /// The epoch the caller saw; the move happens only from this epoch.
    pub epoch: u64,
}

/// Answer to a handoff request that was taken up: one outcome per room, in
/// the order of the request. A request refused as a whole (no cluster key,
/// the target not registered, this node fenced) is an error answer instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffAnswer {
    /// The outcomes.
    pub rooms: Vec<HandoffOutcome>,
}

/// What happened to one room of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum HandoffOutcome {
    /// It moved.
    Moved(HandoffDone),
    /// It did not move; it goes on where it was (or, if the store's answer
    /// was lost, its clients reconnect through the router).
    Failed {
        /// The room.
        room: RoomId,
        /// Machine-readable reason, e.g. `stale`, `adopt_failed`.
        error: String,
        /// Human-readable text.
        message: String,
    },
}

impl HandoffOutcome {
    /// The room this outcome is about.
    pub fn room(&self) -> &RoomId {
        match self {
            Self::Moved(done) => &done.room,
            Self::Failed { room, .. } => room,
        }
    }
}

/// A room that moved.
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

/// Body of a batch adopt request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptBatch {
    /// The rooms' state.
    pub rooms: Vec<RoomSnapshot>,
}

/// Answer to a batch adopt request: one entry per snapshot, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptAnswer {
    /// The entries.
    pub rooms: Vec<Adopted>,
}

/// Whether the target holds one room's state now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adopted {
    /// The room.
    pub room: RoomId,
    /// `true` when it holds it until the store names it owner.
    pub adopted: bool,
    /// Why not, when it does not (e.g. it already hosts a newer epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
    /// Member ids issued so far (`m1`..`m<members>`): the new owner goes
    /// on from there, so a newcomer never takes the id of a moved member
    /// that is still coming back (a Socket.IO member recovers its id).
    #[serde(default)]
    pub members: u64,
    /// The server's publishes still within their idempotency window, so
    /// a retry after the move still delivers nothing twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<PublishedKey>,
}

/// An idempotency key of a server publish, handed to the new owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKey {
    /// The key.
    pub key: String,
    /// The seq its publish got.
    pub seq: u64,
    /// How long ago, in milliseconds.
    pub age_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopt_path_fills_the_route() {
        let room: RoomId = "lobby".parse().unwrap();
        assert_eq!(adopt_path(&room), "/internal/rooms/lobby/adopt");
    }

    #[test]
    fn a_state_answer_names_the_node_and_its_state() {
        let answer = StateAnswer {
            node: InstanceId::new(3).unwrap(),
            state: crate::record::NodeState::Draining,
        };
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({"node": "i3", "state": "draining"})
        );
    }
}
